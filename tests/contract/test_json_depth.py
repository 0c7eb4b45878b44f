"""The nesting limit: `validate()` calls exactly what is deeper than MAX_JSON_DEPTH `not_json`,
whatever the caller's stack, and never touches the recursion limit. The speed and batch suites
compare their engines with the same payloads (lambda_testkit.nesting)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambda_contract import events
from lambda_contract.events import MAX_JSON_DEPTH, Invalid, json_depth, validate
from lambda_testkit import nesting

pytestmark = pytest.mark.unit


def verdict(payload: bytes | str) -> str:
    result = validate(payload)
    return result.reason.value if isinstance(result, Invalid) else "valid"


def stack_depth() -> int:
    frame: FrameType | None = sys._getframe()
    n = 0
    while frame is not None:
        frame, n = frame.f_back, n + 1
    return n


def with_stack(frames: int, fn: Callable[[], Any]) -> Any:
    """fn() called `frames` Python frames deeper than here."""
    return fn() if frames <= 0 else with_stack(frames - 1, fn)


BOUNDARY = nesting.boundary()


def test_the_limit_is_the_jvm_parsers() -> None:
    # Jackson's StreamReadConstraints.DEFAULT_MAX_DEPTH, which Flink's and Spark's parsers use.
    assert MAX_JSON_DEPTH == 1000


@pytest.mark.parametrize("case", BOUNDARY, ids=[c.name for c in BOUNDARY])
def test_depth_limit_minus_one_limit_and_plus_one(case: nesting.Nested) -> None:
    assert verdict(case.value) == case.expect
    if case.shape != "brackets_in_string":
        assert json_depth(case.value.decode()) == case.depth


@pytest.mark.parametrize("headroom", [400, 120, 40])
def test_the_verdict_does_not_depend_on_the_callers_stack(headroom: int) -> None:
    # Deep in the stack json.loads itself would raise RecursionError well before 1000 levels.
    frames = sys.getrecursionlimit() - stack_depth() - headroom
    limit = sys.getrecursionlimit()
    got = with_stack(frames, lambda: [verdict(c.value) for c in BOUNDARY])
    assert got == [c.expect for c in BOUNDARY]
    assert sys.getrecursionlimit() == limit


@pytest.mark.parametrize("depth", [1, 500, MAX_JSON_DEPTH])
def test_a_valid_event_nested_anywhere_up_to_the_limit_parses_to_the_same_event(depth: int) -> None:
    plain = validate(json.dumps(nesting.EVENT))
    assert validate(nesting.nested("extra_arrays", depth).value) == plain
    assert validate(nesting.nested("extra_objects", depth).value) == plain


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ('"x"', 0),
        ("1", 0),
        ("{}", 1),
        ("[]", 1),
        ('{"a": [1]}', 2),
        ('[[], [[]], {"a": {}}]', 3),
        ('{"a": "[[[{{{"}', 1),
        (r'["\"[[[", []]', 2),
        (r'["\\", [[]]]', 3),
        ("[[[", 3),  # malformed text: what a parser would reach
        ('["[[[', 1),  # an unterminated string hides the rest
    ],
)
def test_json_depth_skips_strings(text: str, depth: int) -> None:
    assert json_depth(text) == depth


@pytest.mark.parametrize(
    "text",
    [
        '"' + '\\"' * 300_000,  # one unterminated string of escaped quotes
        '"\\' * 300_000,
        "[" * 1_000_000,
        "[]," * 300_000,
        '{"a":' * 200_000,
    ],
)
def test_hostile_brackets_and_quotes_are_scanned_in_linear_time(text: str) -> None:
    assert verdict(text) == "not_json"


# --- the recursion-free parser is json.loads ----------------------------------------------------

_TOKENS = [
    "{", "}", "[", "]", ",", ":", " ", "\n", "\t", "\r", "\x0b", '"a"', '"', "\\", '"\\u00e9"',
    '"\\ud800"', '"\\x"', '"a\x01"', "1", "-", "0", "01", "1.", ".5", "1.5", "1e", "1e+", "1E-2",
    "-0", "1e5x", "true", "tru", "false", "null", "nul", "NaN", "Infinity", "-Infinity", "\ufeff",
    "\u0661", "x", '""', '"k"', '"\\""', '"\\\\"',
]  # fmt: skip
_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def json_like(draw: st.DrawFn) -> str:
    """Token soup, or a JSON document with a few tokens spliced in."""
    if draw(st.booleans()):
        return "".join(draw(st.lists(st.sampled_from(_TOKENS), max_size=25)))
    text = json.dumps(draw(_values), indent=draw(st.sampled_from([None, 1])))
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(_TOKENS)) + text[at + draw(st.integers(0, 2)) :]
    return text


def _shape(value: object) -> object:
    """A comparable form that tells JSON numbers (kept as text) from strings."""
    if isinstance(value, dict):
        return ("object", [(k, _shape(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("array", [_shape(v) for v in value])
    return (type(value).__name__, value)


def _outcome(parse: Callable[[str], object], text: str) -> object:
    try:
        return _shape(parse(text))
    except ValueError:
        return "error"


def _json_loads(text: str) -> object:
    return json.loads(
        text, parse_float=events._Number, parse_int=events._Number, parse_constant=events._reject_constant
    )


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_like())
def test_the_recursion_free_parser_reads_what_json_loads_reads(text: str) -> None:
    want = _outcome(_json_loads, text)
    assert _outcome(events._loads_without_recursion, text) == want
    if want != "error":  # and on well-formed JSON the scan's depth is exact
        value = _json_loads(text)

        def depth(v: object) -> int:
            children = v.values() if isinstance(v, dict) else v if isinstance(v, list) else None
            return 0 if children is None else 1 + max(map(depth, children), default=0)

        assert json_depth(text) == depth(value)
