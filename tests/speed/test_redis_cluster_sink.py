"""The speed sink on a real Redis Cluster (redis-1..6 of `make up CLUSTER=1`, started here if
missing): the view spread over three masters is written exact, a loss on any one master is seen
by the epoch probe and healed by a whole-view write, and after a master is SIGKILLed its replica
takes over and the view is written whole again, exact, while updates keep coming.

The sink is the job's own RedisSink driven tick by tick (`_flush`, the body of its processing-time
timer) with a SpeedView fed updates by the test: no Flink runtime, whose recovery other tests
cover (tests/cluster). The killed node is started again and must rejoin as a replica.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import cast

import pytest
import redis
from redis.cluster import RedisCluster

from lambda_contract import redis_clients
from lambda_contract.redis_layout import GroupKey, Metrics
from lambda_contract.settings import Settings
from lambda_contract.windows import HOUR_MS
from lambda_testkit.sandbox import REPO, delete_prefix, local_env
from lambda_tools import cluster
from lambda_tools import services as local_services
from lambda_tools.cluster import redis as redis_cluster
from speed_layer import redis_io
from speed_layer.flink_sink import RedisSink
from speed_layer.metrics import SpeedMetrics
from speed_layer.view import EPOCH_FIELD, HSet, SpeedView, Update

pytestmark = pytest.mark.integration

STATE = REPO / ".local" / "state"
HOURS = 12
KEYS = [GroupKey(r, c, "EUR") for r in ("eu-west", "us-east") for c in ("books", "games")]


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    env = local_env(LAMBDA_REDIS_CLUSTER=cluster.environment(STATE)["LAMBDA_REDIS_CLUSTER"])
    env["LAMBDA_REDIS_PREFIX"] = f"test-rc-{os.urandom(4).hex()}"
    env["LAMBDA_CHECKPOINT_DIR"] = tmp_path_factory.mktemp("checkpoints").as_uri()
    s = Settings.from_env(env)
    redis_cluster.start(s, s.state_path)
    yield s
    client = redis_clients.sync_client(s)
    try:
        delete_prefix(client, s.redis_prefix)  # type: ignore[arg-type]
    finally:
        client.close()


def _sink(settings: Settings) -> RedisSink:
    """The job's sink, opened as Flink would open it, minus the runtime (keyed state unused)."""
    sink = RedisSink(settings, tick_ms=200, refresh_s=10)
    sink._client = redis_io.connect(settings)
    sink._view = SpeedView(settings.redis_layout, 300, 3 * 86_400, 0, partitions=1)
    sink._metrics = SpeedMetrics()
    sink._loaded = True
    return sink


def _feed(view: SpeedView, now_ms: int, step: int) -> None:
    """Absolute totals for every hour and key that grow with `step` (each tick changes them)."""
    first = now_ms // HOUR_MS * HOUR_MS - (HOURS - 1) * HOUR_MS
    for h in range(HOURS):
        for i, key in enumerate(KEYS):
            events = step + h + i + 1
            speed = Metrics(Decimal(events) * Decimal("1.2345"), events, 0, events)
            view.apply(
                Update("hour", first + h * HOUR_MS, key.region, key.category, key.currency, speed=speed)
            )


def _expected(view: SpeedView, now_ms: int) -> dict[str, dict[bytes, bytes]]:
    """What Redis must hold: every hash of the whole view except meta's heartbeat and epoch."""
    out: dict[str, dict[bytes, bytes]] = {}
    for cmd in view.rewrite(now_ms, "expected"):
        if isinstance(cmd, HSet):
            out.setdefault(cmd.key, {}).update({k.encode(): v.encode() for k, v in cmd.mapping.items()})
    out.pop(view.layout.meta())
    return out


def _held(client: redis_clients.SyncClient, keys: list[str]) -> dict[str, dict[bytes, bytes]]:
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.hgetall(key)
    return dict(zip(keys, pipe.execute(), strict=True))


def _port_of(client: RedisCluster, key: str) -> int:
    """The port of the master that holds `key`'s slot (in the client's slot map)."""
    return cast(int, client.get_node_from_key(key).port)  # type: ignore[no-untyped-call]


def _role(node: redis.Redis) -> str:
    return cast(str, cast(dict[str, object], node.info("replication"))["role"])


def _masters(settings: Settings) -> dict[int, str]:
    """port -> node name of the masters now (asked of a node that answers)."""
    names = {p: n for n, p in redis_cluster.node_ports(settings).items()}
    password = settings.resolved_redis_password()
    for port in names:
        try:
            r = redis.Redis(port=port, password=password, socket_timeout=2)
            nodes = cast(bytes, r.execute_command("CLUSTER", "NODES")).decode()  # type: ignore[no-untyped-call]
            r.close()
        except (redis.RedisError, OSError):
            continue
        return {
            int(f[1].split("@")[0].rsplit(":", 1)[1]): names[int(f[1].split("@")[0].rsplit(":", 1)[1])]
            for f in (line.split() for line in nodes.splitlines())
            if "master" in f[2] and "fail" not in f[2] and len(f) > 8
        }
    raise AssertionError("no Redis Cluster node answers")


def test_a_loss_on_any_master_is_seen_and_healed(settings: Settings) -> None:
    sink = _sink(settings)
    client = cast(RedisCluster, sink._client)
    view = sink._view
    assert view is not None
    now = int(time.time() * 1000)
    _feed(view, now, 0)
    sink._flush(now)
    expected = _expected(view, now)
    keys = sorted(expected)
    assert _held(client, keys) == expected
    masters = _masters(settings)
    assert len(masters) == 3
    spread = {_port_of(client, k) for k in keys}
    assert spread == set(masters), "the view's keys are on every master"
    markers = redis_clients.slot_markers(client, settings.redis_layout)
    assert {_port_of(client, k) for k in markers} == set(masters)
    password = settings.resolved_redis_password()
    for port, name in sorted(masters.items()):
        node = redis.Redis(port=port, password=password)
        lost = list(node.scan_iter(match=f"{settings.redis_prefix}:*", count=1000))
        for key in lost:  # this master lost its part of the view, marker included
            node.unlink(key)
        node.close()
        assert _held(client, keys) != expected, f"{name} held part of the view"
        now += 200
        sink._flush(now)
        assert _held(client, keys) == _expected(view, now), f"the view lost on {name} was not rewritten"
    sink.close()


def test_a_killed_master_is_replaced_and_the_view_is_exact_again(settings: Settings) -> None:
    sink = _sink(settings)
    client = cast(RedisCluster, sink._client)
    view = sink._view
    assert view is not None and sink._metrics is not None
    now = int(time.time() * 1000)
    _feed(view, now, 0)
    sink._flush(now)
    meta_port = _port_of(client, settings.redis_layout.meta())
    masters = _masters(settings)
    victim = masters[meta_port]
    pid = local_services.running_pid(settings.state_path, victim)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    step, errors_seen, healed = 0, 0.0, None
    try:
        while time.monotonic() - killed < 40:
            step += 1
            now = int(time.time() * 1000)
            _feed(view, now, step)  # updates keep coming during the failover
            epoch_before = sink._epoch
            sink._flush(now)
            errors_seen = sink._metrics.redis_errors._value.get()
            if (
                errors_seen
                and sink._epoch
                and sink._epoch != epoch_before
                and meta_port not in _masters(settings)
            ):
                healed = time.monotonic() - killed
                break
            time.sleep(0.2)
        assert errors_seen > 0, "writes to the killed master failed"
        assert healed is not None, "no whole-view write after a replica took over within 40 s"
        promoted = _masters(settings)
        assert meta_port not in promoted and len(promoted) == 3
        # Exact: once healed, every hash equals the view, and the next ticks keep it so.
        now = int(time.time() * 1000)
        _feed(view, now, step + 1)
        sink._flush(now)
        expected = _expected(view, now)
        assert _held(client, sorted(expected)) == expected
        markers = redis_clients.slot_markers(client, settings.redis_layout)
        epochs = [cast(bytes | None, client.hget(k, EPOCH_FIELD)) for k in markers]
        assert epochs == [sink._epoch.encode()] * 3
        print(
            f"\nRedis master {victim} SIGKILLed: replica promoted and the view rewritten after {healed:.1f} s"
        )
    finally:
        started = time.monotonic()
        redis_cluster.start(settings, settings.state_path)  # the killed node comes back
        sink.close()
    password = settings.resolved_redis_password()
    node = redis.Redis(port=meta_port, password=password)
    deadline = time.monotonic() + 30
    while _role(node) != "slave" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _role(node) == "slave", f"{victim} did not rejoin as a replica"
    node.close()
    print(f"{victim} started again: a replica after {time.monotonic() - started:.1f} s")


def test_the_view_survives_unchanged_for_a_reader_on_its_own_master(settings: Settings) -> None:
    """Reading back a first start's state works across masters (read_state on the cluster)."""
    sink = _sink(settings)
    view = sink._view
    assert view is not None
    now = int(time.time() * 1000)
    _feed(view, now, 7)
    sink._flush(now)
    _, hours = redis_io.read_state(sink._client, settings.redis_layout)
    assert len(hours) == HOURS
    first = now // HOUR_MS * HOUR_MS - (HOURS - 1) * HOUR_MS
    assert hours[first]["speed"][KEYS[0].field()] == Metrics(Decimal(8) * Decimal("1.2345"), 8, 0, 8).encode()
    sink.close()


def test_a_cluster_that_does_not_answer_fails_ticks_not_the_job(tmp_path: Path) -> None:
    """The client is made on the first tick (a cluster client reads the slot map when made): a
    sink whose cluster is unreachable counts the error and keeps the commands for the next tick."""
    env = local_env(LAMBDA_REDIS_CLUSTER="127.0.0.1:1", LAMBDA_CHECKPOINT_DIR=tmp_path.as_uri())
    sink = RedisSink(Settings.from_env(env))
    sink._view = SpeedView(sink.settings.redis_layout, 300, 3 * 86_400, 0, partitions=1)
    sink._metrics = SpeedMetrics()
    sink._loaded = True
    now = int(time.time() * 1000)
    _feed(sink._view, now, 0)
    sink._flush(now)
    assert sink._metrics.redis_errors._value.get() == 1
    assert sink._client is None and sink._retry and sink._epoch == ""
    sink.close()
