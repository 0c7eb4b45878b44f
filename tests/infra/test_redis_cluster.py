"""Cluster mode's Redis alone (lambda_tools.cluster.redis): six real nodes, three masters with a
replica each, the local password required; a master SIGKILLed and started again at once by the
engine's `start` (what `make up CLUSTER=1` does) must not wipe its slots: the nodes keep no data
on disk, so the engine waits for the replica's promotion and the node rejoins as its replica.

The nodes are the shared cluster's (started here when not running, on their reserved ports); the
keys are this test's. The speed view on top is tested by tests/speed/test_redis_cluster_sink.py.
"""

from __future__ import annotations

import os
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from typing import cast

import pytest
import redis
from redis.cluster import RedisCluster

from lambda_contract import redis_clients
from lambda_contract.settings import Settings
from lambda_tools import cluster, services
from lambda_tools.cluster import redis as redis_cluster

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def settings() -> Settings:
    base = Settings.from_env()
    env = cluster.environment(base.state_path)
    env.setdefault("LAMBDA_REDIS_PASSWORD_FILE", str(services.redis_password_file(base.state_path)))
    settings = Settings.from_env(env)
    started = time.monotonic()
    redis_cluster.start(settings, settings.state_path)
    print(f"Redis Cluster ready in {time.monotonic() - started:.1f} s")
    return settings


@pytest.fixture
def client(settings: Settings) -> Iterator[RedisCluster]:
    c = cast(RedisCluster, redis_clients.sync_client(settings))
    yield c
    c.close()


def _roles(settings: Settings) -> dict[str, str]:
    password = settings.resolved_redis_password()
    roles = {}
    for name, port in redis_cluster.node_ports(settings).items():
        node = redis.Redis(port=port, password=password, socket_timeout=2)
        roles[name] = cast(str, cast(dict[str, object], node.info("replication"))["role"])
        node.close()
    return roles


def test_three_masters_with_a_replica_each_and_a_password(settings: Settings) -> None:
    roles = _roles(settings)
    assert sorted(roles.values()) == ["master"] * 3 + ["slave"] * 3, roles
    for port in redis_cluster.node_ports(settings).values():  # no client retries: the bare protocol
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"PING\r\n")
            assert conn.recv(100).startswith(b"-NOAUTH"), f"port {port} answers without the password"


def test_a_killed_master_started_again_at_once_keeps_its_slots_data(
    settings: Settings, client: RedisCluster
) -> None:
    prefix = f"test-redis-cluster-{uuid.uuid4().hex[:8]}"
    keys = [f"{prefix}:{i}" for i in range(300)]
    pipe = client.pipeline(transaction=False)  # type: ignore[no-untyped-call]
    for i, key in enumerate(keys):
        pipe.set(key, str(i))
    pipe.execute()
    victim_port = cast(int, client.get_node_from_key(keys[0]).port)  # type: ignore[no-untyped-call]
    victim = {p: n for n, p in redis_cluster.node_ports(settings).items()}[victim_port]
    password = settings.resolved_redis_password()
    time.sleep(0.5)  # asynchronous replication: let the replica catch up with these writes
    pid = services.running_pid(settings.state_path, victim)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    while services.running_pid(settings.state_path, victim) is not None:  # gone, not just signalled
        assert time.monotonic() - killed < 10
        time.sleep(0.02)
    redis_cluster.start(settings, settings.state_path)  # at once, as `make up CLUSTER=1` would
    print(f"\n{victim} SIGKILLed and started again: cluster ok after {time.monotonic() - killed:.1f} s")
    node = redis.Redis(port=victim_port, password=password)
    deadline = time.monotonic() + 30
    while cast(dict[str, object], node.info("replication"))["role"] != "slave":
        assert time.monotonic() < deadline, f"{victim} did not rejoin as a replica"
        time.sleep(0.2)
    node.close()
    fresh = cast(RedisCluster, redis_clients.sync_client(settings))
    try:
        values = fresh.mget_nonatomic(keys)
        assert values == [str(i).encode() for i in range(len(keys))], "a restarted master wiped its slots"
        fresh.delete(*keys)
    finally:
        fresh.close()
