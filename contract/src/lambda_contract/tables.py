"""Delta table layouts of the batch layer (documented in docs/specs/delta.md).

Types are written in Delta/Spark SQL DDL form so the batch layer can build its schemas from
them and any other reader (delta-rs in the serving layer, DuckDB) knows what to expect. Money is
DECIMAL(38,4) everywhere; no floating point column exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Final

from lambda_contract.events import AMOUNT_PRECISION, AMOUNT_SCALE, SUM_PRECISION
from lambda_contract.windows import date_of

REVENUE_TYPE: Final = f"decimal({SUM_PRECISION},{AMOUNT_SCALE})"
AMOUNT_TYPE: Final = f"decimal({AMOUNT_PRECISION},{AMOUNT_SCALE})"
DUPLICATE: Final = "duplicate"
"""Silver's reason for a valid copy of an event_id that is not the first (see `SILVER`)."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    nullable: bool
    doc: str


@dataclass(frozen=True)
class Table:
    """A Delta table: its folder name under LAMBDA_DELTA_ROOT, columns and partitioning."""

    name: str
    columns: tuple[Column, ...]
    partition_by: tuple[str, ...]
    doc: str

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    def ddl(self) -> str:
        """Spark DDL schema string, e.g. for `StructType.fromDDL`."""
        return ", ".join(f"`{c.name}` {c.type}{'' if c.nullable else ' NOT NULL'}" for c in self.columns)


BRONZE: Final = Table(
    name="bronze",
    doc="Immutable raw log of orders.v1: one row per Kafka record, exactly once.",
    partition_by=("event_date",),
    columns=(
        Column(
            "event_date", "date", False, "event_time's UTC date when readable, else the Kafka timestamp's"
        ),
        Column("key", "binary", True, "Kafka message key (order_id), raw bytes"),
        Column("value", "binary", True, "Kafka message value, raw bytes (may be malformed)"),
        Column("topic", "string", False, "source topic"),
        Column("partition", "int", False, "Kafka partition"),
        Column("offset", "bigint", False, "Kafka offset; (topic, partition, offset) is unique"),
        Column("kafka_timestamp", "timestamp", False, "Kafka record timestamp (UTC)"),
        Column("ingested_at", "timestamp", False, "when the ingest batch wrote the row (UTC)"),
    ),
)

QUARANTINE: Final = Table(
    name="quarantine",
    doc="Malformed bronze rows of a recomputed date, with the contract's reason code.",
    partition_by=("event_date",),
    columns=(
        Column("event_date", "date", False, "same rule as bronze"),
        Column("reason", "string", False, "lambda_contract.events.Reason value"),
        Column("value", "binary", True, "raw Kafka value"),
        Column("topic", "string", False, "source topic"),
        Column("partition", "int", False, "Kafka partition"),
        Column("offset", "bigint", False, "Kafka offset"),
        Column("kafka_timestamp", "timestamp", False, "Kafka record timestamp (UTC)"),
    ),
)

GOLD: Final = Table(
    name="gold",
    doc="Exact hourly aggregates per (hour, region, category, currency); a date is replaced atomically.",
    partition_by=("date",),
    columns=(
        Column("date", "date", False, "UTC date of the hour"),
        Column("hour", "timestamp", False, "UTC start of the hour"),
        Column("region", "string", False, "event region"),
        Column("category", "string", False, "event category"),
        Column("currency", "string", False, "native currency (ISO 4217 form)"),
        Column("revenue", REVENUE_TYPE, False, "purchases minus refunds, exact"),
        Column("orders", "bigint", False, "distinct purchase events"),
        Column("refunds", "bigint", False, "distinct refund events"),
        Column("events", "bigint", False, "orders + refunds"),
    ),
)

MANIFEST: Final = Table(
    name="coverage_manifest",
    doc="Which (date, hour) the batch has computed, from which bronze version, with row counts.",
    partition_by=(),
    columns=(
        Column("date", "date", False, "UTC date"),
        Column("hour", "timestamp", False, "UTC start of the hour"),
        Column("computed", "boolean", False, "true once gold holds this hour"),
        Column("run_id", "string", False, "the batch run that computed it"),
        Column("bronze_version", "bigint", False, "bronze Delta version the run read"),
        Column("input_rows", "bigint", False, "bronze rows of the hour (duplicates and malformed included)"),
        Column("valid", "bigint", False, "valid rows, duplicates included"),
        Column("duplicates", "bigint", False, "valid rows dropped as repeated event_id"),
        Column("quarantined", "bigint", False, "malformed rows sent to quarantine"),
        Column(
            "arrived_after_previous_run",
            "bigint",
            False,
            "rows ingested after the previous computation of the date",
        ),
        Column("computed_at", "timestamp", False, "when the run committed (UTC)"),
    ),
)

SILVER: Final = Table(
    name="silver_events",
    doc="Every bronze row of a recomputed date, classified: counted in gold, a duplicate, or malformed.",
    partition_by=("date", "hour_of_day"),
    columns=(
        Column("date", "date", False, "UTC date of the hour"),
        Column("hour_of_day", "int", False, "UTC hour of the day, 0-23 (partition: one hour is one folder)"),
        Column("hour", "timestamp", False, "UTC start of the hour (the event time's, else Kafka's)"),
        Column("region", "string", True, "event region; null when malformed"),
        Column("category", "string", True, "event category; null when malformed"),
        Column("currency", "string", True, "native currency; null when malformed"),
        Column("event_type", "string", True, "purchase or refund; null when malformed"),
        Column(
            "amount", AMOUNT_TYPE, True, "the event's amount in its own currency, exact; null when malformed"
        ),
        Column(
            "counted", "boolean", False, "true for the first copy of a valid event_id: the rows gold sums"
        ),
        Column("reason", "string", True, "null when counted, else 'duplicate' or the contract's reason code"),
        Column("event_id", "string", True, "null when malformed"),
        Column("event_time", "timestamp", True, "the event's own time (UTC); null when it cannot be read"),
        Column("kafka_partition", "int", False, "Kafka partition"),
        Column("kafka_offset", "bigint", False, "Kafka offset"),
        Column(
            "run_id", "string", False, "the batch run that wrote the row; the manifest names the hour's run"
        ),
    ),
)

TABLES: Final = (BRONZE, QUARANTINE, GOLD, SILVER, MANIFEST)


def event_date(event_time: datetime | None, kafka_timestamp: datetime) -> date:
    """The date a record belongs to: its event time's UTC date when readable, else Kafka's."""
    return date_of(event_time if event_time is not None else kafka_timestamp)
