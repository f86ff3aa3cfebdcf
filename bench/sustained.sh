#!/usr/bin/env bash
# Sustained rate: the whole demo (scripts/demo.sh: broker with SASL, registry,
# five normalisers, engine, feedback tracker, quality, dashboard, publishers and
# acknowledging departments) at its advertised publisher rate for a while, and
# per interval the target against the rate each department's normaliser
# reached (records read per second, from its /metrics).
#
#   bench/sustained.sh [--minutes N] [--rate R] [--interval-s S] [--warmup-s W]
#       N minutes (default 30), R records/s per publishing department (default
#       200, the demo's), one line per S seconds (default 60). Then Ctrl-C to
#       the demo (its own stop), and a closing line: the overall rate, the
#       lowest interval after the first W seconds (default 120: services still
#       start and catch up the records published meanwhile) and whether every
#       such interval reached 95 % of the target.
#
# Environment: as scripts/demo.sh (CREDIT_BUS_DEMO_BIN_DIR to use prebuilt
# binaries, else release ones are built); ports from BENCH_PORT (default 23192:
# Kafka SASL, controller +2, registry +3, ops +100.., dashboard +200); CB_RUN
# a temporary directory, deleted at the end unless BENCH_KEEP is set.
set -euo pipefail
cd "$(dirname "$0")/.."
minutes=30 rate=200 interval=60 warmup=120
while [ $# -gt 0 ]; do
  case "$1" in
    --minutes) minutes=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    --interval-s) interval=$2; shift 2 ;;
    --warmup-s) warmup=$2; shift 2 ;;
    *) sed -n '2,20p' "$0" >&2; exit 2 ;;
  esac
done
port=${BENCH_PORT:-23192}
ops=$((port + 100))
run=$(mktemp -d /tmp/credit-sustained.XXXXXX)
# The demo's PostgreSQL runs as the `postgres` user (as root): it must reach its data directory.
chmod 0755 "$run"
export CB_RUN=$run

# The demo in a session of its own, with SIGINT at its default (a background
# job of a script would otherwise ignore it), stopped by a Ctrl-C to it.
CREDIT_BUS_DEMO_PORT=$port CREDIT_BUS_DEMO_REGISTRY_PORT=$((port + 3)) \
  CREDIT_BUS_DEMO_OPS_PORT=$ops CREDIT_BUS_DEMO_DASHBOARD_PORT=$((port + 200)) \
  CREDIT_BUS_DEMO_RATE=$rate CREDIT_BUS_DEMO_PAUSE=0 \
  python3 -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.setsid(); os.execv(sys.argv[1], sys.argv[1:])' \
  scripts/demo.sh >"$run/view.txt" 2>"$run/demo.log" &
demo=$!
stop_demo() {
  kill -INT -- "-$demo" 2>/dev/null || true
  wait "$demo" 2>/dev/null || true
  [ -n "${BENCH_KEEP:-}" ] || rm -rf "$run"
}
trap stop_demo EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# received_total: records read by all five normalisers, from their /metrics.
received() {
  local p sum=0 v
  for p in 1 2 3 4 5; do
    v=$(curl -sf "http://127.0.0.1:$((ops + p))/metrics" |
      awk '/^credit_bus_records_in_total/ {s += $NF} END {printf "%d", s}') || v=0
    sum=$((sum + ${v:-0}))
  done
  echo "$sum"
}

echo "==> starting the demo (log $run/demo.log)" >&2
until grep -q "terminal view follows" "$run/demo.log" 2>/dev/null; do
  kill -0 "$demo" 2>/dev/null || { cat "$run/demo.log" >&2; echo "the demo stopped during start-up" >&2; exit 1; }
  sleep 1
done
echo "==> target $rate records/s per department, 5 departments; one line per $interval s for $minutes min" >&2
printf '%-8s %12s %14s %10s\n' "minute" "target/s" "reached/s" "share"
start=$(received) t0=$SECONDS prev=$start tp=$SECONDS
lowest="" ok=1 n=0
while [ $((SECONDS - t0)) -lt $((minutes * 60)) ]; do
  sleep "$interval"
  kill -0 "$demo" 2>/dev/null || { tail -20 "$run/demo.log" >&2; echo "the demo stopped" >&2; exit 1; }
  now=$(received) t=$SECONDS
  n=$((n + 1))
  r=$(awk -v a="$prev" -v b="$now" -v dt=$((t - tp)) 'BEGIN {printf "%.0f", (b - a) / dt}')
  share=$(awk -v r="$r" -v t="$((rate * 5))" 'BEGIN {printf "%.1f", 100 * r / t}')
  note=""
  if [ $((tp - t0)) -lt "$warmup" ]; then
    note="  (warm-up)"
  else
    if [ -z "$lowest" ] || [ "$r" -lt "$lowest" ]; then lowest=$r; fi
    awk -v s="$share" 'BEGIN {exit !(s < 95)}' && ok=0
  fi
  printf '%-8s %12d %14d %9s%%%s\n' "$(awk -v s=$((t - t0)) 'BEGIN {printf "%.1f", s / 60}')" $((rate * 5)) "$r" "$share" "$note"
  prev=$now tp=$t
done
overall=$(awk -v a="$start" -v b="$prev" -v dt=$((tp - t0)) 'BEGIN {printf "%.0f", (b - a) / dt}')
verdict=$([ "$ok" = 1 ] && echo "every interval at 95 % of the target or more" || echo "BELOW 95 % of the target in some interval")
echo "sustained: $n intervals, target $((rate * 5))/s, overall $overall/s, lowest interval after warm-up ${lowest:--}/s: $verdict"
