"""One parse per payload: the job's JsonMembers function against Flink's own JSON functions.

    .venvs/speed/bin/python speed_layer/bench/parse.py --events 300000

The same generated payloads (a raw-format file) go through three bounded batch queries at
parallelism 1, each reading every member the contract's rules read:
- `json_members`: one LAMBDA_JSON_MEMBERS call per payload (what the job does);
- `json_query_multi`: one multi-member JSON_QUERY projection (`$['event_id', ...]`), then a
  JSON_VALUE per member of its (smaller) answer;
- `json_query_per_member`: a JSON_QUERY per member on the whole payload (the job before it).
Each runs twice after a warm-up; the best rows/s per query is printed and written as JSON. The
figures include each batch job's start (a few seconds), so they understate the differences.
"""

from __future__ import annotations

import argparse
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from lambda_contract.events import MAX_JSON_DEPTH, RULES
from lambda_contract.settings import Settings
from lambda_tools.generator import GeneratorConfig, history
from speed_layer import job
from speed_layer import validation_sql as v

REPO = Path(__file__).resolve().parents[2]


def write_payloads(path: Path, events: int) -> int:
    start = datetime.now(UTC) - timedelta(days=1)
    written = 0
    with path.open("w") as f:
        for r in history(
            GeneratorConfig(seed=5, malformed_rate=0.0), start, start + timedelta(hours=6), events
        ):
            if r.value and b"\n" not in r.value:
                f.write(r.value.decode() + "\n")
                written += 1
    return written


def queries() -> dict[str, str]:
    """The three queries; only the contract's field names and constants go into their text."""
    names = [r.name for r in RULES]
    listed = ", ".join(v.sql_string(n) for n in names)
    last = 2 * len(names) + 1  # the last member's text (SQL arrays count from 1)
    members = (
        f"SELECT COUNT(*), SUM(CHAR_LENGTH(COALESCE(m[3], '')) + CHAR_LENGTH(COALESCE(m[{last}], ''))) "  # noqa: S608
        f"FROM (SELECT {v.MEMBERS_FUNCTION}(payload, {MAX_JSON_DEPTH}, {listed}) AS m FROM p)"
    )
    path = v.sql_string("$[" + ",".join(f"'{n}'" for n in names) + "]")
    values = " + ".join(f"CHAR_LENGTH(COALESCE(JSON_VALUE(j, '$.{n}'), ''))" for n in names)
    multi = f"SELECT COUNT(*), SUM({values}) FROM (SELECT JSON_QUERY(CAST(payload AS STRING), {path}) AS j FROM p)"  # noqa: S608
    each = " + ".join(
        f"CHAR_LENGTH(COALESCE(JSON_QUERY(CAST(payload AS STRING), '$.{n}' WITH UNCONDITIONAL ARRAY WRAPPER), ''))"
        for n in names
    )
    return {
        "json_members": members,
        "json_query_multi": multi,
        "json_query_per_member": f"SELECT COUNT(*), SUM({each}) FROM p",  # noqa: S608 (contract names)
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--events", type=int, default=300_000)
    p.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "speed_parse.json")
    args = p.parse_args()
    from pyflink.table import EnvironmentSettings, TableEnvironment

    work = REPO / ".local" / "bench"
    work.mkdir(parents=True, exist_ok=True)
    source = work / "parse-payloads.txt"
    rows = write_payloads(source, args.events)
    t_env = TableEnvironment.create(EnvironmentSettings.in_batch_mode())
    conf = t_env.get_config()
    conf.set("parallelism.default", "1")
    conf.set("pipeline.jars", job.functions_jar(Settings.from_env()))
    job.register_functions(t_env)
    t_env.execute_sql(
        f"CREATE TABLE p (payload BYTES) WITH ('connector' = 'filesystem', 'path' = '{source}', 'format' = 'raw')"
    )
    best: dict[str, float] = {}
    plan = [("warm-up", queries()["json_members"])] + list(queries().items()) * 2
    for label, query in plan:
        started = time.monotonic()
        with t_env.execute_sql(query).collect() as results:
            count = next(iter(results))[0]
        rate = count / (time.monotonic() - started)
        print(f"{label}: {count} payloads at {rate:,.0f} rows/s", flush=True)
        if label != "warm-up":
            best[label] = max(best.get(label, 0.0), rate)
    result = {
        "payloads": rows,
        "rows_per_s": best,
        "vs_json_members": {k: r / best["json_members"] for k, r in best.items()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))
    source.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
