"""Batch suite fixtures: one SparkSession for the whole session (start-up is slow on 2 cores)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from pyspark.sql import SparkSession

from batch_layer.spark import build_session
from lambda_contract.settings import Settings


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
