"""`make demo` as a new user meets it: a fresh state directory, a broker that has never served a
consumer group, nothing running. The demo runs twice; each run exits 0, prints the live URLs,
reconciles yesterday as explained from exactly the events that run produced (a rerun replaces the
first run's data, it does not add to it) and leaves nothing it started running.

Every service is the demo's own (private ports and state), so the first run really starts Kafka,
Redis, Prometheus and the Pushgateway, and the services `make up` started for the other suites are
left alone."""

from __future__ import annotations

import json
import os
import re
import subprocess
from datetime import date
from pathlib import Path

import pytest

from lambda_testkit.sandbox import free_port, free_port_pair

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
TOKEN = "demo-test-token-0123456789"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def _truth_events(truth_dir: Path, view: str, day: date) -> dict[str, int]:
    """Events of `day` in one view of each ground-truth file the demo's generators wrote."""
    return {
        path.name: sum(
            row["events"] for row in json.loads(path.read_text())[view] if row["hour"].startswith(str(day))
        )
        for path in sorted(truth_dir.glob("demo-*.json"))
    }


@pytest.fixture
def demo_env(tmp_path: Path) -> dict[str, str]:
    state = tmp_path / "state"
    private = {
        "LAMBDA_STATE_DIR": str(state),
        "LAMBDA_REDIS_PASSWORD_FILE": str(state / "secrets" / "redis-password"),
        "LAMBDA_KAFKA_BOOTSTRAP": f"localhost:{free_port_pair()}",
        "LAMBDA_REDIS_URL": f"redis://localhost:{free_port()}/0",
        "LAMBDA_PROMETHEUS_PORT": str(free_port()),
        "LAMBDA_PUSHGATEWAY_URL": f"http://localhost:{free_port()}",
        "LAMBDA_API_PORT": str(free_port()),
        "LAMBDA_SPEED_METRICS_PORT": str(free_port_pair()),  # the sink serves its own metrics on + 1
        "LAMBDA_REPORTS_DIR": str(tmp_path / "reports"),
        "LAMBDA_API_TOKENS": TOKEN,
        "DEMO_SECONDS": "60",
        "DEMO_EVENTS": "3000",
        "DEMO_RATE": "5",
    }
    # Whatever the suite's environment names (topics, Redis prefix, tables) the demo must choose itself.
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("LAMBDA_", "DEMO_"))}
    return inherited | private


def _run_demo(env: dict[str, str]) -> str:
    proc = subprocess.run(
        ["make", "--no-print-directory", "demo"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    return out


def _check_run(out: str, env: dict[str, str]) -> None:
    api = env["LAMBDA_API_PORT"]
    assert f"dashboard   http://localhost:{api}/#token={TOKEN}" in out, out[-4000:]
    assert f"API docs    http://localhost:{api}/docs" in out
    assert f"metrics     http://localhost:{env['LAMBDA_PROMETHEUS_PORT']}" in out
    found = re.search(r"reconciliation (\d{4}-\d{2}-\d{2}): EXPLAINED", out)
    assert found, out[-4000:]
    day = date.fromisoformat(found.group(1))

    report = json.loads((Path(env["LAMBDA_REPORTS_DIR"]) / f"reconciliation-{day}.json").read_text())
    truth_dir = Path(env["LAMBDA_STATE_DIR"]) / "demo" / "generator"
    history = f"demo-{day}.json"
    full = _truth_events(truth_dir, "full", day)
    late = _truth_events(truth_dir, "late", day)
    # Gold holds exactly what this run's history sent for yesterday (a doubled topic would show here);
    # the live generator starts after the batch, so it cannot add to gold.
    assert report["totals"]["batch_events"] == full[history], (report["totals"], full)
    # Late: the history's late events, plus at most those the live generator sent late into
    # yesterday (only possible just after midnight).
    assert late[history] <= report["totals"]["late_events"] <= sum(late.values()), (report["totals"], late)
    assert late[history] > 0, "the generator made no late events, so the check above proves nothing"
    assert re.search(rf"late {report['totals']['late_events']} \(", out)

    pids = [int(p) for p in re.findall(r"started \S+ \(pid (\d+)", out)]
    assert len(pids) == 3, out[-4000:]  # speed, serving, live traffic
    assert not [p for p in pids if _alive(p)], "the demo left processes running"
    assert "stopped the services the demo started: kafka, redis, prometheus, pushgateway" in out, out[-2000:]
    for name in ("kafka", "redis", "prometheus", "pushgateway"):
        assert not (Path(env["LAMBDA_STATE_DIR"]) / "pids" / f"{name}.pid").exists(), name


def test_demo_works_the_first_time_and_a_rerun_tells_the_same_story(demo_env: dict[str, str]) -> None:
    first = _run_demo(demo_env)
    _check_run(first, demo_env)
    assert "cleared     topics demo.orders.v1" in first

    second = _run_demo(demo_env)
    _check_run(second, demo_env)
    assert "cleared     topics demo.orders.v1" in second
