"""Pure steps of a date's recompute: classified rows, quarantine, silver, gold, the manifest's rows.

DataFrame → DataFrame, or values → rows: nothing here reads, writes, caches or collects;
`recompute.py` does that, in one commit function per date.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Final

from pyspark.sql import Column, DataFrame, Row, Window
from pyspark.sql import functions as F  # noqa: N812 - the PySpark convention

from batch_layer import delta_tables, validation
from batch_layer.planning import PlannedDate
from lambda_contract.tables import DUPLICATE, GOLD, QUARANTINE, REVENUE_TYPE, SILVER
from lambda_contract.windows import hours_of_date

_PURCHASE = "purchase"

_GOLD_INPUTS: Final = ("event_id", "event_type", "region", "category", "currency")
"""The valid fields gold needs; order and customer ids are checked but not aggregated."""

_FIRST_ORDER: Final = ("kafka_timestamp", "partition", "offset")
"""Which copy of a duplicated event_id counts: the first in this order (bronze arrival order)."""

ManifestRow = tuple[date, datetime, bool, str, int, int, int, int, int, int, datetime]
"""One row of the coverage manifest, in the column order of `lambda_contract.tables.MANIFEST`."""


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


@dataclass(frozen=True)
class GoldStats:
    """What the manifest and the summary need of a date's gold groups, per hour."""

    valid: dict[datetime, int]
    kept: dict[datetime, int]
    revenue: dict[str, Decimal]
    gold_rows: int


@dataclass(frozen=True)
class Coverage:
    """A date's 24 manifest rows and their totals."""

    rows: list[ManifestRow]
    totals: HourCounts
    arrived: int


def aware(value: datetime) -> datetime:
    """PySpark hands timestamps back naive in the session zone (UTC here)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def classified(bronze_of_date: DataFrame) -> DataFrame:
    """Bronze rows with reason, hour, and what quarantine, silver or gold needs of them.

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
        F.timestamp_millis(F.col(validation.EVENT_MS)).alias("event_time"),
    )


def bad_rows(rows: DataFrame) -> DataFrame:
    return rows.where(F.col(validation.REASON).isNotNull())


def valid_rows(rows: DataFrame) -> DataFrame:
    return rows.where(F.col(validation.REASON).isNull())


def quarantine_of(bad: DataFrame, day: date) -> DataFrame:
    """The bad rows of `day` as quarantine's columns."""
    return delta_tables.conform(bad.withColumn("event_date", F.lit(day)), QUARANTINE)


def counted_copies(valid: DataFrame) -> DataFrame:
    """The valid rows with `counted`: true for the first copy of each event_id (by kafka
    timestamp, partition, offset), the one gold sums; later copies are duplicates.

    A window's row_number, not min(struct): Spark aggregates a struct only by sorting, so
    min(struct) cost a partial sort before the shuffle and a full one after it; the window needs
    the one sort after the shuffle. The recompute materialises the result once for both silver
    and gold, so the two agree row for row.
    """
    # The gold fields break (impossible) ties of the Kafka position, so a rerun is identical.
    order = Window.partitionBy("event_id").orderBy(
        *_FIRST_ORDER, "hour", *_GOLD_INPUTS[1:], validation.AMOUNT
    )
    return valid.select("*", (F.row_number().over(order) == 1).alias("counted"))


def gold_of_counted(copies: DataFrame, day: date) -> DataFrame:
    """Gold's groups of `counted_copies`: the counted rows aggregated per (hour, region,
    category, currency), plus `valid_rows`, every valid copy of the group, duplicates included
    (the manifest's valid count, without another pass over the rows).

    A group holding only later copies has `events` 0 and is not written (`gold_rows_of`).
    """
    first = F.col("counted")
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


def gold_of(valid: DataFrame, day: date) -> DataFrame:
    """Gold's groups straight from valid rows (`counted_copies`, then `gold_of_counted`)."""
    return gold_of_counted(counted_copies(valid), day)


SILVER_ORDER: Final = ("hour_of_day", "region", "category", "currency", "kafka_partition", "kafka_offset")
"""Silver's order within a file: one hour's key contiguous, in the events route's cursor order."""


def silver_of(copies: DataFrame, bad: DataFrame, day: date, run_id: str) -> DataFrame:
    """Silver's rows of `day`: the valid copies (counted, or a `duplicate`) and the malformed rows
    (their reason code), each with its Kafka position and the run that wrote it."""

    def shaped(df: DataFrame, counted: Column, reason: Column) -> DataFrame:
        return df.select(
            F.lit(day).alias("date"),
            F.hour("hour").alias("hour_of_day"),
            "hour",
            "region",
            "category",
            "currency",
            "event_type",
            validation.AMOUNT,
            counted.alias("counted"),
            reason.alias("reason"),
            "event_id",
            "event_time",
            F.col("partition").alias("kafka_partition"),
            F.col("offset").alias("kafka_offset"),
            F.lit(run_id).alias("run_id"),
        )

    valid = shaped(copies, F.col("counted"), F.when(~F.col("counted"), F.lit(DUPLICATE)))
    malformed = shaped(bad, F.lit(False), F.col(validation.REASON))
    return delta_tables.conform(valid.unionByName(malformed), SILVER)


def gold_rows_of(groups: DataFrame) -> DataFrame:
    """The groups gold holds (those with a first copy) as gold's columns."""
    return delta_tables.conform(groups.where(F.col("events") > 0), GOLD)


def gold_summary(groups: DataFrame) -> DataFrame:
    """One small table of everything the manifest and summary need from gold, per (hour, currency)."""
    return groups.groupBy("hour", "currency").agg(
        F.sum("events").alias("kept"),
        F.sum("valid_rows").alias("valid"),
        F.sum("revenue").alias("revenue"),
        F.count(F.when(F.col("events") > 0, 1)).alias("n"),
    )


def gold_stats(summary: Iterable[Row]) -> GoldStats:
    """`gold_summary`'s collected rows folded per hour (counts) and per currency (revenue)."""
    valid: dict[datetime, int] = {}
    kept: dict[datetime, int] = {}
    revenue: dict[str, Decimal] = {}
    gold_rows = 0
    for r in summary:
        hour = aware(r["hour"])
        valid[hour] = valid.get(hour, 0) + int(r["valid"])
        kept[hour] = kept.get(hour, 0) + int(r["kept"])
        if r["revenue"] is not None:  # None: the groups hold only later copies
            revenue[r["currency"]] = revenue.get(r["currency"], Decimal(0)) + r["revenue"]
        gold_rows += int(r["n"])
    return GoldStats(valid, kept, revenue, gold_rows)


def coverage(
    day: date,
    run_id: str,
    bronze_version: int,
    quarantined: Mapping[datetime, int],
    gold: GoldStats,
    previous: Mapping[datetime, int] | None,
    computed_at: datetime,
) -> Coverage:
    """The manifest's row for every hour of `day`; `previous` is the input rows per hour of the
    date's last computation (None: never computed, so nothing arrived after it)."""
    rows: list[ManifestRow] = []
    totals = HourCounts()
    arrived_total = 0
    for hour in hours_of_date(day):
        valid, bad = gold.valid.get(hour, 0), quarantined.get(hour, 0)
        c = HourCounts(valid + bad, valid, bad, gold.kept.get(hour, 0))
        arrived = 0 if previous is None else max(0, c.input_rows - previous.get(hour, 0))
        arrived_total += arrived
        totals = HourCounts(
            totals.input_rows + c.input_rows,
            totals.valid + c.valid,
            totals.quarantined + c.quarantined,
            totals.kept + c.kept,
        )
        rows.append(
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
    return Coverage(rows, totals, arrived_total)


def date_result(
    planned: PlannedDate, bronze_version: int, gold: GoldStats, covered: Coverage, seconds: float
) -> DateResult:
    totals = covered.totals
    return DateResult(
        day=planned.day,
        why=planned.why.value,
        bronze_version=bronze_version,
        input_rows=totals.input_rows,
        valid=totals.valid,
        duplicates=totals.duplicates,
        quarantined=totals.quarantined,
        arrived_after_previous_run=covered.arrived,
        gold_rows=gold.gold_rows,
        revenue_by_currency=gold.revenue,
        seconds=seconds,
    )
