#!/usr/bin/env bash
# Instructions per record of the normaliser's hot path (decode + validate +
# Avro encode with Confluent framing: `normalise_one` in bench/src/main.rs),
# one department at a time, counted by valgrind's callgrind: exact and
# repeatable where wall-clock figures on a shared machine are not.
#
#   bench/callgrind.sh [RECORDS] [BAD_SHARE]     (defaults 2000 and 0)
#
# Needs valgrind (apt-get install valgrind) and a release build
# (cargo build --release -p credit-bench). CARGO_TARGET_DIR is honoured.
set -euo pipefail
cd "$(dirname "$0")/.."
records=${1:-2000}
bad=${2:-0}
bin=${CARGO_TARGET_DIR:-target}/release/credit-bench
command -v valgrind >/dev/null || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y valgrind; }
[ -x "$bin" ] || cargo build --release -p credit-bench
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "\$ bench/callgrind.sh $records $bad   ($(valgrind --version), $bin)"
printf '%-12s %16s %14s\n' department instructions "per record"
for dep in courts market tax gz-customs; do
  valgrind --tool=callgrind --callgrind-out-file="$out/cg.$dep" --toggle-collect='*normalise_one*' \
    "$bin" normalise --department "$dep" --samples "$records" --passes 1 --bad-share "$bad" >/dev/null 2>"$out/log.$dep" \
    || { cat "$out/log.$dep" >&2; exit 1; }
  total=$(awk '/^(summary|totals):/ {print $2; exit}' "$out/cg.$dep")
  printf '%-12s %16s %14.0f\n' "$dep" "$total" "$(awk -v t="$total" -v n="$records" "BEGIN { print t / n }")"
done
