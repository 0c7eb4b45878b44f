"""Every Prometheus metric the platform exports, in one naming scheme (docs/metrics.md is generated).

Names start with `lambda_<layer>_`, carry their unit (`_seconds`, `_bytes`, `_ratio`, `_total` for
counters) and use only bounded label sets. Layers create their client objects from these specs,
alert rules and Grafana panels are tested against them, so a renamed metric cannot silently
break an alert or a dashboard.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

Kind = Literal["counter", "gauge", "histogram"]


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: Kind
    doc: str
    labels: tuple[str, ...] = ()
    layer: str = ""

    @property
    def series_names(self) -> tuple[str, ...]:
        """Names as they appear in Prometheus (histograms expose _bucket/_sum/_count)."""
        if self.kind == "histogram":
            return (f"{self.name}_bucket", f"{self.name}_sum", f"{self.name}_count")
        return (self.name,)


def _m(layer: str, name: str, kind: Kind, doc: str, *labels: str) -> MetricSpec:
    return MetricSpec(f"lambda_{layer}_{name}", kind, doc, labels, layer)


# --- speed layer (the job's own endpoint; Flink's reporter adds flink_* series) ------------------
SPEED_EVENTS: Final = _m("speed", "events_total", "counter", "Valid, first-seen events aggregated (on time).")
SPEED_MALFORMED: Final = _m(
    "speed", "malformed_total", "counter", "Malformed events sent to the DLQ.", "reason"
)
SPEED_DUPLICATES: Final = _m(
    "speed", "duplicates_total", "counter", "Duplicate deliveries suppressed by event_id."
)
SPEED_LATE: Final = _m("speed", "late_events_total", "counter", "Events later than the allowed lateness.")
SPEED_RECORDS_IN: Final = _m(
    "speed", "records_in_total", "counter", "Records consumed from orders.v1, of any kind."
)
SPEED_REDIS_ERRORS: Final = _m(
    "speed", "redis_errors_total", "counter", "Redis flushes that failed (retried)."
)
SPEED_REDIS_WRITES: Final = _m("speed", "redis_writes_total", "counter", "Hash fields written to Redis.")
SPEED_REDIS_WRITE_SECONDS: Final = _m(
    "speed", "redis_write_seconds", "histogram", "Latency of one pipelined Redis flush."
)
SPEED_WATERMARK: Final = _m("speed", "watermark_timestamp_seconds", "gauge", "Speed watermark (event time).")
SPEED_WATERMARK_LAG: Final = _m(
    "speed", "watermark_lag_seconds", "gauge", "Wall clock minus the speed watermark: freshness."
)
SPEED_CHECKPOINT_AGE: Final = _m(
    "speed", "checkpoint_age_seconds", "gauge", "Age of the latest completed Flink checkpoint."
)
SPEED_OPEN_HOURS: Final = _m(
    "speed", "open_hours", "gauge", "Hours the speed layer still accepts events for."
)

# --- batch layer (pushed to the Pushgateway by each run, job="lambda_batch") ---------------------
BATCH_RUN_SECONDS: Final = _m("batch", "run_duration_seconds", "gauge", "Wall clock of the last batch run.")
BATCH_ROWS: Final = _m(
    "batch",
    "rows",
    "gauge",
    "Rows of the last run by outcome (ingested, input, valid, duplicates, quarantined), summed over its dates.",
    "outcome",
)
BATCH_DATE_STATUS: Final = _m(
    "batch", "date_status", "gauge", "Per recomputed date of the last run: 1 ok, 0 failed.", "date"
)
BATCH_LAST_RUN_SUCCESS: Final = _m(
    "batch", "last_run_success", "gauge", "1 if the last run succeeded, else 0."
)
BATCH_LAST_SUCCESS: Final = _m(
    "batch", "last_success_timestamp_seconds", "gauge", "Unix time the last successful run ended."
)
BATCH_INGESTED_THROUGH: Final = _m(
    "batch",
    "ingested_through_timestamp_seconds",
    "gauge",
    "Every orders.v1 record that reached Kafka before this Unix time is in bronze: when the last "
    "successful ingest started.",
)

# --- serving layer --------------------------------------------------------------------------
SERVING_REQUEST_SECONDS: Final = _m(
    "serving", "request_duration_seconds", "histogram", "HTTP request latency.", "route", "method", "status"
)
SERVING_ROWS: Final = _m("serving", "rows_total", "counter", "Hourly rows served, by source.", "source")
SERVING_CACHE_AGE: Final = _m(
    "serving", "cache_age_seconds", "gauge", "Age of the cached Delta snapshot.", "table"
)
SERVING_SPEED_WATERMARK_LAG: Final = _m(
    "serving", "speed_watermark_lag_seconds", "gauge", "Wall clock minus the speed watermark seen in Redis."
)
SERVING_HOURS: Final = _m(
    "serving",
    "hours_total",
    "counter",
    "Hours served, by status (final, closed, open, missing, future).",
    "status",
)
SERVING_BAD_REDIS_ENTRIES: Final = _m(
    "serving", "bad_redis_entries_total", "counter", "Speed-view hash entries off the Redis layout, skipped."
)
SERVING_TABLE_VERSION: Final = _m(
    "serving",
    "delta_table_version",
    "gauge",
    "Delta version of the cached table (-1: no table yet).",
    "table",
)

# --- reconciliation ---------------------------------------------------------------------------
# Set by the scheduled `lambda-reconcile` (the nightly flow) per reconciled date, pushed to the
# Pushgateway under job="lambda_reconciliation" with the date as grouping key, so they persist.
RECON_DRIFT: Final = _m(
    "reconciliation", "drift_ratio", "gauge", "|speed - batch| / batch events of the date.", "date"
)
RECON_RESIDUAL_EVENTS: Final = _m(
    "reconciliation", "residual_events", "gauge", "Events of the date no cause explains (must be 0).", "date"
)
RECON_RESIDUAL_REVENUE: Final = _m(
    "reconciliation",
    "residual_revenue_usd",
    "gauge",
    "Revenue of the date no cause explains, in USD (must be 0).",
    "date",
)
RECON_LAST_RUN: Final = _m(
    "reconciliation", "last_run_timestamp_seconds", "gauge", "When the date was last reconciled.", "date"
)

ALL: Final[tuple[MetricSpec, ...]] = tuple(v for v in list(globals().values()) if isinstance(v, MetricSpec))


def by_name(name: str) -> MetricSpec:
    for spec in ALL:
        if name == spec.name or name in spec.series_names:
            return spec
    raise KeyError(name)
