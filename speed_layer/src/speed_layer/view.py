"""What Redis must hold, derived from the job's aggregate changelog (pure: no I/O, no Flink).

The sink feeds every update row into `SpeedView`; the view answers with Redis commands and
derives the published watermark from the partitions' progress. All values are absolute (HSET of
the running totals), so replaying the changelog after a restart converges to the same keys.

Redis is a cache of this view, never its only copy: the view keeps every hour within retention,
open or closed, with its speed, late and duplicate values, the malformed counters per date and
reason, and the watermark. `rewrite()` gives the commands that write all of it back (closed hours
and malformed counters with what is left of their expiry), for a Redis that lost its data;
`refresh()` rewrites the open hours on a timer and prunes what left retention.

The view is also kept as flat text entries for the job's checkpointed state: `snapshot_changes()`
gives the entries touched since its last call (one per hour and key, per date and reason, plus one
`meta`), so each changelog row costs one small entry, and `restore()` rebuilds an equal view from
them after a restart.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

from lambda_contract.redis_layout import HOUR_CLOSED, HOUR_OPEN, GroupKey, Metrics, RedisLayout
from lambda_contract.windows import HOUR_MS, format_instant, from_epoch_ms, hour_id

MAX_WATERMARK: Final = 2**63 - 1
"""Flink's end-of-input watermark: not a time, so never published or used to close hours."""

STATE_VERSION: Final = 2
"""Format of the snapshot entries; `restore` refuses any other (a checkpoint of another format).
Version 2 keeps closed hours' values and the expiry deadlines; version 1 kept open hours' only."""
META_ENTRY: Final = "meta"

EPOCH_FIELD: Final = "view_epoch"
"""Field of the meta hash written first by `rewrite()`: while it holds the value the sink wrote
last, Redis has lost nothing since (a flush or a restart without persistence removes it)."""

DAY_S: Final = 86_400
PARTS: Final = ("speed", "late", "dups")
_SHORT: Final = {"speed": "s", "late": "l", "dups": "d"}


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
    """One retained hour: its three hashes as Redis should hold them, and once closed, the
    wall-clock instant its keys expire (None until the first EXPIRE is sent)."""

    speed: dict[str, str] = field(default_factory=dict)
    late: dict[str, str] = field(default_factory=dict)
    dups: dict[str, str] = field(default_factory=dict)
    closed: bool = False
    expires_ms: int | None = None

    def part(self, name: str) -> dict[str, str]:
        return {"speed": self.speed, "late": self.late, "dups": self.dups}[name]

    def fields(self) -> set[str]:
        return self.speed.keys() | self.late.keys() | self.dups.keys()

    def totals(self, fld: str) -> tuple[int, int, int]:
        """Event counts of one key (speed, late, duplicates): the base of metric deltas."""
        return _events(self.speed.get(fld)), _events(self.late.get(fld)), int(self.dups.get(fld, "0"))


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
        self.dlq_retention_s = retention_s + DAY_S  # a date's counters outlive its last hour
        self.watermark_ms: int | None = None
        self._hours: dict[int, _Hour] = {}
        self._dlq: dict[int, dict[str, int]] = {}  # UTC day start -> reason -> count
        self._dlq_expires: dict[int, int] = {}  # UTC day start -> wall-clock expiry of its key
        self._pending: dict[tuple[str, str], str] = {}
        self._expiring_hours: set[int] = set()  # closed hours written since the last drain
        self._expiring_days: set[int] = set()
        # Snapshot entries changed since the last snapshot_changes(), and whether meta did.
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
            self._hours[hour_ms] = data
            self._dirty.update(("hour", hour_ms, fld) for fld in data.fields())
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
        for hour_ms in [h for h, d in self._hours.items() if not d.closed and self._past_lateness(h)]:
            self._close(hour_ms)

    # --- outputs ---------------------------------------------------------------------------

    def drain(self, now_ms: int) -> list[Command]:
        """Commands for everything that changed since the last drain, plus the heartbeat.

        Every key of a closed hour written since the last drain gets the retention as its expiry
        (an hour's keys expire together); the instant is kept, so a rewrite keeps it."""
        self.progress(now_ms)
        by_key: dict[str, dict[str, str]] = {}
        for (key, fld), value in self._pending.items():
            by_key.setdefault(key, {})[fld] = value
        commands: list[Command] = [HSet(k, m) for k, m in by_key.items()]
        for hour_ms in sorted(self._expiring_hours):
            data = self._hours.get(hour_ms)
            if data is not None and data.closed:
                data.expires_ms = now_ms + self.retention_s * 1000
                commands += [Expire(k, self.retention_s) for k in self._hour_keys(hour_ms)]
                self._meta_dirty = True
        for day_ms in sorted(self._expiring_days):
            if day_ms in self._dlq:
                self._dlq_expires[day_ms] = now_ms + self.dlq_retention_s * 1000
                commands.append(Expire(self._dlq_key(day_ms), self.dlq_retention_s))
                self._meta_dirty = True
        commands.append(self._meta(now_ms))
        self._pending.clear()
        self._expiring_hours.clear()
        self._expiring_days.clear()
        return commands

    def refresh(self, now_ms: int) -> list[Command]:
        """Rewrite every open hour in full (heals keys lost one by one) and prune old hours."""
        commands: list[Command] = []
        hours: dict[str, str] = {}
        for hour_ms, data in self._hours.items():
            if data.closed:
                continue
            commands += self._hour_sets(hour_ms, data)
            hours[hour_id(from_epoch_ms(hour_ms))] = HOUR_OPEN
        if hours:
            commands.append(HSet(self.layout.hours(), hours))
        commands += self._prune(now_ms)
        commands.append(self._meta(now_ms))
        return commands

    def rewrite(self, now_ms: int, epoch: str) -> list[Command]:
        """The whole view, for a Redis that lost its data: every retained hour (open and closed,
        with its status), the malformed counters and meta.

        `epoch` goes into the meta hash first: a flush that comes after it removes it, so a
        sink that still reads its own epoch later knows that everything written since is there.
        Closed hours and malformed counters expire when they would have (at least 1 s on)."""
        commands: list[Command] = [HSet(self.layout.meta(), {EPOCH_FIELD: epoch})]
        commands += self._prune(now_ms)
        statuses: dict[str, str] = {}
        for hour_ms, data in sorted(self._hours.items()):
            commands += self._hour_sets(hour_ms, data)
            statuses[hour_id(from_epoch_ms(hour_ms))] = HOUR_CLOSED if data.closed else HOUR_OPEN
            if data.closed:
                if data.expires_ms is None:  # restored before its first drain
                    data.expires_ms = now_ms + self.retention_s * 1000
                    self._meta_dirty = True
                ttl = _seconds_left(data.expires_ms, now_ms)
                commands += [Expire(k, ttl) for k in self._hour_keys(hour_ms)]
        if statuses:
            commands.append(HSet(self.layout.hours(), statuses))
        for day_ms, reasons in sorted(self._dlq.items()):
            key = self._dlq_key(day_ms)
            commands.append(HSet(key, {r: str(n) for r, n in sorted(reasons.items())}))
            if day_ms not in self._dlq_expires:
                self._dlq_expires[day_ms] = now_ms + self.dlq_retention_s * 1000
                self._meta_dirty = True
            commands.append(Expire(key, _seconds_left(self._dlq_expires[day_ms], now_ms)))
        commands.append(self._meta(now_ms))
        return commands

    def open_hours(self) -> list[int]:
        return sorted(h for h, d in self._hours.items() if not d.closed)

    def closed_hours(self) -> list[int]:
        return sorted(h for h, d in self._hours.items() if d.closed)

    # --- checkpointed state ----------------------------------------------------------------

    def snapshot(self) -> dict[str, str]:
        """Every entry of the view's durable state (what `restore` needs to rebuild it)."""
        keys = [("hour", h, f) for h, d in self._hours.items() for f in d.fields()]
        keys += [("dlq", day, r) for day, reasons in self._dlq.items() for r in reasons]
        entries = {_entry_key(k): self._entry(k) for k in keys}
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
        where it is). Writes the previous run had not made are covered by `rewrite()`, which the
        sink runs on its first tick."""
        meta = json.loads(entries[META_ENTRY])
        if meta.get("v") != STATE_VERSION:
            raise ValueError(f"speed view state of version {meta.get('v')!r}, expected {STATE_VERSION}")
        self.watermark_ms = meta["watermark"]
        self._partition_max = {int(p): int(ms) for p, ms in meta["partitions"].items()}
        self._hours = {int(h): _Hour() for h in meta["open"]}
        for h, expires in meta["closed"].items():
            self._hours[int(h)] = _Hour(closed=True, expires_ms=expires)
        self._dlq = {}
        self._dlq_expires = {int(d): int(ms) for d, ms in meta["dlq"].items()}
        for name, value in entries.items():
            if name == META_ENTRY:
                continue
            kind, bucket, fld = name.split(":", 2)
            if kind == "dlq":
                self._dlq.setdefault(int(bucket), {})[fld] = int(value)
                continue
            hour_ms = int(bucket)
            data = self._hours.setdefault(hour_ms, _Hour(closed=self._past_lateness(hour_ms)))
            doc = json.loads(value)
            for part in PARTS:
                if _SHORT[part] in doc:
                    data.part(part)[fld] = doc[_SHORT[part]]
        self._advanced, self._advanced_at = set(), {}
        self._pending, self._expiring_hours, self._expiring_days = {}, set(), set()
        self._dirty, self._meta_dirty = set(), False
        self.counts = Counts()

    def _entry(self, key: tuple[str, int, str]) -> str | None:
        kind, bucket, fld = key
        if kind == "dlq":
            count = self._dlq.get(bucket, {}).get(fld)
            return None if count is None else str(count)
        data = self._hours.get(bucket)
        if data is None:
            return None
        doc = {_SHORT[p]: data.part(p)[fld] for p in PARTS if fld in data.part(p)}
        return json.dumps(doc, separators=(",", ":")) if doc else None

    def _meta_entry(self) -> str:
        return json.dumps(
            {
                "v": STATE_VERSION,
                "watermark": self.watermark_ms,
                "partitions": {str(p): ms for p, ms in sorted(self._partition_max.items())},
                "open": self.open_hours(),
                "closed": {str(h): self._hours[h].expires_ms for h in self.closed_hours()},
                "dlq": {str(d): ms for d, ms in sorted(self._dlq_expires.items())},
            },
            separators=(",", ":"),
        )

    # --- internals -------------------------------------------------------------------------

    def _past_lateness(self, hour_ms: int) -> bool:
        wm = self.watermark_ms
        return wm is not None and wm >= hour_ms + HOUR_MS + self.lateness_ms

    def _key(self, part: str, hour_ms: int) -> str:
        start = from_epoch_ms(hour_ms)
        if part == "speed":
            return self.layout.hour(start)
        return self.layout.late(start) if part == "late" else self.layout.duplicates(start)

    def _dlq_key(self, day_ms: int) -> str:
        return self.layout.malformed(from_epoch_ms(day_ms).date())

    def _hour_keys(self, hour_ms: int) -> list[str]:
        return [self._key(p, hour_ms) for p in PARTS]

    def _hour_sets(self, hour_ms: int, data: _Hour) -> list[Command]:
        return [HSet(self._key(p, hour_ms), dict(data.part(p))) for p in PARTS if data.part(p)]

    def _apply_hour(self, u: Update) -> None:
        fld = u.key.field()
        data = self._hours.get(u.bucket_ms)
        if data is None:
            data = self._hours[u.bucket_ms] = _Hour(closed=self._past_lateness(u.bucket_ms))
            self._meta_dirty = True
        self._count(data.totals(fld), (u.speed.events, u.late.events, u.duplicates))
        self._dirty.add(("hour", u.bucket_ms, fld))
        for part, present, value in (
            ("speed", u.speed.events > 0, u.speed.encode()),
            ("late", u.late.events > 0, u.late.encode()),
            ("dups", u.duplicates > 0, str(u.duplicates)),
        ):
            if present:
                data.part(part)[fld] = value
                self._pending[(self._key(part, u.bucket_ms), fld)] = value
        if data.closed:
            self._expiring_hours.add(u.bucket_ms)
        status = HOUR_CLOSED if data.closed else HOUR_OPEN
        self._pending[(self.layout.hours(), hour_id(from_epoch_ms(u.bucket_ms)))] = status

    def _apply_dlq(self, u: Update) -> None:
        reasons = self._dlq.setdefault(u.bucket_ms, {})
        before = reasons.get(u.reason, 0)
        reasons[u.reason] = u.malformed
        self._dirty.add(("dlq", u.bucket_ms, u.reason))
        delta = max(0, u.malformed - before)
        self.counts.malformed[u.reason] = self.counts.malformed.get(u.reason, 0) + delta
        self.counts.events_in += delta
        self._pending[(self._dlq_key(u.bucket_ms), u.reason)] = str(u.malformed)
        self._expiring_days.add(u.bucket_ms)

    def _close(self, hour_ms: int) -> None:
        data = self._hours[hour_ms]
        data.closed = True  # its entries keep their values; meta lists it as closed
        self._pending[(self.layout.hours(), hour_id(from_epoch_ms(hour_ms)))] = HOUR_CLOSED
        for part in PARTS:
            for fld, value in data.part(part).items():
                # Final values again: a Redis that lost them while the hour was open gets them back.
                self._pending.setdefault((self._key(part, hour_ms), fld), value)
        self._expiring_hours.add(hour_ms)

    def _prune(self, now_ms: int) -> list[Command]:
        """Forget closed hours beyond retention (by watermark) or whose keys expired (by wall
        clock), and malformed counters whose key expired; unlist the hours from the index."""
        horizon = None if self.watermark_ms is None else self.watermark_ms - self.retention_s * 1000
        old = sorted(
            h
            for h, d in self._hours.items()
            if d.closed
            and (
                (horizon is not None and h + HOUR_MS < horizon)
                or (d.expires_ms is not None and d.expires_ms <= now_ms)
            )
        )
        for h in old:
            self._dirty.update(("hour", h, f) for f in self._hours.pop(h).fields())
        for day_ms in [d for d, ms in self._dlq_expires.items() if ms <= now_ms]:
            del self._dlq_expires[day_ms]
            self._dirty.update(("dlq", day_ms, r) for r in self._dlq.pop(day_ms, {}))
            self._meta_dirty = True
        if not old:
            return []
        self._meta_dirty = True
        return [HDel(self.layout.hours(), tuple(hour_id(from_epoch_ms(h)) for h in old))]

    def _count(self, before: tuple[int, int, int], values: tuple[int, int, int]) -> None:
        deltas = [max(0, a - b) for a, b in zip(values, before, strict=True)]
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


def _seconds_left(deadline_ms: int, now_ms: int) -> int:
    """Whole seconds until `deadline_ms`, rounded up, at least 1 (EXPIRE 0 would delete the key)."""
    return max(1, -(-(deadline_ms - now_ms) // 1000))


def metrics_of(revenue: Decimal, orders: int, refunds: int, events: int) -> Metrics:
    return Metrics(revenue, int(orders), int(refunds), int(events))
