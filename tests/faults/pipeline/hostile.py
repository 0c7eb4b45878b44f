"""Hostile payloads for orders.v1, generated with hypothesis, each with the contract's verdict.

Families (the issue's list): random bytes, invalid UTF-8, deep nesting, huge strings, ~1 MB
messages, numbers out of range, unicode look-alikes in region names, plus ill-typed fields and
duplicate JSON keys. Event times stay on one UTC date (or are unreadable, when the Kafka
timestamp's date applies), so the batch recomputes one date. The expected verdict of every
payload is what `lambda_contract.events.validate()` says: the layers must agree with it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from lambda_contract.events import MAX_JSON_DEPTH, RULES, Event, validate

# Yesterday (UTC): a recent date, so broker retention (7 days) never removes the records mid-test.
DAY: Final = datetime.now(UTC).date() - timedelta(days=1)
KAFKA_TS_MS: Final = int(datetime(DAY.year, DAY.month, DAY.day, 12, 30, tzinfo=UTC).timestamp() * 1000)
EVENT_TIME: Final = f"{DAY.isoformat()}T12:15:00.000Z"
MB: Final = 1 << 20


def event(event_id: str, /, **fields: Any) -> dict[str, Any]:
    """A valid event with `fields` replaced (event_id too, when it is one of them)."""
    doc: dict[str, Any] = {
        "event_id": event_id,
        "event_type": "purchase",
        "event_time": EVENT_TIME,
        "order_id": "o-1",
        "customer_id": "c-1",
        "region": "eu-west",
        "category": "books",
        "currency": "USD",
        "amount": "12.34",
    }
    doc.update(fields)
    return doc


def dumps(doc: object) -> bytes:
    return json.dumps(doc, ensure_ascii=False).encode()


LOOKALIKE_REGIONS: Final = [
    "eu\u2010west",
    "\u0435u-west",
    "eu-w\u0435st",
    "\uff45\uff55-west",
    "eu-west\u200b",
    "\u200beu-west",
    "eu\u2212west",
    "EU-WEST",
    "eu-we\u017ft",
    "eu-west\u0301",
    "eu_west",
]
OUT_OF_RANGE: Final = [
    "1000000000000",
    "999999999999.99999",
    "1e12",
    "1E-5",
    "1e400",
    "-0",
    "0",
    "0.00000",
    "9" * 400,
    "0." + "0" * 300 + "1",
    "NaN",
    "Infinity",
    "-Infinity",
    "0x10",
    "1_000",
    " 1.00",
    "+1.00",
    "١٢٣",  # Arabic-Indic digits
]

fields = st.sampled_from([rule.name for rule in RULES])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)


@st.composite
def random_bytes(draw: st.DrawFn) -> bytes:
    return draw(st.binary(min_size=1, max_size=4096))


@st.composite
def invalid_utf8(draw: st.DrawFn) -> bytes:
    text = dumps(event(f"u8-{draw(st.integers(0, 10**6))}"))
    at = draw(st.integers(0, len(text)))
    bad = draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80"]))
    return text[:at] + bad + text[at:]


@st.composite
def deep_nesting(draw: st.DrawFn) -> bytes:
    # The document's depth as MAX_JSON_DEPTH counts it, on both sides of the contract's limit.
    limit = MAX_JSON_DEPTH
    depth = draw(st.sampled_from([64, 500, limit - 1, limit, limit + 1, 10_000, 100_000]))
    kind = draw(st.sampled_from(["array", "object", "in_field", "unknown_field"]))
    if kind == "array":
        return b"[" * depth + b"]" * depth
    if kind == "object":
        return b'{"a":' * depth + b"1" + b"}" * depth
    inner = depth - 1  # the event object is one level
    nested = '{"a":' * inner + "1" + "}" * inner
    field = draw(fields) if kind == "in_field" else "extra"
    doc = dumps(event(f"deep-{depth}-{kind}", **{field: "__N__"}))
    return doc.replace(b'"__N__"', nested.encode())


@st.composite
def huge_strings(draw: st.DrawFn) -> bytes:
    size = draw(st.sampled_from([65, 10_000, 300_000]))
    field = draw(fields)
    return dumps(event(f"huge-{size}", **{field: "x" * size}))


@st.composite
def megabyte(draw: st.DrawFn) -> bytes:
    """About 1 MB: in an unknown field (valid: extra fields are ignored) or in a checked one."""
    where = draw(st.sampled_from(["extra", "region", "amount", "garbage"]))
    if where == "garbage":
        return b"\x00" * (MB - 64)
    filler = "\u00e9" * ((MB - 512) // 2) if where == "extra" else "9" * (MB - 512)
    return dumps(event(f"mb-{where}-{draw(st.integers(0, 10**6))}", **{where: filler}))


@st.composite
def numbers(draw: st.DrawFn) -> bytes:
    literal = draw(st.sampled_from(OUT_OF_RANGE))
    as_number = draw(st.booleans())
    doc = dumps(event(f"num-{draw(st.integers(0, 10**6))}", amount="__A__"))
    return doc.replace(b'"__A__"', literal.encode() if as_number else json.dumps(literal).encode())


@st.composite
def lookalikes(draw: st.DrawFn) -> bytes:
    field = draw(st.sampled_from(["region", "category", "currency"]))
    value = draw(st.sampled_from(LOOKALIKE_REGIONS))
    if field == "currency":
        value = draw(st.sampled_from(["U\u0405D", "\uff35\uff33\uff24", "usd", "US\u200bD", "EUR\u0301"]))
    return dumps(event(f"look-{draw(st.integers(0, 10**6))}", **{field: value}))


@st.composite
def ill_typed(draw: st.DrawFn) -> bytes:
    field = draw(fields)
    value = draw(json_values)
    return dumps(event(f"typed-{draw(st.integers(0, 10**6))}", **{field: value}))


@st.composite
def duplicate_keys(draw: st.DrawFn) -> bytes:
    field = draw(st.sampled_from(["amount", "region", "event_type"]))
    second = {"amount": '"-5"', "region": '"EU WEST"', "event_type": '"refund"'}[field]
    doc = dumps(event(f"dupkey-{draw(st.integers(0, 10**6))}"))
    return doc[:-1] + f', "{field}": {second}}}'.encode()


@st.composite
def not_objects(draw: st.DrawFn) -> bytes:
    return draw(
        st.sampled_from(
            [b"null", b"true", b"1", b'"text"', b"[]", b"{}", b" ", b"\xef\xbb\xbf{}", b"{", b"}{"]
        )
    )


FAMILIES: Final = {
    "random_bytes": random_bytes(),
    "invalid_utf8": invalid_utf8(),
    "deep_nesting": deep_nesting(),
    "huge_strings": huge_strings(),
    "megabyte": megabyte(),
    "numbers_out_of_range": numbers(),
    "unicode_lookalikes": lookalikes(),
    "ill_typed": ill_typed(),
    "duplicate_keys": duplicate_keys(),
    "not_objects": not_objects(),
}


@dataclass(frozen=True)
class Hostile:
    family: str
    value: bytes | None
    reason: str | None  # None: the contract calls it valid

    @property
    def valid(self) -> bool:
        return self.reason is None


def verdict(value: bytes | None) -> str | None:
    result = validate(value)
    return None if isinstance(result, Event) else result.reason.value


def generate(per_family: int, megabytes: int) -> list[Hostile]:
    """Draw payloads from every family with a fixed seed (reproducible), plus tombstones."""
    out: list[Hostile] = []
    for family, strategy in FAMILIES.items():
        drawn: list[bytes] = []
        budget = megabytes if family == "megabyte" else per_family

        @seed(9)
        @settings(max_examples=budget, database=None, deadline=None, suppress_health_check=list(HealthCheck))
        @given(strategy)
        def collect(value: bytes) -> None:
            drawn.append(value)  # noqa: B023 - called right here, within this iteration

        collect()
        out += [Hostile(family, v, verdict(v)) for v in drawn[:budget]]
    out += [Hostile("tombstone", None, verdict(None)), Hostile("empty", b"", verdict(b""))]
    return out
