"""Run metrics pushed to the Prometheus Pushgateway (when LAMBDA_PUSHGATEWAY_URL is set).

A batch job is gone before Prometheus could scrape it, hence the push. `pushadd` replaces only
the metric names pushed, so a failed run never erases the last success timestamp.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Gauge, pushadd_to_gateway

from batch_layer.recompute import DateResult

log = logging.getLogger(__name__)

JOB = "lambda_batch"


def build_registry(
    results: Iterable[DateResult],
    failed_dates: Iterable[str],
    duration_s: float,
    ingested_rows: int,
    success: bool,
    finished_at: float,
) -> CollectorRegistry:
    registry = CollectorRegistry()
    Gauge("lambda_batch_run_duration_seconds", "Wall clock of the last batch run.", registry=registry).set(
        duration_s
    )
    rows = Gauge(
        "lambda_batch_rows",
        "Rows of the last run by outcome (summed over its dates).",
        ["outcome"],
        registry=registry,
    )
    status = Gauge(
        "lambda_batch_date_status",
        "Per recomputed date of the last run: 1 ok, 0 failed.",
        ["date"],
        registry=registry,
    )
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
    Gauge("lambda_batch_last_run_success", "1 if the last run succeeded, else 0.", registry=registry).set(
        1 if success else 0
    )
    if success:
        Gauge(
            "lambda_batch_last_success_timestamp_seconds",
            "Unix time the last successful run ended.",
            registry=registry,
        ).set(finished_at)
    return registry


def push(url: str, registry: CollectorRegistry, grouping_key: dict[str, str] | None = None) -> bool:
    """Push; a Pushgateway outage is logged, never fails the run that already committed."""
    try:
        pushadd_to_gateway(url, job=JOB, registry=registry, grouping_key=grouping_key or {}, timeout=5)
    except OSError as exc:
        log.warning("could not push metrics to %s: %s", url, exc)
        return False
    return True
