#!/usr/bin/env bash
# Checks helm/credit-bus without a cluster: yamllint, values.schema.json against
# every values file, `helm lint` and `helm template` (Helm's own Go engine, from
# the helm-python-sdk wheel on PyPI: no helm binary can be downloaded here) with
# the default and every ci/*-values.yaml set, Kubernetes schema validation of the
# rendered core objects, and the chart's own promises (probes, securityContext,
# config keys the services accept, topics = `credit-bus topics list`, Strimzi
# users and ACLs = the access model, files/access.yaml = `credit-bus access helm`), plus every PromQL expression of the Grafana dashboard and the alert
# rules parsed and checked against the metric names of crates/runtime/src/metrics.rs.
# Prints one line per check and exits non-zero if any failed.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$CB_ROOT"
ensure_helm_checks

# `credit-bus topics list`, when the CLI is built, is the reference topic list.
TOPICS_FILE=""
for bin in "$CB_TARGET/debug/credit-bus" "$CB_TARGET/release/credit-bus"; do
  if [ -x "$bin" ]; then
    TOPICS_FILE="$CB_RUN/topics-list.txt"
    # Default prefix, whatever the caller's environment says.
    env -u CREDIT_BUS__KAFKA__TOPIC_PREFIX -u CREDIT_BUS_CONFIG "$bin" topics list >"$TOPICS_FILE"
    break
  fi
done
export TOPICS_FILE

# `credit-bus access helm` is the reference for helm/credit-bus/files/access.yaml.
ACCESS_FILE=""
for bin in "$CB_TARGET/debug/credit-bus" "$CB_TARGET/release/credit-bus"; do
  if [ -x "$bin" ]; then
    ACCESS_FILE="$CB_RUN/access-helm.yaml"
    "$bin" access helm >"$ACCESS_FILE"
    break
  fi
done
export ACCESS_FILE

log "yamllint (values, CI value sets, alert rules, Chart.yaml)"
yamllint -s -d '{extends: default, rules: {line-length: {max: 240}, document-start: disable,
  indentation: {spaces: 2, indent-sequences: whatever}, comments: {min-spaces-from-content: 1}}}' \
  helm/credit-bus/Chart.yaml helm/credit-bus/values.yaml helm/credit-bus/ci/*.yaml helm/credit-bus/rules/alerts.yaml

log "helm lint, helm template and the chart's promises"
python3 - <<'PY'
import copy, json, os, re, sys, tomllib
import jsonschema, yaml, promql_parser, kubernetes_validate
import helm_python as helm

CHART = "helm/credit-bus"
failures, passes = [], 0

def check(name, ok, detail=""):
    global passes
    if ok:
        passes += 1
        print(f"  ok   {name}")
    else:
        failures.append(name)
        print(f"  FAIL {name}{': ' + detail if detail else ''}")

def merge(a, b):
    a = copy.deepcopy(a)
    for k, v in (b or {}).items():
        a[k] = merge(a[k], v) if isinstance(v, dict) and isinstance(a.get(k), dict) else v
    return a

# ---- metric names: the one list in crates/runtime/src/metrics.rs ----
src = open("crates/runtime/src/metrics.rs").read()
body = src[src.index("pub const fn exported"):]
body = body[: body.index("\n    }\n")]
exported = set(re.findall(r'=> "([a-z0-9_]+)"', body))
known = set(exported)
for n in exported:
    if n.endswith("_seconds"):  # histograms
        known |= {n + "_bucket", n + "_sum", n + "_count"}
SYNTHETIC = {"up"}  # series Prometheus makes itself
check("metrics.rs lists exported names", len(exported) >= 10, str(sorted(exported)))

GRAFANA_VARS = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h",
                "${__range}": "1h", "$job": "credit-bus", "$department": ".*"}

def promql_names(expr, where):
    e = expr
    for k, v in GRAFANA_VARS.items():
        e = e.replace(k, v)
    try:
        ast = promql_parser.parse(e)
    except Exception as ex:  # noqa: BLE001
        check(f"{where}: PromQL parses", False, f"{ex}: {expr}")
        return set()
    names = set()
    promql_parser.walk(ast, lambda n: names.add(n.name) if isinstance(n, promql_parser.VectorSelector) else None)
    return names

# ---- Grafana dashboard ----
dash_path = f"{CHART}/dashboards/credit-bus.json"
dash = json.load(open(dash_path))
exprs = []
def panels(ps):
    for p in ps:
        yield p
        yield from panels(p.get("panels", []))
for p in panels(dash["panels"]):
    for t in p.get("targets", []):
        exprs.append((p["title"], t["expr"]))
used = set()
for title, e in exprs:
    n = promql_names(e, f"dashboard '{title}'")
    used |= n
    unknown = n - known - SYNTHETIC
    check(f"dashboard '{title}': metric names known", not unknown, f"unknown {sorted(unknown)}")
check("dashboard: uses ${datasource}, no hard-coded data source",
      all(p.get("datasource", {}).get("uid") == "${datasource}" for p in panels(dash["panels"]) if p["type"] != "row"))
titles = " | ".join(t for t, _ in exprs).lower()
for want in ["throughput", "dead-letter rate", "consumer lag", "notices by department and kind",
             "open / overdue", "latency p50 / p99", "recovery time", "service up"]:
    check(f"dashboard has a panel: {want}", want in titles)
ids = [p["id"] for p in panels(dash["panels"])]
check("dashboard: panel ids unique", len(ids) == len(set(ids)))

# ---- alert rules (plain file) ----
rules_doc = yaml.safe_load(open(f"{CHART}/rules/alerts.yaml"))
rules = [r for g in rules_doc["groups"] for r in g["rules"]]
for r in rules:
    n = promql_names(r["expr"], f"alert {r['alert']}")
    used |= n
    unknown = n - known - SYNTHETIC
    check(f"alert {r['alert']}: metric names known", not unknown, f"unknown {sorted(unknown)}")
    check(f"alert {r['alert']}: severity, summary, for",
          "severity" in r.get("labels", {}) and "summary" in r.get("annotations", {}) and "for" in r)
alert_exprs = {r["alert"]: r["expr"] for r in rules}
def has_alert(pred):
    return any(pred(e) for e in alert_exprs.values())
check("alerts: consumer lag growing (deriv/increase over 10m and a threshold)",
      has_alert(lambda e: "credit_bus_consumer_lag" in e and re.search(r"(deriv|increase|delta)\(credit_bus_consumer_lag\[10m\]\)", e) and ">" in e))
check("alerts: dead-letter rate", has_alert(lambda e: "rate(credit_bus_records_dead_lettered_total" in e))
check("alerts: feedback overdue", has_alert(lambda e: 'credit_bus_notices_tracked{state="overdue"}' in e))
check("alerts: service down (up == 0)", has_alert(lambda e: re.search(r"\bup\{[^}]*\}\s*==\s*0", e)))
check("alerts: engine recovery slow", has_alert(lambda e: "credit_bus_engine_recovery_duration_seconds" in e))
print(f"  (dashboard and rules reference {len(used)} series names: {', '.join(sorted(used))})")

# ---- values.schema.json ----
schema = json.load(open(f"{CHART}/values.schema.json"))
try:
    jsonschema.Draft7Validator.check_schema(schema)
    check("values.schema.json is a valid draft-07 schema", schema.get("$schema", "").endswith("draft-07/schema#"))
except jsonschema.SchemaError as ex:
    check("values.schema.json is a valid draft-07 schema", False, str(ex))
defaults = yaml.safe_load(open(f"{CHART}/values.yaml"))
ci_sets = sorted(f for f in os.listdir(f"{CHART}/ci") if f.endswith("-values.yaml"))
value_sets = [("default", {})] + [(f, yaml.safe_load(open(f"{CHART}/ci/{f}"))) for f in ci_sets]
v7 = jsonschema.Draft7Validator(schema)
for name, vals in value_sets:
    errs = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in v7.iter_errors(merge(defaults, vals))]
    check(f"values {name} valid against values.schema.json", not errs, "; ".join(errs))
BAD = [
    ("a misspelt key", {"engine": {"replicaz": 3}}),
    ("an unknown security protocol", {"kafka": {"securityProtocol": "tls"}}),
    ("two registry replicas", {"registry": {"replicas": 2}}),
    ("a department id with capitals", {"departments": {"publishing": ["Courts"]}}),
    ("a dead-letter share above 1", {"prometheusRule": {"rules": {"deadLetterShare": {"threshold": 3}}}}),
    ("an archive role that does not exist", {"archive": {"departments": [{"id": "tax", "roles": ["admin"]}]}}),
    ("an archive config key it does not have", {"archive": {"config": {"database_url": "postgres://u:p@db/x"}}}),
]
for what, vals in BAD:
    check(f"schema rejects {what}", any(True for _ in v7.iter_errors(merge(defaults, vals))))

# ---- helm lint ----
lint = helm.lint(CHART)
errs = [m for m in lint.get("messages", []) if m.get("severity", 0) >= 2] + list(lint.get("errors") or [])
check("helm lint: no warnings or errors", not errs, json.dumps(errs))
print(f"  (helm SDK {helm.helm_sdk_version()} through helm-c {helm.helm_c_version()})")

# ---- service config keys: what each service's deny_unknown_fields sections accept ----
def toml_keys(path):
    return tomllib.load(open(path, "rb"))
common_defaults = toml_keys("crates/runtime/default.toml")
svc_defaults = {}
for svc, d in [("registry", "registry"), ("normaliser", "normaliser"), ("engine", "engine"),
               ("feedback", "feedback"), ("quality", "quality"), ("dashboard", "dashboard"), ("archive", "archive")]:
    p = f"services/{d}/default.toml"
    svc_defaults[svc] = merge(common_defaults, toml_keys(p)) if os.path.exists(p) else None

# [[archive.departments]] entries: the fields of DepartmentAccess (deny_unknown_fields)
# and the roles of auth::Role (snake_case), read from the archive's source.
def rust_struct_fields(path, name):
    src = open(path).read()
    body = src[src.index(f"pub struct {name} {{"):]
    return set(re.findall(r"^\s*pub (\w+):", body[: body.index("\n}")], re.M))
ARCHIVE_DEPT_KEYS = rust_struct_fields("services/archive/src/config.rs", "DepartmentAccess")
_roles = open("services/archive/src/auth.rs").read()
_roles = _roles[_roles.index("pub enum Role {"):]
ARCHIVE_ROLES = {re.sub(r"(?<!^)([A-Z])", r"_\1", r).lower()
                 for r in re.findall(r"^\s*([A-Z]\w*),", _roles[: _roles.index("\n}")], re.M)}
check("archive: DepartmentAccess fields and roles read from the source",
      {"id", "token_file", "roles"} <= ARCHIVE_DEPT_KEYS and ARCHIVE_ROLES == {"read", "personal_data", "audit"},
      f"{ARCHIVE_DEPT_KEYS} {ARCHIVE_ROLES}")

def config_problems(component, cfg):
    allowed = svc_defaults.get(component)
    if allowed is None:
        return [f"services/{component}/default.toml not found"]
    out = []
    if component == "archive":
        for i, d in enumerate(cfg.get("archive", {}).get("departments", [])):
            out += [f"archive.departments[{i}].{k} unknown to credit-archive" for k in set(d) - ARCHIVE_DEPT_KEYS]
            out += [f"archive.departments[{i}]: role {r!r} unknown" for r in set(d.get("roles", [])) - ARCHIVE_ROLES]
    for section, table in cfg.items():
        if section not in allowed:
            out.append(f"[{section}] unknown to credit-{component}")
            continue
        for k in table:
            if section == "kafka" and k in ("extra", "sasl_mechanism", "sasl_username", "sasl_password"):
                continue
            if k not in allowed[section]:
                out.append(f"{section}.{k} unknown to credit-{component}")
    return out

def docs_of(rendered):
    out = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt") or not text.strip():
            continue
        for d in yaml.safe_load_all(text):
            if d:
                out.append((path, d))
    return out

# ---- the access model's users, as files/access.yaml has them ----
access_doc = yaml.safe_load(open(f"{CHART}/files/access.yaml"))
if os.environ.get("ACCESS_FILE"):
    check("files/access.yaml = `credit-bus access helm` (regenerate: cargo run -q -p credit-ctl --bin credit-bus -- access helm > helm/credit-bus/files/access.yaml)",
          open(os.environ["ACCESS_FILE"]).read() == open(f"{CHART}/files/access.yaml").read())
else:
    print("  skip files/access.yaml vs `credit-bus access helm`: target/*/credit-bus not built")

def access_users(eff):
    """KafkaUser name -> ACLs the chart must render for these values."""
    u = eff["strimzi"]["users"]
    on = {"department": True, "normaliser": eff["normaliser"]["enabled"], "engine": eff["engine"]["enabled"],
          "registry": eff["registry"]["enabled"], "feedback": eff["feedback"]["enabled"],
          "quality": eff["quality"]["enabled"], "operator": u["operator"],
          "archive": u["archive"] or eff["archive"]["enabled"]}
    out = {}
    for user in access_doc["users"]:
        if not on[user["component"]]:
            continue
        acls = []
        for a in user["acls"]:
            if a.get("when") and not u[a["when"]]:
                continue
            r = dict(a["resource"])
            r["name"] = r["name"].replace("{registryTopic}", eff["registry"]["topic"]).replace("{prefix}", eff["kafka"]["topicPrefix"])
            acls.append({"resource": r, "operations": a["operations"]})
        out[f"cb-credit-bus-{user['name']}"] = acls
    return out

CRDS = {"ServiceMonitor", "PrometheusRule", "KafkaTopic", "KafkaUser"}

def archive_problems(eff, kinds):
    """What the rendered archive objects break of the chart's promises (docs/archive.md)."""
    a, out = eff["archive"], []
    of = lambda kind: [d for d in kinds.get(kind, []) if d["metadata"]["labels"].get("app.kubernetes.io/component") == "archive"]
    deps, svcs, cms = of("Deployment"), of("Service"), of("ConfigMap")
    if len(deps) != 1 or len(svcs) != 1 or len(cms) != 1:
        return [f"want one Deployment, Service, ConfigMap; got {len(deps)}, {len(svcs)}, {len(cms)}"]
    dep, svc = deps[0], svcs[0]
    if dep["spec"]["replicas"] != 1 or dep["spec"].get("strategy", {}).get("type") != "Recreate":
        out.append("not one replica with Recreate (two ingests would read every partition twice)")
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    if c["command"] != ["credit-archive"]:
        out.append(f"command {c['command']}")
    cfg = tomllib.loads(cms[0]["data"]["config.toml"])
    ar = cfg.get("archive", {})
    if "database_url" in ar:
        out.append("database_url in the ConfigMap")
    env = {e["name"]: e for e in c.get("env", [])}
    ref = env.get("CREDIT_BUS__ARCHIVE__DATABASE_URL", {}).get("valueFrom", {}).get("secretKeyRef", {})
    if ref != {"name": a["database"]["existingSecret"], "key": a["database"]["urlKey"]}:
        out.append(f"database URL not from archive.database.existingSecret: {ref}")
    port = int(cfg["telemetry"]["ops_listen"].rsplit(":", 1)[1])
    cport = {p["name"]: p["containerPort"] for p in c["ports"]}
    if port != a["port"] or cport.get("http") != port:
        out.append(f"ops_listen {port}, container port {cport}, archive.port {a['port']}")
    if [(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] != [(a["port"], "http")]:
        out.append(f"Service ports {svc['spec']['ports']}")
    for k, v in (a.get("config") or {}).items():
        if ar.get(k) != v:
            out.append(f"archive.{k} = {ar.get(k)!r}, values say {v!r}")
    # Departments: as in values, each token a file of the tokens Secret, mounted read-only.
    got = [(d["id"], d.get("roles")) for d in ar.get("departments", [])]
    if got != [(d["id"], d["roles"]) for d in a["departments"]]:
        out.append(f"departments {got}")
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    files = {}
    for m in c.get("volumeMounts", []):
        sec = vols.get(m["name"], {}).get("secret")
        if sec and m.get("readOnly"):
            for it in sec.get("items", []):
                files[f"{m['mountPath']}/{it['path']}"] = (sec["secretName"], it["key"])
    for d, v in zip(ar.get("departments", []), a["departments"]):
        if set(d) & {"token_env", "token_sha256"} or "token_file" not in d:
            out.append(f"{d['id']}: token not from a file")
        elif files.get(d["token_file"]) != (a["tokens"]["existingSecret"], v.get("key") or v["id"]):
            out.append(f"{d['id']}: token_file {d['token_file']} is not key {v.get('key') or v['id']} of {a['tokens']['existingSecret']} ({files})")
    # The dashboard scrapes it; with Strimzi users, its KafkaUser is rendered.
    if eff["dashboard"]["enabled"]:
        dcm = [d for d in kinds["ConfigMap"] if d["metadata"]["name"].endswith("-dashboard")]
        targets = tomllib.loads(dcm[0]["data"]["config.toml"])["dashboard"]["targets"]
        if {"name": "archive", "url": f"http://cb-credit-bus-archive:{a['port']}"} not in targets:
            out.append("not a dashboard target")
        # The subject view: the archive's Service and the one department's token
        # file, mounted read-only from the tokens Secret (no other key of it).
        want = eff["dashboard"].get("archiveDepartment")
        dcfg = tomllib.loads(dcm[0]["data"]["config.toml"])["dashboard"]
        if want:
            entry = next(d for d in a["departments"] if d["id"] == want)
            ddep = [d for d in kinds["Deployment"] if d["metadata"]["name"].endswith("-dashboard")][0]
            dpod = ddep["spec"]["template"]["spec"]
            dvols = {v["name"]: v for v in dpod.get("volumes", [])}
            dfiles = {}
            for m in dpod["containers"][0].get("volumeMounts", []):
                sec = dvols.get(m["name"], {}).get("secret")
                if sec and sec["secretName"] == a["tokens"]["existingSecret"]:
                    if not m.get("readOnly"):
                        out.append(f"dashboard mounts {m['name']} writable")
                    for it in sec.get("items") or [{"key": "*", "path": "*"}]:
                        dfiles[f"{m['mountPath']}/{it['path']}"] = (sec["secretName"], it["key"])
            if dcfg.get("archive_url") != f"http://cb-credit-bus-archive:{a['port']}":
                out.append(f"dashboard archive_url {dcfg.get('archive_url')}")
            if dfiles != {dcfg.get("archive_token_file"): (a["tokens"]["existingSecret"], entry.get("key") or entry["id"])}:
                out.append(f"dashboard token file {dcfg.get('archive_token_file')} mounts {dfiles}")
        elif "archive_url" in dcfg:
            out.append("dashboard archive_url without dashboard.archiveDepartment")
    if eff["strimzi"]["users"]["enabled"] and not any(u["metadata"]["name"] == "cb-credit-bus-archive" for u in kinds.get("KafkaUser", [])):
        out.append("no KafkaUser archive")
    return out
reference_topics = None
if os.environ.get("TOPICS_FILE"):
    reference_topics = [l.strip() for l in open(os.environ["TOPICS_FILE"]) if l.strip()]

with helm.Chart.load(CHART) as chart:
    for name, vals in value_sets:
        eff = merge(defaults, vals)
        try:
            rendered = chart.render(vals, name="cb", namespace="credit")
        except Exception as ex:  # noqa: BLE001
            check(f"[{name}] helm template renders", False, str(ex))
            continue
        try:
            docs = docs_of(rendered)
            check(f"[{name}] helm template renders valid YAML ({len(docs)} objects)", True)
        except yaml.YAMLError as ex:
            check(f"[{name}] helm template renders valid YAML", False, str(ex))
            continue
        kinds = {}
        for _, d in docs:
            kinds.setdefault(d["kind"], []).append(d)
        # Kubernetes schemas for the core objects (CRDs are checked below by hand).
        bad = []
        for path, d in docs:
            if d["kind"] in CRDS:
                continue
            try:
                kubernetes_validate.validate(d, "1.30", strict=True)
            except Exception as ex:  # noqa: BLE001
                bad.append(f"{d['kind']}/{d['metadata']['name']}: {str(ex)[:200]}")
        check(f"[{name}] core objects valid against the Kubernetes 1.30 schemas (strict)", not bad, "; ".join(bad))
        names = [(d["kind"], d["metadata"]["name"]) for _, d in docs]
        check(f"[{name}] object names unique per kind", len(names) == len(set(names)))
        # Every workload: probes, resources, non-root, read-only root fs, config via CREDIT_BUS_CONFIG.
        workloads = kinds.get("Deployment", []) + kinds.get("StatefulSet", []) + kinds.get("Job", [])
        probs = []
        for w in workloads:
            spec = w["spec"]["template"]["spec"]
            for c in spec["containers"]:
                wn = f"{w['kind']}/{w['metadata']['name']}"
                if w["kind"] != "Job":
                    if c.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
                        probs.append(f"{wn}: no /healthz liveness probe")
                    if c.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
                        probs.append(f"{wn}: no /readyz readiness probe")
                if not c.get("resources", {}).get("requests"):
                    probs.append(f"{wn}: no resource requests")
                sc = c.get("securityContext", {})
                if not sc.get("readOnlyRootFilesystem"):
                    probs.append(f"{wn}: root fs writable")
                if not (sc.get("runAsNonRoot") or spec.get("securityContext", {}).get("runAsNonRoot")):
                    probs.append(f"{wn}: may run as root")
                env = {e["name"]: e for e in c.get("env", [])}
                if env.get("CREDIT_BUS_CONFIG", {}).get("value") != "/etc/credit-bus/config/config.toml":
                    probs.append(f"{wn}: CREDIT_BUS_CONFIG not set")
                for e in env.values():
                    if ("PASSWORD" in e["name"] or "DATABASE_URL" in e["name"]) and "value" in e:
                        probs.append(f"{wn}: {e['name']} given in clear")
        check(f"[{name}] every pod: /healthz + /readyz probes, resources, non-root, read-only root fs", not probs, "; ".join(probs))
        # Config: every ConfigMap's TOML parses and names only keys its service accepts.
        probs = []
        for cm in kinds.get("ConfigMap", []):
            if "config.toml" not in cm.get("data", {}):
                continue
            component = cm["metadata"]["labels"]["app.kubernetes.io/component"]
            try:
                cfg = tomllib.loads(cm["data"]["config.toml"])
            except tomllib.TOMLDecodeError as ex:
                probs.append(f"{cm['metadata']['name']}: {ex}")
                continue
            if component == "topics":
                component = "registry"  # only [kafka] matters to `credit-bus topics create`
            probs += [f"{cm['metadata']['name']}: {p}" for p in config_problems(component, cfg)]
        check(f"[{name}] config.toml of every ConfigMap parses, with keys the services accept", not probs, "; ".join(probs))
        # One normaliser Deployment per publishing department; the engine a StatefulSet.
        if eff["normaliser"]["enabled"]:
            got = sorted(d["spec"]["template"]["spec"]["containers"][0]["command"][2]
                         for d in kinds.get("Deployment", []) if d["metadata"]["labels"]["app.kubernetes.io/component"] == "normaliser")
            check(f"[{name}] one normaliser Deployment per publishing department", got == sorted(eff["departments"]["publishing"]), str(got))
        if eff["engine"]["enabled"]:
            sts = kinds.get("StatefulSet", [])
            ok = len(sts) == 1 and sts[0]["spec"]["replicas"] == eff["engine"]["replicas"]
            env = {e["name"]: e for e in sts[0]["spec"]["template"]["spec"]["containers"][0]["env"]} if sts else {}
            ok = ok and env.get("CREDIT_BUS__ENGINE__INSTANCE_ID", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name"
            check(f"[{name}] engine: StatefulSet, instance id = pod name", ok)
        if eff["archive"]["enabled"]:
            check(f"[{name}] archive: " + "; ".join(archive_problems(eff, kinds) or ["as promised"]),
                  not archive_problems(eff, kinds))
        else:
            check(f"[{name}] archive off: no archive objects",
                  not [d for _, d in docs if d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "archive"
                       and d["kind"] != "KafkaUser"])
        pdb_targets = len(kinds.get("PodDisruptionBudget", []))
        check(f"[{name}] PodDisruptionBudgets rendered", pdb_targets > 0 or not eff["engine"]["pdb"]["enabled"])
        # Strimzi topics: exactly `credit-bus topics list` (+ the registry's store).
        if "KafkaTopic" in kinds:
            topics = sorted(t["spec"]["topicName"] for t in kinds["KafkaTopic"])
            if reference_topics is not None and eff["kafka"]["topicPrefix"] == "credit":
                want = sorted(reference_topics + [eff["registry"]["topic"]])
                check(f"[{name}] KafkaTopics = `credit-bus topics list` + {eff['registry']['topic']}", topics == want,
                      f"missing {sorted(set(want) - set(topics))}, extra {sorted(set(topics) - set(want))}")
            else:
                print(f"  skip [{name}] KafkaTopics vs `credit-bus topics list`: CLI not built or prefix differs")
            compacted = sorted(t["spec"]["topicName"] for t in kinds["KafkaTopic"] if t["spec"].get("config", {}).get("cleanup.policy") == "compact")
            p = eff["kafka"]["topicPrefix"]
            check(f"[{name}] compacted topics: engine state, catalogue, quality ledger, schema store",
                  compacted == sorted([f"{p}.engine.state", f"{p}.catalogue", f"{p}.quality.state", eff["registry"]["topic"]]), str(compacted))
            st = eff["strimzi"]["topics"]
            def want_partitions(t):
                if t == eff["registry"]["topic"]:
                    return 1
                if t.endswith(".notices") or t.endswith(".feedback"):
                    return st["partitions"] or eff["kafka"]["noticePartitions"]
                return st["partitions"] or eff["kafka"]["partitions"]
            wrong = [f"{t['spec']['topicName']}={t['spec']['partitions']}" for t in kinds["KafkaTopic"]
                     if t["spec"]["partitions"] != want_partitions(t["spec"]["topicName"])]
            check(f"[{name}] KafkaTopic partitions: kafka.noticePartitions for notices and feedback, kafka.partitions else, 1 for the schema store",
                  not wrong, ", ".join(wrong[:5]))
            check(f"[{name}] KafkaTopics: kafka.strimzi.io/v1 with a cluster label",
                  all(t["apiVersion"] == "kafka.strimzi.io/v1" and t["metadata"]["labels"].get("strimzi.io/cluster") for t in kinds["KafkaTopic"]))
        if "KafkaUser" in kinds:
            p = eff["kafka"]["topicPrefix"]
            probs = []
            users = {u["metadata"]["name"]: u for u in kinds["KafkaUser"]}
            for dept in eff["departments"]["all"]:
                u = users.get(f"cb-credit-bus-dept-{dept}")
                if not u:
                    probs.append(f"no user for {dept}")
                    continue
                acls = u["spec"]["authorization"]["acls"]
                topic_ops = {}
                for a in acls:
                    if a["resource"]["type"] == "topic":
                        topic_ops.setdefault(a["resource"]["name"], set()).update(a["operations"])
                        if a["resource"].get("patternType") != "literal":
                            probs.append(f"{dept}: non-literal topic ACL {a['resource']}")
                writes = sorted(t for t, ops in topic_ops.items() if "Write" in ops)
                reads = sorted(t for t, ops in topic_ops.items() if "Read" in ops)
                want_w = sorted([f"{p}.{dept}.feedback"] + ([f"{p}.{dept}.inbound"] if dept in eff["departments"]["publishing"] else []))
                want_r = sorted([f"{p}.{dept}.notices"] + ([f"{p}.{dept}.dlq"] if dept in eff["departments"]["publishing"]
                                                          and eff["strimzi"]["users"]["departmentsReadDeadLetters"] else []))
                if writes != want_w:
                    probs.append(f"{dept} writes {writes}, want {want_w}")
                if reads != want_r:
                    probs.append(f"{dept} reads {reads}, want {want_r}")
            for svc in ["engine", "registry", "feedback"] + [f"normaliser-{d}" for d in eff["departments"]["publishing"]]:
                if f"cb-credit-bus-{svc}" not in users:
                    probs.append(f"no service user {svc}")
            check(f"[{name}] KafkaUsers: departments write inbound+feedback, read notices(+dlq) only; service users exist", not probs, "; ".join(probs[:8]))
            # Every KafkaUser is the access model's (files/access.yaml), placeholders filled in.
            want = access_users(eff)
            got = {n: u["spec"]["authorization"]["acls"] for n, u in users.items()}
            extra = eff["strimzi"]["users"].get("extraAcls") or {}
            diff = [n for n in set(want) | set(got)
                    if got.get(n) != (want[n] + extra.get(n[len("cb-credit-bus-"):], []) if n in want else None)]
            check(f"[{name}] KafkaUsers = files/access.yaml (the access model) for the enabled components", not diff, ", ".join(sorted(diff)[:5]))
        if "PrometheusRule" in kinds:
            pr = kinds["PrometheusRule"][0]
            r = eff["prometheusRule"]["rules"]
            for g in pr["spec"]["groups"]:
                for rule in g["rules"]:
                    promql_names(rule["expr"], f"[{name}] PrometheusRule {rule['alert']}")
            if vals.get("prometheusRule", {}).get("rules") is None and not eff["prometheusRule"]["alertLabels"]:
                check(f"[{name}] PrometheusRule = rules/alerts.yaml", pr["spec"] == rules_doc)
        if "ServiceMonitor" in kinds:
            sm = kinds["ServiceMonitor"][0]
            ports = {e["port"] for e in sm["spec"]["endpoints"]}
            svc_ports = {p["name"] for s in kinds["Service"] for p in s["spec"]["ports"]}
            check(f"[{name}] ServiceMonitor endpoints cover every Service port that serves /metrics", svc_ports <= ports, f"{svc_ports} vs {ports}")
        dash_cms = [c for c in kinds.get("ConfigMap", []) if c["metadata"].get("labels", {}).get("grafana_dashboard") == "1"]
        if dash_cms:
            check(f"[{name}] Grafana ConfigMap carries dashboards/credit-bus.json",
                  json.loads(dash_cms[0]["data"]["credit-bus.json"]) == dash)

    # The PrometheusRule with defaults is exactly the plain rule file.
    r = chart.render({"prometheusRule": {"enabled": True}}, name="cb", namespace="credit")
    pr = yaml.safe_load(r["credit-bus/templates/prometheusrule.yaml"])
    check("PrometheusRule (default thresholds) = rules/alerts.yaml", pr["spec"] == rules_doc)
    r = chart.render({"prometheusRule": {"enabled": True, "rules": {"deadLetterRate": {"threshold": 7}}}}, name="cb", namespace="credit")
    check("PrometheusRule thresholds come from values", "> 7" in r["credit-bus/templates/prometheusrule.yaml"])
    # The access model under another prefix, without dead-letter reads or disabled services.
    vals = {"kafka": {"topicPrefix": "staging"}, "engine": {"enabled": False},
            "strimzi": {"users": {"enabled": True, "departmentsReadDeadLetters": False, "archive": True}}}
    r = chart.render(vals, name="cb", namespace="credit")
    ku = {d["metadata"]["name"]: d for d in yaml.safe_load_all(r["credit-bus/templates/strimzi-users.yaml"]) if d}
    eff = merge(defaults, vals)
    want = access_users(eff)
    check("KafkaUsers follow topicPrefix, departmentsReadDeadLetters and enabled components",
          {n: u["spec"]["authorization"]["acls"] for n, u in ku.items()} == want
          and "cb-credit-bus-engine" not in ku and "cb-credit-bus-archive" in ku
          and not any(a["resource"]["name"].startswith("credit.") for u in ku.values() for a in u["spec"]["authorization"]["acls"])
          and not any(a["resource"]["name"].endswith(".dlq") for a in ku["cb-credit-bus-dept-courts"]["spec"]["authorization"]["acls"]),
          str(sorted(ku))[:300])
    # Mistakes are refused at render time, with a message.
    for what, vals, want in [
        ("values outside the schema", {"engine": {"replicaz": 3}}, "replicaz"),
        ("SASL without credentials", {"kafka": {"securityProtocol": "sasl_ssl"}}, "needs password, existingSecret"),
        ("the archive without a database Secret", {"archive": {"enabled": True}}, "archive.database.existingSecret"),
        ("archive departments without a token Secret",
         {"archive": {"enabled": True, "database": {"existingSecret": "db"}, "departments": [{"id": "finance", "roles": ["read"]}]}},
         "archive.tokens.existingSecret"),
        ("an archive department outside the catalogue",
         {"archive": {"enabled": True, "database": {"existingSecret": "db"}, "tokens": {"existingSecret": "t"},
                      "departments": [{"id": "nobody", "roles": ["read"]}]}}, "not in departments.all"),
        ("a dashboard subject view as a department that reads personal data",
         {"archive": {"enabled": True, "database": {"existingSecret": "db"}, "tokens": {"existingSecret": "t"},
                      "departments": [{"id": "courts", "roles": ["read", "personal_data"]}]},
          "dashboard": {"archiveDepartment": "courts"}}, "not personal_data"),
        ("a dashboard subject view as a department the archive does not list",
         {"archive": {"enabled": True, "database": {"existingSecret": "db"}, "tokens": {"existingSecret": "t"},
                      "departments": [{"id": "finance", "roles": ["read"]}]},
          "dashboard": {"archiveDepartment": "tax"}}, "not one of archive.departments"),
        ("a dashboard subject view without the archive", {"dashboard": {"archiveDepartment": "finance"}},
         "needs archive.enabled"),
        ("an archive department listed twice",
         {"archive": {"enabled": True, "database": {"existingSecret": "db"}, "tokens": {"existingSecret": "t"},
                      "departments": [{"id": "tax", "roles": ["read"]}, {"id": "tax", "roles": ["audit"]}]}}, "listed twice"),
    ]:
        try:
            chart.render(vals, name="cb", namespace="credit")
            check(f"helm template refuses {what}", False, "rendered")
        except Exception as ex:  # noqa: BLE001
            check(f"helm template refuses {what}", want in str(ex), str(ex)[:200])

# Departments in values = the catalogue (from `credit-bus topics list`).
if reference_topics is not None:
    cat = [t.split(".")[1] for t in reference_topics if t.endswith(".notices")]
    pub = [t.split(".")[1] for t in reference_topics if t.endswith(".inbound")]
    check("values departments.all = the catalogue", defaults["departments"]["all"] == cat, f"{cat}")
    check("values departments.publishing = the departments with an inbound topic", sorted(defaults["departments"]["publishing"]) == sorted(pub), f"{pub}")
else:
    print("  skip departments vs catalogue: target/*/credit-bus not built")

print(f"helm-checks: {passes} passed, {len(failures)} failed")
sys.exit(1 if failures else 0)
PY
