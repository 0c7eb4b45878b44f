"""GET /v1/revenue/events on generated traffic that the real batch (Spark + Delta) recomputed.

The module fixture runs tests/batch/test_silver.py as a script in the batch environment (this
suite has no Spark): a generated day with duplicates, malformed and late records goes to bronze
and through the recompute, which writes gold, silver and the manifest. The app then serves them.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Final

import pytest
from fastapi.testclient import TestClient
from serving_support import REPO, make_settings

from lambda_contract.windows import format_instant
from serving_layer.app import create_app
from serving_layer.silver import Cursor

pytestmark = pytest.mark.integration

DAY: Final = datetime(2026, 11, 20, tzinfo=UTC)
NOW: Final = datetime(2026, 11, 22, tzinfo=UTC)
BUILD_TIMEOUT_S: Final = 900


@dataclass(frozen=True)
class Served:
    client: TestClient
    run_id: str
    hourly: list[dict[str, Any]]  # /v1/revenue/hourly's batch rows of the day, each in its native currency


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("events")
    settings = make_settings(tmp, os.environ)
    built = subprocess.run(
        [
            str(REPO / ".venvs/batch/bin/python"),
            str(REPO / "tests/batch/test_silver.py"),
            settings.delta_root,
        ],
        env=dict(os.environ, LAMBDA_PUSHGATEWAY_URL=""),
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
        cwd=REPO,
    )
    assert built.returncode == 0, built.stderr[-3000:]
    run_id = json.loads(built.stdout.strip().splitlines()[-1])["run_id"]
    with TestClient(create_app(settings, clock=lambda: NOW, batch_refresh_s=0.0)) as client:
        client.headers["Authorization"] = f"Bearer {settings.api_tokens[0]}"
        yield Served(client, run_id, _hourly_native(client))


def _hourly_native(client: TestClient) -> list[dict[str, Any]]:
    """Per key, the hourly route's rows reported in the key's own currency (no FX conversion)."""
    out = []
    for currency in ("USD", "EUR", "GBP", "CHF"):
        r = client.get(
            "/v1/revenue/hourly",
            params={
                "start": format_instant(DAY),
                "end": format_instant(DAY + timedelta(days=1)),
                "group_by": "region,category,currency",
                "currency": currency,
            },
        )
        assert r.status_code == 200, r.text
        out += [row for row in r.json()["rows"] if row.get("currency") == currency and row["events"] > 0]
    return out


def _events(client: TestClient, row: dict[str, Any], **params: Any) -> Any:
    query = {k: row[k] for k in ("hour", "region", "category", "currency")} | params
    return client.get("/v1/revenue/events", params=query)


def _all_pages(client: TestClient, row: dict[str, Any], limit: int) -> tuple[list[dict[str, Any]], int]:
    events: list[dict[str, Any]] = []
    cursor, pages = None, 0
    while True:
        r = _events(client, row, limit=limit, **({"cursor": cursor} if cursor else {}))
        assert r.status_code == 200, r.text
        doc = r.json()
        events += doc["events"]
        pages += 1
        cursor = doc["next_cursor"]
        if cursor is None:
            return events, pages


def test_counted_events_add_up_to_what_hourly_serves_for_each_batch_final_key(served: Served) -> None:
    assert len(served.hourly) > 40, "the generated day should give many batch hours and keys"
    currencies = set()
    for row in served.hourly:
        assert (row["source"], row["status"]) == ("batch", "final")
        r = _events(served.client, row, limit=5000)
        assert r.status_code == 200, r.text
        doc = r.json()
        assert (doc["hour"], doc["region"], doc["category"], doc["currency"], doc["status"]) == (
            row["hour"],
            row["region"],
            row["category"],
            row["currency"],
            "final",
        )
        counted = [e for e in doc["events"] if e["counted"]]
        revenue = sum(
            (Decimal(e["amount"]) * (1 if e["event_type"] == "purchase" else -1) for e in counted), Decimal(0)
        )
        totals = doc["totals"]
        assert Decimal(totals["revenue"]) == revenue, row
        assert totals["events"] == len(counted) == row["events"], row
        assert totals["orders"] == sum(e["event_type"] == "purchase" for e in counted) == row["orders"], row
        assert totals["refunds"] == row["refunds"], row
        assert revenue.quantize(Decimal("0.01"), ROUND_HALF_EVEN) == Decimal(row["revenue"]), row
        assert all(e["reason"] is None for e in counted)
        assert all(e["reason"] == "duplicate" for e in doc["events"] if not e["counted"])
        currencies.add(row["currency"])
    assert len(currencies) > 1


def test_pages_cover_every_event_exactly_once_in_kafka_order(served: Served) -> None:
    row = max(served.hourly, key=lambda r: r["events"])
    whole = _events(served.client, row, limit=5000).json()
    paged, pages = _all_pages(served.client, row, limit=7)
    assert pages > 2
    assert paged == whole["events"]
    at = [(e["kafka_partition"], e["kafka_offset"]) for e in paged]
    assert at == sorted(set(at))
    assert any(not e["counted"] for e in paged) or whole["totals"]["events"] == len(paged)
    first = _events(served.client, row, limit=7).json()
    assert first["totals"] == whole["totals"], "totals are the whole hour-key's, not the page's"


def test_csv_streams_the_same_rows_as_json(served: Served) -> None:
    row = max(served.hourly, key=lambda r: r["events"])
    doc = _events(served.client, row, limit=5).json()
    r = _events(served.client, row, limit=5, format="csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.headers["x-next-cursor"] == doc["next_cursor"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    as_text = [
        {
            k: "" if v is None else ("true" if v is True else "false" if v is False else str(v))
            for k, v in e.items()
        }
        for e in doc["events"]
    ]
    assert rows == as_text


def test_an_hour_the_batch_has_not_covered_is_a_404_saying_when_it_comes(served: Served) -> None:
    row = served.hourly[0] | {"hour": format_instant(DAY + timedelta(days=1, hours=3))}
    r = _events(served.client, row)
    assert r.status_code == 404
    assert r.json()["error"] == "not_final" and "nightly batch recompute" in r.json()["detail"]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"hour": "2026-11-20T13:30:00Z"}, "hour"),
        ({"hour": "yesterday"}, "hour"),
        ({"hour": "2026-11-20T13:00:00"}, "hour"),
        ({"region": "EU WEST"}, "region"),
        ({"currency": "eur"}, "currency"),
        ({"limit": 0}, "limit"),
        ({"limit": 100_000}, "limit"),
        ({"cursor": "not-a-cursor!"}, "cursor"),
        ({"format": "xml"}, "format"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(served: Served, change: dict[str, Any], named: str) -> None:
    row = served.hourly[0]
    query = {k: row[k] for k in ("hour", "region", "category", "currency")} | change
    r = served.client.get("/v1/revenue/events", params=query)
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "bad_request" and named in r.json()["detail"], r.json()


def test_a_missing_parameter_is_a_400_naming_it(served: Served) -> None:
    r = served.client.get("/v1/revenue/events", params={"hour": served.hourly[0]["hour"]})
    assert r.status_code == 400 and "region" in r.json()["detail"], r.text


def test_the_route_needs_the_token(served: Served) -> None:
    row = served.hourly[0]
    r = served.client.get(
        "/v1/revenue/events",
        params={k: row[k] for k in ("hour", "region", "category", "currency")},
        headers={"Authorization": "Bearer wrong"},
    )
    assert r.status_code == 401


def test_openapi_documents_every_parameter(served: Served) -> None:
    spec = served.client.get("/openapi.json").json()
    params = {p["name"]: p for p in spec["paths"]["/v1/revenue/events"]["get"]["parameters"]}
    assert set(params) >= {"hour", "region", "category", "currency", "limit", "cursor", "format"}
    assert all(p.get("description") for p in params.values())


def test_a_stale_cursor_is_a_409(served: Served) -> None:
    row = max(served.hourly, key=lambda r: r["events"])
    cursor = Cursor.decode(_events(served.client, row, limit=2).json()["next_cursor"])
    assert cursor.run_id == served.run_id
    stale = replace(cursor, run_id="an-earlier-run").encode()
    r = _events(served.client, row, limit=2, cursor=stale)
    assert r.status_code == 409 and "start again" in r.json()["detail"]
