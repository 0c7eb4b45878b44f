"""`lambda-generate` refuses bad parameters with exit 2 and says what is wrong, before touching Kafka."""

from __future__ import annotations

import pytest

from lambda_tools import generator_cli

pytestmark = pytest.mark.unit

# An unreachable broker: if validation ever ran after connecting, these tests would fail with 1.
UNREACHABLE = {"LAMBDA_KAFKA_BOOTSTRAP": "127.0.0.1:1"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["history", "--date", "2026-13-01"], "not a date (YYYY-MM-DD): '2026-13-01'"),
        (
            ["history", "--from", "2026-11-25", "--to", "2026-11-24"],
            "--from 2026-11-25 is after --to 2026-11-24",
        ),
        (["history", "--from", "2026-11-24"], "--from needs --to"),
        (["history", "--date", "2026-11-24", "--to", "2026-11-25"], "--to goes with --from"),
        (["history", "--date", "2026-11-24", "--until", "yesterday"], "is not an RFC 3339 instant"),
        (["history", "--date", "2026-11-24", "--until", "2026-11-24T10:00:00"], "has no UTC offset"),
        (
            ["history", "--date", "2026-11-24", "--until", "2026-11-23T23:00:00Z"],
            "is not after the range start",
        ),
        (["history", "--date", "2026-11-24", "--events", "-5"], "must be >= 0, got -5"),
        (["history", "--date", "2026-11-24", "--duplicate-rate", "-0.1"], "between 0 and 1, got -0.1"),
        (["history", "--date", "2026-11-24", "--late-rate", "1.5"], "between 0 and 1, got 1.5"),
        (["history", "--date", "2026-11-24", "--malformed-rate", "abc"], "not a number: 'abc'"),
        (
            ["history", "--date", "2026-11-24", "--duplicate-rate", "0.5", "--late-rate", "0.6"],
            "must be <= 1, got 1.1",
        ),
        (
            ["history", "--date", "2026-11-24", "--currencies", "USD,XYZ"],
            "currency 'XYZ' has no known number",
        ),
        (["history", "--date", "2026-11-24", "--currencies", "usd"], "not an ISO-4217 code"),
        (["history", "--date", "2026-11-24", "--currencies", "XYZ:7"], "decimals must be 0-4"),
        (["history", "--date", "2026-11-24", "--regions", "EU West"], "region 'EU West' does not match"),
        (["history", "--date", "2026-11-24", "--categories", "Books!"], "category 'Books!' does not match"),
        (["live", "--rate", "0"], "must be a finite number > 0, got 0"),
        (["live", "--rate", "-3"], "must be a finite number > 0, got -3"),
        (["live", "--rate", "10", "--seconds", "0"], "must be a finite number > 0, got 0"),
        (["live"], "the following arguments are required: --rate"),
        (["history"], "one of the arguments --date --from is required"),
        (["replay"], "invalid choice: 'replay'"),
    ],
)
def test_bad_parameters_exit_2_with_the_reason(
    argv: list[str], message: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in UNREACHABLE.items():
        monkeypatch.setenv(name, value)
    try:
        rc = generator_cli.main(argv)
    except SystemExit as exc:  # argparse's own errors
        rc = exc.code  # type: ignore[assignment]
    assert rc == 2
    assert message in capsys.readouterr().err


def test_a_bad_setting_exits_2_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LAMBDA_ALLOWED_LATENESS_S", "soon")
    assert generator_cli.main(["history", "--date", "2026-11-24"]) == 2
    assert "LAMBDA_ALLOWED_LATENESS_S must be an integer" in capsys.readouterr().err


def test_an_unreachable_broker_exits_1_and_says_where(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in UNREACHABLE.items():
        monkeypatch.setenv(name, value)
    assert generator_cli.main(["history", "--date", "2026-11-24", "--events", "5"]) == 1
    assert "no Kafka broker reachable at 127.0.0.1:1" in capsys.readouterr().err
