"""Two batch runs for the same date at once (same bronze checkpoint, same Delta tables).

The bar (docs/reliability.md): one fails cleanly or both produce the same result, and the tables are never
corrupt: bronze holds every Kafka record exactly once, gold for the date equals the generator's
ground truth to the last digit, and a third run afterwards succeeds and leaves gold unchanged.
The batch writer lock (batch_layer.lock) makes the second run wait for the first, so both succeed,
and the second is already a run after the first; the third run is kept for the long variant.
It runs by default with 2,000 events; LAMBDA_FAULTS_LONG=1 runs 20,000 and the third run.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from deltalake import DeltaTable
from pipeline_support import BATCH_CLI, JOB_TIMEOUT_S, LONG, round_robin

from lambda_contract.redis_layout import GroupKey, Metrics
from lambda_contract.tables import BRONZE, GOLD
from lambda_testkit.processes import Child
from lambda_testkit.sandbox import Sandbox
from lambda_testkit.truth import SentRecord, compute_truth
from lambda_tools.generator import GeneratorConfig, history

pytestmark = [pytest.mark.faults, pytest.mark.integration]

EVENTS = 20_000 if LONG else 2_000


def gold_of(box: Sandbox, day: object) -> dict[tuple[datetime, GroupKey], Metrics]:
    rows = DeltaTable(box.settings().delta_table_url(GOLD.name)).to_pyarrow_table().to_pylist()
    out = {}
    for r in rows:
        if r["date"] != day:
            continue
        hour = r["hour"].astimezone(UTC)
        out[(hour, GroupKey(r["region"], r["category"], r["currency"]))] = Metrics(
            Decimal(r["revenue"]), int(r["orders"]), int(r["refunds"]), int(r["events"])
        )
    return out


def test_two_runs_for_the_same_date_at_once(sandbox: Sandbox) -> None:
    day = datetime.now(UTC).date() - timedelta(days=1)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    records = list(history(GeneratorConfig(seed=11, late_rate=0.0), start, start + timedelta(days=1), EVENTS))
    sandbox.produce(round_robin([r.value for r in records], [r.timestamp_ms for r in records]))
    truth = compute_truth(
        SentRecord(r.value, datetime.fromtimestamp(r.timestamp_ms / 1000, UTC), r.late) for r in records
    )
    expected = truth.view_for_date(truth.full, day)

    command = [BATCH_CLI, "run", "--date", day.isoformat(), "--no-auto"]
    first = Child(command, sandbox.env(), sandbox.tmp / "batch-a.log")
    second = Child(command, sandbox.env(), sandbox.tmp / "batch-b.log")
    deadline = time.monotonic() + JOB_TIMEOUT_S
    codes = (first.wait(deadline), second.wait(deadline))
    print(f"\nconcurrent batch runs exited with {codes}")
    assert codes == (0, 0), (
        f"with the lock both runs succeed, one after the other:\n{first.tail()}\n---\n{second.tail()}"
    )
    for proc, code in ((first, codes[0]), (second, codes[1])):
        if code != 0:  # the loser's own words, for the record; cleanliness is judged by the tables below
            print(f"{proc.log.name} failed ({code}):\n{proc.tail(8)}")

    bronze = DeltaTable(sandbox.settings().delta_table_url(BRONZE.name)).to_pyarrow_table(
        columns=["partition", "offset"]
    )
    coordinates = list(zip(bronze["partition"].to_pylist(), bronze["offset"].to_pylist(), strict=True))
    assert len(coordinates) == len(set(coordinates)) == len(records), "bronze lost or duplicated records"
    assert gold_of(sandbox, day) == expected

    if not LONG:
        return
    rerun = Child(command, sandbox.env(), sandbox.tmp / "batch-c.log")
    assert rerun.wait(time.monotonic() + JOB_TIMEOUT_S) == 0, rerun.tail()
    assert gold_of(sandbox, day) == expected
