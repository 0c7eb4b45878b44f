"""The capacity model (lambda_tools.capacity): docs/capacity.md embeds its current tables, its
formulas scale as the page says, and its measurements read what they claim to."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest

from lambda_contract.settings import Settings
from lambda_tools import capacity
from lambda_tools.capacity import MEASURED, POLICY, Figure, row


def test_docs_capacity_md_embeds_the_current_tables() -> None:
    text = capacity.DOC.read_text()
    assert capacity.embed(text, capacity.tables()) == text, (
        "docs/capacity.md is stale: run `.venvs/tools/bin/python -m lambda_tools.capacity --write`"
    )


def test_kafka_disk_holds_the_rate_for_the_retention() -> None:
    r = row(capacity.PROD_RATE)
    orders = capacity.PROD_RATE * 604_800 * MEASURED.kafka_bytes_per_event.value * 3
    side = capacity.PROD_RATE * 0.01 * 30 * 86_400 * MEASURED.kafka_bytes_per_event.value * 3
    assert r.kafka_disk_total_gib == pytest.approx((orders + side) / 0.7 / 2**30)
    assert r.brokers * r.broker_disk_gib >= r.kafka_disk_total_gib
    assert r.partitions % r.brokers == 0 and r.partitions >= r.parallelism
    # Three 200 Gi volumes full to the brim (the prod overlay before this model) hold about 1.2 k
    # events/s for 7 days at replication 3: the "about 1.3 k".
    held = 3 * 200 * 2**30 / (3 * MEASURED.kafka_bytes_per_event.value * 604_800)
    assert 1_100 < held < 1_400


def test_sizes_follow_the_rate_except_redis_and_gold() -> None:
    small, big = row(10_000), row(100_000)
    assert big.kafka_disk_total_gib == pytest.approx(10 * small.kafka_disk_total_gib)
    assert big.state_gib == pytest.approx(10 * small.state_gib)
    assert big.dedup_ids == 10 * small.dedup_ids == 10 * 10_000 * 7_200
    assert big.executors == math.ceil(10 * small.batch_core_s / 3_600 / 2)
    assert big.slots >= 10 * small.slots - POLICY.slots_per_taskmanager
    assert big.redis_limit_mib == small.redis_limit_mib and big.gold_mib_day == small.gold_mib_day


def test_a_slower_engine_needs_more_of_it() -> None:
    slower = replace(MEASURED, speed_events_per_s_per_core=Figure(1_000, "events/s/core", "test"))
    assert row(10_000, slower).slots == 20
    fatter = replace(MEASURED, redis_hour_hash_bytes=Figure(10 * 2**20, "B/hash", "test"))
    r = row(10_000, fatter)
    assert r.redis_dataset_mib == pytest.approx(10 * 72 * 4)
    # 2 x 2,880 MiB + 64 MiB = 5,824 MiB, rounded up to 256 Mi; maxmemory 75 % of that.
    assert r.redis_limit_mib == 5_888 and r.redis_maxmemory_mb == 4_416


def test_serving_replicas_by_users() -> None:
    per_replica = MEASURED.serving_rps_per_replica.value * 0.7
    assert capacity.serving_replicas(1) == 3
    users = math.floor(10 * per_replica * 5 / 2)
    assert capacity.serving_replicas(users) == 10
    assert capacity.serving_replicas(users + 3) == 11


def test_cost_is_exact_decimal_per_million_events() -> None:
    r = row(10_000)
    assert isinstance(r.usd_per_million, Decimal) and isinstance(r.usd_per_hour, Decimal)
    assert r.instances == math.ceil(r.vcpus / 4)
    assert r.usd_per_hour >= r.instances * POLICY.instance_usd_per_h
    assert r.usd_per_million == pytest.approx(r.usd_per_hour / Decimal(36), abs=Decimal("0.0001"))


def test_measure_state_reads_the_slope_of_a_timeline(tmp_path: Path) -> None:
    rate, per_id = 2_000, 14.0
    cps = [
        {
            "id": i,
            "start": 1000.0 + 10 * i,
            "state_size": 500_000 + int(rate * per_id * 10 * i),
            "checkpointed_size": 300_000 if i % 4 else 900_000,
        }
        for i in range(1, 13)
    ]
    cps.insert(0, {"id": 0, "start": 1000.0, "state_size": 9_999_999, "checkpointed_size": 1})  # start-up
    timeline = tmp_path / "t.json"
    timeline.write_text(json.dumps({"checkpoints": cps}))
    got_per_id, per_event = capacity.measure_state(timeline, rate)
    assert got_per_id == pytest.approx(per_id)
    assert per_event == pytest.approx((9 * 300_000 + 3 * 900_000) / 12 / (rate * 10))


@pytest.mark.integration
def test_measure_redis_counts_an_hours_hash() -> None:
    """Real Redis (`make up`): MEMORY USAGE of 1,000 fields is more than their bytes, within 4x."""
    used = capacity.measure_redis(Settings.from_env(), keys=1_000)
    payload = 1_000 * len("region-0|category-0|EUR") + 1_000 * len("12345.6789|100|1|100")
    assert payload < used < 4 * payload
