"""Speed layer throughput vs Kafka's own consumer (docs/benchmarks.md; `make bench` runs it).

    .venvs/speed/bin/python speed_layer/bench/throughput.py --events 2000000

1. pre-loads a private topic with generated traffic (duplicates, late and malformed included)
   and computes its exact ground truth while sending;
2. drains it with Kafka's ConsumerPerformance tool (kafka-tools jar) -> baseline records/s;
3. drains it with the speed job in bounded mode into a private Redis prefix -> wall time, and the
   processing time from the first Redis write to the end (start-up excluded);
4. checks that Redis holds the exact totals (speed + late per key = the full truth, duplicates).

Writes bench/results/speed_throughput.json and prints the ratio. Deletes its topics and keys.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from common import add_job_options

from lambda_testkit.processes import speed_job
from lambda_testkit.sandbox import Sandbox, duplicates, read_view
from lambda_testkit.truth import compute_truth
from lambda_tools.generator import GeneratorConfig, history
from lambda_tools.producer import OrdersProducer, send_all

REPO = Path(__file__).resolve().parents[2]


def consumer_performance(bootstrap: str, topic: str, messages: int) -> dict[str, float | str]:
    jars = REPO / ".local" / "jars" / "kafka" / "*"
    cmd = [
        "java", "-cp", str(jars), "org.apache.kafka.tools.ConsumerPerformance",
        "--bootstrap-server", bootstrap, "--topic", topic, "--messages", str(messages),
        "--group", f"bench-perf-{uuid.uuid4().hex[:8]}", "--timeout", "120000",
    ]  # fmt: skip
    started = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    wall = time.monotonic() - started
    lines = [ln for ln in out.splitlines() if ln.strip() and not ln.startswith("start.time")]
    fields = [f.strip() for f in lines[-1].split(",")]
    # start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, ...
    return {
        "records": float(fields[4]),
        "records_per_s": float(fields[5]),
        "wall_s": wall,
        "raw": out.strip(),
    }


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--events", type=int, default=2_000_000)
    add_job_options(p, "speed_throughput.json")
    p.add_argument("--keep", action="store_true", help="keep the topic and its truth (see --reuse)")
    p.add_argument(
        "--reuse",
        type=Path,
        metavar="DIR",
        help="drain the topic a --keep run pre-loaded into DIR again (profiling; skips the pre-load)",
    )
    args = p.parse_args()
    result: dict[str, object] = {
        "events": args.events,
        "parallelism": args.parallelism,
        "started": datetime.now(UTC).isoformat(),
    }
    if args.reuse:
        work = args.reuse.resolve()
        tag, truth = pickle.loads((work / "preloaded.pickle").read_bytes())  # noqa: S301 (written by --keep)
        sb = Sandbox(work, "bench", tag=tag)
        result["events"] = truth.records
        sb.delete_keys()
    else:
        work = REPO / ".local" / "bench" / f"speed-{uuid.uuid4().hex[:6]}"
        work.mkdir(parents=True)
        sb = Sandbox(work, "bench")
        sb.create_topics()
    topic = sb.topics["LAMBDA_TOPIC_ORDERS"]
    prefix = sb.settings().redis_prefix
    keep = args.keep or args.reuse is not None
    try:
        if not args.reuse:
            t0 = time.monotonic()
            producer = OrdersProducer(sb.bootstrap, topic)
            config = GeneratorConfig(seed=7)
            start = datetime(2026, 11, 24, tzinfo=UTC)
            end = datetime(2026, 11, 25, tzinfo=UTC)
            truth = compute_truth(send_all(history(config, start, end, args.events), producer.send))
            producer.flush()
            producer.check()
            producer.close()
            result["preload_s"] = round(time.monotonic() - t0, 1)
            print(f"pre-loaded {truth.records} records in {result['preload_s']} s", flush=True)
            if keep:
                (work / "preloaded.pickle").write_bytes(pickle.dumps((sb.tag, truth)))
                print(f"kept: --reuse {work}", flush=True)

        perf = consumer_performance(sb.bootstrap, topic, truth.records)
        result["kafka_consumer_performance"] = perf
        print(f"ConsumerPerformance: {perf['records_per_s']:.0f} records/s", flush=True)

        client = sb.redis()
        started = time.monotonic()
        job = speed_job(
            sb.env(LAMBDA_SPEED_PARALLELISM=str(args.parallelism)), work / "job.log", "--bounded", "--fresh"
        )
        first_write = None
        while job.alive():
            if first_write is None and client.exists(f"{prefix}:speed:meta"):
                first_write = time.monotonic()
            time.sleep(0.2)
        ended = time.monotonic()
        if job.proc.returncode != 0:
            print(job.tail(80))
            return 1
        wall = ended - started
        processing = ended - (first_write or started)
        speed = read_view(client, prefix, "hour")
        late = read_view(client, prefix, "late")
        combined = dict(speed)
        for k, m in late.items():
            combined[k] = combined.get(k, type(m)()) + m
        dups = duplicates(client, prefix)
        exact = combined == truth.full and dups == truth.duplicates
        result["speed_job"] = {
            "wall_s": round(wall, 1),
            "records_per_s_wall": round(truth.records / wall),
            "processing_s": round(processing, 1),
            "records_per_s_processing": round(truth.records / processing),
            "exact_totals": exact,
            "late_events_classified": sum(m.events for m in late.values()),
            "late_events_by_construction": sum(m.events for m in truth.late.values()),
        }
        result["ratio_wall"] = round(truth.records / wall / perf["records_per_s"], 3)
        result["ratio_processing"] = round(truth.records / processing / perf["records_per_s"], 3)
        result["load_average"] = os.getloadavg()
        print(json.dumps(result, indent=1, default=str))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
        return 0 if exact else 1
    finally:
        if not keep:
            sb.delete_topics()
            sb.delete_keys()


if __name__ == "__main__":
    sys.exit(main())
