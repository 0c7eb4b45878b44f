"""Per-request middleware: a request id in the logs and the response, the latency histogram by
route template, one JSON access line; and CORS, closed unless origins are configured."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Final

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lambda_contract.settings import Settings
from serving_layer.logs import request_id
from serving_layer.metrics import ServingMetrics

access_log = logging.getLogger("serving_layer.access")

_REQUEST_ID_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")


def add_middleware(app: FastAPI, settings: Settings, metrics: ServingMetrics) -> None:
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET"],
            allow_headers=["Authorization", "X-Request-ID"],
        )
    app.add_middleware(RequestContext, metrics=metrics, routes=app.router.routes)


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
        for candidate in _flat(routes):
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


def _flat(routes: Sequence[BaseRoute]) -> Iterator[BaseRoute]:
    """The routes one by one: FastAPI keeps an included router as one entry whose routes (each
    with its full path) it lists through `effective_candidates`."""
    for route in routes:
        inner = getattr(route, "effective_candidates", None)
        if callable(inner):
            yield from _flat(inner())
        else:
            yield route


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
