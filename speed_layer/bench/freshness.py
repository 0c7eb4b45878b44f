"""Speed layer freshness: produce -> visible in Redis, at a steady rate (docs/benchmarks.md).

    .venvs/speed/bin/python speed_layer/bench/freshness.py --rate 20000 --seconds 60

Runs the speed job (unbounded) on a private topic and Redis prefix, produces background orders at
`--rate` events/s with event times = now, and 4 probe events per second, each in its own region
(`probe-<n>`). A poller thread records when each probe's field appears in its hour's hash. Prints
p50/p95/p99 of produce -> visible and the achieved production rate; writes
bench/results/speed_freshness.json. Deletes its topics and keys.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from common import add_job_options
from confluent_kafka import Producer

from lambda_contract.windows import hour_id
from lambda_testkit.processes import speed_job, wait_until
from lambda_testkit.sandbox import Sandbox

REPO = Path(__file__).resolve().parents[2]


def event(n: int, region: str, now: float) -> bytes:
    ts = datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return (
        f'{{"event_id":"f-{n}","event_type":"purchase","event_time":"{ts}","order_id":"o-{n}",'
        f'"customer_id":"c-{n % 1000}","region":"{region}","category":"books","currency":"USD",'
        f'"amount":"{n % 100}.25"}}'
    ).encode()


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--rate", type=int, default=20_000)
    add_job_options(p, "speed_freshness.json")
    p.add_argument("--seconds", type=int, default=60)
    p.add_argument("--probes-per-s", type=int, default=4)
    args = p.parse_args()
    work = REPO / ".local" / "bench" / f"fresh-{uuid.uuid4().hex[:6]}"
    work.mkdir(parents=True)
    sb = Sandbox(work, "bench")
    sb.create_topics()
    topic = sb.topics["LAMBDA_TOPIC_ORDERS"]
    prefix = sb.settings().redis_prefix
    client = sb.redis()
    # librdkafka, not kafka-python: a Python producer costs ~50 us per record, a whole core at
    # 20k/s, which the job under test would then not have; this one costs a few us.
    producer = Producer(
        {
            "bootstrap.servers": sb.bootstrap,
            "acks": "1",
            "linger.ms": 5,
            "batch.size": 256 * 1024,
            "queue.buffering.max.messages": 1_000_000,
        }
    )

    def send(value: bytes, partition: int | None = None) -> None:
        while True:
            try:
                if partition is None:
                    producer.produce(topic, value)
                else:
                    producer.produce(topic, value, partition=partition)
                return
            except BufferError:  # local queue full: let deliveries drain
                producer.poll(0.01)

    job = speed_job(sb.env(LAMBDA_SPEED_PARALLELISM=str(args.parallelism)), work / "job.log", "--fresh")
    try:
        # Warm-up: the job is ready once a first event shows in Redis.
        send(event(0, "warmup", time.time()), partition=0)
        for part in (1, 2):
            send(event(part, "warmup", time.time()), partition=part)
        producer.flush()
        assert wait_until(lambda: client.exists(f"{prefix}:speed:meta") == 1 or not job.alive(), 600)
        assert job.alive(), job.tail()
        sent: dict[str, tuple[float, str]] = {}
        seen: dict[str, float] = {}
        stop = threading.Event()

        def poll() -> None:
            while not stop.is_set():
                pending = [k for k in sent if k not in seen]
                if pending:
                    pipe = client.pipeline(transaction=False)
                    for k in pending:
                        pipe.hexists(sent[k][1], f"{k}|books|USD")
                    now = time.time()
                    for k, ok in zip(pending, pipe.execute(), strict=True):
                        if ok:
                            seen[k] = now
                time.sleep(0.01)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        n, probe = 10, 0
        started = time.time()
        per_tick = args.rate // 100
        next_probe = started
        while (now := time.time()) < started + args.seconds:
            for _ in range(per_tick):
                n += 1
                send(event(n, "bg", now))
            producer.poll(0)
            if now >= next_probe:
                probe += 1
                region = f"probe-{probe}"
                send(event(n + 10_000_000, region, now))
                producer.flush()
                key = f"{prefix}:speed:hour:{hour_id(datetime.fromtimestamp(now, UTC))}"
                sent[region] = (time.time(), key)
                next_probe = now + 1 / args.probes_per_s
            lag = started + (n / args.rate) - time.time()
            if lag > 0:
                time.sleep(lag)
        producer.flush()
        achieved = (n - 10) / (time.time() - started)
        wait_until(lambda: len(seen) == len(sent), 30)
        stop.set()
        latencies = [seen[k] - sent[k][0] for k in sent if k in seen]
        result = {
            "parallelism": args.parallelism,
            "target_rate": args.rate,
            "achieved_rate": round(achieved),
            "probes": len(sent),
            "visible": len(latencies),
            "p50_s": round(percentile(latencies, 0.50), 3) if latencies else None,
            "p95_s": round(percentile(latencies, 0.95), 3) if latencies else None,
            "p99_s": round(percentile(latencies, 0.99), 3) if latencies else None,
            "max_s": round(max(latencies), 3) if latencies else None,
            "load_average": os.getloadavg(),
        }
        print(json.dumps(result, indent=1))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        return 0
    finally:
        job.kill()
        producer.flush(10)
        sb.delete_topics()
        sb.delete_keys()


if __name__ == "__main__":
    sys.exit(main())
