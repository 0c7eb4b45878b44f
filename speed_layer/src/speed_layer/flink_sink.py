"""The Redis sink as a PyFlink keyed process function: the only Python on the job's data path.

It receives the aggregate changelog (a few hundred rows per second at most, never one row per
event), hands each row to the pure `SpeedView`, and writes the resulting commands pipelined on a
short processing-time tick. The same tick publishes the watermark (derived by the view from the
partitions' progress rows) and, every refresh interval, rewrites the open hours so a Redis that
lost its data heals.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from pyflink.common import Row, RowKind
from pyflink.datastream import KeyedProcessFunction, RuntimeContext

from lambda_contract.settings import Settings
from speed_layer import checkpoints, redis_io
from speed_layer.metrics import SpeedMetrics
from speed_layer.view import MAX_WATERMARK, HSet, SpeedView, Update, metrics_of

log = logging.getLogger(__name__)


def update_of(row: Row) -> Update:
    """One changelog row of sql.updates_query as an Update."""
    return Update(
        kind=row["update_kind"],
        bucket_ms=int(row["bucket_ms"]),
        region=row["region"],
        category=row["category"],
        currency=row["currency"],
        reason=row["reason"],
        speed=metrics_of(Decimal(row["revenue"]), row["orders"], row["refunds"], row["events"]),
        late=metrics_of(
            Decimal(row["late_revenue"]), row["late_orders"], row["late_refunds"], row["late_events"]
        ),
        duplicates=int(row["duplicates"]),
        malformed=int(row["malformed"]),
        max_event_ms=row["max_event_ms"],
    )


class RedisSink(KeyedProcessFunction):  # type: ignore[misc]
    """Keyed by a constant: one instance sees every update and owns the whole speed view."""

    def __init__(self, settings: Settings, tick_ms: int = 200, refresh_s: int = 10) -> None:
        self.settings = settings
        self.tick_ms = tick_ms
        self.refresh_ms = refresh_s * 1000
        self._client: Any = None
        self._view: SpeedView | None = None
        self._metrics: SpeedMetrics | None = None
        self._next_refresh = 0
        self._ticking = False
        self._retry: list[Any] = []
        self._next_checkpoint_check = 0

    def open(self, runtime_context: RuntimeContext) -> None:
        s = self.settings
        self._client = redis_io.connect(s)
        self._view = SpeedView(
            s.redis_layout,
            s.allowed_lateness_s,
            s.speed_retention_s,
            s.out_of_orderness_s,
            partitions=s.topic_partitions,
            idle_timeout_s=s.idle_timeout_s,
        )
        self._metrics = SpeedMetrics()
        self._metrics.serve(s.speed_metrics_port + 1)
        try:
            watermark, open_hours = redis_io.read_state(self._client, s.redis_layout)
            self._view.seed(watermark, open_hours)
        except Exception:  # a Redis that is down now is retried by every tick
            log.exception("could not read the speed view back from Redis")

    def process_element(self, value: Row, ctx: KeyedProcessFunction.Context) -> Iterator[None]:
        # PyFlink iterates over what the callbacks return: they are generators that emit nothing.
        yield from ()
        assert self._view is not None
        if value.get_row_kind() in (RowKind.UPDATE_BEFORE, RowKind.DELETE):
            return
        self._view.apply(update_of(value))
        if not self._ticking:
            self._ticking = True
            now = ctx.timer_service().current_processing_time()
            ctx.timer_service().register_processing_time_timer(now + self.tick_ms)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterator[None]:
        yield from ()
        self._flush(timestamp)
        ctx.timer_service().register_processing_time_timer(timestamp + self.tick_ms)

    def close(self) -> None:
        if self._view is not None and self._client is not None:
            self._flush(int(time.time() * 1000), final=True)
            self._client.close()

    def _flush(self, now_ms: int, final: bool = False) -> None:
        assert self._view is not None and self._metrics is not None
        commands = self._retry + self._view.drain(now_ms)
        self._retry = []
        if final or now_ms >= self._next_refresh:
            commands += self._view.refresh(now_ms)
            self._next_refresh = now_ms + self.refresh_ms
        m = self._metrics
        try:
            seconds = redis_io.execute(self._client, commands)
        except Exception:
            # Nothing is lost: the commands are retried (absolute values, so order does not matter
            # beyond the newest value winning, which keeps its place at the end).
            m.redis_errors.inc()
            log.exception("Redis write failed; retrying on the next tick")
            self._retry = commands[-50_000:]
            return
        m.redis_writes.inc(sum(len(c.mapping) for c in commands if isinstance(c, HSet)))
        m.redis_latency.observe(seconds)
        m.add(self._view.take_counts())
        m.open_hours.set(len(self._view.open_hours()))
        wm = self._view.watermark_ms
        if wm is not None and wm < MAX_WATERMARK:
            m.watermark.set(wm / 1000)
            m.watermark_lag.set(max(0.0, (now_ms - wm) / 1000))
        if now_ms >= self._next_checkpoint_check:
            self._next_checkpoint_check = now_ms + 5000
            age = checkpoints.latest_age_s(self.settings.checkpoint_url)
            if age is not None:
                m.checkpoint_age.set(age)
