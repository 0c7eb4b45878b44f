"""Finding the newest complete checkpoint to resume from."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from speed_layer.checkpoints import latest_complete, local_dir

pytestmark = pytest.mark.unit


def make(root: Path, job: str, n: int, complete: bool, mtime: float) -> Path:
    d = root / job / f"chk-{n}"
    d.mkdir(parents=True)
    if complete:
        (d / "_metadata").write_bytes(b"x")
        os.utime(d / "_metadata", (mtime, mtime))
    return d


def test_newest_complete_checkpoint_across_jobs(tmp_path: Path) -> None:
    make(tmp_path, "job-a", 7, True, 1000)
    newest = make(tmp_path, "job-b", 2, True, 2000)
    make(tmp_path, "job-b", 3, False, 0)  # in progress: no _metadata yet
    assert latest_complete(tmp_path.as_uri()) == newest.resolve().as_uri()


def test_no_checkpoint_means_a_fresh_start(tmp_path: Path) -> None:
    assert latest_complete(tmp_path.as_uri()) is None
    assert latest_complete((tmp_path / "missing").as_uri()) is None


def test_remote_urls_are_not_searched() -> None:
    assert local_dir("s3://bucket/checkpoints") is None
    assert latest_complete("s3://bucket/checkpoints") is None
