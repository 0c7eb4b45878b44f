"""Helpers of the serving tests beyond the test kit (whose `views` writes the speed and batch
views): the suite's tokens and settings, and short constructors for hours, keys and metrics."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from lambda_contract.redis_layout import GroupKey, Metrics
from lambda_contract.settings import Settings

REPO = Path(__file__).resolve().parents[2]
TOKEN = "test-token-serving-0123456789"
OTHER_TOKEN = "second-token-serving-abcdefgh"


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def m(revenue: str, orders: int = 1, refunds: int = 0) -> Metrics:
    return Metrics(Decimal(revenue), orders, refunds, orders + refunds)


def k(region: str = "eu-west", category: str = "books", currency: str = "USD") -> GroupKey:
    return GroupKey(region, category, currency)


def make_settings(tmp_path: Path, environ: Mapping[str, str], **overrides: str) -> Settings:
    env = dict(environ)
    env.setdefault("LAMBDA_HOME", str(REPO))
    pw = REPO / ".local/state/secrets/redis-password"
    if not env.get("LAMBDA_REDIS_PASSWORD_FILE") and not env.get("LAMBDA_REDIS_PASSWORD") and pw.exists():
        env["LAMBDA_REDIS_PASSWORD_FILE"] = str(pw)
    env["LAMBDA_REDIS_PREFIX"] = f"test-serving-{uuid.uuid4().hex[:12]}"
    env["LAMBDA_DELTA_ROOT"] = str(tmp_path / "delta")
    env["LAMBDA_API_TOKENS"] = f"{TOKEN},{OTHER_TOKEN}"
    env.pop("LAMBDA_FX_RATES_PATH", None)
    env.pop("LAMBDA_CORS_ORIGINS", None)
    env.update(overrides)
    return Settings.from_env(env)


def hours_from(start: datetime, count: int) -> list[datetime]:
    return [start + timedelta(hours=i) for i in range(count)]
