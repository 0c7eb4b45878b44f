"""SIGKILL the speed job mid-backlog and start it again: once caught up, Redis, the DLQ and the
late topic are all exact.

Generated history (duplicates, malformed and late records, late by construction:
lambda_tools.generator) is pre-loaded. The job is SIGKILLed once checkpoints have committed records
to both output topics, while it is still working through the backlog, so its open transactions
hold records that the resumed run writes again; it is started again the way `make speed` does
(resume from the newest complete checkpoint). Records after that checkpoint are processed twice.

- Redis: absolute writes make it converge to the exact totals anyway: the speed view, the late
  view, duplicates and malformed counts equal the truth. The backlog compresses hours of event
  time into seconds of reading; lateness is judged per partition, so no on-time event may be
  judged late (nor a late one on time) however the partitions' reading interleaves.
- The topics, read_committed: every malformed record is in the DLQ exactly once (by its Kafka
  partition and offset) and every late record in the late topic exactly once (by payload: each
  late event is a new event id). What a read_uncommitted reader sees is only printed: the killed
  run's aborted records are there too. With the sinks at-least-once this test fails (tried once:
  199 DLQ and 7 late records twice).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition
from support import truth_diff

from lambda_contract.settings import Settings
from lambda_testkit.processes import speed_job, wait_until
from lambda_testkit.sandbox import REPO, Sandbox, read_topic, read_view
from lambda_testkit.truth import SentRecord, compute_truth
from lambda_tools.generator import GeneratorConfig, Kind, history
from speed_layer import sql

EVENTS = 200_000  # the job drains ~20k ev/s: a backlog still being read at its first commits
START_TIMEOUT_S = 420


@pytest.mark.unit
def test_both_sinks_are_transactional_with_their_own_ids_and_a_timeout_the_broker_accepts() -> None:
    """Equal prefixes would fence each other; a timeout above the broker's maximum fails the job."""
    broker = dict(
        line.split("=", 1)
        for line in (REPO / "infra/kafka/server.properties").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    prefixes = set()
    for settings in (Settings.from_env({}), Settings.from_env({"LAMBDA_REDIS_PREFIX": "other"})):
        for opts in (sql.dlq_options(settings), sql.late_options(settings)):
            assert opts["sink.delivery-guarantee"] == "exactly-once"
            assert int(opts["properties.transaction.timeout.ms"]) <= int(broker["transaction.max.timeout.ms"])
            prefixes.add(opts["sink.transactional-id-prefix"])
    assert len(prefixes) == 4
    assert sql.dlq_options(Settings.from_env({})) == sql.dlq_options(Settings.from_env({})), "stable"


@pytest.mark.integration
def test_after_sigkill_and_resume_redis_the_dlq_and_the_late_topic_are_exact(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    config = GeneratorConfig(seed=16, late_rate=0.01, duplicate_rate=0.02, malformed_rate=0.02)
    records = list(
        history(config, datetime(2026, 11, 19, 0, tzinfo=UTC), datetime(2026, 11, 19, 4, tzinfo=UTC), EVENTS)
    )
    coords = sandbox.produce([(r.partition, r.key, r.value, r.timestamp_ms) for r in records])
    truth = compute_truth(
        SentRecord(r.value, datetime.fromtimestamp(r.timestamp_ms / 1000, UTC), r.late) for r in records
    )
    want_dlq = Counter(c for r, c in zip(records, coords, strict=True) if r.kind is Kind.MALFORMED)
    want_late = Counter(r.value for r in records if r.kind is Kind.LATE)
    assert want_dlq and want_late and truth.late and truth.duplicates

    dlq_topic, late_topic = sandbox.topics["LAMBDA_TOPIC_DLQ"], sandbox.topics["LAMBDA_TOPIC_LATE"]
    env = sandbox.env()

    # 1. run until checkpoints have committed records to both topics, then SIGKILL ----------------
    job = speed_job(env, tmp_path / "job-1.log")
    try:
        assert wait_until(
            lambda: (
                (
                    _stable_end(sandbox.bootstrap, dlq_topic) > 0
                    and _stable_end(sandbox.bootstrap, late_topic) > 0
                )
                or not job.alive()
            ),
            START_TIMEOUT_S,
            interval=0.1,
        ), f"no transaction committed to both topics\n{job.tail()}"
        assert job.alive(), job.tail()
    finally:
        job.kill()
    at_kill = {
        t: (len(read_topic(sandbox.bootstrap, t)), len(read_topic(sandbox.bootstrap, t, committed=False)))
        for t in (dlq_topic, late_topic)
    }
    assert at_kill[dlq_topic][1] < want_dlq.total() and at_kill[late_topic][1] < want_late.total(), (
        f"the job wrote a whole topic before the kill (committed, written: {at_kill}); raise EVENTS"
    )
    client, prefix = sandbox.redis(), sandbox.settings().redis_prefix
    seen = sum(m.events for m in read_view(client, prefix, "hour").values())
    assert seen < sum(m.events for m in truth.speed.values()), (
        "the job counted the whole backlog before the kill"
    )

    # 2. resume from the checkpoint; wait for every output, then for one more checkpoint ---------
    job = speed_job(env, tmp_path / "job-2.log")
    try:

        def complete() -> bool:
            dlq = len(read_topic(sandbox.bootstrap, dlq_topic))
            late = len(read_topic(sandbox.bootstrap, late_topic))
            return (
                dlq >= want_dlq.total()
                and late >= want_late.total()
                and not truth_diff(client, prefix, truth)
            )

        assert wait_until(lambda: complete() or not job.alive(), START_TIMEOUT_S, interval=2.0), (
            "\n".join(truth_diff(client, prefix, truth)[:20]) + f"\n{job.tail()}"
        )
        assert job.alive(), job.tail()
        assert "resuming from" in (tmp_path / "job-2.log").read_text()
        # A duplicate would be committed with a later checkpoint than the last expected record.
        caught_up = time.time()
        assert wait_until(
            lambda: any(
                m.stat().st_mtime > caught_up + 1 for m in sandbox.checkpoint_dir.glob("*/chk-*/_metadata")
            ),
            60,
        ), "no checkpoint after catching up"
        time.sleep(1)  # the commit follows the checkpoint's completion
        dlq = read_topic(sandbox.bootstrap, dlq_topic)
        late = read_topic(sandbox.bootstrap, late_topic)
        dlq_all = read_topic(sandbox.bootstrap, dlq_topic, committed=False)
        late_all = read_topic(sandbox.bootstrap, late_topic, committed=False)
    finally:
        job.kill()

    for name, topic, sent, committed, written in (
        ("DLQ", dlq_topic, want_dlq.total(), dlq, dlq_all),
        ("late", late_topic, want_late.total(), late, late_all),
    ):
        print(
            f"\n{name}: {sent} sent; at the kill {at_kill[topic][0]} committed of {at_kill[topic][1]} "
            f"written; at the end read_committed {len(committed)}, read_uncommitted {len(written)}"
        )
    got_dlq = Counter((int(d["partition"]), int(d["offset"])) for d in (json.loads(m.value) for m in dlq))
    assert got_dlq == want_dlq, (
        f"missing {sorted(want_dlq - got_dlq)[:10]}, extra or twice {sorted(got_dlq - want_dlq)[:10]}"
    )
    got_late = Counter(m.value for m in late)
    assert got_late == want_late, (
        f"{(want_late - got_late).total()} late records missing, {(got_late - want_late).total()} extra or twice"
    )


def _stable_end(bootstrap: str, topic: str) -> int:
    """The topic's last stable offsets, summed: above 0 once a transaction has been committed."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level="read_committed")
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return sum(consumer.end_offsets(parts).values())
    finally:
        consumer.close()
