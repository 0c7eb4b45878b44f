"""Pure parts of the batch layer: date planning, CLI argument checks (before Spark), summary,
metrics registry. No services needed."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest
from prometheus_client import generate_latest

from batch_layer import planning
from batch_layer.maintain import UnsafeRetentionError, check_retention
from batch_layer.metrics import build_registry
from batch_layer.summary import render
from batch_layer.transforms import DateResult

pytestmark = pytest.mark.unit

TODAY = date(2026, 11, 25)
CLI = Path(sys.executable).with_name("lambda-batch")


def test_default_date_is_yesterday_utc() -> None:
    assert planning.named_dates(None, None, None, TODAY) == [date(2026, 11, 24)]


def test_a_range_is_inclusive() -> None:
    days = planning.named_dates(None, "2026-11-01", "2026-11-03", TODAY)
    assert days == [date(2026, 11, 1), date(2026, 11, 2), date(2026, 11, 3)]


@pytest.mark.parametrize(
    ("day", "start", "end", "message"),
    [
        ("2026-02-30", None, None, "DATE must be a date"),
        ("yesterday", None, None, "DATE must be a date"),
        (None, "2026-11-05", "2026-11-01", "is after TO"),
        (None, "2026-11-05", None, "FROM and TO go together"),
        ("2026-11-05", "2026-11-05", "2026-11-06", "either DATE or FROM"),
    ],
)
def test_bad_dates_are_refused_with_a_message(
    day: str | None, start: str | None, end: str | None, message: str
) -> None:
    with pytest.raises(planning.BadDatesError, match=message):
        planning.named_dates(day, start, end, TODAY)


def test_plan_picks_up_past_dates_with_new_rows_but_not_today() -> None:
    bronze = {date(2026, 11, 20): 10, date(2026, 11, 21): 5, date(2026, 11, 22): 7, TODAY: 3}
    computed = {date(2026, 11, 20): 8, date(2026, 11, 21): 5}
    plan = planning.plan([date(2026, 11, 24)], bronze, computed, TODAY)
    assert [(p.day, p.why) for p in plan] == [
        (date(2026, 11, 20), planning.Why.NEW_ROWS),
        (date(2026, 11, 22), planning.Why.NEVER_COMPUTED),
        (date(2026, 11, 24), planning.Why.NAMED),
    ]
    assert planning.plan([], bronze, computed, TODAY, auto=False) == []


def test_retention_below_seven_days_needs_force() -> None:
    with pytest.raises(UnsafeRetentionError):
        check_retention(24, force=False)
    check_retention(24, force=True)
    check_retention(168, force=False)


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--date", "2026-13-01"],
        ["run", "--from", "2026-11-02", "--to", "2026-11-01"],
        ["maintain", "--retain-hours", "1"],
    ],
)
def test_cli_refuses_bad_input_before_spark_starts(args: list[str]) -> None:
    started = time.monotonic()
    done = subprocess.run([str(CLI), *args], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "lambda-batch:" in done.stderr and "Exception" not in done.stderr
    assert "SparkContext" not in done.stderr and time.monotonic() - started < 20


def _result(day: date) -> DateResult:
    return DateResult(day, "named", 3, 100, 90, 4, 10, 2, 12, {"EUR": Decimal("12.3400")}, 1.5)


def test_summary_fits_one_screen_and_names_failures() -> None:
    text = render([_result(date(2026, 11, d)) for d in range(1, 31)], [("2026-12-01", "boom")], 7, 3, 12.0)
    assert len(text.splitlines()) <= 25
    assert (
        "FAILED 2026-12-01: boom" in text
        and "... and 15 more dates" in text
        and "status     : FAILED" in text
    )


def test_metrics_have_units_and_keep_last_success_only_on_success() -> None:
    ok = generate_latest(build_registry([_result(TODAY)], [], 3.5, 7, True, 1000.0)).decode()
    assert "lambda_batch_run_duration_seconds 3.5" in ok
    assert 'lambda_batch_rows{outcome="quarantined"} 10.0' in ok
    assert 'lambda_batch_date_status{date="2026-11-25"} 1.0' in ok
    assert "lambda_batch_last_success_timestamp_seconds 1000.0" in ok
    failed = generate_latest(build_registry([], ["2026-11-25"], 1.0, 0, False, 1000.0)).decode()
    assert "lambda_batch_last_success_timestamp_seconds" not in failed
    assert 'lambda_batch_date_status{date="2026-11-25"} 0.0' in failed


def test_ingest_progress_is_reported_only_by_an_ingest_that_succeeded() -> None:
    """The retention alert counts from the last good ingest: a run whose ingest failed (or that
    did not ingest) must not push the gauge, which would replace the last good value."""
    from batch_layer.metrics import ingest_registry

    ran = generate_latest(build_registry([], [], 1.0, 7, True, 1000.0, ingested_through=990.0)).decode()
    assert "lambda_batch_ingested_through_timestamp_seconds 990.0" in ran
    no_ingest = generate_latest(build_registry([], [], 1.0, 0, False, 1000.0)).decode()
    assert "lambda_batch_ingested_through_timestamp_seconds" not in no_ingest
    alone = generate_latest(ingest_registry(42.0)).decode()
    assert "lambda_batch_ingested_through_timestamp_seconds 42.0" in alone
    assert "lambda_batch_last_success_timestamp_seconds" not in alone


def test_jvm_options_from_the_command_line_add_to_ours_and_may_replace_the_collector(tmp_path: Path) -> None:
    from dataclasses import replace

    from batch_layer.spark import GC_OPTION, REQUIRED_JARS, session_config
    from lambda_contract.settings import Settings

    (tmp_path / "spark").mkdir()
    for prefix in REQUIRED_JARS:
        (tmp_path / "spark" / f"{prefix}1.0.jar").touch()
    settings = replace(Settings.from_env(), jars_dir=str(tmp_path))
    key = "spark.driver.extraJavaOptions"
    ours = session_config(settings)[key]
    assert "-XX:-DontCompileHugeMethods" in ours and GC_OPTION in ours
    profiled = session_config(settings, {key: "-XX:StartFlightRecording=filename=x.jfr"})[key]
    assert profiled.startswith(ours) and profiled.endswith("-XX:StartFlightRecording=filename=x.jfr")
    g1 = session_config(settings, {key: "-XX:+UseG1GC"})[key].split()
    assert "-XX:+UseG1GC" in g1 and GC_OPTION not in g1 and "-Xss8m" in g1
