"""Recompute one UTC date from bronze: validate, quarantine, deduplicate, aggregate, commit.

Per date three Delta commits, in this order: quarantine (replace the date), gold (replace the
date in ONE commit with replaceWhere, so readers see the old or the new date, never a mix), then
the coverage manifest (24 rows, replaced). The manifest goes last: it only ever claims hours that
gold already holds. Everything is a pure function of the bronze snapshot that was read, so a
rerun on the same snapshot writes identical gold.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Final

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F  # noqa: N812 - the PySpark convention

from batch_layer import delta_tables, validation
from batch_layer.planning import PlannedDate
from lambda_contract.settings import Settings
from lambda_contract.tables import BRONZE, GOLD, MANIFEST, QUARANTINE, REVENUE_TYPE
from lambda_contract.windows import hours_of_date

log = logging.getLogger(__name__)

_PURCHASE = "purchase"


@dataclass(frozen=True)
class HourCounts:
    input_rows: int = 0
    valid: int = 0
    quarantined: int = 0
    kept: int = 0  # distinct events that made it into gold

    @property
    def duplicates(self) -> int:
        return self.valid - self.kept


@dataclass(frozen=True)
class DateResult:
    day: date
    why: str
    bronze_version: int
    input_rows: int
    valid: int
    duplicates: int
    quarantined: int
    arrived_after_previous_run: int
    gold_rows: int
    revenue_by_currency: dict[str, Decimal]
    seconds: float


def new_run_id(now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{uuid.uuid4().hex[:8]}"


def _date_literal(day: date) -> str:
    return f"DATE'{day.isoformat()}'"


def ensure_tables(spark: SparkSession, settings: Settings) -> None:
    for table in (BRONZE, QUARANTINE, GOLD, MANIFEST):
        if not delta_tables.exists(spark, settings, table):
            delta_tables.ensure(spark, settings, table)


def bronze_counts(spark: SparkSession, settings: Settings, version: int) -> dict[date, int]:
    """Rows per event_date in a bronze snapshot (cheap: partition column only)."""
    df = delta_tables.read(spark, settings, BRONZE, version).groupBy("event_date").count()
    return {r["event_date"]: int(r["count"]) for r in df.collect()}


def computed_counts(spark: SparkSession, settings: Settings) -> dict[date, int]:
    """Input rows each computed date's last run read (from the manifest)."""
    df = (
        delta_tables.read(spark, settings, MANIFEST)
        .where("computed")
        .groupBy("date")
        .agg(F.sum("input_rows").alias("rows"))
    )
    return {r["date"]: int(r["rows"]) for r in df.collect()}


_GOLD_INPUTS: Final = ("event_id", "event_type", "region", "category", "currency")
"""The valid fields gold needs; order and customer ids are checked but not aggregated."""

_FIRST_ORDER: Final = ("kafka_timestamp", "partition", "offset")
"""Which copy of a duplicated event_id counts: the first in this order (bronze arrival order)."""


def classified(bronze_of_date: DataFrame) -> DataFrame:
    """Bronze rows with reason, hour, and what quarantine or gold needs of them.

    Kept as slim as the consumers allow, since the recompute materialises it once (raw value and
    topic only for bad rows; no order or customer ids): on a 10 M-event day every column costs
    memory and seconds.
    """
    df = validation.classify(bronze_of_date, "value")
    kafka_ms = validation.kafka_ms(F.col("kafka_timestamp"))
    hour = validation.hour_of_ms(F.coalesce(F.col(validation.EVENT_MS), kafka_ms))
    bad = F.col(validation.REASON).isNotNull()
    return df.select(
        hour.alias("hour"),
        validation.REASON,
        F.when(bad, F.col("value")).alias("value"),
        F.when(bad, F.col("topic")).alias("topic"),
        *_FIRST_ORDER,
        *_GOLD_INPUTS,
        validation.AMOUNT,
    )


def gold_of(valid: DataFrame, day: date) -> DataFrame:
    """Gold's groups: the first copy of each event_id (by kafka timestamp, partition, offset)
    aggregated per (hour, region, category, currency), plus `valid_rows`, every valid copy of the
    group, duplicates included (the manifest's valid count, without another pass over the rows).

    A group holding only later copies has `events` 0 and is not written. A window's row_number,
    not min(struct): Spark aggregates a struct only by sorting, so min(struct) cost a partial sort
    before the shuffle and a full one after it; the window needs the one sort after the shuffle.
    """
    # The gold fields break (impossible) ties of the Kafka position, so a rerun is identical.
    order = Window.partitionBy("event_id").orderBy(
        *_FIRST_ORDER, "hour", *_GOLD_INPUTS[1:], validation.AMOUNT
    )
    copies = valid.select("*", (F.row_number().over(order) == 1).alias("_first"))
    first = F.col("_first")
    purchase = F.col("event_type") == _PURCHASE
    signed = F.when(purchase, F.col(validation.AMOUNT)).otherwise(-F.col(validation.AMOUNT))
    agg = copies.groupBy("hour", "region", "category", "currency").agg(
        F.sum(F.when(first, signed)).cast(REVENUE_TYPE).alias("revenue"),
        F.count(F.when(first & purchase, 1)).alias("orders"),
        F.count(F.when(first & ~purchase, 1)).alias("refunds"),
        F.count(F.when(first, 1)).alias("events"),
        F.count(F.lit(1)).alias("valid_rows"),
    )
    return agg.withColumn("date", F.lit(day))


def _aware(value: datetime) -> datetime:
    """PySpark hands timestamps back naive in the session zone (UTC here)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _previous_inputs(spark: SparkSession, settings: Settings, day: date) -> dict[datetime, int] | None:
    rows = (
        delta_tables.read(spark, settings, MANIFEST)
        .where(F.col("date") == F.lit(day))
        .where("computed")
        .select("hour", "input_rows")
        .collect()
    )
    return {_aware(r["hour"]): int(r["input_rows"]) for r in rows} if rows else None


def recompute_date(
    spark: SparkSession,
    settings: Settings,
    planned: PlannedDate,
    bronze_version: int,
    run_id: str,
    progress: Callable[[str], None] = log.info,
) -> DateResult:
    """Recompute `planned.day` from bronze at `bronze_version` and commit it."""
    started = time.monotonic()
    day = planned.day
    bronze = delta_tables.read(spark, settings, BRONZE, bronze_version).where(
        F.col("event_date") == F.lit(day)
    )
    progress(f"{day}: validating bronze rows (bronze v{bronze_version})")
    # Materialise the classification once; the local checkpoint also cuts the (large) plan, so
    # the quarantine, gold and count queries below plan in milliseconds instead of seconds.
    # Trade-off: losing an executor fails the date (the next run retries it), not recomputes it.
    rows = classified(bronze).localCheckpoint(eager=True, storageLevel=StorageLevel.MEMORY_AND_DISK)
    try:
        # Two passes over the rows: the bad ones (counted per hour while cached, then written),
        # and gold's, which also counts the valid rows per hour (`valid_rows`).
        bad_rows = rows.where(F.col(validation.REASON).isNotNull()).cache()
        quarantined = {_aware(r["hour"]): int(r["count"]) for r in bad_rows.groupBy("hour").count().collect()}
        progress(f"{day}: writing quarantine ({sum(quarantined.values())} rows)")
        quarantine = delta_tables.conform(bad_rows.withColumn("event_date", F.lit(day)), QUARANTINE)
        # One file per date, but repartition, not coalesce: coalesce(1) would also run the scan
        # and filter of every row of the date (or gold's dedup) in that one task, on one core.
        (
            quarantine.repartition(1)
            .write.format("delta")
            .mode("overwrite")
            .option("replaceWhere", f"event_date = {_date_literal(day)}")
            .save(delta_tables.url(settings, QUARANTINE))
        )
        bad_rows.unpersist()
        groups = gold_of(rows.where(F.col(validation.REASON).isNull()), day).repartition(1).cache()
        # One small job for everything the manifest and summary need from gold.
        has_events = F.col("events") > 0
        stats = (
            groups.groupBy("hour", "currency")
            .agg(
                F.sum("events").alias("kept"),
                F.sum("valid_rows").alias("valid"),
                F.sum("revenue").alias("revenue"),
                F.count(F.when(has_events, 1)).alias("n"),
            )
            .collect()
        )
        valid: dict[datetime, int] = {}
        kept: dict[datetime, int] = {}
        revenue: dict[str, Decimal] = {}
        for r in stats:
            hour = _aware(r["hour"])
            valid[hour] = valid.get(hour, 0) + int(r["valid"])
            kept[hour] = kept.get(hour, 0) + int(r["kept"])
            if r["revenue"] is not None:  # None: the groups hold only later copies
                revenue[r["currency"]] = revenue.get(r["currency"], Decimal(0)) + r["revenue"]
        gold_rows = sum(int(r["n"]) for r in stats)
        progress(f"{day}: {sum(valid.values())} valid rows; writing gold ({gold_rows} rows, one commit)")
        (
            delta_tables.conform(groups.where(has_events), GOLD)
            .write.format("delta")
            .mode("overwrite")
            .option("replaceWhere", f"date = {_date_literal(day)}")
            .save(delta_tables.url(settings, GOLD))
        )
        progress(f"{day}: gold committed")
        groups.unpersist()
    finally:
        rows.unpersist()
    counts = {
        hour: HourCounts(
            valid.get(hour, 0) + quarantined.get(hour, 0), valid.get(hour, 0), quarantined.get(hour, 0)
        )
        for hour in set(valid) | set(quarantined)
    }
    previous = _previous_inputs(spark, settings, day)
    computed_at = datetime.now(UTC)
    manifest_rows = []
    totals = HourCounts()
    arrived_total = 0
    for hour in hours_of_date(day):
        c = counts.get(hour, HourCounts())
        c = HourCounts(c.input_rows, c.valid, c.quarantined, kept.get(hour, 0))
        arrived = 0 if previous is None else max(0, c.input_rows - previous.get(hour, 0))
        arrived_total += arrived
        totals = HourCounts(
            totals.input_rows + c.input_rows,
            totals.valid + c.valid,
            totals.quarantined + c.quarantined,
            totals.kept + c.kept,
        )
        manifest_rows.append(
            (
                day,
                hour,
                True,
                run_id,
                bronze_version,
                c.input_rows,
                c.valid,
                c.duplicates,
                c.quarantined,
                arrived,
                computed_at,
            )
        )
    manifest = spark.createDataFrame(manifest_rows, delta_tables.schema(MANIFEST))
    (
        manifest.coalesce(1)
        .write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", f"date = {_date_literal(day)}")
        .save(delta_tables.url(settings, MANIFEST))
    )
    return DateResult(
        day=day,
        why=planned.why.value,
        bronze_version=bronze_version,
        input_rows=totals.input_rows,
        valid=totals.valid,
        duplicates=totals.duplicates,
        quarantined=totals.quarantined,
        arrived_after_previous_run=arrived_total,
        gold_rows=gold_rows,
        revenue_by_currency=revenue,
        seconds=time.monotonic() - started,
    )
