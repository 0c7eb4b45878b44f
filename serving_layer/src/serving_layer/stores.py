"""I/O: the speed view in Redis and the batch view in Delta, each behind a small cache.

Redis is read in at most one pipelined round trip per request (meta, hours hash, the requested
hour hashes whose cached copy is due; see SpeedStore for the bounds on staleness); on Redis Cluster
one per master holding some of those keys. Decoding is
cached per hour and reused while the raw hash is unchanged, which dict equality checks in C; each decoded hour gets a fresh token so rendered rows
and whole responses can be cached by data version.

Delta gold and the coverage manifest are read with delta-rs (no JVM). The manifest (a row per
hour) is loaded whole; gold only for the dates a request needs, by partition pruning on `date`,
kept as columns (merge.ColumnHour) in an LRU bounded by LAMBDA_SERVING_GOLD_CACHE_MB. Versions
are checked off the event loop at most every `refresh_interval_s`; a new gold version drops
exactly the cached dates whose files changed (the date's file list in the Delta log is its
fingerprint). A table that does not exist yet is an empty view: the API serves from the speed
layer alone until the first batch run. A failed reload keeps the last good view and is reported
by /v1/status.
"""

from __future__ import annotations

import asyncio
import ctypes
import itertools
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import redis.asyncio as aioredis
from deltalake import DeltaTable
from redis.exceptions import RedisClusterException, ResponseError

from lambda_contract import redis_clients
from lambda_contract.redis_layout import GroupKey, Metrics, RedisLayout
from lambda_contract.settings import Settings
from lambda_contract.storage import delta_rs_options
from lambda_contract.tables import GOLD, MANIFEST
from lambda_contract.windows import HOUR, from_epoch_ms, parse_hour_id
from serving_layer.cache import ByteBoundedLru
from serving_layer.merge import BatchView, ColumnHour, HourData, SpeedSnapshot, speed_closed

if TYPE_CHECKING:
    from lambda_contract.redis_clients import AsyncClient

log = logging.getLogger("serving_layer.stores")

DECODE_CACHE_HOURS: Final = 4096
CLOSED_HOUR_TTL_S: Final = 2.0
OPEN_TTL_S: Final = 0.25
_tokens = itertools.count(1)


def redis_client(settings: Settings) -> AsyncClient:
    """The API's asyncio client (lambda_contract.redis_clients: single, Sentinel-managed master or
    Redis Cluster, each following a failover), hiredis parser when installed."""
    return redis_clients.async_client(settings, timeout_s=5)


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


async def _hgetall_all(client: AsyncClient, keys: Sequence[str]) -> tuple[list[dict[bytes, bytes]], int]:
    """HGETALL of each key in one non-transactional pipeline (on Redis Cluster, one per master
    holding some of the keys), and how many keys were of another type.

    A key of another type (WRONGTYPE) must not fail the request: it reads as empty and is counted
    as a bad entry. Any other failed reply raises a RedisError (the route then says `unavailable`,
    or 503): a master failing over or a slot with no master must never read as an empty hash,
    which would be served as zero."""
    try:
        async with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hgetall(key)
            results: list[Any] = await pipe.execute(raise_on_error=False)
    except RedisClusterException as exc:  # not a RedisError: no slot map, a slot with no master
        raise aioredis.ConnectionError(f"Redis Cluster: {exc}") from exc
    replies: list[dict[bytes, bytes]] = []
    bad = 0
    for reply in results:
        if isinstance(reply, ResponseError) and str(reply).startswith("WRONGTYPE"):
            bad += 1
            replies.append({})
        elif isinstance(reply, aioredis.RedisError):
            raise reply
        elif isinstance(reply, BaseException):
            raise aioredis.ConnectionError(f"Redis: {reply}") from reply
        else:
            replies.append(reply)
    return replies, bad


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
        client: AsyncClient,
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
            keys = [self.layout.meta(), self.layout.hours(), *(self.layout.hour(h) for h in fetch)]
            results, bad = await _hgetall_all(self.client, keys)
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
        (meta_raw, held_raw), _ = await _hgetall_all(self.client, [self.layout.meta(), self.layout.hours()])
        return _decode_meta(meta_raw), self._held_of(held_raw)

    async def ping(self) -> bool:
        try:
            pong: object = await self.client.ping()  # type: ignore[misc]
            return bool(pong)
        except (aioredis.RedisError, RedisClusterException, OSError):
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


def open_table(url: str, storage_options: dict[str, str]) -> DeltaTable | None:
    """The Delta table at `url`, or None before the batch layer has created it.
    `storage_options`: lambda_contract.storage.delta_rs_options (the object store in cluster mode)."""
    if not DeltaTable.is_deltatable(url, storage_options):
        return None
    return DeltaTable(url, storage_options=storage_options)


Filters = list[tuple[str, str, Any]] | None
GOLD_COLUMNS: Final = ("hour", "region", "category", "currency", "revenue", "orders", "refunds", "events")
MAX_INTERNED_KEYS: Final = 100_000
VIEW_MEMO: Final = 16


def load_gold(table: DeltaTable, filters: Filters = None) -> dict[datetime, dict[GroupKey, Metrics]]:
    """Gold rows per hour and key (all of them, or those matching partition `filters`), as dicts:
    for one date (reconciliation); the API keeps columns (GoldDate)."""
    columns = list(GOLD_COLUMNS)
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


@dataclass(frozen=True)
class GoldDate:
    """One date of gold as columns, sliced per hour; `token` is new whenever the date is read."""

    day: date
    token: int
    hours: dict[datetime, ColumnHour]
    nbytes: int
    files: frozenset[str] = frozenset()  # the date's files it was read from


def gold_files(table: DeltaTable) -> dict[date, frozenset[str]]:
    """The data files of each gold date in the table's current version: a date whose files did
    not change between two versions holds the same rows (Delta never edits a file)."""
    actions = pa.table(table.get_add_actions(flatten=True)).select(
        ["path", f"partition.{GOLD.partition_by[0]}"]
    )
    files: dict[date, set[str]] = {}
    for path, day in zip(*(c.to_pylist() for c in actions.columns), strict=True):
        files.setdefault(day, set()).add(path)
    return {day: frozenset(paths) for day, paths in files.items()}


def _load_libc() -> Any:
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (macOS, musl): nothing to trim
        return None


_LIBC: Final = _load_libc()


def _trim_heap() -> None:
    """Hand the C heap's free pages back to the OS (glibc's malloc_trim): a date read in a worker
    thread leaves freed memory in that thread's arena, which would otherwise count in the RSS."""
    trim = getattr(_LIBC, "malloc_trim", None)
    if trim is not None:
        trim(0)


def _narrow(counts: pa.Array) -> pa.Array:
    """int32 when every value fits (a count per key and hour always does in practice), else as is."""
    try:
        return counts.cast(pa.int32())  # a safe cast: it fails rather than wrap
    except pa.ArrowInvalid:
        return counts


def gold_date(dataset: ds.Dataset, day: date, interned: dict[tuple[str, str, str], GroupKey]) -> GoldDate:
    """Read one date of gold (partition pruning on `date`), sorted by hour into per-hour slices.

    `dataset` is the table version's Arrow dataset (DeltaTable.to_pyarrow_dataset, made once per
    version): its files carry their partition values, so a date reads only its own files, in
    milliseconds (DeltaTable.to_pyarrow_table with a filter plans the whole table every call).

    The key columns become one int32 code per row and a small code -> GroupKey map (keys are
    shared objects: `interned`); the numbers stay in Arrow. No Python object is made per row, so
    reading a date costs about its Arrow size, once."""
    part = GOLD.partition_by[0]
    data = dataset.to_table(columns=list(GOLD_COLUMNS), filter=ds.field(part) == day)
    data = data.sort_by([("hour", "ascending")]).combine_chunks()  # a stable sort: file order kept
    codes: Any = pa.scalar(0, pa.int64())
    names: list[list[str]] = []
    for name in ("region", "category", "currency"):
        encoded = pc.dictionary_encode(data.column(name)).combine_chunks()
        values = encoded.dictionary.to_pylist()
        codes = pc.add(pc.multiply(codes, len(values)), encoded.indices.cast(pa.int64()))
        names.append(values)
    codes = codes.cast(pa.int32()) if len(data) else pa.array([], pa.int32())
    if len(interned) > MAX_INTERNED_KEYS:
        interned.clear()
    keys: dict[int, GroupKey] = {}
    sizes = [len(v) for v in names]
    for code in pc.unique(codes).to_pylist():
        rest, cur = divmod(code, sizes[2])
        reg, cat = divmod(rest, sizes[1])
        parts = (names[0][reg], names[1][cat], names[2][cur])
        found = interned.get(parts)
        if found is None:
            found = interned[parts] = GroupKey(*parts)
        keys[code] = found
    numbers = [data.column("revenue").combine_chunks()]
    numbers += [_narrow(data.column(c).combine_chunks()) for c in ("orders", "refunds", "events")]
    hours: dict[datetime, ColumnHour] = {}
    offset = 0
    for run in sorted(pc.value_counts(data.column("hour")).to_pylist(), key=lambda run: run["values"]):
        hour, count = _utc(run["values"]), int(run["counts"])
        slices = [col.slice(offset, count) for col in (codes, *numbers)]
        hours[hour] = ColumnHour(slices[0], keys, *slices[1:])
        offset += count
    nbytes = codes.nbytes + sum(col.nbytes for col in numbers) + 100 * len(keys) + 256 * (1 + len(hours))
    return GoldDate(day, next(_tokens), hours, nbytes)


class BatchStore:
    """The manifest, whole, reloaded when a version changes (checked at most every interval), and
    gold by date on demand, behind a byte-bounded LRU that a new version invalidates per date."""

    def __init__(self, settings: Settings, refresh_interval_s: float = 1.0) -> None:
        self.gold_url = settings.delta_table_url(GOLD.name)
        self.manifest_url = settings.delta_table_url(MANIFEST.name)
        self.storage_options = delta_rs_options(settings)
        self.refresh_interval_s = refresh_interval_s
        self.state = BatchState()
        self._gold: DeltaTable | None = None
        self._manifest: DeltaTable | None = None
        self._lock = asyncio.Lock()  # one delta-rs user at a time: refresh or a date load
        self._last_attempt: float | None = None  # failed attempts also wait for the interval
        self._files: dict[date, frozenset[str]] = {}  # gold's files per date at state.gold_version
        self._cache_lock = threading.Lock()  # the LRU is touched from the loop and from refresh's thread
        self.cache: ByteBoundedLru[date, GoldDate] = ByteBoundedLru(
            settings.serving_gold_cache_mb << 20, lambda d: d.nbytes
        )
        self._interned: dict[tuple[str, str, str], GroupKey] = {}
        self._dataset: ds.Dataset | None = None  # gold at state.gold_version, made on first read
        # the views of recent ranges, reused while their data is unchanged (and their merge with them)
        self._views: OrderedDict[tuple[object, ...], BatchView] = OrderedDict()
        self._evictions_seen = 0
        self.dates_read = 0  # gold dates read from Delta since start (tests and the bench look)

    def _version(self, attr: str, url: str) -> int | None:
        table: DeltaTable | None = getattr(self, attr)
        if table is None:
            table = open_table(url, self.storage_options)
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
            if gold_version != state.gold_version or state.checked_at is None:
                self._invalidate(gold_files(self._gold) if self._gold is not None else {})
            self.state = BatchState(
                view=BatchView(computed=computed, token=(gold_version, manifest_version)),
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
                    "gold_dates": len(self._files),
                },
            )
            return True
        except Exception as exc:  # any delta-rs / arrow failure: keep serving the last good view
            self.state.error = f"{type(exc).__name__}: {exc}"[:500]
            self._gold = self._manifest = None
            log.warning("batch view refresh failed", extra={"error": self.state.error})
            return False

    def _invalidate(self, files: dict[date, frozenset[str]]) -> None:
        """Take gold's new file lists; cached dates whose files changed are dropped."""
        with self._cache_lock:
            for day in self.cache.key_list():
                if files.get(day) != self._files.get(day):
                    self.cache.discard(day)
            self._views.clear()
            self._files = files
            self._dataset = None

    def _read_dates(self, days: list[date]) -> dict[date, GoldDate]:
        """Read the dates not cached (run in a thread, under the store's lock). After a failed
        refresh the last good version's dataset is still read, as its file lists say."""
        with self._cache_lock:
            missing = [d for d in days if d in self._files and self.cache.get(d) is None]
        if self._dataset is None and self._gold is not None:
            self._dataset = self._gold.to_pyarrow_dataset()
        if not missing or self._dataset is None:
            return {}
        files = self._files
        read: dict[date, GoldDate] = {}
        try:
            for day in missing:
                g = gold_date(self._dataset, day, self._interned)
                read[day] = GoldDate(day, g.token, g.hours, g.nbytes, files[day])
                self.dates_read += 1
        finally:
            pa.default_memory_pool().release_unused()  # what a read left behind goes back to the OS
            _trim_heap()
        return read

    def _keep(self, read: dict[date, GoldDate]) -> None:
        """Cache what was read while it is still current: a refresh may have come in between."""
        with self._cache_lock:
            for day, entry in read.items():
                if self._files.get(day) == entry.files:
                    self.cache.put(day, entry)

    async def view(self, state: BatchState, hours: Sequence[datetime]) -> BatchView:
        """The batch view of `hours`: the computed set, and gold rows for the computed ones,
        read by date (partition pruning) unless cached. The dates a request needs stay with it
        while it is answered, however small the cache."""
        # A memoized view stays valid until a date is evicted or gold changes (both clear the memo).
        key = (tuple(hours), state.view.token)
        with self._cache_lock:
            if self.cache.evictions != self._evictions_seen:
                # A memoized view must not keep an evicted date alive beyond the cache's bound.
                self._views.clear()
                self._evictions_seen = self.cache.evictions
            memo = self._views.get(key)
            if memo is not None:
                self._views.move_to_end(key)
                return memo
        computed = state.view.computed
        days = sorted({h.date() for h in hours if h in computed})
        if not days:
            return state.view
        found: dict[date, GoldDate] = {}
        with self._cache_lock:
            for day in days:
                cached = self.cache.get(day)
                if cached is not None:
                    found[day] = cached
        wanted = [d for d in days if d not in found and d in self._files]
        if wanted:
            async with self._lock:
                read = await asyncio.to_thread(self._read_dates, wanted)
            self._keep(read)
            with self._cache_lock:
                for day in wanted:
                    entry = read.get(day) or self.cache.get(day)
                    if entry is not None:
                        found[day] = entry
        rows: dict[datetime, HourData] = {}
        tokens: dict[datetime, object] = {}
        for entry in found.values():
            for hour, data in entry.hours.items():
                rows[hour] = data
                tokens[hour] = entry.token
        made = BatchView(computed=computed, hours=rows, token=state.view.token, tokens=tokens)
        with self._cache_lock:
            if self.cache.evictions == self._evictions_seen:  # else its dates may be gone already
                self._views[key] = made
            while len(self._views) > VIEW_MEMO:
                self._views.popitem(last=False)
        return made

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
