from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from serving_support import TOKEN, make_settings, utc

from lambda_contract.settings import Settings
from lambda_testkit.sandbox import delete_prefix
from serving_layer.app import create_app

NOW = utc("2026-11-20T15:20:00Z")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, os.environ)


@pytest.fixture
def r(settings: Settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.redis_url, password=settings.resolved_redis_password())
    try:
        client.ping()
    except redis.RedisError as exc:  # pragma: no cover - the services are a precondition
        pytest.fail(f"Redis is not reachable ({exc}); run `make up`")
    yield client
    delete_prefix(client, settings.redis_prefix)
    client.close()


def make_client(
    settings: Settings,
    now: datetime = NOW,
    speed_ttl_s: float = 0.0,
    speed_ttl_clock: Callable[[], float] = time.monotonic,
) -> TestClient:
    """A client whose app re-checks Delta and Redis on every request unless told otherwise."""
    app = create_app(
        settings,
        clock=lambda: now,
        batch_refresh_s=0.0,
        speed_open_ttl_s=speed_ttl_s,
        speed_closed_ttl_s=speed_ttl_s,
        speed_ttl_clock=speed_ttl_clock,
    )
    return TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"})


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with make_client(settings) as c:
        yield c
