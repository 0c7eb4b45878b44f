"""Redis I/O of the speed view: run the view's commands pipelined (with the reads that tell
whether Redis lost the view), read back what a first start needs."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, cast

import redis
from redis.exceptions import RedisClusterException

from lambda_contract import redis_clients
from lambda_contract.redis_layout import HOUR_OPEN, RedisLayout
from lambda_contract.settings import Settings
from lambda_contract.windows import parse_hour_id, to_epoch_ms
from speed_layer.view import EPOCH_FIELD, Command, Expire, HDel, HSet

if TYPE_CHECKING:
    from lambda_contract.redis_clients import SyncClient


def connect(settings: Settings) -> SyncClient:
    """The sink's client (lambda_contract.redis_clients: single, Sentinel or Cluster). A write that
    fails during a failover raises; the sink retries on its next tick, and writes the whole view."""
    return redis_clients.sync_client(settings, timeout_s=10)


def execute(
    client: SyncClient, commands: Sequence[Command], probes: Sequence[tuple[str, str]] = ()
) -> tuple[float, list[str | None]]:
    """Run the commands in one pipeline (no MULTI: every command is idempotent; on Redis Cluster
    redis-py splits it per master); seconds taken, and the value of each hash field in `probes`
    (key, field) as it was before the commands ran."""
    if not commands and not probes:
        return 0.0, []
    started = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    for probe in probes:
        pipe.hget(*probe)
    for cmd in commands:
        if isinstance(cmd, HSet):
            pipe.hset(cmd.key, mapping=dict(cmd.mapping))
        elif isinstance(cmd, Expire):
            pipe.expire(cmd.key, cmd.seconds)
        elif isinstance(cmd, HDel):
            pipe.hdel(cmd.key, *cmd.fields)
    try:
        results = pipe.execute()
    except RedisClusterException as exc:  # not a RedisError: no slot map, a slot with no master
        raise redis.ConnectionError(f"Redis Cluster: {exc}") from exc
    seconds = time.perf_counter() - started
    probed = [r.decode() if isinstance(r, bytes) else None for r in results[: len(probes)]]
    return seconds, probed


def epoch_probes(client: SyncClient, layout: RedisLayout) -> list[tuple[str, str]]:
    """Where the sink's whole-view epoch is written and read back: the meta hash and, on Redis
    Cluster, one marker key on each master (lambda_contract.redis_clients.slot_markers), so a
    master that lost its data is seen whichever one it is."""
    markers = redis_clients.slot_markers(client, layout)
    return [(layout.meta(), EPOCH_FIELD), *((key, EPOCH_FIELD) for key in markers)]


def read_state(
    client: SyncClient, layout: RedisLayout
) -> tuple[int | None, dict[int, dict[str, dict[str, str]]]]:
    """The published watermark and the open hours' hashes, to seed the view after a restart."""
    raw_wm = cast(bytes | None, client.hget(layout.meta(), "watermark_ms"))
    watermark = int(raw_wm) if raw_wm is not None else None
    hours = cast(Mapping[bytes, bytes], client.hgetall(layout.hours()))
    result: dict[int, dict[str, dict[str, str]]] = {}
    for hid, status in hours.items():
        if status.decode() != HOUR_OPEN:
            continue
        start = parse_hour_id(hid.decode())
        parts = {}
        for name, key in (
            ("speed", layout.hour(start)),
            ("late", layout.late(start)),
            ("dups", layout.duplicates(start)),
        ):
            stored = cast(Mapping[bytes, bytes], client.hgetall(key))
            parts[name] = {k.decode(): val.decode() for k, val in stored.items()}
        result[to_epoch_ms(start)] = parts
    return watermark, result
