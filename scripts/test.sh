#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, checks the Helm chart,
# starts one Apache Kafka broker for the whole run (fresh every run), runs every
# test binary (all of them, even after a failure), prints one summary line and
# every failing test, and stops the broker. Exits non-zero when anything failed.
#
# Ports (127.0.0.1; override to run several suites on one machine):
#   CREDIT_BUS_TEST_SASL_PORT        19092  SASL/SCRAM client listener
#   CREDIT_BUS_TEST_PLAINTEXT_PORT   19093  the tests' harness listener (plaintext,
#                                           super user: tests only)
#   CREDIT_BUS_TEST_CONTROLLER_PORT  19094  KRaft controller
#   CREDIT_BUS_TEST_PG_PORT          19432  PostgreSQL for the archive's tests (each
#                                           test creates a database of its own)
# Extra arguments go to the test binaries (e.g. a test name filter).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$CB_ROOT"
started=$SECONDS

ensure_system_packages
ensure_stdnum
ensure_kafka
ensure_postgres
ensure_chromium
ensure_browser_test_deps

log "building (tests start the service binaries themselves)"
cargo build --workspace --all-targets
# Helm chart, Grafana dashboard, alert rules: lint, template, schemas. A
# failure here is reported at the end; the tests run anyway.
helm_status=0
"$CB_ROOT/scripts/check-helm.sh" || helm_status=$?

BROKER="test"
SASL_PORT=${CREDIT_BUS_TEST_SASL_PORT:-19092}
PLAINTEXT_PORT=${CREDIT_BUS_TEST_PLAINTEXT_PORT:-19093}
CONTROLLER_PORT=${CREDIT_BUS_TEST_CONTROLLER_PORT:-19094}
PG_SERVER="test"
PG_PORT=${CREDIT_BUS_TEST_PG_PORT:-19432}
# The cleanup is in place before the servers start, so an interrupted start is stopped too.
trap 'kafka_stop "$BROKER" || true; postgres_stop "$PG_SERVER" || true' EXIT
# A fresh broker: every run formats its own (a broker left by an earlier run
# that was killed is stopped first; kafka.sh stops only what it started).
"$KAFKA_SH" delete "$BROKER"
kafka_start "$BROKER" --sasl-port "$SASL_PORT" --plaintext-port "$PLAINTEXT_PORT" \
  --controller-port "$CONTROLLER_PORT"
# One PostgreSQL server for the run (its data directory is kept between runs;
# every test creates a database with a unique name, so nothing carries over).
postgres_start "$PG_SERVER" --port "$PG_PORT"

# Tests reach the broker through the plaintext harness listener; the
# authentication tests through the SASL listener as `admin`; tests that crash
# and restart a broker of their own use kafka.sh with their own name and ports.
export CB_RUN
export CREDIT_BUS_TEST_BROKERS="127.0.0.1:$PLAINTEXT_PORT"
export CREDIT_BUS_TEST_SASL_BROKERS="127.0.0.1:$SASL_PORT"
CREDIT_BUS_TEST_ADMIN_PASSWORD_FILE=$(kafka_admin_password_file "$BROKER")
export CREDIT_BUS_TEST_ADMIN_PASSWORD_FILE
export CREDIT_BUS_KAFKA_SCRIPT="$KAFKA_SH"
export CREDIT_BUS_BIN_DIR="$CB_TARGET/debug"
export CREDIT_BUS_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$PG_PORT/postgres"

log "running the test suite against Apache Kafka at $CREDIT_BUS_TEST_BROKERS (SASL $CREDIT_BUS_TEST_SASL_BROKERS)"
status=0
cargo test --workspace --no-fail-fast -- --test-threads 4 "$@" 2>&1 | tee "$CB_RUN/test-output.log" || status=$?
log "suite finished in $((SECONDS - started)) s (output in $CB_RUN/test-output.log)"
summary_status=0
"$CB_ROOT/scripts/test-summary.sh" "$CB_RUN/test-output.log" "$status" || summary_status=$?
[ "$helm_status" -eq 0 ] || echo "scripts/check-helm.sh failed (its FAIL lines are above the tests)"
[ "$summary_status" -eq 0 ] && [ "$helm_status" -eq 0 ]
