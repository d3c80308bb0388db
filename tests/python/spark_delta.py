"""The shipped daily SQL run on Spark and DuckDB against a lake's raw table, and result comparison.

The SparkSession (Delta and S3 jars, `$date` -> `:date`) comes from scripts/spark/lake_spark.py,
shared with the Spark runner of the daily job (scripts/spark-daily.sh).
"""

from __future__ import annotations

import datetime
import math
import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
SQL_DIR = ROOT / "sql"
sys.path.insert(0, str(ROOT / "scripts" / "spark"))

from lake_spark import delta_jars, session, to_spark_sql  # noqa: E402,F401  (re-exported)


def register_raw(spark, lake: str | os.PathLike) -> None:
    """raw.user_events in Spark's (in-memory) catalog, backed by the lake's Delta table."""
    raw = pathlib.Path(lake).resolve() / "raw" / "user_events"
    spark.sql("CREATE DATABASE IF NOT EXISTS raw")
    spark.sql("DROP TABLE IF EXISTS raw.user_events")
    spark.sql(f"CREATE TABLE raw.user_events USING delta LOCATION '{raw.as_posix()}'")


def register_raw_duckdb(con, lake: str | os.PathLike) -> None:
    """raw.user_events in DuckDB, a view over delta_scan of the lake's table."""
    raw = pathlib.Path(lake).resolve() / "raw" / "user_events"
    con.execute("CREATE SCHEMA IF NOT EXISTS raw")
    con.execute(f"CREATE OR REPLACE VIEW raw.user_events AS SELECT * FROM delta_scan('{raw.as_posix()}')")


def daily_queries(sql_dir: str | os.PathLike = SQL_DIR) -> dict[str, str]:
    """{name: SQL text} of sql/daily/*.sql, as shipped."""
    return {p.stem: p.read_text() for p in sorted(pathlib.Path(sql_dir, "daily").glob("*.sql"))}


def run_spark(spark, text: str, date: datetime.date):
    """(columns, rows) of one daily query on Spark, rows as tuples."""
    df = spark.sql(to_spark_sql(text), args={"date": date})
    return df.columns, [tuple(r) for r in df.collect()]


def run_duckdb(con, text: str, date: datetime.date):
    """(columns, rows) of one daily query on DuckDB (native `$date` parameter)."""
    cur = con.execute(text, {"date": date})
    return [d[0] for d in cur.description], [tuple(r) for r in cur.fetchall()]


def read_lake_output(con, lake: str | os.PathLike, name: str, columns: list[str], date: datetime.date):
    """Rows that `lake daily` wrote to processed.<name> for date, in the given column order."""
    table = pathlib.Path(lake).resolve() / "processed" / name
    cols = ", ".join(f'"{c}"' for c in columns)
    return [tuple(r) for r in con.execute(
        f"SELECT {cols} FROM delta_scan('{table.as_posix()}') WHERE date = $date", {"date": date}
    ).fetchall()]


def _key(row):
    # Sort by every non-float value (floats are the computed ratios, compared with a tolerance).
    return tuple((v is None, str(type(v).__name__), v) for v in row if not isinstance(v, float))


def normalize(rows):
    return sorted(rows, key=_key)


def diff(a_name: str, a_rows, b_name: str, b_rows, rel_tol: float = 1e-12) -> list[str]:
    """Differences between two result sets (order-insensitive; floats within rel_tol)."""
    a, b = normalize(a_rows), normalize(b_rows)
    problems = []
    if len(a) != len(b):
        problems.append(f"{a_name} has {len(a)} rows, {b_name} has {len(b)}")
    for i, (ra, rb) in enumerate(zip(a, b)):
        if len(ra) != len(rb):
            problems.append(f"row {i}: {a_name} {ra} vs {b_name} {rb} (arity)")
            continue
        for j, (x, y) in enumerate(zip(ra, rb)):
            if isinstance(x, float) or isinstance(y, float):
                ok = (x is None and y is None) or (
                    x is not None and y is not None and math.isclose(x, y, rel_tol=rel_tol, abs_tol=0.0))
            else:
                ok = x == y and type(x) is type(y)
            if not ok:
                problems.append(f"row {i} col {j}: {a_name}={x!r} {b_name}={y!r}\n  {a_name}: {ra}\n  {b_name}: {rb}")
    return problems
