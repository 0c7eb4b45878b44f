"""Every error leaves as JSON `{"error": ..., "detail": ...}`: a bad parameter is a 400 naming it,
an unreadable speed view a 503, and FastAPI's own HTTP errors (401 above all) keep their headers."""

from __future__ import annotations

import logging

import redis.asyncio as aioredis
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from serving_layer.params import ParamError, validation_message
from serving_layer.responses import json_response

log = logging.getLogger("serving_layer.app")  # one name for the app's own lines (start-up, Redis errors)


async def bad_param(request: Request, exc: ParamError) -> Response:
    return json_response({"error": "bad_request", "detail": str(exc)}, 400)


async def bad_declared_param(request: Request, exc: RequestValidationError) -> Response:
    """FastAPI's own check of declared parameters (a missing required one): a 400 like ParamError's."""
    return json_response({"error": "bad_request", "detail": validation_message(exc.errors())}, 400)


async def redis_down(request: Request, exc: aioredis.RedisError) -> Response:
    log.error("redis error", extra={"error": f"{type(exc).__name__}: {exc}"[:300]})
    return json_response({"error": "unavailable", "detail": "the speed view (Redis) cannot be read"}, 503)


async def http_error(request: Request, exc: HTTPException) -> Response:
    response = json_response(
        {"error": "unauthorized" if exc.status_code == 401 else "error", "detail": exc.detail},
        exc.status_code,
    )
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


def add_error_handlers(app: FastAPI) -> None:
    app.exception_handler(ParamError)(bad_param)
    app.exception_handler(RequestValidationError)(bad_declared_param)
    app.exception_handler(aioredis.RedisError)(redis_down)
    app.exception_handler(HTTPException)(http_error)
