"""Open endpoints for Kubernetes probes and the Prometheus scraper; they hold no business data."""

from __future__ import annotations

import asyncio
import math

import redis.asyncio as aioredis
from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from serving_layer.responses import json_response
from serving_layer.services import Svc

router = APIRouter(tags=["probes"])
PING_TIMEOUT_S = 1.0  # Redis is reported by /readyz, never waited for


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> Response:
    return json_response({"status": "ok"})


@router.get("/readyz", summary="Readiness: the batch view can be read (Redis is reported, not required)")
async def readyz(services: Svc) -> Response:
    """Ready while the batch view (gold and the coverage manifest) can be read. Redis down does not
    make a pod unready: every pod shares the one Redis, so failing them all would take the
    batch-final hours offline too, while /v1/revenue/hourly serves them and marks the speed hours
    `unavailable`. The FX table needs no check: create_app validates it before the app starts."""
    state = await services.batch.ensure_fresh()
    try:  # bounded: an unreachable host must not hold the probe past its timeout (3 s in k8s)
        redis = "up" if await asyncio.wait_for(services.speed.ping(), PING_TIMEOUT_S) else "down"
    except TimeoutError:
        redis = "down"
    if state.error is not None:
        detail = f"the batch view cannot be read: {state.error}"
        return json_response({"status": "not ready", "detail": detail, "redis": redis}, 503)
    return json_response({"status": "ready", "redis": redis})


@router.get("/metrics", summary="Prometheus metrics (lambda_serving_*), open for the scraper")
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
