"""Speed layer freshness: produce -> visible in Redis, at a steady rate (docs/benchmarks.md).

    .venvs/speed/bin/python speed_layer/bench/freshness.py                  # speed.freshness_p99_s
    .venvs/speed/bin/python speed_layer/bench/freshness.py --search 10000,20000,30000,40000
                                                        # and speed.max_rate_p99_under_2s after it
    .venvs/speed/bin/python speed_layer/bench/freshness.py --warmup-s 5 --seconds 20   # a quick run

Runs the speed job (unbounded, production checkpoint cadence and state backend, GC logged) on a
private topic and Redis prefix and produces background orders (librdkafka) at `--rate` events/s
with event times = now, over 56 keys (7 regions x 8 categories), plus `--probes-per-s` probe
events, each in a region of its own (`probe-<n>`), round robin over the partitions. A poller
thread records when each probe's field appears in its hour's hash; a probe's latency runs from
just before it is handed to the producer to that moment.

First `--warmup-s` of production whose probes are not counted, then `--seconds` of measurement.
Unseen probes count as infinitely late. Prints p50/p95/p99/max and the achieved rate.

`--search R1,R2,...` then searches the highest steady rate whose p99 stays within
`--p99-limit-s` (2 s), in the same job: one shorter step per rate (`--search-warmup-s`,
`--search-seconds`), ascending, each starting once the previous step's backlog is gone (a probe
visible within 1 s); it stops at the first step whose p99 exceeds the limit or whose producer
fell short of its rate by more than 5 %. The answer is the last rate that passed (a lower bound
when every step passed).

Writes bench/results/speed_freshness.json and, beside it, speed_freshness_timeline.json: every
probe, every checkpoint (the mini-cluster's REST API, or the checkpoint directory) and every GC
event (`-Xlog:gc`) with wall-clock times, and for each slow probe the checkpoints and GC events
that overlapped its wait. Deletes its topics and keys.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import jvm
import redis
from common import REPO, add_job_options, job_env, percentile
from confluent_kafka import Producer

from lambda_contract.redis_layout import RedisLayout
from lambda_testkit.processes import Child, speed_job, wait_until
from lambda_testkit.sandbox import Sandbox
from lambda_tools.generator import CATEGORIES, REGIONS

SLOW_S: Final = 1.0  # a probe slower than this (or in the slowest 1 %) is explained in the timeline
UNSEEN_WAIT_S: Final = 30.0


def stamp(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def event(n: int, region: str, category: str, ts: str) -> bytes:
    return (
        f'{{"event_id":"f-{n}","event_type":"purchase","event_time":"{ts}","order_id":"o-{n}",'
        f'"customer_id":"c-{n % 1000}","region":"{region}","category":"{category}","currency":"USD",'
        f'"amount":"{n % 100}.25"}}'
    ).encode()


BACKGROUND_KEYS: Final = [(r, c) for r in REGIONS for c in CATEGORIES]
PROBE_CATEGORY: Final = "books"


@dataclass
class Probe:
    n: int
    partition: int
    key: str  # the hour's hash
    field: str
    sent: float
    phase: str
    rate: int
    visible: float | None = None

    def seen(self) -> bool:
        return self.visible is not None

    @property
    def latency(self) -> float:
        return math.inf if self.visible is None else self.visible - self.sent


@dataclass
class Step:
    rate: int
    warmup_s: float
    seconds: float
    achieved_rate: float = 0.0
    probes: list[Probe] = field(default_factory=list)

    def measured(self) -> list[Probe]:
        return [p for p in self.probes if p.phase == "measure"]

    def summary(self) -> dict[str, Any]:
        lat = [p.latency for p in self.measured()]

        def q(x: float) -> float | None:
            v = percentile(lat, x) if lat else math.inf
            return None if math.isinf(v) else round(v, 3)

        return {
            "target_rate": self.rate,
            "achieved_rate": round(self.achieved_rate),
            "warmup_s": self.warmup_s,
            "seconds": self.seconds,
            "probes": len(lat),
            "visible": sum(1 for v in lat if not math.isinf(v)),
            "p50_s": q(0.50),
            "p95_s": q(0.95),
            "p99_s": q(0.99),
            "max_s": q(1.0),
        }


class Bench:
    """One running job, a producer and a probe poller."""

    def __init__(self, sb: Sandbox, job: Child, client: redis.Redis, probes_per_s: float) -> None:
        self.sb, self.job, self.client = sb, job, client
        self.topic = sb.topics["LAMBDA_TOPIC_ORDERS"]
        self.layout = RedisLayout(sb.redis_prefix)
        self.probes_per_s = probes_per_s
        # librdkafka, not kafka-python: a Python producer costs ~50 us per record, a whole core at
        # 20k/s, which the job under test would then not have; this one costs a few us.
        self.producer = Producer(
            {
                "bootstrap.servers": sb.bootstrap,
                "acks": "all",
                "enable.idempotence": True,
                "linger.ms": 5,
                "batch.size": 256 * 1024,
                "queue.buffering.max.messages": 1_000_000,
            }
        )
        self.n = 0
        self.probe_n = 0
        self.pending: list[Probe] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.poller = threading.Thread(target=self._poll, daemon=True, name="probe-poller")
        self.poller.start()

    def send(self, value: bytes, partition: int | None = None) -> None:
        while True:
            try:
                if partition is None:
                    self.producer.produce(self.topic, value)
                else:
                    self.producer.produce(self.topic, value, partition=partition)
                return
            except BufferError:  # local queue full: let deliveries drain
                self.producer.poll(0.01)

    def _poll(self) -> None:
        while not self.stop.is_set():
            with self.lock:
                pending = [p for p in self.pending if p.visible is None]
            if pending:
                pipe = self.client.pipeline(transaction=False)
                for p in pending:
                    pipe.hexists(p.key, p.field)
                answers = pipe.execute()
                now = time.time()
                for p, ok in zip(pending, answers, strict=True):
                    if ok:
                        p.visible = now
                with self.lock:
                    self.pending = [p for p in self.pending if p.visible is None]
            time.sleep(0.01)

    def probe(self, phase: str, rate: int = 0) -> Probe:
        self.probe_n += 1
        self.n += 1
        region = f"probe-{self.probe_n}"
        partition = self.probe_n % self.sb.partitions
        sent = time.time()
        hour = datetime.fromtimestamp(sent, UTC).replace(minute=0, second=0, microsecond=0)
        fld = f"{region}|{PROBE_CATEGORY}|USD"
        p = Probe(self.probe_n, partition, self.layout.hour(hour), fld, sent, phase, rate)
        self.send(event(10_000_000_000 + self.n, region, PROBE_CATEGORY, stamp(sent)), partition)
        with self.lock:
            self.pending.append(p)
        return p

    def produce(self, step: Step, phase: str, seconds: float) -> None:
        """Background events at `step.rate` for `seconds`, with probes; paced by the wall clock."""
        per_tick = max(1, step.rate // 100)
        started = time.time()
        sent = 0
        next_probe = started
        while (now := time.time()) < started + seconds:
            ts = stamp(now)
            for _ in range(per_tick):
                self.n += 1
                region, category = BACKGROUND_KEYS[self.n % len(BACKGROUND_KEYS)]
                self.send(event(self.n, region, category, ts))
            sent += per_tick
            self.producer.poll(0)
            if now >= next_probe:
                step.probes.append(self.probe(phase, step.rate))
                next_probe += 1 / self.probes_per_s
            lag = started + sent / step.rate - time.time()
            if lag > 0:
                time.sleep(lag)
        if phase == "measure":
            step.achieved_rate = sent / (time.time() - started)

    def run_step(self, step: Step) -> Step:
        if step.warmup_s > 0:
            self.produce(step, "warmup", step.warmup_s)
        self.produce(step, "measure", step.seconds)
        self.producer.flush(30)
        wait_until(
            lambda: all(p.visible is not None for p in step.probes) or not self.job.alive(), UNSEEN_WAIT_S
        )
        return step

    def settle(self, timeout_s: float = 180) -> bool:
        """Wait, producing nothing but a probe every 0.5 s, until a probe is visible within 1 s
        (the previous step's backlog is gone)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.job.alive():
            p = self.probe("settle")
            self.producer.flush(10)
            wait_until(p.seen, 1.0, 0.02)
            if p.latency <= 1.0:
                return True
            time.sleep(0.5)
        return False

    def close(self) -> None:
        self.stop.set()
        self.poller.join(5)
        self.producer.flush(10)


def explain(
    probes: list[Probe], checkpoints: list[dict[str, Any]], gc: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The slow probes (over SLOW_S, or the slowest 1 %) with what overlapped their wait."""
    measured = [p for p in probes if p.phase == "measure"]
    if not measured:
        return []
    threshold = min(SLOW_S, percentile([p.latency for p in measured], 0.99))
    out = []
    for p in sorted(measured, key=lambda p: p.latency, reverse=True):
        if p.latency < threshold:
            break
        end = p.visible if p.visible is not None else p.sent + UNSEEN_WAIT_S
        cps = jvm.overlapping(checkpoints, p.sent, end)
        gcs = jvm.overlapping(gc, p.sent, end)
        out.append(
            {
                "n": p.n,
                "rate": p.rate,
                "sent": round(p.sent, 3),
                "latency_s": None if p.visible is None else round(p.latency, 3),
                "checkpoints": [{"id": c["id"], "duration_s": c.get("duration_s")} for c in cps],
                "gc_pause_s": round(sum(g["duration_s"] for g in gcs if g["pause"]), 4),
                "gc_events": len(gcs),
            }
        )
    return out


def timeline(steps: list[Step], cps: jvm.CheckpointLog, checkpoint_dir: Path, gc_log: Path) -> dict[str, Any]:
    checkpoints = cps.timeline() or jvm.checkpoints_from_dir(checkpoint_dir)
    gc = jvm.gc_pauses(gc_log)
    probes = [p for s in steps for p in s.probes]
    return {
        "clock": "epoch seconds, UTC wall clock",
        "checkpoint_source": "rest" if cps.checkpoints else "checkpoint-dir",
        "checkpoint_config": cps.config,
        "rest": cps.base,
        "rest_errors": cps.errors,
        "slow_probes": explain(probes, checkpoints, gc),
        "probes": [
            {
                "n": p.n,
                "rate": p.rate,
                "phase": p.phase,
                "partition": p.partition,
                "sent": round(p.sent, 3),
                "visible": None if p.visible is None else round(p.visible, 3),
                "latency_s": None if p.visible is None else round(p.latency, 3),
            }
            for p in probes
        ],
        "checkpoints": checkpoints,
        "gc": gc,
    }


def max_rate(bench: Bench, steps: list[Step], rates: list[int], args: argparse.Namespace) -> dict[str, Any]:
    """The highest of `rates` whose step keeps p99 within the limit (0 if none), in the running job."""
    passed, tried = 0, []
    for rate in rates:
        if not bench.settle():
            print("the backlog of the previous step did not drain", flush=True)
            break
        step = bench.run_step(Step(rate, args.search_warmup_s, args.search_seconds))
        steps.append(step)
        s = step.summary()
        tried.append(s)
        ok = s["p99_s"] is not None and s["p99_s"] <= args.p99_limit_s
        steady = s["achieved_rate"] >= 0.95 * rate
        print(f"rate {rate}: p99 {s['p99_s']} s, achieved {s['achieved_rate']}/s", flush=True)
        if not (ok and steady):
            break
        passed = rate
    return {
        "p99_limit_s": args.p99_limit_s,
        "max_rate_p99_under_limit": passed,
        "lower_bound": passed == rates[-1],  # every rate passed: the real maximum is higher
        "steps": tried,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rate", type=int, default=20_000, help="background events/s (default 20000)")
    add_job_options(p, "speed_freshness.json")
    p.add_argument("--warmup-s", type=float, default=20, help="production before probes count (default 20)")
    p.add_argument("--seconds", type=float, default=180, help="measured production (default 180)")
    p.add_argument("--probes-per-s", type=float, default=6, help="default 6: over 1,000 probes in 180 s")
    p.add_argument("--search", metavar="RATES", help="comma-separated rates: the max-rate search")
    p.add_argument("--search-warmup-s", type=float, default=10, help="per search step (default 10)")
    p.add_argument("--search-seconds", type=float, default=45, help="per search step (default 45)")
    p.add_argument("--p99-limit-s", type=float, default=2.0, help="--search: a step passes at p99 <= this")
    args = p.parse_args()
    search = sorted(int(r) for r in args.search.split(",")) if args.search else []
    timeline_out = args.out.with_name(args.out.stem + "_timeline.json")

    work = REPO / ".local" / "bench" / f"fresh-{uuid.uuid4().hex[:6]}"
    work.mkdir(parents=True)
    sb = Sandbox(work, "bench")
    sb.create_topics()
    client = sb.redis()
    gc_log = work / "gc.log"
    job = speed_job(
        job_env(sb, args, gc_log=gc_log, jfr=args.jfr, profile=args.profile), work / "job.log", "--fresh"
    )
    cps = jvm.CheckpointLog(job.proc.pid).start()
    bench = Bench(sb, job, client, args.probes_per_s)
    steps: list[Step] = []
    try:
        # Ready once a first event shows in Redis (every partition gets one).
        ready = [bench.probe("startup") for _ in range(sb.partitions)]
        bench.producer.flush(10)
        t0 = time.monotonic()
        assert wait_until(lambda: all(p.seen() for p in ready) or not job.alive(), 600), "no probe visible"
        assert job.alive(), job.tail()
        startup_s = time.monotonic() - t0
        print(f"job ready after {startup_s:.0f} s", flush=True)
        result: dict[str, Any] = {
            "parallelism": args.parallelism,
            "checkpoint_interval_s": args.checkpoint_interval_s,
            "probes_per_s": args.probes_per_s,
            "startup_s": round(startup_s, 1),
        }
        step = bench.run_step(Step(args.rate, args.warmup_s, args.seconds))
        steps.append(step)
        result |= step.summary()
        result["enough"] = result["probes"] >= 1000 and args.seconds >= 180 and args.warmup_s >= 20
        if search:
            result["search"] = max_rate(bench, steps, search, args)
        cps.stop()
        tl = timeline(steps, cps, sb.checkpoint_dir, gc_log)
        result["state_backend"] = cps.config.get("state_backend")
        result["checkpoints"] = len(tl["checkpoints"])
        result["checkpoint_max_s"] = max((c.get("duration_s") or 0 for c in tl["checkpoints"]), default=None)
        result["gc_pauses"] = sum(1 for g in tl["gc"] if g["pause"])
        result["gc_pause_max_s"] = max((g["duration_s"] for g in tl["gc"] if g["pause"]), default=None)
        result["slow_probes"] = len(tl["slow_probes"])
        result["timeline"] = str(timeline_out)
        result["load_average"] = os.getloadavg()
        print(json.dumps(result, indent=1))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1) + "\n")
        timeline_out.write_text(json.dumps(tl, indent=1) + "\n")
        return 0
    finally:
        bench.close()
        cps.stop()
        jvm.stop_jvm(job.proc.pid, 120 if args.jfr or args.profile else 10)
        job.kill()
        sb.delete_topics()
        sb.delete_keys()
        client.close()


if __name__ == "__main__":
    sys.exit(main())
