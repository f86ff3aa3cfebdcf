//! Departments authenticate; a department publishes only as itself and reads
//! only its own notices. Against Apache Kafka with `StandardAuthorizer` and
//! `allow.everyone.if.no.acl.found=false`, reached on its SASL_PLAINTEXT
//! (SCRAM-SHA-512) listener `CREDIT_BUS_TEST_SASL_BROKERS` as the
//! administrator whose password is in `CREDIT_BUS_TEST_ADMIN_PASSWORD_FILE`
//! (scripts/test.sh exports both).
//!
//! Each test makes a deployment of its own: a fresh topic prefix, users
//! `<prefix>-<principal>` and their ACLs created by the same code as
//! `credit-bus access apply` (`credit_runtime::access::apply` over
//! `credit_core::access::Model`), so tests run in parallel on one broker.
//!
//! Proved here, with real clients and the bus's own client settings:
//! - apply is idempotent and leaves the broker holding exactly the model's
//!   bindings for its users (a stray one is removed);
//! - each denial: a department writing another's inbound topic or its own
//!   notices (TOPIC_AUTHORIZATION_FAILED), reading another's notices or the
//!   shared records, joining another's consumer group or a service's
//!   (GROUP_AUTHORIZATION_FAILED), using the engine's transactional id
//!   (TRANSACTIONAL_ID_AUTHORIZATION_FAILED); a normaliser reading another
//!   department's inbound; a wrong password and an unknown user, named by
//!   the start-up check and by a service binary that exits 2;
//! - the allowed paths: the registry, a normaliser, the engine and the
//!   feedback tracker run as their own users (binaries, as deployed); a
//!   department publishes, its records are normalised and dead-lettered, it
//!   reads its dead letters; another reads its notices and answers them with
//!   `credit-bus subscribe --ack`, which the tracker counts; the operator
//!   ends an entry with `credit-bus entry end` and the engine lifts it; the
//!   engine's user opens and commits a transaction under its transactional id.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use credit_bus_tests::{Proc, Registry, bin, free_port, unique};
use credit_core::access::{Model, Role};
use credit_core::catalogue::department;
use credit_core::topics::Naming;
use credit_runtime::access::{self, AclBinding, Admin, CredentialError, CredentialsDir};
use credit_runtime::config::KafkaConfig;
use credit_runtime::kafka;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

fn sasl_brokers() -> String {
    std::env::var("CREDIT_BUS_TEST_SASL_BROKERS").expect(
        "CREDIT_BUS_TEST_SASL_BROKERS is not set: run the suite with scripts/test.sh, \
         which starts Kafka with a SASL_PLAINTEXT listener",
    )
}

fn admin_password() -> String {
    let file = std::env::var("CREDIT_BUS_TEST_ADMIN_PASSWORD_FILE").expect(
        "CREDIT_BUS_TEST_ADMIN_PASSWORD_FILE is not set: run the suite with scripts/test.sh",
    );
    access::read_password(std::path::Path::new(&file)).expect("reading the admin password")
}

fn dept(id: &str) -> Role {
    Role::Department(department(id).unwrap())
}

fn normaliser(id: &str) -> Role {
    Role::Normaliser(department(id).unwrap())
}

/// One deployment of the bus on the shared broker: its own prefix, users,
/// ACLs and credentials directory (removed on drop).
struct Deployment {
    naming: Naming,
    model: Model,
    user_prefix: String,
    registry_topic: String,
    root: PathBuf,
    creds: CredentialsDir,
}

impl Deployment {
    /// Users and ACLs applied; topics created by the administrator.
    async fn new(name: &str) -> Deployment {
        let prefix = unique(name);
        let registry_topic = format!("{prefix}-schemas");
        let root = std::env::temp_dir().join(unique("credit-auth"));
        let creds = CredentialsDir::open(&root.join("credentials")).unwrap();
        let d = Deployment {
            naming: Naming::new(&prefix),
            model: Model::new(&Naming::new(&prefix), &registry_topic),
            user_prefix: format!("{prefix}-"),
            registry_topic,
            root,
            creds,
        };
        let started = Instant::now();
        let applied = d.apply();
        eprintln!(
            "{prefix}: access model applied in {:?}: {applied:?}",
            started.elapsed()
        );
        assert_eq!(applied.users, d.model.principals.len());
        assert_eq!(
            applied.generated, applied.users,
            "fresh passwords for fresh users"
        );
        assert_eq!(applied.created, d.model.binding_count());
        assert_eq!((applied.removed, applied.unchanged), (0, 0));
        kafka::ensure_topics(&d.admin(), &d.naming.all())
            .await
            .expect("the administrator creates the topics");
        // ACLs and SCRAM users reach the broker's authorizer through the
        // KRaft metadata log a moment after the controller took them (seconds
        // on a loaded machine): wait until one allowed write (to a topic no test
        // counts) goes through, so
        // a denial below is the model's, not propagation's.
        let courts = d.as_role(Role::Department(
            credit_core::catalogue::department("courts").unwrap(),
        ));
        let deadline = Instant::now() + Duration::from_secs(60);
        while send(&courts, &d.naming.feedback("courts"), "probe")
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "the applied ACLs did not take effect within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        d
    }

    fn apply(&self) -> access::Applied {
        access::apply(&self.admin(), &self.model, &self.user_prefix, &self.creds)
            .expect("applying the access model")
    }

    fn sasl(&self, user: &str, password: &str) -> KafkaConfig {
        KafkaConfig {
            statistics_interval_ms: 0,
            notice_partitions: 2,
            security_protocol: "sasl_plaintext".into(),
            sasl_mechanism: Some(access::MECHANISM.into()),
            sasl_username: Some(user.into()),
            sasl_password: Some(password.into()),
            ..KafkaConfig::local(&sasl_brokers(), self.naming.prefix(), 2)
        }
    }

    fn admin(&self) -> KafkaConfig {
        self.sasl("admin", &admin_password())
    }

    fn user(&self, role: Role) -> String {
        access::username(&self.user_prefix, role)
    }

    /// `role`'s settings with its password from the credentials directory.
    fn as_role(&self, role: Role) -> KafkaConfig {
        let user = self.user(role);
        let (password, generated) = self.creds.password(&user).unwrap();
        assert!(!generated, "{user} has no password yet");
        self.sasl(&user, &password)
    }

    /// `role`'s settings as the environment of a service or CLI process.
    fn env(&self, role: Role) -> Vec<(String, String)> {
        let k = self.as_role(role);
        vec![
            ("CREDIT_BUS__KAFKA__BROKERS".into(), k.brokers),
            ("CREDIT_BUS__KAFKA__TOPIC_PREFIX".into(), k.topic_prefix),
            (
                "CREDIT_BUS__KAFKA__SECURITY_PROTOCOL".into(),
                k.security_protocol,
            ),
            (
                "CREDIT_BUS__KAFKA__SASL_MECHANISM".into(),
                access::MECHANISM.into(),
            ),
            (
                "CREDIT_BUS__KAFKA__SASL_USERNAME".into(),
                k.sasl_username.unwrap(),
            ),
            (
                "CREDIT_BUS__KAFKA__SASL_PASSWORD".into(),
                k.sasl_password.unwrap(),
            ),
            ("CREDIT_BUS__KAFKA__NOTICE_PARTITIONS".into(), "2".into()),
        ]
    }

    fn log(&self, name: &str) -> std::fs::File {
        std::fs::File::create(self.root.join(format!("{name}.log"))).unwrap()
    }

    fn log_text(&self, name: &str) -> String {
        std::fs::read_to_string(self.root.join(format!("{name}.log"))).unwrap_or_default()
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("logs and credentials kept in {}", self.root.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

/// Sends one record with the bus's producer settings (idempotent, acks=all,
/// no delivery timeout); `Ok(offset)`, or the broker's refusal. A client
/// that gets no answer within 20 s fails the test.
async fn send(cfg: &KafkaConfig, topic: &str, value: &str) -> Result<i64, RDKafkaErrorCode> {
    let p: FutureProducer = kafka::producer(cfg, "auth-test").create().unwrap();
    let delivery = p.send(
        FutureRecord::to(topic).key("k").payload(value),
        Duration::from_secs(5),
    );
    let Ok(r) = tokio::time::timeout(Duration::from_secs(20), delivery).await else {
        panic!("no answer to a produce to {topic} within 20 s");
    };
    p.purge(rdkafka::producer::PurgeConfig::default().queue().inflight());
    match r {
        Ok(d) => Ok(d.offset),
        Err((e, _)) => Err(e.rdkafka_error_code().expect("a broker error code")),
    }
}

/// The first record read from `topic` in group `group`, or the first error.
fn read_first(cfg: &KafkaConfig, group: &str, topic: &str) -> Result<String, RDKafkaErrorCode> {
    let c: BaseConsumer = kafka::consumer(cfg, "auth-test", group).create().unwrap();
    c.subscribe(&[topic]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match c.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                return Ok(String::from_utf8_lossy(m.payload().unwrap_or(b"")).into_owned());
            }
            Some(Err(e)) => {
                eprintln!("{group} on {topic}: {e}");
                return Err(e.rdkafka_error_code().expect("a broker error code"));
            }
            None => {}
        }
    }
    panic!("nothing read from {topic} (group {group}) within 30 s, no error either");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_is_idempotent_and_leaves_exactly_the_models_bindings() {
    let d = Deployment::new("t-auth-apply").await;
    let admin = Admin::new(&d.admin(), "auth-test", Duration::from_secs(30)).unwrap();
    let ours: std::collections::HashSet<String> = d
        .model
        .principals
        .iter()
        .map(|p| format!("User:{}", d.user(p.role)))
        .collect();
    let mut want: Vec<String> = access::desired_bindings(&d.model, &d.user_prefix)
        .iter()
        .map(|b| b.to_string())
        .collect();
    want.sort();
    // The model's users' bindings as the broker describes them, once they are
    // `n` (ACLs reach the broker's authorizer from the controller's log a
    // moment after CreateAcls answers).
    let bindings_when = |n: usize| -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut got: Vec<String> = admin
                .describe_acls()
                .unwrap()
                .into_iter()
                .filter(|b| ours.contains(&b.principal))
                .map(|b| b.to_string())
                .collect();
            got.sort();
            if got.len() == n || Instant::now() > deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    assert_eq!(bindings_when(want.len()), want);
    let again = d.apply();
    assert_eq!(
        (
            again.generated,
            again.created,
            again.removed,
            again.unchanged
        ),
        (0, 0, 0, d.model.binding_count()),
        "a second apply changes nothing"
    );
    // A binding the model does not have, given to one of its users by hand,
    // is removed by the next apply; nothing else changes.
    let stray = AclBinding::allow(
        &d.user(dept("courts")),
        &credit_core::access::Resource::topic(d.naming.inbound("tax")),
        credit_core::access::Operation::Write,
    );
    admin.create_acls(std::slice::from_ref(&stray)).unwrap();
    let with_stray = bindings_when(want.len() + 1);
    assert!(with_stray.contains(&stray.to_string()), "{with_stray:?}");
    let fixed = d.apply();
    assert_eq!((fixed.created, fixed.removed), (0, 1));
    assert_eq!(bindings_when(want.len()), want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn departments_and_services_are_refused_everything_but_their_own() {
    let d = Deployment::new("t-auth-deny").await;
    let n = &d.naming;
    let courts = d.as_role(dept("courts"));
    let engine = d.as_role(Role::Engine);
    use RDKafkaErrorCode::{GroupAuthorizationFailed, TopicAuthorizationFailed};

    // Writes: its own inbound yes; another's inbound, its own notices, the
    // shared records, no.
    assert_eq!(send(&courts, &n.inbound("courts"), "judgment").await, Ok(0));
    assert_eq!(
        send(&courts, &n.inbound("tax"), "forged").await,
        Err(TopicAuthorizationFailed)
    );
    assert_eq!(
        send(&courts, &n.notices("courts"), "self-notice").await,
        Err(TopicAuthorizationFailed)
    );
    assert_eq!(
        send(&courts, &n.records(), "forged-record").await,
        Err(TopicAuthorizationFailed)
    );
    assert_eq!(
        send(&courts, &n.feedback("tax"), "forged-feedback").await,
        Err(TopicAuthorizationFailed)
    );
    // A normaliser writes records and its own dead letters only.
    let norm_courts = d.as_role(normaliser("courts"));
    assert_eq!(
        send(&norm_courts, &n.dlq("tax"), "x").await,
        Err(TopicAuthorizationFailed)
    );

    // The engine sends notices to courts and tax.
    send(&engine, &n.notices("courts"), "for-courts")
        .await
        .unwrap();
    send(&engine, &n.notices("tax"), "for-tax").await.unwrap();

    // Reads: its own notices in a group of its own, yes.
    assert_eq!(
        read_first(&courts, &n.subscriber_group("courts"), &n.notices("courts")).as_deref(),
        Ok("for-courts")
    );
    // Another department's notices, in its own group: the topic is refused.
    assert_eq!(
        read_first(
            &courts,
            &format!("{}other", n.department_groups("courts")),
            &n.notices("tax")
        ),
        Err(TopicAuthorizationFailed)
    );
    // Its own notices, but in tax's group or the engine's: the group is refused.
    assert_eq!(
        read_first(&courts, &n.subscriber_group("tax"), &n.notices("courts")),
        Err(GroupAuthorizationFailed)
    );
    assert_eq!(
        read_first(&courts, &n.engine_group(), &n.notices("courts")),
        Err(GroupAuthorizationFailed)
    );
    // The shared records (every department's subjects): refused.
    assert_eq!(
        read_first(&courts, &n.subscriber_group("courts"), &n.records()),
        Err(TopicAuthorizationFailed)
    );
    // A normaliser reads only its own department's inbound.
    assert_eq!(
        read_first(
            &norm_courts,
            &n.normaliser_group("courts"),
            &n.inbound("courts")
        )
        .as_deref(),
        Ok("judgment")
    );
    assert_eq!(
        read_first(
            &norm_courts,
            &n.normaliser_group("courts"),
            &n.inbound("tax")
        ),
        Err(TopicAuthorizationFailed)
    );
    assert_eq!(
        read_first(
            &norm_courts,
            &n.normaliser_group("tax"),
            &n.inbound("courts")
        ),
        Err(GroupAuthorizationFailed)
    );

    // Transactions: the engine's user under its transactional ids, yes; a
    // department under the engine's id, no.
    let tx = |cfg: &KafkaConfig, id: &str| -> rdkafka::producer::BaseProducer {
        let mut c = kafka::producer(cfg, "auth-test");
        c.set("transactional.id", id);
        c.create().unwrap()
    };
    let p = tx(&engine, &n.engine_transactional_id("auth-a"));
    p.init_transactions(Duration::from_secs(30))
        .expect("the engine initialises its transactions");
    p.begin_transaction().unwrap();
    p.send(
        rdkafka::producer::BaseRecord::to(&n.notices("courts"))
            .key("k")
            .payload("in-a-transaction"),
    )
    .map_err(|(e, _)| e)
    .unwrap();
    p.commit_transaction(Duration::from_secs(30))
        .expect("the engine commits");
    let forged = tx(&courts, &n.engine_transactional_id("auth-b"));
    let e = forged
        .init_transactions(Duration::from_secs(30))
        .expect_err("a department may not use the engine's transactional id");
    assert_eq!(
        e.rdkafka_error_code(),
        Some(RDKafkaErrorCode::TransactionalIdAuthorizationFailed),
        "{e}"
    );

    // The start-up check: the right credentials pass; a wrong password, an
    // unknown user and another principal's credentials are each named.
    let topics = access::topics_of(&courts, &d.registry_topic, dept("courts"));
    access::check_credentials(&courts, &topics, Duration::from_secs(10))
        .expect("courts' own credentials pass");
    let mut wrong = courts.clone();
    wrong.sasl_password = Some("not-the-password".into());
    let started = Instant::now();
    let e = access::check_credentials(&wrong, &topics, Duration::from_secs(20)).unwrap_err();
    let msg = e.to_string();
    assert!(
        matches!(e, CredentialError::Authentication { .. }) && e.is_stop(),
        "{msg}"
    );
    assert!(
        msg.contains(&d.user(dept("courts"))) && msg.contains(&sasl_brokers()),
        "{msg}"
    );
    assert!(
        !msg.contains("not-the-password"),
        "the password leaked: {msg}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
    let mut ghost = courts.clone();
    ghost.sasl_username = Some(format!("{}ghost", d.user_prefix));
    let e = access::check_credentials(&ghost, &topics, Duration::from_secs(20)).unwrap_err();
    assert!(matches!(e, CredentialError::Authentication { .. }), "{e}");
    let engine_topics = access::topics_of(&engine, &d.registry_topic, Role::Engine);
    let e =
        access::check_credentials(&courts, &engine_topics, Duration::from_secs(10)).unwrap_err();
    assert!(matches!(e, CredentialError::Denied { .. }), "{e}");
    assert!(e.to_string().contains(&n.records()), "{e}");

    // A record sent with a wrong password is never acknowledged (librdkafka
    // retries forever): the reason the check above exists.
    let p: FutureProducer = kafka::producer(&wrong, "auth-test").create().unwrap();
    let f = p
        .send_result(FutureRecord::to(&n.inbound("courts")).key("k").payload("x"))
        .map_err(|(e, _)| e)
        .unwrap();
    assert!(
        !matches!(
            tokio::time::timeout(Duration::from_secs(5), f).await,
            Ok(Ok(Ok(_)))
        ),
        "a record sent with a wrong password was acknowledged"
    );
    p.purge(rdkafka::producer::PurgeConfig::default().queue().inflight());

    // A service binary with a wrong password stops at once (exit 2), naming
    // the user and the broker.
    let mut env = d.env(Role::Engine);
    env.retain(|(k, _)| k != "CREDIT_BUS__KAFKA__SASL_PASSWORD");
    let out = Command::new(bin("credit-engine"))
        .envs(env)
        .env("CREDIT_BUS__KAFKA__SASL_PASSWORD", "wrong-on-purpose")
        .env("CREDIT_BUS__TELEMETRY__LOG_FORMAT", "pretty")
        .env(
            "CREDIT_BUS__TELEMETRY__OPS_LISTEN",
            format!("127.0.0.1:{}", free_port()),
        )
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot authenticate") && stderr.contains(&d.user(Role::Engine)),
        "{stderr}"
    );
    assert!(
        !stderr.contains("wrong-on-purpose"),
        "the password leaked: {stderr}"
    );
}

fn spawn(d: &Deployment, name: &str, role: Role, env: &[(&str, String)]) -> Proc {
    let binary = match role {
        Role::Normaliser(_) => "credit-normaliser",
        Role::Engine => "credit-engine",
        Role::Feedback => "credit-feedback",
        other => panic!("no binary for {other:?}"),
    };
    let log = d.log(name);
    let mut cmd = Command::new(bin(binary));
    cmd.envs(d.env(role))
        .env("CREDIT_BUS__TELEMETRY__LOG_FILTER", "info")
        .env("CREDIT_BUS__TELEMETRY__LOG_FORMAT", "pretty")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Proc(
        cmd.spawn()
            .unwrap_or_else(|e| panic!("spawning {binary}: {e}")),
    )
}

/// `credit-bus ARGS` as `role`, within `limit`: (exit code, stdout, stderr).
fn cli(
    d: &Deployment,
    role: Role,
    registry: &str,
    args: &[&str],
    limit: Duration,
) -> (Option<i32>, String, String) {
    let mut child = Command::new(bin("credit-bus"))
        .envs(d.env(role))
        .env("CREDIT_BUS__REGISTRY__URL", registry)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn metrics(port: u16) -> String {
    match reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

/// Waits until `ok` holds for `proc`'s /metrics; a process that exits fails.
async fn wait_metrics(
    d: &Deployment,
    name: &str,
    proc: &mut Proc,
    port: u16,
    what: &str,
    ok: impl Fn(&str) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = proc.0.try_wait().unwrap() {
            panic!(
                "{name} exited ({status}) waiting for {what}:\n{}",
                d.log_text(name)
            );
        }
        if ok(&metrics(port).await) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} not seen within 120 s:\n{}",
            d.log_text(name)
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The value of the first sample of `name` whose labels contain `label`.
fn sample(text: &str, name: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bus_runs_with_every_service_and_department_as_itself() {
    use credit_runtime::metrics::MetricName;
    let d = Deployment::new("t-auth-run").await;
    let n = &d.naming;
    let registry =
        Registry::start_as(d.as_role(Role::Registry), &d.registry_topic, "127.0.0.1:0").await;
    let reg = ("CREDIT_BUS__REGISTRY__URL", registry.url.clone());

    let (norm_port, engine_port, fb_port) = (free_port(), free_port(), free_port());
    let mut norm = spawn(
        &d,
        "normaliser",
        normaliser("courts"),
        &[
            reg.clone(),
            ("CREDIT_BUS__NORMALISER__DEPARTMENT", "courts".into()),
            (
                "CREDIT_BUS__TELEMETRY__OPS_LISTEN",
                format!("127.0.0.1:{norm_port}"),
            ),
        ],
    );
    let mut engine = spawn(
        &d,
        "engine",
        Role::Engine,
        &[
            reg.clone(),
            ("CREDIT_BUS__ENGINE__INSTANCE_ID", "engine-a".into()),
            (
                "CREDIT_BUS__TELEMETRY__OPS_LISTEN",
                format!("127.0.0.1:{engine_port}"),
            ),
        ],
    );
    let mut tracker = spawn(
        &d,
        "feedback",
        Role::Feedback,
        &[
            reg.clone(),
            (
                "CREDIT_BUS__TELEMETRY__OPS_LISTEN",
                format!("127.0.0.1:{fb_port}"),
            ),
        ],
    );

    // courts publishes, as itself, realistic records with some bad ones.
    let courts = d.as_role(dept("courts"));
    let mut g = credit_datagen::Generator::new(15, 0.25);
    let samples: Vec<_> = (0..40).map(|_| g.record("courts")).collect();
    let bad = samples.iter().filter(|s| s.expect.is_some()).count();
    assert!(
        bad > 0 && bad < samples.len(),
        "{bad} bad of {}",
        samples.len()
    );
    let p: FutureProducer = kafka::producer(&courts, "courts-system").create().unwrap();
    for s in &samples {
        p.send(
            FutureRecord::to(&n.inbound("courts"))
                .key(&s.key)
                .payload(&s.value),
            Duration::from_secs(5),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("courts publishes to its inbound topic");
    }

    // Its normaliser, as normaliser-courts, accepts and dead-letters them.
    let accepted = MetricName::RecordsOut.exported();
    let dead = MetricName::RecordsDeadLettered.exported();
    wait_metrics(
        &d,
        "normaliser",
        &mut norm,
        norm_port,
        "every record normalised or dead-lettered",
        |m| sample(m, accepted, "courts") + sample(m, dead, "courts") >= samples.len() as f64,
    )
    .await;
    let m = metrics(norm_port).await;
    assert_eq!(sample(&m, dead, "courts") as usize, bad, "{m}");
    // courts reads its own dead letters.
    let first_dead = read_first(
        &courts,
        &format!("{}dlq-reader", n.department_groups("courts")),
        &n.dlq("courts"),
    );
    assert!(
        first_dead.is_ok(),
        "courts cannot read its dead letters: {first_dead:?}"
    );

    // The engine, as engine, sends notices; finance (restrict-subsidies for
    // judgement defaulters) reads its own with `credit-bus subscribe` and
    // acknowledges one as itself.
    let sent = MetricName::NoticesSent.exported();
    wait_metrics(
        &d,
        "engine",
        &mut engine,
        engine_port,
        "a notice to finance",
        |m| sample(m, sent, "finance") > 0.0,
    )
    .await;
    let (code, out, err) = cli(
        &d,
        dept("finance"),
        &registry.url,
        &[
            "subscribe",
            "--department",
            "finance",
            "--max",
            "1",
            "--ack",
            "applied",
        ],
        Duration::from_secs(90),
    );
    assert_eq!(code, Some(0), "subscribe as finance: {err}");
    let notice: serde_json::Value = serde_json::from_str(out.lines().next().unwrap_or(""))
        .unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(notice["department"], "finance", "{notice}");
    assert!(err.contains(&n.subscriber_group("finance")), "{err}");
    // finance may not read tax's notices through the same command.
    let (code, _, err) = cli(
        &d,
        dept("finance"),
        &registry.url,
        &["subscribe", "--department", "tax", "--max", "1"],
        Duration::from_secs(60),
    );
    assert_ne!(code, Some(0), "finance read tax's notices: {err}");
    assert!(err.contains("not authorised"), "{err}");

    // The tracker, as feedback, counts finance's answer.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        if let Some(status) = tracker.0.try_wait().unwrap() {
            panic!("the tracker exited ({status}):\n{}", d.log_text("feedback"));
        }
        let report: serde_json::Value =
            match reqwest::get(format!("http://127.0.0.1:{fb_port}/report")).await {
                Ok(r) => r.json().await.unwrap_or_default(),
                Err(_) => serde_json::Value::Null,
            };
        if report["departments"]["finance"]["applied"]
            .as_u64()
            .unwrap_or(0)
            >= 1
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "finance's feedback not tracked: {report}\n{}",
            d.log_text("feedback")
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // The operator ends the entry; the engine reads the command and lifts it.
    let record_id = notice["record_id"]
        .as_str()
        .expect("the notice names its record")
        .to_string();
    let (code, _, err) = cli(
        &d,
        Role::Operator,
        &registry.url,
        &[
            "entry",
            "end",
            "--record-id",
            &record_id,
            "--reason",
            "repaired",
        ],
        Duration::from_secs(60),
    );
    assert_eq!(code, Some(0), "entry end as the operator: {err}");
    wait_metrics(
        &d,
        "engine",
        &mut engine,
        engine_port,
        "a lift notice",
        |m| sample(m, sent, "kind=\"lift\"") > 0.0,
    )
    .await;
    // A department may not send the engine commands.
    let (code, _, err) = cli(
        &d,
        dept("courts"),
        &registry.url,
        &[
            "entry",
            "end",
            "--record-id",
            &record_id,
            "--reason",
            "withdrawn",
        ],
        Duration::from_secs(60),
    );
    assert_ne!(code, Some(0), "courts sent an engine command: {err}");
    assert!(err.contains("not authorised"), "{err}");

    for (name, p) in [
        ("normaliser", &mut norm),
        ("engine", &mut engine),
        ("feedback", &mut tracker),
    ] {
        let status = p.terminate(Duration::from_secs(30));
        assert!(
            status.success(),
            "{name} stopped with {status}:\n{}",
            d.log_text(name)
        );
        let log = d.log_text(name);
        // (A reader closed mid-handshake logs a SASL transport failure: not a refusal.)
        let refused = [
            "authorization failed",
            "authorization_failed",
            "invalid credentials",
        ];
        assert!(
            !refused.iter().any(|r| log.to_ascii_lowercase().contains(r)),
            "{name} was refused something:\n{log}"
        );
    }
    registry.stop().await;
}
