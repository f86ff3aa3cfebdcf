//! The dashboard against real services: normaliser binaries on the broker, the
//! registry, a target that is down, and `credit-dashboard` scraping them all.
//!
//! * `/api/summary` agrees with what was published: records in, accepted and
//!   dead-lettered per reason, consumer lag drained to 0, up and down targets.
//! * In a real headless chromium (tests/browser/dashboard.mjs, playwright-core
//!   driving Debian's chromium), the page shows live figures that move while
//!   records flow, notices by kind as a real `credit-engine` counts them, and
//!   raises no console or page error.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use credit_bus_tests::*;
use credit_core::notice::NoticeKind;
use credit_core::topics::Naming;
use credit_datagen::Generator;
use serde_json::Value;

fn log_file(what: &str) -> std::fs::File {
    let path = std::env::temp_dir().join(format!("{}.log", unique(what)));
    std::fs::File::create(path).unwrap()
}

/// Registry (in process), one normaliser binary per department, and the
/// dashboard binary scraping them plus a target nothing listens on.
struct Stack {
    naming: Naming,
    registry: Registry,
    dashboard: String,
    _procs: Vec<Proc>,
}

impl Stack {
    /// With `engine`, a `credit-engine` binary turns the normalised records
    /// into notices, so the page shows a real engine's notice counts.
    async fn start(test: &str, departments: &[&str], engine: bool) -> Stack {
        let prefix = unique(test);
        create_topics(&prefix).await;
        let registry = Registry::start(&unique(&format!("{test}-schemas"))).await;
        let mut procs = Vec::new();
        let mut targets = Vec::new();
        for dept in departments {
            let port = free_port();
            let child = Command::new(bin("credit-normaliser"))
                .env(
                    "CREDIT_BUS__TELEMETRY__OPS_LISTEN",
                    format!("127.0.0.1:{port}"),
                )
                .env("CREDIT_BUS__KAFKA__BROKERS", brokers())
                .env("CREDIT_BUS__KAFKA__TOPIC_PREFIX", &prefix)
                .env("CREDIT_BUS__REGISTRY__URL", &registry.url)
                .env("CREDIT_BUS__NORMALISER__DEPARTMENT", dept)
                .env("CREDIT_BUS__NORMALISER__BATCH_SIZE", "200")
                .env("CREDIT_BUS__TELEMETRY__LOG_FILTER", "warn")
                .stdout(Stdio::null())
                .stderr(log_file(&format!("dashboard-normaliser-{dept}")))
                .spawn()
                .expect("spawning credit-normaliser");
            procs.push(Proc(child));
            targets.push(format!("{dept}=http://127.0.0.1:{port}"));
        }
        if engine {
            let port = free_port();
            let log = std::env::temp_dir().join(format!("{}.log", unique("dashboard-engine")));
            procs.push(credit_bus_tests::engine::spawn_engine(
                &brokers(),
                &prefix,
                &registry.url,
                &log,
                "engine-0",
                port,
            ));
            targets.push(format!("engine=http://127.0.0.1:{port}"));
        }
        targets.push(format!("registry={}", registry.url));
        // Nothing listens here: the page must show it down, not break.
        targets.push(format!("gone=http://127.0.0.1:{}", free_port()));
        let port = free_port();
        let mut cmd = Command::new(bin("credit-dashboard"));
        cmd.arg("--listen").arg(format!("127.0.0.1:{port}"));
        for t in &targets {
            cmd.arg("--target").arg(t);
        }
        let child = cmd
            .env("CREDIT_BUS__DASHBOARD__SCRAPE_INTERVAL_MS", "500")
            .env("CREDIT_BUS__DASHBOARD__TARGET_RATE_PER_S", "200")
            .env("CREDIT_BUS__DASHBOARD__DEAD_LETTER_SAMPLES", "true")
            .env("CREDIT_BUS__KAFKA__BROKERS", brokers())
            .env("CREDIT_BUS__KAFKA__TOPIC_PREFIX", &prefix)
            .env(
                "CREDIT_BUS__DASHBOARD__BROKERS",
                format!("[\"{}\"]", brokers()),
            )
            .env("CREDIT_BUS__TELEMETRY__LOG_FILTER", "warn")
            .stdout(Stdio::null())
            .stderr(log_file("dashboard"))
            .spawn()
            .expect("spawning credit-dashboard");
        procs.push(Proc(child));
        let dashboard = format!("http://127.0.0.1:{port}");
        let mut urls: Vec<String> = targets
            .iter()
            .filter(|t| !t.starts_with("gone=") && !t.starts_with("registry="))
            .map(|t| t.split_once('=').unwrap().1.to_string())
            .collect();
        urls.push(dashboard.clone());
        for u in urls {
            wait_ready(&u).await;
        }
        Stack {
            naming: Naming::new(&prefix),
            registry,
            dashboard,
            _procs: procs,
        }
    }

    async fn summary(&self) -> Value {
        reqwest::get(format!("{}/api/summary", self.dashboard))
            .await
            .expect("dashboard answers")
            .json()
            .await
            .expect("summary is JSON")
    }

    async fn stop(self) {
        drop(self._procs);
        self.registry.stop().await;
    }
}

async fn wait_ready(base: &str) {
    let url = format!("{base}/readyz");
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        if let Ok(r) = reqwest::get(&url).await
            && r.status().is_success()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{base} not ready within 90 s");
}

fn department<'v>(s: &'v Value, dept: &str) -> Option<&'v Value> {
    s["departments"]
        .as_array()?
        .iter()
        .find(|d| d["department"] == dept)
}

fn target_up(s: &Value, name: &str) -> Option<bool> {
    s["targets"]
        .as_array()?
        .iter()
        .find(|t| t["name"] == name)
        .and_then(|t| t["up"].as_bool())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_summary_agrees_with_what_was_published() {
    let stack = Stack::start("t-dash-api", &["courts"], false).await;
    let mut g = Generator::new(23, 0.2);
    let samples: Vec<_> = (0..1500).map(|_| g.record("courts")).collect();
    let total = samples.len() as f64;
    let mut bad_by_reason: BTreeMap<&str, f64> = BTreeMap::new();
    for s in samples.iter().filter(|s| s.expect.is_some()) {
        *bad_by_reason.entry(s.expect_str()).or_default() += 1.0;
    }
    let bad: f64 = bad_by_reason.values().sum();
    assert!(bad > 0.0);
    publish(&stack.naming, samples).await;

    let group = stack.naming.normaliser_group("courts");
    let deadline = Instant::now() + Duration::from_secs(90);
    let s = loop {
        let s = stack.summary().await;
        let done = department(&s, "courts").is_some_and(|d| {
            d["records_in"] == total
                && d["records_out"].as_f64().unwrap_or(0.0)
                    + d["dead_lettered"].as_f64().unwrap_or(0.0)
                    == total
        });
        // Lag drains to 0 once every record's output is acknowledged and its
        // offset stored.
        let drained = s["lag_by_group"]
            .as_array()
            .and_then(|gs| gs.iter().find(|g| g["group"] == group.as_str()))
            .is_some_and(|g| g["lag"] == 0.0);
        if done && drained {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "summary never caught up with {total} published records: {s:#}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let d = department(&s, "courts").unwrap();
    assert_eq!(d["records_out"], total - bad, "{d:#}");
    assert_eq!(d["dead_lettered"], bad, "{d:#}");
    let pass = d["pass_rate"].as_f64().unwrap();
    assert!(
        (pass - 100.0 * (total - bad) / total).abs() < 1e-9,
        "{pass}"
    );
    let got: BTreeMap<&str, f64> = s["dead_letters"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["department"] == "courts")
        .map(|r| (r["reason"].as_str().unwrap(), r["total"].as_f64().unwrap()))
        .collect();
    assert_eq!(got, bad_by_reason, "dead letters by reason");
    // One sample per reason, read back from the dead-letter topic, with the
    // reason's department and where the original is; nothing shaped like a
    // resident ID in clear anywhere in the summary.
    let deadline = Instant::now() + Duration::from_secs(30);
    let s = loop {
        let s = stack.summary().await;
        let sampled: std::collections::BTreeSet<&str> = s["dead_letter_samples"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x["reason"].as_str()).collect())
            .unwrap_or_default();
        if bad_by_reason.keys().all(|r| sampled.contains(r)) {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "not every reason sampled: {sampled:?} of {bad_by_reason:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    for x in s["dead_letter_samples"].as_array().unwrap() {
        assert_eq!(x["department"], "courts", "{x}");
        assert!(
            x["original"]
                .as_str()
                .is_some_and(|o| o.starts_with(&stack.naming.inbound("courts"))),
            "{x}"
        );
    }
    // Every string (and key) and every integer of the summary, searched for
    // resident-ID-shaped tokens; a float's digits (0.039650000000000005) are
    // not an ID and were once mistaken for one.
    fn id_shaped(v: &Value, out: &mut Vec<String>) {
        let scan = |t: &str, out: &mut Vec<String>| {
            out.extend(
                t.split(|c: char| !c.is_ascii_alphanumeric())
                    .filter(|w| w.len() == 18 && w[..17].bytes().all(|b| b.is_ascii_digit()))
                    .map(str::to_string),
            )
        };
        match v {
            Value::String(t) => scan(t, out),
            Value::Number(n) if n.is_u64() || n.is_i64() => scan(&n.to_string(), out),
            Value::Array(a) => a.iter().for_each(|x| id_shaped(x, out)),
            Value::Object(o) => o.iter().for_each(|(k, x)| {
                scan(k, out);
                id_shaped(x, out)
            }),
            _ => {}
        }
    }
    let mut digits = Vec::new();
    id_shaped(&s, &mut digits);
    assert!(
        digits.is_empty(),
        "resident-ID-shaped values in the summary: {digits:?}"
    );
    assert_eq!(s["totals"]["records_in"], total);
    let partitions: Vec<&Value> = s["consumer_lag"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["group"] == group.as_str())
        .collect();
    assert_eq!(partitions.len(), 3, "one lag figure per partition: {s:#}");
    assert!(
        partitions
            .iter()
            .all(|l| l["topic"] == stack.naming.inbound("courts").as_str())
    );
    assert_eq!(target_up(&s, "courts"), Some(true));
    assert_eq!(target_up(&s, "registry"), Some(true));
    assert_eq!(target_up(&s, "gone"), Some(false));

    // Nothing flows any more: the rates fall back to 0 once the window passed.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let s = stack.summary().await;
        if s["totals"]["in_per_s"] == 0.0 && s["totals"]["out_per_s"] == 0.0 {
            break;
        }
        assert!(Instant::now() < deadline, "rates never fell to 0: {s:#}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    stack.stop().await;
}

/// Publishes a few records per department every 200 ms, through one producer,
/// until stopped.
fn publish_continuously(naming: Naming, departments: &[&'static str]) -> Arc<AtomicBool> {
    use rdkafka::producer::FutureRecord;
    let stop = Arc::new(AtomicBool::new(false));
    let s = stop.clone();
    let departments = departments.to_vec();
    tokio::spawn(async move {
        let p = producer();
        let mut g = Generator::new(31, 0.05);
        while !s.load(Ordering::Relaxed) {
            let mut acks = Vec::new();
            for d in &departments {
                let topic = naming.inbound(d);
                for _ in 0..40 {
                    let r = g.record(d);
                    let rec = FutureRecord::to(&topic).key(&r.key).payload(&r.value);
                    acks.push(p.send_result(rec).map_err(|(e, _)| e).unwrap());
                }
            }
            for a in acks {
                a.await
                    .unwrap()
                    .map_err(|(e, _)| e)
                    .expect("publish acknowledged");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    stop
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_live_figures_in_a_real_browser() {
    let browser_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").exists(),
        "playwright-core not installed in {}: run scripts/test.sh (ensure_browser_test_deps)",
        browser_dir.display()
    );
    let chromium = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).exists(),
        "{chromium} missing: run scripts/test.sh (ensure_chromium)"
    );
    let stack = Stack::start("t-dash-page", &["courts", "tax"], true).await;
    let stop = publish_continuously(stack.naming.clone(), &["courts", "tax"]);

    let group = stack.naming.normaliser_group("courts");
    let url = format!("{}/", stack.dashboard);
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("dashboard.mjs")
            .args(["--url", &url])
            .args(["--department", "courts"])
            .args(["--up", "courts,tax,registry"])
            .args(["--down", "gone"])
            .args(["--lag-group", &group])
            // The datagen's dishonesty lists reach the engine: punishments.
            .args(["--notice-kind", NoticeKind::Punishment.as_str()])
            .args(["--target-rate", "200"])
            .args(["--broker", &brokers()])
            .args(["--timeout-s", "60"])
            .current_dir(browser_dir)
            .env("CHROMIUM_PATH", chromium)
            .output()
            .expect("running node (scripts/test.sh installs it)")
    })
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}");
    assert!(
        out.status.success(),
        "browser check failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains("dashboard browser check: all ok"),
        "{stdout}\n{stderr}"
    );
    for want in [
        "courts received total moved",
        "courts throughput shown",
        "service gone shown down",
        "notices shown by kind",
        "scrape time names its time zone",
        "shown with its trend",
        "latency p50/p99 shown",
        "target rate shown beside the rate reached",
        "shown listening",
        "every notice row's kinds add up to its total",
        "no console, page or request errors",
    ] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with("ok ") && l.contains(want)),
            "{want}: {stdout}"
        );
    }
    assert!(!stdout.contains("FAILED"), "{stdout}");
    stack.stop().await;
}
