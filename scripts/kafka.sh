#!/usr/bin/env bash
# Apache Kafka 4.4 for this machine: one KRaft node (broker and controller in
# one JVM) per NAME, with its data, logs and admin password under
# $CB_RUN/kafka-NAME. The tests, the demo and the benchmarks start and stop
# their brokers through this script only.
#
#   scripts/kafka.sh install        Java 17 and Maven from Debian where missing, then the
#                                   broker's jars into kafka/lib (kafka/pom.xml), once
#   scripts/kafka.sh start NAME --sasl-port P [--plaintext-port Q] [--controller-port C]
#                              [--property KEY=VALUE]...
#                                   format once (SCRAM-SHA-512 super user `admin`), start,
#                                   wait until the listeners answer; prints the pid.
#                                   --property adds to (or overrides) server.properties
#                                   (remembered for later starts of NAME)
#   scripts/kafka.sh stop NAME      SIGTERM, wait until gone (SIGKILL after 30 s)
#   scripts/kafka.sh kill9 NAME     SIGKILL, wait until gone (crash tests)
#   scripts/kafka.sh restart NAME   stop if running, start on the same data and ports
#   scripts/kafka.sh status NAME    exit 0 when running
#   scripts/kafka.sh delete NAME    SIGKILL if running, then remove its data and logs
#
# Listeners, all on 127.0.0.1:
#   SASL_PLAINTEXT P   clients and the broker itself, SCRAM-SHA-512; user `admin`,
#                      password in $CB_RUN/kafka-NAME/admin.password (mode 0600)
#   PLAINTEXT Q        only when asked for: the test suite's harness listener. Its
#                      principal is ANONYMOUS, a super user (see below), so anyone
#                      who reaches it may do anything. The demo and production never
#                      open a plaintext client listener.
#   CONTROLLER C       KRaft's controller listener (default P+2), plaintext: KRaft
#                      controllers cannot use SCRAM, so the broker reaches its
#                      controller as ANONYMOUS and that principal must be a super
#                      user for StandardAuthorizer to let it register.
#
# A start refuses a port that is already bound, and fails (printing the end of
# the broker's log) when the JVM dies or is not ready in time: a test must never
# run against a broker this script did not start.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KAFKA_HOME="$CB_ROOT/kafka"
KAFKA_LIB="$KAFKA_HOME/lib"
# JVM heap: 1 GiB is enough for a test suite's thousands of partitions.
KAFKA_HEAP=${CREDIT_BUS_KAFKA_HEAP:-"-Xms512m -Xmx1g"}
# Seconds to wait for a broker to answer. A first start formats and warms up
# in 5-10 s on two busy cores; a restart after kill -9 waits ~6 s more for
# its old session to expire (broker.session.timeout.ms).
KAFKA_START_TIMEOUT=${CREDIT_BUS_KAFKA_START_TIMEOUT:-120}
# Seconds a stopping broker gets before SIGKILL.
KAFKA_STOP_TIMEOUT=${CREDIT_BUS_KAFKA_STOP_TIMEOUT:-30}
# Partitions of __consumer_offsets and __transaction_state. Kafka's 50 make
# the first consumer group and the first init_transactions wait seconds while
# they are created; one node gains nothing from more than a few.
KAFKA_INTERNAL_PARTITIONS=${CREDIT_BUS_KAFKA_INTERNAL_PARTITIONS:-4}

# ---------------------------------------------------------------- install

# The first java on PATH when it is 17 or newer, else Debian's OpenJDK 17.
java_bin() {
  local v
  if command -v java >/dev/null; then
    v=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1)
    if [ "${v:-0}" -ge 17 ]; then echo java; return; fi
  fi
  local j
  for j in /usr/lib/jvm/java-17-openjdk-*/bin/java; do
    [ -x "$j" ] && { echo "$j"; return; }
  done
  return 1
}

ensure_java_maven() {
  local missing=()
  java_bin >/dev/null || missing+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null || missing+=(maven)
  command -v python3 >/dev/null || missing+=(python3)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    as_root apt-get update
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y "${missing[@]}"
  fi
}

pom_hash() { sha256sum "$KAFKA_HOME/pom.xml" | cut -c1-16; }

# The broker's runtime classpath from Maven Central into kafka/lib, once per
# version of kafka/pom.xml (the marker holds the pom's hash, so editing the pom
# fetches again). Maven prints each artifact as it downloads.
fetch_jars() {
  local marker="$KAFKA_LIB/.pom-sha256" want
  want=$(pom_hash)
  if [ -f "$marker" ] && [ "$(cat "$marker")" = "$want" ]; then
    return
  fi
  log "fetching the Apache Kafka 4.4 broker jars from Maven Central into kafka/lib (~45 jars, 43 MiB; ~10-60 s, once)"
  local tmp="$KAFKA_HOME/lib.tmp"
  rm -rf "$tmp"
  mvn -B -f "$KAFKA_HOME/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
    -Dkafka.lib="$tmp" || die "mvn could not fetch the broker's jars (see its output above)"
  echo "$want" >"$tmp/.pom-sha256"
  rm -rf "$KAFKA_LIB"
  mv "$tmp" "$KAFKA_LIB"
  log "kafka/lib: $(find "$KAFKA_LIB" -name '*.jar' | wc -l) jars, $(du -sh "$KAFKA_LIB" | cut -f1)"
}

cmd_install() {
  ensure_java_maven
  fetch_jars
}

# ---------------------------------------------------------------- helpers

broker_dir() { echo "$CB_RUN/kafka-$1"; }

# Whether the Kafka listener on 127.0.0.1:PORT answers an ApiVersions request
# with no error. A broker enables request processing on its listeners only
# once it has registered with the controller, caught up with the metadata log
# and been unfenced (BrokerServer.startup), so an answer means it serves
# produce and fetch. ApiVersions is the one request a SASL listener answers
# before authentication.
answers() {
  python3 - "$1" <<'EOF'
import socket, struct, sys
try:
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=2)
    client = b"credit-bus-kafka.sh"
    # Request header v1: api key 18 (ApiVersions), version 0, correlation id, client id.
    body = struct.pack(">hhih", 18, 0, 7, len(client)) + client
    s.sendall(struct.pack(">i", len(body)) + body)
    got = b""
    while len(got) < 10:
        chunk = s.recv(10 - len(got))
        if not chunk:
            sys.exit(1)
        got += chunk
    _, correlation, error = struct.unpack(">iih", got)
    sys.exit(0 if correlation == 7 and error == 0 else 1)
except OSError:
    sys.exit(1)
EOF
}

random_token() { # N random bytes as URL-safe base64 without padding
  head -c "$1" /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n'
}

write_properties() {
  local dir=$1 sasl=$2 plain=$3 ctrl=$4 password
  password=$(cat "$dir/admin.password")
  local listeners="SASL_PLAINTEXT://127.0.0.1:$sasl" advertised="SASL_PLAINTEXT://127.0.0.1:$sasl"
  if [ -n "$plain" ]; then
    listeners+=",PLAINTEXT://127.0.0.1:$plain"
    advertised+=",PLAINTEXT://127.0.0.1:$plain"
  fi
  listeners+=",CONTROLLER://127.0.0.1:$ctrl"
  (
    umask 077 # the broker's own SCRAM password is in it
    cat >"$dir/server.properties" <<EOF
# Written by scripts/kafka.sh on every start; edit the script, not this file.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$ctrl
controller.listener.names=CONTROLLER
listeners=$listeners
advertised.listeners=$advertised
listener.security.protocol.map=SASL_PLAINTEXT:SASL_PLAINTEXT,PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=SASL_PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$password";

# ACLs decide; nothing without one. ANONYMOUS: the plaintext controller
# listener's principal (and the test suite's plaintext listener's, when open).
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin;User:ANONYMOUS
allow.everyone.if.no.acl.found=false

log.dirs=$dir/data

# One node: every internal topic with one replica.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=$KAFKA_INTERNAL_PARTITIONS
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=$KAFKA_INTERNAL_PARTITIONS
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
share.coordinator.state.topic.num.partitions=1

# The bus creates its topics itself (credit-bus topics create).
auto.create.topics.enable=false
# Members join a new group at once instead of after 3 s.
group.initial.rebalance.delay.ms=0
# Kafka's default written out: the largest record batch the broker accepts
# (1 MiB + 12 bytes of batch overhead). The normaliser checks it at start-up.
message.max.bytes=1048588

# Two cores.
num.network.threads=2
num.io.threads=3
# A broker restarted after kill -9 is refused (DUPLICATE_BROKER_REGISTRATION)
# until its old session expires: 3 s instead of 9 s brings a crash restart to
# ~6 s from ~14 s.
broker.session.timeout.ms=3000
broker.heartbeat.interval.ms=500
EOF
    if [ -f "$dir/extra.properties" ]; then
      printf '\n# --property (later lines win)\n'
      cat "$dir/extra.properties"
    fi >>"$dir/server.properties"
  )
}

# ---------------------------------------------------------------- start

cmd_start() {
  local name=${1:-}; [ -n "$name" ] || usage; shift
  check_name "$name"
  local sasl="" plain="" ctrl="" extra=()
  while [ $# -gt 0 ]; do
    case $1 in
      --sasl-port) sasl=${2:-}; shift 2 ;;
      --plaintext-port) plain=${2:-}; shift 2 ;;
      --controller-port) ctrl=${2:-}; shift 2 ;;
      --property)
        [[ "${2:-}" == ?*=* ]] || die "start: --property needs KEY=VALUE"
        extra+=("$2"); shift 2 ;;
      *) die "start: unknown argument $1" ;;
    esac
  done
  local dir; dir=$(broker_dir "$name")
  mkdir -p "$dir"
  if [ ${#extra[@]} -gt 0 ]; then printf '%s\n' "${extra[@]}" >"$dir/extra.properties"; fi

  # A data dir remembers its ports: the controller's address is written into
  # the metadata log at format time, so it cannot change afterwards.
  if [ -f "$dir/ports" ]; then
    local saved_sasl saved_plain saved_ctrl
    saved_sasl=$(sed -n 's/^sasl_port=//p' "$dir/ports")
    saved_plain=$(sed -n 's/^plaintext_port=//p' "$dir/ports")
    saved_ctrl=$(sed -n 's/^controller_port=//p' "$dir/ports")
    if [ -z "$sasl$plain$ctrl" ]; then
      sasl=$saved_sasl plain=$saved_plain ctrl=$saved_ctrl
    elif [ "$sasl" != "$saved_sasl" ] || [ "$plain" != "$saved_plain" ] || [ "${ctrl:-$((sasl + 2))}" != "$saved_ctrl" ]; then
      die "broker $name was formatted with ports sasl=$saved_sasl plaintext=${saved_plain:-none} controller=$saved_ctrl; use those (or restart $name), or remove $dir"
    fi
  fi
  [ -n "$sasl" ] || die "start $name: --sasl-port is required"
  ctrl=${ctrl:-$((sasl + 2))}
  local p
  for p in "$sasl" $plain "$ctrl"; do
    [[ "$p" =~ ^[0-9]+$ ]] && [ "$p" -gt 0 ] && [ "$p" -lt 65536 ] || die "start $name: $p is not a port"
  done

  local java; java=$(java_bin) || die "no Java 17: run scripts/kafka.sh install"
  [ -f "$KAFKA_LIB/.pom-sha256" ] || die "no broker jars in $KAFKA_LIB: run scripts/kafka.sh install"
  [ "$(cat "$KAFKA_LIB/.pom-sha256")" = "$(pom_hash)" ] \
    || die "kafka/pom.xml changed since kafka/lib was fetched: run scripts/kafka.sh install"

  local running; running=$(running_pid "$dir/kafka.pid" "$dir/server.properties")
  [ -z "$running" ] || die "broker $name is already running (pid $running): stop it first"
  check_port_free "$sasl" "SASL client listener of broker $name" || exit 1
  [ -z "$plain" ] || check_port_free "$plain" "plaintext listener of broker $name" || exit 1
  check_port_free "$ctrl" "controller listener of broker $name" || exit 1

  local jvm=(-Djava.awt.headless=true -Dlog4j2.configurationFile="$KAFKA_HOME/log4j2.xml"
    -cp "$KAFKA_LIB/*")
  local t0=${EPOCHREALTIME/./}
  if [ ! -f "$dir/data/meta.properties" ]; then
    log "formatting broker $name's storage in $dir/data"
    rm -rf "$dir/data"
    (umask 077 && random_token 24 >"$dir/admin.password")
    write_properties "$dir" "$sasl" "$plain" "$ctrl"
    # A cluster id is 16 random bytes in URL-safe base64 (what `StorageTool
    # random-uuid` prints), made here to save a JVM start. Kafka never hands
    # out one starting with '-' (it would read as an option).
    local cluster; cluster=$(random_token 16)
    while [ "${cluster:0:1}" = - ]; do cluster=$(random_token 16); done
    # StorageTool prints the SCRAM material on stdout: it goes nowhere.
    if ! "$java" -Xmx256m -Dcredit.kafka.log="$dir/format.log" "${jvm[@]}" kafka.tools.StorageTool format \
      --standalone -t "$cluster" -c "$dir/server.properties" \
      -S "SCRAM-SHA-512=[name=admin,password=$(cat "$dir/admin.password")]" >/dev/null 2>"$dir/format.err"; then
      cat "$dir/format.err" >&2
      rm -rf "$dir/data"
      die "formatting broker $name failed"
    fi
    printf 'sasl_port=%s\nplaintext_port=%s\ncontroller_port=%s\n' "$sasl" "$plain" "$ctrl" >"$dir/ports"
  else
    write_properties "$dir" "$sasl" "$plain" "$ctrl"
  fi

  log "starting broker $name: SASL 127.0.0.1:$sasl${plain:+, plaintext 127.0.0.1:$plain}, controller 127.0.0.1:$ctrl (log $dir/kafka.log)"
  # Until the broker answers, a failure or an interrupt here kills it again.
  guard_start "$dir/kafka.pid"
  # The previous run's logs stay beside (.1): what a crashed broker said is
  # still there after its restart.
  local f
  for f in kafka.log kafka.out; do
    [ ! -f "$dir/$f" ] || mv -f "$dir/$f" "$dir/$f.1"
  done
  # setsid: the broker is in no terminal's process group, so a Ctrl-C reaches
  # only the script that started it, which then stops it in its turn.
  # shellcheck disable=SC2086
  setsid "$java" $KAFKA_HEAP -Dcredit.kafka.log="$dir/kafka.log" "${jvm[@]}" \
    kafka.Kafka "$dir/server.properties" </dev/null >"$dir/kafka.out" 2>&1 &
  local pid=$!
  guard_pid "$pid"
  # Ready: the start-up line logged, and every client listener answering.
  kafka_ready() {
    grep -qs 'Kafka Server started' "$dir/kafka.log" && answers "$sasl" \
      && { [ -z "$plain" ] || answers "$plain"; }
  }
  await_ready "broker $name" "$pid" "$KAFKA_START_TIMEOUT" kafka_ready "$dir/kafka.out" "$dir/kafka.log" \
    || exit 1
  start_succeeded
  local us=$((${EPOCHREALTIME/./} - t0))
  log "broker $name ready in $((us / 1000000)).$((us / 100000 % 10)) s (pid $pid)"
  echo "$pid"
}

# ---------------------------------------------------------------- stop

# end_broker NAME SIGNAL LIMIT: SIGNAL, wait until gone, SIGKILL after LIMIT s.
end_broker() {
  local dir; dir=$(broker_dir "$1")
  end_process "broker $1" "$dir/kafka.pid" "$dir/server.properties" "$2" "$3"
}

cmd_status() {
  local name=${1:-}; [ -n "$name" ] || usage
  check_name "$name"
  local dir pid; dir=$(broker_dir "$name")
  pid=$(running_pid "$dir/kafka.pid" "$dir/server.properties")
  if [ -n "$pid" ]; then
    echo "broker $name running, pid $pid, $(tr '\n' ' ' <"$dir/ports")"
  elif [ -f "$dir/ports" ]; then
    echo "broker $name stopped (data in $dir)"; return 3
  else
    echo "broker $name does not exist"; return 3
  fi
}

cmd=${1:-}; [ $# -eq 0 ] || shift
case $cmd in
  install) cmd_install ;;
  start) cmd_start "$@" ;;
  stop) check_name "${1:-}"; end_broker "$1" TERM "$KAFKA_STOP_TIMEOUT" ;;
  kill9) check_name "${1:-}"; end_broker "$1" KILL 10 ;;
  restart)
    check_name "${1:-}"
    [ -f "$(broker_dir "$1")/ports" ] || die "broker $1 was never started: use start"
    end_broker "$1" TERM "$KAFKA_STOP_TIMEOUT"
    cmd_start "$1" ;;
  status) cmd_status "$@" ;;
  delete)
    check_name "${1:-}"
    end_broker "$1" KILL 10
    rm -rf "$(broker_dir "$1")" ;;
  *) usage ;;
esac
