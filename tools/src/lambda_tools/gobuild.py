"""Go servers the platform runs (kube-apiserver, SeaweedFS's weed), built from the Go module proxy.

`go install` refuses a module whose go.mod has replace directives, so each is built as the main
module: its source copied once out of the read-only module cache into a fixed folder (Go's build
cache is keyed by paths too, so a rebuild is a link), then `go build`. Each lives in its own folder
under ~/.cache/lambda-platform, outside any clone, built by one process at a time (a file lock):
setups running side by side wait for the first one.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from lambda_tools.services import ServiceError

GO_ENV = {"GOWORK": "off", "GOFLAGS": "-mod=mod"}


class GoBuildError(ServiceError):
    """Go is missing or a `go` command failed; the message has the command and its stderr."""


def cache_dir(name: str) -> Path:
    """~/.cache/lambda-platform/<name> (XDG_CACHE_HOME honoured)."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "lambda-platform" / name


def run(argv: list[str], cwd: Path | None = None) -> str:
    """Run a command with the build's environment; its stdout, or GoBuildError with its stderr."""
    env = {**os.environ, **GO_ENV}
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise GoBuildError(f"`{' '.join(argv)}` failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return result.stdout


def go() -> str:
    found = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if found is None:
        raise GoBuildError("building the platform's Go servers needs Go (go is not on PATH)")
    return found


@contextmanager
def locked(cache: Path) -> Iterator[None]:
    """Hold the cache folder's build lock."""
    cache.mkdir(parents=True, exist_ok=True)
    with (cache / "build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def module_source(
    module: str, version: str, cache: Path, prepare: Callable[[Path], None] | None = None
) -> Path:
    """<cache>/src: the module's source, writable, `prepare`d once (e.g. its replaces redirected)."""
    src = cache / "src"
    if not (src / ".ready").exists():
        info = json.loads(run([go(), "mod", "download", "-json", f"{module}@{version}"]))
        shutil.rmtree(src, ignore_errors=True)
        shutil.copytree(info["Dir"], src)
        for path in [src, *src.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o200)
        if prepare is not None:
            prepare(src)
        (src / ".ready").touch()
    return src


def build(src: Path, package: str, out: Path, ldflags: str | None = None) -> None:
    """`go build` one package of `src` into `out`, which appears only once complete."""
    partial = out.with_name(f".{out.name}.partial")
    flags = [f"-ldflags={ldflags}"] if ldflags else []
    run([go(), "build", *flags, "-o", str(partial), package], cwd=src)
    partial.replace(out)
