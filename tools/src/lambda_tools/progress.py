"""One status line for a long wait: what is awaited, how far along, for how long.

`make demo` and `make bench` wait for minutes at a time (the speed layer catching up, a Spark
batch, a benchmark phase). A person watching must see within seconds that something is happening,
and a CI log must not fill with redraws. So:

- on a terminal, one line redrawn in place (tqdm), with done/total when known, the elapsed time
  and a detail (the last line a child printed, a lag);
- elsewhere (CI, a log file), a plain line at most every PLAIN_EVERY_S seconds.

A heartbeat thread keeps the line moving while the caller blocks, so no wait is ever silent for
longer than HEARTBEAT_S (terminal) or PLAIN_EVERY_S (plain), both well under 10 s. The clock is
injectable so that the cadence is tested without sleeping.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Final, TextIO

from tqdm import tqdm

PLAIN_EVERY_S: Final = 5.0
HEARTBEAT_S: Final = 1.0
DRAIN_S: Final = 5.0
_DETAIL_MAX: Final = 80


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _DETAIL_MAX else text[: _DETAIL_MAX - 1] + "…"


def _elapsed(seconds: float) -> str:
    s = int(seconds)
    return f"{s} s" if s < 120 else f"{s // 60} min {s % 60:02d} s"


def _bar_format(total: int | None, unit: str) -> str:
    """tqdm's line: done/total when the total is known, else only the elapsed time; then the detail."""
    if total:
        return (
            "{desc}: {n_fmt}/{total_fmt}"
            + (" {unit}" if unit else "")
            + " ({percentage:.0f}%) · {elapsed}{postfix}"
        )
    return "{desc}: {elapsed}{postfix}"


class Progress:
    """A status line; `update` what changed, `tick` from a heartbeat, `write` a normal line above it."""

    def __init__(
        self,
        what: str,
        total: int | None = None,
        *,
        unit: str = "",
        prefix: str = "",
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        tty: bool | None = None,
        plain_every_s: float = PLAIN_EVERY_S,
    ) -> None:
        self.what, self.total, self.unit, self.prefix = what, total, unit, prefix
        self.done: int | None = None
        self.detail = ""
        self._stream = stream if stream is not None else sys.stdout
        self._clock = clock
        self._tty = self._stream.isatty() if tty is None else tty
        self._every = plain_every_s
        self._start = clock()
        self._last_emit = self._start
        self._lock = threading.RLock()
        self._closed = False
        self._bar: tqdm[Any] | None = None
        if self._tty:
            self._bar = tqdm(
                total=total,
                desc=f"{prefix}{what}",
                unit=unit or "it",
                file=self._stream,
                bar_format=_bar_format(total, unit),
                # The terminal's width, or 100 columns where it reports none (a pseudo-terminal
                # without a size, where tqdm's own lookup would draw an empty line).
                ncols=shutil.get_terminal_size((100, 24)).columns,
                mininterval=0.2,
                leave=True,
            )
        else:
            self._print(f"{prefix}{what} ...")

    def line(self) -> str:
        """The plain form of the status: what, done/total, elapsed, detail."""
        parts = [f"{self.prefix}{self.what}:"]
        if self.done is not None:
            unit = f" {self.unit}" if self.unit else ""
            if self.total:
                parts.append(f"{self.done:,}/{self.total:,}{unit} ({100 * self.done / self.total:.0f}%)")
            else:
                parts.append(f"{self.done:,}{unit}")
        parts.append(_elapsed(self._clock() - self._start))
        if self.detail:
            parts.append(f"· {self.detail}")
        return " ".join(parts)

    def update(self, done: int | None = None, detail: str | None = None, total: int | None = None) -> None:
        """Record progress; the line shows it at the next redraw (terminal) or plain interval."""
        with self._lock:
            if total is not None:
                self.total = total
            if done is not None:
                self.done = done
            if detail is not None:
                self.detail = _short(detail)
            if self._bar is not None:
                if total is not None:
                    self._bar.total = total
                    self._bar.bar_format = _bar_format(total, self.unit)
                if done is not None:
                    self._bar.n = done
                self._bar.set_postfix_str(self.detail, refresh=False)  # tqdm puts ", " before it
            self.tick()

    def tick(self) -> None:
        """Redraw the terminal line, or print the plain line if PLAIN_EVERY_S has passed."""
        with self._lock:
            if self._closed:
                return
            now = self._clock()
            if self._bar is not None:
                self._bar.refresh()
                self._last_emit = now
            elif now - self._last_emit >= self._every:
                self._print(self.line())
                self._last_emit = now

    def write(self, text: str) -> None:
        """A normal line (a child's output) printed above the status line without breaking it."""
        with self._lock:
            if self._bar is not None:
                self._bar.write(text, file=self._stream)
            else:
                self._print(text)

    def close(self, outcome: str = "done") -> None:
        """Leave a last line saying how it ended and how long it took."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            took = _elapsed(self._clock() - self._start)
            if self._bar is not None:
                self._bar.set_postfix_str(f"{outcome} in {took}", refresh=False)
                self._bar.close()
            else:
                self._print(f"{self.prefix}{self.what}: {outcome} in {took}")

    def _print(self, text: str) -> None:
        print(text, file=self._stream, flush=True)

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close("done" if exc_type is None else "failed")


@contextlib.contextmanager
def heartbeat(progress: Progress, every_s: float = HEARTBEAT_S) -> Iterator[Progress]:
    """Tick `progress` from a thread while the body blocks (a subprocess, a socket, a sleep)."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every_s):
            progress.tick()

    thread = threading.Thread(target=beat, name=f"progress:{progress.what}", daemon=True)
    thread.start()
    try:
        yield progress
    finally:
        stop.set()
        thread.join()


def run(
    progress: Progress,
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout_s: float | None = None,
    log: IO[str] | None = None,
    on_line: Callable[[str], None] | None = None,
    drain_s: float = DRAIN_S,
) -> int:
    """Run a command under `progress`: each line it prints is shown above the status line (and kept
    in `log`), its last line is the detail, and the status keeps ticking while it is quiet.

    Returns the exit code; raises subprocess.TimeoutExpired (after killing it) past `timeout_s`.
    """
    proc = subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=None if env is None else dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        errors="replace",
        bufsize=1,
    )
    assert proc.stdout is not None

    def forward() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            if log is not None:
                log.write(raw)
                log.flush()
            progress.write(line)
            if line.strip():
                progress.update(detail=line)
            if on_line is not None:
                on_line(line)

    reader = threading.Thread(target=forward, name=f"output:{progress.what}", daemon=True)
    reader.start()
    with heartbeat(progress):
        try:
            code = proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            reader.join(timeout=drain_s)
            raise
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        # A grandchild that outlives the command (a daemon it started) may hold the pipe open:
        # drain what is there, but do not wait for it.
        reader.join(timeout=drain_s)
    return code
