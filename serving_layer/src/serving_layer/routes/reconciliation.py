"""GET /v1/reconciliation/{day}: the reconciliation report of a date, as JSON or HTML, computed on
request in a worker thread (the same report `lambda-reconcile` writes). It sets no metric: the
scheduled `lambda-reconcile` publishes each date's gauges (docs/operations.md)."""

from __future__ import annotations

import asyncio
from datetime import date

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, Response

from serving_layer.auth import AUTHORIZED
from serving_layer.params import ParamError
from serving_layer.reconciliation import reconcile, to_json
from serving_layer.reconciliation_html import render as render_report
from serving_layer.reconciliation_io import NotComputedError, read_inputs
from serving_layer.responses import json_response
from serving_layer.services import Svc

router = APIRouter(tags=["reconciliation"], dependencies=AUTHORIZED)


@router.get(
    "/v1/reconciliation/{day}",
    summary="Speed view against gold for a UTC date, every difference explained by cause",
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
        return json_response({"error": "not_computed", "detail": str(exc)}, 404)
    doc = to_json(reconcile(inputs), services.fx)
    if format == "html":
        return HTMLResponse(render_report(doc))
    return json_response(doc)
