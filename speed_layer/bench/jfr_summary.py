"""CPU share per task and per operator, and the top frames, from a JVM profile.

    .venvs/speed/bin/python speed_layer/bench/jfr_summary.py rec.jfr [--skip-s 30] [--json out.json]
    .venvs/speed/bin/python speed_layer/bench/jfr_summary.py prof.collapsed

Reads either of the two profiles the speed benchmarks record:
- a Java Flight Recorder file (`--jfr`), through `jfr print --events jdk.ExecutionSample
  --stack-depth 256 FILE` (JDK 17's `jfr` tool). Each execution sample is a thread found running
  Java code, so the share of samples is the share of the JVM's CPU spent in Java: native code (RocksDB
  behind its JNI methods, the kernel side of a socket) is not sampled;
- async-profiler's collapsed stacks per thread (`--profile`): CPU-time samples of every thread,
  native code included, each counted in the JNI method that called it. They carry no times, so
  `--skip-s` does not apply; start-up shows as threads of its own (the planner's py4j threads, the
  JIT compilers).

- per task: the sampled thread's name without its subtask suffix: a Flink task thread is named
  after its operator chain (`Source: orders_src[1] -> Calc[2] -> ...`);
- per operator: within a task, the innermost operator entry on the stack (`processElement`,
  `emitRecord`, `finishBundle`, ... of an operator, function or generated class such as
  `StreamExecCalc$134`): the operator whose own code, or whose callees, were running;
- top frames: the leaf frame of each sample (self time), overall and per operator.

A generated class (`StreamExecCalc$134`) is not named after its plan node; its top frames, and
`lambda-speed --print-sql`, tell which stage it is.

`--skip-s` drops the first seconds of the recording (the JVM's start-up and the job's deployment).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_SUBTASK = re.compile(r" \(\d+/\d+\)(#\d+)?$")
_FRAME = re.compile(r"^\s+(?P<frame>[^\s(]+)\((?P<args>[^)]*)\)")
_ENTRY = re.compile(r"\.(processElement[12]?|processBatch|finishBundle|onTimer|onProcessingTime|emitRecord)$")
_RUNTIME = ("org.apache.flink.streaming.runtime.", "org.apache.flink.runtime.")
_TIME = re.compile(r"startTime = (\d+):(\d+):(\d+(?:\.\d+)?)")
_TID = re.compile(r" tid=\d+$")


@dataclass
class Sample:
    seconds: float  # time of day of the sample
    thread: str
    frames: list[str] = field(default_factory=list)  # leaf first
    count: int = 1  # samples with this stack (a collapsed profile's line)


def task_of(thread: str) -> str:
    return _SUBTASK.sub("", thread)


def operator_of(frames: list[str]) -> str:
    """The innermost operator entry on the stack (leaf first), as its class's simple name."""
    for frame in frames:
        if _ENTRY.search(frame) and not frame.startswith(_RUNTIME):
            cls = frame.rsplit(".", 1)[0]
            return cls.rsplit(".", 1)[-1]
    return "(no operator on the stack)"


def parse(lines: Iterable[str]) -> Iterator[Sample]:
    current: Sample | None = None
    in_stack = False
    for line in lines:
        stripped = line.strip()
        if stripped == "jdk.ExecutionSample {":
            current = Sample(0.0, "")
        elif current is None:
            continue
        elif stripped.startswith("startTime = "):
            m = _TIME.search(stripped)
            if m:
                current.seconds = int(m[1]) * 3600 + int(m[2]) * 60 + float(m[3])
        elif stripped.startswith("sampledThread = "):
            current.thread = stripped.split('"')[1] if '"' in stripped else stripped[16:]
        elif stripped.startswith("stackTrace = ["):
            in_stack = True
        elif in_stack and stripped == "]":
            in_stack = False
        elif in_stack:
            m = _FRAME.match(line)
            if m:
                current.frames.append(m["frame"])
        elif stripped == "}":
            yield current
            current = None


def parse_collapsed(lines: Iterable[str]) -> Iterator[Sample]:
    """async-profiler's `collapsed` output with `threads`: `[name tid=N];root;...;leaf COUNT`."""
    for line in lines:
        stack, _, count = line.rstrip("\n").rpartition(" ")
        thread, _, frames = stack.partition(";")
        if not (thread.startswith("[") and count.isdigit()):
            continue
        name = _TID.sub("", thread[1:-1])
        yield Sample(0.0, name, [f.replace("/", ".") for f in reversed(frames.split(";"))], int(count))


def read(path: Path) -> Iterator[Sample]:
    with path.open("rb") as f:
        recording = f.read(4) == b"FLR\0"  # a JFR file's magic
    if recording:
        yield from read_jfr(path)
    else:
        with path.open(errors="replace") as lines:
            yield from parse_collapsed(lines)


def read_jfr(jfr: Path) -> Iterator[Sample]:
    cmd = ["jfr", "print", "--events", "jdk.ExecutionSample", "--stack-depth", "256", str(jfr)]
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, errors="replace") as proc:
        assert proc.stdout is not None
        yield from parse(proc.stdout)
    if proc.returncode:
        raise SystemExit(f"`{' '.join(cmd)}` failed with exit {proc.returncode}")


def summarise(samples: Iterable[Sample], skip_s: float = 0.0, top: int = 25) -> dict[str, Any]:
    tasks: Counter[str] = Counter()
    operators: dict[str, Counter[str]] = {}
    operator_leaves: dict[tuple[str, str], Counter[str]] = {}
    leaves: Counter[str] = Counter()
    total = 0
    first: float | None = None
    previous = 0.0
    day = 0.0
    for s in samples:
        if s.seconds < previous - 43_200:  # the recording ran past midnight
            day += 86_400
        previous = s.seconds
        at = s.seconds + day
        first = at if first is None else first
        if at - first < skip_s:
            continue
        total += s.count
        task = task_of(s.thread)
        tasks[task] += s.count
        op = operator_of(s.frames)
        operators.setdefault(task, Counter())[op] += s.count
        if s.frames:
            leaves[s.frames[0]] += s.count
            operator_leaves.setdefault((task, op), Counter())[s.frames[0]] += s.count

    def share(n: int) -> float:
        return round(100 * n / total, 1) if total else 0.0

    return {
        "samples": total,
        "skipped_s": skip_s,
        "tasks": [
            {
                "task": task,
                "samples": n,
                "share_pct": share(n),
                "operators": [
                    {
                        "operator": op,
                        "samples": k,
                        "share_pct": share(k),
                        "top_frames": [
                            {"frame": f, "share_pct": share(m)}
                            for f, m in operator_leaves.get((task, op), Counter()).most_common(5)
                        ],
                    }
                    for op, k in operators[task].most_common()
                ],
            }
            for task, n in tasks.most_common()
        ],
        "top_frames": [{"frame": f, "samples": n, "share_pct": share(n)} for f, n in leaves.most_common(top)],
    }


def table(summary: dict[str, Any], tasks: int = 12, width: int = 100) -> str:
    lines = [f"{summary['samples']} samples (first {summary['skipped_s']} s skipped)", ""]
    lines.append("CPU share per task (operator chain) and, within it, per operator:")
    for t in summary["tasks"][:tasks]:
        name = t["task"] if len(t["task"]) <= width else t["task"][: width - 3] + "..."
        lines.append(f"{t['share_pct']:6.1f}%  {name}")
        for op in t["operators"][:6]:
            if op["share_pct"] >= 0.5:
                lines.append(f"          {op['share_pct']:6.1f}%  {op['operator']}")
            if op["share_pct"] >= 5:
                for f in op["top_frames"][:3]:
                    lines.append(f"                    {f['share_pct']:6.1f}%  {f['frame']}")
    lines += ["", "Top frames (self time):"]
    lines += [f"{f['share_pct']:6.1f}%  {f['frame']}" for f in summary["top_frames"]]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("jfr", type=Path)
    p.add_argument("--skip-s", type=float, default=0.0, help="ignore the recording's first seconds")
    p.add_argument("--top", type=int, default=25, help="top frames to list")
    p.add_argument("--json", type=Path, help="also write the summary as JSON")
    args = p.parse_args(argv)
    summary = summarise(read(args.jfr), args.skip_s, args.top)
    summary["recording"] = str(args.jfr)
    print(table(summary))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
