"""What the speed benchmarks share: options, the job's environment, dates, Redis reads."""

from __future__ import annotations

import argparse
import hashlib
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import cast

import jvm
import redis

from lambda_contract.settings import Settings
from lambda_testkit.sandbox import Sandbox, delete_prefix

REPO = Path(__file__).resolve().parents[2]
RESULTS = REPO / "bench" / "results"

# The deployment's checkpoint cadence (LAMBDA_CHECKPOINT_INTERVAL_S's default), not the test
# sandbox's 2 s: the benchmarks measure the job as it runs in production.
PRODUCTION_CHECKPOINT_INTERVAL_S = Settings.from_env({}).checkpoint_interval_s


def add_job_options(parser: argparse.ArgumentParser, result_name: str) -> None:
    parser.add_argument("--out", type=Path, default=RESULTS / result_name, help="result JSON")
    parser.add_argument(
        "--parallelism",
        type=int,
        default=os.cpu_count() or 1,
        help="LAMBDA_SPEED_PARALLELISM of the job (default: this machine's cores, as a deployment sizes it)",
    )
    parser.add_argument(
        "--checkpoint-interval-s",
        type=int,
        default=PRODUCTION_CHECKPOINT_INTERVAL_S,
        help=f"LAMBDA_CHECKPOINT_INTERVAL_S (default: the setting's default, {PRODUCTION_CHECKPOINT_INTERVAL_S})",
    )
    parser.add_argument(
        "--state-backend",
        choices=("rocksdb", "hashmap"),
        help="LAMBDA_SPEED_STATE_BACKEND of the job and the peer (default: the deployment's, RocksDB); "
        "the sandbox would otherwise drop the caller's setting",
    )
    parser.add_argument(
        "--jfr",
        type=Path,
        metavar="FILE",
        help="record a Java Flight Recorder profile of the job's JVM into FILE (settings=profile); "
        "summarise it with speed_layer/bench/jfr_summary.py",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="FILE",
        help="a CPU profile of the job's JVM with native frames (async-profiler, from Maven Central), "
        "as collapsed stacks per thread into FILE; summarise it with speed_layer/bench/jfr_summary.py",
    )


def history_window(now: datetime | None = None) -> tuple[datetime, datetime]:
    """Yesterday (UTC), as [start, end): history whose Kafka timestamps the broker's default 7-day
    time retention keeps (the bench's topics also keep records forever: `Sandbox.create_topics`).
    Relative to today, so no benchmark depends on how far today is from a fixed date."""
    today = (now or datetime.now(UTC)).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=1), today


def jvm_args(*, gc_log: Path | None = None, jfr: Path | None = None, profile: Path | None = None) -> str:
    """JVM_ARGS for the job: PyFlink starts its local gateway JVM, which hosts the mini-cluster,
    with `$JVM_ARGS` (pyflink_gateway_server.py). Keeps whatever the caller already set."""
    opts = os.environ.get("JVM_ARGS", "").split()
    if gc_log is not None:
        # Every GC pause with the UTC wall-clock time it ended, to put beside the probes.
        opts.append(f"-Xlog:gc:file={gc_log}:utctime,uptime,level,tags")
    if jfr is not None:
        opts.append(f"-XX:StartFlightRecording=filename={jfr},settings=profile,dumponexit=true")
    if profile is not None:
        opts.append(jvm.async_profiler_option(profile))
    return " ".join(opts)


def job_env(
    sb: Sandbox,
    args: argparse.Namespace,
    *,
    gc_log: Path | None = None,
    jfr: Path | None = None,
    profile: Path | None = None,
    **extra: str,
) -> dict[str, str]:
    """The environment of the speed job (or the peer) run inside the sandbox by a benchmark."""
    env = sb.env()
    env.update(
        LAMBDA_SPEED_PARALLELISM=str(args.parallelism),
        LAMBDA_CHECKPOINT_INTERVAL_S=str(args.checkpoint_interval_s),
        **extra,
    )
    if args.state_backend:
        env["LAMBDA_SPEED_STATE_BACKEND"] = args.state_backend
    env["JVM_ARGS"] = jvm_args(gc_log=gc_log, jfr=jfr, profile=profile)
    return env


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


VIEW_FAMILIES = ("hour", "late", "dups")


def raw_view(client: redis.Redis, prefix: str) -> dict[bytes, dict[bytes, bytes]]:
    """The speed view's hashes under `prefix` (hour, late and duplicate families) as stored:
    what a drain is finished writing once it stops changing."""
    keys = sorted(
        k
        for family in VIEW_FAMILIES
        for k in client.scan_iter(match=f"{prefix}:speed:{family}:*", count=1000)
    )
    pipe = client.pipeline(transaction=False)
    for k in keys:
        pipe.hgetall(k)
    return dict(zip(keys, cast(list[dict[bytes, bytes]], pipe.execute()), strict=True))


def digest(view: dict[bytes, dict[bytes, bytes]]) -> str:
    h = hashlib.blake2b(digest_size=16)
    for key in sorted(view):
        h.update(key)
        for fld, value in sorted(view[key].items()):
            h.update(b"\0" + fld + b"=" + value)
        h.update(b"\n")
    return h.hexdigest()


def has_hour_field(client: redis.Redis, prefix: str) -> bool:
    """Whether the sink wrote any hour's totals yet (its meta key comes earlier, with the first
    tick, before a single event has been counted)."""
    return next(iter(client.scan_iter(match=f"{prefix}:speed:hour:*", count=1000)), None) is not None


def delete_keys(client: redis.Redis, *prefixes: str) -> None:
    for prefix in prefixes:
        delete_prefix(client, prefix)
