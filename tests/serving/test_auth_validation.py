"""Auth and validation through HTTP: 401 before anything is read, 400 with a clear message."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import make_client
from fastapi.testclient import TestClient
from serving_support import OTHER_TOKEN, TOKEN, make_settings

from serving_layer.auth import token_valid
from serving_layer.params import HOURLY_PARAMS

pytestmark = pytest.mark.unit  # nothing here reaches Redis: requests stop at auth or validation

URL = "/v1/revenue/hourly?start=2026-11-20T00:00:00Z&end=2026-11-20T01:00:00Z"


@pytest.fixture
def anon(tmp_path: Path) -> Iterator[TestClient]:
    with make_client(make_settings(tmp_path, os.environ)) as c:
        c.headers.pop("Authorization")
        yield c


@pytest.mark.parametrize("path", [URL, "/v1/status"])
@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer",
        "Bearer ",
        f"Basic {TOKEN}",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        "Bearer " + "a" * 40,
    ],
)
def test_v1_needs_a_valid_bearer_token(anon: TestClient, path: str, header: str | None) -> None:
    res = anon.get(path, headers={"Authorization": header} if header is not None else {})
    assert res.status_code == 401
    assert res.headers["www-authenticate"] == "Bearer"
    assert res.json()["error"] == "unauthorized"


def test_probes_docs_and_dashboard_are_open(anon: TestClient) -> None:
    for path in ("/healthz", "/docs", "/openapi.json", "/", "/static/app.js"):
        assert anon.get(path).status_code == 200, path


def test_every_configured_token_is_accepted_for_validation(anon: TestClient) -> None:
    for token in (TOKEN, OTHER_TOKEN):
        res = anon.get(URL.replace("01:00", "00:30"), headers={"Authorization": f"Bearer {token}"})
        assert res.status_code == 400  # passed auth, stopped at validation


def test_no_configured_tokens_means_no_access(tmp_path: Path) -> None:
    with make_client(make_settings(tmp_path, os.environ, LAMBDA_API_TOKENS="")) as c:
        assert c.get(URL).status_code == 401


def test_token_comparison() -> None:
    assert token_valid(TOKEN, (OTHER_TOKEN, TOKEN))
    assert not token_valid(TOKEN, ())
    assert not token_valid("", (TOKEN,))
    assert not token_valid("é" * 20, (TOKEN,))


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("start=2026-11-20T00:00:00Z", "start and end are required"),
        ("start=2026-11-20&end=2026-11-21", "not an RFC 3339"),
        ("start=2026-11-20T00:15:00Z&end=2026-11-21T00:00:00Z", "hour boundary"),
        ("start=2026-11-21T00:00:00Z&end=2026-11-20T00:00:00Z", "must be after start"),
        ("start=2026-10-01T00:00:00Z&end=2026-11-20T00:00:00Z", "at most 31 days"),
        ("start=2026-11-20T00:00:00Z&end=2026-11-21T00:00:00Z&group_by=country", "unknown field"),
        ("start=2026-11-20T00:00:00Z&end=2026-11-21T00:00:00Z&currency=ZZZ", "unknown currency"),
        ("start=2026-11-20T00:00:00Z&end=2026-11-21T00:00:00Z&region=eu*", "does not match"),
        ("start=2026-11-20T00:00:00Z&end=2026-11-21T00:00:00Z&category=%0A", "does not match"),
    ],
)
def test_bad_parameters_get_400_with_a_message(tmp_path: Path, query: str, message: str) -> None:
    with make_client(make_settings(tmp_path, os.environ)) as c:
        res = c.get(f"/v1/revenue/hourly?{query}")
    assert res.status_code == 400
    assert res.json()["error"] == "bad_request" and message in res.json()["detail"]


def test_cors_is_closed_by_default_and_opens_only_to_configured_origins(tmp_path: Path) -> None:
    with make_client(make_settings(tmp_path, os.environ)) as c:
        res = c.get("/healthz", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in res.headers
    with make_client(make_settings(tmp_path, os.environ, LAMBDA_CORS_ORIGINS="https://ok.example")) as c:
        assert (
            c.get("/healthz", headers={"Origin": "https://ok.example"}).headers["access-control-allow-origin"]
            == "https://ok.example"
        )
        assert (
            "access-control-allow-origin"
            not in c.get("/healthz", headers={"Origin": "https://x.example"}).headers
        )


def test_redis_down_marks_the_speed_hours_unavailable_not_a_crash(tmp_path: Path) -> None:
    """More in test_redis_down.py: batch-final hours are still served and the pod stays ready."""
    settings = make_settings(tmp_path, os.environ, LAMBDA_REDIS_URL="redis://127.0.0.1:1/0")
    with make_client(settings) as c:
        res = c.get(URL)
        assert res.status_code == 200 and {r["status"] for r in res.json()["rows"]} == {"unavailable"}
        assert c.get("/readyz").json()["redis"] == "down"
        assert c.get("/healthz").status_code == 200
        status = c.get("/v1/status").json()
        assert status["speed"]["reachable"] is False


def test_openapi_declares_every_hourly_parameter(anon: TestClient) -> None:
    op = anon.get("/openapi.json").json()["paths"]["/v1/revenue/hourly"]["get"]
    params = {p["name"]: p for p in op["parameters"]}
    assert tuple(params) == HOURLY_PARAMS
    assert {n for n, p in params.items() if p["required"]} == {"start", "end"}
    assert all(p["in"] == "query" and len(p["description"]) > 20 for p in params.values())
    assert params["currency"]["schema"]["default"] == "USD"
    assert op["security"] == [{"HTTPBearer": []}]


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("end=2026-11-21T00:00:00Z", "start and end are required"),
        ("", "start and end are required"),
        ("start=2026-11-20T00:00:00Z&end=2026-11-21T00:00:00Z&groupby=region", "unknown parameter 'groupby'"),
        (
            "start=2026-11-20T00:00:00Z&end=2026-11-21T00:00:00Z&region=eu-west&region=us-east",
            "region is given more than once",
        ),
    ],
)
def test_missing_unknown_and_repeated_parameters_get_400_too(
    anon: TestClient, query: str, message: str
) -> None:
    res = anon.get(f"/v1/revenue/hourly?{query}", headers={"Authorization": f"Bearer {TOKEN}"})
    assert res.status_code == 400
    assert res.json()["error"] == "bad_request" and message in res.json()["detail"]
    assert anon.get(f"/v1/revenue/hourly?{query}").status_code == 401  # the token is checked first
