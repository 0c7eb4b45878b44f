"""The one place a SparkSession is built: jars, Delta, and the settings the recompute relies on."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path

from pyspark.sql import SparkSession

from lambda_contract.settings import Settings

REQUIRED_JARS = ("delta-spark_", "delta-storage-", "spark-sql-kafka-0-10_", "kafka-clients-")


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
    missing = [prefix for prefix in REQUIRED_JARS if not any(Path(j).name.startswith(prefix) for j in jars)]
    if missing:
        raise JarsMissingError(
            f"{folder} lacks {', '.join(m + '*.jar' for m in missing)}: run `make setup` "
            "(or set LAMBDA_JARS_DIR)"
        )
    return jars


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
    }
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
    builder = SparkSession.builder.appName(app_name)
    for key, value in session_config(settings, extra).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark
