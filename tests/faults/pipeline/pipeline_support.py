"""Shared by the pipeline fault tests, beyond the test kit: the suite's sandbox settings, a
private broker a test may restart, and reading a topic back."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from kafka import KafkaConsumer, TopicPartition

from lambda_contract.settings import Settings
from lambda_testkit.sandbox import Record, Sandbox, free_port_pair, sandbox_for
from lambda_tools import services

REPO: Final = Path(__file__).resolve().parents[3]
LONG: Final = os.environ.get("LAMBDA_FAULTS_LONG", "") not in ("", "0")
PARTITIONS: Final = 3
JOB_TIMEOUT_S: Final = 900
SPEED_CLI: Final = str(REPO / ".venvs/speed/bin/lambda-speed")
BATCH_CLI: Final = str(REPO / ".venvs/batch/bin/lambda-batch")


def round_robin(values: Sequence[bytes | None], timestamps_ms: Sequence[int]) -> list[Record]:
    """Values as records spread over the partitions in turn, each with its own key and timestamp."""
    return [(i % PARTITIONS, f"k{i}".encode(), v, timestamps_ms[i]) for i, v in enumerate(values)]


@contextmanager
def sandbox_in(tmp_path: Path, **overrides: str) -> Iterator[Sandbox]:
    """The suite's sandbox: a batch sized for a busy 2-core machine, no Pushgateway."""
    with sandbox_for(
        tmp_path,
        "faults",
        LAMBDA_SPARK_DRIVER_MEMORY="2g",
        LAMBDA_SPARK_SHUFFLE_PARTITIONS="2",
        **overrides,
    ) as box:
        yield box


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
        bootstrap_servers=box.bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",  # the speed job's topics are transactional: see docs/reliability.md
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
