"""Run metrics pushed to the Prometheus Pushgateway (when LAMBDA_PUSHGATEWAY_URL is set).

A batch job is gone before Prometheus could scrape it, hence the push. `pushadd` replaces only
the metric names pushed, so a failed run never erases the last success timestamp.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Gauge, pushadd_to_gateway

from batch_layer.transforms import DateResult
from lambda_contract import metrics as spec

log = logging.getLogger(__name__)

JOB = "lambda_batch"


def build_registry(
    results: Iterable[DateResult],
    failed_dates: Iterable[str],
    duration_s: float,
    ingested_rows: int,
    success: bool,
    finished_at: float,
    ingested_through: float | None = None,
) -> CollectorRegistry:
    """A run's metrics; `ingested_through` only when its ingest succeeded, so a run that failed to
    ingest leaves the last good value in place and the retention alert keeps counting from it."""
    registry = ingest_registry(ingested_through)

    def gauge(m: spec.MetricSpec) -> Gauge:
        return Gauge(m.name, m.doc, list(m.labels), registry=registry)

    gauge(spec.BATCH_RUN_SECONDS).set(duration_s)
    rows = gauge(spec.BATCH_ROWS)
    status = gauge(spec.BATCH_DATE_STATUS)
    totals = {"ingested": ingested_rows, "input": 0, "valid": 0, "duplicates": 0, "quarantined": 0}
    for r in results:
        totals["input"] += r.input_rows
        totals["valid"] += r.valid
        totals["duplicates"] += r.duplicates
        totals["quarantined"] += r.quarantined
        status.labels(r.day.isoformat()).set(1)
    for day in failed_dates:
        status.labels(day).set(0)
    for outcome, value in totals.items():
        rows.labels(outcome).set(value)
    gauge(spec.BATCH_LAST_RUN_SUCCESS).set(1 if success else 0)
    if success:
        gauge(spec.BATCH_LAST_SUCCESS).set(finished_at)
    return registry


def ingest_registry(ingested_through: float | None) -> CollectorRegistry:
    """What an ingest on its own reports (`lambda-batch ingest`, every 15 minutes in k8s)."""
    registry = CollectorRegistry()
    if ingested_through is not None:
        m = spec.BATCH_INGESTED_THROUGH
        Gauge(m.name, m.doc, list(m.labels), registry=registry).set(ingested_through)
    return registry


def push(url: str, registry: CollectorRegistry, grouping_key: dict[str, str] | None = None) -> bool:
    """Push; a Pushgateway outage is logged, never fails the run that already committed."""
    try:
        pushadd_to_gateway(url, job=JOB, registry=registry, grouping_key=grouping_key or {}, timeout=5)
    except OSError as exc:
        log.warning("could not push metrics to %s: %s", url, exc)
        return False
    return True
