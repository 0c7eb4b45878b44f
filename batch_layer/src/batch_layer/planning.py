"""Which dates a run recomputes, and why. Pure: no Spark, no I/O.

A date is recomputed when it was named (DATE, FROM..TO, default yesterday) or when bronze holds
rows of it that its last computation did not see. Bronze is append-only and exactly once, so
"bronze now has more rows of D than the manifest says the last run read" is an exact test for
late arrivals, with no clock comparison. Automatic pick-up only considers dates before today
(UTC): today is still filling, and marking its hours final would hide the speed view.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta


class Why(enum.StrEnum):
    NAMED = "named"
    NEW_ROWS = "new_rows"  # bronze received rows after the date's last computation
    NEVER_COMPUTED = "never_computed"


@dataclass(frozen=True)
class PlannedDate:
    day: date
    why: Why


class BadDatesError(ValueError):
    """The CLI's date arguments cannot be used; the message says why."""


def parse_date(text: str, what: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise BadDatesError(f"{what} must be a date as YYYY-MM-DD, got {text!r}") from None


def named_dates(day: str | None, start: str | None, end: str | None, today: date) -> list[date]:
    """DATE, or FROM..TO inclusive, or yesterday; refuses mixed or inverted arguments."""
    if day and (start or end):
        raise BadDatesError("give either DATE or FROM and TO, not both")
    if day:
        return [parse_date(day, "DATE")]
    if start or end:
        if not (start and end):
            raise BadDatesError("FROM and TO go together (inclusive range); give both")
        first, last = parse_date(start, "FROM"), parse_date(end, "TO")
        if first > last:
            raise BadDatesError(f"FROM ({first}) is after TO ({last})")
        if (last - first).days > 3660:
            raise BadDatesError(f"FROM..TO spans {(last - first).days + 1} days; at most 3661 per run")
        return [first + timedelta(days=i) for i in range((last - first).days + 1)]
    return [today - timedelta(days=1)]


def plan(
    named: Iterable[date],
    bronze_counts: Mapping[date, int],
    computed_counts: Mapping[date, int],
    today: date,
    *,
    auto: bool = True,
) -> list[PlannedDate]:
    """Named dates plus (when `auto`) every past date whose bronze rows outgrew its last run."""
    out: dict[date, PlannedDate] = {}
    for day in named:
        out[day] = PlannedDate(day, Why.NAMED)
    if auto:
        for day, rows in bronze_counts.items():
            if day in out or day >= today:
                continue
            previous = computed_counts.get(day)
            if previous is None:
                out[day] = PlannedDate(day, Why.NEVER_COMPUTED)
            elif rows > previous:
                out[day] = PlannedDate(day, Why.NEW_ROWS)
    return sorted(out.values(), key=lambda p: p.day)
