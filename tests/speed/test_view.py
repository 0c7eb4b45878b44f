"""SpeedView: absolute, idempotent Redis commands from the aggregate changelog (no Redis needed)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from lambda_contract.redis_layout import HOUR_CLOSED, HOUR_OPEN, Metrics, RedisLayout
from lambda_contract.windows import HOUR_MS, to_epoch_ms
from speed_layer.view import MAX_WATERMARK, Expire, HDel, HSet, SpeedView, Update

pytestmark = pytest.mark.unit

L = RedisLayout("t")
H13 = datetime(2026, 11, 20, 13, tzinfo=UTC)
H13_MS = to_epoch_ms(H13)
LATENESS_S = 300


def view() -> SpeedView:
    return SpeedView(L, LATENESS_S, retention_s=7200, out_of_orderness_s=30)


def watermark(vw: SpeedView) -> int | None:
    """The view's watermark, read through a call: an `assert vw.watermark_ms is None` would let
    mypy keep that narrowing across the next drain() and call the asserts after it unreachable."""
    return vw.watermark_ms


def hour_update(events: int, revenue: str = "1.5", late: int = 0, dups: int = 0) -> Update:
    return Update(
        "hour", H13_MS, "eu-west", "books", "EUR",
        speed=Metrics(Decimal(revenue), events, 0, events),
        late=Metrics(Decimal("2"), late, 0, late),
        duplicates=dups,
    )  # fmt: skip


def hsets(commands: list) -> dict[str, dict[str, str]]:  # type: ignore[type-arg]
    out: dict[str, dict[str, str]] = {}
    for c in commands:
        if isinstance(c, HSet):
            out.setdefault(c.key, {}).update(c.mapping)
    return out


def test_writes_absolute_values_and_the_newest_wins() -> None:
    vw = view()
    vw.apply(hour_update(1, "1.5"))
    vw.apply(hour_update(2, "3.0000"))
    written = hsets(vw.drain(now_ms=1))
    assert written[L.hour(H13)] == {"eu-west|books|EUR": "3.0000|2|0|2"}
    assert written[L.hours()] == {"2026-11-20T13": HOUR_OPEN}
    assert written[L.meta()] == {"updated_ms": "1"}


def test_replaying_the_same_updates_gives_the_same_commands() -> None:
    a, b = view(), view()
    for vw in (a, b, b):
        vw.apply(hour_update(3, "4.5", late=1, dups=2))
    assert hsets(a.drain(5)) == hsets(b.drain(5))


def test_late_and_duplicate_counters_only_when_nonzero() -> None:
    vw = view()
    vw.apply(hour_update(1))
    keys = hsets(vw.drain(1))
    assert L.late(H13) not in keys and L.duplicates(H13) not in keys
    vw.apply(hour_update(1, late=1, dups=4))
    keys = hsets(vw.drain(2))
    assert keys[L.late(H13)] == {"eu-west|books|EUR": "2.0000|1|0|1"}
    assert keys[L.duplicates(H13)] == {"eu-west|books|EUR": "4"}


def test_watermark_closes_hours_and_expires_their_keys() -> None:
    vw = view()
    vw.apply(hour_update(1))
    vw.drain(1)
    vw.advance(H13_MS + HOUR_MS + LATENESS_S * 1000 - 1)
    assert vw.open_hours() == [H13_MS]
    vw.advance(H13_MS + HOUR_MS + LATENESS_S * 1000)
    assert vw.open_hours() == []
    commands = vw.drain(2)
    assert hsets(commands)[L.hours()] == {"2026-11-20T13": HOUR_CLOSED}
    assert Expire(L.hour(H13), 7200) in commands
    assert hsets(commands)[L.meta()]["watermark"] == "2026-11-20T14:05:00.000Z"


def test_watermark_never_moves_back_and_ignores_end_of_input() -> None:
    vw = view()
    vw.advance(1000)
    vw.advance(500)
    vw.advance(MAX_WATERMARK)
    assert vw.watermark_ms == 1000


def test_partition_progress_publishes_the_minimum_over_partitions() -> None:
    vw = SpeedView(L, LATENESS_S, retention_s=7200, out_of_orderness_s=30, partitions=2, idle_timeout_s=10)
    vw.apply(Update("partition", 0, max_event_ms=100_000))
    vw.drain(now_ms=0)
    assert watermark(vw) is None  # partition 1 has not been heard from and is not idle yet
    vw.apply(Update("partition", 1, max_event_ms=50_000))
    vw.drain(now_ms=1_000)
    assert vw.watermark_ms == 50_000 - 30_000 - 1
    vw.apply(Update("partition", 1, max_event_ms=200_000))
    vw.drain(now_ms=2_000)
    assert vw.watermark_ms == 100_000 - 30_000 - 1
    vw.apply(Update("partition", 1, max_event_ms=150_000))  # progress never moves back
    vw.drain(now_ms=3_000)
    assert vw.watermark_ms == 100_000 - 30_000 - 1


def test_an_idle_partition_stops_holding_the_watermark_back() -> None:
    vw = SpeedView(L, LATENESS_S, retention_s=7200, out_of_orderness_s=30, partitions=3, idle_timeout_s=10)
    vw.apply(Update("partition", 0, max_event_ms=100_000))
    vw.apply(Update("partition", 1, max_event_ms=400_000))
    vw.drain(now_ms=0)
    assert watermark(vw) is None  # partition 2 never had a record, but is not idle yet
    vw.apply(Update("partition", 1, max_event_ms=500_000))
    vw.drain(now_ms=9_999)
    assert watermark(vw) is None
    vw.apply(Update("partition", 1, max_event_ms=600_000))
    vw.drain(now_ms=10_000)  # partitions 0 and 2 are idle now: partition 1 alone decides
    assert vw.watermark_ms == 600_000 - 30_000 - 1
    vw.drain(now_ms=30_000)  # everything idle: the watermark stays
    assert vw.watermark_ms == 600_000 - 30_000 - 1
    vw.apply(Update("partition", 0, max_event_ms=100_500))  # partition 0 wakes up behind it
    vw.drain(now_ms=31_000)
    assert vw.watermark_ms == 600_000 - 30_000 - 1


def test_refresh_rewrites_open_hours_for_a_redis_that_lost_them() -> None:
    vw = view()
    vw.apply(hour_update(2, "3"))
    vw.drain(1)
    written = hsets(vw.refresh(2))
    assert written[L.hour(H13)] == {"eu-west|books|EUR": "3.0000|2|0|2"}
    assert written[L.hours()] == {"2026-11-20T13": HOUR_OPEN}


def test_updates_for_a_closed_hour_are_written_with_expiry() -> None:
    vw = view()
    vw.advance(H13_MS + 2 * HOUR_MS)
    vw.apply(hour_update(1, late=3))
    commands = vw.drain(1)
    assert hsets(commands)[L.hours()] == {"2026-11-20T13": HOUR_CLOSED}
    assert Expire(L.late(H13), 7200) in commands
    assert vw.open_hours() == []


def test_dlq_counts_per_date_and_reason() -> None:
    vw = view()
    vw.apply(Update("dlq", to_epoch_ms(datetime(2026, 11, 20, tzinfo=UTC)), reason="not_json", malformed=3))
    commands = vw.drain(1)
    assert hsets(commands)[L.malformed(H13.date())] == {"not_json": "3"}
    assert vw.take_counts().malformed == {"not_json": 3}


def test_seed_restores_open_hours_and_watermark() -> None:
    vw = view()
    vw.seed(H13_MS, {H13_MS: {"speed": {"a|b|USD": "1.0000|1|0|1"}}})
    assert vw.watermark_ms == H13_MS
    assert hsets(vw.refresh(1))[L.hour(H13)] == {"a|b|USD": "1.0000|1|0|1"}


def test_old_closed_hours_are_pruned_from_the_hours_hash() -> None:
    vw = view()
    vw.apply(hour_update(1))
    vw.advance(H13_MS + 10 * HOUR_MS)
    vw.drain(1)
    commands = vw.refresh(2)
    assert HDel(L.hours(), ("2026-11-20T13",)) in commands


def test_counts_are_increments_of_the_totals() -> None:
    vw = view()
    vw.apply(hour_update(2, late=1, dups=1))
    vw.apply(hour_update(5, late=1, dups=3))
    counts = vw.take_counts()
    assert (counts.events_in, counts.on_time, counts.late, counts.duplicates) == (5 + 1 + 3, 5, 1, 3)


# --- checkpointed state: snapshot / snapshot_changes / restore --------------------------------


def busy_view() -> SpeedView:
    """A view with a closed hour (late and duplicate counters after closing), an open hour, a DLQ
    counter and the progress of two partitions."""
    vw = SpeedView(L, LATENESS_S, retention_s=7200, out_of_orderness_s=30, partitions=2, idle_timeout_s=10)
    vw.apply(hour_update(3, "4.5", dups=1))
    vw.apply(Update("partition", 0, max_event_ms=H13_MS + 2 * HOUR_MS))
    vw.apply(Update("partition", 1, max_event_ms=H13_MS + HOUR_MS + 10 * 60_000))
    vw.drain(now_ms=1_000)  # the watermark closes 13:00
    vw.apply(hour_update(3, "4.5", late=2, dups=4))  # late events for the closed hour
    vw.apply(
        Update(
            "hour", H13_MS + HOUR_MS, "us-east", "toys", "USD",
            speed=Metrics(Decimal("-2.5"), 1, 1, 2), late=Metrics(), duplicates=2,
        )
    )  # fmt: skip
    vw.apply(Update("dlq", to_epoch_ms(datetime(2026, 11, 20, tzinfo=UTC)), reason="not_json", malformed=3))
    vw.drain(now_ms=1_100)
    return vw


def restored(vw: SpeedView) -> SpeedView:
    copy = SpeedView(L, LATENESS_S, retention_s=7200, out_of_orderness_s=30, partitions=2, idle_timeout_s=10)
    copy.restore(vw.snapshot())
    return copy


def test_restore_rebuilds_an_equal_view() -> None:
    vw = busy_view()
    assert vw.open_hours() == [H13_MS + HOUR_MS]
    copy = restored(vw)
    assert copy.snapshot() == vw.snapshot()
    assert copy.watermark_ms == vw.watermark_ms
    assert copy.open_hours() == vw.open_hours()
    assert hsets(copy.refresh(5_000)) == hsets(vw.refresh(5_000))


def test_a_restored_view_writes_its_open_hours_status_and_watermark_on_the_first_tick() -> None:
    copy = restored(busy_view())
    written = hsets(copy.drain(5_000) + copy.refresh(5_000))
    h14 = datetime(2026, 11, 20, 14, tzinfo=UTC)
    assert written[L.hour(h14)] == {"us-east|toys|USD": "-2.5000|1|1|2"}
    assert written[L.duplicates(h14)] == {"us-east|toys|USD": "2"}
    # The closed hour's status is written again (the killed run may not have written it); its
    # values are not part of the refresh.
    assert written[L.hours()] == {"2026-11-20T13": HOUR_CLOSED, "2026-11-20T14": HOUR_OPEN}
    assert written[L.meta()]["watermark_ms"] == str(H13_MS + HOUR_MS + 10 * 60_000 - 30_000 - 1)
    assert L.hour(H13) not in written


def test_a_restored_view_continues_the_metric_deltas_and_the_watermark() -> None:
    vw, copy = busy_view(), restored(busy_view())
    vw.take_counts()
    for v in (vw, copy):
        v.apply(hour_update(5, "6", late=2, dups=4))  # +2 on-time events in the closed hour's key
        v.apply(
            Update("dlq", to_epoch_ms(datetime(2026, 11, 20, tzinfo=UTC)), reason="not_json", malformed=4)
        )
    assert copy.take_counts() == vw.take_counts()
    # Progress below what the checkpoint held moves nothing; the partitions are known.
    copy.apply(Update("partition", 0, max_event_ms=H13_MS))
    before = copy.watermark_ms
    copy.drain(6_000)
    assert copy.watermark_ms == before
    copy.apply(Update("partition", 1, max_event_ms=H13_MS + 3 * HOUR_MS))
    copy.drain(7_000)
    assert copy.watermark_ms == H13_MS + 2 * HOUR_MS - 30_000 - 1


def test_snapshot_changes_keep_a_stored_copy_equal_to_the_snapshot() -> None:
    vw = SpeedView(L, LATENESS_S, retention_s=7200, out_of_orderness_s=30)
    stored: dict[str, str] = {}

    def sync() -> dict[str, str | None]:
        changes = vw.snapshot_changes()
        for name, value in changes.items():
            if value is None:
                stored.pop(name, None)
            else:
                stored[name] = value
        assert stored == vw.snapshot()
        return changes

    vw.apply(hour_update(1))
    assert set(sync()) == {"hour:" + str(H13_MS) + ":eu-west|books|EUR", "meta"}
    vw.drain(1)
    assert sync() == {}  # a tick that changed nothing costs nothing
    vw.apply(hour_update(2, dups=1))
    assert set(sync()) == {f"hour:{H13_MS}:eu-west|books|EUR"}  # one entry per changelog row
    vw.advance(H13_MS + HOUR_MS + LATENESS_S * 1000)  # closes the hour: its entry drops the values
    assert set(sync()) == {f"hour:{H13_MS}:eu-west|books|EUR", "meta"}
    vw.advance(H13_MS + 10 * HOUR_MS)
    sync()
    vw.refresh(2)  # prunes the old closed hour: its entry is removed
    assert sync()[f"hour:{H13_MS}:eu-west|books|EUR"] is None
    assert set(stored) == {"meta"}


def test_restore_refuses_another_state_version() -> None:
    vw = view()
    snapshot = view().snapshot()
    snapshot["meta"] = snapshot["meta"].replace('"v":1', '"v":99')
    with pytest.raises(ValueError, match="version 99"):
        vw.restore(snapshot)


def test_seeded_hours_are_part_of_the_snapshot_and_the_base_of_deltas() -> None:
    vw = view()
    vw.seed(
        H13_MS, {H13_MS: {"speed": {"eu-west|books|EUR": "1.0000|1|0|1"}, "dups": {"eu-west|books|EUR": "2"}}}
    )
    copy = view()
    copy.restore({k: v for k, v in vw.snapshot_changes().items() if v is not None})
    assert hsets(copy.refresh(1))[L.hour(H13)] == {"eu-west|books|EUR": "1.0000|1|0|1"}
    copy.apply(hour_update(3, dups=2))
    counts = copy.take_counts()
    assert (counts.on_time, counts.duplicates) == (2, 0)
