"""The one place a SparkSession is built: jars, Delta, and the settings the recompute relies on."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from pyspark import StorageLevel
from pyspark.sql import SparkSession

from lambda_contract.settings import Settings
from lambda_contract.storage import hadoop_s3a

REQUIRED_JARS = ("delta-spark_", "delta-storage-", "spark-sql-kafka-0-10_", "kafka-clients-")
S3A_JARS = ("hadoop-aws-",)
"""Needed as well when a table or checkpoint is on s3a:// (cluster mode, production)."""


GC_OPTION = "-XX:+UseParallelGC"
"""The throughput collector: the recompute is a batch job that allocates per row, and G1's write
barriers and concurrent work cost it 7 % on two cores (the 10 M-event bench day: 93 s -> 87 s).
JVM options given with --conf that choose another collector replace this one."""

JVM_OPTIONS = f"-XX:-DontCompileHugeMethods -Xss8m {GC_OPTION}"
"""HotSpot never compiles a method over 8,000 bytes of bytecode, and the whole-stage code Spark
generates for the contract's checks is larger: without the first option it runs interpreted, 2x
slower. Spark copies a VARIANT value recursively, three frames per level, and the contract lets a
payload nest 1,000 levels (MAX_JSON_DEPTH): in interpreted frames that needs about 1 MB, the
default thread stack (a 768 KB stack overflows in tests/batch, killing the JVM), hence 8 MB."""


ROW_GROUP_BYTES = 32 * 1024 * 1024


class JarsMissingError(RuntimeError):
    """The jar folder `make setup` fills is absent or incomplete."""


def spark_jars(settings: Settings) -> list[str]:
    """The jars of <LAMBDA_JARS_DIR>/spark, loaded with spark.jars (Ivy cannot reach a registry)."""
    folder = settings.path(settings.jars_dir) / "spark"
    jars = sorted(str(p) for p in Path(folder).glob("*.jar"))
    required = REQUIRED_JARS + (S3A_JARS if uses_s3a(settings) else ())
    missing = [prefix for prefix in required if not any(Path(j).name.startswith(prefix) for j in jars)]
    if missing:
        raise JarsMissingError(
            f"{folder} lacks {', '.join(m + '*.jar' for m in missing)}: run `make setup` "
            "(or set LAMBDA_JARS_DIR)"
        )
    return jars


def uses_s3a(settings: Settings) -> bool:
    return any(u.startswith("s3a://") for u in (settings.delta_root_url, settings.bronze_checkpoint_url))


def is_local(master: str) -> bool:
    """local, local[N], local[*]: driver and executor are one JVM, nothing to ship or lose."""
    return master == "local" or master.startswith("local[")


STANDALONE_EXECUTOR = {"spark.executor.memory": "1g", "spark.executor.cores": "1"}
"""On a standalone cluster (cluster mode: two workers of 1 core and 1536m each) one executor per
worker: a 1g heap leaves the rest of the worker's memory to the JVM's own overhead."""


def standalone_config(master: str) -> dict[str, str]:
    """A spark:// master: executors in the workers' JVMs. When the master is on this machine's
    loopback, the driver listens there too (the executors connect back to it)."""
    if not master.startswith("spark://"):
        return {}
    conf = dict(STANDALONE_EXECUTOR)
    host = urlsplit(master.split(",")[0]).hostname or ""
    if host in ("127.0.0.1", "localhost"):
        conf |= {"spark.driver.host": "127.0.0.1", "spark.driver.bindAddress": "127.0.0.1"}
    return conf


def materialised_level(master: str) -> StorageLevel:
    """Storage of a date's classified rows (recompute.localCheckpoint). Off one JVM, each block is
    kept on two executors and re-replicated when one is lost (spark.storage.replication.proactive),
    so a worker dying mid-recompute costs its running tasks, retried elsewhere, not the date."""
    return StorageLevel.MEMORY_AND_DISK if is_local(master) else StorageLevel.MEMORY_AND_DISK_2


S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "spark.hadoop.fs.s3a.access.key",
    "AWS_SECRET_ACCESS_KEY": "spark.hadoop.fs.s3a.secret.key",
    "AWS_SESSION_TOKEN": "spark.hadoop.fs.s3a.session.token",
}


def executor_credentials(master: str, environ: Mapping[str, str]) -> dict[str, str]:
    """On Kubernetes the executors are other pods without the driver's Secret-backed environment:
    the driver hands its S3 keys to them in the Spark configuration (sent over Spark's own RPC,
    redacted by spark.redaction.regex), never in an executor pod's spec. Read by s3a's
    SimpleAWSCredentialsProvider (first in the overlays' provider list); none when unset (IRSA)."""
    if not master.startswith("k8s://"):
        return {}
    return {key: environ[env] for env, key in S3_CREDENTIALS.items() if environ.get(env)}


def session_config(settings: Settings, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Spark configuration for the batch layer; `extra` (e.g. --conf on the CLI) wins."""
    conf = {
        "spark.master": settings.spark_master,
        "spark.jars": ",".join(spark_jars(settings)),
        "spark.driver.memory": settings.spark_driver_memory,
        "spark.sql.shuffle.partitions": str(settings.spark_shuffle_partitions),
        "spark.databricks.delta.snapshotPartitions": str(settings.spark_delta_snapshot_partitions),
        "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
        "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
        # All bucketing is UTC; the recompute never depends on the machine's zone.
        "spark.sql.session.timeZone": "UTC",
        # Parquet splits a file for reading only at row-group boundaries: 32 MB row groups and
        # read splits (not 128) cut a day of bronze into enough tasks to keep every core busy
        # to the end (10 M events were 5 tasks on 2 cores: the last ran alone).
        "spark.hadoop.parquet.block.size": str(ROW_GROUP_BYTES),
        "spark.sql.files.maxPartitionBytes": str(ROW_GROUP_BYTES),
        # Python's json keeps the last of duplicate keys; the VARIANT parser must do the same.
        "spark.sql.variant.allowDuplicateKeys": "true",
        "spark.sql.adaptive.enabled": "true",
        # The recompute materialises a date's classified rows once, serialised, and reads them
        # back twice: Kryo writes and reads them faster than Java serialisation (about 2 s on the
        # 10 M-event bench day, measured with three reads). SQL shuffles use their own row
        # serialiser either way.
        "spark.serializer": "org.apache.spark.serializer.KryoSerializer",
        "spark.ui.showConsoleProgress": "false",
        "spark.ui.enabled": "false",
        "spark.driver.extraJavaOptions": f"-Dlog4j2.level=warn {JVM_OPTIONS}",
        "spark.executor.extraJavaOptions": JVM_OPTIONS,
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        **executor_credentials(settings.spark_master, os.environ),
        **{f"spark.hadoop.{key}": value for key, value in hadoop_s3a(settings).items()},
        **standalone_config(settings.spark_master),
    }
    if not is_local(settings.spark_master):
        conf["spark.storage.replication.proactive"] = "true"
    for key, value in (extra or {}).items():
        conf[key] = (
            _jvm_options(conf[key], value) if key.endswith(".extraJavaOptions") and key in conf else value
        )
    return conf


def _jvm_options(ours: str, theirs: str) -> str:
    """JVM options given on the command line (a profiler, say) add to ours, not replace them;
    only a collector they choose replaces ours (the JVM refuses two)."""
    if re.search(r"-XX:\+Use\w+GC\b", theirs):
        ours = ours.replace(GC_OPTION, "").replace("  ", " ").strip()
    return f"{ours} {theirs}"


def build_session(
    settings: Settings, app_name: str = "lambda-batch", extra: Mapping[str, str] | None = None
) -> SparkSession:
    """A (possibly shared) SparkSession configured for Delta, the Kafka source and UTC."""
    if not is_local(settings.spark_master):
        # Python functions, if a job ever has one, run in the executors with this same environment.
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName(app_name)
    for key, value in session_config(settings, extra).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark
