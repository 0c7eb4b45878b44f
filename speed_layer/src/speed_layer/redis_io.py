"""Redis I/O of the speed view: run the view's commands pipelined (with the one read that tells
whether Redis lost the view), read back what a first start needs."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import cast

import redis
from redis.sentinel import Sentinel

from lambda_contract.redis_layout import HOUR_OPEN, RedisLayout
from lambda_contract.settings import Settings
from lambda_contract.windows import parse_hour_id, to_epoch_ms
from speed_layer.view import Command, Expire, HDel, HSet


def connect(settings: Settings) -> redis.Redis:
    """A client for LAMBDA_REDIS_URL with the password from the variable or its file; with
    LAMBDA_REDIS_SENTINELS, a client of the master the Sentinels name, which follows a failover
    (a write that fails during one raises, and the sink's retry reconnects to the new master)."""
    password = settings.resolved_redis_password()
    if settings.redis_sentinels:
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            list(settings.redis_sentinels),
            sentinel_kwargs={"password": password, "socket_timeout": 10, "socket_connect_timeout": 10},
        )
        master: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
            settings.redis_sentinel_master,
            db=settings.redis_db,
            password=password,
            socket_timeout=10,
            socket_connect_timeout=10,
            health_check_interval=30,
        )
        return master
    return redis.Redis.from_url(
        settings.redis_url,
        password=password,
        socket_timeout=10,
        socket_connect_timeout=10,
        health_check_interval=30,
    )


def execute(
    client: redis.Redis, commands: Sequence[Command], probe: tuple[str, str] | None = None
) -> tuple[float, str | None]:
    """Run the commands in one pipeline (no MULTI: every command is idempotent); seconds taken,
    and the value of the hash field `probe` (key, field) as it was before the commands ran."""
    if not commands and probe is None:
        return 0.0, None
    started = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    if probe is not None:
        pipe.hget(*probe)
    for cmd in commands:
        if isinstance(cmd, HSet):
            pipe.hset(cmd.key, mapping=dict(cmd.mapping))
        elif isinstance(cmd, Expire):
            pipe.expire(cmd.key, cmd.seconds)
        elif isinstance(cmd, HDel):
            pipe.hdel(cmd.key, *cmd.fields)
    results = pipe.execute()
    seconds = time.perf_counter() - started
    probed = results[0] if probe is not None else None
    return seconds, probed.decode() if isinstance(probed, bytes) else None


def read_state(
    client: redis.Redis, layout: RedisLayout
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
