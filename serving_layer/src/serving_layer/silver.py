"""Read the events behind one hour and key of gold from the silver table (docs/specs/delta.md).

The coverage manifest says whether the hour is final and which run computed it; silver is read
for that hour's partition folder only, filtered to the key (its rows are contiguous and sorted,
so Parquet statistics skip the other keys' row groups), and only rows of the manifest's run are
served: a rerun that has written silver but not yet its manifest is reported, never mixed in.
Blocking (delta-rs): routes call it in a worker thread.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from lambda_contract.events import AMOUNT_SCALE
from lambda_contract.settings import Settings
from lambda_contract.storage import delta_rs_options
from lambda_contract.tables import MANIFEST, SILVER
from lambda_contract.windows import date_of, format_instant

EVENT_FIELDS: Final = (
    "event_id",
    "event_time",
    "event_type",
    "amount",
    "kafka_partition",
    "kafka_offset",
    "counted",
    "reason",
)
"""The fields of each listed event, in order (JSON and CSV alike)."""

_READ: Final = [*EVENT_FIELDS, "run_id"]
_ZERO: Final = Decimal(0).scaleb(-AMOUNT_SCALE)  # 0.0000: an empty sum keeps the amounts' scale


class NotFinalError(LookupError):
    """The hour is not covered by the batch (or its silver rows were never written): 404."""


class RecomputingError(RuntimeError):
    """A rerun of the date has replaced silver but not yet published its manifest: 503, retry."""


class StaleCursorError(ValueError):
    """The cursor belongs to an earlier computation of the hour: 409, start again."""


@dataclass(frozen=True)
class HourKey:
    hour: datetime
    region: str
    category: str
    currency: str


@dataclass(frozen=True)
class Cursor:
    """Where a page ended: the run that computed the hour and the last (partition, offset)."""

    run_id: str
    partition: int
    offset: int

    def encode(self) -> str:
        raw = f"{self.run_id}|{self.partition}|{self.offset}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        """Raises ValueError when `text` is not a cursor this module made."""
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            run_id, partition, offset = raw.split("|")
            return cls(run_id, int(partition), int(offset))
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise ValueError("cursor: not a cursor this route returned (pass next_cursor as it is)") from None


@dataclass(frozen=True)
class Totals:
    """Over the counted events of the whole hour and key, not only the page."""

    revenue: Decimal
    orders: int
    refunds: int
    events: int


@dataclass(frozen=True)
class EventsPage:
    run_id: str
    events: list[dict[str, Any]]
    next_cursor: Cursor | None
    totals: Totals


def _open(url: str, storage_options: dict[str, str]) -> DeltaTable | None:
    try:
        return DeltaTable(url, storage_options=storage_options)
    except TableNotFoundError:
        return None


def computing_run(settings: Settings, hour: datetime) -> str:
    """The run id the manifest names for `hour`; NotFinalError unless the hour is computed."""
    manifest = _open(settings.delta_table_url(MANIFEST.name), delta_rs_options(settings))
    pending = (
        f"{format_instant(hour)} is not final: its events are listed once the nightly batch "
        "recompute has covered its date (until then /v1/revenue/hourly serves it from the speed view)"
    )
    if manifest is None:
        raise NotFinalError(pending)
    rows = manifest.to_pyarrow_table(
        columns=["hour", "computed", "run_id", "computed_at"], filters=[("date", "=", date_of(hour))]
    ).to_pylist()
    mine = [r for r in rows if r["hour"].astimezone(UTC) == hour]
    if not mine:
        raise NotFinalError(pending)
    latest = max(mine, key=lambda r: r["computed_at"])
    if not latest["computed"]:
        raise NotFinalError(pending)
    return str(latest["run_id"])


def _hour_filter(hour: datetime) -> ds.Expression:
    return (pc.field("date") == pa.scalar(hour.date(), pa.date32())) & (
        pc.field("hour_of_day") == pa.scalar(hour.hour, pa.int32())
    )


def _hour_rows(settings: Settings, key: HourKey, run_id: str) -> pa.Table:
    """The key's silver rows of the hour, in cursor order; checks they are the manifest's run."""
    table = _open(settings.delta_table_url(SILVER.name), delta_rs_options(settings))
    missing = (
        f"the events of {format_instant(key.hour)} were not kept: its date was computed before the "
        f"silver table existed; recompute it (lambda-batch run --date {key.hour.date()}) to list them"
    )
    if table is None:
        raise NotFinalError(missing)
    data = table.to_pyarrow_dataset()
    in_hour = _hour_filter(key.hour)
    of_key = (
        in_hour
        & (pc.field("region") == key.region)
        & (pc.field("category") == key.category)
        & (pc.field("currency") == key.currency)
    )
    rows = data.to_table(columns=_READ, filter=of_key)
    others = set(pc.unique(rows["run_id"]).to_pylist()) - {run_id}
    if rows.num_rows == 0 and data.count_rows(filter=in_hour & (pc.field("run_id") == run_id)) == 0:
        # No row of the run in the whole hour: another run's rows stand there, or silver was never
        # written for this run, or the hour had no events at all (then an empty answer is right).
        others = set(pc.unique(data.to_table(columns=["run_id"], filter=in_hour)["run_id"]).to_pylist())
        if not others and _hour_had_input(settings, key.hour):
            raise NotFinalError(missing)
    if others:
        raise RecomputingError(
            f"{key.hour.date()} is being recomputed (silver holds run {sorted(others)[0]}, the "
            f"manifest still names {run_id}); retry in a minute. If it lasts, that run failed before "
            f"its manifest commit: recompute the date (lambda-batch run --date {key.hour.date()})"
        )
    return rows.sort_by([("kafka_partition", "ascending"), ("kafka_offset", "ascending")])


def _hour_had_input(settings: Settings, hour: datetime) -> bool:
    manifest = _open(settings.delta_table_url(MANIFEST.name), delta_rs_options(settings))
    if manifest is None:
        return False
    rows = manifest.to_pyarrow_table(columns=["hour", "input_rows"], filters=[("date", "=", date_of(hour))])
    return any(r["input_rows"] > 0 and r["hour"].astimezone(UTC) == hour for r in rows.to_pylist())


def totals_of(rows: pa.Table) -> Totals:
    """Exact sums over the counted rows: Decimal from Arrow's decimal128(38,4) sum, no float."""
    counted = rows.filter(pc.field("counted"))
    purchases = counted.filter(pc.field("event_type") == "purchase")
    refunds = counted.filter(pc.field("event_type") == "refund")

    def total(t: pa.Table) -> Decimal:
        value = pc.sum(t["amount"]).as_py()
        return _ZERO if value is None else Decimal(value)

    return Totals(total(purchases) - total(refunds), purchases.num_rows, refunds.num_rows, counted.num_rows)


def _after(rows: pa.Table, cursor: Cursor) -> pa.Table:
    part, off = pc.field("kafka_partition"), pc.field("kafka_offset")
    return rows.filter((part > cursor.partition) | ((part == cursor.partition) & (off > cursor.offset)))


def event_doc(row: dict[str, Any]) -> dict[str, Any]:
    """One event as the API shows it: amount a decimal string in the event's own currency."""
    when = row["event_time"]
    return {
        "event_id": row["event_id"],
        "event_time": format_instant(when.astimezone(UTC)) if when is not None else None,
        "event_type": row["event_type"],
        "amount": str(row["amount"]) if row["amount"] is not None else None,
        "kafka_partition": row["kafka_partition"],
        "kafka_offset": row["kafka_offset"],
        "counted": row["counted"],
        "reason": row["reason"],
    }


def read_events(settings: Settings, key: HourKey, limit: int, cursor: Cursor | None) -> EventsPage:
    """One page of the hour-key's events after `cursor`, with the totals of the whole hour-key."""
    run_id = computing_run(settings, key.hour)
    if cursor is not None and cursor.run_id != run_id:
        raise StaleCursorError(
            f"cursor: the hour was recomputed (run {run_id}) since this cursor was issued "
            f"(run {cursor.run_id}); start again without a cursor"
        )
    rows = _hour_rows(settings, key, run_id)
    rest = rows if cursor is None else _after(rows, cursor)
    page = rest.slice(0, limit).to_pylist()
    following = None
    if rest.num_rows > limit:
        last = page[-1]
        following = Cursor(run_id, int(last["kafka_partition"]), int(last["kafka_offset"]))
    return EventsPage(run_id, [event_doc(r) for r in page], following, totals_of(rows))
