"""The peer baseline of `speed.ratio_vs_flink_peer`: a plain Flink SQL job over the same topic.

    LAMBDA_REDIS_PREFIX=<own prefix> .venvs/speed/bin/python speed_layer/bench/peer.py --bounded

What an engineer would write first for hourly revenue from `orders.v1`, with none of the speed
layer's contract work (no validation or reason codes, no DLQ, no lateness, no partition progress):

- Kafka source with Flink's `json` format, typed fields (DECIMAL amount); parse errors skipped;
- dedup by `event_id` with ROW_NUMBER, first arrival kept (Flink's deduplicate operator);
- GROUP BY (hour, region, category, currency) with the speed job's mini-batch settings
  (`sql.table_config`), emitting rows shaped like `sql.updates_query`'s;
- Redis written by the speed layer's own sink (`RedisSink`), under the prefix this process is
  given (LAMBDA_REDIS_PREFIX), through the same wiring as `job.build` (heartbeat input, key, uid).

It runs with the job's own Flink configuration (`job.flink_config`: mini-cluster, jars,
parallelism, checkpointing, buffer timeouts), so the two differ only in their SQL.

The event time is read as text and bucketed by SQL: the `json` format's TIMESTAMP_LTZ accepts
only a `Z` suffix, and 1 event in 10 carries a numeric offset (RFC 3339 allows both).
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Final

from pyflink.common import Configuration
from pyflink.common.typeinfo import Types
from pyflink.datastream import StreamExecutionEnvironment
from pyflink.table import Schema, StreamTableEnvironment, TableDescriptor

from lambda_contract.events import AMOUNT_PRECISION, AMOUNT_SCALE, SUM_PRECISION
from lambda_contract.settings import Settings
from lambda_contract.windows import HOUR_MS
from speed_layer import job, sql
from speed_layer.flink_sink import RedisSink

SOURCE: Final = "peer_src"
AMOUNT: Final = f"DECIMAL({AMOUNT_PRECISION}, {AMOUNT_SCALE})"
SUM: Final = f"DECIMAL({SUM_PRECISION}, {AMOUNT_SCALE})"
# The contract's top-level members, typed as the `json` format reads them (lambda_contract.events).
FIELDS: Final = (
    ("event_id", "STRING"),
    ("event_type", "STRING"),
    ("event_time", "STRING"),
    ("order_id", "STRING"),
    ("customer_id", "STRING"),
    ("region", "STRING"),
    ("category", "STRING"),
    ("currency", "STRING"),
    ("amount", AMOUNT),
)
MINI_BATCH_KEYS: Final = (
    "table.local-time-zone",
    "table.exec.state.ttl",
    "table.exec.mini-batch.enabled",
    "table.exec.mini-batch.allow-latency",
    "table.exec.mini-batch.size",
)


def source_options(settings: Settings, *, bounded: bool, group_id: str) -> dict[str, str]:
    """The job's Kafka source options (sql.source_options), with the `json` format instead of raw."""
    return sql.source_options(settings, bounded=bounded, group_id=group_id) | {
        "format": "json",
        "json.ignore-parse-errors": "true",
        "json.fail-on-missing-field": "false",
    }


def source(settings: Settings, *, bounded: bool, group_id: str) -> TableDescriptor:
    schema = Schema.new_builder()
    for name, type_ in FIELDS:
        schema.column(name, type_)
    schema.column_by_expression("pt", "PROCTIME()")
    builder = TableDescriptor.for_connector("kafka").schema(schema.build())
    for key, value in source_options(settings, bounded=bounded, group_id=group_id).items():
        if key != "connector":
            builder.option(key, value)
    return builder.build()


def epoch_s(text: str) -> str:
    """Epoch seconds of an RFC 3339 text: its local date-time (the first 19 characters) minus its
    offset (`Z`, or `±HH:MM` at the end; any fraction in between does not change the hour).
    NULL or negative for a text that is none of that (UNIX_TIMESTAMP gives Long.MIN_VALUE)."""
    offset = (
        f"CASE WHEN {text} LIKE '%Z' THEN 0 ELSE "
        f"(CASE WHEN SUBSTRING({text}, CHAR_LENGTH({text}) - 5, 1) = '-' THEN -1 ELSE 1 END) * "
        f"(TRY_CAST(SUBSTRING({text}, CHAR_LENGTH({text}) - 4, 2) AS BIGINT) * 3600 + "
        f"TRY_CAST(SUBSTRING({text}, CHAR_LENGTH({text}) - 1, 2) AS BIGINT) * 60) END"
    )
    local = f"UNIX_TIMESTAMP(SUBSTRING({text}, 1, 19), 'yyyy-MM-dd''T''HH:mm:ss')"
    return f"({local} - {offset})"


def updates_query() -> str:
    """Deduplicated events -> running totals per hour and key, in `sql.updates_query`'s columns.

    Rows the sink could not key (a missing member, an unreadable time) are dropped after the dedup."""
    hour_s = HOUR_MS // 1000
    signed = "CASE WHEN event_type = 'purchase' THEN amount ELSE -amount END"
    one, zero = "CAST(1 AS BIGINT)", "CAST(0 AS BIGINT)"
    return f"""
SELECT
  'hour' AS update_kind, bucket_ms, region, category, currency, '' AS reason,
  CAST(CAST(SUM({signed}) AS {SUM}) AS STRING) AS revenue,
  SUM(CASE WHEN event_type = 'purchase' THEN {one} ELSE {zero} END) AS orders,
  SUM(CASE WHEN event_type = 'purchase' THEN {zero} ELSE {one} END) AS refunds,
  COUNT(*) AS events,
  '0' AS late_revenue, {zero} AS late_orders, {zero} AS late_refunds, {zero} AS late_events,
  {zero} AS duplicates, {zero} AS malformed, CAST(NULL AS BIGINT) AS max_event_ms
FROM (
  SELECT (et_s - MOD(et_s, {hour_s})) * 1000 AS bucket_ms, region, category, currency, event_type, amount
  FROM (
    SELECT {epoch_s("event_time")} AS et_s, region, category, currency, event_type, amount
    FROM (
      SELECT *, ROW_NUMBER() OVER (PARTITION BY event_id ORDER BY pt ASC) AS rn
      FROM {SOURCE}
      WHERE event_id IS NOT NULL
    )
    WHERE rn = 1
  )
  WHERE et_s >= 0 AND amount IS NOT NULL
    AND region IS NOT NULL AND category IS NOT NULL AND currency IS NOT NULL
)
GROUP BY bucket_ms, region, category, currency
"""  # noqa: S608 (constants only)


def build(settings: Settings, *, bounded: bool, group_id: str) -> StreamExecutionEnvironment:
    options = job.JobOptions(bounded=bounded, group_id=group_id)
    conf = Configuration()
    for key, value in (job.flink_config(settings, options) | {"pipeline.name": "lambda-speed-peer"}).items():
        conf.set_string(key, value)
    env = StreamExecutionEnvironment.get_execution_environment(conf)
    t_env = StreamTableEnvironment.create(env)
    table_config = sql.table_config(settings)
    for key in MINI_BATCH_KEYS:
        if key in table_config:
            t_env.get_config().set(key, table_config[key])
    t_env.create_temporary_table(SOURCE, source(settings, bounded=bounded, group_id=group_id))
    updates = t_env.to_changelog_stream(t_env.sql_query(updates_query()))
    beats = t_env.to_data_stream(t_env.from_descriptor(job.heartbeat(options)))
    (
        updates.connect(beats)
        .key_by(lambda _row: 0, lambda _beat: 0, key_type=Types.INT())
        .process(RedisSink(settings, options.tick_ms, options.refresh_s))
        .uid("peer-redis-sink")
        .name("redis-sink")
    )
    return env


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bounded", action="store_true", help="stop at the end offsets seen at start")
    p.add_argument("--group-id", default="lambda-speed-peer")
    p.add_argument("--print-sql", action="store_true")
    args = p.parse_args(argv)
    if args.print_sql:
        print(updates_query())
        return 0
    settings = Settings.from_env()
    os.environ.setdefault("FLINK_PLUGINS_DIR", str(job.plugins_dir(settings)))
    build(settings, bounded=args.bounded, group_id=args.group_id).execute("lambda-speed-peer")
    return 0


if __name__ == "__main__":
    sys.exit(main())
