"""Kafka I/O of the traffic generator: a kafka-python producer tuned for throughput, safe for truth.

The ground truth is computed over exactly the records handed to `send`, so a record Kafka did
not accept would make it wrong: acks=all, idempotence (no duplicates from retries, order kept per
partition), unlimited retries within a delivery timeout, and every asynchronous failure counted;
the CLI refuses to call a run good unless `failures` is 0 after `flush`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from kafka import KafkaProducer
from kafka.errors import KafkaError, NoBrokersAvailable

from lambda_contract.windows import from_epoch_ms
from lambda_testkit.truth import SentRecord
from lambda_tools import kafka_calls
from lambda_tools.generator import GeneratedRecord


class ProducerError(RuntimeError):
    """Kafka is unreachable, the topic is missing, or records were not acknowledged."""


@dataclass(frozen=True)
class ProducerTuning:
    """Producer knobs. Defaults measured on the 2-core dev machine (tools/README.md)."""

    linger_ms: int = 50
    batch_size: int = 256 * 1024
    compression: str | None = None  # "lz4", "gzip", ... need their codec libraries installed
    delivery_timeout_ms: int = 120_000
    max_block_ms: int = 60_000


def topic_partitions(bootstrap: str, topic: str) -> int:
    """Partition count of an existing topic; a clear error when Kafka or the topic is missing."""
    try:
        with kafka_calls.consumer_client(bootstrap) as consumer:
            partitions = kafka_calls.partitions(consumer, topic)
    except NoBrokersAvailable:
        raise ProducerError(f"no Kafka broker reachable at {bootstrap} (start it with `make up`)") from None
    except kafka_calls.KafkaUnavailableError as exc:
        raise ProducerError(str(exc)) from exc
    if not partitions:
        raise ProducerError(f"topic {topic!r} does not exist on {bootstrap} (`make up` creates orders.v1)")
    return len(partitions)


class OrdersProducer:
    """Sends generated records to one topic, to the partition the generator chose."""

    def __init__(self, bootstrap: str, topic: str, tuning: ProducerTuning | None = None) -> None:
        t = tuning or ProducerTuning()
        self.topic = topic
        self.partitions = topic_partitions(bootstrap, topic)
        self.failures = 0
        self.first_error: BaseException | None = None
        try:
            self._producer = KafkaProducer(
                bootstrap_servers=bootstrap,
                # Not tunable: every producer of the project is acks=all and idempotent
                # (tests/tools/test_producer_configs.py); with replicas, an acknowledged record is on
                # min.insync.replicas brokers and a retry after a leader change writes nothing twice.
                acks="all",
                enable_idempotence=True,
                # kafka-python's idempotent producer keeps one request in flight per broker.
                max_in_flight_requests_per_connection=1,
                linger_ms=t.linger_ms,
                batch_size=t.batch_size,
                compression_type=t.compression,
                delivery_timeout_ms=t.delivery_timeout_ms,
                max_block_ms=t.max_block_ms,
                max_request_size=2 * 1024 * 1024,
                allow_auto_create_topics=False,
                metrics_enabled=False,
            )
        except (KafkaError, AssertionError, ValueError) as exc:
            raise ProducerError(f"cannot create a Kafka producer for {bootstrap}: {exc}") from exc

    def _on_error(self, exc: BaseException) -> None:
        self.failures += 1
        if self.first_error is None:
            self.first_error = exc

    def send(self, record: GeneratedRecord, timestamp_ms: int) -> None:
        """Queue one record; delivery failures are counted, never silently dropped."""
        if record.partition >= self.partitions:
            raise ProducerError(
                f"record for partition {record.partition} but {self.topic!r} has {self.partitions}"
            )
        future = self._producer.send(
            self.topic,
            value=record.value,
            key=record.key,
            partition=record.partition,
            timestamp_ms=timestamp_ms,
        )
        future.add_errback(self._on_error)

    def flush(self, timeout_s: float | None = None) -> None:
        self._producer.flush(timeout=timeout_s)

    def close(self, timeout_s: float = 30.0) -> None:
        self._producer.close(timeout=timeout_s)

    def check(self) -> None:
        """Raise if any record was not acknowledged (call after `flush`)."""
        if self.failures:
            raise ProducerError(
                f"{self.failures} record(s) were not acknowledged by Kafka "
                f"(first error: {self.first_error!r}); "
                "the ground truth does not describe the topic"
            )


def send_all(
    records: Iterable[GeneratedRecord],
    send: Callable[[GeneratedRecord, int], None],
    wall_clock_ms: Callable[[], int] | None = None,
    on_sent: Callable[[GeneratedRecord, int], None] | None = None,
) -> Iterator[SentRecord]:
    """Send each record and yield it as truth sees it, in send order.

    The Kafka timestamp is the record's stream clock, or the wall clock when `wall_clock_ms` is
    given (history for dates beyond the topic's time retention). Malformed records whose event
    time cannot be read are bucketed by this timestamp, so truth gets exactly what Kafka got."""
    for record in records:
        ts = record.timestamp_ms if wall_clock_ms is None else wall_clock_ms()
        send(record, ts)
        if on_sent is not None:
            on_sent(record, ts)
        yield SentRecord(record.value, from_epoch_ms(ts), record.late)
