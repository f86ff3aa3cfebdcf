# Shared shell helpers for credit-bus scripts. Source it; do not run it.
# Installs only what is missing, and says what it is doing.

CB_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CB_RUN="${CB_RUN:-$CB_ROOT/.run}"
mkdir -p "$CB_RUN"
export PATH="$HOME/.cargo/bin:$PATH"

log() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# Debian packages the build needs: cmake and libcurl headers for rdkafka's bundled
# librdkafka (Debian's own librdkafka is too old to talk to tansu), and python3-pip
# for the cross-check of the identifier validators.
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

# tansu 0.6: the Kafka-protocol broker these machines run (about 10 minutes to build
# on 2 cores; cargo prints its progress). Skipped when already installed.
ensure_tansu() {
  if command -v tansu >/dev/null && tansu --version 2>/dev/null | grep -q '^tansu 0\.6'; then
    return
  fi
  log "installing the tansu broker (cargo install, about 10 minutes on 2 cores)"
  cargo install --locked tansu --version '^0.6' --features dynostore,libsql
}

wait_port() { # host port seconds
  local deadline=$(( $(date +%s) + $3 ))
  until (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; do
    [ "$(date +%s)" -lt "$deadline" ] || { echo "nothing listening on $1:$2 after $3 s" >&2; return 1; }
    sleep 0.2
  done
}

# start_broker PORT [STORAGE_URL]: tansu on loopback, in memory unless told otherwise.
start_broker() {
  local port=$1 storage=${2:-memory://tansu/}
  log "starting tansu on 127.0.0.1:$port ($storage)"
  tansu broker --listener-url "tcp://127.0.0.1:$port" --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine "$storage" >"$CB_RUN/tansu-$port.log" 2>&1 &
  echo $! >"$CB_RUN/tansu-$port.pid"
  wait_port 127.0.0.1 "$port" 30
}

# start_broker_auth PORT USER=PASSWORD...: tansu on loopback with SASL/SCRAM
# authentication required, one user per argument (SCRAM-SHA-512). tansu keeps
# users only in durable storage (memory:// accepts `tansu user create` and stores
# nothing), so this one uses SQLite under $CB_RUN/tansu-auth-PORT; and it refuses
# every unauthenticated request, `tansu user create` included, so users are
# created on a first run without authentication, then tansu restarts with it.
# tansu authenticates only: it enforces no ACLs (docs/security.md). Stop it with
# stop_broker PORT. Passwords are passed to `tansu user create` as arguments
# (visible in ps while it runs) and never logged here.
start_broker_auth() {
  local port=$1; shift
  local dir="$CB_RUN/tansu-auth-$port" url="tcp://127.0.0.1:$port" pair
  mkdir -p "$dir"
  log "starting tansu with authentication on 127.0.0.1:$port (sqlite://$dir/tansu.db), users: $(for pair in "$@"; do printf '%s ' "${pair%%=*}"; done)"
  local args=(broker --listener-url "$url" --advertised-listener-url "$url" --storage-engine sqlite://tansu.db --silent)
  # tansu resolves sqlite:// URLs against its working directory.
  (cd "$dir" && exec tansu "${args[@]}") >"$CB_RUN/tansu-$port.log" 2>&1 &
  local open_pid=$!
  wait_port 127.0.0.1 "$port" 30 || { kill "$open_pid" 2>/dev/null; return 1; }
  for pair in "$@"; do
    tansu user create --broker "$url" "${pair%%=*}" "${pair#*=}" >>"$CB_RUN/tansu-$port.log" 2>&1 \
      || { echo "tansu user create ${pair%%=*} failed (see $CB_RUN/tansu-$port.log)" >&2; kill "$open_pid"; return 1; }
  done
  kill "$open_pid"; wait "$open_pid" 2>/dev/null
  (cd "$dir" && exec tansu "${args[@]}" --authentication) >>"$CB_RUN/tansu-$port.log" 2>&1 &
  echo $! >"$CB_RUN/tansu-$port.pid"
  wait_port 127.0.0.1 "$port" 30
}

stop_broker() {
  local port=$1 pidfile="$CB_RUN/tansu-$1.pid"
  [ -f "$pidfile" ] || return 0
  kill "$(cat "$pidfile")" 2>/dev/null || true
  rm -f "$pidfile"
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
