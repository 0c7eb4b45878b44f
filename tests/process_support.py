"""Helpers every suite's integration tests share (importable by name: pytest puts tests/ on the
path for tests/conftest.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.25) -> bool:
    """Poll `check` until it holds or `timeout` seconds pass; its last answer either way."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()


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
