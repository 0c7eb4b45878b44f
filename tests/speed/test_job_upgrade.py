"""Upgrades and rescales keep the speed job's state (docs/specs/speed.md, "Upgrades").

One chain of three runs on generated traffic. Each run goes on until Redis is exact, is stopped
with SIGTERM (which takes a savepoint: speed_layer/main.py), and the next starts from that
savepoint, changed:
1. the job as it is, at parallelism 1;
2. an upgrade: a new optional output column (the DLQ rows carry `job_version`) and a changed rule
   constant (the contract's id length limit doubled), at the same parallelism;
3. a rescale of the upgraded job: parallelism 1 -> 2, unchanged otherwise.
Before each restored run's check, more traffic follows, including copies of events the earlier
runs counted: they are duplicates only if the dedup state came back. Redis must then equal the
truth of everything sent, exactly. (One chain instead of two separate restores: the first run and
its traffic are shared, which saves a cold job start in `make test`.)
"""

from __future__ import annotations

import os
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest
from support import truth_diff

from lambda_contract.events import RULES, FieldKind, Invalid, validate
from lambda_testkit.processes import Child, wait_until
from lambda_testkit.sandbox import Sandbox, duplicates, produce, read_view
from lambda_testkit.truth import SentRecord, Truth, compute_truth
from lambda_tools.generator import GeneratedRecord, GeneratorConfig, history

pytestmark = pytest.mark.integration

TIMEOUT_S = 420  # a cold PyFlink start plans a large SQL job; slow on a busy 2-core machine
# The upgrade, applied before the job is built: what a new release of the job would change.
UPGRADED = """
import sys
from speed_layer import main, sql, validation_sql

columns, rows = sql.dlq_columns, sql.dlq_rows_query
sql.dlq_columns = lambda: [*columns(), sql.Column("job_version", "STRING")]
sql.dlq_rows_query = lambda: rows().replace("\\nFROM parsed", ", '2' AS job_version\\nFROM parsed")
assert "job_version" in sql.dlq_rows_query()
validation_sql.ID_MAX_CHARS = 2 * validation_sql.ID_MAX_CHARS
sys.exit(main.main(sys.argv[1:]))
"""


# Ids of 65 to 128 characters are valid for the upgraded job only: the traffic holds none, so one
# truth serves both runs (what is tested is that the state survives, not the new limit).
ID_REASONS = {rule.invalid for rule in RULES if rule.kind is FieldKind.ID}


def same_for_both(records: list[GeneratedRecord]) -> list[GeneratedRecord]:
    def judged_alike(r: GeneratedRecord) -> bool:
        result = validate(r.value)
        return not (isinstance(result, Invalid) and result.reason in ID_REASONS)

    return [r for r in records if judged_alike(r)]


def job(env: dict[str, str], log: Path, code: str | None = None) -> Child:
    if code is None:
        return Child([sys.executable, "-m", "speed_layer.main"], env, log)
    return Child([sys.executable, "-c", code], env, log)


def send(sandbox: Sandbox, records: list[GeneratedRecord]) -> None:
    topic = sandbox.topics["LAMBDA_TOPIC_ORDERS"]
    produce(sandbox.bootstrap, topic, [(r.partition, r.key, r.value, r.timestamp_ms) for r in records])


def truth_of(records: list[GeneratedRecord]) -> Truth:
    return compute_truth(
        SentRecord(r.value, datetime.fromtimestamp(r.timestamp_ms / 1000, UTC)) for r in records
    )


def wait_exact(sandbox: Sandbox, truth: Truth, child: Child) -> float:
    """Seconds until Redis holds exactly `truth` (speed view, duplicates, malformed per date)."""
    client, prefix = sandbox.redis(), sandbox.settings().redis_prefix
    started = time.monotonic()

    def exact() -> bool:
        return not truth_diff(client, prefix, truth)

    def progress() -> str:
        have = sum(m.events for m in read_view(client, prefix, "hour").values())
        want = sum(m.events for m in truth.speed.values())
        return f"events in Redis {have} of {want}, duplicates {duplicates(client, prefix)} of {truth.duplicates}\n{child.tail()}"

    assert wait_until(lambda: exact() or not child.alive(), TIMEOUT_S, interval=1.0), progress()
    assert exact(), progress()
    return time.monotonic() - started


def resumed_or_dead(child: Child, log: Path) -> bool:
    return "resuming from" in log.read_text() or not child.alive()


def stop_with_savepoint(child: Child, log: Path) -> None:
    os.kill(child.proc.pid, signal.SIGTERM)  # this process only: its JVM must live to write it
    assert child.wait(time.monotonic() + 180) == 0, child.tail()
    assert "savepoint written" in log.read_text(), child.tail()


def test_a_job_restored_from_a_savepoint_after_an_upgrade_then_a_rescale_is_exact(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    start = (datetime.now(UTC) - timedelta(days=3)).replace(minute=0, second=0, microsecond=0)

    def traffic(seed: int, hour: int) -> list[GeneratedRecord]:
        config = GeneratorConfig(seed=seed, late_rate=0.0, duplicate_rate=0.02, malformed_rate=0.02)
        return same_for_both(
            list(history(config, start + timedelta(hours=hour), start + timedelta(hours=hour + 2), 4_000))
        )

    sent = traffic(11, 0)
    send(sandbox, sent)
    log = tmp_path / "job-1.log"
    child = job(sandbox.env(LAMBDA_SPEED_PARALLELISM="1"), log)
    try:
        took = [f"first run exact after {wait_exact(sandbox, truth_of(sent), child):.0f} s"]
        stop_with_savepoint(child, log)
    finally:
        child.kill()

    for run, (change, parallelism, seed) in enumerate((("upgrade", 1, 12), ("rescale", 2, 13)), start=2):
        # Later traffic, plus copies of records the earlier runs have already counted.
        later = traffic(seed, 2 * (run - 1))
        copies = sent[:: len(sent) // 200]
        log = tmp_path / f"job-{run}.log"
        child = job(sandbox.env(LAMBDA_SPEED_PARALLELISM=str(parallelism)), log, UPGRADED)
        try:
            assert wait_until(partial(resumed_or_dead, child, log), 60), child.tail()
            assert "/savepoints/savepoint-" in log.read_text(), f"the {change} did not pick the savepoint"
            send(sandbox, later + copies)
            sent += later + copies
            took.append(
                f"{change} (parallelism {parallelism}) exact after {wait_exact(sandbox, truth_of(sent), child):.0f} s"
            )
            if run == 2:
                stop_with_savepoint(child, log)
        finally:
            child.kill()
    print("; ".join(took))
