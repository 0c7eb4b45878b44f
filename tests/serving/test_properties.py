"""Properties of merge + render over random views (pure, hypothesis)."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from serving_support import utc

from lambda_contract.redis_layout import GroupKey, Metrics
from serving_layer.fx import FxTable
from serving_layer.merge import BatchView, SpeedSnapshot, merge
from serving_layer.params import HourlyQuery
from serving_layer.rows import render

pytestmark = pytest.mark.unit

START = utc("2026-11-20T00:00:00Z")
HOURS = [START + timedelta(hours=i) for i in range(12)]
NOW = utc("2026-11-20T10:30:00Z")
LATENESS = timedelta(minutes=5)
FX = FxTable.from_rows(
    [(date(2026, 11, 20), "EUR", Decimal("1.1")), (date(2026, 11, 20), "JPY", Decimal("0.0065"))]
)

keys = st.builds(
    GroupKey,
    st.sampled_from(["eu-west", "us-east", "ap-south"]),
    st.sampled_from(["books", "toys"]),
    st.sampled_from(["USD", "EUR", "JPY"]),
)


def metrics(cents_only: bool) -> st.SearchStrategy[Metrics]:
    scale = 2 if cents_only else 4
    return st.builds(
        lambda r, o, f: Metrics(Decimal(r).scaleb(-scale).quantize(Decimal("0.0001")), o, f, o + f),
        st.integers(-(10**9), 10**12),
        st.integers(0, 1000),
        st.integers(0, 100),
    )


def hour_data(cents_only: bool, usd_only: bool = False) -> st.SearchStrategy[dict[GroupKey, Metrics]]:
    k = keys.map(lambda g: GroupKey(g.region, g.category, "USD")) if usd_only else keys
    return st.dictionaries(k, metrics(cents_only), max_size=6)


@st.composite
def views(
    draw: st.DrawFn, cents_only: bool = False, usd_only: bool = False
) -> tuple[BatchView, SpeedSnapshot]:
    data = st.dictionaries(st.sampled_from(HOURS), hour_data(cents_only, usd_only), max_size=12)
    computed = draw(st.frozensets(st.sampled_from(HOURS)))
    batch = BatchView(computed=computed, hours=draw(data), token=1)
    held_hours = draw(st.lists(st.sampled_from(HOURS), unique=True))
    watermark = draw(st.none() | st.sampled_from(HOURS).map(lambda h: h + timedelta(minutes=7)))
    speed = SpeedSnapshot(watermark=watermark, held=dict.fromkeys(held_hours, "open"), hours=draw(data))
    return batch, speed


def query(start: datetime, end: datetime, group_by: tuple[str, ...] = ()) -> HourlyQuery:
    return HourlyQuery(start=start, end=end, group_by=group_by)


@settings(max_examples=150, deadline=None)
@given(views(cents_only=True, usd_only=True), st.integers(1, 11))
def test_a_range_is_the_concatenation_of_its_parts_and_its_total_the_sum_of_its_hours(
    v: tuple[BatchView, SpeedSnapshot], cut: int
) -> None:
    batch, speed = v
    merged = merge(HOURS, batch, speed, NOW, LATENESS)
    whole = render(merged, query(HOURS[0], HOURS[-1] + timedelta(hours=1)), FX)
    left = render(merged[:cut], query(HOURS[0], HOURS[cut]), FX)
    right = render(merged[cut:], query(HOURS[cut], HOURS[-1] + timedelta(hours=1)), FX)
    assert whole == left + right
    assert [r["hour"] for r in whole] == [f"2026-11-20T{h:02d}:00:00Z" for h in range(12)]
    # The range's total computed independently from the merged views equals the sum of its hour rows.
    expected = Metrics()
    for m in merged:
        for value in m.groups.values():
            expected = expected + value
    assert sum(Decimal(r["revenue"]) for r in whole) == expected.revenue
    assert sum(r["orders"] for r in whole) == expected.orders
    assert sum(r["refunds"] for r in whole) == expected.refunds
    assert sum(r["events"] for r in whole) == expected.events


@settings(max_examples=150, deadline=None)
@given(views(cents_only=True, usd_only=True))
def test_the_sum_over_regions_equals_the_ungrouped_total_per_hour(v: tuple[BatchView, SpeedSnapshot]) -> None:
    batch, speed = v
    merged = merge(HOURS, batch, speed, NOW, LATENESS)
    end = HOURS[-1] + timedelta(hours=1)
    flat = {r["hour"]: r for r in render(merged, query(HOURS[0], end), FX)}
    grouped: dict[str, list[dict[str, object]]] = defaultdict(list)
    for r in render(merged, query(HOURS[0], end, ("region",)), FX):
        grouped[r["hour"]].append(r)
    assert grouped.keys() == flat.keys()
    for hour, rows in grouped.items():
        for field in ("orders", "refunds", "events"):
            assert sum(r[field] for r in rows) == flat[hour][field]  # type: ignore[misc]
        assert sum(Decimal(str(r["revenue"])) for r in rows) == Decimal(flat[hour]["revenue"])
        assert {(r["source"], r["status"]) for r in rows} == {(flat[hour]["source"], flat[hour]["status"])}


@settings(max_examples=100, deadline=None)
@given(views())
def test_native_amounts_by_currency_add_up_to_the_merged_views_exactly(
    v: tuple[BatchView, SpeedSnapshot],
) -> None:
    batch, speed = v
    merged = merge(HOURS, batch, speed, NOW, LATENESS)
    rows = render(merged, query(HOURS[0], HOURS[-1] + timedelta(hours=1), ("region", "currency")), FX)
    got: dict[str, Decimal] = defaultdict(Decimal)
    for r in rows:
        if r["currency"] is not None:
            got[r["currency"]] += Decimal(r["revenue_native"])
    want: dict[str, Decimal] = defaultdict(Decimal)
    for m in merged:
        for key, value in m.groups.items():
            want[key.currency] += value.revenue
    assert {c: x for c, x in got.items() if x} == {c: x for c, x in want.items() if x}


@settings(max_examples=100, deadline=None)
@given(views())
def test_every_hour_appears_once_and_batch_wins_where_computed(v: tuple[BatchView, SpeedSnapshot]) -> None:
    batch, speed = v
    merged = merge(HOURS, batch, speed, NOW, LATENESS)
    assert [m.hour for m in merged] == HOURS
    for m in merged:
        if m.hour in batch.computed:
            assert (m.source.value, m.status.value) == ("batch", "final")
            assert m.groups == batch.hours.get(m.hour, {})
        else:
            assert m.source.value in ("speed", "none")
            assert m.source.value == "none" or m.groups == speed.hours.get(m.hour, {})
