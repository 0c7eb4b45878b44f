"""From merged hours to API rows (pure): filter, group, convert, render.

Revenue stays per native currency until the row is complete, then one conversion turns the
row's {currency: amount} into the reporting currency, so a row's value never depends on the
order in which keys were summed and rounding happens once, at the edge.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from lambda_contract.redis_layout import GroupKey, Metrics
from lambda_contract.windows import hour_label
from serving_layer.fx import FxTable, to_cents
from serving_layer.merge import HourData, MergedHour, Status, entries
from serving_layer.params import HourlyQuery

Row = dict[str, Any]


@dataclass
class Bucket:
    """One output row's sums before conversion."""

    orders: int = 0
    refunds: int = 0
    events: int = 0
    revenue: dict[str, Decimal] = field(default_factory=dict)

    def add(self, currency: str, metrics: Metrics) -> None:
        self.add_values(currency, metrics.revenue, metrics.orders, metrics.refunds, metrics.events)

    def add_values(self, currency: str, revenue: Decimal, orders: int, refunds: int, events: int) -> None:
        self.orders += orders
        self.refunds += refunds
        self.events += events
        self.revenue[currency] = self.revenue.get(currency, Decimal(0)) + revenue


def selected(key: GroupKey, query: HourlyQuery) -> bool:
    return (query.regions is None or key.region in query.regions) and (
        query.categories is None or key.category in query.categories
    )


def group_hour(groups: HourData, query: HourlyQuery) -> dict[tuple[str | None, ...], Bucket]:
    """Sum the hour's keys that pass the filters into one bucket per group_by value tuple.

    Rows come as plain tuples (merge.entries): a gold hour kept as columns is never turned into
    Metrics objects just to be summed."""
    buckets: dict[tuple[str | None, ...], Bucket] = {}
    fields = query.group_by
    for key, revenue, orders, refunds, events in entries(groups):
        if not selected(key, query):
            continue
        values = tuple(getattr(key, f) for f in fields)
        bucket = buckets.get(values)
        if bucket is None:
            bucket = buckets[values] = Bucket()
        bucket.add_values(key.currency, revenue, orders, refunds, events)
    return buckets


def render_hour(merged: MergedHour, query: HourlyQuery, fx: FxTable) -> list[Row]:
    """The hour's rows, sorted by group values; one zero row when nothing matches."""
    if merged.status is Status.UNAVAILABLE:
        # Nothing is known about the hour: no number at all rather than zeros that look real.
        unknown: Row = {"hour": hour_label(merged.hour), **dict.fromkeys(query.group_by)}
        unknown.update(revenue=None, orders=None, refunds=None, events=None)
        unknown.update(source=merged.source.value, status=merged.status.value, fx_stale=False)
        return [unknown]
    buckets = group_hour(merged.groups, query)
    if not buckets:
        buckets[tuple(None for _ in query.group_by)] = Bucket()
    label = hour_label(merged.hour)
    day = merged.hour.date()
    rows: list[Row] = []
    for values in sorted(buckets, key=lambda v: tuple(x or "" for x in v)):
        bucket = buckets[values]
        converted = fx.convert(bucket.revenue, day, query.currency)
        row: Row = {"hour": label}
        row.update(zip(query.group_by, values, strict=True))
        row["revenue"] = to_cents(converted.value) if converted.value is not None else None
        if "currency" in query.group_by and values[query.group_by.index("currency")] is not None:
            native = sum(bucket.revenue.values(), Decimal(0))
            row["revenue_native"] = format(native.quantize(Decimal("0.0001")), "f")
        row["orders"] = bucket.orders
        row["refunds"] = bucket.refunds
        row["events"] = bucket.events
        row["source"] = merged.source.value
        row["status"] = merged.status.value
        row["fx_stale"] = converted.stale
        if converted.missing:
            row["fx_missing"] = list(converted.missing)
        rows.append(row)
    return rows


def render(hours: Iterable[MergedHour], query: HourlyQuery, fx: FxTable) -> list[Row]:
    rows: list[Row] = []
    for merged in hours:
        rows.extend(render_hour(merged, query, fx))
    return rows
