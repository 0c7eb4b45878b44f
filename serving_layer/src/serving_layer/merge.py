"""The merge rule, per hour, as a pure function of the two views (also in serving_layer/README.md).

Per hour, never by a single max-time boundary:

1. the coverage manifest marks the hour computed -> gold: `batch` / `final` (an hour with no gold
   rows is a zero hour: the batch looked and found nothing);
   while Redis cannot be read, every other hour that has started is `none` / `unavailable`
   (no numbers: nothing is known about it), and rules 2-4 apply only when Redis answered;
2. else the speed layer holds the hour -> Redis: `speed` / `closed` once the speed watermark has
   reached hour end + allowed lateness (or the speed layer itself marked it closed), else `open`;
3. else an hour that has not started yet -> `none` / `future` (zeros, nothing can exist yet);
4. else -> `none` / `missing`: a gap is shown, never hidden.

The speed layer "holds" an hour when it lists it in its hours hash, or has data for it, or the
hour lies between the first hour it lists and its watermark's hour: it has processed that span,
so an hour there without data had no events (zeros). Hours outside that span that no view has
are missing, e.g. before the speed layer started or after its retention expired them.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from functools import cached_property
from typing import Any, Protocol

from lambda_contract.redis_layout import HOUR_CLOSED, GroupKey, Metrics
from lambda_contract.windows import HOUR, hour_start

HourData = Mapping[GroupKey, Metrics]
MERGED_MEMO = 64  # merged ranges kept per BatchView
Entry = tuple[GroupKey, Decimal, int, int, int]  # key, revenue, orders, refunds, events


class Column(Protocol):
    """What ColumnHour needs of a column (an Arrow array): its length and its values as Python."""

    def __len__(self) -> int: ...

    def to_pylist(self) -> list[Any]: ...


class ColumnHour(Mapping[GroupKey, Metrics]):
    """One hour of gold kept as columns: a key code per row (into `keys`, shared by the date)
    and the numbers in Arrow, about 45 B a row instead of the 570 B of a dict of Metrics.
    Python objects exist only while the hour is read: `entries` for the renderer, the Mapping
    view (a dict built on demand, duplicate keys summed) for the rest."""

    __slots__ = ("_codes", "_events", "_keys", "_orders", "_refunds", "_revenue")

    def __init__(
        self,
        codes: Column,
        keys: Mapping[int, GroupKey],
        revenue: Column,
        orders: Column,
        refunds: Column,
        events: Column,
    ) -> None:
        self._codes = codes
        self._keys = keys
        self._revenue = revenue
        self._orders = orders
        self._refunds = refunds
        self._events = events

    def entries(self) -> Iterator[Entry]:
        keys = self._keys
        return zip(
            [keys[c] for c in self._codes.to_pylist()],
            self._revenue.to_pylist(),
            self._orders.to_pylist(),
            self._refunds.to_pylist(),
            self._events.to_pylist(),
            strict=True,
        )

    def as_dict(self) -> dict[GroupKey, Metrics]:
        out: dict[GroupKey, Metrics] = {}
        for key, revenue, orders, refunds, events in self.entries():
            metrics = Metrics(revenue, orders, refunds, events)
            # Two rows for one key would be a batch bug; summing keeps the numbers visible, not lost.
            out[key] = out[key] + metrics if key in out else metrics
        return out

    def __getitem__(self, key: GroupKey) -> Metrics:
        return self.as_dict()[key]

    def __iter__(self) -> Iterator[GroupKey]:
        return iter(self.as_dict())

    def __len__(self) -> int:
        return len(self.as_dict())

    def __bool__(self) -> bool:
        return len(self._codes) > 0

    @property
    def row_count(self) -> int:
        """Rows held (a key twice counts twice), without building the dict."""
        return len(self._codes)

    def items(self) -> Any:  # the dict's own view: one pass instead of a lookup per key
        return self.as_dict().items()


def entries(groups: HourData) -> Iterable[Entry]:
    """An hour's rows as plain tuples, straight from the columns when the hour is a ColumnHour."""
    if isinstance(groups, ColumnHour):
        return groups.entries()
    return ((k, m.revenue, m.orders, m.refunds, m.events) for k, m in groups.items())


class Source(enum.StrEnum):
    BATCH = "batch"
    SPEED = "speed"
    NONE = "none"


class Status(enum.StrEnum):
    FINAL = "final"
    CLOSED = "closed"
    OPEN = "open"
    MISSING = "missing"
    FUTURE = "future"
    UNAVAILABLE = "unavailable"  # not computed by the batch, and Redis could not be read


@dataclass(frozen=True)
class BatchView:
    """What gold and the manifest say: the computed hours and the rows of those a request needs."""

    computed: frozenset[datetime] = frozenset()
    hours: Mapping[datetime, HourData] = field(default_factory=dict)
    token: object = None  # changes whenever the data may have changed (table versions)
    tokens: Mapping[datetime, object] = field(default_factory=dict)  # per hour, finer than `token`
    # merge() of hours that are all computed, per hours: it depends on nothing else (see merge)
    merged: dict[tuple[datetime, ...], list[MergedHour]] = field(
        default_factory=dict, compare=False, repr=False
    )


@dataclass(frozen=True)
class SpeedSnapshot:
    """The speed view as the serving layer read it from Redis: the watermark, the hours hash
    (hour -> open|closed) and the hours' data (not the speed layer's own `speed_layer.view`)."""

    watermark: datetime | None = None
    held: Mapping[datetime, str] = field(default_factory=dict)
    hours: Mapping[datetime, HourData] = field(default_factory=dict)
    tokens: Mapping[datetime, object] = field(default_factory=dict)  # per hour, new when data changed
    available: bool = True  # False: Redis did not answer, so nothing is known about its hours

    @cached_property
    def span(self) -> tuple[datetime, datetime] | None:
        """First and last hour of the stretch the speed layer has processed (None: no watermark)."""
        if self.watermark is None:
            return None
        last = hour_start(self.watermark)
        return (min(self.held) if self.held else last), last

    def covers(self, hour: datetime) -> bool:
        if hour in self.held or self.hours.get(hour):
            return True
        span = self.span
        return span is not None and span[0] <= hour <= span[1]

    def status(self, hour: datetime, allowed_lateness: timedelta) -> Status:
        closed = speed_closed(hour, self.held.get(hour), self.watermark, allowed_lateness)
        return Status.CLOSED if closed else Status.OPEN


def speed_closed(
    hour: datetime, held_status: str | None, watermark: datetime | None, allowed_lateness: timedelta
) -> bool:
    """Closed when the speed layer says so or its watermark reached hour end + lateness.

    windows.is_closed, rearranged as hour <= watermark - lateness - 1 h: the same instant
    comparison, without computing an hour end that could leave datetime's range.
    """
    if held_status == HOUR_CLOSED:
        return True
    return watermark is not None and hour <= watermark - allowed_lateness - HOUR


@dataclass(frozen=True)
class MergedHour:
    hour: datetime
    source: Source
    status: Status
    groups: HourData
    token: object = None  # identifies the data version, for caches of rendered rows

    @property
    def provisional(self) -> bool:
        return self.source is Source.SPEED


_EMPTY: HourData = {}


def merge_hour(
    hour: datetime, batch: BatchView, speed: SpeedSnapshot, now: datetime, allowed_lateness: timedelta
) -> MergedHour:
    """One hour's source, status and rows by the rule in the module docstring."""
    if hour in batch.computed:
        token = batch.tokens.get(hour, batch.token)
        return MergedHour(hour, Source.BATCH, Status.FINAL, batch.hours.get(hour, _EMPTY), token)
    if not speed.available and hour <= now:
        return MergedHour(hour, Source.NONE, Status.UNAVAILABLE, _EMPTY)
    if speed.covers(hour):
        status = speed.status(hour, allowed_lateness)
        return MergedHour(hour, Source.SPEED, status, speed.hours.get(hour, _EMPTY), speed.tokens.get(hour))
    if hour > now:
        return MergedHour(hour, Source.NONE, Status.FUTURE, _EMPTY)
    return MergedHour(hour, Source.NONE, Status.MISSING, _EMPTY)


def merge(
    hours: Iterable[datetime],
    batch: BatchView,
    speed: SpeedSnapshot,
    now: datetime,
    allowed_lateness: timedelta,
) -> list[MergedHour]:
    """Every hour by merge_hour. Hours that are all computed come from the batch alone, whatever
    the speed view and the clock say, so their merge is kept on the view (BatchStore reuses a
    view while its data is unchanged): a 31-day history is merged once, not per request."""
    hours = tuple(hours)
    if hours and all(h in batch.computed for h in hours):
        done = batch.merged.get(hours)
        if done is None:
            if len(batch.merged) >= MERGED_MEMO:  # a view reused for many ranges: start over
                batch.merged.clear()
            done = batch.merged[hours] = [merge_hour(h, batch, speed, now, allowed_lateness) for h in hours]
        return list(done)
    return [merge_hour(h, batch, speed, now, allowed_lateness) for h in hours]
