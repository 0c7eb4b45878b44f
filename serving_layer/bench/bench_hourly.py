"""Benchmark: GET /v1/revenue/hourly for 24 hours grouped by region,category,currency vs a bare
ASGI endpoint doing one Redis HGETALL, both on uvicorn (1 worker, uvloop, httptools), same
machine, same run, same concurrency. Targets (serving_layer/README.md, "Performance check"):
p99 ratio <= 5, throughput ratio >= 0.5.

The data set has the traffic generator's cardinality (every region x its currencies x every
category, ~96 keys per hour): the 24 hours span yesterday's 12 last hours (gold, computed by
the manifest) and today's first 12 (speed view, the newest ones open). Everything is written
under a unique Redis prefix and a temporary Delta root, and removed afterwards.

    .venvs/serving/bin/python serving_layer/bench/bench_hourly.py [--seconds 15] [--clients 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import redis
from deltalake import write_deltalake

from lambda_contract.redis_layout import GroupKey, Metrics
from lambda_contract.settings import Settings
from lambda_contract.tables import GOLD, MANIFEST
from lambda_contract.windows import HOUR, format_instant, hour_id, hour_label, to_epoch_ms
from lambda_tools.generator import CATEGORIES, REGIONS

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
TOKEN = "bench-" + uuid.uuid4().hex
START = datetime(2026, 11, 24, 12, tzinfo=UTC)
LOAD_BEFORE: tuple[float, float, float] = (0.0, 0.0, 0.0)


def keys() -> list[GroupKey]:
    return [
        GroupKey(region, category, currency)
        for region, (_, _, currencies) in REGIONS.items()
        for currency, _ in currencies
        for category in CATEGORIES
    ]


def seed_bare_hour(settings: Settings, r: redis.Redis) -> str:
    """One speed-view hour of every key, for the bare endpoint's HGETALL; returns its key."""
    rnd = random.Random(5)
    key = settings.redis_layout.hour(START)
    mapping = {
        g.field(): Metrics(
            Decimal(rnd.randint(100, 10**8)).scaleb(-4), o := rnd.randint(1, 300), 0, o
        ).encode()
        for g in keys()
    }
    r.hset(key, mapping=mapping)
    return key


def seed(settings: Settings, r: redis.Redis) -> str:
    rnd = random.Random(5)
    layout = settings.redis_layout
    hours = [START + i * HOUR for i in range(24)]
    gold_rows: list[dict[str, Any]] = []
    for i, hour in enumerate(hours):
        groups = {
            key: Metrics(
                Decimal(rnd.randint(100, 10**8)).scaleb(-4),
                o := rnd.randint(1, 300),
                f := rnd.randint(0, 9),
                o + f,
            )
            for key in keys()
        }
        r.hset(layout.hour(hour), mapping={g.field(): v.encode() for g, v in groups.items()})
        r.hset(layout.hours(), hour_id(hour), "closed" if i < 21 else "open")
        if i < 12:
            gold_rows += [
                {
                    "date": hour.date(),
                    "hour": hour,
                    "region": g.region,
                    "category": g.category,
                    "currency": g.currency,
                    "revenue": v.revenue,
                    "orders": v.orders,
                    "refunds": v.refunds,
                    "events": v.events,
                }
                for g, v in groups.items()
            ]
    watermark = hours[-1] + timedelta(minutes=30)
    r.hset(
        layout.meta(),
        mapping={
            "watermark_ms": to_epoch_ms(watermark),
            "watermark": format_instant(watermark),
            "updated_ms": to_epoch_ms(datetime.now(UTC)),
        },
    )
    schema = {t.name: t for t in (GOLD, MANIFEST)}
    types = {
        "date": pa.date32(),
        "timestamp": pa.timestamp("us", tz="UTC"),
        "string": pa.string(),
        "bigint": pa.int64(),
        "boolean": pa.bool_(),
        "decimal(38,4)": pa.decimal128(38, 4),
    }

    def arrow(name: str) -> pa.Schema:
        return pa.schema([pa.field(c.name, types[c.type], nullable=c.nullable) for c in schema[name].columns])

    write_deltalake(
        settings.delta_table_url(GOLD.name),
        pa.Table.from_pylist(gold_rows, schema=arrow("gold")),
        partition_by=list(GOLD.partition_by),
    )
    manifest = [
        {
            "date": h.date(),
            "hour": h,
            "computed": True,
            "run_id": "bench",
            "bronze_version": 0,
            "input_rows": 0,
            "valid": 0,
            "duplicates": 0,
            "quarantined": 0,
            "arrived_after_previous_run": 0,
            "computed_at": datetime.now(UTC),
        }
        for h in hours[:12]
    ]
    write_deltalake(
        settings.delta_table_url(MANIFEST.name), pa.Table.from_pylist(manifest, schema=arrow(MANIFEST.name))
    )
    return layout.hour(hours[-1])


def bench_env(prefix: str, delta_root: Path) -> dict[str, str]:
    """The environment of a bench and of the API servers it starts: its own Redis prefix and Delta
    root, this run's token, and make's local defaults when run by hand."""
    env = dict(os.environ)
    env.setdefault("LAMBDA_HOME", str(REPO))
    env.setdefault("LAMBDA_REDIS_PASSWORD_FILE", str(REPO / ".local/state/secrets/redis-password"))
    env.update(LAMBDA_REDIS_PREFIX=prefix, LAMBDA_DELTA_ROOT=str(delta_root), LAMBDA_API_TOKENS=TOKEN)
    return env


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    """Stop the servers a bench started: all signalled at once, each killed after 10 s."""
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60  # a cold start on a busy machine
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError("server did not start")


async def client_loop(port: int, request: bytes, stop_at: float, record_from: float, out: list[float]) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    errors = 0
    try:
        while True:
            t0 = time.perf_counter()
            if t0 >= stop_at:
                return errors
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
                elif line.lower().startswith(b"transfer-encoding"):
                    raise RuntimeError("chunked responses are not supported by this load generator")
            await reader.readexactly(length)
            t1 = time.perf_counter()
            if status != 200:
                errors += 1
            elif t0 >= record_from:
                out.append(t1 - t0)
    finally:
        writer.close()


async def load(
    port: int, path: str, clients: int, seconds: float, warmup: float, gzip: bool
) -> dict[str, float]:
    accept = "Accept-Encoding: gzip\r\n" if gzip else ""
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {TOKEN}\r\n{accept}\r\n".encode()
    )
    now = time.perf_counter()
    latencies: list[float] = []
    errors = await asyncio.gather(
        *(client_loop(port, request, now + warmup + seconds, now + warmup, latencies) for _ in range(clients))
    )
    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    return {
        "requests": len(latencies),
        "errors": sum(errors),
        "rps": len(latencies) / seconds,
        "p50_ms": q[49] * 1000,
        "p99_ms": q[98] * 1000,
        "max_ms": latencies[-1] * 1000,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds per round and endpoint")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds (bare, serving, ...)")
    parser.add_argument("--path", help="serving path to load instead of the 24-hour query (e.g. /healthz)")
    parser.add_argument(
        "--no-gzip",
        action="store_true",
        help="do not send Accept-Encoding: gzip (HTTP clients do by default)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "serving_hourly.json")
    args = parser.parse_args()

    global LOAD_BEFORE
    LOAD_BEFORE = os.getloadavg()
    prefix = f"bench-serving-{uuid.uuid4().hex[:10]}"
    tmp = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    env = bench_env(prefix, tmp / "delta")
    settings = Settings.from_env(env)
    r = redis.Redis.from_url(settings.redis_url, password=settings.resolved_redis_password())
    procs: list[subprocess.Popen[bytes]] = []
    try:
        bare_key = seed(settings, r)
        env["BENCH_BARE_KEY"] = bare_key
        bin_dir = Path(sys.executable).parent
        serving_port, bare_port = free_port(), free_port()
        serving = subprocess.Popen(
            [str(bin_dir / "lambda-serve"), "--port", str(serving_port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(serving)
        bare = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "bare_app:app",
                "--app-dir",
                str(HERE),
                "--port",
                str(bare_port),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        procs.append(bare)
        wait_port(serving_port, serving)
        wait_port(bare_port, bare)
        path = (
            f"/v1/revenue/hourly?start={hour_label(START)}&end={hour_label(START + 24 * HOUR)}"
            "&group_by=region,category,currency"
        )
        path = args.path or path
        results: dict[str, list[dict[str, float]]] = {"bare": [], "serving": []}
        for _ in range(args.rounds):
            results["bare"].append(
                asyncio.run(load(bare_port, "/", args.clients, args.seconds, args.warmup, not args.no_gzip))
            )
            results["serving"].append(
                asyncio.run(
                    load(serving_port, path, args.clients, args.seconds, args.warmup, not args.no_gzip)
                )
            )
        summary = {
            name: {
                "rps": statistics.mean(x["rps"] for x in runs),
                "p99_ms": max(x["p99_ms"] for x in runs),
                "p50_ms": statistics.mean(x["p50_ms"] for x in runs),
                "errors": sum(x["errors"] for x in runs),
            }
            for name, runs in results.items()
        }
        ratios = {
            "p99_ratio": summary["serving"]["p99_ms"] / summary["bare"]["p99_ms"],
            "rps_ratio": summary["serving"]["rps"] / summary["bare"]["rps"],
        }
        doc = {
            "when": format_instant(datetime.now(UTC)),
            "clients": args.clients,
            "seconds": args.seconds,
            "rounds": args.rounds,
            "serving_path": path,
            "accept_gzip": not args.no_gzip,
            "loadavg_before": LOAD_BEFORE,
            "loadavg_after": os.getloadavg(),
            "keys_per_hour": len(keys()),
            "rows_per_response": 24 * len(keys()),
            "runs": results,
            "summary": summary,
            "ratios": ratios,
            "targets": {"p99_ratio_max": 5, "rps_ratio_min": 0.5},
            "pass": ratios["p99_ratio"] <= 5 and ratios["rps_ratio"] >= 0.5,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=2) + "\n")
        for name in ("bare", "serving"):
            s = summary[name]
            print(
                f"{name:8s} rps {s['rps']:8.1f}  p50 {s['p50_ms']:7.2f} ms  p99 {s['p99_ms']:7.2f} ms  errors {s['errors']}"
            )
        loadavg = f"load average (2 cores) before {LOAD_BEFORE[0]:.2f}, after {os.getloadavg()[0]:.2f}"
        print(f"{loadavg}: other work on the machine slows both endpoints")
        print(
            f"p99 ratio {ratios['p99_ratio']:.2f} (<= 5)   rps ratio {ratios['rps_ratio']:.2f} (>= 0.5)   "
            f"{'PASS' if doc['pass'] else 'FAIL'}   -> {args.out}"
        )
        return 0 if doc["pass"] else 1
    finally:
        stop(procs)
        stale = list(r.scan_iter(match=f"{prefix}:*", count=1000))
        if stale:
            r.delete(*stale)
        r.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
