"""Reconciliation logic: every difference between the speed view and gold gets its cause."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from lambda_contract.redis_layout import GroupKey, Metrics
from lambda_contract.windows import hours_of_date
from serving_layer.fx import FxTable
from serving_layer.reconciliation import Inputs, reconcile, to_json

pytestmark = pytest.mark.unit

DAY = date(2026, 11, 24)
H10 = datetime(2026, 11, 24, 10, tzinfo=UTC)
H11 = datetime(2026, 11, 24, 11, tzinfo=UTC)
EU = GroupKey("eu-west", "books", "EUR")
US = GroupKey("us-east", "toys", "USD")
FX = FxTable.from_rows([(date(2026, 11, 1), "EUR", Decimal("1.10"))])


def m(revenue: str, orders: int = 1, refunds: int = 0) -> Metrics:
    return Metrics(Decimal(revenue), orders, refunds, orders + refunds)


def inputs(**over: Any) -> Inputs:
    base: dict[str, Any] = {
        "day": DAY,
        "speed": {H10: {EU: m("10.00"), US: m("5.00")}},
        "speed_status": dict.fromkeys(hours_of_date(DAY), "closed"),
        "late": {},
        "speed_duplicates": {},
        "dlq": {},
        "gold": {H10: {EU: m("10.00"), US: m("5.00")}},
        "computed_hours": frozenset(hours_of_date(DAY)),
        "batch_duplicates": {},
        "quarantine": {},
    }
    base.update(over)
    return Inputs(**base)


def totals(i: Inputs) -> dict[str, Any]:
    return to_json(reconcile(i), FX)["totals"]  # type: ignore[no-any-return]


def test_identical_views_are_explained_with_zero_residual() -> None:
    t = totals(inputs())
    assert t["verdict"] == "explained" and t["residual_events"] == 0 and t["residual_revenue_usd"] == "0.00"
    assert t["speed_events"] == t["batch_events"] == 2 and t["drift_ratio"] == 0.0


def test_late_events_explain_what_gold_has_more() -> None:
    t = totals(inputs(gold={H10: {EU: m("60.00", 2), US: m("5.00")}}, late={H10: {EU: m("50.00")}}))
    assert t["verdict"] == "explained" and t["late_events"] == 1
    assert t["late_revenue_usd"] == "55.00"  # 50 EUR at 1.10


def test_a_difference_nothing_explains_is_residual() -> None:
    t = totals(inputs(gold={H10: {EU: m("10.01"), US: m("5.00")}}))
    assert t["verdict"] == "unexplained" and t["residual_events"] == 0
    assert t["residual_revenue_usd"] == "0.01"  # 0.01 EUR * 1.10 = 0.011 -> half-even 0.01


def test_late_counters_that_do_not_match_leave_a_residual() -> None:
    t = totals(inputs(gold={H10: {EU: m("60.00", 2), US: m("5.00")}}, late={H10: {EU: m("40.00")}}))
    assert t["verdict"] == "unexplained" and t["residual_revenue_usd"] == "11.00"


def test_an_hour_the_speed_layer_never_held_is_a_speed_gap() -> None:
    status = {h: "closed" for h in hours_of_date(DAY) if h != H11}
    t = totals(inputs(speed_status=status, gold={H10: {EU: m("10.00"), US: m("5.00")}, H11: {US: m("7.00")}}))
    assert t["verdict"] == "explained" and t["speed_gap_events"] == 1
    assert t["speed_gap_hours"] == ["2026-11-24T11:00:00Z"]


def test_duplicates_the_speed_layer_missed_explain_a_higher_speed_view() -> None:
    speed = {H10: {EU: m("20.00", 2), US: m("5.00")}}
    t = totals(inputs(speed=speed, batch_duplicates={H10: 3}, speed_duplicates={H10: 2}))
    assert t["verdict"] == "explained" and t["duplicate_events"] == 1
    # without the batch's duplicate count there is no budget: unexplained
    assert totals(inputs(speed=speed))["verdict"] == "unexplained"


def test_engines_disagreeing_on_a_malformed_event_is_attributed() -> None:
    gold = {H10: {EU: m("10.00"), US: m("12.00", 2)}}
    t = totals(inputs(gold=gold, dlq={"invalid_amount": 3}, quarantine={"invalid_amount": 2}))
    assert t["verdict"] == "explained" and t["dlq_events"] == 3 and t["malformed_events"] == 2


def test_an_open_hour_is_in_flight_not_an_error() -> None:
    status = dict.fromkeys(hours_of_date(DAY), "closed") | {H10: "open"}
    t = totals(inputs(speed_status=status, gold={H10: {EU: m("15.00", 2), US: m("5.00")}}))
    assert t["verdict"] == "explained" and t["open_events"] == 1


def test_hours_cover_the_whole_day_with_per_key_detail() -> None:
    doc = to_json(
        reconcile(inputs(gold={H10: {EU: m("60.00", 2), US: m("5.00")}}, late={H10: {EU: m("50.00")}})), FX
    )
    assert doc["date"] == "2026-11-24" and len(doc["hours"]) == 24
    h10 = doc["hours"][10]
    assert h10["batch_usd"] == "71.00" and h10["speed_usd"] == "16.00"
    assert h10["explained"]["late"] == {"revenue": "50.0000", "orders": 1, "refunds": 0, "events": 1}
    assert [k["region"] for k in h10["keys"]] == ["eu-west"]
