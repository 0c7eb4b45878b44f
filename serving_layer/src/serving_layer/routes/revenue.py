"""GET /v1/revenue/hourly: validate, merge the batch and speed views per hour, render.

The hottest route. Its parameters are declared by a pydantic model (`HourlyParams`) that FastAPI
publishes in /openapi.json and /docs, and parsed once from the raw query string by params.py, with
the contract's patterns and its own messages (unknown and repeated names are errors too). Letting
FastAPI solve them as `Query` dependencies on every request gave the same answers at 0.33-0.43x
the bare endpoint's throughput instead of 0.55-0.59x (serving_layer/bench/bench_hourly.py, the
same machine, alternated runs), so the model documents and params.py parses.
"""

from __future__ import annotations

from typing import Any, Final

import redis.asyncio as aioredis
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from serving_layer.auth import AUTHORIZED
from serving_layer.merge import SpeedSnapshot, merge
from serving_layer.params import (
    DEFAULT_CURRENCY,
    GROUP_FIELDS,
    HOURLY_PARAMS,
    MAX_FILTER_VALUES,
    parse_hourly_params,
)
from serving_layer.services import Services
from serving_layer.stores import SpeedMeta, SpeedRead

PATH: Final = "/v1/revenue/hourly"


class HourlyParams(BaseModel):
    """The query of /v1/revenue/hourly as OpenAPI documents it (`openapi_extra` below).

    The route itself parses the raw query string with params.py, in one pass and in its own words:
    FastAPI's per-request solving of declared parameters cost 40 % of this route's throughput
    (docs/benchmarks.md), and every rule and message is params.py's anyway.
    """

    start: str = Field(
        description="First hour, inclusive: an RFC 3339 instant with an offset, on an hour boundary.",
        examples=["2026-11-25T00:00:00Z"],
    )
    end: str = Field(
        description="End of the range, exclusive: an RFC 3339 instant on an hour boundary, "
        "after start and at most 31 days (744 hours) after it.",
        examples=["2026-11-26T00:00:00Z"],
    )
    group_by: str | None = Field(
        None,
        description=f"Comma-separated subset of {', '.join(GROUP_FIELDS)}: one row per hour and "
        "value combination. Default: one row per hour.",
        examples=["region,currency"],
    )
    region: str | None = Field(
        None,
        description=f"Only these regions: 1 to {MAX_FILTER_VALUES} comma-separated values, each [a-z0-9-]{{1,32}}.",
        examples=["eu-west,us-east"],
    )
    category: str | None = Field(
        None,
        description=f"Only these categories: 1 to {MAX_FILTER_VALUES} comma-separated values, "
        "each [a-z0-9_-]{1,32}.",
        examples=["books"],
    )
    currency: str = Field(
        DEFAULT_CURRENCY,
        description="Reporting currency: an ISO 4217 code the FX table knows.",
        examples=["EUR"],
    )


def query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """OpenAPI parameter objects for a model's fields, all `in: query`."""
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    out = []
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        description = prop.pop("description", "")
        prop.pop("title", None)
        out.append(
            {
                "name": name,
                "in": "query",
                "required": name in required,
                "description": description,
                "schema": prop,
            }
        )
    assert tuple(p["name"] for p in out) == HOURLY_PARAMS, "the model and params.py name the same parameters"
    return out


router = APIRouter()


@router.get(
    PATH,
    tags=["revenue"],
    summary="Hourly revenue, merged per hour from batch and speed",
    dependencies=AUTHORIZED,  # first: a request without a valid token gets 401 before any 400
    openapi_extra={"parameters": query_parameters(HourlyParams)},
    responses={
        200: {"description": "rows per hour (and group), with source, status and freshness"},
        400: {"description": "invalid parameter, with a message naming it"},
        401: {"description": "no or invalid bearer token"},
    },
)
async def revenue_hourly(request: Request) -> Response:
    services: Services = request.app.state.services
    query = parse_hourly_params(request.query_params.multi_items(), services.fx.currencies)
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
