"""A local PySpark session with Delta Lake, and the shipped daily SQL run on Spark and DuckDB.

Spark comes from the ``pyspark`` wheel (it ships Spark's jars); Delta's jars come from Maven
Central through ``scripts/spark.sh install`` (cached under $LAKE_CACHE, keyed by the checksum of
scripts/spark/pom.xml). ``$LAKE_SPARK_JARS`` may name that directory; otherwise the script is
run here, which resolves the jars once and prints the directory. No Ivy / ``--packages``.

The session uses an in-memory catalog and a temporary warehouse directory, so nothing (no
metastore_db, spark-warehouse, derby.log) is left in the working directory. Its time zone is UTC.

The daily SQL files use the DATE parameter ``$date`` (bound by ``lake daily`` and by DuckDB, whose
named-parameter syntax is the same). Spark's named parameters are written ``:date``; the harness
rewrites ``$date`` to ``:date`` in the text (``to_spark_sql``) and binds the value with
``spark.sql(text, args={"date": datetime.date})``, which Spark turns into a DATE literal. That is
the only change made to the SQL.
"""

from __future__ import annotations

import datetime
import math
import os
import pathlib
import re
import subprocess
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[2]
SQL_DIR = ROOT / "sql"


def delta_jars() -> list[str]:
    """The Delta jars for spark.jars (from $LAKE_SPARK_JARS or scripts/spark.sh install)."""
    folder = os.environ.get("LAKE_SPARK_JARS")
    if not folder:
        out = subprocess.run([str(ROOT / "scripts" / "spark.sh"), "install"],
                             capture_output=True, text=True)
        if out.returncode != 0:
            raise RuntimeError(f"scripts/spark.sh install failed:\n{out.stderr}")
        folder = out.stdout.strip().splitlines()[-1]
    jars = sorted(str(p) for p in pathlib.Path(folder).glob("*.jar"))
    if not any("delta-spark" in pathlib.Path(j).name for j in jars):
        raise RuntimeError(f"no delta-spark jar in {folder}")
    return jars


def session(app: str = "lake-crosscheck", cores: int = 2, conf: dict | None = None):
    """A local[cores] SparkSession with Delta's SQL extension and catalog.

    Returns (spark, warehouse): warehouse is a TemporaryDirectory the caller cleans up after
    spark.stop().
    """
    from pyspark.sql import SparkSession

    warehouse = tempfile.TemporaryDirectory(prefix="lake-spark-")
    builder = (
        SparkSession.builder.master(f"local[{cores}]")
        .appName(app)
        .config("spark.jars", ",".join(delta_jars()))
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.sql.catalogImplementation", "in-memory")
        .config("spark.sql.warehouse.dir", os.path.join(warehouse.name, "warehouse"))
        .config("spark.local.dir", os.path.join(warehouse.name, "tmp"))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        # Spark 4.2 substitutes :name parameters while parsing, through a parser entry point that
        # Delta 4.4's DeltaSqlParser (installed by the extension above) does not forward: every
        # spark.sql(text, args=...) then fails with UNBOUND_SQL_PARAMETER. The legacy mode binds
        # parameters in the analyzer instead (literal positions only, which is all the daily SQL
        # uses), and works with the Delta parser. Known upstream: delta-io/delta#7640
        # (DeltaSqlParser does not override parsePlanWithParameters), apache/spark#58932.
        .config("spark.sql.legacy.parameterSubstitution.constantsOnly", "true")
    )
    for k, v in (conf or {}).items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark, warehouse


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


_DATE_PARAM = re.compile(r"\$date\b")


def to_spark_sql(text: str) -> str:
    """`$date` (lake/DuckDB named parameter) -> `:date` (Spark named parameter); nothing else."""
    return _DATE_PARAM.sub(":date", text)


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
