"""The app factory: it wires settings, stores, middleware, error handlers and the routers."""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi import FastAPI

from lambda_contract.settings import Settings
from serving_layer.errors import add_error_handlers
from serving_layer.fx import SHIPPED_RATES, FxTable, load_rates
from serving_layer.metrics import ServingMetrics
from serving_layer.middleware import add_middleware
from serving_layer.routes import events, pages, probes, reconciliation, revenue, status
from serving_layer.services import VERSION, Clock, Options, lifespan, utc_now
from serving_layer.stores import CLOSED_HOUR_TTL_S, OPEN_TTL_S, BatchStore

DESCRIPTION = (
    "Hourly revenue merged per hour from the batch view (Delta gold, final) and the speed "
    "view (Redis, provisional). Every /v1 call needs `Authorization: Bearer <token>`."
)


def create_app(
    settings: Settings,
    *,
    fx: FxTable | None = None,
    clock: Clock = utc_now,
    batch_refresh_s: float = 1.0,
    speed_open_ttl_s: float = OPEN_TTL_S,
    speed_closed_ttl_s: float = CLOSED_HOUR_TTL_S,
    speed_ttl_clock: Callable[[], float] = time.monotonic,
) -> FastAPI:
    """Build the app; the Redis client is created at start-up and closed at shutdown.

    `clock` is the wall clock the merge rule compares hours with; `speed_ttl_clock` is the
    monotonic clock the speed view's cache TTLs run on (tests pass their own to step time).
    """
    rates_path = settings.path(settings.fx_rates_path) if settings.fx_rates_path else SHIPPED_RATES
    fx_table = fx if fx is not None else load_rates(rates_path)
    batch = BatchStore(settings, refresh_interval_s=batch_refresh_s)
    metrics = ServingMetrics(batch.cache_age_s)
    options = Options(clock, speed_open_ttl_s, speed_closed_ttl_s, speed_ttl_clock)
    app = FastAPI(
        title="Lambda revenue platform: serving layer",
        version=VERSION,
        description=DESCRIPTION,
        lifespan=lifespan(settings, fx_table, batch, metrics, options),
        docs_url=None,  # routes/pages.py serves /docs from vendored assets: no CDN
        redoc_url=None,
        # Observability is Prometheus (/metrics) and JSON logs; FastAPI's native OpenTelemetry
        # hooks would only cost per-request checks here.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    add_middleware(app, settings, metrics)
    add_error_handlers(app)
    for module in (revenue, events, status, reconciliation, probes, pages):
        app.include_router(module.router)
    pages.mount_static(app)
    return app
