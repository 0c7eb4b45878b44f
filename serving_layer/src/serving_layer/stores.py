"""I/O: the speed view in Redis and the batch view in Delta, each behind a small cache.

Redis is read in at most one pipelined round trip per request (meta, hours hash, the requested
hour hashes whose cached copy is due; see SpeedStore for the bounds on staleness). Decoding is
cached per hour and reused while the raw hash is unchanged, which dict equality checks in C; each decoded hour gets a fresh token so rendered rows
and whole responses can be cached by data version.

Delta gold and the coverage manifest are read with delta-rs (no JVM), loaded whole into memory
and reloaded only when either table's version changes; the version check runs off the event
loop at most every `refresh_interval_s`. A table that does not exist yet is an empty view: the
API serves from the speed layer alone until the first batch run. A failed reload keeps the last
good view and is reported by /v1/status.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

import redis.asyncio as aioredis
from deltalake import DeltaTable

from lambda_contract.redis_layout import GroupKey, Metrics, RedisLayout
from lambda_contract.settings import Settings
from lambda_contract.tables import GOLD, MANIFEST
from lambda_contract.windows import HOUR, from_epoch_ms, parse_hour_id
from serving_layer.merge import BatchView, HourData, SpeedSnapshot, speed_closed

log = logging.getLogger("serving_layer.stores")

DECODE_CACHE_HOURS: Final = 4096
CLOSED_HOUR_TTL_S: Final = 2.0
OPEN_TTL_S: Final = 0.25
_tokens = itertools.count(1)


def redis_client(settings: Settings) -> aioredis.Redis:
    """An asyncio client (hiredis parser when installed) with the configured password."""
    return aioredis.Redis.from_url(
        settings.redis_url,
        password=settings.resolved_redis_password(),
        socket_timeout=5,
        socket_connect_timeout=5,
        health_check_interval=30,
    )


@dataclass(frozen=True)
class SpeedMeta:
    """The speed layer's own bookkeeping: watermark and sink heartbeat."""

    watermark: datetime | None = None
    updated: datetime | None = None


@dataclass(frozen=True)
class SpeedRead:
    """What one `SpeedStore.read` returned: the snapshot, the meta, and the entries skipped."""

    snapshot: SpeedSnapshot
    meta: SpeedMeta
    tokens: dict[datetime, int]
    bad_entries: int = 0


def _decode_hour(raw: dict[bytes, bytes]) -> tuple[dict[GroupKey, Metrics], int]:
    """Decode one hour hash; entries that do not follow the layout are skipped and counted."""
    groups: dict[GroupKey, Metrics] = {}
    bad = 0
    for key, value in raw.items():
        try:
            groups[GroupKey.parse(key)] = Metrics.decode(value)
        except (ValueError, ArithmeticError, UnicodeDecodeError):
            bad += 1
    return groups, bad


def _decode_meta(raw: dict[bytes, bytes]) -> SpeedMeta:
    def instant(name: bytes) -> datetime | None:
        value = raw.get(name)
        if value is None:
            return None
        try:
            return from_epoch_ms(int(value))
        except (ValueError, OverflowError):
            return None

    return SpeedMeta(watermark=instant(b"watermark_ms"), updated=instant(b"updated_ms"))


def _decode_held(raw: dict[bytes, bytes]) -> dict[datetime, str]:
    held: dict[datetime, str] = {}
    for key, value in raw.items():
        try:
            held[parse_hour_id(key.decode())] = value.decode()
        except (ValueError, UnicodeDecodeError):
            continue
    return held


class SpeedStore:
    """Reads the speed view with the contract's RedisLayout and codecs, behind a short-lived cache.

    What was read is reused for a bounded time, so a busy API does not read the same hashes
    thousands of times a second: the watermark, the hours hash and open hours for `open_ttl_s`
    (0.25 s, small next to the speed layer's own 2 s freshness), closed hours for `closed_ttl_s`
    (2 s: a closed hour no longer changes in the speed view; the TTL bounds how long a replay or
    a Redis that lost its data goes unseen). Whatever is due is read in one pipelined round trip.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        layout: RedisLayout,
        allowed_lateness: timedelta,
        open_ttl_s: float = OPEN_TTL_S,
        closed_ttl_s: float = CLOSED_HOUR_TTL_S,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.layout = layout
        self.allowed_lateness = allowed_lateness
        self.open_ttl_s = open_ttl_s
        self.closed_ttl_s = closed_ttl_s
        self.monotonic = monotonic  # what the TTLs run on (tests step their own)
        # hour -> (raw hash, decoded, token or None when empty, monotonic time it is trusted until)
        self._decoded: OrderedDict[
            datetime, tuple[dict[bytes, bytes], dict[GroupKey, Metrics], int | None, float]
        ] = OrderedDict()
        self._held: tuple[dict[bytes, bytes], dict[datetime, str]] = ({}, {})
        self._meta: tuple[float, SpeedMeta] | None = None  # (trusted until, meta)

    def _held_of(self, raw: dict[bytes, bytes]) -> dict[datetime, str]:
        if raw != self._held[0]:
            self._held = (raw, _decode_held(raw))
        return self._held[1]

    async def read(self, hours: Sequence[datetime]) -> SpeedRead:
        """The view of `hours`; what is due is read in one pipelined round trip, or none."""
        now = self.monotonic()
        decoded = self._decoded
        fetch = [h for h in hours if (c := decoded.get(h)) is None or c[3] <= now]
        bad = 0
        if fetch or self._meta is None or self._meta[0] <= now:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.hgetall(self.layout.meta())
                pipe.hgetall(self.layout.hours())
                for hour in fetch:
                    pipe.hgetall(self.layout.hour(hour))
                # A key of another type (WRONGTYPE) must not fail the request: such replies
                # come back as exception objects and count as bad entries.
                results: list[Any] = await pipe.execute(raise_on_error=False)
            bad = sum(1 for x in results if isinstance(x, Exception))
            results = [{} if isinstance(x, Exception) else x for x in results]
            meta = _decode_meta(results[0])
            self._meta = (now + self.open_ttl_s, meta)
            held = self._held_of(results[1])
            for hour, raw in zip(fetch, results[2:], strict=True):
                closed = speed_closed(hour, held.get(hour), meta.watermark, self.allowed_lateness)
                until = now + (self.closed_ttl_s if closed else self.open_ttl_s)
                cached = decoded.get(hour)
                if cached is not None and cached[0] == raw:
                    decoded[hour] = (cached[0], cached[1], cached[2], until)
                    decoded.move_to_end(hour)
                    continue
                groups, bad_here = _decode_hour(raw)
                bad += bad_here
                decoded[hour] = (raw, groups, next(_tokens) if groups else None, until)
                if len(decoded) > DECODE_CACHE_HOURS:
                    decoded.popitem(last=False)
        meta = self._meta[1]
        held = self._held[1]
        data: dict[datetime, HourData] = {}
        tokens: dict[datetime, int] = {}
        for hour in hours:
            entry = decoded.get(hour)
            if entry is not None and entry[2] is not None:
                data[hour] = entry[1]
                tokens[hour] = entry[2]
        snapshot = SpeedSnapshot(watermark=meta.watermark, held=held, hours=data, tokens=tokens)
        return SpeedRead(snapshot=snapshot, meta=meta, tokens=tokens, bad_entries=bad)

    async def read_meta(self) -> tuple[SpeedMeta, dict[datetime, str]]:
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.layout.meta())
            pipe.hgetall(self.layout.hours())
            meta_raw, held_raw = await pipe.execute(raise_on_error=False)
        meta = _decode_meta({} if isinstance(meta_raw, Exception) else meta_raw)
        return meta, self._held_of({} if isinstance(held_raw, Exception) else held_raw)

    async def ping(self) -> bool:
        try:
            pong: object = await self.client.ping()  # type: ignore[misc]
            return bool(pong)
        except (aioredis.RedisError, OSError):
            return False


@dataclass(frozen=True)
class LastRun:
    run_id: str
    computed_at: datetime
    dates: tuple[date, ...]
    hours: int


@dataclass
class BatchState:
    """The batch view plus what /v1/status reports about it."""

    view: BatchView = field(default_factory=BatchView)
    gold_version: int | None = None
    manifest_version: int | None = None
    last_run: LastRun | None = None
    checked_at: float | None = None  # time.monotonic() of the last successful version check
    error: str | None = None
    complete_through: datetime | None = None  # end of the newest computed hour

    @property
    def token(self) -> tuple[int | None, int | None]:
        return (self.gold_version, self.manifest_version)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def open_table(url: str) -> DeltaTable | None:
    """The Delta table at `url`, or None before the batch layer has created it."""
    if not DeltaTable.is_deltatable(url):
        return None
    return DeltaTable(url)


Filters = list[tuple[str, str, Any]] | None


def load_gold(table: DeltaTable, filters: Filters = None) -> dict[datetime, dict[GroupKey, Metrics]]:
    """Gold rows per hour and key (all of them, or those matching partition `filters`)."""
    columns = ["hour", "region", "category", "currency", "revenue", "orders", "refunds", "events"]
    data = table.to_pyarrow_table(columns=columns, filters=filters)
    hours: dict[datetime, dict[GroupKey, Metrics]] = {}
    cols = [data.column(c).to_pylist() for c in columns]
    for hour, region, category, currency, revenue, orders, refunds, events in zip(*cols, strict=True):
        metrics = Metrics(Decimal(revenue), int(orders), int(refunds), int(events))
        key = GroupKey(region, category, currency)
        groups = hours.setdefault(_utc(hour), {})
        # Two rows for one key would be a batch bug; summing keeps the numbers visible, not lost.
        groups[key] = groups[key] + metrics if key in groups else metrics
    return hours


def latest_manifest(table: DeltaTable, filters: Filters = None) -> dict[datetime, dict[str, Any]]:
    """The newest manifest row of each hour (by computed_at): a recompute appends, never edits."""
    columns = ["date", "hour", "computed", "run_id", "computed_at", "duplicates"]
    latest: dict[datetime, dict[str, Any]] = {}
    for row in table.to_pyarrow_table(columns=columns, filters=filters).to_pylist():
        row["hour"], row["computed_at"] = _utc(row["hour"]), _utc(row["computed_at"])
        current = latest.get(row["hour"])
        if current is None or row["computed_at"] >= current["computed_at"]:
            latest[row["hour"]] = row
    return latest


def load_manifest(table: DeltaTable) -> tuple[frozenset[datetime], LastRun | None]:
    """Computed hours (latest entry per hour wins) and the most recent run."""
    latest = latest_manifest(table)
    computed_hours = frozenset(h for h, row in latest.items() if row["computed"])
    if not latest:
        return computed_hours, None
    newest = max(latest.values(), key=lambda row: row["computed_at"])
    run_rows = [row for row in latest.values() if row["run_id"] == newest["run_id"]]
    last = LastRun(
        run_id=str(newest["run_id"]),
        computed_at=max(row["computed_at"] for row in run_rows),
        dates=tuple(sorted({row["date"] for row in run_rows})),
        hours=len(run_rows),
    )
    return computed_hours, last


class BatchStore:
    """Gold + manifest, reloaded when a table version changes (checked at most every interval)."""

    def __init__(self, settings: Settings, refresh_interval_s: float = 1.0) -> None:
        self.gold_url = settings.delta_table_url(GOLD.name)
        self.manifest_url = settings.delta_table_url(MANIFEST.name)
        self.refresh_interval_s = refresh_interval_s
        self.state = BatchState()
        self._gold: DeltaTable | None = None
        self._manifest: DeltaTable | None = None
        self._lock = asyncio.Lock()
        self._last_attempt: float | None = None  # failed attempts also wait for the interval

    def _version(self, attr: str, url: str) -> int | None:
        table: DeltaTable | None = getattr(self, attr)
        if table is None:
            table = open_table(url)
            setattr(self, attr, table)
        else:
            table.update_incremental()
        return None if table is None else int(table.version())

    def refresh(self) -> bool:
        """Check both versions and reload on change; True when the view changed."""
        try:
            # Manifest first: gold is then at least as new as the hours the manifest names.
            manifest_version = self._version("_manifest", self.manifest_url)
            gold_version = self._version("_gold", self.gold_url)
            state = self.state
            if (gold_version, manifest_version) == state.token and state.checked_at is not None:
                state.checked_at = time.monotonic()
                state.error = None
                return False
            computed: frozenset[datetime] = frozenset()
            last_run = None
            if self._manifest is not None:
                computed, last_run = load_manifest(self._manifest)
            gold = load_gold(self._gold) if self._gold is not None else {}
            self.state = BatchState(
                view=BatchView(computed=computed, hours=gold, token=(gold_version, manifest_version)),
                gold_version=gold_version,
                manifest_version=manifest_version,
                last_run=last_run,
                checked_at=time.monotonic(),
                complete_through=max(computed) + HOUR if computed else None,
            )
            log.info(
                "batch view loaded",
                extra={
                    "gold_version": gold_version,
                    "manifest_version": manifest_version,
                    "computed_hours": len(computed),
                    "gold_hours": len(gold),
                },
            )
            return True
        except Exception as exc:  # any delta-rs / arrow failure: keep serving the last good view
            self.state.error = f"{type(exc).__name__}: {exc}"[:500]
            self._gold = self._manifest = None
            log.warning("batch view refresh failed", extra={"error": self.state.error})
            return False

    async def ensure_fresh(self) -> BatchState:
        """Refresh if the last check is older than the interval; concurrent callers do not wait."""
        now = time.monotonic()
        due = self._last_attempt is None or now - self._last_attempt >= self.refresh_interval_s
        if due and not self._lock.locked():
            self._last_attempt = now
            async with self._lock:
                await asyncio.to_thread(self.refresh)
        return self.state

    def cache_age_s(self) -> float | None:
        checked = self.state.checked_at
        return None if checked is None else time.monotonic() - checked
