"""GET /v1/revenue/hourly: validate, merge the batch and speed views per hour, render.

The hottest route. FastAPI declares it (for OpenAPI: HOURLY_OPENAPI lists the parameters and the
bearer scheme), but the plain Starlette route `hot_route()`, placed first in the app's router,
serves it: FastAPI's per-request dependency and endpoint handling was measured at a third of this
route's CPU. Auth is the same check_bearer; parameters are validated in one place (params.py,
with the contract's patterns).
"""

from __future__ import annotations

from typing import Final

import redis.asyncio as aioredis
from fastapi import APIRouter, Request
from fastapi.responses import Response

from serving_layer.auth import check_bearer
from serving_layer.merge import SpeedSnapshot, merge
from serving_layer.middleware import TemplateRoute
from serving_layer.params import GROUP_FIELDS, parse_hourly_params
from serving_layer.services import Services
from serving_layer.stores import SpeedMeta, SpeedRead

PATH: Final = "/v1/revenue/hourly"


def _query_param(name: str, description: str, required: bool = False) -> dict[str, object]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": {"type": "string"},
    }


HOURLY_OPENAPI: Final = {
    "security": [{"HTTPBearer": []}],
    "parameters": [
        _query_param("start", "RFC 3339 instant on an hour boundary, inclusive", True),
        _query_param(
            "end", "RFC 3339 instant on an hour boundary, exclusive; at most 31 days after start", True
        ),
        _query_param("group_by", f"comma-separated subset of {','.join(GROUP_FIELDS)}; default: none"),
        _query_param("region", "filter: comma-separated regions ([a-z0-9-]{1,32} each)"),
        _query_param("category", "filter: comma-separated categories ([a-z0-9_-]{1,32} each)"),
        _query_param("currency", "reporting currency, a code of the FX table (default USD)"),
    ],
}

router = APIRouter()


@router.get(
    PATH,
    tags=["revenue"],
    summary="Hourly revenue, merged per hour from batch and speed",
    responses={
        200: {"description": "rows per hour (and group), with source, status and freshness"},
        400: {"description": "invalid parameter, with a message naming it"},
        401: {"description": "no or invalid bearer token"},
    },
    openapi_extra=HOURLY_OPENAPI,
)
async def revenue_hourly(request: Request) -> Response:
    services: Services = request.app.state.services
    check_bearer(request.headers.get("authorization"), services.settings.api_tokens)
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


def hot_route() -> TemplateRoute:
    """The plain route that serves GET /v1/revenue/hourly ahead of FastAPI's (see the docstring)."""
    return TemplateRoute(PATH, revenue_hourly, methods=["GET"])
