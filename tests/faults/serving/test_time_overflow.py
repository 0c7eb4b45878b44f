"""Instants whose UTC conversion leaves datetime's range (found by this suite): invalid, never a crash."""

from __future__ import annotations

import json

import pytest

from lambda_contract.events import Reason, parse_event_time, validate

pytestmark = [pytest.mark.faults, pytest.mark.unit]

EDGES = ["0001-01-01T00:00:00+01:00", "0001-01-01T00:59:59.999+23:59", "9999-12-31T23:00:00-01:00"]


@pytest.mark.parametrize("text", EDGES)
def test_out_of_range_instants_are_invalid_event_times(text: str) -> None:
    assert parse_event_time(text) is None
    event = {
        "event_id": "e1",
        "event_type": "purchase",
        "event_time": text,
        "order_id": "o1",
        "customer_id": "c1",
        "region": "eu-west",
        "category": "books",
        "currency": "USD",
        "amount": "1.00",
    }
    result = validate(json.dumps(event).encode())
    assert getattr(result, "reason", None) is Reason.INVALID_EVENT_TIME


def test_the_range_edges_themselves_stay_valid() -> None:
    assert parse_event_time("0001-01-01T00:00:00Z") is not None
    assert parse_event_time("9999-12-31T23:59:59.999Z") is not None
    assert parse_event_time("0001-01-01T01:00:00+01:00") is not None
