"""Delta table I/O shared by ingest, recompute and maintenance: create with the contract schema."""

from __future__ import annotations

from delta.tables import DeltaTable
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType

from lambda_contract.settings import Settings
from lambda_contract.tables import Table


def schema(table: Table) -> StructType:
    """The contract's columns as a Spark schema (nullability included)."""
    parsed = StructType.fromDDL(table.ddl())
    assert isinstance(parsed, StructType)
    return parsed


def url(settings: Settings, table: Table) -> str:
    return settings.delta_table_url(table.name)


def exists(spark: SparkSession, settings: Settings, table: Table) -> bool:
    return bool(DeltaTable.isDeltaTable(spark, url(settings, table)))


def ensure(spark: SparkSession, settings: Settings, table: Table) -> str:
    """Create the table with the contract's schema and partitioning if absent; returns its URL."""
    location = url(settings, table)
    builder = DeltaTable.createIfNotExists(spark).location(location).addColumns(schema(table))
    if table.partition_by:
        builder = builder.partitionedBy(*table.partition_by)
    builder.property("description", table.doc).execute()
    return location


def read(spark: SparkSession, settings: Settings, table: Table, version: int | None = None) -> DataFrame:
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(url(settings, table))


def version(spark: SparkSession, settings: Settings, table: Table) -> int:
    """The table's latest committed version."""
    history = DeltaTable.forPath(spark, url(settings, table)).history(1).select("version").collect()
    return int(history[0]["version"])


def conform(df: DataFrame, table: Table) -> DataFrame:
    """Select the contract's columns in order with their exact types (writes never drift)."""
    target = schema(table)
    return df.select(*[df[f.name].cast(f.dataType).alias(f.name) for f in target.fields])
