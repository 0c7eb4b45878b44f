"""`DEMO_SECONDS=120 make demo` runs the whole platform, prints what a newcomer needs, exits 0 and
leaves nothing it started running. Isolated from other tests by its own topics, Redis prefix,
Delta root, checkpoints and ports; the services `make up` started are left as they were."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import uuid
from pathlib import Path

import pytest
from kafka.admin import KafkaAdminClient, NewTopic

from lambda_contract.settings import Settings

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] != "Z"


def test_demo_runs_end_to_end_and_stops_what_it_started(tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    topics = {
        "LAMBDA_TOPIC_ORDERS": f"demo.{tag}.orders",
        "LAMBDA_TOPIC_DLQ": f"demo.{tag}.dlq",
        "LAMBDA_TOPIC_LATE": f"demo.{tag}.late",
    }
    settings = Settings.from_env()
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    admin.create_topics([NewTopic(t, 3 if "orders" in t else 1, 1) for t in topics.values()])
    env = (
        dict(os.environ)
        | topics
        | {
            "DEMO_SECONDS": "120",
            "DEMO_EVENTS": "3000",
            "DEMO_RATE": "5",
            "LAMBDA_REDIS_PREFIX": f"demo-{tag}",
            "LAMBDA_DELTA_ROOT": str(tmp_path / "delta"),
            "LAMBDA_CHECKPOINT_DIR": (tmp_path / "flink").as_uri(),
            "LAMBDA_BATCH_CHECKPOINT_DIR": str(tmp_path / "bronze-checkpoint"),
            "LAMBDA_REPORTS_DIR": str(tmp_path / "reports"),
            "LAMBDA_API_PORT": str(_free_port()),
            "LAMBDA_SPEED_METRICS_PORT": str(_free_port()),
            "LAMBDA_API_TOKENS": "demo-test-token-0123456789",
        }
    )
    try:
        proc = subprocess.run(
            ["make", "--no-print-directory", "demo"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=1200,
        )
    finally:
        admin.delete_topics(list(topics.values()))
        admin.close()
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-4000:]
    assert "dashboard   http://localhost:" in out and "#token=demo-test-token-0123456789" in out
    assert re.search(r"reconciliation \d{4}-\d{2}-\d{2}: EXPLAINED", out), out[-4000:]
    pids = [int(p) for p in re.findall(r"started \S+ \(pid (\d+)", out)]
    assert len(pids) == 3, out[-4000:]  # speed, serving, live traffic
    assert not [p for p in pids if _alive(p)], "the demo left processes running"
    assert list((tmp_path / "reports").glob("reconciliation-*.html"))
