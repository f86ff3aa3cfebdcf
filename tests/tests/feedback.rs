//! The feedback loop against a real broker: notices on department topics,
//! feedback through the encoder and through the `credit-bus` CLI, the tracker
//! in this process. Applied / not applicable / failed are counted per
//! department; each kind of bad feedback lands on `credit.feedback.rejected`
//! with its exact reason and the original bytes; a notice sent on a Friday is
//! open the next Wednesday and late Friday, overdue the Monday after, and a
//! late answer still closes it; a restarted tracker rebuilds the same report
//! without writing any rejection twice.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use credit_bus_tests::*;
use credit_core::dlq;
use credit_core::feedback::{Feedback, Outcome};
use credit_core::topics::{Naming, value_subject};
use credit_feedback::{Config, Report};
use credit_runtime::metrics::MetricName;
use credit_schemas::registry::RegistryClient;
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::FutureRecord;

/// 2024-03-01, a Friday, 10:00 UTC+8.
const FRIDAY_10H: i64 = 1_709_258_400_000;

struct Bus {
    naming: Naming,
    registry: Registry,
    client: RegistryClient,
    producer: rdkafka::producer::FutureProducer,
}

impl Bus {
    async fn start(name: &str) -> Bus {
        let prefix = unique(name);
        create_topics(&prefix).await;
        let registry = Registry::start(&unique(&format!("{name}-schemas"))).await;
        let client = RegistryClient::new(&registry.url).unwrap();
        Bus {
            naming: Naming::new(&prefix),
            registry,
            client,
            producer: producer(),
        }
    }

    fn prefix(&self) -> &str {
        self.naming.prefix()
    }

    /// Sends a notice to `dept` as the engine does (key = notice id), stamped `ts_ms`.
    async fn notice(&self, dept: &str, id: &str, ts_ms: i64) {
        let topic = self.naming.notices(dept);
        let schema_id = self
            .client
            .register(&value_subject(&topic), credit_schemas::NOTICE_AVSC)
            .await
            .unwrap();
        let buf = credit_bus_tests::poison::notice_bytes(schema_id, id, dept);
        self.send(&topic, id.as_bytes(), &buf, Some(ts_ms), None)
            .await;
    }

    /// Feedback on `topic_dept`'s feedback topic; returns (key, value) as sent.
    async fn feedback(&self, topic_dept: &str, fb: Feedback<'_>) -> (Vec<u8>, Vec<u8>) {
        let topic = self.naming.feedback(topic_dept);
        let schema_id = self
            .client
            .register(&value_subject(&topic), credit_schemas::FEEDBACK_AVSC)
            .await
            .unwrap();
        let mut buf = Vec::new();
        credit_schemas::encode::feedback_framed(&mut buf, schema_id, &fb);
        self.send(&topic, fb.notice_id.as_bytes(), &buf, None, None)
            .await;
        (fb.notice_id.as_bytes().to_vec(), buf)
    }

    async fn send(
        &self,
        topic: &str,
        key: &[u8],
        value: &[u8],
        ts: Option<i64>,
        headers: Option<OwnedHeaders>,
    ) {
        let mut r = FutureRecord::to(topic).key(key).payload(value);
        if let Some(ts) = ts {
            r = r.timestamp(ts);
        }
        if let Some(h) = headers {
            r = r.headers(h);
        }
        self.producer
            .send(r, Duration::from_secs(15))
            .await
            .map_err(|(e, _)| e)
            .expect("acknowledged");
    }

    async fn tracker(&self, now: &str, grace_ms: u64) -> Tracker {
        let mut feedback = credit_feedback::config::Config::defaults();
        feedback.now = now.to_string();
        feedback.pending_grace_ms = grace_ms;
        feedback.refresh_ms = 100;
        let config = Config {
            common: common(self.prefix(), &self.registry.url),
            feedback,
        };
        let tel = credit_runtime::telemetry::Telemetry::new("credit-feedback").unwrap();
        let running = credit_feedback::spawn(config, tel)
            .await
            .expect("tracker starts");
        let url = running.url();
        poll_until(Duration::from_secs(90), "tracker ready", || async {
            reqwest::get(format!("{url}/readyz"))
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        Tracker { running, url }
    }
}

struct Tracker {
    running: credit_feedback::Running,
    url: String,
}

impl Tracker {
    async fn report(&self) -> Report {
        reqwest::get(format!("{}/report", self.url))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Waits for a report that satisfies `ok`, and returns it.
    async fn report_until(&self, what: &str, ok: impl Fn(&Report) -> bool) -> Report {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = self.report().await;
            if ok(&r) {
                return r;
            }
            assert!(Instant::now() < deadline, "{what}: last report {r:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Value of one series of `/metrics`, 0 when absent.
    async fn metric(&self, name: MetricName, labels: &[(&str, &str)]) -> f64 {
        let text = reqwest::get(format!("{}/metrics", self.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .filter(|l| l.starts_with(name.exported()) && !l.starts_with('#'))
            .filter(|l| {
                labels
                    .iter()
                    .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    async fn stop(self) {
        self.running.stop().await.expect("clean stop");
    }
}

async fn poll_until<F, Fut>(timeout: Duration, what: &str, f: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !f().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn fb<'a>(id: &'a str, dept: &'a str, outcome: Outcome, reason: Option<&'a str>) -> Feedback<'a> {
    Feedback {
        notice_id: id,
        department: dept,
        outcome,
        reason,
        responded_at_ms: FRIDAY_10H + 86_400_000,
    }
}

fn counts(r: &Report, dept: &str) -> [u64; 6] {
    let c = r.departments.get(dept).copied().unwrap_or_default();
    [
        c.open,
        c.overdue,
        c.done,
        c.applied,
        c.not_applicable,
        c.failed,
    ]
}

fn cli(bus: &Bus, args: &[&str]) -> std::process::Output {
    let dir = std::env::var("CREDIT_BUS_BIN_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target/debug").to_string());
    let bin = std::path::Path::new(&dir).join("credit-bus");
    assert!(
        bin.exists(),
        "{} not built: cargo build -p credit-ctl",
        bin.display()
    );
    std::process::Command::new(bin)
        .args(args)
        .env("CREDIT_BUS__KAFKA__BROKERS", brokers())
        .env("CREDIT_BUS__KAFKA__TOPIC_PREFIX", bus.prefix())
        .env("CREDIT_BUS__REGISTRY__URL", &bus.registry.url)
        .output()
        .expect("running credit-bus")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_loop_counts_rejects_marks_overdue_and_rebuilds() {
    let bus = Bus::start("t-feedback").await;
    for id in ["fin-1", "fin-2", "fin-3", "fin-4"] {
        bus.notice("finance", id, FRIDAY_10H).await;
    }
    for id in ["tax-1", "tax-2"] {
        bus.notice("tax", id, FRIDAY_10H).await;
    }
    // Wednesday after: five working days have not passed. A long grace, so the
    // early feedback below waits for its notice rather than being judged unknown.
    let t = bus.tracker("2024-03-06T12:00:00", 4000).await;
    let r = t
        .report_until("six open notices", |r| {
            counts(r, "finance")[0] == 4 && counts(r, "tax")[0] == 2
        })
        .await;
    assert_eq!(counts(&r, "finance"), [4, 0, 0, 0, 0, 0]);

    // Feedback read before its notice waits, then counts when the notice comes.
    bus.feedback("finance", fb("fin-5", "finance", Outcome::Applied, None))
        .await;
    t.report_until("feedback pending", |r| r.pending == 1).await;
    bus.notice("finance", "fin-5", FRIDAY_10H).await;
    t.report_until("early feedback applied", |r| {
        r.pending == 0 && counts(r, "finance")[3] == 1
    })
    .await;

    // Good feedback, one of them sent twice; one through the CLI.
    bus.feedback("finance", fb("fin-1", "finance", Outcome::Applied, None))
        .await;
    bus.feedback("finance", fb("fin-1", "finance", Outcome::Applied, None))
        .await;
    bus.feedback(
        "finance",
        fb(
            "fin-2",
            "finance",
            Outcome::NotApplicable,
            Some("主体已注销"),
        ),
    )
    .await;
    bus.feedback("tax", fb("tax-1", "tax", Outcome::Failed, Some("系统维护")))
        .await;
    let out = cli(
        &bus,
        &[
            "feedback",
            "send",
            "--department",
            "tax",
            "--notice-id",
            "tax-2",
            "--outcome",
            "applied",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Bad feedback, one of each reason.
    let mut sent: BTreeMap<&str, (Vec<u8>, Vec<u8>, String)> = BTreeMap::new();
    let (k, v) = bus
        .feedback("finance", fb("fin-4", "finance", Outcome::Failed, None))
        .await;
    sent.insert("missing-reason", (k, v, bus.naming.feedback("finance")));
    let (k, v) = bus
        .feedback("finance", fb("fin-4", "tax", Outcome::Applied, None))
        .await;
    sent.insert(
        "department-mismatch",
        (k, v, bus.naming.feedback("finance")),
    );
    let (k, v) = bus
        .feedback("tax", fb("fin-3", "tax", Outcome::Applied, None))
        .await;
    sent.insert("wrong-department", (k, v, bus.naming.feedback("tax")));
    let (k, v) = bus
        .feedback(
            "finance",
            fb("no-such-notice", "finance", Outcome::Applied, None),
        )
        .await;
    sent.insert("unknown-notice", (k, v, bus.naming.feedback("finance")));
    let garbage = b"{\"notice_id\":\"fin-3\",\"outcome\":\"APPLIED\"}".to_vec();
    bus.send(
        &bus.naming.feedback("finance"),
        b"fin-3",
        &garbage,
        None,
        Some(OwnedHeaders::new().insert(Header {
            key: "x-trace",
            value: Some("abc"),
        })),
    )
    .await;
    sent.insert(
        "malformed_avro",
        (b"fin-3".to_vec(), garbage, bus.naming.feedback("finance")),
    );

    let before = t
        .report_until("every feedback decided", |r| {
            r.pending == 0
                && counts(r, "finance") == [2, 0, 3, 2, 1, 0]
                && counts(r, "tax") == [0, 0, 2, 1, 0, 1]
        })
        .await;
    let rejected_topic = bus.naming.feedback_rejected();
    let rejected = consume(
        &rejected_topic,
        5,
        Duration::from_secs(30),
        Duration::from_millis(300),
    );
    assert_eq!(rejected.len(), 5, "one rejection per bad feedback");
    for m in &rejected {
        let reason = header(m, dlq::REASON).expect("reason header");
        let (key, value, topic) = sent
            .get(reason)
            .unwrap_or_else(|| panic!("unexpected {reason}"));
        assert_eq!(m.key(), Some(&key[..]), "{reason}: original key");
        assert_eq!(m.payload(), Some(&value[..]), "{reason}: original bytes");
        assert_eq!(header(m, dlq::TOPIC), Some(topic.as_str()), "{reason}");
        assert!(header(m, dlq::OFFSET).is_some_and(|o| o.parse::<i64>().is_ok()));
        if reason == "malformed_avro" {
            assert_eq!(header(m, "x-trace"), Some("abc"), "original headers kept");
        }
    }
    let mut seen: Vec<&str> = rejected
        .iter()
        .filter_map(|m| header(m, dlq::REASON))
        .collect();
    seen.sort();
    assert_eq!(seen, sent.keys().copied().collect::<Vec<_>>());

    // The same figures in /metrics; the repeated feedback counted once.
    use MetricName::*;
    for (dept, outcome, want) in [
        ("finance", "applied", 2.0),
        ("finance", "not_applicable", 1.0),
        ("tax", "failed", 1.0),
        ("tax", "applied", 1.0),
    ] {
        let got = t
            .metric(
                FeedbackReceived,
                &[("department", dept), ("outcome", outcome)],
            )
            .await;
        assert_eq!(got, want, "{dept} {outcome}");
    }
    for (dept, reason) in [
        ("finance", "missing-reason"),
        ("finance", "department-mismatch"),
        ("tax", "wrong-department"),
        ("finance", "unknown-notice"),
        ("finance", "malformed_avro"),
    ] {
        let got = t
            .metric(
                FeedbackRejected,
                &[("department", dept), ("reason", reason)],
            )
            .await;
        assert_eq!(got, 1.0, "{dept} {reason}");
    }
    poll_until(Duration::from_secs(10), "tracked gauge", || async {
        t.metric(
            NoticesTracked,
            &[("department", "finance"), ("state", "open")],
        )
        .await
            == 2.0
            && t.metric(
                NoticesTracked,
                &[("department", "finance"), ("state", "done")],
            )
            .await
                == 3.0
    })
    .await;
    let out = cli(&bus, &["feedback", "report", "--tracker", &t.url]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let finance_row: Vec<&str> = table
        .lines()
        .find(|l| l.starts_with("finance "))
        .expect("finance row")
        .split_whitespace()
        .collect();
    assert_eq!(
        finance_row,
        ["finance", "2", "0", "3", "2", "1", "0"],
        "{table}"
    );
    t.stop().await;

    // Restart late on the due Friday: rebuilt from the topics, the same report,
    // the same metrics, and no rejection written again.
    let t = bus.tracker("2024-03-08T23:30:00", 500).await;
    let after = t.report().await;
    assert_eq!(after.departments, before.departments);
    assert_eq!(after.pending, 0);
    assert_eq!(
        t.metric(
            FeedbackRejected,
            &[("department", "tax"), ("reason", "wrong-department")]
        )
        .await,
        1.0
    );
    assert_eq!(
        t.metric(
            FeedbackReceived,
            &[("department", "finance"), ("outcome", "applied")]
        )
        .await,
        2.0
    );
    t.stop().await;

    // The Monday after: the two unanswered finance notices are overdue.
    let t = bus.tracker("2024-03-11T09:00:00", 500).await;
    let r = t.report().await;
    assert_eq!(counts(&r, "finance"), [0, 2, 3, 2, 1, 0]);
    assert_eq!(counts(&r, "tax"), [0, 0, 2, 1, 0, 1]);
    // A late answer still closes an overdue notice.
    bus.feedback("finance", fb("fin-3", "finance", Outcome::Applied, None))
        .await;
    t.report_until("overdue notice done", |r| {
        counts(r, "finance") == [0, 1, 4, 3, 1, 0]
    })
    .await;
    poll_until(Duration::from_secs(10), "overdue gauge", || async {
        t.metric(
            NoticesTracked,
            &[("department", "finance"), ("state", "overdue")],
        )
        .await
            == 1.0
    })
    .await;
    t.stop().await;
    let again = consume(
        &rejected_topic,
        6,
        Duration::from_secs(3),
        Duration::from_millis(500),
    );
    assert_eq!(again.len(), 5, "restarts wrote no rejection twice");
    bus.registry.stop().await;
}
