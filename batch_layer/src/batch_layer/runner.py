"""One batch run: ingest what is new, plan the dates, recompute each, summarise, push metrics."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from pyspark.sql import SparkSession

from batch_layer import delta_tables, ingest, metrics, planning, recompute
from batch_layer.transforms import DateResult
from lambda_contract.settings import Settings
from lambda_contract.tables import BRONZE

log = logging.getLogger(__name__)


@dataclass
class RunReport:
    run_id: str
    ingested_rows: int | None = None
    ingested_through: float | None = None
    bronze_version: int | None = None
    results: list[DateResult] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures


def run(
    spark: SparkSession,
    settings: Settings,
    named: Sequence[date],
    *,
    today: date | None = None,
    do_ingest: bool = True,
    auto: bool = True,
    allow_data_loss: bool = False,
    max_offsets_per_trigger: int | None = None,
) -> RunReport:
    """Never raises for a date's failure: each is recorded and the other dates still run."""
    started = time.monotonic()
    report = RunReport(run_id=recompute.new_run_id())
    today = today or datetime.now(UTC).date()
    try:
        if do_ingest:
            log.info(
                "ingest: reading new records of %s from Kafka %s",
                settings.topic_orders,
                settings.kafka_bootstrap,
            )
            result = ingest.ingest(
                spark,
                settings,
                max_offsets_per_trigger=max_offsets_per_trigger,
                allow_data_loss=allow_data_loss,
            )
            report.ingested_rows = result.rows
            report.ingested_through = result.started_at
            log.info(
                "ingest: %d rows in %d batches -> bronze v%d",
                result.rows,
                result.batches,
                result.bronze_version,
            )
        recompute.ensure_tables(spark, settings)
        version = delta_tables.version(spark, settings, BRONZE)
        report.bronze_version = version
        # Only automatic pick-up needs the rows per date (two Spark jobs, seconds on a cold JVM).
        plan = planning.plan(
            named,
            recompute.bronze_counts(spark, settings, version) if auto else {},
            recompute.computed_counts(spark, settings) if auto else {},
            today,
            auto=auto,
        )
    except Exception as exc:
        log.exception("run failed before recomputing")
        report.failures.append(("ingest/plan", _short(exc)))
        report.seconds = time.monotonic() - started
        return report
    log.info("plan: %d date(s): %s", len(plan), ", ".join(f"{p.day} ({p.why})" for p in plan) or "none")
    for i, planned in enumerate(plan, 1):
        prefix = f"[{i}/{len(plan)}]"
        try:
            res = recompute.recompute_date(
                spark,
                settings,
                planned,
                version,
                report.run_id,
                progress=functools.partial(_progress, prefix),
            )
            report.results.append(res)
            log.info("%s %s done in %.1f s", prefix, planned.day, res.seconds)
        except Exception as exc:
            log.exception("%s %s failed", prefix, planned.day)
            report.failures.append((planned.day.isoformat(), _short(exc)))
    report.seconds = time.monotonic() - started
    return report


def _progress(prefix: str, message: str) -> None:
    log.info("%s %s", prefix, message)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


def push_metrics(settings: Settings, report: RunReport, grouping_key: dict[str, str] | None = None) -> None:
    if not settings.pushgateway_url:
        return
    registry = metrics.build_registry(
        report.results,
        [d for d, _ in report.failures],
        report.seconds,
        report.ingested_rows or 0,
        report.ok,
        time.time(),
        report.ingested_through,
    )
    metrics.push(settings.pushgateway_url, registry, grouping_key)
