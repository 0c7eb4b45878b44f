"""The speed layer's own Prometheus metrics (lambda_speed_*), served by the sink's Python worker.

Flink's Prometheus reporter serves the JVM and operator metrics on LAMBDA_SPEED_METRICS_PORT;
these are served on the next port. Counts are derived from the absolute aggregates the sink
receives (the increase of each total), so they cost nothing per event.
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from speed_layer.view import Counts

log = logging.getLogger(__name__)


class SpeedMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events = Counter("lambda_speed_events_in_total", "Records consumed from orders.v1", registry=r)
        self.malformed = Counter(
            "lambda_speed_malformed_events_total",
            "Records sent to the DLQ, by reason",
            ["reason"],
            registry=r,
        )
        self.duplicates = Counter(
            "lambda_speed_duplicate_events_total", "Redeliveries suppressed by event_id", registry=r
        )
        self.late = Counter(
            "lambda_speed_late_events_total", "Events later than the allowed lateness", registry=r
        )
        self.redis_writes = Counter(
            "lambda_speed_redis_commands_total", "Redis commands written by the sink", registry=r
        )
        self.redis_errors = Counter(
            "lambda_speed_redis_errors_total", "Failed Redis pipelines (retried)", registry=r
        )
        self.redis_latency = Histogram(
            "lambda_speed_redis_write_seconds",
            "Latency of one pipelined Redis write",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=r,
        )
        self.watermark_lag = Gauge(
            "lambda_speed_watermark_lag_seconds", "Wall clock minus the speed watermark", registry=r
        )
        self.open_hours = Gauge(
            "lambda_speed_open_hours", "Hours not yet closed by the watermark", registry=r
        )

    def serve(self, port: int) -> None:
        """Expose on `port`; a port in use is logged, never fatal (metrics must not stop the job)."""
        try:
            start_http_server(port, registry=self.registry)
        except OSError as exc:
            log.warning("speed metrics endpoint not started on port %d: %s", port, exc)

    def add(self, counts: Counts) -> None:
        self.events.inc(counts.events)
        self.duplicates.inc(counts.duplicates)
        self.late.inc(counts.late)
        for reason, n in counts.malformed.items():
            self.malformed.labels(reason).inc(n)
