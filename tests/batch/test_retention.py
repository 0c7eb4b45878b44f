"""Records whose event times are older than orders.v1's retention, produced now, all reach bronze
and gold: Kafka's time retention counts from a record's arrival (append-time timestamps,
lambda_contract.topics), not from the event time that a backfill, a replay or a late device carries.

Real Kafka, Spark and Delta. The broker is the test's own, started by the code `make up` runs
(lambda_tools.services), which also creates the topics with the product's configuration
(kafka_calls.platform_topics). It checks retention every second instead of every 5 minutes, so a
deletion that the shared broker makes "within 5 minutes" happens here before the ingest, every time.
A control topic with the same configuration but producer timestamps (CreateTime) gets the same
records and is emptied by retention: they would have been lost, and the check did run.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from batch_helpers import aware, spark_gold
from deltalake import DeltaTable
from kafka import TopicPartition
from kafka.admin import NewTopic
from pyspark.sql import SparkSession

from batch_layer import runner
from lambda_contract.tables import BRONZE
from lambda_contract.topics import DAY_MS, topic_configs
from lambda_contract.windows import from_epoch_ms
from lambda_testkit.processes import wait_until
from lambda_testkit.sandbox import Sandbox, free_port_pair, produce
from lambda_testkit.truth import SentRecord, compute_truth
from lambda_tools import kafka_calls, services
from lambda_tools.generator import GeneratorConfig, history

pytestmark = pytest.mark.integration

EVENTS = 3000
AGE_DAYS = 30  # the events' date, counted back from today: far beyond the 7-day retention
FAST_RETENTION_CHECK = {"log.retention.check.interval.ms": "1000", "log.initial.task.delay.ms": "0"}


@pytest.fixture(scope="module")
def box(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """A sandbox whose Kafka is a private broker holding the platform topics as `make up` makes them."""
    tmp = tmp_path_factory.mktemp("retention")
    sandbox = Sandbox(
        tmp,
        "retention",
        overrides={
            "LAMBDA_KAFKA_BOOTSTRAP": f"localhost:{free_port_pair()}",
            "LAMBDA_STATE_DIR": str(tmp / "state"),
            "LAMBDA_PUSHGATEWAY_URL": "",
        },
    )
    settings = sandbox.settings()
    try:
        services.start_kafka(settings, settings.state_path, FAST_RETENTION_CHECK)
        yield sandbox
    finally:
        services.down(settings)  # stops only what was started under this state directory


def held(bootstrap: str, topic: str) -> int:
    """Records the topic holds now: end minus start offset, summed over its partitions."""
    with kafka_calls.consumer_client(bootstrap) as consumer:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        start, end = consumer.beginning_offsets(parts), consumer.end_offsets(parts)
        return sum(int(end[tp]) - int(start[tp]) for tp in parts)


def test_records_older_than_the_retention_reach_bronze_and_gold(spark: SparkSession, box: Sandbox) -> None:
    settings = box.settings()
    config = topic_configs(settings)[settings.topic_orders]
    assert int(config["retention.ms"]) < AGE_DAYS * DAY_MS, "the events must be older than the retention"
    today = datetime.now(UTC).date()
    day = today - timedelta(days=AGE_DAYS)
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    generated = list(
        history(GeneratorConfig(seed=16, malformed_rate=0.0), start, start + timedelta(days=1), EVENTS)
    )
    # As `lambda-generate history` does: each record's Kafka timestamp is its month-old send time.
    records = [(r.partition, r.key, r.value, r.timestamp_ms) for r in generated]
    truth = compute_truth(SentRecord(r.value, from_epoch_ms(r.timestamp_ms), r.late) for r in generated)
    control = f"{settings.topic_orders}.createtime"
    with kafka_calls.admin_client(settings.kafka_bootstrap) as admin:
        producer_time = config | {"message.timestamp.type": "CreateTime"}
        kafka_calls.ensure_topics(admin, [NewTopic(control, 3, 1, topic_configs=producer_time)])

    sent_from = time.time()
    produce(settings.kafka_bootstrap, settings.topic_orders, records)
    produce(settings.kafka_bootstrap, control, records)
    sent_until = time.time()
    assert wait_until(lambda: held(settings.kafka_bootstrap, control) == 0, 60, interval=0.5), (
        "retention never emptied the control topic: the test proves nothing"
    )
    assert held(settings.kafka_bootstrap, settings.topic_orders) == EVENTS, "retention deleted orders records"

    report = runner.run(spark, settings, [day], today=today, auto=False)
    assert report.ok, report.failures
    assert report.ingested_rows == EVENTS
    assert spark_gold(spark, settings) == truth.view_for_date(truth.full, day)
    # In bronze, the Kafka timestamp is when the record reached Kafka, not the event time sent.
    stamps = DeltaTable(settings.delta_table_url(BRONZE.name)).to_pyarrow_table(columns=["kafka_timestamp"])
    arrived = [aware(t).timestamp() for t in stamps["kafka_timestamp"].to_pylist()]
    assert sent_from - 1 <= min(arrived) and max(arrived) <= sent_until + 1
