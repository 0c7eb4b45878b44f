"""Writes the synthetic fixtures eurofxref-hist.csv and eurofxref-extra.csv beside this file.

There is no internet here, so the shipped rates cannot be the ECB's real ones: this makes files in
the ECB's historical format (README.md beside this file) with plausible, deterministic values: a
seeded random walk per currency from a level near its 2025 rate, rounded to the digits the ECB
quotes, on TARGET working days only. Run it again and it writes the same bytes:

    .venvs/serving/bin/python serving_layer/src/serving_layer/data/synthetic_eurofxref.py
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path

HERE = Path(__file__).parent
FIRST, LAST = date(2025, 1, 2), date(2027, 12, 31)

# The ECB's historical header, column for column (currencies the euro replaced or that were
# suspended stay as N/A columns, as in the real file).
ECB_COLUMNS = [
    "USD",
    "JPY",
    "BGN",
    "CYP",
    "CZK",
    "DKK",
    "EEK",
    "GBP",
    "HUF",
    "LTL",
    "LVL",
    "MTL",
    "PLN",
    "ROL",
    "RON",
    "SEK",
    "SIT",
    "SKK",
    "CHF",
    "ISK",
    "NOK",
    "HRK",
    "RUB",
    "TRL",
    "TRY",
    "AUD",
    "BRL",
    "CAD",
    "CNY",
    "HKD",
    "IDR",
    "ILS",
    "INR",
    "KRW",
    "MXN",
    "MYR",
    "NZD",
    "PHP",
    "SGD",
    "THB",
    "ZAR",
]
# (level per euro, decimals the ECB quotes, daily volatility); absent: always N/A.
LEVELS: dict[str, tuple[str, int, float]] = {
    "USD": ("1.0400", 4, 0.004),
    "JPY": ("161.50", 2, 0.005),
    "BGN": ("1.9558", 4, 0.0),
    "CZK": ("25.150", 3, 0.002),
    "DKK": ("7.4590", 4, 0.0002),
    "GBP": ("0.83000", 5, 0.003),
    "HUF": ("410.50", 2, 0.004),
    "PLN": ("4.2650", 4, 0.003),
    "RON": ("4.9750", 4, 0.001),
    "SEK": ("11.4900", 4, 0.004),
    "CHF": ("0.9400", 4, 0.003),
    "ISK": ("145.10", 2, 0.003),
    "NOK": ("11.7800", 4, 0.004),
    "TRY": ("36.8500", 4, 0.004),
    "AUD": ("1.6700", 4, 0.005),
    "BRL": ("6.3800", 4, 0.007),
    "CAD": ("1.4950", 4, 0.004),
    "CNY": ("7.6000", 4, 0.003),
    "HKD": ("8.0800", 4, 0.004),
    "IDR": ("16850.00", 2, 0.004),
    "ILS": ("3.7900", 4, 0.005),
    "INR": ("89.2000", 4, 0.004),
    "KRW": ("1530.50", 2, 0.005),
    "MXN": ("21.5000", 4, 0.006),
    "MYR": ("4.6700", 4, 0.003),
    "NZD": ("1.8500", 4, 0.005),
    "PHP": ("60.500", 3, 0.004),
    "SGD": ("1.4200", 4, 0.003),
    "THB": ("35.700", 3, 0.004),
    "ZAR": ("19.6000", 4, 0.007),
}
# Currencies the platform's traffic uses that the ECB does not publish: a separate file in the
# same format, so that no one takes them for ECB data.
EXTRA_LEVELS: dict[str, tuple[str, int, float]] = {
    "CLP": ("1030.50", 2, 0.005),
    "CLF": ("0.027550", 6, 0.004),
    "KWD": ("0.32050", 5, 0.002),
}
# Days the ECB publishes nothing although TARGET is open would be N/A rows; a few N/A cells keep
# the fixture honest about them (ISK was N/A on some days in the real history).
NA_CELLS = {(date(2025, 3, 14), "ISK"), (date(2026, 6, 3), "TRY")}


def easter(year: int) -> date:
    """Gregorian Easter Sunday (anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l_) // 451
    month, day = divmod(h + l_ - 7 * m + 114, 31)
    return date(year, month, day + 1)


def target_working_days(first: date, last: date) -> list[date]:
    """Weekdays except TARGET closing days: 1 Jan, Good Friday, Easter Monday, 1 May, 25 and 26 Dec."""
    days = []
    day = first
    while day <= last:
        e = easter(day.year)
        closed = {
            date(day.year, 1, 1),
            e - timedelta(days=2),
            e + timedelta(days=1),
            date(day.year, 5, 1),
            date(day.year, 12, 25),
            date(day.year, 12, 26),
        }
        if day.weekday() < 5 and day not in closed:
            days.append(day)
        day += timedelta(days=1)
    return days


def walk(
    levels: dict[str, tuple[str, int, float]], days: list[date], seed: int
) -> dict[date, dict[str, str]]:
    rng = random.Random(seed)
    values = {code: float(level) for code, (level, _, _) in levels.items()}
    out: dict[date, dict[str, str]] = {}
    for day in days:
        row = {}
        for code, (level, decimals, vol) in levels.items():
            # Mean-reverting so that three years stay near the level.
            values[code] *= 1 + rng.gauss(0, vol) + 0.02 * (float(level) / values[code] - 1)
            quantum = Decimal(1).scaleb(-decimals)
            row[code] = str(Decimal(repr(values[code])).quantize(quantum, rounding=ROUND_HALF_EVEN))
        out[day] = row
    return out


def render(columns: list[str], rates: dict[date, dict[str, str]]) -> str:
    """The ECB's historical layout: newest first, ISO dates, N/A, a trailing comma on every line."""
    lines = ["Date," + ",".join(columns) + ","]
    for day in sorted(rates, reverse=True):
        cells = [rates[day].get(code, "N/A") if (day, code) not in NA_CELLS else "N/A" for code in columns]
        lines.append(day.isoformat() + "," + ",".join(cells) + ",")
    return "\n".join(lines) + "\n"


def main() -> None:
    days = target_working_days(FIRST, LAST)
    (HERE / "eurofxref-hist.csv").write_text(render(ECB_COLUMNS, walk(LEVELS, days, 2025)), encoding="utf-8")
    extra = list(EXTRA_LEVELS)
    (HERE / "eurofxref-extra.csv").write_text(render(extra, walk(EXTRA_LEVELS, days, 2026)), encoding="utf-8")


if __name__ == "__main__":
    main()
