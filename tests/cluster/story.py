"""The pieces of a cluster story that are not faults of the stream: submitting the speed job to the
session cluster, the batch on the Spark cluster with a worker killed mid-recompute, gold checked
through both serving replicas, and the reconciliation."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any, Final

from cluster_support import VENVS, Box, Flink, Replicas, bring_back, hourly_path, iter_rows, kill_node, run
from delta_commits import check_run
from faults import Recovery

from lambda_contract.redis_layout import GroupKey
from lambda_contract.windows import hour_label
from lambda_testkit.processes import Child, wait_until
from lambda_testkit.truth import Truth, View

SUBMIT_TIMEOUT_S: Final = 600
BATCH_TIMEOUT_S: Final = 1200
SPARK_MASTER_UI: Final = "http://127.0.0.1:18090/json"


@contextmanager
def speed_job(box: Box, flink: Flink) -> Iterator[str]:
    """`lambda-speed` in cluster mode submits the job and returns once it is RUNNING; the job is
    cancelled at the end (the test's checkpoints are its own)."""
    others = flink.running_jobs()
    assert not others, f"the Flink session cluster already runs a job; the suite needs it alone: {others}"
    out = run(
        [str(VENVS / "speed/bin/lambda-speed"), "--group-id", box.tag], box.env(), SUBMIT_TIMEOUT_S
    ).stdout
    said = re.search(r"job ([0-9a-f]{32}) RUNNING", out)
    assert said, f"lambda-speed returned without naming a RUNNING job:\n{out[-2000:]}"
    job = said[1]
    assert flink.fully_running(job), f"lambda-speed said job {job} runs; the JobManager does not"
    try:
        yield job
    finally:
        flink.cancel(job)


def _spark_apps() -> list[dict[str, Any]]:
    try:
        with urllib.request.urlopen(SPARK_MASTER_UI, timeout=5) as resp:
            apps: list[dict[str, Any]] = json.loads(resp.read()).get("activeapps", [])
            return apps
    except OSError:
        return []


def batch_with_worker_kill(box: Box, days: list[date], worker: str = "spark-worker-1") -> Recovery:
    """`lambda-batch run` over the days on the Spark cluster; once it has ingested and planned
    the recompute, a worker is SIGKILLed. Its tasks must be retried on the other worker, the run
    must succeed, and its Delta logs must be a clean run's: no partial, duplicate or aborted
    commit (delta_commits.py; gold itself is checked by the caller). The box's tables are new."""
    log = box.tmp / "batch.log"
    argv = [str(VENVS / "batch/bin/lambda-batch"), "run", "--from", min(days).isoformat(),
            "--to", max(days).isoformat(), "--no-auto"]  # fmt: skip
    began, began_at = time.monotonic(), datetime.now(UTC)
    child = Child(argv, box.env(), log)
    planned = wait_until(
        lambda: "plan:" in log.read_text(errors="replace") or not child.alive(), BATCH_TIMEOUT_S, 0.2
    )
    assert planned and child.alive(), f"the batch ended before its recompute could be hit:\n{child.tail()}"
    time.sleep(2.0)  # the recompute's first stage is scheduled on both workers
    assert child.alive(), f"the batch ended before the worker could be killed:\n{child.tail()}"
    apps = _spark_apps()
    r = Recovery("spark-worker", worker, time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime()), 0)
    killed_at = time.monotonic()
    kill_node(worker)
    code = child.wait(time.monotonic() + BATCH_TIMEOUT_S)
    assert code == 0, f"the batch failed after {worker} died ({code}):\n{child.tail()}"
    r.recovered_s = time.monotonic() - killed_at
    lost = [line for line in log.read_text(errors="replace").splitlines() if "Lost executor" in line]
    assert lost, f"the run succeeded but lost no executor: the kill of {worker} missed it:\n{child.tail()}"
    r.details = {"batch_s": round(time.monotonic() - began, 1), "spark_apps_at_kill": len(apps)}
    checked = time.monotonic()
    r.details["delta_versions"] = check_run(box.settings(), days, began_at)["versions"]
    r.details["delta_check_s"] = round(time.monotonic() - checked, 1)
    r.back_s = bring_back()
    return r


def _cents(value: Decimal) -> str:
    return format(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN), "f")


def check_served(replicas: Replicas, days: list[date], expected: View, sources: set[str]) -> dict[str, int]:
    """Every key of `expected`, queried in its own currency (no conversion), from both replicas:
    the two answers are the same, and exact. How many rows came from each source (after a batch
    run the hour the stream ended in may still come from the speed view: same numbers, no late
    events there)."""
    currencies = sorted({k.currency for _, k in expected})
    got: dict[tuple[str, GroupKey], dict[str, Any]] = {}
    served: dict[str, int] = {}
    for currency in currencies:
        path = hourly_path(days, currency)
        (s1, doc1), (s2, doc2) = replicas.both(path)
        assert s1 == s2 == 200, (s1, s2, doc1, doc2)
        assert doc1["rows"] == doc2["rows"], f"the two replicas answer {path} differently"
        for row in iter_rows(doc1):
            if row["currency"] == currency and row["events"]:
                assert row["source"] in sources, row
                served[row["source"]] = served.get(row["source"], 0) + 1
                got[(row["hour"], GroupKey(row["region"], row["category"], row["currency"]))] = row
    assert len(got) == len(expected), f"served {len(got)} keys, the truth has {len(expected)}"
    for (hour, key), m in expected.items():
        row = got[(hour_label(hour), key)]
        assert (row["revenue"], row["orders"], row["refunds"], row["events"]) == (
            _cents(m.revenue), m.orders, m.refunds, m.events), (hour, key)  # fmt: skip
    return served


def reconcile(box: Box, truth: Truth, day: date) -> dict[str, Any]:
    """`lambda-reconcile` for the day: every difference between speed and gold is explained by
    the generator's late events; no residual."""
    run([str(VENVS / "serving/bin/lambda-reconcile"), "--date", day.isoformat()], box.env(), 300)
    path = Path(box.env()["LAMBDA_REPORTS_DIR"]) / f"reconciliation-{day}.json"
    totals: dict[str, Any] = json.loads(path.read_text())["totals"]
    late = sum(m.events for m in truth.view_for_date(truth.late, day).values())
    assert (totals["verdict"], totals["residual_events"], totals["late_events"]) == ("explained", 0, late), (
        totals
    )
    return totals


def days_of(truth: Truth) -> list[date]:
    days = truth.dates()
    return [days[0] + timedelta(days=i) for i in range((days[-1] - days[0]).days + 1)]
