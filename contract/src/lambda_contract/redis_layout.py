"""The speed view's Redis layout: key names and value codecs (documented in docs/specs/redis.md).

Everything the speed layer writes is an absolute value (SET/HSET, never INCR), so replaying a
changelog after a restart converges to the same state. Key components are safe by construction:
regions, categories and currencies are validated against the contract's patterns, which exclude
`|` and `:`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Final

from lambda_contract.events import AMOUNT_SCALE
from lambda_contract.windows import hour_id

FIELD_SEPARATOR: Final = "|"
HOUR_OPEN: Final = "open"
HOUR_CLOSED: Final = "closed"

_SCALE: Final = Decimal(1).scaleb(-AMOUNT_SCALE)


@dataclass(frozen=True)
class GroupKey:
    """The aggregation key within an hour."""

    region: str
    category: str
    currency: str

    def field(self) -> str:
        return FIELD_SEPARATOR.join((self.region, self.category, self.currency))

    @classmethod
    def parse(cls, field: str | bytes) -> GroupKey:
        text = field.decode() if isinstance(field, bytes) else field
        region, category, currency = text.split(FIELD_SEPARATOR)
        return cls(region, category, currency)


@dataclass(frozen=True)
class Metrics:
    """Per-key metrics, identical in the speed view, the late counters and gold."""

    revenue: Decimal = Decimal("0.0000")
    orders: int = 0
    refunds: int = 0
    events: int = 0

    def encode(self) -> str:
        """`revenue|orders|refunds|events`, revenue with exactly four fractional digits."""
        return FIELD_SEPARATOR.join(
            (
                format(self.revenue.quantize(_SCALE), "f"),
                str(self.orders),
                str(self.refunds),
                str(self.events),
            )
        )

    @classmethod
    def decode(cls, value: str | bytes) -> Metrics:
        text = value.decode() if isinstance(value, bytes) else value
        revenue, orders, refunds, events = text.split(FIELD_SEPARATOR)
        return cls(Decimal(revenue), int(orders), int(refunds), int(events))

    def __add__(self, other: Metrics) -> Metrics:
        return Metrics(
            self.revenue + other.revenue,
            self.orders + other.orders,
            self.refunds + other.refunds,
            self.events + other.events,
        )


@dataclass(frozen=True)
class RedisLayout:
    """Key names under a configurable prefix (LAMBDA_REDIS_PREFIX), so environments can share a server."""

    prefix: str = "lambda"

    def hour(self, start: datetime) -> str:
        """HASH GroupKey.field() -> Metrics.encode(): the speed view of one hour."""
        return f"{self.prefix}:speed:hour:{hour_id(start)}"

    def late(self, start: datetime) -> str:
        """HASH GroupKey.field() -> Metrics.encode(): events rejected as late for this hour."""
        return f"{self.prefix}:speed:late:{hour_id(start)}"

    def duplicates(self, start: datetime) -> str:
        """HASH GroupKey.field() -> count of duplicate deliveries the speed layer suppressed."""
        return f"{self.prefix}:speed:dups:{hour_id(start)}"

    def malformed(self, day: date) -> str:
        """HASH reason -> count of malformed events sent to the DLQ, by event date rule."""
        return f"{self.prefix}:speed:dlq:{day.isoformat()}"

    def hours(self) -> str:
        """HASH hour_id -> `open` | `closed`: every hour the speed layer holds."""
        return f"{self.prefix}:speed:hours"

    def meta(self) -> str:
        """HASH with `watermark_ms`, `watermark` (RFC 3339), `updated_ms` (sink heartbeat)."""
        return f"{self.prefix}:speed:meta"

    def epoch_marker(self, tag: int) -> str:
        """HASH `view_epoch`, Redis Cluster only: one such key on each master (the hash tag `{tag}`
        picks the slot; lambda_contract.redis_clients.slot_markers), so the sink's probe sees a
        master that lost its data whichever one it is."""
        return f"{self.prefix}:speed:epoch:{{{tag}}}"
