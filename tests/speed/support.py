"""Helpers of the speed suite beyond the test kit: generated history pre-loaded into a topic."""

from __future__ import annotations

from datetime import UTC, datetime

from lambda_testkit.sandbox import produce
from lambda_testkit.truth import SentRecord, Truth, compute_truth
from lambda_tools.generator import GeneratedRecord, GeneratorConfig, history


def preload_history(
    bootstrap: str, topic: str, config: GeneratorConfig, start: datetime, end: datetime, events: int
) -> tuple[list[GeneratedRecord], Truth]:
    """Generated history from `start` to `end` produced into `topic`, and its truth."""
    records = list(history(config, start, end, events))
    truth = compute_truth(
        SentRecord(r.value, datetime.fromtimestamp(r.timestamp_ms / 1000, UTC)) for r in records
    )
    produce(bootstrap, topic, [(r.partition, r.key, r.value, r.timestamp_ms) for r in records])
    return records, truth
