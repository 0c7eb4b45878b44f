"""Redis is a cache of the speed view, never its only copy: after it loses its data the job writes
the whole view back from Flink state within 60 s.

Generated history (on-time, late, duplicate and malformed records over four hours, the newest
hour left open) is pre-loaded; the job counts it, and Redis must then equal the truth: every hour's
speed, late and duplicate hashes, the malformed counters per date and reason, the hours index
(closed and open) and the watermark. The test runs its own `redis-server` (no persistence, the
same password as the shared one) on a free port, because it flushes and restarts it; then:

1. `FLUSHALL` while the job runs;
2. Redis restarted empty while the job runs;
3. Redis restarted empty while the job is down (SIGKILL after a checkpoint covering the whole
   view), then given wrong values (a wrong total in the open hour, the watermark an hour ahead),
   then the job resumed from that checkpoint, with no new record to produce updates: the restored
   aggregates re-emit only keys that get new events, so only the sink's checkpointed state can
   write the view back, and it wins over what Redis holds, being consistent with the
   checkpoint's offsets.

Each time Redis must come back to exactly what it held before (closed hours expiring no later
than before, open hours not expiring) and equal the truth, within 60 s; the times are printed.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
import redis
from support import truth_diff

from lambda_contract.redis_layout import HOUR_CLOSED, HOUR_OPEN
from lambda_contract.settings import Settings
from lambda_contract.windows import HOUR_MS
from lambda_testkit.processes import Child, speed_job, wait_until
from lambda_testkit.sandbox import Sandbox, free_port, hash_of, local_env, sandbox_for
from lambda_testkit.truth import SentRecord, Truth, compute_truth
from lambda_tools.generator import GeneratorConfig, history

pytestmark = pytest.mark.integration

EVENTS = 6_000
START_TIMEOUT_S = 300  # a cold PyFlink start plans a large SQL job; slow on a busy 2-core machine
REBUILD_LIMIT_S = 60  # docs/reliability.md: the whole view is back within 60 s

Dump = dict[str, dict[bytes, bytes]]


@dataclass
class PrivateRedis:
    """A redis-server of the test's own: no persistence, so a restart comes back empty."""

    port: int
    password: str
    tmp: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        conf = self.tmp / "redis.conf"
        conf.touch(mode=0o600)
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\nprotected-mode yes\ndir {self.tmp}\n"
            f'requirepass {self.password}\nappendonly no\nsave ""\ndaemonize no\n'
        )
        with (self.tmp / "redis.log").open("ab") as log:
            self.proc = subprocess.Popen(["redis-server", str(conf)], stdout=log, stderr=subprocess.STDOUT)
        client = redis.Redis(port=self.port, password=self.password)
        try:
            assert wait_until(lambda: _pings(client), 30, 0.05), "the private redis-server did not start"
        finally:
            client.close()

    def kill(self) -> None:
        """SIGKILL, as a crash would: whatever it held is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


@pytest.fixture()
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    password = Settings.from_env(local_env()).resolved_redis_password()
    assert password, "the local Redis has a password (LAMBDA_REDIS_PASSWORD_FILE)"
    server = PrivateRedis(free_port(), password, tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture()
def box(tmp_path: Path, private_redis: PrivateRedis) -> Iterator[Sandbox]:
    with sandbox_for(tmp_path, "speed", LAMBDA_REDIS_URL=private_redis.url) as b:
        yield b


def dump(client: redis.Redis, prefix: str) -> tuple[Dump, dict[str, int]]:
    """Every key of the prefix with its hash (meta: the watermark only) and its TTL (-1: none)."""
    hashes: Dump = {}
    ttls: dict[str, int] = {}
    for raw in client.scan_iter(match=f"{prefix}:*", count=1000):
        key = raw.decode()
        stored = hash_of(client, key)
        if key.endswith(":speed:meta"):
            stored = {k: v for k, v in stored.items() if k in (b"watermark_ms", b"watermark")}
        hashes[key] = stored
        ttls[key] = cast(int, client.ttl(key))
    return hashes, ttls


def equals_truth(client: redis.Redis, prefix: str, truth: Truth) -> bool:
    return not truth_diff(client, prefix, truth)


@dataclass
class Expected:
    """What Redis held once the job had counted everything: the bar every rebuild is held to."""

    client: redis.Redis
    prefix: str
    truth: Truth
    hashes: Dump
    ttls: dict[str, int]

    def problems(self) -> list[str]:
        """How Redis differs from it now (empty: rebuilt)."""
        try:
            hashes, ttls = dump(self.client, self.prefix)
            wrong = truth_diff(self.client, self.prefix, self.truth)
        except redis.RedisError as exc:
            return [f"Redis: {exc!r}"]
        out = [
            f"{k}: {len(v)} fields, Redis {len(hashes.get(k, {}))}"
            for k, v in self.hashes.items()
            if hashes.get(k) != v
        ]
        out += [f"{k}: not expected" for k in hashes.keys() - self.hashes.keys()]
        for key, before in self.ttls.items():
            now = ttls.get(key)
            # Closed hours and malformed counters keep their expiry instant (whole seconds, rounded
            # up); open hours and the indexes never expire.
            if now is not None and not (now == before == -1 or 0 < now <= before + 1):
                out.append(f"{key}: TTL {now} s, before {before} s")
        out += wrong
        return out

    def wait(self, what: str, job: Child, since: float) -> float:
        """Seconds from `since` until Redis is exactly as before; fails past the limit."""
        done = wait_until(lambda: not self.problems() or not job.alive(), REBUILD_LIMIT_S + 5, 0.05)
        took = time.monotonic() - since
        assert job.alive(), f"the speed job died ({what}):\n{job.tail()}"
        assert done and took <= REBUILD_LIMIT_S, (
            f"{what}: the view was not back within {REBUILD_LIMIT_S} s ({took:.1f} s):\n"
            + "\n".join(self.problems()[:20])
            + f"\n{job.tail()}"
        )
        return took


def test_the_whole_view_comes_back_after_a_flush_and_redis_restarts(
    box: Sandbox, private_redis: PrivateRedis, tmp_path: Path
) -> None:
    config = GeneratorConfig(seed=16, late_rate=0.03, duplicate_rate=0.02, malformed_rate=0.02)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start, end = now - timedelta(hours=6), now - timedelta(hours=2)  # relative to today: no fixed date
    records = list(history(config, start, end, EVENTS))
    truth = compute_truth(
        SentRecord(r.value, datetime.fromtimestamp(r.timestamp_ms / 1000, UTC), r.late) for r in records
    )
    box.produce((r.partition, r.key, r.value, r.timestamp_ms) for r in records)
    assert truth.late and truth.duplicates and truth.malformed_by_date
    prefix = box.redis_prefix
    client = box.redis()
    ckpt_root = box.checkpoint_dir
    env = box.env()

    job = speed_job(env, tmp_path / "job-1.log")
    try:
        # The job counts everything; then the view must be stable (every partition idle, so
        # the watermark does not move) before it becomes the bar.
        assert wait_until(lambda: equals_truth(client, prefix, truth) or not job.alive(), START_TIMEOUT_S), (
            f"Redis never equalled the truth\n{job.tail()}"
        )
        assert job.alive(), job.tail()
        hashes, ttls = dump(client, prefix)
        settled_at = time.monotonic()
        while time.monotonic() - settled_at < box.settings().idle_timeout_s + 3:
            time.sleep(0.5)
            if (now_held := dump(client, prefix))[0] != hashes:
                (hashes, ttls), settled_at = now_held, time.monotonic()
        assert not (diff := truth_diff(client, prefix, truth)), "\n".join(diff[:20]) + f"\n{job.tail()}"
        expected = Expected(client, prefix, truth, hashes, ttls)
        statuses = {v.decode() for v in hashes[f"{prefix}:speed:hours"].values()}
        assert statuses == {HOUR_OPEN, HOUR_CLOSED}, "the traffic leaves closed hours and an open one"
        assert any(k.startswith(f"{prefix}:speed:late:") for k in hashes), (
            "late counters live in closed hours"
        )
        print(
            f"\nthe view: {len(hashes)} keys, {sum(len(h) for h in hashes.values())} fields "
            f"({len(truth.speed)} speed, {len(truth.late)} late keys); {statuses}"
        )

        # 1. FLUSHALL while the job runs.
        flushed = time.monotonic()
        client.flushall()
        took = expected.wait("after FLUSHALL", job, flushed)
        print(f"1. FLUSHALL while the job runs: the whole view back {took:.2f} s later")

        # 2. Redis restarted empty while the job runs (down for 3 s: the sink's writes fail).
        killed = time.monotonic()
        private_redis.kill()
        time.sleep(3)
        private_redis.start()
        up = time.monotonic()
        took = expected.wait("after a Redis restart while the job runs", job, up)
        print(
            f"2. Redis restarted while the job runs: the whole view back {took:.2f} s after Redis "
            f"was up again ({up - killed:.1f} s down)"
        )

        # 3. Redis restarted empty while the job is down; the job resumes from its checkpoint.
        covered = time.time()
        assert wait_until(
            lambda: any(m.stat().st_mtime > covered + 1 for m in ckpt_root.glob("*/chk-*/_metadata")), 60
        ), "no checkpoint completed"
    finally:
        job.kill()
    private_redis.kill()
    private_redis.start()
    client.close()
    client = box.redis()
    expected.client = client
    assert dump(client, prefix)[0] == {}
    hours = hashes[f"{prefix}:speed:hours"]
    open_hour = next(h.decode() for h, status in hours.items() if status.decode() == HOUR_OPEN)
    wrong_field = next(iter(hashes[f"{prefix}:speed:hour:{open_hour}"]))
    client.hset(f"{prefix}:speed:hour:{open_hour}", mapping={wrong_field: "9999.0000|9|0|9"})
    client.hset(f"{prefix}:speed:hours", open_hour, HOUR_OPEN)
    settled_wm = int(hashes[f"{prefix}:speed:meta"][b"watermark_ms"])
    client.hset(f"{prefix}:speed:meta", mapping={"watermark_ms": str(settled_wm + HOUR_MS)})
    assert expected.problems(), "the wrong values are seen as wrong"
    jobs_before = {p.name for p in ckpt_root.iterdir()}
    launched = time.monotonic()
    job = speed_job(env, tmp_path / "job-2.log")
    try:

        def running() -> bool:
            """The resumed job completed a checkpoint of its own: every task runs."""
            return any(m.parent.parent.name not in jobs_before for m in ckpt_root.glob("*/chk-*/_metadata"))

        seen: dict[str, float] = {}

        def first(name: str, check: Callable[[], bool]) -> bool:
            """Whether `check` held at some poll; notes when it first did."""
            if name not in seen and check():
                seen[name] = time.monotonic()
            return name in seen

        def both() -> bool:
            healed, ran = first("healed", lambda: not expected.problems()), first("running", running)
            return healed and ran

        assert wait_until(lambda: both() or not job.alive(), START_TIMEOUT_S, 0.1), (
            "the resumed job did not run, or did not rebuild the view\n"
            + "\n".join(expected.problems()[:20])
            + f"\n{job.tail()}"
        )
        healed_at, running_at = seen["healed"], seen["running"]
        assert job.alive(), job.tail()
        assert "resuming from" in (tmp_path / "job-2.log").read_text()
        # Rebuilt at most 60 s after the resumed job ran (in practice on its first tick, before it
        # completed a checkpoint of its own): job start-up is not part of the promise.
        assert healed_at <= running_at + REBUILD_LIMIT_S
        assert not expected.problems(), "\n".join(expected.problems()[:20])
        print(
            f"3. Redis restarted while the job was down, then given wrong values: the whole view back {healed_at - launched:.1f} s "
            f"after the job was started again (job start-up included); its first checkpoint came "
            f"{running_at - launched:.1f} s after the start"
        )
    finally:
        job.kill()
        client.close()
