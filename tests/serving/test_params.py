"""Parameter validation, pure: every rejection says what is wrong."""

from __future__ import annotations

import pytest
from serving_support import utc

from serving_layer.params import HourlyQuery, ParamError, parse_hourly, parse_hourly_params

pytestmark = pytest.mark.unit

KNOWN = frozenset({"USD", "EUR"})


def parse(**overrides: str | None) -> HourlyQuery:
    args: dict[str, str | None] = {
        "start": "2026-11-20T00:00:00Z",
        "end": "2026-11-21T00:00:00Z",
        "group_by": None,
        "region": None,
        "category": None,
        "currency": None,
    }
    args.update(overrides)
    return parse_hourly(**args, known_currencies=KNOWN)


def test_defaults() -> None:
    q = parse()
    assert (q.start, q.end, q.group_by, q.regions, q.categories, q.currency) == (
        utc("2026-11-20T00:00:00Z"),
        utc("2026-11-21T00:00:00Z"),
        (),
        None,
        None,
        "USD",
    )
    assert len(q.hours) == 24


def test_offsets_are_normalised_to_utc() -> None:
    q = parse(start="2026-11-20T01:00:00+01:00", end="2026-11-20T03:00:00.000+01:00")
    assert q.start == utc("2026-11-20T00:00:00Z") and len(q.hours) == 2


def test_group_by_is_canonical_and_filters_are_sets() -> None:
    q = parse(group_by="currency, region,currency", region="eu-west,us-east", category="home_garden")
    assert q.group_by == ("region", "currency")
    assert q.regions == frozenset({"eu-west", "us-east"}) and q.categories == frozenset({"home_garden"})


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"start": None}, "start and end are required"),
        ({"start": "yesterday"}, "not an RFC 3339 timestamp"),
        ({"start": "2026-11-20T00:00:00"}, "not an RFC 3339 timestamp"),
        ({"start": "2026-02-30T00:00:00Z"}, "not an RFC 3339 timestamp"),
        ({"start": "2026-11-20T00:30:00Z"}, "not on an hour boundary"),
        ({"start": "1969-12-31T23:00:00Z"}, "before 1970-01-01"),
        ({"start": "0001-01-01T00:00:00Z", "end": "0001-01-01T01:00:00Z"}, "before 1970-01-01"),
        ({"end": "2026-11-20T05:00:00.001Z"}, "not on an hour boundary"),
        ({"end": "2026-11-20T00:00:00Z"}, "must be after start"),
        ({"end": "2026-11-19T00:00:00Z"}, "must be after start"),
        ({"end": "2026-12-21T01:00:00Z"}, "at most 31 days"),
        ({"group_by": "region,country"}, r"unknown field\(s\) \['country'\]"),
        ({"currency": "usd"}, "not an ISO 4217 code"),
        ({"currency": "XAU"}, "unknown currency 'XAU'"),
        ({"region": "EU-WEST"}, "region: 'EU-WEST' does not match"),
        ({"region": "eu-west,"}, "region: '' does not match"),
        ({"region": "a:b*"}, "does not match"),
        ({"category": "books|x"}, "category: 'books|x' does not match"),
        ({"region": ",".join(["r"] * 51)}, "1 to 50"),
    ],
)
def test_rejections_name_the_problem(overrides: dict[str, str | None], message: str) -> None:
    with pytest.raises(ParamError, match=message):
        parse(**overrides)


def test_the_last_hours_of_the_calendar_are_accepted() -> None:
    assert len(parse(start="9999-12-31T22:00:00Z", end="9999-12-31T23:00:00Z").hours) == 1


def test_exactly_31_days_is_allowed() -> None:
    assert len(parse(end="2026-12-21T00:00:00Z").hours) == 31 * 24


def test_raw_query_rejects_unknown_and_repeated_parameters() -> None:
    base = [("start", "2026-11-20T00:00:00Z"), ("end", "2026-11-20T02:00:00Z")]
    assert len(parse_hourly_params(base, KNOWN).hours) == 2
    with pytest.raises(ParamError, match="unknown parameter 'groupby'"):
        parse_hourly_params([*base, ("groupby", "region")], KNOWN)
    with pytest.raises(ParamError, match="region is given more than once"):
        parse_hourly_params([*base, ("region", "eu-west"), ("region", "us-east")], KNOWN)
