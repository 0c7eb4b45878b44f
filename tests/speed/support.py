"""Helpers for the speed suite: private topics, a Redis prefix, and the job as a subprocess."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import redis
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic
from process_support import reap_group

from lambda_contract.redis_layout import GroupKey, Metrics
from lambda_contract.settings import Settings
from lambda_contract.windows import parse_hour_id
from lambda_tools.generator import GeneratedRecord, GeneratorConfig, history
from lambda_tools.truth import SentRecord, Truth, compute_truth

REPO = Path(__file__).resolve().parents[2]
BOOTSTRAP = os.environ.get("LAMBDA_KAFKA_BOOTSTRAP", "localhost:9092")


def base_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("LAMBDA_HOME", str(REPO))
    env.setdefault("LAMBDA_STATE_DIR", str(REPO / ".local" / "state"))
    env.setdefault("LAMBDA_JARS_DIR", str(REPO / ".local" / "jars"))
    env.setdefault(
        "LAMBDA_REDIS_PASSWORD_FILE", str(REPO / ".local" / "state" / "secrets" / "redis-password")
    )
    return env


@dataclass
class Sandbox:
    """Everything one test run owns: topics, Redis prefix, checkpoint dir, metrics ports."""

    tmp: Path
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    partitions: int = 3

    @property
    def topics(self) -> dict[str, str]:
        return {
            "LAMBDA_TOPIC_ORDERS": f"test.speed.{self.tag}.orders",
            "LAMBDA_TOPIC_DLQ": f"test.speed.{self.tag}.dlq",
            "LAMBDA_TOPIC_LATE": f"test.speed.{self.tag}.late",
        }

    def env(self, **extra: str) -> dict[str, str]:
        env = base_env()
        env.update(self.topics)
        port = 19000 + int(self.tag[:4], 16) % 5000 * 2
        env.update(
            {
                "LAMBDA_REDIS_PREFIX": f"test-speed-{self.tag}",
                "LAMBDA_CHECKPOINT_DIR": (self.tmp / self.tag / "checkpoints").as_uri(),
                "LAMBDA_CHECKPOINT_INTERVAL_S": "2",
                "LAMBDA_SPEED_METRICS_PORT": str(port),
            }
        )
        env.update(extra)
        return env

    def settings(self, **extra: str) -> Settings:
        return Settings.from_env(self.env(**extra))

    def create_topics(self) -> None:
        admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
        try:
            admin.create_topics(
                [
                    NewTopic(t, num_partitions=self.partitions, replication_factor=1)
                    for t in self.topics.values()
                ]
            )
        finally:
            admin.close()

    def delete_topics(self) -> None:
        admin = KafkaAdminClient(bootstrap_servers=BOOTSTRAP)
        try:
            admin.delete_topics(list(self.topics.values()))
        except Exception:
            pass
        finally:
            admin.close()

    def redis(self) -> redis.Redis:
        s = self.settings()
        return redis.Redis.from_url(s.redis_url, password=s.resolved_redis_password())

    def delete_keys(self) -> int:
        client = self.redis()
        keys = list(client.scan_iter(match=f"test-speed-{self.tag}:*", count=1000))
        if keys:
            client.delete(*keys)
        return len(keys)


def produce(topic: str, records: Iterable[tuple[int, bytes | None, bytes | None, int | None]]) -> int:
    """Send (partition, key, value, timestamp_ms) records in order; returns how many."""
    producer = KafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=5)
    n = 0
    for partition, key, value, ts in records:
        producer.send(topic, key=key, value=value, partition=partition, timestamp_ms=ts)
        n += 1
    producer.flush(60)
    producer.close()
    return n


def preload_history(
    topic: str, config: GeneratorConfig, start: datetime, end: datetime, events: int
) -> tuple[list[GeneratedRecord], Truth]:
    """Generated history from `start` to `end` produced into `topic`, and its truth."""
    records = list(history(config, start, end, events))
    truth = compute_truth(
        SentRecord(r.value, datetime.fromtimestamp(r.timestamp_ms / 1000, UTC)) for r in records
    )
    produce(topic, [(r.partition, r.key, r.value, r.timestamp_ms) for r in records])
    return records, truth


class Job:
    """The speed job (`python -m speed_layer.main`) as a child process with its log in a file."""

    def __init__(self, env: dict[str, str], log: Path, *args: str) -> None:
        self.log = log
        self._fh = log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "speed_layer.main", *args],
            env=env,
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (the JVM gateway and Python workers too)."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
        reap_group(self.proc, 20)
        self._fh.close()

    def wait(self, timeout: float) -> int:
        rc = self.proc.wait(timeout)
        self._fh.close()
        return rc

    def tail(self, n: int = 60) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


def read_view(client: redis.Redis, prefix: str, kind: str) -> dict[tuple[object, GroupKey], Metrics]:
    """A speed/late hash family from Redis as {(hour, key): Metrics}."""
    out: dict[tuple[object, GroupKey], Metrics] = {}
    for key in client.scan_iter(match=f"{prefix}:speed:{kind}:*", count=1000):
        hour = parse_hour_id(key.decode().rsplit(":", 1)[1])
        for fld, value in client.hgetall(key).items():
            out[(hour, GroupKey.parse(fld))] = Metrics.decode(value)
    return out


def watermark_ms(client: redis.Redis, prefix: str) -> int | None:
    raw = client.hget(f"{prefix}:speed:meta", "watermark_ms")
    return int(raw) if raw is not None else None
