"""Test helpers: produce golden records to a topic, read gold/manifest/quarantine back."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal

from kafka import KafkaProducer
from pyspark.sql import SparkSession

from lambda_contract.redis_layout import GroupKey, Metrics
from lambda_contract.settings import Settings
from lambda_testkit.golden import GoldenRecord
from lambda_testkit.truth import View


def produce(settings: Settings, records: Iterable[GoldenRecord]) -> int:
    """Send records with their explicit partition and Kafka timestamp, in order; returns count."""
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", linger_ms=5)
    n = 0
    try:
        for r in records:
            producer.send(
                settings.topic_orders,
                key=r.key,
                value=r.value,
                partition=r.partition,
                timestamp_ms=r.timestamp_ms,
            )
            n += 1
        producer.flush(30)
    finally:
        producer.close(10)
    return n


def aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def gold_view(rows: Iterable[dict[str, object]]) -> View:
    out: View = {}
    for r in rows:
        hour = r["hour"]
        assert isinstance(hour, datetime)
        key = GroupKey(str(r["region"]), str(r["category"]), str(r["currency"]))
        revenue = r["revenue"]
        assert isinstance(revenue, Decimal), f"revenue must be exact, got {type(revenue)}"
        out[(aware(hour), key)] = Metrics(
            revenue, int(str(r["orders"])), int(str(r["refunds"])), int(str(r["events"]))
        )
    return out


def spark_gold(spark: SparkSession, settings: Settings) -> View:
    df = spark.read.format("delta").load(settings.delta_table_url("gold"))
    return gold_view(r.asDict() for r in df.collect())
