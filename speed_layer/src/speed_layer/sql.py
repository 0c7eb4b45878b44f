"""The speed job as SQL text and connector options, built from the contract and Settings (pure).

Data flow (every per-event step runs in the JVM):

  orders_src (Kafka, raw bytes; watermark on the readable event time, per partition, idleness)
    -> classified: validate (reason), dedup by event_id (occurrence number, state TTL),
       lateness against max(current watermark, max watermark seen so far: checkpointed state,
       so a restored job never moves its watermark back), kind = valid | duplicate | late | malformed
    -> DLQ (malformed) and late topics (Kafka sinks)
    -> updates: per 0.5 s processing-time slice partial sums, then running absolute totals per
       (hour, region, category, currency) and per (date, reason): a changelog of a few hundred
       rows per second at most, which is all the Python Redis sink sees.

No host names or topic names appear in SQL text: connectors are configured through option maps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from lambda_contract.events import AMOUNT_PRECISION, AMOUNT_SCALE, SUM_PRECISION, Reason
from lambda_contract.settings import Settings
from lambda_contract.windows import HOUR_MS
from speed_layer import validation_sql as v

SOURCE_TABLE: Final = "orders_src"
DLQ_TABLE: Final = "dlq_sink"
LATE_TABLE: Final = "late_sink"
CLASSIFIED_VIEW: Final = "classified"

KIND_VALID: Final = "valid"
KIND_DUPLICATE: Final = "duplicate"
KIND_LATE: Final = "late"
KIND_MALFORMED: Final = "malformed"

UPDATE_HOUR: Final = "hour"
UPDATE_DLQ: Final = "dlq"
UPDATE_PARTITION: Final = "partition"

DAY_MS: Final = 24 * HOUR_MS
SUM_TYPE: Final = f"DECIMAL({SUM_PRECISION}, {AMOUNT_SCALE})"


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    metadata: str | None = None  # Kafka metadata key, for virtual metadata columns
    expression: str | None = None  # computed column


def source_columns() -> list[Column]:
    """orders_src: the raw value, Kafka metadata, processing time and the readable event time."""
    cols = v.ColumnNames(payload="payload", text=v.text_expr())
    return [
        Column("payload", "BYTES"),
        Column("kpartition", "INT", metadata="partition"),
        Column("koffset", "BIGINT", metadata="offset"),
        Column("kts", "TIMESTAMP_LTZ(3)", metadata="timestamp"),
        Column("pt", "TIMESTAMP_LTZ(3)", expression="PROCTIME()"),
        # The rowtime: the event_time field of any record that has a valid one (NULL rowtimes
        # never move the watermark).
        Column(
            "et",
            "TIMESTAMP_LTZ(3)",
            expression=f"TO_TIMESTAMP_LTZ({v.event_time_field_ms_expr(cols)}, 3)",
        ),
    ]


def watermark_expr(settings: Settings) -> str:
    return f"et - INTERVAL '{settings.out_of_orderness_s}' SECOND"


def source_options(settings: Settings, *, bounded: bool, group_id: str) -> dict[str, str]:
    """Kafka source: earliest offsets without a checkpoint, the checkpoint's offsets on restore."""
    opts = {
        "connector": "kafka",
        "topic": settings.topic_orders,
        "properties.bootstrap.servers": settings.kafka_bootstrap,
        "properties.group.id": group_id,
        "scan.startup.mode": "earliest-offset",
        "scan.topic-partition-discovery.interval": "60 s",
        "format": "raw",
    }
    if bounded:
        opts["scan.bounded.mode"] = "latest-offset"
    return opts


def dlq_columns() -> list[Column]:
    return [
        Column("reason", "STRING"),
        Column("payload", "STRING"),
        Column("payload_base64", "STRING"),
        Column("partition", "INT"),
        Column("offset", "BIGINT"),
        Column("seen_at", "STRING"),
    ]


def dlq_options(settings: Settings) -> dict[str, str]:
    return {
        "connector": "kafka",
        "topic": settings.topic_dlq,
        "properties.bootstrap.servers": settings.kafka_bootstrap,
        "format": "json",
        "sink.delivery-guarantee": "at-least-once",
    }


def late_columns() -> list[Column]:
    return [Column("payload", "BYTES")]


def late_options(settings: Settings) -> dict[str, str]:
    """Late events keep their raw payload, so they can be replayed or inspected as they were."""
    return {
        "connector": "kafka",
        "topic": settings.topic_late,
        "properties.bootstrap.servers": settings.kafka_bootstrap,
        "format": "raw",
        "sink.delivery-guarantee": "at-least-once",
    }


def classify_query(settings: Settings) -> str:
    """orders_src -> one insert-only row per record: its kind and what the later steps need.

    Order of decisions as in the contract: validate, then dedup by event_id (first arrival
    wins: a later copy is a duplicate, never late), then lateness of first arrivals.

    Flink's watermark starts from nothing after a restore. The watermark the sink publishes (which
    closes hours) is therefore the highest of the current watermark and a floor kept in OVER-aggregate state (restored with
    the checkpoint, so it matches the restored offsets): the highest watermark earlier rows saw,
    and min over partitions of (newest event time - out-of-orderness - 1 ms), which is what
    Flink's watermark reached after those rows even when no later row carried it (a burst).
    Partitions are those of LAMBDA_TOPIC_PARTITIONS; until every one of them has had a valid
    record, the progress term is unknown (NULL), so one partition read ahead cannot close hours.

    Lateness is judged by the watermark of the partition the event arrives on (its newest event
    time - out-of-orderness - 1 ms, in OVER state): Kafka orders records within a partition only,
    so this is the one lateness decision that a live run, a catch-up and a replay from a
    checkpoint all make identically. Taking the minimum over partitions instead (Flink's own
    watermark) makes it depend on how fast each partition happened to be read, and idleness can
    push it past partitions that still hold a backlog. `wm_floor` still drives the watermark the
    sink publishes (hour status).
    """
    cols = v.ColumnNames(payload="payload", text="txt")
    amount_cols = v.ColumnNames(payload="payload", text="txt")
    close_ms = f"{v.hour_start_ms_expr('et_ms')} + {HOUR_MS + settings.allowed_lateness_s * 1000}"
    zero = _decimal("0")
    amount = v.amount_expr(amount_cols)
    parts = range(settings.topic_partitions)
    progress_cols = ", ".join(
        f"MAX(CASE WHEN kpartition = {p} THEN et_ms END) OVER w AS p{p}_max" for p in parts
    )
    missing = " OR ".join(f"p{p}_max IS NULL" for p in parts)
    least = ", ".join(f"p{p}_max" for p in parts)
    lag_ms = settings.out_of_orderness_s * 1000 + 1
    least_expr = f"LEAST({least})" if settings.topic_partitions > 1 else least
    progress_floor = f"(CASE WHEN {missing} THEN CAST(NULL AS BIGINT) ELSE {least_expr} - {lag_ms} END)"
    own_progress = "(CASE kpartition " + " ".join(f"WHEN {p} THEN p{p}_max" for p in parts) + " END)"
    return f"""
WITH parsed AS (
  SELECT payload, txt, kpartition, koffset, kts, pt,
    {v.reason_expr(cols)} AS reason,
    {v.readable_event_time_ms_expr(cols)} AS et_ms,
    CURRENT_WATERMARK(et) AS wm
  FROM (SELECT *, {v.text_expr()} AS txt FROM {SOURCE_TABLE})
),
floored AS (
  SELECT *,
    {v.field_value_expr("event_id", cols)} AS event_id,
    MAX(wm) OVER w AS wm_seen,
    {progress_cols}
  FROM parsed WHERE reason IS NULL
  WINDOW w AS (ORDER BY pt ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
),
progressed AS (
  SELECT *, {_greatest_ltz("wm_seen", f"TO_TIMESTAMP_LTZ({progress_floor}, 3)")} AS wm_floor
  FROM floored
),
numbered AS (
  SELECT *, COUNT(*) OVER (
    PARTITION BY event_id ORDER BY pt ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS occ
  FROM progressed
)
SELECT
  CASE WHEN occ > 1 THEN '{KIND_DUPLICATE}'
       WHEN {own_progress} - {lag_ms} >= {close_ms} THEN '{KIND_LATE}'
       ELSE '{KIND_VALID}' END AS kind,
  CAST(NULL AS STRING) AS reason, payload, txt, kpartition, koffset, et_ms, wm_floor AS wm,
  {v.hour_start_ms_expr("et_ms")} AS bucket_ms,
  {v.field_value_expr("region", cols)} AS region,
  {v.field_value_expr("category", cols)} AS category,
  {v.field_value_expr("currency", cols)} AS currency,
  CASE WHEN {v.field_value_expr("event_type", cols)} = 'purchase' THEN {amount} ELSE -{amount} END AS rev,
  CASE WHEN {v.field_value_expr("event_type", cols)} = 'purchase' THEN 1 ELSE 0 END AS is_purchase
FROM numbered
UNION ALL
SELECT '{KIND_MALFORMED}' AS kind, reason, payload, txt, kpartition, koffset, et_ms, wm,
  {_day_start_ms("COALESCE(et_ms, " + _epoch_ms("kts") + ")")} AS bucket_ms,
  '' AS region, '' AS category, '' AS currency, {zero} AS rev, 0 AS is_purchase
FROM parsed WHERE reason IS NOT NULL
"""  # noqa: S608 (contract constants and integer settings only)


def _greatest_ltz(a: str, b: str) -> str:
    """GREATEST that ignores a NULL side (SQL's GREATEST is NULL when any argument is)."""
    return f"COALESCE(GREATEST({a}, {b}), {a}, {b})"


def _epoch_ms(ltz: str) -> str:
    """Epoch milliseconds of a TIMESTAMP_LTZ, to the minute: enough to name its UTC date."""
    return f"(CAST(TIMESTAMPDIFF(MINUTE, TO_TIMESTAMP_LTZ(0, 3), {ltz}) AS BIGINT) * 60000)"


def _day_start_ms(ms: str) -> str:
    return f"({ms} - MOD(MOD({ms}, {DAY_MS}) + {DAY_MS}, {DAY_MS}))"


def dlq_insert() -> str:
    """Malformed records to the DLQ: the text payload, or base64 when it is not UTF-8."""
    stamp = "'yyyy-MM-dd''T''HH:mm:ss.SSS''Z'''"
    return f"""
INSERT INTO {DLQ_TABLE}
SELECT reason,
  CASE WHEN reason = '{Reason.NOT_UTF8.value}' THEN CAST(NULL AS STRING) ELSE txt END,
  CASE WHEN reason = '{Reason.NOT_UTF8.value}' THEN TO_BASE64(payload) ELSE CAST(NULL AS STRING) END,
  kpartition, koffset, DATE_FORMAT(pt, {stamp})
FROM {CLASSIFIED_VIEW} WHERE kind = '{KIND_MALFORMED}'
"""  # noqa: S608 (contract constants and integer settings only)


def late_insert() -> str:
    return f"INSERT INTO {LATE_TABLE} SELECT payload FROM {CLASSIFIED_VIEW} WHERE kind = '{KIND_LATE}'"  # noqa: S608


def updates_query(settings: Settings, *, bounded: bool = False) -> str:
    """Absolute totals per hour and key, and per date and reason: the changelog the sink writes.

    Sums are DECIMAL(38,4) handed over as their exact text (PyFlink's DataStream type bridge
    cannot carry DECIMAL); the sink parses them with Decimal.

    A 1 s processing-time slice pre-aggregates first, so a running total changes at most once
    per key and second. Totals keep their state for the speed retention (late counters of a
    closed hour can still grow); only the dedup state uses LAMBDA_DEDUP_TTL_S.

    Bounded runs pre-aggregate without the processing-time slice: Flink does not fire pending
    processing-time windows when a bounded source ends, so the last second's slices would be
    lost; a plain GROUP BY has emitted every update by the end of the input.
    """
    zero = _decimal("0")
    ttl = f"{settings.speed_retention_s} s"
    if bounded:
        source, window = CLASSIFIED_VIEW, ""
    else:
        source = f"TABLE(TUMBLE(TABLE {CLASSIFIED_VIEW}, DESCRIPTOR(pt), INTERVAL '1' SECOND))"
        window = "window_start, window_end, "

    def money(kind: str) -> str:
        return f"SUM(CASE WHEN kind = '{kind}' THEN rev ELSE {zero} END)"

    def count(kind: str, cond: str = "TRUE") -> str:
        return f"SUM(CASE WHEN kind = '{kind}' AND {cond} THEN CAST(1 AS BIGINT) ELSE CAST(0 AS BIGINT) END)"

    return f"""
WITH slices AS (
  SELECT bucket_ms, region, category, currency, reason,
    {money(KIND_VALID)} AS revenue,
    {count(KIND_VALID, "is_purchase = 1")} AS orders,
    {count(KIND_VALID, "is_purchase = 0")} AS refunds,
    {count(KIND_VALID)} AS events,
    {money(KIND_LATE)} AS late_revenue,
    {count(KIND_LATE, "is_purchase = 1")} AS late_orders,
    {count(KIND_LATE, "is_purchase = 0")} AS late_refunds,
    {count(KIND_LATE)} AS late_events,
    {count(KIND_DUPLICATE)} AS duplicates,
    {count(KIND_MALFORMED)} AS malformed
  FROM {source}
  GROUP BY {window}bucket_ms, region, category, currency, reason
)
SELECT /*+ STATE_TTL('s' = '{ttl}') */
  CASE WHEN reason IS NULL THEN '{UPDATE_HOUR}' ELSE '{UPDATE_DLQ}' END AS update_kind,
  bucket_ms, region, category, currency, COALESCE(reason, '') AS reason,
  CAST(CAST(SUM(revenue) AS {SUM_TYPE}) AS STRING) AS revenue, SUM(orders) AS orders, SUM(refunds) AS refunds,
  SUM(events) AS events, CAST(CAST(SUM(late_revenue) AS {SUM_TYPE}) AS STRING) AS late_revenue,
  SUM(late_orders) AS late_orders, SUM(late_refunds) AS late_refunds, SUM(late_events) AS late_events,
  SUM(duplicates) AS duplicates, SUM(malformed) AS malformed,
  CAST(NULL AS BIGINT) AS max_event_ms, CAST(NULL AS STRING) AS wm_text
FROM slices AS s
GROUP BY bucket_ms, region, category, currency, reason
UNION ALL
SELECT /*+ STATE_TTL('p' = '{ttl}') */
  '{UPDATE_PARTITION}', CAST(kpartition AS BIGINT), '', '', '', '',
  '0', CAST(0 AS BIGINT), CAST(0 AS BIGINT), CAST(0 AS BIGINT), '0', CAST(0 AS BIGINT),
  CAST(0 AS BIGINT), CAST(0 AS BIGINT), CAST(0 AS BIGINT), CAST(0 AS BIGINT),
  MAX(max_event_ms), CAST(MAX(wm) AS STRING)
FROM (
  SELECT kpartition, MAX(et_ms) AS max_event_ms, MAX(wm) AS wm
  FROM {source}
  GROUP BY {window}kpartition
) AS p
GROUP BY kpartition
"""  # noqa: S608 (contract constants and integer settings only)


def table_config(settings: Settings) -> dict[str, str]:
    """Planner and runtime options the SQL above relies on."""
    return {
        "table.local-time-zone": "UTC",
        "table.exec.source.idle-timeout": f"{settings.idle_timeout_s} s",
        # Default state TTL = the dedup horizon (the dedup and watermark-floor OVER states);
        # the totals override it with a STATE_TTL hint.
        "table.exec.state.ttl": f"{settings.dedup_ttl_s} s",
        "pipeline.auto-watermark-interval": "200 ms",
    }


def _decimal(expr: str) -> str:
    return f"CAST({expr} AS DECIMAL({AMOUNT_PRECISION}, {AMOUNT_SCALE}))"
