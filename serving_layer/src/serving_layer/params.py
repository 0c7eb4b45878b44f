"""Validation of user-supplied query parameters (pure).

Everything a user sends is checked here against the contract's patterns before it can reach a
Redis key, a table filter or a computation; each failure carries a message clear enough to fix
the request without reading the code.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from lambda_contract.events import CATEGORY_PATTERN, CURRENCY_PATTERN, REGION_PATTERN, parse_event_time
from lambda_contract.windows import HOUR, hour_label, is_hour_boundary

GROUP_FIELDS: Final = ("region", "category", "currency")
RANGE_REQUIRED: Final = "start and end are required, e.g. start=2026-11-25T00:00:00Z&end=2026-11-26T00:00:00Z"
MAX_RANGE: Final = timedelta(days=31)
MAX_FILTER_VALUES: Final = 50
DEFAULT_CURRENCY: Final = "USD"
EARLIEST: Final = datetime(1970, 1, 1, tzinfo=UTC)  # Kafka timestamps and the speed watermark are epoch ms

_REGION = re.compile(REGION_PATTERN)
_CATEGORY = re.compile(CATEGORY_PATTERN)
_CURRENCY = re.compile(CURRENCY_PATTERN)


class ParamError(ValueError):
    """A request parameter is invalid; the message is shown to the caller as is (HTTP 400)."""


@dataclass(frozen=True)
class HourlyQuery:
    """A validated /v1/revenue/hourly request."""

    start: datetime
    end: datetime
    group_by: tuple[str, ...] = ()
    regions: frozenset[str] | None = None
    categories: frozenset[str] | None = None
    currency: str = DEFAULT_CURRENCY

    @property
    def hours(self) -> list[datetime]:
        return list(hours_between(self.start, self.end))

    def shape(self) -> tuple[object, ...]:
        """Everything except the time range: the key under which rendered hours are cached."""
        return (self.group_by, self.regions, self.categories, self.currency)


@functools.lru_cache(maxsize=256)
def hours_between(start: datetime, end: datetime) -> tuple[datetime, ...]:
    """The hours of [start, end), the same objects for a repeated range (a 31-day query's 744
    datetimes are made and hashed once, not per request)."""
    return tuple(start + i * HOUR for i in range((end - start) // HOUR))


def parse_instant(name: str, raw: str) -> datetime:
    """An RFC 3339 instant with an explicit offset (the contract's event_time form)."""
    value = parse_event_time(raw.strip())
    if value is None:
        raise ParamError(
            f"{name}={raw!r} is not an RFC 3339 timestamp with an offset, e.g. 2026-11-25T13:00:00Z"
        )
    if value < EARLIEST:
        raise ParamError(f"{name}={raw!r} is before 1970-01-01T00:00:00Z, where the platform's data starts")
    if not is_hour_boundary(value):
        raise ParamError(
            f"{name}={raw!r} is not on an hour boundary (minutes, seconds and fraction must be 0)"
        )
    return value


def parse_group_by(raw: str | None) -> tuple[str, ...]:
    """A subset of GROUP_FIELDS, returned in canonical order; duplicates are tolerated."""
    if raw is None or not raw.strip():
        return ()
    names = [part.strip() for part in raw.split(",")]
    unknown = [n for n in names if n not in GROUP_FIELDS]
    if unknown:
        raise ParamError(f"group_by: unknown field(s) {unknown}; allowed: {', '.join(GROUP_FIELDS)}")
    return tuple(f for f in GROUP_FIELDS if f in names)


def parse_filter(name: str, raw: str | None, pattern: re.Pattern[str]) -> frozenset[str] | None:
    """A comma-separated list of values, each fully matching the contract pattern."""
    if raw is None:
        return None
    values = [v.strip() for v in raw.split(",")]
    if not values or len(values) > MAX_FILTER_VALUES:
        raise ParamError(f"{name}: give 1 to {MAX_FILTER_VALUES} comma-separated values")
    for value in values:
        if not pattern.fullmatch(value):
            raise ParamError(f"{name}: {value[:40]!r} does not match the contract pattern {pattern.pattern}")
    return frozenset(values)


def parse_currency(raw: str | None, known: frozenset[str]) -> str:
    """The reporting currency: ISO 4217 form and present in the FX table."""
    if raw is None or raw == "":
        return DEFAULT_CURRENCY
    if not _CURRENCY.fullmatch(raw):
        raise ParamError(f"currency: {raw[:40]!r} is not an ISO 4217 code (three upper-case letters)")
    if raw not in known:
        raise ParamError(f"currency: unknown currency {raw!r}; the FX table knows {', '.join(sorted(known))}")
    return raw


def parse_hourly(
    *,
    start: str | None,
    end: str | None,
    group_by: str | None,
    region: str | None,
    category: str | None,
    currency: str | None,
    known_currencies: frozenset[str],
) -> HourlyQuery:
    """Validate every parameter of /v1/revenue/hourly; raises ParamError with the first problem."""
    if start is None or end is None:
        raise ParamError(RANGE_REQUIRED)
    start_at = parse_instant("start", start)
    end_at = parse_instant("end", end)
    if end_at <= start_at:
        raise ParamError(f"end ({hour_label(end_at)}) must be after start ({hour_label(start_at)})")
    if end_at - start_at > MAX_RANGE:
        raise ParamError(
            f"the range is {(end_at - start_at) // HOUR} hours; at most 31 days (744 hours) per request"
        )
    return HourlyQuery(
        start=start_at,
        end=end_at,
        group_by=parse_group_by(group_by),
        regions=parse_filter("region", region, _REGION),
        categories=parse_filter("category", category, _CATEGORY),
        currency=parse_currency(currency, known_currencies),
    )


HOURLY_PARAMS: Final = ("start", "end", "group_by", "region", "category", "currency")


def check_names(items: Iterable[tuple[str, str]], allowed: tuple[str, ...] = HOURLY_PARAMS) -> dict[str, str]:
    """The raw query string's (name, value) pairs as a dict: unknown or repeated names are errors
    (a framework would silently ignore the one and keep the last of the other)."""
    values: dict[str, str] = {}
    for name, value in items:
        if name not in allowed:
            raise ParamError(f"unknown parameter {name[:40]!r}; allowed: {', '.join(allowed)}")
        if name in values:
            raise ParamError(f"{name} is given more than once; give several values comma-separated")
        values[name] = value
    return values


def parse_hourly_params(items: Iterable[tuple[str, str]], known_currencies: frozenset[str]) -> HourlyQuery:
    """Every check of /v1/revenue/hourly on the raw query string's (name, value) pairs."""
    values = check_names(items)
    return parse_hourly(
        start=values.get("start"),
        end=values.get("end"),
        group_by=values.get("group_by"),
        region=values.get("region"),
        category=values.get("category"),
        currency=values.get("currency"),
        known_currencies=known_currencies,
    )


def validation_message(errors: Sequence[Mapping[str, Any]]) -> str:
    """One message for a framework's parameter errors (FastAPI's `RequestValidationError.errors()`),
    in this module's words: a missing range is RANGE_REQUIRED, anything else names the parameter."""
    names = [str(e.get("loc", ("", "?"))[-1]) for e in errors]
    if any(e.get("type") == "missing" and n in ("start", "end") for e, n in zip(errors, names, strict=True)):
        return RANGE_REQUIRED
    return "; ".join(f"{n}: {str(e.get('msg', 'invalid'))[:200]}" for e, n in zip(errors, names, strict=True))
