"""Cluster mode's Kafka alone (lambda_tools.cluster.kafka): three real KRaft brokers replicating
every topic, a partition leader SIGKILLed under an acks=all idempotent producer, and the broker
brought back by starting the cluster again.

The brokers are the shared cluster's (started here through the module when not running, as `make
up CLUSTER=1` would, on their reserved ports); the records go to a scratch topic of this test,
configured like the platform's. The end-to-end fault suite (tests/cluster) covers the jobs on top;
its story kills the partition leader's broker too, so this test's kill runs only in the long
variant (LAMBDA_CLUSTER_LONG=1), which keeps `make test` within its 40 minutes.
"""

from __future__ import annotations

import collections
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer
from kafka.admin import NewTopic

from lambda_contract.settings import Settings
from lambda_testkit.processes import wait_until
from lambda_testkit.sandbox import read_topic
from lambda_tools import cluster, kafka_calls, services
from lambda_tools.cluster import kafka

RECORDS = 4000
KILL_AT = 1000  # records sent before the leader of partition 0 is killed
RATE = 400  # records per second: the stream runs before, through and after the failover


@pytest.fixture(scope="module")
def settings() -> Settings:
    """The cluster's settings (infra/cluster/cluster.env) over this checkout's state directory."""
    settings = Settings.from_env(cluster.environment(Settings.from_env().state_path))
    started = time.monotonic()
    kafka.start(settings, settings.state_path)
    print(f"cluster Kafka ready in {time.monotonic() - started:.1f} s")
    return settings


@pytest.fixture
def topic(settings: Settings) -> Iterator[str]:
    name = f"test.kafka-cluster.{uuid.uuid4().hex[:8]}"
    wanted = NewTopic(name, 3, settings.topic_replication, topic_configs={"min.insync.replicas": "2"})
    with kafka_calls.admin_client(settings.kafka_bootstrap) as admin:
        kafka_calls.ensure_topics(admin, [wanted])
    yield name
    with kafka_calls.admin_client(settings.kafka_bootstrap) as admin:
        kafka_calls.delete_topics(admin, [name])


def _partitions(settings: Settings, topic: str) -> dict[int, dict[str, Any]]:
    """The topic's partitions as the cluster describes them now. A new admin client each time:
    kafka-python's keeps asking the node it first chose, which may be the one just killed."""

    def describe() -> dict[int, dict[str, Any]]:
        with kafka_calls.admin_client(settings.kafka_bootstrap) as admin:
            (described,) = admin.describe_topics([topic])
        return {p["partition"]: p for p in described["partitions"]}

    return kafka_calls.retry(f"describe {topic}", describe)


@pytest.mark.unit
def test_the_single_node_and_the_cluster_nodes_render_the_same_template(tmp_path: Path) -> None:
    """One template, two shapes: replication and quorum differ, nothing is left unfilled."""
    single = Settings.from_env({"LAMBDA_STATE_DIR": str(tmp_path)})
    clustered = Settings.from_env(cluster.environment(tmp_path, {}))

    def rendered(config: Path) -> dict[str, str]:
        lines = [ln for ln in config.read_text().splitlines() if "=" in ln and not ln.startswith("#")]
        assert not [ln for ln in lines if "@" in ln.split("=", 1)[1]], "unfilled placeholder"
        return dict(ln.split("=", 1) for ln in lines)

    one = rendered(services.kafka_config(single, services._single_node(single, tmp_path / "single")))
    assert (one["default.replication.factor"], one["min.insync.replicas"]) == ("1", "1")
    assert one["controller.quorum.bootstrap.servers"] == "localhost:9093"
    node = kafka.node(clustered, tmp_path, 2)
    two = rendered(services.kafka_config(clustered, node, kafka.FAILOVER))
    assert two["node.id"] == "2" and two["listeners"].endswith("127.0.0.1:19193")
    assert two["controller.quorum.bootstrap.servers"] == "127.0.0.1:19192,127.0.0.1:19193,127.0.0.1:19194"
    for key in (
        "default.replication.factor",
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
    ):
        assert two[key] == "3", key
    assert two["min.insync.replicas"] == two["transaction.state.log.min.isr"] == "2"
    assert two["unclean.leader.election.enable"] == "false"
    assert two["log.dirs"] == str(tmp_path / "cluster" / "kafka" / "kafka-2" / "data")
    assert set(one) | set(kafka.FAILOVER) == set(two)


@pytest.mark.unit
def test_the_cluster_identity_is_drawn_once(tmp_path: Path) -> None:
    first = kafka.identity(tmp_path)
    assert kafka.identity(tmp_path) == first
    voters = first[1].split(",")
    assert [v.split("@")[0] for v in voters] == ["1", "2", "3"]
    assert [v.split(":")[1] for v in voters] == ["19192", "19193", "19194"]
    assert kafka.identity(tmp_path / "other") != first


@pytest.mark.unit
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"LAMBDA_TOPIC_REPLICATION": "4"}, "LAMBDA_TOPIC_REPLICATION=4 but cluster mode has 3 brokers"),
        ({"LAMBDA_KAFKA_BOOTSTRAP": "localhost:9092"}, "is not the cluster's brokers"),
    ],
)
def test_start_refuses_settings_the_cluster_cannot_honour(
    tmp_path: Path, override: dict[str, str], message: str
) -> None:
    settings = Settings.from_env(cluster.environment(tmp_path, {}) | override)
    with pytest.raises(services.ServiceError, match=message):
        kafka.start(settings, tmp_path)
    assert not (tmp_path / "pids").exists(), "nothing may start"


@pytest.mark.integration
def test_three_brokers_and_the_platform_topics_replicated_three_times_min_isr_two(settings: Settings) -> None:
    assert settings.topic_replication == 3 and settings.topic_min_insync == 2
    assert kafka.brokers() == {1, 2, 3}
    names = [settings.topic_orders, settings.topic_dlq, settings.topic_late]
    for name in names:
        parts = _partitions(settings, name)
        assert parts, name
        assert {len(p["replicas"]) for p in parts.values()} == {3}, (name, parts)
    assert len(_partitions(settings, settings.topic_orders)) == settings.topic_partitions
    with kafka_calls.admin_client(settings.kafka_bootstrap) as admin:
        own = kafka_calls.topic_settings(admin, names)
    assert {name: own[name].get("min.insync.replicas") for name in names} == dict.fromkeys(names, "2")


@pytest.mark.integration
@pytest.mark.skipif(
    os.environ.get("LAMBDA_CLUSTER_LONG", "") in ("", "0"),
    reason="the long variant (LAMBDA_CLUSTER_LONG=1): the cluster story kills the leader's broker too",
)
def test_killing_the_leader_loses_and_duplicates_nothing_and_the_broker_rejoins(
    settings: Settings, topic: str
) -> None:
    producer = KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        delivery_timeout_ms=60_000,
    )
    leader = int(_partitions(settings, topic)[0]["leader"])
    victim = kafka.name(leader)
    pid = services.running_pid(settings.state_path, victim)
    assert pid is not None, f"{victim} leads partition 0 but has no running pid"
    futures = []
    started = time.monotonic()
    killed_at = 0.0
    try:
        try:
            for i in range(RECORDS):
                if i == KILL_AT:
                    os.kill(pid, signal.SIGKILL)
                    killed_at = time.monotonic()
                futures.append(producer.send(topic, value=f"{i}".encode(), partition=i % 3))
                time.sleep(max(0.0, started + (i + 1) / RATE - time.monotonic()))
            producer.flush(timeout=90)
            offsets = [f.get(timeout=1) for f in futures]  # raises if any record was not acknowledged
        finally:
            producer.close(timeout=10)
        produced_s = time.monotonic() - killed_at
        assert _partitions(settings, topic)[0]["leader"] != leader, "partition 0 kept its dead leader"
        assert len(offsets) == RECORDS

        read = read_topic(settings.kafka_bootstrap, topic, committed=True)
        values = collections.Counter(r.value for r in read)
        expected = collections.Counter(f"{i}".encode() for i in range(RECORDS))
        assert values == expected, (
            f"lost {len(expected - values)}, duplicated {sum((values - expected).values())} "
            f"(first lost: {sorted(expected - values)[:5]})"
        )
    finally:
        restarted = time.monotonic()
        kafka.start(settings, settings.state_path)  # starts only the killed node (also for the others)
    assert services.running_pid(settings.state_path, victim) not in (None, pid)
    rejoined = wait_until(lambda: leader in _partitions(settings, topic)[0]["isr"], 60)
    assert rejoined, _partitions(settings, topic)
    print(
        f"{victim} (leader of partition 0) SIGKILLed: {RECORDS - KILL_AT} records acknowledged in "
        f"{produced_s:.1f} s after the kill, exactly once; back in the ISR {time.monotonic() - restarted:.1f} s "
        "after its restart began"
    )
