//! The broker crashing under the whole path (issue 15): departments publish
//! inbound records, good and bad, through the five normalisers into the
//! engine, which sends notices; meanwhile the Kafka broker is killed with
//! SIGKILL while records and notices flow (and more are published while it
//! is away), and started again on the same log directory. Every service runs as its supervisor would run
//! it: started again whenever it exits. Afterwards
//! - every inbound record is normalised (into exactly the bytes the adapters
//!   make of it) or dead-lettered (with the reason its sample expects),
//!   counted by inbound key: none lost, none both;
//! - every notice the reference planner ([`Oracle`]) plans for the normalised
//!   records is on its department's topic exactly once, as a department reads
//!   it (`read_committed`), and nothing else is there;
//! - the engine dead-lettered nothing.
//!
//! Printed for the notes: per crash, the broker's restart time and the time
//! from the broker answering again to the first normalised record and the
//! first committed notice made after the kill.
//!
//! Its own test binary: it points `CREDIT_BUS_TEST_BROKERS` at its private
//! broker for every helper it uses. `BROKER_CRASH_KEEP_LOGS=1` keeps the
//! services' and the broker's logs (path printed first).
//!
//! An attempt that fails while the broker logged the bug below is voided and
//! run again on a fresh broker (at most [`ATTEMPTS`]); any other failure, and
//! a failure of the last attempt, fails the test.
//!
//! Known failure (Kafka 4.4 single node, 4 runs of 8 with two crashes each): notices missing,
//! the engine's replay stuck ("a transaction stayed open"). It is the
//! broker's: when it was killed while the engine's commit was between
//! PREPARE_COMMIT and COMPLETE_COMMIT, the restarted broker first acts on its
//! metadata from before the crash (transaction coordinator elected at epoch
//! 0) while the controller has already fenced its old registration; the
//! coordinator finishes the commit, its marker sender finds no leader for
//! the data partitions, skips them as "likely deleted already" ("Couldn't
//! find leader endpoint for partitions ...", kafka.log) and writes
//! COMPLETE_COMMIT. Those partitions keep the transaction open for good:
//! `Admin.describeProducers` shows the engine's producer with its old epoch
//! and a `currentTransactionStartOffset`, while `describeTransactions` says
//! `Empty`, so their last stable offset never moves again and read_committed
//! readers never see the committed notices. The skip itself was logged in
//! most restarts; a run passes when the coordinator resigned before writing
//! COMPLETE_COMMIT and sent the markers again at epoch 2. Kafka's default
//! 9 s broker session instead of kafka.sh's 3 s did not prevent the skip
//! (one run). No client can repair it: `Admin.abortTransaction` would abort
//! committed notices, and only brokers write commit markers.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use credit_bus_tests::engine::*;
use credit_bus_tests::*;
use credit_core::catalogue::{self, publishing_departments};
use credit_core::record::Context;
use credit_core::reject::ReasonCode;
use credit_core::topics::Naming;
use credit_datagen::{Generator, Sample};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};

/// Records per publishing department per round; a round every `PAUSE`.
const PER_ROUND: usize = 20;
const PAUSE: Duration = Duration::from_millis(300);
/// Rounds before each crash, and after the last.
const ROUNDS: usize = 4;
/// Broker crashes per attempt. Each crash carries about a one-in-three chance
/// of the Kafka bug in this file's doc; one crash per attempt, and a fresh
/// attempt when that bug voided one, keeps the suite's verdict about the bus.
const CRASHES: usize = 1;
/// Attempts the Kafka bug may void before the test fails anyway.
const ATTEMPTS: usize = 4;
/// With the bug's marker skip logged, how long missing output is taken for it.
const SKIP_GRACE: Duration = Duration::from_secs(30);

/// The broker's log line when its marker sender skips partitions without a
/// leader (the Kafka bug in this file's doc).
const MARKER_SKIP: &str = "Couldn't find leader endpoint for partitions";

/// Watches the broker's log (`$CB_RUN/kafka-<name>/kafka.log*`) for
/// [`MARKER_SKIP`], setting `skipped` when it appears.
fn watch_for_marker_skip(broker: &str, skipped: Arc<AtomicBool>, stop: Arc<AtomicBool>) {
    let dir = std::path::PathBuf::from(std::env::var_os("CB_RUN").unwrap_or_else(|| ".run".into()))
        .join(format!("kafka-{broker}"));
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) && !skipped.load(Ordering::Relaxed) {
            for f in ["kafka.log", "kafka.log.1"] {
                if std::fs::read_to_string(dir.join(f)).is_ok_and(|t| t.contains(MARKER_SKIP)) {
                    skipped.store(true, Ordering::Relaxed);
                }
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    });
}

/// Sets its flag when dropped (a panicking attempt stops its log watcher too).
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A service process as its supervisor runs it: started again (on a new ops
/// port) whenever it exits.
struct Service {
    name: String,
    spawn: Box<dyn Fn(u16) -> Proc + Send>,
    proc: Proc,
    port: u16,
    restarts: usize,
}

impl Service {
    fn start(name: &str, spawn: impl Fn(u16) -> Proc + Send + 'static) -> Service {
        let port = free_port();
        Service {
            name: name.to_string(),
            proc: spawn(port),
            spawn: Box::new(spawn),
            port,
            restarts: 0,
        }
    }

    fn keep_alive(&mut self) {
        if let Ok(Some(status)) = self.proc.0.try_wait() {
            eprintln!("{} exited ({status}); starting it again", self.name);
            self.port = free_port();
            self.proc = (self.spawn)(self.port);
            self.restarts += 1;
        }
    }
}

/// Every service, looked after by a thread until `stop`.
struct Supervisor {
    services: Arc<Mutex<Vec<Service>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Supervisor {
    fn start(services: Vec<Service>) -> Supervisor {
        let services = Arc::new(Mutex::new(services));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (services.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                for svc in s.lock().unwrap().iter_mut() {
                    svc.keep_alive();
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        Supervisor {
            services,
            stop,
            thread: Some(thread),
        }
    }

    fn port(&self, name: &str) -> u16 {
        let s = self.services.lock().unwrap();
        s.iter().find(|s| s.name == name).unwrap().port
    }

    /// Stops looking after them; returns (name, restarts) of each. The
    /// processes are killed when the supervisor is dropped.
    fn stop(&mut self) -> Vec<(String, usize)> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            t.join().unwrap();
        }
        let s = self.services.lock().unwrap();
        s.iter().map(|s| (s.name.clone(), s.restarts)).collect()
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.stop();
    }
}

fn spawn_normaliser(
    prefix: &str,
    registry: &str,
    dept: &str,
    port: u16,
    log: &std::path::Path,
) -> Proc {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(bin("credit-normaliser"))
        .env("CREDIT_BUS__KAFKA__BROKERS", brokers())
        .env("CREDIT_BUS__KAFKA__TOPIC_PREFIX", prefix)
        .env("CREDIT_BUS__REGISTRY__URL", registry)
        .env("CREDIT_BUS__NORMALISER__DEPARTMENT", dept)
        .env(
            "CREDIT_BUS__TELEMETRY__OPS_LISTEN",
            format!("127.0.0.1:{port}"),
        )
        .env("CREDIT_BUS__TELEMETRY__LOG_FILTER", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map(Proc)
        .expect("spawning credit-normaliser")
}

/// An inbound record as published: where it landed and its timestamp.
struct Published {
    sample: Sample,
    partition: i32,
    offset: i64,
    timestamp_ms: i64,
}

/// A round of records from every publishing department.
fn round(g: &mut Generator) -> Vec<Sample> {
    publishing_departments()
        .flat_map(|d| (0..PER_ROUND).map(|_| g.record(d.id)).collect::<Vec<_>>())
        .collect()
}

/// Publishes samples to their department's inbound topic with an explicit
/// timestamp (the adapters put it into the record); returns once every one
/// is acknowledged (the producer holds them while the broker is away).
async fn publish(p: FutureProducer, naming: Naming, samples: Vec<Sample>) -> Vec<Published> {
    let ts = now_ms();
    let mut futures = Vec::with_capacity(samples.len());
    for s in &samples {
        let topic = naming.inbound(s.department);
        futures.push(
            p.send_result(
                FutureRecord::to(&topic)
                    .key(&s.key)
                    .payload(&s.value)
                    .timestamp(ts),
            )
            .map_err(|(e, _)| e)
            .unwrap(),
        );
    }
    let mut out = Vec::with_capacity(samples.len());
    for (f, sample) in futures.into_iter().zip(samples) {
        let d = f
            .await
            .unwrap()
            .map_err(|(e, _)| e)
            .expect("publish acknowledged");
        out.push(Published {
            sample,
            partition: d.partition,
            offset: d.offset,
            timestamp_ms: ts,
        });
    }
    out
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Output {
    Record,
    Notice,
}

/// A department's view of the outputs while the test runs: a `read_committed`
/// reader of the records topic and every notices topic, noting for each
/// message its CreateTime (when its producer made it) and when it was seen.
struct Watch {
    seen: Arc<Mutex<Vec<(Output, i64, i64)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watch {
    fn start(naming: &Naming) -> Watch {
        let c: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers())
            .set("group.id", unique("watch"))
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .set("fetch.wait.max.ms", "10")
            .create()
            .unwrap();
        let meta = c.fetch_metadata(None, Duration::from_secs(15)).unwrap();
        let records = naming.records();
        let notices: BTreeSet<String> = credit_core::DEPARTMENTS
            .iter()
            .map(|d| naming.notices(d.id))
            .collect();
        let mut tpl = rdkafka::TopicPartitionList::new();
        for t in meta.topics() {
            if t.name() == records || notices.contains(t.name()) {
                for p in t.partitions() {
                    tpl.add_partition_offset(t.name(), p.id(), rdkafka::Offset::Beginning)
                        .unwrap();
                }
            }
        }
        c.assign(&tpl).unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (seen.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !st.load(Ordering::Relaxed) {
                if let Some(Ok(m)) = c.poll(Duration::from_millis(50)) {
                    let kind = if m.topic() == records {
                        Output::Record
                    } else {
                        Output::Notice
                    };
                    let made = m.timestamp().to_millis().unwrap_or(0);
                    s.lock().unwrap().push((kind, made, now_ms()));
                }
            }
        });
        Watch {
            seen,
            stop,
            thread: Some(thread),
        }
    }

    /// When the first output of `kind` made after `after_ms` was seen.
    fn first(&self, kind: Output, after_ms: i64) -> Option<i64> {
        let s = self.seen.lock().unwrap();
        s.iter()
            .filter(|(k, made, _)| *k == kind && *made > after_ms)
            .map(|(_, _, seen)| *seen)
            .min()
    }

    /// Waits until an output of each kind made after `after_ms` was seen.
    async fn wait_for_both(&self, after_ms: i64, limit: Duration, skipped: &AtomicBool) {
        let started = Instant::now();
        let deadline = started + limit;
        while self.first(Output::Record, after_ms).is_none()
            || self.first(Output::Notice, after_ms).is_none()
        {
            assert!(
                !(skipped.load(Ordering::Relaxed) && started.elapsed() > SKIP_GRACE),
                "no output {SKIP_GRACE:?} after the broker's restart, and the broker logged \"{MARKER_SKIP}\" (the Kafka bug in this file's doc)"
            );
            assert!(
                Instant::now() < deadline,
                "no normalised record and committed notice made after the crash within {limit:?} of the broker's restart (a transaction Kafka left open? see this file's doc)"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn count(&self, kind: Output) -> usize {
        let s = self.seen.lock().unwrap();
        s.iter().filter(|(k, _, _)| *k == kind).count()
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One crash: when the broker was killed, how long its restart took, when
/// it answered again.
struct Crash {
    killed_ms: i64,
    restart: Duration,
    ready_ms: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_broker_killed_under_the_whole_path_loses_nothing_and_doubles_nothing() {
    for attempt in 1..=ATTEMPTS {
        let skipped = Arc::new(AtomicBool::new(false));
        match tokio::spawn(one_attempt(skipped.clone())).await {
            Ok(()) => {
                eprintln!("passed on attempt {attempt}");
                return;
            }
            Err(e) if e.is_panic() && skipped.load(Ordering::Relaxed) && attempt < ATTEMPTS => {
                eprintln!(
                    "attempt {attempt} voided: output missing and the broker logged \"{MARKER_SKIP}\" (the Kafka bug in this file's doc); again on a fresh broker"
                );
            }
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
}

/// One run of the scenario on a broker of its own; panics on any failure.
/// `skipped` is set when the broker logs the Kafka bug's marker skip.
async fn one_attempt(skipped: Arc<AtomicBool>) {
    let started = Instant::now();
    let dir = std::env::temp_dir().join(unique("broker-crash"));
    std::fs::create_dir_all(&dir).unwrap();
    eprintln!("service logs in {}", dir.display());
    // kafka.sh's settings: among them a 3 s broker session, so a restart
    // after kill -9 is refused for 3 s (Kafka's default: 9 s) until the old
    // registration expires. Nothing else is tuned for the test: the engine
    // fences its own open transaction when it starts over, so the
    // coordinator's timeout scan (every 10 s) is not on the recovery path.
    let broker = OwnBroker::start("crash");
    // SAFETY: the only test in this binary; set before this attempt's
    // clients start (an earlier attempt's are gone).
    unsafe { std::env::set_var("CREDIT_BUS_TEST_BROKERS", &broker.brokers) };
    let stop_watching = Arc::new(AtomicBool::new(false));
    watch_for_marker_skip(&broker.name, skipped.clone(), stop_watching.clone());
    let _stop_watching = StopOnDrop(stop_watching);

    let prefix = unique("t-bcrash");
    let (naming, registry, schema_id) = setup(&prefix).await;
    let watch = Watch::start(&naming);
    let mut services = Vec::new();
    {
        let (prefix, url, log) = (prefix.clone(), registry.url.clone(), dir.join("engine.log"));
        services.push(Service::start("engine", move |port| {
            spawn_engine_with(&brokers(), &prefix, &url, &log, "engine-crash", port, &[])
        }));
    }
    for d in publishing_departments() {
        let (prefix, url) = (prefix.clone(), registry.url.clone());
        let log = dir.join(format!("normaliser-{}.log", d.id));
        services.push(Service::start(d.id, move |port| {
            spawn_normaliser(&prefix, &url, d.id, port, &log)
        }));
    }
    let mut supervisor = Supervisor::start(services);
    let producer: FutureProducer =
        credit_runtime::kafka::producer(&kafka_config(&prefix), "broker-crash-test")
            .create()
            .unwrap();
    let mut g = Generator::new(15, 0.1);
    let mut published: Vec<Published> = Vec::new();
    let mut crashes: Vec<Crash> = Vec::new();

    for crash in 0..CRASHES {
        for _ in 0..ROUNDS {
            published.extend(publish(producer.clone(), naming.clone(), round(&mut g)).await);
            tokio::time::sleep(PAUSE).await;
        }
        if crash == 0 {
            wait_for_progress(supervisor.port("engine")).await;
        }
        // One more round, and the broker dies while it flows through; more
        // records are published while it is away.
        let flowing = tokio::spawn(publish(producer.clone(), naming.clone(), round(&mut g)));
        tokio::time::sleep(Duration::from_millis(150 + 200 * crash as u64)).await;
        let killed_ms = now_ms();
        broker.kill9();
        let away = tokio::spawn(publish(producer.clone(), naming.clone(), round(&mut g)));
        tokio::time::sleep(Duration::from_secs(1)).await;
        let t = Instant::now();
        tokio::task::block_in_place(|| broker.restart());
        let restart = t.elapsed();
        let ready_ms = now_ms();
        published.extend(flowing.await.unwrap());
        published.extend(away.await.unwrap());
        // Output resumes (measured from here) before anything else happens:
        // the next crash hits a path that works again.
        watch
            .wait_for_both(killed_ms, Duration::from_secs(120), &skipped)
            .await;
        crashes.push(Crash {
            killed_ms,
            restart,
            ready_ms,
        });
    }
    for _ in 0..ROUNDS {
        published.extend(publish(producer.clone(), naming.clone(), round(&mut g)).await);
        tokio::time::sleep(PAUSE).await;
    }
    let published_at = started.elapsed();

    // What must come out: each input through its adapter (same topic,
    // position, timestamp and day as the normaliser sees), and the notices
    // the reference planner plans for the normalised records.
    let today = credit_runtime::today();
    let mut oracle = Oracle::new(kafka_config(&prefix).partitions);
    let mut want_records: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut want_dead: BTreeMap<(String, i32, i64), ReasonCode> = BTreeMap::new();
    for p in &published {
        let dept = catalogue::department(p.sample.department).unwrap();
        let topic = naming.inbound(dept.id);
        let ctx = Context {
            department: dept.id,
            source_topic: &topic,
            partition: p.partition,
            offset: p.offset,
            timestamp_ms: Some(p.timestamp_ms),
            today,
            key: Some(&p.sample.key),
        };
        let normalised = credit_normaliser::adapters::normalise(
            dept.inbound.unwrap(),
            &ctx,
            &p.sample.value,
            |r| {
                let mut buf = Vec::new();
                credit_schemas::encode::credit_record_framed(&mut buf, schema_id, r);
                buf
            },
        );
        match normalised {
            Ok(framed) => {
                assert_eq!(p.sample.expect, None, "{}", p.sample.key);
                let id = ctx.record_id().to_string();
                oracle.record(&id, &framed);
                want_records.insert(id, framed);
            }
            Err(r) => {
                assert_eq!(Some(r.code), p.sample.expect, "{}", p.sample.key);
                want_dead.insert((dept.id.to_string(), p.partition, p.offset), r.code);
            }
        }
    }
    let expected = oracle.notices.clone();
    assert!(!want_dead.is_empty() && !expected.is_empty());

    // Every notice exactly once, as a department reads them.
    let waiting = Instant::now();
    let seen = read_notices(
        &naming,
        |s| {
            s.len() >= expected.len()
                || (skipped.load(Ordering::Relaxed) && waiting.elapsed() > SKIP_GRACE)
        },
        Duration::from_secs(150),
    );
    let notices_at = started.elapsed();

    // Every input normalised or dead-lettered, once as an outcome (a
    // normaliser replaying after a crash writes the same record again).
    let records = consume_until(
        &naming.records(),
        Duration::from_secs(60),
        Duration::from_secs(1),
        |got| {
            got.iter()
                .filter_map(|m| m.key())
                .collect::<BTreeSet<_>>()
                .len()
                >= want_records.len()
        },
    );
    let mut normalised: BTreeMap<String, usize> = BTreeMap::new();
    for m in &records {
        let key = String::from_utf8_lossy(m.key().unwrap()).into_owned();
        let want = want_records
            .get(&key)
            .unwrap_or_else(|| panic!("a normalised record no input makes: {key}"));
        assert_eq!(
            m.payload().unwrap(),
            &want[..],
            "{key}: not the adapters' bytes"
        );
        *normalised.entry(key).or_default() += 1;
    }
    let mut dead: BTreeMap<(String, i32, i64), usize> = BTreeMap::new();
    for d in publishing_departments() {
        let want = want_dead.keys().filter(|k| k.0 == d.id).count();
        let got = consume_until(
            &naming.dlq(d.id),
            Duration::from_secs(60),
            Duration::from_secs(1),
            |got| {
                got.iter()
                    .map(|m| {
                        (
                            header(m, credit_core::dlq::PARTITION),
                            header(m, credit_core::dlq::OFFSET),
                        )
                    })
                    .collect::<BTreeSet<_>>()
                    .len()
                    >= want
            },
        );
        for m in &got {
            let at = |h| header(m, h).and_then(|v| v.parse::<i64>().ok()).unwrap();
            let k = (
                d.id.to_string(),
                at(credit_core::dlq::PARTITION) as i32,
                at(credit_core::dlq::OFFSET),
            );
            let reason = want_dead
                .get(&k)
                .unwrap_or_else(|| panic!("a dead letter of a good input: {k:?}"));
            assert_eq!(header(m, credit_core::dlq::REASON), Some(reason.as_str()));
            *dead.entry(k).or_default() += 1;
        }
    }
    // Counted by inbound key: each input has exactly one outcome.
    let mut outcomes: BTreeMap<&str, (&str, usize)> = BTreeMap::new();
    for p in &published {
        let dept = p.sample.department;
        let id = format!("{dept}:{}:{}", p.partition, p.offset);
        let as_record = normalised.get(&id).copied().unwrap_or(0);
        let as_dead = dead
            .get(&(dept.to_string(), p.partition, p.offset))
            .copied()
            .unwrap_or(0);
        let outcome = match (as_record, as_dead) {
            (0, 0) => ("lost", 0),
            (n, 0) => ("normalised", n),
            (0, n) => ("dead-lettered", n),
            _ => ("both", as_record + as_dead),
        };
        assert!(
            outcomes.insert(&p.sample.key, outcome).is_none(),
            "inbound key {} published twice",
            p.sample.key
        );
    }
    let mut by_outcome: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (outcome, copies) in outcomes.values() {
        let e = by_outcome.entry(outcome).or_default();
        e.0 += 1;
        e.1 += copies;
    }
    let engine_dead = consume(
        &naming.engine_dead_letters(),
        0,
        Duration::from_secs(2),
        Duration::from_secs(1),
    );
    let restarts = supervisor.stop();
    let engine_log = std::fs::read_to_string(dir.join("engine.log")).unwrap_or_default();
    let in_process = engine_log
        .matches("starting over with a new consumer and producer")
        .count();

    let secs = |ms: i64| format!("{:.2} s", ms as f64 / 1000.0);
    for (i, c) in crashes.iter().enumerate() {
        let first = |kind| {
            watch
                .first(kind, c.killed_ms)
                .map_or("none".into(), |at| secs(at - c.ready_ms))
        };
        eprintln!(
            "broker crash {}: down {} (restart {:.2} s); from the broker answering again: first normalised record {}, first committed notice {} (made after the kill)",
            i + 1,
            secs(c.ready_ms - c.killed_ms),
            c.restart.as_secs_f64(),
            first(Output::Record),
            first(Output::Notice),
        );
    }
    eprintln!(
        "{} inputs by inbound key {by_outcome:?} (outcome: (inputs, copies)); {} records seen normalised, {} notices expected, {} distinct seen ({} copies watched); process restarts {restarts:?}, engine restarts in-process {in_process}; published by {:.0} s, all notices by {:.0} s, test {:.0} s",
        published.len(),
        watch.count(Output::Record),
        expected.len(),
        seen.len(),
        watch.count(Output::Notice),
        published_at.as_secs_f64(),
        notices_at.as_secs_f64(),
        started.elapsed().as_secs_f64(),
    );
    assert_exactly_once(&expected, &seen);
    let wrong: Vec<_> = outcomes
        .iter()
        .filter(|(_, (o, _))| matches!(*o, "lost" | "both"))
        .take(5)
        .collect();
    assert!(
        wrong.is_empty(),
        "inputs lost or with two outcomes: {wrong:?}"
    );
    assert_eq!(
        by_outcome.get("normalised").map_or(0, |o| o.0),
        want_records.len()
    );
    assert_eq!(
        by_outcome.get("dead-lettered").map_or(0, |o| o.0),
        want_dead.len()
    );
    assert!(
        engine_dead.is_empty(),
        "the engine dead-lettered {} inputs",
        engine_dead.len()
    );
    drop(supervisor);
    drop(watch);
    registry.stop().await;
    if std::env::var_os("BROKER_CRASH_KEEP_LOGS").is_some()
        && let Some(run) = std::env::var_os("CB_RUN")
    {
        let from = std::path::Path::new(&run).join(format!("kafka-{}", broker.name));
        for f in ["kafka.log", "kafka.log.1", "server.properties"] {
            let _ = std::fs::copy(from.join(f), dir.join(f));
        }
    }
    drop(broker);
    if std::env::var_os("BROKER_CRASH_KEEP_LOGS").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
}
