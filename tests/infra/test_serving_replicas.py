"""The serving replicas of cluster mode (lambda_tools.cluster.serving, `make serve CLUSTER=1`) are
real `lambda-serve` processes managed like the cluster's other nodes: recorded under serving-1 and
serving-2, started only when missing (a killed one comes back alone), ready on /readyz, behind the
token. Ports are free ones instead of the reserved 8000/8001 so a running cluster is left alone;
that both replicas give the same answers on real data is tests/cluster's story."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lambda_contract.settings import Settings
from lambda_testkit.processes import wait_until
from lambda_testkit.sandbox import free_port
from lambda_tools import services
from lambda_tools.cluster import PROCESSES, serving

pytestmark = pytest.mark.integration

TOKEN = "replicas-test-token-0123456789"


def get(url: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return int(resp.status), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture
def replicas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Settings, dict[str, str]]]:
    monkeypatch.setattr(serving, "PORTS", {name: free_port() for name in PROCESSES["serving"]})
    env = (
        dict(os.environ)
        | {
            "LAMBDA_STATE_DIR": str(tmp_path / "state"),
            "LAMBDA_DELTA_ROOT": str(tmp_path / "delta"),  # no gold yet: ready, every hour empty
            "LAMBDA_REDIS_PREFIX": f"replicas-{uuid.uuid4().hex[:8]}",
            "LAMBDA_API_TOKENS": TOKEN,
        }
    )
    settings = Settings.from_env(env)
    yield settings, env
    for name in serving.PORTS:
        pid = services.running_pid(settings.state_path, name)
        if pid is not None:
            services.stop_pid(pid)


def test_replicas_start_once_come_back_alone_and_answer_alike(
    replicas: tuple[Settings, dict[str, str]],
) -> None:
    settings, env = replicas
    state = settings.state_path
    assert serving.start(settings, state, env) == ["serving-1", "serving-2"]
    pids = {name: services.running_pid(state, name) for name in serving.PORTS}
    assert all(pids.values()), pids
    urls = serving.urls()
    for url in urls.values():
        assert get(f"{url}/readyz")[0] == 200

    assert serving.start(settings, state, env) == []  # idempotent: nothing started twice
    assert {name: services.running_pid(state, name) for name in serving.PORTS} == pids

    killed = pids["serving-2"]
    assert killed is not None
    os.kill(killed, signal.SIGKILL)
    assert wait_until(lambda: services.running_pid(state, "serving-2") is None, 10, 0.1)
    began = time.monotonic()
    assert serving.start(settings, state, env) == ["serving-2"]
    print(
        f"serving-2 SIGKILLed, back and ready on /readyz in {time.monotonic() - began:.1f} s"
    )  # docs/cluster.md
    assert services.running_pid(state, "serving-1") == pids["serving-1"]

    path = "/v1/revenue/hourly?start=2026-01-01T00:00:00Z&end=2026-01-01T03:00:00Z&group_by=region"
    answers = [get(url + path, TOKEN) for url in urls.values()]
    assert [code for code, _ in answers] == [200, 200], answers
    bodies = [json.loads(body) for _, body in answers]
    assert bodies[0] == bodies[1]
    assert all(get(url + path)[0] == 401 for url in urls.values())  # the token is required


def test_a_port_taken_by_another_process_is_a_clear_error(replicas: tuple[Settings, dict[str, str]]) -> None:
    settings, env = replicas
    with socket.socket() as foreign:
        foreign.bind(("127.0.0.1", serving.PORTS["serving-1"]))
        foreign.listen()
        with pytest.raises(
            services.ServiceError, match=r"serving-1: port .* taken by a process this project did not start"
        ):
            serving.start(settings, settings.state_path, env)
    assert services.running_pid(settings.state_path, "serving-1") is None


def test_the_local_token_is_made_once_and_kept_private(tmp_path: Path) -> None:
    settings = Settings.from_env({"LAMBDA_STATE_DIR": str(tmp_path), "LAMBDA_API_TOKENS": ""})
    token = serving.api_token(settings)
    path = tmp_path / "secrets" / "api-token"
    assert len(token) >= 32 and path.read_text().strip() == token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert serving.api_token(settings) == token
    assert (
        serving.api_token(Settings.from_env({"LAMBDA_API_TOKENS": "given-token-0123456789"}))
        == "given-token-0123456789"
    )
