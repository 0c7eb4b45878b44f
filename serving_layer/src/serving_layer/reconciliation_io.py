"""I/O of the reconciliation: read one date's inputs from Redis and Delta, publish its gauges.

The gauges of each date go to the Pushgateway as their own group (job="lambda_reconciliation",
grouping key date=D), so they persist after the job, one date never overwrites another's, and a
residual alerts for the date that has it until a later reconciliation of that date clears it.

Redis is read in one pipelined round trip (24 hour hashes, 24 late hashes, 24 duplicate hashes,
the hours hash and the date's DLQ counters); Delta through delta-rs with partition filters, so
only the date's files are read. Used by the CLI and, in a worker thread, by the API.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import redis
from prometheus_client import CollectorRegistry, Gauge, push_to_gateway
from redis.exceptions import RedisClusterException

from lambda_contract import metrics as m
from lambda_contract import redis_clients
from lambda_contract.redis_layout import GroupKey, Metrics
from lambda_contract.settings import Settings
from lambda_contract.storage import delta_rs_options
from lambda_contract.tables import GOLD, MANIFEST, QUARANTINE
from lambda_contract.windows import hours_of_date, parse_hour_id
from serving_layer.reconciliation import Inputs
from serving_layer.stores import latest_manifest, load_gold, open_table

if TYPE_CHECKING:
    from lambda_contract.redis_clients import SyncClient


class NotComputedError(LookupError):
    """The batch layer has not computed the date, so there is nothing exact to compare with."""


def _decode(raw: dict[bytes, bytes]) -> dict[GroupKey, Metrics]:
    return {GroupKey.parse(k): Metrics.decode(v) for k, v in raw.items()}


def _client(settings: Settings) -> SyncClient:
    """The reader's client (lambda_contract.redis_clients): a date is one pipelined read per node."""
    return redis_clients.sync_client(settings, timeout_s=30)


def read_speed(settings: Settings, day: date) -> dict[str, Any]:
    """The date's speed view, late counters, suppressed duplicates, hour status and DLQ counts."""
    layout = settings.redis_layout
    hours = hours_of_date(day)
    client = _client(settings)
    try:
        pipe = client.pipeline(transaction=False)
        for hour in hours:
            pipe.hgetall(layout.hour(hour))
            pipe.hgetall(layout.late(hour))
            pipe.hgetall(layout.duplicates(hour))
        pipe.hgetall(layout.hours())
        pipe.hgetall(layout.malformed(day))
        replies = pipe.execute()
    except RedisClusterException as exc:  # a slot with no master (failover): no RedisError
        raise redis.ConnectionError(f"Redis Cluster: {exc}") from exc
    finally:
        client.close()
    speed, late, dups = {}, {}, {}
    for i, hour in enumerate(hours):
        hour_raw, late_raw, dup_raw = replies[3 * i : 3 * i + 3]
        if hour_raw:
            speed[hour] = _decode(hour_raw)
        if late_raw:
            late[hour] = _decode(late_raw)
        if dup_raw:
            dups[hour] = sum(int(v) for v in dup_raw.values())
    status = {}
    for k, v in replies[-2].items():
        try:
            hour = parse_hour_id(k.decode())
        except ValueError:
            continue
        if hour.date() == day:
            status[hour] = v.decode()
    dlq = {k.decode(): int(v) for k, v in replies[-1].items()}
    return {"speed": speed, "late": late, "speed_duplicates": dups, "speed_status": status, "dlq": dlq}


def read_batch(settings: Settings, day: date) -> dict[str, Any]:
    """The date's gold rows, computed hours and duplicates (manifest), quarantine by reason."""
    manifest = open_table(settings.delta_table_url(MANIFEST.name), delta_rs_options(settings))
    if manifest is None:
        raise NotComputedError(
            f"{day} has not been computed: no batch run has written the coverage manifest yet"
        )
    on_day = [("date", "=", day)]
    latest = latest_manifest(manifest, on_day)
    computed = frozenset(h for h, row in latest.items() if row["computed"])
    if not computed:
        raise NotComputedError(f"{day} has not been computed by the batch layer yet (make batch DATE={day})")
    gold_table = open_table(settings.delta_table_url(GOLD.name), delta_rs_options(settings))
    quarantine: dict[str, int] = {}
    q_table = open_table(settings.delta_table_url(QUARANTINE.name), delta_rs_options(settings))
    if q_table is not None:
        for r in q_table.to_pyarrow_table(columns=["reason"], filters=[("event_date", "=", day)]).to_pylist():
            quarantine[r["reason"]] = quarantine.get(r["reason"], 0) + 1
    return {
        "gold": load_gold(gold_table, on_day) if gold_table is not None else {},
        "computed_hours": computed,
        "batch_duplicates": {h: int(row["duplicates"]) for h, row in latest.items()},
        "quarantine": quarantine,
    }


def read_inputs(settings: Settings, day: date) -> Inputs:
    """Everything the reconciliation of `day` needs; NotComputedError if the batch has not run for it."""
    batch = read_batch(settings, day)
    return Inputs(day=day, **read_speed(settings, day), **batch)


def gauges(totals: dict[str, Any]) -> dict[str, float]:
    """The reconciliation gauges (lambda_contract.metrics) from a report's totals."""
    return {
        m.RECON_DRIFT.name: float(totals["drift_ratio"]),
        m.RECON_RESIDUAL_EVENTS.name: float(totals["residual_events"]),
        m.RECON_RESIDUAL_REVENUE.name: float(Decimal(totals["residual_revenue_usd"])),
        m.RECON_LAST_RUN.name: datetime.now(UTC).timestamp(),
    }


JOB = "lambda_reconciliation"


def push_gauges(pushgateway_url: str, day: date, values: dict[str, float]) -> None:
    """Replace the date's group on the Pushgateway (job="lambda_reconciliation", date=D)."""
    registry = CollectorRegistry()
    for name, value in values.items():
        spec = m.by_name(name)
        Gauge(name, spec.doc, list(spec.labels), registry=registry).labels(day.isoformat()).set(value)
    push_to_gateway(
        pushgateway_url, job=JOB, registry=registry, grouping_key={"date": day.isoformat()}, timeout=10
    )
