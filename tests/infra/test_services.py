"""The local services `make up` starts are the real servers, ready and usable.

Requires `make up` (as `make test` does). Nothing here is mocked.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic

from lambda_contract.settings import Settings
from lambda_contract.topics import topic_configs
from lambda_testkit.processes import wait_until
from lambda_tools import kafka_calls, services

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings.from_env()


@pytest.fixture
def topic(settings: Settings) -> Iterator[str]:
    name = f"test.infra.{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    admin.create_topics([NewTopic(name, 3, 1, topic_configs={"retention.ms": "-1"})])
    yield name
    admin.delete_topics([name])
    admin.close()


def test_every_service_was_started_by_make_up(settings: Settings) -> None:
    assert all(pid is not None for pid in services.status(settings).values()), services.status(settings)


def test_the_platform_topics_exist_with_their_partitions(settings: Settings) -> None:
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    try:
        assert len(consumer.partitions_for_topic(settings.topic_orders) or ()) == settings.topic_partitions
        assert consumer.partitions_for_topic(settings.topic_dlq)
        assert consumer.partitions_for_topic(settings.topic_late)
    finally:
        consumer.close()


def test_the_platform_topics_have_the_products_configuration(settings: Settings) -> None:
    """Append-time timestamps and retention as lambda_contract.topics says (docs/specs/kafka.md)."""
    wanted = topic_configs(settings)
    with kafka_calls.admin_client(settings.kafka_bootstrap) as admin:
        own = kafka_calls.topic_settings(admin, list(wanted))
    assert {name: {k: own[name].get(k) for k in config} for name, config in wanted.items()} == wanted


def test_ensure_topics_gives_an_existing_topic_the_wanted_configuration(
    settings: Settings, topic: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A broker `make up` started before a checkout changed the topic settings gets them on the next
    `make up`; settings the topic has beyond those wanted stay, and a topic that has them is left alone."""
    wanted = {"message.timestamp.type": "LogAppendTime", "cleanup.policy": "delete"}
    with kafka_calls.admin_client(settings.kafka_bootstrap) as admin:
        # A topic of some age: its own setting is visible (right after a change it may not be yet).
        assert wait_until(
            lambda: kafka_calls.topic_settings(admin, [topic])[topic] == {"retention.ms": "-1"}, 30
        )
        kafka_calls.ensure_topics(admin, [NewTopic(topic, 3, 1, topic_configs=wanted)])
        assert kafka_calls.topic_settings(admin, [topic])[topic] == {"retention.ms": "-1"} | wanted
        altered: list[object] = []
        monkeypatch.setattr(admin, "alter_configs", altered.append)
        kafka_calls.ensure_topics(admin, [NewTopic(topic, 3, 1, topic_configs=wanted)])
        assert altered == []


def test_produce_and_consume_through_the_real_broker(settings: Settings, topic: str) -> None:
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True)
    sent = {f"k{i}".encode(): f'{{"n": {i}}}'.encode() for i in range(300)}
    for key, value in sent.items():
        producer.send(topic, key=key, value=value)
    producer.flush()
    producer.close()
    consumer = KafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    parts = [TopicPartition(topic, p) for p in range(3)]
    consumer.assign(parts)
    consumer.seek_to_beginning(*parts)
    got: dict[bytes, bytes] = {}
    partitions: set[int] = set()
    deadline = time.monotonic() + 30
    while len(got) < len(sent) and time.monotonic() < deadline:
        for tp, records in consumer.poll(timeout_ms=500).items():
            got.update((r.key, r.value) for r in records)
            partitions.add(tp.partition)
    consumer.close()
    assert got == sent
    # keys are spread over the partitions by the default partitioner
    assert partitions == {0, 1, 2}


def test_redis_requires_the_password_and_round_trips(settings: Settings) -> None:
    with pytest.raises(redis.AuthenticationError):
        redis.Redis.from_url(settings.redis_url).ping()
    client = redis.Redis.from_url(settings.redis_url, password=settings.resolved_redis_password())
    key = f"test:infra:{uuid.uuid4().hex}"
    try:
        client.hset(key, mapping={"eu-west|books|EUR": "12.3400|1|0|1"})
        assert client.hgetall(key) == {b"eu-west|books|EUR": b"12.3400|1|0|1"}
    finally:
        client.delete(key)


def _prom(path: str) -> Any:  # Prometheus's JSON answer, read by the tests' own indexing
    with urllib.request.urlopen(f"http://127.0.0.1:9090{path}", timeout=5) as resp:
        return json.loads(resp.read())


def test_prometheus_is_ready_and_scrapes_the_pushgateway() -> None:
    job = f"infra_test_{uuid.uuid4().hex[:8]}"
    body = b"# TYPE lambda_infra_probe gauge\nlambda_infra_probe 42\n"
    req = urllib.request.Request(f"http://127.0.0.1:9091/metrics/job/{job}", data=body, method="PUT")
    urllib.request.urlopen(req, timeout=5).close()
    try:
        query = urllib.parse.quote(f'lambda_infra_probe{{job="{job}"}}')
        result: list[Any] = []

        def scraped() -> bool:
            result[:] = _prom(f"/api/v1/query?query={query}")["data"]["result"]
            return bool(result)

        assert wait_until(scraped, 30, interval=1), "Prometheus did not scrape the pushed series within 30 s"
        assert result[0]["value"][1] == "42"
    finally:
        urllib.request.urlopen(
            urllib.request.Request(f"http://127.0.0.1:9091/metrics/job/{job}", method="DELETE"), timeout=5
        ).close()
    targets = _prom("/api/v1/targets")["data"]["activeTargets"]
    jobs = {t["labels"]["job"] for t in targets}
    assert {"prometheus", "pushgateway", "speed", "serving"} <= jobs


@pytest.mark.unit
def test_cluster_ids_never_start_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    """`kafka-storage format -t -xyz` reads a leading dash as an option: such ids are skipped."""
    dash_first = uuid.UUID(bytes=b"\xf8" + bytes(15))  # URL-safe base64 of 0xf8... begins with '-'
    draws = iter([dash_first, uuid.UUID(int=1)])
    monkeypatch.setattr(uuid, "uuid4", lambda: next(draws))  # the module services draws from
    cluster_id = services.kafka_uuid()
    assert cluster_id == "AAAAAAAAAAAAAAAAAAAAAQ" and len(cluster_id) == 22


@pytest.mark.unit
def test_a_process_whose_main_thread_exited_is_alive_until_its_last_thread_ends() -> None:
    """A JVM running its shutdown hooks shows its leader thread as a zombie while it still holds its
    ports; `stop_pid` and `up` must wait for it, and a real zombie still counts as dead."""
    code = (
        "import ctypes, threading, time\n"
        "threading.Thread(target=time.sleep, args=(2,)).start()\n"
        "ctypes.CDLL(None).pthread_exit(None)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:

        def leader() -> str:
            return Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]

        assert wait_until(lambda: leader() == "Z", 10, 0.02), "the main thread did not exit"
        assert services._alive(proc.pid)
        assert wait_until(lambda: not services._alive(proc.pid), 10, 0.05)  # the other thread ended
        assert leader() == "Z", "still a zombie until reaped: that is dead"
    finally:
        proc.wait(10)
    assert not services._alive(proc.pid)
