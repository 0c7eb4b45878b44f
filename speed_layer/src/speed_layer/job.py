"""Wires the speed job: Flink configuration, Kafka tables, the SQL of `sql.py`, the Redis sink.

SQL stages joined by DataStream boundaries, all in the JVM:
  parse    reads Kafka once, parses each payload once (the JsonMembers function) and validates;
           malformed rows leave here for the DLQ and the malformed counters; at its boundary a
           JVM operator appends each partition's progress (`progress`);
  classify judges lateness per partition; at its keyed boundary (by event_id) a JVM operator
           marks each id's first arrival (`first_arrivals`), and SQL gives each row its kind;
  outputs  (late topic, aggregate updates) share the classified stream, so each record is
           classified exactly once.
A boundary is where one stream feeds several outputs: without it each output would be planned
on its own, with its own Kafka source and parse. Within a stage the planner never copies the
parse (the function is non-deterministic), so no boundary is needed for speed. A boundary carries
the planner's internal rows (`_internal_rows`), so crossing it converts nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyflink.common import Configuration
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.table import DataTypes, Schema, StreamTableEnvironment, Table, TableDescriptor, TableEnvironment
from pyflink.table.changelog_mode import ChangelogMode

from lambda_contract.settings import Settings
from speed_layer import cluster, sql
from speed_layer import validation_sql as v
from speed_layer.flink_sink import RedisSink

JARS = (
    "flink/flink-sql-connector-kafka-5.0.0-2.2.jar",
    "flink/flink-metrics-prometheus-2.2.1.jar",
    v.MEMBERS_JAR,
)


@dataclass(frozen=True)
class JobOptions:
    bounded: bool = False
    restore_from: str | None = None  # checkpoint URI to resume from
    group_id: str = "lambda-speed"
    tick_ms: int = 100
    refresh_s: int = 10
    heartbeats_per_s: int = 1


def job_config(settings: Settings, options: JobOptions) -> dict[str, str]:
    """What the job itself decides, wherever it runs: its name and jars, width, checkpoint cadence
    and guarantee, and the latencies of its exchanges. Cluster settings come from the deployment, or
    from `cluster.local_cluster_config` when the job starts its own mini-cluster."""
    conf = {
        "pipeline.name": "lambda-speed",
        # Every operator of the SQL part gets a uid from its place in the plan, as the sink has
        # one of its own: a restored savepoint finds each state, also after the SQL changed in a
        # way that keeps the plan's shape (docs/specs/speed.md, "Upgrades").
        "table.exec.uid.generation": "ALWAYS",
        # The job ships its connector itself (LAMBDA_JARS_DIR: .local/jars locally, the image's
        # /opt/lambda/jars in Kubernetes).
        "pipeline.jars": ";".join(jar_uri(settings, j) for j in JARS),
        "parallelism.default": str(settings.speed_parallelism),
        "execution.checkpointing.interval": f"{settings.checkpoint_interval_s} s",
        "execution.checkpointing.mode": "EXACTLY_ONCE",
        # Chained operators hand rows over without a defensive copy (Flink SQL's operators
        # never hold on to an input row they were given).
        "pipeline.object-reuse": "true",
        # Freshness budget (an event in Redis within 2 s of arrival): network buffers leave after at
        # most 10 ms (Flink's default 100 ms, per exchange, and the job has five), mini-batches
        # every 200 ms (sql.table_config), Python bundles every 50 ms, the sink writes every 100 ms.
        "execution.buffer-timeout.interval": "10 ms",
        "python.fn-execution.bundle.time": "50",
        "python.fn-execution.bundle.size": "1000",
    }
    if options.restore_from:
        conf["execution.state-recovery.path"] = options.restore_from
    return conf


def flink_config(settings: Settings, options: JobOptions) -> dict[str, str]:
    """The configuration `build` starts the environment with: the job's own settings, plus a
    mini-cluster's, or the session cluster to submit to (LAMBDA_FLINK_JOBMANAGER, whose own
    config.yaml configures everything else), or nothing when Flink launched this process."""
    if cluster.started_by_flink():
        around = {}
    elif settings.flink_jobmanager:
        around = cluster.remote_config(settings)
    else:
        around = cluster.local_cluster_config(settings)
    return around | job_config(settings, options)


def _source(settings: Settings, options: JobOptions) -> TableDescriptor:
    schema = Schema.new_builder()
    for col in sql.source_columns():
        if col.metadata:
            schema.column_by_metadata(col.name, col.type, col.metadata, True)
        else:
            schema.column(col.name, col.type)
    return _descriptor(
        schema.build(), sql.source_options(settings, bounded=options.bounded, group_id=options.group_id)
    )


def _sink(columns: list[sql.Column], opts: dict[str, str]) -> TableDescriptor:
    schema = Schema.new_builder()
    for col in columns:
        schema.column(col.name, col.type)
    return _descriptor(schema.build(), opts)


def _descriptor(schema: Schema, opts: dict[str, str]) -> TableDescriptor:
    builder = TableDescriptor.for_connector(opts["connector"]).schema(schema)
    for key, value in opts.items():
        if key != "connector":
            builder.option(key, value)
    return builder.build()


def build(settings: Settings, options: JobOptions) -> StreamExecutionEnvironment:
    """The complete job graph on a fresh environment, ready for `execute()`."""
    conf = Configuration()
    for key, value in flink_config(settings, options).items():
        conf.set_string(key, value)
    env = _environment(conf, remote=bool(settings.flink_jobmanager) and not cluster.started_by_flink())
    t_env = StreamTableEnvironment.create(env)
    t_env.create_temporary_table(sql.SOURCE_TABLE, _source(settings, options))
    t_env.create_temporary_table(sql.DLQ_TABLE, _sink(sql.dlq_columns(), sql.dlq_options(settings)))
    t_env.create_temporary_table(sql.LATE_TABLE, _sink(sql.late_columns(), sql.late_options(settings)))
    classify(t_env, settings)

    outputs = t_env.create_statement_set()
    outputs.add_insert_sql(sql.dlq_insert())
    outputs.add_insert_sql(sql.late_insert())
    outputs.attach_as_datastream()

    beats = t_env.to_data_stream(t_env.from_descriptor(heartbeat(options)))
    (
        updates(t_env, settings)
        .connect(beats)
        .key_by(lambda _row: 0, lambda _beat: 0, key_type=_int_type())
        .process(RedisSink(settings, options.tick_ms, options.refresh_s))
        .uid("speed-redis-sink")
        .name("redis-sink")
    )
    return env


def _environment(conf: Configuration, *, remote: bool) -> StreamExecutionEnvironment:
    """A local environment (its own mini-cluster, or the cluster that launched this process), or
    one that submits to the session cluster `conf` names (execution.target remote): PyFlink's
    get_execution_environment always builds a local one outside `flink run`."""
    if not remote:
        return StreamExecutionEnvironment.get_execution_environment(conf)
    from pyflink.java_gateway import get_gateway

    j_class = get_gateway().jvm.org.apache.flink.streaming.api.environment.StreamExecutionEnvironment
    return StreamExecutionEnvironment(j_class(conf._j_configuration))


def classify(t_env: StreamTableEnvironment, settings: Settings) -> None:
    """The table options, the JsonMembers function and the parsed -> classified views over
    whatever is registered as `sql.SOURCE_TABLE`: the Kafka table in the job, in-memory rows of
    the same schema in tests/speed/test_sql_in_memory.py."""
    for key, value in sql.table_config(settings).items():
        t_env.get_config().set(key, value)
    register_functions(t_env)
    _stage(t_env, sql.parse_query(), sql.PARSED_VIEW, through=progress, proctime=True)
    _stage(t_env, sql.judge_query(settings), sql.JUDGED_VIEW, through=lambda s: first_arrivals(s, settings))
    _stage(t_env, sql.classify_query(), sql.CLASSIFIED_VIEW)


def jar_uri(settings: Settings, jar: str) -> str:
    """The URI of one of `JARS` under LAMBDA_JARS_DIR (for `pipeline.jars`)."""
    return (settings.path(settings.jars_dir) / jar).as_uri()


def functions_jar(settings: Settings) -> str:
    """The URI of the jar with the job's JVM functions (for `pipeline.jars`)."""
    return jar_uri(settings, v.MEMBERS_JAR)


def register_functions(t_env: TableEnvironment) -> None:
    """The JVM functions the generated SQL calls (their jar is in `pipeline.jars`)."""
    t_env.create_java_temporary_system_function(v.MEMBERS_FUNCTION, v.MEMBERS_CLASS)
    t_env.create_java_temporary_system_function(v.ONCE_FUNCTION, v.ONCE_CLASS)
    t_env.create_java_temporary_system_function(v.MATCH_INTS_FUNCTION, v.MATCH_INTS_CLASS)


def updates(t_env: StreamTableEnvironment, settings: Settings) -> DataStream:
    """The aggregate updates as one upsert stream (inserts and new values, no retractions)."""
    # One nullable schema for all three, so that their streams have one type and can merge.
    schema = Schema.new_builder()
    for col in sql.update_columns():
        schema.column(col.name, DataTypes.STRING() if col.type == "STRING" else DataTypes.BIGINT())
    everything = schema.build()
    streams = [
        t_env.to_changelog_stream(t_env.sql_query(query), everything, ChangelogMode.upsert())
        for query in sql.updates_queries(settings).values()
    ]
    return streams[0].union(*streams[1:])


def heartbeat(options: JobOptions) -> TableDescriptor:
    """The sink's second input: a row a second even when no event arrives, so a job resumed from a
    checkpoint starts the sink's tick (and so heals Redis) without waiting for a record or for the
    restored timer. A bounded job sends one beat only: an endless source would never finish."""
    schema = Schema.new_builder().column("beat", DataTypes.INT()).build()
    builder = (
        TableDescriptor.for_connector("datagen")
        .schema(schema)
        .option("rows-per-second", str(options.heartbeats_per_s))
        .option("scan.parallelism", "1")
        .option("fields.beat.kind", "random")
        .option("fields.beat.min", "0")
        .option("fields.beat.max", "0")
    )
    if options.bounded:
        builder.option("number-of-rows", "1")
    return builder.build()


def _stage(
    t_env: StreamTableEnvironment,
    query: str,
    view: str,
    *,
    through: Callable[[DataStream], DataStream] | None = None,
    proctime: bool = False,
) -> None:
    """Register `query` as `view` behind a DataStream boundary, optionally passed `through` a JVM
    operator (`progress`, `first_arrivals`) and with a processing-time column `pt` (only where the
    next query needs them: a stage passes its columns through)."""
    stream = _internal_rows(t_env, t_env.sql_query(query))
    if through is not None:
        stream = through(stream)
    if proctime:
        schema = Schema.new_builder().column_by_expression("pt", "PROCTIME()").build()
        t_env.create_temporary_view(view, t_env.from_data_stream(stream, schema))
    else:
        t_env.create_temporary_view(view, t_env.from_data_stream(stream))


def _internal_rows(t_env: StreamTableEnvironment, table: Table) -> DataStream:
    """`table` as a DataStream of Flink's internal rows (RowData, the planner's own format): a
    boundary that converts nothing, where `to_data_stream` converts every row to a `Row` and
    `from_data_stream` back (docs/benchmarks.md has the cost). Only JVM operators read it."""
    from pyflink.util.java_utils import load_java_class

    row_data = load_java_class("org.apache.flink.table.data.RowData")
    j_table = table._j_table
    data_type = j_table.getResolvedSchema().toPhysicalRowDataType().bridgedTo(row_data)
    return DataStream(t_env._j_tenv.toDataStream(j_table, data_type))


def progress(parsed: DataStream) -> DataStream:
    """`parsed` with sql.PARTITION_MAX appended: the running maximum of `et_ms` over the valid
    records of each Kafka partition (RunningMax, a JVM operator chained to the source, which emits
    each partition in offset order: no exchange and no per-record state access, where an OVER
    keyed by partition needed both; docs/benchmarks.md has the figures)."""
    from pyflink.java_gateway import get_gateway

    running_max = getattr(get_gateway().jvm, "lambda").speed.functions.RunningMax  # `lambda` is a keyword
    j_stream = running_max.apply(
        parsed._j_data_stream, "kpartition", "et_ms", "reason", sql.PARTITION_MAX, "speed-partition-progress"
    )
    return DataStream(j_stream)


def first_arrivals(judged: DataStream, settings: Settings) -> DataStream:
    """`judged` keyed by event_id, with sql.FIRST_ARRIVAL appended: whether the row is its id's
    first arrival within LAMBDA_DEDUP_TTL_S (FirstArrival, a JVM operator: one flag per id in
    keyed state, written once, where a COUNT OVER read and wrote an aggregate row per record;
    docs/benchmarks.md has the figures)."""
    from pyflink.java_gateway import get_gateway

    first_arrival = getattr(get_gateway().jvm, "lambda").speed.functions.FirstArrival  # `lambda` is a keyword
    j_stream = first_arrival.apply(
        judged._j_data_stream, "event_id", settings.dedup_ttl_s, sql.FIRST_ARRIVAL, "speed-dedup"
    )
    return DataStream(j_stream)


def _int_type() -> Any:
    from pyflink.common.typeinfo import Types

    return Types.INT()


def plugins_dir(settings: Settings) -> Path:
    """FLINK_PLUGINS_DIR with the Prometheus reporter (reporters load as plugins at start-up)."""
    root = settings.state_path / "flink" / "plugins"
    target = root / "metrics-prometheus" / "flink-metrics-prometheus.jar"
    target.parent.mkdir(parents=True, exist_ok=True)
    source = settings.path(settings.jars_dir) / JARS[1]
    if source.exists() and not target.exists():
        target.unlink(missing_ok=True)  # a link left dangling by a moved or removed checkout
        target.symlink_to(source)
    return root
