"""Benchmark: GET /v1/revenue/events for one hour and key of 20,000 events (serving.events_p99_ms).

The route reads the hour's silver partition filtered to the key, sums the counted events of the
whole hour-key (the totals) and returns one page. The silver table is written here with delta-rs
in the layout the recompute writes (partitioned by date and hour_of_day, one file per hour sorted
by key and Kafka position; docs/specs/delta.md), with the manifest naming its run; the hour also
holds 5,000 events of other keys, which the read must skip. The server is the real one
(`lambda-serve`, uvicorn), requests go one at a time over one keep-alive connection: the figure
is the latency of one request, first pages and later pages (cursors) alternating.

    .venvs/serving/bin/python serving_layer/bench/events_bench.py [--events 20000] [--requests 300]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
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
from urllib.parse import urlencode

import pyarrow as pa
from bench_hourly import REPO, TOKEN, bench_env, free_port, stop, wait_port
from deltalake import write_deltalake

from lambda_contract.settings import Settings
from lambda_contract.tables import MANIFEST, SILVER
from lambda_contract.windows import hour_label, hours_of_date
from lambda_testkit.views import arrow_schema

HOUR = datetime(2026, 11, 20, 13, tzinfo=UTC)
KEY = ("eu-west", "books", "EUR")
OTHER_KEYS = [("eu-west", "toys", "EUR"), ("us-east", "books", "USD"), ("eu-west", "books", "GBP")]
RUN_ID = "bench-run"


def silver_rows(events: int, others: int) -> list[dict[str, Any]]:
    """`events` rows of KEY (about 2% duplicates, 5% refunds) and `others` of other keys."""
    rows = []
    keys = [KEY] * events + [OTHER_KEYS[i % len(OTHER_KEYS)] for i in range(others)]
    for i, (region, category, currency) in enumerate(keys):
        duplicate = i % 50 == 49
        rows.append(
            {
                "date": HOUR.date(),
                "hour_of_day": HOUR.hour,
                "hour": HOUR,
                "region": region,
                "category": category,
                "currency": currency,
                "event_type": "refund" if i % 20 == 0 else "purchase",
                "amount": Decimal(i % 5000 + 1) / 100,
                "counted": not duplicate,
                "reason": "duplicate" if duplicate else None,
                "event_id": f"evt-{i - 1 if duplicate else i}",
                "event_time": HOUR + timedelta(milliseconds=i * 97 % 3_600_000),
                "kafka_partition": i % 3,
                "kafka_offset": i // 3,
                "run_id": RUN_ID,
            }
        )
    rows.sort(
        key=lambda r: (r["region"], r["category"], r["currency"], r["kafka_partition"], r["kafka_offset"])
    )
    return rows


def seed(settings: Settings, events: int, others: int) -> None:
    write_deltalake(
        settings.delta_table_url(SILVER.name),
        pa.Table.from_pylist(silver_rows(events, others), schema=arrow_schema(SILVER)),
        partition_by=list(SILVER.partition_by),
    )
    now = datetime.now(UTC)
    manifest = [
        {"date": h.date(), "hour": h, "computed": True, "run_id": RUN_ID, "bronze_version": 0,
         "input_rows": events + others if h == HOUR else 0, "valid": 0, "duplicates": 0,
         "quarantined": 0, "arrived_after_previous_run": 0, "computed_at": now}
        for h in hours_of_date(HOUR.date())
    ]  # fmt: skip
    write_deltalake(
        settings.delta_table_url(MANIFEST.name), pa.Table.from_pylist(manifest, schema=arrow_schema(MANIFEST))
    )


def measure(port: int, events: int, requests: int, warmup: int) -> dict[str, Any]:
    """Latency of one request at a time; checks every answer's totals cover the whole key."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    base = {"hour": hour_label(HOUR), "region": KEY[0], "category": KEY[1], "currency": KEY[2], "limit": 100}
    counted = sum(1 for i in range(events) if i % 50 != 49)  # silver_rows' duplicates are not
    latencies: list[float] = []
    cursor = None
    errors = 0
    for i in range(warmup + requests):
        query = base | ({"cursor": cursor} if cursor and i % 2 else {})
        started = time.perf_counter()
        conn.request("GET", "/v1/revenue/events?" + urlencode(query), headers=headers)
        response = conn.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - started
        doc = json.loads(body) if response.status == 200 else None
        if doc is None or doc["totals"]["events"] != counted or len(doc["events"]) != 100:
            errors += 1
        else:
            cursor = doc["next_cursor"]
        if i >= warmup:
            latencies.append(elapsed * 1000)
    conn.close()
    latencies.sort()
    return {
        "requests": requests,
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 2),
        "max_ms": round(latencies[-1], 2),
        "errors": errors,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20_000, help="events of the requested hour and key")
    parser.add_argument("--others", type=int, default=5_000, help="events of other keys in the same hour")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "serving_events.json")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="events-bench-"))
    env = bench_env(f"bench-events-{uuid.uuid4().hex[:10]}", tmp / "delta")
    settings = Settings.from_env(env)
    server: subprocess.Popen[bytes] | None = None
    try:
        print(
            f"writing silver: {args.events} events of the key, {args.others} of others, one hour", flush=True
        )
        seed(settings, args.events, args.others)
        port = free_port()
        server = subprocess.Popen(
            [str(Path(sys.executable).parent / "lambda-serve"), "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(port, server)
        print(f"measuring {args.requests} requests (after {args.warmup} warm-up)", flush=True)
        result = measure(port, args.events, args.requests, args.warmup)
    finally:
        if server is not None:
            stop([server])
        shutil.rmtree(tmp, ignore_errors=True)
    doc = {"events_in_key": args.events, "events_in_other_keys": args.others, "limit": 100, **result,
           "loadavg_after": os.getloadavg()}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    print(json.dumps(doc, indent=1))
    return 0 if result["errors"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
