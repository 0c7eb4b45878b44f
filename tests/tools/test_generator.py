"""The traffic generator's model: deterministic, contract-valid, and its truth is exact.

Pure logic, no services: records are generated in memory and checked against the contract's
reference validator and against recounts written here independently of lambda_testkit.truth.
"""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from lambda_contract.events import Event, Reason, validate
from lambda_contract.windows import HOUR_MS, from_epoch_ms, parse_hour_id
from lambda_testkit.truth import SentRecord, compute_truth
from lambda_tools.generator import (
    KNOWN_CURRENCIES,
    MALFORMED_KINDS,
    GeneratedRecord,
    GeneratorConfig,
    GeneratorError,
    Kind,
    TrafficModel,
    history,
    history_clocks,
    live,
    parse_currencies,
    partition_of,
    range_bounds,
)

pytestmark = pytest.mark.unit

DAY = date(2026, 11, 20)
START, END = range_bounds(DAY, DAY)
ALL_ON = GeneratorConfig(seed=11, duplicate_rate=0.05, late_rate=0.03, malformed_rate=0.05, refund_rate=0.2)


@pytest.fixture(scope="module")
def batch() -> list[GeneratedRecord]:
    return list(history(ALL_ON, START, END, 20_000))


def _doc(record: GeneratedRecord) -> dict[str, Any]:
    assert record.value is not None
    doc: dict[str, Any] = json.loads(record.value, parse_float=Decimal, parse_int=Decimal)
    return doc


def _event_ms(doc: dict[str, Any]) -> int:
    text = doc["event_time"]
    instant = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(instant.timestamp() * 1000)


def test_the_same_seed_gives_the_same_records_and_another_seed_does_not() -> None:
    first = list(history(ALL_ON, START, END, 3000))
    again = list(history(ALL_ON, START, END, 3000))
    other = list(history(GeneratorConfig(seed=12, duplicate_rate=0.05), START, END, 3000))
    assert first == again
    assert [r.value for r in first] != [r.value for r in other]


def test_history_produces_exactly_the_requested_count_within_the_range(batch: list[GeneratedRecord]) -> None:
    assert len(batch) == 20_000
    clocks = [r.timestamp_ms for r in batch]
    assert clocks == sorted(clocks)
    assert from_epoch_ms(clocks[0]) >= START and from_epoch_ms(clocks[-1]) < END
    for record in batch:
        if record.kind is not Kind.MALFORMED:
            assert START <= from_epoch_ms(_event_ms(_doc(record))) < END


def test_history_traffic_follows_a_diurnal_curve() -> None:
    per_hour: defaultdict[int, int] = defaultdict(int)
    for clock in history_clocks(START, END, 24_000, seed=1):
        per_hour[from_epoch_ms(clock).hour] += 1
    assert sum(per_hour.values()) == 24_000
    assert per_hour[15] > 2 * per_hour[3]


def test_every_kind_is_produced_at_about_its_rate(batch: list[GeneratedRecord]) -> None:
    counts: defaultdict[Kind, int] = defaultdict(int)
    for record in batch:
        counts[record.kind] += 1
    n = len(batch)
    assert counts[Kind.MALFORMED] == pytest.approx(0.05 * n, rel=0.15)
    assert counts[Kind.DUPLICATE] == pytest.approx(0.05 * n, rel=0.15)
    # no late events in the first 1 h 15 min (their times must stay in the range)
    assert counts[Kind.LATE] == pytest.approx(0.03 * n, rel=0.25)
    assert {r.expect for r in batch if r.kind is Kind.MALFORMED} == {reason.value for reason in Reason}


@pytest.mark.parametrize("kind", MALFORMED_KINDS, ids=lambda k: k.name)
def test_every_malformed_mutator_gets_its_expected_reason(kind: Any) -> None:
    model = TrafficModel(GeneratorConfig(seed=5, malformed_rate=0.0))
    for i in range(40):  # varied base events: every currency, offsets, numbers and strings
        base = model.next_record(1_795_000_000_000 + i * 1000)
        assert base.value is not None
        doc = json.loads(base.value)
        result = validate(kind.mutate(doc, model._rng))
        assert not isinstance(result, Event), kind.name
        assert result.reason is kind.reason, kind.name


def test_malformed_records_are_labelled_with_the_validators_reason(batch: list[GeneratedRecord]) -> None:
    for record in batch:
        result = validate(record.value)
        if record.kind is Kind.MALFORMED:
            assert not isinstance(result, Event)
            assert result.reason.value == record.expect
        else:
            assert isinstance(result, Event), record


def test_duplicates_repeat_an_earlier_record_byte_for_byte(batch: list[GeneratedRecord]) -> None:
    earlier: set[tuple[bytes | None, bytes | None, int]] = set()
    seen_ids: set[str] = set()
    soon = later = 0
    last_clock: dict[bytes | None, int] = {}
    for record in batch:
        ident = (record.key, record.value, record.partition)
        if record.kind is Kind.DUPLICATE:
            assert ident in earlier
            assert _doc(record)["event_id"] in seen_ids
            gap = record.timestamp_ms - last_clock[record.value]
            soon += gap < 60_000
            later += gap >= 60_000
        elif record.kind is not Kind.MALFORMED:
            earlier.add(ident)
            event_id = _doc(record)["event_id"]
            assert event_id not in seen_ids, "a new event must have a new id"
            seen_ids.add(event_id)
            last_clock[record.value] = record.timestamp_ms
    assert soon > 0 and later > 0, "some redeliveries come soon, some minutes later"


def test_late_events_are_late_and_on_time_events_are_not_by_construction(
    batch: list[GeneratedRecord],
) -> None:
    cfg = ALL_ON
    lateness_ms = cfg.allowed_lateness_s * 1000
    for record in batch:
        if record.kind is Kind.MALFORMED:
            continue
        event_ms = _event_ms(_doc(record))
        hour_closes = event_ms - event_ms % HOUR_MS + HOUR_MS + lateness_ms
        if record.kind is Kind.LATE:
            assert record.timestamp_ms - event_ms >= cfg.late_offset_ms
            assert hour_closes <= record.timestamp_ms - cfg.late_margin_s * 1000
        elif record.kind is Kind.VALID:
            assert 0 <= record.timestamp_ms - event_ms <= cfg.max_jitter_s * 1000
            assert event_ms >= record.timestamp_ms - cfg.out_of_orderness_s * 1000


def test_a_watermark_simulation_finds_exactly_the_late_events(batch: list[GeneratedRecord]) -> None:
    """Whatever a consumer's partition interleaving, the speed layer's rule gives the same split."""
    ooo_ms, lateness_ms = ALL_ON.out_of_orderness_s * 1000, ALL_ON.allowed_lateness_s * 1000
    max_seen: dict[int, int] = {}
    seen_ids: set[str] = set()
    late_by_watermark: list[bool] = []
    for record in batch:
        if record.kind is Kind.MALFORMED:
            continue
        doc = _doc(record)
        event_ms = _event_ms(doc)
        watermark = min(max_seen.values()) - ooo_ms if len(max_seen) == ALL_ON.partitions else None
        closes = event_ms - event_ms % HOUR_MS + HOUR_MS + lateness_ms
        duplicate = doc["event_id"] in seen_ids
        seen_ids.add(doc["event_id"])
        late_by_watermark.append(watermark is not None and watermark >= closes and not duplicate)
        max_seen[record.partition] = max(max_seen.get(record.partition, event_ms), event_ms)
    marked = [r.kind is Kind.LATE for r in batch if r.kind is not Kind.MALFORMED]
    assert late_by_watermark == marked
    assert sum(marked) > 100


def test_refunds_reference_an_earlier_purchase_of_the_same_order(batch: list[GeneratedRecord]) -> None:
    purchases: dict[str, dict[str, Any]] = {}
    refunds = partial = 0
    for record in batch:
        if record.kind is Kind.MALFORMED:
            continue
        doc = _doc(record)
        if doc["event_type"] == "purchase":
            purchases[doc["event_id"]] = doc
            continue
        original = purchases[doc["refund_of"]]
        for name in ("order_id", "customer_id", "region", "category", "currency"):
            assert doc[name] == original[name]
        assert 0 < Decimal(doc["amount"]) <= Decimal(original["amount"])
        assert _event_ms(doc) > _event_ms(original)
        refunds += 1
        partial += Decimal(doc["amount"]) < Decimal(original["amount"])
    assert refunds > 100 and 0 < partial < refunds


def test_amounts_fit_their_currency_and_come_as_strings_and_numbers(batch: list[GeneratedRecord]) -> None:
    as_number = as_string = 0
    decimals_seen: set[int] = set()
    for record in batch:
        if record.kind is Kind.MALFORMED or record.value is None:
            continue
        doc = json.loads(record.value)
        is_string = isinstance(doc["amount"], str)
        as_string += is_string
        as_number += not is_string
        exponent = Decimal(_doc(record)["amount"]).as_tuple().exponent
        assert isinstance(exponent, int)
        digits = KNOWN_CURRENCIES[doc["currency"]].decimals
        assert -exponent <= digits
        decimals_seen.add(digits)
    assert as_string > 5 * as_number > 0
    assert {0, 2, 4} <= decimals_seen


def test_keys_are_order_ids_on_their_default_partition_and_partitions_alternate(
    batch: list[GeneratedRecord],
) -> None:
    for record in batch:
        assert record.key is not None
        assert partition_of(record.key, ALL_ON.partitions) == record.partition
        if record.kind is not Kind.MALFORMED:
            assert record.key.decode() == _doc(record)["order_id"]
    for i in range(0, len(batch) - 30, 30):  # every partition keeps receiving events
        assert {r.partition for r in batch[i : i + 30]} == {0, 1, 2}


def test_truth_equals_an_independent_recount(batch: list[GeneratedRecord]) -> None:
    """Recount from the generator's own labels, parsing amounts with Decimal and no validator."""
    truth = compute_truth(SentRecord(r.value, from_epoch_ms(r.timestamp_ms), r.late) for r in batch)
    full: defaultdict[tuple[str, str, str, str], list[Decimal | int]] = defaultdict(
        lambda: [Decimal(0), 0, 0]
    )
    late: defaultdict[tuple[str, str, str, str], list[Decimal | int]] = defaultdict(
        lambda: [Decimal(0), 0, 0]
    )
    malformed: defaultdict[str, int] = defaultdict(int)
    for record in batch:
        if record.kind is Kind.MALFORMED:
            malformed[record.expect] += 1
            continue
        if record.kind is Kind.DUPLICATE:
            continue
        doc = _doc(record)
        hour = from_epoch_ms(_event_ms(doc) - _event_ms(doc) % HOUR_MS).strftime("%Y-%m-%dT%H")
        key = (hour, doc["region"], doc["category"], doc["currency"])
        sign = 1 if doc["event_type"] == "purchase" else -1
        for target in (full, late) if record.kind is Kind.LATE else (full,):
            target[key][0] += sign * Decimal(doc["amount"])
            target[key][1 if sign > 0 else 2] += 1

    def as_view(counts: dict[tuple[str, str, str, str], list[Decimal | int]]) -> dict[Any, Any]:
        return {
            (parse_hour_id(h), r, c, cur): (Decimal(v[0]), v[1], v[2], int(v[1]) + int(v[2]))
            for (h, r, c, cur), v in counts.items()
        }

    def from_truth(view: dict[Any, Any]) -> dict[Any, Any]:
        return {
            (hour, k.region, k.category, k.currency): (m.revenue, m.orders, m.refunds, m.events)
            for (hour, k), m in view.items()
        }

    assert from_truth(truth.full) == as_view(full)
    assert from_truth(truth.late) == as_view(late)
    assert truth.duplicates == sum(r.kind is Kind.DUPLICATE for r in batch)
    assert truth.malformed == dict(malformed)
    assert truth.records == len(batch)


def test_live_mode_paces_records_at_the_rate_on_the_wall_clock() -> None:
    now = [1_795_000_000.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    def clock() -> float:
        now[0] += 0.0001  # generating a record takes a little time
        return now[0]

    records = list(live(GeneratorConfig(seed=3, late_rate=0.5), 100.0, 3.0, clock, sleep))
    assert len(records) == 300
    assert slept, "ahead of schedule it sleeps rather than spins"
    span = (records[-1].timestamp_ms - records[0].timestamp_ms) / 1000
    assert 2.8 <= span <= 3.0
    assert not any(r.late for r in records), "no late events before the consumer's watermark can exist"


def test_live_mode_late_events_reach_hours_back_after_the_warm_up() -> None:
    now = [1_795_000_000.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    records = list(live(GeneratorConfig(seed=3, late_rate=0.5), 10.0, 120.0, lambda: now[0], sleep))
    late = [r for r in records if r.late]
    assert late and all(r.timestamp_ms >= 1_795_000_060_000 for r in late)
    assert all(r.timestamp_ms - _event_ms(_doc(r)) >= 3600_000 + 300_000 for r in late)


def test_live_mode_stops_when_asked() -> None:
    now = [1_795_000_000.0]
    checks = [0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    def stop() -> bool:
        checks[0] += 1
        return checks[0] > 50

    records = list(live(GeneratorConfig(), 1000.0, None, lambda: now[0], sleep, stop))
    assert 0 < len(records) <= 50


@pytest.mark.parametrize(
    ("text", "expected"),
    [("USD", [("USD", 2)]), ("JPY,CLF", [("JPY", 0), ("CLF", 4)]), ("XTS:3, EUR", [("XTS", 3), ("EUR", 2)])],
)
def test_currencies_parse_with_their_decimals(text: str, expected: list[tuple[str, int]]) -> None:
    assert [(c.code, c.decimals) for c in parse_currencies(text)] == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("usd", "ISO-4217"),
        ("XTS", "no known number of decimals"),
        ("USD:5", "decimals must be 0-4"),
        ("USD:x", "decimals"),
        (",", "names no currency"),
    ],
)
def test_bad_currencies_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(GeneratorError, match=message):
        parse_currencies(text)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (GeneratorConfig(duplicate_rate=-0.1), "duplicate-rate must be between 0 and 1"),
        (GeneratorConfig(late_rate=1.5), "late-rate must be between 0 and 1"),
        (GeneratorConfig(duplicate_rate=0.6, malformed_rate=0.6), "must be <= 1"),
        (GeneratorConfig(regions=("EU",)), "region 'EU'"),
        (GeneratorConfig(categories=("a b",)), "category 'a b'"),
        (GeneratorConfig(max_jitter_s=30), "below the out-of-orderness"),
    ],
)
def test_bad_knobs_are_refused_with_the_knob_named(config: GeneratorConfig, message: str) -> None:
    with pytest.raises(GeneratorError, match=message):
        config.check()


def test_a_range_must_not_end_before_it_starts() -> None:
    with pytest.raises(GeneratorError, match="--from 2026-11-21 is after --to 2026-11-20"):
        range_bounds(date(2026, 11, 21), date(2026, 11, 20))
    assert range_bounds(DAY, DAY) == (datetime(2026, 11, 20, tzinfo=UTC), datetime(2026, 11, 21, tzinfo=UTC))
    assert range_bounds(DAY, date(2026, 11, 22))[1] - START == timedelta(days=3)


def test_shards_own_disjoint_partitions_and_their_truths_add_up() -> None:
    """Worker processes each produce one shard; adding their truths must equal one fold of all."""
    from collections import Counter

    from lambda_tools.generator import Shard
    from lambda_tools.generator_run import RunResult, merge

    shards = [list(history(ALL_ON, START, END, 6000, shard=Shard(i, 2))) for i in range(2)]
    assert sum(len(s) for s in shards) == 6000
    assert {r.partition for r in shards[0]} == {0, 2} and {r.partition for r in shards[1]} == {1}
    ids = [{_doc(r)["event_id"] for r in s if r.kind is not Kind.MALFORMED} for s in shards]
    assert not ids[0] & ids[1]
    assert shards[0] == list(history(ALL_ON, START, END, 6000, shard=Shard(0, 2))), "deterministic per seed"

    def fold(records: list[GeneratedRecord]) -> Any:
        return compute_truth(SentRecord(r.value, from_epoch_ms(r.timestamp_ms), r.late) for r in records)

    merged = merge([RunResult(fold(s), Counter(r.expect for r in s), 1.0) for s in shards]).truth
    assert merged.to_json() == fold(shards[0] + shards[1]).to_json()
    assert merged.duplicates > 0 and merged.late and merged.malformed


def test_a_shard_cannot_outnumber_the_partitions() -> None:
    from lambda_tools.generator import Shard

    with pytest.raises(GeneratorError, match="cannot split 3 partition"):
        Shard(0, 4).partitions(3)


def test_every_shard_syncs_at_every_minute_of_stream_time() -> None:
    """Parallel shards wait for each other each minute, so no partition runs ahead of the others."""
    from lambda_tools.generator import Shard

    for shard in (Shard(0, 3), Shard(1, 3), Shard(2, 3)):
        calls: list[int] = []
        last_clock = [0]

        def sync(calls: list[int] = calls, last: list[int] = last_clock) -> None:
            calls.append(last[0])

        for record in history(ALL_ON, START, START + timedelta(hours=2), 3000, shard=shard, sync=sync):
            minute = (record.timestamp_ms - int(START.timestamp() * 1000)) // 60_000
            assert len(calls) == minute, "synced once per minute boundary crossed, before its records"
            last_clock[0] = record.timestamp_ms
        assert len(calls) == 119
