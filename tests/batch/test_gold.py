"""Gold's deduplication on hand-made classified rows: the first copy of an event_id wins even when
a later copy carries other fields (another group), and the valid copies are all counted."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest
from pyspark.sql import SparkSession

from batch_layer.transforms import gold_of

pytestmark = pytest.mark.integration

DAY = date(2026, 11, 20)
H13 = datetime(2026, 11, 20, 13, tzinfo=UTC)
H14 = datetime(2026, 11, 20, 14, tzinfo=UTC)


def test_the_first_copy_wins_and_a_group_of_later_copies_only_is_not_gold(spark: SparkSession) -> None:
    def row(
        event_id: str, ts_s: int, offset: int, hour: datetime, region: str, amount: str
    ) -> tuple[object, ...]:
        kafka_ts = datetime(2026, 11, 20, 13, tzinfo=UTC).replace(second=ts_s)
        return (kafka_ts, 0, offset, hour, event_id, "purchase", region, "books", "EUR", Decimal(amount))

    rows = [
        # e1: the copy at offset 5 is first (earlier Kafka timestamp), the later one says eu-north.
        row("e1", 1, 5, H13, "eu-west", "10.0000"),
        row("e1", 2, 9, H14, "eu-north", "99.0000"),
        # e2: same timestamp, the lower offset wins.
        row("e2", 3, 8, H13, "eu-west", "1.5000"),
        row("e2", 3, 7, H13, "eu-west", "2.2500"),
        row("e3", 4, 1, H14, "eu-west", "0.0001"),
    ]
    schema = (
        "kafka_timestamp timestamp, partition int, offset bigint, hour timestamp, event_id string, "
        "event_type string, region string, category string, currency string, amount decimal(16,4)"
    )
    groups = {
        (r["hour"].replace(tzinfo=UTC), r["region"]): (r["revenue"], r["events"], r["valid_rows"])
        for r in gold_of(spark.createDataFrame(rows, schema), DAY).collect()
    }
    assert groups == {
        (H13, "eu-west"): (Decimal("12.2500"), 2, 3),
        (H14, "eu-north"): (None, 0, 1),
        (H14, "eu-west"): (Decimal("0.0001"), 1, 1),
    }
