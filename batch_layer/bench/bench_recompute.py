"""Benchmark: recompute a 10M-event day from bronze to silver and gold with Spark (the real CLI,
wall clock including Spark start-up) vs DuckDB doing the same validate + dedup + per-event table
(reason codes, counted flag, Kafka position; Parquet partitioned by date and hour, sorted by key)
+ aggregate on the same bronze Parquet files, same run. Prints both times and the ratio, and
writes JSON.

    .venvs/batch/bin/python batch_layer/bench/bench_recompute.py --rows 10000000 --out bench.json

The data set (a bronze Delta table under --root) is generated once by Spark and reused; it has
~1% duplicates and ~1% malformed rows, amounts as JSON strings and numbers, offsets +00:00/Z.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

DAY = date(2026, 11, 20)


def generate(delta_root: str, rows: int, environ: dict[str, str] | None = None) -> None:
    """`rows` bronze rows of DAY into the Delta tables under `delta_root`, with the Spark (local or
    a cluster) and object store of `environ` (default: this process's)."""
    from dataclasses import replace

    from pyspark.sql import functions as F  # noqa: N812

    from batch_layer import delta_tables
    from batch_layer.spark import build_session
    from lambda_contract.settings import Settings
    from lambda_contract.tables import BRONZE

    settings = replace(Settings.from_env(environ), delta_root=delta_root)
    spark = build_session(settings, app_name="bench-generate")
    try:
        n = F.col("id") + 100
        lid = F.when(n % 100 == 0, n - 1).otherwise(n)  # 1% duplicates
        ms = F.lit(int(time.mktime(DAY.timetuple())) * 1000) + (lid * 8639) % 86_400_000
        ts = F.timestamp_millis(ms)
        amount = F.format_string("%d.%02d", (lid % 5000) + 1, lid % 100)
        amount_json = F.when(lid % 2 == 0, F.concat(F.lit('"'), amount, F.lit('"'))).otherwise(amount)
        amount_json = F.when(lid % 97 == 0, F.lit('"-1"')).otherwise(amount_json)  # ~1% malformed
        payload = F.format_string(
            '{"event_id":"evt-%d","event_type":"%s","event_time":"%s","order_id":"ord-%d",'
            '"customer_id":"cus-%d","region":"%s","category":"%s","currency":"%s","amount":%s}',
            lid,
            F.when(lid % 20 == 0, "refund").otherwise("purchase"),
            F.date_format(ts, "yyyy-MM-dd'T'HH:mm:ss.SSS'Z'"),
            lid,
            lid % 50000,
            F.element_at(
                F.array(
                    *[
                        F.lit(r)
                        for r in (
                            "eu-west",
                            "eu-north",
                            "us-east",
                            "us-west",
                            "ap-south",
                            "ap-east",
                            "sa-east",
                            "af-south",
                        )
                    ]
                ),
                (lid % 8 + 1).cast("int"),
            ),
            F.concat(F.lit("cat_"), (lid % 20).cast("string")),
            F.element_at(
                F.array(*[F.lit(c) for c in ("USD", "EUR", "GBP", "JPY", "BRL")]), (lid % 5 + 1).cast("int")
            ),
            amount_json,
        )
        df = spark.range(rows).select(
            F.lit(DAY).alias("event_date"),
            F.format_string("ord-%d", lid).cast("binary").alias("key"),
            payload.cast("binary").alias("value"),
            F.lit("orders.v1").alias("topic"),
            (F.col("id") % 3).cast("int").alias("partition"),
            F.col("id").alias("offset"),
            (ts + F.expr("INTERVAL 1 SECOND")).alias("kafka_timestamp"),
            F.current_timestamp().alias("ingested_at"),
        )
        delta_tables.ensure(spark, settings, BRONZE)
        delta_tables.conform(df, BRONZE).write.format("delta").mode("append").save(
            delta_tables.url(settings, BRONZE)
        )
    finally:
        spark.stop()


DUCKDB_SILVER_SQL = r"""
WITH src AS (
  SELECT value, partition, "offset", kafka_timestamp,
         CASE WHEN value IS NULL OR octet_length(value) = 0 THEN NULL ELSE TRY(decode(value)) END AS txt
  FROM read_parquet($files)
), doc AS (
  SELECT *, CASE WHEN json_valid(txt) AND json_type(txt) = 'OBJECT' THEN txt::JSON END AS j FROM src
), f AS (
  SELECT *,
    json_extract_string(j, '$.event_id') AS event_id, json_type(j, '$.event_id') AS t_id,
    json_extract_string(j, '$.event_type') AS event_type, json_type(j, '$.event_type') AS t_type,
    json_extract_string(j, '$.event_time') AS event_time, json_type(j, '$.event_time') AS t_time,
    json_extract_string(j, '$.order_id') AS order_id, json_type(j, '$.order_id') AS t_order,
    json_extract_string(j, '$.customer_id') AS customer_id, json_type(j, '$.customer_id') AS t_cust,
    json_extract_string(j, '$.region') AS region, json_type(j, '$.region') AS t_region,
    json_extract_string(j, '$.category') AS category, json_type(j, '$.category') AS t_cat,
    json_extract_string(j, '$.currency') AS currency, json_type(j, '$.currency') AS t_cur,
    json_extract_string(j, '$.amount') AS amount, json_type(j, '$.amount') AS t_amount
  FROM doc
), v AS (
  SELECT *,
    regexp_full_match(event_time, '([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})') AS time_ok,
    try_strptime(replace(event_time, 'Z', '+00:00'), ['%Y-%m-%dT%H:%M:%S.%f%z', '%Y-%m-%dT%H:%M:%S%z']) AS ts
  FROM f
), c AS (
  SELECT *,
    CASE
      WHEN value IS NULL OR octet_length(value) = 0 THEN 'empty_payload'
      WHEN txt IS NULL THEN 'not_utf8'
      WHEN NOT json_valid(txt) THEN 'not_json'
      WHEN j IS NULL THEN 'not_object'
      WHEN t_id IS NULL OR t_id = 'NULL' THEN 'missing_event_id'
      WHEN NOT (t_id = 'VARCHAR' AND length(event_id) BETWEEN 1 AND 64) THEN 'invalid_event_id'
      WHEN t_type IS NULL OR t_type = 'NULL' THEN 'missing_event_type'
      WHEN NOT (t_type = 'VARCHAR' AND event_type IN ('purchase', 'refund')) THEN 'invalid_event_type'
      WHEN t_time IS NULL OR t_time = 'NULL' THEN 'missing_event_time'
      WHEN NOT (t_time = 'VARCHAR' AND time_ok AND ts IS NOT NULL) THEN 'invalid_event_time'
      WHEN t_order IS NULL OR t_order = 'NULL' THEN 'missing_order_id'
      WHEN NOT (t_order = 'VARCHAR' AND length(order_id) BETWEEN 1 AND 64) THEN 'invalid_order_id'
      WHEN t_cust IS NULL OR t_cust = 'NULL' THEN 'missing_customer_id'
      WHEN NOT (t_cust = 'VARCHAR' AND length(customer_id) BETWEEN 1 AND 64) THEN 'invalid_customer_id'
      WHEN t_region IS NULL OR t_region = 'NULL' THEN 'missing_region'
      WHEN NOT (t_region = 'VARCHAR' AND regexp_full_match(region, '[a-z0-9-]{1,32}')) THEN 'invalid_region'
      WHEN t_cat IS NULL OR t_cat = 'NULL' THEN 'missing_category'
      WHEN NOT (t_cat = 'VARCHAR' AND regexp_full_match(category, '[a-z0-9_-]{1,32}')) THEN 'invalid_category'
      WHEN t_cur IS NULL OR t_cur = 'NULL' THEN 'missing_currency'
      WHEN NOT (t_cur = 'VARCHAR' AND regexp_full_match(currency, '[A-Z]{3}')) THEN 'invalid_currency'
      WHEN t_amount IS NULL OR t_amount = 'NULL' THEN 'missing_amount'
      WHEN NOT (t_amount IN ('VARCHAR', 'UBIGINT', 'BIGINT', 'DOUBLE')
                AND regexp_full_match(amount, '-?[0-9]+(\.[0-9]+)?')) THEN 'invalid_amount'
      WHEN regexp_full_match(amount, '-[\s\S]*|0+(\.0+)?') THEN 'amount_not_positive'
      WHEN NOT regexp_full_match(amount, '0*[0-9]{1,12}(\.[0-9]+)?') THEN 'amount_out_of_range'
      WHEN NOT regexp_full_match(amount, '[0-9]+(\.[0-9]{0,4}0*)?') THEN 'amount_too_precise'
    END AS reason
  FROM v
), marked AS (
  SELECT *, date_trunc('hour', coalesce(ts, kafka_timestamp) AT TIME ZONE 'UTC') AS hr,
    reason IS NULL AND row_number() OVER (
      PARTITION BY CASE WHEN reason IS NULL THEN event_id END
      ORDER BY kafka_timestamp, partition, "offset") = 1 AS first_copy
  FROM c
)
SELECT CAST(hr AS DATE) AS date, CAST(hour(hr) AS INTEGER) AS hour_of_day, hr AS hour,
       CASE WHEN reason IS NULL THEN region END AS region,
       CASE WHEN reason IS NULL THEN category END AS category,
       CASE WHEN reason IS NULL THEN currency END AS currency,
       CASE WHEN reason IS NULL THEN event_type END AS event_type,
       CASE WHEN reason IS NULL THEN amount::DECIMAL(16,4) END AS amount,
       first_copy AS counted,
       CASE WHEN first_copy THEN NULL WHEN reason IS NULL THEN 'duplicate' ELSE reason END AS reason,
       CASE WHEN reason IS NULL THEN event_id END AS event_id,
       ts AT TIME ZONE 'UTC' AS event_time,
       partition AS kafka_partition, "offset" AS kafka_offset, 'duckdb' AS run_id
FROM marked
"""
"""DuckDB's per-event table: the same rows and columns as the recompute's silver_events."""

DUCKDB_GOLD_SQL = r"""
SELECT hour, region, category, currency,
       sum(CASE WHEN event_type = 'purchase' THEN amount ELSE -amount END)::DECIMAL(38,4) AS revenue,
       count(*) FILTER (WHERE event_type = 'purchase') AS orders,
       count(*) FILTER (WHERE event_type = 'refund') AS refunds,
       count(*) AS events
FROM silver WHERE counted GROUP BY ALL
"""
"""Gold from the per-event table's counted rows, as the recompute sums silver's."""


def run_duckdb(root: Path, out: Path) -> tuple[float, int]:
    """Bronze -> the per-event table (written as Parquet, partitioned and sorted like silver) ->
    gold, the same work as the recompute's silver and gold writes."""
    import duckdb
    from deltalake import DeltaTable

    silver_dir = root / "duckdb_silver"
    shutil.rmtree(silver_dir, ignore_errors=True)
    started = time.monotonic()
    files = list(DeltaTable(str(root / "delta" / "bronze")).file_uris())
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET temp_directory = '{root / 'duckdb_tmp'}'")
    con.execute(f"CREATE TEMP TABLE silver AS {DUCKDB_SILVER_SQL.replace('$files', repr(files))}")
    order = "hour_of_day, region, category, currency, kafka_partition, kafka_offset"
    con.execute(
        f"COPY (SELECT * FROM silver ORDER BY {order}) TO '{silver_dir}' "  # noqa: S608 - our own path
        "(FORMAT parquet, PARTITION_BY (date, hour_of_day))"
    )
    con.execute(f"COPY ({DUCKDB_GOLD_SQL}) TO '{out}' (FORMAT parquet)")
    rows = con.execute("SELECT count(*), sum(events) FROM read_parquet(?)", [str(out)]).fetchone()
    assert rows is not None
    return time.monotonic() - started, int(rows[1])


def run_spark(root: Path) -> tuple[float, str]:
    env = dict(os.environ, LAMBDA_DELTA_ROOT=str(root / "delta"), LAMBDA_PUSHGATEWAY_URL="")
    cli = Path(sys.executable).with_name("lambda-batch")
    started = time.monotonic()
    done = subprocess.run(
        [str(cli), "run", "--date", DAY.isoformat(), "--no-ingest", "--no-auto"],
        env=env,
        capture_output=True,
        text=True,
    )
    elapsed = time.monotonic() - started
    if done.returncode != 0:
        raise SystemExit(f"spark run failed:\n{done.stderr[-3000:]}")
    return elapsed, done.stdout


def _same_totals(root: Path) -> bool:
    """Both engines' gold must agree (per hour/key metrics), or the timing compares different work."""
    import duckdb
    from deltalake import DeltaTable

    spark_gold = DeltaTable(str(root / "delta" / "gold")).to_pyarrow_table()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    con.register("sg", spark_gold)
    diff = con.execute(
        "SELECT count(*) FROM (SELECT hour, region, category, currency, revenue, orders, refunds, events FROM sg "
        "EXCEPT SELECT hour, region, category, currency, revenue, orders, refunds, events "
        "FROM read_parquet(?))",
        [str(root / "duckdb_gold.parquet")],
    ).fetchone()
    return diff is not None and diff[0] == 0


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--rows", type=int, default=10_000_000)
    p.add_argument(
        "--root",
        type=Path,
        default=Path(os.environ.get("LAMBDA_STATE_DIR", ".local/state")) / "bench" / "batch",
    )
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    # The data set is cached per size and Parquet layout (a new row-group size regenerates it).
    from batch_layer.spark import ROW_GROUP_BYTES

    root = args.root.resolve() / f"rows-{args.rows}-rg{ROW_GROUP_BYTES >> 20}m"  # Delta needs it absolute
    if not (root / "delta" / "bronze" / "_delta_log").exists():
        print(f"generating {args.rows} bronze rows under {root} ...", flush=True)
        generate(str(root / "delta"), args.rows)
    duck_s, duck_events = run_duckdb(root, root / "duckdb_gold.parquet")
    print(f"duckdb: {duck_s:.2f} s ({duck_events} events in gold)", flush=True)
    spark_s, summary = run_spark(root)
    print(f"spark (lambda-batch run, incl. start-up): {spark_s:.2f} s", flush=True)
    agree = _same_totals(root)
    result = {
        "rows": args.rows,
        "duckdb_seconds": round(duck_s, 2),
        "spark_seconds_incl_startup": round(spark_s, 2),
        "ratio": round(spark_s / duck_s, 2),
        "target_ratio": 4.0,
        "duckdb_gold_events": duck_events,
        "spark_and_duckdb_gold_agree": agree,
        "cpus": os.cpu_count(),
        "load_average_1m_at_end": round(os.getloadavg()[0], 2),
    }
    print(summary)
    print(json.dumps(result, indent=1))
    if args.out:
        args.out.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
