"""Kafka orders.v1 -> Delta bronze, exactly once (Structured Streaming, availableNow, checkpoint).

Exactly once: the checkpoint records the Kafka offsets of every micro-batch and the Delta sink
commits each batch idempotently (its transaction id is the query id plus batch id), so a run that
dies mid-batch replays that batch on restart without duplicating it. Bronze is the master dataset:
`failOnDataLoss=true` makes a run fail loudly if Kafka deleted records (retention) that bronze
never received, instead of silently skipping them; `allow_data_loss` opts out knowingly.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F  # noqa: N812 - the PySpark convention

from batch_layer import delta_tables, validation
from lambda_contract.settings import Settings
from lambda_contract.tables import BRONZE

log = logging.getLogger(__name__)


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
    rows = _rows_appended_since(spark, location, before)
    return IngestResult(
        rows=rows,
        batches=batches,
        bronze_version=delta_tables.version(spark, settings, BRONZE),
        started_at=started_at,
    )
