#!/usr/bin/env bash
# The whole system on one machine: installs what is missing, starts tansu, the
# schema registry, one normaliser per publishing department and a sample-data
# publisher (5% bad records), and shows the live view. Ctrl-C stops everything.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$CB_ROOT"

ensure_system_packages
ensure_tansu
log "building release binaries (first build takes a few minutes)"
cargo build --release --bins
BIN="$CB_ROOT/target/release"
PORT=${CREDIT_BUS_DEMO_PORT:-9092}
export CREDIT_BUS__KAFKA__BROKERS="127.0.0.1:$PORT"
export CREDIT_BUS__TELEMETRY__LOG_FILTER="warn"

pids=()
cleanup() {
  log "stopping"
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait "${pids[@]}" 2>/dev/null || true
  stop_broker "$PORT"
}
trap cleanup EXIT INT TERM

start_broker "$PORT"
"$BIN/credit-bus" topics create
log "starting the schema registry on 127.0.0.1:8081"
"$BIN/credit-registry" >"$CB_RUN/registry.log" 2>&1 & pids+=($!)
wait_port 127.0.0.1 8081 60

watch_args=()
# The dashboard scrapes every service's ops endpoint, the registry's included
# (it serves /metrics on its API port); one that is down shows as down.
dash_args=(--target "registry=http://127.0.0.1:8081")
port=9101
for dept in courts gz-customs hp-customs tax market; do
  log "starting normaliser for $dept (ops on 127.0.0.1:$port)"
  CREDIT_BUS__TELEMETRY__OPS_LISTEN="127.0.0.1:$port" \
    "$BIN/credit-normaliser" --department "$dept" >"$CB_RUN/normaliser-$dept.log" 2>&1 & pids+=($!)
  watch_args+=(--service "$dept=http://127.0.0.1:$port")
  dash_args+=(--target "$dept=http://127.0.0.1:$port")
  port=$((port + 1))
done

log "starting the joint-punishment engine (ops on 127.0.0.1:9110)"
CREDIT_BUS__TELEMETRY__OPS_LISTEN="127.0.0.1:9110" CREDIT_BUS__ENGINE__INSTANCE_ID="engine-0" \
  "$BIN/credit-engine" >"$CB_RUN/engine.log" 2>&1 & pids+=($!)
watch_args+=(--service "engine=http://127.0.0.1:9110")
dash_args+=(--target "engine=http://127.0.0.1:9110" --target "feedback=http://127.0.0.1:9120")

log "starting the feedback tracker (ops and /report on 127.0.0.1:9120)"
CREDIT_BUS__TELEMETRY__OPS_LISTEN="127.0.0.1:9120" \
  "$BIN/credit-feedback" >"$CB_RUN/feedback.log" 2>&1 & pids+=($!)
watch_args+=(--service "feedback=http://127.0.0.1:9120")

log "publishing sample department data (200 records/s per department, 5% bad)"
"$BIN/credit-datagen" --brokers "127.0.0.1:$PORT" --count 0 --rate 200 --bad-share 0.05 \
  >"$CB_RUN/datagen.log" 2>&1 & pids+=($!)

# Three implementing departments answer their notices as they arrive, so the
# feedback figures move; the others' notices stay open (and, after five working
# days, overdue). `credit-bus feedback report` prints the tracker's table.
for dept in finance tax market; do
  log "department $dept acknowledges its notices (credit-bus subscribe --ack applied)"
  "$BIN/credit-bus" subscribe --department "$dept" --ack applied \
    >/dev/null 2>"$CB_RUN/subscriber-$dept.log" & pids+=($!)
done

log "starting the live dashboard on 127.0.0.1:9200"
"$BIN/credit-dashboard" --listen 127.0.0.1:9200 "${dash_args[@]}" >"$CB_RUN/dashboard.log" 2>&1 & pids+=($!)
wait_port 127.0.0.1 9200 30
log "open http://127.0.0.1:9200 in a browser for the live dashboard (the terminal view follows)"
sleep "${CREDIT_BUS_DEMO_PAUSE:-3}"

"$BIN/credit-bus" watch "${watch_args[@]}" ${CREDIT_BUS_DEMO_ITERATIONS:+--iterations "$CREDIT_BUS_DEMO_ITERATIONS"}
