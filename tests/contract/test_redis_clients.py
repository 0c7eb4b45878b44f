"""lambda_contract.redis_clients: which client the settings give, with which password and
timeouts. No server is reached (a sync cluster client reads the slot map when it is made: that
one is tested on a real cluster in tests/speed/test_redis_cluster_sink.py)."""

from __future__ import annotations

import pytest
import redis
import redis.asyncio
import redis.asyncio.cluster
from redis.asyncio.sentinel import SentinelConnectionPool as AsyncSentinelPool
from redis.sentinel import SentinelConnectionPool

from lambda_contract import redis_clients
from lambda_contract.redis_layout import RedisLayout
from lambda_contract.settings import Settings, SettingsError

pytestmark = pytest.mark.unit

PASSWORD = "a-password-0123456789"
CLUSTER = "127.0.0.1:17001,127.0.0.1:17002"
SENTINELS = "10.0.0.1:26379,10.0.0.2:26379"


def settings(**env: str) -> Settings:
    return Settings.from_env({"LAMBDA_REDIS_PASSWORD": PASSWORD, **env})


def test_the_deployment_is_cluster_then_sentinel_then_single() -> None:
    assert redis_clients.deployment(settings()) == "single"
    assert redis_clients.deployment(settings(LAMBDA_REDIS_SENTINELS=SENTINELS)) == "sentinel"
    both = settings(LAMBDA_REDIS_SENTINELS=SENTINELS, LAMBDA_REDIS_CLUSTER=CLUSTER)
    assert redis_clients.deployment(both) == "cluster"


def test_a_single_redis_gets_the_url_the_password_and_the_timeout() -> None:
    s = settings(LAMBDA_REDIS_URL="redis://cache.example:6390/3")
    client = redis_clients.sync_client(s, timeout_s=7)
    assert isinstance(client, redis.Redis)
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["host"], kwargs["port"], kwargs["db"]) == ("cache.example", 6390, 3)
    assert kwargs["password"] == PASSWORD and kwargs["socket_timeout"] == 7
    aclient = redis_clients.async_client(s, timeout_s=4)
    assert isinstance(aclient, redis.asyncio.Redis)
    akwargs = aclient.connection_pool.connection_kwargs
    assert akwargs["password"] == PASSWORD and akwargs["socket_timeout"] == 4 and akwargs["db"] == 3


def test_a_sentinel_master_is_asked_of_the_sentinels_with_the_password() -> None:
    s = settings(LAMBDA_REDIS_SENTINELS=SENTINELS, LAMBDA_REDIS_SENTINEL_MASTER="views")
    client = redis_clients.sync_client(s)
    assert isinstance(client, redis.Redis)
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "views"
    assert pool.connection_kwargs["password"] == PASSWORD
    sentinel = pool.sentinel_manager.sentinels[0].connection_pool.connection_kwargs
    assert (sentinel["host"], sentinel["port"], sentinel["password"]) == ("10.0.0.1", 26379, PASSWORD)
    aclient = redis_clients.async_client(s)
    assert isinstance(aclient, redis.asyncio.Redis)
    assert isinstance(aclient.connection_pool, AsyncSentinelPool)
    assert aclient.connection_pool.connection_kwargs["password"] == PASSWORD


def test_an_async_cluster_client_starts_from_the_seeds_with_short_retries() -> None:
    client = redis_clients.async_client(settings(LAMBDA_REDIS_CLUSTER=CLUSTER), timeout_s=3)
    assert isinstance(client, redis.asyncio.cluster.RedisCluster)
    seeds = sorted((n.host, n.port) for n in client.nodes_manager.startup_nodes.values())
    assert seeds == [("127.0.0.1", 17001), ("127.0.0.1", 17002)]
    assert client.connection_kwargs["password"] == PASSWORD
    assert client.connection_kwargs["socket_timeout"] == 3
    assert client.retry.get_retries() == redis_clients.CLUSTER_RETRIES
    assert client.retry._backoff.compute(1) <= 0.5  # not redis-py's default of 1 s and more


def test_redis_cluster_has_only_database_zero() -> None:
    s = settings(LAMBDA_REDIS_CLUSTER=CLUSTER, LAMBDA_REDIS_URL="redis://localhost:6379/2")
    for make in (redis_clients.sync_client, redis_clients.async_client):
        with pytest.raises(SettingsError, match="database 2"):
            make(s)


def test_without_a_cluster_there_are_no_markers_and_no_masters_to_follow() -> None:
    client = redis_clients.sync_client(settings())
    assert redis_clients.slot_markers(client, RedisLayout("p")) == ()
    assert redis_clients.primaries(client) == frozenset()


def test_an_epoch_marker_carries_a_hash_tag() -> None:
    assert RedisLayout("p").epoch_marker(12) == "p:speed:epoch:{12}"


def test_an_unreachable_cluster_is_a_redis_connection_error_naming_the_seeds() -> None:
    """Callers catch RedisError (the reconciliation CLI, the demo): redis-py's own cluster error is not one."""
    s = settings(LAMBDA_REDIS_CLUSTER="127.0.0.1:1")
    with pytest.raises(redis.ConnectionError, match=r"Redis Cluster at 127\.0\.0\.1:1 cannot be reached"):
        redis_clients.sync_client(s, timeout_s=1)
