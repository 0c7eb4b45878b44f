"""The real Prometheus started by `make up` scrapes the lambda_* series of a running speed layer and
serving layer (docs/metrics.md). Both run as their own processes on the ports Prometheus is configured for
(infra/prometheus/prometheus.yml): the speed job's metrics on 9249-9251, the API on 8000."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from lambda_contract import metrics
from lambda_contract.settings import Settings
from lambda_testkit import golden
from lambda_testkit.processes import wait_until

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
VENVS = REPO / ".venvs"
TOKEN = "observability-test-token-0123456789"


def _prom_series(selector: str) -> list[dict[str, object]]:
    query = urllib.parse.quote(selector)
    with urllib.request.urlopen(
        f"http://127.0.0.1:9090/api/v1/series?match[]={query}&start={time.time() - 300}", timeout=5
    ) as resp:
        return json.loads(resp.read())["data"]  # type: ignore[no-any-return]


@pytest.fixture
def layers(tmp_path: Path) -> Iterator[dict[str, str]]:
    tag = uuid.uuid4().hex[:8]
    settings = Settings.from_env()
    topics = {
        "LAMBDA_TOPIC_ORDERS": f"obs.{tag}.orders",
        "LAMBDA_TOPIC_DLQ": f"obs.{tag}.dlq",
        "LAMBDA_TOPIC_LATE": f"obs.{tag}.late",
    }
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    admin.create_topics(
        [
            NewTopic(t, 3 if "orders" in t else 1, 1, topic_configs={"retention.ms": "-1"})
            for t in topics.values()
        ]
    )
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True)
    for rec in golden.records():
        if rec.phase == 1:
            producer.send(
                topics["LAMBDA_TOPIC_ORDERS"],
                key=rec.key,
                value=rec.value,
                partition=rec.partition,
                timestamp_ms=rec.timestamp_ms,
            )
    producer.flush()
    producer.close()
    env = (
        dict(os.environ)
        | topics
        | {
            "LAMBDA_REDIS_PREFIX": f"obs-{tag}",
            "LAMBDA_DELTA_ROOT": str(tmp_path / "delta"),
            "LAMBDA_CHECKPOINT_DIR": (tmp_path / "flink").as_uri(),
            "LAMBDA_API_TOKENS": TOKEN,
            "LAMBDA_API_PORT": "8000",
        }
    )
    procs = [
        subprocess.Popen([str(VENVS / "serving/bin/lambda-serve")], env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True),
        subprocess.Popen([str(VENVS / "speed/bin/lambda-speed"), "--fresh", "--group-id", f"obs-{tag}"], env=env, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True),
    ]  # fmt: skip
    try:
        yield env
    finally:
        for p in procs:
            os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
        admin.delete_topics(list(topics.values()))
        admin.close()


def test_prometheus_scrapes_the_speed_and_serving_series(layers: dict[str, str]) -> None:
    found: dict[str, set[str]] = {"speed": set(), "serving": set()}

    def scraped() -> bool:
        try:  # traffic for the serving histograms
            req = urllib.request.Request(
                "http://127.0.0.1:8000/v1/status", headers={"Authorization": f"Bearer {TOKEN}"}
            )
            urllib.request.urlopen(req, timeout=5).close()
        except OSError:
            pass
        for job in found:
            found[job] = {
                str(s["__name__"]) for s in _prom_series(f'{{__name__=~"lambda_{job}_.+",job="{job}"}}')
            }
        return bool(found["speed"] and found["serving"])

    wait_until(scraped, 240, interval=3)
    assert found["speed"], "no lambda_speed_* series scraped from the speed job within 240 s"
    assert found["serving"], "no lambda_serving_* series scraped from the serving layer within 240 s"
    known = {n for spec in metrics.ALL for n in spec.series_names}
    # what the alert rules rely on is really exported
    assert {"lambda_speed_watermark_lag_seconds", "lambda_speed_events_total"} <= found["speed"]
    assert "lambda_serving_request_duration_seconds_count" in found["serving"]
    assert found["serving"] <= known | {n for n in found["serving"] if n.endswith("_created")}
