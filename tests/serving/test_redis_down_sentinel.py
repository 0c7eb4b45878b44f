"""With LAMBDA_REDIS_SENTINELS the serving layer finds the Redis master through a real Sentinel,
follows a failover to the promoted replica, and while no master answers still serves batch-final
hours and marks the others `unavailable`.

The Redis processes (a master, a replica, a Sentinel on free ports with the local password) are
the test kit's (lambda_testkit.redis_sentinel); the master dies by SIGKILL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import make_client
from serving_support import k, m, make_settings, utc

from lambda_contract.settings import Settings, SettingsError
from lambda_testkit.processes import wait_until
from lambda_testkit.redis_sentinel import SentinelServers, sentinel_servers
from lambda_testkit.views import write_gold, write_manifest, write_meta, write_speed_hour

pytestmark = pytest.mark.integration

URL = "/v1/revenue/hourly?start=2026-11-20T10:00:00Z&end=2026-11-20T12:00:00Z"
FINAL, SPEED = utc("2026-11-20T10:00:00Z"), utc("2026-11-20T11:00:00Z")


def _password(tmp_path: Path) -> str:
    password = make_settings(tmp_path, os.environ).resolved_redis_password()
    assert password, "the local Redis has a password (LAMBDA_REDIS_PASSWORD_FILE)"
    return password


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[SentinelServers]:
    with sentinel_servers(tmp_path, _password(tmp_path)) as s:
        yield s


@pytest.fixture
def replicated(tmp_path: Path) -> Iterator[SentinelServers]:
    with sentinel_servers(tmp_path, _password(tmp_path), replica=True) as s:
        yield s


def _views(tmp_path: Path, servers: SentinelServers) -> Settings:
    """Gold holds 10:00, the master's speed view 11:00; the settings reach Redis only by Sentinel."""
    settings = make_settings(tmp_path, os.environ, **servers.env())
    write_gold(settings, {FINAL: {k(): m("12.3400", 2)}})
    write_manifest(settings, [FINAL])
    r = servers.master()
    write_speed_hour(r, settings.redis_layout, SPEED, {k(): m("7.0100", 1)}, closed=True)
    write_meta(r, settings.redis_layout, utc("2026-11-20T15:00:00Z"), utc("2026-11-20T15:19:00Z"))
    if servers.with_replica:
        assert r.wait(1, 10_000) == 1, "the replica did not acknowledge the writes"
    r.close()
    return settings


def test_the_master_is_found_through_the_sentinel_and_its_loss_leaves_final_hours(
    tmp_path: Path, servers: SentinelServers
) -> None:
    settings = _views(tmp_path, servers)
    with make_client(settings) as c:
        rows = c.get(URL).json()["rows"]
        assert [(x["status"], x["revenue"]) for x in rows] == [("final", "12.34"), ("closed", "7.01")]
        servers.kill_master()  # no replica: nothing to promote
        rows = c.get(URL).json()["rows"]
        assert [(x["status"], x["revenue"]) for x in rows] == [("final", "12.34"), ("unavailable", None)]
        assert c.get("/readyz").json() == {"status": "ready", "redis": "down"}


def test_after_a_failover_the_client_follows_the_sentinel_to_the_new_master(
    tmp_path: Path, replicated: SentinelServers
) -> None:
    """The app keeps its client: it asks the Sentinel again and reads the promoted replica."""
    settings = _views(tmp_path, replicated)
    with make_client(settings) as c:

        def speed_hour() -> tuple[str, str | None]:
            row = c.get(URL).json()["rows"][1]
            return row["status"], row["revenue"]

        assert speed_hour() == ("closed", "7.01")
        replicated.kill_master()
        assert wait_until(lambda: speed_hour() == ("closed", "7.01"), 60, 0.5), speed_hour()
    assert replicated.master_address() == ("127.0.0.1", replicated.replica_port)


@pytest.mark.parametrize("value", ["redis-0", "redis-0:", ":26379", "redis-0:70000", "a:1,b"])
def test_a_bad_sentinel_list_names_the_variable(value: str) -> None:
    with pytest.raises(SettingsError, match="LAMBDA_REDIS_SENTINELS"):
        Settings.from_env({"LAMBDA_REDIS_SENTINELS": value})
