"""A SparkSession with Delta Lake for lake's tables, local or on S3; shared by the Spark runner of
the daily job (scripts/spark/daily.py), the cross-checks (tests/python) and the benchmarks.

Spark comes from the ``pyspark`` wheel (it ships Spark's and Hadoop's jars); Delta's jars, and
hadoop-aws with the AWS SDK modules it uses, come from Maven Central through
``scripts/spark.sh install`` (cached under $LAKE_CACHE, keyed by the checksum of
scripts/spark/pom.xml). ``$LAKE_SPARK_JARS`` may name that directory; otherwise the script is run
here, which resolves the jars once and prints the directory. No Ivy / ``--packages``.

The session uses an in-memory catalog and a temporary warehouse directory, so nothing (no
metastore_db, spark-warehouse, derby.log) is left in the working directory. Its time zone is UTC.

The daily SQL files use the DATE parameter ``$date`` (bound by ``lake daily`` and by DuckDB, whose
named-parameter syntax is the same). Spark's named parameters are written ``:date``;
``to_spark_sql`` rewrites ``$date`` to ``:date`` and nothing else, and the value is bound with
``spark.sql(text, args={"date": datetime.date})``.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import tempfile
from urllib.parse import urlparse

ROOT = pathlib.Path(__file__).resolve().parents[2]


def delta_jars() -> list[str]:
    """The jars for spark.jars (from $LAKE_SPARK_JARS or scripts/spark.sh install)."""
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


def s3_conf(env=os.environ) -> dict[str, str]:
    """Hadoop S3A settings from the variables `lake` reads (AWS_ENDPOINT_URL, AWS_REGION,
    AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_ALLOW_HTTP): the same
    credentials and endpoint reach the same bucket. Without an access key S3A's own provider chain
    (instance profile, ~/.aws) applies."""
    conf = {}
    endpoint = env.get("AWS_ENDPOINT_URL") or env.get("AWS_ENDPOINT")
    if endpoint:
        conf["spark.hadoop.fs.s3a.endpoint"] = endpoint
        # S3-compatible servers on one host name: bucket in the path, not in a sub-domain.
        conf["spark.hadoop.fs.s3a.path.style.access"] = "true"
        if urlparse(endpoint).scheme == "http":
            conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] = "false"
    region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    if region:
        conf["spark.hadoop.fs.s3a.endpoint.region"] = region
    if env.get("AWS_ACCESS_KEY_ID"):
        conf["spark.hadoop.fs.s3a.access.key"] = env["AWS_ACCESS_KEY_ID"]
        conf["spark.hadoop.fs.s3a.secret.key"] = env.get("AWS_SECRET_ACCESS_KEY", "")
        if env.get("AWS_SESSION_TOKEN"):
            conf["spark.hadoop.fs.s3a.session.token"] = env["AWS_SESSION_TOKEN"]
            conf["spark.hadoop.fs.s3a.aws.credentials.provider"] = (
                "org.apache.hadoop.fs.s3a.TemporaryAWSCredentialsProvider")
        else:
            conf["spark.hadoop.fs.s3a.aws.credentials.provider"] = (
                "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider")
    return conf


def hadoop_uri(lake: str) -> str:
    """The lake's location as Hadoop names it: a local folder as an absolute path, s3://bucket/x
    as s3a://bucket/x (Hadoop's S3 connector). Other schemes are refused: Spark reaches them
    only with connectors not shipped here."""
    scheme = urlparse(lake).scheme
    if scheme in ("s3", "s3a"):
        return "s3a://" + lake.split("://", 1)[1].rstrip("/")
    if scheme in ("", "file"):
        path = lake[len("file://"):] if scheme == "file" else lake
        return pathlib.Path(path).resolve().as_posix()
    raise ValueError(f"{lake}: the Spark runner reads local folders and s3:// lakes, not {scheme}://")


def session(app: str = "lake-spark", cores: int = 2, conf: dict | None = None, master: str | None = None):
    """A SparkSession with Delta's SQL extension and catalog (local[cores] unless master names a
    cluster, e.g. spark://host:7077), S3A configured from the environment.

    Returns (spark, warehouse): warehouse is a TemporaryDirectory the caller cleans up after
    spark.stop().
    """
    from pyspark.sql import SparkSession

    warehouse = tempfile.TemporaryDirectory(prefix="lake-spark-")
    builder = (
        SparkSession.builder.master(master or f"local[{cores}]")
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
    for k, v in {**s3_conf(), **(conf or {})}.items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark, warehouse


_DATE_PARAM = re.compile(r"\$date\b")


def to_spark_sql(text: str) -> str:
    """`$date` (lake/DuckDB named parameter) -> `:date` (Spark named parameter); nothing else."""
    return _DATE_PARAM.sub(":date", text)
