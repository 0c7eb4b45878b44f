"""Run metrics reach the real Pushgateway under the lambda_batch job (own grouping key, removed after)."""

from __future__ import annotations

import os
import urllib.request
import uuid
from datetime import date
from decimal import Decimal

import pytest

from batch_layer.metrics import JOB, build_registry, push
from batch_layer.transforms import DateResult

pytestmark = pytest.mark.integration


def test_a_run_pushes_its_metrics_to_the_pushgateway() -> None:
    url = os.environ.get("LAMBDA_PUSHGATEWAY_URL") or "http://localhost:9091"
    instance = f"test-{uuid.uuid4().hex[:8]}"
    result = DateResult(date(2026, 11, 20), "named", 1, 88, 31, 5, 57, 6, 16, {"EUR": Decimal(1)}, 2.0)
    assert push(url, build_registry([result], [], 12.5, 88, True, 1_800_000_000.0), {"instance": instance})
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as resp:
            body = resp.read().decode()
        mine = [line for line in body.splitlines() if f'instance="{instance}"' in line]
        assert any(
            line.startswith("lambda_batch_run_duration_seconds{") and line.endswith(" 12.5") for line in mine
        )
        assert any('outcome="quarantined"' in line and line.endswith(" 57") for line in mine)
        assert any(line.startswith("lambda_batch_last_success_timestamp_seconds{") for line in mine)
    finally:
        req = urllib.request.Request(f"{url}/metrics/job/{JOB}/instance/{instance}", method="DELETE")
        urllib.request.urlopen(req, timeout=5).close()


def test_an_unreachable_pushgateway_does_not_fail_the_run() -> None:
    assert not push("http://127.0.0.1:9", build_registry([], [], 1.0, 0, True, 0.0))
