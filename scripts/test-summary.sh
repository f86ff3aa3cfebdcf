#!/usr/bin/env bash
# One closing account of a `cargo test --no-fail-fast` run over every test
# binary (cargo's own last line is often a doc-test binary with 0 tests):
#
#   scripts/test-summary.sh LOG [CARGO_STATUS]
#       prints "tests: N passed, N failed, N skipped", then every failing test
#       as BINARY: TEST, and every binary that died without a result line
#       (a crash, an abort, a signal) as BINARY: died; exits 1 when anything
#       failed or CARGO_STATUS is not 0, else 0.
#   scripts/test-summary.sh --self-test
#       builds a scratch crate whose test binaries pass, fail and abort, runs
#       it the way scripts/test.sh runs the suite, and checks this account of it.
set -euo pipefail

summarise() {
  local log=$1 status=${2:-0}
  # Binary names: `Running tests/crash.rs (target/debug/deps/crash-0a1b)` is
  # `crash`, unit tests `credit_core`, doc tests `doc credit_core`.
  awk -v status="$status" '
    function close_bin() {
      if (bin != "" && !result) { died[++nd] = bin }
      result = 0
    }
    /^ *Running / {
      close_bin()
      bin = $0
      sub(/.*\//, "", bin); sub(/\)[[:space:]]*$/, "", bin); sub(/-[0-9a-f]+$/, "", bin)
      next
    }
    /^ *Doc-tests / { close_bin(); bin = "doc " $2; next }
    /^test result: / {
      result = 1; p += $4; f += $6; s += $8
      next
    }
    /^test .* \.\.\. FAILED$/ {
      name = $0; sub(/^test /, "", name); sub(/ \.\.\. FAILED$/, "", name)
      failed[++nf] = bin ": " name
    }
    END {
      close_bin()
      printf "tests: %d passed, %d failed, %d skipped\n", p, f + nd, s
      if (nf + nd > 0) {
        print "failing:"
        for (i = 1; i <= nf; i++) print "  " failed[i]
        for (i = 1; i <= nd; i++) print "  " died[i] ": died without a test result (see the log)"
      }
      if (f + nd == 0 && status != 0) {
        printf "cargo test exited with status %s though no test failed (a build error?): see the log\n", status
      }
      exit (f + nd > 0 || status != 0) ? 1 : 0
    }
  ' "$log"
}

self_test() {
  local tmp; tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' RETURN
  mkdir -p "$tmp/summary-probe/src" "$tmp/summary-probe/tests"
  cat >"$tmp/summary-probe/Cargo.toml" <<'EOF'
[package]
name = "summary-probe"
version = "0.1.0"
edition = "2021"

[workspace]
EOF
  cat >"$tmp/summary-probe/src/lib.rs" <<'EOF'
/// ```
/// assert_eq!(summary_probe::two(), 2);
/// ```
pub fn two() -> i32 { 2 }

#[cfg(test)]
mod tests {
    #[test]
    fn unit_passes() { assert_eq!(super::two(), 2); }
    #[test]
    #[ignore]
    fn unit_ignored() {}
}
EOF
  cat >"$tmp/summary-probe/tests/fails.rs" <<'EOF'
#[test]
fn passes_here() {}
#[test]
fn deliberately_fails() { assert_eq!(1 + 1, 3, "this test fails on purpose"); }
#[test]
fn also_fails() { panic!("on purpose too") }
EOF
  cat >"$tmp/summary-probe/tests/dies.rs" <<'EOF'
#[test]
fn takes_the_binary_down() { std::process::abort() }
EOF
  cat >"$tmp/summary-probe/tests/passes.rs" <<'EOF'
#[test]
fn runs_after_the_failures() {}
EOF
  local status=0
  (cd "$tmp/summary-probe" && CARGO_TARGET_DIR="$tmp/target" cargo test --offline --no-fail-fast \
    -- --test-threads 2) >"$tmp/out.log" 2>&1 || status=$?
  local summary rc=0
  summary=$(summarise "$tmp/out.log" "$status") || rc=$?
  printf '%s\n' "$summary"
  local want problems=0
  for want in 'tests: 4 passed, 3 failed, 1 skipped' '  fails: deliberately_fails' '  fails: also_fails' \
    '  dies: died without a test result (see the log)'; do
    grep -qxF "$want" <<<"$summary" || { echo "self-test: missing line: $want" >&2; problems=1; }
  done
  [ "$status" -ne 0 ] || { echo "self-test: cargo test exited 0 over failing tests" >&2; problems=1; }
  [ "$rc" -eq 1 ] || { echo "self-test: summary exited $rc, not 1" >&2; problems=1; }
  # A run without failures (the passing binary alone) is summarised as passing.
  local clean
  status=0
  (cd "$tmp/summary-probe" && CARGO_TARGET_DIR="$tmp/target" cargo test --offline --test passes) \
    >"$tmp/clean.log" 2>&1 || status=$?
  rc=0; clean=$(summarise "$tmp/clean.log" "$status") || rc=$?
  [ "$rc" -eq 0 ] && [ "$clean" = 'tests: 1 passed, 0 failed, 0 skipped' ] \
    || { echo "self-test: a passing run was summarised as: $clean (exit $rc)" >&2; problems=1; }
  if [ "$problems" -ne 0 ]; then
    echo "---- the scratch run's output ----" >&2
    cat "$tmp/out.log" >&2
    return 1
  fi
  echo "self-test passed"
}

case ${1:-} in
  --self-test) self_test ;;
  "" | -*) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  *) summarise "$@" ;;
esac
