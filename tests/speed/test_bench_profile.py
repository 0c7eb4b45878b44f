"""The benchmarks' profile summary reads async-profiler's collapsed stacks as it reads JFR samples."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.unit


def bench_script(name: str) -> Any:
    """A module of speed_layer/bench (scripts, not a package), loaded from its file."""
    path = Path(__file__).resolve().parents[2] / "speed_layer" / "bench" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


jfr_summary = bench_script("jfr_summary")

DEDUP = "OverAggregate[12] -> Calc[13]"
PROCESS = "org/apache/flink/table/runtime/operators/over/ProcTimeUnboundedPrecedingFunction.processElement"
RUN = "java/lang/Thread.run;org/apache/flink/streaming/runtime/tasks/StreamTask.invoke"
COLLAPSED = f"""\
[{DEDUP} (1/2)#0 tid=101];{RUN};{PROCESS};org/rocksdb/RocksDB.get 70
[{DEDUP} (2/2)#0 tid=102];{RUN};{PROCESS};org/rocksdb/RocksDB.put 10
[{DEDUP} (2/2)#0 tid=102];{RUN};org/apache/flink/streaming/runtime/io/RecordWriter.emit 5
[C2 CompilerThre tid=7];[no_Java_frame] 15
"""


def test_collapsed_stacks_give_tasks_operators_and_native_leaves(tmp_path: Path) -> None:
    profile = tmp_path / "job.collapsed"
    profile.write_text(COLLAPSED)
    summary = jfr_summary.summarise(jfr_summary.read(profile))
    assert summary["samples"] == 100
    tasks = {t["task"]: t for t in summary["tasks"]}
    # Both subtasks of one chain are one task; the thread id is not part of the name.
    assert set(tasks) == {DEDUP, "C2 CompilerThre"}
    dedup = tasks[DEDUP]
    assert dedup["share_pct"] == 85.0
    over = dedup["operators"][0]
    assert (over["operator"], over["share_pct"]) == ("ProcTimeUnboundedPrecedingFunction", 80.0)
    # The JNI method is the leaf: RocksDB's native time is counted in it.
    assert over["top_frames"][0] == {"frame": "org.rocksdb.RocksDB.get", "share_pct": 70.0}
    assert summary["top_frames"][0]["samples"] == 70
