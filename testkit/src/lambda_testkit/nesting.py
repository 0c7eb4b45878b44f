"""Payloads at the contract's JSON nesting limit (`MAX_JSON_DEPTH`), each with its verdict.

The reference validator, the Flink SQL and the Spark translation are all compared on these (the
contract, speed and batch suites), so the three meet the limit at the same depth. Depth is as
`MAX_JSON_DEPTH` defines it: the document's own object or array is level 1.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

from lambda_contract.events import MAX_JSON_DEPTH, Reason

EVENT: Final[dict[str, str]] = {
    "event_id": "e-deep",
    "event_type": "purchase",
    "event_time": "2026-11-20T10:05:00Z",
    "order_id": "o-deep",
    "customer_id": "c-deep",
    "region": "eu-west",
    "category": "books",
    "currency": "EUR",
    "amount": "19.99",
}

SHAPES: Final = (
    "extra_arrays",  # a valid event plus an unknown field of nested arrays
    "extra_objects",  # ... of nested objects
    "amount_arrays",  # the amount field is the nested value (it is checked last)
    "event_id_objects",  # the event_id field is the nested value (it is checked first)
    "whole_arrays",  # the document is nested arrays
    "whole_objects",  # the document is nested objects
    "brackets_in_string",  # a valid event with `depth` '[' and '{' inside a string: depth 1
)


@dataclass(frozen=True)
class Nested:
    shape: str
    depth: int  # of the document (for brackets_in_string: how many brackets the string holds)
    value: bytes
    expect: str  # "valid" or a Reason value

    @property
    def name(self) -> str:
        return f"{self.shape}-{self.depth}"


def _arrays(n: int) -> str:
    """n nested arrays (a number when n is 0)."""
    return "[" * n + "]" * n if n else "1"


def _objects(n: int) -> str:
    """n nested objects, the innermost holding a number (a number when n is 0)."""
    return '{"a":' * n + "1" + "}" * n if n else "1"


def _event_with(field: str, raw_value: str) -> str:
    """The event with `field` set to raw JSON text (appended when it is not an event field)."""
    doc = dict(EVENT, **{field: "@@"})
    return json.dumps(doc).replace('"@@"', raw_value)


def _document(shape: str, depth: int) -> tuple[str, str]:
    """(JSON text, verdict when the depth is within the limit)."""
    inner = depth - 1  # the event object itself is level 1
    if shape == "extra_arrays":
        return _event_with("extra", _arrays(inner)), "valid"
    if shape == "extra_objects":
        return _event_with("extra", _objects(inner)), "valid"
    if shape == "amount_arrays":
        return _event_with("amount", _arrays(inner)), Reason.INVALID_AMOUNT.value
    if shape == "event_id_objects":
        return _event_with("event_id", _objects(inner)), Reason.INVALID_EVENT_ID.value
    if shape == "whole_arrays":
        return _arrays(depth), Reason.NOT_OBJECT.value
    if shape == "whole_objects":
        return _objects(depth), Reason.MISSING_EVENT_ID.value
    if shape == "brackets_in_string":
        return _event_with("extra", json.dumps("[{" * (depth // 2) + "[" * (depth % 2))), "valid"
    raise ValueError(shape)


def nested(shape: str, depth: int) -> Nested:
    text, within = _document(shape, depth)
    too_deep = depth > MAX_JSON_DEPTH and shape != "brackets_in_string"
    return Nested(shape, depth, text.encode(), Reason.NOT_JSON.value if too_deep else within)


def boundary(
    depths: tuple[int, ...] = (MAX_JSON_DEPTH - 1, MAX_JSON_DEPTH, MAX_JSON_DEPTH + 1),
) -> list[Nested]:
    """Every shape at each depth (by default: one below the limit, the limit, one above)."""
    return [nested(shape, depth) for shape in SHAPES for depth in depths]
