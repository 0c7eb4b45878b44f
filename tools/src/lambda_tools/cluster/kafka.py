"""Kafka in cluster mode: three combined KRaft nodes, kafka-1..3, replicating every topic.

Each node is a broker and one of three controller voters, rendered from the same
infra/kafka/server.properties as the single node of `make up` (services.kafka_config), with
replication LAMBDA_TOPIC_REPLICATION and min.insync.replicas LAMBDA_TOPIC_MIN_INSYNC for the
internal topics too, so an acks=all write survives the loss of any one node. The cluster id and
the voters' directory ids are drawn once and kept in <state>/cluster/kafka/identity.properties:
every node is formatted with them, and a node killed and started again rejoins with its data.
Each broker carries the Prometheus JMX exporter (infra/kafka/jmx-exporter.yml) on 19300+N.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from kafka.errors import KafkaError

from lambda_contract.settings import Settings
from lambda_tools import services
from lambda_tools.services import KafkaNode, ServiceError

HOST: Final = "127.0.0.1"
NODES: Final = (1, 2, 3)
BROKER_PORT: Final = 19091  # + N
CONTROLLER_PORT: Final = 19191  # + N
EXPORTER_PORT: Final = 19300  # + N
HEAP: Final = ("-Xms128m", "-Xmx512m")
# A SIGKILLed broker's partitions get new leaders once the controller stops hearing from it:
# after 4 s here instead of Kafka's 9 s (heartbeats every second on one machine cost nothing).
FAILOVER: Final = {"broker.session.timeout.ms": "4000", "broker.heartbeat.interval.ms": "1000"}
READY_TIMEOUT_S: Final = 180.0  # three JVMs starting at once on a shared 2-core machine


def name(node_id: int) -> str:
    return f"kafka-{node_id}"


def bootstrap() -> str:
    return ",".join(f"{HOST}:{BROKER_PORT + n}" for n in NODES)


def home(state: Path) -> Path:
    return state / "cluster" / "kafka"


def node(settings: Settings, state: Path, node_id: int) -> KafkaNode:
    return KafkaNode(
        node_id=node_id,
        host=HOST,
        port=BROKER_PORT + node_id,
        controller_port=CONTROLLER_PORT + node_id,
        quorum=",".join(f"{HOST}:{CONTROLLER_PORT + n}" for n in NODES),
        replication=settings.topic_replication,
        min_insync=settings.topic_min_insync,
        home=home(state) / name(node_id),
    )


def identity(state: Path) -> tuple[str, str]:
    """The cluster id and the initial voters (id@host:port:directory-id), drawn on the first start
    and kept: every node must be formatted with the same ones."""
    path = home(state) / "identity.properties"
    if not path.exists():
        voters = ",".join(f"{n}@{HOST}:{CONTROLLER_PORT + n}:{services.kafka_uuid()}" for n in NODES)
        path.parent.mkdir(parents=True, exist_ok=True)
        staged = path.with_suffix(".tmp")
        staged.write_text(f"cluster.id={services.kafka_uuid()}\ninitial.controllers={voters}\n")
        staged.replace(path)
    values = dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return values["cluster.id"], values["initial.controllers"]


def exporter_agent(settings: Settings, node_id: int) -> tuple[str, ...]:
    """The JMX exporter javaagent serving the broker's metrics on 127.0.0.1:19300+N."""
    jars = sorted(
        (settings.path(settings.jars_dir) / "kafka-exporter").glob("jmx_prometheus_javaagent-*.jar")
    )
    if not jars:
        raise ServiceError(
            f"the Prometheus JMX exporter jar is missing in {settings.path(settings.jars_dir) / 'kafka-exporter'}; "
            "run `make setup`"
        )
    rules = services.INFRA / "kafka" / "jmx-exporter.yml"
    return (f"-javaagent:{jars[-1]}={HOST}:{EXPORTER_PORT + node_id}:{rules}",)


def start(settings: Settings, state: Path) -> None:
    """Start the nodes that are not running, wait until every broker is in the cluster's
    metadata, then create the platform's topics (idempotent)."""
    if settings.topic_replication > len(NODES):
        raise ServiceError(
            f"LAMBDA_TOPIC_REPLICATION={settings.topic_replication} but cluster mode has {len(NODES)} brokers"
        )
    if set(settings.kafka_bootstrap.split(",")) != set(bootstrap().split(",")):
        raise ServiceError(
            f"LAMBDA_KAFKA_BOOTSTRAP={settings.kafka_bootstrap} is not the cluster's brokers {bootstrap()} "
            "(infra/cluster/cluster.env): the topics would be created elsewhere"
        )
    cluster_id, voters = identity(state)
    for node_id in NODES:
        kafka = node(settings, state, node_id)
        if services.running_pid(state, name(node_id)) is not None:
            continue
        ports = (kafka.port, kafka.controller_port, EXPORTER_PORT + node_id)
        # A node stopped a moment ago may still hold its ports while it exits.
        deadline = time.monotonic() + 10
        while (taken := [p for p in ports if services.port_open(p)]) and time.monotonic() < deadline:
            time.sleep(0.5)
        if taken:
            raise ServiceError(f"port {taken[0]} is taken by a process this project did not start")
        config = services.kafka_config(settings, kafka, FAILOVER)
        services.format_kafka_storage(settings, kafka, config, cluster_id, voters)
        java = services.kafka_java(settings, kafka, HEAP, exporter_agent(settings, node_id))
        services.spawn(state, name(node_id), [*java, "kafka.Kafka", str(config)], log(state, node_id))
    for node_id in NODES:
        services.wait_ready(
            f"{name(node_id)} (in the cluster's metadata)",
            _listed(node_id),
            log(state, node_id),
            READY_TIMEOUT_S,
        )
    services.create_topics(settings)


def log(state: Path, node_id: int) -> Path:
    return state / "logs" / f"{name(node_id)}.log"


def _listed(node_id: int) -> Callable[[], bool]:
    return lambda: node_id in brokers()


def brokers() -> set[int]:
    """The ids of the brokers the cluster's metadata lists as alive (empty if none answers)."""
    from kafka import KafkaAdminClient

    try:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap(), request_timeout_ms=3000)
    except (KafkaError, OSError, ValueError):
        return set()
    try:
        return {int(b["node_id"]) for b in admin.describe_cluster()["brokers"]}
    except KafkaError:
        return set()
    finally:
        admin.close()
