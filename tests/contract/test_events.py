"""The reference validator: every malformed kind gets its reason, every valid variant passes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambda_contract.events import RULES, Event, Invalid, Reason, check_amount, java_regex, validate

pytestmark = pytest.mark.unit


def good(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "event_id": "e-1",
        "event_type": "purchase",
        "event_time": "2026-11-25T13:45:12.345Z",
        "order_id": "o-1",
        "customer_id": "c-1",
        "region": "eu-west",
        "category": "home_garden",
        "currency": "EUR",
        "amount": "12.34",
    }
    doc.update(over)
    return doc


def reason_of(payload: bytes | str | None) -> str:
    result = validate(payload)
    return result.reason.value if isinstance(result, Invalid) else "valid"


def test_a_valid_event_is_normalised_to_utc_and_scale_four() -> None:
    event = validate(json.dumps(good(event_time="2026-11-25T14:45:12.3456+01:00")))
    assert isinstance(event, Event)
    assert event.event_time == datetime(2026, 11, 25, 13, 45, 12, 345000, tzinfo=UTC)
    assert event.amount == Decimal("12.3400") and str(event.amount) == "12.3400"
    assert event.signed_amount == Decimal("12.34")


def test_a_refund_subtracts() -> None:
    event = validate(json.dumps(good(event_type="refund")))
    assert isinstance(event, Event) and event.signed_amount == Decimal("-12.34")


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (None, "empty_payload"),
        (b"", "empty_payload"),
        (b"\xff\xfe{}", "not_utf8"),
        ("{", "not_json"),
        ('{"amount": NaN}', "not_json"),
        ('{"amount": Infinity}', "not_json"),
        ("[]", "not_object"),
        ("42", "not_object"),
        ("null", "not_object"),
        ("[" * 100_000 + "]" * 100_000, "not_json"),
    ],
)
def test_payloads_that_are_not_a_json_object(payload: bytes | str | None, reason: str) -> None:
    assert reason_of(payload) == reason


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.name)
def test_every_field_missing_or_null_or_wrong_type(rule: Any) -> None:
    doc = good()
    del doc[rule.name]
    assert reason_of(json.dumps(doc)) == rule.missing.value
    assert reason_of(json.dumps(good(**{rule.name: None}))) == rule.missing.value
    for wrong in ([1], {"a": 1}, True):
        assert reason_of(json.dumps(good(**{rule.name: wrong}))) == rule.invalid.value
    if rule.name != "amount":
        assert reason_of(json.dumps(good(**{rule.name: 7}))) == rule.invalid.value


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("event_id", "", "invalid_event_id"),
        ("event_id", "x" * 65, "invalid_event_id"),
        ("event_id", "\U0001f600" * 64, "valid"),
        ("event_id", "\U0001f600" * 65, "invalid_event_id"),
        ("event_type", "Purchase", "invalid_event_type"),
        ("event_type", "refund", "valid"),
        ("event_time", "2026-11-25T13:45:12Z", "valid"),
        ("event_time", "2026-11-25T13:45:12.123456789-09:30", "valid"),
        ("event_time", "2024-02-29T00:00:00Z", "valid"),
        ("event_time", "2026-02-29T00:00:00Z", "invalid_event_time"),
        ("event_time", "2026-11-25T13:45:60Z", "invalid_event_time"),
        ("event_time", "2026-11-25T13:45Z", "invalid_event_time"),
        ("event_time", "2026-11-25T13:45:12.Z", "invalid_event_time"),
        ("event_time", "2026-11-25T13:45:12.1234567890Z", "invalid_event_time"),
        ("event_time", "2026-11-25T13:45:12+0100", "invalid_event_time"),
        ("event_time", "2026-11-25T13:45:12+01:60", "invalid_event_time"),
        ("event_time", "2026-11-25T13:45:12Z\n", "invalid_event_time"),
        ("event_time", " 2026-11-25T13:45:12Z", "invalid_event_time"),
        ("region", "a" * 32, "valid"),
        ("region", "a" * 33, "invalid_region"),
        ("region", "eu_west", "invalid_region"),
        ("region", "eu-west\n", "invalid_region"),
        ("region", "", "invalid_region"),
        ("category", "home_garden-2", "valid"),
        ("category", "Home", "invalid_category"),
        ("currency", "JPY", "valid"),
        ("currency", "Usd", "invalid_currency"),
        ("currency", "US", "invalid_currency"),
    ],
)
def test_field_values(field: str, value: str, reason: str) -> None:
    assert reason_of(json.dumps(good(**{field: value}))) == reason


@pytest.mark.parametrize(
    ("literal", "reason"),
    [
        ('"1"', "valid"),
        ("1", "valid"),
        ('"0.0001"', "valid"),
        ("0.0001", "valid"),
        ('"999999999999.9999"', "valid"),
        ("999999999999.9999", "valid"),
        ('"000999999999999.99990000"', "valid"),
        ('"12.50000"', "valid"),
        ('"1e3"', "invalid_amount"),
        ("1e3", "invalid_amount"),
        ("1.5E-2", "invalid_amount"),
        ('"+1"', "invalid_amount"),
        ('"1."', "invalid_amount"),
        ('".5"', "invalid_amount"),
        ('"1,5"', "invalid_amount"),
        ('""', "invalid_amount"),
        ('"1 "', "invalid_amount"),
        ('"NaN"', "invalid_amount"),
        ("true", "invalid_amount"),
        ('"0"', "amount_not_positive"),
        ("0", "amount_not_positive"),
        ("-0", "amount_not_positive"),
        ('"0.0000"', "amount_not_positive"),
        ('"-1"', "amount_not_positive"),
        ("-0.5", "amount_not_positive"),
        ('"1000000000000"', "amount_out_of_range"),
        ("1000000000000.0", "amount_out_of_range"),
        ('"1.00001"', "amount_too_precise"),
        ("0.00001", "amount_too_precise"),
        ('"1.000010"', "amount_too_precise"),
    ],
)
def test_amount_literals(literal: str, reason: str) -> None:
    payload = json.dumps(good(amount="__A__")).replace('"__A__"', literal)
    assert reason_of(payload) == reason


def test_an_amount_json_number_is_read_exactly_not_as_a_float() -> None:
    payload = json.dumps(good(amount="__A__")).replace('"__A__"', "999999999999.9999")
    event = validate(payload)
    assert isinstance(event, Event) and event.amount == Decimal("999999999999.9999")


def test_unknown_fields_are_ignored() -> None:
    assert reason_of(json.dumps(good(extra={"deep": [1, 2, {"x": None}]}, v=2))) == "valid"


def test_a_readable_event_time_is_kept_on_malformed_events_for_bucketing() -> None:
    result = validate(json.dumps(good(region="BAD")))
    assert isinstance(result, Invalid)
    assert result.event_time == datetime(2026, 11, 25, 13, 45, 12, 345000, tzinfo=UTC)


def test_java_regex_anchors_the_whole_value() -> None:
    assert java_regex("[a-z]{1,3}") == r"^(?:[a-z]{1,3})\z"


# --- properties ------------------------------------------------------------------------------

_region = st.from_regex(r"[a-z0-9-]{1,32}", fullmatch=True)
_category = st.from_regex(r"[a-z0-9_-]{1,32}", fullmatch=True)
_currency = st.from_regex(r"[A-Z]{3}", fullmatch=True)
_ident = st.text(min_size=1, max_size=64)
_amount = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("999999999999.9999"), places=4)
_instant = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)
_offset_minutes = st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59)


def _rfc3339(instant: datetime, offset_minutes: int, digits: int) -> str:
    local = instant + timedelta(minutes=offset_minutes)
    text = local.strftime("%Y-%m-%dT%H:%M:%S")
    if digits:
        text += "." + f"{local.microsecond:06d}000"[:digits]
    if offset_minutes == 0:
        return text + "Z"
    sign = "+" if offset_minutes > 0 else "-"
    h, m = divmod(abs(offset_minutes), 60)
    return f"{text}{sign}{h:02d}:{m:02d}"


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(
    event_id=_ident, order_id=_ident, customer_id=_ident, region=_region, category=_category,
    currency=_currency, amount=_amount, as_number=st.booleans(), instant=_instant,
    offset=_offset_minutes, digits=st.integers(0, 9), event_type=st.sampled_from(["purchase", "refund"]),
)  # fmt: skip
def test_every_valid_variant_is_accepted(
    event_id: str, order_id: str, customer_id: str, region: str, category: str, currency: str,
    amount: Decimal, as_number: bool, instant: datetime, offset: int, digits: int, event_type: str,
) -> None:  # fmt: skip
    etime = _rfc3339(instant, offset, digits)
    doc = good(event_id=event_id, order_id=order_id, customer_id=customer_id, region=region,
               category=category, currency=currency, event_type=event_type, event_time=etime)  # fmt: skip
    literal = format(amount.normalize(), "f")
    payload = json.dumps(doc | {"amount": "__A__"}).replace(
        '"__A__"', literal if as_number else json.dumps(literal)
    )
    event = validate(payload.encode())
    assert isinstance(event, Event), event
    assert event.amount == amount
    # Independent check: the instant, with the fraction as written, truncated to milliseconds.
    shown_us = (
        instant.microsecond // 10 ** (6 - digits) * 10 ** (6 - digits) if digits < 6 else instant.microsecond
    )
    assert event.event_time == instant.replace(microsecond=shown_us // 1000 * 1000)


@settings(max_examples=500)
@given(st.binary(max_size=300))
def test_random_bytes_never_raise(payload: bytes) -> None:
    assert isinstance(validate(payload), Event | Invalid)


@settings(max_examples=300)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(),
                    lambda c: st.lists(c) | st.dictionaries(st.text(), c), max_leaves=20))  # fmt: skip
def test_random_json_never_raises_and_is_never_valid_without_the_fields(doc: object) -> None:
    result = validate(json.dumps(doc))
    assert isinstance(result, Invalid)


@settings(max_examples=300)
@given(st.text(alphabet="0123456789.-+eE ", max_size=20))
def test_amount_checks_agree_with_decimal_arithmetic(text: str) -> None:
    reason = check_amount(text)
    try:
        value = Decimal(text)
        plain = text == text.strip() and "e" not in text.lower() and "+" not in text
        plain = plain and text.replace("-", "", 1).replace(".", "", 1).isdigit() and not text.endswith(".")
        plain = plain and not text.startswith((".", "-."))
    except ArithmeticError:
        plain = False
    if not plain:
        assert reason is Reason.INVALID_AMOUNT
    elif value <= 0:
        assert reason is Reason.AMOUNT_NOT_POSITIVE
    elif value >= Decimal(10) ** 12:
        assert reason is Reason.AMOUNT_OUT_OF_RANGE
    elif value != value.quantize(Decimal("0.0001")):
        assert reason is Reason.AMOUNT_TOO_PRECISE
    else:
        assert reason is None
