"""The long variant (LAMBDA_CLUSTER_LONG=1): each node failure of the story as its own test, on
more traffic and with longer gaps, so a fault meets a busier job and a bigger backlog.

Each speed fault gets a fresh box (topics, Redis prefix, object-store paths), its own speed job and
1,000 events/s of live traffic for 30 s before the fault and 30 s after it; then Redis must equal
the truth. The Spark worker fault recomputes a generated day of 200,000 events (yesterday, with
late, duplicate and malformed events) with a worker SIGKILLed mid-recompute; both replicas must
serve gold equal to the truth. Recovery times join the story's in reports/cluster/recovery.json.
"""

from __future__ import annotations

import os
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

import pytest
from cluster_support import LONG, VENVS, Box, Flink, Replicas, Stream, run, topic_size
from faults import SPEED_FAULTS, Recovery, Story
from story import batch_with_worker_kill, check_served, speed_job

from lambda_testkit.truth import Truth

pytestmark = [
    pytest.mark.faults,
    pytest.mark.integration,
    pytest.mark.skipif(not LONG, reason="the long variant: LAMBDA_CLUSTER_LONG=1"),
]

RATE: Final = 1000.0
GAP_S: Final = 30.0
DAY_EVENTS: Final = 200_000
SEED: Final = int(os.environ.get("LAMBDA_CLUSTER_SEED") or random.SystemRandom().randrange(1 << 31))


@pytest.mark.parametrize("fault", list(SPEED_FAULTS))
def test_speed_fault_alone(fault: str, cluster: float, recoveries: list[Recovery], tmp_path: Path) -> None:
    box = Box(tmp_path)
    box.create_topics()
    flink = Flink(box.settings().flink_jobmanager)
    replicas = Replicas(box)
    stream = Stream(box, RATE, SEED)
    try:
        replicas.start()
        with speed_job(box, flink) as job:
            stream.start()
            story = Story(box, flink, job, stream, replicas, recoveries)
            SPEED_FAULTS[fault](story, GAP_S)
            time.sleep(GAP_S)  # the traffic goes on after the recovery; the view must keep up
            story.converge(
                time.monotonic(), f"{GAP_S:.0f} s of traffic after the {fault} fault", resume=False
            )
            assert topic_size(box.settings(), box.settings().topic_orders) == len(stream.sent)
    finally:
        stream.finish()
        replicas.stop()
        box.cleanup()


def test_spark_worker_alone(cluster: float, recoveries: list[Recovery], tmp_path: Path) -> None:
    day = datetime.now(UTC).date() - timedelta(days=1)
    box = Box(tmp_path)
    box.create_topics()
    replicas = Replicas(box)
    try:
        truth_path = tmp_path / "truth.json"
        run([str(VENVS / "tools/bin/lambda-generate"), "history", "--date", day.isoformat(), "--events",
             str(DAY_EVENTS), "--seed", str(SEED), "--duplicate-rate", "0.02", "--late-rate", "0.01",
             "--malformed-rate", "0.01", "--truth", str(truth_path)], box.env(), 900)  # fmt: skip
        truth = Truth.load(truth_path)
        days = truth.dates()
        recoveries.append(batch_with_worker_kill(box, days))
        replicas.start()
        check_served(replicas, days, truth.full, {"batch"})
    finally:
        replicas.stop()
        box.cleanup()
