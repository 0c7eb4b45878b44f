"""How the platform's Kafka topics keep records (documented in docs/specs/kafka.md).

One definition for `make up` (lambda_tools.kafka_calls.platform_topics), the KafkaTopics in k8s/
(tests/k8s compares them) and the alert on bronze ingest (tests/observability compares it).

Every topic stamps its records with the broker's append time (LogAppendTime), not the producer's
time. Time retention and the broker's timestamp checks judge a record by that timestamp, so with
producer time a backfill, a replay or a late device whose event times are older than the retention
would be deleted within minutes of arriving, before bronze had read it. With append time every
record is kept the full retention from its arrival. The event time lives in the payload
(docs/contract.md), and no layer reads it from Kafka; the Kafka timestamp only dates a malformed
record whose event time cannot be read, in both layers alike: by the day it reached Kafka.
"""

from __future__ import annotations

from typing import Final

from lambda_contract.settings import Settings

DAY_MS: Final = 24 * 3600 * 1000

TIMESTAMP_TYPE: Final = "LogAppendTime"
ORDERS_RETENTION_MS: Final = 7 * DAY_MS
"""Bronze (Delta) is the master dataset: Kafka keeps a week, for the speed layer's replays."""
OUTPUT_RETENTION_MS: Final = 30 * DAY_MS
"""The DLQ and late topics: a month for people to look at what was rejected or late."""

INGEST_ALERT_SHARE: Final = 0.5
"""Alert when bronze ingest is behind by this share of orders.v1's retention (BronzeIngestBehind)."""


def orders_config() -> dict[str, str]:
    """Topic configuration of orders.v1."""
    return {
        "message.timestamp.type": TIMESTAMP_TYPE,
        "retention.ms": str(ORDERS_RETENTION_MS),
        "cleanup.policy": "delete",
    }


def output_config() -> dict[str, str]:
    """Topic configuration of orders.v1.dlq and orders.v1.late (written by the speed layer)."""
    return {
        "message.timestamp.type": TIMESTAMP_TYPE,
        "retention.ms": str(OUTPUT_RETENTION_MS),
        "cleanup.policy": "delete",
    }


def topic_configs(settings: Settings) -> dict[str, dict[str, str]]:
    """Each platform topic's name (as the settings name it) and its configuration."""
    return {
        settings.topic_orders: orders_config(),
        settings.topic_dlq: output_config(),
        settings.topic_late: output_config(),
    }
