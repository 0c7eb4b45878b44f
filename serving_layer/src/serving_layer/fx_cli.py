"""`lambda-fx`: the FX table from the ECB's eurofxref CSV (fx_ecb.py).

    lambda-fx fetch [--url URL] [--extra SRC ...] [--out PATH]
        Reads the ECB file at URL (default LAMBDA_FX_SOURCE_URL: the ECB's published history; a
        path or file:// URL locally), merges any extra files in the same format, and writes the
        table to PATH (default LAMBDA_FX_RATES_PATH). The new file replaces the old one only once it
        parses and loads, so a failed download or a bad file never leaves the serving layer without
        rates. The k8s CronJob (k8s/base/fx) runs this.
    lambda-fx shipped [--check]
        Regenerates the shipped table data/fx_rates.csv from the shipped fixtures (`make fx-rates`);
        with --check, only says whether it is current.
    lambda-fx seed [--out PATH]
        Writes the shipped table to PATH (default LAMBDA_FX_RATES_PATH) only when no table is there
        yet: the serving pods' init container, so a fresh deployment starts before the first fetch.

Exit codes: 0 done, 1 the source cannot be read, 2 bad arguments, settings or file format.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import urllib.error
from pathlib import Path

from lambda_contract.settings import Settings, SettingsError
from serving_layer.fx import SHIPPED_RATES, FxTableError, load_rates
from serving_layer.fx_ecb import EcbFormatError, shipped_table_text, table_from_sources

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2


def write_checked(text: str, out: Path) -> None:
    """Write beside `out`, check fx.load_rates accepts it, then rename over `out` (atomic)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        load_rates(tmp)
        tmp.chmod(0o644)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)


def summary(text: str) -> str:
    rows = [line.split(",") for line in text.splitlines()[1:]]
    days = sorted({r[0] for r in rows})
    currencies = sorted({r[1] for r in rows})
    return f"{len(days)} days {days[0]}..{days[-1]}, {len(currencies)} currencies ({' '.join(currencies)})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="lambda-fx", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    fetch = sub.add_parser("fetch", help="ECB CSV (URL or file) -> the FX table")
    fetch.add_argument("--url", default=None, help="source (default LAMBDA_FX_SOURCE_URL)")
    fetch.add_argument("--extra", action="append", default=[], help="another file in the ECB format")
    fetch.add_argument("--out", type=Path, default=None, help="table path (default LAMBDA_FX_RATES_PATH)")
    shipped = sub.add_parser("shipped", help="regenerate data/fx_rates.csv from the shipped fixtures")
    shipped.add_argument("--check", action="store_true", help="only check that it is current")
    seed = sub.add_parser("seed", help="write the shipped table to --out unless a table is there")
    seed.add_argument("--out", type=Path, default=None, help="table path (default LAMBDA_FX_RATES_PATH)")
    args = parser.parse_args(argv)
    try:
        if args.command == "shipped":
            text = shipped_table_text()
            if args.check:
                current = SHIPPED_RATES.read_text(encoding="utf-8") == text
                print(
                    f"lambda-fx: {SHIPPED_RATES} is {'current' if current else 'OUT OF DATE: make fx-rates'}"
                )
                return EXIT_OK if current else EXIT_ERROR
            write_checked(text, SHIPPED_RATES)
            print(f"lambda-fx: wrote {SHIPPED_RATES}: {summary(text)}")
            return EXIT_OK
        settings = Settings.from_env()
        if args.out is None and not settings.fx_rates_path:
            raise SettingsError(
                f"lambda-fx {args.command} needs --out or LAMBDA_FX_RATES_PATH (the shipped table is not replaced)"
            )
        out = args.out or settings.path(settings.fx_rates_path)
        if args.command == "seed":
            if out.exists():
                load_rates(out)  # a table is there: keep it, but say so if it is unreadable
                print(f"lambda-fx: {out} exists; kept")
                return EXIT_OK
            text = SHIPPED_RATES.read_text(encoding="utf-8")
            write_checked(text, out)
            print(f"lambda-fx: seeded {out} with the shipped table until the first fetch: {summary(text)}")
            return EXIT_OK
        url = args.url or settings.fx_source_url
        text = table_from_sources([url, *args.extra])
        write_checked(text, out)
    except (SettingsError, EcbFormatError, FxTableError) as exc:
        print(f"lambda-fx: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        print(f"lambda-fx: cannot read the source or write the table: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(f"lambda-fx: wrote {out} from {url}: {summary(text)}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
