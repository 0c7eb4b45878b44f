"""The speed sink's Redis client (redis_io.connect) reaches the master through a real Sentinel
when LAMBDA_REDIS_SENTINELS is set, and after a failover its next write lands on the promoted
replica: the sink retries a failed write on its next tick with the same client (flink_sink).

The Redis processes are the test kit's (lambda_testkit.redis_sentinel): a master, a replica and a
Sentinel on free ports; the master dies by SIGKILL. No Flink job runs: the client is the unit."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from lambda_contract.settings import Settings
from lambda_testkit.processes import wait_until
from lambda_testkit.redis_sentinel import sentinel_servers
from lambda_testkit.sandbox import local_env
from speed_layer import redis_io
from speed_layer.view import HSet

pytestmark = pytest.mark.integration


def test_the_sink_client_writes_through_the_sentinel_and_follows_a_failover(tmp_path: Path) -> None:
    password = Settings.from_env(local_env()).resolved_redis_password()
    assert password, "the local Redis has a password (LAMBDA_REDIS_PASSWORD_FILE)"
    with sentinel_servers(tmp_path, password, replica=True) as servers:
        settings = Settings.from_env(local_env(**servers.env()))
        client = redis_io.connect(settings)
        redis_io.execute(client, [HSet("t:speed:meta", {"watermark_ms": "1"})])
        master = servers.master()
        first: object = master.hget("t:speed:meta", "watermark_ms")
        assert first == b"1"  # it went to the master
        assert master.wait(1, 10_000) == 1
        master.close()

        servers.kill_master()

        errors: list[str] = []

        def write(value: str) -> bool:
            try:
                redis_io.execute(client, [HSet("t:speed:meta", {"watermark_ms": value})])
                return True
            except (redis.RedisError, OSError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                return False  # the sink logs it and retries on its next tick

        assert wait_until(lambda: write("2"), 60, 0.5), (servers.master_address(), errors[-3:])
        assert servers.master_address() == ("127.0.0.1", servers.replica_port)
        promoted = redis.Redis(port=servers.replica_port, password=password)
        second: object = promoted.hget("t:speed:meta", "watermark_ms")
        assert second == b"2"
        promoted.close()
        client.close()
