"""Recompute one UTC date from bronze: read the date, classify it once, commit its writes.

Per date four Delta commits, in this order: quarantine (replace the date), silver (the date's
classified events, each row carrying the run id), gold (replace the date in ONE commit with
replaceWhere, so readers see the old or the new date, never a mix), then the coverage manifest
(24 rows, replaced). The manifest goes last: it only ever claims hours that gold and silver
already hold, and names the run whose silver rows explain them (docs/specs/delta.md). Everything is a pure function of the bronze snapshot that was read, so a
rerun on the same snapshot writes identical gold. The steps themselves are in `transforms.py`.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F  # noqa: N812 - the PySpark convention

from batch_layer import delta_tables
from batch_layer.planning import PlannedDate
from batch_layer.spark import materialised_level
from batch_layer.transforms import (
    SILVER_ORDER,
    Coverage,
    DateResult,
    GoldStats,
    aware,
    bad_rows,
    classified,
    counted_copies,
    coverage,
    date_result,
    gold_of_counted,
    gold_rows_of,
    gold_stats,
    gold_summary,
    quarantine_of,
    silver_of,
    valid_rows,
)
from lambda_contract.settings import Settings
from lambda_contract.tables import BRONZE, DUPLICATE, GOLD, MANIFEST, QUARANTINE, SILVER, Table

log = logging.getLogger(__name__)

Progress = Callable[[str], None]


def new_run_id(now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{uuid.uuid4().hex[:8]}"


def ensure_tables(spark: SparkSession, settings: Settings) -> None:
    for table in (BRONZE, QUARANTINE, SILVER, GOLD, MANIFEST):
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


def read_bronze(spark: SparkSession, settings: Settings, day: date, version: int) -> DataFrame:
    return delta_tables.read(spark, settings, BRONZE, version).where(F.col("event_date") == F.lit(day))


def _previous_inputs(spark: SparkSession, settings: Settings, day: date) -> dict[datetime, int] | None:
    rows = (
        delta_tables.read(spark, settings, MANIFEST)
        .where(F.col("date") == F.lit(day))
        .where("computed")
        .select("hour", "input_rows")
        .collect()
    )
    return {aware(r["hour"]): int(r["input_rows"]) for r in rows} if rows else None


def _replace_date(df: DataFrame, settings: Settings, table: Table, column: str, day: date) -> None:
    """Replace `day`'s rows of `table` with `df` in one Delta commit."""
    (
        df.write.format("delta")
        .mode("overwrite")
        .option("replaceWhere", f"{column} = DATE'{day.isoformat()}'")
        .save(delta_tables.url(settings, table))
    )


def commit_date(
    spark: SparkSession,
    settings: Settings,
    day: date,
    rows: DataFrame,
    run_id: str,
    bronze_version: int,
    progress: Progress,
) -> tuple[GoldStats, Coverage]:
    """A date's writes, in order: quarantine, silver, gold, manifest. `rows` are the date's
    materialised classified rows; they are released once silver is committed."""
    try:
        # Passes: the bad rows (counted per hour while cached, then written); the silver write
        # (every row, the valid ones with `counted` from the dedup window's one shuffle and sort);
        # gold's groups from silver's committed valid copies, which also count the valid rows per
        # hour (`valid_rows`).
        bad = bad_rows(rows).cache()
        quarantined = {aware(r["hour"]): int(r["count"]) for r in bad.groupBy("hour").count().collect()}
        progress(f"{day}: writing quarantine ({sum(quarantined.values())} rows)")
        # One file per date, but repartition, not coalesce: coalesce(1) would also run the scan
        # and filter of every row of the date (or gold's dedup) in that one task, on one core.
        _replace_date(quarantine_of(bad, day).repartition(1), settings, QUARANTINE, "event_date", day)
        progress(f"{day}: writing silver (every row, classified)")
        # One file per hour, sorted by key and Kafka position: a reader opens one folder and skips
        # the row groups of other keys (docs/specs/delta.md).
        silver = (
            silver_of(counted_copies(valid_rows(rows)), bad, day, run_id)
            .repartition("hour_of_day")
            .sortWithinPartitions(*SILVER_ORDER)
        )
        _replace_date(silver, settings, SILVER, "date", day)
        bad.unpersist()
        rows.unpersist()
        # Gold from silver as committed: a column-pruned read of the date's valid copies costs
        # less than keeping them materialised, and gold then sums exactly the rows silver shows.
        written = delta_tables.read(spark, settings, SILVER).where(F.col("date") == F.lit(day))
        copies = written.where(F.col("reason").isNull() | (F.col("reason") == F.lit(DUPLICATE)))
        groups = gold_of_counted(copies, day).repartition(1).cache()
        gold = gold_stats(gold_summary(groups).collect())
        progress(
            f"{day}: {sum(gold.valid.values())} valid rows; writing gold ({gold.gold_rows} rows, one commit)"
        )
        _replace_date(gold_rows_of(groups), settings, GOLD, "date", day)
        progress(f"{day}: gold committed")
        groups.unpersist()
    finally:
        rows.unpersist()
    previous = _previous_inputs(spark, settings, day)
    covered = coverage(day, run_id, bronze_version, quarantined, gold, previous, datetime.now(UTC))
    manifest = spark.createDataFrame(covered.rows, delta_tables.schema(MANIFEST))
    _replace_date(manifest.coalesce(1), settings, MANIFEST, "date", day)
    return gold, covered


def recompute_date(
    spark: SparkSession,
    settings: Settings,
    planned: PlannedDate,
    bronze_version: int,
    run_id: str,
    progress: Progress = log.info,
) -> DateResult:
    """Recompute `planned.day` from bronze at `bronze_version` and commit it."""
    started = time.monotonic()
    bronze = read_bronze(spark, settings, planned.day, bronze_version)
    progress(f"{planned.day}: validating bronze rows (bronze v{bronze_version})")
    # Materialise the classification once; the local checkpoint also cuts the (large) plan, so
    # the quarantine, gold and count queries plan in milliseconds instead of seconds. Its blocks
    # are the only copy of the rows: on a cluster they are replicated (materialised_level), so a
    # lost executor's tasks are retried on another one instead of failing the date.
    level = materialised_level(str(spark.sparkContext.master))
    rows = classified(bronze).localCheckpoint(eager=True, storageLevel=level)
    gold, covered = commit_date(spark, settings, planned.day, rows, run_id, bronze_version, progress)
    return date_result(planned, bronze_version, gold, covered, time.monotonic() - started)
