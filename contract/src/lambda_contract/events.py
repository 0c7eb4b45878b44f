"""The orders.v1 event contract (docs/contract.md): rules, reason codes and the reference validator.

The rules are data (`RULES`, the regular expressions below) so that every engine evaluates the
same definition: Flink SQL in the speed layer and Spark SQL in the batch layer translate these
rules into their own dialects, and this module's `validate` is the reference both are tested
against with the golden set. Checks run in a fixed order and the first failure is the reason.
"""

from __future__ import annotations

import enum
import json
import re
from _json import scanstring  # the C string scanner json.loads uses
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import accumulate
from typing import Final


class Reason(enum.StrEnum):
    """Why an event is malformed. Machine-readable, stable, and a bounded label set for metrics."""

    EMPTY_PAYLOAD = "empty_payload"
    NOT_UTF8 = "not_utf8"
    NOT_JSON = "not_json"
    NOT_OBJECT = "not_object"
    MISSING_EVENT_ID = "missing_event_id"
    INVALID_EVENT_ID = "invalid_event_id"
    MISSING_EVENT_TYPE = "missing_event_type"
    INVALID_EVENT_TYPE = "invalid_event_type"
    MISSING_EVENT_TIME = "missing_event_time"
    INVALID_EVENT_TIME = "invalid_event_time"
    MISSING_ORDER_ID = "missing_order_id"
    INVALID_ORDER_ID = "invalid_order_id"
    MISSING_CUSTOMER_ID = "missing_customer_id"
    INVALID_CUSTOMER_ID = "invalid_customer_id"
    MISSING_REGION = "missing_region"
    INVALID_REGION = "invalid_region"
    MISSING_CATEGORY = "missing_category"
    INVALID_CATEGORY = "invalid_category"
    MISSING_CURRENCY = "missing_currency"
    INVALID_CURRENCY = "invalid_currency"
    MISSING_AMOUNT = "missing_amount"
    INVALID_AMOUNT = "invalid_amount"
    AMOUNT_NOT_POSITIVE = "amount_not_positive"
    AMOUNT_OUT_OF_RANGE = "amount_out_of_range"
    AMOUNT_TOO_PRECISE = "amount_too_precise"


class FieldKind(enum.StrEnum):
    """How a field's JSON value is checked."""

    ID = "id"  # JSON string of 1..64 Unicode code points (ID_PATTERN)
    ENUM = "enum"  # JSON string equal to one of `allowed`
    TIMESTAMP = "timestamp"  # JSON string matching RFC3339_PATTERN and a real calendar instant
    PATTERN = "pattern"  # JSON string fully matching `pattern`
    AMOUNT = "amount"  # JSON string or JSON number; its text checked by the AMOUNT_* patterns


@dataclass(frozen=True)
class FieldRule:
    """One field of the contract, in check order."""

    name: str
    kind: FieldKind
    missing: Reason
    invalid: Reason
    pattern: str | None = None
    allowed: tuple[str, ...] = ()


EVENT_TYPES: Final = ("purchase", "refund")

# Every pattern below must match the WHOLE value: Python `re.fullmatch`, or in a JVM engine the
# form that `java_regex` returns (a bare `^...$` would also accept a trailing newline in both).

# RFC 3339 date-time with a mandatory offset; 'T' and 'Z' upper case. Fractions up to
# nanoseconds are accepted and truncated to milliseconds for event-time processing.
# The calendar (month lengths, leap years, hour < 24, minute/second < 60, offset <= 23:59)
# is checked beyond the pattern; a leap second (:60) is invalid.
RFC3339_PATTERN: Final = (
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})"
)
# Identifiers: 1..64 Unicode code points, any characters (an engine may check the length instead).
ID_MAX_CHARS: Final = 64
ID_PATTERN: Final = rf"[\s\S]{{1,{ID_MAX_CHARS}}}"
REGION_PATTERN: Final = r"[a-z0-9-]{1,32}"
CATEGORY_PATTERN: Final = r"[a-z0-9_-]{1,32}"
# The ISO-4217 form: three upper-case letters. Whether a code has an FX rate is the serving
# layer's concern (it reports unknown rates), so no list of codes is baked into the contract.
CURRENCY_PATTERN: Final = r"[A-Z]{3}"

# Amount checks, applied in this order to the amount's text (a JSON string's content, or a JSON
# number's literal text exactly as it appears in the payload; never via binary floating point).
# 1. syntax: plain decimal notation, optional minus sign, no exponent, no '+', no blanks.
AMOUNT_SYNTAX_PATTERN: Final = r"-?[0-9]+(\.[0-9]+)?"
# 2. a minus sign or a zero value is not positive.
AMOUNT_NOT_POSITIVE_PATTERN: Final = r"-[\s\S]*|0+(\.0+)?"
# 3. at most 12 integer digits once leading zeros are dropped, so the value is < 10^12.
AMOUNT_RANGE_PATTERN: Final = r"0*[0-9]{1,12}(\.[0-9]+)?"
# 4. at most 4 significant fractional digits (trailing zeros do not count: 1.50000 is 1.5).
AMOUNT_SCALE_PATTERN: Final = r"[0-9]+(\.[0-9]{0,4}0*)?"

AMOUNT_SCALE: Final = 4
"""Fractional digits of every stored amount and revenue: DECIMAL(16,4) per event, DECIMAL(38,4) sums."""
AMOUNT_PRECISION: Final = 16
SUM_PRECISION: Final = 38

MAX_JSON_DEPTH: Final = 1000
"""The deepest nesting of JSON objects and arrays a payload may have; deeper is `not_json`.

Depth counts the containers open at once: the document's own object or array is level 1, so `{}`
and `"x"` have depth 1 and 0, `{"a": [1]}` has depth 2. This is the limit the JVM engines'
parser enforces: Jackson's `StreamReadConstraints` default `maxNestingDepth` (jackson-core 2.18
shaded in Flink 2.2, 2.21 in Spark 4.2; tests/speed and tests/batch check the boundary). `validate`
counts it itself, so its verdict does not depend on Python's recursion limit or the caller's stack.
"""

RULES: Final[tuple[FieldRule, ...]] = (
    FieldRule("event_id", FieldKind.ID, Reason.MISSING_EVENT_ID, Reason.INVALID_EVENT_ID, ID_PATTERN),
    FieldRule(
        "event_type",
        FieldKind.ENUM,
        Reason.MISSING_EVENT_TYPE,
        Reason.INVALID_EVENT_TYPE,
        allowed=EVENT_TYPES,
    ),
    FieldRule(
        "event_time",
        FieldKind.TIMESTAMP,
        Reason.MISSING_EVENT_TIME,
        Reason.INVALID_EVENT_TIME,
        pattern=RFC3339_PATTERN,
    ),
    FieldRule("order_id", FieldKind.ID, Reason.MISSING_ORDER_ID, Reason.INVALID_ORDER_ID, ID_PATTERN),
    FieldRule(
        "customer_id",
        FieldKind.ID,
        Reason.MISSING_CUSTOMER_ID,
        Reason.INVALID_CUSTOMER_ID,
        ID_PATTERN,
    ),
    FieldRule("region", FieldKind.PATTERN, Reason.MISSING_REGION, Reason.INVALID_REGION, REGION_PATTERN),
    FieldRule(
        "category",
        FieldKind.PATTERN,
        Reason.MISSING_CATEGORY,
        Reason.INVALID_CATEGORY,
        CATEGORY_PATTERN,
    ),
    FieldRule(
        "currency",
        FieldKind.PATTERN,
        Reason.MISSING_CURRENCY,
        Reason.INVALID_CURRENCY,
        CURRENCY_PATTERN,
    ),
    FieldRule("amount", FieldKind.AMOUNT, Reason.MISSING_AMOUNT, Reason.INVALID_AMOUNT),
)
"""The fields in check order. A JSON null counts as missing; a value of another JSON type is invalid."""

_RFC3339 = re.compile(RFC3339_PATTERN)
_REGEX = {rule.name: re.compile(rule.pattern) for rule in RULES if rule.pattern}
_AMOUNT_SYNTAX = re.compile(AMOUNT_SYNTAX_PATTERN)
_AMOUNT_NOT_POSITIVE = re.compile(AMOUNT_NOT_POSITIVE_PATTERN)
_AMOUNT_RANGE = re.compile(AMOUNT_RANGE_PATTERN)
_AMOUNT_SCALE = re.compile(AMOUNT_SCALE_PATTERN)


@dataclass(frozen=True)
class Event:
    """A valid event, normalised: UTC instant (ms precision) and an exact amount of scale 4."""

    event_id: str
    event_type: str
    event_time: datetime
    order_id: str
    customer_id: str
    region: str
    category: str
    currency: str
    amount: Decimal

    @property
    def signed_amount(self) -> Decimal:
        """Revenue contribution: purchases add, refunds subtract."""
        return self.amount if self.event_type == "purchase" else -self.amount

    @property
    def event_time_ms(self) -> int:
        return int((self.event_time - _EPOCH) // timedelta(milliseconds=1))


@dataclass(frozen=True)
class Invalid:
    """A malformed event: the reason, and the event time when it could be read (for bucketing)."""

    reason: Reason
    event_time: datetime | None = None


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


class _Number(str):
    """A JSON number kept as its literal text, so amounts never pass through a float."""

    __slots__ = ()


def _decode(payload: bytes | str | None) -> object | Reason:
    if payload is None or len(payload) == 0:
        return Reason.EMPTY_PAYLOAD
    if isinstance(payload, bytes):
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            return Reason.NOT_UTF8
    else:
        text = payload
    # Counting every bracket (inside strings too) bounds the depth from above: usually that is enough.
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH and json_depth(text) > MAX_JSON_DEPTH:
        return Reason.NOT_JSON
    try:
        try:
            doc: object = json.loads(
                text,
                parse_float=_Number,
                parse_int=_Number,
                parse_constant=_reject_constant,
            )
        except RecursionError:
            # At most MAX_JSON_DEPTH levels, but the caller's stack leaves json too little room.
            doc = _loads_without_recursion(text)
        return doc
    except ValueError:
        return Reason.NOT_JSON


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")


# A JSON string literal from its opening quote; an unterminated one runs to the end of the text.
# Possessive, so no input makes it backtrack.
_JSON_STRING: Final = re.compile(r'"(?:[^"\\]++|\\[\s\S]?+)*+(?:"|\Z)')
_NOT_BRACKET: Final = re.compile(r"[^\[\]{}]++")
_BRACKET_STEP: Final = {"[": 1, "{": 1, "]": -1, "}": -1}


def json_depth(text: str) -> int:
    """The deepest nesting of objects and arrays in JSON text (MAX_JSON_DEPTH explains depth).

    A scan, not a parse: brackets inside string literals are skipped. Exact for well-formed JSON.
    For malformed text it is at least the depth a parser reaches before it finds the first error
    (up to there the text is well-formed), which is all `validate` needs: deeper text is
    `not_json` either way.
    """
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    return max(accumulate(map(_BRACKET_STEP.__getitem__, brackets)), default=0)


_JSON_BLANKS: Final = re.compile(r"[ \t\n\r]*")
# A JSON number as CPython's json scanner reads it (ASCII digits; an incomplete fraction or
# exponent is left out of the number, and then fails as the next token).
_JSON_NUMBER: Final = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")
_JSON_LITERALS: Final[tuple[tuple[str, object], ...]] = (("null", None), ("true", True), ("false", False))


def _loads_without_recursion(text: str) -> object:
    """What `_decode`'s json.loads call returns for `text`, with an explicit stack of open
    containers instead of recursion, so any depth fits in any caller's stack.

    The same grammar as CPython's json scanner (blanks, number syntax, strict strings through
    json's own C `scanstring`, NaN and Infinity rejected, the last of duplicate keys wins);
    ValueError for malformed text. Used only when json.loads runs out of stack.
    """

    def blanks(i: int) -> int:
        """The index after the blanks starting at i."""
        found = _JSON_BLANKS.match(text, i)
        return i if found is None else found.end()

    open_: list[list[object] | dict[str, object]] = []
    keys: list[str] = []  # the pending key of each open object

    def key_at(i: int) -> int:
        if not text.startswith('"', i):
            raise ValueError(f"Expecting property name enclosed in double quotes at {i}")
        key, i = scanstring(text, i + 1, True)
        i = blanks(i)
        if not text.startswith(":", i):
            raise ValueError(f"Expecting ':' delimiter at {i}")
        keys.append(key)
        return blanks(i + 1)

    i = blanks(0)
    while True:
        # A value starts at i.
        value: object
        char = text[i : i + 1]
        if char == "{":
            i = blanks(i + 1)
            if not text.startswith("}", i):
                open_.append({})
                i = key_at(i)
                continue
            value, i = {}, i + 1
        elif char == "[":
            i = blanks(i + 1)
            if not text.startswith("]", i):
                open_.append([])
                continue
            value, i = [], i + 1
        elif char == '"':
            value, i = scanstring(text, i + 1, True)
        elif number := _JSON_NUMBER.match(text, i):
            value, i = _Number(number.group()), number.end()
        else:
            for literal, constant in _JSON_LITERALS:
                if text.startswith(literal, i):
                    value, i = constant, i + len(literal)
                    break
            else:
                raise ValueError(f"Expecting value at {i}")
        # A value ended at i: add it to its container, closing the containers that end here.
        while True:
            i = blanks(i)
            if not open_:
                if i != len(text):
                    raise ValueError(f"Extra data at {i}")
                return value
            container = open_[-1]
            if isinstance(container, list):
                container.append(value)
                close = "]"
            else:
                container[keys.pop()] = value
                close = "}"
            if text.startswith(",", i):
                i = blanks(i + 1)
                if isinstance(container, dict):
                    i = key_at(i)
                break
            if not text.startswith(close, i):
                raise ValueError(f"Expecting ',' delimiter at {i}")
            value, i = open_.pop(), i + 1


def java_regex(pattern: str) -> str:
    """A contract pattern as a whole-value Java regex for find()-style SQL functions."""
    return rf"^(?:{pattern})\z"


def parse_event_time(text: str) -> datetime | None:
    """RFC 3339 text to an aware UTC datetime truncated to milliseconds; None if invalid."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    fraction, offset = m.group(7), m.group(8)
    millis = int((fraction[1:] + "000")[:3]) if fraction else 0
    try:
        local = datetime(year, month, day, hour, minute, second, millis * 1000, tzinfo=UTC)
    except ValueError:
        return None
    if offset != "Z":
        off_h, off_m = int(offset[1:3]), int(offset[4:6])
        if off_h > 23 or off_m > 59:
            return None
        delta = timedelta(hours=off_h, minutes=off_m)
        try:
            local = local - delta if offset[0] == "+" else local + delta
        except OverflowError:  # e.g. 0001-01-01T00:00:00+01:00 is before year 1 in UTC
            return None
    return local


def check_amount(text: str) -> Reason | None:
    """Apply the amount patterns in contract order; None when the amount is valid."""
    if not _AMOUNT_SYNTAX.fullmatch(text):
        return Reason.INVALID_AMOUNT
    if _AMOUNT_NOT_POSITIVE.fullmatch(text):
        return Reason.AMOUNT_NOT_POSITIVE
    if not _AMOUNT_RANGE.fullmatch(text):
        return Reason.AMOUNT_OUT_OF_RANGE
    if not _AMOUNT_SCALE.fullmatch(text):
        return Reason.AMOUNT_TOO_PRECISE
    return None


def normalize_amount(text: str) -> Decimal:
    """A valid amount's text as an exact Decimal with exactly AMOUNT_SCALE fractional digits."""
    return Decimal(text).quantize(Decimal(1).scaleb(-AMOUNT_SCALE))


def validate(payload: bytes | str | None) -> Event | Invalid:
    """Classify one raw orders.v1 value. Never raises: every malformed input gets a Reason.

    Nesting deeper than MAX_JSON_DEPTH is `not_json` at any stack depth of the caller; the
    process's recursion limit is neither read nor changed.
    """
    doc = _decode(payload)
    if isinstance(doc, Reason):
        return Invalid(doc)
    if not isinstance(doc, dict):
        return Invalid(Reason.NOT_OBJECT)
    values: dict[str, object] = {}
    event_time: datetime | None = None
    # The event time is read first, independently of check order, so that a malformed event
    # with a readable time can still be bucketed by its event date (see tables.event_date rule).
    raw_time = doc.get("event_time")
    if type(raw_time) is str:
        event_time = parse_event_time(raw_time)
    for rule in RULES:
        value = doc.get(rule.name)
        if value is None:
            return Invalid(rule.missing, event_time)
        reason = _check_field(rule, value)
        if reason is not None:
            return Invalid(reason, event_time)
        values[rule.name] = value
    assert event_time is not None  # the TIMESTAMP rule passed
    return Event(
        event_id=str(values["event_id"]),
        event_type=str(values["event_type"]),
        event_time=event_time,
        order_id=str(values["order_id"]),
        customer_id=str(values["customer_id"]),
        region=str(values["region"]),
        category=str(values["category"]),
        currency=str(values["currency"]),
        amount=normalize_amount(str(values["amount"])),
    )


def _check_field(rule: FieldRule, value: object) -> Reason | None:
    if rule.kind is FieldKind.AMOUNT:
        # A JSON number arrives as _Number (a str subclass); a JSON string as plain str.
        if not isinstance(value, str):
            return rule.invalid
        return check_amount(str(value))
    # Every other field must be a JSON string (type() excludes _Number, i.e. JSON numbers).
    if type(value) is not str:
        return rule.invalid
    if rule.kind is FieldKind.ENUM:
        ok = value in rule.allowed
    elif rule.kind is FieldKind.TIMESTAMP:
        ok = parse_event_time(value) is not None
    else:
        ok = _REGEX[rule.name].fullmatch(value) is not None
    return None if ok else rule.invalid
