#!/usr/bin/env bash
# A throw-away single-node Apache Kafka 4.4 (KRaft) for the benchmarks.
#
#   bench/broker.sh start PORT DIR   format DIR (once) and start a broker on 127.0.0.1:PORT
#                                     (controller on PORT+1); waits until it serves requests
#   bench/broker.sh stop DIR         SIGTERM, wait
#   bench/broker.sh kill DIR         SIGKILL (the recovery benchmark)
#   bench/broker.sh restart DIR      start again on the same log directory and port
#   bench/broker.sh pid DIR          the broker's pid (for its CPU time)
#
# Jars come from Maven Central (kafka_2.13 4.4.0 + a log4j2 binding) into
# $BENCH_KAFKA_LIBS (default ~/.cache/credit-bus-bench/kafka-4.4.0), once.
# Plain-text listener, heap 512m-1g, the 2-core thread counts of
# /work/shared/KAFKA.md, and a short broker session so a broker killed and
# restarted on its log directory registers again after ~6 s instead of ~14 s.
# Delete DIR when done: a 1M-record run writes about 1 GB.
#
# BENCH_BROKER_SESSION_MS (default 3000): broker.session.timeout.ms. On a host
# loaded well past its cores the controller can miss 3 s of heartbeats and
# fence its own broker mid-run; 9000 (Kafka's default) rides that out.
set -euo pipefail

KAFKA_VERSION=4.4.0
LIBS=${BENCH_KAFKA_LIBS:-$HOME/.cache/credit-bus-bench/kafka-$KAFKA_VERSION}

say() { printf '==> %s\n' "$*" >&2; }

fetch_jars() {
  [ -f "$LIBS/.complete" ] && return
  say "fetching Apache Kafka $KAFKA_VERSION jars from Maven Central into $LIBS"
  command -v mvn >/dev/null || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y maven; }
  local work
  work=$(mktemp -d)
  cat >"$work/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>credit-bus</groupId><artifactId>bench-kafka</artifactId><version>1</version><packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <!-- kafka_2.13 logs through slf4j-api 1.7.x: this is its log4j2 binding -->
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>2.25.2</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>2.25.2</version></dependency>
  </dependencies>
</project>
EOF
  mkdir -p "$LIBS"
  (cd "$work" && mvn -B -q org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$LIBS") >&2
  rm -rf "$work"
  touch "$LIBS/.complete"
}

# Always in a subshell: it execs, so $! of "(kjava ...) &" is the JVM itself.
kjava() { local dir=$1; shift; exec java -Xms512m -Xmx1g -Dlog4j2.configurationFile="$dir/log4j2.properties" -cp "$LIBS/*" "$@"; }

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

configure() { # port dir
  local port=$1 dir=$2 ctl=$(($1 + 1))
  mkdir -p "$dir/data"
  cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$ctl
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$ctl
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
auto.create.topics.enable=false
num.network.threads=2
num.io.threads=4
broker.session.timeout.ms=${BENCH_BROKER_SESSION_MS:-3000}
broker.heartbeat.interval.ms=500
# Benchmarks delete their topics after each phase: free the disk at once.
file.delete.delay.ms=1000
EOF
  cat >"$dir/log4j2.properties" <<EOF
rootLogger.level=INFO
rootLogger.appenderRef.f.ref=F
appender.f.type=File
appender.f.name=F
appender.f.fileName=$dir/server.log
appender.f.layout.type=PatternLayout
appender.f.layout.pattern=[%d] %p %m (%c)%n
EOF
  echo "$port" >"$dir/port"
}

launch() { # dir
  local dir=$1 port
  port=$(cat "$dir/port")
  # The jars it was started with, whatever this shell's environment says.
  [ -f "$dir/libs" ] && LIBS=$(cat "$dir/libs")
  port_free "$port" || { echo "port $port is already taken: not starting a broker there" >&2; exit 1; }
  port_free $((port + 1)) || { echo "port $((port + 1)) is already taken" >&2; exit 1; }
  (kjava "$dir" kafka.Kafka "$dir/server.properties") >"$dir/stdout.log" 2>&1 &
  echo $! >"$dir/pid"
  local deadline=$(($(date +%s) + 90)) t0
  t0=$(date +%s%N)
  # Ready when the broker logs its start-up complete and the listener accepts.
  until grep -q "Kafka Server started" "$dir/server.log" 2>/dev/null && ! port_free "$port"; do
    kill -0 "$(cat "$dir/pid")" 2>/dev/null || { echo "the broker died; see $dir/stdout.log and $dir/server.log" >&2; exit 1; }
    [ "$(date +%s)" -lt "$deadline" ] || { echo "the broker did not start within 90 s" >&2; exit 1; }
    sleep 0.1
  done
  say "Kafka $KAFKA_VERSION on 127.0.0.1:$port (pid $(cat "$dir/pid"), log dir $dir/data) ready after $((($(date +%s%N) - t0) / 1000000)) ms"
}

case "${1:-}" in
  start)
    port=$2 dir=$3
    fetch_jars
    mkdir -p "$dir"
    echo "$LIBS" >"$dir/libs"
    if [ ! -f "$dir/data/meta.properties" ]; then
      configure "$port" "$dir"
      id=$(kjava "$dir" kafka.tools.StorageTool random-uuid)
      (kjava "$dir" kafka.tools.StorageTool format --standalone -t "$id" -c "$dir/server.properties") >"$dir/format.log" 2>&1
    fi
    launch "$dir"
    ;;
  restart) launch "$2" ;;
  stop)
    pid=$(cat "$2/pid" 2>/dev/null || true)
    [ -n "$pid" ] || exit 0
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$2/pid"
    ;;
  kill)
    kill -9 "$(cat "$2/pid")"
    while kill -0 "$(cat "$2/pid")" 2>/dev/null; do sleep 0.05; done
    ;;
  pid) cat "$2/pid" ;;
  *) sed -n '2,12p' "$0" >&2; exit 2 ;;
esac
