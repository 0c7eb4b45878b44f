"""`make bench QUICK=1` inside `make test`: the harness and every benchmark script run end to end.

A smoke run on small sizes (docs/benchmarks.md): it proves that each script still starts its engines, drains
its data, checks its own result for exactness and reports the figures summary.json promises.
The figures themselves are not judged here (speed goals live in `make bench`, never in a timed
test); only that they exist, are positive numbers, and that every result was exact.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

# The fields of the summary format (docs/benchmarks.md), per section.
FIELDS = {
    "speed": [
        "events",
        "events_per_s",
        "peer_events_per_s",
        "ratio_vs_flink_peer",
        "kafka_consumer_events_per_s",
        "ratio_vs_kafka_consumer",
        "freshness_p99_s",
    ],
    "batch": ["events", "seconds", "duckdb_seconds", "ratio_vs_duckdb"],
    "serving": [
        "p99_ms",
        "baseline_p99_ms",
        "p99_ratio",
        "rps",
        "baseline_rps",
        "rps_ratio",
        "rss_mb_year",
        "p99_31d_ms",
        "p99_31d_ratio",
        "cold_31d_ms",
    ],
}


def test_quick_bench_writes_a_complete_exact_summary(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "lambda_tools.bench", "--quick", "--results", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1500,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["quick"] is True
    assert summary["machine"]["cores"] >= 1
    for section, fields in FIELDS.items():
        got = summary[section]
        assert "error" not in got, got
        assert got["exact"] is True, got
        for name in fields:
            assert isinstance(got[name], int | float) and got[name] > 0, (section, name, got)
    # A smoke run on a busy machine may find no rate with p99 <= 2 s: the figure exists, maybe 0.
    assert isinstance(summary["speed"]["max_rate_p99_under_2s"], int)
    assert summary["speed"]["max_rate_p99_under_2s"] >= 0
    assert Path(summary["speed"]["freshness_timeline"]).exists()
    assert summary["goals_met"]["speed.exact"] and summary["goals_met"]["batch.exact"]
    assert "<svg" in (tmp_path / "summary.html").read_text()
    assert "figure" in proc.stdout  # the table on stdout
