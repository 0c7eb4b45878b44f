"""SpeedView: absolute, idempotent Redis commands from the aggregate changelog (no Redis needed)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from lambda_contract.redis_layout import HOUR_CLOSED, HOUR_OPEN, Metrics, RedisLayout
from lambda_contract.windows import HOUR_MS, to_epoch_ms
from speed_layer.view import (
    EPOCH_FIELD,
    MAX_WATERMARK,
    STATE_VERSION,
    Expire,
    HDel,
    HSet,
    SpeedView,
    Update,
)

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


class FakeRedis:
    """Hashes and expiry instants as the view's commands leave them (to compare two histories)."""

    def __init__(self) -> None:
        self.hashes: dict[str, dict[str, str]] = {}
        self.expires_ms: dict[str, int] = {}

    def run(self, commands: list, now_ms: int) -> FakeRedis:  # type: ignore[type-arg]
        for c in commands:
            if isinstance(c, HSet):
                self.hashes.setdefault(c.key, {}).update(c.mapping)
            elif isinstance(c, Expire) and c.key in self.hashes:
                self.expires_ms[c.key] = now_ms + c.seconds * 1000
            elif isinstance(c, HDel):
                for f in c.fields:
                    self.hashes.get(c.key, {}).pop(f, None)
        return self

    def view(self) -> dict[str, dict[str, str]]:
        """Everything but the sink's own bookkeeping (heartbeat, epoch)."""
        own = ("updated_ms", EPOCH_FIELD)
        meta = {k: v for k, v in self.hashes.get(L.meta(), {}).items() if k not in own}
        return {k: v for k, v in self.hashes.items() if k != L.meta()} | {L.meta(): meta}


def busy_view(redis: FakeRedis | None = None) -> SpeedView:
    """A view with a closed hour (late and duplicate counters after closing), an open hour, a DLQ
    counter and the progress of two partitions. `redis` gets what its drains wrote."""
    redis = redis or FakeRedis()
    vw = SpeedView(L, LATENESS_S, retention_s=7200, out_of_orderness_s=30, partitions=2, idle_timeout_s=10)
    vw.apply(hour_update(3, "4.5", dups=1))
    vw.apply(Update("partition", 0, max_event_ms=H13_MS + 2 * HOUR_MS))
    vw.apply(Update("partition", 1, max_event_ms=H13_MS + HOUR_MS + 10 * 60_000))
    redis.run(vw.drain(now_ms=1_000), 1_000)  # the watermark closes 13:00
    vw.apply(hour_update(3, "4.5", late=2, dups=4))  # late events for the closed hour
    vw.apply(
        Update(
            "hour", H13_MS + HOUR_MS, "us-east", "toys", "USD",
            speed=Metrics(Decimal("-2.5"), 1, 1, 2), late=Metrics(), duplicates=2,
        )
    )  # fmt: skip
    vw.apply(Update("dlq", to_epoch_ms(datetime(2026, 11, 20, tzinfo=UTC)), reason="not_json", malformed=3))
    redis.run(vw.drain(now_ms=1_100), 1_100)
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


def test_a_restored_view_rewrites_the_whole_view() -> None:
    copy = restored(busy_view())
    commands = copy.rewrite(5_000, epoch="e1")
    assert commands[0] == HSet(L.meta(), {EPOCH_FIELD: "e1"})  # first: a flush after it removes it
    written = hsets(commands)
    h14 = datetime(2026, 11, 20, 14, tzinfo=UTC)
    assert written[L.hour(h14)] == {"us-east|toys|USD": "-2.5000|1|1|2"}
    assert written[L.duplicates(h14)] == {"us-east|toys|USD": "2"}
    # The closed hour comes back with its values, its late counters and its status.
    assert written[L.hour(H13)] == {"eu-west|books|EUR": "4.5000|3|0|3"}
    assert written[L.late(H13)] == {"eu-west|books|EUR": "2.0000|2|0|2"}
    assert written[L.duplicates(H13)] == {"eu-west|books|EUR": "4"}
    assert written[L.hours()] == {"2026-11-20T13": HOUR_CLOSED, "2026-11-20T14": HOUR_OPEN}
    assert written[L.malformed(H13.date())] == {"not_json": "3"}
    assert written[L.meta()]["watermark_ms"] == str(H13_MS + HOUR_MS + 10 * 60_000 - 30_000 - 1)
    # Drained at 1,100 ms with 7,200 s of retention: about 7,196 s are left at 5,000 ms.
    assert Expire(L.late(H13), 7197) in commands and Expire(L.hour(H13), 7197) in commands
    assert Expire(L.malformed(H13.date()), 7200 + 86_400 - 3) in commands
    assert not any(isinstance(c, Expire) and "2026-11-20T14" in c.key for c in commands)


def test_a_rewrite_into_an_empty_redis_gives_what_every_write_so_far_gave() -> None:
    """The history of drains and refreshes a running sink made, against one rewrite after a flush
    at the same moment: the same hashes, and closed keys expire no later than they would have."""
    history = FakeRedis()
    vw = busy_view(history)
    vw.apply(
        Update("hour", H13_MS + 2 * HOUR_MS, "eu-west", "books", "EUR", speed=Metrics(Decimal("1"), 1, 0, 1))
    )
    vw.apply(Update("partition", 0, max_event_ms=H13_MS + 3 * HOUR_MS))
    vw.apply(Update("partition", 1, max_event_ms=H13_MS + 3 * HOUR_MS))
    history.run(vw.drain(2_000) + vw.refresh(2_000), 2_000)  # closes 14:00, opens 15:00
    vw.apply(hour_update(3, "4.5", late=3, dups=5))  # late again for 13:00
    history.run(vw.drain(3_000), 3_000)
    rebuilt = FakeRedis().run(vw.rewrite(3_500, "e1"), 3_500)
    assert rebuilt.view() == history.view()
    assert rebuilt.expires_ms.keys() == history.expires_ms.keys()
    for key, expires_ms in rebuilt.expires_ms.items():
        assert 0 <= expires_ms - history.expires_ms[key] < 1000, key  # whole seconds, rounded up
    assert vw.closed_hours() == [H13_MS, H13_MS + HOUR_MS] and vw.open_hours() == [H13_MS + 2 * HOUR_MS]


def test_closed_hours_keep_their_expiry_across_a_rewrite_and_leave_with_it() -> None:
    vw = view()
    vw.apply(hour_update(1, late=1))
    vw.advance(H13_MS + HOUR_MS + LATENESS_S * 1000)
    vw.drain(now_ms=10_000)  # the hour closes: its keys expire at 10,000 ms + 7,200 s
    assert Expire(L.hour(H13), 3600) in vw.rewrite(10_000 + 3_600_000, "e")
    assert Expire(L.hour(H13), 1) in vw.rewrite(10_000 + 7_200_000 - 1, "e")
    commands = vw.refresh(10_000 + 7_200_000)  # Redis expired them now: the view forgets them too
    assert HDel(L.hours(), ("2026-11-20T13",)) in commands
    assert vw.closed_hours() == [] and L.hour(H13) not in hsets(vw.rewrite(10_000 + 7_200_000, "e"))


def test_malformed_counters_leave_the_view_when_their_key_expires() -> None:
    vw = view()
    day = to_epoch_ms(datetime(2026, 11, 20, tzinfo=UTC))
    vw.apply(Update("dlq", day, reason="not_json", malformed=2))
    vw.drain(now_ms=0)
    vw.snapshot_changes()
    vw.refresh((7200 + 86_400) * 1000 - 1)
    assert L.malformed(H13.date()) in hsets(vw.rewrite((7200 + 86_400) * 1000 - 1, "e"))
    vw.refresh((7200 + 86_400) * 1000)
    assert vw.snapshot_changes()[f"dlq:{day}:not_json"] is None
    assert L.malformed(H13.date()) not in hsets(vw.rewrite((7200 + 86_400) * 1000, "e"))


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
    vw.advance(H13_MS + HOUR_MS + LATENESS_S * 1000)  # closes the hour: its entry keeps its values
    assert set(sync()) == {"meta"}
    vw.drain(2)  # the closed hour's expiry instant is part of meta
    assert set(sync()) == {"meta"}
    vw.advance(H13_MS + 10 * HOUR_MS)
    sync()
    vw.refresh(3)  # prunes the old closed hour: its entry is removed
    assert sync()[f"hour:{H13_MS}:eu-west|books|EUR"] is None
    assert set(stored) == {"meta"}


@pytest.mark.parametrize("version", [1, 99])
def test_restore_refuses_another_state_version(version: int) -> None:
    vw = view()
    snapshot = view().snapshot()
    snapshot["meta"] = snapshot["meta"].replace(f'"v":{STATE_VERSION}', f'"v":{version}')
    with pytest.raises(ValueError, match=f"version {version}"):
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
