//! Engine test support: a workload of normalised records with the notices they
//! must cause, engine processes, and an exact reader of the notice topics.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use credit_core::catalogue::publishing_departments;
use credit_core::record::{Context, InfoKind};
use credit_core::topics::Naming;
use credit_datagen::Generator;
use credit_measures::rules::Entry;
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::{Proc, bin, brokers, unique};

/// Waits until the engine behind `port` has sent notices: it has joined the
/// group, owns partitions and is mid-stream, so a kill interrupts real work.
pub async fn wait_for_progress(port: u16) {
    let url = format!("http://127.0.0.1:{port}/metrics");
    let name = credit_runtime::metrics::MetricName::NoticesSent.exported();
    for _ in 0..1200 {
        if let Ok(r) = reqwest::get(&url).await
            && let Ok(text) = r.text().await
            && text
                .lines()
                .any(|l| l.starts_with(name) && !l.ends_with(" 0"))
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("engine on ops port {port} sent no notice within 120 s");
}

pub fn spawn_engine(
    brokers: &str,
    prefix: &str,
    registry: &str,
    log: &std::path::Path,
    instance: &str,
    port: u16,
) -> Proc {
    spawn_engine_with(brokers, prefix, registry, log, instance, port, &[])
}

/// [`spawn_engine`] with more configuration (`CREDIT_BUS__...` variables),
/// e.g. `CREDIT_BUS__ENGINE__TODAY` for a controlled clock.
pub fn spawn_engine_with(
    brokers: &str,
    prefix: &str,
    registry: &str,
    log: &std::path::Path,
    instance: &str,
    port: u16,
    env: &[(&str, String)],
) -> Proc {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(bin("credit-engine"))
        .env("CREDIT_BUS__KAFKA__BROKERS", brokers)
        .env("CREDIT_BUS__KAFKA__TOPIC_PREFIX", prefix)
        .env("CREDIT_BUS__REGISTRY__URL", registry)
        .env("CREDIT_BUS__ENGINE__MAX_BATCH", "500")
        .env("CREDIT_BUS__ENGINE__INSTANCE_ID", instance)
        .env(
            "CREDIT_BUS__TELEMETRY__OPS_LISTEN",
            format!("127.0.0.1:{port}"),
        )
        .env(
            "CREDIT_BUS__TELEMETRY__LOG_FILTER",
            std::env::var("ENGINE_TEST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map(Proc)
        .expect("spawning credit-engine")
}

/// Normalised records (framed Avro) with the notices each list entry must cause.
pub struct Workload {
    pub records: Vec<(String, Vec<u8>)>,
    pub entries: Vec<Entry>,
    /// The registry id the records are framed with.
    pub schema_id: u32,
}

pub fn workload(n: usize, schema_id: u32, seed: u64) -> Workload {
    let mut g = Generator::new(seed, 0.0);
    let depts: Vec<_> = publishing_departments().collect();
    let mut records = Vec::with_capacity(n);
    let mut entries = Vec::new();
    for i in 0..n {
        let d = depts[i % depts.len()];
        let s = g.record(d.id);
        let ctx = Context {
            department: d.id,
            source_topic: "credit.inbound",
            partition: 0,
            offset: i as i64,
            timestamp_ms: None,
            today: credit_runtime::today(),
            key: Some(&s.key),
        };
        let mut buf = Vec::new();
        let entry =
            credit_normaliser::adapters::normalise(d.inbound.unwrap(), &ctx, &s.value, |r| {
                credit_schemas::encode::credit_record_framed(&mut buf, schema_id, r);
                let is_entry = matches!(r.info_kind, InfoKind::DishonestyList | InfoKind::RedList);
                // An entry whose validity already ended is kept but sends nothing.
                let late = r.valid_until.is_some_and(|u| u < ctx.today);
                r.list_type.filter(|_| is_entry && !late).map(|l| Entry {
                    record_id: r.record_id().to_string(),
                    list_type: l,
                    subject_type: r.subject.kind,
                })
            })
            .expect("valid samples");
        records.push((ctx.record_id().to_string(), buf));
        entries.extend(entry);
    }
    Workload {
        records,
        entries,
        schema_id,
    }
}

/// Counts notice ids (`record/measure/department/kind/generation`) per department.
pub fn by_department(ids: &[&String]) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for id in ids {
        let dept = id.split('/').nth(2).unwrap_or("?").to_string();
        *out.entry(dept).or_default() += 1;
    }
    out
}

/// Sends records or commands keyed by record id to `topic`, each to the
/// partition of its record (`topics::record_partition`), as the normalisers
/// and `credit-bus entry end` do.
pub async fn send_all(p: &FutureProducer, topic: &str, items: &[(String, Vec<u8>)]) {
    use rdkafka::producer::Producer;
    let n = p
        .client()
        .fetch_metadata(Some(topic), Duration::from_secs(15))
        .unwrap()
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map_or(0, |t| t.partitions().len() as i32);
    assert!(n > 0, "{topic} has no partitions");
    let mut futs = Vec::with_capacity(items.len());
    for (k, v) in items {
        futs.push(
            p.send_result(
                FutureRecord::to(topic)
                    .partition(credit_core::topics::record_partition(k, n))
                    .key(k)
                    .payload(v),
            )
            .map_err(|(e, _)| e)
            .unwrap(),
        );
    }
    for f in futs {
        f.await.unwrap().map_err(|(e, _)| e).unwrap();
    }
}

/// Reads every notice topic from the beginning, as a department does
/// (`read_committed`: notices of aborted transactions are never seen);
/// returns notice id → copies seen. Partitions are assigned, not
/// subscribed: no group, so nothing to wait for.
pub fn read_notices(
    naming: &Naming,
    until: impl Fn(&BTreeMap<String, usize>) -> bool,
    timeout: Duration,
) -> BTreeMap<String, usize> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", unique("notice-reader"))
        .set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", "10")
        .create()
        .unwrap();
    let meta = c.fetch_metadata(None, Duration::from_secs(15)).unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for d in credit_core::DEPARTMENTS {
        let topic = naming.notices(d.id);
        let t = meta
            .topics()
            .iter()
            .find(|t| t.name() == topic)
            .unwrap_or_else(|| panic!("{topic} missing"));
        assert!(!t.partitions().is_empty(), "{topic} has no partitions");
        for p in t.partitions() {
            tpl.add_partition_offset(&topic, p.id(), rdkafka::Offset::Beginning)
                .unwrap();
        }
    }
    c.assign(&tpl).unwrap();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let deadline = Instant::now() + timeout;
    let mut last = Instant::now();
    while Instant::now() < deadline {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            *seen
                .entry(String::from_utf8_lossy(m.key().unwrap()).into_owned())
                .or_default() += 1;
            last = Instant::now();
        }
        if last.elapsed() > Duration::from_secs(3) && until(&seen) {
            break;
        }
    }
    seen
}

/// Fresh topics under `prefix`, a registry, and the records schema registered:
/// what every engine test starts from.
pub async fn setup(prefix: &str) -> (Naming, crate::Registry, u32) {
    let naming = Naming::new(prefix);
    crate::create_topics(prefix).await;
    let registry = crate::Registry::start(&unique(&format!("{prefix}-schemas"))).await;
    let client = credit_schemas::registry::RegistryClient::new(&registry.url).unwrap();
    let schema_id = client
        .register(
            &credit_core::topics::value_subject(&naming.records()),
            credit_schemas::CREDIT_RECORD_AVSC,
        )
        .await
        .unwrap();
    (naming, registry, schema_id)
}

/// Every expected notice id seen exactly once, and nothing else.
pub fn assert_exactly_once(
    expected: &std::collections::BTreeSet<String>,
    seen: &BTreeMap<String, usize>,
) {
    let missing: Vec<&String> = expected
        .iter()
        .filter(|id| !seen.contains_key(*id))
        .collect();
    let unexpected: Vec<_> = seen
        .keys()
        .filter(|id| !expected.contains(*id))
        .take(5)
        .collect();
    let doubled: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(
        missing.is_empty(),
        "{} of {} notices missing, by department {:?}; first {:?}",
        missing.len(),
        expected.len(),
        by_department(&missing),
        &missing[..missing.len().min(5)]
    );
    assert!(unexpected.is_empty(), "unexpected notices: {unexpected:?}");
    assert!(
        doubled.is_empty(),
        "notices sent more than once: {doubled:?}"
    );
}

/// The engine's planning run in the test itself, as the reference: every
/// record and command fed to a `credit_measures::plan::PartitionState` per
/// engine partition, in the order the test sends them, under the shipped
/// catalogue and today. The engine, through Kafka with its kills and
/// restarts, must send exactly the notices this plans. (The planning itself
/// is proven by its own unit and property tests.)
pub struct Oracle {
    states: BTreeMap<i32, credit_measures::plan::PartitionState>,
    partitions: i32,
    catalogue: credit_measures::Catalogue,
    today: i32,
    pub notices: std::collections::BTreeSet<String>,
    /// Records that were list entries already ended on arrival.
    pub late: usize,
}

impl Oracle {
    pub fn new(partitions: i32) -> Oracle {
        Oracle::at(partitions, credit_runtime::today())
    }

    /// The reference on a given day (days since 1970-01-01), for an engine
    /// run with `engine.today` set to it.
    pub fn at(partitions: i32, today: i32) -> Oracle {
        Oracle {
            states: BTreeMap::new(),
            partitions,
            catalogue: credit_measures::Catalogue::parse(credit_measures::V1).unwrap(),
            today,
            notices: Default::default(),
            late: 0,
        }
    }

    /// The day moves on to `today`: what expiry lifts on every partition.
    pub fn expire(&mut self, today: i32) -> Vec<credit_measures::plan::Planned> {
        self.today = today;
        let mut all = Vec::new();
        for st in self.states.values_mut() {
            all.extend(st.plan_expiry(today));
        }
        self.add(all.clone());
        all
    }

    fn state(&mut self, record_id: &str) -> &mut credit_measures::plan::PartitionState {
        let p = credit_core::topics::record_partition(record_id, self.partitions);
        self.states
            .entry(p)
            .or_insert_with(|| credit_measures::plan::PartitionState::new(1))
    }

    fn add(&mut self, planned: Vec<credit_measures::plan::Planned>) {
        for n in planned {
            assert!(
                self.notices.insert(n.notice_id.clone()),
                "the reference planned {} twice",
                n.notice_id
            );
        }
    }

    /// A framed normalised record, as sent to the records topic.
    pub fn record(&mut self, record_id: &str, framed: &[u8]) {
        let (_, body) = credit_schemas::wire::split(framed).expect("framed");
        let head = credit_schemas::decode::record_head(body).expect("decodable");
        let input = head.to_input(credit_measures::plan::Source {
            topic: "records".into(),
            partition: 0,
            offset: 0,
        });
        let (catalogue, today) = (self.catalogue.clone(), self.today);
        let (outcome, planned) = self.state(record_id).plan_record(&catalogue, input, today);
        if outcome == credit_measures::plan::RecordOutcome::Late {
            self.late += 1;
        }
        self.add(planned);
    }

    /// An operator's end command (refusals plan nothing, as in the engine).
    pub fn end(&mut self, record_id: &str, reason: credit_measures::plan::EndReason) {
        let (catalogue, today) = (self.catalogue.clone(), self.today);
        let c = credit_measures::plan::EndEntry {
            record_id: record_id.to_string(),
            reason,
        };
        let planned = self
            .state(record_id)
            .plan_command(&c, &catalogue, today)
            .unwrap_or_default();
        self.add(planned);
    }

    /// Activating catalogue `new` on every partition, as the activation
    /// command does on each: the notices it plans, also kept in `notices`.
    pub fn activate(
        &mut self,
        new: &credit_measures::Catalogue,
    ) -> Vec<credit_measures::plan::Planned> {
        let today = self.today;
        let mut all = Vec::new();
        for p in 0..self.partitions {
            let st = self
                .states
                .entry(p)
                .or_insert_with(|| credit_measures::plan::PartitionState::new(1));
            all.extend(st.plan_activation(new, today));
        }
        self.catalogue = new.clone();
        self.add(all.clone());
        all
    }

    /// Whether the entry of `record_id` is active in the reference.
    pub fn is_active(&mut self, record_id: &str) -> bool {
        self.state(record_id)
            .entries
            .get(record_id)
            .is_some_and(|e| e.ended.is_none())
    }
}
