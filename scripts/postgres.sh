#!/usr/bin/env bash
# PostgreSQL for this machine: one server per NAME, data and log under
# $CB_RUN/pg-NAME, listening on 127.0.0.1 only, superuser `postgres`, trusted
# from loopback (no password; nothing else may connect: no Unix socket, no
# other address). For tests and the demo, never production.
#
#   scripts/postgres.sh install           Debian's postgresql where missing
#   scripts/postgres.sh start NAME --port P [--set NAME=VALUE]...
#                                         initdb once, start, wait until it accepts
#                                         connections; prints the pid. --set passes
#                                         a server setting (the benchmarks' shared_buffers)
#   scripts/postgres.sh stop NAME         fast shutdown (SIGINT), wait until gone
#                                         (SIGKILL after 30 s)
#   scripts/postgres.sh status NAME       exit 0 when running
#
# PostgreSQL refuses to run as root: as root, the server runs as the `postgres`
# OS user (Debian's package creates it), which then owns $CB_RUN/pg-NAME.
# Like kafka.sh, a start refuses a bound port and fails, with the end of the
# server's log, when the server dies or is not ready in time.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PG_START_TIMEOUT=${CREDIT_BUS_PG_START_TIMEOUT:-60}
PG_STOP_TIMEOUT=${CREDIT_BUS_PG_STOP_TIMEOUT:-30}

# Debian installs the server programs outside PATH, per major version.
pg_bin() {
  local d
  if command -v initdb >/dev/null && command -v postgres >/dev/null; then
    dirname "$(command -v postgres)"
    return
  fi
  d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$d" ] && [ -x "$d/postgres" ] || return 1
  echo "$d"
}

cmd_install() {
  local missing=()
  pg_bin >/dev/null || missing+=(postgresql)
  command -v pg_isready >/dev/null || missing+=(postgresql-client)
  command -v python3 >/dev/null || missing+=(python3)
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing Debian packages: ${missing[*]}"
    as_root apt-get update
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y "${missing[@]}"
  fi
}

# as_server CMD...: CMD as the user the server runs as (exec, no extra process).
as_server() {
  if [ "$(id -u)" = 0 ]; then
    exec setpriv --reuid=postgres --regid=postgres --init-groups --reset-env "$@"
  fi
  exec "$@"
}

server_dir() { echo "$CB_RUN/pg-$1"; }

cmd_start() {
  local name=${1:-}; [ -n "$name" ] || usage; shift
  check_name "$name"
  local port="" settings=()
  while [ $# -gt 0 ]; do
    case $1 in
      --port) port=${2:-}; shift 2 ;;
      --set)
        [[ "${2:-}" =~ ^[a-z_]+=[^[:space:]]+$ ]] || die "start: --set NAME=VALUE, got '${2:-}'"
        settings+=(-c "$2"); shift 2 ;;
      *) die "start: unknown argument $1" ;;
    esac
  done
  [[ "$port" =~ ^[0-9]+$ ]] && [ "$port" -gt 0 ] && [ "$port" -lt 65536 ] \
    || die "start $name: --port P is required"
  local bin; bin=$(pg_bin) || die "no PostgreSQL server: run scripts/postgres.sh install"
  local dir; dir=$(server_dir "$name")
  local running; running=$(running_pid "$dir/postgres.pid" "$dir/data")
  [ -z "$running" ] || die "server $name is already running (pid $running): stop it first"
  check_port_free "$port" "PostgreSQL server $name" || exit 1

  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then
    chown postgres:postgres "$dir"
    (as_server test -w "$dir") || die "user postgres cannot write $dir (a parent folder is closed to it): set CB_RUN to a folder it can reach"
  fi
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    log "initdb for PostgreSQL server $name in $dir/data"
    rm -rf "$dir/data"
    # Superuser `postgres` whoever runs it; trust, but pg_hba.conf below lets
    # only loopback TCP in.
    if ! (as_server "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --encoding=UTF8 \
      --locale=C.UTF-8) >"$dir/initdb.log" 2>&1; then
      print_tail "$dir/initdb.log"
      die "initdb for server $name failed"
    fi
    printf '%s\n' '# Written by scripts/postgres.sh: loopback TCP only.' \
      'host all all 127.0.0.1/32 trust' >"$dir/data/pg_hba.conf"
  fi

  log "starting PostgreSQL server $name on 127.0.0.1:$port (log $dir/postgres.log)"
  guard_start "$dir/postgres.pid"
  [ ! -f "$dir/postgres.log" ] || mv -f "$dir/postgres.log" "$dir/postgres.log.1"
  # setsid: out of the terminal's process group (a Ctrl-C goes to the script
  # that started it, which stops it in order). No Unix socket: TCP on
  # loopback is the only way in.
  (
    cd "$dir"
    as_server setsid "$bin/postgres" -D "$dir/data" -p "$port" -c listen_addresses=127.0.0.1 \
      -c unix_socket_directories= -c logging_collector=off "${settings[@]}"
  ) </dev/null >"$dir/postgres.log" 2>&1 &
  local pid=$!
  guard_pid "$pid"
  pg_ready() { pg_isready -q -h 127.0.0.1 -p "$port" -t 2; }
  await_ready "PostgreSQL server $name" "$pid" "$PG_START_TIMEOUT" pg_ready "$dir/postgres.log" \
    || exit 1
  start_succeeded
  log "PostgreSQL server $name ready on 127.0.0.1:$port (pid $pid; postgresql://postgres@127.0.0.1:$port/postgres)"
  echo "$pid"
}

cmd_status() {
  local name=${1:-}; [ -n "$name" ] || usage
  check_name "$name"
  local dir pid; dir=$(server_dir "$name")
  pid=$(running_pid "$dir/postgres.pid" "$dir/data")
  if [ -n "$pid" ]; then
    echo "PostgreSQL server $name running, pid $pid"
  else
    echo "PostgreSQL server $name not running"; return 3
  fi
}

cmd=${1:-}; [ $# -eq 0 ] || shift
case $cmd in
  install) cmd_install ;;
  start) cmd_start "$@" ;;
  stop)
    check_name "${1:-}"
    # SIGINT is PostgreSQL's fast shutdown (SIGTERM would wait for every client).
    end_process "PostgreSQL server $1" "$(server_dir "$1")/postgres.pid" "$(server_dir "$1")/data" INT "$PG_STOP_TIMEOUT" ;;
  status) cmd_status "$@" ;;
  *) usage ;;
esac
