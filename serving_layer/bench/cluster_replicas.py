"""Benchmark: the serving layer's requests per second with 1 replica against 2 (issue 17, "Scaling").

Two `lambda-serve` processes (the replicas, as `make serve CLUSTER=1` runs them) on the same data:
bench_hourly.py's 24 hours x ~96 keys, the speed view written through the cluster-aware client to
whatever Redis the settings name (Redis Cluster under `make bench CLUSTER=1`), gold in a temporary
Delta root. The client spreads the same 24-hour query over the targets: all 16 connections to one
replica, then 8 to each of two, alternating for `--rounds`. Both replicas must give the same answer.

On one 2-core machine the two replicas and the client share the cores, so this measures what a
second replica costs or gains here, not a scale-out: report it as the ratio rps(2) / rps(1).

    .venvs/serving/bin/python serving_layer/bench/cluster_replicas.py [--seconds 10] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench_hourly import REPO, START, TOKEN, bench_env, free_port, load, seed, stop, wait_port

from lambda_contract import redis_clients
from lambda_contract.settings import Settings
from lambda_contract.windows import HOUR, format_instant, hour_label

PATH = (
    f"/v1/revenue/hourly?start={hour_label(START)}&end={hour_label(START + 24 * HOUR)}"
    "&group_by=region,category,currency"
)


async def spread(ports: list[int], clients: int, seconds: float, warmup: float) -> dict[str, float]:
    """`clients` connections split evenly over `ports`, all at once; totals over the targets."""
    share = clients // len(ports)
    parts = await asyncio.gather(*(load(p, PATH, share, seconds, warmup, True) for p in ports))
    return {
        "rps": sum(x["rps"] for x in parts),
        "requests": sum(x["requests"] for x in parts),
        "errors": sum(x["errors"] for x in parts),
        "p50_ms": statistics.mean(x["p50_ms"] for x in parts),
        "p99_ms": max(x["p99_ms"] for x in parts),
    }


def answer(port: int) -> Any:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}{PATH}", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 (loopback)
        return json.loads(resp.read())


def differences(a: Any, b: Any, path: str = "") -> list[str]:
    """The paths at which two JSON documents differ (at most 10)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{path}/{k}" for k in sorted(set(a) ^ set(b))]
        for k in sorted(set(a) & set(b)):
            out += differences(a[k], b[k], f"{path}/{k}")
        return out[:10]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [
            d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in differences(x, y, f"{path}/{i}")
        ][:10]
    return [] if a == b else [path or "/"]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per round and setup")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--clients", type=int, default=16, help="connections in all (even)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (1 replica, 2 replicas)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "serving_replicas.json")
    args = parser.parse_args()
    if args.clients < 2 or args.clients % 2:
        parser.error("--clients must be even and at least 2")

    load_before = os.getloadavg()
    prefix = f"bench-replicas-{uuid.uuid4().hex[:10]}"
    tmp = Path(tempfile.mkdtemp(prefix="serving-replicas-"))
    env = bench_env(prefix, tmp / "delta")
    settings = Settings.from_env(env)
    client = redis_clients.sync_client(settings)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        seed(settings, client)  # type: ignore[arg-type]  # hset/hget are all it uses, on any client
        ports = [free_port(), free_port()]
        serve = str(Path(sys.executable).parent / "lambda-serve")
        for port in ports:
            procs.append(
                subprocess.Popen(
                    [serve, "--port", str(port)],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        for port, proc in zip(ports, procs, strict=True):
            wait_port(port, proc)
        # Both replicas warm (gold read, caches filled) before anything is measured or compared.
        asyncio.run(spread(ports, args.clients, args.warmup, 0.0))
        diff = differences(answer(ports[0]), answer(ports[1]))
        same = not diff
        runs: dict[str, list[dict[str, float]]] = {"one": [], "two": []}
        for _ in range(args.rounds):
            runs["one"].append(asyncio.run(spread(ports[:1], args.clients, args.seconds, args.warmup)))
            runs["two"].append(asyncio.run(spread(ports, args.clients, args.seconds, args.warmup)))
        summary = {
            name: {
                "rps": statistics.mean(x["rps"] for x in rs),
                "p99_ms": max(x["p99_ms"] for x in rs),
                "errors": sum(int(x["errors"]) for x in rs),
            }
            for name, rs in runs.items()
        }
        doc = {
            "when": format_instant(datetime.now(UTC)),
            "redis": redis_clients.deployment(settings),
            "cores": os.cpu_count(),
            "clients": args.clients,
            "seconds": args.seconds,
            "rounds": args.rounds,
            "path": PATH,
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
            "runs": runs,
            "summary": summary,
            "rps_1": round(summary["one"]["rps"], 1),
            "rps_2": round(summary["two"]["rps"], 1),
            "rps_ratio_2_vs_1": round(summary["two"]["rps"] / summary["one"]["rps"], 3),
            "same_answer": same,
            "differences": diff,
            "errors": summary["one"]["errors"] + summary["two"]["errors"],
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=2) + "\n")
        print(
            f"1 replica {doc['rps_1']:.1f} req/s, 2 replicas {doc['rps_2']:.1f} req/s: "
            f"ratio {doc['rps_ratio_2_vs_1']:.2f} on {os.cpu_count()} cores (Redis: {doc['redis']}); "
            f"same answer: {same}; errors {doc['errors']}; load before {load_before[0]:.1f} -> {args.out}"
        )
        return 0 if same and doc["errors"] == 0 else 1
    finally:
        stop(procs)
        for key in list(client.scan_iter(match=f"{prefix}:*", count=1000)):
            client.delete(key)
        client.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
