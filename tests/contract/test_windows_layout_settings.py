"""Hour windows, the Redis layout codecs, the Delta schemas and the settings."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lambda_contract import settings as settings_mod
from lambda_contract.redis_layout import GroupKey, Metrics, RedisLayout
from lambda_contract.settings import Settings, SettingsError
from lambda_contract.tables import BRONZE, GOLD, MANIFEST, QUARANTINE, event_date
from lambda_contract.windows import (
    hour_id,
    hour_label,
    hour_start,
    hours_between,
    hours_of_date,
    is_closed,
    parse_hour_id,
)

pytestmark = pytest.mark.unit


def test_hours_are_utc_whatever_the_offset() -> None:
    t = datetime(2026, 11, 25, 0, 30, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    assert hour_start(t) == datetime(2026, 11, 24, 19, 0, tzinfo=UTC)
    assert hour_id(t) == "2026-11-24T19" and parse_hour_id("2026-11-24T19") == hour_start(t)
    assert hour_label(t) == "2026-11-24T19:00:00Z"


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        hour_start(datetime(2026, 11, 25, 13))


def test_hour_ranges_are_start_inclusive_end_exclusive() -> None:
    start = datetime(2026, 11, 25, 22, tzinfo=UTC)
    assert list(hours_between(start, start + timedelta(hours=3))) == [
        start + timedelta(hours=i) for i in range(3)
    ]
    assert len(hours_of_date(date(2026, 3, 29))) == 24  # no DST in UTC


def test_an_hour_closes_at_end_plus_lateness() -> None:
    h = datetime(2026, 11, 25, 13, tzinfo=UTC)
    lateness = timedelta(minutes=5)
    assert not is_closed(h, None, lateness)
    assert not is_closed(h, datetime(2026, 11, 25, 14, 4, 59, 999000, tzinfo=UTC), lateness)
    assert is_closed(h, datetime(2026, 11, 25, 14, 5, tzinfo=UTC), lateness)


@given(
    st.decimals(min_value=Decimal("-1e20"), max_value=Decimal("1e20"), places=4),
    st.integers(0, 10**9), st.integers(0, 10**9),
)  # fmt: skip
def test_metrics_codec_round_trips_exactly(revenue: Decimal, orders: int, refunds: int) -> None:
    m = Metrics(revenue, orders, refunds, orders + refunds)
    encoded = m.encode()
    assert Metrics.decode(encoded.encode()) == m
    assert encoded.split("|")[0].split(".")[1].__len__() == 4


def test_redis_keys_follow_the_documented_layout() -> None:
    layout = RedisLayout("p")
    h = datetime(2026, 11, 25, 13, tzinfo=UTC)
    assert layout.hour(h) == "p:speed:hour:2026-11-25T13"
    assert layout.late(h) == "p:speed:late:2026-11-25T13"
    assert layout.duplicates(h) == "p:speed:dups:2026-11-25T13"
    assert layout.malformed(date(2026, 11, 25)) == "p:speed:dlq:2026-11-25"
    assert layout.hours() == "p:speed:hours" and layout.meta() == "p:speed:meta"
    key = GroupKey("eu-west", "home_garden", "EUR")
    assert GroupKey.parse(key.field().encode()) == key


def test_delta_schemas_are_exact_money_and_partitioned() -> None:
    assert GOLD.partition_by == ("date",) and BRONZE.partition_by == ("event_date",)
    assert {c.name: c.type for c in GOLD.columns}["revenue"] == "decimal(38,4)"
    for table in (BRONZE, QUARANTINE, GOLD, MANIFEST):
        assert not any(c.type in ("float", "double") for c in table.columns)
        assert set(table.partition_by) <= set(table.column_names)
    assert "`revenue` decimal(38,4) NOT NULL" in GOLD.ddl()


def test_event_date_falls_back_to_the_kafka_timestamp() -> None:
    kafka_ts = datetime(2026, 11, 26, 0, 0, 1, tzinfo=UTC)
    assert event_date(None, kafka_ts) == date(2026, 11, 26)
    assert event_date(datetime(2026, 11, 25, 23, 59, tzinfo=UTC), kafka_ts) == date(2026, 11, 25)


def test_settings_have_local_defaults() -> None:
    s = Settings.from_env({})
    assert s.kafka_bootstrap == "localhost:9092" and s.topic_orders == "orders.v1"
    assert s.allowed_lateness == timedelta(minutes=5) and s.out_of_orderness == timedelta(seconds=30)
    assert s.api_tokens == () and s.redis_layout == RedisLayout("lambda")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"LAMBDA_ALLOWED_LATENESS_S": "five"}, "LAMBDA_ALLOWED_LATENESS_S must be an integer"),
        ({"LAMBDA_ALLOWED_LATENESS_S": "-1"}, "LAMBDA_ALLOWED_LATENESS_S must be >= 0"),
        ({"LAMBDA_API_PORT": "70000"}, "LAMBDA_API_PORT must be a TCP port"),
        ({"LAMBDA_TOPIC_ORDERS": "orders v1"}, "LAMBDA_TOPIC_ORDERS must be a Kafka topic name"),
        ({"LAMBDA_REDIS_URL": "http://x"}, "LAMBDA_REDIS_URL must be a redis://"),
        ({"LAMBDA_REDIS_URL": "redis://:pw@x:6379"}, "must not carry credentials"),
        ({"LAMBDA_API_TOKENS": "short"}, "LAMBDA_API_TOKENS: every token must be at least 16"),
        ({"LAMBDA_DEDUP_TTL_S": "600"}, "LAMBDA_DEDUP_TTL_S must be >= LAMBDA_ALLOWED_LATENESS_S"),
        ({"LAMBDA_REDIS_PREFIX": "a b"}, "LAMBDA_REDIS_PREFIX must be"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_the_redis_password_comes_from_the_variable_or_its_file(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    assert (
        Settings.from_env({"LAMBDA_REDIS_PASSWORD_FILE": str(secret)}).resolved_redis_password() == "s3cret"
    )
    assert Settings.from_env({"LAMBDA_REDIS_PASSWORD": "x"}).resolved_redis_password() == "x"
    assert Settings.from_env({}).resolved_redis_password() is None
    missing = Settings.from_env({"LAMBDA_REDIS_PASSWORD_FILE": str(tmp_path / "nope")})
    with pytest.raises(SettingsError, match="LAMBDA_REDIS_PASSWORD_FILE"):
        missing.resolved_redis_password()


def test_every_setting_is_documented_once() -> None:
    names = [name for name, _, doc in settings_mod.documented()]
    assert len(names) == len(set(names)) and all(n.startswith("LAMBDA_") for n in names)
    assert all(doc for _, _, doc in settings_mod.documented())
