"""Benchmark: the same day recomputed on the Spark standalone cluster with 1 worker, then 2.

Cluster mode's batch (`make batch CLUSTER=1`): the real CLI against spark://127.0.0.1:17077, the
Delta tables on the object store (s3a://lambda/bench/...). One worker is the application capped at
one core (spark.cores.max=1: one executor, one worker's JVM); two is both workers' executors. Wall
clock includes the driver's and the executors' start-up, as bench_recompute.py's does. On a
machine whose cores both workers share, the ratio measures what distribution costs, not a speed-up.

Both runs' gold must equal DuckDB's gold of the same bronze (bench_recompute's SQL), or the
timing compares different work: each run says whether it did (`exact`). Each run waits until
no other application holds the cluster's cores (the standalone master serves them in turn).

    .venvs/batch/bin/python batch_layer/bench/cluster_scaling.py --rows 1000000 --out scaling.json

Starts the object store and the Spark cluster if they are not running (lambda_tools.cluster);
the bronze day is generated once per size and kept on the object store.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench_recompute import DAY, DUCKDB_GOLD_SQL, DUCKDB_SILVER_SQL, generate

GOLD_COLUMNS = ("hour", "region", "category", "currency", "revenue", "orders", "refunds", "events")


def _row(values: Any) -> tuple[Any, ...]:
    """A gold row comparable across readers: hours as aware UTC datetimes (DuckDB's are naive)."""
    return tuple(v.replace(tzinfo=UTC) if isinstance(v, datetime) and v.tzinfo is None else v for v in values)


def cluster_env() -> dict[str, str]:
    """cluster.env's settings (what `make ... CLUSTER=1` exports), the object store and the Spark
    cluster started if missing."""
    from lambda_contract.settings import Settings
    from lambda_tools import cluster
    from lambda_tools.cluster import objectstore, spark

    state = Path(os.environ.get("LAMBDA_STATE_DIR", ".local/state")).resolve()
    env = cluster.environment(state)
    settings = Settings.from_env(env)
    objectstore.start(settings, state)
    spark.start(settings, state)
    return env


def _gold(delta_root: str, env: dict[str, str]) -> set[tuple[Any, ...]]:
    from deltalake import DeltaTable

    from lambda_contract.settings import Settings
    from lambda_contract.storage import delta_rs_options

    options = delta_rs_options(Settings.from_env(env))
    table = DeltaTable(f"{delta_root}/gold", storage_options=options).to_pyarrow_table()
    return {_row(r[c] for c in GOLD_COLUMNS) for r in table.to_pylist()}


def duckdb_gold(delta_root: str, env: dict[str, str]) -> set[tuple[Any, ...]]:
    """Gold computed by DuckDB from the same bronze rows (read with delta-rs), the reference."""
    import duckdb
    from deltalake import DeltaTable

    from lambda_contract.settings import Settings
    from lambda_contract.storage import delta_rs_options

    options = delta_rs_options(Settings.from_env(env))
    bronze = DeltaTable(f"{delta_root}/bronze", storage_options=options).to_pyarrow_table()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("bronze", bronze)
    con.execute(f"CREATE TEMP TABLE silver AS {DUCKDB_SILVER_SQL.replace('read_parquet($files)', 'bronze')}")
    rows = con.execute(f"SELECT {', '.join(GOLD_COLUMNS)} FROM ({DUCKDB_GOLD_SQL})").fetchall()  # noqa: S608
    return {_row(r) for r in rows}


def wait_until_idle(timeout_s: float = 1800.0) -> None:
    """The standalone master gives an application every free core, first come first served: a run
    started while another application holds the workers would time the wait. So each run starts
    once the master lists no running application."""
    from lambda_tools.cluster import spark

    deadline = time.monotonic() + timeout_s
    while True:
        with urllib.request.urlopen(f"http://{spark.HOST}:{spark.MASTER_UI_PORT}/json/", timeout=5) as resp:
            active = [a["id"] for a in json.load(resp)["activeapps"]]
        if not active:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"the Spark cluster stayed busy for {timeout_s:.0f} s: {active}")
        print(f"waiting for the Spark cluster: {', '.join(active)} running", flush=True)
        time.sleep(10)


def recompute(delta_root: str, env: dict[str, str], workers: int) -> float:
    """Seconds of one `lambda-batch run` of DAY on `workers` of the cluster's workers."""
    wait_until_idle()
    cli = Path(sys.executable).with_name("lambda-batch")
    run_env = dict(env, LAMBDA_DELTA_ROOT=delta_root, LAMBDA_PUSHGATEWAY_URL="")
    started = time.monotonic()
    done = subprocess.run(
        [str(cli), "run", "--date", DAY.isoformat(), "--no-ingest", "--no-auto",
         "--conf", f"spark.cores.max={workers}"],
        env=run_env,
        capture_output=True,
        text=True,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"lambda-batch run on {workers} worker(s) failed:\n{done.stderr[-3000:]}")
    return elapsed


def measure(rows: int) -> dict[str, Any]:
    """Seconds with 1 worker and with 2 for a day of `rows` events, each checked against DuckDB."""
    env = cluster_env()
    delta_root = f"s3a://lambda/bench/cluster-batch/rows-{rows}/delta"
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    from lambda_contract.settings import Settings
    from lambda_contract.storage import delta_rs_options

    try:
        DeltaTable(f"{delta_root}/bronze", storage_options=delta_rs_options(Settings.from_env(env)))
    except TableNotFoundError:
        print(f"generating {rows} bronze rows under {delta_root} ...", flush=True)
        generate(delta_root, rows, env)
    reference = duckdb_gold(delta_root, env)
    out: dict[str, Any] = {"rows": rows, "delta_root": delta_root, "cpus": os.cpu_count(), "workers": {}}
    for workers in (1, 2):
        seconds = recompute(delta_root, env, workers)
        exact = _gold(delta_root, env) == reference
        print(f"{workers} worker(s): {seconds:.1f} s, gold equals DuckDB's: {exact}", flush=True)
        out["workers"][str(workers)] = {"seconds": round(seconds, 2), "exact": exact}
    one, two = out["workers"]["1"]["seconds"], out["workers"]["2"]["seconds"]
    out["ratio_2_vs_1"] = round(one / two, 3)
    out["load_average_1m_at_end"] = round(os.getloadavg()[0], 2)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    result = measure(args.rows)
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
