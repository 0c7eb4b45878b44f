"""The batch on the Spark standalone cluster with Delta on the object store (cluster mode).

Unit tests: what a spark:// master changes in the session's configuration, and the clear error
when s3a:// is used without its jars.

The integration test runs the batch as `make batch CLUSTER=1` does: the CLI's driver here against
spark://127.0.0.1:17077 (lambda_tools.cluster.spark starts the master and both workers if missing),
its executors in the workers' JVMs, and every table and the ingest's checkpoint on s3a:// (the
object store, lambda_tools.cluster.objectstore). The golden set is produced to the single-node
Kafka: the cluster's brokers are not what this checks (tests/cluster runs the whole cluster). Gold
read back with delta-rs must equal the golden truth, and the workers must have run the
application's executors. It took 4.5 to 10 minutes on the 2 shared cores (load average 10-17), far
over the cluster suite's budget, so it runs only with LAMBDA_CLUSTER_TESTS=1.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from batch_helpers import gold_view

from lambda_contract.settings import Settings

CLI = Path(sys.executable).with_name("lambda-batch")
CLUSTER_TESTS = os.environ.get("LAMBDA_CLUSTER_TESTS") == "1"


def _jars(folder: Path, prefixes: tuple[str, ...]) -> Settings:
    (folder / "spark").mkdir(exist_ok=True)
    for prefix in prefixes:
        (folder / "spark" / f"{prefix}1.0.jar").touch()
    return replace(Settings.from_env(), jars_dir=str(folder))


@pytest.mark.unit
def test_a_standalone_master_gets_executors_that_fit_the_workers_and_a_loopback_driver(
    tmp_path: Path,
) -> None:
    from batch_layer.spark import REQUIRED_JARS, session_config

    settings = replace(_jars(tmp_path, REQUIRED_JARS), spark_master="spark://127.0.0.1:17077")
    conf = session_config(settings)
    assert conf["spark.executor.memory"] == "1g" and conf["spark.executor.cores"] == "1"
    assert conf["spark.driver.host"] == "127.0.0.1" and conf["spark.driver.bindAddress"] == "127.0.0.1"
    assert conf["spark.storage.replication.proactive"] == "true"
    assert "-Xss8m" in conf["spark.executor.extraJavaOptions"]
    local = session_config(replace(settings, spark_master="local[2]"))
    assert not {"spark.executor.memory", "spark.driver.host", "spark.storage.replication.proactive"} & set(
        local
    )


@pytest.mark.unit
def test_the_object_stores_endpoint_and_keys_reach_hadoops_s3a(tmp_path: Path) -> None:
    from batch_layer.spark import REQUIRED_JARS, S3A_JARS, session_config

    keys = tmp_path / "objectstore.env"
    keys.write_text("AWS_ACCESS_KEY_ID=ak\nAWS_SECRET_ACCESS_KEY=sk\n")
    settings = replace(
        _jars(tmp_path, REQUIRED_JARS + S3A_JARS),
        s3_endpoint="http://127.0.0.1:18333",
        s3_credentials_file=str(keys),
        delta_root="s3a://lambda/delta",
    )
    conf = session_config(settings)
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:18333"
    assert conf["spark.hadoop.fs.s3a.path.style.access"] == "true"
    assert (conf["spark.hadoop.fs.s3a.access.key"], conf["spark.hadoop.fs.s3a.secret.key"]) == ("ak", "sk")
    assert not any(k.startswith("spark.hadoop.fs.s3a.") for k in session_config(_jars(tmp_path, ())))


@pytest.mark.unit
def test_s3a_tables_without_hadoop_aws_fail_naming_the_missing_jar(tmp_path: Path) -> None:
    from batch_layer.spark import REQUIRED_JARS, JarsMissingError, spark_jars

    settings = _jars(tmp_path, REQUIRED_JARS)
    assert spark_jars(settings)  # local tables: enough
    with pytest.raises(JarsMissingError, match=r"hadoop-aws-\*\.jar.*make setup"):
        spark_jars(replace(settings, batch_checkpoint_dir="s3a://lambda/spark/checkpoints/bronze"))


@pytest.mark.unit
def test_a_dates_rows_are_replicated_only_off_one_jvm() -> None:
    from pyspark import StorageLevel

    from batch_layer.spark import materialised_level

    assert materialised_level("local[*]") == StorageLevel.MEMORY_AND_DISK
    assert materialised_level("spark://127.0.0.1:17077").replication == 2


# --- on the cluster ------------------------------------------------------------------------------


def _json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.load(resp)


@pytest.fixture(scope="module")
def cluster_env() -> Iterator[dict[str, str]]:
    """cluster.env's settings with the object store and the Spark cluster up (started if missing,
    left running like `make up`'s services); Kafka stays the single-node broker."""
    from lambda_tools import cluster
    from lambda_tools.cluster import objectstore, spark

    base = Settings.from_env()
    env = cluster.environment(base.state_path)
    env["LAMBDA_KAFKA_BOOTSTRAP"] = base.kafka_bootstrap
    env["LAMBDA_PUSHGATEWAY_URL"] = ""
    settings = Settings.from_env(env)
    objectstore.start(settings, base.state_path)
    spark.start(settings, base.state_path)
    yield env


@pytest.mark.integration
@pytest.mark.skipif(not CLUSTER_TESTS, reason="the Spark cluster on the object store: LAMBDA_CLUSTER_TESTS=1")
def test_ingest_and_recompute_on_the_standalone_cluster_write_exact_gold_to_the_object_store(
    cluster_env: dict[str, str],
) -> None:
    from deltalake import DeltaTable
    from kafka.admin import KafkaAdminClient, NewTopic

    from lambda_contract.storage import delta_rs_options
    from lambda_contract.tables import MANIFEST
    from lambda_testkit import golden
    from lambda_testkit.sandbox import produce
    from lambda_tools.cluster import spark

    truth = golden.truth()
    (day,) = truth.dates()
    run = f"{os.getpid()}-{int(time.time())}"
    prefix = f"s3a://lambda/tests/spark-standalone/{run}"
    env = dict(
        cluster_env,
        LAMBDA_TOPIC_ORDERS=f"test.batch.standalone.{run}",
        LAMBDA_DELTA_ROOT=f"{prefix}/delta",
        LAMBDA_BATCH_CHECKPOINT_DIR=f"{prefix}/checkpoint",
    )
    settings = Settings.from_env(env)
    app = f"lambda-batch-test-{run}"
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(settings.topic_orders, 3, 1, topic_configs={"retention.ms": "-1"})])
    finally:
        admin.close()
    try:
        produce(settings.kafka_bootstrap, settings.topic_orders, [r.kafka_record for r in golden.records()])
        done = subprocess.run(
            [str(CLI), "run", "--date", day.isoformat(), "--no-auto", "--conf", f"spark.app.name={app}"],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert f"ingest     : {len(golden.records())} new rows" in done.stdout, done.stdout
    finally:
        # A new client: a first one's connection idles out during the minutes the run takes.
        cleanup = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        try:
            cleanup.delete_topics([settings.topic_orders])
        finally:
            cleanup.close()

    table = DeltaTable(settings.delta_table_url("gold"), storage_options=delta_rs_options(settings))
    assert gold_view(table.to_pyarrow_table().to_pylist()) == truth.full
    manifest = DeltaTable(settings.delta_table_url(MANIFEST.name), storage_options=delta_rs_options(settings))
    assert manifest.to_pyarrow_table().num_rows == 24  # the date's hours, written after gold

    # Executors in the workers' JVMs, not the driver's: one or both workers, as free cores allowed
    # (the master serves applications in turn; another one may hold a worker).
    (ours,) = [
        a
        for a in _json(f"http://127.0.0.1:{spark.MASTER_UI_PORT}/json/")["completedapps"]
        if a["name"] == app
    ]
    ran = []
    for n in range(1, spark.WORKERS + 1):
        worker = _json(f"http://127.0.0.1:{spark.worker_ui_port(n)}/json/")
        ran += [e for e in worker["executors"] + worker["finishedexecutors"] if e["appid"] == ours["id"]]
    assert ran, f"no worker ran an executor of {ours['id']}"
