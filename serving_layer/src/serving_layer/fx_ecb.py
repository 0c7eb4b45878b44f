"""The European Central Bank's euro reference rates (eurofxref CSV) into the serving layer's FX table.

The ECB publishes, for each TARGET working day, how many units of each currency one euro buys, in
two CSV files (both zipped on its site; the zip holds one CSV of the same name):

- daily, eurofxref.csv: a header and one row, cells separated by ", ", dates like
  ``05 December 2026``, and a trailing ", " (an empty last column)::

      Date, USD, JPY, ..., ZAR,
      05 December 2026, 1.0823, 162.45, ..., 19.8512,

- historical, eurofxref-hist.csv: the same header without spaces, one row per working day since
  1999, newest first, ISO dates, ``N/A`` where a currency had no rate that day (a currency the euro
  replaced, or a suspended one), and the same trailing comma::

      Date,USD,JPY,BGN,CYP,...,ZAR,
      2026-12-04,1.0831,162.7,1.9558,N/A,...,19.8213,

The serving layer's table is ``date,currency,rate_to_usd`` (fx.py). EUR's rate is the USD column
itself, exactly; any other currency C is ``USD per EUR / C per EUR`` computed in Decimal and
rounded half-even to CROSS_DIGITS significant digits (a quotient of two decimals rarely ends; 20
digits put the error below 1e-19 of the value, far below a cent on any amount the platform sees).
A day the ECB did not publish (weekend, TARGET holiday) or a currency that is N/A that day gets no
row: fx.py then uses the latest earlier rate and marks the row stale, as before.
"""

from __future__ import annotations

import io
import re
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from pathlib import Path
from typing import Final

from lambda_contract.events import CURRENCY_PATTERN
from serving_layer.fx import PIVOT

ECB_HIST_URL: Final = "https://www.ecb.europa.eu/stats/eurofxref/eurofxref-hist.zip"
CROSS_DIGITS: Final = 20
CROSS_CONTEXT: Final = Context(prec=CROSS_DIGITS, rounding=ROUND_HALF_EVEN)
BASE: Final = "EUR"
MISSING: Final = "N/A"
DATA_DIR: Final = Path(__file__).with_name("data")
SHIPPED_HISTORY: Final = DATA_DIR / "eurofxref-hist.csv"
SHIPPED_EXTRA: Final = DATA_DIR / "eurofxref-extra.csv"
HEADER: Final = "date,currency,rate_to_usd"
_CURRENCY = re.compile(CURRENCY_PATTERN)
_MONTHS: Final = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DAILY_DATE = re.compile(r"(\d{1,2}) ([A-Z][a-z]+) (\d{4})")


class EcbFormatError(ValueError):
    """A file is not in the ECB's eurofxref format; the message names the source, line and column."""


@dataclass(frozen=True)
class EcbDay:
    """One published day: units of each currency per euro (N/A currencies are absent)."""

    day: date
    per_eur: dict[str, Decimal]


def _parse_date(raw: str) -> date | None:
    """ISO (historical file) or ``05 December 2026`` (daily file); English month names, any locale."""
    if _ISO_DATE.fullmatch(raw):
        try:
            return date.fromisoformat(raw)
        except ValueError:
            return None
    match = _DAILY_DATE.fullmatch(raw)
    if match is None or match.group(2) not in _MONTHS:
        return None
    try:
        return date(int(match.group(3)), _MONTHS.index(match.group(2)) + 1, int(match.group(1)))
    except ValueError:
        return None


def parse_eurofxref(text: str, source: str) -> list[EcbDay]:
    """Parse the daily or historical CSV; any cell that is not in the format fails with line:column."""
    lines = text.removeprefix("\ufeff").splitlines()
    numbered = [(n, line) for n, line in enumerate(lines, start=1) if line.strip()]
    if not numbered:
        raise EcbFormatError(f"{source}: empty file; expected a 'Date,USD,JPY,...' header")
    header_no, header_line = numbered[0]
    header = [cell.strip() for cell in header_line.split(",")]
    if header[0] != "Date":
        raise EcbFormatError(f"{source}:{header_no}:1: the header must start with 'Date', got {header[0]!r}")
    trailing = header[-1] == ""
    currencies = header[1:-1] if trailing else header[1:]
    if not currencies:
        raise EcbFormatError(f"{source}:{header_no}: the header names no currency")
    for col, code in enumerate(currencies, start=2):
        if not _CURRENCY.fullmatch(code):
            raise EcbFormatError(f"{source}:{header_no}:{col}: {code!r} is not an ISO 4217 currency code")
        if code == BASE:
            raise EcbFormatError(
                f"{source}:{header_no}:{col}: EUR is the base of the ECB's rates, not a column"
            )
        if currencies.index(code) != col - 2:
            raise EcbFormatError(f"{source}:{header_no}:{col}: currency {code} appears twice")
    width = len(header)
    days: list[EcbDay] = []
    seen: dict[date, int] = {}
    for lineno, line in numbered[1:]:
        cells = [cell.strip() for cell in line.split(",")]
        if len(cells) != width:
            shape = "with" if trailing else "without"
            raise EcbFormatError(
                f"{source}:{lineno}: {len(cells)} columns, the header has {width} ({shape} the trailing comma)"
            )
        day = _parse_date(cells[0])
        if day is None:
            raise EcbFormatError(
                f"{source}:{lineno}:1: date {cells[0]!r} is neither YYYY-MM-DD nor like '05 December 2026'"
            )
        if day in seen:
            raise EcbFormatError(f"{source}:{lineno}:1: date {day} already on line {seen[day]}")
        seen[day] = lineno
        if trailing and cells[-1] != "":
            raise EcbFormatError(
                f"{source}:{lineno}:{width}: {cells[-1]!r} where the trailing empty column is"
            )
        per_eur: dict[str, Decimal] = {}
        for col, (code, raw) in enumerate(zip(currencies, cells[1:], strict=False), start=2):
            if raw == MISSING:
                continue
            where = f"{source}:{lineno}:{col} ({code})"
            if not raw:
                raise EcbFormatError(f"{where}: empty cell; the ECB writes N/A for a missing rate")
            try:
                rate = Decimal(raw)
            except InvalidOperation:
                raise EcbFormatError(f"{where}: {raw!r} is neither a decimal number nor N/A") from None
            if not rate.is_finite() or rate <= 0:
                raise EcbFormatError(f"{where}: {raw!r} must be a positive decimal")
            per_eur[code] = rate
        days.append(EcbDay(day, per_eur))
    if not days:
        raise EcbFormatError(f"{source}: a header but no rates")
    return days


def merge(sources: Sequence[Sequence[EcbDay]]) -> list[EcbDay]:
    """Join files by date (the ECB's history plus an extra file of other currencies per euro).

    The same currency on the same day in two files must agree: a silent choice would hide a wrong file.
    """
    merged: dict[date, dict[str, Decimal]] = {}
    for days in sources:
        for ecb_day in days:
            rates = merged.setdefault(ecb_day.day, {})
            for code, rate in ecb_day.per_eur.items():
                if code in rates and rates[code] != rate:
                    raise EcbFormatError(
                        f"{ecb_day.day} {code}: two sources disagree ({rates[code]} and {rate})"
                    )
                rates[code] = rate
    return [EcbDay(day, merged[day]) for day in sorted(merged)]


def cross_rate(usd_per_eur: Decimal, per_eur: Decimal) -> Decimal:
    """USD per unit of a currency, via the euro: exact when the quotient ends, else CROSS_DIGITS digits."""
    return CROSS_CONTEXT.divide(usd_per_eur, per_eur).normalize(CROSS_CONTEXT)


def to_fx_rows(days: Iterable[EcbDay]) -> list[tuple[date, str, Decimal]]:
    """The FX table's rows; a day without a USD rate has no row at all (every cross rate needs it)."""
    rows: list[tuple[date, str, Decimal]] = []
    for ecb_day in sorted(days, key=lambda d: d.day):
        usd = ecb_day.per_eur.get(PIVOT)
        if usd is None:
            continue
        rows.append((ecb_day.day, PIVOT, Decimal(1)))
        rows.append((ecb_day.day, BASE, usd))
        for code in sorted(ecb_day.per_eur):
            if code != PIVOT:
                rows.append((ecb_day.day, code, cross_rate(usd, ecb_day.per_eur[code])))
    rows.sort(key=lambda r: (r[0], r[1] != PIVOT, r[1]))
    return rows


def render_table(rows: Iterable[tuple[date, str, Decimal]]) -> str:
    """The ``date,currency,rate_to_usd`` CSV that fx.load_rates reads, in plain notation."""
    out = [HEADER]
    out.extend(f"{day.isoformat()},{code},{format(rate, 'f')}" for day, code, rate in rows)
    return "\n".join(out) + "\n"


def decode(payload: bytes, source: str) -> str:
    """The CSV text of a download or file: the ECB's .zip (one CSV inside) or the CSV itself."""
    if payload.startswith(b"PK\x03\x04"):
        try:
            with zipfile.ZipFile(io.BytesIO(payload)) as archive:
                names = [n for n in archive.namelist() if n.lower().endswith(".csv")]
                if len(names) != 1:
                    raise EcbFormatError(f"{source}: expected one CSV in the zip, found {names or 'none'}")
                payload = archive.read(names[0])
        except zipfile.BadZipFile as exc:
            raise EcbFormatError(f"{source}: not a readable zip: {exc}") from None
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise EcbFormatError(f"{source}: not UTF-8 text (byte {exc.start})") from None


def read_source(source: str, timeout_s: float = 60.0) -> str:
    """A local path or file:// URL (local use, tests, the shipped fixture) or an http(s) URL (prod)."""
    scheme = urllib.parse.urlsplit(source).scheme
    if scheme in ("http", "https"):
        request = urllib.request.Request(source, headers={"User-Agent": "lambda-fx"})  # noqa: S310
        with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 (http(s) only)
            payload: bytes = response.read()
    elif scheme == "file":
        payload = Path(urllib.parse.unquote(urllib.parse.urlsplit(source).path)).read_bytes()
    elif len(scheme) <= 1:  # a plain path (a one-letter scheme is a drive letter)
        payload = Path(source).read_bytes()
    else:
        raise EcbFormatError(
            f"{source}: unsupported URL scheme {scheme!r}; use http(s)://, file:// or a path"
        )
    return decode(payload, source)


def table_from_sources(sources: Sequence[str]) -> str:
    """Read, parse, merge and convert: the whole loader, as the CLI and the shipped table use it."""
    return render_table(to_fx_rows(merge([parse_eurofxref(read_source(s), s) for s in sources])))


def shipped_table_text() -> str:
    """What data/fx_rates.csv must hold: the loader's output from the shipped (synthetic) fixtures."""
    return render_table(
        to_fx_rows(
            merge(
                [
                    parse_eurofxref(SHIPPED_HISTORY.read_text(encoding="utf-8"), SHIPPED_HISTORY.name),
                    parse_eurofxref(SHIPPED_EXTRA.read_text(encoding="utf-8"), SHIPPED_EXTRA.name),
                ]
            )
        )
    )
