"""Processes under test: polling on a condition instead of sleeping, a layer's CLI as a child in
its own process group, and the reaper that leaves none of that group behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.25) -> bool:
    """Poll `check` until it holds or `timeout` seconds pass; its last answer either way."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()


def http_ok(url: str, timeout: float = 2.0) -> bool:
    """Whether `url` answers 200 now (a server under test that is not up yet is simply False)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (local test URLs)
            return bool(resp.status == 200)
    except OSError:
        return False


def reap_group(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGKILL what is left of `proc`'s process group (the JVM and Python workers of a job may
    outlive its leader for a moment) until the group is gone or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        time.sleep(0.1)


class Child:
    """A command under test in its own process group (its JVM and Python workers with it), with
    its output in a log file."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.argv = argv
        self.log = log
        self._fh = log.open("ab")
        self.proc = subprocess.Popen(
            argv, env=env, stdout=self._fh, stderr=subprocess.STDOUT, start_new_session=True
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait(self, deadline: float) -> int:
        """Its exit code, once it exits before the `time.monotonic()` instant `deadline`; past
        that it is killed and the test fails with its log's tail."""
        try:
            return self.proc.wait(max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.log.name}: still running at its deadline:\n{self.tail()}") from None
        finally:
            self._fh.close()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group, wait for the leader, then reap the rest."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
        reap_group(self.proc, 30)
        self._fh.close()

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


def speed_job(env: dict[str, str], log: Path, *args: str) -> Child:
    """The speed job (`python -m speed_layer.main`), run by this interpreter (the speed env's)."""
    return Child([sys.executable, "-m", "speed_layer.main", *args], env, log)
