#!/usr/bin/env bash
# The daily job on Apache Spark (delta-spark): the same sql/daily and sql/checks files as
# `lake daily`, writing the same processed.<name> tables with the same per-date replace, for jobs
# too big for one machine. See scripts/spark/daily.py for what it does and does not do.
#
#   scripts/spark-daily.sh --lake LAKE (--date D | --from D --to D) [--sql DIR]
#                          [--master spark://host:7077] [--cores N] [--conf KEY=VALUE] [--json]
#
# LAKE is a folder or s3://bucket/prefix (credentials and endpoint from the AWS_* variables that
# `lake` reads). Without --master, Spark runs in this process's JVM (local[--cores]); with it,
# this machine is the driver and the master's workers run the queries (the jars are shipped to
# them). PySpark comes from the venv of scripts/lib.sh (created when missing), Delta's and S3's
# jars from Maven Central (scripts/spark.sh). Java 17 or newer must be on the PATH.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"
lake_env
lake_venv   # sets $venv
LAKE_SPARK_JARS=$("$here/spark.sh" install | tail -n 1)
export LAKE_SPARK_JARS
exec "$venv/bin/python" "$here/spark/daily.py" "$@"
