"""Kafka admin and consumer calls of the tools, retried through a broker's transient states.

A broker that has just started, or has never served a consumer group, answers some requests with
errors that kafka-python marks retriable (coordinator not available, leader not available, not
controller, request timed out) until it has settled. Every admin and consumer call the demo, the
readiness checks and the generator make goes through `retry`, which waits them out with a bounded
backoff and then names what it waited for and how long. An unreachable broker is not transient:
it fails at once, with the address.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import TypeVar

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType, NewTopic
from kafka.errors import (
    GroupIdNotFoundError,
    KafkaError,
    NoBrokersAvailable,
    NoError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
    for_code,
)

from lambda_contract.settings import Settings
from lambda_contract.topics import topic_configs

T = TypeVar("T")
C = TypeVar("C", KafkaAdminClient, KafkaConsumer)

DEFAULT_BOUND_S = 60.0
NEW_TOPIC_S = 5.0
DYNAMIC_TOPIC_CONFIG = 1  # DescribeConfigs' config_source of a topic's own setting


class KafkaUnavailableError(RuntimeError):
    """Kafka did not answer a call within the bound; the message names the call and the wait."""


class StillPendingError(RuntimeError):
    """A change the broker has accepted but not finished (a topic still being deleted): poll again."""


def retriable(exc: BaseException) -> bool:
    """A broker state that passes by itself (kafka-python's own `retriable` flag), not an absent broker."""
    if isinstance(exc, StillPendingError):
        return True
    return isinstance(exc, KafkaError) and exc.retriable and not isinstance(exc, NoBrokersAvailable)


def retry(
    what: str,
    call: Callable[[], T],
    *,
    bound_s: float = DEFAULT_BOUND_S,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """`call()`, again after each retriable error, with a doubling pause (0.1 s to 2 s) until `bound_s`."""
    started = clock()
    delay = 0.1
    while True:
        try:
            return call()
        except (KafkaError, StillPendingError) as exc:
            waited = clock() - started
            if not retriable(exc):
                raise
            if waited + delay > bound_s:
                raise KafkaUnavailableError(
                    f"Kafka did not {what} within {bound_s:.0f} s "
                    f"(waited {waited:.1f} s; last answer: {type(exc).__name__}: {exc})"
                ) from exc
            sleep(delay)
            delay = min(delay * 2, 2.0)


def admin_client(bootstrap: str, bound_s: float = DEFAULT_BOUND_S) -> contextlib.closing[KafkaAdminClient]:
    """An admin client, closed when the `with` block ends."""
    return _connected("an admin", KafkaAdminClient, bootstrap, bound_s)


def consumer_client(bootstrap: str, bound_s: float = DEFAULT_BOUND_S) -> contextlib.closing[KafkaConsumer]:
    """A consumer in no group, closed when the `with` block ends."""
    return _connected("a consumer", KafkaConsumer, bootstrap, bound_s)


def _connected(what: str, client: Callable[..., C], bootstrap: str, bound_s: float) -> contextlib.closing[C]:
    return contextlib.closing(
        retry(
            f"accept {what} connection at {bootstrap}",
            lambda: client(bootstrap_servers=bootstrap, request_timeout_ms=10_000),
            bound_s=bound_s,
        )
    )


def partitions(consumer: KafkaConsumer, topic: str, bound_s: float = DEFAULT_BOUND_S) -> list[TopicPartition]:
    """The topic's partitions; empty when the topic does not exist. A topic created a moment ago
    can be unknown to the broker's metadata for a moment, so absence is believed after NEW_TOPIC_S."""

    def lookup() -> set[int]:
        found = consumer.partitions_for_topic(topic)
        if not found:
            raise _TopicNotListedError(f"{topic!r} not in the broker's metadata")
        return set(found)

    try:
        found = retry(f"list the partitions of {topic!r}", lookup, bound_s=min(bound_s, NEW_TOPIC_S))
    except KafkaUnavailableError as exc:
        if isinstance(exc.__cause__, _TopicNotListedError):
            return []
        raise
    return [TopicPartition(topic, p) for p in sorted(found)]


class _TopicNotListedError(StillPendingError):
    pass


def platform_topics(settings: Settings) -> list[NewTopic]:
    """The three topics the platform reads and writes, with their configuration from
    lambda_contract.topics (append-time timestamps, retention), replicated LAMBDA_TOPIC_REPLICATION
    times and refusing an acks=all write held by fewer than LAMBDA_TOPIC_MIN_INSYNC replicas
    (one replica on the local broker; 3 and 2 in cluster mode, docs/cluster.md)."""
    configs = topic_configs(settings)
    insync = {"min.insync.replicas": str(settings.topic_min_insync)}
    counts = {settings.topic_orders: settings.topic_partitions, settings.topic_dlq: 1, settings.topic_late: 1}
    return [
        NewTopic(name, count, settings.topic_replication, topic_configs=configs[name] | insync)
        for name, count in counts.items()
    ]


def ensure_topics(admin: KafkaAdminClient, wanted: list[NewTopic], bound_s: float = DEFAULT_BOUND_S) -> None:
    """Create the topics that are missing and wait until the broker lists them; give topics that
    already exist the configuration wanted, so a checkout's new topic settings reach a broker that
    `make up` started before (idempotent)."""

    def create_missing() -> None:
        missing = [t for t in wanted if t.name not in set(admin.list_topics())]
        if not missing:
            return
        with contextlib.suppress(TopicAlreadyExistsError):  # created concurrently, or still being deleted
            admin.create_topics(missing)
        absent = [t.name for t in missing if t.name not in set(admin.list_topics())]
        if absent:
            raise StillPendingError(f"{', '.join(absent)} not listed yet")

    retry("create the topics " + ", ".join(t.name for t in wanted), create_missing, bound_s=bound_s)
    configured = [t for t in wanted if t.topic_configs]
    if configured:
        retry(
            "configure the topics " + ", ".join(t.name for t in configured),
            lambda: _configure(admin, configured),
            bound_s=bound_s,
        )


def topic_settings(admin: KafkaAdminClient, names: list[str]) -> dict[str, dict[str, str]]:
    """Each topic's own settings (not the broker defaults it inherits)."""
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
    out: dict[str, dict[str, str]] = {}
    for response in admin.describe_configs(resources):
        for error_code, error_message, _type, name, entries in response.resources:
            if error_code:
                raise for_code(error_code)(f"describing topic {name!r}: {error_message}")
            out[name] = {e[0]: e[1] for e in entries if e[3] == DYNAMIC_TOPIC_CONFIG}
    return out


def _configure(admin: KafkaAdminClient, wanted: list[NewTopic]) -> None:
    """Set the wanted settings where a topic differs, then have `retry` call again until the broker
    shows them (a describe right after a change may not). AlterConfigs replaces a topic's whole
    set of own settings, so the ones it has beyond those wanted are sent along and kept."""
    own = topic_settings(admin, [t.name for t in wanted])
    changes = [
        ConfigResource(ConfigResourceType.TOPIC, t.name, configs=own.get(t.name, {}) | dict(t.topic_configs))
        for t in wanted
        if any(own.get(t.name, {}).get(k) != v for k, v in t.topic_configs.items())
    ]
    if not changes:
        return
    response = admin.alter_configs(changes)
    for error_code, error_message, _type, name in response.resources:
        if error_code:
            raise for_code(error_code)(f"configuring topic {name!r}: {error_message}")
    raise StillPendingError(f"{', '.join(str(c.name) for c in changes)} not showing the new settings yet")


def delete_topics(admin: KafkaAdminClient, topics: list[str], bound_s: float = DEFAULT_BOUND_S) -> None:
    """Delete the topics that exist and wait until the broker no longer lists them."""

    def delete_present() -> None:
        present = [t for t in topics if t in set(admin.list_topics())]
        if present:
            with contextlib.suppress(UnknownTopicOrPartitionError):
                admin.delete_topics(present)
            raise StillPendingError(f"{', '.join(present)} still listed")

    retry("delete the topics " + ", ".join(topics), delete_present, bound_s=bound_s)


def delete_group(admin: KafkaAdminClient, group: str, bound_s: float = DEFAULT_BOUND_S) -> None:
    """Forget a consumer group's committed offsets (a group that does not exist is fine)."""

    def delete() -> None:
        for _, error in admin.delete_consumer_groups([group]):
            if error not in (NoError, GroupIdNotFoundError):
                raise error(f"deleting consumer group {group!r}")

    retry(f"delete the consumer group {group!r}", delete, bound_s=bound_s)


def group_lag(bootstrap: str, group: str, topic: str, bound_s: float = DEFAULT_BOUND_S) -> int | None:
    """Records of `topic` the group has not committed yet; None while it has committed nothing for
    some partition (a group the broker has never seen is such a group, not an error)."""
    with admin_client(bootstrap, bound_s) as admin, consumer_client(bootstrap, bound_s) as consumer:
        committed = retry(
            f"report the committed offsets of group {group!r}",
            lambda: admin.list_consumer_group_offsets(group),
            bound_s=bound_s,
        )
        parts = partitions(consumer, topic, bound_s)
        if not parts or not all(tp in committed for tp in parts):
            return None
        ends = retry(
            f"report the end offsets of {topic!r}", lambda: consumer.end_offsets(parts), bound_s=bound_s
        )
        return sum(max(0, int(ends[tp]) - int(committed[tp].offset)) for tp in parts)
