"""What the job's JVM did while a benchmark measured it: checkpoints and GC pauses, by wall clock.

- Checkpoints come from the mini-cluster's REST API (`/jobs/<id>/checkpoints`), found on the port
  the job's JVM listens on (cluster.py binds REST to 8081-8181), polled often enough that its
  short history (10 checkpoints) loses none. If the REST API cannot be reached, from the
  checkpoint directory: each `chk-N/_metadata`'s modification time is when checkpoint N completed.
- GC pauses come from the log `-Xlog:gc` writes (common.jvm_args), with UTC wall-clock times.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import signal
import threading
import time
import urllib.request
import zipfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from lambda_contract.settings import Settings

REST_PORTS = range(8081, 8182)  # cluster.local_cluster_config's rest.bind-port
PROFILER_PLATFORMS = {"x86_64": "linux-x64", "aarch64": "linux-arm64"}


def group_pids(pgid: int) -> list[int]:
    """The processes of a process group (the job's Python driver, its JVM, its Python workers)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        # pid (comm) state ppid pgrp ...: comm may hold spaces and parentheses.
        fields = text[text.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:
            pids.append(int(stat.parent.name))
    return pids


def java_pid(pgid: int) -> int | None:
    for pid in group_pids(pgid):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/comm").read_text().strip() == "java":
                return pid
    return None


def stop_jvm(pgid: int, timeout_s: float) -> None:
    """SIGTERM the JVM of process group `pgid` and wait for it to exit: its shutdown hooks run, so
    a flight recording started with dumponexit=true is written (a SIGKILL would lose it)."""
    pid = java_pid(pgid)
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)


def listening_ports(pid: int) -> set[int]:
    """TCP ports `pid` listens on (its socket inodes matched against /proc/net/tcp*)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            target = fd.readlink().name
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                cols = line.split()
                if cols[3] == "0A" and cols[9] in inodes:  # 0A: LISTEN
                    ports.add(int(cols[1].rsplit(":", 1)[1], 16))
    return ports


def get_json(url: str, timeout: float = 2.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 (the local mini-cluster)
        return json.loads(resp.read())


def find_rest(pgid: int) -> str | None:
    """The REST base URL of the mini-cluster run by the job in process group `pgid`, if any."""
    pid = java_pid(pgid)
    if pid is None:
        return None
    for port in sorted(listening_ports(pid) & set(REST_PORTS)):
        base = f"http://127.0.0.1:{port}"
        with contextlib.suppress(OSError, ValueError):
            if "jobs" in get_json(f"{base}/jobs/overview"):
                return base
    return None


@dataclass
class CheckpointLog:
    """Polls the mini-cluster's checkpoint history in a thread; keeps every checkpoint it saw."""

    pgid: int
    interval_s: float = 2.0
    base: str | None = None
    job_id: str | None = None
    config: dict[str, Any] = field(default_factory=dict)
    checkpoints: dict[int, dict[str, Any]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> CheckpointLog:
        self._thread = threading.Thread(target=self._run, daemon=True, name="checkpoint-log")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self._poll()  # the last ones

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._poll()

    def _poll(self) -> None:
        try:
            if self.base is None:
                self.base = find_rest(self.pgid)
                if self.base is None:
                    return
            if self.job_id is None:
                running = [
                    j for j in get_json(f"{self.base}/jobs/overview")["jobs"] if j["state"] == "RUNNING"
                ]
                if not running:
                    return
                self.job_id = running[0]["jid"]
                self.config = get_json(f"{self.base}/jobs/{self.job_id}/checkpoints/config")
            stats = get_json(f"{self.base}/jobs/{self.job_id}/checkpoints")
            for cp in stats.get("history", []):
                if cp.get("status") in ("COMPLETED", "FAILED"):
                    self.checkpoints[int(cp["id"])] = cp
        except (OSError, ValueError, KeyError) as exc:
            if len(self.errors) < 20:
                self.errors.append(f"{type(exc).__name__}: {exc}")

    def timeline(self) -> list[dict[str, Any]]:
        """One entry per checkpoint: when it was triggered and finished (epoch seconds) and what
        it cost, the fields a slow probe is explained with."""
        out = []
        for cid, cp in sorted(self.checkpoints.items()):
            trigger = cp["trigger_timestamp"] / 1000
            duration = cp.get("end_to_end_duration", 0) / 1000
            out.append(
                {
                    "id": cid,
                    "status": cp.get("status"),
                    "start": round(trigger, 3),
                    "end": round(trigger + duration, 3),
                    "duration_s": round(duration, 3),
                    "state_size": cp.get("state_size"),
                    "checkpointed_size": cp.get("checkpointed_size"),
                    "alignment_buffered": cp.get("alignment_buffered"),
                    "processed_data": cp.get("processed_data"),
                    "persisted_data": cp.get("persisted_data"),
                    "unaligned": cp.get("is_unaligned"),
                    "source": "rest",
                }
            )
        return out


def checkpoints_from_dir(root: Path) -> list[dict[str, Any]]:
    """Checkpoint completion times from a local checkpoint directory (REST unreachable)."""
    out = []
    for meta in sorted(root.glob("*/chk-*/_metadata")):
        with contextlib.suppress(OSError, ValueError):
            done = meta.stat().st_mtime
            out.append(
                {
                    "id": int(meta.parent.name.removeprefix("chk-")),
                    "status": "COMPLETED",
                    "end": round(done, 3),
                    "source": "checkpoint-dir",
                }
            )
    return out


# [2026-12-05T20:01:02.123+0000][12.345s][info][gc] GC(3) Pause Young (Normal) (G1 Evacuation Pause) 100M->20M(512M) 5.123ms
_GC_LINE = re.compile(r"^\[(?P<time>[^\]]+)\].*?\[gc\s*\] GC\((?P<n>\d+)\) (?P<what>.*?) (?P<ms>[0-9.]+)ms$")


def gc_pauses(log: Path) -> list[dict[str, Any]]:
    """The GC events of an `-Xlog:gc` log with a duration: when each ended and how long it took
    (epoch seconds). With G1 these are the stop-the-world pauses and the concurrent cycles."""
    out: list[dict[str, Any]] = []
    if not log.exists():
        return out
    for line in log.read_text(errors="replace").splitlines():
        m = _GC_LINE.match(line.strip())
        if m is None:
            continue
        end = datetime.strptime(m["time"], "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
        ms = float(m["ms"])
        what = m["what"]
        out.append(
            {
                "gc": int(m["n"]),
                "what": what,
                "pause": "Pause" in what,
                "start": round(end - ms / 1000, 3),
                "end": round(end, 3),
                "duration_s": round(ms / 1000, 4),
            }
        )
    return out


def overlapping(events: list[dict[str, Any]], start: float, end: float) -> list[dict[str, Any]]:
    """The events whose [start, end] overlaps [start, end] (an event with only an end is a point)."""
    return [e for e in events if e.get("start", e["end"]) <= end and e["end"] >= start]


def async_profiler_option(out: Path) -> str:
    """The -agentpath option that profiles a JVM from its start until it exits, writing collapsed
    stacks per thread to `out` (jfr_summary.py reads them).

    CPU time is sampled with setitimer (`event=itimer`): perf events (`event=cpu`) crashed the
    gateway JVM here (SIGSEGV in SharedRuntime::reresolve_call_site, OpenJDK 17.0.15). With
    `cstack=no` a native method is the leaf of its sample, so RocksDB's C++ work is counted in
    the JNI method that called it (`org/rocksdb/RocksDB.get`), where JFR sees nothing."""
    return f"-agentpath:{async_profiler_library()}=start,event=itimer,interval=2ms,threads,cstack=no,collapsed,file={out}"


def async_profiler_library() -> Path:
    """libasyncProfiler.so for this machine, unpacked once from the async-profiler jar that
    `make setup` puts in LAMBDA_JARS_DIR/profiler (mvn profile `profiler` of infra/jars/pom.xml)."""
    settings = Settings.from_env()
    folder = settings.path(settings.jars_dir) / "profiler"
    arch = PROFILER_PLATFORMS.get(platform.machine())
    jars = sorted(folder.glob("async-profiler-*.jar"))
    if arch is None or not jars:
        raise SystemExit(
            f"--profile needs the async-profiler jar in {folder} (`make setup`) on Linux "
            f"{' or '.join(PROFILER_PLATFORMS)}; this is {platform.machine()}"
        )
    member = f"{arch}/libasyncProfiler.so"
    target = folder / jars[-1].stem / member
    if not target.exists():
        with zipfile.ZipFile(jars[-1]) as jar:
            jar.extract(member, target.parents[1])
    return target
