"""The speed job end to end on the golden set: real Kafka, real Redis, Flink mini-cluster.

One job lifecycle covers the issue's three behaviours, because each job start costs tens of
seconds on this machine:

1. phase 1 of the golden set -> Redis holds the expected speed view, the watermark passes the
   close of the late events' hours;
2. SIGKILL the job, start it again (it resumes from the newest complete checkpoint), produce
   phase 2 (late by construction): late events stay late although the new run's Flink watermark
   starts from nothing; Redis equals the expected speed view, late counters, duplicates and
   malformed counts exactly; every malformed record is in the DLQ with its reason, every late
   event in the late topic;
3. the test deletes every Redis key of its prefix while the job runs: open hours reappear
   within 60 s.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import date, timedelta
from pathlib import Path

import pytest
from kafka import KafkaConsumer

from lambda_contract.windows import closes_at, hour_id, to_epoch_ms
from lambda_testkit import golden
from lambda_testkit.processes import speed_job, wait_until
from lambda_testkit.sandbox import (
    Sandbox,
    duplicates,
    field_names_of,
    hash_of,
    produce,
    read_view,
    watermark_ms,
)

pytestmark = pytest.mark.integration

START_TIMEOUT_S = 300  # a cold PyFlink start plans a large SQL job; slow on a busy 2-core machine


def consume_all(
    bootstrap: str, topic: str, expected: int, timeout_s: float = 60
) -> list[tuple[int, bytes | None]]:
    # read_committed: the job writes these topics in transactions; an aborted one is no output.
    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        consumer_timeout_ms=2000,
        isolation_level="read_committed",
    )
    out: list[tuple[int, bytes | None]] = []
    deadline = time.monotonic() + timeout_s
    while len(out) < expected and time.monotonic() < deadline:
        out.extend((m.partition, m.value) for m in consumer)
    consumer.close()
    return out


def test_golden_set_restart_and_heal(sandbox: Sandbox, tmp_path: Path) -> None:
    records = golden.records()
    truth = golden.truth()
    prefix = sandbox.settings().redis_prefix
    settings = sandbox.settings()
    client = sandbox.redis()
    env = sandbox.env()
    orders = sandbox.topics["LAMBDA_TOPIC_ORDERS"]

    def send(phase: int) -> None:
        produce(
            sandbox.bootstrap,
            orders,
            [r.kafka_record for r in records if r.phase == phase],
        )

    late_hours = {hour for hour, _ in truth.late}
    must_close = max(
        to_epoch_ms(closes_at(h, timedelta(seconds=settings.allowed_lateness_s))) for h in late_hours
    )

    # 1. phase 1 -----------------------------------------------------------------------------
    send(1)
    job = speed_job(env, tmp_path / "job-1.log")
    try:
        assert wait_until(lambda: (watermark_ms(client, prefix) or 0) >= must_close or not job.alive(),
                          START_TIMEOUT_S), f"watermark never passed the late hours' close\n{job.tail()}"  # fmt: skip
        assert job.alive(), job.tail()
        assert wait_until(lambda: read_view(client, prefix, "hour") == truth.speed, 30), (
            f"speed view after phase 1: {read_view(client, prefix, 'hour')}"
        )
        caught_up = time.time()
        # A checkpoint taken after phase 1 was processed, so the restart resumes after it.
        ckpt_root = sandbox.checkpoint_dir
        assert wait_until(
            lambda: any(m.stat().st_mtime > caught_up + 1 for m in ckpt_root.glob("*/chk-*/_metadata")), 60
        ), "no checkpoint completed"
    finally:
        job.kill()  # SIGKILL to the whole process group

    # 2. restart, phase 2 ----------------------------------------------------------------------
    job = speed_job(env, tmp_path / "job-2.log")
    try:
        send(2)

        def malformed_by_date() -> dict[date, dict[str, int]]:
            return {
                day: {
                    k.decode(): int(v)
                    for k, v in hash_of(client, f"{prefix}:speed:dlq:{day.isoformat()}").items()
                }
                for day in truth.malformed_by_date
            }

        # Each counter reaches Redis on its own upsert stream (docs/specs/speed.md): the view has
        # converged once all of them have.
        def converged() -> bool:
            return (
                read_view(client, prefix, "hour") == truth.speed
                and read_view(client, prefix, "late") == truth.late
                and duplicates(client, prefix) == truth.duplicates
                and malformed_by_date() == truth.malformed_by_date
            )

        assert wait_until(lambda: converged() or not job.alive(), START_TIMEOUT_S), (
            f"after restart: late={read_view(client, prefix, 'late')}\n"
            f"malformed={malformed_by_date()}\n{job.tail()}"
        )
        assert "resuming from" in (tmp_path / "job-2.log").read_text()
        assert malformed_by_date() == truth.malformed_by_date

        # Every malformed record in the DLQ with the reason the reference validator gives.
        expected_dlq = sum(truth.malformed.values())
        dlq = consume_all(sandbox.bootstrap, sandbox.topics["LAMBDA_TOPIC_DLQ"], expected_dlq)
        docs = {(d["partition"], d["offset"]): d for d in (json.loads(v or b"{}") for _, v in dlq)}
        assert Counter(d["reason"] for d in docs.values()) == Counter(truth.malformed)
        assert all({"reason", "payload", "partition", "offset", "seen_at"} <= d.keys() for d in docs.values())
        late_payloads = {
            v for _, v in consume_all(sandbox.bootstrap, sandbox.topics["LAMBDA_TOPIC_LATE"], len(late_hours))
        }
        assert late_payloads == {r.value for r in records if r.expect == "late"}

        # 3. Redis loses the data: open hours come back within 60 s, without a restart ------------
        wm = watermark_ms(client, prefix)
        assert wm is not None
        hours_status = {k.decode(): v.decode() for k, v in hash_of(client, f"{prefix}:speed:hours").items()}
        open_hours = [h for h, status in hours_status.items() if status == "open"]
        assert open_hours, "the golden set leaves its last hour open"
        expected_open = {(h, key): m for (h, key), m in truth.speed.items() if hour_id(h) in open_hours}
        deleted_at = time.monotonic()
        assert sandbox.delete_keys() > 0
        assert wait_until(
            lambda: (
                {k: m for k, m in read_view(client, prefix, "hour").items() if hour_id(k[0]) in open_hours}
                == expected_open
            ),
            60,
        ), "open hours did not come back within 60 s"
        healed_s = time.monotonic() - deleted_at
        assert set(open_hours) <= {k.decode() for k in field_names_of(client, f"{prefix}:speed:hours")}
        print(f"open hours healed {healed_s:.1f} s after the keys were deleted")
        assert job.alive(), job.tail()
    finally:
        job.kill()
