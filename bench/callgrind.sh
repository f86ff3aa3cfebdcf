#!/usr/bin/env bash
# Instructions per record of the normaliser's hot path (decode + validate +
# Avro encode with Confluent framing: `normalise_one` in bench/src/main.rs),
# one department at a time, counted by valgrind's callgrind: exact and
# repeatable where wall-clock figures on a shared machine are not.
#
#   bench/callgrind.sh [RECORDS] [BAD_SHARE]     (defaults 4000 and 0)
#
# Needs valgrind (apt-get install valgrind) and a release build
# (cargo build --release -p credit-bench). CARGO_TARGET_DIR is honoured.
set -euo pipefail
cd "$(dirname "$0")/.."
records=${1:-4000}
bad=${2:-0}
bin=${CARGO_TARGET_DIR:-target}/release/credit-bench
command -v valgrind >/dev/null || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y valgrind; }
[ -x "$bin" ] || cargo build --release -p credit-bench
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# Instructions inside normalise_one for n records; run twice (n/4 and n) so the
# difference, divided by the extra records, leaves out one-time costs (lazy
# statics such as the guardrail's automaton, first-touch allocations).
count() { # department records
  valgrind --tool=callgrind --callgrind-out-file="$out/cg" --toggle-collect='*normalise_one*' \
    "$bin" normalise --department "$1" --samples "$2" --passes 1 --bad-share "$bad" >/dev/null 2>"$out/log" \
    || { cat "$out/log" >&2; exit 1; }
  awk '/^(summary|totals):/ {print $2; exit}' "$out/cg"
}
echo "\$ bench/callgrind.sh $records $bad   ($(valgrind --version), $bin)"
printf '%-12s %14s %14s %16s\n' department "Ir, n/4" "Ir, n" "Ir per record"
small=$((records / 4))
for dep in courts market tax gz-customs; do
  a=$(count "$dep" "$small")
  b=$(count "$dep" "$records")
  printf '%-12s %14s %14s %16.0f\n' "$dep" "$a" "$b" "$(awk -v a="$a" -v b="$b" -v n=$((records - small)) 'BEGIN { print (b - a) / n }')"
done
