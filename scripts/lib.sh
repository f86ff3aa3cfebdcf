# shellcheck shell=bash disable=SC2034  # variables here are for the scripts that source it
# Shared shell helpers for credit-bus scripts. Source it; do not run it.
# Installs only what is missing, and says what it is doing.

CB_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CB_RUN="${CB_RUN:-$CB_ROOT/.run}"
mkdir -p "$CB_RUN"
# Where cargo puts what it builds.
CB_TARGET="${CARGO_TARGET_DIR:-$CB_ROOT/target}"
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Debian packages the build needs: cmake and libcurl headers for rdkafka's bundled
# librdkafka (Debian's own librdkafka is older than the one the bus is built and
# tested with), and python3-pip for the cross-check of the identifier validators.
ensure_system_packages() {
  local missing=()
  command -v cmake >/dev/null || missing+=(cmake)
  dpkg -s libcurl4-openssl-dev >/dev/null 2>&1 || missing+=(libcurl4-openssl-dev)
  # OpenSSL for librdkafka's SCRAM and TLS: departments authenticate.
  dpkg -s libssl-dev >/dev/null 2>&1 || missing+=(libssl-dev)
  command -v pkg-config >/dev/null || missing+=(pkg-config)
  command -v g++ >/dev/null || missing+=(g++)
  command -v python3 >/dev/null || missing+=(python3 python3-pip)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    as_root apt-get update
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y "${missing[@]}"
  fi
}

ensure_stdnum() {
  if ! python3 -c 'import stdnum.cn.uscc, stdnum.cn.ric' 2>/dev/null; then
    log "installing python-stdnum (independent check of USCC and resident-ID validators)"
    python3 -m pip install --quiet python-stdnum || python3 -m pip install --quiet --break-system-packages python-stdnum
  fi
}

# What scripts/check-helm.sh needs, all from PyPI: Helm's own Go engine (lint,
# template, values schema) as the helm-python-sdk wheel, since no helm binary can
# be downloaded here; jsonschema, yamllint, a PromQL parser, and the Kubernetes
# object schemas (kubernetes-validate).
ensure_helm_checks() {
  if ! python3 -c 'import helm_python, jsonschema, yamllint, promql_parser, kubernetes_validate, yaml' 2>/dev/null; then
    log "installing the Helm chart checks (helm-python-sdk, jsonschema, yamllint, promql-parser, kubernetes-validate)"
    local pkgs=(helm-python-sdk jsonschema yamllint promql-parser kubernetes-validate pyyaml)
    python3 -m pip install --quiet "${pkgs[@]}" || python3 -m pip install --quiet --break-system-packages "${pkgs[@]}"
  fi
}

wait_port() { # host port seconds
  local deadline=$(( $(date +%s) + $3 ))
  until (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "nothing listening on $1:$2 after $3 s" >&2; return 1; }
    sleep 0.2
  done
}

# Processes the scripts start (brokers, databases) and stop again ---------------

# check_port_free PORT WHAT: fails, naming the port, when anything is bound to
# 127.0.0.1:PORT. A bind test, not a connect test: a server that does not
# answer yet still holds the port. SO_REUSEADDR as servers set it, so the
# TIME_WAIT connections of a server that just died do not count.
check_port_free() {
  local port=$1 what=$2 holder=""
  if ! python3 - "$port" <<'EOF'; then
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
EOF
    command -v ss >/dev/null && holder=$(ss -Htlnp "sport = :$port" 2>/dev/null | awk '{print $NF}' | head -n 1)
    echo "port $port ($what) on 127.0.0.1 is already in use${holder:+ by $holder}: not starting; stop what holds it or choose another port" >&2
    return 1
  fi
}

# is_ours PID MARKER: whether PID is alive (not a zombie) and has MARKER as one
# of its arguments, i.e. is the process a script started and not one that got
# its number later.
is_ours() {
  local pid=$1 marker=$2
  [ -r "/proc/$pid/cmdline" ] || return 1
  [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != Z ] || return 1
  tr '\0' '\n' <"/proc/$pid/cmdline" | grep -qxF -- "$marker"
}

# running_pid PIDFILE MARKER: the pid in PIDFILE when that process is ours and
# alive; nothing otherwise (and a stale PIDFILE is removed).
running_pid() {
  local pidfile=$1 marker=$2 pid
  [ -f "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  if [[ "$pid" =~ ^[0-9]+$ ]] && is_ours "$pid" "$marker"; then
    echo "$pid"
  else
    rm -f "$pidfile"
  fi
}

# end_process WHAT PIDFILE MARKER SIGNAL LIMIT: sends SIGNAL to the process of
# PIDFILE (when it is ours) and waits until it is gone, with SIGKILL after
# LIMIT seconds; removes PIDFILE.
end_process() {
  local what=$1 pidfile=$2 marker=$3 signal=$4 limit=$5 pid
  pid=$(running_pid "$pidfile" "$marker")
  if [ -z "$pid" ]; then
    log "$what is not running"
    return 0
  fi
  kill "-$signal" "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + limit))
  while is_ours "$pid" "$marker"; do
    if [ "$SECONDS" -ge "$deadline" ] && [ "$signal" != KILL ]; then
      log "$what (pid $pid) still running $limit s after SIG$signal: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      signal=KILL
    fi
    sleep 0.1
  done
  rm -f "$pidfile"
  log "$what stopped (SIG$signal)"
}

# For the server scripts (kafka.sh, postgres.sh): die MESSAGE, usage (their
# header's command lines), check_name NAME.
die() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }
usage() {
  sed -n '/^#   scripts/,/^#$/p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}
check_name() {
  [[ "$1" =~ ^[A-Za-z0-9._-]+$ ]] || die "name ${1:-(empty)} must be [A-Za-z0-9._-]+"
}

# A server being started (guard_start PIDFILE, launch, guard_pid PID) is killed
# again, and its pid file removed, when the starting script exits (failure,
# Ctrl-C, SIGTERM) before start_succeeded.
# Globals: the EXIT trap runs after the starting function's locals are gone.
STARTING_PID="" STARTING_PIDFILE=""
guard_start() { # PIDFILE
  STARTING_PIDFILE=$1
  trap abandon_start EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}
abandon_start() {
  [ -n "$STARTING_PIDFILE" ] || return 0
  [ -z "$STARTING_PID" ] || kill -KILL "$STARTING_PID" 2>/dev/null || true
  rm -f "$STARTING_PIDFILE"
}
# guard_pid PID: the started process, written to the pid file.
guard_pid() { STARTING_PID=$1; echo "$1" >"$STARTING_PIDFILE"; }
start_succeeded() { STARTING_PIDFILE=""; }

# await_ready WHAT PID TIMEOUT CHECK LOG...: runs CHECK (a command, no
# arguments) until it succeeds; fails, with the end of each LOG, when PID (a
# child of this shell) dies first or TIMEOUT seconds pass.
await_ready() {
  local what=$1 pid=$2 timeout=$3 check=$4; shift 4
  local deadline=$((SECONDS + timeout))
  until "$check"; do
    if ! kill -0 "$pid" 2>/dev/null; then
      local status=0; wait "$pid" || status=$?
      print_tail "$@"
      echo "$what (pid $pid) died during start-up, exit status $status" >&2
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      print_tail "$@"
      echo "$what (pid $pid) not ready after $timeout s; killed it" >&2
      return 1
    fi
    sleep 0.2
  done
}

# print_tail FILE...: the last lines of each non-empty FILE, on stderr.
print_tail() {
  local f
  for f in "$@"; do
    [ -s "$f" ] || continue
    printf -- '---- last lines of %s ----\n' "$f" >&2
    tail -n 40 "$f" >&2
  done
  printf -- '----\n' >&2
}

# Apache Kafka: scripts/kafka.sh does the work (install, start, stop, kill9,
# restart, status; see its header); these wrap it for scripts that source lib.sh.
KAFKA_SH="$CB_ROOT/scripts/kafka.sh"

# Java 17 and Maven from Debian where missing, then the broker's jars (once).
ensure_kafka() { "$KAFKA_SH" install; }

# kafka_start NAME ARGS...: starts broker NAME (ARGS as for `kafka.sh start`)
# and sets KAFKA_PID. Set the EXIT trap that calls `kafka_stop NAME` before
# calling it: kafka.sh writes the pid file as soon as the JVM runs, so even an
# interrupted start is stopped.
kafka_start() { KAFKA_PID=$("$KAFKA_SH" start "$@"); }
kafka_stop() { "$KAFKA_SH" stop "$1"; }

# Where broker NAME keeps the password of its super user `admin`.
kafka_admin_password_file() { echo "$CB_RUN/kafka-$1/admin.password"; }

# PostgreSQL: scripts/postgres.sh (install, start NAME --port P, stop, status).
POSTGRES_SH="$CB_ROOT/scripts/postgres.sh"
ensure_postgres() { "$POSTGRES_SH" install; }
# postgres_start NAME ARGS...: starts server NAME (ARGS as for `postgres.sh
# start`). Like kafka_start: set the EXIT trap that stops it first.
postgres_start() { "$POSTGRES_SH" start "$@" >/dev/null; }
postgres_stop() { "$POSTGRES_SH" stop "$1"; }

# write_archive_config DIR DEPT:ROLE[,ROLE]...: a random bearer token per
# department in DIR/<dept>.token (0600) and DIR/archive.toml naming the files
# (the tokens themselves never enter the config).
write_archive_config() {
  local dir=$1 spec dept roles; shift
  mkdir -p "$dir"
  (
    umask 077
    : >"$dir/archive.toml"
    for spec in "$@"; do
      dept=${spec%%:*} roles=${spec#*:}
      [ -f "$dir/$dept.token" ] || od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$dir/$dept.token"
      printf '[[archive.departments]]\nid = "%s"\ntoken_file = "%s"\nroles = [%s]\n\n' \
        "$dept" "$dir/$dept.token" "$(sed 's/[^,]*/"&"/g' <<<"$roles")" >>"$dir/archive.toml"
    done
  )
}

# Debian's chromium (and its driver) for the dashboard's browser test: a real
# headless browser, from the distribution, since nothing else can be downloaded.
ensure_chromium() {
  local missing=()
  command -v chromium >/dev/null || missing+=(chromium)
  command -v chromedriver >/dev/null || missing+=(chromium-driver)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    as_root apt-get update
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y "${missing[@]}"
  fi
}

# Node and playwright-core (npm registry, pinned by tests/browser/package-lock.json)
# for the dashboard's browser test. playwright-core downloads no browser: it
# drives the chromium above. npm ci runs only when node_modules is missing.
ensure_browser_test_deps() {
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    log "installing Debian packages: nodejs npm"
    as_root apt-get update
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y nodejs npm
  fi
  if [ ! -d "$CB_ROOT/tests/browser/node_modules/playwright-core" ]; then
    log "installing playwright-core for the browser test (npm ci in tests/browser)"
    (cd "$CB_ROOT/tests/browser" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)
  fi
}
