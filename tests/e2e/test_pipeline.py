"""End to end, real everything: generator (seeded) -> Kafka -> speed layer (PyFlink) -> Redis;
Kafka -> batch layer (PySpark + Delta) -> gold; serving API over both; reconciliation.

Each layer runs as its own process from its own environment, exactly as `make` runs it, with
settings isolated to this test (topics, Redis prefix, Delta root, checkpoints).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import pytest
import redis
from kafka.admin import KafkaAdminClient, NewTopic

from lambda_contract.redis_layout import GroupKey, Metrics
from lambda_contract.settings import Settings
from lambda_contract.windows import hour_label, hours_of_date
from lambda_testkit.processes import http_ok, wait_until
from lambda_testkit.sandbox import hash_of
from lambda_testkit.truth import Truth, View

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
VENVS = REPO / ".venvs"
DAY = date(2026, 11, 18)
TOKEN = "e2e-token-0123456789abcdef"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    tag = uuid.uuid4().hex[:8]
    tmp = tmp_path_factory.mktemp("e2e")
    base = Settings.from_env()
    topics = {
        f"LAMBDA_TOPIC_{n}": f"e2e.{tag}.{s}"
        for n, s in (("ORDERS", "orders"), ("DLQ", "dlq"), ("LATE", "late"))
    }
    admin = KafkaAdminClient(bootstrap_servers=base.kafka_bootstrap)
    admin.create_topics(
        [
            NewTopic(t, 3 if n.endswith("ORDERS") else 1, 1, topic_configs={"retention.ms": "-1"})
            for n, t in topics.items()
        ]
    )
    env = (
        dict(os.environ)
        | topics
        | {
            "LAMBDA_REDIS_PREFIX": f"e2e-{tag}",
            "LAMBDA_DELTA_ROOT": str(tmp / "delta"),
            "LAMBDA_CHECKPOINT_DIR": (tmp / "flink").as_uri(),
            "LAMBDA_BATCH_CHECKPOINT_DIR": str(tmp / "bronze-checkpoint"),
            "LAMBDA_REPORTS_DIR": str(tmp / "reports"),
            "LAMBDA_API_TOKENS": TOKEN,
            "LAMBDA_API_PORT": str(_free_port()),
            "LAMBDA_PUSHGATEWAY_URL": "",
            "LAMBDA_SPEED_METRICS_PORT": str(_free_port()),
            "E2E_TMP": str(tmp),
        }
    )
    yield env
    admin.delete_topics(list(topics.values()))
    admin.close()
    client = _redis(env)
    keys = list(client.scan_iter(match=f"{env['LAMBDA_REDIS_PREFIX']}:*", count=1000))
    if keys:
        client.delete(*keys)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _redis(env: dict[str, str]) -> redis.Redis:
    settings = Settings.from_env(env)
    return redis.Redis.from_url(settings.redis_url, password=settings.resolved_redis_password())


def _run(env: dict[str, str], argv: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    assert proc.returncode == 0, (
        f"{argv[0]} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc


@pytest.fixture(scope="module")
def truth(env: dict[str, str]) -> Truth:
    path = Path(env["E2E_TMP"]) / "truth.json"
    _run(env, [str(VENVS / "tools/bin/lambda-generate"), "history", "--date", DAY.isoformat(), "--events", "20000",
               "--seed", "20261118", "--duplicate-rate", "0.02", "--late-rate", "0.01", "--malformed-rate", "0.01",
               "--truth", str(path)], timeout=300)  # fmt: skip
    return Truth.load(path)


def _speed_view(env: dict[str, str]) -> tuple[View, View]:
    layout = Settings.from_env(env).redis_layout
    client = _redis(env)
    view: View = {}
    late: View = {}
    for hour in hours_of_date(DAY):
        for field, value in hash_of(client, layout.hour(hour)).items():
            view[(hour, GroupKey.parse(field))] = Metrics.decode(value)
        for field, value in hash_of(client, layout.late(hour)).items():
            late[(hour, GroupKey.parse(field))] = Metrics.decode(value)
    return view, late


def _api(env: dict[str, str], path: str) -> dict[str, Any]:
    req = urllib.request.Request(f"http://127.0.0.1:{env['LAMBDA_API_PORT']}{path}",
                                 headers={"Authorization": f"Bearer {TOKEN}"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def serving(env: dict[str, str]) -> Iterator[None]:
    proc = subprocess.Popen([str(VENVS / "serving/bin/lambda-serve")], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    if not wait_until(lambda: http_ok(f"http://127.0.0.1:{env['LAMBDA_API_PORT']}/healthz"), 60, 0.3):
        proc.kill()
        pytest.fail("the serving layer did not answer /healthz within 60 s")
    yield
    proc.terminate()
    proc.wait(timeout=30)


def _cents(value: Decimal) -> str:
    return format(value.quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN), "f")


def _check_api_rows(env: dict[str, str], expected: dict[tuple[Any, GroupKey], Metrics], source: str) -> None:
    """Every key of the expected view, queried in its own currency (no conversion): exact."""
    start, end = hour_label(hours_of_date(DAY)[0]), hour_label(hours_of_date(DAY + timedelta(days=1))[0])
    currencies = sorted({k.currency for _, k in expected})
    got: dict[tuple[str, GroupKey], dict[str, Any]] = {}
    for currency in currencies:
        doc = _api(
            env,
            f"/v1/revenue/hourly?start={start}&end={end}&group_by=region,category,currency&currency={currency}",
        )
        assert len({r["hour"] for r in doc["rows"]}) == 24
        for row in doc["rows"]:
            assert row["source"] == source, row
            if row["currency"] == currency and row["events"]:
                got[(row["hour"], GroupKey(row["region"], row["category"], row["currency"]))] = row
    assert len(got) == len(expected)
    for (hour, key), m in expected.items():
        row = got[(hour_label(hour), key)]
        assert (row["revenue"], row["orders"], row["refunds"], row["events"]) == (
            _cents(m.revenue), m.orders, m.refunds, m.events), (hour, key)  # fmt: skip


def test_speed_then_batch_then_api_then_reconciliation(
    env: dict[str, str], truth: Truth, serving: None
) -> None:
    # 1. the speed layer drains the topic (bounded mode): Redis holds the truth minus late events
    _run(env, [str(VENVS / "speed/bin/lambda-speed"), "--bounded", "--fresh"], timeout=900)
    view, late = _speed_view(env)
    assert view == truth.view_for_date(truth.speed, DAY)
    assert late == truth.view_for_date(truth.late, DAY)
    assert sum(m.events for m in late.values()) > 0
    # 2. before any batch run the API serves those hours from the speed view
    _check_api_rows(env, truth.view_for_date(truth.speed, DAY), source="speed")
    # 3. the nightly batch for the date: gold holds the full truth, late events included
    _run(env, [str(VENVS / "batch/bin/lambda-batch"), "run", "--date", DAY.isoformat()], timeout=900)
    _check_api_rows(env, truth.view_for_date(truth.full, DAY), source="batch")
    # 4. reconciliation explains the difference with exactly the generator's late events
    _run(env, [str(VENVS / "serving/bin/lambda-reconcile"), "--date", DAY.isoformat()], timeout=300)
    report = json.loads((Path(env["LAMBDA_REPORTS_DIR"]) / f"reconciliation-{DAY}.json").read_text())
    assert report["totals"]["verdict"] == "explained"
    assert report["totals"]["late_events"] == sum(
        m.events for m in truth.view_for_date(truth.late, DAY).values()
    )
    assert (
        report["totals"]["malformed_events"]
        == report["totals"]["dlq_events"]
        == sum(truth.malformed_by_date[DAY].values())
    )
