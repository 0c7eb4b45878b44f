"""The generator's ground truth equals an independent recount of what a consumer reads back.

Real Kafka (`make up`), a unique topic per test. The recount shares nothing with the generator
but the contract's validator: it reads every partition from the beginning to the end offsets,
deduplicates by event_id, and decides lateness with its own watermark simulation (bounded
out-of-orderness, minimum over partitions), as the speed layer does.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from lambda_contract.events import Event, validate
from lambda_contract.settings import Settings
from lambda_contract.tables import event_date
from lambda_contract.windows import closes_at, from_epoch_ms, hour_start
from lambda_testkit.golden import GoldenRecord
from lambda_testkit.processes import wait_until
from lambda_testkit.truth import Truth
from lambda_tools import generator_cli

pytestmark = pytest.mark.integration

PARTITIONS = 3


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings.from_env()


@pytest.fixture
def topic(settings: Settings) -> Iterator[str]:
    name = f"test.generator.{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    admin.create_topics([NewTopic(name, PARTITIONS, 1, topic_configs={"retention.ms": "-1"})])
    yield name
    admin.delete_topics([name])
    admin.close()


def _records_in(bootstrap: str, topic: str) -> int:
    """How many records the topic holds now (the sum of its partitions' end offsets)."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        return sum(consumer.end_offsets(parts).values())
    finally:
        consumer.close()


def _read_all(bootstrap: str, topic: str) -> list[Any]:
    """Every record from the beginning to the end offsets at the time of the call."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    end = consumer.end_offsets(parts)
    out: list[Any] = []
    deadline = time.monotonic() + 60
    while any(consumer.position(tp) < end[tp] for tp in parts):
        assert time.monotonic() < deadline, "timed out reading the topic back"
        for records in consumer.poll(timeout_ms=500, max_records=5000).values():
            out.extend(records)
    consumer.close()
    return out


def _recount(records: list[Any], settings: Settings) -> dict[str, Any]:
    """Replay in send order (Kafka timestamp, then offset) like a speed layer would see it."""
    ooo_ms = settings.out_of_orderness_s * 1000
    max_seen: dict[int, int] = {}
    seen: set[str] = set()
    full: defaultdict[tuple[Any, ...], list[Any]] = defaultdict(lambda: [0, 0, 0])
    speed: defaultdict[tuple[Any, ...], list[Any]] = defaultdict(lambda: [0, 0, 0])
    late: defaultdict[tuple[Any, ...], list[Any]] = defaultdict(lambda: [0, 0, 0])
    malformed: defaultdict[str, int] = defaultdict(int)
    malformed_by_date: defaultdict[str, int] = defaultdict(int)
    duplicates = 0
    for rec in sorted(records, key=lambda r: (r.timestamp, r.partition, r.offset)):
        result = validate(rec.value)
        if not isinstance(result, Event):
            malformed[result.reason.value] += 1
            day = event_date(result.event_time, from_epoch_ms(rec.timestamp))
            malformed_by_date[f"{day.isoformat()}|{result.reason.value}"] += 1
            continue
        if result.event_id in seen:
            duplicates += 1
            continue
        seen.add(result.event_id)
        hour = hour_start(result.event_time)
        watermark_ms = min(max_seen.values()) - ooo_ms if len(max_seen) == PARTITIONS else None
        is_late = watermark_ms is not None and closes_at(hour, settings.allowed_lateness) <= from_epoch_ms(
            watermark_ms
        )
        max_seen[rec.partition] = max(max_seen.get(rec.partition, 0), result.event_time_ms)
        key = (hour, result.region, result.category, result.currency)
        purchase = result.event_type == "purchase"
        for view in (full, late if is_late else speed):
            view[key][0] += result.signed_amount
            view[key][1 if purchase else 2] += 1
    return {
        "records": len(records),
        "duplicates": duplicates,
        "malformed": dict(malformed),
        "malformed_by_date": dict(malformed_by_date),
        "full": _normal(full),
        "speed": _normal(speed),
        "late": _normal(late),
    }


def _normal(view: dict[tuple[Any, ...], list[Any]]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    return {k: (v[0], v[1], v[2], v[1] + v[2]) for k, v in view.items()}


def _truth_as_recount(truth: Truth) -> dict[str, Any]:
    def view(v: Any) -> dict[tuple[Any, ...], tuple[Any, ...]]:
        return {
            (h, k.region, k.category, k.currency): (m.revenue, m.orders, m.refunds, m.events)
            for (h, k), m in v.items()
        }

    return {
        "records": truth.records,
        "duplicates": truth.duplicates,
        "malformed": truth.malformed,
        "malformed_by_date": {
            f"{d.isoformat()}|{reason}": n
            for d, c in truth.malformed_by_date.items()
            for reason, n in c.items()
        },
        "full": view(truth.full),
        "speed": view(truth.speed),
        "late": view(truth.late),
    }


def test_history_truth_equals_a_consumers_recount(settings: Settings, topic: str, tmp_path: Path) -> None:
    truth_path, events_path = tmp_path / "truth.json", tmp_path / "events.jsonl"
    argv = "history --date 2026-11-20 --events 4000 --seed 42 --duplicate-rate 0.05 --late-rate 0.03"
    argv += " --malformed-rate 0.05 --refund-rate 0.2"
    rc = generator_cli.main(
        [*argv.split(), "--topic", topic, "--truth", str(truth_path), "--events-out", str(events_path)]
    )
    assert rc == 0
    truth = Truth.load(truth_path)
    records = _read_all(settings.kafka_bootstrap, topic)
    assert len(records) == 4000
    recount = _recount(records, settings)
    assert recount == _truth_as_recount(truth)
    # every knob produced something, so the comparison is not vacuous
    assert truth.duplicates > 100 and len(truth.late) > 20 and sum(truth.malformed.values()) > 100
    assert sum(m.refunds for m in truth.full.values()) > 50
    assert {h.date() for h, _ in truth.full} == {date(2026, 11, 20)}
    # the records file lists exactly what the topic holds, with the Kafka timestamps used
    written = [GoldenRecord.from_json(json.loads(line)) for line in events_path.read_text().splitlines()]
    assert sorted((r.partition, r.key, r.value, r.timestamp_ms) for r in written) == sorted(
        (r.partition, r.key, r.value, r.timestamp) for r in records
    )


def test_live_truth_equals_a_consumers_recount(settings: Settings, topic: str, tmp_path: Path) -> None:
    truth_path = tmp_path / "truth.json"
    started = time.time()
    argv = ["live", "--rate", "400", "--seconds", "2", "--duplicate-rate", "0.05", "--malformed-rate", "0.05"]
    rc = generator_cli.main([*argv, "--topic", topic, "--truth", str(truth_path)])
    assert rc == 0
    assert time.time() - started < 15
    truth = Truth.load(truth_path)
    records = _read_all(settings.kafka_bootstrap, topic)
    assert 700 <= len(records) <= 800
    assert _recount(records, settings) == _truth_as_recount(truth)
    assert all(abs(r.timestamp / 1000 - started) < 15 for r in records), "live records carry the wall clock"


def test_a_missing_topic_is_reported_without_a_truth(settings: Settings, tmp_path: Path) -> None:
    truth_path = tmp_path / "truth.json"
    missing = f"no.such.{uuid.uuid4().hex[:8]}"
    argv = [
        "history",
        "--date",
        "2026-11-20",
        "--events",
        "10",
        "--topic",
        missing,
        "--truth",
        str(truth_path),
    ]
    rc = generator_cli.main(argv)
    assert rc == 1
    assert not truth_path.exists()


def test_ctrl_c_flushes_and_writes_the_truth_of_what_was_sent(
    settings: Settings, topic: str, tmp_path: Path
) -> None:
    import os
    import signal
    import subprocess
    import sys

    truth_path = tmp_path / "truth.json"
    exe = Path(sys.executable).with_name("lambda-generate")
    argv = [str(exe), "history", "--date", "2026-11-20", "--events", "2000000", "--topic", topic]
    proc = subprocess.Popen(
        [*argv, "--truth", str(truth_path)], env=os.environ.copy(), stderr=subprocess.PIPE
    )
    # Interrupt mid-run: once records have reached the topic, long before 2 M of them have.
    assert wait_until(
        lambda: _records_in(settings.kafka_bootstrap, topic) > 1000 or proc.poll() is not None, 120
    )
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert b"stopping" in err
    truth = Truth.load(truth_path)
    records = _read_all(settings.kafka_bootstrap, topic)
    assert 0 < truth.records == len(records) < 2_000_000
    assert _recount(records, settings) == _truth_as_recount(truth)
