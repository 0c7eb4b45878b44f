"""The curated cases behind the golden data set (testkit/golden/). Edit here, then rebuild:

    .venvs/tools/bin/python -m lambda_testkit.golden build

Every rule of the contract (docs/contract.md) is exercised: duplicates, late events, refunds, each malformed kind, offsets
other than Z, amounts as JSON numbers and strings, currencies with 0, 2 and 4 decimals. Events
fall on 2026-11-20 between 09:00 and 14:00 UTC. Phase 1 ends with one event at 13:40 on every
partition, so the speed watermark passes 13:39:30 whatever the interleaving; phase 2 holds events
of hours 10-12, which closed at 11:05, 12:05 and 13:05, so they are late by construction.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

DAY = "2026-11-20"
PHASE1_TS = datetime(2026, 11, 20, 13, 45, tzinfo=UTC)
PHASE2_TS = datetime(2026, 11, 20, 14, 30, tzinfo=UTC)


@dataclass(frozen=True)
class Case:
    partition: int
    value: bytes | None
    phase: int
    expect: str
    note: str
    key: str | None = None


def _event(eid: str, etype: str, etime: Any, region: Any, category: Any, currency: Any, amount: Any,
           **extra: Any) -> dict[str, Any]:  # fmt: skip
    doc: dict[str, Any] = {
        "event_id": eid, "event_type": etype, "event_time": etime, "order_id": f"o-{eid}",
        "customer_id": f"c-{eid[-2:]}", "region": region, "category": category,
        "currency": currency, "amount": amount,
    }  # fmt: skip
    doc.update(extra)
    return doc


def _raw(doc: dict[str, Any], *, drop: str | None = None, amount_literal: str | None = None) -> bytes:
    """JSON text of an event; `amount_literal` puts a JSON number's exact text in place."""
    d = {k: v for k, v in doc.items() if k != drop}
    if amount_literal is not None:
        d["amount"] = "__AMOUNT__"
        return json.dumps(d).replace('"__AMOUNT__"', amount_literal).encode()
    return json.dumps(d, ensure_ascii=False).encode()


def _valid(p: int, doc: dict[str, Any], note: str, phase: int = 1, literal: str | None = None) -> Case:
    return Case(p, _raw(doc, amount_literal=literal), phase, "late" if phase == 2 else "valid", note,
                doc["order_id"])  # fmt: skip


def _bad(p: int, value: bytes | None, reason: str, note: str) -> Case:
    return Case(p, value, 1, reason, note, "o-bad")


def _base(eid: str, **over: Any) -> dict[str, Any]:
    doc = _event(eid, "purchase", f"{DAY}T10:10:00Z", "eu-west", "books", "EUR", "10.00")
    doc.update(over)
    return doc


def cases() -> list[Case]:
    """All golden records in production order."""
    e = _event
    out: list[Case] = []
    v = out.append

    # --- phase 1: on-time valid events --------------------------------------------------------
    e001 = e("e001", "purchase", f"{DAY}T10:05:00Z", "eu-west", "electronics", "EUR", "19.99")
    e002 = e("e002", "purchase", f"{DAY}T10:15:30.123Z", "us-east", "books", "USD", None)
    e005 = e("e005", "purchase", f"{DAY}T10:50:00Z", "ap-northeast", "toys", "JPY", "1500")
    e008 = e("e008", "purchase", f"{DAY}T11:30:00Z", "us-east", "electronics", "USD", "999999999999.9999")
    e017 = e("e017", "purchase", f"{DAY}T18:45:00+05:30", "ap-south", "electronics", "INR", "2499.00")
    v(_valid(0, e001, "amount as string, 2-decimal currency"))
    v(_valid(1, e002, "amount as JSON number 12.5, fractional seconds", literal="12.5"))
    v(_valid(2, e("e003", "purchase", f"{DAY}T11:20:00+02:00", "eu-central", "fashion", "EUR", "100.00"),
             "offset +02:00 puts it in the 09:00 UTC hour"))  # fmt: skip
    v(_valid(0, e("e004", "purchase", f"{DAY}T05:45:00-05:00", "us-east", "books", "USD", "7.25"),
             "offset -05:00 puts it in the 10:00 UTC hour"))  # fmt: skip
    v(_valid(1, e005, "0-decimal currency"))
    v(_valid(2, e("e006", "purchase", f"{DAY}T11:01:00Z", "cl-central", "home_garden", "CLF", "0.1234"),
             "4-decimal currency, category with underscore"))  # fmt: skip
    v(_valid(1, e("e007", "refund", f"{DAY}T11:10:00Z", "us-east", "books", "USD", "2.50", refund_of="e002"),
             "partial refund subtracts"))  # fmt: skip
    v(_valid(0, e008, "largest amount as string"))
    v(_valid(0, e("e009", "purchase", f"{DAY}T11:31:00Z", "us-east", "electronics", "USD", None),
             "largest amount as JSON number: must stay exact", literal="999999999999.9999"))  # fmt: skip
    v(Case(0, _raw(e008), 1, "duplicate", "redelivery of e008", "o-e008"))
    v(_valid(2, e("e010", "purchase", f"{DAY}T11:40:00Z", "eu-west", "grocery", "EUR", None),
             "smallest amount as JSON number", literal="0.0001"))  # fmt: skip
    v(_valid(1, e("e011", "purchase", f"{DAY}T11:41:00Z", "eu-west", "grocery", "EUR", "12.50000"),
             "trailing zeros beyond 4 decimals are not precision"))  # fmt: skip
    v(Case(1, _raw(e002, amount_literal="12.5"), 1, "duplicate", "redelivery of e002", "o-e002"))
    v(_valid(2, e("e012", "purchase", f"{DAY}T12:05:00Z", "us-west", "sports", "USD", "30",
                  coupon="BF-2026", nested={"a": [1, {"b": None}], "c": "d"}),
             "unknown fields are ignored"))  # fmt: skip
    v(_valid(0, e("e013", "purchase", f"{DAY}T12:59:59.999999999Z", "us-west", "sports", "USD", "1.01"),
             "nanosecond fraction stays in hour 12"))  # fmt: skip
    v(_valid(1, e("e014", "purchase", f"{DAY}T13:00:00Z", "us-west", "sports", "USD", "2.02"),
             "exact hour boundary belongs to hour 13"))  # fmt: skip
    v(_valid(0, e("e015", "refund", f"{DAY}T12:10:00Z", "eu-west", "electronics", "EUR", "19.99"),
             "full refund in a later hour"))  # fmt: skip
    v(_valid(2, e("e016", "purchase", f"{DAY}T12:20:00Z", "us-east", "books", "USD", "00042.10"),
             "leading zeros are allowed"))  # fmt: skip
    v(_valid(2, e017, "offset +05:30 puts it in the 13:00 UTC hour"))
    emoji_ok = "\U0001f600" * 64  # 64 code points, 128 UTF-16 units: valid
    v(_valid(1, e("e018", "purchase", f"{DAY}T13:20:00Z", "eu-west", "books", "EUR", "5.55",
                  ) | {"customer_id": emoji_ok}, "64 emoji are 64 characters"))  # fmt: skip
    v(_valid(0, e("e019", "purchase", f"{DAY}T13:25:00.5+00:00", "eu-west", "books", "EUR", 3),
             "+00:00 offset, integer JSON number", literal="3"))  # fmt: skip
    deep: Any = "leaf"
    for _ in range(40):
        deep = {"x": deep}
    v(_valid(2, e("e020", "purchase", f"{DAY}T13:30:00Z", "us-east", "books", "USD", "1.00", meta=deep),
             "deeply nested unknown field"))  # fmt: skip

    # --- phase 1: malformed, one or more per reason -------------------------------------------
    b = _base
    v(_bad(0, None, "empty_payload", "tombstone (null value)"))
    v(_bad(1, b"", "empty_payload", "zero bytes"))
    v(_bad(2, b'{"event_id": "\xff\xfe", "amount": "1"}', "not_utf8", "invalid UTF-8 bytes"))
    v(_bad(0, b'{"event_id": "e900", "event_type": ', "not_json", "truncated"))
    v(_bad(1, _raw(b("e901")).replace(b'"10.00"', b"NaN"), "not_json", "NaN is not JSON"))
    v(_bad(2, b"[1, 2, 3]", "not_object", "array"))
    v(_bad(0, b'"purchase"', "not_object", "string"))
    v(_bad(1, _raw(b("e902"), drop="event_id"), "missing_event_id", "absent"))
    v(_bad(2, _raw(b("e903", event_id=None)), "missing_event_id", "null counts as missing"))
    v(_bad(0, _raw(b("x" * 65)), "invalid_event_id", "65 characters"))
    v(_bad(1, _raw(b("")), "invalid_event_id", "empty"))
    v(_bad(2, _raw(b("e904", event_id=904)), "invalid_event_id", "number"))
    v(_bad(0, _raw(b("e905"), drop="event_type"), "missing_event_type", "absent"))
    v(_bad(1, _raw(b("e906", event_type="PURCHASE")), "invalid_event_type", "case matters"))
    v(_bad(2, _raw(b("e907", event_type="chargeback")), "invalid_event_type", "unknown type"))
    v(_bad(0, _raw(b("e908"), drop="event_time"), "missing_event_time", "absent"))
    v(_bad(1, _raw(b("e909", event_time=f"{DAY} 10:00:00Z")), "invalid_event_time", "space separator"))
    v(_bad(2, _raw(b("e910", event_time="2026-02-30T10:00:00Z")), "invalid_event_time", "no Feb 30"))
    v(_bad(0, _raw(b("e911", event_time=f"{DAY}T10:00:00")), "invalid_event_time", "no offset"))
    v(_bad(1, _raw(b("e912", event_time=f"{DAY}t10:00:00z")), "invalid_event_time", "lower case"))
    v(_bad(2, _raw(b("e913", event_time=1763632800)), "invalid_event_time", "epoch number"))
    v(_bad(0, _raw(b("e914", event_time=f"{DAY}T24:00:00Z")), "invalid_event_time", "hour 24"))
    v(_bad(1, _raw(b("e915", event_time=f"{DAY}T10:00:00+24:00")), "invalid_event_time", "offset 24h"))
    v(_bad(2, _raw(b("e916"), drop="order_id"), "missing_order_id", "absent"))
    v(_bad(0, _raw(b("e917", order_id=42)), "invalid_order_id", "number"))
    v(_bad(1, _raw(b("e918"), drop="customer_id"), "missing_customer_id", "absent"))
    v(_bad(2, _raw(b("e919", customer_id="\U0001f600" * 65)), "invalid_customer_id", "65 emoji"))
    v(_bad(0, _raw(b("e920"), drop="region"), "missing_region", "absent"))
    v(_bad(1, _raw(b("e921", region="EU-West")), "invalid_region", "upper case"))
    v(_bad(2, _raw(b("e922", region="eu_west")), "invalid_region", "underscore not allowed in region"))
    v(_bad(0, _raw(b("e923", region="eu-w\u0435st")), "invalid_region", "Cyrillic look-alike"))
    v(_bad(1, _raw(b("e924", region="r" * 33)), "invalid_region", "33 characters"))
    v(_bad(2, _raw(b("e925", region="eu-west\n")), "invalid_region", "trailing newline"))
    v(_bad(0, _raw(b("e926"), drop="category"), "missing_category", "absent"))
    v(_bad(1, _raw(b("e927", category="Books!")), "invalid_category", "punctuation"))
    v(_bad(2, _raw(b("e928"), drop="currency"), "missing_currency", "absent"))
    v(_bad(0, _raw(b("e929", currency="usd")), "invalid_currency", "lower case"))
    v(_bad(1, _raw(b("e930", currency="USDX")), "invalid_currency", "four letters"))
    v(_bad(2, _raw(b("e931", currency=840)), "invalid_currency", "numeric code"))
    v(_bad(0, _raw(b("e932"), drop="amount"), "missing_amount", "absent"))
    v(_bad(1, _raw(b("e933", amount="12,50")), "invalid_amount", "comma"))
    v(_bad(2, _raw(b("e934", amount="1e3")), "invalid_amount", "exponent in a string"))
    v(_bad(0, _raw(b("e935"), amount_literal="1E3"), "invalid_amount", "exponent in a number"))
    v(_bad(1, _raw(b("e936", amount=True)), "invalid_amount", "boolean"))
    v(_bad(2, _raw(b("e937", amount={"value": "1"})), "invalid_amount", "object"))
    v(_bad(0, _raw(b("e938", amount="+5")), "invalid_amount", "plus sign"))
    v(_bad(1, _raw(b("e939", amount=" 5")), "invalid_amount", "blank"))
    v(_bad(2, _raw(b("e940", amount="")), "invalid_amount", "empty string"))
    v(_bad(0, _raw(b("e941", amount="0")), "amount_not_positive", "zero"))
    v(_bad(1, _raw(b("e942", amount="-5.00")), "amount_not_positive", "negative string"))
    v(_bad(2, _raw(b("e943"), amount_literal="-5"), "amount_not_positive", "negative number"))
    v(_bad(0, _raw(b("e944", amount="0.0000")), "amount_not_positive", "zero with decimals"))
    v(_bad(1, _raw(b("e945", amount="1000000000000")), "amount_out_of_range", "10^12"))
    v(_bad(2, _raw(b("e946"), amount_literal="1234567890123.5"), "amount_out_of_range", "13 digits"))
    v(_bad(0, _raw(b("e947", amount="1.23456")), "amount_too_precise", "5 decimals"))
    v(_bad(1, _raw(b("e948"), amount_literal="0.00001"), "amount_too_precise", "5 decimals number"))

    # --- phase 1 end: one event at 13:40 on every partition moves the watermark -----------------
    for p in range(3):
        v(_valid(p, e(f"e05{p}", "purchase", f"{DAY}T13:40:00Z", "us-east", "books", "USD", "5"),
                 "watermark advance"))  # fmt: skip
    v(Case(2, _raw(e017), 1, "duplicate", "redelivery of e017", "o-e017"))

    # --- phase 2: late by construction ----------------------------------------------------------
    e101 = e("e101", "purchase", f"{DAY}T10:30:00Z", "eu-west", "electronics", "EUR", "50.00")
    v(_valid(0, e101, "late purchase for hour 10", phase=2))
    v(_valid(1, e("e102", "refund", f"{DAY}T11:45:00Z", "us-east", "books", "USD", "1.25"),
             "late refund for hour 11", phase=2))  # fmt: skip
    v(Case(0, _raw(e101), 2, "duplicate", "redelivery of a late event is a duplicate", "o-e101"))
    v(Case(1, _raw(e005), 2, "duplicate", "late redelivery of an on-time event is a duplicate", "o-e005"))
    v(_valid(2, e("e103", "purchase", f"{DAY}T12:30:00Z", "ap-northeast", "toys", "JPY", "300"),
             "late purchase for hour 12", phase=2))  # fmt: skip
    v(Case(1, b"not json at all", 2, "not_json", "malformed stays malformed when late", "o-bad"))
    return out


def timestamps(all_cases: list[Case]) -> list[datetime]:
    """Kafka timestamps (CreateTime) per record: one second apart from each phase's start."""
    out = []
    for i, c in enumerate(all_cases):
        start = PHASE1_TS if c.phase == 1 else PHASE2_TS
        out.append(start + timedelta(seconds=i))
    return out
