"""The events route in the states a recompute passes through, on Delta tables written here with
delta-rs in the recompute's layout (the states last seconds in a real run, so they are set up, not
caught): a rerun between its silver and manifest commits is a 503, never a mix of two runs; a
date computed before silver existed is a 404 that says how to get its events; an hour with no
events of the key is an empty, labelled answer."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from conftest import make_client
from deltalake import write_deltalake
from fastapi.testclient import TestClient

from lambda_contract.settings import Settings
from lambda_contract.tables import MANIFEST, SILVER
from lambda_contract.windows import hour_label, hours_of_date
from lambda_testkit.views import arrow_schema

pytestmark = pytest.mark.integration

HOUR = datetime(2026, 11, 20, 13, tzinfo=UTC)
QUERY = {"hour": hour_label(HOUR), "region": "eu-west", "category": "books", "currency": "EUR"}


def write_manifest(settings: Settings, run_id: str, input_rows: int) -> None:
    rows = [
        {"date": h.date(), "hour": h, "computed": True, "run_id": run_id, "bronze_version": 1,
         "input_rows": input_rows if h == HOUR else 0, "valid": 0, "duplicates": 0, "quarantined": 0,
         "arrived_after_previous_run": 0, "computed_at": datetime.now(UTC)}
        for h in hours_of_date(HOUR.date())
    ]  # fmt: skip
    data = pa.Table.from_pylist(rows, schema=arrow_schema(MANIFEST))
    write_deltalake(settings.delta_table_url(MANIFEST.name), data, mode="overwrite")


def write_silver(settings: Settings, run_id: str, region: str = "eu-west", n: int = 3) -> None:
    rows: list[dict[str, Any]] = [
        {"date": HOUR.date(), "hour_of_day": HOUR.hour, "hour": HOUR, "region": region, "category": "books",
         "currency": "EUR", "event_type": "purchase", "amount": Decimal("1.2500"), "counted": True,
         "reason": None, "event_id": f"e{i}", "event_time": HOUR + timedelta(seconds=i), "kafka_partition": 0,
         "kafka_offset": i, "run_id": run_id}
        for i in range(n)
    ]  # fmt: skip
    data = pa.Table.from_pylist(rows, schema=arrow_schema(SILVER))
    write_deltalake(
        settings.delta_table_url(SILVER.name), data, mode="overwrite", partition_by=list(SILVER.partition_by)
    )


@pytest.fixture
def api(settings: Settings) -> Iterator[TestClient]:
    with make_client(settings, now=HOUR + timedelta(days=2)) as client:
        yield client


def test_the_manifests_run_is_served(settings: Settings, api: TestClient) -> None:
    write_silver(settings, "run-a")
    write_manifest(settings, "run-a", 3)
    doc = api.get("/v1/revenue/events", params=QUERY).json()
    assert doc["status"] == "final" and len(doc["events"]) == 3
    assert doc["totals"] == {"revenue": "3.7500", "orders": 3, "refunds": 0, "events": 3}


def test_a_rerun_between_its_silver_and_manifest_commits_is_a_503(
    settings: Settings, api: TestClient
) -> None:
    write_manifest(settings, "run-a", 3)
    write_silver(settings, "run-b")  # the rerun's silver commit; its manifest commit has not come yet
    r = api.get("/v1/revenue/events", params=QUERY)
    assert r.status_code == 503 and r.headers["retry-after"] == "60"
    assert r.json()["error"] == "recomputing" and "run-b" in r.json()["detail"]
    write_silver(settings, "run-b", region="us-east")  # the same while the key has no rows of the rerun
    assert api.get("/v1/revenue/events", params=QUERY).status_code == 503
    write_manifest(settings, "run-b", 3)
    assert api.get("/v1/revenue/events", params=QUERY | {"region": "us-east"}).status_code == 200


def test_a_date_computed_before_silver_existed_says_how_to_get_its_events(
    settings: Settings, api: TestClient
) -> None:
    write_manifest(settings, "run-a", 5)
    r = api.get("/v1/revenue/events", params=QUERY)
    assert r.status_code == 404 and "lambda-batch run --date 2026-11-20" in r.json()["detail"]


def test_a_key_without_events_in_a_final_hour_is_an_empty_labelled_answer(
    settings: Settings, api: TestClient
) -> None:
    write_silver(settings, "run-a", region="us-east")
    write_manifest(settings, "run-a", 3)
    doc = api.get("/v1/revenue/events", params=QUERY).json()
    assert (doc["status"], doc["events"], doc["next_cursor"]) == ("final", [], None)
    assert doc["totals"] == {"revenue": "0.0000", "orders": 0, "refunds": 0, "events": 0}


def test_before_any_batch_run_the_hour_is_not_final(api: TestClient, tmp_path: Path) -> None:
    r = api.get("/v1/revenue/events", params=QUERY)
    assert r.status_code == 404 and r.json()["error"] == "not_final"
