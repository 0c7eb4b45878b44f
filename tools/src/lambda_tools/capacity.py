"""The capacity model (docs/capacity.md): what the platform needs at 10 k, 100 k and 1 M events/s.

Every size is computed here from figures measured on this machine (each `Figure` names the command
that measured it) and the formulas below, so the document, the prod overlay (k8s/overlays/prod, which
claims PROD_RATE and PROD_USERS; tests/k8s/test_k8s_capacity.py) and this module cannot drift apart.

    python -m lambda_tools.capacity                    # the tables docs/capacity.md embeds
    python -m lambda_tools.capacity --write            # rewrite them in docs/capacity.md
    python -m lambda_tools.capacity measure-kafka      # bytes per event on a broker's disk
    python -m lambda_tools.capacity measure-redis      # MEMORY USAGE of an hour's hash
    python -m lambda_tools.capacity measure-state FILE --rate N   # RocksDB bytes per dedup id
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import uuid
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Final

from lambda_contract.settings import Settings
from lambda_contract.topics import ORDERS_RETENTION_MS, OUTPUT_RETENTION_MS

DOC: Final = Path(__file__).resolve().parents[3] / "docs" / "capacity.md"
BEGIN, END = "<!-- capacity:begin (python -m lambda_tools.capacity --write) -->", "<!-- capacity:end -->"
RATES: Final = (10_000, 100_000, 1_000_000)
USERS: Final = (100, 1_000, 10_000, 100_000)
# What k8s/overlays/prod is sized for (its kustomization.yaml says so; tests/k8s/test_k8s_capacity.py).
PROD_RATE: Final = 10_000
PROD_USERS: Final = 1_000
GIB: Final = 2**30
DAY_S: Final = 86_400


@dataclass(frozen=True)
class Figure:
    """One input of the model: its value, unit and where it comes from (a command or a rule)."""

    value: float
    unit: str
    source: str


@dataclass(frozen=True)
class Inputs:
    """Measured figures (commands in `source`) and the platform's settings the model depends on."""

    kafka_bytes_per_event: Figure
    speed_events_per_s_per_core: Figure
    dedup_state_bytes_per_id: Figure
    checkpoint_bytes_per_event: Figure
    redis_hour_hash_bytes: Figure
    bronze_bytes_per_event: Figure
    silver_bytes_per_event: Figure
    gold_bytes_per_row: Figure
    batch_events_per_core_s: Figure
    serving_rps_per_replica: Figure
    # settings and the contract
    orders_retention_s: Figure
    side_retention_s: Figure
    replication: Figure
    dedup_ttl_s: Figure
    checkpoint_interval_s: Figure
    speed_retention_s: Figure
    dashboard_refresh_s: Figure


_S = Settings.from_env({})
MEASURED: Final = Inputs(
    kafka_bytes_per_event=Figure(
        299.9,
        "B/event",
        "python -m lambda_tools.capacity measure-kafka (200 k generated events, log segments)",
    ),
    speed_events_per_s_per_core=Figure(
        10_177.0,
        "events/s/core",
        "docs/benchmarks.md, profile of 2026-12-05: 20,354 events/s at parallelism 2 on 2 cores "
        "(speed_layer/bench/throughput.py --reuse ... --no-peer), halved",
    ),
    dedup_state_bytes_per_id=Figure(
        13.8,
        "B/id",
        "RocksDB state_size growth over 16 checkpoints at 2,000 events/s, TTL longer than the run: "
        "freshness.py --rate 2000 --warmup-s 10 --seconds 150, then measure-state",
    ),
    checkpoint_bytes_per_event=Figure(
        52.5, "B/event", "mean incremental checkpointed_size (compactions included) / events, same run"
    ),
    redis_hour_hash_bytes=Figure(
        96_336, "B/hash", "python -m lambda_tools.capacity measure-redis (MEMORY USAGE, 1,000 keys)"
    ),
    bronze_bytes_per_event=Figure(
        59.8, "B/event", "docs/specs/delta.md: bronze of the benchmark's 1 M-event day, 59.8 MB"
    ),
    silver_bytes_per_event=Figure(
        18.6, "B/event", "docs/specs/delta.md: silver of the benchmark's 1 M-event day, 18.6 MB"
    ),
    gold_bytes_per_row=Figure(
        81_029_200 / 8_760_000,
        "B/row",
        "du -sb .local/state/bench/gold-year-365d-1000k/gold (serving_layer/bench/bench_year.py) / 8.76 M rows",
    ),
    batch_events_per_core_s=Figure(
        10_000_000 / 186.1 / 2,
        "events/s/core",
        "docs/benchmarks.md 2026-12-06: 10 M events in 186.1 s on 2 cores "
        "(batch_layer/bench/bench_recompute.py --rows 10000000)",
    ),
    serving_rps_per_replica=Figure(
        2_737.0,
        "requests/s",
        "docs/benchmarks.md 2026-12-06: 24-hour grouped query, one process "
        "(serving_layer/bench/bench_hourly.py --seconds 8)",
    ),
    orders_retention_s=Figure(ORDERS_RETENTION_MS / 1000, "s", "lambda_contract.topics: orders.v1 retention"),
    side_retention_s=Figure(
        OUTPUT_RETENTION_MS / 1000, "s", "lambda_contract.topics: DLQ and late retention"
    ),
    replication=Figure(3, "copies", "issue 17 / infra/cluster/cluster.env: replication factor 3"),
    dedup_ttl_s=Figure(_S.dedup_ttl_s, "s", "LAMBDA_DEDUP_TTL_S default"),
    checkpoint_interval_s=Figure(_S.checkpoint_interval_s, "s", "LAMBDA_CHECKPOINT_INTERVAL_S default"),
    speed_retention_s=Figure(_S.speed_retention_s, "s", "LAMBDA_SPEED_RETENTION_S default"),
    dashboard_refresh_s=Figure(5, "s", "serving_layer/README.md: the dashboard refreshes every 5 s"),
)


@dataclass(frozen=True)
class Policy:
    """Choices, not measurements: each is stated in docs/capacity.md with its reason."""

    speed_headroom: float = 2.0  # run at half the measured rate: a restarted job must catch up
    slots_per_taskmanager: int = 2  # prod TaskManagers have 2 CPUs, one slot per core
    min_slots: int = 2
    partitions_per_slot: int = 2  # room to double the parallelism without re-keying the topic
    min_brokers: int = 3  # replication factor 3 needs three brokers
    broker_disk_max_gib: int = 4000  # one volume per broker; beyond it, add brokers
    disk_fill: float = 0.7  # volumes at most 70 % full at full retention
    side_share: float = 0.01  # DLQ + late records, share of orders.v1 (generator: 0.5 % + 0.5 %)
    keys_per_hour: int = 1_000  # region x category x currency groups an hour (bench_year.py's)
    redis_fork_factor: float = 2.0  # an AOF rewrite forks: copy-on-write can double the dataset
    redis_base_mib: int = 64  # the server itself, buffers, replication backlog
    redis_min_limit_mib: int = 512
    redis_maxmemory_share: float = 0.75  # maxmemory over the container limit (docs/specs/redis.md)
    ingest_runs_per_day: int = 96  # lambda-batch ingest every 15 minutes
    batch_window_s: int = 3_600  # the nightly recompute of a day within one hour
    batch_cluster_factor: float = 2.0  # shuffle over the network and skew, against local mode
    executor_cores: int = 2
    requests_per_refresh: int = 2  # /v1/revenue/hourly and /v1/status
    cpu_target: float = 0.7  # the HPA's CPU target
    min_serving_replicas: int = 3  # the PDB keeps 2
    instance: str = "m6i.xlarge"
    instance_vcpus: int = 4
    instance_usd_per_h: Decimal = Decimal("0.192")
    ebs_usd_per_gib_month: Decimal = Decimal("0.08")
    s3_usd_per_gib_month: Decimal = Decimal("0.023")
    # vCPUs per pod, from k8s/overlays/prod (limits)
    broker_vcpus: int = 4
    taskmanager_vcpus: int = 2
    jobmanager_vcpus: int = 2  # two JobManagers (HA) of 1 CPU
    redis_vcpus: int = 3  # three pods of 1 CPU
    serving_vcpus: int = 2


POLICY: Final = Policy()
PRICE_SOURCES: Final = (
    "m6i.xlarge (4 vCPU, 16 GiB), Linux on-demand, us-east-1: $0.192 an hour, "
    "https://aws.amazon.com/ec2/pricing/on-demand/ as listed in 2024",
    "gp3 volumes $0.08 per GiB-month, https://aws.amazon.com/ebs/pricing/ (us-east-1, 2024)",
    "S3 Standard $0.023 per GiB-month (first 50 TB), https://aws.amazon.com/s3/pricing/ (us-east-1, 2024)",
)


def _up(x: float, step: int = 1) -> int:
    return max(step, math.ceil(x / step - 1e-9) * step)


@dataclass(frozen=True)
class Row:
    """The sizes for one event rate."""

    rate: int
    events_per_day: int
    # Kafka
    partitions: int
    brokers: int
    kafka_disk_total_gib: float
    broker_disk_gib: int
    # Flink
    slots: int
    taskmanagers: int
    parallelism: int
    dedup_ids: int
    state_gib: float
    checkpoint_mib: float  # incremental, per interval
    # Redis
    redis_day_mib: float
    redis_dataset_mib: float
    redis_limit_mib: int
    redis_maxmemory_mb: int
    # Delta
    bronze_gib_day: float
    bronze_files_day: int
    silver_gib_day: float
    silver_files_day: int
    gold_mib_day: float
    gold_files_day: int
    # Spark
    batch_core_s: float
    executors: int
    # cost
    vcpus: float
    instances: int
    usd_per_hour: Decimal
    usd_per_million: Decimal


def row(rate: int, m: Inputs = MEASURED, p: Policy = POLICY) -> Row:
    """The sizes for `rate` events/s; docs/capacity.md states each formula."""
    day = rate * DAY_S
    slots = _up(rate * p.speed_headroom / m.speed_events_per_s_per_core.value, p.slots_per_taskmanager)
    slots = max(slots, p.min_slots)
    kafka_total = (
        rate
        * m.kafka_bytes_per_event.value
        * m.replication.value
        * (m.orders_retention_s.value + p.side_share * m.side_retention_s.value)
        / p.disk_fill
        / GIB
    )
    brokers = max(p.min_brokers, math.ceil(kafka_total / p.broker_disk_max_gib))
    partitions = _up(slots * p.partitions_per_slot, brokers)
    ids = int(rate * m.dedup_ttl_s.value)
    hash_day = 3 * 24 * m.redis_hour_hash_bytes.value  # hour, late and duplicate hashes of each hour
    redis_days = m.speed_retention_s.value / DAY_S + 1  # retention after closing, plus the open day
    dataset = hash_day * redis_days / 2**20
    limit = _up(max(dataset * p.redis_fork_factor + p.redis_base_mib, p.redis_min_limit_mib), 256)
    core_s = day / m.batch_events_per_core_s.value * p.batch_cluster_factor
    executors = math.ceil(core_s / p.batch_window_s / p.executor_cores)
    users_replicas = serving_replicas(PROD_USERS, m, p)
    vcpus = (
        brokers * p.broker_vcpus
        + slots // p.slots_per_taskmanager * p.taskmanager_vcpus
        + p.jobmanager_vcpus
        + p.redis_vcpus
        + users_replicas * p.serving_vcpus
        + executors * p.executor_cores * p.batch_window_s / DAY_S
    )
    instances = math.ceil(vcpus / p.instance_vcpus)
    broker_disk = _up(kafka_total / brokers, 100)
    storage_gib_month = brokers * broker_disk * p.ebs_usd_per_gib_month
    delta_gib = day * (m.bronze_bytes_per_event.value + m.silver_bytes_per_event.value) * 30 / GIB
    per_hour = (
        instances * p.instance_usd_per_h
        + (storage_gib_month + Decimal(round(delta_gib)) * p.s3_usd_per_gib_month) / 730
    )
    return Row(
        rate=rate,
        events_per_day=day,
        partitions=partitions,
        brokers=brokers,
        kafka_disk_total_gib=kafka_total,
        broker_disk_gib=broker_disk,
        slots=slots,
        taskmanagers=slots // p.slots_per_taskmanager,
        parallelism=slots,
        dedup_ids=ids,
        state_gib=ids * m.dedup_state_bytes_per_id.value / GIB,
        checkpoint_mib=rate * m.checkpoint_interval_s.value * m.checkpoint_bytes_per_event.value / 2**20,
        redis_day_mib=hash_day / 2**20,
        redis_dataset_mib=dataset,
        redis_limit_mib=limit,
        redis_maxmemory_mb=int(limit * p.redis_maxmemory_share),
        bronze_gib_day=day * m.bronze_bytes_per_event.value / GIB,
        bronze_files_day=p.ingest_runs_per_day * partitions,
        silver_gib_day=day * m.silver_bytes_per_event.value / GIB,
        silver_files_day=24,
        gold_mib_day=24 * p.keys_per_hour * m.gold_bytes_per_row.value / 2**20,
        gold_files_day=24,
        batch_core_s=core_s,
        executors=executors,
        vcpus=vcpus,
        instances=instances,
        usd_per_hour=per_hour.quantize(Decimal("0.01")),
        usd_per_million=(per_hour / (Decimal(rate) * 3600 / 1_000_000)).quantize(Decimal("0.0001")),
    )


def serving_replicas(users: int, m: Inputs = MEASURED, p: Policy = POLICY) -> int:
    """Replicas for `users` dashboards open at once, each refreshing every dashboard_refresh_s."""
    rps = users * p.requests_per_refresh / m.dashboard_refresh_s.value
    return max(p.min_serving_replicas, math.ceil(rps / (m.serving_rps_per_replica.value * p.cpu_target)))


def _n(x: float, digits: int = 0) -> str:
    return f"{x:,.{digits}f}"


def _size(b: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if b >= scale:
            return f"{_n(b / scale, 1)} {unit}"
    return f"{_n(b)} B"


def tables(m: Inputs = MEASURED, p: Policy = POLICY) -> str:
    """The Markdown docs/capacity.md embeds: inputs, one column per rate, serving by users."""
    rows = [row(r, m, p) for r in RATES]
    out = ["| input | value | source |", "|---|---|---|"]
    for f in fields(m):
        fig: Figure = getattr(m, f.name)
        out.append(f"| `{f.name}` | {_n(fig.value, 1 if fig.value < 100 else 0)} {fig.unit} | {fig.source} |")
    head = "| | " + " | ".join(f"{r.rate:,} events/s" for r in rows) + " |"
    out += ["", head, "|---|" + "---|" * len(rows)]

    def line(label: str, values: list[str]) -> None:
        out.append(f"| {label} | " + " | ".join(values) + " |")

    line("events a day", [_n(r.events_per_day) for r in rows])
    line("**Kafka** partitions of orders.v1", [str(r.partitions) for r in rows])
    line("brokers", [str(r.brokers) for r in rows])
    line("disk, all brokers (GiB)", [_n(r.kafka_disk_total_gib) for r in rows])
    line("volume per broker (GiB)", [_n(r.broker_disk_gib) for r in rows])
    line("**Flink** slots = parallelism", [str(r.slots) for r in rows])
    line("TaskManagers", [str(r.taskmanagers) for r in rows])
    line("dedup ids in state", [_n(r.dedup_ids) for r in rows])
    line("state (GiB)", [_n(r.state_gib, 2) for r in rows])
    line("checkpoint, incremental (MiB a checkpoint)", [_n(r.checkpoint_mib, 1) for r in rows])
    line("**Redis** a day of keys (MiB)", [_n(r.redis_day_mib, 2) for r in rows])
    line("dataset within retention (MiB)", [_n(r.redis_dataset_mib, 1) for r in rows])
    line("container limit / maxmemory", [f"{r.redis_limit_mib} Mi / {r.redis_maxmemory_mb} mb" for r in rows])

    def files(gib: float, count: int) -> str:
        return f"{_size(gib * GIB)} in {count:,} files of {_size(gib * GIB / count)}"

    line("**Delta** bronze a day", [files(r.bronze_gib_day, r.bronze_files_day) for r in rows])
    line("silver a day", [files(r.silver_gib_day, r.silver_files_day) for r in rows])
    line("gold a day", [files(r.gold_mib_day / 1024, r.gold_files_day) for r in rows])
    line("**Spark** core-seconds for a day", [_n(r.batch_core_s) for r in rows])
    line(f"executors of {p.executor_cores} cores for one hour", [str(r.executors) for r in rows])
    line("**Cost** vCPUs (Spark: its hour of 24)", [_n(r.vcpus, 1) for r in rows])
    line(f"{p.instance} instances", [str(r.instances) for r in rows])
    line("USD an hour (instances + volumes + 30 days of Delta on S3)", [str(r.usd_per_hour) for r in rows])
    line("**USD per million events**", [f"**{r.usd_per_million}**" for r in rows])
    out += ["", "| dashboard users | requests/s | serving replicas |", "|---|---|---|"]
    for users in USERS:
        rps = users * p.requests_per_refresh / m.dashboard_refresh_s.value
        out.append(f"| {users:,} | {_n(rps)} | {serving_replicas(users, m, p)} |")
    return "\n".join(out) + "\n"


def embed(text: str, generated: str) -> str:
    """`text` with the block between BEGIN and END replaced by `generated`."""
    head, sep, rest = text.partition(BEGIN)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise ValueError(f"{DOC} lacks the markers {BEGIN!r} ... {END!r}")
    return f"{head}{BEGIN}\n{generated}{END}{tail}"


# --- measurements ---------------------------------------------------------------------------------


def measure_redis(settings: Settings, keys: int = POLICY.keys_per_hour) -> int:
    """MEMORY USAGE of one hour's hash of `keys` groups with realistic metrics, on the local Redis."""
    import redis

    from lambda_contract.redis_layout import GroupKey, Metrics

    rnd = random.Random(7)
    client = redis.Redis.from_url(settings.redis_url, password=settings.resolved_redis_password())
    key = f"capacity-{uuid.uuid4().hex[:8]}:speed:hour:2026-12-01T00"
    regions = [f"region-{i}" for i in range(10)]
    currencies = ["EUR", "USD", "GBP", "JPY", "BRL"]
    mapping = {}
    for i in range(keys):
        group = GroupKey(regions[i % 10], f"category-{i // 50}", currencies[i // 10 % 5])
        orders = rnd.randint(1, 5_000)
        mapping[group.field()] = Metrics(
            Decimal(rnd.randint(100, 10**9)).scaleb(-4), orders, rnd.randint(0, 50), orders
        ).encode()
    assert len(mapping) == keys, "the measurement's group keys must be distinct"
    try:
        client.hset(key, mapping=mapping)
        client.expire(key, 3600)  # as the sink's keys carry an expiry
        usage: int = client.memory_usage(key, samples=0)  # type: ignore[assignment]
        return usage
    finally:
        client.delete(key)
        client.close()


def measure_kafka(settings: Settings, events: int = 200_000) -> float:
    """Bytes per generated event in a broker's log segments (the project's producer, no compression)."""
    from kafka.admin import NewTopic

    from lambda_tools import kafka_calls
    from lambda_tools.generator import GeneratorConfig, history
    from lambda_tools.producer import OrdersProducer

    topic = f"capacity-{uuid.uuid4().hex[:8]}"
    partitions = settings.topic_partitions
    log_dirs = _kafka_log_dirs(settings)
    with kafka_calls.admin_client(settings.kafka_bootstrap) as admin:
        kafka_calls.ensure_topics(admin, [NewTopic(topic, partitions, 1)])
    try:
        producer = OrdersProducer(settings.kafka_bootstrap, topic)
        end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
        config = GeneratorConfig(partitions=partitions)
        for record in history(config, end - timedelta(hours=1), end, events):
            producer.send(record, record.timestamp_ms)
        producer.flush(120)
        producer.check()
        producer.close()
        size = sum(f.stat().st_size for d in log_dirs for f in d.glob(f"{topic}-*/*.log"))
        return size / events
    finally:
        with kafka_calls.admin_client(settings.kafka_bootstrap) as admin:
            kafka_calls.delete_topics(admin, [topic])


def _kafka_log_dirs(settings: Settings) -> list[Path]:
    props = settings.state_path / "kafka" / "server.properties"
    for line in props.read_text().splitlines():
        if line.startswith("log.dirs="):
            return [Path(d) for d in line.split("=", 1)[1].split(",")]
    raise ValueError(f"{props} names no log.dirs")


def measure_state(timeline: Path, rate: float) -> tuple[float, float]:
    """(state bytes per dedup id, incremental checkpoint bytes per event) from a freshness run's
    timeline (speed_layer/bench/freshness.py) at a steady `rate` shorter than the dedup TTL: every id
    is still in state, so the state grows by rate x bytes per id each second (least squares over the
    checkpoints after the first, which holds the start-up's state)."""
    cps = [c for c in json.loads(timeline.read_text())["checkpoints"] if c.get("state_size")][1:]
    if len(cps) < 3:
        raise ValueError(f"{timeline}: fewer than 4 completed checkpoints with sizes")
    xs, ys = [float(c["start"]) for c in cps], [float(c["state_size"]) for c in cps]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    interval = (xs[-1] - xs[0]) / (len(xs) - 1)
    incremental = sum(float(c["checkpointed_size"]) for c in cps) / len(cps)
    return slope / rate, incremental / (rate * interval)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lambda_tools.capacity", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument(
        "what",
        nargs="?",
        choices=("tables", "measure-kafka", "measure-redis", "measure-state"),
        default="tables",
    )
    parser.add_argument(
        "timeline", nargs="?", type=Path, help="measure-state: freshness.py's *_timeline.json"
    )
    parser.add_argument("--rate", type=float, help="measure-state: the run's events/s")
    parser.add_argument("--write", action="store_true", help=f"rewrite the tables in {DOC}")
    parser.add_argument("--events", type=int, default=200_000, help="measure-kafka: events to produce")
    args = parser.parse_args(argv)
    if args.what == "measure-state":
        if args.timeline is None or args.rate is None:
            parser.error("measure-state needs a timeline file and --rate")
        per_id, per_event = measure_state(args.timeline, args.rate)
        print(f"{per_id:.1f} bytes of state per dedup id, {per_event:.1f} checkpointed bytes per event")
    elif args.what == "measure-kafka":
        print(f"{measure_kafka(Settings.from_env(), args.events):.1f} bytes per event on the broker's disk")
    elif args.what == "measure-redis":
        keys = POLICY.keys_per_hour
        print(
            f"{measure_redis(Settings.from_env()):,} bytes (MEMORY USAGE) for an hour's hash of {keys:,} keys"
        )
    elif args.write:
        DOC.write_text(embed(DOC.read_text(), tables()))
        print(f"wrote {DOC}")
    else:
        print(tables(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
