#!/usr/bin/env bash
# Runs tests/java/src/main/java/LakeJdbcCheck.java against a running `lake serve` through the
# Arrow Flight SQL JDBC driver (org.apache.arrow:flight-sql-jdbc-driver from Maven Central, like
# scripts/kafka.sh and scripts/spark.sh).
#
#   scripts/jdbc-check.sh install                   resolve the driver jar into
#                                                   $LAKE_CACHE/flight-jdbc-<version>-<pom cksum>/jars
#                                                   (once, with mvn) and print that directory
#   scripts/jdbc-check.sh HOST PORT USER PASSWORD DATE EMPTY_DATE
#                                                   install, then run the program in one JVM
#                                                   (Java's single-file source launcher, no build
#                                                   step); it prints one line per result, see the
#                                                   program's comment; exit 1 if any step failed
#
# Needs Java 17+ and mvn; tests/python/test_flight_jdbc.py runs it.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
java_dir="$here/../tests/java"
cache=${LAKE_CACHE:-$HOME/.cache/lake}
version=$(sed -n 's:.*<flight.jdbc.version>\(.*\)</flight.jdbc.version>.*:\1:p' "$java_dir/pom.xml")
pomsum=$(cksum < "$java_dir/pom.xml" | cut -d" " -f1)
jars="$cache/flight-jdbc-$version-$pomsum/jars"

install() {
    if [ ! -f "$jars/.complete" ]; then
        rm -rf "$jars"
        mkdir -p "$jars"
        mvn -q -B -f "$java_dir/pom.xml" dependency:copy-dependencies -DoutputDirectory="$jars" >&2
        touch "$jars/.complete"
    fi
}

case "${1:-}" in
    install) install; echo "$jars" ;;
    ""|-h|--help) sed -n '2,15p' "$0" >&2; exit 2 ;;
    *)
        install
        # Arrow's memory module reads java.nio internals; the driver jar is shaded (unnamed module).
        exec java --add-opens=java.base/java.nio=ALL-UNNAMED -Duser.timezone=UTC \
            -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
            -cp "$jars/*" "$java_dir/src/main/java/LakeJdbcCheck.java" "$@"
        ;;
esac
