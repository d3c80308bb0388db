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
cache=${LAKE_CACHE:-$HOME/.cache/lake}
version=$(sed -n 's:.*<delta.version>\(.*\)</delta.version>.*:\1:p' "$here/spark/pom.xml")
pomsum=$(cksum < "$here/spark/pom.xml" | cut -d" " -f1)
jars="$cache/spark-delta-$version-$pomsum/jars"

install() {
    if [ ! -f "$jars/.complete" ]; then
        rm -rf "$jars"
        mkdir -p "$jars"
        mvn -q -B -f "$here/spark/pom.xml" dependency:copy-dependencies \
            -DoutputDirectory="$jars" >&2
        touch "$jars/.complete"
    fi
}

case "${1:-}" in
    install) install; echo "$jars" ;;
    jars) install; ls "$jars"/*.jar | paste -sd, - ;;
    *) echo "usage: $0 install | jars" >&2; exit 2 ;;
esac
