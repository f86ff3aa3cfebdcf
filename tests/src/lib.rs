//! Helpers for the broker-backed tests: every test gets its own topic prefix,
//! registry topic and consumer groups, so tests run in parallel on one broker.
//!
//! The broker address comes from `CREDIT_BUS_TEST_BROKERS`, which
//! `scripts/test.sh` sets after starting Apache Kafka (its plaintext harness
//! listener, where every test may do anything). Without it the tests fail with
//! that instruction: a broker test that silently skips would prove nothing.
//! A test that must crash a broker starts one of its own ([`OwnBroker`]).

pub mod engine;
pub mod poison;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use credit_core::topics::Naming;
use credit_runtime::config::{Common, KafkaConfig, RegistryConfig, TelemetryConfig};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};

pub fn brokers() -> String {
    std::env::var("CREDIT_BUS_TEST_BROKERS")
        .expect("CREDIT_BUS_TEST_BROKERS is not set: run the suite with scripts/test.sh, which starts a broker")
}

/// A service binary built by `cargo build --bins` (scripts/test.sh builds them
/// first), from `CREDIT_BUS_BIN_DIR` or the workspace's `target/debug`.
pub fn bin(name: &str) -> std::path::PathBuf {
    let dir = std::env::var("CREDIT_BUS_BIN_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target/debug").to_string());
    let p = std::path::Path::new(&dir).join(name);
    assert!(
        p.exists(),
        "{} not built: run scripts/test.sh (it builds the binaries first)",
        p.display()
    );
    p
}

/// A TCP port free on loopback right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Three ports free on loopback now, for a server's listeners: below Linux's
/// ephemeral range (32768-60999), where an outgoing connection's source port
/// could take one between a broker's kill and its restart. Drawn from
/// `CREDIT_BUS_TEST_LISTENER_PORTS` (`low-high`, default 24000-32000).
pub fn listener_ports() -> [u16; 3] {
    use rand::Rng;
    let (low, high) = std::env::var("CREDIT_BUS_TEST_LISTENER_PORTS")
        .ok()
        .and_then(|r| {
            let (l, h) = r.split_once('-')?;
            Some((l.trim().parse().ok()?, h.trim().parse().ok()?))
        })
        .unwrap_or((24000u16, 32000u16));
    let mut rng = rand::rng();
    // Held together until the three are found, so they differ (a port held
    // here cannot be bound twice).
    let mut held = Vec::new();
    for _ in 0..1000 {
        if let Ok(l) = std::net::TcpListener::bind(("127.0.0.1", rng.random_range(low..high))) {
            held.push(l);
        }
        if held.len() == 3 {
            return [0, 1, 2].map(|i| held[i].local_addr().unwrap().port());
        }
    }
    panic!("no three free ports in {low}-{high}");
}

/// A name no other test (or earlier run against the same broker) uses.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{}-{}-{}",
        std::process::id(),
        nanos % 1_000_000_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The embedded profile, but with two partitions per department notices and
/// feedback topic (the default is one): the exactly-once tests must see the
/// engine write several output partitions of one topic.
pub fn kafka_config(prefix: &str) -> KafkaConfig {
    KafkaConfig {
        notice_partitions: 2,
        ..KafkaConfig::local(&brokers(), prefix, 3)
    }
}

pub fn common(prefix: &str, registry_url: &str) -> Common {
    Common {
        kafka: kafka_config(prefix),
        registry: RegistryConfig {
            url: registry_url.to_string(),
        },
        telemetry: telemetry(),
    }
}

/// Quiet, human-readable logs; ops endpoints on a free port.
pub fn telemetry() -> TelemetryConfig {
    TelemetryConfig {
        log_format: "pretty".into(),
        log_filter: "warn".into(),
        ops_listen: "127.0.0.1:0".into(),
        otlp_endpoint: String::new(),
        trace_sample_ratio: 1.0,
    }
}

/// A PostgreSQL database of the test's own on the suite's server
/// (`CREDIT_BUS_TEST_DATABASE_URL`, which scripts/test.sh sets after starting
/// it): created empty under a unique name; returns its URL.
pub async fn database(prefix: &str) -> String {
    let base = std::env::var("CREDIT_BUS_TEST_DATABASE_URL").expect(
        "CREDIT_BUS_TEST_DATABASE_URL is not set: run the suite with scripts/test.sh, which starts PostgreSQL",
    );
    let name = unique(prefix).replace('-', "_");
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(&base)
        .await
        .expect("connecting to the test PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut c)
        .await
        .expect("CREATE DATABASE");
    let (root, _) = base
        .rsplit_once('/')
        .expect("a database URL ends in /<database>");
    format!("{root}/{name}")
}

/// Drops and re-creates a test database (closing its connections).
pub async fn recreate_database(url: &str) {
    let base = std::env::var("CREDIT_BUS_TEST_DATABASE_URL").unwrap();
    let (_, name) = url.rsplit_once('/').unwrap();
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut c)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut c)
        .await
        .unwrap();
}

/// Drops a test database at the end of its test (the server's data outlives the run).
pub async fn drop_database(url: &str) {
    let base = std::env::var("CREDIT_BUS_TEST_DATABASE_URL").unwrap();
    let (_, name) = url.rsplit_once('/').unwrap();
    use sqlx::Connection;
    let mut c = sqlx::PgConnection::connect(&base).await.unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(&mut c)
        .await
        .unwrap();
}

/// A registry running in this process on a free port.
pub struct Registry {
    pub url: String,
    pub store_topic: String,
    running: credit_registry::Running,
}

impl Registry {
    pub async fn start(store_topic: &str) -> Registry {
        Registry::start_as(kafka_config("unused"), store_topic, "127.0.0.1:0").await
    }

    /// Starts it on `listen` (`ip:port`): a registry restarted on the port
    /// its clients know, with the store topic it had.
    pub async fn start_at(store_topic: &str, listen: &str) -> Registry {
        Registry::start_as(kafka_config("unused"), store_topic, listen).await
    }

    /// A registry reaching the broker with `kafka` (e.g. as its own SASL
    /// user), listening on `listen`.
    pub async fn start_as(kafka: KafkaConfig, store_topic: &str, listen: &str) -> Registry {
        let config = credit_registry::Config {
            common: Common {
                kafka,
                registry: RegistryConfig {
                    url: "http://unused".into(),
                },
                telemetry: telemetry(),
            },
            registry: credit_registry::config::RegistryServiceConfig {
                listen: listen.into(),
                topic: store_topic.to_string(),
                compatibility: "BACKWARD".into(),
            },
        };
        let tel = credit_runtime::telemetry::Telemetry::new("credit-registry").unwrap();
        let running = credit_registry::spawn(config, tel)
            .await
            .expect("registry starts");
        Registry {
            url: running.url(),
            store_topic: store_topic.to_string(),
            running,
        }
    }

    pub async fn stop(self) {
        self.running.stop().await.unwrap();
    }
}

/// Creates every data topic under `naming`, and returns once the broker's
/// metadata lists them all.
pub async fn create_topics(prefix: &str) {
    let topics = Naming::new(prefix).all();
    credit_runtime::kafka::ensure_topics(&kafka_config(prefix), &topics)
        .await
        .expect("creating topics");
    tokio::task::spawn_blocking(move || wait_for_topics(&topics, Duration::from_secs(30)))
        .await
        .unwrap();
}

/// Partition counts of the topics whose names start with `prefix`, as the
/// broker's metadata lists them now.
pub fn partition_counts(prefix: &str) -> BTreeMap<String, usize> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    let meta = c.fetch_metadata(None, Duration::from_secs(15)).unwrap();
    meta.topics()
        .iter()
        .filter(|t| t.name().starts_with(prefix) && t.error().is_none())
        .map(|t| (t.name().to_string(), t.partitions().len()))
        .collect()
}

/// Waits until the broker's metadata lists every topic of `topics`. Kafka
/// answers CreateTopics once its controller has committed them; its broker
/// lists them a moment later, when it has applied that metadata.
pub fn wait_for_topics(topics: &[String], timeout: Duration) {
    let prefix = common_prefix(topics);
    let deadline = Instant::now() + timeout;
    loop {
        let listed = partition_counts(&prefix);
        let missing: Vec<_> = topics.iter().filter(|t| !listed.contains_key(*t)).collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} topics not in the broker's metadata {timeout:?} after their creation, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(3)]
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn common_prefix(names: &[String]) -> String {
    let Some(first) = names.first() else {
        return String::new();
    };
    let mut len = first.len();
    for n in names {
        len = len.min(
            first
                .bytes()
                .zip(n.bytes())
                .take_while(|(a, b)| a == b)
                .count(),
        );
    }
    // On a char boundary: topic names here are ASCII, but be safe.
    while !first.is_char_boundary(len) {
        len -= 1;
    }
    first[..len].to_string()
}

pub fn producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("linger.ms", "2")
        .create()
        .unwrap()
}

/// Publishes samples to their department's inbound topic; returns them with
/// their (partition, offset).
pub async fn publish(
    naming: &Naming,
    samples: Vec<credit_datagen::Sample>,
) -> BTreeMap<(i32, i64), credit_datagen::Sample> {
    let p = producer();
    let mut futures = Vec::with_capacity(samples.len());
    for s in &samples {
        let topic = naming.inbound(s.department);
        let headers = OwnedHeaders::new().insert(Header {
            key: credit_datagen::EXPECT_HEADER,
            value: Some(s.expect_str()),
        });
        futures.push(
            p.send_result(
                FutureRecord::to(&topic)
                    .key(&s.key)
                    .payload(&s.value)
                    .headers(headers),
            )
            .map_err(|(e, _)| e)
            .unwrap(),
        );
    }
    let mut out = BTreeMap::new();
    for (f, s) in futures.into_iter().zip(samples) {
        let d = f
            .await
            .unwrap()
            .map_err(|(e, _)| e)
            .expect("publish acknowledged");
        out.insert((d.partition, d.offset), s);
    }
    out
}

/// Reads `topic` from the beginning until `want` records arrived and then
/// `settle` passed without more, or `timeout` ran out.
pub fn consume(topic: &str, want: usize, timeout: Duration, settle: Duration) -> Vec<OwnedMessage> {
    consume_until(topic, timeout, settle, |got| got.len() >= want)
}

/// Reads `topic` from the beginning until `done` holds and then `settle` passed
/// without more records, or `timeout` ran out.
pub fn consume_until(
    topic: &str,
    timeout: Duration,
    settle: Duration,
    done: impl Fn(&[OwnedMessage]) -> bool,
) -> Vec<OwnedMessage> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", unique("reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .unwrap();
    c.subscribe(&[topic]).unwrap();
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    let mut last = Instant::now();
    while Instant::now() < deadline {
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                out.push(m.detach());
                last = Instant::now();
            }
            Some(Err(e)) => eprintln!("consumer: {e}"),
            None => {}
        }
        if last.elapsed() >= settle && done(&out) {
            break;
        }
    }
    out
}

pub fn header<'m>(m: &'m OwnedMessage, key: &str) -> Option<&'m str> {
    use rdkafka::message::Headers;
    let h = m.headers()?;
    h.iter()
        .find(|h| h.key == key)
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
}

/// `scripts/<name>` of this repository (`CREDIT_BUS_KAFKA_SCRIPT` names
/// kafka.sh when set, as scripts/test.sh does).
pub fn script(name: &str) -> std::path::PathBuf {
    if name == "kafka.sh"
        && let Some(p) = std::env::var_os("CREDIT_BUS_KAFKA_SCRIPT")
    {
        return p.into();
    }
    std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts")).join(name)
}

/// A Kafka broker of a test's own (not the suite's), started, killed and
/// restarted through `scripts/kafka.sh` on ports of its own: for tests that
/// crash the broker. Killed and its data deleted when dropped.
pub struct OwnBroker {
    pub name: String,
    /// The plaintext harness listener (`host:port`), as `brokers()` is for the suite's.
    pub brokers: String,
}

impl OwnBroker {
    /// Formats and starts a broker; panics with kafka.sh's message (which
    /// carries the end of the broker's log) when it does not come up.
    pub fn start(prefix: &str) -> OwnBroker {
        let name = unique(prefix);
        let [sasl, plaintext, controller] = listener_ports();
        let b = OwnBroker {
            name,
            brokers: format!("127.0.0.1:{plaintext}"),
        };
        b.run(&[
            "start",
            &b.name,
            "--sasl-port",
            &sasl.to_string(),
            "--plaintext-port",
            &plaintext.to_string(),
            "--controller-port",
            &controller.to_string(),
        ]);
        b
    }

    /// `kill -9` the broker and wait until it is gone.
    pub fn kill9(&self) {
        self.run(&["kill9", &self.name]);
    }

    /// Starts it again on the same data and ports; returns once it answers.
    pub fn restart(&self) {
        self.run(&["restart", &self.name]);
    }

    fn run(&self, args: &[&str]) {
        let out = std::process::Command::new(script("kafka.sh"))
            .args(args)
            .output()
            .expect("running scripts/kafka.sh");
        assert!(
            out.status.success(),
            "kafka.sh {} failed ({}):\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for OwnBroker {
    fn drop(&mut self) {
        let _ = std::process::Command::new(script("kafka.sh"))
            .args(["delete", &self.name])
            .output();
    }
}

/// A child process killed (SIGKILL) and reaped when dropped, so a failing test
/// leaves no service running behind it.
pub struct Proc(pub std::process::Child);

impl Proc {
    /// `kill -9` now and wait for the process to be gone.
    pub fn kill9(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }

    /// SIGTERM (what Kubernetes sends), then its exit status, within `limit`.
    pub fn terminate(&mut self, limit: std::time::Duration) -> std::process::ExitStatus {
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status()
            .expect("running kill");
        assert!(sent.success(), "kill -TERM failed");
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(s) = self.0.try_wait().expect("waiting for the child") {
                return s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "no exit within {limit:?} of SIGTERM"
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// An HTTP answer as the API tests read it: status, content type, and the
/// body as JSON (or, when it is not JSON, as a JSON string).
pub async fn answer(resp: reqwest::Response) -> (u16, String, serde_json::Value) {
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let text = resp.text().await.expect("an HTTP body");
    let body = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    (status, ct, body)
}
