"""Batch suite fixtures: one SparkSession for the whole session (start-up is slow on 2 cores),
unique Kafka topics and Delta roots per test, and settings pointing at them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from lambda_contract.settings import Settings
from pyspark.sql import SparkSession

from batch_layer.spark import build_session


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    return Settings.from_env()


@pytest.fixture(scope="session")
def spark(base_settings: Settings) -> Iterator[SparkSession]:
    session = build_session(
        replace(base_settings, spark_master="local[2]", spark_shuffle_partitions=2),
        app_name="lambda-batch-tests",
    )
    yield session
    session.stop()


@pytest.fixture
def topic(base_settings: Settings) -> Iterator[str]:
    """A fresh 3-partition topic, deleted afterwards (the shared broker stays clean)."""
    from kafka.admin import KafkaAdminClient, NewTopic

    name = f"test.batch.{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(bootstrap_servers=base_settings.kafka_bootstrap)
    admin.create_topics([NewTopic(name, num_partitions=3, replication_factor=1)])
    try:
        yield name
    finally:
        try:
            admin.delete_topics([name])
        finally:
            admin.close()


@pytest.fixture
def settings(base_settings: Settings, tmp_path: Path, topic: str) -> Settings:
    """Settings of one isolated platform: own topic, Delta root, checkpoint; no Pushgateway."""
    return replace(
        base_settings,
        topic_orders=topic,
        delta_root=str(tmp_path / "delta"),
        batch_checkpoint_dir=str(tmp_path / "checkpoints" / "bronze"),
        pushgateway_url="",
        spark_master="local[2]",
        spark_shuffle_partitions=2,
    )
