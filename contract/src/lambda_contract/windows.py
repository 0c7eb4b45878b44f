"""Hour-window arithmetic, always in UTC (all bucketing is in UTC: docs/contract.md).

An hour is named by its start. It is *closed* for the speed layer once the watermark has reached
the hour's end plus the allowed lateness; an event whose hour is closed when it arrives is *late*.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Final

HOUR: Final = timedelta(hours=1)
HOUR_MS: Final = 3_600_000
_HOUR_ID_FORMAT: Final = "%Y-%m-%dT%H"


def as_utc(value: datetime) -> datetime:
    """Reject naive datetimes: a naive time in a revenue platform is a bug waiting to happen."""
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value.isoformat()} has no UTC offset")
    return value.astimezone(UTC)


def hour_start(value: datetime) -> datetime:
    """The start of the UTC hour containing `value`."""
    return as_utc(value).replace(minute=0, second=0, microsecond=0)


def hour_end(start: datetime) -> datetime:
    return hour_start(start) + HOUR


def is_hour_boundary(value: datetime) -> bool:
    return as_utc(value) == hour_start(value)


def hour_id(start: datetime) -> str:
    """Compact hour name used in Redis keys: `2026-11-25T13`."""
    return hour_start(start).strftime(_HOUR_ID_FORMAT)


def parse_hour_id(text: str) -> datetime:
    return datetime.strptime(text, _HOUR_ID_FORMAT).replace(tzinfo=UTC)


def hour_label(start: datetime) -> str:
    """The hour as the API shows it: `2026-11-25T13:00:00Z`."""
    return hour_start(start).strftime("%Y-%m-%dT%H:00:00Z")


def format_instant(value: datetime) -> str:
    """RFC 3339 in UTC with millisecond precision and `Z`."""
    utc = as_utc(value)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def from_epoch_ms(ms: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)


def to_epoch_ms(value: datetime) -> int:
    return (as_utc(value) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)


def hours_between(start: datetime, end: datetime) -> Iterator[datetime]:
    """Hour starts in [start, end): start inclusive, end exclusive."""
    current = hour_start(start)
    stop = as_utc(end)
    while current < stop:
        yield current
        current += HOUR


def hours_of_date(day: date) -> list[datetime]:
    """The 24 UTC hours of a date."""
    first = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return [first + i * HOUR for i in range(24)]


def date_of(value: datetime) -> date:
    return as_utc(value).date()


def closes_at(start: datetime, allowed_lateness: timedelta) -> datetime:
    """The watermark at which the speed layer stops accepting events for this hour."""
    return hour_end(start) + allowed_lateness


def is_closed(start: datetime, watermark: datetime | None, allowed_lateness: timedelta) -> bool:
    """Closed once the watermark reaches hour end + allowed lateness; never before a watermark."""
    return watermark is not None and as_utc(watermark) >= closes_at(start, allowed_lateness)
