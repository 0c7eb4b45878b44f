"""The cluster's node failures, each done to a running story and timed until the speed view equals
the truth again. One function per fault; the default story runs them in turn on one stream, the
long variant each in its own test (test_cluster_long.py).

What "recovered" means: the traffic keeps flowing through the fault and the restart; then it
pauses (its records acknowledged by all in-sync replicas) and the test waits until Redis holds
exactly the truth of every record sent so far (speed view, late counters, suppressed
duplicates). `recovered_s` runs from the SIGKILL to that moment; `back_s` is how long
`lambda-services up --cluster` took to bring the node back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Final

import redis
from cluster_support import (
    Box,
    Flink,
    Replicas,
    Stream,
    Views,
    bring_back,
    broker_name,
    hourly_path,
    in_sync,
    iter_rows,
    kill_node,
    master_of,
    partition_leader,
    read_views,
    redis_cluster,
    view_diff,
)

from lambda_contract.windows import hours_of_date
from lambda_testkit.processes import wait_until
from lambda_testkit.truth import Truth

CONVERGE_TIMEOUT_S: Final = 300
RESTART_TIMEOUT_S: Final = 300


@dataclass
class Recovery:
    """One fault as the report shows it."""

    fault: str
    node: str
    at: str  # UTC time of the SIGKILL
    sent_before: int  # records sent when it happened
    back_s: float = 0.0  # `lambda-services up --cluster` bringing the node back
    recovered_s: float = 0.0  # SIGKILL -> Redis equals the truth of everything sent (batch: run done)
    details: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        extra = ", ".join(f"{k} {v}" for k, v in self.details.items())
        return (
            f"{self.fault:12} {self.node:20} node back in {self.back_s:6.1f} s, exact again "
            f"{self.recovered_s:6.1f} s after the SIGKILL ({extra})"
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self) | {"back_s": round(self.back_s, 1), "recovered_s": round(self.recovered_s, 1)}


@dataclass
class Story:
    """The running pieces a fault acts on."""

    box: Box
    flink: Flink
    job: str
    stream: Stream
    replicas: Replicas
    log: list[Recovery] = field(default_factory=list)

    def days(self, truth: Truth) -> list[date]:
        return sorted(set(truth.dates()) | {datetime.now(UTC).date()})

    def views(self, days: list[date]) -> Views:
        client = redis_cluster(self.box.settings())
        try:
            return read_views(client, self.box.settings(), days)
        finally:
            client.close()

    def exact(self, truth: Truth) -> tuple[bool, list[str]]:
        """Whether Redis holds the truth now; the differences if not."""
        try:
            v = self.views(self.days(truth))
        except redis.RedisError as exc:
            return False, [f"Redis: {exc!r}"]
        problems = [
            *view_diff("speed view", truth.speed, v.speed),
            *view_diff("late view", truth.late, v.late),
            *(
                [f"duplicates: expected {truth.duplicates}, Redis {v.dups}"]
                if v.dups != truth.duplicates
                else []
            ),
        ]
        return not problems, problems

    def converge(self, began: float, what: str, resume: bool = True) -> float:
        """Pause the traffic, wait until Redis equals the truth of everything sent, resume it
        unless told not to. Seconds since `began` (time.monotonic())."""
        self.stream.pause()
        assert not self.stream.failed, f"the producer lost records: {self.stream.failed[:3]}"
        truth = self.stream.truth()
        last: list[str] = []

        def check() -> bool:
            ok, problems = self.exact(truth)
            last[:] = problems
            return ok

        ok = wait_until(check, CONVERGE_TIMEOUT_S, 1.0)
        took = time.monotonic() - began
        assert ok, f"{what}: Redis never equalled the truth within {CONVERGE_TIMEOUT_S} s:\n" + "\n".join(
            last
        )
        if resume:
            self.stream.resume()
        return took

    def record(self, r: Recovery) -> Recovery:
        self.log.append(r)
        print("  " + r.line())
        return r


def _start(story: Story, fault: str, node: str) -> tuple[Recovery, float]:
    assert story.stream.error is None, f"the producer failed: {story.stream.error!r}"
    r = Recovery(fault, node, datetime.now(UTC).isoformat(timespec="seconds"), len(story.stream.sent))
    return r, time.monotonic()


# --- the faults ----------------------------------------------------------------------------------------


def taskmanager(story: Story, gap_s: float) -> Recovery:
    """SIGKILL a TaskManager mid-stream, start it again: the job restarts from its last
    checkpoint on the object store and the view is exact."""
    time.sleep(gap_s)
    flink, job = story.flink, story.job
    assert wait_until(lambda: flink.completed(job) > 0, 120, 0.5), "no checkpoint completed before the fault"
    before = flink.checkpoints(job)["latest"]["completed"]
    r, began = _start(story, "taskmanager", "flink-taskmanager-1")
    killed_ms = time.time() * 1000
    kill_node("flink-taskmanager-1")
    r.back_s = bring_back()

    def restored_since_kill() -> dict[str, Any] | None:
        try:
            restored = flink.checkpoints(job)["latest"].get("restored") or {}
        except (OSError, KeyError):
            return None
        return restored if restored.get("restore_timestamp", 0) >= killed_ms else None

    # The job fails over when the JobManager loses the TaskManager, and runs again once both
    # slots are back: restored from a checkpoint taken before the kill, on the object store.
    assert wait_until(
        lambda: restored_since_kill() is not None and flink.fully_running(job), RESTART_TIMEOUT_S, 0.5
    ), (
        f"the job did not run again from a checkpoint within {RESTART_TIMEOUT_S} s: {flink.get(f'/jobs/{job}')['state']}"
    )
    r.details["job_running_s"] = round(time.monotonic() - began, 1)
    restored = restored_since_kill() or {}
    assert restored["id"] >= before["id"], (restored, before)
    assert str(restored.get("external_path", "")).startswith("s3"), (
        f"restored from {restored}: not the object store"
    )
    r.details["restored_checkpoint"] = restored["id"]
    r.recovered_s = story.converge(began, "after the TaskManager kill")
    return story.record(r)


def broker(story: Story, gap_s: float) -> Recovery:
    """SIGKILL the broker leading partition 0 of the orders topic mid-stream: with acks=all and
    min.insync.replicas 2 no acknowledged record is lost, the producer and the job carry on; the
    broker started again rejoins every ISR."""
    time.sleep(gap_s)
    s = story.box.settings()
    leader = partition_leader(s, s.topic_orders)
    name = broker_name(s, leader)
    r, began = _start(story, "broker", name)
    kill_node(name)

    def moved() -> bool:
        try:
            return partition_leader(s, s.topic_orders) != leader
        except Exception:
            return False

    moved_ok = wait_until(moved, 60, 0.5)
    assert moved_ok, "partition 0 got no new leader within 60 s"
    r.details["new_leader_s"] = round(time.monotonic() - began, 1)
    time.sleep(gap_s)  # the traffic and the job go on with two brokers
    assert story.flink.fully_running(story.job) or wait_until(
        lambda: story.flink.fully_running(story.job), RESTART_TIMEOUT_S, 0.5
    ), "the job did not carry on"
    r.back_s = bring_back()
    assert wait_until(lambda: in_sync(s, s.topic_orders), 120, 1.0), f"{name} did not rejoin the ISR"
    r.recovered_s = story.converge(began, f"after the {name} kill")
    return story.record(r)


class ServingWatch(threading.Thread):
    """Polls both replicas for the current day's hours while a Redis master is down: each answer
    is a 200 or a 503 that says the speed view cannot be read, and a 200 never serves an hour it
    served before as empty (a hash lost in the failover read as zero) nor more events than were
    sent."""

    def __init__(self, story: Story) -> None:
        super().__init__(name="cluster-serving-watch", daemon=True)
        self.story = story
        self.stopping = threading.Event()
        self.answers: dict[int, int] = {}
        self.wrong: list[str] = []
        self.seen: dict[tuple[int, str], int] = {}  # (port, hour) -> events served last

    def run(self) -> None:
        path = hourly_path([datetime.now(UTC).date()], "USD", group_by="currency")
        while not self.stopping.wait(0.2):
            for port in self.story.box.api_ports:
                try:
                    status, doc = self.story.replicas.get(port, path)
                except OSError as exc:
                    self.wrong.append(f"{port}: no answer ({exc!r})")
                    continue
                self.answers[status] = self.answers.get(status, 0) + 1
                self.check(port, status, doc)

    def check(self, port: int, status: int, doc: dict[str, Any]) -> None:
        if status == 503:
            if "error" not in doc:
                self.wrong.append(f"{port}: a 503 without an error: {doc}")
            return
        if status != 200:
            self.wrong.append(f"{port}: {status} {doc}")
            return
        sent = self.story.stream.on_time()
        by_hour: dict[str, int] = {}
        for row in iter_rows(doc):
            if row.get("currency") == "USD":
                by_hour[row["hour"]] = by_hour.get(row["hour"], 0) + int(row["events"] or 0)
        for hour, events in by_hour.items():
            if events > sent:
                self.wrong.append(f"{port}: {hour} served {events} events, only {sent} were sent")
            if self.seen.get((port, hour), 0) > 0 and events == 0:
                self.wrong.append(f"{port}: {hour} served as empty after {self.seen[(port, hour)]} events")
            self.seen[(port, hour)] = events


def redis_master(story: Story, gap_s: float) -> Recovery:
    """SIGKILL the Redis master holding the current hour's speed view: its replica takes over,
    serving answers or says 503 meanwhile (never a wrong number), the view is exact once healed;
    the node started again rejoins as a replica."""
    time.sleep(gap_s)
    s = story.box.settings()
    key = s.redis_layout.hour(hours_of_date(datetime.now(UTC).date())[datetime.now(UTC).hour])
    client = redis_cluster(s)
    try:
        name = master_of(client, key)
    finally:
        client.close()
    watch = ServingWatch(story)
    watch.start()
    time.sleep(1.0)  # answers from before the fault
    r, began = _start(story, "redis-master", name)
    try:
        kill_node(name)

        def promoted() -> bool:
            c = redis_cluster(s)
            try:
                return master_of(c, key) != name and bool(c.ping())
            except redis.RedisError:
                return False
            finally:
                c.close()

        assert wait_until(promoted, 60, 0.5), f"no replica took over {name}'s slots within 60 s"
        r.details["failover_s"] = round(time.monotonic() - began, 1)
        r.back_s = bring_back()
        r.recovered_s = story.converge(began, f"after the {name} kill")
    finally:
        watch.stopping.set()
        watch.join(30)
    r.details["serving_answers"] = dict(sorted(watch.answers.items()))
    assert not watch.wrong, "the serving layer answered wrongly during the failover:\n" + "\n".join(
        watch.wrong[:10]
    )
    assert watch.answers.get(200, 0) + watch.answers.get(503, 0) > 0, "the serving replicas were never polled"
    return story.record(r)


def objectstore(story: Story, gap_s: float) -> Recovery:
    """Restart the object store during a checkpoint: SIGKILL it right after the REST API shows a
    checkpoint in progress, start it again; later checkpoints complete and the view is exact."""
    time.sleep(gap_s)
    flink, job = story.flink, story.job

    def in_progress() -> int | None:
        try:
            doc = flink.checkpoints(job)
        except OSError:
            return None
        ids = [int(c["id"]) for c in doc.get("history", []) if c.get("status") == "IN_PROGRESS"]
        return max(ids) if ids else None

    caught: list[int] = []

    def triggered() -> bool:
        checkpoint = in_progress()
        if checkpoint is not None:
            caught.append(checkpoint)
        return checkpoint is not None

    assert wait_until(triggered, 120, 0.05), "no checkpoint was seen in progress within 120 s"
    r, began = _start(story, "objectstore", "objectstore")
    kill_node("objectstore")
    r.details["checkpoint_in_flight"] = caught[0]
    time.sleep(3.0)  # the checkpoint's uploads meet a dead store
    r.back_s = bring_back()

    def later_completed() -> bool:
        try:
            latest = flink.checkpoints(job)["latest"]["completed"]
        except (OSError, KeyError, TypeError):
            return False
        return bool(latest) and int(latest["id"]) > caught[0]

    assert wait_until(later_completed, RESTART_TIMEOUT_S, 0.5), "no checkpoint completed after the restart"
    latest = flink.checkpoints(job)["latest"]["completed"]
    r.details["next_completed"] = latest["id"]
    r.details["checkpoint_completed_s"] = round(time.monotonic() - began, 1)
    r.recovered_s = story.converge(began, "after the object store restart")
    return story.record(r)


SPEED_FAULTS: Final[dict[str, Callable[[Story, float], Recovery]]] = {
    "taskmanager": taskmanager,
    "broker": broker,
    "redis-master": redis_master,
    "objectstore": objectstore,
}
