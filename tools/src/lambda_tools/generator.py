"""Seeded traffic model for orders.v1: realistic orders plus duplicates, late and malformed events.

Pure logic, no I/O: it yields `GeneratedRecord`s (key, raw value, partition, Kafka timestamp and
what each record is by construction). `producer.py` sends them, `truth.compute_truth` folds what
was sent into the ground truth, and `generator_cli.py` wires the two.

Two guarantees the rest of the platform relies on:

* On-time events are never late: an event's time is at most `max_jitter` (20 s) behind the
  stream clock, below the speed layer's 30 s out-of-orderness, so no watermark can have closed
  its hour when it arrives, whatever the partition interleaving.
* Late events are late by construction: their time is at least allowed lateness + 1 h +
  `late_margin` behind the stream clock, so their hour closed once the watermark is within
  `late_margin` of the clock. The margin (10 min by default) absorbs a consumer's watermark lag,
  e.g. Flink's periodic watermarks while it replays a backlog.
"""

from __future__ import annotations

import bisect
import enum
import heapq
import itertools
import json
import math
import random
import re
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any, Final, TypeVar

from kafka.partitioner.default import murmur2

from lambda_contract.events import (
    AMOUNT_SCALE,
    CATEGORY_PATTERN,
    CURRENCY_PATTERN,
    REGION_PATTERN,
    Reason,
)
from lambda_contract.windows import HOUR_MS, from_epoch_ms, to_epoch_ms

T = TypeVar("T")
SECOND_MS: Final = 1000
MINUTE_MS: Final = 60 * SECOND_MS


class GeneratorError(ValueError):
    """A generator parameter is unusable; the message says which and why."""


class Kind(enum.StrEnum):
    """What a record is by construction."""

    VALID = "valid"
    DUPLICATE = "duplicate"
    LATE = "late"
    MALFORMED = "malformed"


@dataclass(frozen=True, slots=True)
class GeneratedRecord:
    """One Kafka record to produce, and what it is by construction."""

    key: bytes | None
    value: bytes | None
    partition: int
    timestamp_ms: int  # Kafka record timestamp: when the record is sent (the stream clock)
    kind: Kind
    expect: str  # "valid" | "duplicate" | "late" | the Reason a malformed record must get

    @property
    def late(self) -> bool:
        return self.kind is Kind.LATE


# --- the world the orders come from ---------------------------------------------------------------


@dataclass(frozen=True)
class Currency:
    """An ISO-4217 currency, its minor-unit digits and a rough price level (units per USD)."""

    code: str
    decimals: int
    per_usd: float = 1.0


KNOWN_CURRENCIES: Final[dict[str, Currency]] = {
    c.code: c
    for c in (
        Currency("USD", 2, 1.0),
        Currency("EUR", 2, 0.92),
        Currency("GBP", 2, 0.79),
        Currency("CHF", 2, 0.88),
        Currency("JPY", 0, 150.0),
        Currency("KRW", 0, 1350.0),
        Currency("INR", 2, 83.0),
        Currency("BRL", 2, 5.0),
        Currency("CLP", 0, 930.0),
        Currency("CLF", 4, 0.026),
        Currency("KWD", 3, 0.31),
    )
}

# Region: (traffic weight, UTC offset in minutes its clients often report, currencies with weights).
REGIONS: Final[dict[str, tuple[float, int, tuple[tuple[str, float], ...]]]] = {
    "us-east": (0.25, -300, (("USD", 1.0),)),
    "us-west": (0.15, -480, (("USD", 1.0),)),
    "eu-west": (0.18, 0, (("EUR", 0.6), ("GBP", 0.4))),
    "eu-central": (0.12, 60, (("EUR", 0.85), ("CHF", 0.15))),
    "ap-south": (0.12, 330, (("INR", 1.0),)),
    "ap-northeast": (0.10, 540, (("JPY", 0.8), ("KRW", 0.2))),
    "sa-east": (0.08, -180, (("BRL", 0.8), ("CLP", 0.15), ("CLF", 0.05))),
}

# Category: (traffic weight, median line amount in USD, log-normal sigma).
CATEGORIES: Final[dict[str, tuple[float, float, float]]] = {
    "electronics": (0.14, 120.0, 0.9),
    "books": (0.14, 18.0, 0.5),
    "fashion": (0.16, 45.0, 0.7),
    "home_garden": (0.10, 60.0, 0.8),
    "toys": (0.10, 25.0, 0.6),
    "grocery": (0.16, 35.0, 0.6),
    "sports": (0.10, 50.0, 0.8),
    "beauty": (0.10, 22.0, 0.6),
}
_DEFAULT_CATEGORY_PRICE: Final = (0.1, 40.0, 0.8)
_MAX_AMOUNT: Final = Decimal("999999999999")


def diurnal_weight(hour_of_day: int) -> float:
    """Relative traffic of a UTC hour: a trough around 03:00 and a peak around 15:00 UTC."""
    phase = 2 * math.pi * (hour_of_day - 3) / 24
    return 0.35 + 0.65 * (0.5 - 0.5 * math.cos(phase))


def parse_currencies(text: str) -> tuple[Currency, ...]:
    """`USD,EUR,XTS:3`: known codes, or any ISO-4217-shaped code with its decimals (0-4)."""
    out: list[Currency] = []
    for item in (t.strip() for t in text.split(",")):
        if not item:
            continue
        code, _, digits = item.partition(":")
        if re.fullmatch(CURRENCY_PATTERN, code) is None:
            raise GeneratorError(f"currency {code!r} is not an ISO-4217 code (three upper-case letters)")
        if digits:
            if not digits.isdigit() or int(digits) > AMOUNT_SCALE:
                raise GeneratorError(f"currency {item!r}: decimals must be 0-{AMOUNT_SCALE}, got {digits!r}")
            known = KNOWN_CURRENCIES.get(code)
            out.append(Currency(code, int(digits), known.per_usd if known else 1.0))
        elif code in KNOWN_CURRENCIES:
            out.append(KNOWN_CURRENCIES[code])
        else:
            raise GeneratorError(
                f"currency {code!r} has no known number of decimals; write it as {code}:<0-{AMOUNT_SCALE}> "
                f"(known: {', '.join(sorted(KNOWN_CURRENCIES))})"
            )
    if not out:
        raise GeneratorError("--currencies names no currency")
    return tuple(out)


def parse_names(text: str, what: str, pattern: str) -> tuple[str, ...]:
    """A comma-separated list of names (`what`: region, category), each checked against the contract."""
    names = tuple(t.strip() for t in text.split(",") if t.strip())
    if not names:
        raise GeneratorError(f"no {what} given in {text!r}")
    for name in names:
        if re.fullmatch(pattern, name) is None:
            raise GeneratorError(f"{what} {name!r} does not match the contract pattern {pattern}")
    return names


@dataclass(frozen=True)
class GeneratorConfig:
    """Knobs of the traffic model. Rates are probabilities per produced record (refund: per purchase)."""

    seed: int = 0
    regions: tuple[str, ...] = tuple(REGIONS)
    categories: tuple[str, ...] = tuple(CATEGORIES)
    currencies: tuple[Currency, ...] = tuple(KNOWN_CURRENCIES.values())
    duplicate_rate: float = 0.01
    late_rate: float = 0.005
    malformed_rate: float = 0.005
    refund_rate: float = 0.05
    partitions: int = 3
    max_jitter_s: float = 20.0
    out_of_orderness_s: int = 30
    allowed_lateness_s: int = 300
    late_margin_s: int = 600
    late_spread_s: int = 3 * 3600
    live_late_warmup_s: int = 60
    number_amount_rate: float = 0.1
    offset_time_rate: float = 0.1

    def check(self) -> None:
        """Raise GeneratorError naming the first unusable knob."""
        for name in ("duplicate_rate", "late_rate", "malformed_rate", "refund_rate",
                     "number_amount_rate", "offset_time_rate"):  # fmt: skip
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0 or math.isnan(value):
                raise GeneratorError(f"--{name.replace('_', '-')} must be between 0 and 1, got {value}")
        total = self.duplicate_rate + self.late_rate + self.malformed_rate
        if total > 1.0:
            raise GeneratorError(
                f"--duplicate-rate + --late-rate + --malformed-rate must be <= 1, got {total:g}"
            )
        if not self.regions or not self.categories or not self.currencies:
            raise GeneratorError("regions, categories and currencies must each name at least one value")
        for region in self.regions:
            if re.fullmatch(REGION_PATTERN, region) is None:
                raise GeneratorError(
                    f"region {region!r} does not match the contract pattern {REGION_PATTERN}"
                )
        for category in self.categories:
            if re.fullmatch(CATEGORY_PATTERN, category) is None:
                raise GeneratorError(
                    f"category {category!r} does not match the contract pattern {CATEGORY_PATTERN}"
                )
        if self.partitions < 1:
            raise GeneratorError(f"partitions must be >= 1, got {self.partitions}")
        if not 0 <= self.max_jitter_s < max(self.out_of_orderness_s, 1e-3):
            raise GeneratorError(
                f"max jitter must be below the out-of-orderness ({self.out_of_orderness_s} s), "
                f"got {self.max_jitter_s}"
            )
        for name in ("allowed_lateness_s", "late_margin_s", "late_spread_s", "live_late_warmup_s"):
            if getattr(self, name) < 0:
                raise GeneratorError(f"{name} must be >= 0, got {getattr(self, name)}")

    @property
    def late_offset_ms(self) -> int:
        """Minimum distance between a late event's time and the stream clock."""
        return (self.allowed_lateness_s + 3600 + self.late_margin_s) * SECOND_MS


# --- malformed records: one mutator per way to break the contract ---------------------------------

Doc = dict[str, Any]
Mutator = Callable[[Doc, random.Random], bytes | None]


def _dumps(doc: Doc) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def _with(field_name: str, value: Any) -> Mutator:
    def mutate(doc: Doc, rng: random.Random) -> bytes:
        return _dumps({**doc, field_name: value})

    return mutate


def _without(field_name: str) -> Mutator:
    def mutate(doc: Doc, rng: random.Random) -> bytes:
        return _dumps({k: v for k, v in doc.items() if k != field_name})

    return mutate


def _amount_literal(literal: str) -> Mutator:
    """The amount as a JSON number with exactly this text."""

    def mutate(doc: Doc, rng: random.Random) -> bytes:
        body = _dumps({k: v for k, v in doc.items() if k != "amount"})
        return body[:-1] + b',"amount":' + literal.encode() + b"}"

    return mutate


def _truncated(doc: Doc, rng: random.Random) -> bytes:
    raw = _dumps(doc)
    return raw[: rng.randrange(1, len(raw) - 1)]


def _not_utf8(doc: Doc, rng: random.Random) -> bytes:
    return _dumps({**doc, "customer_id": "@@"}).replace(b"@@", b"\xff\xfe")


@dataclass(frozen=True)
class MalformedKind:
    """A way to break a valid event, and the reason the contract's validator must give it."""

    name: str
    reason: Reason
    mutate: Mutator


MALFORMED_KINDS: Final[tuple[MalformedKind, ...]] = (
    MalformedKind("tombstone", Reason.EMPTY_PAYLOAD, lambda d, r: None),
    MalformedKind("zero_bytes", Reason.EMPTY_PAYLOAD, lambda d, r: b""),
    MalformedKind("latin1_bytes", Reason.NOT_UTF8, _not_utf8),
    MalformedKind("truncated_json", Reason.NOT_JSON, _truncated),
    MalformedKind("nan_amount", Reason.NOT_JSON, _amount_literal("NaN")),
    MalformedKind("json_array", Reason.NOT_OBJECT, lambda d, r: json.dumps(list(d.values())).encode()),
    MalformedKind("json_string", Reason.NOT_OBJECT, lambda d, r: b'"purchase"'),
    MalformedKind("no_event_id", Reason.MISSING_EVENT_ID, _without("event_id")),
    MalformedKind("null_event_id", Reason.MISSING_EVENT_ID, _with("event_id", None)),
    MalformedKind("empty_event_id", Reason.INVALID_EVENT_ID, _with("event_id", "")),
    MalformedKind("long_event_id", Reason.INVALID_EVENT_ID, _with("event_id", "e" * 65)),
    MalformedKind("no_event_type", Reason.MISSING_EVENT_TYPE, _without("event_type")),
    MalformedKind("upper_event_type", Reason.INVALID_EVENT_TYPE, _with("event_type", "PURCHASE")),
    MalformedKind("chargeback", Reason.INVALID_EVENT_TYPE, _with("event_type", "chargeback")),
    MalformedKind("no_event_time", Reason.MISSING_EVENT_TIME, _without("event_time")),
    MalformedKind("epoch_event_time", Reason.INVALID_EVENT_TIME, _with("event_time", 1764000000)),
    MalformedKind("naive_event_time", Reason.INVALID_EVENT_TIME, _with("event_time", "2026-11-24T10:00:00")),
    MalformedKind("feb30_event_time", Reason.INVALID_EVENT_TIME, _with("event_time", "2026-02-30T10:00:00Z")),
    MalformedKind("no_order_id", Reason.MISSING_ORDER_ID, _without("order_id")),
    MalformedKind("numeric_order_id", Reason.INVALID_ORDER_ID, _with("order_id", 123456)),
    MalformedKind("no_customer_id", Reason.MISSING_CUSTOMER_ID, _without("customer_id")),
    MalformedKind("long_customer_id", Reason.INVALID_CUSTOMER_ID, _with("customer_id", "c" * 65)),
    MalformedKind("no_region", Reason.MISSING_REGION, _without("region")),
    MalformedKind("upper_region", Reason.INVALID_REGION, _with("region", "US-East")),
    MalformedKind("no_category", Reason.MISSING_CATEGORY, _without("category")),
    MalformedKind("bad_category", Reason.INVALID_CATEGORY, _with("category", "Home & Garden")),
    MalformedKind("no_currency", Reason.MISSING_CURRENCY, _without("currency")),
    MalformedKind("lower_currency", Reason.INVALID_CURRENCY, _with("currency", "usd")),
    MalformedKind("numeric_currency", Reason.INVALID_CURRENCY, _with("currency", 840)),
    MalformedKind("no_amount", Reason.MISSING_AMOUNT, _without("amount")),
    MalformedKind("comma_amount", Reason.INVALID_AMOUNT, _with("amount", "12,50")),
    MalformedKind("exponent_amount", Reason.INVALID_AMOUNT, _amount_literal("1E3")),
    MalformedKind("bool_amount", Reason.INVALID_AMOUNT, _with("amount", True)),
    MalformedKind("zero_amount", Reason.AMOUNT_NOT_POSITIVE, _with("amount", "0.00")),
    MalformedKind("negative_amount", Reason.AMOUNT_NOT_POSITIVE, _amount_literal("-5")),
    MalformedKind("huge_amount", Reason.AMOUNT_OUT_OF_RANGE, _with("amount", "1000000000000")),
    MalformedKind("precise_amount", Reason.AMOUNT_TOO_PRECISE, _with("amount", "1.23456")),
)


# --- the stateful model -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Line:
    """A purchase that was sent, remembered so a refund can reference it."""

    order_id: str
    customer_id: str
    region: str
    category: str
    currency: Currency
    amount: Decimal
    event_id: str
    partition: int


@dataclass(order=True, slots=True)
class _Pending:
    """An event due at a later stream time: further items of an order, or a refund."""

    due_ms: int
    seq: int
    line: _Line = field(compare=False)
    refund: bool = field(compare=False)


@dataclass(slots=True)
class _Sent:
    clock_ms: int
    key: bytes | None
    value: bytes | None
    partition: int


def _cumulative(weights: list[float]) -> list[float]:
    return list(itertools.accumulate(weights))


def format_event_time(ms: int, offset_min: int) -> str:
    """RFC 3339 with milliseconds: `Z` when the offset is 0, else the local time and its offset."""
    local = from_epoch_ms(ms) + timedelta(minutes=offset_min)
    text = local.strftime("%Y-%m-%dT%H:%M:%S.") + f"{local.microsecond // 1000:03d}"
    if offset_min == 0:
        return text + "Z"
    sign = "+" if offset_min > 0 else "-"
    hours, minutes = divmod(abs(offset_min), 60)
    return f"{text}{sign}{hours:02d}:{minutes:02d}"


def partition_of(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for a key (murmur2, as the Java client)."""
    return (int(murmur2(key)) & 0x7FFFFFFF) % partitions


@dataclass(frozen=True)
class Shard:
    """One of `count` independent slices of the traffic, for producing from several processes.

    A shard owns the partitions p with p % count == index and generates only their records, with
    its own random stream. Redeliveries and refunds stay in the partition of their original, so
    no event id is shared between shards and their truths simply add up."""

    index: int = 0
    count: int = 1

    def partitions(self, total: int) -> tuple[int, ...]:
        if not 0 <= self.index < self.count <= total:
            raise GeneratorError(f"cannot split {total} partition(s) into {self.count} shards")
        return tuple(p for p in range(total) if p % self.count == self.index)

    def seed(self, seed: int) -> int | str:
        """The whole run's seed when unsharded, so one process reproduces the classic stream."""
        return seed if self.count == 1 else f"{seed}/{self.index}/{self.count}"


class TrafficModel:
    """Turns a sequence of stream-clock instants into records, one record per instant."""

    def __init__(self, config: GeneratorConfig, *, floor_ms: int | None = None,
                 late_not_before_ms: int | None = None, shard: Shard = Shard()) -> None:  # fmt: skip
        """`floor_ms`: no event time before this (history keeps every event in its range);
        `late_not_before_ms`: no late events before this clock (lets a consumer's watermark form)."""
        config.check()
        self.config = config
        self._owned = shard.partitions(config.partitions)
        self._rng = random.Random(shard.seed(config.seed))
        self._floor_ms = floor_ms
        self._late_not_before_ms = late_not_before_ms
        self._pending: list[_Pending] = []
        self._pending_seq = 0
        self._sent: list[_Sent] = []  # valid and late records, for redeliveries
        self._sent_start = 0
        self._next_partition = 0
        self._spare_ids: dict[int, list[str]] = {p: [] for p in self._owned}
        self._region_cum = _cumulative([REGIONS.get(r, (0.1, 0, ()))[0] for r in config.regions])
        self._category_cum = _cumulative(
            [CATEGORIES.get(c, _DEFAULT_CATEGORY_PRICE)[0] for c in config.categories]
        )
        self._currencies = {c.code: c for c in config.currencies}
        self._region_currencies = {r: self._currencies_for(r) for r in config.regions}
        self._customers = 5000

    def _currencies_for(self, region: str) -> tuple[list[Currency], list[float]]:
        native = [(self._currencies[code], w) for code, w in REGIONS.get(region, (0, 0, ()))[2]
                  if code in self._currencies]  # fmt: skip
        if not native:  # a region of its own, or its currencies were filtered out
            native = [(c, 1.0) for c in self.config.currencies]
        return [c for c, _ in native], _cumulative([w for _, w in native])

    def _pick(self, population: Sequence[T], cumulative: list[float]) -> T:
        """Weighted choice (random.choices with cum_weights, without its per-call overhead)."""
        return population[bisect.bisect(cumulative, self._rng.random() * cumulative[-1])]

    # -- the one entry point ----------------------------------------------------------------------

    def next_record(self, clock_ms: int) -> GeneratedRecord:
        """The record sent at stream time `clock_ms` (call with non-decreasing clocks)."""
        cfg, r = self.config, self._rng.random()
        if r < cfg.malformed_rate:
            return self._malformed(clock_ms)
        r -= cfg.malformed_rate
        if r < cfg.duplicate_rate:
            dup = self._duplicate(clock_ms)
            if dup is not None:
                return dup
        elif r - cfg.duplicate_rate < cfg.late_rate:
            late = self._late(clock_ms)
            if late is not None:
                return late
        return self._valid(clock_ms)

    # -- valid events -------------------------------------------------------------------------------

    def _valid(self, clock_ms: int) -> GeneratedRecord:
        event_ms = self._jittered(clock_ms)
        if self._pending and self._pending[0].due_ms <= clock_ms:
            item = heapq.heappop(self._pending)
            if item.refund:
                return self._emit_refund(item.line, event_ms, clock_ms)
            return self._emit_purchase(item.line, event_ms, clock_ms, Kind.VALID)
        line = self._new_order(clock_ms)
        return self._emit_purchase(line, event_ms, clock_ms, Kind.VALID)

    def _jittered(self, clock_ms: int) -> int:
        """An on-time event's time: up to max_jitter behind the clock, never before the floor."""
        event_ms = clock_ms - int(self._rng.random() * self.config.max_jitter_s * SECOND_MS)
        return event_ms if self._floor_ms is None else max(event_ms, self._floor_ms)

    def _new_order(self, clock_ms: int, *, single: bool = False) -> _Line:
        """First line of a new order; further lines (unless `single`) follow a few seconds later."""
        rng, cfg = self._rng, self.config
        region = self._pick(cfg.regions, self._region_cum)
        currency = self._pick(*self._region_currencies[region])
        partition = self._round_robin()
        order_id = self._order_id(partition)
        customer_id = f"{region}-c{rng.randrange(self._customers):06d}"
        category = self._category()
        line = self._line(order_id, customer_id, region, category, currency, partition)
        items = 1
        while not single and items < 5 and rng.random() < 0.35:
            items += 1
            same = rng.random() < 0.7
            extra = self._line(order_id, customer_id, region, category if same else self._category(),
                               currency, partition)  # fmt: skip
            self._schedule(clock_ms + rng.randrange(200, 5 * SECOND_MS), extra, refund=False)
        return line

    def _round_robin(self) -> int:
        partition = self._owned[self._next_partition]
        self._next_partition = (self._next_partition + 1) % len(self._owned)
        return partition

    def _order_id(self, partition: int) -> str:
        """A random order id that Kafka's default partitioner maps to `partition`.

        Orders go round-robin over the partitions, so every partition keeps receiving events and
        the speed layer's watermark (the minimum over partitions) keeps moving."""
        spare = self._spare_ids[partition]
        if spare:
            return spare.pop()
        while True:
            order_id = f"o-{self._rng.getrandbits(56):014x}"
            hashed = partition_of(order_id.encode(), self.config.partitions)
            if hashed == partition:
                return order_id
            if hashed in self._spare_ids:
                self._spare_ids[hashed].append(order_id)  # kept for that partition's next order

    def _category(self) -> str:
        return self._pick(self.config.categories, self._category_cum)

    def _line(self, order_id: str, customer_id: str, region: str, category: str, currency: Currency,
              partition: int) -> _Line:  # fmt: skip
        return _Line(order_id, customer_id, region, category, currency,
                     self._amount(category, currency), self._event_id(), partition)  # fmt: skip

    def _event_id(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))

    def _amount(self, category: str, currency: Currency) -> Decimal:
        """A basket line: quantity x a log-normal unit price, in the currency's minor units."""
        rng = self._rng
        _, median, sigma = CATEGORIES.get(category, _DEFAULT_CATEGORY_PRICE)
        quantity = 1 if rng.random() < 0.75 else rng.randint(2, 4)
        usd = rng.lognormvariate(math.log(median), sigma)
        unit = Decimal(usd * currency.per_usd).quantize(Decimal(1).scaleb(-currency.decimals), ROUND_DOWN)
        if currency.decimals == 2 and rng.random() < 0.5 and unit >= 1:
            unit = unit.to_integral_value(ROUND_DOWN) + Decimal("0.99")  # charm pricing
        minor = Decimal(1).scaleb(-currency.decimals)
        return min(max(unit, minor) * quantity, _MAX_AMOUNT)

    def _schedule(self, due_ms: int, line: _Line, *, refund: bool) -> None:
        self._pending_seq += 1
        heapq.heappush(self._pending, _Pending(due_ms, self._pending_seq, line, refund))

    def _emit_purchase(self, line: _Line, event_ms: int, clock_ms: int, kind: Kind) -> GeneratedRecord:
        rng = self._rng
        if kind is Kind.VALID and rng.random() < self.config.refund_rate:
            delay = min(int(rng.expovariate(1 / (20 * MINUTE_MS))) + MINUTE_MS, 3 * HOUR_MS)
            self._schedule(clock_ms + delay, line, refund=True)
        doc = self._doc(line.event_id, "purchase", event_ms, line, line.amount)
        doc["channel"] = rng.choice(("web", "app", "app", "marketplace"))
        return self._record(line, doc, line.amount, clock_ms, kind)

    def _emit_refund(self, original: _Line, event_ms: int, clock_ms: int) -> GeneratedRecord:
        """A full or partial refund of an earlier purchase, in the same order and key."""
        rng = self._rng
        amount = original.amount
        if rng.random() < 0.45:
            minor = Decimal(1).scaleb(-original.currency.decimals)
            part = (amount * Decimal(rng.randint(10, 90)) / 100).quantize(minor, ROUND_DOWN)
            amount = part if part > 0 else amount
        event_id = self._event_id()
        doc = self._doc(event_id, "refund", event_ms, original, amount)
        doc["refund_of"] = original.event_id
        return self._record(original, doc, amount, clock_ms, Kind.VALID)

    def _doc(self, event_id: str, event_type: str, event_ms: int, line: _Line, amount: Decimal) -> Doc:
        offset = 0
        if self._rng.random() < self.config.offset_time_rate:
            offset = REGIONS.get(line.region, (0, 0, ()))[1]
        return {
            "event_id": event_id,
            "event_type": event_type,
            "event_time": format_event_time(event_ms, offset),
            "order_id": line.order_id,
            "customer_id": line.customer_id,
            "region": line.region,
            "category": line.category,
            "currency": line.currency.code,
            "amount": format(amount, "f"),
        }

    def _record(self, line: _Line, doc: Doc, amount: Decimal, clock_ms: int, kind: Kind) -> GeneratedRecord:
        if self._rng.random() < self.config.number_amount_rate:
            value = _amount_literal(format(amount, "f"))(doc, self._rng)
        else:
            value = _dumps(doc)
        key = line.order_id.encode()
        self._sent.append(_Sent(clock_ms, key, value, line.partition))
        return GeneratedRecord(key, value, line.partition, clock_ms, kind, kind.value)

    # -- late, duplicate and malformed records --------------------------------------------------------

    def _late(self, clock_ms: int) -> GeneratedRecord | None:
        """A new purchase whose hour closed long ago (None while no such time is allowed)."""
        cfg = self.config
        if self._late_not_before_ms is not None and clock_ms < self._late_not_before_ms:
            return None
        newest = clock_ms - cfg.late_offset_ms
        oldest = newest - cfg.late_spread_s * SECOND_MS
        if self._floor_ms is not None:
            oldest = max(oldest, self._floor_ms)
        if oldest > newest:
            return None
        event_ms = self._rng.randint(oldest, newest)
        line = self._new_order(clock_ms, single=True)
        return self._emit_purchase(line, event_ms, clock_ms, Kind.LATE)

    def _duplicate(self, clock_ms: int) -> GeneratedRecord | None:
        """A redelivery of an earlier record: same key, partition and bytes. Mostly within a few
        records (a producer retry), sometimes minutes later (a consumer-side replay upstream)."""
        sent, rng = self._sent, self._rng
        start = self._sent_start
        if start >= len(sent):
            return None
        if rng.random() < 0.7:
            index = max(start, len(sent) - 1 - rng.randrange(20))
        else:
            age_ms = rng.randrange(MINUTE_MS, 10 * MINUTE_MS)
            index = bisect.bisect_right(sent, clock_ms - age_ms, lo=start, key=lambda s: s.clock_ms) - 1
            index = max(index, start)
        original = sent[index]
        self._trim(clock_ms)
        return GeneratedRecord(original.key, original.value, original.partition, clock_ms,
                               Kind.DUPLICATE, Kind.DUPLICATE.value)  # fmt: skip

    def _trim(self, clock_ms: int) -> None:
        """Forget records older than 15 minutes of stream time (bounded memory for long runs)."""
        horizon = clock_ms - 15 * MINUTE_MS
        sent = self._sent
        while self._sent_start < len(sent) and sent[self._sent_start].clock_ms < horizon:
            self._sent_start += 1
        if self._sent_start > 100_000:
            del sent[: self._sent_start]
            self._sent_start = 0

    def _malformed(self, clock_ms: int) -> GeneratedRecord:
        rng = self._rng
        kind = rng.choice(MALFORMED_KINDS)
        partition = self._round_robin()
        order_id = self._order_id(partition)
        currency = rng.choice(self.config.currencies)
        region = rng.choice(self.config.regions)
        line = _Line(order_id, f"{region}-c{rng.randrange(self._customers):06d}", region,
                     self._category(), currency, Decimal(1), self._event_id(), partition)  # fmt: skip
        event_ms = self._jittered(clock_ms)
        doc = self._doc(line.event_id, "purchase", event_ms, line, self._amount(line.category, currency))
        return GeneratedRecord(order_id.encode(), kind.mutate(doc, rng), partition, clock_ms,
                               Kind.MALFORMED, kind.reason.value)  # fmt: skip


# --- the two modes ------------------------------------------------------------------------------------


def range_bounds(first: date, last: date) -> tuple[datetime, datetime]:
    """[first 00:00, day after last 00:00) in UTC: both dates inclusive."""
    if first > last:
        raise GeneratorError(f"--from {first.isoformat()} is after --to {last.isoformat()}")
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    return start, datetime(last.year, last.month, last.day, tzinfo=UTC) + timedelta(days=1)


def history_clocks(start: datetime, end: datetime, count: int, seed: int) -> Iterator[int]:
    """`count` send instants over [start, end), ascending, dense where the diurnal curve is high."""
    start_ms, end_ms = to_epoch_ms(start), to_epoch_ms(end)
    hour_starts = list(range(start_ms - start_ms % HOUR_MS, end_ms, HOUR_MS))
    spans = [(max(h, start_ms), min(h + HOUR_MS, end_ms)) for h in hour_starts]
    weights = [
        diurnal_weight(from_epoch_ms(h).hour) * (hi - lo)
        for h, (lo, hi) in zip(hour_starts, spans, strict=True)
    ]
    total = sum(weights)
    exact = [count * w / total for w in weights]
    counts = [int(x) for x in exact]
    # Largest remainders get the leftover records, so the counts add up exactly.
    by_remainder = sorted(range(len(exact)), key=lambda i: exact[i] - counts[i], reverse=True)
    for i in by_remainder[: count - sum(counts)]:
        counts[i] += 1
    rng = random.Random(seed ^ 0x5EED)
    for (lo, hi), n in zip(spans, counts, strict=True):
        yield from sorted(rng.randrange(lo, hi) for _ in range(n))


SYNC_EVERY_MS: Final = MINUTE_MS


def history(config: GeneratorConfig, start: datetime, end: datetime, count: int,
            stop: Callable[[], bool] = lambda: False, shard: Shard = Shard(),
            sync: Callable[[], None] | None = None) -> Iterator[GeneratedRecord]:  # fmt: skip
    """`count` records whose send times cover [start, end); late events keep their times in range.

    `sync` is called at every minute of stream time (the same number of times in every shard):
    shards producing in parallel wait for each other there, so no partition runs ahead of the
    others in stream time by more than a minute and a consumer reading while they produce sees
    late events after their hour closed, as the truth says."""
    if count < 0:
        raise GeneratorError(f"--events must be >= 0, got {count}")
    if start >= end:
        raise GeneratorError("the time range is empty")
    model = TrafficModel(config, floor_ms=to_epoch_ms(start), shard=shard)
    # Send slot i belongs to partition slot i % partitions; a shard takes its partitions' slots.
    owned = set(shard.partitions(config.partitions))
    next_sync, end_ms = to_epoch_ms(start) + SYNC_EVERY_MS, to_epoch_ms(end)
    for i, clock_ms in enumerate(history_clocks(start, end, count, config.seed)):
        if i % config.partitions not in owned:
            continue
        if stop():
            return
        while sync is not None and clock_ms >= next_sync:
            sync()
            next_sync += SYNC_EVERY_MS
        yield model.next_record(clock_ms)
    while sync is not None and next_sync < end_ms and not stop():
        sync()
        next_sync += SYNC_EVERY_MS


def live(config: GeneratorConfig, rate: float, seconds: float | None, now: Callable[[], float],
         sleep: Callable[[float], None], stop: Callable[[], bool] = lambda: False,
         shard: Shard = Shard()) -> Iterator[GeneratedRecord]:  # fmt: skip
    """Records at `rate` per second with the wall clock as stream clock, for `seconds` or until
    `stop()`. `now`/`sleep` are injected (time.time, time.sleep) so tests can drive the clock."""
    if not rate > 0 or math.isinf(rate):
        raise GeneratorError(f"--rate must be a positive number of events per second, got {rate}")
    if seconds is not None and not seconds > 0:
        raise GeneratorError(f"--seconds must be > 0, got {seconds}")
    t0 = now()
    warm_ms = int(t0 * 1000) + config.live_late_warmup_s * SECOND_MS
    model = TrafficModel(config, late_not_before_ms=warm_ms, shard=shard)
    rate = rate * len(shard.partitions(config.partitions)) / config.partitions  # this shard's share
    sent = 0
    while not stop():
        t = now()
        if seconds is not None and t - t0 >= seconds:
            return
        due = t0 + sent / rate
        if due > t:
            sleep(min(due - t, 0.05))
            continue
        # Catch up in small bursts when behind, but never past the schedule.
        while sent < (t - t0) * rate + 1:
            yield model.next_record(int(t * 1000))
            sent += 1
            if seconds is not None and sent >= seconds * rate:
                return


def malformed_kinds_by_reason() -> dict[Reason, list[MalformedKind]]:
    """Every Reason the generator produces, with the mutators that produce it."""
    out: dict[Reason, list[MalformedKind]] = {}
    for kind in MALFORMED_KINDS:
        out.setdefault(kind.reason, []).append(kind)
    return out


def describe(records: Sequence[GeneratedRecord]) -> dict[str, int]:
    """Counts by `expect` label (valid, duplicate, late, each reason)."""
    counts: dict[str, int] = {}
    for rec in records:
        counts[rec.expect] = counts.get(rec.expect, 0) + 1
    return counts
