"""The batch writer lock (batch_layer.lock): the file lock on one machine, the Kubernetes Lease in a cluster.

The Lease is tested against a fake API server (FakeLeaseApi below) answering the
coordination.k8s.io/v1 lease endpoints with the API server's optimistic concurrency (resourceVersion,
409 Conflict): this suite has no API server, and the Lease's logic (create, wait, take over an
expired Lease, renew, release, notice a loss) is what is under test, not the HTTP transport.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from batch_layer.lock import ApiServer, FileLock, LeaseApiError, LeaseLock, LockTimeoutError

pytestmark = pytest.mark.unit

NS = "lambda"
LEASES = f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases"


class FakeLeaseApi(ThreadingHTTPServer):
    """The lease endpoints of an API server, in memory: GET, POST (409 if it exists) and PUT
    (409 unless the body's resourceVersion is the stored one), with a bumped resourceVersion per write."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.leases: dict[str, dict[str, Any]] = {}
        self.version = 0
        self.mutex = threading.Lock()
        self.writes: list[tuple[str, str]] = []  # (method, holderIdentity)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: FakeLeaseApi

    def log_message(self, *args: object) -> None:
        pass

    def _send(self, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        return json.loads(self.rfile.read(int(self.headers["Content-Length"])))  # type: ignore[no-any-return]

    def _name(self) -> str | None:
        if not self.path.startswith(LEASES + "/"):
            return None
        return self.path[len(LEASES) + 1 :]

    def do_GET(self) -> None:
        name = self._name()
        with self.server.mutex:
            lease = self.server.leases.get(name or "")
        if lease is None:
            self._send(404, {"kind": "Status", "reason": "NotFound", "message": f"leases {name!r} not found"})
        else:
            self._send(200, lease)

    def do_POST(self) -> None:
        if self.path != LEASES:
            self._send(404, {"message": "no such collection"})
            return
        body = self._body()
        name = body["metadata"]["name"]
        with self.server.mutex:
            if name in self.server.leases:
                self._send(409, {"reason": "AlreadyExists", "message": f"leases {name!r} already exists"})
                return
            self.server.version += 1
            body["metadata"]["resourceVersion"] = str(self.server.version)
            body["metadata"]["namespace"] = NS
            self.server.leases[name] = body
            self.server.writes.append(("POST", body["spec"].get("holderIdentity", "")))
        self._send(201, body)

    def do_PUT(self) -> None:
        name = self._name()
        body = self._body()
        with self.server.mutex:
            stored = self.server.leases.get(name or "")
            if stored is None:
                self._send(404, {"message": "not found"})
                return
            if body["metadata"].get("resourceVersion") != stored["metadata"]["resourceVersion"]:
                self._send(409, {"reason": "Conflict", "message": "the object has been modified"})
                return
            self.server.version += 1
            body["metadata"]["resourceVersion"] = str(self.server.version)
            self.server.leases[name or ""] = body
            self.server.writes.append(("PUT", body["spec"].get("holderIdentity", "")))
        self._send(200, body)


@pytest.fixture
def api() -> Iterator[FakeLeaseApi]:
    server = FakeLeaseApi()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def lease(api: FakeLeaseApi, holder: str, duration_s: int = 30, **kw: Any) -> LeaseLock:
    return LeaseLock(ApiServer(api.url, NS), "lambda-batch-writer", holder, duration_s, **kw)


def spec(api: FakeLeaseApi) -> dict[str, Any]:
    return api.leases["lambda-batch-writer"]["spec"]  # type: ignore[no-any-return]


# --- the file lock ---------------------------------------------------------------------------------


def test_a_second_file_lock_fails_after_its_timeout_naming_the_holder(tmp_path: Path) -> None:
    path = tmp_path / "locks" / "batch.lock"
    first = FileLock(path, "host-a pid 1 (lambda-batch run)")
    first.acquire(0)
    second = FileLock(path, "host-b pid 2 (lambda-batch ingest)")
    started = time.monotonic()
    with pytest.raises(LockTimeoutError, match=r"host-a pid 1 \(lambda-batch run\) since 20"):
        second.acquire(1.0)
    assert time.monotonic() - started >= 1.0
    first.release()
    second.acquire(0)
    assert "host-b pid 2" in path.read_text()
    second.release()


def test_a_waiting_file_lock_gets_it_when_the_holder_releases(tmp_path: Path) -> None:
    path = tmp_path / "batch.lock"
    first = FileLock(path, "first")
    first.acquire(0)
    threading.Timer(0.7, first.release).start()
    second = FileLock(path, "second")
    started = time.monotonic()
    second.acquire(30)
    assert 0.6 <= time.monotonic() - started < 10
    second.release()


def test_the_kernel_releases_the_file_lock_of_a_killed_holder(tmp_path: Path) -> None:
    path = tmp_path / "batch.lock"
    code = (
        "import sys, time; from pathlib import Path; from batch_layer.lock import FileLock; "
        f"lock = FileLock(Path({str(path)!r}), 'child'); lock.acquire(0); print('held', flush=True); time.sleep(600)"
    )
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        with pytest.raises(LockTimeoutError, match="child since"):
            FileLock(path, "parent").acquire(0)
    finally:
        child.kill()
        child.wait()
    mine = FileLock(path, "parent")
    mine.acquire(5)
    mine.release()


# --- the Lease -----------------------------------------------------------------------------------------


def test_the_first_writer_creates_the_lease_and_a_second_fails_naming_it(api: FakeLeaseApi) -> None:
    first = lease(api, "pod-a pid 7 (lambda-batch nightly)")
    first.acquire(0)
    try:
        assert spec(api)["holderIdentity"] == "pod-a pid 7 (lambda-batch nightly)"
        assert spec(api)["leaseDurationSeconds"] == 30
        with pytest.raises(LockTimeoutError, match=r"Lease lambda/lambda-batch-writer: pod-a pid 7"):
            lease(api, "pod-b").acquire(1.0)
    finally:
        first.release()
    assert spec(api)["holderIdentity"] == ""
    second = lease(api, "pod-b")
    second.acquire(0)
    assert spec(api)["holderIdentity"] == "pod-b"
    assert spec(api)["leaseTransitions"] == 1
    second.release()


def test_a_waiting_writer_gets_the_lease_when_the_holder_releases(api: FakeLeaseApi) -> None:
    first = lease(api, "pod-a")
    first.acquire(0)
    threading.Timer(0.7, first.release).start()
    second = lease(api, "pod-b")
    second.acquire(30)
    assert spec(api)["holderIdentity"] == "pod-b"
    second.release()


def test_an_expired_lease_is_taken_over(api: FakeLeaseApi) -> None:
    stale = datetime.now(UTC) - timedelta(seconds=120)
    api.version = 1
    api.leases["lambda-batch-writer"] = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "lambda-batch-writer", "resourceVersion": "1"},
        "spec": {
            "holderIdentity": "killed-pod",
            "leaseDurationSeconds": 60,
            "renewTime": stale.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "leaseTransitions": 4,
        },
    }
    mine = lease(api, "pod-b")
    mine.acquire(0)
    assert spec(api)["holderIdentity"] == "pod-b"
    assert spec(api)["leaseTransitions"] == 5
    mine.release()


def test_only_one_of_two_racing_writers_wins(api: FakeLeaseApi) -> None:
    locks = [lease(api, f"pod-{i}") for i in range(2)]
    outcomes: dict[int, str] = {}

    def take(i: int) -> None:
        try:
            locks[i].acquire(0.3)
            outcomes[i] = "held"
        except LockTimeoutError:
            outcomes[i] = "refused"

    threads = [threading.Thread(target=take, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes.values()) == ["held", "refused"]
    winner = next(i for i, o in outcomes.items() if o == "held")
    assert spec(api)["holderIdentity"] == f"pod-{winner}"
    locks[winner].release()


def test_the_holder_renews_and_notices_when_it_lost_the_lease(api: FakeLeaseApi) -> None:
    lost = threading.Event()
    mine = lease(api, "pod-a", duration_s=3, on_lost=lost.set)  # renews every second
    mine.acquire(0)
    first_renewal = spec(api)["renewTime"]
    deadline = time.monotonic() + 10
    while spec(api)["renewTime"] == first_renewal and time.monotonic() < deadline:
        time.sleep(0.1)
    assert spec(api)["renewTime"] > first_renewal, "the holder never renewed its Lease"
    with api.mutex:  # another writer takes it (as after a partition longer than the lease)
        spec(api)["holderIdentity"] = "pod-b"
        api.version += 1
        api.leases["lambda-batch-writer"]["metadata"]["resourceVersion"] = str(api.version)
    assert lost.wait(10), "the holder did not notice it lost the Lease"
    mine.release()
    assert spec(api)["holderIdentity"] == "pod-b", "a writer that lost the Lease must not release it"


def test_a_forbidden_lease_fails_at_once_with_the_api_servers_words(api: FakeLeaseApi) -> None:
    wrong_namespace = LeaseLock(ApiServer(api.url, "elsewhere"), "lambda-batch-writer", "pod-a", 30)
    started = time.monotonic()
    with pytest.raises(LeaseApiError, match="create answered 404"):
        wrong_namespace.acquire(30)
    assert time.monotonic() - started < 5


def test_in_cluster_without_a_service_account_says_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(LeaseApiError, match="KUBERNETES_SERVICE_HOST"):
        ApiServer.in_cluster(tmp_path)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    with pytest.raises(LeaseApiError, match="automountServiceAccountToken"):
        ApiServer.in_cluster(tmp_path)
