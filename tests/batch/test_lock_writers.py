"""Two real `lambda-batch` writers started at once on one Delta root (the nightly flow's batch step
and an ingest, which before the lock collided on the bronze checkpoint): the lock lets one write
while the other waits, a third that will not wait fails naming the holder, and the tables come out
whole (every Kafka record in bronze once, gold equal to the ground truth, each table's history a
gapless sequence of commits whose data files all exist). Then the nightly flow's last step:
`lambda-reconcile --dates-file` over the dates `lambda-batch nightly` wrote."""

from __future__ import annotations

import json
import re
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from batch_helpers import gold_view
from deltalake import DeltaTable

from batch_layer.lock import file_lock_path
from lambda_contract.settings import Settings
from lambda_contract.tables import BRONZE, GOLD, MANIFEST
from lambda_testkit.processes import Child, wait_until
from lambda_testkit.sandbox import REPO, sandbox_for
from lambda_testkit.truth import SentRecord, compute_truth
from lambda_tools.generator import GeneratorConfig, history

pytestmark = pytest.mark.integration

EVENTS = 1_500
BATCH_CLI = str(REPO / ".venvs" / "batch" / "bin" / "lambda-batch")
RECONCILE_CLI = str(REPO / ".venvs" / "serving" / "bin" / "lambda-reconcile")
TIMEOUT_S = 600


def _whole(url: str) -> DeltaTable:
    """The table's log is a gapless run of versions from 0, and every file it names can be read."""
    table = DeltaTable(url)
    versions = sorted(h["version"] for h in table.history())
    assert versions == list(range(table.version() + 1)), f"{url}: history has gaps: {versions}"
    table.to_pyarrow_table()  # reads every live data file
    return table


def test_two_writers_take_turns_a_third_names_the_holder_and_the_nightly_dates_are_reconciled(
    tmp_path: Path,
) -> None:
    day = datetime.now(UTC).date() - timedelta(days=1)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    records = list(history(GeneratorConfig(seed=18, late_rate=0.0), start, start + timedelta(days=1), EVENTS))
    expected_truth = compute_truth(
        SentRecord(r.value, datetime.fromtimestamp(r.timestamp_ms / 1000, UTC), r.late) for r in records
    )
    expected = expected_truth.view_for_date(expected_truth.full, day)
    with sandbox_for(tmp_path, "lock") as box:
        box.produce([(i % box.partitions, None, r.value, r.timestamp_ms) for i, r in enumerate(records)])
        env = box.env(
            LAMBDA_BATCH_LOCK="file",
            LAMBDA_SPARK_MASTER="local[1]",
            LAMBDA_SPARK_SHUFFLE_PARTITIONS="2",
            LAMBDA_SPARK_DRIVER_MEMORY="1g",
            LAMBDA_PUSHGATEWAY_URL="",
        )
        dates_file = tmp_path / "nightly-dates"
        commands = (
            [BATCH_CLI, "nightly", "--date", day.isoformat(), "--dates-out", str(dates_file)],
            [BATCH_CLI, "ingest"],
        )
        writers = [Child(c, env, tmp_path / f"writer-{c[1]}.log") for c in commands]
        lock_file = file_lock_path(Settings.from_env(env))
        assert wait_until(lambda: lock_file.exists() and lock_file.read_text().strip() != "", 60)
        holder = lock_file.read_text()

        impatient = subprocess.run(
            [BATCH_CLI, "ingest"],
            env={**env, "LAMBDA_BATCH_LOCK_TIMEOUT_S": "1"},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert impatient.returncode == 1, impatient.stderr
        holder_pid = re.search(r"pid (\d+) \(lambda-batch (nightly|ingest)\)", holder)
        assert holder_pid is not None, holder
        assert f"another batch writer holds {lock_file}" in impatient.stderr
        assert holder_pid.group(0) in impatient.stderr

        deadline = time.monotonic() + TIMEOUT_S
        codes = [w.wait(deadline) for w in writers]
        logs = [w.tail(400) for w in writers]
        assert codes == [0, 0], "\n---\n".join(logs)
        waited = [bool(re.search(r"waited \d+ s for the batch writer lock", log)) for log in logs]
        assert sorted(waited) == [False, True], "exactly one writer must have waited for the other"

        settings = Settings.from_env(env)
        bronze = _whole(settings.delta_table_url(BRONZE.name)).to_pyarrow_table(
            columns=["partition", "offset"]
        )
        coordinates = list(zip(bronze["partition"].to_pylist(), bronze["offset"].to_pylist(), strict=True))
        assert len(coordinates) == len(set(coordinates)) == len(records), "bronze lost or duplicated records"
        gold = _whole(settings.delta_table_url(GOLD.name)).to_pyarrow_table().to_pylist()
        assert gold_view(r for r in gold if r["date"] == day) == expected
        _whole(settings.delta_table_url(MANIFEST.name))
        assert "dates      : 1 recomputed, 0 failed" in logs[0]
        assert dates_file.read_text() == f"{day.isoformat()}\n"

        # The speed layer never ran in this sandbox: every hour is a speed gap, which explains all.
        reports = tmp_path / "reports"
        reconcile = subprocess.run(
            [RECONCILE_CLI, "--dates-file", str(dates_file), "--out", str(reports)],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert reconcile.returncode == 0, reconcile.stdout + reconcile.stderr
        totals = json.loads((reports / f"reconciliation-{day.isoformat()}.json").read_text())["totals"]
        assert (
            totals["batch_events"] == totals["speed_gap_events"] == sum(m.events for m in expected.values())
        )
