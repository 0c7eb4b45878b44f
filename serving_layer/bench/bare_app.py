"""The benchmark's baseline: a bare ASGI endpoint on the same stack (uvicorn + redis-py/hiredis)
that answers every GET with one HGETALL of one speed-view hour, as JSON. No framework, no auth."""

from __future__ import annotations

import json
import os
from typing import Any

import redis.asyncio as aioredis

from lambda_contract.settings import Settings

_settings = Settings.from_env()
_key = os.environ["BENCH_BARE_KEY"]
_client: aioredis.Redis | None = None


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    global _client
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                _client = aioredis.Redis.from_url(
                    _settings.redis_url, password=_settings.resolved_redis_password()
                )
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if _client is not None:
                    await _client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return
    assert _client is not None
    raw: dict[bytes, bytes] = await _client.hgetall(_key)  # type: ignore[misc]
    body = json.dumps({k.decode(): v.decode() for k, v in raw.items()}, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
