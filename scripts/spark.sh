#!/usr/bin/env bash
# Delta Lake jars for PySpark, installed from Maven Central with mvn (like scripts/kafka.sh).
#
#   scripts/spark.sh install    resolve delta-spark and its dependencies into
#                               $LAKE_CACHE/spark-delta-<version>-<pom cksum>/jars (once) and print
#                               that directory
#   scripts/spark.sh jars       print the jars as a comma-separated list (for spark.jars)
#
# Spark itself comes from the pyspark pip package (tests/python/requirements.txt), which ships
# Spark's jars; only Delta's are added. The Python side (tests/python/spark_delta.py) reads the
# directory from $LAKE_SPARK_JARS, or runs this script when that is unset.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"
lake_env
lake_maven_dir "$here/spark/pom.xml" delta.version spark-delta jars
jars=$maven_dir

install() { lake_maven_install "$here/spark/pom.xml" "$jars"; }

case "${1:-}" in
    install) install; echo "$jars" ;;
    jars) install; ls "$jars"/*.jar | paste -sd, - ;;
    *) echo "usage: $0 install | jars" >&2; exit 2 ;;
esac
