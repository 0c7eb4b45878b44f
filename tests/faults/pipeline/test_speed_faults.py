"""Speed faults: three SIGKILLs, a Redis flush and a Kafka broker restart while traffic streams in.

The bar (docs/reliability.md): during a stream of generated events the speed job is SIGKILLed three times at
random points and started again the normal way (`lambda-speed`, no `--fresh`: it resumes from the
newest complete checkpoint), Redis loses the speed view once while the job runs, and the Kafka
broker is restarted once. Afterwards Redis equals the generator's ground truth exactly: the speed
view equals `truth.speed`, the late counters `truth.late`, the suppressed duplicates
`truth.duplicates`: zero events lost, zero counted twice.

How it runs:
- A Kafka broker of the test's own, started and restarted by the same code as `make up`
  (`lambda_tools.services`) on free ports, so restarting it disturbs nobody else using the shared
  broker (benchmarks, other suites). Private topics and Redis prefix (`pipeline_support`).
- The job is started first (`lambda-speed`, no checkpoint yet: from the earliest offset). Once it
  runs, a background thread produces live traffic (`lambda_tools.generator.live`: wall-clock event
  times, with duplicates, malformed and late events) at a steady rate, through an idempotent
  producer (a broker restart neither loses nor repeats a record: the test checks that the topic
  holds exactly what was sent).
- The faults follow one another while the traffic flows: first the flush, then the three kills and
  the broker restart in a random order. Before each one the test waits until the job runs again
  after the previous fault (a restarted job has counted records beyond those the killed run had
  counted; after the broker restart a checkpoint completed and new records were counted; after the
  flush the open hours are back), then a random delay more. So a kill lands at a random point of
  the job's processing and checkpoint cycle (checkpoints every 2 s), often while it still works
  off the backlog of its downtime; how long that took is timed in the background and printed.
  Order and delays come from a seeded random generator; the seed is printed, and
  `LAMBDA_FAULTS_SEED=<seed>` replays the same plan and the same traffic. The traffic goes on
  until the last fault is over and at least EVENTS records were sent.
- Then the test waits until Redis equals the truth (the time from the end of the stream to that
  moment is the catch-up figure) and fails with the first 10 differing keys of each view if it
  never does.

What a Redis flush may be held to: docs/specs/redis.md promises that the job rewrites every *open*
hour within 60 s. A closed hour's keys are rewritten only when they change again, and so are the
per-date malformed counters; late counters always live in closed hours (a late event's hour is
closed by definition). So the comparison covers exactly what is promised. The flush comes within
the first 20 s of live traffic, when every hour holding on-time events is open (an hour closes
5 min after its end, by watermark; an hour that closes later is closed with the healed values).
Late traffic starts only after the flush: the generator's late warm-up is LATE_WARMUP_S, and the
test checks that no late event was sent before the flush. The flush is also checked on its own:
every field of the speed and duplicates hashes that existed before it is back within 60 s.
Malformed counters are not compared.

Sizes: `make test` streams at least 200,000 events (the issue's minimum) at 1,200 events/s with
random delays of 0.5-6 s: about 3.5 min on the shared 2-core machine, most of it the three
restarts (20 to 45 s each: JVM, SQL planning, restore). LAMBDA_FAULTS_LONG=1 streams at least
500,000 at 2,000 events/s with delays of 5-40 s (about 5 min). LAMBDA_FAULTS_SPEED_EVENTS and
LAMBDA_FAULTS_SPEED_RATE override the sizes.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Final

import pytest
import redis
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from pipeline_support import (
    LONG,
    PARTITIONS,
    SPEED_CLI,
    PrivateBroker,
    private_broker,
    sandbox_in,
)

from lambda_contract.redis_layout import Metrics
from lambda_contract.windows import hour_id
from lambda_testkit.processes import Child, wait_until
from lambda_testkit.sandbox import Sandbox, duplicates, field_names_of, field_of, read_view
from lambda_testkit.truth import SentRecord, Truth, View, compute_truth
from lambda_tools.generator import GeneratedRecord, GeneratorConfig, Kind, live

pytestmark = [pytest.mark.faults, pytest.mark.integration]

EVENTS: Final = int(os.environ.get("LAMBDA_FAULTS_SPEED_EVENTS") or (500_000 if LONG else 200_000))
RATE: Final = float(os.environ.get("LAMBDA_FAULTS_SPEED_RATE") or (2_000 if LONG else 1_200))
SEED: Final = int(os.environ.get("LAMBDA_FAULTS_SEED") or random.SystemRandom().randrange(1 << 32))
DELAY_S: Final = (5.0, 40.0) if LONG else (0.5, 6.0)  # random wait before each fault
FLUSH_DELAY_S: Final = (2.0, 15.0)  # after the traffic starts
LATE_WARMUP_S: Final = 45  # no late event before this many seconds of traffic (the flush comes first)
TAIL_S: Final = 5.0  # traffic goes on this long after the last fault
HEAL_LIMIT_S: Final = 60  # docs/specs/redis.md: open hours are rewritten within 60 s
START_TIMEOUT_S: Final = 420  # a cold PyFlink start plans a large SQL job; slow on a busy machine
CONVERGE_TIMEOUT_S: Final = 600

# --- the traffic ------------------------------------------------------------------------------------


class Stream(threading.Thread):
    """Live records at `rate` per second to the sandbox's orders topic, until `finish()` was called
    and at least `minimum` were sent."""

    def __init__(self, box: Sandbox, minimum: int, rate: float, config: GeneratorConfig) -> None:
        super().__init__(name="speed-faults-producer", daemon=True)
        self.box, self.minimum, self.rate, self.config = box, minimum, rate, config
        self.sent: list[GeneratedRecord] = []
        self.failed: list[str] = []
        self.error: BaseException | None = None
        self.started_at = self.finished_at = 0.0
        self._finish = threading.Event()
        self._abort = threading.Event()

    def finish(self) -> None:
        self._finish.set()

    def abort(self) -> None:
        self._abort.set()

    def _stop(self) -> bool:
        return self._abort.is_set() or (self._finish.is_set() and len(self.sent) >= self.minimum)

    def on_time_sent(self, n: int | None = None) -> int:
        """Records among the first n sent that Redis counts once each (speed, late or duplicates)."""
        return sum(1 for r in itertools.islice(self.sent, n) if r.kind is not Kind.MALFORMED)

    def run(self) -> None:
        self.started_at = time.monotonic()
        try:
            producer = KafkaProducer(
                bootstrap_servers=self.box.settings().kafka_bootstrap,
                acks="all",
                enable_idempotence=True,  # retries across the broker restart write nothing twice
                linger_ms=20,
                delivery_timeout_ms=300_000,
                max_block_ms=300_000,
            )
            topic = self.box.settings().topic_orders
            for rec in live(self.config, self.rate, None, time.time, time.sleep, self._stop):
                future = producer.send(
                    topic,
                    key=rec.key,
                    value=rec.value,
                    partition=rec.partition,
                    timestamp_ms=rec.timestamp_ms,
                )
                future.add_errback(lambda exc: self.failed.append(repr(exc)))
                self.sent.append(rec)
            producer.flush(300)
            producer.close(60)
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc
        finally:
            self.finished_at = time.monotonic()


def topic_size(box: Sandbox) -> int:
    consumer = KafkaConsumer(bootstrap_servers=box.settings().kafka_bootstrap)
    try:
        parts = [TopicPartition(box.settings().topic_orders, p) for p in range(PARTITIONS)]
        return sum(consumer.end_offsets(parts).values())
    finally:
        consumer.close()


# --- what Redis holds -------------------------------------------------------------------------------


def fields_of(client: redis.Redis, prefix: str) -> dict[bytes, set[bytes]]:
    """Every field of the speed and duplicates hashes, by key."""
    keys = [
        *client.scan_iter(match=f"{prefix}:speed:hour:*"),
        *client.scan_iter(match=f"{prefix}:speed:dups:*"),
    ]
    return {k: set(field_names_of(client, k)) for k in keys}


def heartbeat_ms(client: redis.Redis, prefix: str) -> int:
    raw = field_of(client, f"{prefix}:speed:meta", "updated_ms")
    return int(raw) if raw is not None else 0


def describe(m: Metrics | None) -> str:
    return "absent" if m is None else m.encode()


def view_diff(name: str, expected: View, actual: View, limit: int = 10) -> list[str]:
    keys = sorted(set(expected) | set(actual), key=lambda k: (k[0], k[1].field()))
    bad = [k for k in keys if expected.get(k) != actual.get(k)]
    if not bad:
        return []
    lines = [f"{name}: {len(bad)} of {len(keys)} keys differ (first {min(limit, len(bad))}):"]
    for k in bad[:limit]:
        lines.append(
            f"  {hour_id(k[0])} {k[1].field()}: expected {describe(expected.get(k))}, Redis {describe(actual.get(k))}"
        )
    return lines


def event_balance(expected: View, actual: View) -> tuple[int, int]:
    """(events lost, events counted twice) over the keys of both views."""
    lost = double = 0
    for k in set(expected) | set(actual):
        want = expected[k].events if k in expected else 0
        have = actual[k].events if k in actual else 0
        lost += max(0, want - have)
        double += max(0, have - want)
    return lost, double


def counted(client: redis.Redis, prefix: str) -> int:
    """Records Redis accounts for: speed and late events plus suppressed duplicates."""
    speed = sum(m.events for m in read_view(client, prefix, "hour").values())
    late = sum(m.events for m in read_view(client, prefix, "late").values())
    return speed + late + duplicates(client, prefix)


# --- the job and its faults ---------------------------------------------------------------------------


@dataclass
class Fault:
    kind: str  # flush | kill | broker
    delay_s: float  # random wait after the previous fault's recovery
    at_s: float = 0.0  # since the traffic started
    sent: int = 0  # records sent when it happened
    counted: int = 0  # records Redis accounted for when it happened
    recovered_s: float = 0.0  # until the job runs again (writes Redis, reads Kafka) / the hours healed
    note: str = ""
    started: float = 0.0  # time.monotonic() when it happened
    backlog: int = 0  # records Redis must account for to have caught up (sent before the recovery)
    caught_up_s: float | None = None  # from the fault until Redis accounted for the backlog

    def line(self) -> str:
        return (
            f"{self.kind:6} at {self.at_s:6.1f} s, {self.sent:>7,} records sent, {self.counted:>7,} counted "
            f"in Redis: recovered in {self.recovered_s:5.1f} s{self.note}"
        )


class Progress(threading.Thread):
    """Polls how many records Redis accounts for and notes when each fault's backlog was reached."""

    def __init__(self, client: redis.Redis, prefix: str) -> None:
        super().__init__(name="speed-faults-progress", daemon=True)
        self.client, self.prefix = client, prefix
        self.pending: list[Fault] = []
        self.stopping = threading.Event()

    def expect(self, fault: Fault) -> None:
        self.pending.append(fault)

    def run(self) -> None:
        while not self.stopping.wait(0.5):
            if not self.pending:
                continue
            try:
                have = counted(self.client, self.prefix)
            except redis.RedisError:
                continue
            now = time.monotonic()
            for fault in [f for f in self.pending if have >= f.backlog]:
                fault.caught_up_s = now - fault.started
                self.pending.remove(fault)


def plan(rng: random.Random) -> list[Fault]:
    kinds = ["kill", "kill", "kill", "broker"]
    rng.shuffle(kinds)
    return [Fault("flush", rng.uniform(*FLUSH_DELAY_S)), *(Fault(k, rng.uniform(*DELAY_S)) for k in kinds)]


@dataclass
class Run:
    """The job under test, the faults done to it, and what the test reads back."""

    box: Sandbox
    broker: PrivateBroker
    client: redis.Redis
    stream: Stream
    progress: Progress
    job: Child | None = None
    job_started: float = 0.0  # epoch s
    starts: int = 0
    faults: list[Fault] = field(default_factory=list)

    @property
    def prefix(self) -> str:
        return self.box.settings().redis_prefix

    def counted(self) -> int:
        return counted(self.client, self.prefix)

    def start_job(self) -> float:
        self.starts += 1
        log = self.box.tmp / f"speed-{self.starts}.log"
        self.job_started = time.time()
        self.job = Child([SPEED_CLI, "--group-id", self.box.tag], self.box.env(), log)
        return self.job_started

    def alive_job(self) -> Child:
        job = self.job
        assert job is not None and job.alive(), f"the speed job died:\n{job.tail() if job else ''}"
        return job

    def newest_checkpoint(self) -> float:
        """mtime of the newest complete checkpoint (0 if none)."""
        done = self.box.checkpoint_dir.glob("*/chk-*/_metadata")
        return max((m.stat().st_mtime for m in done), default=0.0)

    def wait(self, check: Callable[[], bool], what: str, timeout: float = START_TIMEOUT_S) -> None:
        job = self.alive_job()
        ok = wait_until(lambda: check() or not job.alive(), timeout, 0.5)
        assert job.alive(), f"the speed job died {what}:\n{job.tail()}"
        assert ok, f"the speed job did not recover within {timeout:.0f} s {what}:\n{job.tail()}"

    def track_backlog(self, fault: Fault) -> None:
        """From now on the job must work off everything sent so far; Progress times it."""
        fault.backlog = self.stream.on_time_sent()
        self.progress.expect(fault)

    def kill(self, fault: Fault) -> None:
        job = self.alive_job()
        own = self.newest_checkpoint() > self.job_started
        job.kill()
        started = self.start_job()
        # The sink's timer is restored with the checkpoint, so a heartbeat alone does not show
        # progress: the new run must count records beyond what the killed one had counted.
        self.wait(
            lambda: (
                heartbeat_ms(self.client, self.prefix) > started * 1000 and self.counted() > fault.counted
            ),
            "after a SIGKILL",
        )
        assert "resuming from" in self.alive_job().log.read_text(errors="replace")
        self.track_backlog(fault)
        if not own:
            fault.note = " (the killed run had completed no checkpoint of its own)"

    def restart_broker(self, fault: Fault) -> None:
        down = time.time()
        self.broker.restart()
        back = time.time()
        before = self.counted()
        self.wait(
            lambda: self.newest_checkpoint() > back and self.counted() > before, "after the broker restart"
        )
        self.track_backlog(fault)
        fault.note = f" (broker down {back - down:.1f} s)"

    def flush(self, fault: Fault) -> None:
        self.wait(lambda: bool(fields_of(self.client, self.prefix)), "before the flush")
        before = fields_of(self.client, self.prefix)
        keys = list(self.client.scan_iter(match=f"{self.prefix}:*", count=1000))
        flushed = time.monotonic()
        self.client.delete(*keys)
        late = sum(1 for r in self.stream.sent[: len(self.stream.sent)] if r.late)
        assert late == 0, f"{late} late events were sent before the flush, which must come first"

        def healed() -> bool:
            now = fields_of(self.client, self.prefix)
            return all(fields <= now.get(key, set()) for key, fields in before.items())

        assert wait_until(healed, HEAL_LIMIT_S, 0.25), f"open hours not rewritten within {HEAL_LIMIT_S} s"
        fault.note = f" ({len(keys)} keys deleted, open hours back after {time.monotonic() - flushed:.1f} s)"


@pytest.fixture(scope="module", autouse=True)
def quiet_kafka_client() -> Iterator[None]:
    """kafka-python logs every refused connection while the broker restarts: noise, not news."""
    logger = logging.getLogger("kafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateBroker]:
    with private_broker(tmp_path_factory.mktemp("kafka")) as b:
        yield b


@pytest.fixture(scope="module")
def box(broker: PrivateBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with sandbox_in(tmp_path_factory.mktemp("speed-faults"), LAMBDA_KAFKA_BOOTSTRAP=broker.bootstrap) as b:
        yield b


def test_speed_view_exact_after_kills_flush_and_broker_restart(box: Sandbox, broker: PrivateBroker) -> None:
    began = time.monotonic()
    faults = plan(random.Random(SEED))
    print(
        f"\nseed {SEED} (LAMBDA_FAULTS_SEED={SEED} replays it): at least {EVENTS:,} events at {RATE:g}/s; "
        + ", ".join(f"{f.kind} after {f.delay_s:.1f} s" for f in faults)
    )
    config = GeneratorConfig(
        seed=SEED, duplicate_rate=0.02, late_rate=0.01, malformed_rate=0.01, live_late_warmup_s=LATE_WARMUP_S
    )
    client = box.redis()
    stream = Stream(box, EVENTS, RATE, config)
    progress = Progress(box.redis(), box.settings().redis_prefix)
    run = Run(box, broker, client, stream, progress, faults=faults)
    try:
        first = run.start_job()
        run.wait(lambda: run.newest_checkpoint() > 0, "on its first start")
        startup_s = time.time() - first
        stream.start()
        progress.start()
        for fault in faults:
            time.sleep(fault.delay_s)
            assert stream.is_alive(), f"the test's producer stopped: {stream.error!r}"
            fault.at_s = time.monotonic() - stream.started_at
            fault.sent, fault.counted = len(stream.sent), run.counted()
            fault.started = time.monotonic()
            {"flush": run.flush, "kill": run.kill, "broker": run.restart_broker}[fault.kind](fault)
            fault.recovered_s = time.monotonic() - fault.started
            print("  " + fault.line())
        time.sleep(TAIL_S)
        stream.finish()
        stream.join(3600)
        assert stream.error is None, f"the test's producer failed: {stream.error!r}"
        assert not stream.failed, f"the test's producer lost {len(stream.failed)}: {stream.failed[:3]}"
        sent = len(stream.sent)
        assert topic_size(box) == sent, "the topic does not hold exactly the records sent (producer, not job)"

        truth: Truth = compute_truth(
            SentRecord(r.value, datetime.fromtimestamp(r.timestamp_ms / 1000, UTC), r.late)
            for r in stream.sent
        )

        def exact() -> bool:
            return (
                duplicates(client, run.prefix) == truth.duplicates
                and read_view(client, run.prefix, "hour") == truth.speed
                and read_view(client, run.prefix, "late") == truth.late
            )

        job = run.alive_job()
        converged = wait_until(lambda: exact() or not job.alive(), CONVERGE_TIMEOUT_S, 1.0)
        caught_up_s = time.monotonic() - stream.finished_at
        speed, late = read_view(client, run.prefix, "hour"), read_view(client, run.prefix, "late")
        dups = duplicates(client, run.prefix)
        lost_speed, double_speed = event_balance(truth.speed, speed)
        lost_late, double_late = event_balance(truth.late, late)
        lost, double = lost_speed + lost_late, double_speed + double_late
        print(
            f"  {sent:,} records in {stream.finished_at - stream.started_at:.0f} s: "
            f"{sum(m.events for m in truth.speed.values()):,} on time, "
            f"{sum(m.events for m in truth.late.values()):,} late, {truth.duplicates:,} duplicates, "
            f"{sum(truth.malformed.values()):,} malformed; first start {startup_s:.0f} s; "
            f"caught up {caught_up_s:.1f} s after the stream ended; lost {lost}, counted twice {double}, "
            f"duplicates {dups:,} of {truth.duplicates:,}; "
            f"test total {time.monotonic() - began:.0f} s"
        )
        for fault in faults:
            if fault.kind != "flush":
                back = "never" if fault.caught_up_s is None else f"{fault.caught_up_s:.1f} s after it"
                print(
                    f"  {fault.kind:6} at {fault.at_s:6.1f} s: the backlog of {fault.backlog:,} records worked off {back}"
                )
        problems = [
            *view_diff("speed view", truth.speed, speed),
            *view_diff("late view", truth.late, late),
            *([f"duplicates: expected {truth.duplicates}, Redis {dups}"] if dups != truth.duplicates else []),
        ]
        run.alive_job()
        assert converged and not problems, (
            f"Redis never equalled the truth within {CONVERGE_TIMEOUT_S} s "
            f"(lost {lost}, counted twice {double}; seed {SEED}):\n" + "\n".join(problems)
        )
    finally:
        stream.abort()
        progress.stopping.set()
        if run.job is not None:
            run.job.kill()
        stream.join(60)
        progress.join(10)
        progress.client.close()
        client.close()
