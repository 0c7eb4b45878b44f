"""Every setting of the platform, in one definition (docs/configuration.md is generated from it).

Settings come from environment variables with local defaults; the same names are used by the
Makefile and the Kubernetes ConfigMaps. A bad value fails at start-up with the variable's name and
what was expected, never later inside a job.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from pathlib import Path
from typing import Any, Final

from lambda_contract.redis_layout import RedisLayout


class SettingsError(ValueError):
    """A setting has a value that cannot be used; the message names the variable."""


def _int(minimum: int | None = None) -> Callable[[str, str], int]:
    def parse(name: str, raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise SettingsError(f"{name} must be an integer, got {raw!r}") from None
        if minimum is not None and value < minimum:
            raise SettingsError(f"{name} must be >= {minimum}, got {value}")
        return value

    return parse


def _str(name: str, raw: str) -> str:
    return raw


def _nonempty(name: str, raw: str) -> str:
    if not raw.strip():
        raise SettingsError(f"{name} must not be empty")
    return raw.strip()


def _topic(name: str, raw: str) -> str:
    value = raw.strip()
    if not value or len(value) > 249 or not all(c.isalnum() or c in "._-" for c in value):
        raise SettingsError(f"{name} must be a Kafka topic name ([a-zA-Z0-9._-], 1-249 chars), got {raw!r}")
    return value


def _one_of(*choices: str) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        value = raw.strip().lower()
        if value not in choices:
            raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {raw!r}")
        return value

    return parse


def _prefix(name: str, raw: str) -> str:
    value = raw.strip()
    if not value or not all(c.isalnum() or c in "_-." for c in value):
        raise SettingsError(f"{name} must be a non-empty key prefix of [a-zA-Z0-9_.-], got {raw!r}")
    return value


def _redis_url(name: str, raw: str) -> str:
    value = raw.strip()
    if "@" in value:  # checked first: the other message echoes the value
        raise SettingsError(f"{name} must not carry credentials; use LAMBDA_REDIS_PASSWORD(_FILE)")
    if not value.startswith(("redis://", "rediss://", "unix://")):
        raise SettingsError(f"{name} must be a redis://, rediss:// or unix:// URL, got {raw!r}")
    return value


def _host_ports(name: str, raw: str) -> tuple[tuple[str, int], ...]:
    nodes = []
    for item in (t.strip() for t in raw.split(",") if t.strip()):
        host, sep, port = item.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise SettingsError(f"{name} must be host:port[,host:port...], got {item!r}")
        nodes.append((host, int(port)))
    return tuple(nodes)


def _port(name: str, raw: str) -> int:
    value = _int(1)(name, raw)
    if value > 65535:
        raise SettingsError(f"{name} must be a TCP port (1-65535), got {value}")
    return value


def _tokens(name: str, raw: str) -> tuple[str, ...]:
    tokens = tuple(t.strip() for t in raw.split(",") if t.strip())
    for token in tokens:
        if len(token) < 16:
            raise SettingsError(f"{name}: every token must be at least 16 characters")
    return tokens


def _csv(name: str, raw: str) -> tuple[str, ...]:
    return tuple(t.strip() for t in raw.split(",") if t.strip())


def _setting(env: str, default: str, parse: Callable[[str, str], Any], doc: str) -> Any:
    return field(metadata={"env": env, "default": default, "parse": parse, "doc": doc})


@dataclass(frozen=True)
class Settings:
    """Resolved settings. Build with `Settings.from_env()`; fields are documented by `doc`."""

    home: str = _setting(
        "LAMBDA_HOME", ".", _nonempty, "Root for relative local paths (the repository checkout locally)."
    )
    state_dir: str = _setting(
        "LAMBDA_STATE_DIR", ".local/state", _nonempty, "Local service and table state (git-ignored)."
    )
    kafka_bootstrap: str = _setting(
        "LAMBDA_KAFKA_BOOTSTRAP", "localhost:9092", _nonempty, "Kafka bootstrap servers, comma separated."
    )
    topic_orders: str = _setting("LAMBDA_TOPIC_ORDERS", "orders.v1", _topic, "Input topic of order events.")
    topic_dlq: str = _setting(
        "LAMBDA_TOPIC_DLQ", "orders.v1.dlq", _topic, "Dead-letter topic for malformed events (speed layer)."
    )
    topic_late: str = _setting(
        "LAMBDA_TOPIC_LATE", "orders.v1.late", _topic, "Topic for events later than the allowed lateness."
    )
    topic_partitions: int = _setting(
        "LAMBDA_TOPIC_PARTITIONS", "3", _int(1), "Partitions of orders.v1 when `make up` creates it."
    )
    topic_replication: int = _setting(
        "LAMBDA_TOPIC_REPLICATION",
        "1",
        _int(1),
        "Replication factor of the platform's topics when `make up` creates them (3 in cluster mode).",
    )
    topic_min_insync: int = _setting(
        "LAMBDA_TOPIC_MIN_INSYNC",
        "1",
        _int(1),
        "min.insync.replicas of those topics: with acks=all, a write is refused rather than kept on "
        "fewer replicas than this (2 in cluster mode).",
    )
    redis_url: str = _setting(
        "LAMBDA_REDIS_URL",
        "redis://localhost:6379/0",
        _redis_url,
        "Redis holding the speed view (no credentials in the URL).",
    )
    redis_password: str = _setting(
        "LAMBDA_REDIS_PASSWORD", "", _str, "Redis password; empty means read LAMBDA_REDIS_PASSWORD_FILE."
    )
    redis_password_file: str = _setting(
        "LAMBDA_REDIS_PASSWORD_FILE", "", _str, "File holding the Redis password (a mounted Secret in k8s)."
    )
    redis_sentinels: tuple[tuple[str, int], ...] = _setting(
        "LAMBDA_REDIS_SENTINELS",
        "",
        _host_ports,
        "Redis Sentinels as host:port,... (HA in production): clients ask them for the current master "
        "of LAMBDA_REDIS_SENTINEL_MASTER, with LAMBDA_REDIS_URL's database and the same password. "
        "Empty: connect to LAMBDA_REDIS_URL directly.",
    )
    redis_sentinel_master: str = _setting(
        "LAMBDA_REDIS_SENTINEL_MASTER", "lambda", _nonempty, "Master name the Sentinels monitor."
    )
    redis_cluster: tuple[tuple[str, int], ...] = _setting(
        "LAMBDA_REDIS_CLUSTER",
        "",
        _host_ports,
        "Redis Cluster seed nodes as host:port,... (`make up CLUSTER=1`): clients discover the slots "
        "and follow failovers, with the same password; LAMBDA_REDIS_URL is then unused. Empty: one "
        "Redis (or a Sentinel-managed master) at LAMBDA_REDIS_URL.",
    )
    redis_prefix: str = _setting(
        "LAMBDA_REDIS_PREFIX", "lambda", _prefix, "Prefix of every Redis key the platform writes."
    )
    out_of_orderness_s: int = _setting(
        "LAMBDA_OUT_OF_ORDERNESS_S", "30", _int(0), "Speed watermark: bounded out-of-orderness, seconds."
    )
    idle_timeout_s: int = _setting(
        "LAMBDA_IDLE_TIMEOUT_S",
        "10",
        _int(1),
        "Speed watermark: a partition idle this long stops holding it back.",
    )
    allowed_lateness_s: int = _setting(
        "LAMBDA_ALLOWED_LATENESS_S",
        "300",
        _int(0),
        "Events later than hour end + this (by watermark) are late.",
    )
    dedup_ttl_s: int = _setting(
        "LAMBDA_DEDUP_TTL_S",
        "7200",
        _int(1),
        "How long the speed layer remembers event ids (>= lateness + 1 h).",
    )
    speed_retention_s: int = _setting(
        "LAMBDA_SPEED_RETENTION_S",
        "259200",
        _int(3600),
        "How long closed hours stay in Redis (for reconciliation).",
    )
    checkpoint_dir: str = _setting(
        "LAMBDA_CHECKPOINT_DIR", "", _str, "Flink checkpoint URL; empty means <state>/flink/checkpoints."
    )
    checkpoint_interval_s: int = _setting(
        "LAMBDA_CHECKPOINT_INTERVAL_S", "10", _int(1), "Flink checkpoint interval, seconds."
    )
    speed_parallelism: int = _setting("LAMBDA_SPEED_PARALLELISM", "1", _int(1), "Flink job parallelism.")
    speed_state_backend: str = _setting(
        "LAMBDA_SPEED_STATE_BACKEND",
        "",
        _one_of("", "rocksdb", "hashmap"),
        "Flink state backend of a local job; empty: the FlinkDeployment's (RocksDB, incremental "
        "checkpoints); hashmap keeps state on the heap with full snapshots, for small runs.",
    )
    speed_metrics_port: int = _setting(
        "LAMBDA_SPEED_METRICS_PORT", "9249", _port, "Flink Prometheus reporter port."
    )
    flink_jobmanager: str = _setting(
        "LAMBDA_FLINK_JOBMANAGER",
        "",
        _str,
        "REST address (host:port) of a Flink session cluster that `lambda-speed` submits the job to "
        "(`make speed CLUSTER=1`); empty: the job starts a mini-cluster in its own process.",
    )
    jars_dir: str = _setting(
        "LAMBDA_JARS_DIR",
        ".local/jars",
        _nonempty,
        "JVM jars fetched by `make setup` (flink/, spark/, kafka/).",
    )
    delta_root: str = _setting(
        "LAMBDA_DELTA_ROOT", "", _str, "Root URL of the Delta tables; empty means <state>/delta."
    )
    s3_endpoint: str = _setting(
        "LAMBDA_S3_ENDPOINT",
        "",
        _str,
        "S3-compatible endpoint URL for s3:// and s3a:// paths (the local object store in cluster "
        "mode); empty: AWS's own endpoints.",
    )
    s3_credentials_file: str = _setting(
        "LAMBDA_S3_CREDENTIALS_FILE",
        "",
        _str,
        "File with AWS_ACCESS_KEY_ID=... and AWS_SECRET_ACCESS_KEY=... lines for the object store; "
        "empty: those variables themselves, or the platform's default chain (IRSA) in Kubernetes.",
    )
    batch_checkpoint_dir: str = _setting(
        "LAMBDA_BATCH_CHECKPOINT_DIR",
        "",
        _str,
        "Bronze ingest checkpoint; empty means <state>/spark/checkpoints/bronze.",
    )
    spark_master: str = _setting("LAMBDA_SPARK_MASTER", "local[*]", _nonempty, "Spark master URL.")
    spark_shuffle_partitions: int = _setting(
        "LAMBDA_SPARK_SHUFFLE_PARTITIONS", "8", _int(1), "spark.sql.shuffle.partitions for the recompute."
    )
    spark_delta_snapshot_partitions: int = _setting(
        "LAMBDA_SPARK_DELTA_SNAPSHOT_PARTITIONS",
        "1",
        _int(1),
        "spark.databricks.delta.snapshotPartitions: tasks that rebuild a Delta table's state from "
        "its log at every read and commit. Delta's 50 costs seconds per commit on a small "
        "machine; raise it for tables with long logs on a cluster.",
    )
    spark_driver_memory: str = _setting(
        "LAMBDA_SPARK_DRIVER_MEMORY",
        "4g",
        _nonempty,
        "spark.driver.memory (local mode does all work in the driver).",
    )
    batch_lock: str = _setting(
        "LAMBDA_BATCH_LOCK",
        "auto",
        _one_of("auto", "file", "lease"),
        "How a batch writer (ingest, run, nightly, maintain) makes itself the only writer of the "
        "Delta tables: `lease` a Kubernetes Lease through the pod's service account, `file` an "
        "fcntl lock under <state>/locks keyed by the Delta root, `auto` the lease inside a "
        "cluster (KUBERNETES_SERVICE_HOST set) and the file elsewhere.",
    )
    batch_lock_timeout_s: int = _setting(
        "LAMBDA_BATCH_LOCK_TIMEOUT_S",
        "3600",
        _int(0),
        "How long a second batch writer waits for the lock before it fails naming the holder.",
    )
    batch_lease_name: str = _setting(
        "LAMBDA_BATCH_LEASE_NAME",
        "lambda-batch-writer",
        _nonempty,
        "Name of the coordination.k8s.io/v1 Lease the batch writers share (in the pod's namespace).",
    )
    batch_lease_duration_s: int = _setting(
        "LAMBDA_BATCH_LEASE_DURATION_S",
        "60",
        _int(3),
        "A Lease not renewed for this long is taken over; its holder renews every third of it.",
    )
    pushgateway_url: str = _setting(
        "LAMBDA_PUSHGATEWAY_URL",
        "",
        _str,
        "Prometheus Pushgateway for batch metrics; empty disables pushing.",
    )
    prometheus_port: int = _setting(
        "LAMBDA_PROMETHEUS_PORT", "9090", _port, "Port of the local Prometheus that `make up` starts."
    )
    api_host: str = _setting("LAMBDA_API_HOST", "127.0.0.1", _nonempty, "Serving layer bind address.")
    api_port: int = _setting("LAMBDA_API_PORT", "8000", _port, "Serving layer port.")
    api_tokens: tuple[str, ...] = _setting(
        "LAMBDA_API_TOKENS",
        "",
        _tokens,
        "Bearer tokens accepted by /v1/*, comma separated; none means no access.",
    )
    serving_gold_cache_mb: int = _setting(
        "LAMBDA_SERVING_GOLD_CACHE_MB",
        "32",
        _int(1),
        "Serving layer: MiB of gold dates kept in memory (an LRU; the dates a request needs are read "
        "by partition, never the whole table). About 0.8 MiB a date at 1,000 keys an hour: the "
        "default holds a 31-day range.",
    )
    cors_origins: tuple[str, ...] = _setting(
        "LAMBDA_CORS_ORIGINS", "", _csv, "Origins allowed by CORS; empty keeps CORS closed."
    )
    fx_rates_path: str = _setting(
        "LAMBDA_FX_RATES_PATH",
        "",
        _str,
        "CSV of (date, currency, rate_to_usd); empty means the shipped table.",
    )
    fx_source_url: str = _setting(
        "LAMBDA_FX_SOURCE_URL",
        "https://www.ecb.europa.eu/stats/eurofxref/eurofxref-hist.zip",
        _nonempty,
        "Where `lambda-fx fetch` reads the ECB's euro reference rates (eurofxref CSV or its zip; "
        "an http(s) or file:// URL or a path) to write LAMBDA_FX_RATES_PATH.",
    )
    reports_dir: str = _setting(
        "LAMBDA_REPORTS_DIR", "reports", _nonempty, "Where reconciliation reports are written."
    )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read every setting; raises SettingsError naming the first bad variable."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            name = f.metadata["env"]
            raw = env.get(name, f.metadata["default"])
            values[f.name] = f.metadata["parse"](name, raw)
        settings = cls(**values)
        settings._check()
        return settings

    def _check(self) -> None:
        if self.topic_min_insync > self.topic_replication:
            raise SettingsError(
                "LAMBDA_TOPIC_MIN_INSYNC must be <= LAMBDA_TOPIC_REPLICATION "
                f"(got {self.topic_min_insync} > {self.topic_replication}): no write could succeed"
            )
        if self.dedup_ttl_s < self.allowed_lateness_s + 3600:
            raise SettingsError(
                "LAMBDA_DEDUP_TTL_S must be >= LAMBDA_ALLOWED_LATENESS_S + 3600 "
                f"(got {self.dedup_ttl_s} < {self.allowed_lateness_s + 3600})"
            )

    # Derived values: one place that turns settings into paths and durations.

    def path(self, value: str) -> Path:
        """A local path relative to LAMBDA_HOME, made absolute."""
        p = Path(value)
        return p if p.is_absolute() else (Path(self.home) / p).resolve()

    @property
    def state_path(self) -> Path:
        return self.path(self.state_dir)

    @property
    def delta_root_url(self) -> str:
        return self.delta_root or str(self.state_path / "delta")

    def delta_table_url(self, table_name: str) -> str:
        return f"{self.delta_root_url.rstrip('/')}/{table_name}"

    @property
    def checkpoint_url(self) -> str:
        return self.checkpoint_dir or (self.state_path / "flink" / "checkpoints").as_uri()

    @property
    def bronze_checkpoint_url(self) -> str:
        return self.batch_checkpoint_dir or str(self.state_path / "spark" / "checkpoints" / "bronze")

    @property
    def allowed_lateness(self) -> timedelta:
        return timedelta(seconds=self.allowed_lateness_s)

    @property
    def out_of_orderness(self) -> timedelta:
        return timedelta(seconds=self.out_of_orderness_s)

    @property
    def redis_layout(self) -> RedisLayout:
        return RedisLayout(self.redis_prefix)

    @property
    def redis_db(self) -> int:
        """The database number in LAMBDA_REDIS_URL's path (0 when it names none)."""
        path = self.redis_url.split("://", 1)[1].partition("/")[2].partition("?")[0]
        return int(path) if path.isdigit() else 0

    def s3_credentials(self) -> tuple[str, str] | None:
        """(access key, secret key) from LAMBDA_S3_CREDENTIALS_FILE; None leaves the engines to
        their default chain (AWS_* variables, a pod's web identity)."""
        if not self.s3_credentials_file:
            return None
        values = _read_env_file(self.s3_credentials_file, "LAMBDA_S3_CREDENTIALS_FILE")
        try:
            return values["AWS_ACCESS_KEY_ID"], values["AWS_SECRET_ACCESS_KEY"]
        except KeyError as exc:
            raise SettingsError(
                f"LAMBDA_S3_CREDENTIALS_FILE={self.s3_credentials_file!r} lacks {exc}"
            ) from None

    def resolved_redis_password(self) -> str | None:
        """The Redis password from the variable or its file; None when neither is set."""
        if self.redis_password:
            return self.redis_password
        if self.redis_password_file:
            try:
                return Path(self.redis_password_file).read_text().strip() or None
            except OSError as exc:
                raise SettingsError(
                    f"LAMBDA_REDIS_PASSWORD_FILE={self.redis_password_file!r} cannot be read: {exc.strerror}"
                ) from None
        return None


def _read_env_file(path: str, setting: str) -> dict[str, str]:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise SettingsError(f"{setting}={path!r} cannot be read: {exc.strerror}") from None
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
    return {k.strip(): v.strip() for k, v in pairs}


def documented() -> list[tuple[str, str, str]]:
    """(variable, default, doc) for every setting, for docs and the k8s ConfigMap check."""
    return [(f.metadata["env"], f.metadata["default"], f.metadata["doc"]) for f in fields(Settings)]


ENV_NAMES: Final = frozenset(name for name, _, _ in documented())
