"""The serving layer on a real Redis Cluster (redis-1..6 of `make up CLUSTER=1`, started here if
missing): a day of speed hours spread over the three masters is served exact, and while a master
is SIGKILLed and its replica takes over, every answer is either the exact figures or, for hours
the batch has not computed, `unavailable` with no number: never a zero or a partial sum. Once the
replica is promoted the answers are exact again; the killed node is started again.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from conftest import make_client
from redis.cluster import RedisCluster
from serving_support import k, m, make_settings, utc

from lambda_contract import redis_clients
from lambda_contract.settings import Settings
from lambda_testkit.sandbox import REPO, delete_prefix
from lambda_testkit.views import write_gold, write_manifest, write_meta, write_speed_hour
from lambda_tools import cluster
from lambda_tools import services as local_services
from lambda_tools.cluster import redis as redis_cluster

pytestmark = pytest.mark.integration

STATE = REPO / ".local" / "state"
DAY = [utc(f"2026-11-20T{h:02d}:00:00Z") for h in range(15)]  # 00:00..14:00; NOW is 15:20
FINAL = DAY[0]
URL = "/v1/revenue/hourly?start=2026-11-20T00:00:00Z&end=2026-11-20T15:00:00Z"


def _revenue(hour: datetime) -> str:
    return f"{hour.hour + 1}.{hour.hour + 10:02d}"


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    # Redis Cluster as in cluster mode; gold stays on local disk (the object store is not tested here).
    seeds = cluster.environment(STATE)["LAMBDA_REDIS_CLUSTER"]
    s = make_settings(tmp_path, {**os.environ, "LAMBDA_REDIS_CLUSTER": seeds})
    redis_cluster.start(s, s.state_path)
    write_gold(s, {FINAL: {k(): m("12.3400", 2)}})
    write_manifest(s, [FINAL])
    client = cast(RedisCluster, redis_clients.sync_client(s))
    r = cast(redis.Redis, client)
    for hour in DAY[1:]:
        write_speed_hour(r, s.redis_layout, hour, {k(): m(_revenue(hour) + "00", 1)}, closed=True)
    write_meta(r, s.redis_layout, utc("2026-11-20T15:00:00Z"), utc("2026-11-20T15:19:00Z"))
    yield s
    try:
        delete_prefix(r, s.redis_prefix)
    finally:
        client.close()


def _replicated(settings: Settings) -> None:
    """Every master's writes acknowledged by its replica (so the promoted one holds the view)."""
    password = settings.resolved_redis_password()
    deadline = time.monotonic() + 10
    for port in redis_cluster.node_ports(settings).values():
        node = redis.Redis(port=port, password=password)
        while True:
            info = cast(dict[str, Any], node.info("replication"))
            offsets = [
                v["offset"] for key, v in info.items() if key.startswith("slave") and isinstance(v, dict)
            ]
            if info["role"] != "master" or (offsets and min(offsets) >= info["master_repl_offset"]):
                break
            assert time.monotonic() < deadline, f"the replica of port {port} did not catch up"
            time.sleep(0.05)
        node.close()


def _port_of(client: RedisCluster, key: str) -> int:
    """The port of the master that holds `key`'s slot (in the client's slot map)."""
    return cast(int, client.get_node_from_key(key).port)  # type: ignore[no-untyped-call]


def _exact(row: dict[str, Any]) -> bool:
    hour = utc(row["hour"])
    if hour == FINAL:
        return bool(row["status"] == "final" and row["revenue"] == "12.34")
    return bool(row["status"] == "closed" and row["revenue"] == _revenue(hour))


def test_a_master_failover_is_served_exact_or_unavailable(settings: Settings) -> None:
    client = cast(RedisCluster, redis_clients.sync_client(settings))
    ports = {_port_of(client, settings.redis_layout.hour(h)) for h in DAY[1:]}
    assert len(ports) == 3, "the day's hours are on every master"
    victim_port = _port_of(client, settings.redis_layout.hour(DAY[1]))
    client.close()
    victim = {p: n for n, p in redis_cluster.node_ports(settings).items()}[victim_port]
    _replicated(settings)
    answers: dict[str, int] = {"exact": 0, "unavailable": 0, "503": 0}
    with make_client(settings) as c:
        rows = c.get(URL).json()["rows"]
        assert len(rows) == len(DAY) and all(_exact(x) for x in rows), rows
        pid = local_services.running_pid(settings.state_path, victim)
        assert pid is not None
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        recovered = None
        try:
            while time.monotonic() - killed < 40:
                response = c.get(URL)
                if response.status_code == 503:
                    assert response.json()["error"] == "unavailable"
                    answers["503"] += 1
                    continue
                assert response.status_code == 200, response.text
                rows = response.json()["rows"]
                assert len(rows) == len(DAY)
                for row in rows:
                    # Never a wrong number: a row is exact, or says it cannot be read.
                    assert _exact(row) or (row["status"] == "unavailable" and row["revenue"] is None), row
                if all(_exact(x) for x in rows):
                    answers["exact"] += 1
                    if answers["unavailable"] + answers["503"]:
                        recovered = time.monotonic() - killed
                        break
                else:
                    assert _exact(rows[0]), "the batch-final hour is served whatever Redis does"
                    answers["unavailable"] += 1
                time.sleep(0.05)
        finally:
            redis_cluster.start(settings, settings.state_path)  # the killed node comes back
    assert answers["unavailable"] + answers["503"] > 0, f"the failover was never seen: {answers}"
    assert recovered is not None, f"not exact again within 40 s of the kill: {answers}"
    print(f"\nRedis master {victim} SIGKILLed: served exact again after {recovered:.1f} s; answers {answers}")
