"""The one-screen summary printed at the end of every run."""

from __future__ import annotations

from collections.abc import Sequence

from batch_layer.transforms import DateResult


def render(
    results: Sequence[DateResult],
    failures: Sequence[tuple[str, str]],
    ingested_rows: int | None,
    bronze_version: int | None,
    seconds: float,
    max_rows: int = 15,
) -> str:
    lines = ["", "=== lambda-batch run summary ==="]
    if ingested_rows is None:
        lines.append("ingest     : skipped")
    else:
        lines.append(f"ingest     : {ingested_rows} new rows -> bronze v{bronze_version}")
    lines.append(f"dates      : {len(results)} recomputed, {len(failures)} failed")
    if results:
        lines.append(
            f"{'date':<10}  {'why':<14} {'input':>9} {'valid':>9} {'dupes':>7} {'quarant.':>8} "
            f"{'late+':>6} {'gold':>6} {'secs':>6}"
        )
        for r in results[:max_rows]:
            lines.append(
                f"{r.day.isoformat():<10}  {r.why:<14} {r.input_rows:>9} {r.valid:>9} {r.duplicates:>7} "
                f"{r.quarantined:>8} {r.arrived_after_previous_run:>6} {r.gold_rows:>6} {r.seconds:>6.1f}"
            )
        if len(results) > max_rows:
            lines.append(f"... and {len(results) - max_rows} more dates")
        lines.append(
            f"{'total':<10}  {'':<14} {sum(r.input_rows for r in results):>9} "
            f"{sum(r.valid for r in results):>9} {sum(r.duplicates for r in results):>7} "
            f"{sum(r.quarantined for r in results):>8} "
            f"{sum(r.arrived_after_previous_run for r in results):>6} {sum(r.gold_rows for r in results):>6}"
        )
    for day, message in failures[:max_rows]:
        lines.append(f"FAILED {day}: {message}")
    lines.append(f"time       : {seconds:.1f} s")
    lines.append("status     : " + ("FAILED" if failures else "ok"))
    return "\n".join(lines)
