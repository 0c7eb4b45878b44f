"""The dashboard publisher against a recording stand-in for Grafana's HTTP API.

No Grafana server can run on this machine (no package in the registries it reaches ships one),
so a small local HTTP server plays Grafana: it stores datasources, folders and dashboards the way
Grafana's API does, records every request, and checks authentication.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from grafana_client import GrafanaApi

from lambda_tools import grafana

pytestmark = pytest.mark.unit

TOKEN = "glsa_test_token_0123456789"


class FakeGrafana:
    def __init__(self) -> None:
        self.datasources: dict[str, dict[str, Any]] = {}
        self.folders: dict[str, dict[str, Any]] = {}
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, dict[str, Any] | None]] = []

    def handle(self, method: str, path: str, body: dict[str, Any] | None) -> tuple[int, Any]:
        self.requests.append((method, path, body))
        parts = path.strip("/").split("/")
        if parts[:3] == ["api", "datasources", "uid"] and method == "GET":
            ds = self.datasources.get(parts[3])
            return (200, ds) if ds else (404, {"message": "Data source not found"})
        if parts[:3] == ["api", "datasources", "uid"] and method == "PUT":
            assert body is not None
            self.datasources[parts[3]] = {k: v for k, v in body.items() if k != "secureJsonData"} | {"id": 1}
            return 200, {"message": "Datasource updated"}
        if parts == ["api", "datasources"] and method == "POST":
            assert body is not None
            if body["uid"] in self.datasources:
                return 409, {"message": "data source with the same uid already exists"}
            self.datasources[body["uid"]] = {k: v for k, v in body.items() if k != "secureJsonData"} | {
                "id": 1
            }
            return 200, {"message": "Datasource added"}
        if parts[:2] == ["api", "folders"] and method == "GET" and len(parts) == 3:
            f = self.folders.get(parts[2])
            return (200, f) if f else (404, {"message": "folder not found"})
        if parts == ["api", "folders"] and method == "POST":
            assert body is not None
            self.folders[body["uid"]] = {"uid": body["uid"], "title": body["title"]}
            return 200, self.folders[body["uid"]]
        if parts[:3] == ["api", "dashboards", "uid"] and method == "GET":
            d = self.dashboards.get(parts[3])
            return (200, d) if d else (404, {"message": "Dashboard not found"})
        if parts == ["api", "dashboards", "db"] and method == "POST":
            assert body is not None
            dash = body["dashboard"]
            if dash.get("id") is not None:
                return 400, {"message": "id must be null for a create-or-update by uid"}
            version = self.dashboards.get(dash["uid"], {}).get("dashboard", {}).get("version", 0) + 1
            self.dashboards[dash["uid"]] = {
                "dashboard": dash | {"id": 7, "version": version},
                "meta": {"folderUid": body.get("folderUid")},
            }
            return 200, {"status": "success", "uid": dash["uid"], "version": version}
        return 404, {"message": f"no route {method} {path}"}


@pytest.fixture
def fake() -> Iterator[tuple[FakeGrafana, str]]:
    state = FakeGrafana()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                status, payload = 401, {"message": "Unauthorized"}
            else:
                status, payload = state.handle(self.command, self.path, body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = _serve  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def _sources(token: str | None = None) -> list[dict[str, Any]]:
    return grafana.datasources("http://prometheus:9090", "http://serving:8000", token)


def test_first_publish_creates_everything(fake: tuple[FakeGrafana, str]) -> None:
    state, url = fake
    report = grafana.publish(
        GrafanaApi.from_url(url, credential=TOKEN), grafana.load_dashboards(), _sources()
    )
    dashboards = grafana.load_dashboards()
    assert len(dashboards) >= 2
    assert set(state.dashboards) == {d["uid"] for d in dashboards}
    assert set(state.datasources) == {"lambda-prometheus", "lambda-api"}
    assert state.folders == {"lambda": {"uid": "lambda", "title": "Lambda platform"}}
    assert all(d["meta"]["folderUid"] == "lambda" for d in state.dashboards.values())
    assert len(report.created) == len(dashboards) + 3 and not report.updated


def test_publishing_twice_writes_nothing_the_second_time(fake: tuple[FakeGrafana, str]) -> None:
    state, url = fake
    api = GrafanaApi.from_url(url, credential=TOKEN)
    grafana.publish(api, grafana.load_dashboards(), _sources())
    state.requests.clear()
    report = grafana.publish(api, grafana.load_dashboards(), _sources())
    assert [m for m, _, _ in state.requests] == ["GET"] * len(state.requests)
    assert not report.created and not report.updated


def test_a_changed_dashboard_is_updated_in_place(fake: tuple[FakeGrafana, str]) -> None:
    state, url = fake
    api = GrafanaApi.from_url(url, credential=TOKEN)
    grafana.publish(api, grafana.load_dashboards(), _sources())
    changed = grafana.load_dashboards()
    changed[0]["title"] += " (v2)"
    report = grafana.publish(api, changed, _sources())
    assert report.updated == [f"dashboard {changed[0]['uid']}"]
    assert state.dashboards[changed[0]["uid"]]["dashboard"]["version"] == 2


def test_an_api_token_is_always_sent_since_it_cannot_be_read_back(fake: tuple[FakeGrafana, str]) -> None:
    state, url = fake
    api = GrafanaApi.from_url(url, credential=TOKEN)
    grafana.publish(api, [], _sources("serving-token-for-grafana"))
    state.requests.clear()
    grafana.publish(api, [], _sources("serving-token-for-grafana"))
    puts = [(p, b) for m, p, b in state.requests if m == "PUT"]
    assert [p for p, _ in puts] == ["/api/datasources/uid/lambda-api"]
    assert puts[0][1] is not None and puts[0][1]["secureJsonData"] == {
        "bearerToken": "serving-token-for-grafana"
    }


def test_a_bad_token_fails_with_grafanas_answer(fake: tuple[FakeGrafana, str]) -> None:
    _, url = fake
    with pytest.raises(grafana.PublishError, match="Unauthorized"):
        grafana.publish(GrafanaApi.from_url(url, credential="wrong"), grafana.load_dashboards(), _sources())


def test_the_cli_refuses_missing_token_and_bad_urls(
    monkeypatch: pytest.MonkeyPatch, fake: tuple[FakeGrafana, str]
) -> None:
    _, url = fake
    monkeypatch.delenv("LAMBDA_GRAFANA_TOKEN", raising=False)
    args = ["publish", "--url", url, "--prometheus-url", "http://p:9090", "--api-url", "http://s:8000"]
    assert grafana.main(args) == 2
    monkeypatch.setenv("LAMBDA_GRAFANA_TOKEN", TOKEN)
    assert grafana.main([*args[:-1], "serving:8000"]) == 2
    assert grafana.main(args) == 0
