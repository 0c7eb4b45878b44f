"""Redis down takes only the speed hours offline: the pod stays ready, batch-final hours are served
exactly, and every other hour is `unavailable` with no number at all (never zeros that look real).

The app reads a redis-server of the test's own on a free port, which the test kills (SIGKILL, as a
crash) and starts again; gold and the coverage manifest are real Delta tables."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from conftest import make_client
from serving_support import hours_from, k, m, make_settings, utc

from lambda_contract.tables import GOLD
from lambda_testkit.processes import wait_until
from lambda_testkit.sandbox import free_port
from lambda_testkit.views import write_gold, write_manifest, write_meta, write_speed_hour

pytestmark = pytest.mark.integration

START = utc("2026-11-20T10:00:00Z")  # the client's clock is 15:20 (conftest.NOW)
URL = "/v1/revenue/hourly?start=2026-11-20T10:00:00Z&end=2026-11-20T14:00:00Z&group_by=region"


class PrivateRedis:
    """A redis-server on a free port with the local password and no persistence, killed by SIGKILL."""

    def __init__(self, tmp: Path, password: str) -> None:
        self.port = free_port()
        self.tmp = tmp
        self.password = password
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        conf = self.tmp / "redis.conf"
        conf.touch(mode=0o600)
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.tmp}\nrequirepass {self.password}\n"
            'appendonly no\nsave ""\ndaemonize no\n'
        )
        self.proc = subprocess.Popen(
            ["redis-server", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        client = redis.Redis(port=self.port, password=self.password)
        try:
            assert wait_until(lambda: _pings(client), 30, 0.05), "the private redis-server did not start"
        finally:
            client.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    password = make_settings(tmp_path, os.environ).resolved_redis_password()
    assert password, "the local Redis has a password (LAMBDA_REDIS_PASSWORD_FILE)"
    server = PrivateRedis(tmp_path, password)
    server.start()
    try:
        yield server
    finally:
        server.kill()


def test_redis_down_keeps_the_pod_ready_and_serves_final_hours_exactly(
    tmp_path: Path, private_redis: PrivateRedis
) -> None:
    settings = make_settings(tmp_path, os.environ, LAMBDA_REDIS_URL=private_redis.url)
    final, speed = hours_from(START, 2), hours_from(utc("2026-11-20T12:00:00Z"), 2)
    write_gold(settings, {final[0]: {k("eu-west"): m("100.0050", 3)}, final[1]: {k("us-east"): m("0.0100")}})
    write_manifest(settings, final)
    r = redis.Redis.from_url(private_redis.url, password=private_redis.password)
    write_speed_hour(r, settings.redis_layout, speed[0], {k("eu-west"): m("7.00", 1)}, closed=True)
    write_speed_hour(r, settings.redis_layout, speed[1], {k("eu-west"): m("5.00", 1)})
    # watermark 14:02: 13:00 is still open (allowed lateness 5 min), 12:00 the sink marked closed
    write_meta(r, settings.redis_layout, utc("2026-11-20T14:02:00Z"), utc("2026-11-20T15:19:00Z"))
    r.close()

    with make_client(settings) as c:
        up = c.get(URL).json()["rows"]
        assert [(row["source"], row["status"]) for row in up] == [
            ("batch", "final"), ("batch", "final"), ("speed", "closed"), ("speed", "open")
        ]  # fmt: skip
        assert c.get("/readyz").json() == {"status": "ready", "redis": "up"}

        private_redis.kill()
        res = c.get(URL)
        assert res.status_code == 200, res.text
        rows = res.json()["rows"]
        assert [(row["hour"], row["region"], row["revenue"], row["orders"]) for row in rows[:2]] == [
            ("2026-11-20T10:00:00Z", "eu-west", "100.00", 3),  # 100.0050, half-even
            ("2026-11-20T11:00:00Z", "us-east", "0.01", 1),
        ]
        assert [(row["source"], row["status"]) for row in rows[:2]] == [("batch", "final")] * 2
        # The speed hours: no number, not a zero, and the status says why.
        for row in rows[2:]:
            assert (row["source"], row["status"]) == ("none", "unavailable")
            assert (row["revenue"], row["orders"], row["refunds"], row["events"]) == (None, None, None, None)
        assert len(rows) == 4
        ready = c.get("/readyz")
        assert ready.status_code == 200 and ready.json() == {"status": "ready", "redis": "down"}
        assert c.get("/healthz").status_code == 200

        # Back up (empty, as after a crash without persistence): nothing is `unavailable` any more.
        private_redis.start()
        assert wait_until(lambda: c.get("/readyz").json().get("redis") == "up", 30, 0.2)
        statuses = [row["status"] for row in c.get(URL).json()["rows"]]
        assert statuses[:2] == ["final", "final"] and "unavailable" not in statuses


def test_a_pod_whose_batch_view_cannot_be_read_is_not_ready(
    tmp_path: Path, private_redis: PrivateRedis
) -> None:
    settings = make_settings(tmp_path, os.environ, LAMBDA_REDIS_URL=private_redis.url)
    write_gold(settings, {START: {k(): m("1.00")}})
    write_manifest(settings, [START])
    gold_log = Path(settings.delta_table_url(GOLD.name).removeprefix("file://")) / "_delta_log"
    with make_client(settings) as c:
        assert c.get("/readyz").status_code == 200
        # a new version whose commit cannot be read
        (gold_log / "00000000000000000001.json").write_text("{not json\n")
        res = c.get("/readyz")
        assert res.status_code == 503 and "batch view" in res.json()["detail"], res.text


def test_a_redis_that_never_answers_does_not_hold_the_probe(tmp_path: Path) -> None:
    """A host that accepts connections and never replies (a partition, a hung Redis): /readyz
    reports Redis down after PING_TIMEOUT_S instead of waiting for the client's 5 s timeout."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # connections complete in the backlog; nothing ever reads them
        port = silent.getsockname()[1]
        settings = make_settings(tmp_path, os.environ, LAMBDA_REDIS_URL=f"redis://127.0.0.1:{port}/0")
        with make_client(settings) as c:
            started = time.monotonic()
            res = c.get("/readyz")
            took = time.monotonic() - started
    assert res.json() == {"status": "ready", "redis": "down"}
    assert took < 3, f"/readyz took {took:.1f} s; the k8s probe gives up after 3 s"
