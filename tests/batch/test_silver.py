"""Silver on generated traffic, with real Spark and Delta: every bronze row of the date once, with
the generator's verdict (counted, `duplicate`, or the reason code), and the counted rows add up
to gold and to the truth, per hour and key.

The records reach bronze through the ingest's own transform (`ingest.bronze_rows`) instead of
Kafka: the Kafka positions are given as a broker would, per partition in send order. Run as a
script (`python tests/batch/test_silver.py ROOT`), it builds the same tables under ROOT for the
serving suite, which has no Spark (tests/serving/test_events.py).
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import pytest
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from batch_layer import delta_tables, recompute
from batch_layer.ingest import bronze_rows
from batch_layer.planning import PlannedDate, Why
from lambda_contract.redis_layout import GroupKey, Metrics
from lambda_contract.settings import Settings
from lambda_contract.tables import BRONZE, GOLD, MANIFEST, SILVER
from lambda_testkit.truth import SentRecord, View, compute_truth
from lambda_tools.generator import GeneratedRecord, GeneratorConfig, history

pytestmark = pytest.mark.integration

DAY: Final = date(2026, 11, 20)
EVENTS: Final = 3000
CONFIG: Final = GeneratorConfig(
    seed=19,
    regions=("us-east", "eu-west"),
    categories=("books", "electronics"),
    duplicate_rate=0.05,
    malformed_rate=0.03,
    late_rate=0.01,
)
_KAFKA_SCHEMA: Final = (
    "key binary, value binary, topic string, partition int, offset bigint, timestamp timestamp"
)


def generated() -> list[GeneratedRecord]:
    start = datetime(DAY.year, DAY.month, DAY.day, 1, tzinfo=UTC)
    return list(history(CONFIG, start, start + timedelta(hours=22), EVENTS))


def positions(records: Iterable[GeneratedRecord]) -> list[tuple[int, int]]:
    """(partition, offset) of each record, as a broker appends them."""
    next_offset: Counter[int] = Counter()
    out = []
    for r in records:
        out.append((r.partition, next_offset[r.partition]))
        next_offset[r.partition] += 1
    return out


@dataclass(frozen=True)
class Built:
    run_id: str
    records: list[GeneratedRecord]

    def expected(self) -> dict[tuple[int, int], str]:
        """The generator's verdict per Kafka position: `valid`, `late`, `duplicate` or a reason."""
        return dict(zip(positions(self.records), (r.expect for r in self.records), strict=True))

    def truth(self) -> View:
        sent = (
            SentRecord(r.value, datetime.fromtimestamp(r.timestamp_ms / 1000, UTC), r.late)
            for r in self.records
        )
        return compute_truth(sent).full


def build(spark: SparkSession, settings: Settings, records: list[GeneratedRecord]) -> Built:
    """Bronze from `records`, then the recompute of every date bronze holds, in one run."""
    rows = [
        (r.key, r.value, settings.topic_orders, p, o, datetime.fromtimestamp(r.timestamp_ms / 1000, UTC))
        for r, (p, o) in zip(records, positions(records), strict=True)
    ]
    recompute.ensure_tables(spark, settings)
    kafka = spark.createDataFrame(rows, _KAFKA_SCHEMA)
    bronze_rows(kafka).write.format("delta").mode("append").save(delta_tables.url(settings, BRONZE))
    version = delta_tables.version(spark, settings, BRONZE)
    run_id = recompute.new_run_id()
    for day in sorted(recompute.bronze_counts(spark, settings, version)):
        recompute.recompute_date(spark, settings, PlannedDate(day, Why.NAMED), version, run_id)
    return Built(run_id, records)


def silver_rows(settings: Settings) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = (
        DeltaTable(settings.delta_table_url(SILVER.name)).to_pyarrow_table().to_pylist()
    )
    return rows


def counted_view(rows: Iterable[dict[str, Any]]) -> View:
    """The counted silver rows summed per (hour, key), as gold sums them."""
    out: View = {}
    for r in rows:
        if not r["counted"]:
            continue
        at = (r["hour"].replace(tzinfo=UTC), GroupKey(r["region"], r["category"], r["currency"]))
        sign = 1 if r["event_type"] == "purchase" else -1
        m = out.get(at, Metrics(Decimal(0), 0, 0, 0))
        out[at] = Metrics(
            m.revenue + sign * r["amount"], m.orders + (sign > 0), m.refunds + (sign < 0), m.events + 1
        )
    return out


def gold_rows_view(settings: Settings) -> View:
    rows = DeltaTable(settings.delta_table_url(GOLD.name)).to_pyarrow_table().to_pylist()
    return {
        (r["hour"].replace(tzinfo=UTC), GroupKey(r["region"], r["category"], r["currency"])): Metrics(
            r["revenue"], r["orders"], r["refunds"], r["events"]
        )
        for r in rows
    }


@pytest.fixture(scope="module")
def built(
    spark: SparkSession, base_settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Settings, Built]:
    root = tmp_path_factory.mktemp("silver")
    settings = replace(base_settings, delta_root=str(root / "delta"))
    return settings, build(spark, settings, generated())


def test_silver_holds_every_bronze_row_once_with_the_generators_verdict(
    built: tuple[Settings, Built],
) -> None:
    settings, run = built
    rows = silver_rows(settings)
    got = {(r["kafka_partition"], r["kafka_offset"]): r for r in rows}
    assert len(got) == len(rows) == EVENTS, "silver lost or doubled a bronze row"
    expected = run.expected()
    assert set(got) == set(expected)
    wrong = []
    for at, verdict in expected.items():
        r = got[at]
        want = (True, None) if verdict in ("valid", "late") else (False, verdict)
        if (r["counted"], r["reason"]) != want:
            wrong.append((at, verdict, r["counted"], r["reason"]))
    assert not wrong, wrong[:10]
    kinds = Counter(r["reason"] or "counted" for r in rows)
    assert (
        kinds["duplicate"] > 50 and sum(v for k, v in kinds.items() if k not in ("counted", "duplicate")) > 30
    )
    assert {r["run_id"] for r in rows} == {run.run_id}


def test_counted_rows_add_up_to_gold_and_the_truth(built: tuple[Settings, Built]) -> None:
    settings, run = built
    view = counted_view(silver_rows(settings))
    assert view == gold_rows_view(settings)
    assert view == run.truth()


def test_silver_agrees_with_the_manifest_per_hour(built: tuple[Settings, Built]) -> None:
    settings, run = built
    rows = silver_rows(settings)
    dups = Counter(r["hour"].replace(tzinfo=UTC) for r in rows if r["reason"] == "duplicate")
    bad = Counter(r["hour"].replace(tzinfo=UTC) for r in rows if r["reason"] not in (None, "duplicate"))
    manifest = DeltaTable(settings.delta_table_url(MANIFEST.name)).to_pyarrow_table().to_pylist()
    assert {m["run_id"] for m in manifest} == {run.run_id}
    for m in manifest:
        hour = m["hour"].replace(tzinfo=UTC)
        assert (m["duplicates"], m["quarantined"]) == (dups[hour], bad[hour]), hour


def test_one_hour_is_one_file_sorted_by_key_and_kafka_position(built: tuple[Settings, Built]) -> None:
    settings, _ = built
    table = DeltaTable(settings.delta_table_url(SILVER.name))
    assert table.metadata().partition_columns == ["date", "hour_of_day"]
    folders = Counter(str(Path(f).parent) for f in table.file_uris())
    assert folders and set(folders.values()) == {1}, folders
    one = table.to_pyarrow_table(filters=[("date", "=", DAY), ("hour_of_day", "=", 13)])
    assert one.num_rows > 0 and {h.hour for h in one["hour"].to_pylist()} == {13}
    order = [
        (r["region"] or "", r["category"] or "", r["currency"] or "", r["kafka_partition"], r["kafka_offset"])
        for r in one.to_pylist()
    ]
    valid = [o for o in order if o[0]]
    assert valid == sorted(valid)


def main(argv: list[str]) -> int:
    """Build the generated day under argv[0] (a Delta root); print the run id and the truth."""
    from batch_layer.spark import build_session

    settings = replace(
        Settings.from_env(), delta_root=argv[0], spark_master="local[2]", spark_shuffle_partitions=2
    )
    spark = build_session(settings, app_name="silver-for-serving-tests")
    try:
        run = build(spark, settings, generated())
    finally:
        spark.stop()
    print(json.dumps({"run_id": run.run_id, "events": EVENTS}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
