"""Speed suite fixtures: a warm Flink table environment for SQL-only tests, a private sandbox."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lambda_contract.settings import Settings
from lambda_testkit.sandbox import Sandbox, sandbox_for


@pytest.fixture(scope="session")
def batch_tenv() -> Iterator[Any]:
    """A batch TableEnvironment on a local mini-cluster: evaluates generated SQL on literal rows,
    with the job's JVM function registered as the job registers it."""
    from pyflink.table import EnvironmentSettings, TableEnvironment

    from speed_layer import job

    t_env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    conf = t_env.get_config()
    conf.set("parallelism.default", "1")
    conf.set("table.local-time-zone", "UTC")
    conf.set("python.executable", sys.executable)
    conf.set("python.client.executable", sys.executable)
    conf.set("pipeline.jars", job.functions_jar(Settings.from_env({})))
    job.register_functions(t_env)
    yield t_env


@pytest.fixture()
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    """Private topics, Redis prefix and checkpoint dir for one test; removed afterwards."""
    with sandbox_for(tmp_path, "speed") as box:
        yield box
