"""Kafka -> bronze -> gold on the golden set, with real Kafka, Spark and Delta.

One module fixture plays the story once (Spark is slow to plan on 2 cores):
1. phase-1 records are produced and date D is computed;
2. the late phase-2 records arrive and are ingested; a recompute of D in a separate process (the
   CLI with its own JVM) is SIGKILLed while it writes gold;
3. a run that names no date picks D up (bronze has rows the manifest has not seen) and fixes it;
4. a rerun naming D writes identical gold.
The tests then check each behaviour on what the story left behind.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from batch_helpers import aware, gold_view
from deltalake import DeltaTable
from pyspark.sql import SparkSession

from batch_layer import planning, recompute, runner
from batch_layer.ingest import LAG_GROUP
from batch_layer.maintain import maintain
from batch_layer.planning import Why
from lambda_contract.settings import Settings
from lambda_testkit import golden
from lambda_testkit.sandbox import produce
from lambda_testkit.truth import Truth, View

pytestmark = pytest.mark.integration

TODAY = date(2026, 11, 25)
CLI = Path(sys.executable).with_name("lambda-batch")


@dataclass
class Story:
    settings: Settings
    truth: Truth
    day: date
    phase1_truth: Truth
    first: runner.RunReport
    gold_after_first: View
    gold_version_after_first: int
    killed_while_writing: bool
    gold_version_after_kill: int
    gold_after_kill: View
    second: runner.RunReport
    third: runner.RunReport
    gold_rows_second: list[tuple[Any, ...]] = field(default_factory=list)
    gold_rows_third: list[tuple[Any, ...]] = field(default_factory=list)


def _run(spark: SparkSession, settings: Settings, named: list[date], **kw: Any) -> runner.RunReport:
    report = runner.run(spark, settings, named, today=TODAY, **kw)
    assert report.ok, report.failures
    return report


def _gold_rows(spark: SparkSession, settings: Settings) -> list[tuple[Any, ...]]:
    df = spark.read.format("delta").load(settings.delta_table_url("gold"))
    return sorted(tuple(r) for r in df.collect())


def _delta_rs_gold(settings: Settings) -> tuple[int, View]:
    table = DeltaTable(settings.delta_table_url("gold"))
    return table.version(), gold_view(table.to_pyarrow_table().to_pylist())


def _kill_during_gold_write(settings: Settings, day: date) -> bool:
    """Run the CLI for `day`; SIGKILL its process group (Python driver + JVM) as soon as a new gold
    data file appears, i.e. while the gold write is in flight and before its commit."""
    gold_path = Path(settings.delta_table_url("gold"))
    files_before = set(gold_path.rglob("*.parquet"))
    env = dict(os.environ)
    env.update(
        LAMBDA_TOPIC_ORDERS=settings.topic_orders,
        LAMBDA_DELTA_ROOT=settings.delta_root,
        LAMBDA_BATCH_CHECKPOINT_DIR=settings.batch_checkpoint_dir,
        LAMBDA_SPARK_MASTER="local[1]",
        LAMBDA_SPARK_SHUFFLE_PARTITIONS="2",
        LAMBDA_PUSHGATEWAY_URL="",
    )
    proc = subprocess.Popen(
        [str(CLI), "run", "--date", day.isoformat(), "--no-ingest", "--no-auto"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    killed = False
    try:
        assert proc.stderr is not None
        for line in proc.stderr:
            if "writing gold" in line:
                break
        deadline = time.monotonic() + 180
        while not killed and time.monotonic() < deadline and proc.poll() is None:
            if set(gold_path.rglob("*.parquet")) - files_before:
                os.killpg(proc.pid, signal.SIGKILL)
                killed = True
            time.sleep(0.002)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    return killed


@pytest.fixture(scope="module")
def story(spark: SparkSession, base_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Any:
    from kafka.admin import KafkaAdminClient, NewTopic

    records = golden.records()
    truth = golden.truth()
    (day,) = truth.dates()
    root = tmp_path_factory.mktemp("story")
    topic = f"test.batch.story.{os.getpid()}.{int(time.time())}"
    settings = Settings.from_env(
        {
            **os.environ,
            "LAMBDA_TOPIC_ORDERS": topic,
            "LAMBDA_DELTA_ROOT": str(root / "delta"),
            "LAMBDA_BATCH_CHECKPOINT_DIR": str(root / "ckpt"),
            "LAMBDA_PUSHGATEWAY_URL": "",
        }
    )
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    # Kept forever: the golden records carry November 2026 timestamps, which the broker's 7-day
    # time retention would delete (its check runs every 5 minutes) once that is a week ago.
    admin.create_topics([NewTopic(topic, 3, 1, topic_configs={"retention.ms": "-1"})])
    try:
        phase1 = [r for r in records if r.phase == 1]
        produce(settings.kafka_bootstrap, topic, [r.kafka_record for r in phase1])
        first = _run(spark, settings, [day])
        version1, gold1 = _delta_rs_gold(settings)

        produce(settings.kafka_bootstrap, topic, [r.kafka_record for r in records if r.phase == 2])
        runner.run(spark, settings, [], today=TODAY, auto=False)  # ingest only: no date named
        killed = _kill_during_gold_write(settings, day)
        version_kill, gold_kill = _delta_rs_gold(settings)

        second = _run(spark, settings, [])
        rows2 = _gold_rows(spark, settings)
        third = _run(spark, settings, [day])
        rows3 = _gold_rows(spark, settings)
        yield Story(
            settings,
            truth,
            day,
            golden.compute(phase1),
            first,
            gold1,
            version1,
            killed,
            version_kill,
            gold_kill,
            second,
            third,
            rows2,
            rows3,
        )
    finally:
        admin.close()
        # A fresh client: the first one's connection may have idled out during the long story.
        cleanup = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        try:
            cleanup.delete_topics([topic])
        finally:
            cleanup.close()


def test_first_run_gold_equals_the_truth_of_what_had_arrived(story: Story) -> None:
    assert story.first.ingested_rows == sum(1 for r in golden.records() if r.phase == 1)
    assert story.gold_after_first == story.phase1_truth.full


def test_the_ingest_commits_what_it_read_to_the_lag_monitoring_group(story: Story) -> None:
    """kafkaExporter's lag for the ingest: the group's offsets are the topic's ends once all is read."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.admin import KafkaAdminClient

    topic = story.settings.topic_orders
    admin = KafkaAdminClient(bootstrap_servers=story.settings.kafka_bootstrap)
    consumer = KafkaConsumer(bootstrap_servers=story.settings.kafka_bootstrap)
    try:
        committed = {
            tp.partition: meta.offset
            for tp, meta in admin.list_consumer_group_offsets(LAG_GROUP).items()
            if tp.topic == topic
        }
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in range(3)])
    finally:
        admin.close()
        consumer.close()
    assert committed == {tp.partition: offset for tp, offset in ends.items()}
    assert sum(committed.values()) == len(golden.records())


def test_sigkill_during_the_gold_write_leaves_the_previous_version(story: Story) -> None:
    assert story.killed_while_writing, "the driver finished before a new gold file appeared"
    assert story.gold_version_after_kill == story.gold_version_after_first, "kill landed after the commit"
    assert story.gold_after_kill == story.gold_after_first


def test_late_data_is_picked_up_by_the_next_run_without_naming_the_date(story: Story) -> None:
    assert [(r.day, r.why) for r in story.second.results] == [(story.day, Why.NEW_ROWS.value)]
    late = sum(1 for r in golden.records() if r.phase == 2)
    assert story.second.results[0].arrived_after_previous_run == late


def test_gold_equals_the_golden_full_view_exactly(spark: SparkSession, story: Story) -> None:
    df = spark.read.format("delta").load(story.settings.delta_table_url("gold"))
    assert dict(df.dtypes)["revenue"] == "decimal(38,4)"
    assert gold_view(r.asDict() for r in df.collect()) == story.truth.full


def test_quarantine_holds_every_malformed_record_with_its_reason(spark: SparkSession, story: Story) -> None:
    q = spark.read.format("delta").load(story.settings.delta_table_url("quarantine")).collect()
    assert dict(Counter(r["reason"] for r in q)) == story.truth.malformed
    assert {r["event_date"] for r in q} == set(story.truth.malformed_by_date)


def test_manifest_covers_24_hours_with_exact_counts(spark: SparkSession, story: Story) -> None:
    m = spark.read.format("delta").load(story.settings.delta_table_url("coverage_manifest")).collect()
    truth = story.truth
    malformed = sum(truth.malformed.values())
    assert len(m) == 24 and all(r["computed"] and r["date"] == story.day for r in m)
    assert len({aware(r["hour"]) for r in m}) == 24
    assert sum(r["input_rows"] for r in m) == truth.records
    assert sum(r["quarantined"] for r in m) == malformed
    assert sum(r["valid"] for r in m) == truth.records - malformed
    assert sum(r["duplicates"] for r in m) == truth.duplicates
    assert {r["run_id"] for r in m} == {story.third.run_id}
    assert {r["bronze_version"] for r in m} == {story.third.bronze_version}


def test_a_rerun_writes_identical_gold_and_nothing_is_left_to_pick_up(
    spark: SparkSession, story: Story
) -> None:
    assert story.third.ingested_rows == 0
    assert [(r.day, r.why) for r in story.third.results] == [(story.day, Why.NAMED.value)]
    assert story.gold_rows_third == story.gold_rows_second
    version = story.third.bronze_version
    assert version is not None
    pending = planning.plan(
        [],
        recompute.bronze_counts(spark, story.settings, version),
        recompute.computed_counts(spark, story.settings),
        TODAY,
    )
    assert pending == []


def test_delta_rs_reads_the_same_gold_and_manifest_without_a_jvm(spark: SparkSession, story: Story) -> None:
    table = DeltaTable(story.settings.delta_table_url("gold")).to_pyarrow_table()
    assert str(table.schema.field("revenue").type) == "decimal128(38, 4)"
    assert gold_view(table.to_pylist()) == story.truth.full
    rs = DeltaTable(story.settings.delta_table_url("coverage_manifest")).to_pyarrow_table().to_pylist()
    spark_m = spark.read.format("delta").load(story.settings.delta_table_url("coverage_manifest")).collect()
    assert sorted((aware(r["hour"]), r["input_rows"], r["duplicates"]) for r in rs) == sorted(
        (aware(r["hour"]), r["input_rows"], r["duplicates"]) for r in spark_m
    )


def _live_files(table: Path) -> set[Path]:
    return {Path(unquote(u.removeprefix("file://"))) for u in DeltaTable(str(table)).file_uris()}


def test_maintenance_compacts_and_vacuums_without_changing_gold(spark: SparkSession, story: Story) -> None:
    # Runs last: a forced zero retention removes, among others, the orphan files of the killed run.
    gold_path = Path(story.settings.delta_table_url("gold"))
    live = _live_files(gold_path)
    assert set(gold_path.rglob("*.parquet")) - live, "the killed run should have left orphan files"
    results = maintain(spark, story.settings, retention_hours=0, force=True)
    assert {r.table for r in results} == {
        "bronze",
        "quarantine",
        "gold",
        "silver_events",
        "coverage_manifest",
    }
    assert set(gold_path.rglob("*.parquet")) == _live_files(gold_path)
    assert gold_view(DeltaTable(str(gold_path)).to_pyarrow_table().to_pylist()) == story.truth.full
