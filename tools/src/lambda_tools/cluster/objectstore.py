"""The object store of cluster mode: SeaweedFS's S3 gateway, as the process `objectstore`.

One `weed server` runs a master, a volume server, a filer and the S3 gateway in one process, all on
127.0.0.1 (ports in docs/cluster.md); its data lives under <state>/cluster/objectstore/, so a
SIGKILL and a new `start` find every object again. The S3 keys are generated once into
LAMBDA_S3_CREDENTIALS_FILE, where Settings.s3_credentials() and lambda_contract.storage give them
to every engine; the gateway accepts only those. `start` creates the bucket of cluster.env's URLs.

`weed` is built from the github.com/seaweedfs/seaweedfs Go module (through the Go module proxy;
`go install` refuses its replace directives) and cached outside the repository, keyed by version.

Run: `python -m lambda_tools.cluster.objectstore build|start`.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import fcntl
import hashlib
import hmac
import json
import secrets
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from lambda_contract.settings import Settings, SettingsError
from lambda_contract.storage import LOCAL_REGION
from lambda_tools import gobuild, services
from lambda_tools.services import ServiceError

MODULE: Final = "github.com/seaweedfs/seaweedfs"
VERSION: Final = "v0.0.0-20261109003541-7506e5f91cd6"
NAME: Final = "objectstore"
BUCKET: Final = "lambda"
HOST: Final = "127.0.0.1"
# The reserved ports of the object store; each HTTP port's gRPC port is 10000 above it.
S3_PORT: Final = 18333
MASTER_PORT: Final = 19333
VOLUME_PORT: Final = 18080
FILER_PORT: Final = 18888
METRICS_PORT: Final = 19327
GRPC_OFFSET: Final = 10000
READY_TIMEOUT_S: Final = 120.0
WRITE_PROBE: Final = f"/{BUCKET}/_objectstore/ready"


def cache_dir() -> Path:
    """Where the built `weed` lives: outside the repository, one folder per SeaweedFS version."""
    return gobuild.cache_dir(f"seaweedfs-{VERSION}")


def binary() -> Path:
    return cache_dir() / "weed"


def build(log: bool = True) -> Path:
    """Builds `weed` into the cache unless it is there (lambda_tools.gobuild)."""
    with gobuild.locked(cache_dir()):
        if not binary().exists():
            src = gobuild.module_source(MODULE, VERSION, cache_dir())
            if log:
                print(f"objectstore: building SeaweedFS {VERSION} (minutes when cold)", file=sys.stderr)
            gobuild.build(src, "./weed", binary())
    return binary()


# --- credentials and S3 requests -------------------------------------------------------------


def credentials_file(settings: Settings, state: Path) -> Path:
    """LAMBDA_S3_CREDENTIALS_FILE, or where cluster.env puts it when the variable is unset."""
    return (
        Path(settings.s3_credentials_file)
        if settings.s3_credentials_file
        else state / "secrets" / "objectstore.env"
    )


def ensure_credentials(settings: Settings, state: Path) -> tuple[str, str]:
    """The store's one access key pair, generated on first use (mode 600), never committed."""
    path = credentials_file(settings, state)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        key = "LAMBDA" + secrets.token_hex(7).upper()
        path.write_text(f"AWS_ACCESS_KEY_ID={key}\nAWS_SECRET_ACCESS_KEY={secrets.token_urlsafe(30)}\n")
    pair = dataclasses.replace(settings, s3_credentials_file=str(path)).s3_credentials()
    assert pair is not None  # a file was named
    return pair


def _signed(
    method: str, path: str, credentials: tuple[str, str], now: dt.datetime, body: bytes = b""
) -> urllib.request.Request:
    """A request with an AWS Signature V4, as S3 requires of every call."""
    access_key, secret_key = credentials
    host = f"{HOST}:{S3_PORT}"
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    payload = hashlib.sha256(body).hexdigest()
    headers = {"host": host, "x-amz-content-sha256": payload, "x-amz-date": amz_date}
    signed_headers = ";".join(sorted(headers))
    canonical = "\n".join(
        [method, urllib.parse.quote(path), "", *(f"{k}:{headers[k]}" for k in sorted(headers)), "",
         signed_headers, payload]
    )  # fmt: skip
    scope = f"{day}/{LOCAL_REGION}/s3/aws4_request"
    to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = f"AWS4{secret_key}".encode()
    for part in (day, LOCAL_REGION, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    auth = f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, SignedHeaders={signed_headers}, Signature={signature}"
    request_headers = {"x-amz-content-sha256": payload, "x-amz-date": amz_date, "Authorization": auth}
    return urllib.request.Request(
        f"http://{host}{path}", data=body or None, method=method, headers=request_headers
    )


def s3_status(
    method: str,
    path: str,
    credentials: tuple[str, str],
    headers: Mapping[str, str] | None = None,
    body: bytes = b"",
) -> int | None:
    """The HTTP status of a signed S3 call (`headers` unsigned) on the local gateway; None when it
    does not answer."""
    request = _signed(method, path, credentials, dt.datetime.now(dt.UTC), body)
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=5) as resp:  # noqa: S310 (local http)
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError):
        return None


# --- the process ------------------------------------------------------------------------------


def data_dir(state: Path) -> Path:
    return state / "cluster" / NAME


def _s3_config(credentials: tuple[str, str]) -> str:
    """The gateway's identities: the platform's one key pair, allowed everything; no anonymous access."""
    identity = {
        "name": "lambda",
        "credentials": [{"accessKey": credentials[0], "secretKey": credentials[1]}],
        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
    }
    return json.dumps({"identities": [identity]}, indent=2) + "\n"


def argv(state: Path, s3_config: Path) -> list[str]:
    """`weed server` with every listener on 127.0.0.1 and the reserved ports; extras it would open
    by default (Iceberg and Lance catalogs, the embedded IAM API, telemetry) are off."""
    root = data_dir(state)
    return [
        str(binary()),
        # Its INFO lines (one per S3 delete, every master reconnect) go to rotated files under
        # <state>/cluster/objectstore/logs (3 x 16 MB at most); warnings and errors to logs/objectstore.log.
        "-logtostderr=false",
        "-alsologtostderr=false",
        f"-logdir={root / 'logs'}",
        "-log_max_size_mb=16",
        "-log_max_files=3",
        "-stderrthreshold=WARNING",
        f"-config_dir={root}",
        "server",
        f"-ip={HOST}",
        f"-ip.bind={HOST}",
        f"-dir={root / 'volume'}",
        f"-master.dir={root / 'master'}",
        f"-master.port={MASTER_PORT}",
        f"-master.port.grpc={MASTER_PORT + GRPC_OFFSET}",
        "-master.telemetry=false",
        # One master: its election only waits out this timeout (10 s by default) after each start.
        "-master.electionTimeout=2s",
        "-master.volumeSizeLimitMB=256",  # small volumes: a test store grows a few at a time
        "-volume.max=64",
        f"-volume.port={VOLUME_PORT}",
        f"-volume.port.grpc={VOLUME_PORT + GRPC_OFFSET}",
        "-volume.preStopSeconds=1",
        "-filer",
        f"-filer.port={FILER_PORT}",
        f"-filer.port.grpc={FILER_PORT + GRPC_OFFSET}",
        f"-filer.localSocket={root / 'filer.sock'}",
        "-s3",
        f"-s3.port={S3_PORT}",
        f"-s3.port.grpc={S3_PORT + GRPC_OFFSET}",
        f"-s3.config={s3_config}",
        f"-s3.localSocket={root / 's3.sock'}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-s3.iam=false",
        f"-metricsPort={METRICS_PORT}",
        f"-metricsIp={HOST}",
    ]


def _check_endpoint(settings: Settings) -> None:
    expected = f"http://{HOST}:{S3_PORT}"
    if settings.s3_endpoint and settings.s3_endpoint.rstrip("/") != expected:
        raise ServiceError(
            f"LAMBDA_S3_ENDPOINT={settings.s3_endpoint!r}: the local object store serves {expected}"
        )


def _ready(credentials: tuple[str, str]) -> bool:
    # The volume server heartbeats to the master (writes can be placed), and the gateway reaches
    # the filer (a signed bucket lookup answers, whether or not the bucket exists yet).
    return services.http_ok(f"http://{HOST}:{VOLUME_PORT}/healthz") and s3_status(
        "HEAD", f"/{BUCKET}", credentials
    ) in (200, 404)


def start(settings: Settings, state: Path) -> None:
    """Start `objectstore` unless it runs, wait until S3 answers, create the bucket if missing."""
    _check_endpoint(settings)
    root = data_dir(state)
    root.mkdir(parents=True, exist_ok=True)
    # Starts racing each other (two `make up CLUSTER=1`, a test bringing the store back) take turns:
    # the second one finds the first one's process instead of a port it did not expect to be taken.
    with (root / "start.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _start(settings, state)


PORTS: Final = (S3_PORT, MASTER_PORT, VOLUME_PORT, FILER_PORT, METRICS_PORT)


def _ports_free_or_recorded(state: Path, within_s: float = 15.0) -> bool:
    """Waits until no port of the store is taken (True), or a process is recorded (False: a start
    that did not take the lock, from an older copy of this module, spawned it meanwhile).

    A SIGKILLed `weed` holds its ports a moment longer than its pid looks alive: its main thread
    is a zombie while the other threads still exit, and only the last one closes the sockets.
    """
    deadline = time.monotonic() + within_s
    while True:
        if services.running_pid(state, NAME) is not None:
            return False
        taken = [port for port in PORTS if services.port_open(port)]
        if not taken:
            return True
        if time.monotonic() >= deadline:
            raise ServiceError(f"port {taken[0]} is taken by a process this project did not start")
        time.sleep(0.1)


def _spawn(state: Path, credentials: tuple[str, str], log: Path) -> None:
    exe = binary()
    if not exe.exists():
        raise ServiceError(f"{exe} is missing: run `make setup` (it builds SeaweedFS {VERSION})")
    if not _ports_free_or_recorded(state):
        return
    root = data_dir(state)
    for sub in ("volume", "master", "logs"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    s3_config = root / "s3.json"
    s3_config.touch(mode=0o600)
    s3_config.write_text(_s3_config(credentials))
    services.spawn(state, NAME, argv(state, s3_config), log)


def _start(settings: Settings, state: Path) -> None:
    credentials = ensure_credentials(settings, state)
    log = state / "logs" / f"{NAME}.log"
    if services.running_pid(state, NAME) is None:
        _spawn(state, credentials, log)
    services.wait_ready("object store (SeaweedFS S3)", lambda: _ready(credentials), log, READY_TIMEOUT_S)
    if s3_status("HEAD", f"/{BUCKET}", credentials) == 404:
        status = s3_status("PUT", f"/{BUCKET}", credentials)
        if status not in (200, 409):  # 409: created meanwhile by another start
            raise ServiceError(f"creating bucket {BUCKET!r} on the object store answered HTTP {status}")
    # After a restart the master places no new data for three heartbeats (15 s: its volume servers
    # may still be reporting); ready means an object can be written, not only that S3 answers.
    services.wait_ready(
        "object store writes",
        lambda: s3_status("PUT", WRITE_PROBE, credentials, body=b"ready\n") == 200,
        log,
        READY_TIMEOUT_S,
    )


def main(argv_: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lambda_tools.cluster.objectstore", description=__doc__.splitlines()[0]
    )
    parser.add_argument("command", choices=["build", "start"])
    args = parser.parse_args(argv_)
    try:
        if args.command == "build":
            print(build())
        else:
            settings = Settings.from_env()
            start(settings, settings.state_path)
            print(f"objectstore ready: s3 http://{HOST}:{S3_PORT}, bucket {BUCKET}")
    except (ServiceError, SettingsError) as exc:
        print(f"objectstore {args.command}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
