#!/usr/bin/env bash
# The whole test suite: installs what is missing, starts a tansu broker on a
# private port, runs every unit, property and broker-backed test, stops the broker.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$CB_ROOT"

ensure_system_packages
ensure_stdnum
ensure_tansu
ensure_chromium
ensure_browser_test_deps

log "building (tests start the service binaries themselves)"
cargo build --workspace --all-targets
"$CB_ROOT/scripts/check-helm.sh" # Helm chart, Grafana dashboard, alert rules: lint, template, schemas

PORT=${CREDIT_BUS_TEST_PORT:-19092}
start_broker "$PORT"
trap 'stop_broker "$PORT"' EXIT
export CREDIT_BUS_TEST_BROKERS="127.0.0.1:$PORT"
export CREDIT_BUS_BIN_DIR="$CB_ROOT/target/debug"

log "running the test suite against $CREDIT_BUS_TEST_BROKERS"
cargo test --workspace -- --test-threads 4 2>&1 | tee "$CB_RUN/test-output.log"
# One closing line over every test binary (cargo's last line is often a doc-test
# binary with 0 tests).
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$CB_RUN/test-output.log"
