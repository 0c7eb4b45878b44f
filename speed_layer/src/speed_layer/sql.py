"""The speed job as SQL text and connector options, built from the contract and Settings (pure).

Data flow (every per-event step runs in the JVM):

  orders_src (Kafka, raw bytes and metadata)
    -> decoded: plus the payload as text, decoded once
    -> extracted: each JSON parse and whole-text regex of the validation, once per record
    -> parts: values the rules use several times (amount text, event-time parts), once
       (DataStream boundaries separate the steps, so the planner cannot inline them again)
    -> classified: validate (reason), progress of the record's own partition (newest valid
       event time, OVER state), dedup by event_id (occurrence number, state TTL), lateness;
       kind = valid | duplicate | late | malformed
    -> DLQ (malformed) and late topics (Kafka sinks)
    -> updates: running absolute totals per (hour, region, category, currency), per
       (date, reason) and per partition (progress), aggregated in mini-batches: a changelog of
       a few hundred rows per second at most, which is all the Python Redis sink sees.

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
DECODED_VIEW: Final = "decoded"
EXTRACTED_VIEW: Final = "extracted"
PARTS_VIEW: Final = "parts"
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
    """orders_src: the raw value and its Kafka metadata (no computed columns: see extract_query)."""
    return [
        Column("payload", "BYTES"),
        Column("kpartition", "INT", metadata="partition"),
        Column("koffset", "BIGINT", metadata="offset"),
        Column("kts", "TIMESTAMP_LTZ(3)", metadata="timestamp"),
    ]


def decode_query() -> str:
    """orders_src -> plus the payload as text, decoded once (UTF-8; invalid bytes replaced)."""
    return f"SELECT *, CAST(payload AS STRING) AS txt FROM {SOURCE_TABLE}"  # noqa: S608


def extract_query() -> str:
    """decoded -> plus the validation's expensive calls, each evaluated once."""
    return f"SELECT *,\n  {_select_list(v.extract_columns('payload', 'txt'))}\nFROM {DECODED_VIEW}"


def parts_query() -> str:
    """extracted -> plus the derived values the rules read several times, each evaluated once."""
    return f"SELECT *,\n  {_select_list(v.part_columns())}\nFROM {EXTRACTED_VIEW}"


def _select_list(columns: list[tuple[str, str]]) -> str:
    return ",\n  ".join(f"{expr} AS {alias}" for expr, alias in columns)


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
    """Malformed records, written exactly once (see _exactly_once)."""
    return {
        "connector": "kafka",
        "topic": settings.topic_dlq,
        "properties.bootstrap.servers": settings.kafka_bootstrap,
        "format": "json",
    } | _exactly_once(settings, "dlq", settings.topic_dlq)


def late_columns() -> list[Column]:
    return [Column("payload", "BYTES")]


def late_options(settings: Settings) -> dict[str, str]:
    """Late events keep their raw payload, so they can be replayed or inspected as they were."""
    return {
        "connector": "kafka",
        "topic": settings.topic_late,
        "properties.bootstrap.servers": settings.kafka_bootstrap,
        "format": "raw",
    } | _exactly_once(settings, "late", settings.topic_late)


def _exactly_once(settings: Settings, role: str, topic: str) -> dict[str, str]:
    """Kafka transactions committed with each checkpoint: a restarted job's replay never shows
    twice to a read_committed reader, which sees a record one checkpoint interval late.

    The transactional id prefix must be unique per sink on the cluster (the DLQ and late sinks of
    one job included: equal ids fence each other) and stable across restarts (a restarted sink
    aborts only its own prefix's lingering transactions; another prefix's would block
    read_committed readers until they time out). The Redis prefix and the topic name name this
    job's outputs, so they are both. POOLING reuses a few ids per subtask instead of a new one
    per checkpoint, each of which the broker keeps for 7 days (needs Kafka 3.0+). Flink's default
    transaction timeout (1 h) is above Kafka's default `transaction.max.timeout.ms` (15 min,
    infra/kafka/server.properties), which refuses such a producer: 15 min is the bound on how long
    a job may stay down between a checkpoint and its commit, and on how long a job that is not
    restarted blocks read_committed readers."""
    return {
        "sink.delivery-guarantee": "exactly-once",
        "sink.transactional-id-prefix": f"{settings.redis_prefix}.speed.{role}.{topic}",
        "sink.transaction-naming-strategy": "POOLING",
        "properties.transaction.timeout.ms": str(15 * 60 * 1000),
    }


def classify_query(settings: Settings) -> str:
    """parts -> one insert-only row per record: its kind and what the later steps need.

    Order of decisions as in the contract: validate, then dedup by event_id (first arrival
    wins: a later copy is a duplicate, never late), then lateness of first arrivals.

    Lateness is judged by the watermark of the partition the event arrives on: the newest valid
    event time seen on that partition (OVER state, so a restored job continues from its
    checkpoint) minus the out-of-orderness and 1 ms. Kafka orders records within a partition
    only, so this is the one lateness decision that a live run, a catch-up and a replay all make
    identically; a watermark over all partitions would depend on how fast each partition happened
    to be read. The watermark the sink publishes (which closes hours) is the minimum of these
    partition watermarks over partitions that are not idle (see view.SpeedView).

    The validation CASE is evaluated once per record: it sits in the projection below the first
    OVER, which is computed for every record (malformed ones included) so nothing filters on it.
    """
    x = v.Extracted()
    close_ms = f"{v.hour_start_ms_expr('et_ms')} + {HOUR_MS + settings.allowed_lateness_s * 1000}"
    lag_ms = settings.out_of_orderness_s * 1000 + 1
    # TRY_CAST: computed for every record; for a valid one the text passed the amount checks.
    amount = f"TRY_CAST({x.amount_text} AS DECIMAL({AMOUNT_PRECISION}, {AMOUNT_SCALE}))"
    rows = "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"
    malformed_day = _day_start_ms("COALESCE(et_ms, " + _epoch_ms("kts") + ")")

    def valid_only(column: str, default: str = "''") -> str:
        return f"CASE WHEN reason IS NULL THEN {column} ELSE {default} END"

    return f"""
WITH parsed AS (
  SELECT payload, kpartition, koffset, kts, pt,
    {v.reason_expr(x)} AS reason,
    {v.readable_event_time_ms_expr(x)} AS et_ms,
    {v.field_value_expr("event_id", x)} AS event_id,
    {v.field_value_expr("region", x)} AS region,
    {v.field_value_expr("category", x)} AS category,
    {v.field_value_expr("currency", x)} AS currency,
    {v.field_value_expr("event_type", x)} = 'purchase' AS is_purchase,
    {amount} AS amount
  FROM {PARTS_VIEW}
),
progressed AS (
  SELECT *, MAX(CASE WHEN reason IS NULL THEN et_ms END) OVER (
    PARTITION BY kpartition ORDER BY pt {rows}) AS partition_max
  FROM parsed
),
numbered AS (
  SELECT *, COUNT(*) OVER (
    PARTITION BY CASE WHEN reason IS NULL THEN event_id END ORDER BY pt {rows}) AS occ
  FROM progressed
)
SELECT
  CASE WHEN reason IS NOT NULL THEN '{KIND_MALFORMED}'
       WHEN occ > 1 THEN '{KIND_DUPLICATE}'
       WHEN partition_max - {lag_ms} >= {close_ms} THEN '{KIND_LATE}'
       ELSE '{KIND_VALID}' END AS kind,
  reason, payload, kpartition, koffset, et_ms,
  {valid_only(v.hour_start_ms_expr("et_ms"), malformed_day)} AS bucket_ms,
  {valid_only("region")} AS region,
  {valid_only("category")} AS category,
  {valid_only("currency")} AS currency,
  {valid_only("CASE WHEN is_purchase THEN amount ELSE -amount END", _decimal("0"))} AS rev,
  CASE WHEN reason IS NULL AND is_purchase THEN 1 ELSE 0 END AS is_purchase
FROM numbered
"""  # noqa: S608 (contract constants and integer settings only)


def _epoch_ms(ltz: str) -> str:
    """Epoch milliseconds of a TIMESTAMP_LTZ, to the minute: enough to name its UTC date."""
    return f"(CAST(TIMESTAMPDIFF(MINUTE, TO_TIMESTAMP_LTZ(0, 3), {ltz}) AS BIGINT) * 60000)"


def _day_start_ms(ms: str) -> str:
    return f"({ms} - MOD(MOD({ms}, {DAY_MS}) + {DAY_MS}, {DAY_MS}))"


def dlq_insert() -> str:
    return f"\nINSERT INTO {DLQ_TABLE}{dlq_rows_query()}"


def dlq_rows_query() -> str:
    """Malformed records as DLQ rows: the text payload, or base64 when it is not UTF-8."""
    stamp = "'yyyy-MM-dd''T''HH:mm:ss.SSS''Z'''"
    return f"""
SELECT reason,
  CASE WHEN reason = '{Reason.NOT_UTF8.value}' THEN CAST(NULL AS STRING) ELSE CAST(payload AS STRING) END,
  CASE WHEN reason = '{Reason.NOT_UTF8.value}' THEN TO_BASE64(payload) ELSE CAST(NULL AS STRING) END,
  kpartition, koffset, DATE_FORMAT(pt, {stamp})
FROM {CLASSIFIED_VIEW} WHERE kind = '{KIND_MALFORMED}'
"""  # noqa: S608 (contract constants and integer settings only)


def late_insert() -> str:
    return f"INSERT INTO {LATE_TABLE} {late_rows_query()}"


def late_rows_query() -> str:
    return f"SELECT payload FROM {CLASSIFIED_VIEW} WHERE kind = '{KIND_LATE}'"  # noqa: S608


def updates_query(settings: Settings) -> str:
    """Absolute totals per hour and key, per date and reason, and per partition: what the sink writes.

    Sums are DECIMAL(38,4) handed over as their exact text (PyFlink's DataStream type bridge
    cannot carry DECIMAL); the sink parses them with Decimal. Mini-batch aggregation (see
    table_config) changes a running total at most once per key and batch, in streaming and
    bounded runs alike (a bounded run flushes the last batch at the end of the input).
    Totals keep their state for the speed retention (late counters of a closed hour can still
    grow); only the dedup and progress states use LAMBDA_DEDUP_TTL_S.
    """
    zero = _decimal("0")
    ttl = f"{settings.speed_retention_s} s"

    def money(kind: str) -> str:
        return f"CAST(CAST(SUM(CASE WHEN kind = '{kind}' THEN rev ELSE {zero} END) AS {SUM_TYPE}) AS STRING)"

    def count(kind: str, cond: str = "TRUE") -> str:
        return f"SUM(CASE WHEN kind = '{kind}' AND {cond} THEN CAST(1 AS BIGINT) ELSE CAST(0 AS BIGINT) END)"

    return f"""
SELECT /*+ STATE_TTL('s' = '{ttl}') */
  CASE WHEN reason IS NULL THEN '{UPDATE_HOUR}' ELSE '{UPDATE_DLQ}' END AS update_kind,
  bucket_ms, region, category, currency, COALESCE(reason, '') AS reason,
  {money(KIND_VALID)} AS revenue,
  {count(KIND_VALID, "is_purchase = 1")} AS orders,
  {count(KIND_VALID, "is_purchase = 0")} AS refunds,
  {count(KIND_VALID)} AS events,
  {money(KIND_LATE)} AS late_revenue,
  {count(KIND_LATE, "is_purchase = 1")} AS late_orders,
  {count(KIND_LATE, "is_purchase = 0")} AS late_refunds,
  {count(KIND_LATE)} AS late_events,
  {count(KIND_DUPLICATE)} AS duplicates,
  {count(KIND_MALFORMED)} AS malformed,
  CAST(NULL AS BIGINT) AS max_event_ms
FROM {CLASSIFIED_VIEW} AS s
GROUP BY bucket_ms, region, category, currency, reason
UNION ALL
SELECT /*+ STATE_TTL('p' = '{ttl}') */
  '{UPDATE_PARTITION}', CAST(kpartition AS BIGINT), '', '', '', '',
  '0', CAST(0 AS BIGINT), CAST(0 AS BIGINT), CAST(0 AS BIGINT), '0', CAST(0 AS BIGINT),
  CAST(0 AS BIGINT), CAST(0 AS BIGINT), CAST(0 AS BIGINT), CAST(0 AS BIGINT),
  MAX(CASE WHEN kind <> '{KIND_MALFORMED}' THEN et_ms END)
FROM {CLASSIFIED_VIEW} AS p
GROUP BY kpartition
"""  # noqa: S608 (contract constants and integer settings only)


def table_config(settings: Settings) -> dict[str, str]:
    """Planner and runtime options the SQL above relies on."""
    return {
        "table.local-time-zone": "UTC",
        # Default state TTL = the dedup horizon (the dedup and partition-progress OVER states);
        # the totals override it with a STATE_TTL hint.
        "table.exec.state.ttl": f"{settings.dedup_ttl_s} s",
        # Aggregates emit once per key and batch, not once per event (early results within 2 s).
        "table.exec.mini-batch.enabled": "true",
        "table.exec.mini-batch.allow-latency": "200 ms",
        "table.exec.mini-batch.size": "20000",
    }


def _decimal(expr: str) -> str:
    return f"CAST({expr} AS DECIMAL({AMOUNT_PRECISION}, {AMOUNT_SCALE}))"
