"""The progress line: a long wait is never silent for 10 s (fake clock), plain lines off a terminal
are spaced, a terminal gets one redrawn line, and a child's output is shown above it."""

from __future__ import annotations

import io
import os
import signal
import sys
import threading
from collections.abc import Callable

import pytest

from lambda_tools.progress import PLAIN_EVERY_S, Progress, heartbeat, run

pytestmark = pytest.mark.unit


class FakeClock:
    """Seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.lock = threading.Lock()

    def __call__(self) -> float:
        with self.lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self.lock:
            self.now += seconds


def _emits(progress: Progress, clock: FakeClock, out: io.StringIO, seconds: int) -> list[float]:
    """Tick once per fake second, as the heartbeat does; the fake times at which a line appeared."""
    times = []
    for _ in range(seconds):
        clock.advance(1)
        before = out.getvalue().count("\n")
        progress.tick()
        if out.getvalue().count("\n") > before:
            times.append(clock())
    return times


def test_a_long_plain_wait_prints_within_10_s_and_at_most_every_5_s() -> None:
    clock, out = FakeClock(), io.StringIO()
    progress = Progress(
        "waiting for the speed layer", total=60_000, unit="records", stream=out, clock=clock, tty=False
    )
    progress.update(done=12_000, detail="lag 48,000")
    times = _emits(progress, clock, out, 600)  # ten minutes of a wait
    gaps = [b - a for a, b in zip([1000.0, *times], times, strict=False)]
    assert times and max(gaps) <= 10 and min(gaps) >= PLAIN_EVERY_S
    assert len(times) == 600 // PLAIN_EVERY_S
    last = out.getvalue().splitlines()[-1]
    assert last == "waiting for the speed layer: 12,000/60,000 records (20%) 10 min 00 s · lag 48,000"


def test_updates_between_intervals_do_not_flood_a_log() -> None:
    clock, out = FakeClock(), io.StringIO()
    progress = Progress("batch", stream=out, clock=clock, tty=False)
    for n in range(1000):  # a chatty child: many updates within one second
        progress.update(done=n)
    assert out.getvalue().splitlines() == ["batch ..."]
    clock.advance(PLAIN_EVERY_S)
    progress.update(done=1000)
    assert out.getvalue().splitlines()[-1] == "batch: 1,000 5 s"
    progress.close()
    assert out.getvalue().splitlines()[-1] == "batch: done in 5 s"


def test_a_terminal_gets_one_redrawn_line() -> None:
    clock, out = FakeClock(), io.StringIO()
    with Progress("bench phase", total=10, unit="steps", stream=out, clock=clock, tty=True) as progress:
        for n in range(1, 11):
            progress.update(done=n, detail=f"step {n}")
        body = out.getvalue()
        assert "\n" not in body and body.count("\r") >= 10  # redrawn in place
        assert "bench phase: 10/10 steps (100%)" in body and "step 10" in body
        progress.write("a line from the child")
    assert "a line from the child\n" in out.getvalue()
    assert out.getvalue().endswith("\n")


def _wait_for(condition: Callable[[], bool]) -> None:
    """Give the heartbeat thread real time to act; bounded, and not a measurement."""
    done = threading.Event()
    for _ in range(5000):
        if condition():
            return
        done.wait(0.001)
    raise AssertionError("the heartbeat thread printed nothing")


def test_the_heartbeat_prints_while_the_caller_blocks() -> None:
    clock, out = FakeClock(), io.StringIO()
    progress = Progress("blocked", stream=out, clock=clock, tty=False)
    with heartbeat(progress, every_s=0.001):
        for second in range(1, 31):  # 30 fake seconds in which the caller itself prints nothing
            clock.advance(1)
            if second % 5 == 0:
                _wait_for(lambda: len(out.getvalue().splitlines()) == 1 + second // 5)  # noqa: B023
    assert out.getvalue().splitlines() == ["blocked ..."] + [f"blocked: {s} s" for s in range(5, 31, 5)]


def test_run_shows_the_childs_lines_and_returns_its_exit_code() -> None:
    out = io.StringIO()
    progress = Progress("child", stream=out, tty=False)
    log = io.StringIO()
    code = run(
        progress, [sys.executable, "-c", "print('first'); print('second'); raise SystemExit(3)"], log=log
    )
    assert code == 3
    assert [line for line in out.getvalue().splitlines() if line in ("first", "second")] == [
        "first",
        "second",
    ]
    assert log.getvalue() == "first\nsecond\n" and progress.detail == "second"


def test_run_returns_when_the_command_exits_although_a_daemon_it_started_holds_the_output() -> None:
    progress = Progress("starts a daemon", stream=io.StringIO(), tty=False)
    script = "import subprocess, sys; p = subprocess.Popen(['sleep', '60']); print(p.pid)"
    pids: list[str] = []
    code = run(progress, [sys.executable, "-c", script], on_line=pids.append, drain_s=0.5)
    try:
        assert code == 0 and pids and pids[0].isdigit()
        os.kill(int(pids[0]), 0)  # raises if run() had waited for the daemon to close the pipe
    finally:
        os.kill(int(pids[0]), signal.SIGKILL)
