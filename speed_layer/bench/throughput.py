"""Speed layer throughput against a plain Flink SQL peer job (docs/benchmarks.md; `make bench` runs it).

    .venvs/speed/bin/python speed_layer/bench/throughput.py                  # the default size
    .venvs/speed/bin/python speed_layer/bench/throughput.py --events 300000  # a quick run

1. pre-loads a private topic (records kept forever) with generated traffic for yesterday (UTC),
   duplicates, late and malformed included, and computes its exact ground truth while sending;
2. drains it with Kafka's ConsumerPerformance tool (kafka-tools jar): information only;
3. drains it with the peer job (peer.py: `json` format, ROW_NUMBER dedup, hourly GROUP BY with
   mini-batch, the same Redis sink) in bounded mode, into its own Redis prefix;
4. drains it with the speed job in bounded mode, into the sandbox's prefix, and checks that Redis
   holds the exact totals (speed + late per key = the full truth, duplicates).

Both jobs run with the same Flink configuration (the job's: parallelism, checkpoints, state
backend) on the same topic. Each rate is records / (time from the job's first hour written to
Redis until Redis holds its final view), so start-up is excluded: Redis is polled every 0.5 s,
and the drain ends at the first poll from which the view no longer changed, which for the speed
job is the moment Redis equals the truth. A figure is steady when its drain lasted at least 60 s
or covered at least 10 M records.

Writes bench/results/speed_throughput.json and prints the ratios. Deletes its topics and keys.
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
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import jvm
import redis
from common import (
    REPO,
    add_job_options,
    delete_keys,
    digest,
    has_hour_field,
    history_window,
    job_env,
    raw_view,
)

from lambda_contract.redis_layout import Metrics, RedisLayout
from lambda_testkit.processes import Child, speed_job
from lambda_testkit.sandbox import Sandbox, duplicates, read_view
from lambda_testkit.truth import Truth
from lambda_tools.generator import GeneratorConfig
from lambda_tools.generator_run import RunSpec, run
from lambda_tools.producer import ProducerTuning

# 10 M records: a steady figure (>= 10 M records) for both jobs whatever their rates; >= 60 s of
# drain for any rate up to 166 k events/s (docs/benchmarks.md).
DEFAULT_EVENTS: Final = 10_000_000
STEADY_S: Final = 60.0
STEADY_RECORDS: Final = 10_000_000
POLL_S: Final = 0.5


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


@dataclass
class Drained:
    """One bounded job's drain of the topic, as Redis saw it."""

    exit_code: int
    wall_s: float  # start of the process -> its exit
    startup_s: float  # start of the process -> first hour written to Redis
    drain_s: float  # first hour written -> Redis holds the final view
    view: dict[bytes, dict[bytes, bytes]]

    def figures(self, records: int) -> dict[str, Any]:
        drain = max(self.drain_s, POLL_S)
        return {
            "wall_s": round(self.wall_s, 1),
            "startup_s": round(self.startup_s, 1),
            "drain_s": round(self.drain_s, 1),
            "events_per_s": round(records / drain),
            "events_per_s_wall": round(records / self.wall_s),
            "steady": self.drain_s >= STEADY_S or records >= STEADY_RECORDS,
        }


def drain(
    child: Child, client: redis.Redis, prefix: str, timeout_s: float, jvm_exit_s: float = 10
) -> Drained:
    """Watch `child` drain the topic into Redis under `prefix` until it exits."""
    started = time.monotonic()
    first: float | None = None
    marks: list[tuple[float, str]] = []
    while child.alive():
        now = time.monotonic()
        if now - started > timeout_s:
            child.kill()
            raise RuntimeError(f"{child.log.name}: still running after {timeout_s:.0f} s:\n{child.tail()}")
        if first is None:
            if has_hour_field(client, prefix):
                first = now
            time.sleep(0.1)
            continue
        marks.append((now, digest(raw_view(client, prefix))))
        time.sleep(max(0.0, POLL_S - (time.monotonic() - now)))
    ended = time.monotonic()
    jvm.stop_jvm(child.proc.pid, jvm_exit_s)  # a flight recording is written as the JVM exits
    child.kill()  # reaps what is left of its process group
    view = raw_view(client, prefix)
    final = digest(view)
    done = ended
    for at, d in reversed(marks):  # the first poll of the final run of unchanged views
        if d != final:
            break
        done = at
    first = first or ended
    return Drained(child.proc.returncode or 0, ended - started, first - started, done - first, view)


def preload(sb: Sandbox, events: int, workers: int) -> tuple[Truth, float]:
    start, end = history_window()
    spec = RunSpec(
        mode="history",
        config=GeneratorConfig(seed=7, partitions=sb.partitions),
        bootstrap=sb.bootstrap,
        topic=sb.topics["LAMBDA_TOPIC_ORDERS"],
        tuning=ProducerTuning(),
        start=start,
        end=end,
        events=events,
    )
    t0 = time.monotonic()
    result = run(spec, workers, lambda: False, lambda _pids: None)
    if result.failures:
        raise RuntimeError(f"{result.failures} records not acknowledged: {result.first_error}")
    return result.truth, time.monotonic() - t0


def peer_coverage(view: dict[bytes, dict[bytes, bytes]], truth: Truth, prefix: str) -> dict[str, Any]:
    """The peer validates nothing and judges no lateness: every (hour, key) of the full truth must
    hold at least the truth's events (malformed records it could parse add to some keys)."""
    layout = RedisLayout(prefix)
    short = 0
    for (hour, key), m in truth.full.items():
        raw = view.get(layout.hour(hour).encode(), {}).get(key.field().encode())
        if raw is None or Metrics.decode(raw).events < m.events:
            short += 1
    counted = 0
    for name, fields in view.items():
        if b":speed:hour:" in name:
            for raw in fields.values():
                try:
                    counted += Metrics.decode(raw).events
                except ValueError:
                    continue
    return {
        "keys": len(truth.full),
        "keys_short_of_truth": short,
        "events_counted": counted,
        "valid_events_in_truth": sum(m.events for m in truth.full.values()),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--events", type=int, default=DEFAULT_EVENTS, help=f"records to pre-load (default {DEFAULT_EVENTS:,})"
    )
    add_job_options(p, "speed_throughput.json")
    p.add_argument("--jfr-peer", type=Path, metavar="FILE", help="a JFR profile of the peer job's JVM")
    p.add_argument(
        "--profile-peer", type=Path, metavar="FILE", help="a CPU profile of the peer job's JVM (as --profile)"
    )
    p.add_argument("--no-peer", action="store_true", help="skip the peer job (profiling our job only)")
    p.add_argument("--workers", type=int, default=min(3, os.cpu_count() or 1), help="pre-load processes")
    p.add_argument("--timeout-s", type=float, default=3600, help="per job")
    p.add_argument("--keep", action="store_true", help="keep the topic and its truth (see --reuse)")
    p.add_argument(
        "--reuse",
        type=Path,
        metavar="DIR",
        help="drain the topic a --keep run pre-loaded into DIR again (profiling; skips the pre-load)",
    )
    args = p.parse_args()
    result: dict[str, Any] = {
        "events": args.events,
        "parallelism": args.parallelism,
        "checkpoint_interval_s": args.checkpoint_interval_s,
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if args.reuse:
        work = args.reuse.resolve()
        tag, truth, window = pickle.loads((work / "preloaded.pickle").read_bytes())  # noqa: S301 (written by --keep)
        sb = Sandbox(work, "bench", tag=tag)
        result["events"] = truth.records
    else:
        work = REPO / ".local" / "bench" / f"speed-{uuid.uuid4().hex[:6]}"
        work.mkdir(parents=True)
        sb = Sandbox(work, "bench")
        sb.create_topics()  # retention.ms=-1: the records' old timestamps never expire them
        window = history_window()
    topic = sb.topics["LAMBDA_TOPIC_ORDERS"]
    prefix = sb.redis_prefix
    peer_prefix = f"{prefix}-peer"
    client = sb.redis()
    delete_keys(client, prefix, peer_prefix)
    keep = args.keep or args.reuse is not None
    result["history"] = {
        "start": window[0].isoformat(),
        "end": window[1].isoformat(),
        "topic_retention_ms": -1,
    }
    try:
        if not args.reuse:
            truth, took = preload(sb, args.events, args.workers)
            result["preload_s"] = round(took, 1)
            print(f"pre-loaded {truth.records} records for {window[0].date()} in {took:.0f} s", flush=True)
            if keep:
                (work / "preloaded.pickle").write_bytes(pickle.dumps((sb.tag, truth, window)))
                print(f"kept: --reuse {work}", flush=True)
        records = truth.records

        perf = consumer_performance(sb.bootstrap, topic, records)
        result["kafka_consumer_performance"] = perf
        print(f"ConsumerPerformance: {perf['records_per_s']:.0f} records/s", flush=True)

        if not args.no_peer:
            env = job_env(
                sb, args, jfr=args.jfr_peer, profile=args.profile_peer, LAMBDA_REDIS_PREFIX=peer_prefix
            )
            argv = [sys.executable, str(Path(__file__).with_name("peer.py")), "--bounded",
                    "--group-id", f"bench-peer-{sb.tag}"]  # fmt: skip
            peer = drain(
                Child(argv, env, work / "peer.log"),
                client,
                peer_prefix,
                args.timeout_s,
                120 if args.jfr_peer or args.profile_peer else 10,
            )
            if peer.exit_code != 0:
                print(Path(work / "peer.log").read_text()[-6000:])
                return 2
            result["peer"] = peer.figures(records) | peer_coverage(peer.view, truth, peer_prefix)
            print(f"peer: {result['peer']}", flush=True)

        ours = drain(
            speed_job(
                job_env(sb, args, jfr=args.jfr, profile=args.profile),
                work / "job.log",
                "--bounded",
                "--fresh",
            ),
            client,
            prefix,
            args.timeout_s,
            120 if args.jfr or args.profile else 10,
        )
        if ours.exit_code != 0:
            print(Path(work / "job.log").read_text()[-6000:])
            return 2
        speed = read_view(client, prefix, "hour")
        late = read_view(client, prefix, "late")
        combined = dict(speed)
        for k, m in late.items():
            combined[k] = combined.get(k, Metrics()) + m
        dups = duplicates(client, prefix)
        exact = combined == truth.full and dups == truth.duplicates
        result["speed_job"] = ours.figures(records) | {
            "exact_totals": exact,
            "late_events_classified": sum(m.events for m in late.values()),
            "late_events_by_construction": sum(m.events for m in truth.late.values()),
        }
        rate = result["speed_job"]["events_per_s"]
        result["ratio_vs_kafka_consumer"] = round(rate / perf["records_per_s"], 3)
        if "peer" in result:
            result["ratio_vs_flink_peer"] = round(rate / result["peer"]["events_per_s"], 3)
        result["load_average"] = os.getloadavg()
        print(json.dumps(result, indent=1, default=str))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1, default=str) + "\n")
        return 0 if exact else 1
    finally:
        delete_keys(client, prefix, peer_prefix)
        client.close()
        if not keep:
            sb.delete_topics()


if __name__ == "__main__":
    sys.exit(main())
