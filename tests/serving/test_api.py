"""The API against a real Redis (unique prefix) and real Delta tables written with delta-rs."""

from __future__ import annotations

import os
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import redis
from conftest import NOW, make_client
from fastapi.testclient import TestClient
from serving_support import hours_from, k, m, make_settings, utc

from lambda_contract.settings import Settings
from lambda_testkit.views import write_gold, write_manifest, write_meta, write_speed_hour
from serving_layer.fx import SHIPPED_RATES, load_rates

pytestmark = pytest.mark.integration

DAY = utc("2026-11-20T00:00:00Z")
H = hours_from(utc("2026-11-20T09:00:00Z"), 7)  # 09..15 (15 = current hour at NOW 15:20)


def hourly(client: TestClient, **params: str) -> dict[str, Any]:
    params.setdefault("start", "2026-11-20T09:00:00Z")
    params.setdefault("end", "2026-11-20T16:00:00Z")
    res = client.get("/v1/revenue/hourly", params=params)
    assert res.status_code == 200, res.text
    body: dict[str, Any] = res.json()
    return body


def by_hour(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    rows = body["rows"]
    assert len({r["hour"] for r in rows}) == len(rows), "one row per hour expected"
    return {r["hour"][11:13]: r for r in rows}


def test_before_anything_was_written_every_past_hour_is_missing(client: TestClient, r: redis.Redis) -> None:
    body = hourly(client)
    assert [row["status"] for row in body["rows"]] == ["missing"] * 7
    assert {row["source"] for row in body["rows"]} == {"none"}
    assert body["rows"][0] == {
        "hour": "2026-11-20T09:00:00Z",
        "revenue": "0.00",
        "orders": 0,
        "refunds": 0,
        "events": 0,
        "source": "none",
        "status": "missing",
        "fx_stale": False,
    }
    assert body["freshness"] == {"speed_watermark": None, "batch_complete_through": None}
    assert (body["currency"], body["start"], body["end"], body["group_by"]) == (
        "USD",
        "2026-11-20T09:00:00Z",
        "2026-11-20T16:00:00Z",
        [],
    )


def test_no_gold_table_every_hour_from_speed(client: TestClient, r: redis.Redis, settings: Settings) -> None:
    layout = settings.redis_layout
    write_speed_hour(r, layout, H[0], {k(): m("10.5000", 2), k("us-east"): m("-2.2500", 0, 1)}, closed=True)
    write_speed_hour(r, layout, H[6], {k(): m("1.0000")})
    write_meta(r, layout, watermark=utc("2026-11-20T15:10:00Z"), updated=NOW)
    rows = by_hour(hourly(client))
    assert rows["09"]["revenue"] == "8.25" and rows["09"]["orders"] == 2 and rows["09"]["refunds"] == 1
    assert (rows["09"]["source"], rows["09"]["status"]) == ("speed", "closed")
    assert [rows[h]["status"] for h in ("10", "11", "12", "13", "14", "15")] == ["closed"] * 5 + ["open"]
    assert rows["12"]["revenue"] == "0.00" and rows["12"]["source"] == "speed"
    assert rows["15"]["revenue"] == "1.00"


def test_batch_covered_hours_come_from_gold_and_a_coverage_gap_from_speed(
    client: TestClient, r: redis.Redis, settings: Settings
) -> None:
    layout = settings.redis_layout
    for h in H[:4]:
        write_speed_hour(r, layout, h, {k(): m("100.0000")}, closed=True)
    write_meta(r, layout, watermark=utc("2026-11-20T13:30:00Z"), updated=NOW)
    # gold covers 09 and 11 (not 10): a gap between covered hours
    write_gold(settings, {H[0]: {k(): m("1.0000")}, H[2]: {k(): m("3.0000"), k("us-east"): m("0.0100")}})
    write_manifest(settings, [H[0], H[2]])
    body = hourly(client)
    rows = by_hour(body)
    assert [
        (rows[h]["source"], rows[h]["status"], rows[h]["revenue"]) for h in ("09", "10", "11", "12", "13")
    ] == [
        ("batch", "final", "1.00"),
        ("speed", "closed", "100.00"),
        ("batch", "final", "3.01"),
        ("speed", "closed", "100.00"),
        ("speed", "open", "0.00"),
    ]
    assert [(rows[h]["source"], rows[h]["status"]) for h in ("14", "15")] == [("none", "missing")] * 2
    assert body["freshness"] == {
        "speed_watermark": "2026-11-20T13:30:00.000Z",
        "batch_complete_through": "2026-11-20T12:00:00Z",
    }


def test_new_table_version_is_picked_up_without_restart(
    client: TestClient, r: redis.Redis, settings: Settings
) -> None:
    write_gold(settings, {H[0]: {k(): m("1.0000")}})
    write_manifest(settings, [H[0]])
    assert by_hour(hourly(client))["09"]["revenue"] == "1.00"
    # a rerun replaces the date's gold and records a newer manifest entry
    write_gold(settings, {H[0]: {k(): m("7.0000")}}, mode="overwrite")
    write_manifest(settings, [H[0]], run_id="run-2", computed_at=utc("2026-11-21T03:00:00Z"))
    assert by_hour(hourly(client))["09"]["revenue"] == "7.00"
    status = client.get("/v1/status").json()
    assert status["batch"]["last_run"]["run_id"] == "run-2"
    assert status["batch"]["gold_version"] == 1 and status["batch"]["manifest_version"] == 1


def test_manifest_entry_marked_not_computed_is_not_served_from_gold(
    client: TestClient, r: redis.Redis, settings: Settings
) -> None:
    write_gold(settings, {H[0]: {k(): m("1.0000")}})
    write_manifest(settings, [H[0]])
    write_manifest(settings, [H[0]], run_id="run-2", computed=False, computed_at=utc("2026-11-21T04:00:00Z"))
    assert by_hour(hourly(client))["09"]["status"] == "missing"


def shipped_eur_on_2026_11_20() -> Decimal:
    """The shipped table's EUR rate (USD per EUR) on Friday 2026-11-20, read from the table itself."""
    rate = load_rates(SHIPPED_RATES).rate("EUR", date(2026, 11, 20))
    assert rate is not None and not rate.stale
    return rate.rate_to_usd


def test_grouping_filters_and_fx_conversion(client: TestClient, r: redis.Redis, settings: Settings) -> None:
    layout = settings.redis_layout
    write_speed_hour(
        r,
        layout,
        H[0],
        {
            k("eu-west", "books", "EUR"): m("10.0000"),
            k("eu-west", "games", "USD"): m("5.0000"),
            k("us-east", "books", "USD"): m("1.0000"),
        },
        closed=True,
    )
    write_meta(r, layout, watermark=utc("2026-11-20T10:30:00Z"), updated=NOW)
    params = {"start": "2026-11-20T09:00:00Z", "end": "2026-11-20T10:00:00Z"}
    eur = shipped_eur_on_2026_11_20()
    body = hourly(client, **params, group_by="currency,region", region="eu-west")
    assert body["group_by"] == ["region", "currency"]
    assert [(x["region"], x["currency"], x["revenue"], x["revenue_native"]) for x in body["rows"]] == [
        ("eu-west", "EUR", str((10 * eur).quantize(Decimal("0.01"))), "10.0000"),
        ("eu-west", "USD", "5.00", "5.0000"),
    ]
    body = hourly(client, **params, currency="EUR", category="books")
    expected = (Decimal(10) * eur + Decimal(1)) / eur
    assert body["rows"][0]["revenue"] == str(expected.quantize(Decimal("0.01")))
    assert body["currency"] == "EUR"


def test_fx_stale_rate_on_a_weekend_is_flagged(
    client: TestClient, r: redis.Redis, settings: Settings
) -> None:
    saturday = utc("2026-11-21T10:00:00Z")  # the shipped table has business days only
    write_speed_hour(r, settings.redis_layout, saturday, {k(currency="EUR"): m("10.0000")}, closed=True)
    write_meta(r, settings.redis_layout, watermark=utc("2026-11-21T12:00:00Z"), updated=NOW)
    with make_client(settings, now=utc("2026-11-21T12:00:00Z")) as c:
        row = hourly(c, start="2026-11-21T10:00:00Z", end="2026-11-21T11:00:00Z")["rows"][0]
    # Saturday keeps Friday's rate, flagged stale.
    expected = (10 * shipped_eur_on_2026_11_20()).quantize(Decimal("0.01"))
    assert row["fx_stale"] is True and row["revenue"] == str(expected)


def test_currency_without_any_rate_gives_null_revenue_and_names_it(
    client: TestClient, r: redis.Redis, settings: Settings
) -> None:
    write_speed_hour(
        r, settings.redis_layout, H[0], {k(currency="XAU"): m("1.0000"), k(): m("2.0000")}, closed=True
    )
    write_meta(r, settings.redis_layout, watermark=utc("2026-11-20T12:00:00Z"), updated=NOW)
    rows = by_hour(hourly(client))
    assert rows["09"]["revenue"] is None and rows["09"]["fx_missing"] == ["XAU"] and rows["09"]["orders"] == 2


def test_grouped_hour_without_events_has_one_zero_row(
    client: TestClient, r: redis.Redis, settings: Settings
) -> None:
    write_speed_hour(r, settings.redis_layout, H[0], {k(): m("2.0000")}, closed=True)
    write_meta(r, settings.redis_layout, watermark=utc("2026-11-20T10:30:00Z"), updated=NOW)
    body = hourly(client, start="2026-11-20T09:00:00Z", end="2026-11-20T11:00:00Z", group_by="region")
    assert [(x["hour"][11:13], x["region"], x["revenue"]) for x in body["rows"]] == [
        ("09", "eu-west", "2.00"),
        ("10", None, "0.00"),
    ]


def test_redis_entries_that_break_the_layout_are_skipped_not_fatal(
    client: TestClient, r: redis.Redis, settings: Settings
) -> None:
    layout = settings.redis_layout
    write_speed_hour(r, layout, H[0], {k(): m("2.0000")}, closed=True)
    r.hset(layout.hour(H[0]), mapping={"garbage": "x", "a|b|USD": "1|2"})
    write_meta(r, layout, watermark=utc("2026-11-20T10:30:00Z"), updated=NOW)
    assert by_hour(hourly(client))["09"]["revenue"] == "2.00"
    assert "lambda_serving_bad_redis_entries_total 2.0" in client.get("/metrics").text


def test_future_hours_are_listed_as_future_zeros(client: TestClient, r: redis.Redis) -> None:
    rows = by_hour(hourly(client, end="2026-11-20T18:00:00Z"))
    assert [(rows[h]["source"], rows[h]["status"]) for h in ("16", "17")] == [("none", "future")] * 2


def test_status_reports_layers_watermark_and_lag(
    client: TestClient, r: redis.Redis, settings: Settings
) -> None:
    write_speed_hour(r, settings.redis_layout, H[5], {k(): m("1")})
    write_meta(
        r, settings.redis_layout, watermark=utc("2026-11-20T15:00:00Z"), updated=NOW - timedelta(seconds=3)
    )
    doc = client.get("/v1/status").json()
    assert "lambda_serving_speed_watermark_lag_seconds 1200.0" in client.get("/metrics").text
    assert doc["speed"]["reachable"] and doc["speed"]["healthy"]
    assert doc["speed"]["watermark_lag_s"] == 1200.0 and doc["speed"]["open_hours"] == 1
    assert doc["batch"]["available"] is False and doc["batch"]["last_run"] is None
    assert "USD" in doc["serving"]["fx_currencies"]


def test_metrics_probes_and_request_id(client: TestClient, r: redis.Redis) -> None:
    hourly(client)
    res = client.get("/healthz", headers={"X-Request-ID": "abc-123"})
    assert res.json() == {"status": "ok"} and res.headers["x-request-id"] == "abc-123"
    assert len(client.get("/healthz").headers["x-request-id"]) == 32
    assert client.get("/readyz").status_code == 200
    text = client.get("/metrics").text
    count = "lambda_serving_request_duration_seconds_count"
    assert f'{count}{{method="GET",route="/v1/revenue/hourly",status="200"}} 1.0' in text
    assert 'lambda_serving_rows_total{source="none"} 7.0' in text
    assert 'lambda_serving_cache_age_seconds{table="gold"}' in text
    assert 'lambda_serving_cache_age_seconds{table="coverage_manifest"}' in text
    assert 'lambda_serving_delta_table_version{table="gold"} -1.0' in text
    assert "lambda_serving_speed_watermark_lag_seconds NaN" in text  # no speed watermark yet
    assert 'lambda_serving_hours_total{status="missing"} 7.0' in text


def test_every_request_is_labelled_with_its_route_template(tmp_path: Path, r: redis.Redis) -> None:
    """Not only FastAPI's own routes: plain routes, mounts and CORS preflights name their template."""
    settings = make_settings(tmp_path, os.environ, LAMBDA_CORS_ORIGINS="https://ok.example")
    with make_client(settings) as c:
        hourly(c)
        preflight = {"Origin": "https://ok.example", "Access-Control-Request-Method": "GET"}
        assert c.options("/v1/revenue/hourly", headers=preflight).status_code == 200
        assert c.get("/v1/reconciliation/2026-11-19").status_code == 404  # not computed
        assert c.get("/openapi.json").status_code == 200
        assert c.get("/swagger/swagger-ui-bundle.js").status_code == 200
        assert c.get("/no/such/route").status_code == 404
        text = c.get("/metrics").text
    labels = {
        line[line.index("{") + 1 : line.rindex("}")]
        for line in text.splitlines()
        if line.startswith("lambda_serving_request_duration_seconds_count{")
    }
    assert labels == {
        'method="GET",route="/v1/revenue/hourly",status="200"',
        'method="OPTIONS",route="/v1/revenue/hourly",status="200"',
        'method="GET",route="/v1/reconciliation/{day}",status="404"',
        'method="GET",route="/openapi.json",status="200"',
        'method="GET",route="/swagger/{path}",status="200"',
        'method="GET",route="unmatched",status="404"',  # only a path no route serves
    }


def test_openapi_docs_are_served_without_a_cdn(client: TestClient) -> None:
    html = client.get("/docs").text
    assert "/swagger/swagger-ui-bundle.js" in html and "cdn" not in html.lower()
    assert client.get("/swagger/swagger-ui-bundle.js").status_code == 200
    assert client.get("/swagger/swagger-ui.css").status_code == 200
    page = client.get("/")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    spec = client.get("/openapi.json").json()
    assert "/v1/revenue/hourly" in spec["paths"] and "/v1/status" in spec["paths"]
    hourly_doc = spec["paths"]["/v1/revenue/hourly"]["get"]
    assert (
        hourly_doc["security"] == [{"HTTPBearer": []}]
        and "HTTPBearer" in spec["components"]["securitySchemes"]
    )
    assert [p["name"] for p in hourly_doc["parameters"]] == [
        "start",
        "end",
        "group_by",
        "region",
        "category",
        "currency",
    ]


def test_speed_view_changes_show_within_the_cache_bound(r: redis.Redis, settings: Settings) -> None:
    layout = settings.redis_layout
    write_speed_hour(r, layout, H[6], {k(): m("1.0000")})
    write_meta(r, layout, watermark=utc("2026-11-20T15:10:00Z"), updated=NOW)
    clock = [1000.0]  # the monotonic clock the speed view's cache TTLs run on, stepped by hand
    with make_client(settings, speed_ttl_s=0.3, speed_ttl_clock=lambda: clock[0]) as c:
        assert by_hour(hourly(c))["15"]["revenue"] == "1.00"
        write_speed_hour(r, layout, H[6], {k(): m("2.0000")})
        clock[0] += 0.29
        assert by_hour(hourly(c))["15"]["revenue"] == "1.00"  # within the TTL: the cached copy
        clock[0] += 0.02
        assert by_hour(hourly(c))["15"]["revenue"] == "2.00"  # past it: read again


def test_large_responses_are_gzipped_when_the_client_accepts_it(
    client: TestClient, r: redis.Redis, settings: Settings
) -> None:
    groups = {k(f"r{i}", f"c{j}"): m("1.0000") for i in range(10) for j in range(10)}
    write_speed_hour(r, settings.redis_layout, H[0], groups, closed=True)
    write_meta(r, settings.redis_layout, watermark=utc("2026-11-20T12:00:00Z"), updated=NOW)
    url = "/v1/revenue/hourly?start=2026-11-20T09:00:00Z&end=2026-11-20T10:00:00Z&group_by=region,category"
    zipped = client.get(url, headers={"Accept-Encoding": "gzip"})
    plain = client.get(url, headers={"Accept-Encoding": "identity"})
    assert zipped.headers["content-encoding"] == "gzip" and "content-encoding" not in plain.headers
    assert zipped.headers["vary"] == plain.headers["vary"] == "Accept-Encoding"
    assert zipped.json() == plain.json() and len(plain.json()["rows"]) == 100


def test_only_get_is_allowed_on_the_hourly_route(client: TestClient) -> None:
    assert client.post("/v1/revenue/hourly").status_code == 405
