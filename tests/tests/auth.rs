//! Departments authenticate: against a tansu broker of its own started with
//! `--authentication`, one SCRAM user per department (and one for the engine),
//! reached through the bus's own `credit_runtime::kafka` configuration path
//! (`security_protocol = "sasl_plaintext"`, mechanism, username, password).
//!
//! What is proved here, and what is not (see docs/security.md):
//! - the right credentials produce, consume and administer topics, with
//!   SCRAM-SHA-512 and SCRAM-SHA-256;
//! - a wrong password, an unknown user, the PLAIN mechanism and a client that
//!   does not authenticate at all are refused, and the refusal reaches the
//!   application within seconds (librdkafka itself retries forever);
//! - tansu 0.6 does **not** authorise: once authenticated, a department can
//!   write another's inbound topic and read another's notices. The last test
//!   pins that known gap so it is noticed the day tansu enforces ACLs. In
//!   production the Strimzi `KafkaUser` ACLs rendered by the Helm chart do
//!   the authorisation; no test here runs Apache Kafka.
//!
//! The broker needs durable storage for users: tansu's `memory://` engine
//! accepts `tansu user create` and silently stores nothing. Users are created
//! before authentication is switched on, because tansu refuses every request
//! but ApiVersions/SaslHandshake/SaslAuthenticate from an unauthenticated
//! connection, `tansu user create` (which does not authenticate) included.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use credit_bus_tests::{Proc, free_port, unique};
use credit_core::topics::Naming;
use credit_runtime::config::KafkaConfig;
use credit_runtime::kafka;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

/// Whether this build of librdkafka can do SCRAM. SCRAM (and TLS) need
/// librdkafka built with OpenSSL, which is rdkafka's `ssl` feature; without it
/// the client refuses to start ("No provider for SASL mechanism SCRAM-SHA-512:
/// recompile librdkafka with libsasl2 or openssl support").
fn assert_scram_built_in() {
    let features = rdkafka::ClientConfig::new()
        .create_native_config()
        .unwrap()
        .get("builtin.features")
        .unwrap();
    assert!(
        features.split(',').any(|f| f == "sasl_scram"),
        "librdkafka is built without SCRAM (builtin.features = {features}): \
         enable rdkafka's \"ssl\" feature in the workspace Cargo.toml (docs/security.md)"
    );
}

/// Departments and the password each gets on the test broker.
const USERS: [(&str, &str, &str); 3] = [
    ("courts", "courts-Pw-1", "scram512"),
    ("tax", "tax-Pw-2", "scram256"),
    ("engine", "engine-Pw-3", "scram512"),
];

fn tansu() -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("tansu"))
            .find(|p| p.is_file())
    });
    let home = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin/tansu"));
    on_path
        .or(home.filter(|p| p.is_file()))
        .expect("tansu not installed: run scripts/test.sh (it installs tansu 0.6)")
}

fn wait_listening(port: u16, proc: &mut Proc) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = proc.0.try_wait() {
            panic!("tansu exited before listening on {port}: {status}");
        }
        assert!(Instant::now() < deadline, "tansu not listening on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A tansu of this test's own: SQLite storage in a fresh directory, the users
/// above, then restarted with `--authentication`. Killed and removed on drop.
struct AuthBroker {
    port: u16,
    dir: PathBuf,
    proc: Option<Proc>,
}

impl AuthBroker {
    fn start() -> AuthBroker {
        assert_scram_built_in();
        let dir = std::env::temp_dir().join(unique("credit-auth"));
        std::fs::create_dir_all(&dir).unwrap();
        let port = free_port();
        let mut b = AuthBroker {
            port,
            dir,
            proc: None,
        };
        // 1. Without authentication: create the users.
        let mut open = b.spawn(false);
        for (user, password, mechanism) in USERS {
            let out = Command::new(tansu())
                .args(["user", "create", "--broker"])
                .arg(format!("tcp://127.0.0.1:{port}"))
                .args(["--mechanism", mechanism, user, password])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "tansu user create {user}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        open.kill9();
        // 2. The same storage, authentication required.
        b.proc = Some(b.spawn(true));
        b
    }

    fn spawn(&self, authentication: bool) -> Proc {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::File::create(self.dir.join(format!("tansu-auth-{authentication}.log")))
            .unwrap();
        let mut cmd = Command::new(tansu());
        cmd.arg("broker")
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            // tansu resolves a sqlite URL against its working directory, even
            // `sqlite:///abs/path`: run it in the test's directory.
            .current_dir(&self.dir)
            .args(["--storage-engine", "sqlite://tansu.db"])
            .arg("--silent")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if authentication {
            cmd.arg("--authentication");
        }
        let mut p = Proc(cmd.spawn().expect("spawning tansu"));
        wait_listening(self.port, &mut p);
        p
    }

    /// The bus's Kafka settings for `user` (any password: the tests try wrong ones).
    fn config(&self, prefix: &str, user: &str, password: &str, mechanism: &str) -> KafkaConfig {
        KafkaConfig {
            statistics_interval_ms: 0,
            security_protocol: "sasl_plaintext".into(),
            sasl_mechanism: Some(mechanism.into()),
            sasl_username: Some(user.into()),
            sasl_password: Some(password.into()),
            ..KafkaConfig::local(&format!("127.0.0.1:{}", self.port), prefix, 1)
        }
    }

    /// `user` with its real password and mechanism.
    fn as_user(&self, prefix: &str, user: &str) -> KafkaConfig {
        let (_, password, mechanism) = USERS.iter().find(|u| u.0 == user).unwrap();
        let mechanism = match *mechanism {
            "scram256" => "SCRAM-SHA-256",
            _ => "SCRAM-SHA-512",
        };
        self.config(prefix, user, password, mechanism)
    }
}

impl Drop for AuthBroker {
    fn drop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.kill9();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A client context that keeps every error librdkafka reports with its reason
/// (the `KafkaError` names only the code), so a test can see *why* a client
/// gets nowhere.
#[derive(Clone, Default)]
struct Errors(Arc<Mutex<Vec<(KafkaError, String)>>>);

impl ClientContext for Errors {
    fn error(&self, error: KafkaError, reason: &str) {
        eprintln!("librdkafka: {error}: {reason}");
        self.0.lock().unwrap().push((error, reason.to_string()));
    }
}
impl ConsumerContext for Errors {}

impl Errors {
    fn authentication_failure(&self) -> Option<String> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .find(|(e, _)| e.rdkafka_error_code() == Some(RDKafkaErrorCode::Authentication))
            .map(|(_, reason)| reason.clone())
    }
}

/// Sends one record with the bus's producer settings; `Ok(offset)` once acknowledged.
async fn send(cfg: &KafkaConfig, topic: &str, value: &str) -> Result<i64, KafkaError> {
    let p: FutureProducer = kafka::producer(cfg, "auth-test").create()?;
    let d = p
        .send(
            FutureRecord::to(topic).key("k").payload(value),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)?;
    Ok(d.offset)
}

/// Reads `topic` from the start with the bus's consumer settings until a record arrives.
fn read_one(cfg: &KafkaConfig, topic: &str) -> Option<String> {
    let c: BaseConsumer = kafka::consumer(cfg, "auth-test", &unique("auth-reader"))
        .create()
        .unwrap();
    c.subscribe(&[topic]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            return m.payload().map(|p| String::from_utf8_lossy(p).into_owned());
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn departments_authenticate_with_scram_through_the_bus_config() {
    let broker = AuthBroker::start();
    let prefix = unique("t-auth");
    let naming = Naming::new(&prefix);
    let engine = broker.as_user(&prefix, "engine");
    kafka::ensure_topics(
        &engine,
        &[naming.inbound("courts"), naming.notices("courts")],
    )
    .await
    .expect("the engine's principal creates topics");

    // courts (SCRAM-SHA-512) publishes to its inbound topic.
    let courts = broker.as_user(&prefix, "courts");
    let offset = send(&courts, &naming.inbound("courts"), "judgment")
        .await
        .expect("courts publishes with its credentials");
    assert_eq!(offset, 0);

    // tax (SCRAM-SHA-256) publishes too, on the same broker.
    let tax = broker.as_user(&prefix, "tax");
    kafka::ensure_topics(&engine, &[naming.inbound("tax")])
        .await
        .unwrap();
    send(&tax, &naming.inbound("tax"), "arrears")
        .await
        .expect("tax publishes with SCRAM-SHA-256");

    // The engine sends courts a notice; courts reads it with the bus's consumer.
    send(&engine, &naming.notices("courts"), "notice-for-courts")
        .await
        .unwrap();
    assert_eq!(
        read_one(&courts, &naming.notices("courts")).as_deref(),
        Some("notice-for-courts")
    );
}

/// One refused client: librdkafka retries forever (the bus's producer even
/// has no delivery timeout), so the test bounds the wait and asserts the
/// reason reached the application's error callback within it.
async fn refused(cfg: &KafkaConfig, topic: &str) -> (Option<String>, Duration) {
    let errors = Errors::default();
    let p: FutureProducer<Errors> = kafka::producer(cfg, "auth-test")
        .create_with_context(errors.clone())
        .unwrap();
    let started = Instant::now();
    let send = p.send_result(FutureRecord::to(topic).key("k").payload("forged"));
    let delivery = match send {
        Ok(f) => tokio::time::timeout(Duration::from_secs(5), f).await,
        Err((e, _)) => panic!("enqueue failed: {e}"),
    };
    assert!(
        !matches!(delivery, Ok(Ok(Ok(_)))),
        "a refused client's record was acknowledged"
    );
    // Nothing may be written later either: purge what is still queued.
    p.purge(rdkafka::producer::PurgeConfig::default().queue().inflight());
    (errors.authentication_failure(), started.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_or_missing_credentials_are_refused_with_a_reason() {
    let broker = AuthBroker::start();
    let prefix = unique("t-auth");
    let topic = Naming::new(&prefix).inbound("courts");
    kafka::ensure_topics(
        &broker.as_user(&prefix, "engine"),
        std::slice::from_ref(&topic),
    )
    .await
    .unwrap();

    let wrong = broker.config(&prefix, "courts", "not-the-password", "SCRAM-SHA-512");
    let (why, took) = refused(&wrong, &topic).await;
    let why = why.expect("a wrong password is reported as an authentication error");
    assert!(why.contains("invalid-proof"), "{why}");
    assert!(took < Duration::from_secs(10), "{took:?}");

    let ghost = broker.config(&prefix, "ghost", "whatever", "SCRAM-SHA-512");
    let why = refused(&ghost, &topic)
        .await
        .0
        .expect("unknown user refused");
    assert!(why.contains("unknown-user"), "{why}");

    // The right password with a mechanism the user has no credential for.
    let courts256 = broker.config(&prefix, "courts", "courts-Pw-1", "SCRAM-SHA-256");
    let why = refused(&courts256, &topic)
        .await
        .0
        .expect("no SHA-256 credential");
    assert!(why.contains("unknown-user"), "{why}");

    // PLAIN is not offered at all (tansu 0.6 is built without it).
    let plain = broker.config(&prefix, "courts", "courts-Pw-1", "PLAIN");
    let why = refused(&plain, &topic).await.0.expect("PLAIN refused");
    assert!(why.contains("PLAIN"), "{why}");

    // No SASL at all: tansu closes the connection on the first request. librdkafka
    // sees only a transport failure, so nothing names authentication; the record
    // is still never acknowledged.
    let mut none = broker.config(&prefix, "courts", "", "SCRAM-SHA-512");
    none.security_protocol = "plaintext".into();
    none.sasl_mechanism = None;
    none.sasl_username = None;
    none.sasl_password = None;
    let (why, _) = refused(&none, &topic).await;
    assert_eq!(
        why, None,
        "tansu gives unauthenticated clients no SASL error"
    );

    // The bus's own start-up path fails instead of hanging: creating topics
    // with a wrong password returns an error after librdkafka's request timeout
    // (socket.timeout.ms, 60 s by default; 10 s here), as a timeout, not as
    // "authentication failed": only the error callback names the cause.
    let mut quick = wrong.clone();
    quick
        .extra
        .insert("socket.timeout.ms".into(), "10000".into());
    let started = Instant::now();
    let r = tokio::time::timeout(
        Duration::from_secs(30),
        kafka::ensure_topics(&quick, std::slice::from_ref(&topic)),
    )
    .await
    .expect("ensure_topics returned within 30 s");
    eprintln!(
        "ensure_topics with a wrong password: {r:?} after {:?}",
        started.elapsed()
    );
    assert!(
        r.is_err(),
        "topic administration with a wrong password succeeded"
    );

    // Fetching metadata (what every consumer does first) fails too.
    let c: BaseConsumer = kafka::consumer(&wrong, "auth-test", "g").create().unwrap();
    let md = c.fetch_metadata(Some(&topic), Duration::from_secs(5));
    eprintln!("metadata with a wrong password: {:?}", md.as_ref().err());
    assert!(md.is_err());
}

/// tansu 0.6 authenticates but does not authorise: CreateAcls is a no-op,
/// DescribeAcls answers "none", and the authenticated principal is never
/// consulted on a produce or a fetch. This pins the gap: when it fails, tansu
/// started enforcing something and docs/security.md needs updating.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_gap_tansu_does_not_authorise_an_authenticated_department() {
    let broker = AuthBroker::start();
    let prefix = unique("t-auth");
    let naming = Naming::new(&prefix);
    let engine = broker.as_user(&prefix, "engine");
    kafka::ensure_topics(&engine, &[naming.inbound("tax"), naming.notices("courts")])
        .await
        .unwrap();

    // courts writes tax's inbound topic (Kafka ACLs would refuse: TopicAuthorizationFailed).
    let courts = broker.as_user(&prefix, "courts");
    assert!(
        send(&courts, &naming.inbound("tax"), "forged-by-courts")
            .await
            .is_ok(),
        "tansu refused a cross-department write: it now authorises; update docs/security.md"
    );

    // tax reads courts' notices.
    send(&engine, &naming.notices("courts"), "for-courts-only")
        .await
        .unwrap();
    let tax = broker.as_user(&prefix, "tax");
    assert_eq!(
        read_one(&tax, &naming.notices("courts")).as_deref(),
        Some("for-courts-only"),
        "tansu refused a cross-department read: it now authorises; update docs/security.md"
    );
}
