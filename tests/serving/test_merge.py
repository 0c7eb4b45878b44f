"""The merge rule, per hour, as pure cases (serving_layer/README.md, "Merge rule")."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from serving_support import hours_from, k, m, utc

from serving_layer.merge import BatchView, MergedHour, Source, SpeedSnapshot, Status, merge, merge_hour

pytestmark = pytest.mark.unit

LATENESS = timedelta(minutes=5)
NOW = utc("2026-11-20T15:20:00Z")
H = hours_from(utc("2026-11-20T09:00:00Z"), 7)  # 09..15, 15 is the current hour


NO_BATCH = BatchView()
NO_SPEED = SpeedSnapshot()


def one(hour: datetime, batch: BatchView = NO_BATCH, speed: SpeedSnapshot = NO_SPEED) -> MergedHour:
    return merge_hour(hour, batch, speed, NOW, LATENESS)


def test_batch_covered_hour_is_final_from_gold() -> None:
    batch = BatchView(computed=frozenset({H[0]}), hours={H[0]: {k(): m("10.0000")}})
    got = one(H[0], batch)
    assert (got.source, got.status) == (Source.BATCH, Status.FINAL)
    assert got.groups == {k(): m("10.0000")}


def test_batch_covered_hour_without_gold_rows_is_a_final_zero_hour() -> None:
    got = one(H[0], BatchView(computed=frozenset({H[0]})))
    assert (got.source, got.status, dict(got.groups)) == (Source.BATCH, Status.FINAL, {})


def test_speed_only_hour_before_watermark_closes_it_is_open() -> None:
    # watermark 15:04:59.999: hour 14 closes at 15:05:00 -> still open
    speed = SpeedSnapshot(
        watermark=utc("2026-11-20T15:04:59.999Z"), held={H[5]: "open"}, hours={H[5]: {k(): m("3.0000")}}
    )
    got = one(H[5], speed=speed)
    assert (got.source, got.status) == (Source.SPEED, Status.OPEN)
    assert got.groups == {k(): m("3.0000")}


def test_speed_hour_is_closed_once_watermark_reaches_end_plus_lateness() -> None:
    speed = SpeedSnapshot(
        watermark=utc("2026-11-20T15:05:00Z"), held={H[5]: "open"}, hours={H[5]: {k(): m("3.0000")}}
    )
    assert one(H[5], speed=speed).status is Status.CLOSED


def test_speed_hour_marked_closed_by_the_speed_layer_is_closed() -> None:
    speed = SpeedSnapshot(
        watermark=utc("2026-11-20T14:10:00Z"), held={H[4]: "closed"}, hours={H[4]: {k(): m("1")}}
    )
    assert one(H[4], speed=speed).status is Status.CLOSED


def test_gap_in_batch_coverage_between_covered_hours_comes_from_speed_not_hidden_nor_doubled() -> None:
    batch = BatchView(
        computed=frozenset({H[0], H[2]}), hours={H[0]: {k(): m("1.0000")}, H[2]: {k(): m("3.0000")}}
    )
    speed = SpeedSnapshot(
        watermark=utc("2026-11-20T15:10:00Z"),
        held=dict.fromkeys(H[:3], "closed"),
        hours={H[0]: {k(): m("100.0000")}, H[1]: {k(): m("2.0000")}, H[2]: {k(): m("300.0000")}},
    )
    got = merge(H[:3], batch, speed, NOW, LATENESS)
    assert [(g.source, g.status) for g in got] == [
        (Source.BATCH, Status.FINAL),
        (Source.SPEED, Status.CLOSED),
        (Source.BATCH, Status.FINAL),
    ]
    assert [g.groups[k()].revenue for g in got] == [1, 2, 3]


def test_gap_in_batch_coverage_that_speed_lacks_too_is_missing() -> None:
    batch = BatchView(computed=frozenset({H[0], H[2]}))
    got = merge(H[:3], batch, SpeedSnapshot(), NOW, LATENESS)
    assert [(g.source, g.status) for g in got] == [
        (Source.BATCH, Status.FINAL),
        (Source.NONE, Status.MISSING),
        (Source.BATCH, Status.FINAL),
    ]


def test_past_hour_neither_view_has_is_missing() -> None:
    got = one(H[1])
    assert (got.source, got.status, dict(got.groups)) == (Source.NONE, Status.MISSING, {})


def test_before_the_speed_layer_wrote_anything_every_past_hour_is_missing() -> None:
    assert {g.status for g in merge(H, BatchView(), SpeedSnapshot(), NOW, LATENESS)} == {Status.MISSING}


def test_hour_in_both_views_comes_from_batch() -> None:
    batch = BatchView(computed=frozenset({H[3]}), hours={H[3]: {k(): m("5.0000")}})
    speed = SpeedSnapshot(
        watermark=NOW, held={H[3]: "closed"}, hours={H[3]: {k(): m("4.0000"), k("us"): m("1")}}
    )
    got = one(H[3], batch, speed)
    assert (got.source, got.status, dict(got.groups)) == (Source.BATCH, Status.FINAL, {k(): m("5.0000")})


def test_manifest_not_computed_hour_with_gold_rows_still_comes_from_speed() -> None:
    batch = BatchView(computed=frozenset(), hours={H[3]: {k(): m("5.0000")}})
    speed = SpeedSnapshot(watermark=NOW, held={H[3]: "closed"}, hours={H[3]: {k(): m("4.0000")}})
    got = one(H[3], batch, speed)
    assert (got.source, got.groups[k()].revenue) == (Source.SPEED, Decimal(4))


def test_hour_without_events_inside_the_speed_span_is_a_zero_speed_hour() -> None:
    # Speed holds 09 and its watermark is 13:30: it processed 09..13, so 10..13 had no events.
    speed = SpeedSnapshot(
        watermark=utc("2026-11-20T13:30:00Z"), held={H[0]: "closed"}, hours={H[0]: {k(): m("1")}}
    )
    got = merge(H, BatchView(), speed, NOW, LATENESS)
    assert [(g.source, g.status) for g in got] == [
        (Source.SPEED, Status.CLOSED),  # 09 held
        (Source.SPEED, Status.CLOSED),  # 10 no events, inside the span
        (Source.SPEED, Status.CLOSED),  # 11
        (Source.SPEED, Status.CLOSED),  # 12 closes at 13:05 <= watermark 13:30
        (Source.SPEED, Status.OPEN),  # 13 the watermark's own hour
        (Source.NONE, Status.MISSING),  # 14 the speed layer has not got there
        (Source.NONE, Status.MISSING),  # 15 the current hour, likewise
    ]
    assert got[1].groups == {}


def test_hours_after_now_are_future_zeros() -> None:
    later = utc("2026-11-20T16:00:00Z")
    got = one(later)
    assert (got.source, got.status, dict(got.groups)) == (Source.NONE, Status.FUTURE, {})


def test_current_hour_the_speed_layer_holds_is_open() -> None:
    speed = SpeedSnapshot(
        watermark=utc("2026-11-20T15:19:00Z"), held={H[6]: "open"}, hours={H[6]: {k(): m("2")}}
    )
    assert (one(H[6], speed=speed).source, one(H[6], speed=speed).status) == (Source.SPEED, Status.OPEN)


def test_every_hour_of_the_range_appears_once_in_order() -> None:
    got = merge(H, BatchView(computed=frozenset({H[2]})), SpeedSnapshot(), NOW, LATENESS)
    assert [g.hour for g in got] == H
