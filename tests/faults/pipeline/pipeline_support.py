"""Shared by the pipeline fault tests: a private sandbox (topics, Redis prefix, Delta root,
checkpoints), the layers' CLIs as subprocesses, and Kafka produce/read helpers."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import redis
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from process_support import reap_group

from lambda_contract.settings import Settings
from lambda_tools import services

REPO: Final = Path(__file__).resolve().parents[3]
LONG: Final = os.environ.get("LAMBDA_FAULTS_LONG", "") not in ("", "0")
PARTITIONS: Final = 3
JOB_TIMEOUT_S: Final = 900
SPEED_CLI: Final = str(REPO / ".venvs/speed/bin/lambda-speed")
BATCH_CLI: Final = str(REPO / ".venvs/batch/bin/lambda-batch")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Sandbox:
    tag: str
    tmp: Path
    env: dict[str, str]

    @property
    def settings(self) -> Settings:
        return Settings.from_env(self.env)

    def redis(self) -> redis.Redis:
        s = self.settings
        return redis.Redis.from_url(s.redis_url, password=s.resolved_redis_password())


@contextmanager
def sandbox_in(tmp_path: Path, **overrides: str) -> Iterator[Sandbox]:
    """Private topics (no retention limit), Redis prefix, Delta root and checkpoints; removed after.

    `overrides` are further LAMBDA_* settings, e.g. the bootstrap of a private broker."""
    tag = uuid.uuid4().hex[:10]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMBDA_")}
    env.update(
        LAMBDA_HOME=str(REPO),
        LAMBDA_STATE_DIR=str(REPO / ".local/state"),
        LAMBDA_JARS_DIR=os.environ.get("LAMBDA_JARS_DIR", str(REPO / ".local/jars")),
        LAMBDA_REDIS_PASSWORD_FILE=os.environ.get(
            "LAMBDA_REDIS_PASSWORD_FILE", str(REPO / ".local/state/secrets/redis-password")
        ),
        LAMBDA_TOPIC_ORDERS=f"test.faults.{tag}.orders",
        LAMBDA_TOPIC_DLQ=f"test.faults.{tag}.dlq",
        LAMBDA_TOPIC_LATE=f"test.faults.{tag}.late",
        LAMBDA_REDIS_PREFIX=f"test-faults-{tag}",
        LAMBDA_CHECKPOINT_DIR=(tmp_path / "flink").as_uri(),
        LAMBDA_CHECKPOINT_INTERVAL_S="2",
        LAMBDA_SPEED_METRICS_PORT=str(free_port()),
        LAMBDA_DELTA_ROOT=str(tmp_path / "delta"),
        LAMBDA_BATCH_CHECKPOINT_DIR=str(tmp_path / "bronze-checkpoint"),
        LAMBDA_PUSHGATEWAY_URL="",
        LAMBDA_SPARK_DRIVER_MEMORY="2g",
        LAMBDA_SPARK_SHUFFLE_PARTITIONS="2",
    )
    env.update(overrides)
    box = Sandbox(tag, tmp_path, env)
    topics = [env["LAMBDA_TOPIC_ORDERS"], env["LAMBDA_TOPIC_DLQ"], env["LAMBDA_TOPIC_LATE"]]
    bootstrap = box.settings.kafka_bootstrap
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics(
            [
                NewTopic(
                    t, num_partitions=PARTITIONS, replication_factor=1, topic_configs={"retention.ms": "-1"}
                )
                for t in topics
            ]
        )
    finally:
        admin.close()
    try:
        yield box
    finally:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)  # fresh: an idle one is dropped by the broker
        try:
            admin.delete_topics(topics)
        finally:
            admin.close()
        client = box.redis()
        keys = list(client.scan_iter(match=f"test-faults-{tag}:*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def produce(
    box: Sandbox, values: Sequence[bytes | None], timestamps_ms: Sequence[int]
) -> list[tuple[int, int]]:
    """Send values round-robin over the partitions; returns each one's (partition, offset)."""
    producer = KafkaProducer(
        bootstrap_servers=box.settings.kafka_bootstrap, acks="all", linger_ms=5, max_request_size=2_000_000
    )
    futures = [
        producer.send(
            box.settings.topic_orders,
            key=f"k{i}".encode(),
            value=value,
            partition=i % PARTITIONS,
            timestamp_ms=timestamps_ms[i],
        )
        for i, value in enumerate(values)
    ]
    producer.flush(120)
    producer.close()
    out = []
    for future in futures:
        meta = future.get(timeout=60)
        out.append((meta.partition, meta.offset))
    return out


class Proc:
    def __init__(self, command: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self._fh = log.open("wb")
        self.proc = subprocess.Popen(
            command, env=env, stdout=self._fh, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait(self, deadline: float) -> int:
        try:
            return self.proc.wait(max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(30)
            raise AssertionError(
                f"{self.log.name}: still running after {JOB_TIMEOUT_S} s:\n{self.tail()}"
            ) from None
        finally:
            self._fh.close()

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group (the CLI, its JVM and Python workers) and reap it."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        reap_group(self.proc, 30)
        self._fh.close()

    def tail(self, n: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])


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


@dataclass
class PrivateBroker:
    """A Kafka broker of the test's own (own port and data directory), run by the same code as
    `make up` (lambda_tools.services), so a test can restart it without disturbing anyone using
    the shared broker."""

    settings: Settings

    @property
    def bootstrap(self) -> str:
        return self.settings.kafka_bootstrap

    def start(self) -> None:
        services.start_kafka(self.settings, self.settings.state_path)

    def stop(self) -> None:
        services.down(self.settings)  # only Kafka was started under this state directory

    def restart(self) -> None:
        self.stop()
        self.start()


@contextmanager
def private_broker(state: Path) -> Iterator[PrivateBroker]:
    port = free_port_pair()
    broker = PrivateBroker(
        Settings.from_env(
            {
                "LAMBDA_HOME": str(REPO),
                "LAMBDA_STATE_DIR": str(state),
                "LAMBDA_JARS_DIR": os.environ.get("LAMBDA_JARS_DIR", str(REPO / ".local/jars")),
                "LAMBDA_KAFKA_BOOTSTRAP": f"localhost:{port}",
            }
        )
    )
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()  # also after a start that failed half-way


def read_topic(box: Sandbox, topic: str) -> list[dict[str, object]]:
    consumer = KafkaConsumer(
        bootstrap_servers=box.settings.kafka_bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_bytes=1 << 20,  # an oversized record still comes whole (KIP-74)
        max_partition_fetch_bytes=1 << 20,
        receive_message_max_bytes=8 << 20,
    )
    parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    end = consumer.end_offsets(parts)
    out: list[dict[str, object]] = []
    deadline = time.monotonic() + 120
    while any(consumer.position(tp) < end[tp] for tp in parts) and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=1000).values():
            out += [json.loads(m.value) for m in batch]
    consumer.close()
    return out
