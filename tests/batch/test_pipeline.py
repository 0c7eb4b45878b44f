"""Kafka -> bronze -> gold on the golden set with real Kafka, Spark and Delta: exact numbers,
quarantine reasons, manifest counts, idempotent reruns, late data picked up without naming it,
and the same numbers read back without a JVM (delta-rs)."""

from __future__ import annotations

from collections import Counter
from datetime import date

import pytest
from deltalake import DeltaTable
from lambda_contract.settings import Settings
from lambda_tools import golden
from pyspark.sql import SparkSession

from batch_layer import runner
from batch_layer.planning import Why

from batch_helpers import gold_view, produce, spark_gold

pytestmark = pytest.mark.integration

TODAY = date(2026, 11, 25)


def _run(spark: SparkSession, settings: Settings, named: list[date], **kw: object) -> runner.RunReport:
    report = runner.run(spark, settings, named, today=TODAY, **kw)  # type: ignore[arg-type]
    assert report.ok, report.failures
    return report


def test_golden_set_end_to_end(spark: SparkSession, settings: Settings) -> None:
    records = golden.records()
    truth = golden.truth()
    (day,) = truth.dates()

    # Phase 1 first, recompute; then the late phase 2 arrives after D was computed.
    produce(settings, [r for r in records if r.phase == 1])
    first = _run(spark, settings, [day])
    assert first.ingested_rows == sum(r.phase == 1 for r in records)
    assert [r.day for r in first.results] == [day]
    without_late = {k: v for k, v in truth.full.items() if k not in truth.late} 
    gold_1 = spark_gold(spark, settings)
    assert set(gold_1) <= set(truth.full)

    produce(settings, [r for r in records if r.phase == 2])
    second = _run(spark, settings, [])  # nobody names D: new bronze rows make the run pick it up
    assert [(r.day, r.why) for r in second.results] == [(day, Why.NEW_ROWS.value)]
    assert second.results[0].arrived_after_previous_run == sum(r.phase == 2 for r in records)

    gold = spark_gold(spark, settings)
    assert gold == truth.full

    quarantine = spark.read.format("delta").load(settings.delta_table_url("quarantine"))
    assert dict(Counter(r["reason"] for r in quarantine.select("reason").collect())) == truth.malformed
    assert {r["event_date"] for r in quarantine.select("event_date").collect()} == set(truth.malformed_by_date)

    manifest = spark.read.format("delta").load(settings.delta_table_url("coverage_manifest")).collect()
    assert len(manifest) == 24 and all(m["computed"] and m["date"] == day for m in manifest)
    assert sum(m["input_rows"] for m in manifest) == truth.records
    assert sum(m["quarantined"] for m in manifest) == sum(truth.malformed.values())
    assert sum(m["duplicates"] for m in manifest) == truth.duplicates
    assert sum(m["valid"] for m in manifest) == truth.records - sum(truth.malformed.values())
    assert sum(m["arrived_after_previous_run"] for m in manifest) == sum(r.phase == 2 for r in records)
    assert {m["run_id"] for m in manifest} == {second.run_id}
    assert {m["bronze_version"] for m in manifest} == {second.bronze_version}

    # Rerun: nothing new, D named again -> identical gold, nothing picked up automatically.
    gold_files_before = sorted(tuple(r) for r in spark.read.format("delta").load(
        settings.delta_table_url("gold")).orderBy("hour", "region", "category", "currency").collect())
    third = _run(spark, settings, [day])
    assert third.ingested_rows == 0
    assert [(r.day, r.why) for r in third.results] == [(day, Why.NAMED.value)]
    gold_files_after = sorted(tuple(r) for r in spark.read.format("delta").load(
        settings.delta_table_url("gold")).orderBy("hour", "region", "category", "currency").collect())
    assert gold_files_after == gold_files_before
    assert _run(spark, settings, []).results == []

    # Read without a JVM: delta-rs sees the same exact numbers and the manifest.
    table = DeltaTable(settings.delta_table_url("gold")).to_pyarrow_table()
    assert str(table.schema.field("revenue").type) == "decimal128(38, 4)"
    assert gold_view(table.to_pylist()) == truth.full
    rs_manifest = DeltaTable(settings.delta_table_url("coverage_manifest")).to_pyarrow_table().to_pylist()
    assert sorted((m["hour"], m["input_rows"]) for m in rs_manifest) == sorted(
        (m["hour"], m["input_rows"]) for m in manifest
    )
    del without_late
