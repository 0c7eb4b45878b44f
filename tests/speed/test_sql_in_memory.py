"""The speed job's SQL on in-memory rows: the golden set, without Kafka or Redis.

The golden records become rows of the Kafka source's schema (payload, partition, offset,
timestamp) in production order, registered as `sql.SOURCE_TABLE`; `job.classify` stages the same
parsed -> classified views the job runs, and the tests read the parsed and classified streams,
the DLQ and late rows and the aggregate updates the sink would get. Expected values come
from the reference validator and the ground-truth fold of the same records.

Lateness is the job's own: the progress of each record's partition (job.progress, in arrival
order), not a Flink watermark, so one bounded stream at parallelism 1 decides it as Kafka would.
"""

from __future__ import annotations

import base64
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest
from support import classified_over_rows

from lambda_contract.events import Event, validate
from lambda_contract.redis_layout import GroupKey, Metrics
from lambda_contract.settings import Settings
from lambda_contract.windows import from_epoch_ms, hour_start, to_epoch_ms
from lambda_testkit import golden
from lambda_testkit.truth import View
from speed_layer import sql

pytestmark = pytest.mark.integration

SETTINGS = Settings.from_env({})  # the contract's defaults, which the golden set is built for
RECORDS = golden.records()
TRUTH = golden.compute(RECORDS)


@pytest.fixture(scope="module")
def stream_tenv() -> Iterator[Any]:
    """A streaming table environment (parallelism 1) with the golden set as `orders_src` and the
    job's views over it."""
    yield classified_over_rows(SETTINGS, [(r.value, r.partition, r.seq, r.timestamp_ms) for r in RECORDS])


def collect(t_env: Any, query: str) -> list[tuple[Any, ...]]:
    """The final rows of `query` (a changelog folded: retracted rows removed), as tuples."""
    from pyflink.common import RowKind

    rows: Counter[tuple[Any, ...]] = Counter()
    with t_env.sql_query(query).execute().collect() as results:
        for row in results:
            kind = row.get_row_kind()
            values = tuple(bytes(v) if isinstance(v, bytearray) else v for v in row)
            rows[values] += -1 if kind in (RowKind.UPDATE_BEFORE, RowKind.DELETE) else 1
    assert all(n >= 0 for n in rows.values()), f"retracted rows never emitted: {rows}"
    return list(rows.elements())


def event(value: bytes | None) -> Event:
    result = validate(value)
    assert isinstance(result, Event)
    return result


def hour_ms(e: Event) -> int:
    return to_epoch_ms(hour_start(e.event_time))


def expected_kind(expect: str) -> str:
    return expect if expect in (sql.KIND_VALID, sql.KIND_DUPLICATE, sql.KIND_LATE) else sql.KIND_MALFORMED


def test_parse_and_classify_give_each_golden_record_its_kind_reason_bucket_and_amount(
    stream_tenv: Any,
) -> None:
    malformed = {
        r[0]: (sql.KIND_MALFORMED, r[1], r[2])
        for r in collect(
            stream_tenv, f"SELECT koffset, reason, et_ms FROM {sql.PARSED_VIEW} WHERE reason IS NOT NULL"
        )
    }
    want_malformed: dict[int, tuple[Any, ...]] = {}
    want_kinds: Counter[tuple[Any, ...]] = Counter()
    for r in RECORDS:
        kind = expected_kind(r.expect)
        if kind == sql.KIND_MALFORMED:
            result = validate(r.value)
            assert not isinstance(result, Event)
            et = None if result.event_time is None else to_epoch_ms(result.event_time)
            want_malformed[r.seq] = (kind, r.expect, et)
        else:
            e = event(r.value)
            want_kinds[(kind, hour_ms(e), e.region, e.category, e.currency, e.signed_amount,
                        int(e.event_type == "purchase"))] += 1  # fmt: skip
    assert malformed == want_malformed
    got_kinds: Counter[tuple[Any, ...]] = Counter()
    for row in collect(
        stream_tenv,
        f"SELECT kind, bucket_ms, region, category, currency, CAST(rev AS STRING), is_purchase "
        f"FROM {sql.CLASSIFIED_VIEW}",
    ):
        got_kinds[(*row[:5], Decimal(row[5]), row[6])] += 1
    assert got_kinds == want_kinds
    # The golden expectations are the reference fold's: same duplicates, same malformed reasons.
    assert sum(n for k, n in got_kinds.items() if k[0] == sql.KIND_DUPLICATE) == TRUTH.duplicates
    assert Counter(row[1] for row in malformed.values()) == Counter(TRUTH.malformed)


def test_dlq_and_late_rows_carry_the_records_as_received(stream_tenv: Any) -> None:
    dlq = collect(stream_tenv, sql.dlq_rows_query())
    by_offset = {row[4]: row for row in dlq}
    assert len(by_offset) == len(dlq)
    malformed = [r for r in RECORDS if expected_kind(r.expect) == sql.KIND_MALFORMED]
    assert sorted(by_offset) == [r.seq for r in malformed]
    for r in malformed:
        reason, text, b64, partition, _, seen_at = by_offset[r.seq]
        if r.expect == "not_utf8":
            assert (text, b64) == (None, base64.b64encode(r.value or b"").decode())
        else:
            assert (text, b64) == (None if r.value is None else r.value.decode(), None)
        assert (reason, partition) == (r.expect, r.partition)
        assert datetime.strptime(seen_at, "%Y-%m-%dT%H:%M:%S.%fZ")

    late = collect(stream_tenv, sql.late_rows_query())
    assert sorted(row[0] for row in late) == sorted(r.value or b"" for r in RECORDS if r.expect == "late")


def test_updates_query_totals_equal_the_ground_truth(stream_tenv: Any) -> None:
    rows = collect(stream_tenv, sql.updates_query(SETTINGS))
    speed: View = {}
    late: View = {}
    duplicates = 0
    malformed: dict[Any, dict[str, int]] = {}
    progress: dict[int, int] = {}
    for row in rows:
        (kind, bucket, region, category, currency, reason, revenue, orders, refunds, events,
         late_revenue, late_orders, late_refunds, late_events, dups, bad, max_event_ms) = row  # fmt: skip
        if kind == sql.UPDATE_HOUR:
            key = (from_epoch_ms(bucket), GroupKey(region, category, currency))
            assert key not in speed, f"two final rows for {key}"
            # A key with only duplicates (or only late events) has a zero row in the other view.
            for view, m in (
                (speed, Metrics(Decimal(revenue), orders, refunds, events)),
                (late, Metrics(Decimal(late_revenue), late_orders, late_refunds, late_events)),
            ):
                if m != Metrics():
                    view[key] = m
            duplicates += dups
        elif kind == sql.UPDATE_DLQ:
            malformed.setdefault(from_epoch_ms(bucket).date(), {})[reason] = bad
        else:
            assert kind == sql.UPDATE_PARTITION
            progress[bucket] = max_event_ms
    assert speed == TRUTH.speed
    assert late == TRUTH.late
    assert duplicates == TRUTH.duplicates
    assert malformed == TRUTH.malformed_by_date
    newest: dict[int, int] = {}
    for r in RECORDS:
        if expected_kind(r.expect) != sql.KIND_MALFORMED:
            newest[r.partition] = max(newest.get(r.partition, 0), to_epoch_ms(event(r.value).event_time))
    assert progress == newest


def test_the_plan_checks_no_value_against_a_hash_set_and_has_no_exchange_of_its_own(stream_tenv: Any) -> None:
    """Costs the profiles found, kept out (docs/benchmarks.md): Calcite's SEARCH (a hash set
    lookup per row) in the validation, and any SQL exchange before the outputs' aggregates (the
    partition progress is computed at the parse stage's boundary; the one exchange, by event_id,
    is job.first_arrivals' keyBy)."""
    parse_plan = stream_tenv.explain_sql(sql.parse_query())
    assert "SEARCH(" not in parse_plan
    for query in (sql.judge_query(SETTINGS), sql.classify_query()):
        plan = stream_tenv.explain_sql(query)
        assert "Exchange(" not in plan and "OverAggregate" not in plan, plan
