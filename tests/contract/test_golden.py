"""The golden set: its records are what they claim, and its truth is exact (checked by hand too)."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from lambda_contract.events import Event, Reason, validate
from lambda_contract.redis_layout import GroupKey, Metrics
from lambda_testkit import golden

pytestmark = pytest.mark.unit


def test_every_record_validates_as_the_file_says() -> None:
    seen: set[str] = set()
    for r in golden.records():
        result = validate(r.value)
        if isinstance(result, Event):
            got = "duplicate" if result.event_id in seen else ("late" if r.phase == 2 else "valid")
            seen.add(result.event_id)
        else:
            got = result.reason.value
        assert got == r.expect, (r.seq, r.note)


def test_every_malformed_reason_appears() -> None:
    reasons = Counter(r.expect for r in golden.records())
    assert {reason.value for reason in Reason} <= set(reasons)


def test_the_committed_files_match_the_cases() -> None:
    recs, expected = golden.build()
    assert [r.to_json() for r in recs] == [r.to_json() for r in golden.records()]
    assert expected.to_json() == golden.truth().to_json()


def test_truth_spot_checks_by_hand() -> None:
    t = golden.truth()

    def h(hour: int) -> datetime:
        return datetime(2026, 11, 20, hour, tzinfo=UTC)

    # 10:15:30.123Z 12.5 (number) + 05:45-05:00 7.25
    assert t.full[(h(10), GroupKey("us-east", "books", "USD"))] == Metrics(Decimal("19.75"), 2, 0, 2)
    # the largest amount twice, once as a JSON number, beyond a double's precision
    assert t.full[(h(11), GroupKey("us-east", "electronics", "USD"))].revenue == Decimal("1999999999999.9998")
    # 11:20+02:00 is 09:20 UTC
    assert (h(9), GroupKey("eu-central", "fashion", "EUR")) in t.full
    # 18:45+05:30 is 13:15 UTC
    assert t.full[(h(13), GroupKey("ap-south", "electronics", "INR"))] == Metrics(Decimal("2499"), 1, 0, 1)
    # 20 + 3 on-time valid, 3 late, 5 duplicates, 57 malformed = 88
    # late: 50.00 purchase in hour 10 only in full; refund 1.25 in hour 11
    assert t.full[(h(10), GroupKey("eu-west", "electronics", "EUR"))].revenue == Decimal("69.99")
    assert t.speed[(h(10), GroupKey("eu-west", "electronics", "EUR"))].revenue == Decimal("19.99")
    assert t.late[(h(11), GroupKey("us-east", "books", "USD"))] == Metrics(Decimal("-1.25"), 0, 1, 1)
    assert t.duplicates == 5 and sum(t.malformed.values()) == 57 and t.records == 88


def test_speed_plus_late_is_full() -> None:
    t = golden.truth()
    for key, m in t.full.items():
        assert t.speed.get(key, Metrics()) + t.late.get(key, Metrics()) == m
