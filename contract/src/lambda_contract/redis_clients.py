"""The one place Redis clients are made, sync (speed sink, reconciliation, tools, tests) and asyncio
(serving): whichever of the three deployments the settings name, with the password they resolve.

- LAMBDA_REDIS_CLUSTER (`make up CLUSTER=1`): a cluster-aware client. It learns the slot map from
  the seeds, sends each key to the master that owns its slot, follows MOVED after a failover, and
  splits a non-transactional pipeline per node (docs/specs/redis.md, "Redis Cluster").
- LAMBDA_REDIS_SENTINELS (production, k8s/base/redis): a client of the master the Sentinels name,
  which follows a failover.
- Otherwise the single Redis at LAMBDA_REDIS_URL.

redis-py is imported here only when a client is made, so the contract itself needs no Redis
(it is the `redis` extra of lambda-contract).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, TypeAlias

from lambda_contract.redis_layout import RedisLayout
from lambda_contract.settings import Settings, SettingsError

if TYPE_CHECKING:
    import redis
    import redis.asyncio
    import redis.asyncio.cluster
    import redis.cluster

    SyncClient: TypeAlias = redis.Redis | redis.cluster.RedisCluster
    AsyncClient: TypeAlias = redis.asyncio.Redis | redis.asyncio.cluster.RedisCluster


# A cluster client retries a command that met a dead master (refreshing the slot map each time)
# with a backoff of 0.05 s doubling to 0.5 s, then raises: redis-py's default (1 s doubling to 10 s)
# would hold the sink's tick and a serving request for up to 7 s during a failover, where the sink's
# next tick and the reader's `unavailable` answer are the retries that matter.
CLUSTER_RETRIES: Final = 3


def _seeds(settings: Settings) -> list[Any]:
    import redis.cluster

    return [redis.cluster.ClusterNode(h, p) for h, p in settings.redis_cluster]  # type: ignore[no-untyped-call]


def _primary_nodes(client: redis.cluster.RedisCluster) -> list[Any]:
    return client.get_primaries()  # type: ignore[no-untyped-call,no-any-return]


def _slot(client: redis.cluster.RedisCluster, key: str) -> int:
    return client.keyslot(key)  # type: ignore[no-untyped-call,no-any-return]


def deployment(settings: Settings) -> str:
    """`cluster`, `sentinel` or `single`: which Redis the settings name (cluster wins)."""
    if settings.redis_cluster:
        return "cluster"
    if settings.redis_sentinels:
        return "sentinel"
    return "single"


def _check_db(settings: Settings) -> None:
    if settings.redis_cluster and settings.redis_db != 0:
        raise SettingsError(
            f"LAMBDA_REDIS_URL names database {settings.redis_db}, but Redis Cluster has only database 0 "
            "(LAMBDA_REDIS_CLUSTER is set)"
        )


def _connection(password: str | None, timeout_s: float, health_check_s: int) -> dict[str, Any]:
    """What every connection to a Redis node takes, whichever client (sync or asyncio; single,
    Sentinel master or Cluster node) opens it."""
    return {
        "password": password,
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "health_check_interval": health_check_s,
    }


def _sentinel_options(connection: dict[str, Any]) -> dict[str, Any]:
    """A Sentinel's own connections: the same password and timeouts, no health check."""
    return {k: v for k, v in connection.items() if k != "health_check_interval"}


def sync_client(settings: Settings, timeout_s: float = 10.0, health_check_s: int = 30) -> SyncClient:
    """A blocking client; `timeout_s` bounds each connect and each reply."""
    import redis
    import redis.cluster
    from redis.backoff import ExponentialWithJitterBackoff
    from redis.exceptions import RedisClusterException
    from redis.retry import Retry
    from redis.sentinel import Sentinel

    _check_db(settings)
    connection = _connection(settings.resolved_redis_password(), timeout_s, health_check_s)
    if settings.redis_cluster:
        try:
            return redis.cluster.RedisCluster(
                startup_nodes=_seeds(settings),
                **connection,
                # Start and keep answering for the slots that have a master while another fails over.
                require_full_coverage=False,
                retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), CLUSTER_RETRIES),
            )
        except RedisClusterException as exc:  # it reads the slot map now; this is no RedisError
            seeds = ",".join(f"{h}:{p}" for h, p in settings.redis_cluster)
            raise redis.ConnectionError(f"Redis Cluster at {seeds} cannot be reached: {exc}") from exc
    if settings.redis_sentinels:
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            list(settings.redis_sentinels), sentinel_kwargs=_sentinel_options(connection)
        )
        master: redis.Redis = sentinel.master_for(  # type: ignore[no-untyped-call]
            settings.redis_sentinel_master, db=settings.redis_db, **connection
        )
        return master
    return redis.Redis.from_url(settings.redis_url, **connection)


def async_client(settings: Settings, timeout_s: float = 5.0, health_check_s: int = 30) -> AsyncClient:
    """An asyncio client (hiredis parser when installed); `timeout_s` as in sync_client."""
    import redis.asyncio
    import redis.asyncio.cluster
    from redis.asyncio.retry import Retry as AsyncRetry
    from redis.asyncio.sentinel import Sentinel
    from redis.backoff import ExponentialWithJitterBackoff

    _check_db(settings)
    connection = _connection(settings.resolved_redis_password(), timeout_s, health_check_s)
    if settings.redis_cluster:
        return redis.asyncio.cluster.RedisCluster(
            startup_nodes=[redis.asyncio.cluster.ClusterNode(h, p) for h, p in settings.redis_cluster],
            **connection,
            require_full_coverage=False,
            retry=AsyncRetry(ExponentialWithJitterBackoff(base=0.05, cap=0.5), CLUSTER_RETRIES),
        )
    if settings.redis_sentinels:
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            list(settings.redis_sentinels), sentinel_kwargs=_sentinel_options(connection)
        )
        master: redis.asyncio.Redis = sentinel.master_for(
            settings.redis_sentinel_master, db=settings.redis_db, **connection
        )
        return master
    return redis.asyncio.Redis.from_url(settings.redis_url, **connection)


def primaries(client: SyncClient) -> frozenset[str]:
    """The masters a cluster client knows (host:port), empty for a single or Sentinel client: a
    change means a failover, after which a promoted replica may lack the last acked writes."""
    import redis.cluster

    if isinstance(client, redis.cluster.RedisCluster):
        return frozenset(node.name for node in _primary_nodes(client))
    return frozenset()


def slot_markers(client: SyncClient, layout: RedisLayout) -> tuple[str, ...]:
    """One `layout.epoch_marker(N)` key per master of a cluster, with the lowest N whose slot that
    master owns (the same key after a failover, which moves slots wholesale); () for a single or
    Sentinel client, whose one master the meta hash already covers. A slot with no master now
    (mid-failover) is skipped: the write that fails there already forces a whole-view write."""
    import redis.cluster
    from redis.exceptions import RedisClusterException

    if not isinstance(client, redis.cluster.RedisCluster):
        return ()
    wanted = {node.name for node in _primary_nodes(client)}
    found: dict[str, str] = {}
    for n in range(16384 * 4):
        key = layout.epoch_marker(n)
        try:
            node = client.nodes_manager.get_node_from_slot(_slot(client, key))
        except RedisClusterException:
            continue
        if node.name in wanted and node.name not in found:
            found[node.name] = key
            if len(found) == len(wanted):
                break
    return tuple(sorted(found.values()))
