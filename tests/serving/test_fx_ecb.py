"""The ECB eurofxref loader: both published layouts, N/A, the trailing comma, errors with line and
column, cross rates via the euro in Decimal, the shipped table and the `lambda-fx` CLI."""

from __future__ import annotations

import io
import socket
import zipfile
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from serving_layer.fx import FX_CONTEXT, SHIPPED_RATES, FxTable, load_rates
from serving_layer.fx_cli import main as fx_main
from serving_layer.fx_ecb import (
    CROSS_CONTEXT,
    SHIPPED_EXTRA,
    SHIPPED_HISTORY,
    EcbFormatError,
    decode,
    merge,
    parse_eurofxref,
    render_table,
    shipped_table_text,
    to_fx_rows,
)

pytestmark = pytest.mark.unit

# The daily file as the ECB lays it out: ", " separators, a long date, a trailing ", ".
DAILY = "Date, USD, JPY, BGN, GBP, CHF, \n04 December 2026, 1.0831, 162.70, 1.9558, 0.85955, 0.9402, \n"
# The historical file: no spaces, ISO dates newest first, N/A, a trailing comma on every line.
HIST = (
    "Date,USD,JPY,CYP,GBP,\n"
    "2026-12-04,1.0831,162.7,N/A,0.85955,\n"
    "2026-12-03,1.25,160.5,N/A,0.625,\n"
    "2026-12-02,N/A,160.1,N/A,0.85,\n"
    "2026-12-01,1.08,N/A,N/A,0.86,\n"
)


def test_the_daily_layout_is_read_with_its_long_date_and_trailing_column() -> None:
    [day] = parse_eurofxref(DAILY, "eurofxref.csv")
    assert day.day == date(2026, 12, 4)
    assert day.per_eur == {
        "USD": Decimal("1.0831"),
        "JPY": Decimal("162.70"),
        "BGN": Decimal("1.9558"),
        "GBP": Decimal("0.85955"),
        "CHF": Decimal("0.9402"),
    }


def test_the_historical_layout_drops_na_cells_and_keeps_every_day() -> None:
    days = parse_eurofxref(HIST, "eurofxref-hist.csv")
    assert [d.day for d in days] == [date(2026, 12, d) for d in (4, 3, 2, 1)]
    assert "CYP" not in days[0].per_eur and days[0].per_eur["GBP"] == Decimal("0.85955")
    assert "USD" not in days[2].per_eur and "JPY" not in days[3].per_eur


def test_a_file_without_the_trailing_comma_is_read_when_every_line_agrees() -> None:
    text = "Date,USD,GBP\n2026-12-04,1.08,0.86\n"
    assert parse_eurofxref(text, "x.csv")[0].per_eur == {"USD": Decimal("1.08"), "GBP": Decimal("0.86")}


def test_eur_is_the_usd_column_exactly_and_usd_is_one() -> None:
    table = FxTable.from_rows(to_fx_rows(parse_eurofxref(HIST, "h")))
    eur = table.rate("EUR", date(2026, 12, 4))
    assert eur is not None and eur.rate_to_usd == Decimal("1.0831") and not eur.stale


def test_cross_rates_go_through_the_euro_in_decimal() -> None:
    rows = {(d, c): r for d, c, r in to_fx_rows(parse_eurofxref(HIST, "h"))}
    # A quotient that ends is exact: 1.25 USD and 0.625 GBP per euro make a pound worth 2 dollars.
    assert rows[(date(2026, 12, 3), "GBP")] == Decimal(2)
    assert rows[(date(2026, 12, 3), "JPY")] == Decimal("0.0077881619937694704050")  # 1.25 / 160.5, 20 digits
    # One that does not end is the quotient to 20 significant digits, half-even.
    gbp = rows[(date(2026, 12, 4), "GBP")]
    assert gbp == Decimal("1.2600779477633645512") and len(gbp.as_tuple().digits) == 20
    # So a conversion between two non-USD currencies agrees with the euro cross to 1e-18.
    table = FxTable.from_rows(to_fx_rows(parse_eurofxref(HIST, "h")))
    converted = table.convert({"JPY": Decimal("10000")}, date(2026, 12, 4), "GBP").value
    via_eur = FX_CONTEXT.multiply(FX_CONTEXT.divide(Decimal("10000"), Decimal("162.7")), Decimal("0.85955"))
    assert converted is not None and abs(converted - via_eur) / via_eur < Decimal("1e-18")


def test_a_day_without_usd_has_no_row_so_the_last_published_rate_is_used_and_marked_stale() -> None:
    table = FxTable.from_rows(to_fx_rows(parse_eurofxref(HIST, "h")))
    first = table.rate("GBP", date(2026, 12, 1))
    no_usd = table.rate("GBP", date(2026, 12, 2))
    assert first is not None and not first.stale
    assert no_usd is not None and no_usd.stale and no_usd.rate_to_usd == first.rate_to_usd
    assert first.rate_to_usd == CROSS_CONTEXT.divide(Decimal("1.08"), Decimal("0.86"))
    assert table.rate("JPY", date(2026, 12, 1)) is None  # N/A that day and nothing earlier: unknown


def test_a_weekend_uses_fridays_rate_and_is_stale() -> None:
    table = load_rates(SHIPPED_RATES)
    friday, saturday, monday = date(2026, 12, 4), date(2026, 12, 5), date(2026, 12, 7)
    fri, sat = table.rate("GBP", friday), table.rate("GBP", saturday)
    assert fri is not None and sat is not None and not fri.stale and sat.stale
    assert sat.rate_to_usd == fri.rate_to_usd
    mon = table.rate("GBP", monday)
    assert mon is not None and not mon.stale


def test_merge_joins_an_extra_file_and_refuses_a_disagreement() -> None:
    extra = parse_eurofxref("Date,CLP,\n2026-12-04,1030.5,\n", "extra")
    merged = merge([parse_eurofxref(HIST, "h"), extra])
    assert merged[-1].per_eur["CLP"] == Decimal("1030.5") and merged[-1].per_eur["USD"] == Decimal("1.0831")
    clash = parse_eurofxref("Date,USD,\n2026-12-04,1.09,\n", "other")
    with pytest.raises(EcbFormatError, match="2026-12-04 USD: two sources disagree"):
        merge([parse_eurofxref(HIST, "h"), clash])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", r"f\.csv: empty file"),
        ("Datum,USD,\n", r"f\.csv:1:1: the header must start with 'Date'"),
        ("Date,USD,usd,\n2026-12-04,1,1,\n", r"f\.csv:1:3: 'usd' is not an ISO 4217"),
        ("Date,USD,EUR,\n", r"f\.csv:1:3: EUR is the base"),
        ("Date,USD,GBP,USD,\n", r"f\.csv:1:4: currency USD appears twice"),
        ("Date,USD,\n", r"f\.csv: a header but no rates"),
        (
            "Date,USD,GBP,\n2026-12-04,1.08,0.86\n",
            r"f\.csv:2: 3 columns, the header has 4 \(with the trailing",
        ),
        ("Date,USD,GBP\n2026-12-04,1.08,0.86,\n", r"f\.csv:2: 4 columns, the header has 3 \(without"),
        ("Date,USD,\n2026-12-04,1.08,x\n", r"f\.csv:2:3: 'x' where the trailing empty column is"),
        ("Date,USD,\n04/12/2026,1.08,\n", r"f\.csv:2:1: date '04/12/2026' is neither"),
        ("Date,USD,\n2026-02-30,1.08,\n", r"f\.csv:2:1: date '2026-02-30'"),
        ("Date,USD,\n31 Decembre 2026,1.08,\n", r"f\.csv:2:1: date '31 Decembre 2026'"),
        ("Date,USD,GBP,\n2026-12-04,1.08,0,86,\n", r"f\.csv:2: 5 columns"),
        (
            "Date,USD,GBP,\n2026-12-04,1.08,abc,\n",
            r"f\.csv:2:3 \(GBP\): 'abc' is neither a decimal number nor N/A",
        ),
        ("Date,USD,GBP,\n2026-12-04,1.08,,\n", r"f\.csv:2:3 \(GBP\): empty cell; the ECB writes N/A"),
        ("Date,USD,GBP,\n2026-12-04,-1.08,0.8,\n", r"f\.csv:2:2 \(USD\): '-1.08' must be a positive"),
        ("Date,USD,GBP,\n2026-12-04,NaN,0.8,\n", r"f\.csv:2:2 \(USD\): 'NaN' must be a positive"),
        (
            "Date,USD,\n2026-12-04,1.08,\n\n2026-12-04,1.09,\n",
            r"f\.csv:4:1: date 2026-12-04 already on line 2",
        ),
    ],
)
def test_a_bad_file_fails_naming_its_line_and_column(text: str, message: str) -> None:
    with pytest.raises(EcbFormatError, match=message):
        parse_eurofxref(text, "f.csv")


def _zip(**files: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in files.items():
            archive.writestr(name, text)
    return buffer.getvalue()


def test_the_published_zip_is_opened_and_a_bad_one_named() -> None:
    assert decode(_zip(**{"eurofxref-hist.csv": HIST}), "z") == HIST
    with pytest.raises(EcbFormatError, match="expected one CSV in the zip"):
        decode(_zip(**{"a.csv": HIST, "b.csv": HIST}), "z")
    with pytest.raises(EcbFormatError, match="not UTF-8"):
        decode(b"Date,USD,\n2026-12-04,\xff,\n", "z")


def test_the_shipped_table_is_the_loaders_output_from_the_shipped_fixtures() -> None:
    assert SHIPPED_RATES.read_text(encoding="utf-8") == shipped_table_text()


def test_the_shipped_fixture_is_in_the_ecb_historical_layout_on_working_days_only() -> None:
    lines = SHIPPED_HISTORY.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("Date,USD,JPY,BGN,CYP,CZK,DKK,EEK,GBP,") and lines[0].endswith(",ZAR,")
    assert all(line.endswith(",") for line in lines)
    days = [date.fromisoformat(line.split(",", 1)[0]) for line in lines[1:]]
    assert days == sorted(days, reverse=True), "newest first, as the ECB writes it"
    assert days[-1] <= date(2025, 1, 2) and days[0] >= date(2027, 12, 31)
    assert all(d.weekday() < 5 for d in days)
    assert not {
        date(y, m, d) for y in (2025, 2026, 2027) for m, d in ((1, 1), (5, 1), (12, 25), (12, 26))
    } & set(days)
    assert date(2026, 4, 3) not in days and date(2026, 4, 6) not in days  # Good Friday, Easter Monday
    assert any("N/A" in line.split(",")[1:] for line in lines[1:])
    assert SHIPPED_EXTRA.read_text(encoding="utf-8").startswith("Date,CLP,CLF,KWD,\n")


def test_every_working_day_of_2025_to_2027_converts_every_generator_currency_unstale() -> None:
    table = load_rates(SHIPPED_RATES)
    day, checked = date(2025, 1, 2), 0
    published = {date.fromisoformat(line[:10]) for line in SHIPPED_HISTORY.read_text().splitlines()[1:]}
    while day <= date(2027, 12, 31):
        if day in published:
            for code in ("EUR", "GBP", "CHF", "JPY", "KRW", "INR", "BRL", "CLP", "CLF", "KWD"):
                rate = table.rate(code, day)
                assert rate is not None and not rate.stale, (code, day)
            checked += 1
        day += timedelta(days=1)
    assert checked == len(published) > 750


def test_fetch_reads_a_path_a_file_url_or_the_zip_and_writes_a_loadable_table(tmp_path: Path) -> None:
    src = tmp_path / "eurofxref-hist.csv"
    src.write_text(HIST)
    archive = tmp_path / "eurofxref-hist.zip"
    archive.write_bytes(_zip(**{"eurofxref-hist.csv": HIST}))
    expected = render_table(to_fx_rows(parse_eurofxref(HIST, "h")))
    for n, source in enumerate((str(src), src.as_uri(), str(archive))):
        out = tmp_path / f"out{n}" / "fx.csv"
        assert fx_main(["fetch", "--url", source, "--out", str(out)]) == 0
        assert out.read_text() == expected
        assert load_rates(out).rate("EUR", date(2026, 12, 4)) is not None


def test_fetch_of_a_bad_file_keeps_the_current_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "fx.csv"
    out.write_text("date,currency,rate_to_usd\n2026-12-04,EUR,1.1\n")
    bad = tmp_path / "bad.csv"
    bad.write_text("Date,USD,\n2026-12-04,one,\n")
    assert fx_main(["fetch", "--url", str(bad), "--out", str(out)]) == 2
    assert "bad.csv:2:2 (USD)" in capsys.readouterr().err
    assert out.read_text() == "date,currency,rate_to_usd\n2026-12-04,EUR,1.1\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "fx.csv"]  # no temporary file left


def test_fetch_of_an_unreachable_url_is_an_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as s:  # a loopback port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/eurofxref-hist.zip"
    assert fx_main(["fetch", "--url", url, "--out", str(tmp_path / "fx.csv")]) == 1
    assert "cannot read the source" in capsys.readouterr().err
    assert not (tmp_path / "fx.csv").exists()


def test_fetch_needs_somewhere_to_write(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LAMBDA_FX_RATES_PATH", raising=False)
    assert fx_main(["fetch", "--url", "/nonexistent"]) == 2
    assert "LAMBDA_FX_RATES_PATH" in capsys.readouterr().err


def test_seed_writes_the_shipped_table_once_and_never_over_a_fetched_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "fx" / "fx.csv"
    assert fx_main(["seed", "--out", str(out)]) == 0
    assert out.read_text() == SHIPPED_RATES.read_text()
    fetched = "date,currency,rate_to_usd\n2026-12-04,EUR,1.1\n"
    out.write_text(fetched)
    assert fx_main(["seed", "--out", str(out)]) == 0
    assert out.read_text() == fetched
    assert "exists; kept" in capsys.readouterr().out
    out.write_text("not a table\n")  # a table that cannot be read is said, not silently kept
    assert fx_main(["seed", "--out", str(out)]) == 2
