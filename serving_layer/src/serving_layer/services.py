"""The one typed object the routes share (`app.state.services`), and the lifespan that builds it:
the Redis client exists only while the app runs, in the event loop that serves it."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from typing import Annotated

from fastapi import Depends, FastAPI, Request

from lambda_contract.settings import Settings
from serving_layer.fx import FxTable
from serving_layer.metrics import ServingMetrics
from serving_layer.responses import HourlyBodies
from serving_layer.stores import CLOSED_HOUR_TTL_S, OPEN_TTL_S, BatchStore, SpeedStore, redis_client

log = logging.getLogger("serving_layer.app")  # one name for the app's own lines (start-up, Redis errors)

try:
    VERSION = version("lambda-serving")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without metadata
    VERSION = "0+unknown"

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Options:
    """What create_app is told beyond the settings (tests shorten the TTLs and fix the clocks)."""

    clock: Clock = utc_now
    speed_open_ttl_s: float = OPEN_TTL_S
    speed_closed_ttl_s: float = CLOSED_HOUR_TTL_S
    speed_ttl_clock: Callable[[], float] = time.monotonic


@dataclass
class Services:
    """Everything a route needs, built once per app start (routes read it from the request)."""

    settings: Settings
    fx: FxTable
    speed: SpeedStore
    batch: BatchStore
    metrics: ServingMetrics
    clock: Clock
    lateness: timedelta
    bodies: HourlyBodies


async def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


Svc = Annotated[Services, Depends(services_of)]


def lifespan(
    settings: Settings, fx: FxTable, batch: BatchStore, metrics: ServingMetrics, options: Options
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Start-up: the Redis client, the stores and caches on `app.state.services`, a first batch
    load; shutdown: the client is closed."""

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[None]:
        client = redis_client(settings)
        try:
            app.state.services = Services(
                settings=settings,
                fx=fx,
                speed=SpeedStore(
                    client,
                    settings.redis_layout,
                    settings.allowed_lateness,
                    open_ttl_s=options.speed_open_ttl_s,
                    closed_ttl_s=options.speed_closed_ttl_s,
                    monotonic=options.speed_ttl_clock,
                ),
                batch=batch,
                metrics=metrics,
                clock=options.clock,
                lateness=settings.allowed_lateness,
                bodies=HourlyBodies(fx),
            )
            await batch.ensure_fresh()
            log.info(
                "serving layer started",
                extra={
                    "version": VERSION,
                    "tokens": len(settings.api_tokens),
                    "fx_currencies": len(fx.currencies),
                },
            )
            yield
        finally:
            await client.aclose()

    return run
