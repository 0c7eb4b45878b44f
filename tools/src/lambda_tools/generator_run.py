"""One generator run: records -> Kafka -> ground truth, in one process or split over several.

kafka-python, the generator and the truth fold are all pure Python, so one process tops out at
one core. `workers` > 1 forks processes that each own a disjoint set of partitions (see
`generator.Shard`); each sends its own records and folds its own truth, and the parent adds the
truths up — exact, because no event id crosses partitions.
"""

from __future__ import annotations

import json
import multiprocessing
import signal
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lambda_contract.redis_layout import Metrics
from lambda_contract.windows import to_epoch_ms
from lambda_testkit.golden import GoldenRecord
from lambda_testkit.truth import Truth, View, compute_truth
from lambda_tools.generator import GeneratedRecord, GeneratorConfig, Shard, history, live
from lambda_tools.producer import OrdersProducer, ProducerError, ProducerTuning, send_all


@dataclass(frozen=True)
class RunSpec:
    """Everything a (worker) process needs to produce its share; picklable."""

    mode: str  # "history" | "live"
    config: GeneratorConfig
    bootstrap: str
    topic: str
    tuning: ProducerTuning
    start: datetime | None = None
    end: datetime | None = None
    events: int = 0
    rate: float = 0.0
    seconds: float | None = None
    wall_clock: bool = False
    events_out: Path | None = None


@dataclass
class RunResult:
    truth: Truth
    counts: Counter[str]
    elapsed_s: float
    failures: int = 0
    first_error: str | None = None


def _records(spec: RunSpec, shard: Shard, stop: Callable[[], bool],
             sync: Callable[[], None] | None) -> Iterator[GeneratedRecord]:  # fmt: skip
    if spec.mode == "history":
        assert spec.start is not None and spec.end is not None
        return history(spec.config, spec.start, spec.end, spec.events, stop, shard, sync)
    # Live shards need no sync: the wall clock paces each of them.
    return live(spec.config, spec.rate, spec.seconds, time.time, time.sleep, stop, shard)


def run_shard(spec: RunSpec, shard: Shard, stop: Callable[[], bool], events_out: Path | None,
              sync: Callable[[], None] | None = None) -> RunResult:  # fmt: skip
    """Produce one shard's records and fold their truth, in send order."""
    producer = OrdersProducer(spec.bootstrap, spec.topic, spec.tuning)
    if producer.partitions != spec.config.partitions:
        producer.close()
        raise ProducerError(
            f"{spec.topic!r} has {producer.partitions} partitions, expected {spec.config.partitions}"
        )
    counts: Counter[str] = Counter()
    out = events_out.open("w", encoding="utf-8") if events_out is not None else None

    def on_sent(record: GeneratedRecord, ts: int) -> None:
        counts[record.expect] += 1
        if out is not None:
            doc = GoldenRecord(counts.total() - 1, record.partition, record.key, record.value, ts,
                               2 if record.late else 1, record.expect, "").to_json()  # fmt: skip
            out.write(json.dumps(doc, ensure_ascii=False) + "\n")

    wall = (lambda: to_epoch_ms(datetime.now(UTC))) if spec.wall_clock else None
    started = time.perf_counter()
    try:
        truth = compute_truth(send_all(_records(spec, shard, stop, sync), producer.send, wall, on_sent))
        producer.flush()
    finally:
        producer.close()
        if out is not None:
            out.close()
    error = None if producer.first_error is None else repr(producer.first_error)
    return RunResult(truth, counts, time.perf_counter() - started, producer.failures, error)


def _add(a: View, b: View) -> View:
    out = dict(a)
    for key, m in b.items():
        out[key] = out.get(key, Metrics()) + m
    return out


def merge(results: list[RunResult]) -> RunResult:
    """Add up the shards' truths and counts (valid because shards share no event id)."""
    truth = Truth()
    counts: Counter[str] = Counter()
    for r in results:
        truth.full = _add(truth.full, r.truth.full)
        truth.speed = _add(truth.speed, r.truth.speed)
        truth.late = _add(truth.late, r.truth.late)
        truth.duplicates += r.truth.duplicates
        truth.records += r.truth.records
        truth.malformed = dict(Counter(truth.malformed) + Counter(r.truth.malformed))
        for day, reasons in r.truth.malformed_by_date.items():
            truth.malformed_by_date[day] = dict(
                Counter(truth.malformed_by_date.get(day, {})) + Counter(reasons)
            )
        counts.update(r.counts)
    failures = sum(r.failures for r in results)
    first_error = next((r.first_error for r in results if r.first_error), None)
    return RunResult(truth, counts, max((r.elapsed_s for r in results), default=0.0), failures, first_error)


SYNC_TIMEOUT_S = 300.0


def _worker(spec: RunSpec, shard: Shard, part: Path | None, queue: Any, barrier: Any) -> None:
    """Child process body: a first SIGINT/SIGTERM stops it cleanly, like the parent."""
    stopped = [False]
    synced = [True]

    def handle(signum: int, frame: object) -> None:
        stopped[0] = True

    def sync() -> None:
        # A peer that stopped or failed breaks the barrier; the others then go on unsynchronised.
        if synced[0]:
            try:
                barrier.wait(SYNC_TIMEOUT_S)
            except threading.BrokenBarrierError:
                synced[0] = False

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
    try:
        result = run_shard(spec, shard, lambda: stopped[0], part, sync)
        queue.put(("ok", result.truth.to_json(), dict(result.counts), result.elapsed_s,
                   result.failures, result.first_error))  # fmt: skip
    except BaseException as exc:  # reported to the parent, which exits with the message
        queue.put(("error", f"{type(exc).__name__}: {exc}", traceback.format_exc()))
    finally:
        barrier.abort()  # every peer has passed the last sync, or must not wait for this one


def run(
    spec: RunSpec, workers: int, stop: Callable[[], bool], on_start: Callable[[list[int]], None]
) -> RunResult:
    """Run in this process (workers == 1) or in forked workers; `on_start` gets their pids."""
    if workers <= 1:
        return run_shard(spec, Shard(), stop, spec.events_out)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    barrier = ctx.Barrier(workers)
    parts = [None if spec.events_out is None else spec.events_out.with_name(f"{spec.events_out.name}.{i}")
             for i in range(workers)]  # fmt: skip
    procs = [ctx.Process(target=_worker, args=(spec, Shard(i, workers), parts[i], queue, barrier), daemon=True)
             for i in range(workers)]  # fmt: skip
    for p in procs:
        p.start()
    on_start([p.pid for p in procs if p.pid is not None])
    messages = [queue.get() for _ in procs]
    for p in procs:
        p.join()
    errors = [m for m in messages if m[0] == "error"]
    if errors:
        raise ProducerError(f"a generator worker failed: {errors[0][1]}")
    results = [RunResult(Truth.from_json(m[1]), Counter(m[2]), m[3], m[4], m[5]) for m in messages]
    if spec.events_out is not None:
        _concat(parts, spec.events_out)
    return merge(results)


def _concat(parts: list[Path | None], target: Path) -> None:
    """Join the workers' record files, renumbering seq."""
    seq = 0
    with target.open("w", encoding="utf-8") as out:
        for part in parts:
            assert part is not None
            with part.open(encoding="utf-8") as f:
                for line in f:
                    doc = json.loads(line)
                    doc["seq"] = seq
                    seq += 1
                    out.write(json.dumps(doc, ensure_ascii=False) + "\n")
            part.unlink()
