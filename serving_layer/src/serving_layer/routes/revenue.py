"""GET /v1/revenue/hourly: validate, merge the batch and speed views per hour, render.

The hottest route. Its parameters are declared with FastAPI (so /openapi.json and /docs document
them) and parsed once, by the `hourly_query` dependency, with the contract's patterns
(params.py): FastAPI only checks that start and end are there, every other rule and message is
params.py's, and a missing range gets the same 400 (errors.py).
"""

from __future__ import annotations

from typing import Annotated, Final

import redis.asyncio as aioredis
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from serving_layer.auth import AUTHORIZED
from serving_layer.merge import SpeedSnapshot, merge
from serving_layer.params import (
    DEFAULT_CURRENCY,
    GROUP_FIELDS,
    MAX_FILTER_VALUES,
    HourlyQuery,
    check_names,
    parse_hourly,
)
from serving_layer.services import Services
from serving_layer.stores import SpeedMeta, SpeedRead

PATH: Final = "/v1/revenue/hourly"


async def hourly_query(
    request: Request,
    start: Annotated[
        str,
        Query(
            description="First hour, inclusive: an RFC 3339 instant with an offset, on an hour boundary.",
            examples=["2026-11-25T00:00:00Z"],
        ),
    ],
    end: Annotated[
        str,
        Query(
            description="End of the range, exclusive: an RFC 3339 instant on an hour boundary, "
            "after start and at most 31 days (744 hours) after it.",
            examples=["2026-11-26T00:00:00Z"],
        ),
    ],
    group_by: Annotated[
        str | None,
        Query(
            description=f"Comma-separated subset of {', '.join(GROUP_FIELDS)}: one row per hour and "
            "value combination. Default: one row per hour.",
            examples=["region,currency"],
        ),
    ] = None,
    region: Annotated[
        str | None,
        Query(
            description=f"Only these regions: 1 to {MAX_FILTER_VALUES} comma-separated values, "
            "each [a-z0-9-]{1,32}.",
            examples=["eu-west,us-east"],
        ),
    ] = None,
    category: Annotated[
        str | None,
        Query(
            description=f"Only these categories: 1 to {MAX_FILTER_VALUES} comma-separated values, "
            "each [a-z0-9_-]{1,32}.",
            examples=["books"],
        ),
    ] = None,
    currency: Annotated[
        str,
        Query(description="Reporting currency: an ISO 4217 code the FX table knows.", examples=["EUR"]),
    ] = DEFAULT_CURRENCY,
) -> HourlyQuery:
    """The request's parameters, checked once; unknown and repeated names are errors too."""
    check_names(request.query_params.multi_items())
    services: Services = request.app.state.services
    return parse_hourly(
        start=start,
        end=end,
        group_by=group_by,
        region=region,
        category=category,
        currency=currency,
        known_currencies=services.fx.currencies,
    )


router = APIRouter()


@router.get(
    PATH,
    tags=["revenue"],
    summary="Hourly revenue, merged per hour from batch and speed",
    dependencies=AUTHORIZED,  # first: a request without a valid token gets 401 before any 400
    responses={
        200: {"description": "rows per hour (and group), with source, status and freshness"},
        400: {"description": "invalid parameter, with a message naming it"},
        401: {"description": "no or invalid bearer token"},
    },
)
async def revenue_hourly(request: Request, query: Annotated[HourlyQuery, Depends(hourly_query)]) -> Response:
    services: Services = request.app.state.services
    now = services.clock()
    state = await services.batch.ensure_fresh()
    hours = query.hours
    view = await services.batch.view(state, hours)
    computed = view.computed
    try:
        read = await services.speed.read([h for h in hours if h not in computed])
    except (aioredis.RedisError, OSError):
        # Batch-final hours need no Redis: they are served, the others are `unavailable`.
        read = SpeedRead(snapshot=SpeedSnapshot(available=False), meta=SpeedMeta(), tokens={})
    if read.bad_entries:
        services.metrics.bad_redis_entries.inc(read.bad_entries)
    merged = merge(hours, view, read.snapshot, now, services.lateness)
    body = services.bodies.body(query, merged, read.meta.watermark, state.complete_through)
    services.metrics.count_response(body.rows_by_source, body.hours_by_status)
    return body.response(request.headers.get("accept-encoding", ""))
