"""Helpers of the speed suite beyond the test kit: generated history pre-loaded into a topic, and
how the speed view in Redis differs from the truth."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any

import redis

from lambda_contract.settings import Settings
from lambda_testkit.sandbox import duplicates, hash_of, produce, read_view
from lambda_testkit.truth import SentRecord, Truth, compute_truth
from lambda_tools.generator import GeneratedRecord, GeneratorConfig, history
from speed_layer import job, sql


def preload_history(
    bootstrap: str, topic: str, config: GeneratorConfig, start: datetime, end: datetime, events: int
) -> tuple[list[GeneratedRecord], Truth]:
    """Generated history from `start` to `end` produced into `topic`, and its truth."""
    records = list(history(config, start, end, events))
    truth = compute_truth(
        SentRecord(r.value, datetime.fromtimestamp(r.timestamp_ms / 1000, UTC)) for r in records
    )
    produce(bootstrap, topic, [(r.partition, r.key, r.value, r.timestamp_ms) for r in records])
    return records, truth


def truth_diff(client: redis.Redis, prefix: str, truth: Truth) -> list[str]:
    """How the speed view in Redis differs from the truth (empty: equal)."""
    out = []
    for kind, want in (("hour", truth.speed), ("late", truth.late)):
        have = read_view(client, prefix, kind)
        bad = sorted(
            (k for k in want.keys() | have.keys() if want.get(k) != have.get(k)),
            key=lambda k: (k[0], k[1].field()),
        )
        out += [
            f"{kind} {k[0]:%Y-%m-%dT%H} {k[1].field()}: {want.get(k)} != Redis {have.get(k)}" for k in bad
        ]
    if (dups := duplicates(client, prefix)) != truth.duplicates:
        out.append(f"duplicates {truth.duplicates} != Redis {dups}")
    for day, reasons in truth.malformed_by_date.items():
        stored = hash_of(client, f"{prefix}:speed:dlq:{day.isoformat()}")
        if {k.decode(): int(v) for k, v in stored.items()} != reasons:
            out.append(f"malformed {day}: {reasons} != Redis {stored}")
    return out


def classified_over_rows(settings: Settings, rows: list[tuple[bytes | None, int, int, int]]) -> Any:
    """A streaming table environment (parallelism 1) with `rows` (payload, partition, offset,
    record timestamp ms, in arrival order) as `sql.SOURCE_TABLE` and the job's views over them:
    the job's SQL without Kafka or Redis."""
    from pyflink.common import Configuration
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.table import DataTypes, StreamTableEnvironment

    conf = Configuration()
    conf.set_string("pipeline.jars", job.functions_jar(settings))  # as job.build configures it
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    env.set_parallelism(1)
    t_env = StreamTableEnvironment.create(env)
    t_env.get_config().set("python.executable", sys.executable)
    t_env.get_config().set("python.client.executable", sys.executable)
    # from_elements, not VALUES: literal rows would be constant-folded by the planner at plan time.
    table = t_env.from_elements(
        [(None if value is None else bytearray(value), p, o, ts) for value, p, o, ts in rows],
        DataTypes.ROW(
            [
                DataTypes.FIELD("payload", DataTypes.BYTES()),
                DataTypes.FIELD("kpartition", DataTypes.INT()),
                DataTypes.FIELD("koffset", DataTypes.BIGINT()),
                DataTypes.FIELD("kts_ms", DataTypes.BIGINT()),
            ]
        ),
    )
    t_env.create_temporary_view("in_memory_rows", table)
    # The Kafka source's schema (sql.source_columns), with the record timestamp as TIMESTAMP_LTZ.
    t_env.create_temporary_view(
        sql.SOURCE_TABLE,
        t_env.sql_query(
            "SELECT payload, kpartition, koffset, TO_TIMESTAMP_LTZ(kts_ms, 3) AS kts FROM in_memory_rows"
        ),
    )
    job.classify(t_env, settings)
    return t_env
