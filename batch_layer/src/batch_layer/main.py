"""CLI entry point: `lambda-batch run|nightly|ingest|maintain`. Arguments are checked before Spark starts.

Every command writes the Delta tables, so each holds the batch writer lock (batch_layer.lock) from
before Spark starts until it ends: ingest, recompute, maintenance and backfills never overlap.
`nightly` is `run` that also writes the dates it recomputed to --dates-out, for the
reconciliation that follows it (`lambda-reconcile --dates-file`, docs/operations.md).

Exit codes: 0 ok, 1 a run or a date failed (the summary says which) or the lock was not had in
time, 2 bad arguments/settings.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path

from batch_layer import planning
from batch_layer.lock import LeaseApiError, LockTimeoutError, held
from batch_layer.maintain import MIN_RETENTION_HOURS, UnsafeRetentionError, check_retention
from lambda_contract.settings import Settings, SettingsError

log = logging.getLogger("batch_layer")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lambda-batch", description="Batch layer: Kafka -> bronze -> gold.")
    sub = p.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="ingest what is new, then recompute dates (default: yesterday UTC)")
    run.add_argument("--date", help="one UTC date, YYYY-MM-DD")
    run.add_argument("--from", dest="start", help="first date of an inclusive range")
    run.add_argument("--to", dest="end", help="last date of an inclusive range")
    run.add_argument("--no-ingest", action="store_true", help="recompute from bronze as it is")
    run.add_argument(
        "--no-auto", action="store_true", help="only the named dates, not past dates with new bronze rows"
    )
    _common(run)
    nightly = sub.add_parser(
        "nightly",
        help="the nightly step: `run` (yesterday and dates with new rows), then list what it recomputed",
    )
    nightly.add_argument("--date", help="the named UTC date, YYYY-MM-DD (default: yesterday)")
    nightly.add_argument("--from", dest="start", help="first date of an inclusive range (a backfill)")
    nightly.add_argument("--to", dest="end", help="last date of an inclusive range")
    nightly.add_argument(
        "--dates-out", type=Path, required=True, help="file to write the recomputed dates to, one a line"
    )
    _common(nightly)
    ing = sub.add_parser("ingest", help="only ingest Kafka into bronze")
    _common(ing)
    mt = sub.add_parser("maintain", help="compact (OPTIMIZE) and VACUUM every table")
    mt.add_argument("--retain-hours", type=int, default=MIN_RETENTION_HOURS, help="VACUUM retention (>= 168)")
    mt.add_argument("--force", action="store_true", help="allow a retention below 7 days")
    mt.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE", help="extra Spark config")
    return p


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-data-loss", action="store_true", help="tolerate Kafka records lost to retention")
    p.add_argument("--max-offsets-per-trigger", type=int, default=None, help="bound each ingest micro-batch")
    p.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE", help="extra Spark config")


def _confs(items: Sequence[str]) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise planning.BadDatesError(f"--conf expects KEY=VALUE, got {item!r}")
        out[key.strip()] = value
    return out


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    args = _parser().parse_args(argv)
    today = datetime.now(UTC).date()
    try:
        settings = Settings.from_env()
        extra = _confs(args.conf)
        named = (
            planning.named_dates(args.date, args.start, args.end, today)
            if args.command in ("run", "nightly")
            else []
        )
        if args.command == "maintain":
            check_retention(args.retain_hours, args.force)
    except (SettingsError, planning.BadDatesError, UnsafeRetentionError) as exc:
        print(f"lambda-batch: {exc}", file=sys.stderr)
        return 2
    try:
        with held(settings, f"lambda-batch {args.command}"):
            return _locked(args, settings, extra, named, today)
    except (LockTimeoutError, LeaseApiError) as exc:
        print(f"lambda-batch {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # also how the Lease's renewer stops a writer that lost it
        print(f"lambda-batch {args.command}: interrupted", file=sys.stderr)
        return 1


def _locked(
    args: argparse.Namespace, settings: Settings, extra: dict[str, str], named: list[date], today: date
) -> int:
    """The command itself, with the writer lock held. Spark (and its JVM) only from here on: bad
    input never pays the start-up, and a writer waiting for the lock holds no executors."""
    from batch_layer import summary
    from batch_layer.runner import RunReport, push_metrics, run
    from batch_layer.spark import JarsMissingError, build_session

    try:
        spark = build_session(settings, extra=extra)
    except JarsMissingError as exc:
        print(f"lambda-batch: {exc}", file=sys.stderr)
        return 1
    try:
        if args.command == "maintain":
            from batch_layer.maintain import maintain

            for res in maintain(spark, settings, args.retain_hours, args.force):
                print(
                    f"{res.table}: compacted {res.files_compacted} files, vacuumed (retain {args.retain_hours} h)"
                )
            return 0
        if args.command == "ingest":
            from batch_layer.ingest import ingest

            result = ingest(
                spark,
                settings,
                max_offsets_per_trigger=args.max_offsets_per_trigger,
                allow_data_loss=args.allow_data_loss,
            )
            print(
                f"ingested {result.rows} rows in {result.batches} batches; bronze is at v{result.bronze_version}"
            )
            if settings.pushgateway_url:
                from batch_layer import metrics

                metrics.push(settings.pushgateway_url, metrics.ingest_registry(result.started_at))
            return 0
        report: RunReport = run(
            spark,
            settings,
            named,
            today=today,
            do_ingest=not getattr(args, "no_ingest", False),
            auto=not getattr(args, "no_auto", False),
            allow_data_loss=args.allow_data_loss,
            max_offsets_per_trigger=args.max_offsets_per_trigger,
        )
        print(
            summary.render(
                report.results, report.failures, report.ingested_rows, report.bronze_version, report.seconds
            )
        )
        push_metrics(settings, report)
        if args.command == "nightly":
            days = sorted({r.day for r in report.results})
            args.dates_out.parent.mkdir(parents=True, exist_ok=True)
            args.dates_out.write_text("".join(f"{d.isoformat()}\n" for d in days))
            print(f"recomputed dates for the reconciliation: {args.dates_out}")
        return 0 if report.ok else 1
    except Exception as exc:
        log.exception("lambda-batch %s failed", args.command)
        print(
            f"lambda-batch {args.command} FAILED: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
            file=sys.stderr,
        )
        return 1
    finally:
        spark.stop()


if __name__ == "__main__":
    sys.exit(main())
