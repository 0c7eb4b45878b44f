"""The edge of per-partition lateness (docs/specs/speed.md, "Lateness"): an idle partition's event
for an hour that the published watermark has already closed.

Partition 0 moves on past the hour's close while partition 1 stays idle, so the published
watermark (minimum over partitions that are not idle) closes the hour. Then partition 1 delivers
an event for that hour. Its own partition has seen nothing newer, so the job counts it on time,
and the sink writes the closed hour's new totals to Redis with the hour still `closed`: the speed
view keeps agreeing with gold, which counts the event too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from support import classified_over_rows

from lambda_contract.redis_layout import HOUR_CLOSED, Metrics, RedisLayout
from lambda_contract.settings import Settings
from lambda_contract.windows import HOUR_MS, format_instant, hour_id, to_epoch_ms
from speed_layer import sql
from speed_layer.view import HSet, SpeedView, Update

SETTINGS = Settings.from_env({})
HOUR = datetime(2026, 3, 9, 10, tzinfo=UTC)  # any past hour: nothing here depends on today
CLOSES = HOUR + timedelta(hours=1, seconds=SETTINGS.allowed_lateness_s)


def payload(event_id: str, at: datetime) -> bytes:
    return json.dumps(
        {
            "event_id": event_id, "event_type": "purchase", "event_time": format_instant(at),
            "order_id": "o-" + event_id, "customer_id": "c-1", "region": "eu-west",
            "category": "books", "currency": "EUR", "amount": "10.00",
        }
    ).encode()  # fmt: skip


# (partition, offset, event id, event time), in arrival order.
ARRIVALS = [
    (0, 0, "a", HOUR + timedelta(minutes=5)),
    (1, 0, "b", HOUR + timedelta(minutes=6)),
    (0, 1, "c", CLOSES + timedelta(seconds=SETTINGS.out_of_orderness_s + 60)),  # p0 passes the close
    (1, 1, "d", HOUR + timedelta(minutes=50)),  # the idle partition, for the closed hour
    (0, 2, "e", HOUR + timedelta(minutes=51)),  # the same hour on the partition that moved on
]


@pytest.fixture(scope="module")
def kinds() -> Iterator[dict[str, str]]:
    t_env = classified_over_rows(
        SETTINGS, [(payload(i, at), p, o, to_epoch_ms(at)) for p, o, i, at in ARRIVALS]
    )
    out: dict[str, str] = {}
    query = f"SELECT kpartition, et_ms, kind FROM {sql.CLASSIFIED_VIEW}"
    with t_env.sql_query(query).execute().collect() as results:
        for partition, et_ms, kind in results:
            event_id = next(i for p, _, i, at in ARRIVALS if p == partition and to_epoch_ms(at) == et_ms)
            out[event_id] = kind
    yield out


@pytest.mark.integration
def test_lateness_is_judged_by_the_events_own_partition(kinds: dict[str, str]) -> None:
    assert kinds == {
        "a": sql.KIND_VALID,
        "b": sql.KIND_VALID,
        "c": sql.KIND_VALID,
        "d": sql.KIND_VALID,  # the idle partition has seen nothing past the close
        "e": sql.KIND_LATE,  # its own partition moved past the close
    }


@pytest.mark.unit
def test_a_closed_hour_that_gains_an_event_is_rewritten_and_stays_closed() -> None:
    layout = RedisLayout("edge")
    view = SpeedView(
        layout,
        SETTINGS.allowed_lateness_s,
        SETTINGS.speed_retention_s,
        SETTINGS.out_of_orderness_s,
        partitions=2,
        idle_timeout_s=30,
    )
    hour_ms = to_epoch_ms(HOUR)

    def totals(events: int) -> Update:
        revenue = Decimal("10.00") * events
        return Update("hour", hour_ms, "eu-west", "books", "EUR", speed=Metrics(revenue, events, 0, events))

    view.apply(totals(2))
    view.apply(Update("partition", 0, max_event_ms=to_epoch_ms(ARRIVALS[0][3])))
    view.apply(Update("partition", 1, max_event_ms=to_epoch_ms(ARRIVALS[1][3])))
    view.drain(0)
    # Partition 0 moves on; partition 1 has not moved for the idle timeout, so the published
    # watermark follows partition 0 alone, past the hour's close.
    view.apply(Update("partition", 0, max_event_ms=to_epoch_ms(ARRIVALS[2][3])))
    view.drain(31_000)
    assert view.watermark_ms is not None and view.watermark_ms >= hour_ms + HOUR_MS
    view.apply(totals(3))  # the idle partition's event "d", counted on time
    written: dict[str, dict[str, str]] = {}
    for command in view.drain(32_000):
        if isinstance(command, HSet):
            written.setdefault(command.key, {}).update(command.mapping)
    assert written[layout.hour(HOUR)] == {"eu-west|books|EUR": Metrics(Decimal("30.00"), 3, 0, 3).encode()}
    assert written[layout.hours()][hour_id(HOUR)] == HOUR_CLOSED
