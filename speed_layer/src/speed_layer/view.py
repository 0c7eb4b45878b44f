"""What Redis must hold, derived from the job's aggregate changelog (pure: no I/O, no Flink).

The sink feeds every update row into `SpeedView`; the view answers with Redis commands and
derives the published watermark from the partitions' progress. All values are absolute (HSET of the running totals), so replaying the
changelog after a restart converges to the same keys. Open hours are mirrored in memory and
rewritten on every refresh, so a Redis that lost its data heals without a job restart.

The view's durable part (open hours' values, closed hours, watermark, partition progress and the
last totals metric deltas are taken from) is also kept as flat text entries for the job's
checkpointed state: `snapshot_changes()` gives the entries touched since its last call (one per
hour and key, per date and reason, plus one `meta`), so each changelog row costs one small entry,
and `restore()` rebuilds an equal view from them after a restart.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Final

from lambda_contract.redis_layout import HOUR_CLOSED, HOUR_OPEN, GroupKey, Metrics, RedisLayout
from lambda_contract.windows import HOUR_MS, format_instant, from_epoch_ms, hour_id

MAX_WATERMARK: Final = 2**63 - 1
"""Flink's end-of-input watermark: not a time, so never published or used to close hours."""

STATE_VERSION: Final = 1
"""Format of the snapshot entries; `restore` refuses any other (a checkpoint of another format)."""
META_ENTRY: Final = "meta"


@dataclass(frozen=True)
class Update:
    """One row of the updates changelog (an insert or the new value of an update)."""

    kind: str  # "hour" | "dlq" | "partition"
    bucket_ms: int  # hour start (hour), UTC day start (dlq) or the Kafka partition (partition)
    region: str = ""
    category: str = ""
    currency: str = ""
    reason: str = ""
    speed: Metrics = field(default_factory=Metrics)
    late: Metrics = field(default_factory=Metrics)
    duplicates: int = 0
    malformed: int = 0
    max_event_ms: int | None = None  # partition updates: newest valid event time seen

    @property
    def key(self) -> GroupKey:
        return GroupKey(self.region, self.category, self.currency)


@dataclass(frozen=True)
class HSet:
    key: str
    mapping: Mapping[str, str]


@dataclass(frozen=True)
class Expire:
    key: str
    seconds: int


@dataclass(frozen=True)
class HDel:
    key: str
    fields: tuple[str, ...]


Command = HSet | Expire | HDel


@dataclass
class Counts:
    """Increments since the last drain, for the layer's Prometheus counters."""

    events_in: int = 0  # every record: on time, late, duplicate or malformed
    on_time: int = 0
    duplicates: int = 0
    late: int = 0
    malformed: dict[str, int] = field(default_factory=dict)


@dataclass
class _Hour:
    speed: dict[str, str] = field(default_factory=dict)
    late: dict[str, str] = field(default_factory=dict)
    dups: dict[str, str] = field(default_factory=dict)


class SpeedView:
    """Turns absolute aggregate updates and watermarks into idempotent Redis commands."""

    def __init__(
        self,
        layout: RedisLayout,
        allowed_lateness_s: int,
        retention_s: int,
        out_of_orderness_s: int = 0,
        *,
        partitions: int = 1,
        idle_timeout_s: int = 30,
    ) -> None:
        self.layout = layout
        self.out_of_orderness_ms = out_of_orderness_s * 1000
        self.partitions = partitions
        self.idle_timeout_ms = idle_timeout_s * 1000
        self._partition_max: dict[int, int] = {}
        self._advanced: set[int] = set()  # partitions whose progress moved since the last drain
        self._advanced_at: dict[int, int] = {}  # processing time of each partition's last move
        self.lateness_ms = allowed_lateness_s * 1000
        self.retention_s = retention_s
        self.watermark_ms: int | None = None
        self._open: dict[int, _Hour] = {}
        self._closed: set[int] = set()
        self._pending: dict[tuple[str, str], str] = {}
        self._expire: dict[str, int] = {}
        self._last: dict[tuple[str, int, str], tuple[int, ...]] = {}
        # Snapshot entries changed since the last snapshot_changes(): keys of _last, and meta.
        self._dirty: set[tuple[str, int, str]] = set()
        self._meta_dirty = False
        self.counts = Counts()

    # --- inputs ----------------------------------------------------------------------------

    def seed(
        self, watermark_ms: int | None, open_hours: Mapping[int, Mapping[str, Mapping[str, str]]]
    ) -> None:
        """Start from what Redis holds: the published watermark and open hours (the sink's fallback
        when its checkpointed state is empty). Seeded totals are also the base of metric deltas."""
        if watermark_ms is not None:
            self.watermark_ms = max(self.watermark_ms or watermark_ms, watermark_ms)
        for hour_ms, parts in open_hours.items():
            data = _Hour(
                dict(parts.get("speed", {})), dict(parts.get("late", {})), dict(parts.get("dups", {}))
            )
            self._open[hour_ms] = data
            for fld in data.speed.keys() | data.late.keys() | data.dups.keys():
                key = ("hour", hour_ms, fld)
                self._last[key] = (
                    _events(data.speed.get(fld)),
                    _events(data.late.get(fld)),
                    int(data.dups.get(fld, "0")),
                )
                self._dirty.add(key)
        self._meta_dirty = True

    def apply(self, update: Update) -> None:
        if update.kind == "dlq":
            self._apply_dlq(update)
        elif update.kind == "partition":
            self._apply_partition(update)
        else:
            self._apply_hour(update)

    def _apply_partition(self, u: Update) -> None:
        """Progress of one Kafka partition: its newest valid event time."""
        p = u.bucket_ms
        if u.max_event_ms is not None and u.max_event_ms > self._partition_max.get(p, u.max_event_ms - 1):
            self._partition_max[p] = u.max_event_ms
            self._advanced.add(p)
            self._meta_dirty = True

    def progress(self, now_ms: int) -> None:
        """Publish the partitions' watermark: min over partitions that are not idle of (newest
        event time - out-of-orderness - 1 ms), the bound lateness is judged by per partition.

        A partition is idle once its progress has not moved for the idle timeout (a partition
        that never had a record counts from the first call), so an idle partition cannot stall
        the watermark; when every partition is idle the watermark stays where it is. With data
        on every partition, the minimum over all of them is a bound no matter which are idle.
        """
        for p in self._advanced:
            self._advanced_at[p] = now_ms
        self._advanced.clear()
        known = set(range(self.partitions)) | set(self._partition_max)
        for p in known:
            self._advanced_at.setdefault(p, now_ms)
        lag = self.out_of_orderness_ms + 1
        if known <= set(self._partition_max):
            self.advance(min(self._partition_max[p] for p in known) - lag)
        active = [p for p in known if now_ms - self._advanced_at[p] < self.idle_timeout_ms]
        if active and all(p in self._partition_max for p in active):
            self.advance(min(self._partition_max[p] for p in active) - lag)

    def advance(self, watermark_ms: int | None) -> None:
        """A new watermark: never moves back; closes the hours it passes."""
        if watermark_ms is None or watermark_ms >= MAX_WATERMARK or watermark_ms < 0:
            return
        if self.watermark_ms is not None and watermark_ms <= self.watermark_ms:
            return
        self.watermark_ms = watermark_ms
        self._meta_dirty = True
        for hour_ms in [h for h in self._open if self._is_closed(h)]:
            self._close(hour_ms)

    # --- outputs ---------------------------------------------------------------------------

    def drain(self, now_ms: int) -> list[Command]:
        """Commands for everything that changed since the last drain, plus the heartbeat."""
        self.progress(now_ms)
        by_key: dict[str, dict[str, str]] = {}
        for (key, fld), value in self._pending.items():
            by_key.setdefault(key, {})[fld] = value
        commands: list[Command] = [HSet(k, m) for k, m in by_key.items()]
        commands += [Expire(k, s) for k, s in self._expire.items()]
        commands.append(self._meta(now_ms))
        self._pending.clear()
        self._expire.clear()
        return commands

    def refresh(self, now_ms: int) -> list[Command]:
        """Rewrite every open hour in full (heals a Redis that lost data) and prune old hours."""
        commands: list[Command] = []
        hours: dict[str, str] = {}
        for hour_ms, data in self._open.items():
            start = from_epoch_ms(hour_ms)
            for key, mapping in (
                (self.layout.hour(start), data.speed),
                (self.layout.late(start), data.late),
                (self.layout.duplicates(start), data.dups),
            ):
                if mapping:
                    commands.append(HSet(key, dict(mapping)))
            hours[hour_id(start)] = HOUR_OPEN
        if hours:
            commands.append(HSet(self.layout.hours(), hours))
        if self.watermark_ms is not None:
            horizon = self.watermark_ms - self.retention_s * 1000
            old = sorted(h for h in self._closed if h + HOUR_MS < horizon)
            if old:
                commands.append(HDel(self.layout.hours(), tuple(hour_id(from_epoch_ms(h)) for h in old)))
                for h in old:
                    self._closed.discard(h)
                pruned = {k for k in self._last if k[0] == "hour" and k[1] in old}
                self._last = {k: v for k, v in self._last.items() if k not in pruned}
                self._dirty |= pruned
                self._meta_dirty = True
        commands.append(self._meta(now_ms))
        return commands

    def open_hours(self) -> list[int]:
        return sorted(self._open)

    # --- checkpointed state ----------------------------------------------------------------

    def snapshot(self) -> dict[str, str]:
        """Every entry of the view's durable state (what `restore` needs to rebuild it)."""
        entries = {_entry_key(k): self._entry(k) for k in self._last}
        entries[META_ENTRY] = self._meta_entry()
        return {k: v for k, v in entries.items() if v is not None}

    def snapshot_changes(self) -> dict[str, str | None]:
        """The entries changed since the last call (None: the entry is gone), to keep a stored
        snapshot equal to `snapshot()` at the cost of what changed, not of the whole view."""
        changes: dict[str, str | None] = {_entry_key(k): self._entry(k) for k in self._dirty}
        if self._meta_dirty:
            changes[META_ENTRY] = self._meta_entry()
        self._dirty.clear()
        self._meta_dirty = False
        return changes

    def restore(self, entries: Mapping[str, str]) -> None:
        """Rebuild the durable state from `snapshot()` entries, replacing what the view held.

        Not restored: Redis writes not yet drained, counts not yet taken, and when each partition
        last moved (every partition gets a fresh idle timeout, which can only hold the watermark
        where it is). The first refresh rewrites the open hours; the first drain writes the status
        of every retained closed hour again, since a `closed` the previous run had not written
        (Redis down, then the kill) would otherwise leave the hour `open` in Redis for good."""
        meta = json.loads(entries[META_ENTRY])
        if meta.get("v") != STATE_VERSION:
            raise ValueError(f"speed view state of version {meta.get('v')!r}, expected {STATE_VERSION}")
        self.watermark_ms = meta["watermark"]
        self._partition_max = {int(p): int(ms) for p, ms in meta["partitions"].items()}
        self._open = {int(h): _Hour() for h in meta["open"]}
        self._closed = {int(h) for h in meta["closed"]}
        self._last = {}
        for name, value in entries.items():
            if name == META_ENTRY:
                continue
            kind, bucket, fld = name.split(":", 2)
            key = (kind, int(bucket), fld)
            if kind == "dlq":
                self._last[key] = (int(value),)
                continue
            doc = json.loads(value)
            self._last[key] = tuple(int(n) for n in doc["n"])
            data = self._open.get(key[1])
            if data is not None:
                for part, short in (("speed", "s"), ("late", "l"), ("dups", "d")):
                    if short in doc:
                        getattr(data, part)[fld] = doc[short]
        self._advanced, self._advanced_at = set(), {}
        self._pending = {(self.layout.hours(), hour_id(from_epoch_ms(h))): HOUR_CLOSED for h in self._closed}
        self._expire = {}
        self._dirty, self._meta_dirty = set(), False
        self.counts = Counts()

    def _entry(self, key: tuple[str, int, str]) -> str | None:
        last = self._last.get(key)
        if last is None:
            return None
        if key[0] == "dlq":
            return str(last[0])
        doc: dict[str, object] = {"n": list(last)}
        data = self._open.get(key[1])
        if data is not None:
            for mapping, short in ((data.speed, "s"), (data.late, "l"), (data.dups, "d")):
                if key[2] in mapping:
                    doc[short] = mapping[key[2]]
        return json.dumps(doc, separators=(",", ":"))

    def _meta_entry(self) -> str:
        return json.dumps(
            {
                "v": STATE_VERSION,
                "watermark": self.watermark_ms,
                "partitions": {str(p): ms for p, ms in sorted(self._partition_max.items())},
                "open": sorted(self._open),
                "closed": sorted(self._closed),
            },
            separators=(",", ":"),
        )

    # --- internals -------------------------------------------------------------------------

    def _is_closed(self, hour_ms: int) -> bool:
        if hour_ms in self._closed:
            return True
        wm = self.watermark_ms
        return wm is not None and wm >= hour_ms + HOUR_MS + self.lateness_ms

    def _apply_hour(self, u: Update) -> None:
        start = from_epoch_ms(u.bucket_ms)
        fld = u.key.field()
        self._count(("hour", u.bucket_ms, fld), (u.speed.events, u.late.events, u.duplicates))
        closed = self._is_closed(u.bucket_ms)
        if not closed and u.bucket_ms not in self._open:
            self._meta_dirty = True
        data = None if closed else self._open.setdefault(u.bucket_ms, _Hour())
        parts = (
            (self.layout.hour(start), u.speed.events > 0, u.speed.encode(), "speed"),
            (self.layout.late(start), u.late.events > 0, u.late.encode(), "late"),
            (self.layout.duplicates(start), u.duplicates > 0, str(u.duplicates), "dups"),
        )
        for key, present, value, part in parts:
            if not present:
                continue
            self._pending[(key, fld)] = value
            if data is not None:
                getattr(data, part)[fld] = value
            else:
                self._expire[key] = self.retention_s
        status = HOUR_CLOSED if closed else HOUR_OPEN
        self._pending[(self.layout.hours(), hour_id(start))] = status

    def _apply_dlq(self, u: Update) -> None:
        self._count(("dlq", u.bucket_ms, u.reason), (u.malformed,))
        day: date = from_epoch_ms(u.bucket_ms).date()
        key = self.layout.malformed(day)
        self._pending[(key, u.reason)] = str(u.malformed)
        self._expire[key] = self.retention_s + 86_400

    def _close(self, hour_ms: int) -> None:
        start = from_epoch_ms(hour_ms)
        data = self._open.pop(hour_ms)
        self._closed.add(hour_ms)
        # The hour's entries lose their open values (the meta entry is marked by advance).
        self._dirty.update(
            ("hour", hour_ms, f) for f in data.speed.keys() | data.late.keys() | data.dups.keys()
        )
        self._pending[(self.layout.hours(), hour_id(start))] = HOUR_CLOSED
        for key, mapping in (
            (self.layout.hour(start), data.speed),
            (self.layout.late(start), data.late),
            (self.layout.duplicates(start), data.dups),
        ):
            for fld, value in mapping.items():
                # Final values again: a Redis that lost them while the hour was open gets them back.
                self._pending.setdefault((key, fld), value)
            self._expire[key] = self.retention_s

    def _count(self, key: tuple[str, int, str], values: tuple[int, ...]) -> None:
        before = self._last.get(key, (0,) * len(values))
        self._last[key] = values
        self._dirty.add(key)  # every total kept here is a state entry
        deltas = [max(0, a - b) for a, b in zip(values, before, strict=True)]
        if key[0] == "dlq":
            self.counts.malformed[key[2]] = self.counts.malformed.get(key[2], 0) + deltas[0]
            self.counts.events_in += deltas[0]
        else:
            self.counts.events_in += sum(deltas)
            self.counts.on_time += deltas[0]
            self.counts.late += deltas[1]
            self.counts.duplicates += deltas[2]

    def _meta(self, now_ms: int) -> HSet:
        meta = {"updated_ms": str(now_ms)}
        if self.watermark_ms is not None:
            meta["watermark_ms"] = str(self.watermark_ms)
            meta["watermark"] = format_instant(from_epoch_ms(self.watermark_ms))
        return HSet(self.layout.meta(), meta)

    def take_counts(self) -> Counts:
        counts, self.counts = self.counts, Counts()
        return counts


def _entry_key(key: tuple[str, int, str]) -> str:
    """`hour:{hour start ms}:{field}` or `dlq:{day start ms}:{reason}` (the field comes last: it
    may hold anything but is split off by position)."""
    return f"{key[0]}:{key[1]}:{key[2]}"


def _events(value: str | None) -> int:
    return Metrics.decode(value).events if value else 0


def metrics_of(revenue: Decimal, orders: int, refunds: int, events: int) -> Metrics:
    return Metrics(revenue, int(orders), int(refunds), int(events))
