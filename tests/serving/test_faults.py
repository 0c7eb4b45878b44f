"""Hostile state in the stores: the API keeps answering and says what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient
from serving_support import k, m, utc

from lambda_contract.settings import Settings
from lambda_contract.tables import GOLD, MANIFEST
from lambda_testkit.views import write_gold, write_manifest, write_speed_hour

pytestmark = [pytest.mark.integration, pytest.mark.faults]

URL = "/v1/revenue/hourly?start=2026-11-20T09:00:00Z&end=2026-11-20T11:00:00Z"


def test_unreadable_delta_log_keeps_serving_speed_and_reports_the_error(
    client: TestClient, r: redis.Redis, settings: Settings
) -> None:
    write_speed_hour(r, settings.redis_layout, utc("2026-11-20T09:00:00Z"), {k(): m("4.0000")}, closed=True)
    for table in (GOLD, MANIFEST):
        log = Path(settings.delta_table_url(table.name)) / "_delta_log"
        log.mkdir(parents=True)
        (log / "00000000000000000000.json").write_text("{not json\n")
    res = client.get(URL)
    assert res.status_code == 200
    assert res.json()["rows"][0]["revenue"] == "4.00" and res.json()["rows"][0]["source"] == "speed"
    batch = client.get("/v1/status").json()["batch"]
    assert batch["error"] and batch["available"] is False


def test_a_bad_table_after_a_good_one_keeps_the_last_good_view(
    client: TestClient, r: redis.Redis, settings: Settings
) -> None:
    hour = utc("2026-11-20T09:00:00Z")
    write_gold(settings, {hour: {k(): m("7.0000")}})
    write_manifest(settings, [hour])
    assert client.get(URL).json()["rows"][0]["revenue"] == "7.00"
    log = Path(settings.delta_table_url(GOLD.name)) / "_delta_log"
    (log / "00000000000000000001.json").write_text("garbage\n")
    res = client.get(URL)
    assert res.status_code == 200 and res.json()["rows"][0]["revenue"] == "7.00"
    assert client.get("/v1/status").json()["batch"]["error"]


def test_garbage_speed_meta_and_hours_hash_are_ignored(
    client: TestClient, r: redis.Redis, settings: Settings
) -> None:
    layout = settings.redis_layout
    write_speed_hour(r, layout, utc("2026-11-20T09:00:00Z"), {k(): m("4.0000")}, closed=True)
    r.hset(layout.meta(), mapping={"watermark_ms": "soon", "updated_ms": "9" * 40})
    r.hset(layout.hours(), mapping={"not-an-hour": "open", "2026-11-20T10": "\xff"})
    res = client.get(URL)
    assert res.status_code == 200
    rows = res.json()["rows"]
    assert [(x["source"], x["status"], x["revenue"]) for x in rows] == [
        ("speed", "closed", "4.00"),
        ("speed", "open", "0.00"),
    ]
    assert res.json()["freshness"]["speed_watermark"] is None
    assert client.get("/v1/status").json()["speed"]["healthy"] is False


def test_a_layout_key_of_another_type_is_skipped_and_counted(
    client: TestClient, r: redis.Redis, settings: Settings
) -> None:
    layout = settings.redis_layout
    write_speed_hour(r, layout, utc("2026-11-20T09:00:00Z"), {k(): m("4.0000")}, closed=True)
    r.set(layout.hour(utc("2026-11-20T10:00:00Z")), "not a hash")
    r.set(layout.meta(), "not a hash either")
    res = client.get(URL)
    assert res.status_code == 200 and res.json()["rows"][0]["revenue"] == "4.00"
    assert "lambda_serving_bad_redis_entries_total 2.0" in client.get("/metrics").text
    assert client.get("/v1/status").status_code == 200
