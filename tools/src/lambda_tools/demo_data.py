"""The demo's own data: where it lives, and how each run replaces what the last one left.

The demo works in a namespace of its own (topics `demo.orders.v1*`, Redis prefix `demo`, Delta
tables and checkpoints under <state>/demo), so it never touches what `make generate`, `make speed`
or `make batch` wrote, and it can wipe that namespace on every run: a second `make demo` tells the
same story as the first instead of adding a second copy of yesterday. Variables set by the caller
win over these defaults; whatever they name is then the demo's to replace.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import cast
from urllib.parse import urlparse

import redis
from redis.exceptions import RedisClusterException

from lambda_contract import redis_clients
from lambda_contract.settings import Settings
from lambda_tools import kafka_calls

SPEED_GROUP = "lambda-demo-speed"


class DemoDataError(RuntimeError):
    """The demo's data cannot be replaced (storage it does not own, or a store that refused)."""


def demo_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment of every demo process: the caller's, plus the demo's namespace where unset."""
    state = Settings.from_env(environ).state_path / "demo"
    defaults = {
        "LAMBDA_TOPIC_ORDERS": "demo.orders.v1",
        "LAMBDA_TOPIC_DLQ": "demo.orders.v1.dlq",
        "LAMBDA_TOPIC_LATE": "demo.orders.v1.late",
        "LAMBDA_REDIS_PREFIX": "demo",
        "LAMBDA_DELTA_ROOT": str(state / "delta"),
        "LAMBDA_CHECKPOINT_DIR": (state / "flink" / "checkpoints").as_uri(),
        "LAMBDA_BATCH_CHECKPOINT_DIR": str(state / "spark" / "checkpoints" / "bronze"),
    }
    return defaults | {k: v for k, v in environ.items() if v != "" or k not in defaults}


def local_dir(setting: str, url: str) -> Path:
    """A local directory named by a path or file:// URL; the demo replaces nothing remote."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        return Path(parsed.path if parsed.scheme else url)
    raise DemoDataError(
        f"{setting}={url!r} is not on this machine; the demo replaces its data on every run and "
        "only does that on local storage (unset it, or set DEMO_KEEP=1)"
    )


def data_dirs(settings: Settings) -> dict[str, Path]:
    """The demo's tables and checkpoints on disk, by the setting that names each."""
    return {
        "LAMBDA_DELTA_ROOT": local_dir("LAMBDA_DELTA_ROOT", settings.delta_root_url),
        "LAMBDA_CHECKPOINT_DIR": local_dir("LAMBDA_CHECKPOINT_DIR", settings.checkpoint_url),
        "LAMBDA_BATCH_CHECKPOINT_DIR": local_dir(
            "LAMBDA_BATCH_CHECKPOINT_DIR", settings.bronze_checkpoint_url
        ),
    }


def replace(settings: Settings) -> list[str]:
    """Empty the demo's topics, consumer group, Redis keys, Delta tables and checkpoints.

    Returns what it cleared, for the demo to say. Topics are deleted and created again (empty, with
    fresh offsets); the group's committed offsets go with them, so the speed job's lag is measured
    against this run's records only."""
    dirs = data_dirs(settings)  # refuse remote storage before anything is deleted
    wanted = kafka_calls.platform_topics(settings)
    topics = [t.name for t in wanted]
    with kafka_calls.admin_client(settings.kafka_bootstrap) as admin:
        kafka_calls.delete_group(admin, SPEED_GROUP)
        kafka_calls.delete_topics(admin, topics)
        kafka_calls.ensure_topics(admin, wanted)
    keys = _delete_redis_keys(settings)
    for path in [*dirs.values(), truth_dir(settings)]:
        shutil.rmtree(path, ignore_errors=True)
    return [
        "topics " + ", ".join(topics),
        f"consumer group {SPEED_GROUP}",
        f"{keys} Redis keys under {settings.redis_prefix}:",
        "Delta tables, checkpoints and ground truth under " + ", ".join(str(p) for p in dirs.values()),
    ]


def truth_dir(settings: Settings) -> Path:
    """Where the demo's generator runs write their ground truth (one file per run, replaced)."""
    return settings.state_path / "demo" / "generator"


def _delete_redis_keys(settings: Settings) -> int:
    client = redis_clients.sync_client(settings)
    try:
        deleted = 0
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{settings.redis_prefix}:*", count=1000):
            batch.append(key)
            if len(batch) == 1000:
                deleted += cast(int, client.unlink(*batch))
                batch.clear()
        if batch:
            deleted += cast(int, client.unlink(*batch))
        return deleted
    except (redis.RedisError, RedisClusterException) as exc:
        raise DemoDataError(f"could not clear the demo's Redis keys at {settings.redis_url}: {exc}") from exc
    finally:
        client.close()
