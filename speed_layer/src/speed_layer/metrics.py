"""The speed layer's own Prometheus metrics, created from the contract's specs (lambda_contract.metrics).

Flink's Prometheus reporter serves the JVM and operator metrics (flink_*) on
LAMBDA_SPEED_METRICS_PORT; these are served by the sink's Python worker on the next port (both in
the 9249-9251 range Prometheus scrapes). Counts are derived from the absolute aggregates the sink
receives (the increase of each total), so they cost nothing per event.
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from lambda_contract import metrics as spec
from speed_layer.view import Counts

log = logging.getLogger(__name__)


def _counter(m: spec.MetricSpec, registry: CollectorRegistry) -> Counter:
    return Counter(m.name, m.doc, list(m.labels), registry=registry)


def _gauge(m: spec.MetricSpec, registry: CollectorRegistry) -> Gauge:
    return Gauge(m.name, m.doc, list(m.labels), registry=registry)


class SpeedMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry or CollectorRegistry()
        self.events = _counter(spec.SPEED_EVENTS, r)
        self.malformed = _counter(spec.SPEED_MALFORMED, r)
        self.duplicates = _counter(spec.SPEED_DUPLICATES, r)
        self.late = _counter(spec.SPEED_LATE, r)
        self.redis_writes = _counter(spec.SPEED_REDIS_WRITES, r)
        self.redis_latency = Histogram(
            spec.SPEED_REDIS_WRITE_SECONDS.name,
            spec.SPEED_REDIS_WRITE_SECONDS.doc,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0),
            registry=r,
        )
        self.watermark = _gauge(spec.SPEED_WATERMARK, r)
        self.watermark_lag = _gauge(spec.SPEED_WATERMARK_LAG, r)
        self.checkpoint_age = _gauge(spec.SPEED_CHECKPOINT_AGE, r)
        self.open_hours = _gauge(spec.SPEED_OPEN_HOURS, r)
        self.events_in = _counter(spec.SPEED_RECORDS_IN, r)
        self.redis_errors = _counter(spec.SPEED_REDIS_ERRORS, r)

    def serve(self, port: int, attempts: int = 1) -> None:
        """Expose on the first free port of `port` .. `port + attempts - 1`: several sinks that
        share a host (a mini-cluster or the local session cluster at parallelism N) each get one.
        None free is logged, never fatal (metrics must not stop the job)."""
        for candidate in range(port, port + max(1, attempts)):
            try:
                start_http_server(candidate, registry=self.registry)
                return
            except OSError as exc:
                error = exc
        log.warning("speed metrics endpoint not started on ports %d+%d: %s", port, attempts, error)

    def add(self, counts: Counts) -> None:
        self.events_in.inc(counts.events_in)
        self.events.inc(counts.on_time)
        self.duplicates.inc(counts.duplicates)
        self.late.inc(counts.late)
        for reason, n in counts.malformed.items():
            self.malformed.labels(reason).inc(n)
