"""The cluster's object store (SeaweedFS's S3 gateway) with delta-rs, as the serving layer reads it.

Runs in the serving env because it has deltalake (the tools env does not). It uses the shared
`objectstore` of cluster mode on its reserved ports, starting it when it is not running, and kills
it once (SIGKILL) to prove that a committed table survives a crash and a new start.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from lambda_contract.settings import Settings
from lambda_contract.storage import delta_rs_options
from lambda_tools import cluster, services
from lambda_tools.cluster import objectstore

pytestmark = pytest.mark.integration

SCHEMA = pa.schema([("order_id", pa.string()), ("revenue", pa.decimal128(38, 4))])


@pytest.fixture(scope="module")
def settings() -> Settings:
    """Cluster mode's settings on the project's own state folder, where the shared store lives."""
    state = Path(
        os.environ.get("LAMBDA_STATE_DIR") or Path(__file__).resolve().parents[2] / ".local" / "state"
    )
    return Settings.from_env(cluster.environment(state.resolve()))


@pytest.fixture
def table_url(settings: Settings) -> Iterator[str]:
    if not objectstore.binary().exists():
        pytest.fail(f"{objectstore.binary()} is missing: run `make setup`")
    objectstore.start(settings, settings.state_path)
    prefix = f"tests/{uuid.uuid4().hex}"
    yield f"s3a://{objectstore.BUCKET}/{prefix}"
    # The filer's own HTTP API (localhost only) removes the folder in one call; S3 would need a
    # listing and a delete per object.
    url = f"http://{objectstore.HOST}:{objectstore.FILER_PORT}/buckets/{objectstore.BUCKET}/{prefix}?recursive=true"
    with contextlib.suppress(OSError):  # the store may be down after a failed run; the name is unique
        urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=10).close()


def _rows(*pairs: tuple[str, str]) -> pa.Table:
    return pa.Table.from_pylist([{"order_id": o, "revenue": Decimal(r)} for o, r in pairs], schema=SCHEMA)


def _read(url: str, settings: Settings) -> tuple[int, list[tuple[str, Decimal]]]:
    table = DeltaTable(url, storage_options=delta_rs_options(settings))
    rows = table.to_pyarrow_table().sort_by("order_id").to_pylist()
    return table.version(), [(r["order_id"], r["revenue"]) for r in rows]


def test_a_delta_table_on_the_store_survives_a_sigkill_and_a_restart(
    settings: Settings, table_url: str
) -> None:
    options = delta_rs_options(settings)
    assert options["AWS_ENDPOINT_URL"] == f"http://127.0.0.1:{objectstore.S3_PORT}"
    write_deltalake(table_url, _rows(("o-1", "10.0100"), ("o-2", "0.0001")), storage_options=options)
    write_deltalake(table_url, _rows(("o-3", "99999999.9999")), mode="append", storage_options=options)
    expected = [("o-1", Decimal("10.0100")), ("o-2", Decimal("0.0001")), ("o-3", Decimal("99999999.9999"))]
    assert _read(table_url, settings) == (1, expected)

    state = settings.state_path
    pid = services.running_pid(state, objectstore.NAME)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    # Gone once its pid is no longer the recorded one (another engineer's `make up CLUSTER=1` may
    # already have started the next).
    while services.running_pid(state, objectstore.NAME) == pid and time.monotonic() < deadline:
        time.sleep(0.05)
    assert services.running_pid(state, objectstore.NAME) != pid
    started = time.monotonic()
    objectstore.start(settings, state)
    print(f"objectstore back after SIGKILL in {time.monotonic() - started:.1f} s")

    assert _read(table_url, settings) == (1, expected)
    # And it takes the next commit: the log's next version is written, not refused or lost.
    write_deltalake(table_url, _rows(("o-4", "-5.0000")), mode="append", storage_options=options)
    assert _read(table_url, settings) == (2, [*expected, ("o-4", Decimal("-5.0000"))])


def test_the_store_refuses_requests_without_the_generated_keys(settings: Settings, table_url: str) -> None:
    key, secret = settings.s3_credentials() or ("", "")
    assert key and secret
    assert oct(Path(settings.s3_credentials_file).stat().st_mode & 0o777) == "0o600"
    assert objectstore.s3_status("HEAD", f"/{objectstore.BUCKET}", (key, secret)) == 200
    assert objectstore.s3_status("HEAD", f"/{objectstore.BUCKET}", (key, secret + "x")) == 403
    anonymous = f"http://{objectstore.HOST}:{objectstore.S3_PORT}/{objectstore.BUCKET}/"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(anonymous, timeout=5).close()
    assert refused.value.code == 403


def test_the_store_refuses_to_overwrite_with_a_conditional_put(settings: Settings, table_url: str) -> None:
    """delta-rs commits version N by creating _delta_log/N.json with If-None-Match: * (no DynamoDB
    lock here). Two writers racing for N are then safe only if the store refuses the second one."""
    credentials = settings.s3_credentials()
    assert credentials is not None
    key = "/" + table_url.removeprefix("s3a://") + "/_delta_log/00000000000000000000.json"
    create = {"If-None-Match": "*"}
    assert objectstore.s3_status("PUT", key, credentials, create) == 200
    assert objectstore.s3_status("PUT", key, credentials, create) == 412
    assert objectstore.s3_status("PUT", key, credentials) == 200  # a plain put overwrites
