"""The demo's own data: where it lives, and how each run replaces what the last one left.

The demo works in a namespace of its own (topics `demo.orders.v1*`, Redis prefix `demo`, Delta
tables and checkpoints under <state>/demo), so it never touches what `make generate`, `make speed`
or `make batch` wrote, and it can wipe that namespace on every run: a second `make demo` tells the
same story as the first instead of adding a second copy of yesterday. Variables set by the caller
win over these defaults; whatever they name is then the demo's to replace.
"""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import cast
from urllib.parse import urlparse

import redis
from redis.exceptions import RedisClusterException

from lambda_contract import redis_clients
from lambda_contract.settings import Settings
from lambda_tools import kafka_calls
from lambda_tools.cluster import environment as cluster_environment
from lambda_tools.cluster import objectstore

SPEED_GROUP = "lambda-demo-speed"
DEMO_OBJECTS = "demo"  # cluster mode: the demo's folder of the object store's bucket


class DemoDataError(RuntimeError):
    """The demo's data cannot be replaced (storage it does not own, or a store that refused)."""


def demo_environment(environ: Mapping[str, str], cluster: bool = False) -> dict[str, str]:
    """The environment of every demo process: the caller's, plus the demo's namespace where unset.

    In cluster mode the namespace's tables and checkpoints are on the object store (under
    s3a://lambda/demo/), and a value that is only infra/cluster/cluster.env's (what `make ...
    CLUSTER=1` exports to every command) counts as unset: the demo never writes the main tables."""
    root = Settings.from_env(environ).state_path
    state = root / "demo"
    defaults = {
        "LAMBDA_TOPIC_ORDERS": "demo.orders.v1",
        "LAMBDA_TOPIC_DLQ": "demo.orders.v1.dlq",
        "LAMBDA_TOPIC_LATE": "demo.orders.v1.late",
        "LAMBDA_REDIS_PREFIX": "demo",
        "LAMBDA_DELTA_ROOT": str(state / "delta"),
        "LAMBDA_CHECKPOINT_DIR": (state / "flink" / "checkpoints").as_uri(),
        "LAMBDA_BATCH_CHECKPOINT_DIR": str(state / "spark" / "checkpoints" / "bronze"),
    }
    base = dict(environ)
    shared: dict[str, str] = {}
    if cluster:
        shared = cluster_environment(root, base={})
        base = shared | base
        store = f"{objectstore.BUCKET}/{DEMO_OBJECTS}"
        defaults |= {
            "LAMBDA_DELTA_ROOT": f"s3a://{store}/delta",
            "LAMBDA_CHECKPOINT_DIR": f"s3://{store}/flink/checkpoints",
            "LAMBDA_BATCH_CHECKPOINT_DIR": f"s3a://{store}/spark/checkpoints/bronze",
        }
    unset = {k for k in defaults if base.get(k, "") in ("", shared.get(k))}
    return defaults | {k: v for k, v in base.items() if k not in unset}


def _local_object_store(settings: Settings) -> bool:
    """LAMBDA_S3_ENDPOINT is cluster mode's own object store on this machine."""
    return settings.s3_endpoint.rstrip("/") == f"http://{objectstore.HOST}:{objectstore.S3_PORT}"


def local_dir(setting: str, url: str) -> Path:
    """A local directory named by a path or file:// URL; the demo replaces nothing remote."""
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        return Path(parsed.path if parsed.scheme else url)
    raise DemoDataError(
        f"{setting}={url!r} is not on this machine; the demo replaces its data on every run and "
        "only does that on local storage (unset it, or set DEMO_KEEP=1)"
    )


def data_dirs(settings: Settings) -> dict[str, Path | str]:
    """The demo's tables and checkpoints by the setting that names each: a directory on disk, or
    (cluster mode) a folder of the local object store's bucket, as the filer path it has there."""
    urls = {
        "LAMBDA_DELTA_ROOT": settings.delta_root_url,
        "LAMBDA_CHECKPOINT_DIR": settings.checkpoint_url,
        "LAMBDA_BATCH_CHECKPOINT_DIR": settings.bronze_checkpoint_url,
    }
    out: dict[str, Path | str] = {}
    for setting, url in urls.items():
        parsed = urlparse(url)
        if (
            parsed.scheme in ("s3", "s3a")
            and parsed.netloc == objectstore.BUCKET
            and _local_object_store(settings)
        ):
            folder = parsed.path.strip("/")
            if not folder:
                raise DemoDataError(
                    f"{setting}={url!r} is the whole bucket; the demo replaces only a folder of it"
                )
            out[setting] = f"/buckets/{objectstore.BUCKET}/{folder}"
        else:
            out[setting] = local_dir(setting, url)
    return out


def _remove(location: Path | str) -> None:
    """Delete a directory on disk, or a folder of the local object store through its filer's HTTP
    API (one recursive call; S3 itself can only delete object by object)."""
    if isinstance(location, Path):
        shutil.rmtree(location, ignore_errors=True)
        return
    url = f"http://{objectstore.HOST}:{objectstore.FILER_PORT}{location}?recursive=true&ignoreRecursiveError=true"
    request = urllib.request.Request(url, method="DELETE")
    try:
        urllib.request.urlopen(request, timeout=60).close()  # noqa: S310 (the local filer)
    except urllib.error.HTTPError as exc:
        if exc.code != 404:  # nothing there yet
            raise DemoDataError(
                f"the object store's filer refused to delete {location}: HTTP {exc.code}"
            ) from exc
    except OSError as exc:
        raise DemoDataError(f"the object store's filer did not answer to delete {location}: {exc}") from exc


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
    for location in [*dirs.values(), truth_dir(settings)]:
        _remove(location)
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
