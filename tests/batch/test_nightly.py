"""`lambda-batch nightly` refuses bad arguments before it takes the lock or starts Spark, and a
driver on Kubernetes hands its S3 keys to its executors in the Spark configuration only.
(The flow itself runs end to end in test_lock_writers.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from batch_layer import main
from batch_layer.lock import file_lock_path
from batch_layer.spark import executor_credentials
from lambda_contract.settings import Settings

pytestmark = pytest.mark.unit


@pytest.fixture
def state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("LAMBDA_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LAMBDA_DELTA_ROOT", str(tmp_path / "delta"))
    monkeypatch.setenv("LAMBDA_BATCH_LOCK", "file")
    return Settings.from_env()


def test_nightly_needs_the_file_for_the_reconciliation(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main.main(["nightly"])
    assert exc.value.code == 2 and "--dates-out" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--date", "2026-02-30"], "DATE must be a date"),
        (["--from", "2026-11-07", "--to", "2026-11-01"], "is after TO"),
        (["--date", "2026-11-01", "--from", "2026-11-01", "--to", "2026-11-02"], "not both"),
    ],
)
def test_bad_dates_fail_before_the_lock_and_spark(
    state: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main.main(["nightly", *args, "--dates-out", str(tmp_path / "dates")]) == 2
    assert message in capsys.readouterr().err
    assert not file_lock_path(state).exists(), "a refused command must not have taken the lock"
    assert not (tmp_path / "dates").exists()


def test_a_held_lock_fails_the_command_naming_the_holder(
    state: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from batch_layer.lock import FileLock

    holder = FileLock(file_lock_path(state), "other-host pid 42 (lambda-batch maintain)")
    holder.acquire(0)
    monkeypatch.setenv("LAMBDA_BATCH_LOCK_TIMEOUT_S", "0")
    try:
        assert main.main(["nightly", "--dates-out", str(tmp_path / "dates")]) == 1
    finally:
        holder.release()
    err = capsys.readouterr().err
    assert "lambda-batch nightly: another batch writer holds" in err
    assert "other-host pid 42 (lambda-batch maintain) since" in err


def test_executors_get_the_drivers_s3_keys_only_on_kubernetes() -> None:
    env = {"AWS_ACCESS_KEY_ID": "AKIAEXAMPLE", "AWS_SECRET_ACCESS_KEY": "s3cr3t", "AWS_SESSION_TOKEN": ""}
    assert executor_credentials("local[*]", env) == {}
    assert executor_credentials("k8s://https://kubernetes.default.svc:443", env) == {
        "spark.hadoop.fs.s3a.access.key": "AKIAEXAMPLE",
        "spark.hadoop.fs.s3a.secret.key": "s3cr3t",
    }
    assert executor_credentials("k8s://https://kubernetes.default.svc:443", {}) == {}  # a web identity
