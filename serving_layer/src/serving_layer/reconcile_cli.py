"""`make reconcile DATE=YYYY-MM-DD`: reconcile the speed view with gold for one date, or with
--dates-file for every date the nightly batch recomputed (`lambda-batch nightly --dates-out`).

Writes reports/reconciliation-DATE.json and .html, prints a summary, pushes the date's gauges to
the Pushgateway when one is configured, and exits 0 when every difference is explained, 3 when a
residual remains, 4 when the batch has not computed the date, 2 on bad arguments, 1 on errors
(with several dates: the first of 1, 3, 4 that any date had, in that order).
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import redis

from lambda_contract.settings import Settings, SettingsError
from serving_layer.fx import SHIPPED_RATES, FxTableError, load_rates
from serving_layer.reconciliation import reconcile, to_json
from serving_layer.reconciliation_html import render
from serving_layer.reconciliation_io import NotComputedError, gauges, push_gauges, read_inputs

EXIT_EXPLAINED, EXIT_ERROR, EXIT_USAGE, EXIT_RESIDUAL, EXIT_NOT_COMPUTED = 0, 1, 2, 3, 4


def parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (expected YYYY-MM-DD)") from None


def summary(doc: dict[str, object]) -> str:
    t = doc["totals"]
    assert isinstance(t, dict)
    lines = [
        f"reconciliation {doc['date']}: {str(t['verdict']).upper()}",
        f"  events  speed {t['speed_events']}  batch {t['batch_events']}  drift {float(t['drift_ratio']):.4%}",
        f"  explained  late {t['late_events']} ({t['late_revenue_usd']} USD)  unsuppressed duplicates "
        f"{t['duplicate_events']}  speed gap {t['speed_gap_events']}  open {t['open_events']}",
        f"  malformed  dlq {t['dlq_events']}  quarantine {t['malformed_events']}",
        f"  residual   {t['residual_events']} events, {t['residual_revenue_usd']} USD",
    ]
    return "\n".join(lines)


def run(settings: Settings, day: date, out_dir: Path) -> tuple[int, dict[str, object]]:
    fx = load_rates(settings.path(settings.fx_rates_path) if settings.fx_rates_path else SHIPPED_RATES)
    doc = to_json(reconcile(read_inputs(settings, day)), fx)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"reconciliation-{day}.json").write_text(json.dumps(doc, indent=1) + "\n")
    (out_dir / f"reconciliation-{day}.html").write_text(render(doc))
    if settings.pushgateway_url:
        push_gauges(settings.pushgateway_url, day, gauges(doc["totals"]))
    explained = doc["totals"]["verdict"] == "explained"
    return (EXIT_EXPLAINED if explained else EXIT_RESIDUAL), doc


def read_dates(path: Path) -> list[date]:
    """One YYYY-MM-DD a line (blank lines skipped); a bad line is a usage error naming it."""
    days = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                days.append(date.fromisoformat(line.strip()))
            except ValueError:
                raise argparse.ArgumentTypeError(f"{path}:{n}: {line.strip()[:40]!r} is not a date") from None
    return days


def reconcile_one(settings: Settings, day: date, out_dir: Path) -> int:
    try:
        code, doc = run(settings, day, out_dir)
    except NotComputedError as exc:
        print(f"lambda-reconcile: {exc}", file=sys.stderr)
        return EXIT_NOT_COMPUTED
    except (redis.RedisError, OSError, urllib.error.URLError) as exc:
        print(f"lambda-reconcile: {day}: cannot read or write a store: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(summary(doc))
    print(f"  report     {out_dir / f'reconciliation-{day}.html'} (and .json)")
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lambda-reconcile", description=__doc__)
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--date", type=parse_date, default=None, help="UTC date (default: yesterday)")
    which.add_argument(
        "--dates-file",
        type=Path,
        default=None,
        help="a file of dates, one a line (lambda-batch nightly --dates-out)",
    )
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: LAMBDA_REPORTS_DIR)")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        out_dir = args.out or settings.path(settings.reports_dir)
        days = read_dates(args.dates_file) if args.dates_file else [args.date or yesterday]
        if settings.fx_rates_path:
            load_rates(settings.path(settings.fx_rates_path))  # a bad table is a usage error before any date
    except (SettingsError, FxTableError, argparse.ArgumentTypeError) as exc:
        print(f"lambda-reconcile: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"lambda-reconcile: cannot read {args.dates_file}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    if not days:
        print(
            f"lambda-reconcile: {args.dates_file} names no date: nothing was recomputed, nothing to reconcile"
        )
        return EXIT_EXPLAINED
    codes = [reconcile_one(settings, day, out_dir) for day in days]
    for worst in (EXIT_ERROR, EXIT_RESIDUAL, EXIT_NOT_COMPUTED):
        if worst in codes:
            return worst
    return EXIT_EXPLAINED


if __name__ == "__main__":
    sys.exit(main())
