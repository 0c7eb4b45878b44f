"""One writer at a time for the Delta tables: every `lambda-batch` command that writes holds this lock.

Delta's optimistic concurrency makes two writers safe only where the log store's commit is atomic
and both writers' work can be reconciled; ingest shares one bronze checkpoint, the recompute
replaces gold partitions, VACUUM deletes files others may still read. So ingest, recompute,
maintenance and backfills never overlap: they take one lock keyed by the Delta root.

- In a cluster: a coordination.k8s.io/v1 `Lease` through the API server with the pod's service
  account (plain HTTPS and the mounted token; no client library). The holder renews it every third
  of its duration; a Lease not renewed for its duration (a killed pod) is taken over.
- On one machine: an fcntl lock on <state>/locks/batch-<hash of the Delta root>.lock, released by
  the kernel when the holder exits, however it exits.

A second writer waits up to LAMBDA_BATCH_LOCK_TIMEOUT_S, then fails with LockTimeoutError naming
the holder (host, pid, command, since when).
"""

from __future__ import annotations

import _thread
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import socket
import ssl
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Protocol

from lambda_contract.settings import Settings

log = logging.getLogger(__name__)

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
POLL_S = 0.5


class LockTimeoutError(RuntimeError):
    """Another writer held the lock for longer than the caller would wait; the message names it."""


class LeaseApiError(RuntimeError):
    """The API server refused or failed a Lease request in a way waiting cannot fix (e.g. 403)."""


class WriterLock(Protocol):
    def acquire(self, timeout_s: float) -> None: ...
    def release(self) -> None: ...


def identity(command: str) -> str:
    """Who holds the lock, as a second writer's error message shows it."""
    return f"{socket.gethostname()} pid {os.getpid()} ({command})"


def _now() -> datetime:
    return datetime.now(UTC)


class FileLock:
    """fcntl lock on a file under the state dir; the holder's identity is written into it."""

    def __init__(self, path: Path, holder: str) -> None:
        self.path = path
        self.holder = holder
        self._file: IO[str] | None = None

    def acquire(self, timeout_s: float) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = self.path.open("a+")
        deadline = time.monotonic() + timeout_s
        announced = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = self._holder(handle)
                if time.monotonic() >= deadline:
                    handle.close()
                    raise LockTimeoutError(
                        f"another batch writer holds {self.path}: {holder}; waited {timeout_s:.0f} s "
                        "(LAMBDA_BATCH_LOCK_TIMEOUT_S)"
                    ) from None
                if not announced:
                    log.info("waiting for the batch writer lock %s, held by %s", self.path, holder)
                    announced = True
                time.sleep(POLL_S)
        handle.seek(0)
        handle.truncate()
        handle.write(f"{self.holder} since {_now().isoformat(timespec='seconds')}\n")
        handle.flush()
        self._file = handle

    @staticmethod
    def _holder(handle: IO[str]) -> str:
        handle.seek(0)
        return handle.read().strip() or "unknown holder"

    def release(self) -> None:
        if self._file is not None:
            self._file.seek(0)
            self._file.truncate()
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def _micro_time(value: datetime) -> str:
    """Kubernetes MicroTime: RFC 3339 with microseconds, in UTC."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class ApiServer:
    """Where and how to reach the API server: the pod's service account, or a test's fake."""

    base_url: str
    namespace: str
    token: str | None = None
    context: ssl.SSLContext | None = None

    @classmethod
    def in_cluster(cls, sa_dir: Path = SERVICE_ACCOUNT_DIR) -> ApiServer:
        host = os.environ.get("KUBERNETES_SERVICE_HOST")
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        if not host:
            raise LeaseApiError("LAMBDA_BATCH_LOCK=lease needs KUBERNETES_SERVICE_HOST (run inside a pod)")
        try:
            token = (sa_dir / "token").read_text().strip()
            namespace = (sa_dir / "namespace").read_text().strip()
        except OSError as exc:
            raise LeaseApiError(
                f"no service account token in {sa_dir} ({exc.strerror}): the pod needs "
                "automountServiceAccountToken and a Role allowing leases get/create/update"
            ) from None
        context = ssl.create_default_context(cafile=str(sa_dir / "ca.crt"))
        host = f"[{host}]" if ":" in host else host
        return cls(f"https://{host}:{port}", namespace, token, context)

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        data = json.dumps(body).encode() if body is not None else None
        if not self.base_url.startswith(("https://", "http://")):
            raise LeaseApiError(f"the API server URL must be http(s), got {self.base_url!r}")
        req = urllib.request.Request(self.base_url + path, data=data, method=method)  # noqa: S310 (checked above)
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token:
            req.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(req, timeout=10, context=self.context) as resp:  # noqa: S310 (checked above)
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                payload = json.loads(exc.read() or b"{}")
            except ValueError:
                payload = {}
            return exc.code, payload


class LeaseLock:
    """A coordination.k8s.io/v1 Lease: create or take over when free or expired, renew while held.

    Every write carries the resourceVersion it read, so two writers racing for a free Lease cannot
    both win: the API server answers the later one 409 Conflict and it reads again.
    """

    def __init__(
        self,
        api: ApiServer,
        name: str,
        holder: str,
        duration_s: int,
        *,
        on_lost: Callable[[], None] | None = None,
    ) -> None:
        self.api = api
        self.name = name
        self.holder = holder
        self.duration_s = duration_s
        self.on_lost = on_lost or _thread.interrupt_main
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self.lost = False

    @property
    def _collection(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.api.namespace}/leases"

    def _spec(self, transitions: int, acquired: datetime) -> dict[str, Any]:
        now = _now()
        return {
            "holderIdentity": self.holder,
            "leaseDurationSeconds": self.duration_s,
            "acquireTime": _micro_time(acquired),
            "renewTime": _micro_time(now),
            "leaseTransitions": transitions,
        }

    def _check(self, status: int, body: dict[str, Any], what: str) -> None:
        if status in (400, 401, 403, 404, 422):
            raise LeaseApiError(
                f"Lease {self.api.namespace}/{self.name}: {what} answered {status}: "
                f"{body.get('message', body)}"
            )

    def _try(self) -> str | None:
        """Take the Lease if it is free; None when taken, else who holds it."""
        status, lease = self.api.request("GET", f"{self._collection}/{self.name}")
        if status == 404:
            body = {
                "apiVersion": "coordination.k8s.io/v1",
                "kind": "Lease",
                "metadata": {"name": self.name, "labels": {"app.kubernetes.io/name": "lambda-batch"}},
                "spec": self._spec(0, _now()),
            }
            status, answer = self.api.request("POST", self._collection, body)
            if status in (200, 201):
                return None
            self._check(status, answer, "create")
            return "a writer that created it first"
        self._check(status, lease, "get")
        if status != 200:
            return f"unknown (API answered {status})"
        spec = lease.get("spec", {})
        holder = spec.get("holderIdentity") or ""
        renewed = _parse_time(spec.get("renewTime")) or _parse_time(spec.get("acquireTime"))
        duration = int(spec.get("leaseDurationSeconds") or self.duration_s)
        expired = renewed is None or (_now() - renewed).total_seconds() > duration
        if holder and holder != self.holder and not expired:
            return f"{holder} (renewed {spec.get('renewTime')}, lease {duration} s)"
        if holder and holder != self.holder:
            log.warning("taking over Lease %s: %s did not renew it for %d s", self.name, holder, duration)
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if holder == self.holder else 1)
        lease["spec"] = self._spec(transitions, _now())
        status, answer = self.api.request("PUT", f"{self._collection}/{self.name}", lease)
        if status == 200:
            return None
        self._check(status, answer, "update")
        return holder or "a writer that took it first"

    def acquire(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        announced = False
        while True:
            holder = self._try()
            if holder is None:
                break
            if time.monotonic() >= deadline:
                raise LockTimeoutError(
                    f"another batch writer holds Lease {self.api.namespace}/{self.name}: {holder}; "
                    f"waited {timeout_s:.0f} s (LAMBDA_BATCH_LOCK_TIMEOUT_S)"
                )
            if not announced:
                log.info("waiting for Lease %s/%s, held by %s", self.api.namespace, self.name, holder)
                announced = True
            time.sleep(POLL_S)
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew_loop, name="lease-renewer", daemon=True)
        self._renewer.start()

    def renew(self) -> bool:
        """One renewal; False when the Lease is no longer ours (a 5xx or 429 is retried next period)."""
        path = f"{self._collection}/{self.name}"
        for _ in range(3):  # a 409 means someone wrote in between: read again
            status, lease = self.api.request("GET", path)
            if status >= 500 or status == 429:
                return True
            if status != 200 or lease.get("spec", {}).get("holderIdentity") != self.holder:
                return False
            lease["spec"]["renewTime"] = _micro_time(_now())
            status, _ = self.api.request("PUT", path, lease)
            if status != 409:
                return True
        return True

    def _renew_loop(self) -> None:
        period = self.duration_s / 3
        while not self._stop.wait(period):
            try:
                ok = self.renew()
            except OSError as exc:  # API server unreachable: the next period tries again
                log.warning("could not renew Lease %s: %s", self.name, exc)
                continue
            if not ok:
                self.lost = True
                log.error("Lease %s was taken by another writer: stopping this one", self.name)
                self.on_lost()
                return

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=15)
            self._renewer = None
        if self.lost:
            return
        path = f"{self._collection}/{self.name}"
        try:
            status, lease = self.api.request("GET", path)
            if status == 200 and lease.get("spec", {}).get("holderIdentity") == self.holder:
                lease["spec"]["holderIdentity"] = ""
                lease["spec"]["leaseDurationSeconds"] = 1
                self.api.request("PUT", path, lease)
        except OSError as exc:  # it expires on its own after leaseDurationSeconds
            log.warning("could not release Lease %s: %s", self.name, exc)


def file_lock_path(settings: Settings) -> Path:
    """One lock file per Delta root: two checkouts' state dirs never share it, two writers of one root do."""
    digest = hashlib.sha256(settings.delta_root_url.encode()).hexdigest()[:16]
    return settings.state_path / "locks" / f"batch-{digest}.lock"


def for_settings(settings: Settings, command: str) -> WriterLock:
    """The lock LAMBDA_BATCH_LOCK chooses (auto: the Lease inside a cluster, else the file)."""
    kind = settings.batch_lock
    if kind == "auto":
        kind = "lease" if os.environ.get("KUBERNETES_SERVICE_HOST") else "file"
    holder = identity(command)
    if kind == "lease":
        return LeaseLock(
            ApiServer.in_cluster(), settings.batch_lease_name, holder, settings.batch_lease_duration_s
        )
    return FileLock(file_lock_path(settings), holder)


@contextlib.contextmanager
def held(settings: Settings, command: str) -> Iterator[WriterLock]:
    """Hold the batch writer lock for the duration of the block."""
    lock = for_settings(settings, command)
    started = time.monotonic()
    lock.acquire(settings.batch_lock_timeout_s)
    waited = time.monotonic() - started
    if waited >= 1:
        print(f"lambda-batch: waited {waited:.0f} s for the batch writer lock", file=sys.stderr)
    try:
        yield lock
    finally:
        lock.release()
