"""Benchmark: the serving layer over a year of gold (1,000 keys an hour, 8.76 M rows): its memory
after a mix of queries, and the p99 of a 31-day query against the bare endpoint of
bench_hourly.py (one HGETALL), both on uvicorn, same machine, same run, same concurrency.
Targets (docs/benchmarks.md): `rss_mb_year` <= 300 MB, `p99_31d_ratio` <= 5.

Gold and the manifest are generated directly as Delta tables in the contract's schemas
(pyarrow + delta-rs, no Spark) and cached under .local/state/bench/, so reruns reuse them. The
mix asks each month as one 31-day query (cold: each reads its dates from Delta) and 24-hour
queries grouped by every key; the RSS of the serving process is read after it. One 31-day
answer is checked against the table itself (native revenue per currency, exact Decimal).

    .venvs/serving/bin/python serving_layer/bench/bench_year.py [--days 365] [--keys 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import redis
from bench_hourly import HERE, REPO, TOKEN, bench_env, free_port, load, seed_bare_hour, stop, wait_port
from deltalake import DeltaTable, write_deltalake

from lambda_contract.settings import Settings
from lambda_contract.tables import GOLD, MANIFEST
from lambda_contract.windows import HOUR, format_instant, hour_label
from lambda_testkit.views import arrow_schema

FIRST_DAY = date(2025, 12, 1)  # a year the shipped FX table covers
REGIONS = ("us-east", "us-west", "eu-west", "eu-central", "eu-north", "ap-south", "ap-northeast",
           "ap-southeast", "sa-east", "af-south")  # fmt: skip
CURRENCIES = ("USD", "EUR", "GBP", "JPY")
FORMAT = 1  # bump when the generated data changes, so a cached copy is not reused


def key_columns(keys: int) -> tuple[list[str], list[str], list[str]]:
    """`keys` distinct (region, category, currency): regions x currencies x as many categories."""
    per = len(REGIONS) * len(CURRENCIES)
    categories = [f"cat-{i:03d}" for i in range(-(-keys // per))]
    combos = [(r, c, cur) for c in categories for r in REGIONS for cur in CURRENCIES][:keys]
    return [x[0] for x in combos], [x[1] for x in combos], [x[2] for x in combos]


def decimal_column(units: list[int]) -> pa.Array:
    """decimal(38,4) from unscaled values, exactly (16-byte two's complement, little-endian)."""
    data = b"".join(u.to_bytes(16, "little", signed=True) for u in units)
    return pa.Array.from_buffers(pa.decimal128(38, 4), len(units), [None, pa.py_buffer(data)])


def month_of_gold(days: list[date], keys: int, rng: random.Random) -> pa.Table:
    regions, categories, currencies = key_columns(keys)
    hours = [datetime(d.year, d.month, d.day, tzinfo=UTC) + i * HOUR for d in days for i in range(24)]
    n = len(hours) * keys
    orders = [rng.randrange(50) for _ in range(n)]
    refunds = [rng.randrange(3) for _ in range(n)]
    columns = {
        "date": pa.array([h.date() for h in hours for _ in range(keys)], pa.date32()),
        "hour": pa.array([h for h in hours for _ in range(keys)], pa.timestamp("us", tz="UTC")),
        "region": pa.array(regions * len(hours)),
        "category": pa.array(categories * len(hours)),
        "currency": pa.array(currencies * len(hours)),
        "revenue": decimal_column([rng.randrange(-(10**6), 10**9) for _ in range(n)]),
        "orders": pa.array(orders, pa.int64()),
        "refunds": pa.array(refunds, pa.int64()),
        "events": pa.array([o + f for o, f in zip(orders, refunds, strict=True)], pa.int64()),
    }
    return pa.Table.from_pydict(columns, schema=arrow_schema(GOLD))


def year_of_gold(root: Path, days: int, keys: int) -> Path:
    """The cached Delta root with `days` of gold and their manifest; generated once."""
    marker = root / "complete.json"
    spec = {"format": FORMAT, "first_day": FIRST_DAY.isoformat(), "days": days, "keys": keys}
    if marker.exists() and json.loads(marker.read_text()) == spec:
        print(f"[year] reusing {days} days x {keys} keys/hour under {root}", flush=True)
        return root
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    rng = random.Random(19)
    all_days = [FIRST_DAY + timedelta(days=i) for i in range(days)]
    started = time.monotonic()
    for i in range(0, days, 31):
        chunk = all_days[i : i + 31]
        write_deltalake(str(root / GOLD.name), month_of_gold(chunk, keys, rng), mode="append",
                        partition_by=list(GOLD.partition_by))  # fmt: skip
        print(
            f"[year] gold: {i + len(chunk)}/{days} days written ({time.monotonic() - started:.0f} s)",
            flush=True,
        )
    at = datetime.now(UTC)
    manifest = [
        {"date": d, "hour": datetime(d.year, d.month, d.day, tzinfo=UTC) + h * HOUR, "computed": True,
         "run_id": "bench-year", "bronze_version": 0, "input_rows": 0, "valid": 0, "duplicates": 0,
         "quarantined": 0, "arrived_after_previous_run": 0, "computed_at": at}
        for d in all_days for h in range(24)
    ]  # fmt: skip
    write_deltalake(str(root / MANIFEST.name), pa.Table.from_pylist(manifest, schema=arrow_schema(MANIFEST)))
    marker.write_text(json.dumps(spec))
    return root


def rss_mb(pid: int) -> tuple[float, float]:
    """Resident and peak resident memory of a process, MB (VmRSS, VmHWM)."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def get(port: int, path: str) -> tuple[dict[str, Any], float]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=300) as response:  # noqa: S310 (loopback)
        doc: dict[str, Any] = json.loads(response.read())
    return doc, (time.perf_counter() - started) * 1000


def query(start: datetime, hours: int, extra: str) -> str:
    return f"/v1/revenue/hourly?start={hour_label(start)}&end={hour_label(start + hours * HOUR)}{extra}"


def exact_31d(port: int, root: Path, start: datetime) -> bool:
    """A 31-day answer by currency (native sums) equals the table's own sums, to the last digit."""
    doc, _ = get(port, query(start, 744, "&group_by=currency"))
    served: dict[str, Decimal] = {}
    for row in doc["rows"]:
        if row["status"] != "final":
            return False
        served[row["currency"]] = served.get(row["currency"], Decimal(0)) + Decimal(row["revenue_native"])
    days = [(start + timedelta(days=i)).date().isoformat() for i in range(31)]
    data = DeltaTable(str(root / GOLD.name)).to_pyarrow_table(columns=["currency", "revenue"],
                                                              filters=[("date", "in", days)])  # fmt: skip
    sums = data.group_by("currency").aggregate([("revenue", "sum")]).to_pylist()
    truth = {r["currency"]: r["revenue_sum"] for r in sums}
    return served == truth and bool(truth)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--keys", type=int, default=1000, help="keys per hour")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds per round and endpoint")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=REPO / ".local" / "state" / "bench")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "serving_year.json")
    args = parser.parse_args()
    if args.days < 31:
        parser.error("--days must be at least 31 (one 31-day query)")
    loadavg_before = os.getloadavg()
    root = year_of_gold(args.cache / f"gold-year-{args.days}d-{args.keys}k", args.days, args.keys)
    prefix = f"bench-year-{uuid.uuid4().hex[:10]}"
    env = bench_env(prefix, root)
    settings = Settings.from_env(env)
    r = redis.Redis.from_url(settings.redis_url, password=settings.resolved_redis_password())
    procs: list[subprocess.Popen[bytes]] = []
    try:
        env["BENCH_BARE_KEY"] = seed_bare_hour(settings, r)
        bin_dir = Path(sys.executable).parent
        serving_port, bare_port = free_port(), free_port()
        serving = subprocess.Popen([str(bin_dir / "lambda-serve"), "--port", str(serving_port)], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        procs.append(serving)
        bare = subprocess.Popen([sys.executable, "-m", "uvicorn", "bare_app:app", "--app-dir", str(HERE),
                                 "--port", str(bare_port), "--no-access-log", "--log-level", "warning"],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        procs.append(bare)
        wait_port(serving_port, serving)
        wait_port(bare_port, bare)
        rss_start, _ = rss_mb(serving.pid)
        first = datetime(FIRST_DAY.year, FIRST_DAY.month, FIRST_DAY.day, tzinfo=UTC)
        months = [first + timedelta(days=31 * i) for i in range(args.days // 31)]
        cold_31d = []
        for start in months:  # every month once, cold, then the same ones warm
            cold_31d.append(get(serving_port, query(start, 744, "&group_by=region"))[1])
        warm_31d = [get(serving_port, query(start, 744, "&group_by=region"))[1] for start in months]
        for i in range(0, args.days, max(1, args.days // 30)):
            get(serving_port, query(first + timedelta(days=i), 24, "&group_by=region,category,currency"))
        get(serving_port, query(months[-1], 168, "&region=eu-west,us-east&currency=EUR"))
        exact = exact_31d(serving_port, root, months[0])
        rss_after, rss_peak = rss_mb(serving.pid)
        path = query(months[len(months) // 2], 744, "")  # the dashboard's 31-day view: one row an hour
        results: dict[str, list[dict[str, float]]] = {"bare": [], "serving": []}
        for _ in range(args.rounds):
            results["bare"].append(
                asyncio.run(load(bare_port, "/", args.clients, args.seconds, args.warmup, True))
            )
            results["serving"].append(
                asyncio.run(load(serving_port, path, args.clients, args.seconds, args.warmup, True))
            )
        rss_end, rss_peak = rss_mb(serving.pid)
        summary = {
            name: {
                "rps": statistics.mean(x["rps"] for x in runs),
                "p99_ms": max(x["p99_ms"] for x in runs),
                "p50_ms": statistics.mean(x["p50_ms"] for x in runs),
                "errors": sum(x["errors"] for x in runs),
            }
            for name, runs in results.items()
        }
        ratio = summary["serving"]["p99_ms"] / summary["bare"]["p99_ms"]
        doc = {
            "when": format_instant(datetime.now(UTC)),
            "days": args.days,
            "keys_per_hour": args.keys,
            "gold_rows": args.days * 24 * args.keys,
            "gold_cache_mb": settings.serving_gold_cache_mb,
            "loadavg_before": loadavg_before,
            "loadavg_after": os.getloadavg(),
            "rss_mb_start": round(rss_start, 1),
            "rss_mb_year": round(rss_after, 1),  # after the mix (every month once, cold and warm)
            "rss_mb_end": round(rss_end, 1),  # after the load as well
            "rss_mb_peak": round(rss_peak, 1),
            "cold_31d_ms": [round(x, 1) for x in cold_31d],
            "warm_31d_ms": [round(x, 1) for x in warm_31d],
            "serving_path": path,
            "clients": args.clients,
            "seconds": args.seconds,
            "rounds": args.rounds,
            "runs": results,
            "summary": summary,
            "p99_31d_ratio": ratio,
            "exact": exact and summary["serving"]["errors"] == 0,
            "targets": {"rss_mb_year_max": 300, "p99_31d_ratio_max": 5},
        }
        doc["pass"] = bool(doc["exact"]) and rss_after <= 300 and ratio <= 5
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"gold {doc['gold_rows']:,} rows ({args.days} days x {args.keys} keys/hour)")
        print(
            f"RSS start {rss_start:.0f} MB, after the mix {rss_after:.0f} MB (<= 300), peak {rss_peak:.0f} MB"
        )
        print(f"31-day query cold {max(cold_31d):.0f} ms at most, warm {max(warm_31d):.1f} ms at most")
        for name in ("bare", "serving"):
            s = summary[name]
            print(
                f"{name:8s} rps {s['rps']:8.1f}  p50 {s['p50_ms']:7.2f} ms  p99 {s['p99_ms']:7.2f} ms  errors {s['errors']}"
            )
        print(
            f"31-day p99 ratio {ratio:.2f} (<= 5)   exact {exact}   {'PASS' if doc['pass'] else 'FAIL'}   -> {args.out}"
        )
        return 0 if doc["pass"] else 1
    finally:
        stop(procs)
        stale = list(r.scan_iter(match=f"{prefix}:*", count=1000))
        if stale:
            r.delete(*stale)
        r.close()


if __name__ == "__main__":
    sys.exit(main())
