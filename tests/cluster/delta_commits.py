"""What one `lambda-batch run` left in the Delta logs on the object store, against what a clean run
commits: no partial, duplicate or aborted commit after a Spark worker died mid-recompute.

A clean run over dates D1 < ... < Dn on a box's fresh tables commits (batch_layer.runner,
recompute.ensure_tables, recompute.commit_date):
- bronze: CREATE TABLE, then one STREAMING UPDATE per micro-batch of the ingest, epochs 0, 1, ...
  each once (the Delta sink's idempotent transaction);
- quarantine, silver_events, gold, coverage_manifest: CREATE TABLE, then for each date in turn one
  WRITE each (mode Overwrite, replaceWhere `<column> = DATE'D'`), in the order quarantine ->
  silver -> gold -> manifest. Delta records no empty commit (its skipRecordingEmptyCommits,
  on by default), so on fresh tables a date with no malformed row has no quarantine commit, one
  without a counted event no gold commit; the manifest (24 rows) always commits.

The check reads the logs with delta-rs (the serving layer's reader) and lists the `_delta_log`
folders with pyarrow's S3 client: the versions are 0..latest with nothing else there (no staged or
stray entry), every commit is the one expected in that order, each commit wrote the rows the
manifest counts, the silver rows carry the manifest's run id, and every data file the latest
versions reference exists with its logged size. Files of killed task attempts that no commit
references are allowed: Spark leaves them, `lambda-batch maintain` vacuums them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

import pyarrow as pa
from deltalake import DeltaTable
from pyarrow.fs import FileInfo, FileSelector, FileType, S3FileSystem

from lambda_contract.settings import Settings
from lambda_contract.storage import delta_rs_options, pyarrow_s3
from lambda_contract.tables import BRONZE, GOLD, MANIFEST, QUARANTINE, SILVER

# The recompute's tables in the order of a date's commits, with the column its replaceWhere names.
DATE_COMMITS: Final = ((QUARANTINE.name, "event_date"), (SILVER.name, "date"), (GOLD.name, "date"),
                       (MANIFEST.name, "date"))  # fmt: skip
HOURS: Final = 24
LOG_ENTRY: Final = re.compile(r"(\d{20})\.(json|crc|checkpoint\.parquet)")
PREDICATE: Final = re.compile(r"(\w+) = DATE'(\d{4}-\d{2}-\d{2})'")


@dataclass(frozen=True)
class Commit:
    table: str
    version: int
    timestamp_ms: int
    operation: str
    parameters: dict[str, Any]
    output_rows: int | None

    def label(self) -> str:
        return f"{self.table} v{self.version} {self.operation} {self.parameters.get('predicate', '')}".strip()


def object_store(settings: Settings) -> S3FileSystem:
    """pyarrow's S3 client for the settings' object store."""
    return S3FileSystem(**pyarrow_s3(settings))


def _bucket_path(url: str) -> str:
    return re.sub(r"^s3a?://", "", url).rstrip("/")


def history(table: DeltaTable, name: str) -> list[Commit]:
    commits = []
    for h in table.history():
        metrics = h.get("operationMetrics") or {}
        rows = metrics.get("numOutputRows")
        commits.append(Commit(name, int(h["version"]), int(h["timestamp"]), str(h["operation"]),
                              dict(h.get("operationParameters") or {}),
                              None if rows is None else int(rows)))  # fmt: skip
    return sorted(commits, key=lambda c: c.version)


def log_problems(fs: S3FileSystem, url: str, latest: int) -> list[str]:
    """Anything in `_delta_log` other than the entries of versions 0..latest (a commit file for each)."""
    base = f"{_bucket_path(url)}/_delta_log"
    infos: list[FileInfo] = fs.get_file_info(FileSelector(base, recursive=True))
    problems: list[str] = []
    commits: set[int] = set()
    for info in infos:
        name = info.path.removeprefix(base + "/")
        if info.type == FileType.Directory:
            continue  # an empty _staged_commits/ (Delta makes it); a file inside it is reported below
        m = LOG_ENTRY.fullmatch(name)
        if name == "_last_checkpoint":
            continue
        if m is None or int(m[1]) > latest:
            problems.append(f"{base}: unexpected entry {name}")
        elif m[2] == "json":
            commits.add(int(m[1]))
    missing = sorted(set(range(latest + 1)) - commits)
    if missing:
        problems.append(f"{base}: no commit file for versions {missing}")
    return problems


def file_problems(fs: S3FileSystem, table: DeltaTable, url: str) -> list[str]:
    """Each data file the latest version references: present, with the size its add action logs."""
    adds = pa.table(table.get_add_actions(flatten=True)).select(["path", "size_bytes"]).to_pylist()
    base = _bucket_path(url)
    infos = fs.get_file_info([f"{base}/{a['path']}" for a in adds])
    problems = []
    for add, info in zip(adds, infos, strict=True):
        if info.type != FileType.File:
            problems.append(f"{base}: {add['path']} is referenced but missing")
        elif info.size != add["size_bytes"]:
            problems.append(f"{base}: {add['path']} has {info.size} bytes, the log says {add['size_bytes']}")
    return problems


def _rows_per_date(table: DeltaTable, column: str) -> dict[date, int]:
    adds = pa.table(table.get_add_actions(flatten=True))
    out: dict[date, int] = {}
    for day, n in zip(adds.column(f"partition.{column}").to_pylist(), adds.column("num_records").to_pylist(),
                      strict=True):  # fmt: skip
        out[day] = out.get(day, 0) + int(n)
    return out


def _expected(
    days: list[date], manifest: list[dict[str, Any]], gold_rows: dict[date, int]
) -> list[tuple[str, date, int]]:
    """(table, date, rows written) of each WRITE a clean run commits, in commit order."""
    out: list[tuple[str, date, int]] = []
    for day in sorted(days):
        hours = [m for m in manifest if m["date"] == day]
        written = {
            QUARANTINE.name: sum(m["quarantined"] for m in hours),
            SILVER.name: sum(m["input_rows"] for m in hours),
            GOLD.name: gold_rows.get(day, 0),
            MANIFEST.name: len(hours),
        }
        out += [
            (name, day, written[name]) for name, _ in DATE_COMMITS if written[name] or name == MANIFEST.name
        ]
    return out


def check_run(settings: Settings, days: list[date], began: datetime) -> dict[str, Any]:
    """Assert that the tables hold exactly what one clean run begun at `began` commits on fresh
    tables over every date from the first of `days` to the last (`--from`/`--to`); the versions
    it found per table and the run id, for the report."""
    days = [min(days) + timedelta(days=i) for i in range((max(days) - min(days)).days + 1)]
    fs = object_store(settings)
    began_ms = int(began.timestamp() * 1000)
    tables = {name: DeltaTable(settings.delta_table_url(name), storage_options=delta_rs_options(settings))
              for name in (BRONZE.name, *(n for n, _ in DATE_COMMITS))}  # fmt: skip
    problems: list[str] = []
    logs = {name: history(t, name) for name, t in tables.items()}
    for name, t in tables.items():
        url = settings.delta_table_url(name)
        problems += log_problems(fs, url, t.version()) + file_problems(fs, t, url)
        versions = [c.version for c in logs[name]]
        if versions != list(range(t.version() + 1)):
            problems.append(f"{name}: history has versions {versions}, the log 0..{t.version()}")
        problems += [
            f"{name}: {c.label()} is older than the run" for c in logs[name] if c.timestamp_ms < began_ms
        ]
        if not logs[name] or logs[name][0].operation != "CREATE TABLE":
            problems.append(f"{name}: version 0 is not the run's CREATE TABLE")

    epochs = [c.parameters.get("epochId") for c in logs[BRONZE.name][1:]]
    if [c.operation for c in logs[BRONZE.name][1:]] != ["STREAMING UPDATE"] * len(epochs) or epochs != [
        str(i) for i in range(len(epochs))
    ]:
        problems.append(
            f"bronze: expected one STREAMING UPDATE per epoch 0.., got {[c.label() for c in logs[BRONZE.name]]}"
        )

    manifest = tables[MANIFEST.name].to_pyarrow_table().to_pylist()
    run_ids = {m["run_id"] for m in manifest}
    run_id = next(iter(run_ids)) if len(run_ids) == 1 else None
    if run_id is None:
        problems.append(f"manifest: expected one run id, got {sorted(run_ids)}")
    elif datetime.strptime(run_id[:16], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC) < began.replace(microsecond=0):
        problems.append(f"manifest: run {run_id} began before this run")
    for day in days:
        hours = [m for m in manifest if m["date"] == day]
        if len(hours) != HOURS or not all(m["computed"] for m in hours):
            problems.append(
                f"manifest: {day} has {len(hours)} rows, computed {[m['computed'] for m in hours]}"
            )
    if {m["date"] for m in manifest} != set(days):
        problems.append(f"manifest: dates {sorted({m['date'] for m in manifest})}, the run's {sorted(days)}")
    silver_runs = pa.table(tables[SILVER.name].get_add_actions(flatten=True)).select(
        ["min.run_id", "max.run_id"]
    )
    stray = {r for col in silver_runs.columns for r in col.to_pylist()} - {run_id}
    if stray:
        problems.append(
            f"silver_events: rows of runs {sorted(map(str, stray))}, not only the manifest's {run_id}"
        )

    # The WRITEs of every table, by time: exactly the expected sequence, each with its rows.
    gold_rows = _rows_per_date(tables[GOLD.name], "date")
    expected = _expected(days, manifest, gold_rows)
    column = dict(DATE_COMMITS)
    writes = sorted((c for name, _ in DATE_COMMITS for c in logs[name][1:]), key=lambda c: c.timestamp_ms)
    got: list[tuple[str, date | None, int | None]] = []
    for c in writes:
        m = PREDICATE.fullmatch(str(c.parameters.get("predicate", "")))
        ok = (
            c.operation == "WRITE"
            and c.parameters.get("mode") == "Overwrite"
            and m
            and m[1] == column[c.table]
        )
        if not ok or m is None:
            problems.append(f"{c.label()}: not a replaceWhere of one date")
        got.append((c.table, date.fromisoformat(m[2]) if m else None, c.output_rows))
    if got != expected:
        problems.append(
            "the commits are not those of one clean run:\n  expected "
            + "\n           ".join(map(str, expected))
            + "\n  found    "
            + "\n           ".join(f"{w} at {c.timestamp_ms}" for w, c in zip(got, writes, strict=True))
        )
    for name, col in ((QUARANTINE.name, "event_date"), (SILVER.name, "date")):
        committed = {d: n for t, d, n in expected if t == name}
        held = {d: n for d, n in _rows_per_date(tables[name], col).items() if n}
        if held != committed:
            problems.append(
                f"{name}: the latest version holds {held} rows per date, the run wrote {committed}"
            )
    assert not problems, "the batch run's Delta logs are not a clean run's:\n" + "\n".join(problems)
    return {"run_id": run_id, "versions": {name: t.version() for name, t in tables.items()}}
