"""GET /v1/status: what each layer reports about itself, for the dashboard and for operators."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

import redis.asyncio as aioredis
from fastapi import APIRouter
from fastapi.responses import Response

from lambda_contract.windows import format_instant, hour_label
from serving_layer.auth import AUTHORIZED
from serving_layer.merge import SpeedSnapshot, Status
from serving_layer.responses import json_response
from serving_layer.services import VERSION, Services, Svc
from serving_layer.stores import BatchState

SPEED_STALE_AFTER_S: Final = 60

router = APIRouter(tags=["status"], dependencies=AUTHORIZED)


@router.get("/v1/status", summary="Layer health, watermark, last batch run, lag")
async def status(services: Svc) -> Response:
    now = services.clock()
    state = await services.batch.ensure_fresh()
    return json_response(
        {
            "now": format_instant(now),
            "speed": await _speed(services, now),
            "batch": _batch(services, state, now),
            "serving": {
                "version": VERSION,
                "allowed_lateness_s": services.settings.allowed_lateness_s,
                "fx_currencies": sorted(services.fx.currencies),
            },
        }
    )


async def _speed(services: Services, now: datetime) -> dict[str, Any]:
    speed: dict[str, Any] = {"reachable": False, "healthy": False}
    try:
        meta, held = await services.speed.read_meta()
    except (aioredis.RedisError, OSError) as exc:
        speed["error"] = f"{type(exc).__name__}"
        return speed
    snapshot = SpeedSnapshot(watermark=meta.watermark, held=held)
    wm, beat = meta.watermark, meta.updated
    beat_age = (now - beat).total_seconds() if beat else None
    return {
        "reachable": True,
        "healthy": beat_age is not None and beat_age <= SPEED_STALE_AFTER_S,
        "watermark": format_instant(wm) if wm else None,
        "watermark_lag_s": round((now - wm).total_seconds(), 3) if wm else None,
        "heartbeat": format_instant(beat) if beat else None,
        "heartbeat_age_s": round(beat_age, 3) if beat_age is not None else None,
        "hours_held": len(held),
        # the merge rule's notion: closed by the hours hash or by the watermark
        "open_hours": sum(1 for h in held if snapshot.status(h, services.lateness) is Status.OPEN),
    }


def _batch(services: Services, state: BatchState, now: datetime) -> dict[str, Any]:
    through = state.complete_through  # end of the newest computed hour; older gaps show per row
    last = state.last_run
    age = services.batch.cache_age_s()
    return {
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
