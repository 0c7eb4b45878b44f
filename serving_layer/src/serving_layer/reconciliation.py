"""Reconciliation, pure: compare the speed view with gold for a date, per hour and key, and explain
every difference by cause. What no cause explains is the residual, zero when healthy.

For each hour and key, `gap = gold - speed` (gold is exact). Causes are applied in this order:

1. late: the speed layer rejected events as late and counted them per hour and key; they are in
   gold and not in the speed view, so the late counters explain exactly that much (count and
   revenue, per key).
2. speed gap: the speed layer holds nothing for the hour (never saw it, or Redis retention
   expired it) while gold has rows; the whole gold value is the gap.
3. open: the hour is still open in the speed view (events for it may still arrive), so a
   difference is in flight, not an error.
4. duplicates the speed layer did not suppress (its dedup state expired before the redelivery):
   the speed view counts them, gold does not, so the speed view is *higher*. The budget per hour
   is the batch's duplicate count minus the duplicates the speed layer suppressed.
5. malformed disagreement: when the DLQ (speed) and quarantine (batch) counts for the date differ,
   the engines classified some event differently; that count is a budget for differences in
   the matching direction.

Every explained part and the residual carry the sign of `gold - speed` (duplicates are negative:
the speed view is higher). A key's remaining difference is explained by a budgeted cause only when the budget covers its
whole event difference (revenue then follows exactly, since a duplicate or a misclassified event
carries its own amount); anything else stays in the residual.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from lambda_contract.redis_layout import HOUR_CLOSED, GroupKey, Metrics
from lambda_contract.windows import hour_label, hours_of_date
from serving_layer.fx import FxTable, to_cents

HourKeys = Mapping[datetime, Mapping[GroupKey, Metrics]]
ZERO = Metrics()


def _neg(m: Metrics) -> Metrics:
    return Metrics(-m.revenue, -m.orders, -m.refunds, -m.events)


def _sub(a: Metrics, b: Metrics) -> Metrics:
    return a + _neg(b)


def _is_zero(m: Metrics) -> bool:
    return m.revenue == 0 and m.orders == 0 and m.refunds == 0 and m.events == 0


@dataclass(frozen=True)
class Inputs:
    """Everything reconciliation reads for one date, from Redis and Delta."""

    day: date
    speed: HourKeys
    speed_status: Mapping[datetime, str]  # hours hash of the speed layer: open | closed
    late: HourKeys
    speed_duplicates: Mapping[datetime, int]  # suppressed by the speed layer, per hour
    dlq: Mapping[str, int]  # speed DLQ counts by reason for the date
    gold: HourKeys
    computed_hours: frozenset[datetime]
    batch_duplicates: Mapping[datetime, int]  # from the coverage manifest, per hour
    quarantine: Mapping[str, int]  # batch quarantine counts by reason for the date


@dataclass(frozen=True)
class KeyResult:
    key: GroupKey
    speed: Metrics
    batch: Metrics
    late: Metrics = ZERO
    speed_gap: Metrics = ZERO
    open: Metrics = ZERO
    duplicates: Metrics = ZERO
    malformed: Metrics = ZERO
    residual: Metrics = ZERO


@dataclass(frozen=True)
class HourResult:
    hour: datetime
    speed_status: str  # open | closed | gap (the speed layer holds nothing for the hour)
    computed: bool
    keys: tuple[KeyResult, ...]

    def total(self, attr: str) -> Metrics:
        out = ZERO
        for k in self.keys:
            out = out + getattr(k, attr)
        return out


@dataclass
class Report:
    day: date
    hours: list[HourResult]
    dlq: dict[str, int]
    quarantine: dict[str, int]
    speed_duplicates: int
    batch_duplicates: int
    fx_missing: list[str] = field(default_factory=list)

    @property
    def computed(self) -> bool:
        return any(h.computed for h in self.hours)

    def total(self, attr: str) -> Metrics:
        out = ZERO
        for h in self.hours:
            out = out + h.total(attr)
        return out

    @property
    def residual_events(self) -> int:
        return sum(abs(k.residual.events) for h in self.hours for k in h.keys)

    @property
    def explained(self) -> bool:
        return all(_is_zero(k.residual) for h in self.hours for k in h.keys)


CAUSES = ("late", "speed_gap", "open", "duplicates", "malformed")
"""The explained parts of a difference, in the order they are applied."""


def reconcile(inputs: Inputs) -> Report:
    """Attribute every difference between the speed view and gold for `inputs.day`."""
    dlq_total = sum(inputs.dlq.values())
    quarantine_total = sum(inputs.quarantine.values())
    # Malformed budgets: events the speed layer rejected but the batch kept (gold higher),
    # and events the batch rejected but the speed layer kept (speed higher).
    budget_speed_rejected = max(0, dlq_total - quarantine_total)
    budget_batch_rejected = max(0, quarantine_total - dlq_total)
    hours: list[HourResult] = []
    for hour in hours_of_date(inputs.day):
        speed = inputs.speed.get(hour, {})
        gold = inputs.gold.get(hour, {})
        late = inputs.late.get(hour, {})
        held = hour in inputs.speed_status or bool(speed) or bool(late)
        status = inputs.speed_status.get(hour, "open" if held else "gap")
        status = "gap" if not held else ("closed" if status == HOUR_CLOSED else "open")
        dup_budget = max(0, inputs.batch_duplicates.get(hour, 0) - inputs.speed_duplicates.get(hour, 0))
        results = []
        for key in sorted(set(speed) | set(gold) | set(late), key=GroupKey.field):
            s, g, lt = speed.get(key, ZERO), gold.get(key, ZERO), late.get(key, ZERO)
            remaining = _sub(_sub(g, s), lt)
            parts: dict[str, Metrics] = {"late": lt}
            if status == "gap":
                parts["speed_gap"], remaining = remaining, ZERO
            elif status == "open" and not _is_zero(remaining):
                parts["open"], remaining = remaining, ZERO
            if remaining.events < 0 and -remaining.events <= dup_budget:
                dup_budget -= -remaining.events
                parts["duplicates"], remaining = remaining, ZERO
            if remaining.events > 0 and remaining.events <= budget_speed_rejected:
                budget_speed_rejected -= remaining.events
                parts["malformed"], remaining = remaining, ZERO
            elif remaining.events < 0 and -remaining.events <= budget_batch_rejected:
                budget_batch_rejected -= -remaining.events
                parts["malformed"], remaining = remaining, ZERO
            results.append(KeyResult(key, s, g, residual=remaining, **parts))
        hours.append(HourResult(hour, status, hour in inputs.computed_hours, tuple(results)))
    return Report(
        day=inputs.day,
        hours=hours,
        dlq=dict(inputs.dlq),
        quarantine=dict(inputs.quarantine),
        speed_duplicates=sum(v for h, v in inputs.speed_duplicates.items() if h.date() == inputs.day),
        batch_duplicates=sum(v for h, v in inputs.batch_duplicates.items() if h.date() == inputs.day),
    )


def _usd(fx: FxTable, day: date, by_currency: Mapping[str, Decimal], missing: set[str]) -> Decimal:
    converted = fx.convert(by_currency, day, "USD")
    if converted.value is None:
        missing.update(converted.missing)
        return Decimal(0)
    return converted.value


def _by_currency(results: list[KeyResult], attr: str, absolute: bool = False) -> dict[str, Decimal]:
    out: dict[str, Decimal] = {}
    for k in results:
        revenue = getattr(k, attr).revenue
        out[k.key.currency] = out.get(k.key.currency, Decimal(0)) + (abs(revenue) if absolute else revenue)
    return out


def _metrics_json(m: Metrics) -> dict[str, Any]:
    return {"revenue": format(m.revenue, "f"), "orders": m.orders, "refunds": m.refunds, "events": m.events}


def to_json(report: Report, fx: FxTable) -> dict[str, Any]:
    """The report as JSON (GET /v1/reconciliation/{date}, reports/reconciliation-DATE.json): per-hour
    entries and the totals, money as decimal strings."""
    missing: set[str] = set()
    all_keys = [k for h in report.hours for k in h.keys]
    speed_events = report.total("speed").events
    batch_events = report.total("batch").events
    residual_usd = _usd(fx, report.day, _by_currency(all_keys, "residual", absolute=True), missing)
    hours_json = []
    for h in report.hours:
        keys = list(h.keys)
        hours_json.append(
            {
                "hour": hour_label(h.hour),
                "speed_status": h.speed_status,
                "computed": h.computed,
                "speed": _metrics_json(h.total("speed")),
                "batch": _metrics_json(h.total("batch")),
                "speed_usd": to_cents(_usd(fx, report.day, _by_currency(keys, "speed"), missing)),
                "batch_usd": to_cents(_usd(fx, report.day, _by_currency(keys, "batch"), missing)),
                "explained": {cause: _metrics_json(h.total(cause)) for cause in CAUSES},
                "residual": _metrics_json(h.total("residual")),
                "residual_events": sum(abs(k.residual.events) for k in keys),
                "residual_usd": to_cents(_usd(fx, report.day, _by_currency(keys, "residual", True), missing)),
                "keys": [
                    {
                        "region": k.key.region,
                        "category": k.key.category,
                        "currency": k.key.currency,
                        "speed": _metrics_json(k.speed),
                        "batch": _metrics_json(k.batch),
                        **{cause: _metrics_json(getattr(k, cause)) for cause in CAUSES},
                        "residual": _metrics_json(k.residual),
                    }
                    for k in keys
                    if not (k.speed == k.batch and _is_zero(k.late))
                ],
            }
        )
    late = report.total("late")
    totals = {
        "speed_events": speed_events,
        "batch_events": batch_events,
        "late_events": late.events,
        "late_revenue_usd": to_cents(_usd(fx, report.day, _by_currency(all_keys, "late"), missing)),
        "duplicate_events": -report.total("duplicates").events,
        "batch_duplicate_events": report.batch_duplicates,
        "speed_suppressed_duplicates": report.speed_duplicates,
        "malformed_events": sum(report.quarantine.values()),
        "dlq_events": sum(report.dlq.values()),
        "speed_gap_events": report.total("speed_gap").events,
        "speed_gap_hours": [hour_label(h.hour) for h in report.hours if h.speed_status == "gap" and h.keys],
        "open_events": report.total("open").events,
        "residual_events": report.residual_events,
        "residual_revenue_usd": to_cents(residual_usd),
        "drift_ratio": float(abs(speed_events - batch_events) / batch_events) if batch_events else 0.0,
        "verdict": "explained" if report.explained else "unexplained",
    }
    return {
        "date": report.day.isoformat(),
        "computed": report.computed,
        "hours": hours_json,
        "totals": totals,
        "malformed_by_reason": {
            "dlq": dict(sorted(report.dlq.items())),
            "quarantine": dict(sorted(report.quarantine.items())),
        },
        "fx_missing": sorted(missing),
    }
