"""The batch writer Lease against a real kube-apiserver (the one `make setup` builds, with etcd, as
local processes on private ports; lambda_tools.k8s_apiserver): the real coordination.k8s.io/v1
endpoints, their validation of the Lease (MicroTime, field types) and their optimistic concurrency.

It authenticates with the API server's admin token, not a pod's service account token (no pod runs
without a kubelet); the Role that grants the service account the Lease is applied by
tests/k8s/test_k8s_apiserver.py with the overlays.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from batch_layer.lock import ApiServer, LeaseLock, LockTimeoutError
from lambda_testkit.sandbox import free_port
from lambda_tools import k8s_apiserver
from lambda_tools.k8s_apiserver import Layout

pytestmark = pytest.mark.integration

LEASES = "/apis/coordination.k8s.io/v1/namespaces/default/leases"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    for name in k8s_apiserver.BINARIES:
        if not k8s_apiserver.binary(name).exists():
            pytest.fail(f"{k8s_apiserver.binary(name)} is missing: run `make setup`")
    layout = Layout(Path(tmp_path_factory.mktemp("k8s-state")), free_port(), free_port(), free_port())
    try:
        layout.root.mkdir(parents=True, exist_ok=True)
        token = k8s_apiserver.ensure_pki(layout)
        k8s_apiserver.start_etcd(layout)
        k8s_apiserver.start_apiserver(layout, token)
        context = ssl.create_default_context(cafile=str(layout.pki / "ca.crt"))
        yield ApiServer(layout.server, "default", token, context)
    finally:
        k8s_apiserver.down(layout)


def lease(api: ApiServer, name: str, holder: str, duration_s: int = 30) -> LeaseLock:
    return LeaseLock(api, name, holder, duration_s)


def spec(api: ApiServer, name: str) -> dict[str, object]:
    status, body = api.request("GET", f"{LEASES}/{name}")
    assert status == 200, body
    return body["spec"]  # type: ignore[no-any-return]


def test_a_second_writer_waits_then_fails_naming_the_holder_and_gets_it_after_release(api: ApiServer) -> None:
    first = lease(api, "writer-a", "pod-a pid 7 (lambda-batch nightly)")
    first.acquire(0)
    try:
        stored = spec(api, "writer-a")
        assert stored["holderIdentity"] == "pod-a pid 7 (lambda-batch nightly)"
        assert stored["leaseDurationSeconds"] == 30
        with pytest.raises(
            LockTimeoutError, match=r"Lease default/writer-a: pod-a pid 7 \(lambda-batch nightly\)"
        ):
            lease(api, "writer-a", "pod-b").acquire(1.0)
    finally:
        first.release()
    assert spec(api, "writer-a")["holderIdentity"] in ("", None)
    second = lease(api, "writer-a", "pod-b")
    second.acquire(0)
    assert spec(api, "writer-a")["holderIdentity"] == "pod-b"
    assert spec(api, "writer-a")["leaseTransitions"] == 1
    second.release()


def test_an_expired_lease_is_taken_over(api: ApiServer) -> None:
    stale = (datetime.now(UTC) - timedelta(seconds=600)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    status, body = api.request(
        "POST",
        LEASES,
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "writer-b"},
            "spec": {"holderIdentity": "killed-pod", "leaseDurationSeconds": 60, "renewTime": stale},
        },
    )
    assert status == 201, body
    mine = lease(api, "writer-b", "pod-c")
    mine.acquire(0)
    assert spec(api, "writer-b")["holderIdentity"] == "pod-c"
    mine.release()


def test_only_one_of_two_racing_writers_wins(api: ApiServer) -> None:
    locks = [lease(api, "writer-c", f"pod-{i}") for i in range(2)]
    outcomes: dict[int, str] = {}

    def take(i: int) -> None:
        try:
            locks[i].acquire(0.5)
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
    assert spec(api, "writer-c")["holderIdentity"] == f"pod-{winner}"
    locks[winner].release()


def test_the_holder_renews_its_lease(api: ApiServer) -> None:
    mine = lease(api, "writer-d", "pod-a", duration_s=3)  # renews every second
    mine.acquire(0)
    try:
        first = str(spec(api, "writer-d")["renewTime"])
        renewed = threading.Event()
        for _ in range(100):
            if str(spec(api, "writer-d")["renewTime"]) > first:
                renewed.set()
                break
            threading.Event().wait(0.1)
        assert renewed.is_set(), "the holder never renewed its Lease"
        assert not mine.lost
    finally:
        mine.release()
