"""Prometheus metrics of the serving layer (`lambda_serving_*`), on a registry per app instance."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class ServingMetrics:
    def __init__(self, batch_cache_age: Callable[[], float | None]) -> None:
        self.registry = CollectorRegistry()
        self.request_seconds = Histogram(
            "lambda_serving_request_duration_seconds",
            "HTTP request latency by route template, method and status code.",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.rows = Counter(
            "lambda_serving_rows_total",
            "Rows served by /v1/revenue/hourly, by source (batch, speed, none).",
            ["source"],
            registry=self.registry,
        )
        self.hours = Counter(
            "lambda_serving_hours_total",
            "Hours served by /v1/revenue/hourly, by status (final, closed, open, missing, future).",
            ["status"],
            registry=self.registry,
        )
        self.bad_redis_entries = Counter(
            "lambda_serving_bad_redis_entries_total",
            "Speed-view hash entries that did not follow the contract layout and were skipped.",
            registry=self.registry,
        )
        self.cache_age = Gauge(
            "lambda_serving_cache_age_seconds",
            "Seconds since a cached view was last confirmed current: batch = gold + manifest "
            "version check, speed = last Redis read; -1 before the first.",
            ["cache"],
            registry=self.registry,
        )
        self.cache_age.labels("batch").set_function(lambda: _or_minus_one(batch_cache_age()))
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

    def track_speed_cache(self, speed_cache_age: Callable[[], float | None]) -> None:
        self.cache_age.labels("speed").set_function(lambda: _or_minus_one(speed_cache_age()))
        self.table_version = Gauge(
            "lambda_serving_delta_table_version",
            "Delta version of the cached table; -1 when the table does not exist.",
            ["table"],
            registry=self.registry,
        )


def _or_minus_one(value: float | None) -> float:
    return -1.0 if value is None else value
