"""Redis loses its data while the speed job is down: the restarted job writes the open hours back.

The sink's view of the open hours lives in Flink's checkpointed state, so a job resumed from a
checkpoint rewrites them (and `speed:meta`) on its first tick, without waiting for a new event:
the restored aggregates re-emit only keys that get new events, and no event is produced after
the restart. Redis also disagrees with the state before the restart (a wrong total in an open
hour, a watermark an hour ahead): the state wins, being consistent with the checkpoint's offsets.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from support import preload_history

from lambda_contract.redis_layout import HOUR_OPEN
from lambda_contract.windows import HOUR_MS
from lambda_testkit.processes import speed_job, wait_until
from lambda_testkit.sandbox import Sandbox, hash_of, read_view, watermark_ms
from lambda_tools.generator import GeneratorConfig

pytestmark = pytest.mark.integration

EVENTS = 3_000
START_TIMEOUT_S = 300  # a cold PyFlink start plans a large SQL job; slow on a busy 2-core machine
HEAL_TIMEOUT_S = 60  # docs/specs/redis.md: open hours are rewritten within 60 s


def open_hours_in_redis(client: redis.Redis, prefix: str) -> dict[str, dict[bytes, bytes]]:
    """Every hash of the open hours (speed, late, duplicates), the hours' status, the watermark."""
    statuses = hash_of(client, f"{prefix}:speed:hours")
    open_ids = sorted(h.decode() for h, status in statuses.items() if status.decode() == HOUR_OPEN)
    out = {"hours": {h.encode(): HOUR_OPEN.encode() for h in open_ids}}
    for hid in open_ids:
        for kind in ("hour", "late", "dups"):
            stored = hash_of(client, f"{prefix}:speed:{kind}:{hid}")
            if stored:
                out[f"{kind}:{hid}"] = stored
    meta = hash_of(client, f"{prefix}:speed:meta")
    out["meta"] = {k: v for k, v in meta.items() if k in (b"watermark_ms", b"watermark")}
    return out


def test_a_job_restarted_after_redis_lost_its_data_writes_the_open_hours_back(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    config = GeneratorConfig(seed=11, late_rate=0.0, duplicate_rate=0.02, malformed_rate=0.01)
    start = datetime(2026, 11, 21, 10, tzinfo=UTC)
    _, truth = preload_history(
        sandbox.bootstrap,
        sandbox.topics["LAMBDA_TOPIC_ORDERS"],
        config,
        start,
        datetime(2026, 11, 21, 13, tzinfo=UTC),
        EVENTS,
    )
    client = sandbox.redis()
    settings = sandbox.settings()
    prefix = settings.redis_prefix
    ckpt_root = sandbox.checkpoint_dir
    env = sandbox.env()

    # 1. The job counts everything; the watermark settles (every partition idle); a checkpoint
    #    taken after that covers the whole view.
    job = speed_job(env, tmp_path / "job-1.log")
    try:
        assert wait_until(
            lambda: read_view(client, prefix, "hour") == truth.speed or not job.alive(), START_TIMEOUT_S
        ), f"the speed view never equalled the truth\n{job.tail()}"
        assert job.alive(), job.tail()
        settled_wm = watermark_ms(client, prefix)
        settled_at = time.monotonic()
        while time.monotonic() - settled_at < settings.idle_timeout_s + 3:
            time.sleep(0.5)
            if (wm := watermark_ms(client, prefix)) != settled_wm:
                settled_wm, settled_at = wm, time.monotonic()
        expected = open_hours_in_redis(client, prefix)
        open_ids = sorted(h.decode() for h in expected["hours"])
        assert open_ids, "the traffic leaves its last hour open"
        assert expected["meta"][b"watermark_ms"] == str(settled_wm).encode()
        covered = time.time()
        assert wait_until(
            lambda: any(m.stat().st_mtime > covered + 1 for m in ckpt_root.glob("*/chk-*/_metadata")), 60
        ), "no checkpoint completed"
    finally:
        job.kill()  # SIGKILL to the whole process group

    # 2. Redis loses everything while the job is down, and then holds wrong values.
    assert sandbox.delete_keys() > 0
    wrong_hour = f"{prefix}:speed:hour:{open_ids[-1]}"
    wrong_field = next(iter(expected[f"hour:{open_ids[-1]}"]))
    client.hset(wrong_hour, mapping={wrong_field: "9999.0000|9|0|9"})
    client.hset(f"{prefix}:speed:hours", open_ids[-1], HOUR_OPEN)
    ahead = settled_wm + HOUR_MS if settled_wm is not None else HOUR_MS
    client.hset(f"{prefix}:speed:meta", mapping={"watermark_ms": str(ahead)})

    # 3. Restart (resumes from the newest complete checkpoint); no event is produced.
    jobs_before = {p.name for p in ckpt_root.iterdir()}
    launched = time.monotonic()
    job = speed_job(env, tmp_path / "job-2.log")
    try:

        def running() -> bool:
            """The restarted job completed a checkpoint of its own: every task runs."""
            return any(m.parent.parent.name not in jobs_before for m in ckpt_root.glob("*/chk-*/_metadata"))

        assert wait_until(lambda: running() or not job.alive(), START_TIMEOUT_S), job.tail()
        assert job.alive(), job.tail()
        assert "resuming from" in (tmp_path / "job-2.log").read_text()
        running_at = time.monotonic()
        healed = wait_until(
            lambda: open_hours_in_redis(client, prefix) == expected or not job.alive(), HEAL_TIMEOUT_S
        )
        healed_at = time.monotonic()
        assert job.alive(), job.tail()
        assert healed, (
            f"open hours not back {HEAL_TIMEOUT_S} s after the restarted job ran:\n"
            f"expected {expected}\nfound {open_hours_in_redis(client, prefix)}\n{job.tail()}"
        )
        # The whole view comes back, closed hours too (docs/reliability.md), and nothing else.
        assert wait_until(lambda: read_view(client, prefix, "hour") == truth.speed, 30), job.tail()
        print(
            f"open hours and watermark back {healed_at - launched:.1f} s after the restart, "
            f"{healed_at - running_at:.1f} s after the restarted job's first checkpoint"
        )
    finally:
        job.kill()
