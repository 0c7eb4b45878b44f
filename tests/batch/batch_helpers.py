"""Test helpers of the batch suite: read gold, the manifest and quarantine back as views."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from decimal import Decimal

from pyspark.sql import SparkSession

from lambda_contract.redis_layout import GroupKey, Metrics
from lambda_contract.settings import Settings
from lambda_testkit.truth import View


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
