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
