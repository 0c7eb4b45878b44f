"""Currency conversion at query time (pure).

Aggregates are kept per native currency (docs/specs/redis.md, docs/specs/delta.md) so the speed
and batch views agree to the last digit; conversion happens only here, via USD, with the rate of
the hour's UTC date. All arithmetic is Decimal in a wide context: products are exact, the one
division by the reporting currency's rate is correct to 60 significant digits, and rounding to 2
places (half-even) happens only when the API renders the number.

The rates come from the European Central Bank's euro reference rates (fx_ecb.py, `lambda-fx`):
the shipped table is the loader's output from a synthetic fixture in the ECB's format
(data/README.md); in production a CronJob fetches the real file. The ECB publishes working days
only, so weekends and TARGET holidays have no row and take the fallback below.

Missing rates: a date without a rate uses the latest earlier rate of that currency and the row
is marked stale. A currency with no rate on or before the date cannot be converted: the row's
revenue is then unknown (None, rendered as null) and the currency is listed, rather than being
silently dropped from a sum or valued at zero.
"""

from __future__ import annotations

import bisect
import csv
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from pathlib import Path
from typing import Final

from lambda_contract.events import CURRENCY_PATTERN

FX_CONTEXT: Final = Context(prec=60, rounding=ROUND_HALF_EVEN)
CENT: Final = Decimal("0.01")
SHIPPED_RATES: Final = Path(__file__).with_name("data") / "fx_rates.csv"
PIVOT: Final = "USD"
_CURRENCY = re.compile(CURRENCY_PATTERN)


class FxTableError(ValueError):
    """The rates file cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class Rate:
    """One currency's rate to USD for a date; stale when it comes from an earlier date."""

    rate_to_usd: Decimal
    stale: bool


_PIVOT_RATE: Final = Rate(Decimal(1), stale=False)


@dataclass(frozen=True)
class Converted:
    """A converted amount: None when some currency has no usable rate (listed in `missing`)."""

    value: Decimal | None
    stale: bool = False
    missing: tuple[str, ...] = ()


@dataclass
class FxTable:
    """Rates per currency, sorted by date, for the latest-earlier-rate fallback."""

    _dates: dict[str, list[date]] = field(default_factory=dict)
    _rates: dict[str, list[Decimal]] = field(default_factory=dict)

    @classmethod
    def from_rows(cls, rows: Iterable[tuple[date, str, Decimal]]) -> FxTable:
        by_currency: dict[str, dict[date, Decimal]] = {}
        for day, currency, rate in rows:
            by_currency.setdefault(currency, {})[day] = rate
        table = cls()
        for currency, rates in by_currency.items():
            days = sorted(rates)
            table._dates[currency] = days
            table._rates[currency] = [rates[d] for d in days]
        return table

    @property
    def currencies(self) -> frozenset[str]:
        return frozenset(self._dates) | {PIVOT}

    def rate(self, currency: str, day: date) -> Rate | None:
        """The rate for `day`, else the latest earlier one (stale), else None; USD is always 1."""
        if currency == PIVOT:
            return _PIVOT_RATE
        days = self._dates.get(currency)
        if not days:
            return None
        i = bisect.bisect_right(days, day) - 1
        if i < 0:
            return None
        return Rate(self._rates[currency][i], stale=days[i] != day)

    def convert(self, amounts: Mapping[str, Decimal], day: date, target: str) -> Converted:
        """Sum native amounts {currency: amount} into `target` at `day`'s rates, unrounded."""
        if all(c == target for c in amounts):
            # Nothing to convert: the exact native sum, whatever the table holds for the day.
            return Converted(sum(amounts.values(), Decimal(0)), False)
        target_rate = self.rate(target, day)
        missing = [] if target_rate is not None else [target]
        stale = target_rate.stale if target_rate is not None else False
        usd = Decimal(0)
        for currency, amount in amounts.items():
            if currency == target and target_rate is not None:
                # Same currency: no conversion, so no rate and no staleness involved.
                usd = FX_CONTEXT.add(usd, FX_CONTEXT.multiply(amount, target_rate.rate_to_usd))
                continue
            rate = self.rate(currency, day)
            if rate is None:
                missing.append(currency)
                continue
            stale = stale or rate.stale
            usd = FX_CONTEXT.add(usd, FX_CONTEXT.multiply(amount, rate.rate_to_usd))
        if missing or target_rate is None:
            return Converted(None, stale, tuple(sorted(set(missing))))
        return Converted(FX_CONTEXT.divide(usd, target_rate.rate_to_usd), stale)


def to_cents(value: Decimal) -> str:
    """The API's money form: rounded half-even to 2 places, plain notation, never `-0.00`."""
    cents = value.quantize(CENT, rounding=ROUND_HALF_EVEN, context=FX_CONTEXT)
    return format(cents.copy_abs() if cents.is_zero() else cents, "f")


def load_rates(path: Path) -> FxTable:
    """Read a `date,currency,rate_to_usd` CSV; any bad line fails start-up with its line number."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FxTableError(f"FX rates file {path} cannot be read: {exc.strerror}") from None
    reader = csv.reader(text.splitlines())
    header = next(reader, None)
    if header is None or [h.strip() for h in header] != ["date", "currency", "rate_to_usd"]:
        raise FxTableError(f"{path}: the first line must be the header date,currency,rate_to_usd")
    rows: list[tuple[date, str, Decimal]] = []
    for lineno, line in enumerate(reader, start=2):
        if not line or all(not c.strip() for c in line):
            continue
        if len(line) != 3:
            raise FxTableError(f"{path}:{lineno}: expected 3 columns, got {len(line)}")
        raw_day, currency, raw_rate = (c.strip() for c in line)
        try:
            day = date.fromisoformat(raw_day)
        except ValueError:
            raise FxTableError(f"{path}:{lineno}: date {raw_day!r} is not YYYY-MM-DD") from None
        if not _CURRENCY.fullmatch(currency):
            raise FxTableError(f"{path}:{lineno}: currency {currency!r} is not an ISO 4217 code")
        try:
            rate = Decimal(raw_rate)
        except InvalidOperation:
            raise FxTableError(f"{path}:{lineno}: rate {raw_rate!r} is not a decimal number") from None
        if not rate.is_finite() or rate <= 0:
            raise FxTableError(f"{path}:{lineno}: rate {raw_rate!r} must be a positive decimal")
        rows.append((day, currency, rate))
    if not rows:
        raise FxTableError(f"{path}: no rates")
    if any(currency == PIVOT and rate != 1 for _, currency, rate in rows):
        raise FxTableError(f"{path}: USD is the pivot currency; its rate_to_usd must be 1")
    return FxTable.from_rows(rows)
