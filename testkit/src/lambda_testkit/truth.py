"""Ground truth: the exact aggregates a stream of records must produce in each view.

Used by the golden set and by the traffic generator. It is computed with the contract's reference
validator, in arrival order: validate, deduplicate valid events by event_id (first arrival wins),
then split by lateness. Whether a record is late is decided by whoever produces the traffic (it is
sent after its hour closed, by construction), because the engines decide lateness by watermark.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from lambda_contract.events import Event, validate
from lambda_contract.redis_layout import GroupKey, Metrics
from lambda_contract.tables import event_date
from lambda_contract.windows import hour_label, hour_start

AggKey = tuple[datetime, GroupKey]
View = dict[AggKey, Metrics]


@dataclass(frozen=True)
class SentRecord:
    """One Kafka record as produced: raw value, Kafka timestamp, and whether it was sent late."""

    value: bytes | None
    timestamp: datetime
    late: bool = False


@dataclass
class Truth:
    """Expected views: `full` (gold), `speed` (Redis: full minus late), `late` (late counters)."""

    full: View = field(default_factory=dict)
    speed: View = field(default_factory=dict)
    late: View = field(default_factory=dict)
    duplicates: int = 0
    malformed: dict[str, int] = field(default_factory=dict)
    malformed_by_date: dict[date, dict[str, int]] = field(default_factory=dict)
    records: int = 0

    def dates(self) -> list[date]:
        return sorted({hour.date() for hour, _ in self.full})

    def view_for_date(self, view: View, day: date) -> View:
        return {k: v for k, v in view.items() if k[0].date() == day}

    def to_json(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "duplicates": self.duplicates,
            "malformed": dict(sorted(self.malformed.items())),
            "malformed_by_date": {
                d.isoformat(): dict(sorted(c.items())) for d, c in sorted(self.malformed_by_date.items())
            },
            "full": _rows(self.full),
            "speed": _rows(self.speed),
            "late": _rows(self.late),
        }

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Truth:
        return cls(
            full=_view(doc["full"]),
            speed=_view(doc["speed"]),
            late=_view(doc["late"]),
            duplicates=int(doc["duplicates"]),
            malformed={k: int(v) for k, v in doc["malformed"].items()},
            malformed_by_date={
                date.fromisoformat(d): {k: int(v) for k, v in c.items()}
                for d, c in doc.get("malformed_by_date", {}).items()
            },
            records=int(doc["records"]),
        )

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def load(cls, path: Path) -> Truth:
        return cls.from_json(json.loads(path.read_text()))


def _rows(view: View) -> list[dict[str, Any]]:
    rows = []
    for (hour, key), m in sorted(view.items(), key=lambda kv: (kv[0][0], kv[0][1].field())):
        rows.append(
            {
                "hour": hour_label(hour),
                "region": key.region,
                "category": key.category,
                "currency": key.currency,
                "revenue": Metrics(m.revenue).encode().split("|")[0],
                "orders": m.orders,
                "refunds": m.refunds,
                "events": m.events,
            }
        )
    return rows


def _view(rows: list[dict[str, Any]]) -> View:
    from decimal import Decimal

    out: View = {}
    for r in rows:
        hour = datetime.fromisoformat(r["hour"].replace("Z", "+00:00"))
        key = GroupKey(r["region"], r["category"], r["currency"])
        out[(hour, key)] = Metrics(
            Decimal(r["revenue"]), int(r["orders"]), int(r["refunds"]), int(r["events"])
        )
    return out


def event_metrics(event: Event) -> Metrics:
    purchase = event.event_type == "purchase"
    return Metrics(event.signed_amount, int(purchase), int(not purchase), 1)


def agg_key(event: Event) -> AggKey:
    return (hour_start(event.event_time), GroupKey(event.region, event.category, event.currency))


def compute_truth(records: Iterable[SentRecord]) -> Truth:
    """Fold records in arrival order into the expected views."""
    truth = Truth()
    seen: set[str] = set()
    malformed: Counter[str] = Counter()
    by_date: defaultdict[date, Counter[str]] = defaultdict(Counter)
    for record in records:
        truth.records += 1
        result = validate(record.value)
        if not isinstance(result, Event):
            malformed[result.reason.value] += 1
            by_date[event_date(result.event_time, record.timestamp)][result.reason.value] += 1
            continue
        if result.event_id in seen:
            truth.duplicates += 1
            continue
        seen.add(result.event_id)
        key, m = agg_key(result), event_metrics(result)
        truth.full[key] = truth.full.get(key, Metrics()) + m
        target = truth.late if record.late else truth.speed
        target[key] = target.get(key, Metrics()) + m
    truth.malformed = dict(malformed)
    truth.malformed_by_date = {d: dict(c) for d, c in by_date.items()}
    return truth
