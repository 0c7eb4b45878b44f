"""Redis in production as docs/specs/redis.md ("High availability") describes it: Sentinel with a
master and replicas, maxmemory below the container's limit with noeviction, persistence on a
volume, an exporter for RedisMemoryHigh, and clients pointed at every Sentinel by name."""

from __future__ import annotations

import re
from typing import Any

import pytest
from k8s_support import OVERLAYS, objects, one

from lambda_contract.settings import Settings

pytestmark = pytest.mark.unit

Rendered = dict[str, list[dict[str, Any]]]
_UNITS = {"mb": 2**20, "gb": 2**30, "Mi": 2**20, "Gi": 2**30}


def _bytes(quantity: str) -> int:
    match = re.fullmatch(r"(\d+)([A-Za-z]+)", quantity)
    assert match, quantity
    return int(match.group(1)) * _UNITS[match.group(2)]


def _config(docs: list[dict[str, Any]], prefix: str) -> dict[str, str]:
    found: dict[str, str] = next(
        c for c in objects(docs, "ConfigMap") if c["metadata"]["name"].startswith(prefix)
    )["data"]
    return found


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_redis_runs_a_master_and_replicas_under_three_sentinels(rendered: Rendered, overlay: str) -> None:
    docs = rendered[overlay]
    sts = one(docs, "StatefulSet", "redis")["spec"]
    assert sts["replicas"] == 3
    names = [c["name"] for c in sts["template"]["spec"]["containers"]]
    assert names == ["redis", "sentinel", "redis-exporter"]
    files = _config(docs, "redis-config")
    sentinel = files["sentinel-start.sh"]
    assert "sentinel monitor lambda $master 6379 2" in sentinel  # quorum 2 of 3
    assert "printf 'replicaof %s 6379\\n' \"$master\"" in files["redis-start.sh"]
    service = one(docs, "Service", "redis")["spec"]
    assert service["publishNotReadyAddresses"] is True
    assert {p["port"] for p in service["ports"]} == {6379, 26379}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_maxmemory_is_below_the_limit_with_noeviction_and_persistence(
    rendered: Rendered, overlay: str
) -> None:
    docs = rendered[overlay]
    sts = one(docs, "StatefulSet", "redis")["spec"]
    redis = sts["template"]["spec"]["containers"][0]
    maxmemory = next(e["value"] for e in redis["env"] if e["name"] == "REDIS_MAXMEMORY")
    limit = redis["resources"]["limits"]["memory"]
    assert 0.5 <= _bytes(maxmemory) / _bytes(limit) <= 0.8, (maxmemory, limit)  # room for the AOF rewrite
    conf = _config(docs, "redis-config")["redis.conf"]
    assert re.search(r"^maxmemory-policy noeviction$", conf, re.M)
    assert re.search(r"^appendonly yes$", conf, re.M) and re.search(r"^dir /data$", conf, re.M)
    assert "printf 'maxmemory %s\\n' \"$REDIS_MAXMEMORY\"" in _config(docs, "redis-config")["redis-start.sh"]
    assert sts["volumeClaimTemplates"][0]["metadata"]["name"] == "data"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_clients_ask_every_sentinel_for_the_master_the_sentinels_monitor(
    rendered: Rendered, overlay: str
) -> None:
    docs = rendered[overlay]
    settings = Settings.from_env(_config(docs, "lambda-config"))
    replicas = one(docs, "StatefulSet", "redis")["spec"]["replicas"]
    assert settings.redis_sentinels == tuple((f"redis-{i}.redis", 26379) for i in range(replicas))
    assert (
        f"sentinel monitor {settings.redis_sentinel_master} "
        in _config(docs, "redis-config")["sentinel-start.sh"]
    )
