"""Prometheus metrics of the serving layer, built from the platform's one metric registry
(lambda_contract.metrics), on a registry per app instance."""

from __future__ import annotations

import math
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from lambda_contract import metrics as specs
from lambda_contract.metrics import MetricSpec

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
CACHED_TABLES = ("gold", "coverage_manifest")


def _counter(spec: MetricSpec, registry: CollectorRegistry) -> Counter:
    assert spec.kind == "counter", spec
    return Counter(spec.name, spec.doc, list(spec.labels), registry=registry)


def _gauge(spec: MetricSpec, registry: CollectorRegistry) -> Gauge:
    assert spec.kind == "gauge", spec
    return Gauge(spec.name, spec.doc, list(spec.labels), registry=registry)


class ServingMetrics:
    def __init__(self, batch_cache_age: Callable[[], float | None]) -> None:
        self.registry = CollectorRegistry()
        spec = specs.SERVING_REQUEST_SECONDS
        self.request_seconds = Histogram(
            spec.name, spec.doc, list(spec.labels), buckets=LATENCY_BUCKETS, registry=self.registry
        )
        self.rows = _counter(specs.SERVING_ROWS, self.registry)
        self.hours = _counter(specs.SERVING_HOURS, self.registry)
        self.bad_redis_entries = _counter(specs.SERVING_BAD_REDIS_ENTRIES, self.registry)
        # Both tables are checked together, so they share one age; -1 before the first check.
        self.cache_age = _gauge(specs.SERVING_CACHE_AGE, self.registry)
        for table in CACHED_TABLES:
            self.cache_age.labels(table).set_function(lambda: _or_minus_one(batch_cache_age()))
        self.table_version = _gauge(specs.SERVING_TABLE_VERSION, self.registry)
        # Set at scrape time from a fresh read of the speed layer's meta hash; NaN when unknown.
        self.speed_watermark_lag = _gauge(specs.SERVING_SPEED_WATERMARK_LAG, self.registry)
        self.speed_watermark_lag.set(math.nan)
        # No reconciliation gauges here: the scheduled `lambda-reconcile` pushes them per date
        # (reconciliation_io.push_gauges); a report opened in one replica sets nothing.
        self._rows: dict[str, Counter] = {}
        self._hours: dict[str, Counter] = {}

    def count_response(self, rows_by_source: dict[str, int], hours_by_status: dict[str, int]) -> None:
        """Add one response's rows per source and hours per status (label children cached)."""
        for source, n in rows_by_source.items():
            child = self._rows.get(source)
            if child is None:
                child = self._rows[source] = self.rows.labels(source)
            child.inc(n)
        for status, n in hours_by_status.items():
            child = self._hours.get(status)
            if child is None:
                child = self._hours[status] = self.hours.labels(status)
            child.inc(n)


def _or_minus_one(value: float | None) -> float:
    return -1.0 if value is None else value
