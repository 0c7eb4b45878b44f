"""GET /v1/revenue/events: the events behind one hour and key of the batch view ("explain a
number"), read from the silver table the nightly recompute writes with gold (serving_layer.silver).

Only batch-final hours are listed: for any other hour the answer is a 404 that says the events
come once the nightly recompute has covered the hour's date (the hourly route serves it from the
speed view meanwhile); docs/specs/delta.md says why a rerun in flight is a 503.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response, StreamingResponse

from lambda_contract.events import CATEGORY_PATTERN, REGION_PATTERN
from lambda_contract.windows import hour_label, is_hour_boundary
from serving_layer.auth import AUTHORIZED
from serving_layer.params import ParamError
from serving_layer.responses import json_response
from serving_layer.services import Svc
from serving_layer.silver import (
    EVENT_FIELDS,
    Cursor,
    EventsPage,
    HourKey,
    NotFinalError,
    RecomputingError,
    StaleCursorError,
    read_events,
)

DEFAULT_LIMIT: Final = 100
MAX_LIMIT: Final = 5000
CSV_CHUNK_ROWS: Final = 1000

router = APIRouter(tags=["revenue"], dependencies=AUTHORIZED)


def parse_hour(raw: str) -> datetime:
    """An RFC 3339 instant with an offset, on an hour boundary, as UTC."""
    try:
        value = datetime.fromisoformat(raw.strip().replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise ParamError(f"hour: {raw[:40]!r} is not an RFC 3339 time, e.g. 2026-11-20T13:00:00Z") from None
    if value.tzinfo is None:
        raise ParamError(f"hour: {raw[:40]!r} has no UTC offset (add Z or +00:00)")
    value = value.astimezone(UTC)
    if not is_hour_boundary(value):
        raise ParamError(f"hour: {raw[:40]!r} is not on an hour boundary (minutes and seconds must be 0)")
    return value


def _csv_value(value: object) -> str:
    """JSON's spelling in a cell: true/false, an empty cell for null."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _csv_lines(page: EventsPage) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(EVENT_FIELDS)
    for i, event in enumerate(page.events, 1):
        writer.writerow([_csv_value(event[f]) for f in EVENT_FIELDS])
        if i % CSV_CHUNK_ROWS == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def _document(key: HourKey, page: EventsPage) -> dict[str, Any]:
    t = page.totals
    return {
        "hour": hour_label(key.hour),
        "region": key.region,
        "category": key.category,
        "currency": key.currency,
        "status": "final",
        "events": page.events,
        "next_cursor": page.next_cursor.encode() if page.next_cursor else None,
        "totals": {"revenue": str(t.revenue), "orders": t.orders, "refunds": t.refunds, "events": t.events},
    }


@router.get(
    "/v1/revenue/events",
    summary="The events behind one hour and key of the batch view, with their totals",
    description=(
        "Every bronze row of the hour and key as the nightly recompute classified it: counted in "
        "gold, or not (`reason`: `duplicate` or the contract's reason code). For a batch-final "
        "hour the counted events add up exactly to what /v1/revenue/hourly serves for the key in "
        "its native currency. Ordered by Kafka partition and offset; page with `next_cursor`."
    ),
    responses={
        400: {"description": "a parameter is missing or malformed; the message names it"},
        404: {
            "description": "the hour is not batch-final: its events are listed once the nightly recompute covered it"
        },
        409: {"description": "the cursor belongs to an earlier computation of the hour"},
        503: {"description": "the hour's date is being recomputed right now; retry"},
    },
)
async def events(
    services: Svc,
    hour: Annotated[str, Query(description="UTC start of the hour, RFC 3339, e.g. 2026-11-20T13:00:00Z")],
    region: Annotated[str, Query(description="the key's region", pattern=f"^(?:{REGION_PATTERN})$")],
    category: Annotated[str, Query(description="the key's category", pattern=f"^(?:{CATEGORY_PATTERN})$")],
    currency: Annotated[
        str, Query(description="the events' own (native) currency, ISO 4217, e.g. EUR", pattern="^[A-Z]{3}$")
    ],
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="events per page")] = DEFAULT_LIMIT,
    cursor: Annotated[
        str | None,
        Query(max_length=200, description="`next_cursor` of the previous page; absent for the first"),
    ] = None,
    format: Annotated[
        Literal["json", "csv"],
        Query(description="json, or csv: the same events as rows (next cursor in X-Next-Cursor)"),
    ] = "json",
) -> Response:
    key = HourKey(parse_hour(hour), region, category, currency)
    after = None
    if cursor is not None:
        try:
            after = Cursor.decode(cursor)
        except ValueError as exc:
            raise ParamError(str(exc)) from None
    try:
        page = await asyncio.to_thread(read_events, services.settings, key, limit, after)
    except NotFinalError as exc:
        return json_response({"error": "not_final", "detail": str(exc)}, 404)
    except StaleCursorError as exc:
        return json_response({"error": "stale_cursor", "detail": str(exc)}, 409)
    except RecomputingError as exc:
        response = json_response({"error": "recomputing", "detail": str(exc)}, 503)
        response.headers["Retry-After"] = "60"
        return response
    if format == "csv":
        headers = {"X-Next-Cursor": page.next_cursor.encode()} if page.next_cursor else {}
        return StreamingResponse(_csv_lines(page), media_type="text/csv; charset=utf-8", headers=headers)
    return json_response(_document(key, page))
