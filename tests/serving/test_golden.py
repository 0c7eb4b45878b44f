"""The golden set through the serving layer: gold (truth.full) and Redis (truth.speed) written in
the contract formats, served back per hour and key to the last digit, batch where computed."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal

import pytest
import redis
from fastapi.testclient import TestClient
from serving_support import utc

from lambda_contract.redis_layout import GroupKey, Metrics
from lambda_contract.settings import Settings
from lambda_contract.windows import HOUR, hour_label, hours_of_date
from lambda_testkit import golden
from lambda_testkit.views import write_gold, write_manifest, write_meta, write_speed_hour

pytestmark = pytest.mark.integration


def test_golden_hours_are_served_exactly_from_the_view_the_merge_rule_picks(
    client: TestClient, r: redis.Redis, settings: Settings
) -> None:
    truth = golden.truth()
    (day,) = truth.dates()
    speed: dict[datetime, dict[GroupKey, Metrics]] = defaultdict(dict)
    for (hour, key), metrics in truth.speed.items():
        speed[hour][key] = metrics
    full: dict[datetime, dict[GroupKey, Metrics]] = defaultdict(dict)
    for (hour, key), metrics in truth.full.items():
        full[hour][key] = metrics
    hours = sorted(full)
    batch_hours = hours[: len(hours) // 2 + 1]  # the batch has computed the first hours only
    for hour in hours:
        write_speed_hour(r, settings.redis_layout, hour, speed.get(hour, {}), closed=True)
    write_meta(r, settings.redis_layout, watermark=hours[-1] + 2 * HOUR, updated=utc("2026-11-20T15:20:00Z"))
    write_gold(settings, {h: full[h] for h in batch_hours})
    write_manifest(settings, [h for h in hours_of_date(day) if h in batch_hours])

    first, last = hours_of_date(day)[0], hours_of_date(day)[-1]
    params = {
        "start": hour_label(first),
        "end": hour_label(last + HOUR),
        "group_by": "region,category,currency",
    }
    res = client.get("/v1/revenue/hourly", params=params)
    assert res.status_code == 200, res.text
    served: dict[tuple[str, GroupKey], tuple[Metrics, str]] = {}
    for row in res.json()["rows"]:
        if row["region"] is None:
            continue
        key = GroupKey(row["region"], row["category"], row["currency"])
        metrics = Metrics(Decimal(row["revenue_native"]), row["orders"], row["refunds"], row["events"])
        served[(row["hour"], key)] = (metrics, row["source"])
    expected = {}
    for hour in hours:
        view, source = (full, "batch") if hour in batch_hours else (speed, "speed")
        for key, metrics in view.get(hour, {}).items():
            expected[(hour_label(hour), key)] = (metrics, source)
    assert served == expected
    assert any(s == "speed" for _, s in expected.values()) and any(s == "batch" for _, s in expected.values())
    # the speed view misses the late events the batch has: the merge must not mix them up
    assert truth.late, "the golden set has late events"
