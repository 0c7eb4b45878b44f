"""Finding the checkpoint to resume from: the newest complete one under the checkpoint directory.

Flink writes `<dir>/<job id>/chk-<n>/_metadata` last, so a `chk-*` folder with `_metadata` is
complete. A job stopped by SIGINT or SIGTERM leaves a savepoint in `<dir>/savepoints/`, found
the same way. Each run has a new job id, hence the search across job folders. Only local (file:)
directories can be searched here; elsewhere (an object store in production) the Flink
Kubernetes Operator tracks the latest checkpoint itself.
"""

from __future__ import annotations

import time
from pathlib import Path
from urllib.parse import urlparse


def local_dir(url: str) -> Path | None:
    """The local path of a file: URL or plain path; None for a remote URL."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        return Path(parsed.path if parsed.scheme else url)
    return None


def latest_complete(url: str) -> str | None:
    """The newest complete checkpoint (as a file: URI) under `url`, or None."""
    root = local_dir(url)
    if root is None or not root.is_dir():
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
