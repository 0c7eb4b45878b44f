"""With LAMBDA_REDIS_SENTINELS the serving layer finds the Redis master through a real Sentinel,
and when that master dies it still serves batch-final hours and marks the others `unavailable`.

The test runs its own redis-server and a redis-server in Sentinel mode on free ports (with the
local password), and kills the master with SIGKILL."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from conftest import make_client
from serving_support import k, m, make_settings, utc

from lambda_contract.settings import Settings, SettingsError
from lambda_testkit.processes import wait_until
from lambda_testkit.sandbox import free_port
from lambda_testkit.views import write_gold, write_manifest, write_meta, write_speed_hour

pytestmark = pytest.mark.integration

URL = "/v1/revenue/hourly?start=2026-11-20T10:00:00Z&end=2026-11-20T12:00:00Z"
MASTER = "lambda-test"


class Servers:
    """A master, optionally a replica of it, and one Sentinel (quorum 1, a master down after 1 s);
    all stop on `close` whatever happened."""

    def __init__(self, tmp: Path, password: str, replica: bool = False) -> None:
        self.tmp, self.password, self.with_replica = tmp, password, replica
        self.master_port, self.replica_port, self.sentinel_port = free_port(), free_port(), free_port()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def _run(self, name: str, text: str, *extra: str) -> None:
        conf = self.tmp / f"{name}.conf"
        conf.touch(mode=0o600)
        conf.write_text(text)
        cmd = ["redis-server", str(conf), *extra]
        self.procs[name] = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start(self) -> None:
        self._run(
            "master",
            f"port {self.master_port}\nbind 127.0.0.1\ndir {self.tmp}\nrequirepass {self.password}\n"
            'appendonly no\nsave ""\n',
        )
        if self.with_replica:
            self._run(
                "replica",
                f"port {self.replica_port}\nbind 127.0.0.1\ndir {self.tmp}\nrequirepass {self.password}\n"
                f'masterauth {self.password}\nreplicaof 127.0.0.1 {self.master_port}\nappendonly no\nsave ""\n'
                "dbfilename replica.rdb\n",
            )
        # The Sentinel rewrites its config file, so it gets one of its own.
        self._run(
            "sentinel",
            f"port {self.sentinel_port}\nbind 127.0.0.1\ndir {self.tmp}\nrequirepass {self.password}\n"
            f"sentinel monitor {MASTER} 127.0.0.1 {self.master_port} 1\n"
            f"sentinel auth-pass {MASTER} {self.password}\n"
            f"sentinel down-after-milliseconds {MASTER} 1000\nsentinel failover-timeout {MASTER} 5000\n",
            "--sentinel",
        )
        sentinel = redis.Redis(port=self.sentinel_port, password=self.password)
        try:
            assert wait_until(lambda: _master_known(sentinel), 30, 0.1), "the Sentinel did not start"
        finally:
            sentinel.close()

    def kill_master(self) -> None:
        proc = self.procs["master"]
        proc.kill()
        proc.wait(30)

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait(30)


def _master_known(sentinel: redis.Redis) -> bool:
    try:
        return sentinel.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER) is not None  # type: ignore[no-untyped-call]
    except redis.RedisError:
        return False


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[Servers]:
    yield from _servers(tmp_path, replica=False)


@pytest.fixture
def replicated(tmp_path: Path) -> Iterator[Servers]:
    yield from _servers(tmp_path, replica=True)


def _servers(tmp_path: Path, replica: bool) -> Iterator[Servers]:
    password = make_settings(tmp_path, os.environ).resolved_redis_password()
    assert password, "the local Redis has a password (LAMBDA_REDIS_PASSWORD_FILE)"
    s = Servers(tmp_path, password, replica)
    try:
        s.start()
        yield s
    finally:
        s.close()


def test_the_master_is_found_through_the_sentinel_and_its_loss_leaves_final_hours(
    tmp_path: Path, servers: Servers
) -> None:
    # LAMBDA_REDIS_URL names a port nothing listens on: only the Sentinel can lead to the data.
    settings = make_settings(
        tmp_path,
        os.environ,
        LAMBDA_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
        LAMBDA_REDIS_SENTINELS=f"127.0.0.1:{servers.sentinel_port}",
        LAMBDA_REDIS_SENTINEL_MASTER=MASTER,
    )
    final, speed = utc("2026-11-20T10:00:00Z"), utc("2026-11-20T11:00:00Z")
    write_gold(settings, {final: {k(): m("12.3400", 2)}})
    write_manifest(settings, [final])
    r = redis.Redis(port=servers.master_port, password=servers.password)
    write_speed_hour(r, settings.redis_layout, speed, {k(): m("7.0100", 1)}, closed=True)
    write_meta(r, settings.redis_layout, utc("2026-11-20T15:00:00Z"), utc("2026-11-20T15:19:00Z"))
    r.close()

    with make_client(settings) as c:
        rows = c.get(URL).json()["rows"]
        assert [(x["status"], x["revenue"]) for x in rows] == [("final", "12.34"), ("closed", "7.01")]
        servers.kill_master()
        rows = c.get(URL).json()["rows"]
        assert [(x["status"], x["revenue"]) for x in rows] == [("final", "12.34"), ("unavailable", None)]
        assert c.get("/readyz").json() == {"status": "ready", "redis": "down"}


def test_after_a_failover_the_client_follows_the_sentinels_to_the_new_master(
    tmp_path: Path, replicated: Servers
) -> None:
    """The serving layer keeps its client: it asks the Sentinel again and reads the promoted replica."""
    settings = make_settings(
        tmp_path,
        os.environ,
        LAMBDA_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
        LAMBDA_REDIS_SENTINELS=f"127.0.0.1:{replicated.sentinel_port}",
        LAMBDA_REDIS_SENTINEL_MASTER=MASTER,
    )
    speed = utc("2026-11-20T11:00:00Z")
    r = redis.Redis(port=replicated.master_port, password=replicated.password)
    write_speed_hour(r, settings.redis_layout, speed, {k(): m("7.0100", 1)}, closed=True)
    write_meta(r, settings.redis_layout, utc("2026-11-20T15:00:00Z"), utc("2026-11-20T15:19:00Z"))
    assert r.wait(1, 10_000) == 1, "the replica did not acknowledge the writes"
    r.close()

    with make_client(settings) as c:

        def speed_hour() -> tuple[str, str | None]:
            row = c.get(URL).json()["rows"][1]
            return row["status"], row["revenue"]

        assert speed_hour() == ("closed", "7.01")
        replicated.kill_master()
        assert wait_until(lambda: speed_hour() == ("closed", "7.01"), 60, 0.5), speed_hour()
    sentinel = redis.Redis(port=replicated.sentinel_port, password=replicated.password)
    addr = sentinel.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", MASTER)  # type: ignore[no-untyped-call]
    sentinel.close()
    assert int(addr[1]) == replicated.replica_port


@pytest.mark.parametrize("value", ["redis-0", "redis-0:", ":26379", "redis-0:70000", "a:1,b"])
def test_a_bad_sentinel_list_names_the_variable(value: str) -> None:
    with pytest.raises(SettingsError, match="LAMBDA_REDIS_SENTINELS"):
        Settings.from_env({"LAMBDA_REDIS_SENTINELS": value})
