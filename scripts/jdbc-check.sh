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
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"
lake_env
lake_maven_dir "$java_dir/pom.xml" flight.jdbc.version flight-jdbc jars
jars=$maven_dir

install() { lake_maven_install "$java_dir/pom.xml" "$jars"; }

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
