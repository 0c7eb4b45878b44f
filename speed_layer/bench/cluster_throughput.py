"""Speed throughput on the Flink session cluster with 1 TaskManager against 2 (`make bench CLUSTER=1`).

    .venvs/speed/bin/python speed_layer/bench/cluster_throughput.py --events 300000   # CLUSTER=1 env

Run with the cluster's environment (infra/cluster/cluster.env: `make ... CLUSTER=1` exports it,
lambda_tools.bench passes it) and the cluster up. One private topic is pre-loaded once with
generated traffic for yesterday (throughput.py's pre-load); the job then drains it in bounded mode
twice, submitted to the session cluster: with both TaskManagers at parallelism 2, and with
flink-taskmanager-2 stopped at parallelism 1 (it is started again afterwards by
lambda_tools.cluster.flink.start). Each rate is measured as throughput.py measures it (records /
time from the first hour written to Redis until Redis holds the final view), and each drain must
leave the exact totals in Redis. On this 2-core machine every node shares the same cores, so the
ratio shows what distribution costs here, not a speed-up.

Writes --out as {"events", "taskmanagers": {"1": {...}, "2": {...}}, "ratio_2_vs_1", ...}.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final, cast

import redis
from common import REPO, delete_keys
from throughput import drain, preload

from lambda_contract import redis_clients
from lambda_contract.redis_layout import Metrics
from lambda_contract.settings import Settings
from lambda_testkit.processes import speed_job, wait_until
from lambda_testkit.sandbox import Sandbox, duplicates, read_view
from lambda_testkit.truth import Truth
from lambda_tools import services
from lambda_tools.cluster import flink
from speed_layer import cluster

DEFAULT_EVENTS: Final = 300_000


def cluster_sandbox(work: Path) -> Sandbox:
    """A sandbox on the cluster's brokers and Redis: the cluster's settings from this process's
    environment (CLUSTER=1) for everything the sandbox does not name itself."""
    if not os.environ.get("LAMBDA_FLINK_JOBMANAGER"):
        raise SystemExit("LAMBDA_FLINK_JOBMANAGER is not set: run with the cluster's environment (CLUSTER=1)")
    return Sandbox.over(work, "bench", os.environ)


def cluster_env(sb: Sandbox, run: str) -> dict[str, str]:
    """The job's environment: the sandbox's, with checkpoints of each run in a folder of their own
    beside the cluster's (on the object store)."""
    env = sb.env()
    base = os.environ.get("LAMBDA_CHECKPOINT_DIR", "")
    if base.startswith("s3://"):
        bucket = base.split("/")[2]
        env["LAMBDA_CHECKPOINT_DIR"] = f"s3://{bucket}/bench/{sb.tag}/{run}/checkpoints"
    else:
        env["LAMBDA_CHECKPOINT_DIR"] = (sb.tmp / sb.tag / run / "checkpoints").as_uri()
    return env


def taskmanagers(wanted: int, timeout_s: float = 120) -> None:
    """Leave `wanted` TaskManagers registered: stop the later ones, or start the missing ones (with
    the cluster's own settings, this process's environment)."""
    settings = Settings.from_env()
    state = settings.state_path
    if wanted >= len(flink.TASKMANAGERS):
        flink.start(settings, state)
        return
    for name in flink.TASKMANAGERS[wanted:]:
        pid = services.running_pid(state, name)
        if pid is not None:
            services.stop_pid(pid)
        services.pid_file(state, name).unlink(missing_ok=True)
    url = flink.rest_url(settings)
    if not wait_until(lambda: len(flink._registered(url)) == wanted, timeout_s, interval=1.0):
        raise RuntimeError(f"the JobManager still lists {flink._registered(url)} after {timeout_s:.0f} s")


def cancel_submitted(settings: Settings, log: Path) -> None:
    """Cancel the job a client that was stopped early had submitted (it runs on without it)."""
    submitted = re.search(r"job ([0-9a-f]{32}) submitted", log.read_text(errors="replace"))
    if submitted and submitted[1] in cluster.SessionCluster(settings).active_jobs():
        cluster.SessionCluster(settings).cancel(submitted[1])


def measure(sb: Sandbox, truth: Truth, n: int, work: Path, timeout_s: float) -> dict[str, Any]:
    """One bounded drain of the topic with `n` TaskManagers at parallelism `n`."""
    env = cluster_env(sb, f"tm{n}") | {"LAMBDA_SPEED_PARALLELISM": str(n)}
    settings = Settings.from_env(env)
    taskmanagers(n)
    # The test kit's readers and the bench helpers take a redis.Redis; the cluster's client answers
    # the same calls (scan_iter over every master, pipelines split per node).
    client = cast(redis.Redis, redis_clients.sync_client(settings))
    prefix = settings.redis_prefix
    delete_keys(client, prefix)
    try:
        args = ("--bounded", "--fresh", "--group-id", f"bench-cluster-{sb.tag}-{n}")
        log = work / f"job-tm{n}.log"
        child = speed_job(env, log, *args)
        try:
            drained = drain(child, client, prefix, timeout_s)
        except BaseException:
            child.kill()
            cancel_submitted(settings, log)
            raise
        if drained.exit_code != 0:
            raise RuntimeError(f"the job with {n} TaskManager(s) failed:\n{log.read_text()[-4000:]}")
        combined = dict(read_view(client, prefix, "hour"))
        for k, m in read_view(client, prefix, "late").items():
            combined[k] = combined.get(k, Metrics()) + m
        exact = combined == truth.full and duplicates(client, prefix) == truth.duplicates
        return drained.figures(truth.records) | {"parallelism": n, "exact": exact}
    finally:
        delete_keys(client, prefix)
        client.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=DEFAULT_EVENTS, help=f"records (default {DEFAULT_EVENTS:,})")
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "cluster_speed.json")
    p.add_argument("--workers", type=int, default=2, help="pre-load processes")
    p.add_argument("--timeout-s", type=float, default=1800, help="per drain")
    args = p.parse_args()
    work = REPO / ".local" / "bench" / f"cluster-speed-{uuid.uuid4().hex[:6]}"
    work.mkdir(parents=True)
    sb = cluster_sandbox(work)
    sb.create_topics()
    result: dict[str, Any] = {
        "events": args.events,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "taskmanagers": {},
    }
    try:
        truth, took = preload(sb, args.events, args.workers)
        result["events"] = truth.records
        result["preload_s"] = round(took, 1)
        for n in (2, 1):
            t0 = time.monotonic()
            result["taskmanagers"][str(n)] = measure(sb, truth, n, work, args.timeout_s)
            print(
                f"{n} TaskManager(s): {result['taskmanagers'][str(n)]} ({time.monotonic() - t0:.0f} s)",
                flush=True,
            )
        one, two = result["taskmanagers"]["1"], result["taskmanagers"]["2"]
        result["ratio_2_vs_1"] = round(two["events_per_s"] / one["events_per_s"], 3)
        result["exact"] = bool(one["exact"] and two["exact"])
        result["load_average"] = os.getloadavg()
        print(json.dumps(result, indent=1, default=str))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
        return 0 if result["exact"] else 1
    finally:
        taskmanagers(len(flink.TASKMANAGERS))  # the cluster as it was: both TaskManagers
        sb.delete_topics()


if __name__ == "__main__":
    sys.exit(main())
