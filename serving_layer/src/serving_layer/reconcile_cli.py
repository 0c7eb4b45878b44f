"""`make reconcile DATE=YYYY-MM-DD`: reconcile the speed view with gold for one date.

Writes reports/reconciliation-DATE.json and .html, prints a summary, pushes the gauges to the
Pushgateway when one is configured, and exits 0 when every difference is explained, 3 when a
residual remains, 4 when the batch has not computed the date, 2 on bad arguments, 1 on errors.
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
        push_gauges(settings.pushgateway_url, gauges(doc["totals"]))
    explained = doc["totals"]["verdict"] == "explained"
    return (EXIT_EXPLAINED if explained else EXIT_RESIDUAL), doc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lambda-reconcile", description=__doc__)
    yesterday = datetime.now(UTC).date() - timedelta(days=1)
    parser.add_argument("--date", type=parse_date, default=yesterday, help="UTC date (default: yesterday)")
    parser.add_argument("--out", type=Path, default=None, help="report folder (default: LAMBDA_REPORTS_DIR)")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        out_dir = args.out or settings.path(settings.reports_dir)
        code, doc = run(settings, args.date, out_dir)
    except NotComputedError as exc:
        print(f"lambda-reconcile: {exc}", file=sys.stderr)
        return EXIT_NOT_COMPUTED
    except (SettingsError, FxTableError) as exc:
        print(f"lambda-reconcile: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (redis.RedisError, OSError, urllib.error.URLError) as exc:
        print(f"lambda-reconcile: cannot read or write a store: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(summary(doc))
    print(f"  report     {out_dir / f'reconciliation-{args.date}.html'} (and .json)")
    return code


if __name__ == "__main__":
    sys.exit(main())
