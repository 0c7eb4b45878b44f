"""Kafka orders.v1 -> Delta bronze, exactly once (Structured Streaming, availableNow, checkpoint).

Exactly once: the checkpoint records the Kafka offsets of every micro-batch and the Delta sink
commits each batch idempotently (its transaction id is the query id plus batch id), so a run that
dies mid-batch replays that batch on restart without duplicating it. Bronze is the master dataset:
`failOnDataLoss=true` makes a run fail loudly if Kafka deleted records (retention) that bronze
never received, instead of silently skipping them; `allow_data_loss` opts out knowingly.

Spark's Kafka source keeps its offsets in that checkpoint and commits none to Kafka, so nothing
outside could see how far behind the ingest is. After each run the offsets it read through are
committed to the consumer group LAG_GROUP, for monitoring only (kafkaExporter's
`kafka_consumergroup_lag`, the alert BronzeIngestOffsetsStuck): the checkpoint stays the only
thing the ingest resumes from.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F  # noqa: N812 - the PySpark convention

from batch_layer import delta_tables, validation
from lambda_contract.settings import Settings
from lambda_contract.tables import BRONZE

log = logging.getLogger(__name__)

LAG_GROUP: Final = "lambda-bronze-ingest"
"""The consumer group the ingest's offsets are committed to, for lag monitoring only."""


@dataclass(frozen=True)
class IngestResult:
    rows: int
    batches: int
    bronze_version: int
    started_at: float
    """Unix time before the query looked up the topic's end: every record that reached Kafka
    earlier is in bronze now (the gauge BATCH_INGESTED_THROUGH, which the retention alert reads)."""


def bronze_rows(kafka: DataFrame) -> DataFrame:
    """Kafka source rows in the bronze layout; event_date per the contract's event date rule."""
    with_time = validation.event_ms_only(kafka, "value")
    kafka_ms = validation.kafka_ms(F.col("timestamp"))
    event_date = validation.date_of_ms(F.coalesce(F.col(validation.EVENT_MS), kafka_ms))
    out = with_time.select(
        event_date.alias("event_date"),
        "key",
        "value",
        "topic",
        "partition",
        "offset",
        F.col("timestamp").alias("kafka_timestamp"),
        F.current_timestamp().alias("ingested_at"),
    )
    return delta_tables.conform(out, BRONZE)


def _rows_appended_since(spark: SparkSession, location: str, version: int) -> int:
    """Rows the commits after `version` added (Delta's own operation metrics: exact, no scan)."""
    history = DeltaTable.forPath(spark, location).history().where(F.col("version") > version)
    total = history.select(
        F.sum(F.coalesce(F.col("operationMetrics")["numOutputRows"].cast("bigint"), F.lit(0)))
    ).first()
    return int(total[0] or 0) if total else 0


def read_through(progress: Iterable[Any]) -> dict[str, dict[int, int]]:
    """The offsets (topic -> partition -> next offset) the query's last micro-batch read up to;
    empty when no micro-batch ran (nothing new)."""
    ends: dict[str, dict[int, int]] = {}
    for batch in progress:
        for source in batch["sources"] or ():
            end = source["endOffset"]
            parsed = json.loads(end) if isinstance(end, str) else end
            for topic, partitions in (parsed or {}).items():
                ends.setdefault(topic, {}).update({int(p): int(o) for p, o in partitions.items()})
    return ends


def commit_for_monitoring(
    spark: SparkSession, settings: Settings, ends: Mapping[str, Mapping[int, int]]
) -> None:
    """Commit `ends` to LAG_GROUP with the Kafka client in Spark's JVM (a standalone consumer: no
    subscription, no rebalance). A failure is logged, never raised: bronze is already committed."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    consumer = None
    try:
        props = jvm.java.util.Properties()
        for key, value in {
            "bootstrap.servers": settings.kafka_bootstrap,
            "group.id": LAG_GROUP,
            "enable.auto.commit": "false",
            "key.deserializer": "org.apache.kafka.common.serialization.ByteArrayDeserializer",
            "value.deserializer": "org.apache.kafka.common.serialization.ByteArrayDeserializer",
        }.items():
            props.setProperty(key, value)
        consumer = jvm.org.apache.kafka.clients.consumer.KafkaConsumer(props)
        offsets = jvm.java.util.HashMap()
        for topic, partitions in ends.items():
            for partition, offset in partitions.items():
                offsets.put(
                    jvm.org.apache.kafka.common.TopicPartition(topic, partition),
                    jvm.org.apache.kafka.clients.consumer.OffsetAndMetadata(jvm.java.lang.Long(offset)),
                )
        consumer.commitSync(offsets)
        log.info("ingest: offsets committed to %s for lag monitoring: %s", LAG_GROUP, dict(ends))
    except Exception as exc:  # monitoring only: the ingest itself succeeded
        log.warning("ingest: could not commit offsets to %s (lag monitoring only): %s", LAG_GROUP, exc)
    finally:
        if consumer is not None:
            consumer.close()


def ingest(
    spark: SparkSession,
    settings: Settings,
    *,
    max_offsets_per_trigger: int | None = None,
    allow_data_loss: bool = False,
) -> IngestResult:
    """Append everything new in the topic to bronze, then stop (trigger availableNow)."""
    started_at = time.time()
    location = delta_tables.url(settings, BRONZE)
    if not delta_tables.exists(spark, settings, BRONZE):
        delta_tables.ensure(spark, settings, BRONZE)
    before = delta_tables.version(spark, settings, BRONZE)
    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", settings.kafka_bootstrap)
        .option("subscribe", settings.topic_orders)
        .option("startingOffsets", "earliest")
        .option("failOnDataLoss", "false" if allow_data_loss else "true")
        .option("includeHeaders", "false")
    )
    if max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", str(max_offsets_per_trigger))
    query = (
        bronze_rows(reader.load())
        .writeStream.format("delta")
        .outputMode("append")
        .option("checkpointLocation", settings.bronze_checkpoint_url)
        .partitionBy(*BRONZE.partition_by)
        .trigger(availableNow=True)
        .queryName("bronze-ingest")
        .start(location)
    )
    batches = 0
    try:
        while query.isActive:
            query.awaitTermination(5)
            progress = query.lastProgress
            if progress and int(progress.get("batchId", -1)) >= batches:
                batches = int(progress["batchId"]) + 1
                log.info("ingest: micro-batch %d done (%s rows)", batches, progress.get("numInputRows", 0))
        query.awaitTermination()  # re-raises a failure of the query
    finally:
        if query.isActive:
            query.stop()
    ends = read_through(query.recentProgress)
    if ends:
        commit_for_monitoring(spark, settings, ends)
    rows = _rows_appended_since(spark, location, before)
    return IngestResult(
        rows=rows,
        batches=batches,
        bronze_version=delta_tables.version(spark, settings, BRONZE),
        started_at=started_at,
    )
