"""The speed view and the batch view written in the contract's formats, as the layers write them:
Redis hashes through the contract's RedisLayout and codecs, gold and the coverage manifest as real
Delta tables in the contract's schemas (delta-rs). A serving test then reads exactly what the
speed sink and the recompute would have left.

Needs the `stores` extra (deltalake, pyarrow, redis): `lambda-testkit[stores]`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Literal

import pyarrow as pa
import redis
from deltalake import write_deltalake

from lambda_contract.redis_layout import HOUR_CLOSED, HOUR_OPEN, GroupKey, Metrics, RedisLayout
from lambda_contract.settings import Settings
from lambda_contract.storage import delta_rs_options
from lambda_contract.tables import GOLD, MANIFEST, Table
from lambda_contract.windows import format_instant, hour_id, to_epoch_ms

HourRows = Mapping[datetime, Mapping[GroupKey, Metrics]]


# ---- speed view (Redis) ------------------------------------------------------------------------


def write_speed_hour(
    r: redis.Redis,
    layout: RedisLayout,
    hour: datetime,
    groups: Mapping[GroupKey, Metrics],
    closed: bool = False,
) -> None:
    if groups:
        r.hset(layout.hour(hour), mapping={g.field(): v.encode() for g, v in groups.items()})
    r.hset(layout.hours(), hour_id(hour), HOUR_CLOSED if closed else HOUR_OPEN)


def write_meta(r: redis.Redis, layout: RedisLayout, watermark: datetime, updated: datetime) -> None:
    r.hset(
        layout.meta(),
        mapping={
            "watermark_ms": to_epoch_ms(watermark),
            "watermark": format_instant(watermark),
            "updated_ms": to_epoch_ms(updated),
        },
    )


# ---- batch view (Delta) ------------------------------------------------------------------------

_DECIMAL = re.compile(r"decimal\((\d+),(\d+)\)")


def arrow_type(sql: str) -> pa.DataType:
    simple = {
        "string": pa.string(),
        "date": pa.date32(),
        "timestamp": pa.timestamp("us", tz="UTC"),
        "bigint": pa.int64(),
        "int": pa.int32(),
        "boolean": pa.bool_(),
        "binary": pa.binary(),
    }
    if sql in simple:
        return simple[sql]
    match = _DECIMAL.fullmatch(sql)
    assert match, sql
    return pa.decimal128(int(match.group(1)), int(match.group(2)))


def arrow_schema(table: Table) -> pa.Schema:
    return pa.schema([pa.field(c.name, arrow_type(c.type), nullable=c.nullable) for c in table.columns])


def write_gold(settings: Settings, hours: HourRows, mode: Literal["append", "overwrite"] = "append") -> None:
    rows = [
        {
            "date": hour.date(),
            "hour": hour,
            "region": key.region,
            "category": key.category,
            "currency": key.currency,
            "revenue": metrics.revenue,
            "orders": metrics.orders,
            "refunds": metrics.refunds,
            "events": metrics.events,
        }
        for hour, groups in hours.items()
        for key, metrics in groups.items()
    ]
    data = pa.Table.from_pylist(rows, schema=arrow_schema(GOLD))
    write_deltalake(
        settings.delta_table_url(GOLD.name),
        data,
        mode=mode,
        partition_by=list(GOLD.partition_by),
        storage_options=delta_rs_options(settings),
    )


def write_manifest(
    settings: Settings,
    hours: Iterable[datetime],
    run_id: str = "run-1",
    computed: bool = True,
    computed_at: datetime | None = None,
) -> None:
    at = computed_at or datetime(2026, 11, 21, 2, 0, tzinfo=UTC)
    rows = [
        {
            "date": h.date(),
            "hour": h,
            "computed": computed,
            "run_id": run_id,
            "bronze_version": 7,
            "input_rows": 10,
            "valid": 9,
            "duplicates": 1,
            "quarantined": 1,
            "arrived_after_previous_run": 0,
            "computed_at": at,
        }
        for h in hours
    ]
    data = pa.Table.from_pylist(rows, schema=arrow_schema(MANIFEST))
    write_deltalake(
        settings.delta_table_url(MANIFEST.name),
        data,
        mode="append",
        storage_options=delta_rs_options(settings),
    )
