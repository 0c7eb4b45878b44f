"""The HTTP API and dashboard: routes and wiring of validation, stores, merge, FX and rendering.

Route map (OpenAPI at /docs):
  /v1/revenue/hourly, /v1/status   bearer token (LAMBDA_API_TOKENS)
  /healthz, /readyz, /metrics      open (probes and the Prometheus scraper; no business data)
  /, /static/*                     open (the dashboard shell; its data calls need a token)
"""

from __future__ import annotations

import asyncio
import gzip
import hmac
import json
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any, Final

import redis.asyncio as aioredis
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.security.utils import get_authorization_scheme_param
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lambda_contract.settings import Settings
from lambda_contract.windows import format_instant, hour_label
from serving_layer.cache import ByteBoundedLru
from serving_layer.fx import SHIPPED_RATES, FxTable, load_rates
from serving_layer.logs import request_id
from serving_layer.merge import MergedHour, SpeedSnapshot, Status, merge
from serving_layer.metrics import ServingMetrics
from serving_layer.params import GROUP_FIELDS, HourlyQuery, ParamError, parse_hourly_params
from serving_layer.reconciliation import reconcile, to_json
from serving_layer.reconciliation_html import render as render_report
from serving_layer.reconciliation_io import NotComputedError, gauges, read_inputs
from serving_layer.rows import render_hour
from serving_layer.stores import (
    CLOSED_HOUR_TTL_S,
    OPEN_TTL_S,
    BatchState,
    BatchStore,
    SpeedStore,
    redis_client,
)

log = logging.getLogger("serving_layer.app")
access_log = logging.getLogger("serving_layer.access")

DASHBOARD_DIR: Final = Path(__file__).with_name("dashboard")
SWAGGER_DIR: Final = Path(__file__).with_name("swagger_ui")
DASHBOARD_HEADERS: Final = {
    "Cache-Control": "no-cache",
    # Only the page's own files, no inline script, no framing: a stolen-token XSS has nowhere to start.
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "Referrer-Policy": "no-referrer",
}
SPEED_STALE_AFTER_S: Final = 60
RENDER_CACHE_BYTES: Final = 64 << 20
BODY_CACHE_BYTES: Final = 64 << 20
GZIP_MIN_BYTES: Final = 8192
VARY_HEADERS: Final = {"Vary": "Accept-Encoding"}
GZIP_HEADERS: Final = {"Vary": "Accept-Encoding", "Content-Encoding": "gzip"}
_REQUEST_ID_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")

try:
    VERSION = version("lambda-serving")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without metadata
    VERSION = "0+unknown"

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def token_valid(given: str, tokens: tuple[str, ...]) -> bool:
    """Constant-time comparison against every configured token (no early exit on a match)."""
    presented = given.encode()
    ok = False
    for token in tokens:
        ok |= hmac.compare_digest(presented, token.encode())
    return ok


def _json(doc: object, status: int = 200) -> Response:
    body = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(body, status_code=status, media_type="application/json")


class RequestContext:
    """Pure ASGI middleware: request id, latency histogram per route, one JSON access log line."""

    def __init__(self, app: ASGIApp, metrics: ServingMetrics, routes: Sequence[BaseRoute] = ()) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes  # the router's own list (routes added later are seen too)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = _incoming_request_id(scope) or uuid.uuid4().hex
        token = request_id.set(rid)
        root_path = scope.get("root_path", "")  # a Mount rewrites it in the shared scope
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", rid.encode()))
                headers.append((b"x-content-type-options", b"nosniff"))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            access_log.exception("unhandled error", extra={"path": scope["path"]})  # with the request id
            raise
        finally:
            elapsed = time.perf_counter() - started
            template = route_template(scope, root_path, self.routes)
            self.metrics.request_seconds.labels(template, scope["method"], str(status)).observe(elapsed)
            access_log.info(
                "request",
                extra={
                    "method": scope["method"],
                    "path": scope["path"],
                    "route": template,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 3),
                },
            )
            request_id.reset(token)


def route_template(scope: Scope, root_path: str, routes: Sequence[BaseRoute]) -> str:
    """The path template of the route that served the request, e.g. `/v1/reconciliation/{day}`.

    FastAPI's router leaves `scope["route"]` to the route classes: its own routes set it, plain
    Starlette routes (`/openapi.json`) and mounts (`/static`, `/swagger`) do not, and a CORS
    preflight never reaches the router. Those requests are matched here against the routes as
    the router would (a full match first, else a partial one, e.g. another method), so only a
    path no route serves is `unmatched` (a bounded label set: paths never become labels).
    """
    route = scope.get("route")
    if route is None and routes:
        probe = {**scope, "root_path": root_path}
        partial = None
        for candidate in routes:
            match, _ = candidate.matches(probe)
            if match is Match.FULL:
                route = candidate
                break
            if match is Match.PARTIAL and partial is None:
                partial = candidate
        else:
            route = partial
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(template) if template else "unmatched"


def _incoming_request_id(scope: Scope) -> str | None:
    """Honour a caller's X-Request-ID only when it is short and plain (it ends up in logs)."""
    for name, value in scope.get("headers", []):
        if name == b"x-request-id":
            text = bytes(value).decode("latin-1")
            if 0 < len(text) <= 64 and set(text) <= _REQUEST_ID_CHARS:
                return text
    return None


class TemplateRoute(Route):
    """A plain Starlette route that, like FastAPI's, names itself in the scope (for the metrics)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child_scope = super().matches(scope)
        if match is not Match.NONE:
            child_scope["route"] = self
        return match, child_scope


@dataclass
class Services:
    settings: Settings
    fx: FxTable
    speed: SpeedStore
    batch: BatchStore
    metrics: ServingMetrics
    clock: Clock
    render_cache: ByteBoundedLru[tuple[object, ...], tuple[bytes, int]]
    body_cache: ByteBoundedLru[tuple[object, ...], Body]


def _fragment(services: Services, merged: MergedHour, query: HourlyQuery) -> tuple[bytes, int]:
    """An hour's rows as JSON text (without brackets) and the row count, cached by data version."""
    key = (merged.hour, query.shape(), merged.source, merged.status, merged.token)
    hit = services.render_cache.get(key)
    if hit is not None:
        return hit
    rows = render_hour(merged, query, services.fx)
    text = ",".join(json.dumps(r, separators=(",", ":")) for r in rows).encode()
    entry = (text, len(rows))
    services.render_cache.put(key, entry)
    return entry


@dataclass
class Body:
    """A rendered response, cached by everything it depends on; gzipped lazily, once."""

    raw: bytes
    rows_by_source: dict[str, int]
    hours_by_status: dict[str, int]
    _gzipped: bytes | None = None

    def gzipped(self) -> bytes:
        if self._gzipped is None:
            self._gzipped = gzip.compress(self.raw, compresslevel=6, mtime=0)
        return self._gzipped


def _body(
    services: Services,
    query: HourlyQuery,
    merged: list[MergedHour],
    watermark: datetime | None,
    through: datetime | None,
) -> Body:
    """The response for these merged hours: from cache while no hour's data version changed."""
    key = (
        query.start,
        query.end,
        query.shape(),
        watermark,
        through,
        tuple((m.source, m.status, m.token) for m in merged),
    )
    hit = services.body_cache.get(key)
    if hit is not None:
        return hit
    parts: list[bytes] = []
    rows_by_source: dict[str, int] = {}
    hours_by_status: dict[str, int] = {}
    for m in merged:
        text, n = _fragment(services, m, query)
        parts.append(text)
        rows_by_source[m.source.value] = rows_by_source.get(m.source.value, 0) + n
        hours_by_status[m.status.value] = hours_by_status.get(m.status.value, 0) + 1
    head = {
        "currency": query.currency,
        "start": hour_label(query.start),
        "end": hour_label(query.end),
        "group_by": list(query.group_by),
    }
    freshness = {
        "speed_watermark": format_instant(watermark) if watermark else None,
        "batch_complete_through": hour_label(through) if through else None,
    }
    raw = b"".join(
        (
            json.dumps(head, separators=(",", ":"))[:-1].encode(),
            b',"rows":[',
            b",".join(p for p in parts if p),
            b'],"freshness":',
            json.dumps(freshness, separators=(",", ":")).encode(),
            b"}",
        )
    )
    body = Body(raw, rows_by_source, hours_by_status)
    services.body_cache.put(key, body)
    return body


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


async def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


Svc = Annotated[Services, Depends(services_of)]
bearer = HTTPBearer(auto_error=False, description="A token from LAMBDA_API_TOKENS.")


def check_bearer(authorization: str | None, tokens: tuple[str, ...]) -> None:
    """401 unless the header carries one of the configured tokens (none configured: no access)."""
    scheme, credentials = get_authorization_scheme_param(authorization)
    if not (authorization and scheme and credentials) or scheme.lower() != "bearer":
        raise HTTPException(401, "missing bearer token", headers={"WWW-Authenticate": "Bearer"})
    if not tokens or not token_valid(credentials, tokens):
        raise HTTPException(401, "invalid bearer token", headers={"WWW-Authenticate": "Bearer"})


async def require_token(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> None:
    """The dependency form of check_bearer; it also declares the security scheme for OpenAPI."""
    check_bearer(request.headers.get("authorization"), request.app.state.services.settings.api_tokens)


def batch_complete_through(state: BatchState) -> datetime | None:
    """End of the newest hour the batch has computed (older gaps show per row as `missing`)."""
    return state.complete_through


def create_app(
    settings: Settings,
    *,
    fx: FxTable | None = None,
    clock: Clock = utc_now,
    batch_refresh_s: float = 1.0,
    speed_open_ttl_s: float = OPEN_TTL_S,
    speed_closed_ttl_s: float = CLOSED_HOUR_TTL_S,
) -> FastAPI:
    """Build the app; the Redis client is created at start-up and closed at shutdown."""
    rates_path = settings.path(settings.fx_rates_path) if settings.fx_rates_path else SHIPPED_RATES
    fx_table = fx if fx is not None else load_rates(rates_path)
    batch = BatchStore(settings, refresh_interval_s=batch_refresh_s)
    metrics = ServingMetrics(batch.cache_age_s)
    lateness = settings.allowed_lateness

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = redis_client(settings)
        app.state.services = Services(
            settings=settings,
            fx=fx_table,
            speed=SpeedStore(
                client,
                settings.redis_layout,
                settings.allowed_lateness,
                open_ttl_s=speed_open_ttl_s,
                closed_ttl_s=speed_closed_ttl_s,
            ),
            batch=batch,
            metrics=metrics,
            clock=clock,
            render_cache=ByteBoundedLru(RENDER_CACHE_BYTES, lambda e: len(e[0])),
            # a body counts twice: its gzipped copy is made on demand and kept with it
            body_cache=ByteBoundedLru(BODY_CACHE_BYTES, lambda b: 2 * len(b.raw)),
        )
        await batch.ensure_fresh()
        log.info(
            "serving layer started",
            extra={
                "version": VERSION,
                "tokens": len(settings.api_tokens),
                "fx_currencies": len(fx_table.currencies),
            },
        )
        try:
            yield
        finally:
            await client.aclose()

    app = FastAPI(
        title="Lambda revenue platform: serving layer",
        version=VERSION,
        description=(
            "Hourly revenue merged per hour from the batch view (Delta gold, final) and the speed "
            "view (Redis, provisional). Every /v1 call needs `Authorization: Bearer <token>`."
        ),
        lifespan=lifespan,
        docs_url=None,  # served below from vendored assets: no CDN
        redoc_url=None,
        # Observability is Prometheus (/metrics) and JSON logs; FastAPI's native OpenTelemetry
        # hooks would only cost per-request checks here.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET"],
            allow_headers=["Authorization", "X-Request-ID"],
        )
    app.add_middleware(RequestContext, metrics=metrics, routes=app.router.routes)
    auth = [Depends(require_token)]

    @app.exception_handler(ParamError)
    async def bad_param(request: Request, exc: ParamError) -> Response:
        return _json({"error": "bad_request", "detail": str(exc)}, 400)

    @app.exception_handler(aioredis.RedisError)
    async def redis_down(request: Request, exc: aioredis.RedisError) -> Response:
        log.error("redis error", extra={"error": f"{type(exc).__name__}: {exc}"[:300]})
        return _json({"error": "unavailable", "detail": "the speed view (Redis) cannot be read"}, 503)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        response = _json(
            {"error": "unauthorized" if exc.status_code == 401 else "error", "detail": exc.detail},
            exc.status_code,
        )
        for name, value in (exc.headers or {}).items():
            response.headers[name] = value
        return response

    @app.get(
        "/v1/revenue/hourly",
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
        # The hottest route: FastAPI declares it (OpenAPI: HOURLY_OPENAPI lists the parameters
        # and the bearer scheme) and a plain Starlette route with this same endpoint, placed
        # first in the router, serves it, because FastAPI's per-request dependency and endpoint
        # handling was measured at a third of this route's CPU. Auth is the same check_bearer;
        # parameters are validated in one place (params.py, with the contract's patterns).
        services: Services = request.app.state.services
        check_bearer(request.headers.get("authorization"), services.settings.api_tokens)
        query = parse_hourly_params(request.query_params.multi_items(), services.fx.currencies)
        now = services.clock()
        state = await services.batch.ensure_fresh()
        hours = query.hours
        computed = state.view.computed
        read = await services.speed.read([h for h in hours if h not in computed])
        if read.bad_entries:
            services.metrics.bad_redis_entries.inc(read.bad_entries)
        merged = merge(hours, state.view, read.snapshot, now, lateness)
        body = _body(services, query, merged, read.meta.watermark, batch_complete_through(state))
        services.metrics.count_response(body.rows_by_source, body.hours_by_status)
        if "gzip" in request.headers.get("accept-encoding", "") and len(body.raw) >= GZIP_MIN_BYTES:
            return Response(body.gzipped(), media_type="application/json", headers=GZIP_HEADERS)
        return Response(body.raw, media_type="application/json", headers=VARY_HEADERS)

    app.router.routes.insert(0, TemplateRoute("/v1/revenue/hourly", revenue_hourly, methods=["GET"]))

    @app.get(
        "/v1/status",
        dependencies=auth,
        tags=["status"],
        summary="Layer health, watermark, last batch run, lag",
    )
    async def status(services: Svc) -> Response:
        now = services.clock()
        state = await services.batch.ensure_fresh()
        speed: dict[str, Any] = {"reachable": False, "healthy": False}
        try:
            meta, held = await services.speed.read_meta()
            snapshot = SpeedSnapshot(watermark=meta.watermark, held=held)
            wm, beat = meta.watermark, meta.updated
            beat_age = (now - beat).total_seconds() if beat else None
            speed = {
                "reachable": True,
                "healthy": beat_age is not None and beat_age <= SPEED_STALE_AFTER_S,
                "watermark": format_instant(wm) if wm else None,
                "watermark_lag_s": round((now - wm).total_seconds(), 3) if wm else None,
                "heartbeat": format_instant(beat) if beat else None,
                "heartbeat_age_s": round(beat_age, 3) if beat_age is not None else None,
                "hours_held": len(held),
                # the merge rule's notion: closed by the hours hash or by the watermark
                "open_hours": sum(1 for h in held if snapshot.status(h, lateness) is Status.OPEN),
            }
        except (aioredis.RedisError, OSError) as exc:
            speed["error"] = f"{type(exc).__name__}"
        through = batch_complete_through(state)
        last = state.last_run
        age = services.batch.cache_age_s()
        batch_doc: dict[str, Any] = {
            "available": state.manifest_version is not None,
            "gold_version": state.gold_version,
            "manifest_version": state.manifest_version,
            "computed_hours": len(state.view.computed),
            "complete_through": hour_label(through) if through else None,
            "lag_s": round((now - through).total_seconds(), 3) if through else None,
            "last_run": None
            if last is None
            else {
                "run_id": last.run_id,
                "computed_at": format_instant(last.computed_at),
                "dates": [d.isoformat() for d in last.dates],
                "hours": last.hours,
            },
            "cache_age_s": round(age, 3) if age is not None else None,
            "error": state.error,
        }
        return _json(
            {
                "now": format_instant(now),
                "speed": speed,
                "batch": batch_doc,
                "serving": {
                    "version": VERSION,
                    "allowed_lateness_s": settings.allowed_lateness_s,
                    "fx_currencies": sorted(services.fx.currencies),
                },
            }
        )

    @app.get(
        "/v1/reconciliation/{day}",
        dependencies=auth,
        tags=["reconciliation"],
        summary="Speed view against gold for a UTC date, every difference explained by cause (SPEC §6)",
        responses={404: {"description": "the batch layer has not computed the date"}},
    )
    async def reconciliation(services: Svc, day: str, format: str = "json") -> Response:
        try:
            parsed = date.fromisoformat(day)
        except ValueError:
            raise ParamError(f"date must be YYYY-MM-DD, got {day[:40]!r}") from None
        if format not in ("json", "html"):
            raise ParamError(f"format must be json or html, got {format[:20]!r}")
        try:
            inputs = await asyncio.to_thread(read_inputs, services.settings, parsed)
        except NotComputedError as exc:
            return _json({"error": "not_computed", "detail": str(exc)}, 404)
        doc = to_json(reconcile(inputs), services.fx)
        for name, value in gauges(doc["totals"]).items():
            services.metrics.reconciliation[name].set(value)
        if format == "html":
            return HTMLResponse(render_report(doc))
        return _json(doc)

    @app.get("/healthz", tags=["probes"], summary="Liveness: the process answers")
    async def healthz() -> Response:
        return _json({"status": "ok"})

    @app.get("/readyz", tags=["probes"], summary="Readiness: Redis answers and FX rates are loaded")
    async def readyz(services: Svc) -> Response:
        if await services.speed.ping():
            return _json({"status": "ready"})
        return _json({"status": "not ready", "detail": "Redis does not answer"}, 503)

    @app.get(
        "/metrics", tags=["probes"], summary="Prometheus metrics (lambda_serving_*), open for the scraper"
    )
    async def prometheus(services: Svc) -> Response:
        state = services.batch.state
        services.metrics.table_version.labels("gold").set(
            -1 if state.gold_version is None else state.gold_version
        )
        services.metrics.table_version.labels("coverage_manifest").set(
            -1 if state.manifest_version is None else state.manifest_version
        )
        try:
            meta, _ = await services.speed.read_meta()
            lag = (services.clock() - meta.watermark).total_seconds() if meta.watermark else math.nan
        except (aioredis.RedisError, OSError):
            lag = math.nan
        services.metrics.speed_watermark_lag.set(lag)
        return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    index_html = (DASHBOARD_DIR / "index.html").read_bytes()

    @app.get("/", include_in_schema=False)
    async def dashboard() -> Response:
        return HTMLResponse(index_html, headers=DASHBOARD_HEADERS)

    @app.get("/docs", include_in_schema=False)
    async def docs() -> Response:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} - docs",
            swagger_js_url="/swagger/swagger-ui-bundle.js",
            swagger_css_url="/swagger/swagger-ui.css",
            swagger_favicon_url="/swagger/favicon-32x32.png",
        )

    app.mount("/static", StaticFiles(directory=DASHBOARD_DIR), name="static")
    app.mount("/swagger", StaticFiles(directory=SWAGGER_DIR), name="swagger")
    return app
