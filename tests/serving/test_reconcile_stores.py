"""Reconciliation end to end over the real stores: Redis and Delta tables in the contract's formats,
filled with the golden set's truth (speed view, late counters, gold), through the CLI."""

from __future__ import annotations

import json
import os
from datetime import date
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
import redis
from deltalake import write_deltalake

from lambda_contract.redis_layout import Metrics
from lambda_contract.settings import Settings
from lambda_contract.tables import QUARANTINE
from lambda_contract.windows import hours_of_date
from lambda_testkit import golden
from lambda_testkit.views import arrow_schema, write_gold, write_manifest, write_speed_hour
from serving_layer import reconcile_cli

pytestmark = pytest.mark.integration

DAY = date(2026, 11, 20)


def _env(settings: Settings) -> dict[str, str]:
    return {
        "LAMBDA_REDIS_PREFIX": settings.redis_prefix,
        "LAMBDA_DELTA_ROOT": settings.delta_root,
        "LAMBDA_PUSHGATEWAY_URL": "",
    }


def _fill(settings: Settings, r: redis.Redis, gold_override: dict | None = None) -> None:  # type: ignore[type-arg]
    truth = golden.truth()
    layout = settings.redis_layout
    by_hour: dict = {}  # type: ignore[type-arg]
    for (hour, key), metrics in truth.speed.items():
        by_hour.setdefault(hour, {})[key] = metrics
    for hour in hours_of_date(DAY):
        write_speed_hour(r, layout, hour, by_hour.get(hour, {}), closed=True)
    for (hour, key), metrics in truth.late.items():
        r.hset(layout.late(hour), key.field(), metrics.encode())
    r.hset(layout.malformed(DAY), mapping=truth.malformed_by_date[DAY])
    gold: dict = {}  # type: ignore[type-arg]
    for (hour, key), metrics in (gold_override or truth.full).items():
        gold.setdefault(hour, {})[key] = metrics
    write_gold(settings, gold)
    write_manifest(settings, hours_of_date(DAY))
    rows = [
        {"event_date": DAY, "reason": reason, "value": b"x", "topic": "orders.v1", "partition": 0,
         "offset": i * 1000 + j, "kafka_timestamp": golden.records()[0].timestamp}
        for i, (reason, n) in enumerate(truth.malformed_by_date[DAY].items()) for j in range(n)
    ]  # fmt: skip
    write_deltalake(
        settings.delta_table_url(QUARANTINE.name),
        pa.Table.from_pylist(rows, schema=arrow_schema(QUARANTINE)),
        partition_by=["event_date"],
    )


@pytest.fixture
def env(settings: Settings, r: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, value in _env(settings).items():
        monkeypatch.setenv(name, value)
    return settings


def test_the_golden_day_is_explained_by_its_late_events(
    env: Settings, r: redis.Redis, tmp_path: Path
) -> None:
    _fill(env, r)
    assert reconcile_cli.main(["--date", "2026-11-20", "--out", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "reconciliation-2026-11-20.json").read_text())
    totals = doc["totals"]
    truth = golden.truth()
    assert totals["verdict"] == "explained" and totals["residual_events"] == 0
    assert totals["late_events"] == sum(m.events for m in truth.late.values()) == 3
    assert totals["batch_events"] - totals["speed_events"] == 3
    assert totals["malformed_events"] == totals["dlq_events"] == sum(truth.malformed.values())
    html = (tmp_path / "reconciliation-2026-11-20.html").read_text()
    assert "<svg" in html and "explained" in html and "<script" not in html


def test_a_wrong_gold_value_is_an_unexplained_residual(env: Settings, r: redis.Redis, tmp_path: Path) -> None:
    truth = golden.truth()
    tampered = dict(truth.full)
    key = next(iter(tampered))
    tampered[key] = tampered[key] + Metrics(Decimal("0.0100"), 0, 0, 0)
    _fill(env, r, gold_override=tampered)
    assert reconcile_cli.main(["--date", "2026-11-20", "--out", str(tmp_path)]) == 3
    doc = json.loads((tmp_path / "reconciliation-2026-11-20.json").read_text())
    assert doc["totals"]["verdict"] == "unexplained" and doc["totals"]["residual_revenue_usd"] != "0.00"
    assert "Unexplained keys" in (tmp_path / "reconciliation-2026-11-20.html").read_text()


def test_a_date_the_batch_has_not_computed_is_refused(
    env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert reconcile_cli.main(["--date", "2026-11-20", "--out", str(tmp_path)]) == 4
    assert "has not been computed" in capsys.readouterr().err


def test_a_bad_date_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        reconcile_cli.main(["--date", "2026-13-01"])
    assert exc.value.code == 2 and "not a date" in capsys.readouterr().err


def test_the_api_serves_the_same_report_and_sets_no_gauge(env: Settings, r: redis.Redis) -> None:
    from conftest import make_client

    with make_client(env) as client:
        assert client.get("/v1/reconciliation/2026-11-20").status_code == 404  # not computed yet
        _fill(env, r)
        resp = client.get("/v1/reconciliation/2026-11-20")
        assert resp.status_code == 200, resp.text
        doc = resp.json()
        assert doc["date"] == "2026-11-20" and doc["totals"]["verdict"] == "explained"
        assert doc["totals"]["late_events"] == 3 and len(doc["hours"]) == 24
        html = client.get("/v1/reconciliation/2026-11-20?format=html")
        assert html.status_code == 200 and html.text.startswith("<!doctype html>")
        assert client.get("/v1/reconciliation/2026-02-30").status_code == 400
        assert client.get("/v1/reconciliation/2026-11-20?format=pdf").status_code == 400
        assert client.get("/v1/reconciliation/2026-11-20", headers={"Authorization": ""}).status_code == 401
        # The scheduled lambda-reconcile publishes the gauges per date; a viewed report sets none.
        assert "lambda_reconciliation_" not in client.get("/metrics").text


def test_the_scheduled_run_reconciles_every_recomputed_date_and_pushes_each_under_its_date(
    env: Settings, r: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The nightly flow's step: the dates `lambda-batch nightly` wrote, each reconciled and its gauges
    pushed to the real Pushgateway as the group date=D (removed afterwards)."""
    import urllib.request

    from serving_layer.reconciliation_io import JOB

    url = os.environ.get("LAMBDA_PUSHGATEWAY_URL_FOR_TESTS") or "http://localhost:9091"
    monkeypatch.setenv("LAMBDA_PUSHGATEWAY_URL", url)
    truth = golden.truth()
    tampered = dict(truth.full)
    key = next(iter(tampered))
    tampered[key] = tampered[key] + Metrics(Decimal("0.0100"), 0, 0, 1)
    _fill(env, r, gold_override=tampered)
    dates = tmp_path / "dates"
    dates.write_text("2026-11-20\n\n2026-11-21\n")
    try:
        # 2026-11-20 has a residual (3), 2026-11-21 was never computed (4): the residual wins.
        assert reconcile_cli.main(["--dates-file", str(dates), "--out", str(tmp_path)]) == 3
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as resp:
            mine = [line for line in resp.read().decode().splitlines() if f'job="{JOB}"' in line]
        residual = [
            line
            for line in mine
            if line.startswith("lambda_reconciliation_residual_events{") and 'date="2026-11-20"' in line
        ]
        assert len(residual) == 1, mine
        assert float(residual[0].rsplit(" ", 1)[1]) != 0
        assert not [line for line in mine if 'date="2026-11-21"' in line], (
            "a date not computed pushes nothing"
        )
    finally:
        req = urllib.request.Request(f"{url}/metrics/job/{JOB}/date/2026-11-20", method="DELETE")
        urllib.request.urlopen(req, timeout=5).close()


def test_a_dates_file_naming_nothing_reconciles_nothing_and_a_bad_line_is_a_usage_error(
    env: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty"
    empty.write_text("")
    assert reconcile_cli.main(["--dates-file", str(empty), "--out", str(tmp_path)]) == 0
    assert "names no date" in capsys.readouterr().out
    bad = tmp_path / "bad"
    bad.write_text("2026-11-20\nyesterday\n")
    assert reconcile_cli.main(["--dates-file", str(bad), "--out", str(tmp_path)]) == 2
    assert f"{bad}:2: 'yesterday' is not a date" in capsys.readouterr().err
    assert reconcile_cli.main(["--dates-file", str(tmp_path / "absent"), "--out", str(tmp_path)]) == 2
