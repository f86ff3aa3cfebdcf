//! The ops contract of the Helm chart: every `credit_bus_*` metric that the
//! Grafana dashboard (`helm/credit-bus/dashboards/credit-bus.json`) or the alert
//! rules (`helm/credit-bus/rules/alerts.yaml`) name is exported by at least one
//! running service. The services run as their real binaries against the broker,
//! with sample data pushed through them so counters and histograms exist: the
//! registry, a normaliser (courts), the engine, and, where the repository has
//! them, the feedback tracker (fed one acknowledged and one undecodable
//! feedback) and the dashboard.
//!
//! Series Prometheus makes itself (`up`) are not exported by anyone and are
//! allowed explicitly; histogram series (`_bucket`, `_sum`, `_count`) count as
//! their histogram.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use credit_bus_tests::*;
use credit_core::topics::Naming;
use credit_datagen::Generator;
use credit_runtime::metrics::MetricName;
use rdkafka::producer::FutureRecord;

/// Series Prometheus synthesises per target; no service exports them.
const SYNTHETIC: &[&str] = &["up"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every `credit_bus_*` name in `text`.
fn credit_bus_names(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = text;
    while let Some(i) = rest.find("credit_bus_") {
        let tail = &rest[i..];
        let end = tail
            .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        out.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

/// A histogram's series name → the histogram (`x_seconds_bucket` → `x_seconds`).
fn family(name: &str) -> String {
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && base.ends_with("_seconds")
        {
            return base.to_string();
        }
    }
    name.to_string()
}

/// The metric families the dashboard's queries and the alert rules name.
fn referenced() -> BTreeMap<String, BTreeSet<&'static str>> {
    let chart = repo().join("helm/credit-bus");
    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(chart.join("dashboards/credit-bus.json")).unwrap(),
    )
    .expect("the dashboard is JSON");
    let mut exprs = String::new();
    fn collect(v: &serde_json::Value, out: &mut String) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    if let ("expr" | "query" | "definition", Some(s)) = (k.as_str(), v.as_str()) {
                        out.push_str(s);
                        out.push('\n');
                    }
                    collect(v, out);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| collect(v, out)),
            _ => {}
        }
    }
    collect(&dashboard, &mut exprs);
    let rules = std::fs::read_to_string(chart.join("rules/alerts.yaml")).unwrap();
    let mut out: BTreeMap<String, BTreeSet<&'static str>> = BTreeMap::new();
    for n in credit_bus_names(&exprs) {
        out.entry(family(&n)).or_default().insert("dashboard");
    }
    for n in credit_bus_names(&rules) {
        out.entry(family(&n)).or_default().insert("alerts");
    }
    out
}

/// Metric families in a Prometheus text exposition.
fn exported(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(family)
        .collect()
}

async fn scrape(url: &str) -> Option<String> {
    let r = reqwest::Client::new()
        .get(url)
        .timeout(Duration::from_secs(3))
        .send()
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.text().await.ok()
}

/// Waits for `/readyz`; the feedback tracker first reads every notices and
/// feedback topic to its end, which takes a while on a loaded debug build.
async fn wait_ready(base: &str, what: &str) {
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(240) {
        if scrape(&format!("{base}/readyz")).await.is_some() {
            eprintln!(
                "{what} ready after {:.1} s",
                started.elapsed().as_secs_f64()
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{what} at {base} not ready within 240 s");
}

struct Service {
    name: &'static str,
    base: String,
    _proc: Proc,
}

fn spawn(binary: &str, args: &[&str], env: &[(&str, String)], log: &Path) -> Proc {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut c = Command::new(bin(binary));
    c.args(args);
    // Nothing from the caller's environment decides where these services go.
    for (k, _) in std::env::vars() {
        if k.starts_with("CREDIT_BUS__") || k == "CREDIT_BUS_CONFIG" {
            c.env_remove(k);
        }
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c.stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map(Proc)
        .unwrap_or_else(|e| panic!("spawning {binary}: {e}"))
}

/// The department that got the most notices, from an engine scrape.
fn busiest_department(engine_metrics: &str) -> Option<String> {
    let name = MetricName::NoticesSent.exported();
    let mut by_dept: BTreeMap<String, f64> = BTreeMap::new();
    for l in engine_metrics.lines().filter(|l| l.starts_with(name)) {
        let Some(i) = l.find("department=\"") else {
            continue;
        };
        let dept: String = l[i + 12..].chars().take_while(|&c| c != '"').collect();
        let v: f64 = l.rsplit(' ').next().unwrap().parse().unwrap_or(0.0);
        *by_dept.entry(dept).or_default() += v;
    }
    by_dept
        .into_iter()
        .filter(|(_, v)| *v > 0.0)
        .max_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(d, _)| d)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_in_the_dashboard_and_alerts_is_exported() {
    let wanted = referenced();
    assert!(
        wanted.len() >= 8,
        "the dashboard and rules name only {wanted:?}"
    );
    eprintln!(
        "dashboard + alert rules name {} metric families: {:?}",
        wanted.len(),
        wanted.keys().collect::<Vec<_>>()
    );

    let prefix = unique("t-ops");
    let naming = Naming::new(&prefix);
    create_topics(&prefix).await;
    let log = std::env::temp_dir().join(format!("{}.log", unique("ops-metrics")));
    eprintln!("service logs: {}", log.display());
    let brokers = brokers();
    let common = |port: u16| -> Vec<(&'static str, String)> {
        vec![
            ("CREDIT_BUS__KAFKA__BROKERS", brokers.clone()),
            ("CREDIT_BUS__KAFKA__TOPIC_PREFIX", prefix.clone()),
            ("CREDIT_BUS__KAFKA__PARTITIONS", "3".into()),
            ("CREDIT_BUS__TELEMETRY__LOG_FILTER", "info".into()),
            (
                "CREDIT_BUS__TELEMETRY__OPS_LISTEN",
                format!("127.0.0.1:{port}"),
            ),
        ]
    };
    let mut services: Vec<Service> = Vec::new();

    // The registry: REST and ops endpoints on one port.
    let port = free_port();
    let mut env = common(free_port());
    env.push((
        "CREDIT_BUS__REGISTRY_SERVICE__LISTEN",
        format!("127.0.0.1:{port}"),
    ));
    env.push((
        "CREDIT_BUS__REGISTRY_SERVICE__TOPIC",
        unique("t-ops-schemas"),
    ));
    let registry = format!("http://127.0.0.1:{port}");
    services.push(Service {
        name: "registry",
        base: registry.clone(),
        _proc: spawn("credit-registry", &[], &env, &log),
    });
    wait_ready(&registry, "registry").await;

    let with_registry = |port: u16| {
        let mut env = common(port);
        env.push(("CREDIT_BUS__REGISTRY__URL", registry.clone()));
        env
    };
    let port = free_port();
    let mut env = with_registry(port);
    env.push(("CREDIT_BUS__NORMALISER__BATCH_SIZE", "100".into()));
    services.push(Service {
        name: "normaliser[courts]",
        base: format!("http://127.0.0.1:{port}"),
        _proc: spawn("credit-normaliser", &["--department", "courts"], &env, &log),
    });
    let port = free_port();
    let mut env = with_registry(port);
    env.push(("CREDIT_BUS__ENGINE__MAX_BATCH", "200".into()));
    env.push(("CREDIT_BUS__ENGINE__INSTANCE_ID", "ops-engine-0".into()));
    let engine = format!("http://127.0.0.1:{port}");
    services.push(Service {
        name: "engine",
        base: engine.clone(),
        _proc: spawn("credit-engine", &[], &env, &log),
    });
    // The feedback tracker and the dashboard, where the repository has them.
    let has = |svc: &str| {
        repo()
            .join("services")
            .join(svc)
            .join("Cargo.toml")
            .exists()
    };
    if has("feedback") {
        let port = free_port();
        let mut env = with_registry(port);
        // A clock 60 days ahead: every notice without feedback is overdue.
        env.push((
            "CREDIT_BUS__FEEDBACK__CLOCK_OFFSET_SECONDS",
            (60 * 86_400).to_string(),
        ));
        services.push(Service {
            name: "feedback",
            base: format!("http://127.0.0.1:{port}"),
            _proc: spawn("credit-feedback", &[], &env, &log),
        });
    }
    if has("dashboard") {
        let port = free_port();
        let mut args = vec!["--listen".to_string(), format!("127.0.0.1:{port}")];
        for s in &services {
            args.push("--target".into());
            args.push(format!(
                "{}={}",
                s.name.replace(['[', ']'], "-").trim_end_matches('-'),
                s.base
            ));
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        services.push(Service {
            name: "dashboard",
            base: format!("http://127.0.0.1:{port}"),
            _proc: spawn(
                "credit-dashboard",
                &args,
                &[("CREDIT_BUS__TELEMETRY__LOG_FILTER", "info".into())],
                &log,
            ),
        });
    }
    // The feedback tracker rebuilds from every notices and feedback topic
    // first: let the others work meanwhile and wait for it later.
    for s in services.iter().filter(|s| s.name != "feedback") {
        wait_ready(&s.base, s.name).await;
    }

    // Sample data: courts records, a fifth of them bad, so every counter of the
    // normaliser and the engine moves.
    let mut g = Generator::new(23, 0.2);
    let samples: Vec<_> = (0..400).map(|_| g.record("courts")).collect();
    publish(&naming, samples).await;

    // Wait for notices, then answer some as the department that got most of them,
    // and send that department's feedback topic one undecodable record.
    let deadline = Instant::now() + Duration::from_secs(120);
    let dept = loop {
        if let Some(text) = scrape(&format!("{engine}/metrics")).await
            && let Some(d) = busiest_department(&text)
        {
            break d;
        }
        assert!(
            Instant::now() < deadline,
            "the engine sent no notice within 120 s (logs: {})",
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // One command the engine cannot read: its rejected-inputs counter moves.
    producer()
        .send(
            FutureRecord::to(&naming.engine_commands())
                .key("courts:0:0")
                .payload("not a command"),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("publishing an unreadable command");
    if let Some(s) = services.iter().find(|s| s.name == "feedback") {
        wait_ready(&s.base, s.name).await;
    }
    eprintln!("notices reached {dept}; answering some of them");
    if has("feedback") {
        let mut ack = Command::new(bin("credit-bus"));
        ack.args([
            "subscribe",
            "--department",
            &dept,
            "--max",
            "3",
            "--ack",
            "applied",
        ])
        .env("CREDIT_BUS__KAFKA__BROKERS", brokers.clone())
        .env("CREDIT_BUS__KAFKA__TOPIC_PREFIX", prefix.clone())
        .env("CREDIT_BUS__REGISTRY__URL", registry.clone())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        let mut child = Proc(ack.spawn().expect("spawning credit-bus subscribe"));
        let until = Instant::now() + Duration::from_secs(60);
        while Instant::now() < until {
            if child.0.try_wait().unwrap().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        child.kill9();
        producer()
            .send(
                FutureRecord::to(&naming.feedback(&dept))
                    .key("not-a-notice")
                    .payload("this is not Avro"),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("publishing undecodable feedback");
    }

    // Scrape every service until each wanted family shows up somewhere (gauges
    // such as consumer lag appear on the statistics interval) or time runs out.
    let deadline = Instant::now() + Duration::from_secs(60);
    let (found, seen_by) = loop {
        let mut found: BTreeMap<String, Vec<&str>> = BTreeMap::new();
        let mut seen_by = Vec::new();
        for s in &services {
            if let Some(text) = scrape(&format!("{}/metrics", s.base)).await {
                seen_by.push(s.name);
                for f in exported(&text) {
                    found.entry(f).or_default().push(s.name);
                }
            }
        }
        let all = wanted.keys().all(|w| found.contains_key(w));
        if all || Instant::now() >= deadline {
            break (found, seen_by);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    };

    let mut missing = Vec::new();
    for (name, wanted_by) in &wanted {
        match found.get(name) {
            Some(by) => eprintln!("  {name}: exported by {by:?}"),
            None if SYNTHETIC.contains(&name.as_str()) => {}
            None => {
                eprintln!("  {name}: NOT exported (named by {wanted_by:?})");
                missing.push(format!("{name} (named by {wanted_by:?})"));
            }
        }
    }
    // Every name the files use is one of the bus's documented metric names.
    let known: BTreeSet<String> = MetricName::ALL
        .iter()
        .map(|m| m.exported().to_string())
        .collect();
    let unknown: Vec<_> = wanted.keys().filter(|n| !known.contains(*n)).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard or alert rules name metrics not in crates/runtime/src/metrics.rs: {unknown:?}"
    );
    assert!(
        missing.is_empty(),
        "metrics named by the dashboard or alert rules that no running service exports \
         (scraped {seen_by:?}; logs in {}): {missing:?}",
        log.display()
    );
}

#[test]
fn histogram_series_count_as_their_histogram() {
    assert_eq!(
        family("credit_bus_processing_duration_seconds_bucket"),
        "credit_bus_processing_duration_seconds"
    );
    assert_eq!(
        family("credit_bus_records_in_total"),
        "credit_bus_records_in_total"
    );
    assert_eq!(
        credit_bus_names(r#"sum(rate(credit_bus_records_in_total{department=~"$d"}[5m])) / up"#),
        BTreeSet::from(["credit_bus_records_in_total".to_string()])
    );
}
