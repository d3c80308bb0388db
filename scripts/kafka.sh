#!/usr/bin/env bash
# A single-node Apache Kafka broker (KRaft) for tests, installed from Maven Central with mvn.
#
#   scripts/kafka.sh install        resolve the broker's jars into $LAKE_CACHE/kafka-<version>
#   scripts/kafka.sh start DIR      start a broker on a free loopback port, state in DIR;
#                                   prints the bootstrap address (also in DIR/bootstrap)
#   scripts/kafka.sh stop DIR       stop it
#   scripts/kafka.sh kill DIR       kill it as a crash would (SIGKILL), keeping its state
#   scripts/kafka.sh restart DIR    start it again from DIR's state, on the same port
#   scripts/kafka.sh version        print the broker's version (scripts/kafka/pom.xml)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/lib.sh
. "$here/lib.sh"
lake_env
lake_maven_dir "$here/kafka/pom.xml" kafka.version kafka libs
version=$maven_version libs=$maven_dir

install() { lake_maven_install "$here/kafka/pom.xml" "$libs"; }

start() {
    local dir=$1
    install
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    local port cport
    { read -r port; read -r cport; } < <(lake_free_port 2)
    cat > "$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/logs
num.partitions=3
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
group.min.session.timeout.ms=1000
PROPS
    cat > "$dir/log4j2.properties" <<'PROPS'
rootLogger.level=WARN
rootLogger.appenderRef.file.ref=file
appender.file.type=File
appender.file.name=file
appender.file.fileName=${sys:kafka.logs.dir}/server.log
appender.file.layout.type=PatternLayout
appender.file.layout.pattern=%d %p %c - %m%n
PROPS
    echo "$port" > "$dir/port"
    java_cmd "$dir"
    "${java[@]}" kafka.tools.StorageTool format -t "$("${java[@]}" kafka.tools.StorageTool random-uuid)" \
        -c "$dir/server.properties" > "$dir/format.log" 2>&1
    launch "$dir"
}

java_cmd() {
    java=(java -Xmx512m -Dkafka.logs.dir="$1" -Dlog4j2.configurationFile="$1/log4j2.properties" -cp "$libs/*")
}

# launch DIR: runs the broker configured in DIR and waits for its port.
launch() {
    local dir=$1 port
    port=$(cat "$dir/port")
    java_cmd "$dir"
    nohup "${java[@]}" kafka.Kafka "$dir/server.properties" >> "$dir/stdout.log" 2>&1 &
    echo $! > "$dir/pid"
    for _ in $(seq 1 120); do
        if (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "127.0.0.1:$port" > "$dir/bootstrap"
            echo "127.0.0.1:$port"
            return 0
        fi
        if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
            echo "kafka exited; see $dir/stdout.log" >&2
            tail -20 "$dir/stdout.log" >&2
            return 1
        fi
        sleep 0.5
    done
    echo "kafka did not open port $port within 60 s" >&2
    return 1
}

crash() {
    local dir=$1
    [ -f "$dir/pid" ] || return 0
    kill -9 "$(cat "$dir/pid")" 2>/dev/null || true
    # A zombie nobody reaps would stay "alive" for kill -0: wait a bounded time.
    for _ in $(seq 1 50); do kill -0 "$(cat "$dir/pid")" 2>/dev/null || break; sleep 0.1; done
    rm -f "$dir/pid"
}

case "${1:-}" in
    install) install ;;
    start) start "${2:?usage: kafka.sh start DIR}" ;;
    stop) lake_stop_server "${2:?usage: kafka.sh stop DIR}" ;;
    kill) crash "${2:?usage: kafka.sh kill DIR}" ;;
    restart) launch "$(cd "${2:?usage: kafka.sh restart DIR}" && pwd)" ;;
    version) echo "$version" ;;
    *) echo "usage: $0 install | start DIR | stop DIR | kill DIR | restart DIR | version" >&2; exit 2 ;;
esac
