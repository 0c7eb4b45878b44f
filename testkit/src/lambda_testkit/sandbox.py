"""A test's own corner of the shared local services, so suites can run side by side and leave
nothing behind: three topics, a Redis prefix, checkpoint and table directories, a metrics port.

Needs the `services` extra (kafka-python, redis): `lambda-testkit[services]`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, cast

import redis
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.consumer.fetcher import ConsumerRecord

from lambda_contract import redis_clients
from lambda_contract.redis_layout import GroupKey, Metrics
from lambda_contract.settings import Settings
from lambda_contract.windows import parse_hour_id
from lambda_testkit.truth import View

REPO: Final = Path(__file__).resolve().parents[3]

# Settings a test inherits from the environment `make test` set up; every other LAMBDA_* is the test's.
INHERITED: Final = (
    "LAMBDA_HOME",
    "LAMBDA_STATE_DIR",
    "LAMBDA_KAFKA_BOOTSTRAP",
    "LAMBDA_REDIS_URL",
    "LAMBDA_JARS_DIR",
    "LAMBDA_REDIS_PASSWORD_FILE",
)

# (partition, key, value, Kafka timestamp in ms): one record as a test produces it.
Record = tuple[int, bytes | None, bytes | None, int | None]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_pair() -> int:
    """A free port p whose p + 1 is free too (a Kafka broker and its KRaft controller)."""
    for _ in range(100):
        port = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError("no two adjacent free ports")


def local_env(**overrides: str) -> dict[str, str]:
    """The environment of a CLI under test: the caller's, minus its LAMBDA_* settings except the
    ones that say where the local services and jars are, plus this checkout's local defaults."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMBDA_") or k in INHERITED}
    env.setdefault("LAMBDA_HOME", str(REPO))
    env.setdefault("LAMBDA_STATE_DIR", str(REPO / ".local" / "state"))
    env.setdefault("LAMBDA_JARS_DIR", str(REPO / ".local" / "jars"))
    env.setdefault(
        "LAMBDA_REDIS_PASSWORD_FILE", str(REPO / ".local" / "state" / "secrets" / "redis-password")
    )
    env.update(overrides)
    return env


@dataclass
class Sandbox:
    """What one test owns. `env()` is the environment of any layer's CLI run inside it."""

    tmp: Path
    suite: str = "test"
    partitions: int = 3
    overrides: dict[str, str] = field(default_factory=dict)
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    metrics_port: int = field(default_factory=free_port_pair)  # the sink serves its own metrics on + 1

    @property
    def topics(self) -> dict[str, str]:
        return {
            "LAMBDA_TOPIC_ORDERS": f"test.{self.suite}.{self.tag}.orders",
            "LAMBDA_TOPIC_DLQ": f"test.{self.suite}.{self.tag}.dlq",
            "LAMBDA_TOPIC_LATE": f"test.{self.suite}.{self.tag}.late",
        }

    @property
    def redis_prefix(self) -> str:
        return f"test-{self.suite}-{self.tag}"

    @property
    def checkpoint_dir(self) -> Path:
        return self.tmp / self.tag / "checkpoints"

    @classmethod
    def over(cls, tmp: Path, suite: str, environment: Mapping[str, str]) -> Sandbox:
        """A sandbox over another deployment's settings (the cluster's: infra/cluster/cluster.env):
        every LAMBDA_* setting of `environment` except those a sandbox names itself."""
        box = cls(tmp, suite)
        own = box.own_settings()
        box.overrides = {k: v for k, v in environment.items() if k.startswith("LAMBDA_") and k not in own}
        return box

    def own_settings(self) -> dict[str, str]:
        """What the sandbox names itself: its topics, Redis prefix, paths and metrics port."""
        return {
            **self.topics,
            "LAMBDA_REDIS_PREFIX": self.redis_prefix,
            "LAMBDA_CHECKPOINT_DIR": self.checkpoint_dir.as_uri(),
            "LAMBDA_CHECKPOINT_INTERVAL_S": "2",
            "LAMBDA_SPEED_METRICS_PORT": str(self.metrics_port),
            "LAMBDA_DELTA_ROOT": str(self.tmp / self.tag / "delta"),
            "LAMBDA_BATCH_CHECKPOINT_DIR": str(self.tmp / self.tag / "bronze-checkpoint"),
        }

    def env(self, **extra: str) -> dict[str, str]:
        return local_env(**(self.own_settings() | self.overrides | extra))

    def settings(self, **extra: str) -> Settings:
        return Settings.from_env(self.env(**extra))

    @property
    def bootstrap(self) -> str:
        return self.settings().kafka_bootstrap

    def create_topics(self) -> None:
        """The three topics, kept forever (a test's records may carry old timestamps), replicated
        as the settings say (1 locally; 3, min.insync.replicas 2 on the cluster's brokers, where a
        topic of one replica would refuse every acks=all write)."""
        s = self.settings()
        configs = {"retention.ms": "-1", "min.insync.replicas": str(s.topic_min_insync)}
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            admin.create_topics(
                [
                    NewTopic(t, self.partitions, s.topic_replication, topic_configs=configs)
                    for t in self.topics.values()
                ]
            )
        finally:
            admin.close()

    def delete_topics(self) -> None:
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            admin.delete_topics(list(self.topics.values()))
        except Exception:  # noqa: S110 (cleanup: a topic already gone is fine)
            pass
        finally:
            admin.close()

    def redis(self) -> redis.Redis:
        """A client of the Redis the sandbox's settings name (lambda_contract.redis_clients): in
        cluster mode a cluster client, typed as a Redis for the tests (the calls they make, hash
        reads, SCAN and UNLINK, are the same on both)."""
        return cast(redis.Redis, redis_clients.sync_client(self.settings()))

    def delete_keys(self) -> int:
        client = self.redis()
        try:
            return delete_prefix(client, self.redis_prefix)
        finally:
            client.close()

    def produce(self, records: Iterable[Record]) -> list[tuple[int, int]]:
        """Send records to this sandbox's orders topic, in order; each one's (partition, offset)."""
        return produce(self.bootstrap, self.topics["LAMBDA_TOPIC_ORDERS"], records)

    def read_view(self, kind: str) -> View:
        """A speed-view hash family (`hour`, `late`, `dups`) from Redis as {(hour, key): Metrics}."""
        client = self.redis()
        try:
            return read_view(client, self.redis_prefix, kind)
        finally:
            client.close()


@contextlib.contextmanager
def sandbox_for(tmp: Path, suite: str, **overrides: str) -> Iterator[Sandbox]:
    """A sandbox with its topics created; its topics and Redis keys are removed afterwards."""
    box = Sandbox(tmp, suite, overrides=dict(overrides))
    box.create_topics()
    try:
        yield box
    finally:
        box.delete_topics()
        box.delete_keys()


def produce(bootstrap: str, topic: str, records: Iterable[Record]) -> list[tuple[int, int]]:
    """Send (partition, key, value, timestamp_ms) records in order, acknowledged by all replicas;
    returns each one's (partition, offset)."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,  # a retry after a leader change writes nothing twice
        linger_ms=5,
        max_request_size=2_000_000,
    )
    try:
        futures = [
            producer.send(topic, key=key, value=value, partition=partition, timestamp_ms=ts)
            for partition, key, value, ts in records
        ]
        producer.flush(120)
        return [(meta.partition, meta.offset) for meta in (f.get(timeout=60) for f in futures)]
    finally:
        producer.close(10)


def read_topic(
    bootstrap: str, topic: str, *, committed: bool = True, timeout_s: float = 60
) -> list[ConsumerRecord]:
    """Every record of `topic` up to its end as of the call, in no group.

    The speed job writes the DLQ and late topics in Kafka transactions: read_committed (the
    default here) is what its readers see, one record per output, each visible once the checkpoint
    after it completes; read_uncommitted also returns the records of aborted transactions (a killed
    run's output, written again by the run that resumed). The end is the last stable offset under
    read_committed, which an open transaction holds back."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level="read_committed" if committed else "read_uncommitted",
        fetch_max_bytes=4 << 20,  # a fetch over several partitions stays below the frame limit
        receive_message_max_bytes=8 << 20,
    )
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        end = consumer.end_offsets(parts)
        out: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end[tp] for tp in parts):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: read {len(out)} records, not at {end} after {timeout_s:.0f} s")
            for batch in consumer.poll(timeout_ms=500).values():
                out += batch
        return out
    finally:
        consumer.close()


def delete_prefix(client: redis.Redis, prefix: str) -> int:
    """Delete every key under `prefix:`; how many there were."""
    keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    return len(keys)


# redis-py types a client's answers `Awaitable[X] | X` (one class serves both); these helpers name
# what a sync client returns, so tests read Redis without a cast of their own.


def hash_of(client: redis.Redis, key: str) -> dict[bytes, bytes]:
    """Every field of a hash (empty if the key is absent)."""
    return cast(dict[bytes, bytes], client.hgetall(key))


def field_names_of(client: redis.Redis, key: str) -> list[bytes]:
    """The field names of a hash."""
    return cast(list[bytes], client.hkeys(key))


def field_of(client: redis.Redis, key: str, name: str) -> bytes | None:
    """One field of a hash (None if it or the key is absent)."""
    return cast(bytes | None, client.hget(key, name))


def read_view(client: redis.Redis, prefix: str, kind: str) -> View:
    """A speed-view hash family under `prefix` as {(hour, key): Metrics}."""
    out: View = {}
    for key in client.scan_iter(match=f"{prefix}:speed:{kind}:*", count=1000):
        hour = parse_hour_id(key.decode().rsplit(":", 1)[1])
        for fld, value in hash_of(client, key).items():
            out[(hour, GroupKey.parse(fld))] = Metrics.decode(value)
    return out


def duplicates(client: redis.Redis, prefix: str) -> int:
    """The speed view's duplicate counters under `prefix`, summed over hours and groups."""
    return sum(
        int(v)
        for key in client.scan_iter(match=f"{prefix}:speed:dups:*", count=1000)
        for v in hash_of(client, key).values()
    )


def watermark_ms(client: redis.Redis, prefix: str) -> int | None:
    """The speed job's watermark as its sink last wrote it (None before the first write)."""
    raw = field_of(client, f"{prefix}:speed:meta", "watermark_ms")
    return int(raw) if raw is not None else None
