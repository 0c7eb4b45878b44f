"""FX: rate fallback, staleness, missing rates, exact conversion and the shipped table."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from serving_layer.fx import FX_CONTEXT, SHIPPED_RATES, FxTable, FxTableError, load_rates, to_cents

pytestmark = pytest.mark.unit

D = date(2026, 11, 20)
TABLE = FxTable.from_rows(
    [
        (date(2026, 11, 18), "EUR", Decimal("1.10")),
        (D, "EUR", Decimal("1.20")),
        (date(2026, 11, 19), "JPY", Decimal("0.0065")),
        (D, "GBP", Decimal("1.30")),
    ]
)


def test_rate_of_the_day_is_not_stale() -> None:
    rate = TABLE.rate("EUR", D)
    assert rate is not None and rate.rate_to_usd == Decimal("1.20") and not rate.stale


def test_missing_day_falls_back_to_the_latest_earlier_rate_and_is_stale() -> None:
    rate = TABLE.rate("EUR", date(2026, 11, 19))
    assert rate is not None and rate.rate_to_usd == Decimal("1.10") and rate.stale
    converted = TABLE.convert({"JPY": Decimal("1000")}, D, "USD")
    assert converted.value == Decimal("6.5") and converted.stale


def test_no_rate_on_or_before_the_day_is_none() -> None:
    assert TABLE.rate("EUR", date(2026, 11, 17)) is None
    assert TABLE.rate("XAU", D) is None


def test_usd_is_the_pivot_at_one_on_every_day() -> None:
    rate = TABLE.rate("USD", date(1999, 1, 1))
    assert rate is not None and rate.rate_to_usd == 1 and not rate.stale
    assert "USD" in TABLE.currencies


def test_conversion_goes_through_usd_exactly() -> None:
    converted = TABLE.convert({"EUR": Decimal("10.0000"), "USD": Decimal("0.0100")}, D, "GBP")
    assert converted.value == FX_CONTEXT.divide(Decimal("12.0100"), Decimal("1.30"))
    assert to_cents(converted.value) == "9.24" and not converted.stale


def test_reporting_in_the_native_currency_keeps_the_exact_sum_even_with_a_stale_or_no_rate() -> None:
    converted = TABLE.convert({"JPY": Decimal("1234.0000")}, D, "JPY")
    assert converted.value == Decimal("1234.0000") and not converted.stale
    converted = TABLE.convert({"EUR": Decimal("5.0000")}, date(2020, 1, 1), "EUR")  # before any EUR rate
    assert converted.value == Decimal("5.0000") and not converted.stale and not converted.missing


def test_unconvertible_currency_makes_the_value_unknown_and_named() -> None:
    converted = TABLE.convert({"XAU": Decimal("1"), "EUR": Decimal("1")}, D, "USD")
    assert converted.value is None and converted.missing == ("XAU",)
    converted = TABLE.convert({"USD": Decimal("1")}, date(2026, 11, 17), "EUR")
    assert converted.value is None and converted.missing == ("EUR",)


def test_rounding_to_cents_is_half_even_only_at_the_edge() -> None:
    assert [to_cents(Decimal(x)) for x in ("0.005", "0.015", "0.0250", "-0.005", "2.675", "1E+2")] == [
        "0.00",
        "0.02",
        "0.02",
        "0.00",
        "2.68",
        "100.00",
    ]


def test_the_shipped_table_covers_every_generator_currency() -> None:
    table = load_rates(SHIPPED_RATES)
    for code in (
        "USD",
        "EUR",
        "GBP",
        "CHF",
        "JPY",
        "KRW",
        "INR",
        "BRL",
        "CLP",
        "CLF",
        "KWD",
        "CAD",
        "AUD",
        "SEK",
    ):
        rate = table.rate(code, D)
        assert rate is not None and not rate.stale, code
    saturday = table.rate("EUR", date(2026, 11, 21))
    assert saturday is not None and saturday.stale


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("day,ccy,rate\n", "header"),
        ("date,currency,rate_to_usd\n2026-13-01,EUR,1.1\n", ":2: date"),
        ("date,currency,rate_to_usd\n2026-11-01,eur,1.1\n", ":2: currency"),
        ("date,currency,rate_to_usd\n2026-11-01,EUR,abc\n", ":2: rate"),
        ("date,currency,rate_to_usd\n2026-11-01,EUR,0\n", "positive"),
        ("date,currency,rate_to_usd\n2026-11-01,EUR\n", "3 columns"),
        ("date,currency,rate_to_usd\n2026-11-01,USD,1.1\n", "pivot"),
        ("date,currency,rate_to_usd\n", "no rates"),
    ],
)
def test_a_bad_rates_file_fails_with_the_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "rates.csv"
    path.write_text(text)
    with pytest.raises(FxTableError, match=message):
        load_rates(path)


def test_a_replacement_table_is_read(tmp_path: Path) -> None:
    path = tmp_path / "rates.csv"
    path.write_text("date,currency,rate_to_usd\n2026-11-20,EUR,2\n\n")
    assert load_rates(path).convert({"EUR": Decimal(3)}, D, "USD").value == 6
