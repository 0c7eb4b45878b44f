"""SIGKILL the speed job mid-stream and start it again: once caught up, Redis is exact.

Generated traffic (duplicates and malformed records included) is pre-loaded; the job is killed
with SIGKILL as soon as its first checkpoint is complete while it is still working through the
backlog, then started again the way `make speed` does (resume from the newest complete
checkpoint). Records after that checkpoint are processed twice; absolute writes make Redis
converge to the exact totals anyway.

The backlog compresses hours of event time into seconds of reading; lateness is judged per
partition, so no on-time event may be judged late however the partitions' reading interleaves:
the speed view must equal the truth's speed view exactly and the late view must stay empty
(the traffic has no late events), plus duplicates and malformed counts.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from support import preload_history

from lambda_contract.windows import to_epoch_ms
from lambda_testkit.processes import speed_job, wait_until
from lambda_testkit.sandbox import Sandbox, duplicates, hash_of, read_view
from lambda_tools.generator import GeneratorConfig

pytestmark = pytest.mark.integration

EVENTS = 200_000  # the job drains ~20k ev/s: enough backlog to be killed mid-stream after a checkpoint
START_TIMEOUT_S = 420


def test_sigkill_mid_stream_then_resume_converges_exactly(sandbox: Sandbox, tmp_path: Path) -> None:
    config = GeneratorConfig(seed=3, late_rate=0.0, duplicate_rate=0.02, malformed_rate=0.01)
    start = datetime(2026, 11, 19, 0, tzinfo=UTC)
    records, truth = preload_history(
        sandbox.bootstrap,
        sandbox.topics["LAMBDA_TOPIC_ORDERS"],
        config,
        start,
        datetime(2026, 11, 19, 4, tzinfo=UTC),
        EVENTS,
    )
    assert to_epoch_ms(start) < records[-1].timestamp_ms

    client = sandbox.redis()
    prefix = sandbox.settings().redis_prefix
    ckpt_root = sandbox.checkpoint_dir
    env = sandbox.env()

    job = speed_job(env, tmp_path / "job-1.log")
    try:
        assert wait_until(
            lambda: (
                (client.exists(f"{prefix}:speed:meta") and any(ckpt_root.glob("*/chk-*/_metadata")))
                or not job.alive()
            ),
            START_TIMEOUT_S,
            interval=0.05,
        ), job.tail()
    finally:
        job.kill()
    seen = sum(m.events for m in read_view(client, prefix, "hour").values())
    assert seen < sum(m.events for m in truth.full.values()), (
        "the job finished the backlog before its first checkpoint; raise EVENTS"
    )

    job = speed_job(env, tmp_path / "job-2.log")
    try:

        def exact() -> bool:
            dups = duplicates(client, prefix)
            resumed = "resuming from" in (tmp_path / "job-2.log").read_text()
            return resumed and read_view(client, prefix, "hour") == truth.speed and dups == truth.duplicates

        def progress() -> str:
            view = read_view(client, prefix, "hour")
            have = sum(m.events for m in view.values())
            want = sum(m.events for m in truth.speed.values())
            wrong = sum(1 for k, m in view.items() if truth.speed.get(k) != m)
            return f"events in Redis {have} of {want}; {wrong} keys differ\n{job.tail()}"

        assert not truth.late
        assert wait_until(lambda: exact() or not job.alive(), START_TIMEOUT_S, interval=1.0), progress()
        assert read_view(client, prefix, "late") == {}
        for day, reasons in truth.malformed_by_date.items():
            stored = {
                k.decode(): int(v)
                for k, v in hash_of(client, f"{prefix}:speed:dlq:{day.isoformat()}").items()
            }
            assert stored == reasons
    finally:
        job.kill()
