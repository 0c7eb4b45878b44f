"""The speed job as SQL text and connector options, built from the contract and Settings (pure).

Data flow (every per-event step runs in the JVM):

  orders_src (Kafka, raw bytes and metadata)
    -> parsed: one parse per record (the JsonMembers function), the contract's validation
       (reason), and the few values the later steps need. [DataStream boundary: the split, where
       job.progress appends the progress of the record's own partition (PARTITION_MAX)]
    -> DLQ (malformed rows, straight from here: they never cross a keyed exchange)
    -> judged (valid rows only; the payload travels no further unless the row is late):
       the lateness the partition's progress implies. [DataStream boundary: keyed by event_id,
       where job.first_arrivals appends whether the row is its id's first arrival (FIRST_ARRIVAL,
       a flag in keyed state with the dedup TTL)]
    -> classified: kind = valid | duplicate | late (first arrival wins: a later copy is a
       duplicate, never late). [DataStream boundary: shared by the two outputs below]
    -> late topic (Kafka sink, the raw payload of late first arrivals)
    -> updates: running absolute totals per (hour, region, category, currency), per
       (date, reason) and per partition (progress), aggregated in mini-batches: an upsert stream
       of a few hundred rows per second at most, which is all the Python Redis sink sees.

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
PARSED_VIEW: Final = "parsed"
DLQ_TABLE: Final = "dlq_sink"
LATE_TABLE: Final = "late_sink"
JUDGED_VIEW: Final = "judged"
CLASSIFIED_VIEW: Final = "classified"
PARTITION_MAX: Final = "partition_max"
"""The parsed view's progress column: the newest valid event time so far on the record's own
partition, the record included (appended in the JVM by job.progress, not by SQL)."""
FIRST_ARRIVAL: Final = "is_first"
"""The judged view's dedup column: TRUE for the first arrival of the row's event_id within the
dedup TTL (appended in the JVM by job.first_arrivals, not by SQL)."""

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


def parse_query() -> str:
    """orders_src -> one row per record: its reason (NULL when valid) and what the later steps use.

    One parse per record: the extraction step's only column is the JsonMembers answer, which the
    planner never inlines twice (the function is non-deterministic), and every rule reads the
    parts step's named elements of it. The parts step does not pass the answer on: a forwarded
    array is copied element by element into each row (the profile showed it).
    """
    x = v.Extracted()
    amount = f"TRY_CAST({x.amount_text} AS DECIMAL({AMOUNT_PRECISION}, {AMOUNT_SCALE}))"
    return f"""
SELECT payload, kpartition, koffset, kts,
  {v.reason_expr(x)} AS reason,
  {v.readable_event_time_ms_expr(x)} AS et_ms,
  {v.field_value_expr("event_id", x)} AS event_id,
  {v.field_value_expr("region", x)} AS region,
  {v.field_value_expr("category", x)} AS category,
  {v.field_value_expr("currency", x)} AS currency,
  {v.field_value_expr("event_type", x)} = 'purchase' AS is_purchase,
  {amount} AS amount
FROM (
  SELECT payload, kpartition, koffset, kts,
    {_select_list(v.part_columns(x), 4)}
  FROM (SELECT *, {_select_list(v.extract_columns("payload", x), 4)} FROM {SOURCE_TABLE})
)
"""  # noqa: S608 (contract constants only)


def _select_list(columns: list[tuple[str, str]], indent: int = 2) -> str:
    return f",\n{' ' * indent}".join(f"{expr} AS {alias}" for expr, alias in columns)


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


def judge_query(settings: Settings) -> str:
    """parsed (valid rows) -> what the dedup and the outputs need, and whether the row is late.

    Lateness is judged by the watermark of the partition the event arrives on: the newest valid
    event time seen on that partition (PARTITION_MAX, appended by job.progress and kept in its
    checkpointed state, so a restored job continues from its checkpoint) minus the
    out-of-orderness and 1 ms. Kafka orders records within a
    partition only, so this is the one lateness decision that a live run, a catch-up and a replay
    all make identically; a watermark over all partitions would depend on how fast each partition
    happened to be read (docs/specs/speed.md, "Lateness", has the trade-off). The watermark the
    sink publishes (which closes hours) is the minimum of these partition watermarks over
    partitions that are not idle (see view.SpeedView).

    The raw payload crosses the dedup exchange only for late rows (the late topic needs it), so
    that exchange carries a few numbers and keys per record.
    """
    close_ms = f"{v.hour_start_ms_expr('et_ms')} + {HOUR_MS + settings.allowed_lateness_s * 1000}"
    lag_ms = settings.out_of_orderness_s * 1000 + 1
    late = f"{PARTITION_MAX} - {lag_ms} >= {close_ms}"
    return f"""
SELECT event_id, et_ms, region, category, currency, is_purchase, amount, kpartition,
  {late} AS is_late,
  CASE WHEN {late} THEN payload END AS late_payload
FROM {PARSED_VIEW} WHERE reason IS NULL
"""  # noqa: S608 (contract constants and integer settings only)


def classify_query() -> str:
    """judged, with FIRST_ARRIVAL (job.first_arrivals) -> one row per record: its kind and what
    the outputs need.

    Order of decisions as in the contract: validate (done: only valid rows come here), then
    dedup by event_id (first arrival wins: a later copy is a duplicate, never late), then
    lateness of first arrivals.
    """
    return f"""
SELECT
  CASE WHEN NOT {FIRST_ARRIVAL} THEN '{KIND_DUPLICATE}'
       WHEN is_late THEN '{KIND_LATE}'
       ELSE '{KIND_VALID}' END AS kind,
  CASE WHEN {FIRST_ARRIVAL} AND is_late THEN late_payload END AS payload,
  kpartition, et_ms,
  {v.hour_start_ms_expr("et_ms")} AS bucket_ms,
  region, category, currency,
  CASE WHEN is_purchase THEN amount ELSE -amount END AS rev,
  CASE WHEN is_purchase THEN 1 ELSE 0 END AS is_purchase
FROM {JUDGED_VIEW}
"""  # noqa: S608 (contract constants only)


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
FROM {PARSED_VIEW} WHERE reason IS NOT NULL
"""  # noqa: S608 (contract constants and integer settings only)


def late_insert() -> str:
    return f"INSERT INTO {LATE_TABLE} {late_rows_query()}"


def late_rows_query() -> str:
    return f"SELECT payload FROM {CLASSIFIED_VIEW} WHERE kind = '{KIND_LATE}'"  # noqa: S608


def updates_queries(settings: Settings) -> dict[str, str]:
    """Absolute totals, by update kind: per hour and key, per date and reason, per partition.

    Each is a GROUP BY on its own key, so it is an upsert stream on that key: the sink gets each
    new total once (no retraction of the old one). Sums are DECIMAL(38,4) handed over as their
    exact text (PyFlink's DataStream type bridge cannot carry DECIMAL); the sink parses them with
    Decimal. Mini-batch aggregation (see table_config) changes a running total at most once per
    key and batch, in streaming and bounded runs alike (a bounded run flushes the last batch at
    the end of the input). Totals keep their state for the speed retention (late counters of a
    closed hour can still grow); only the dedup state uses LAMBDA_DEDUP_TTL_S.
    """
    zero = _decimal("0")
    ttl = f"{settings.speed_retention_s} s"
    no_money = "'0', CAST(0 AS BIGINT), CAST(0 AS BIGINT), CAST(0 AS BIGINT)"
    no_count = "CAST(0 AS BIGINT)"

    def money(kind: str) -> str:
        return f"CAST(CAST(SUM(CASE WHEN kind = '{kind}' THEN rev ELSE {zero} END) AS {SUM_TYPE}) AS STRING)"

    def count(kind: str, cond: str = "TRUE") -> str:
        return f"SUM(CASE WHEN kind = '{kind}' AND {cond} THEN CAST(1 AS BIGINT) ELSE CAST(0 AS BIGINT) END)"

    malformed_day = _day_start_ms("COALESCE(et_ms, " + _epoch_ms("kts") + ")")
    hour = f"""
SELECT /*+ STATE_TTL('s' = '{ttl}') */
  '{UPDATE_HOUR}' AS update_kind, bucket_ms, region, category, currency, '' AS reason,
  {money(KIND_VALID)} AS revenue,
  {count(KIND_VALID, "is_purchase = 1")} AS orders,
  {count(KIND_VALID, "is_purchase = 0")} AS refunds,
  {count(KIND_VALID)} AS events,
  {money(KIND_LATE)} AS late_revenue,
  {count(KIND_LATE, "is_purchase = 1")} AS late_orders,
  {count(KIND_LATE, "is_purchase = 0")} AS late_refunds,
  {count(KIND_LATE)} AS late_events,
  {count(KIND_DUPLICATE)} AS duplicates,
  {no_count} AS malformed,
  CAST(NULL AS BIGINT) AS max_event_ms
FROM {CLASSIFIED_VIEW} AS s
GROUP BY bucket_ms, region, category, currency
"""  # noqa: S608 (contract constants and integer settings only)
    dlq = f"""
SELECT /*+ STATE_TTL('d' = '{ttl}') */
  '{UPDATE_DLQ}' AS update_kind, day_ms AS bucket_ms, '' AS region, '' AS category,
  '' AS currency, reason, {no_money}, {no_money}, {no_count}, COUNT(*) AS malformed,
  CAST(NULL AS BIGINT) AS max_event_ms
FROM (SELECT reason, {malformed_day} AS day_ms FROM {PARSED_VIEW} WHERE reason IS NOT NULL) AS d
GROUP BY day_ms, reason
"""  # noqa: S608 (contract constants and integer settings only)
    partition = f"""
SELECT /*+ STATE_TTL('p' = '{ttl}') */
  '{UPDATE_PARTITION}' AS update_kind, CAST(kpartition AS BIGINT) AS bucket_ms, '' AS region,
  '' AS category, '' AS currency, '' AS reason, {no_money}, {no_money}, {no_count}, {no_count},
  MAX(et_ms) AS max_event_ms
FROM {CLASSIFIED_VIEW} AS p
GROUP BY kpartition
"""  # noqa: S608 (contract constants and integer settings only)
    return {
        kind: _typed_updates(q)
        for kind, q in ((UPDATE_HOUR, hour), (UPDATE_DLQ, dlq), (UPDATE_PARTITION, partition))
    }


def update_columns() -> list[Column]:
    """The updates' columns: the same names and types for every kind (their streams are merged)."""
    text = ("update_kind", "region", "category", "currency", "reason", "revenue", "late_revenue")
    return [
        Column(name, "STRING" if name in text else "BIGINT")
        for name in (
            "update_kind", "bucket_ms", "region", "category", "currency", "reason", "revenue",
            "orders", "refunds", "events", "late_revenue", "late_orders", "late_refunds",
            "late_events", "duplicates", "malformed", "max_event_ms",
        )
    ]  # fmt: skip


def _typed_updates(query: str) -> str:
    columns = update_columns()
    positional = ", ".join(f"c{i}" for i in range(len(columns)))
    typed = ", ".join(f"CAST(c{i} AS {c.type}) AS {c.name}" for i, c in enumerate(columns))
    return f"SELECT {typed} FROM ({query}) AS u({positional})"  # noqa: S608 (names above only)


def updates_query(settings: Settings) -> str:
    """Every update kind in one changelog (the tests read it so; the job keeps them apart)."""
    return "\nUNION ALL\n".join(updates_queries(settings).values())


def table_config(settings: Settings) -> dict[str, str]:
    """Planner and runtime options the SQL above relies on."""
    return {
        "table.local-time-zone": "UTC",
        # Every SQL state keeps its own TTL (the totals' STATE_TTL hints); this default only
        # bounds a state added later without one. The dedup's is job.first_arrivals'.
        "table.exec.state.ttl": f"{settings.dedup_ttl_s} s",
        # Aggregates emit once per key and batch, not once per event (early results within 2 s).
        "table.exec.mini-batch.enabled": "true",
        "table.exec.mini-batch.allow-latency": "200 ms",
        "table.exec.mini-batch.size": "20000",
    }


def _decimal(expr: str) -> str:
    return f"CAST({expr} AS DECIMAL({AMOUNT_PRECISION}, {AMOUNT_SCALE}))"
