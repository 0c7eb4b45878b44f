"""A real `lambda-serve` subprocess over realistic data, for the API, load and access tests.

The data is the generator's ground truth for two days, written in the contract's formats: the
first day as Delta gold + coverage manifest (what a batch run leaves), the second as the speed
view in Redis (what the speed layer's sink leaves). So requests exercise both merge paths, the FX
conversion and the caches, exactly as in production, with nothing mocked.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Final

import redis

from lambda_contract.redis_layout import GroupKey, Metrics
from lambda_contract.settings import Settings
from lambda_testkit.processes import http_ok, wait_until
from lambda_testkit.sandbox import delete_prefix, free_port
from lambda_testkit.truth import SentRecord, Truth, compute_truth
from lambda_testkit.views import write_gold, write_manifest, write_meta, write_speed_hour
from lambda_tools.generator import GeneratorConfig, history

REPO: Final = Path(__file__).resolve().parents[3]
TOKEN: Final = "faults-token-0123456789abcdef"
OTHER_TOKEN: Final = "faults-second-token-fedcba9876"
BATCH_DAY: Final = date(2026, 11, 19)
SPEED_DAY: Final = date(2026, 11, 20)
VENV_BIN: Final = Path(sys.executable).parent


def redis_password_file() -> str:
    """The password file `make up` generated (or the one the environment names)."""
    return os.environ.get("LAMBDA_REDIS_PASSWORD_FILE") or str(REPO / ".local/state/secrets/redis-password")


def serving_env(tmp: Path, **overrides: str) -> dict[str, str]:
    """Environment of an isolated server: own Redis prefix, own Delta root, known tokens."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LAMBDA_")}
    env.update(
        LAMBDA_HOME=str(REPO),
        LAMBDA_STATE_DIR=str(REPO / ".local/state"),
        LAMBDA_REDIS_PASSWORD_FILE=redis_password_file(),
        LAMBDA_REDIS_PREFIX=f"test-faults-{uuid.uuid4().hex[:12]}",
        LAMBDA_DELTA_ROOT=str(tmp / "delta"),
        LAMBDA_API_TOKENS=f"{TOKEN},{OTHER_TOKEN}",
        LAMBDA_API_HOST="127.0.0.1",
        LAMBDA_API_PORT=str(free_port()),
    )
    env.update(overrides)
    return env


def generated_truth(events: int, seed: int = 9) -> Truth:
    """The generator's ground truth for BATCH_DAY and SPEED_DAY (duplicates, late, malformed included)."""
    start = datetime(BATCH_DAY.year, BATCH_DAY.month, BATCH_DAY.day, tzinfo=UTC)
    end = start + timedelta(days=2)
    records = history(GeneratorConfig(seed=seed), start, end, events)
    return compute_truth(
        SentRecord(r.value, datetime.fromtimestamp(r.timestamp_ms / 1000, UTC), r.late) for r in records
    )


def _by_hour(
    view: Mapping[tuple[datetime, GroupKey], Metrics], day: date
) -> dict[datetime, dict[GroupKey, Metrics]]:
    hours: dict[datetime, dict[GroupKey, Metrics]] = {}
    for (hour, key), metrics in view.items():
        if hour.date() == day:
            hours.setdefault(hour, {})[key] = metrics
    return hours


def load_views(settings: Settings, r: redis.Redis, truth: Truth) -> int:
    """Gold + manifest for BATCH_DAY, the speed view for SPEED_DAY; returns the number of keys written."""
    gold = _by_hour(truth.full, BATCH_DAY)
    write_gold(settings, gold)
    write_manifest(settings, sorted(gold))
    layout = settings.redis_layout
    speed = _by_hour(truth.speed, SPEED_DAY)
    last = max(speed)
    for hour, groups in speed.items():
        write_speed_hour(r, layout, hour, groups, closed=hour < last - timedelta(hours=1))
    write_meta(r, layout, watermark=last + timedelta(minutes=20), updated=datetime.now(UTC))
    return len(speed) + 2


@dataclass
class Served:
    """A running server: where it listens, how it was configured, where it logs."""

    base_url: str
    env: dict[str, str]
    settings: Settings
    log_path: Path
    process: subprocess.Popen[bytes]

    @property
    def prefix(self) -> str:
        return self.settings.redis_prefix

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_ready(
    base_url: str, process: subprocess.Popen[bytes], log_path: Path, timeout_s: float = 60
) -> None:
    ready = wait_until(lambda: process.poll() is not None or http_ok(f"{base_url}/readyz"), timeout_s, 0.2)
    if process.poll() is not None:
        raise AssertionError(
            f"lambda-serve exited with {process.returncode}:\n{log_path.read_text()[-3000:]}"
        )
    if not ready:
        raise AssertionError(f"lambda-serve not ready within {timeout_s} s:\n{log_path.read_text()[-3000:]}")


@contextmanager
def serve(tmp: Path, truth: Truth | None, **overrides: str) -> Iterator[Served]:
    """Load the views (when given a truth), start `lambda-serve`, stop it and delete its keys after."""
    env = serving_env(tmp, **overrides)
    settings = Settings.from_env(env)
    r = redis.Redis.from_url(settings.redis_url, password=settings.resolved_redis_password())
    log_path = tmp / "serving.log"
    try:
        if truth is not None:
            load_views(settings, r, truth)
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [str(VENV_BIN / "lambda-serve")], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        base_url = f"http://127.0.0.1:{settings.api_port}"
        try:
            wait_ready(base_url, process, log_path)
            yield Served(base_url, env, settings, log_path, process)
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    finally:
        delete_prefix(r, settings.redis_prefix)
        r.close()
