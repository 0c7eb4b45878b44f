"""Fixtures of the cluster suite: the cluster itself, started once for the session.

`lambda-services up --cluster` (what `make up CLUSTER=1` runs) starts whatever cluster process is
missing, in the default state directory so the ports are cluster.env's. At the end exactly the
processes this session started are stopped; whatever was running before is left running (a node
a test killed and brought back counts as running before). The single-node services (Kafka 9092,
Redis 6379, Prometheus, Pushgateway) are never touched: the other suites need them.
"""

from __future__ import annotations

import importlib.util
import json
import time
from collections.abc import Iterator

import pytest
from cluster_support import REPORTS, STATE, UP_TIMEOUT_S, VENVS, cluster_env, node_pid, run
from faults import Recovery

from lambda_tools import services
from lambda_tools.cluster import ENGINES, process_names


@pytest.fixture(scope="session")
def cluster() -> Iterator[float]:
    """The cluster, up; seconds `lambda-services up --cluster` took."""
    missing = [e for e in ENGINES if importlib.util.find_spec(f"lambda_tools.cluster.{e}") is None]
    if missing:
        pytest.skip(f"cluster mode is not built yet: no lambda_tools.cluster.{', '.join(missing)}")
    before = {name for name in process_names() if node_pid(name) is not None}
    began = time.monotonic()
    try:
        run([str(VENVS / "tools/bin/lambda-services"), "up", "--cluster"], cluster_env(), UP_TIMEOUT_S)
        yield time.monotonic() - began
    finally:
        for name in reversed(process_names()):
            pid = node_pid(name)
            if name not in before and pid is not None:
                services.stop_pid(pid)
                services.pid_file(STATE, name).unlink(missing_ok=True)


RECOVERIES: list[Recovery] = []
UP_S: list[float] = []


@pytest.fixture(scope="session")
def recoveries(cluster: float) -> Iterator[list[Recovery]]:
    """Every fault's recovery; written to reports/cluster/recovery.json as the tests add them and
    printed in the run's summary."""
    UP_S.append(cluster)
    yield RECOVERIES


def save_recoveries() -> None:
    REPORTS.mkdir(parents=True, exist_ok=True)
    doc = {"cluster_up_s": round(UP_S[0], 1) if UP_S else None, "faults": [r.to_json() for r in RECOVERIES]}
    (REPORTS / "recovery.json").write_text(json.dumps(doc, indent=2) + "\n")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not RECOVERIES:
        return
    save_recoveries()
    up = f"cluster up in {UP_S[0]:.0f} s; " if UP_S else ""
    terminalreporter.section("cluster recovery times")
    terminalreporter.write_line(f"{up}written to {REPORTS / 'recovery.json'}")
    for r in RECOVERIES:
        terminalreporter.write_line("  " + r.line())
