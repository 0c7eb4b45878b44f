"""Finding the checkpoint to resume from: the newest complete one under the checkpoint directory.

Flink writes `<dir>/<job id>/chk-<n>/_metadata` last, so a `chk-*` folder with `_metadata` is
complete. A job stopped by SIGINT or SIGTERM leaves a savepoint in `<dir>/savepoints/`, found
the same way. Each run has a new job id, hence the search across job folders. Local (file:)
directories are searched directly; an object store (s3://, cluster mode's) only when the caller
passes the settings that reach it (lambda_contract.storage's endpoint and keys). In Kubernetes the
Flink Kubernetes Operator tracks the latest checkpoint itself.
"""

from __future__ import annotations

import time
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from lambda_contract.settings import Settings

if TYPE_CHECKING:
    from pyarrow.fs import S3FileSystem

S3_SCHEMES = ("s3", "s3a", "s3p")


def local_dir(url: str) -> Path | None:
    """The local path of a file: URL or plain path; None for a remote URL."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        return Path(parsed.path if parsed.scheme else url)
    return None


def latest_complete(url: str, settings: Settings | None = None) -> str | None:
    """The newest complete checkpoint or savepoint under `url` (a file: URI, or an s3:// one when
    `settings` say how to reach the object store), or None."""
    root = local_dir(url)
    if root is None:
        return _latest_on_s3(url, settings) if settings is not None else None
    if not root.is_dir():
        return None
    found = [*root.glob("*/chk-*/_metadata"), *root.glob(f"{SAVEPOINTS}/savepoint-*/_metadata")]
    candidates = [m.parent for m in found if m.is_file()]
    if not candidates:
        return None
    best = max(candidates, key=lambda p: (p.joinpath("_metadata").stat().st_mtime, _number(p)))
    return best.resolve().as_uri()


SAVEPOINTS = "savepoints"


def savepoint_dir(url: str) -> str:
    """Where a stopped job's savepoint goes: beside its checkpoints, so the next start finds it."""
    return url.rstrip("/") + "/" + SAVEPOINTS


def latest_age_s(url: str) -> float | None:
    """Seconds since the newest complete checkpoint was written (local directories only)."""
    latest = latest_complete(url)
    if latest is None:
        return None
    path = local_dir(latest)
    assert path is not None
    return max(0.0, time.time() - (path / "_metadata").stat().st_mtime)


def _number(path: Path) -> int:
    try:
        return int(path.name.removeprefix("chk-"))
    except ValueError:
        return -1


def object_store(settings: Settings) -> S3FileSystem:
    """pyarrow's S3 client for LAMBDA_S3_ENDPOINT with LAMBDA_S3_CREDENTIALS_FILE's keys (AWS's
    endpoint and default chain when unset)."""
    from pyarrow.fs import S3FileSystem

    from lambda_contract import storage

    return S3FileSystem(**storage.pyarrow_s3(settings))


def _latest_on_s3(url: str, settings: Settings) -> str | None:
    from pyarrow.fs import FileSelector, FileType

    parsed = urlparse(url)
    if parsed.scheme not in S3_SCHEMES:
        raise ValueError(f"cannot search {url} for checkpoints: only file: and s3:// URLs")
    base = parsed.netloc + parsed.path.rstrip("/")
    # <job>/chk-<n>/_metadata and savepoints/savepoint-*/_metadata: three levels below the root.
    selector = FileSelector(base, recursive=True, allow_not_found=True)  # pyarrow 14: no max_recursion
    found = []
    for info in object_store(settings).get_file_info(selector):
        path = PurePosixPath(info.path)
        if info.type != FileType.File or path.name != "_metadata":
            continue
        folder = path.parent
        savepoint = folder.parent.name == SAVEPOINTS and folder.name.startswith("savepoint-")
        if folder.name.startswith("chk-") or savepoint:
            found.append((info.mtime, _number(Path(folder.name)), str(folder)))
    if not found:
        return None
    return f"{parsed.scheme}://{max(found)[2]}"
