"""`lambda-generate`: realistic orders.v1 traffic into Kafka, with its exact ground truth.

    lambda-generate history --date 2026-11-24 --events 2000000
    lambda-generate history --from 2026-11-20 --to 2026-11-24 --events 500000 --late-rate 0.01
    lambda-generate live --rate 200 --seconds 600

Every run writes the expected aggregates of exactly what it sent (lambda_testkit.truth format) to
--truth (default: $LAMBDA_STATE_DIR/generator/truth-<time>-<mode>.json, and latest.json beside).
Bad parameters exit 2 with what is wrong; Kafka problems exit 1. Ctrl-C stops cleanly: what was
sent is flushed and its truth written (a second Ctrl-C aborts without truth).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from types import FrameType
from typing import IO

from lambda_contract.events import CATEGORY_PATTERN, REGION_PATTERN
from lambda_contract.settings import Settings, SettingsError
from lambda_testkit.truth import Truth
from lambda_tools.generator import (
    CATEGORIES,
    KNOWN_CURRENCIES,
    REGIONS,
    GeneratorConfig,
    GeneratorError,
    parse_currencies,
    parse_names,
    range_bounds,
)
from lambda_tools.generator_run import RunSpec
from lambda_tools.generator_run import run as run_generator
from lambda_tools.producer import ProducerError, ProducerTuning, topic_partitions


class _Stop:
    """First Ctrl-C (or SIGTERM) asks the generator to stop; a second one aborts."""

    def __init__(self) -> None:
        self.requested = False
        self.children: list[int] = []

    def forward_to(self, pids: list[int]) -> None:
        """Worker processes get the parent's signals too (a terminal's Ctrl-C reaches them anyway)."""
        self.children = pids

    def __call__(self) -> bool:
        return self.requested

    def install(self) -> Callable[[], None]:
        """Install the handlers; returns a function that restores the previous ones."""
        previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}

        def restore() -> None:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

        return restore

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        print(
            "\nstopping: flushing what was sent and writing its truth (Ctrl-C again aborts)", file=sys.stderr
        )


def _rate(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be a probability between 0 and 1, got {text}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _instant(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an RFC 3339 instant (e.g. 2026-11-25T13:45:00Z)"
        ) from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset")
    return value.astimezone(UTC)


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lambda-generate",
        description="Realistic orders.v1 traffic (duplicates, late, malformed events) and its exact truth.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    common = argparse.ArgumentParser(add_help=False)
    g = common.add_argument_group("traffic")
    g.add_argument("--seed", type=int, default=None, help="random seed (default: from the clock; printed)")
    g.add_argument(
        "--duplicate-rate", type=_rate, default=0.01, help="share of records that are redeliveries (0.01)"
    )
    g.add_argument(
        "--late-rate", type=_rate, default=0.005, help="share of records late by construction (0.005)"
    )
    g.add_argument("--malformed-rate", type=_rate, default=0.005, help="share of malformed records (0.005)")
    g.add_argument("--refund-rate", type=_rate, default=0.05, help="share of purchases refunded later (0.05)")
    g.add_argument("--regions", default=",".join(REGIONS), help="comma-separated regions (default: all 7)")
    g.add_argument(
        "--categories", default=",".join(CATEGORIES), help="comma-separated categories (default: all 8)"
    )
    g.add_argument(
        "--currencies",
        default=",".join(KNOWN_CURRENCIES),
        help=f"comma-separated ISO codes, CODE:DECIMALS for others (known: {','.join(KNOWN_CURRENCIES)})",
    )
    g.add_argument(
        "--late-margin",
        type=_non_negative_int,
        default=600,
        help="seconds beyond allowed lateness + 1 h that late events lag the stream (600)",
    )
    k = common.add_argument_group("kafka and output")
    k.add_argument("--topic", default=None, help="target topic (default: LAMBDA_TOPIC_ORDERS)")
    k.add_argument("--truth", type=Path, default=None, help="where to write the ground truth JSON")
    k.add_argument(
        "--events-out", type=Path, default=None, help="also write every record sent (golden jsonl format)"
    )
    k.add_argument(
        "--record-time",
        choices=("stream", "wall"),
        default="stream",
        help="Kafka timestamp: simulated send time (stream) or now (wall: dates beyond topic retention)",
    )
    k.add_argument("--compression", choices=("none", "gzip", "lz4", "snappy", "zstd"), default="none")
    k.add_argument("--linger-ms", type=_non_negative_int, default=ProducerTuning.linger_ms)
    k.add_argument(
        "--batch-size", type=_positive_int, default=ProducerTuning.batch_size, help="bytes per batch"
    )
    k.add_argument(
        "--workers",
        type=_positive_int,
        default=None,
        help="producer processes, each owning some partitions (default: 3 for history, 1 for live)",
    )

    sub = parser.add_subparsers(dest="mode", required=True, metavar="{history,live}")
    h = sub.add_parser("history", parents=[common], help="a date range as fast as possible")
    when = h.add_mutually_exclusive_group(required=True)
    when.add_argument("--date", type=_date, help="one UTC date")
    when.add_argument("--from", dest="first", type=_date, help="first UTC date (with --to, both inclusive)")
    h.add_argument("--to", dest="last", type=_date, help="last UTC date (inclusive)")
    h.add_argument("--events", type=_non_negative_int, default=100_000, help="records to produce (100000)")
    h.add_argument(
        "--until",
        type=_instant,
        help="stop the range at this RFC 3339 instant, e.g. now for 'today so far' (the demo uses it)",
    )

    lv = sub.add_parser("live", parents=[common], help="now, at a given rate, until --seconds or Ctrl-C")
    lv.add_argument("--rate", type=_positive_float, required=True, help="records per second")
    lv.add_argument(
        "--seconds", type=_positive_float, default=None, help="stop after this long (default: Ctrl-C)"
    )
    return parser


def _config(args: argparse.Namespace, settings: Settings, partitions: int, seed: int) -> GeneratorConfig:
    config = GeneratorConfig(
        seed=seed,
        regions=parse_names(args.regions, "region", REGION_PATTERN),
        categories=parse_names(args.categories, "category", CATEGORY_PATTERN),
        currencies=parse_currencies(args.currencies),
        duplicate_rate=args.duplicate_rate,
        late_rate=args.late_rate,
        malformed_rate=args.malformed_rate,
        refund_rate=args.refund_rate,
        partitions=partitions,
        max_jitter_s=min(20.0, settings.out_of_orderness_s * 2 / 3),
        out_of_orderness_s=settings.out_of_orderness_s,
        allowed_lateness_s=settings.allowed_lateness_s,
        late_margin_s=args.late_margin,
    )
    config.check()
    return config


def _default_truth_path(settings: Settings, mode: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return settings.state_path / "generator" / f"truth-{stamp}-{mode}.json"


def _write_truth(truth: Truth, path: Path, default: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    truth.save(tmp)
    tmp.replace(path)
    if default:  # latest.json always names the newest default run
        link = path.parent / "latest.json"
        tmp_link = path.parent / ".latest.json.tmp"
        tmp_link.unlink(missing_ok=True)
        tmp_link.symlink_to(path.name)
        tmp_link.replace(link)


def _summary(counts: Counter[str], truth: Truth, elapsed: float, path: Path, seed: int, out: IO[str]) -> None:
    sent = sum(counts.values())
    kinds = {k: counts.get(k, 0) for k in ("valid", "duplicate", "late")}
    malformed = sent - sum(kinds.values())
    rate = sent / elapsed if elapsed > 0 else 0.0
    print(
        f"sent {sent} records in {elapsed:.1f} s ({rate:,.0f} records/s), seed {seed}\n"
        f"  valid {kinds['valid']}  duplicate {kinds['duplicate']}  late {kinds['late']}"
        f"  malformed {malformed}",
        file=out,
    )
    if malformed:
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(truth.malformed.items()))
        print(f"  malformed by reason: {reasons}", file=out)
    revenue_keys = len(truth.full)
    print(f"  truth: {revenue_keys} (hour, key) rows in full, {len(truth.late)} in late -> {path}", file=out)


def run(args: argparse.Namespace, settings: Settings, stop: _Stop) -> int:
    topic = args.topic or settings.topic_orders
    seed = args.seed if args.seed is not None else time.time_ns() % 2**31
    # Validate everything that needs no broker before connecting, so typos fail fast.
    _config(args, settings, 1, seed)
    if args.mode == "history":
        if args.date is not None:
            if args.last is not None:
                raise GeneratorError("--to goes with --from, not with --date")
            start, end = range_bounds(args.date, args.date)
        else:
            if args.last is None:
                raise GeneratorError("--from needs --to (or use --date)")
            start, end = range_bounds(args.first, args.last)
        if args.until is not None:
            if args.until <= start:
                raise GeneratorError(
                    f"--until {args.until.isoformat()} is not after the range start {start.isoformat()}"
                )
            end = min(end, args.until)

    tuning = ProducerTuning(
        linger_ms=args.linger_ms,
        batch_size=args.batch_size,
        compression=None if args.compression == "none" else args.compression,
    )
    partitions = topic_partitions(settings.kafka_bootstrap, topic)
    config = _config(args, settings, partitions, seed)
    workers = args.workers if args.workers is not None else (3 if args.mode == "history" else 1)
    workers = min(workers, partitions)
    if args.mode == "history":
        spec = RunSpec("history", config, settings.kafka_bootstrap, topic, tuning, start=start, end=end,
                       events=args.events, wall_clock=args.record_time == "wall", events_out=args.events_out)  # fmt: skip
        what = f"history {start.date()}..{end.date()} (exclusive): {args.events} records"
    else:
        spec = RunSpec("live", config, settings.kafka_bootstrap, topic, tuning, rate=args.rate,
                       seconds=args.seconds, wall_clock=True, events_out=args.events_out)  # fmt: skip
        what = f"live at {args.rate:g} records/s (Ctrl-C stops)"
    print(f"{what} -> {topic}, {workers} worker(s), seed {seed}", file=sys.stderr)
    started = time.perf_counter()
    result = run_generator(spec, workers, stop, stop.forward_to)
    elapsed = time.perf_counter() - started
    path = args.truth or _default_truth_path(settings, args.mode)
    _write_truth(result.truth, path, default=args.truth is None)
    _summary(result.counts, result.truth, elapsed, path, seed, sys.stdout)
    if result.failures:
        raise ProducerError(
            f"{result.failures} record(s) were not acknowledged by Kafka (first error: {result.first_error}); "
            f"the truth in {path} does not describe the topic"
        )
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    stop = _Stop()
    restore = stop.install()
    try:
        settings = Settings.from_env()
        return run(args, settings, stop)
    except (GeneratorError, SettingsError) as exc:
        print(f"lambda-generate: error: {exc}", file=sys.stderr)
        return 2
    except ProducerError as exc:
        print(f"lambda-generate: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lambda-generate: aborted; no truth written", file=sys.stderr)
        return 130
    finally:
        restore()


if __name__ == "__main__":
    sys.exit(main())
