"""`make bench`: every benchmark in one run, as ratios against baselines measured in the same run.

Each layer owns its benchmark script (its own environment, its own baseline); this harness runs
them one after the other, collects their JSON, checks the goals and writes:

- bench/results/summary.json   (its format: docs/benchmarks.md)
- bench/results/summary.html   (a self-contained chart of each ratio against its goal)
- a table on stdout.

`make bench CLUSTER=1` (--cluster) runs only the cluster section (issue 17, "Scaling, measured") against the
processes of `make up CLUSTER=1`: speed with 1 TaskManager against 2, batch with 1 Spark worker
against 2, serving with 1 replica against 2, each a ratio 2-vs-1 of throughputs measured in the same
run; it is written into summary.json beside the sections of the last full run. On 2 cores this
measures what distribution costs, not a speed-up.

`QUICK=1` (or --quick) uses small sizes: a smoke run that proves the harness and every script
work, not a measurement. Machines are noisy: only the ratios of one run mean anything.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

from lambda_tools import progress
from lambda_tools.progress import Progress

REPO = Path(__file__).resolve().parents[3]
VENVS = REPO / ".venvs"
RESULTS = REPO / "bench" / "results"


@dataclass(frozen=True)
class Sizes:
    speed_events: int
    freshness_rate: int
    freshness_warmup_s: int
    freshness_seconds: int
    max_rate_search: tuple[int, ...]  # the rates of the max-rate search, each a shorter step
    max_rate_warmup_s: int
    max_rate_seconds: int
    batch_rows: int
    serving_seconds: float
    serving_rounds: int
    serving_year_days: int  # gold the serving layer answers from, in bench_year.py
    serving_year_keys: int  # keys per hour
    cluster_speed_events: int  # speed_layer/bench/cluster_throughput.py, per TaskManager count
    cluster_batch_rows: int  # batch_layer/bench/cluster_scaling.py, per worker count


# Speed: 10 M records (a steady drain for both jobs: >= 10 M records), 20 s of warm-up then 180 s
# and > 1,000 probes at 20 k events/s (docs/benchmarks.md).
FULL = Sizes(
    10_000_000,
    20_000,
    20,
    180,
    (10_000, 20_000, 40_000, 60_000, 80_000, 100_000),
    10,
    45,
    10_000_000,
    15.0,
    3,
    365,
    1000,
    300_000,  # cluster speed: each drain is a full job submission on the shared cluster
    1_000_000,
)
QUICK = Sizes(20_000, 2_000, 3, 10, (1_000, 2_000), 2, 8, 100_000, 3.0, 1, 31, 100, 20_000, 100_000)

# name: (goal, direction) — "min": the ratio must be at least the goal, "max": at most.
GOALS: dict[str, tuple[float, str]] = {
    "speed.ratio_vs_flink_peer": (0.7, "min"),
    "speed.freshness_p99_s": (1.0, "max"),
    "batch.ratio_vs_duckdb": (4.0, "max"),
    "serving.p99_ratio": (5.0, "max"),
    "serving.rps_ratio": (0.5, "min"),
    "serving.rss_mb_year": (300.0, "max"),
    "serving.p99_31d_ratio": (5.0, "max"),
}
# Figures printed beside the goals, without one of their own.
INFO: tuple[str, ...] = (
    "speed.events_per_s",
    "speed.peer_events_per_s",
    "speed.max_rate_p99_under_2s",
    "speed.ratio_vs_kafka_consumer",
    "speed.steady",
    "serving.events_p99_ms",
    "serving.cold_31d_ms",
    "cluster.speed_ratio_2_vs_1",
    "cluster.batch_ratio_2_vs_1",
    "cluster.serving_ratio_2_vs_1",
)
SECTIONS: tuple[str, ...] = ("speed", "batch", "serving", "cluster")


class BenchError(RuntimeError):
    """A benchmark script failed; the message names it and shows the end of its output."""


def _run(name: str, argv: list[str], timeout_s: float, env: dict[str, str] | None = None) -> None:
    """Run one benchmark script: its output scrolls above a status line with the phase, the
    elapsed time and its last line, so a phase that prints nothing for minutes is never silent."""
    print(
        f"\n\033[1m[bench] {name}\033[0m: {' '.join(Path(a).name if a.startswith('/') else a for a in argv)}",
        flush=True,
    )
    started = time.monotonic()
    with Progress(name, prefix="[bench] ") as line:
        code = progress.run(line, argv, cwd=REPO, env=env, timeout_s=timeout_s)
    print(f"[bench] {name} finished in {time.monotonic() - started:.0f} s (exit {code})", flush=True)
    if code not in (0, 1):  # 1 = ran, but missed its own goal or exactness: still reported
        raise BenchError(f"{name} failed with exit {code}")


def _load(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())  # type: ignore[no-any-return]
    except (OSError, ValueError) as exc:
        raise BenchError(f"{path} is missing or unreadable: {exc}") from None


def run_speed(sizes: Sizes, results: Path) -> dict[str, Any]:
    py = str(VENVS / "speed" / "bin" / "python")
    thr_out, fresh_out = results / "speed_throughput.json", results / "speed_freshness.json"
    _run("speed throughput", [py, "speed_layer/bench/throughput.py", "--events", str(sizes.speed_events),
                              "--out", str(thr_out)], 7200)  # fmt: skip
    thr = _load(thr_out)
    _run("speed freshness", [py, "speed_layer/bench/freshness.py", "--rate", str(sizes.freshness_rate),
                             "--warmup-s", str(sizes.freshness_warmup_s),
                             "--seconds", str(sizes.freshness_seconds),
                             "--search", ",".join(str(r) for r in sizes.max_rate_search),
                             "--search-warmup-s", str(sizes.max_rate_warmup_s),
                             "--search-seconds", str(sizes.max_rate_seconds),
                             "--out", str(fresh_out)], 2400)  # fmt: skip
    fresh = _load(fresh_out)
    job, peer, search = thr["speed_job"], thr["peer"], fresh["search"]
    return {
        "events": thr["events"],
        # Both rates after start-up: first Redis write -> Redis holds the final (for ours: exact) view.
        "events_per_s": job["events_per_s"],
        "peer_events_per_s": peer["events_per_s"],
        "ratio_vs_flink_peer": thr["ratio_vs_flink_peer"],
        "drain_s": job["drain_s"],
        "peer_drain_s": peer["drain_s"],
        "steady": bool(job["steady"] and peer["steady"]),
        "events_per_s_wall": job["events_per_s_wall"],
        "kafka_consumer_events_per_s": thr["kafka_consumer_performance"]["records_per_s"],
        "ratio_vs_kafka_consumer": thr["ratio_vs_kafka_consumer"],
        "exact": bool(job["exact_totals"]),
        "freshness_rate": fresh["achieved_rate"],
        "freshness_p99_s": fresh["p99_s"],
        "freshness_p50_s": fresh["p50_s"],
        "freshness_probes_visible": f"{fresh['visible']}/{fresh['probes']}",
        "freshness_state_backend": fresh["state_backend"],
        "freshness_timeline": fresh["timeline"],
        "max_rate_p99_under_2s": search["max_rate_p99_under_limit"],
        "max_rate_is_lower_bound": search["lower_bound"],
        "max_rate_steps": [
            {"rate": st["target_rate"], "achieved": st["achieved_rate"], "p99_s": st["p99_s"]}
            for st in search["steps"]
        ],
    }


def run_batch(sizes: Sizes, results: Path) -> dict[str, Any]:
    out = results / "batch_recompute.json"
    _run("batch recompute", [str(VENVS / "batch" / "bin" / "python"), "batch_layer/bench/bench_recompute.py",
                             "--rows", str(sizes.batch_rows), "--out", str(out)], 3600)  # fmt: skip
    res = _load(out)
    return {
        "events": res["rows"],
        "seconds": res["spark_seconds_incl_startup"],
        "duckdb_seconds": res["duckdb_seconds"],
        "ratio_vs_duckdb": res["ratio"],
        "exact": bool(res["spark_and_duckdb_gold_agree"]),
    }


def run_serving(sizes: Sizes, results: Path) -> dict[str, Any]:
    out = results / "serving_hourly.json"
    _run("serving hourly", [str(VENVS / "serving" / "bin" / "python"), "serving_layer/bench/bench_hourly.py",
                            "--seconds", str(sizes.serving_seconds), "--rounds", str(sizes.serving_rounds),
                            "--out", str(out)], 1800)  # fmt: skip
    res = _load(out)
    events_out = results / "serving_events.json"
    _run("serving events", [str(VENVS / "serving" / "bin" / "python"), "serving_layer/bench/events_bench.py",
                            "--requests", str(100 * sizes.serving_rounds), "--out", str(events_out)],
         900)  # fmt: skip
    ev = _load(events_out)
    year_out = results / "serving_year.json"
    _run("serving year", [str(VENVS / "serving" / "bin" / "python"), "serving_layer/bench/bench_year.py",
                          "--days", str(sizes.serving_year_days), "--keys", str(sizes.serving_year_keys),
                          "--seconds", str(sizes.serving_seconds), "--rounds", str(sizes.serving_rounds),
                          "--out", str(year_out)], 1800)  # fmt: skip
    year = _load(year_out)
    s, b, r = res["summary"]["serving"], res["summary"]["bare"], res["ratios"]
    return {
        # A year of gold (bench_year.py): RSS after a query mix, a 31-day query against the bare endpoint.
        "rss_mb_year": year["rss_mb_year"],
        "p99_31d_ms": round(year["summary"]["serving"]["p99_ms"], 2),
        "p99_31d_ratio": round(year["p99_31d_ratio"], 3),
        "cold_31d_ms": max(year["cold_31d_ms"]),
        "events_p99_ms": ev["p99_ms"],  # GET /v1/revenue/events, one hour-key of 20 k events
        "events_errors": ev["errors"],
        "p99_ms": round(s["p99_ms"], 2),
        "baseline_p99_ms": round(b["p99_ms"], 2),
        "p99_ratio": round(r["p99_ratio"], 3),
        "rps": round(s["rps"], 1),
        "baseline_rps": round(b["rps"], 1),
        "rps_ratio": round(r["rps_ratio"], 3),
        "errors": s["errors"] + b["errors"],
        "exact": s["errors"] == 0 and bool(year["exact"]),
    }


def run_cluster(sizes: Sizes, results: Path, only: list[str] | None = None) -> dict[str, Any]:
    """1 against 2 of each engine's nodes, on the cluster's processes; ratios are throughput 2 / 1
    (for the batch: seconds with 1 worker / seconds with 2). The section is always read from the
    parts' own JSON (results/cluster_<part>.json); `only` runs some parts again and reads the others'
    last results, each stamped with when it was measured. A part that fails is reported as such."""
    out: dict[str, Any] = {
        "cores": os.cpu_count(),
        "note": f"{os.cpu_count()} cores shared by every node: the ratios measure what distribution "
        "costs here, not a speed-up",
    }
    for name, (env, script, args, timeout_s, read) in CLUSTER_PARTS.items():
        path = results / f"cluster_{name}.json"
        try:
            if not only or name in only:
                path.unlink(missing_ok=True)  # a failed run must not report the last run's figures
                argv = [str(VENVS / env / "bin" / "python"), script, *args(sizes), "--out", str(path)]
                _run(f"cluster {name}", argv, timeout_s, _cluster_env())
            elif not path.exists():
                out[f"{name}_error"] = f"not run (--only) and no earlier {path.name}"
                continue
            figures = read(_load(path))
        except (BenchError, subprocess.TimeoutExpired, KeyError) as exc:
            out[f"{name}_error"] = f"{type(exc).__name__}: {exc}"
            continue
        out[f"{name}_exact"] = bool(figures.pop("exact"))
        out[f"{name}_measured_at"] = datetime.fromtimestamp(path.stat().st_mtime, UTC).isoformat(
            timespec="seconds"
        )
        out.update(figures)
    out["exact"] = all(out.get(f"{name}_exact") for name in CLUSTER_PARTS)
    return out


def _cluster_env() -> dict[str, str]:
    """This environment with infra/cluster/cluster.env on top (what `make ... CLUSTER=1` exports),
    so `--cluster` measures the cluster however it was called."""
    from lambda_tools import cluster

    return cluster.environment(os.environ.get("LAMBDA_STATE_DIR", str(REPO / ".local" / "state")))


def _read_cluster_speed(res: dict[str, Any]) -> dict[str, Any]:
    one, two = res["taskmanagers"]["1"], res["taskmanagers"]["2"]
    return {
        "speed_events": res["events"],
        "speed_events_per_s_1": one["events_per_s"],
        "speed_events_per_s_2": two["events_per_s"],
        "speed_ratio_2_vs_1": round(two["events_per_s"] / one["events_per_s"], 3),
        "exact": bool(one["exact"] and two["exact"]),
    }


def _read_cluster_batch(res: dict[str, Any]) -> dict[str, Any]:
    one, two = res["workers"]["1"], res["workers"]["2"]
    return {
        "batch_events": res["rows"],
        "batch_seconds_1": one["seconds"],
        "batch_seconds_2": two["seconds"],
        "batch_ratio_2_vs_1": round(one["seconds"] / two["seconds"], 3),
        "exact": bool(one["exact"] and two["exact"]),
    }


def _read_cluster_serving(res: dict[str, Any]) -> dict[str, Any]:
    return {
        "serving_rps_1": res["rps_1"],
        "serving_rps_2": res["rps_2"],
        "serving_ratio_2_vs_1": res["rps_ratio_2_vs_1"],
        "serving_same_answer": res["same_answer"],
        "serving_redis": res["redis"],
        "exact": bool(res["same_answer"] and res["errors"] == 0),
    }


Reader = Callable[[dict[str, Any]], dict[str, Any]]
# part: (environment, script, its size arguments, timeout in seconds, reader of its JSON)
CLUSTER_PARTS: dict[str, tuple[str, str, Callable[[Sizes], list[str]], float, Reader]] = {
    "speed": ("speed", "speed_layer/bench/cluster_throughput.py",
              lambda s: ["--events", str(s.cluster_speed_events)], 3600, _read_cluster_speed),
    "batch": ("batch", "batch_layer/bench/cluster_scaling.py",
              lambda s: ["--rows", str(s.cluster_batch_rows)], 3600, _read_cluster_batch),
    "serving": ("serving", "serving_layer/bench/cluster_replicas.py",
                lambda s: ["--seconds", str(s.serving_seconds), "--rounds", str(s.serving_rounds)], 900,
                _read_cluster_serving),
}  # fmt: skip


def verdicts(summary: dict[str, Any]) -> dict[str, bool]:
    out: dict[str, bool] = {}
    for key, (goal, direction) in GOALS.items():
        section, field = key.split(".")
        if field not in summary.get(section, {}):
            continue
        value = summary[section][field]  # None: not measured (e.g. a probe never seen) misses the goal
        out[key] = value is not None and (value >= goal if direction == "min" else value <= goal)
    for section in SECTIONS:
        if section in summary:
            out[f"{section}.exact"] = bool(summary[section].get("exact"))
    return out


def table(summary: dict[str, Any], checks: dict[str, bool]) -> str:
    lines = [f"{'figure':40} {'value':>14} {'goal':>10}  ok"]
    for key, (goal, direction) in GOALS.items():
        if key in checks:
            section, field = key.split(".")
            value = summary[section][field]
            sign = ">=" if direction == "min" else "<="
            lines.append(
                f"{key:40} {value!s:>14} {sign + ' ' + str(goal):>10}  {'yes' if checks[key] else 'NO'}"
            )
    for key in INFO:
        section, field = key.split(".")
        value = summary.get(section, {}).get(field)
        if value is not None:
            lines.append(f"{key:40} {value!s:>14} {'(info)':>10}")
    for section in SECTIONS:
        if f"{section}.exact" in checks:
            lines.append(
                f"{section + ' exact result':40} {'':>14} {'':>10}  {'yes' if checks[section + '.exact'] else 'NO'}"
            )
    return "\n".join(lines)


def chart(summary: dict[str, Any], checks: dict[str, bool]) -> str:
    """One bar per goal: the measured value over the goal (1.0 = exactly at the goal)."""
    rows = []
    for i, (key, (goal, direction)) in enumerate(GOALS.items()):
        section, field = key.split(".")
        value = summary.get(section, {}).get(field)
        if value is None:
            continue
        frac = min(float(value) / goal, 3.0)
        color = "#1f7a44" if checks[key] else "#b3261e"
        y = 20 + i * 34
        rows.append(
            f'<text x="0" y="{y + 15}" font-size="12">{escape(key)}</text>'
            f'<rect x="260" y="{y}" width="{frac * 200:.1f}" height="20" fill="{color}"/>'
            f'<text x="{265 + frac * 200:.1f}" y="{y + 15}" font-size="12">{value} ({"≥" if direction == "min" else "≤"} {goal})</text>'
        )
    svg = (f'<svg viewBox="0 0 760 {40 + 34 * len(GOALS)}" xmlns="http://www.w3.org/2000/svg">'
           '<line x1="460" x2="460" y1="10" y2="200" stroke="#333" stroke-dasharray="4"/>' + "".join(rows) + "</svg>")  # fmt: skip
    machine = summary["machine"]
    return (
        "<!doctype html><meta charset=utf-8><title>Lambda platform benchmarks</title>"
        "<body style='font:14px system-ui;margin:24px'><h1>Benchmarks</h1>"
        f"<p>{escape(summary['timestamp'])} · {machine['cores']} cores · Python {machine['python']} · "
        f"Java {escape(str(machine['java']))}{' · QUICK (smoke run, not a measurement)' if summary['quick'] else ''}</p>"
        "<p>Each bar is the measured figure over its goal; the dashed line is the goal.</p>" + svg + "</body>"
    )


def java_version() -> str:
    try:
        out = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False).stderr
        return out.split('"')[1] if '"' in out else out.strip()[:40]
    except OSError:
        return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lambda-bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--quick", action="store_true", default=os.environ.get("QUICK") == "1")
    parser.add_argument(
        "--only", choices=["speed", "batch", "serving"], action="append", help="with --cluster: those parts"
    )
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="only the cluster section (1 vs 2 nodes), kept beside the last run's other sections",
    )
    parser.add_argument("--results", type=Path, default=RESULTS, help=f"output folder (default {RESULTS})")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    results: Path = args.results
    results.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {}
    if args.cluster and (results / "summary.json").exists():
        summary = _load(results / "summary.json")  # the cluster section joins the last full run's
    summary |= {
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "java": java_version()},
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
    }
    runners: dict[str, Any] = {"speed": run_speed, "batch": run_batch, "serving": run_serving}
    if args.cluster:
        runners = {"cluster": lambda sizes, results: run_cluster(sizes, results, args.only)}
    failed: list[str] = []
    for name, runner in runners.items():
        if args.only and name not in args.only and name != "cluster":
            continue
        try:
            summary[name] = runner(sizes, results)
        except (BenchError, subprocess.TimeoutExpired, KeyError) as exc:
            failed.append(name)
            summary[name] = {"error": f"{type(exc).__name__}: {exc}"}
    checks = verdicts(summary)
    summary["goals_met"] = checks
    (results / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (results / "summary.html").write_text(chart(summary, checks))
    print("\n" + table(summary, checks))
    print(f"\nwrote {results / 'summary.json'} and summary.html")
    if failed:
        print(f"benchmarks that could not run: {', '.join(failed)}", file=sys.stderr)
        return 1
    # A fast wrong answer is a failure; a missed speed goal is a finding, reported above.
    return 0 if all(v for k, v in checks.items() if k.endswith(".exact")) else 1


if __name__ == "__main__":
    sys.exit(main())
