"""Fixtures of the serving fault suite: one real `lambda-serve` over generated data per session."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import redis
from served import Served, generated_truth, serve

from lambda_testkit.truth import Truth

LONG = os.environ.get("LAMBDA_FAULTS_LONG", "") not in ("", "0")


@pytest.fixture(scope="session")
def truth() -> Truth:
    """Two days of generated traffic (about 3,500 keys), the same every run (fixed seed)."""
    return generated_truth(events=20_000)


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory, truth: Truth) -> Iterator[Served]:
    with serve(tmp_path_factory.mktemp("served"), truth) as s:
        yield s


@pytest.fixture
def r(served: Served) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(
        served.settings.redis_url, password=served.settings.resolved_redis_password()
    )
    yield client
    client.close()
