"""The Redis sink as a PyFlink keyed co-process function: the only Python on the job's data path.

It receives the aggregate changelog (a few hundred rows per second at most, never one row per
event), hands each row to the pure `SpeedView`, and writes the resulting commands pipelined on a
short processing-time tick, which also publishes the watermark and, every refresh interval,
rewrites the open hours and prunes what left retention.

Redis is a cache of the view, never its only copy. The whole view (open and closed hours within
retention, malformed counters, watermark) is Flink keyed state (`SpeedView.snapshot`), written
before each callback returns (PyFlink has no hook before a checkpoint barrier), so a resumed job
rebuilds exactly the view that matches its checkpoint's offsets, whatever Redis holds. Each tick's
pipeline also reads back the epoch the sink wrote first in its last whole-view write
(`SpeedView.rewrite`); when it is gone (a flush, a Redis restarted without persistence) or is not
this run's (a resumed job: the previous run may have left gaps), the sink writes the whole view
again at once. On Redis Cluster the epoch is also read back from a marker on every master, and a
failed write or a change of masters (a failover: the promoted replica may lack acknowledged
writes) makes the next tick that Redis answers write the whole view (docs/specs/redis.md). A heartbeat input (one row a second, `job.heartbeat`) starts the tick of a resumed
sink that gets no changelog row, and restarts a tick whose timer is long overdue: a restored timer
alone does not always fire. Redis is read back only when the state is empty (a first start),
docs/reliability.md has the cases.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from pyflink.common import Row, RowKind
from pyflink.common.typeinfo import Types
from pyflink.datastream import KeyedCoProcessFunction, RuntimeContext, TimerService
from pyflink.datastream.state import MapStateDescriptor

from lambda_contract import redis_clients
from lambda_contract.settings import Settings
from speed_layer import checkpoints, redis_io
from speed_layer.metrics import SpeedMetrics
from speed_layer.view import EPOCH_FIELD, MAX_WATERMARK, Command, HSet, SpeedView, Update, metrics_of

log = logging.getLogger(__name__)

STATE_NAME = "speed-view"


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


class RedisSink(KeyedCoProcessFunction):  # type: ignore[misc]
    """Keyed by a constant: one instance sees every update and owns the whole speed view.

    Input 1 is the aggregate changelog, input 2 the heartbeat (its rows carry nothing)."""

    def __init__(self, settings: Settings, tick_ms: int = 200, refresh_s: int = 10) -> None:
        self.settings = settings
        self.tick_ms = tick_ms
        self.refresh_ms = refresh_s * 1000
        self._client: Any = None
        self._view: SpeedView | None = None
        self._state: Any = None
        self._loaded = False
        self._metrics: SpeedMetrics | None = None
        self._next_refresh = 0
        self._next_tick = 0  # this run's pending tick timer; 0 until the first is registered
        # A heartbeat finding the tick's timer this late restarts the tick (normally a timer fires
        # within milliseconds; a busy worker delays heartbeats as much as timers).
        self.overdue_ms = max(10_000, 20 * tick_ms)
        self._retry: list[Any] = []
        self._next_checkpoint_check = 0
        # The epoch of this run's last whole-view write that went through; "" until the first one,
        # so the first tick of every run writes the whole view, and again after a failed write.
        self._epoch = ""
        # Redis Cluster: the masters at that write, and where the epoch is read back (see _probes).
        self._topology: frozenset[str] = frozenset()
        self._probes_at: tuple[frozenset[str], list[tuple[str, str]]] | None = None

    def open(self, runtime_context: RuntimeContext) -> None:
        s = self.settings
        self._view = SpeedView(
            s.redis_layout,
            s.allowed_lateness_s,
            s.speed_retention_s,
            s.out_of_orderness_s,
            partitions=s.topic_partitions,
            idle_timeout_s=s.idle_timeout_s,
        )
        # Keyed state can be read only inside a callback (the key is set there): see _load.
        self._state = runtime_context.get_map_state(
            MapStateDescriptor(STATE_NAME, Types.STRING(), Types.STRING())
        )
        self._metrics = SpeedMetrics()
        # In Kubernetes each TaskManager pod has one slot, so every sink takes port + 1 (9250).
        self._metrics.serve(s.speed_metrics_port + 1, attempts=s.speed_parallelism)

    def process_element1(self, value: Row, ctx: KeyedCoProcessFunction.Context) -> Iterator[None]:
        """A changelog row."""
        # PyFlink iterates over what the callbacks return: they are generators that emit nothing.
        yield from ()
        view = self._load()
        if value.get_row_kind() not in (RowKind.UPDATE_BEFORE, RowKind.DELETE):
            view.apply(update_of(value))
        self._save()
        if not self._next_tick:
            timers = ctx.timer_service()
            self._schedule(timers, timers.current_processing_time())

    def process_element2(self, value: Any, ctx: KeyedCoProcessFunction.Context) -> Iterator[None]:
        """A heartbeat: start the tick if nothing else has (a resumed job that gets no rows), or
        restart it if its timer is overdue by far."""
        yield from ()
        self._load()
        timers = ctx.timer_service()
        now = timers.current_processing_time()
        if not self._next_tick:
            log.info("the tick starts on a heartbeat")
        elif now > self._next_tick + self.overdue_ms:
            log.warning("the tick's timer is %d ms overdue: restarting the tick", now - self._next_tick)
        else:
            return
        self._schedule(timers, now)

    def on_timer(self, timestamp: int, ctx: KeyedCoProcessFunction.OnTimerContext) -> Iterator[None]:
        yield from ()
        self._load()
        if timestamp < self._next_tick:
            return  # the previous run's timer, restored after this run's tick had started
        if not self._next_tick:
            log.info("the tick resumes from a timer restored with the checkpoint")
        timers = ctx.timer_service()
        now = max(timestamp, timers.current_processing_time())
        self._flush(now)
        self._save()
        self._schedule(timers, now)

    def close(self) -> None:
        if self._loaded and self._view is not None and self._client is not None:
            self._flush(int(time.time() * 1000), final=True)
        if self._client is not None:
            self._client.close()

    def _redis(self) -> Any:
        """The client, made on first use: a Redis Cluster client reads the slot map when it is
        made, and a Redis that does not answer yet must not fail the job's start (the tick retries)."""
        if self._client is None:
            self._client = redis_io.connect(self.settings)
        return self._client

    def _schedule(self, timers: TimerService, now_ms: int) -> None:
        self._next_tick = now_ms + self.tick_ms
        timers.register_processing_time_timer(self._next_tick)

    def _load(self) -> SpeedView:
        """The view, rebuilt from the keyed state on the first callback (Redis if that is empty)."""
        assert self._view is not None
        if self._loaded:
            return self._view
        self._loaded = True
        entries = dict(self._state.items())
        if entries:
            self._view.restore(entries)
            log.info(
                "speed view restored from checkpointed state: %d entries (%d bytes), open hours %s, "
                "watermark %s",
                len(entries),
                sum(len(k) + len(v) for k, v in entries.items()),
                self._view.open_hours(),
                self._view.watermark_ms,
            )
            return self._view
        try:
            watermark, open_hours = redis_io.read_state(self._redis(), self.settings.redis_layout)
        except Exception:  # a Redis that is down now: start from nothing, the topic is replayed
            log.exception("could not read the speed view back from Redis")
            return self._view
        self._view.seed(watermark, open_hours)
        log.info("no checkpointed speed view: seeded %d open hours from Redis", len(open_hours))
        return self._view

    def _save(self) -> None:
        """Write the state entries the view changed since the last call (keyed state: inside a
        callback only)."""
        assert self._view is not None
        for name, entry in self._view.snapshot_changes().items():
            if entry is None:
                self._state.remove(name)
            else:
                self._state.put(name, entry)

    def _flush(self, now_ms: int, final: bool = False) -> None:
        assert self._view is not None and self._metrics is not None
        commands = self._retry + self._view.drain(now_ms)
        self._retry = []
        if final or now_ms >= self._next_refresh:
            commands += self._view.refresh(now_ms)
            self._next_refresh = now_ms + self.refresh_ms
        m = self._metrics
        try:
            client = self._redis()
            probes = self._probes()
            seconds, epochs = redis_io.execute(client, commands, probes)
        except Exception:
            # Nothing is lost: the commands are retried (absolute values, so order does not matter
            # beyond the newest value winning, which keeps its place at the end). A failed write
            # may be a master failing over, and the replica promoted by asynchronous replication
            # may lack writes it had acknowledged: forgetting the epoch makes the first tick that
            # Redis answers write the whole view again.
            m.redis_errors.inc()
            log.exception("Redis write failed; retrying on the next tick with the whole view")
            self._retry = commands[-50_000:]
            self._epoch = ""
            return
        written = sum(len(c.mapping) for c in commands if isinstance(c, HSet))
        topology = redis_clients.primaries(self._client)
        if any(epoch != self._epoch for epoch in epochs) or topology != self._topology:
            # A master without this run's epoch lost its data; new masters (a failover the
            # client rode through on its own retries) may lack acknowledged writes.
            found = ",".join(sorted({str(epoch) for epoch in epochs}))
            rewritten = self._rewrite(now_ms, found, [key for key, _ in probes[1:]], topology)
            if rewritten is None:
                return
            seconds += rewritten[0]
            written += rewritten[1]
        m.redis_writes.inc(written)
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

    def _probes(self) -> list[tuple[str, str]]:
        """The (key, field) pairs holding the epoch: meta's, and on Redis Cluster one marker per
        master, recomputed when the client's masters change."""
        topology = redis_clients.primaries(self._client)
        if self._probes_at is None or self._probes_at[0] != topology:
            self._probes_at = (topology, redis_io.epoch_probes(self._client, self.settings.redis_layout))
        return self._probes_at[1]

    def _rewrite(
        self, now_ms: int, found: str | None, markers: list[str], topology: frozenset[str]
    ) -> tuple[float, int] | None:
        """Write the whole view under a new epoch, first into every master's marker (seconds
        taken, fields written); None if Redis failed, and then the next tick writes it all
        again, whatever epoch Redis holds."""
        assert self._view is not None and self._metrics is not None
        epoch = f"{now_ms}-{secrets.token_hex(4)}"
        marks: list[Command] = [HSet(key, {EPOCH_FIELD: epoch}) for key in markers]
        commands = marks + self._view.rewrite(now_ms, epoch)
        try:
            seconds, _ = redis_io.execute(self._client, commands)
        except Exception:
            self._metrics.redis_errors.inc()
            log.exception("writing the whole speed view failed; trying again on the next tick")
            self._epoch = ""
            return None
        written = sum(len(c.mapping) for c in commands if isinstance(c, HSet))
        level = logging.INFO if not self._epoch else logging.WARNING
        log.log(
            level,
            "wrote the whole speed view (Redis held epoch %s, expected %s): %d open and %d closed hours, "
            "%d fields in %.3f s; epoch %s",
            found,
            self._epoch or "none (first tick of this run)",
            len(self._view.open_hours()),
            len(self._view.closed_hours()),
            written,
            seconds,
            epoch,
        )
        self._epoch = epoch
        self._topology = topology
        return seconds, written
