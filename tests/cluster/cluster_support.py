"""What the cluster suite drives: the cluster's nodes (killed by pid, brought back by `lambda-services
up --cluster`), the Flink session cluster's REST API, the brokers' partition leaders, Redis
Cluster's masters, a test's own corner of the cluster (topics, Redis prefix, object-store paths),
live traffic that can pause, the speed view read back, and two serving replicas.

Every layer runs as its own process from its own venv with the cluster environment
(`lambda_tools.cluster.environment`, what `make ... CLUSTER=1` exports), as a user runs it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from delta_commits import object_store
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from redis.cluster import RedisCluster

from lambda_contract.redis_clients import sync_client
from lambda_contract.redis_layout import GroupKey, Metrics
from lambda_contract.settings import Settings
from lambda_contract.windows import hour_label, hours_of_date
from lambda_testkit.processes import Child, http_ok, wait_until
from lambda_testkit.sandbox import free_port, local_env
from lambda_testkit.truth import SentRecord, Truth, View, compute_truth
from lambda_tools import services
from lambda_tools.cluster import environment
from lambda_tools.generator import GeneratedRecord, GeneratorConfig, Kind, live

REPO: Final = Path(__file__).resolve().parents[2]
VENVS: Final = REPO / ".venvs"
# The default state directory, so the cluster's ports and pid files are those of cluster.env.
STATE: Final = Path(os.environ.get("LAMBDA_STATE_DIR") or REPO / ".local" / "state")
LONG: Final = os.environ.get("LAMBDA_CLUSTER_LONG", "") not in ("", "0")
REPORTS: Final = REPO / "reports" / "cluster"
TOKEN: Final = "cluster-token-0123456789abcdef"
PARTITIONS: Final = 3
UP_TIMEOUT_S: Final = 900  # a cold start of every engine on a busy 2-core machine


def cluster_env(**extra: str) -> dict[str, str]:
    """What `make ... CLUSTER=1` gives a command: this checkout's defaults, cluster.env, `extra`."""
    return environment(STATE, base=local_env()) | extra


def run(argv: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    """A layer's CLI to completion; the test fails with its output's tail if it fails."""
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    assert proc.returncode == 0, (
        f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    return proc


# --- nodes ------------------------------------------------------------------------------------------


def node_pid(name: str) -> int | None:
    return services.running_pid(STATE, name)


def kill_node(name: str) -> None:
    """SIGKILL a node as a machine failure would: its whole process group (a TaskManager's Python
    workers die with it), then wait until its pid is gone."""
    pid = node_pid(name)
    assert pid is not None, f"{name} is not running (no live pid in {services.pid_file(STATE, name)})"
    os.killpg(pid, signal.SIGKILL)
    assert wait_until(lambda: node_pid(name) is None, 30, 0.1), f"{name} (pid {pid}) survived SIGKILL"


def bring_back() -> float:
    """`lambda-services up --cluster` (what `make up CLUSTER=1` runs): starts what is missing and
    waits until it is ready. Seconds it took."""
    began = time.monotonic()
    run([str(VENVS / "tools/bin/lambda-services"), "up", "--cluster"], cluster_env(), UP_TIMEOUT_S)
    return time.monotonic() - began


# --- the Flink session cluster -----------------------------------------------------------------------


def _http(method: str, url: str, body: dict[str, Any] | None = None, timeout: float = 10) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        raw = resp.read()
    return json.loads(raw) if raw else None


@dataclass
class Flink:
    """The session cluster's REST API (LAMBDA_FLINK_JOBMANAGER)."""

    address: str

    def get(self, path: str) -> Any:
        return _http("GET", f"http://{self.address}{path}")

    def running_jobs(self) -> list[dict[str, Any]]:
        jobs: list[dict[str, Any]] = self.get("/jobs/overview")["jobs"]
        return [j for j in jobs if j["state"] not in ("FINISHED", "CANCELED", "FAILED")]

    def fully_running(self, job: str) -> bool:
        """The job and every one of its tasks RUNNING (a restart shows CREATED/INITIALIZING)."""
        try:
            doc = self.get(f"/jobs/{job}")
        except OSError:
            return False
        return doc["state"] == "RUNNING" and all(v["status"] == "RUNNING" for v in doc["vertices"])

    def checkpoints(self, job: str) -> dict[str, Any]:
        doc: dict[str, Any] = self.get(f"/jobs/{job}/checkpoints")
        return doc

    def completed(self, job: str) -> int:
        """How many checkpoints of the job completed (0 while the REST API does not answer)."""
        try:
            return int(self.checkpoints(job)["counts"]["completed"])
        except (OSError, KeyError):
            return 0

    def taskmanagers(self) -> int:
        try:
            return len(self.get("/taskmanagers")["taskmanagers"])
        except OSError:
            return 0

    def cancel(self, job: str) -> None:
        with contextlib.suppress(OSError):  # already gone
            _http("PATCH", f"http://{self.address}/jobs/{job}?mode=cancel")
        wait_until(lambda: all(j["jid"] != job for j in self.running_jobs()), 60, 0.5)


# --- Kafka ----------------------------------------------------------------------------------------------


def broker_name(settings: Settings, node_id: int) -> str:
    """The process (kafka-N) of a broker id, by the port it advertises (broker N on 19091+N)."""
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        brokers = admin.describe_cluster()["brokers"]
    finally:
        admin.close()
    port = next(int(b["port"]) for b in brokers if int(b["node_id"]) == node_id)
    return f"kafka-{port - 19091}"


def partition_leader(settings: Settings, topic: str, partition: int = 0) -> int:
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        (doc,) = admin.describe_topics([topic])
    finally:
        admin.close()
    return int(next(p["leader"] for p in doc["partitions"] if p["partition"] == partition))


def in_sync(settings: Settings, topic: str) -> bool:
    """Every partition of `topic` has its full replica set in sync."""
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        (doc,) = admin.describe_topics([topic])
        return all(len(p["isr"]) == len(p["replicas"]) for p in doc["partitions"])
    except Exception:
        return False
    finally:
        admin.close()


def topic_size(settings: Settings, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    try:
        parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        return sum(consumer.end_offsets(parts).values())
    finally:
        consumer.close()


# --- Redis Cluster ----------------------------------------------------------------------------------------


def redis_cluster(settings: Settings) -> RedisCluster:
    """The platform's own cluster-aware client (lambda_contract.redis_clients), as the sink and
    the serving layer get it."""
    client = sync_client(settings)
    assert isinstance(client, RedisCluster), "LAMBDA_REDIS_CLUSTER is empty: not the cluster environment"
    return client


def master_of(client: RedisCluster, key: str) -> str:
    """The process (redis-N, port 17000+N) that is master of `key`'s slot now."""
    node = client.get_node_from_key(key)  # type: ignore[no-untyped-call]
    return f"redis-{int(node.port) - 17000}"


@dataclass
class Views:
    speed: View
    late: View
    dups: int


def read_views(client: RedisCluster, settings: Settings, days: list[date]) -> Views:
    """The speed view, late counters and suppressed duplicates of every hour of `days`, read by
    the key layout (so the hash tags of docs/specs/redis.md are whatever the layout says)."""
    layout = settings.redis_layout
    hours = [h for d in days for h in hours_of_date(d)]
    pipe = client.pipeline(transaction=False)  # type: ignore[no-untyped-call]
    for h in hours:
        pipe.hgetall(layout.hour(h))
        pipe.hgetall(layout.late(h))
        pipe.hgetall(layout.duplicates(h))
    answers: list[dict[bytes, bytes]] = pipe.execute()
    speed: View = {}
    late: View = {}
    dups = 0
    for i, h in enumerate(hours):
        for fld, value in answers[3 * i].items():
            speed[(h, GroupKey.parse(fld))] = Metrics.decode(value)
        for fld, value in answers[3 * i + 1].items():
            late[(h, GroupKey.parse(fld))] = Metrics.decode(value)
        dups += sum(int(v) for v in answers[3 * i + 2].values())
    return Views(speed, late, dups)


def delete_prefix(client: RedisCluster, prefix: str) -> None:
    for key in list(client.scan_iter(match=f"{prefix}:*", count=1000)):
        client.delete(key)


def view_diff(name: str, expected: View, actual: View, limit: int = 8) -> list[str]:
    keys = sorted(set(expected) | set(actual), key=lambda k: (k[0], k[1].field()))
    bad = [k for k in keys if expected.get(k) != actual.get(k)]
    lines = [f"{name}: {len(bad)} of {len(keys)} keys differ"] if bad else []
    for k in bad[:limit]:
        want, have = expected.get(k), actual.get(k)
        lines.append(
            f"  {hour_label(k[0])} {k[1].field()}: expected {want.encode() if want else 'absent'}, "
            f"Redis {have.encode() if have else 'absent'}"
        )
    return lines


# --- a test's own corner of the cluster ------------------------------------------------------------------


@dataclass
class Box:
    """Topics, Redis prefix and object-store paths of one test, so it shares the cluster with
    anyone else's data; `env()` is the environment of any layer's CLI run inside it."""

    tmp: Path
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    api_ports: tuple[int, int] = field(default_factory=lambda: (free_port(), free_port()))

    def env(self, **extra: str) -> dict[str, str]:
        root = f"lambda/tests/{self.tag}"
        own = {
            "LAMBDA_TOPIC_ORDERS": f"test.cluster.{self.tag}.orders",
            "LAMBDA_TOPIC_DLQ": f"test.cluster.{self.tag}.dlq",
            "LAMBDA_TOPIC_LATE": f"test.cluster.{self.tag}.late",
            "LAMBDA_REDIS_PREFIX": f"test-cluster-{self.tag}",
            "LAMBDA_DELTA_ROOT": f"s3a://{root}/delta",
            "LAMBDA_BATCH_CHECKPOINT_DIR": f"s3a://{root}/bronze-checkpoint",
            "LAMBDA_CHECKPOINT_DIR": f"s3://{root}/flink",
            "LAMBDA_CHECKPOINT_INTERVAL_S": "3",
            "LAMBDA_REPORTS_DIR": str(self.tmp / "reports"),
            "LAMBDA_API_TOKENS": TOKEN,
            "LAMBDA_API_HOST": "127.0.0.1",
            "LAMBDA_PUSHGATEWAY_URL": "",
            "LAMBDA_SPARK_SHUFFLE_PARTITIONS": "2",
        }
        return cluster_env(**(own | extra))

    def settings(self) -> Settings:
        return Settings.from_env(self.env())

    def create_topics(self) -> None:
        """The three topics as `make up CLUSTER=1` makes the platform's: replicated, min ISR."""
        s = self.settings()
        configs = {"retention.ms": "-1", "min.insync.replicas": str(s.topic_min_insync)}
        admin = KafkaAdminClient(bootstrap_servers=s.kafka_bootstrap)
        try:
            admin.create_topics(
                [
                    NewTopic(
                        t,
                        PARTITIONS if t == s.topic_orders else 1,
                        s.topic_replication,
                        topic_configs=configs,
                    )
                    for t in (s.topic_orders, s.topic_dlq, s.topic_late)
                ]
            )
        finally:
            admin.close()

    def cleanup(self) -> None:
        s = self.settings()
        admin = KafkaAdminClient(bootstrap_servers=s.kafka_bootstrap)
        try:
            admin.delete_topics([s.topic_orders, s.topic_dlq, s.topic_late])
        except Exception:
            pass
        finally:
            admin.close()
        client = redis_cluster(s)
        try:
            delete_prefix(client, s.redis_prefix)
        finally:
            client.close()
        # The box's Delta tables and checkpoints on the object store (a few MB a run, kept forever
        # otherwise).
        with contextlib.suppress(OSError):
            object_store(s).delete_dir(f"lambda/tests/{self.tag}")


# --- live traffic that can pause ------------------------------------------------------------------------------


class Stream(threading.Thread):
    """Live generated records to the box's orders topic through an idempotent acks=all producer.

    `pause()` ends the current segment of traffic once its records are acknowledged, so the
    speed view can be compared with the truth of everything sent; `resume()` starts a new segment
    (its own seed: no event id repeats). A producer error is kept and reported, never lost."""

    def __init__(self, box: Box, rate: float, seed: int) -> None:
        super().__init__(name="cluster-producer", daemon=True)
        self.box, self.rate, self.seed = box, rate, seed
        self.sent: list[GeneratedRecord] = []
        self.failed: list[str] = []
        self.error: BaseException | None = None
        self._go = threading.Event()
        self._quiet = threading.Event()
        self._done = threading.Event()
        self._go.set()

    def pause(self, timeout: float = 300) -> None:
        self._go.clear()
        assert self._quiet.wait(timeout), "the producer did not flush within its timeout"
        assert self.error is None, f"the producer failed: {self.error!r}"

    def resume(self) -> None:
        self._quiet.clear()
        self._go.set()

    def finish(self) -> None:
        self._done.set()
        self._go.set()
        if self.is_alive():
            self.join(300)

    def on_time(self) -> int:
        return sum(1 for r in self.sent if r.kind is Kind.VALID)

    def truth(self) -> Truth:
        return compute_truth(
            SentRecord(r.value, datetime.fromtimestamp(r.timestamp_ms / 1000, UTC), r.late)
            for r in list(self.sent)
        )

    def run(self) -> None:
        s = self.box.settings()
        try:
            producer = KafkaProducer(
                bootstrap_servers=s.kafka_bootstrap,
                acks="all",
                enable_idempotence=True,  # retries across a leader change write nothing twice
                linger_ms=20,
                delivery_timeout_ms=300_000,
                max_block_ms=300_000,
            )
            segment = 0
            while not self._done.is_set():
                if not self._go.is_set():
                    self._quiet.set()  # everything sent so far is acknowledged
                    self._go.wait()
                    continue
                segment += 1
                config = GeneratorConfig(
                    seed=self.seed * 1000 + segment,
                    duplicate_rate=0.02,
                    late_rate=0.01,
                    malformed_rate=0.01,
                    live_late_warmup_s=2,
                )
                stop = lambda: not self._go.is_set() or self._done.is_set()  # noqa: E731
                for rec in live(config, self.rate, None, time.time, time.sleep, stop):
                    future = producer.send(
                        s.topic_orders,
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
            self._quiet.set()


# --- serving replicas ---------------------------------------------------------------------------------------


@dataclass
class Replicas:
    """Two `lambda-serve` processes over the box's Redis prefix and Delta root, as serving-1 and
    serving-2 run in cluster mode (the test's own ports: the reserved 8000/8001 serve the
    platform's default data)."""

    box: Box
    children: list[Child] = field(default_factory=list)

    def start(self) -> None:
        for i, port in enumerate(self.box.api_ports, 1):
            env = self.box.env(LAMBDA_API_PORT=str(port))
            log = self.box.tmp / f"serving-{i}.log"
            self.children.append(Child([str(VENVS / "serving/bin/lambda-serve")], env, log))
        for child, port in zip(self.children, self.box.api_ports, strict=True):
            ok = wait_until(lambda p=port: http_ok(f"http://127.0.0.1:{p}/healthz"), 120, 0.3)  # type: ignore[misc]
            assert ok, f"a serving replica did not answer /healthz within 120 s:\n{child.tail()}"

    def stop(self) -> None:
        for child in self.children:
            child.kill()

    def get(self, port: int, path: str) -> tuple[int, dict[str, Any]]:
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {TOKEN}"}
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return int(resp.status), json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), json.loads(exc.read() or b"{}")

    def both(self, path: str) -> list[tuple[int, dict[str, Any]]]:
        return [self.get(port, path) for port in self.box.api_ports]


def hourly_path(days: list[date], currency: str, group_by: str = "region,category,currency") -> str:
    """Every hour of `days` (the end is exclusive: the first hour after the last day)."""
    start = hour_label(hours_of_date(min(days))[0])
    end = hour_label(hours_of_date(max(days) + timedelta(days=1))[0])
    return f"/v1/revenue/hourly?start={start}&end={end}&group_by={group_by}&currency={currency}"


def iter_rows(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from doc.get("rows", [])
