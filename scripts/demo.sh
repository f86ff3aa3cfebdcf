#!/usr/bin/env bash
# The whole system on one machine: installs what is missing, starts Apache
# Kafka, the schema registry, one normaliser per publishing department, the
# engine, the feedback tracker, the code-quality service, the archive (on a
# PostgreSQL server of its own), the dashboard, three
# acknowledging departments and a sample-data publisher (5% bad records), and
# shows the live view.
# Ctrl-C (or SIGTERM) stops everything in order (publishers, services, then the
# registry, the broker and the database) within 10 s; a second Ctrl-C kills at once.
#
# Kafka: SASL/SCRAM client listener on 127.0.0.1:${CREDIT_BUS_DEMO_PORT:-9092},
# controller on the port two above it; no plaintext client listener, as in
# production. Every program authenticates (as_kafka_user below).
#
# Settings (environment; defaults in brackets):
#   CREDIT_BUS_DEMO_PORT            Kafka SASL port [9092]
#   CREDIT_BUS_DEMO_CONTROLLER_PORT Kafka controller port [the SASL port + 2]
#   CREDIT_BUS_DEMO_REGISTRY_PORT   schema registry [8081]
#   CREDIT_BUS_DEMO_OPS_PORT        services' ops ports from here: normalisers
#                                   +1..+5, engine +10, feedback +20, quality +30,
#                                   archive (API) +40 [9100]
#   CREDIT_BUS_DEMO_PG_PORT         the archive's PostgreSQL [9432]
#   CREDIT_BUS_DEMO_DASHBOARD_PORT  the dashboard [9200]
#   CREDIT_BUS_DEMO_RATE            records/s each publishing department sends [200]
#   CREDIT_BUS_DEMO_ITERATIONS      refreshes of the view before the demo stops
#                                   by itself [0: until Ctrl-C]
#   CREDIT_BUS_DEMO_DETAIL          non-empty: the long view (every reason, kind)
#   CREDIT_BUS_DEMO_BIN_DIR         run these binaries instead of building release ones
#   CB_RUN                          logs, broker data, demo.env [.run]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$CB_ROOT"

ensure_system_packages
ensure_kafka
ensure_postgres
if [ -n "${CREDIT_BUS_DEMO_BIN_DIR:-}" ]; then
  BIN=$CREDIT_BUS_DEMO_BIN_DIR
else
  log "building release binaries (first build takes a few minutes)"
  cargo build --release --bins
  BIN="$CB_TARGET/release"
fi
BROKER=demo
PORT=${CREDIT_BUS_DEMO_PORT:-9092}
REGISTRY_PORT=${CREDIT_BUS_DEMO_REGISTRY_PORT:-8081}
OPS_PORT=${CREDIT_BUS_DEMO_OPS_PORT:-9100}
DASHBOARD_PORT=${CREDIT_BUS_DEMO_DASHBOARD_PORT:-9200}
RATE=${CREDIT_BUS_DEMO_RATE:-200}
PG_SERVER=demo
PG_PORT=${CREDIT_BUS_DEMO_PG_PORT:-9432}
export CREDIT_BUS__KAFKA__BROKERS="127.0.0.1:$PORT"
export CREDIT_BUS__REGISTRY__URL="http://127.0.0.1:$REGISTRY_PORT"
export CREDIT_BUS__KAFKA__SECURITY_PROTOCOL=sasl_plaintext
export CREDIT_BUS__KAFKA__SASL_MECHANISM=SCRAM-SHA-512
export CREDIT_BUS__TELEMETRY__LOG_FILTER="${CREDIT_BUS__TELEMETRY__LOG_FILTER:-warn}"

# kafka_login USER: the SASL login of a bus program as shell assignments.
# Every program is the broker's super user `admin` for now; per-service and
# per-department users with their own ACLs replace it here and nowhere else.
kafka_login() {
  : "$1" # the program's own user, once users exist
  printf 'export CREDIT_BUS__KAFKA__SASL_USERNAME=%q\nexport CREDIT_BUS__KAFKA__SASL_PASSWORD=%q\n' \
    admin "$(cat "$(kafka_admin_password_file "$BROKER")")"
}
# as_kafka_user USER: logs the current shell in (call it in the subshell that
# then execs the program).
as_kafka_user() { eval "$(kafka_login "$1")"; }

# What the demo started, in the order it stops them, and each pid's name.
publishers=() services=() registry=()
declare -A names

# start_bg GROUP USER LOG CMD...: runs CMD in the background as Kafka USER,
# output to LOG (stdout to $STDOUT instead when set), its pid recorded in GROUP.
# setsid: in a session of its own, so a Ctrl-C reaches only this script, which
# then stops everything in order.
start_bg() {
  local -n group=$1
  local user=$2 out=$3; shift 3
  if [ -n "${STDOUT:-}" ]; then
    (as_kafka_user "$user" && exec setsid "$@") >"$STDOUT" 2>"$out" &
  else
    (as_kafka_user "$user" && exec setsid "$@") >"$out" 2>&1 &
  fi
  group+=($!)
  names[$!]=$(basename "$out" .log)
}

# stop_group LIMIT_MS PID...: SIGTERM, then SIGKILL whatever still runs after LIMIT_MS.
stop_group() {
  local limit=$1; shift
  [ $# -gt 0 ] || return 0
  kill -TERM "$@" 2>/dev/null || true
  local deadline=$((${EPOCHREALTIME/./} + limit * 1000)) p alive
  while :; do
    alive=()
    for p in "$@"; do kill -0 "$p" 2>/dev/null && alive+=("$p"); done
    [ ${#alive[@]} -gt 0 ] || break
    if [ "${EPOCHREALTIME/./}" -ge "$deadline" ]; then
      log "still running $((limit / 1000)).$((limit % 1000 / 100)) s after SIGTERM, killing: $(for p in "${alive[@]}"; do printf '%s(%s) ' "${names[$p]:-?}" "$p"; done)"
      kill -KILL "${alive[@]}" 2>/dev/null || true
      break
    fi
    sleep 0.1
  done
  wait "$@" 2>/dev/null || true
}

force_stop() {
  trap '' INT TERM
  log "stopping now (second interrupt)"
  kill -KILL "${publishers[@]}" "${services[@]}" "${registry[@]}" 2>/dev/null || true
  "$KAFKA_SH" kill9 "$BROKER" || true
  exit 130
}

# Budget within 10 s: publishers 1, services 5, registry 0.5, broker 3. The
# services get the most: the engine commits its open transaction on SIGTERM,
# which means delivering every notice it has planned (measured on a loaded
# 2-core machine with debug builds: up to 5.5 s, when it is killed instead and
# its transaction is aborted, which loses nothing: its inputs are read again).
cleanup() {
  trap force_stop INT TERM
  log "stopping: publishers, services, registry, broker (Ctrl-C again to kill at once)"
  local started=$EPOCHREALTIME
  stop_group 1000 "${publishers[@]}"
  stop_group 5000 "${services[@]}"
  stop_group 500 "${registry[@]}"
  CREDIT_BUS_KAFKA_STOP_TIMEOUT=3 "$KAFKA_SH" stop "$BROKER"
  CREDIT_BUS_PG_STOP_TIMEOUT=3 postgres_stop "$PG_SERVER" || true
  local ms=$(((${EPOCHREALTIME/./} - ${started/./}) / 1000))
  log "everything the demo started has stopped ($((ms / 1000)).$((ms % 1000 / 100)) s)"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

kafka_start "$BROKER" --sasl-port "$PORT" --controller-port "${CREDIT_BUS_DEMO_CONTROLLER_PORT:-$((PORT + 2))}"
# For a person's own commands in another terminal (`. .run/demo.env`).
(
  umask 077
  rm -f "$CB_RUN/demo.env"
  {
    printf 'export CREDIT_BUS__KAFKA__%s=%q\n' BROKERS "$CREDIT_BUS__KAFKA__BROKERS" \
      SECURITY_PROTOCOL "$CREDIT_BUS__KAFKA__SECURITY_PROTOCOL" SASL_MECHANISM "$CREDIT_BUS__KAFKA__SASL_MECHANISM"
    printf 'export CREDIT_BUS__REGISTRY__URL=%q\n' "$CREDIT_BUS__REGISTRY__URL"
    kafka_login operator
  } >"$CB_RUN/demo.env"
)
(as_kafka_user credit-bus && exec "$BIN/credit-bus" topics create)
log "starting the schema registry on 127.0.0.1:$REGISTRY_PORT"
CREDIT_BUS__REGISTRY_SERVICE__LISTEN="127.0.0.1:$REGISTRY_PORT" \
  start_bg registry registry "$CB_RUN/registry.log" "$BIN/credit-registry"
wait_port 127.0.0.1 "$REGISTRY_PORT" 60

watch_args=(--target-rate "$RATE")
# The dashboard scrapes every service's ops endpoint, the registry's included
# (it serves /metrics on its API port); one that is down shows as down.
dash_args=(--target "registry=$CREDIT_BUS__REGISTRY__URL")
port=$((OPS_PORT + 1))
for dept in courts gz-customs hp-customs tax market; do
  log "starting normaliser for $dept (ops on 127.0.0.1:$port)"
  CREDIT_BUS__TELEMETRY__OPS_LISTEN="127.0.0.1:$port" \
    start_bg services "normaliser-$dept" "$CB_RUN/normaliser-$dept.log" "$BIN/credit-normaliser" --department "$dept"
  watch_args+=(--service "$dept=http://127.0.0.1:$port")
  dash_args+=(--target "$dept=http://127.0.0.1:$port")
  port=$((port + 1))
done

ENGINE_OPS="127.0.0.1:$((OPS_PORT + 10))"
FEEDBACK_OPS="127.0.0.1:$((OPS_PORT + 20))"
QUALITY_OPS="127.0.0.1:$((OPS_PORT + 30))"
log "starting the joint-punishment engine (ops on $ENGINE_OPS)"
CREDIT_BUS__TELEMETRY__OPS_LISTEN="$ENGINE_OPS" CREDIT_BUS__ENGINE__INSTANCE_ID="engine-0" \
  start_bg services engine "$CB_RUN/engine.log" "$BIN/credit-engine"
watch_args+=(--service "engine=http://$ENGINE_OPS")
dash_args+=(--target "engine=http://$ENGINE_OPS" --target "feedback=http://$FEEDBACK_OPS")

log "starting the feedback tracker (ops and /report on $FEEDBACK_OPS)"
CREDIT_BUS__TELEMETRY__OPS_LISTEN="$FEEDBACK_OPS" \
  start_bg services feedback "$CB_RUN/feedback.log" "$BIN/credit-feedback"
watch_args+=(--service "feedback=http://$FEEDBACK_OPS")

# Duplicate codes (one code, two names) and wrong codes per department against
# the 0.005 % target: `curl $QUALITY_OPS/report` (docs/quality.md).
log "starting the code-quality service (ops and /report on $QUALITY_OPS)"
CREDIT_BUS__TELEMETRY__OPS_LISTEN="$QUALITY_OPS" \
  start_bg services quality "$CB_RUN/quality.log" "$BIN/credit-quality"
dash_args+=(--target "quality=http://$QUALITY_OPS")

# The archive: everything the bus carries, in PostgreSQL, with the query API
# on $ARCHIVE_OPS (docs/archive.md). Three departments get a token each, in a
# file only this user can read: finance reads (personal data masked), courts
# also reads personal data, tax reads the audit log.
ARCHIVE_OPS="127.0.0.1:$((OPS_PORT + 40))"
postgres_start "$PG_SERVER" --port "$PG_PORT"
ARCHIVE_DB="postgres://postgres@127.0.0.1:$PG_PORT"
psql "$ARCHIVE_DB/postgres" -Atc "SELECT 1 FROM pg_database WHERE datname = 'credit_archive'" | grep -q 1 \
  || psql "$ARCHIVE_DB/postgres" -qc "CREATE DATABASE credit_archive"
write_archive_config "$CB_RUN/archive" "finance:read" "courts:read,personal_data" "tax:audit"
log "starting the archive (API and ops on $ARCHIVE_OPS)"
CREDIT_BUS__TELEMETRY__OPS_LISTEN="$ARCHIVE_OPS" CREDIT_BUS__ARCHIVE__DATABASE_URL="$ARCHIVE_DB/credit_archive" \
  start_bg services archive "$CB_RUN/archive.log" "$BIN/credit-archive" --config "$CB_RUN/archive/archive.toml"
dash_args+=(--target "archive=http://$ARCHIVE_OPS")
log "archive queries to try (a code from \`credit-bus subscribe --department finance --max 1\`):"
log "  credit-bus subject <code> --token-file $CB_RUN/archive/finance.token"
log "  credit-bus subject <code> --measures --as-of $(date -u +%F) --token-file $CB_RUN/archive/courts.token"
log "  credit-bus precheck --file codes.txt --department finance --token-file $CB_RUN/archive/finance.token"
log "  curl -H \"Authorization: Bearer \$(cat $CB_RUN/archive/tax.token)\" $ARCHIVE_OPS/v1/audit"

log "starting the live dashboard on 127.0.0.1:$DASHBOARD_PORT (subject view as finance, role read only: masked, audited)"
CREDIT_BUS__DASHBOARD__TARGET_RATE_PER_S="$RATE" CREDIT_BUS__DASHBOARD__BROKERS="[\"$CREDIT_BUS__KAFKA__BROKERS\"]" \
  CREDIT_BUS__DASHBOARD__DEAD_LETTER_SAMPLES=true \
  CREDIT_BUS__DASHBOARD__ARCHIVE_URL="http://$ARCHIVE_OPS" \
  CREDIT_BUS__DASHBOARD__ARCHIVE_TOKEN_FILE="$CB_RUN/archive/finance.token" \
  start_bg services dashboard "$CB_RUN/dashboard.log" "$BIN/credit-dashboard" \
  --listen "127.0.0.1:$DASHBOARD_PORT" "${dash_args[@]}"

log "publishing sample department data ($RATE records/s per department, 5% bad)"
start_bg publishers datagen "$CB_RUN/datagen.log" "$BIN/credit-datagen" --count 0 --rate "$RATE" --bad-share 0.05

# Three implementing departments answer their notices as they arrive, so the
# feedback figures move; the others' notices stay open (and, after five working
# days, overdue). `credit-bus feedback report` prints the tracker's table.
# They read in the department's shared group (<prefix>.<dept>.subscriber), so a
# restarted demo resumes where they stopped; a `credit-bus subscribe` of your
# own reads in a private group and takes nothing from them.
for dept in finance tax market; do
  log "department $dept acknowledges its notices (credit-bus subscribe --ack applied)"
  STDOUT=/dev/null start_bg publishers "$dept" "$CB_RUN/subscriber-$dept.log" \
    "$BIN/credit-bus" subscribe --department "$dept" --shared --ack applied
done

wait_port 127.0.0.1 "$DASHBOARD_PORT" 30
log "open http://127.0.0.1:$DASHBOARD_PORT in a browser for the live dashboard (the terminal view follows);"
log "in another terminal, \`. $CB_RUN/demo.env\` lets credit-bus commands log in to the broker"
sleep "${CREDIT_BUS_DEMO_PAUSE:-3}"

# In the background, waited for: a SIGTERM to this script is handled at once
# (bash runs a trap only after a foreground command ends).
"$BIN/credit-bus" watch "${watch_args[@]}" ${CREDIT_BUS_DEMO_DETAIL:+--detail} \
  ${CREDIT_BUS_DEMO_ITERATIONS:+--iterations "$CREDIT_BUS_DEMO_ITERATIONS"} &
publishers+=($!)
names[$!]=watch
wait "$!"
