"""Hostile input to a private orders topic, through the real speed job and the real batch run.

The speed job (`lambda-speed --bounded --fresh`) and the batch (`lambda-batch run --date D`) run
as subprocesses at the same time over the same topic, each with its own Redis prefix / Delta root /
checkpoints. Then: both exit 0 (no crash); every record the contract calls malformed is in the
DLQ and in the quarantine table exactly once, under its Kafka partition and offset, with the
reason `validate()` gives; the speed layer's DLQ counters equal the counts sent per reason; the
valid ones (hostile but valid, e.g. a 1 MB unknown field) are counted, once, in Redis and gold.

`make test` sends 20 payloads per family and 4 of about 1 MB; LAMBDA_FAULTS_LONG=1 sends 100 and 12.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import pytest
from deltalake import DeltaTable
from hostile import DAY, KAFKA_TS_MS, Hostile, generate
from pipeline_support import BATCH_CLI, JOB_TIMEOUT_S, LONG, SPEED_CLI, read_topic, round_robin

from lambda_contract.events import validate
from lambda_contract.redis_layout import Metrics
from lambda_contract.tables import GOLD, MANIFEST, QUARANTINE, event_date
from lambda_testkit.processes import Child
from lambda_testkit.sandbox import Sandbox, hash_of

pytestmark = [pytest.mark.faults, pytest.mark.integration]

PER_FAMILY: Final = 100 if LONG else 20
MEGABYTES: Final = 12 if LONG else 4


def produce_hostile(box: Sandbox, records: list[Hostile]) -> dict[tuple[int, int], Hostile]:
    coordinates = box.produce(
        round_robin([r.value for r in records], [KAFKA_TS_MS + i for i in range(len(records))])
    )
    return dict(zip(coordinates, records, strict=True))


def describe(record: Hostile) -> str:
    head = (record.value or b"")[:80]
    return f"{record.family} ({len(record.value or b'')} bytes, expected {record.reason}): {head!r}"


@dataclass
class Run:
    """What was sent and what the two jobs left behind."""

    box: Sandbox
    records: list[Hostile]
    sent: dict[tuple[int, int], Hostile]
    speed_rc: int
    batch_rc: int
    speed_log: str
    batch_log: str

    @property
    def malformed(self) -> dict[tuple[int, int], str]:
        return {at: str(r.reason) for at, r in self.sent.items() if not r.valid}

    @property
    def valid_ids(self) -> set[str]:
        return {validate(r.value).event_id for r in self.sent.values() if r.valid}  # type: ignore[union-attr]


@pytest.fixture(scope="module")
def run(sandbox: Sandbox) -> Run:
    """Produce the hostile records, then run the bounded speed job and the batch for DAY side by side."""
    records = generate(PER_FAMILY, MEGABYTES)
    sent = produce_hostile(sandbox, records)
    speed_cmd = [
        SPEED_CLI,
        "--bounded",
        "--fresh",
        "--group-id",
        sandbox.tag,
    ]
    speed = Child(speed_cmd, sandbox.env(), sandbox.tmp / "speed.log")
    batch_cmd = [BATCH_CLI, "run", "--date", DAY.isoformat(), "--no-auto"]
    batch = Child(batch_cmd, sandbox.env(), sandbox.tmp / "batch.log")
    deadline = time.monotonic() + JOB_TIMEOUT_S
    speed_rc, batch_rc = speed.wait(deadline), batch.wait(deadline)
    print(
        f"\nhostile input: {len(sent)} records in {len({r.family for r in records})} families, "
        f"{sum(len(r.value or b'') for r in records) / (1 << 20):.1f} MiB; "
        f"reasons {dict(Counter(str(r.reason) for r in records))}"
    )
    return Run(sandbox, records, sent, speed_rc, batch_rc, speed.tail(), batch.tail())


def test_the_sample_is_hostile_enough(run: Run) -> None:
    assert len(run.malformed) > 100 and run.valid_ids
    assert {r.family for r in run.records} >= {"random_bytes", "invalid_utf8", "deep_nesting", "megabyte"}
    assert max(len(r.value or b"") for r in run.records) > 1_000_000


def test_no_job_crashes(run: Run) -> None:
    assert run.speed_rc == 0, f"the speed job crashed ({run.speed_rc}):\n{run.speed_log}"
    assert run.batch_rc == 0, f"the batch run crashed ({run.batch_rc}):\n{run.batch_log}"


def test_every_malformed_record_is_in_the_dlq_once_with_the_contract_reason(run: Run) -> None:
    dlq: dict[tuple[int, int], str] = {}
    for doc in read_topic(run.box, run.box.settings().topic_dlq):
        dlq[(int(doc["partition"]), int(doc["offset"]))] = str(doc["reason"])  # type: ignore[call-overload]
    expected = run.malformed
    wrong = [
        f"{at} {describe(run.sent[at])}: {dlq.get(at)}" for at in run.sent if dlq.get(at) != expected.get(at)
    ]
    assert not wrong, f"{len(wrong)} wrong DLQ verdicts:\n" + "\n".join(wrong[:30])


def test_every_malformed_record_is_quarantined_once_with_the_contract_reason(run: Run) -> None:
    settings = run.box.settings()
    rows = (
        DeltaTable(settings.delta_table_url(QUARANTINE.name))
        .to_pyarrow_table(columns=["reason", "partition", "offset", "topic", "event_date"])
        .to_pylist()
    )
    quarantined = {(r["partition"], r["offset"]): r["reason"] for r in rows}
    assert len(quarantined) == len(rows), "a record is quarantined twice"
    assert {r["topic"] for r in rows} == {settings.topic_orders}
    assert {r["event_date"] for r in rows} == {DAY}
    expected = run.malformed
    wrong = [
        f"{at} {describe(run.sent[at])}: {quarantined.get(at)}"
        for at in run.sent
        if quarantined.get(at) != expected.get(at)
    ]
    assert not wrong, f"{len(wrong)} wrong quarantine verdicts:\n" + "\n".join(wrong[:30])
    manifest = DeltaTable(settings.delta_table_url(MANIFEST.name)).to_pyarrow_table().to_pylist()
    assert sum(int(r["quarantined"]) for r in manifest) == len(expected)


def test_valid_hostile_records_are_in_gold_once(run: Run) -> None:
    gold = (
        DeltaTable(run.box.settings().delta_table_url(GOLD.name))
        .to_pyarrow_table(columns=["events"])
        .to_pylist()
    )
    assert sum(int(r["events"]) for r in gold) == len(run.valid_ids)


def test_speed_counters_match_what_was_sent(run: Run) -> None:
    settings = run.box.settings()
    kafka_ts = datetime.fromtimestamp(KAFKA_TS_MS / 1000, UTC)
    by_date: Counter[tuple[str, str]] = Counter()
    for record in run.sent.values():
        result = validate(record.value)
        if not record.valid:
            by_date[
                (event_date(getattr(result, "event_time", None), kafka_ts).isoformat(), str(record.reason))
            ] += 1
    client = run.box.redis()
    counted: Counter[tuple[str, str]] = Counter()
    for key in client.scan_iter(match=f"{settings.redis_prefix}:speed:dlq:*", count=1000):
        day = key.decode().rsplit(":", 1)[1]
        for reason, count in hash_of(client, key).items():
            counted[(day, reason.decode())] = int(count)
    hour = datetime(DAY.year, DAY.month, DAY.day, 12, tzinfo=UTC)
    groups = hash_of(client, settings.redis_layout.hour(hour))
    speed_events = sum(Metrics.decode(v).events for v in groups.values())
    client.close()
    assert (dict(counted), speed_events) == (dict(by_date), len(run.valid_ids))
