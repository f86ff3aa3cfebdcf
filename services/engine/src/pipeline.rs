//! The engine's Kafka loop. See `docs/engine.md` for the exactly-once argument.
//!
//! Per batch: read records and commands; plan notices from the partition's state;
//! persist any output partition new to this input partition (its floor) in a
//! checkpoint before writing there; send the notices (skipping ids recovery
//! found already sent) and wait for every ack; write the changed entries and a
//! checkpoint to the input partition's changelog partition and wait; then store
//! the input offsets.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use apache_avro::types::Value;
use credit_core::notice::{ENGINE_PARTITION_HEADER, Notice};
use credit_core::record::{ListType, SubjectType};
use credit_measures::Catalogue;
use credit_runtime::config::KafkaConfig;
use credit_runtime::gap::{GapGuard, Verdict};
use credit_runtime::ops::Readiness;
use credit_runtime::shutdown::Shutdown;
use credit_runtime::telemetry::Telemetry;
use credit_schemas::registry::RegistryClient;
use credit_schemas::{encode, wire};
use futures::FutureExt;
use opentelemetry::KeyValue;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use crate::config::Config;
use crate::state::{
    Activation, Checkpoint, Claim, Command, EntryState, Input, PartitionState, Planned, floor_key,
    parse_floor_key,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration: {0}")]
    Config(String),
    #[error("schema registry: {0}")]
    Registry(#[from] credit_schemas::registry::RegistryError),
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("recovery of partition {0}: {1}")]
    Recovery(i32, String),
}

/// Remembers partitions revoked by a rebalance, so their in-memory state is
/// dropped and rebuilt from the changelog if they come back; publishes the
/// group's consumer lag from librdkafka statistics.
#[derive(Default)]
pub struct EngineContext {
    revoked: Mutex<HashSet<i32>>,
    assigned: Mutex<HashSet<i32>>,
    lag: Option<credit_runtime::kafka::ConsumerLag>,
}

impl ClientContext for EngineContext {
    fn stats(&self, s: rdkafka::Statistics) {
        if let Some(l) = &self.lag {
            l.record(&s);
        }
    }
}

impl ConsumerContext for EngineContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
            tracing::info!(pid = std::process::id(), partitions = ?parts, "partitions revoked");
            let mut r = self.revoked.lock().unwrap_or_else(|e| e.into_inner());
            r.extend(parts);
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let parts: Vec<String> = tpl
                .elements()
                .iter()
                .map(|e| format!("{}:{}", e.topic(), e.partition()))
                .collect();
            tracing::info!(pid = std::process::id(), partitions = ?parts, "partitions assigned");
            let mut a = self.assigned.lock().unwrap_or_else(|e| e.into_inner());
            a.extend(tpl.elements().iter().map(|e| e.partition()));
        }
    }
}

/// A little entropy for owner ids, so two instances started in the same
/// nanosecond with recycled pids still differ.
fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish()
}

/// FNV-1a: a stable hash of the notice id picks its partition, so a resend after
/// a crash lands where the first send did.
fn partition_for(id: &str, partitions: i32) -> i32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % partitions.max(1) as u64) as i32
}

fn field<'v>(fields: &'v [(String, Value)], name: &str) -> Option<&'v Value> {
    fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
}

fn string(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Union(_, inner) => string(Some(inner)),
        _ => None,
    }
}

fn symbol(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::Enum(_, s) => Some(s.clone()),
        Value::Union(_, inner) => symbol(Some(inner)),
        _ => None,
    }
}

/// Decodes a normalised record with the writer's schema, resolved to ours.
fn decode(
    writer: &apache_avro::Schema,
    body: &[u8],
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<Input, String> {
    #[allow(deprecated)]
    let v = apache_avro::from_avro_datum(
        writer,
        &mut &body[..],
        Some(credit_schemas::credit_record_schema()),
    )
    .map_err(|e| e.to_string())?;
    let Value::Record(f) = v else {
        return Err("not a record".into());
    };
    let Some(Value::Record(subject)) = field(&f, "subject") else {
        return Err("no subject".into());
    };
    let subject_type = symbol(field(subject, "type"))
        .and_then(|s| SubjectType::ALL.iter().copied().find(|t| t.symbol() == s))
        .ok_or("bad subject type")?;
    let list_type = symbol(field(&f, "list_type"))
        .and_then(|s| ListType::ALL.iter().copied().find(|t| t.symbol() == s));
    let info = symbol(field(&f, "info_kind")).unwrap_or_default();
    Ok(Input {
        record_id: string(field(&f, "record_id")).ok_or("no record_id")?,
        department: string(field(&f, "department")).unwrap_or_default(),
        list_type,
        is_list_entry: info == "DISHONESTY_LIST" || info == "RED_LIST",
        subject_type,
        subject_key: string(field(subject, "key")).unwrap_or_default(),
        subject_name: string(field(subject, "name")).unwrap_or_default(),
        decision_number: string(field(&f, "decision_number")).unwrap_or_default(),
        topic: topic.to_string(),
        partition,
        offset,
    })
}

struct Instruments {
    notices: opentelemetry::metrics::Counter<u64>,
    suppressed: opentelemetry::metrics::Counter<u64>,
    rejected: opentelemetry::metrics::Counter<u64>,
    recovery: opentelemetry::metrics::Histogram<f64>,
}

/// Reads one changelog partition to its end (entries and the last checkpoint),
/// then every output partition from its floor to its end for notices this
/// partition already sent.
fn replay_changelog(k: &KafkaConfig, changelog: &str, p: i32) -> Result<PartitionState, String> {
    const LIMIT: Duration = Duration::from_secs(120);
    let c =
        credit_runtime::kafka::reader(k, "credit-engine-recovery").map_err(|e| e.to_string())?;
    let mut st = PartitionState::default();
    credit_runtime::kafka::read_to_end(&c, changelog, &[(p, Offset::Beginning)], LIMIT, |m| {
        st.tail = m.offset() + 1;
        let (Some(key), Some(value)) = (m.key(), m.payload()) else {
            return;
        };
        if key == b"claim" {
            st.claimed_by = serde_json::from_slice::<Claim>(value).ok().map(|c| c.owner);
        } else if key == b"checkpoint" {
            if let Ok(cp) = serde_json::from_slice::<Checkpoint>(value) {
                st.checkpoint = cp;
            }
        } else if key.starts_with(b"entry/")
            && let Ok(e) = serde_json::from_slice::<EntryState>(value)
        {
            st.entries.insert(e.record_id.clone(), e);
        }
    })?;
    // Output partitions grouped by topic, each topic scanned by its own reader in
    // parallel: recovery time is then about one topic's, not the sum.
    let mut by_topic: BTreeMap<String, Vec<(i32, Offset)>> = BTreeMap::new();
    for (key, floor) in &st.checkpoint.floors {
        if let Some((topic, q)) = parse_floor_key(key) {
            by_topic
                .entry(topic.to_string())
                .or_default()
                .push((q, Offset::Offset(*floor)));
        }
    }
    let mine = p.to_string();
    let found: Vec<Result<Vec<String>, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = by_topic
            .iter()
            .map(|(topic, parts)| {
                let mine = &mine;
                s.spawn(move || {
                    let c = credit_runtime::kafka::reader(k, "credit-engine-recovery")
                        .map_err(|e| e.to_string())?;
                    let mut ids = Vec::new();
                    credit_runtime::kafka::read_to_end(&c, topic, parts, LIMIT, |m| {
                        let from_me = m
                            .headers()
                            .and_then(|h| h.iter().find(|h| h.key == ENGINE_PARTITION_HEADER))
                            .and_then(|h| h.value)
                            .is_some_and(|v| v == mine.as_bytes());
                        if from_me && let Some(key) = m.key() {
                            ids.push(String::from_utf8_lossy(key).into_owned());
                        }
                    })?;
                    Ok(ids)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("scan thread panicked".into()))
            })
            .collect()
    });
    for ids in found {
        st.already_sent.extend(ids?);
    }
    st.next = st.checkpoint.next.clone();
    Ok(st)
}

/// Every valid catalogue version on the catalogue topic (values under
/// `version/<n>`); invalid ones are reported and skipped.
pub fn read_catalogues(
    k: &KafkaConfig,
    topic: &str,
    partitions: i32,
) -> Result<Vec<Catalogue>, String> {
    let c =
        credit_runtime::kafka::reader(k, "credit-engine-catalogue").map_err(|e| e.to_string())?;
    let parts: Vec<(i32, Offset)> = (0..partitions).map(|p| (p, Offset::Beginning)).collect();
    let mut out = Vec::new();
    credit_runtime::kafka::read_to_end(&c, topic, &parts, Duration::from_secs(60), |m| {
        let (Some(key), Some(value)) = (m.key(), m.payload()) else {
            return;
        };
        if !key.starts_with(b"version/") {
            return;
        }
        match std::str::from_utf8(value)
            .map_err(|e| e.to_string())
            .and_then(|t| Catalogue::parse(t).map_err(|e| e.to_string()))
        {
            Ok(cat) => out.push(cat),
            Err(e) => {
                tracing::error!(key = %String::from_utf8_lossy(key), error = %e, "invalid catalogue version on the catalogue topic; ignored")
            }
        }
    })?;
    Ok(out)
}

/// Reads changelog partitions, each from its `from` to its end, in one pass:
/// per partition, the owner of the last claim there, if any, and the offset
/// after the last record.
fn claims_since(
    c: &credit_runtime::kafka::Reader,
    changelog: &str,
    from: &[(i32, i64)],
) -> Result<HashMap<i32, (Option<String>, i64)>, String> {
    let mut out: HashMap<i32, (Option<String>, i64)> =
        from.iter().map(|(p, o)| (*p, (None, *o))).collect();
    let parts: Vec<(i32, Offset)> = from.iter().map(|(p, o)| (*p, Offset::Offset(*o))).collect();
    credit_runtime::kafka::read_to_end(c, changelog, &parts, Duration::from_secs(30), |m| {
        let e = out.entry(m.partition()).or_insert((None, 0));
        e.1 = m.offset() + 1;
        if m.key() == Some(b"claim")
            && let Some(c) = m
                .payload()
                .and_then(|v| serde_json::from_slice::<Claim>(v).ok())
        {
            e.0 = Some(c.owner);
        }
    })?;
    Ok(out)
}

/// Everything the loop holds.
struct Engine {
    kafka: KafkaConfig,
    records: String,
    changelog: String,
    /// Every catalogue version known, by version; partitions start at `base_version`.
    catalogues: BTreeMap<u32, Catalogue>,
    base_version: u32,
    catalogue_topic: (String, i32),
    catalogue_gauge: opentelemetry::metrics::Gauge<i64>,
    producer: FutureProducer,
    /// Per department: its notices topic and that topic's partition count.
    notice_partitions: HashMap<&'static str, (String, i32)>,
    notice_schema_ids: HashMap<&'static str, u32>,
    writer_schemas: HashMap<u32, apache_avro::Schema>,
    registry: RegistryClient,
    states: HashMap<i32, PartitionState>,
    /// Partitions another instance claimed: not touched until a rebalance hands them over again.
    fenced: HashSet<i32>,
    /// The next input offset wanted per (topic, partition), from the checkpoint:
    /// catches a broker that skips records when a fetch resumes inside a batch.
    guard: GapGuard<(String, i32)>,
    commands: String,
    owner: String,
    grace: Duration,
    reader: std::sync::Arc<Mutex<credit_runtime::kafka::Reader>>,
    inst: Instruments,
    tracer: credit_runtime::trace::Tracer,
    group: String,
    /// The `process` span context of the input each planned notice came from,
    /// by notice id, for this batch: each notice is sent in a child span.
    traces: HashMap<String, credit_runtime::trace::SpanContext>,
}

impl Engine {
    async fn state(&mut self, p: i32) -> Result<&mut PartitionState, Error> {
        if !self.states.contains_key(&p) {
            self.recover(&[p]).await?;
        }
        Ok(self.states.get_mut(&p).expect("recovered"))
    }

    /// Recovers partitions together: claims them, waits one grace period, then
    /// replays their changelogs and scans their outputs in parallel. Done as
    /// soon as a rebalance assigns them, so recovery time does not grow with the
    /// number of partitions an instance takes over.
    async fn recover(&mut self, parts: &[i32]) -> Result<(), Error> {
        let parts: Vec<i32> = parts
            .iter()
            .copied()
            .filter(|p| !self.states.contains_key(p))
            .collect();
        if parts.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        // Claim first, then give a previous owner that has not yet noticed the
        // rebalance time to finish or abandon its batch, then read.
        let claim = serde_json::to_vec(&Claim {
            owner: self.owner.clone(),
        })
        .expect("claims serialise");
        let mut acks = Vec::with_capacity(parts.len());
        for p in &parts {
            acks.push(self.changelog_write(*p, "claim", &claim)?);
        }
        for a in acks {
            a.await
                .map_err(|_| KafkaError::Canceled)?
                .map_err(|(e, _)| e)?;
        }
        tokio::time::sleep(self.grace).await;
        let replays: Vec<_> = parts
            .iter()
            .map(|&p| {
                let (k, cl) = (self.kafka.clone(), self.changelog.clone());
                tokio::task::spawn_blocking(move || (p, replay_changelog(&k, &cl, p)))
            })
            .collect();
        for r in replays {
            let (p, st) = r.await.map_err(|e| Error::Recovery(-1, e.to_string()))?;
            let mut st = st.map_err(|e| Error::Recovery(p, e))?;
            tracing::info!(
                pid = std::process::id(),
                partition = p,
                entries = st.entries.len(),
                already_sent = st.already_sent.len(),
                ms = started.elapsed().as_millis() as u64,
                "partition recovered"
            );
            self.inst
                .recovery
                .record(started.elapsed().as_secs_f64(), &[]);
            for (topic, next) in &st.next {
                self.guard.expect((topic.clone(), p), *next);
            }
            st.catalogue_version = match st.checkpoint.catalogue_version {
                0 => self.base_version,
                v => v,
            };
            if !self.catalogues.contains_key(&st.catalogue_version) {
                self.load_catalogues().await?;
                if !self.catalogues.contains_key(&st.catalogue_version) {
                    return Err(Error::Recovery(
                        p,
                        format!(
                            "catalogue version {} is checkpointed but not on {}",
                            st.catalogue_version, self.catalogue_topic.0
                        ),
                    ));
                }
            }
            if st.claimed_by.as_deref() != Some(self.owner.as_str()) {
                tracing::warn!(partition = p, by = ?st.claimed_by, "partition claimed by another instance during takeover; leaving it");
                self.fenced.insert(p);
            }
            self.states.insert(p, st);
        }
        Ok(())
    }

    async fn writer_schema(&mut self, id: u32) -> Result<&apache_avro::Schema, Error> {
        if !self.writer_schemas.contains_key(&id) {
            let text = self.registry.schema_by_id(id).await?;
            let s = apache_avro::Schema::parse_str(&text)
                .map_err(|e| Error::Config(format!("schema {id}: {e}")))?;
            self.writer_schemas.insert(id, s);
        }
        Ok(&self.writer_schemas[&id])
    }

    fn reject(&self, input: &'static str) {
        self.inst.rejected.add(
            1,
            &[KeyValue::new(credit_runtime::metrics::label::INPUT, input)],
        );
    }

    /// Reads every catalogue version published on the catalogue topic.
    async fn load_catalogues(&mut self) -> Result<(), Error> {
        let (k, (topic, parts)) = (self.kafka.clone(), self.catalogue_topic.clone());
        let found = tokio::task::spawn_blocking(move || read_catalogues(&k, &topic, parts))
            .await
            .map_err(|e| Error::Config(e.to_string()))?
            .map_err(Error::Config)?;
        for c in found {
            self.catalogues.entry(c.version).or_insert(c);
        }
        Ok(())
    }

    /// Forgets a partition's state: it is rebuilt from the changelog if it comes back.
    fn drop_partition(&mut self, p: i32) {
        self.states.remove(&p);
        self.guard.forget(&(self.records.clone(), p));
        self.guard.forget(&(self.commands.clone(), p));
    }

    /// Plans the notices one input message causes.
    async fn plan(&mut self, m: &OwnedMessage) -> Result<Step, Error> {
        let p = m.partition();
        let topic = m.topic().to_string();
        let offset = m.offset();
        self.state(p).await?;
        match self.guard.check(&(topic.clone(), p), offset) {
            Verdict::Process => {}
            Verdict::Skip => return Ok(Step::Notices(Vec::new())),
            Verdict::Rewind(to) => return Ok(Step::Rewind(to)),
            Verdict::Gone { from, to } => {
                tracing::error!(
                    topic,
                    partition = p,
                    from,
                    to,
                    "input offsets gone from the log before the engine read them"
                );
            }
        }
        if self.states[&p].already_processed(&topic, offset) {
            return Ok(Step::Notices(Vec::new()));
        }
        let planned = if topic == self.records {
            let input = match m.payload().map(wire::split) {
                Some(Ok((id, body))) => {
                    let writer = self.writer_schema(id).await?.clone();
                    decode(&writer, body, &topic, p, offset)
                }
                Some(Err(e)) => Err(e.to_string()),
                None => Err("empty value".into()),
            };
            match input {
                Ok(i) => {
                    let st = self.states.get_mut(&p).expect("recovered above");
                    let catalogue = &self.catalogues[&st.catalogue_version];
                    st.plan_record(catalogue, &i)
                }
                Err(e) => {
                    tracing::error!(partition = p, offset, error = %e, "undecodable record on the records topic; skipped");
                    self.inst.rejected.add(
                        1,
                        &[KeyValue::new(
                            credit_runtime::metrics::label::INPUT,
                            "record",
                        )],
                    );
                    Vec::new()
                }
            }
        } else {
            let payload = m.payload().unwrap_or_default();
            if let Ok(c) = serde_json::from_slice::<Command>(payload) {
                let st = self.states.get_mut(&p).expect("recovered above");
                st.plan_command(&c).unwrap_or_else(|e| {
                    tracing::warn!(partition = p, offset, error = %e, "command refused");
                    self.reject("command");
                    Vec::new()
                })
            } else if let Ok(a) = serde_json::from_slice::<Activation>(payload) {
                if !self.catalogues.contains_key(&a.activate) {
                    self.load_catalogues().await?;
                }
                match self.catalogues.get(&a.activate) {
                    Some(new) => {
                        let st = self.states.get_mut(&p).expect("recovered above");
                        let planned = st.plan_activation(new);
                        tracing::info!(
                            partition = p,
                            version = a.activate,
                            notices = planned.len(),
                            "catalogue version activated"
                        );
                        self.catalogue_gauge.record(a.activate as i64, &[]);
                        planned
                    }
                    None => {
                        tracing::error!(partition = p, offset, version = a.activate, topic = %self.catalogue_topic.0, "activation refused: no such catalogue version published");
                        self.reject("command");
                        Vec::new()
                    }
                }
            } else {
                tracing::warn!(
                    partition = p,
                    offset,
                    "unreadable command; expected {{\"record_id\", \"reason\"}} or {{\"activate\": N}}"
                );
                self.reject("command");
                Vec::new()
            }
        };
        let st = self.states.get_mut(&p).expect("recovered above");
        st.next.insert(topic, offset + 1);
        Ok(Step::Notices(planned))
    }

    /// Writes one changelog record to partition `p` and returns its delivery.
    fn changelog_write(
        &self,
        p: i32,
        key: &str,
        value: &[u8],
    ) -> Result<rdkafka::producer::DeliveryFuture, Error> {
        self.producer
            .send_result(
                FutureRecord::to(&self.changelog)
                    .partition(p)
                    .key(key)
                    .payload(value),
            )
            .map_err(|(e, _)| Error::Kafka(e))
    }

    /// The notice's topic and partition (names computed once per department).
    fn notice_target(&self, n: &Planned) -> (&str, i32) {
        let (topic, parts) = &self.notice_partitions[n.department];
        (topic.as_str(), partition_for(&n.notice_id, *parts))
    }

    /// Sends a batch's notices exactly once and checkpoints every touched partition.
    /// Drops every partition another instance has claimed since we last looked,
    /// with the notices this batch planned for it: that instance replays them.
    async fn fence(&mut self, touched: &HashSet<i32>) -> Result<(), Error> {
        let from: Vec<(i32, i64)> = touched
            .iter()
            .filter_map(|p| self.states.get(p).map(|st| (*p, st.tail)))
            .collect();
        if from.is_empty() {
            return Ok(());
        }
        let (reader, cl) = (self.reader.clone(), self.changelog.clone());
        let found = tokio::task::spawn_blocking(move || {
            let r = reader.lock().unwrap_or_else(|e| e.into_inner());
            claims_since(&r, &cl, &from)
        })
        .await
        .map_err(|e| Error::Recovery(-1, e.to_string()))?
        .map_err(|e| Error::Recovery(-1, e))?;
        for (p, (claim, tail)) in found {
            match claim {
                Some(other) if other != self.owner => {
                    tracing::warn!(partition = p, by = %other, "partition claimed by another instance; dropping it");
                    self.drop_partition(p);
                    self.fenced.insert(p);
                }
                _ => {
                    if let Some(st) = self.states.get_mut(&p) {
                        st.tail = tail;
                    }
                }
            }
        }
        Ok(())
    }

    async fn commit_batch(
        &mut self,
        planned: Vec<(i32, Planned)>,
        touched: HashSet<i32>,
    ) -> Result<(), Error> {
        self.fence(&touched).await?;
        for p in self.fenced.clone() {
            self.drop_partition(p);
        }
        let touched: HashSet<i32> = touched
            .into_iter()
            .filter(|p| !self.fenced.contains(p))
            .collect();
        let planned: Vec<(i32, Planned)> = planned
            .into_iter()
            .filter(|(p, _)| touched.contains(p))
            .collect();
        // 1. Output partitions new to an input partition get a floor, persisted first.
        let mut new_floors: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
        for (p, n) in &planned {
            let (topic, q) = self.notice_target(n);
            if !self.states[p]
                .checkpoint
                .floors
                .contains_key(&floor_key(topic, q))
            {
                let v = new_floors.entry(*p).or_default();
                if !v.iter().any(|(t, x)| t == topic && *x == q) {
                    v.push((topic.to_string(), q));
                }
            }
        }
        if !new_floors.is_empty() {
            let k = self.kafka.clone();
            let wanted: Vec<(String, i32)> = new_floors
                .values()
                .flatten()
                .cloned()
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            let highs = tokio::task::spawn_blocking(
                move || -> Result<HashMap<(String, i32), i64>, KafkaError> {
                    let c: BaseConsumer =
                        credit_runtime::kafka::base(&k, "credit-engine-floors").create()?;
                    let mut out = HashMap::new();
                    for (t, q) in wanted {
                        let (_, high) = c.fetch_watermarks(&t, q, Duration::from_secs(15))?;
                        out.insert((t, q), high);
                    }
                    Ok(out)
                },
            )
            .await
            .map_err(|e| Error::Config(e.to_string()))??;
            let mut acks = Vec::new();
            for (p, parts) in &new_floors {
                let st = self
                    .states
                    .get_mut(p)
                    .expect("touched partitions are recovered");
                for (t, q) in parts {
                    st.checkpoint
                        .floors
                        .insert(floor_key(t, *q), highs[&(t.clone(), *q)]);
                }
                let cp = serde_json::to_vec(&st.checkpoint).expect("checkpoints serialise");
                acks.push(self.changelog_write(*p, "checkpoint", &cp)?);
            }
            for a in acks {
                a.await
                    .map_err(|_| KafkaError::Canceled)?
                    .map_err(|(e, _)| e)?;
            }
        }

        // 2. The notices themselves, skipping those a dead instance already sent.
        let mut acks = Vec::with_capacity(planned.len());
        let mut buf = Vec::with_capacity(512);
        let partition_names: HashMap<i32, String> =
            touched.iter().map(|p| (*p, p.to_string())).collect();
        for (p, n) in &planned {
            let st = self.states.get_mut(p).expect("recovered");
            if st.already_sent.remove(&n.notice_id) {
                self.inst.suppressed.add(1, &[]);
                continue;
            }
            let e = &st.entries[&n.record_id];
            // A lift may name a measure the current version dropped: newest version first.
            let measure = self
                .catalogues
                .values()
                .rev()
                .find_map(|c| c.measure(&n.measure_id));
            let notice = Notice {
                notice_id: &n.notice_id,
                kind: n.kind,
                department: n.department,
                measure_id: &n.measure_id,
                measure_name: measure.map_or("", |m| m.name_zh.as_str()),
                legal_basis: measure.map_or("", |m| m.legal_basis.as_str()),
                catalogue_version: e.catalogue_version as i32,
                generation: n.generation as i32,
                record_id: &n.record_id,
                list_type: &e.list_type,
                subject_type: &e.subject_type,
                subject_key: &e.subject_key,
                subject_name: &e.subject_name,
                identifying_department: &e.department,
                decision_number: &e.decision_number,
                reason: n.reason.map(|r| r.as_str()),
                source_topic: &e.topic,
                source_partition: e.partition,
                source_offset: e.offset,
            };
            buf.clear();
            encode::notice_framed(&mut buf, self.notice_schema_ids[n.department], &notice);
            let (topic, q) = self.notice_target(n);
            let ps = &partition_names[p];
            // `send <notices topic>` under the input's `process` span; the key
            // is a notice id (no personal data).
            let sending =
                self.tracer
                    .send(self.traces.get(&n.notice_id), topic, Some(&n.notice_id));
            let headers = credit_runtime::trace::inject(
                OwnedHeaders::new().insert(Header {
                    key: ENGINE_PARTITION_HEADER,
                    value: Some(ps.as_str()),
                }),
                sending.context(),
            );
            let rec = FutureRecord::to(topic)
                .partition(q)
                .key(&n.notice_id)
                .payload(&buf[..])
                .headers(headers);
            let mut rec = rec;
            let delivery = loop {
                match self.producer.send_result(rec) {
                    Ok(d) => break d,
                    Err((
                        KafkaError::MessageProduction(rdkafka::types::RDKafkaErrorCode::QueueFull),
                        r,
                    )) => {
                        rec = r;
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                    Err((e, _)) => return Err(e.into()),
                }
            };
            acks.push((*p, n.department, n.kind, delivery));
        }
        self.traces.clear();
        let mut highest: HashMap<(i32, &'static str, i32), i64> = HashMap::new();
        let mut sent: HashMap<(&'static str, &'static str), u64> = HashMap::new();
        for (p, dept, kind, d) in acks {
            let delivered = d
                .await
                .map_err(|_| KafkaError::Canceled)?
                .map_err(|(e, _)| e)?;
            let (q, o) = (delivered.partition, delivered.offset);
            let h = highest.entry((p, dept, q)).or_insert(0);
            *h = (*h).max(o + 1);
            *sent.entry((dept, kind.as_str())).or_default() += 1;
        }
        // One counter update per (department, kind) and batch, not per notice.
        for ((dept, kind), n) in sent {
            self.inst.notices.add(
                n,
                &[
                    credit_runtime::metrics::department(dept),
                    KeyValue::new(credit_runtime::metrics::label::KIND, kind),
                ],
            );
        }

        // 3. Changed entries and the checkpoint, per touched input partition.
        let mut acks = Vec::new();
        for p in touched {
            let st = self.states.get_mut(&p).expect("recovered");
            // Floors rise only once every notice recovery found has been replayed:
            // until then a second crash must still scan from where the first left.
            if st.already_sent.is_empty() {
                for ((hp, dept, q), o) in &highest {
                    if *hp == p {
                        let topic = &self.notice_partitions[dept].0;
                        st.checkpoint.floors.insert(floor_key(topic, *q), *o);
                    }
                }
            }
            st.checkpoint.next = st.next.clone();
            st.checkpoint.catalogue_version = st.catalogue_version;
            let dirty: Vec<String> = st.dirty.drain().collect();
            let mut writes = Vec::with_capacity(dirty.len() + 1);
            for id in dirty {
                let v = serde_json::to_vec(&st.entries[&id]).expect("entries serialise");
                writes.push((format!("entry/{id}"), v));
            }
            writes.push((
                "checkpoint".to_string(),
                serde_json::to_vec(&st.checkpoint).expect("checkpoints serialise"),
            ));
            for (k, v) in writes {
                acks.push(self.changelog_write(p, &k, &v)?);
            }
        }
        for a in acks {
            a.await
                .map_err(|_| KafkaError::Canceled)?
                .map_err(|(e, _)| e)?;
        }
        Ok(())
    }
}

/// What one input message asks of the loop.
enum Step {
    Notices(Vec<Planned>),
    /// The broker skipped records before this one: seek the partition here.
    Rewind(i64),
}

/// How often an idle loop checks for partitions stuck below their high watermark.
const STALL_CHECK: Duration = Duration::from_millis(500);

/// Applies what rebalances did since the last look: revoked partitions are
/// forgotten (their new owner replays from the changelog) and partitions
/// handed to us (again) are claimed and recovered afresh, at once.
async fn rebalance(
    engine: &mut Engine,
    consumer: &StreamConsumer<EngineContext>,
) -> Result<(), Error> {
    let revoked: HashSet<i32> = std::mem::take(
        &mut *consumer
            .context()
            .revoked
            .lock()
            .unwrap_or_else(|e| e.into_inner()),
    );
    let newly: HashSet<i32> = std::mem::take(
        &mut *consumer
            .context()
            .assigned
            .lock()
            .unwrap_or_else(|e| e.into_inner()),
    );
    for p in revoked.iter().chain(&newly) {
        engine.drop_partition(*p);
        engine.fenced.remove(p);
    }
    if newly.is_empty() {
        return Ok(());
    }
    let assigned: Vec<i32> = consumer
        .assignment()?
        .elements()
        .iter()
        .filter(|e| e.topic() == engine.records && newly.contains(&e.partition()))
        .map(|e| e.partition())
        .collect();
    engine.recover(&assigned).await
}

/// Seeks back every partition stuck below its high watermark (see
/// [`GapGuard::stalled`]).
fn unstall(
    guard: &mut GapGuard<(String, i32)>,
    consumer: &StreamConsumer<EngineContext>,
) -> Result<(), Error> {
    Ok(credit_runtime::kafka::unstall(
        guard,
        consumer,
        STALL_CHECK * 4,
        |(t, p)| (t.clone(), *p),
    )?)
}

/// Runs an engine instance until `shutdown`.
pub async fn run(
    config: Config,
    tel: Telemetry,
    ready: Readiness,
    shutdown: Shutdown,
) -> Result<(), Error> {
    let kafka = config.common.kafka.clone();
    let naming = kafka.naming();
    let catalogue = config
        .engine
        .catalogue()
        .map_err(|e| Error::Config(e.to_string()))?;
    let base_version = catalogue.version;
    let registry = RegistryClient::new(&config.common.registry.url)?;
    let mut notice_schema_ids = HashMap::new();
    for d in credit_core::DEPARTMENTS {
        let subject = credit_core::topics::value_subject(&naming.notices(d.id));
        notice_schema_ids.insert(
            d.id,
            registry
                .register_with_retry(&subject, credit_schemas::NOTICE_AVSC, 60)
                .await?,
        );
    }
    let ctx = EngineContext {
        lag: Some(credit_runtime::kafka::ConsumerLag::new(
            &tel,
            &naming.engine_group(),
        )),
        ..Default::default()
    };
    let mut cc = credit_runtime::kafka::consumer(&kafka, "credit-engine", &naming.engine_group());
    credit_runtime::kafka::enable_statistics(&mut cc, &kafka);
    // Range assignment gives one instance partition p of both input topics.
    cc.set("partition.assignment.strategy", "range");
    if !config.engine.instance_id.is_empty() {
        cc.set("group.instance.id", &config.engine.instance_id);
    }
    let consumer: StreamConsumer<EngineContext> = cc.create_with_context(ctx)?;
    let (records, commands, changelog) = (
        naming.records(),
        naming.engine_commands(),
        naming.engine_state(),
    );
    consumer.subscribe(&[&records, &commands])?;
    let meta = consumer.fetch_metadata(None, Duration::from_secs(15))?;
    let partitions = |t: &str| {
        meta.topics()
            .iter()
            .find(|x| x.name() == t)
            .map_or(0, |x| x.partitions().len() as i32)
    };
    let (np_records, np_commands, np_changelog) = (
        partitions(&records),
        partitions(&commands),
        partitions(&changelog),
    );
    if np_records == 0 || np_records != np_commands || np_changelog < np_records {
        return Err(Error::Config(format!(
            "{records} ({np_records} partitions), {commands} ({np_commands}) and {changelog} ({np_changelog}) must exist, the first two with equal partition counts and the changelog with at least as many"
        )));
    }
    let catalogue_topic = (naming.catalogue(), partitions(&naming.catalogue()));
    let notice_partitions = credit_core::DEPARTMENTS
        .iter()
        .map(|d| {
            let t = naming.notices(d.id);
            let n = partitions(&t).max(1);
            (d.id, (t, n))
        })
        .collect();
    let m = tel.meter();
    let inst = Instruments {
        notices: m
            .u64_counter("credit_bus_notices_sent")
            .with_description("Notices acknowledged, by department and kind")
            .build(),
        suppressed: m
            .u64_counter("credit_bus_notices_suppressed")
            .with_description("Notices not resent because recovery found them already sent")
            .build(),
        rejected: m
            .u64_counter("credit_bus_engine_inputs_rejected")
            .with_description("Records and commands the engine could not use")
            .build(),
        recovery: m
            .f64_histogram("credit_bus_engine_recovery_duration")
            .with_unit("s")
            .with_description("Time to rebuild a partition's state")
            .build(),
    };
    let producer: FutureProducer =
        credit_runtime::kafka::producer(&kafka, "credit-engine").create()?;
    let mut engine = Engine {
        kafka: kafka.clone(),
        records,
        changelog,
        catalogues: BTreeMap::from([(base_version, catalogue)]),
        base_version,
        catalogue_topic,
        catalogue_gauge: credit_runtime::metrics::MetricName::CatalogueActiveVersion.gauge(
            &tel.meter(),
            "The newest catalogue version this engine has activated",
        ),
        producer,
        notice_partitions,
        notice_schema_ids,
        writer_schemas: HashMap::new(),
        registry,
        states: HashMap::new(),
        fenced: HashSet::new(),
        guard: GapGuard::default(),
        commands: naming.engine_commands(),
        owner: format!(
            "{}-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
            rand_suffix()
        ),
        grace: Duration::from_millis(config.engine.takeover_grace_ms),
        reader: std::sync::Arc::new(Mutex::new(credit_runtime::kafka::reader(
            &kafka,
            "credit-engine-fence",
        )?)),
        inst,
        tracer: tel.tracer().clone(),
        group: naming.engine_group(),
        traces: HashMap::new(),
    };
    tracing::info!(
        catalogue_version = base_version,
        measures = engine.catalogues[&base_version].measures.len(),
        "engine running"
    );
    engine.catalogue_gauge.record(base_version as i64, &[]);
    ready.set_ready();

    let batch_size = config.engine.batch_size;
    let mut last_stall_check = Instant::now();
    loop {
        let first = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            m = consumer.recv() => m.map(|m| m.detach()),
            _ = tokio::time::sleep(STALL_CHECK) => {
                rebalance(&mut engine, &consumer).await?;
                unstall(&mut engine.guard, &consumer)?;
                last_stall_check = Instant::now();
                continue;
            }
        };
        if last_stall_check.elapsed() >= STALL_CHECK {
            unstall(&mut engine.guard, &consumer)?;
            last_stall_check = Instant::now();
        }
        let mut batch = Vec::with_capacity(batch_size);
        let mut next = Some(first);
        while let Some(m) = next.take() {
            match m {
                Ok(m) => batch.push(m),
                Err(e) => tracing::warn!(error = %e, "consumer error"),
            }
            if batch.len() < batch_size {
                next = consumer
                    .recv()
                    .now_or_never()
                    .map(|r| r.map(|m| m.detach()));
            }
        }
        rebalance(&mut engine, &consumer).await?;
        let assigned: HashSet<i32> = consumer
            .assignment()?
            .elements()
            .iter()
            .filter(|e| e.topic() == engine.records)
            .map(|e| e.partition())
            .collect();
        batch.retain(|m| {
            assigned.contains(&m.partition()) && !engine.fenced.contains(&m.partition())
        });

        let mut planned = Vec::new();
        let mut touched = HashSet::new();
        if tracing::enabled!(tracing::Level::DEBUG) {
            let mut span: BTreeMap<(String, i32), (i64, i64)> = BTreeMap::new();
            for m in &batch {
                let e = span
                    .entry((m.topic().to_string(), m.partition()))
                    .or_insert((i64::MAX, -1));
                e.0 = e.0.min(m.offset());
                e.1 = e.1.max(m.offset());
            }
            tracing::debug!(pid = std::process::id(), batch = ?span, "batch read");
        }
        // A partition whose broker skipped records is sought back; the rest of
        // this batch from it is read again after the seek.
        let mut rewound: HashSet<(String, i32)> = HashSet::new();
        for m in &batch {
            let key = (m.topic().to_string(), m.partition());
            if rewound.contains(&key) {
                continue;
            }
            touched.insert(m.partition());
            let processing = engine.tracer.process_message(m, &engine.group);
            match engine.plan(m).await? {
                Step::Notices(ns) => {
                    for n in &ns {
                        let cx = processing.context().clone();
                        engine.traces.insert(n.notice_id.clone(), cx);
                    }
                    planned.extend(ns.into_iter().map(|n| (m.partition(), n)))
                }
                Step::Rewind(to) => {
                    tracing::warn!(topic = key.0, partition = key.1, wanted = ?engine.guard.next(&key), got = m.offset(), to, "broker skipped input records: re-reading from further back");
                    consumer.seek(
                        m.topic(),
                        m.partition(),
                        Offset::Offset(to),
                        Duration::from_secs(10),
                    )?;
                    rewound.insert(key);
                }
            }
        }
        engine.commit_batch(planned, touched.clone()).await?;
        let mut tpl = TopicPartitionList::new();
        for p in touched {
            let Some(st) = engine
                .states
                .get(&p)
                .filter(|_| !engine.fenced.contains(&p))
            else {
                continue;
            };
            for (topic, next) in &st.checkpoint.next {
                tpl.add_partition_offset(topic, p, Offset::Offset(*next))?;
            }
        }
        tracing::debug!(pid = std::process::id(), stored = ?tpl.elements().iter().map(|e| (e.partition(), e.offset().to_raw())).collect::<Vec<_>>(), "offsets stored");
        if tpl.count() > 0
            && let Err(e) = consumer.store_offsets(&tpl)
        {
            tracing::warn!(error = %e, "offsets not stored (rebalance?); the changelog checkpoint still holds");
        }
    }
    tracing::info!("engine draining");
    let _ = consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notice_partitions_are_stable_and_in_range() {
        for id in ["courts:0:1/no-honours/hrss/punishment/1", "", "x"] {
            let p = partition_for(id, 4);
            assert!((0..4).contains(&p));
            assert_eq!(p, partition_for(id, 4));
        }
        let spread: HashSet<i32> = (0..100)
            .map(|i| partition_for(&format!("r:{i}/m/d/punishment/1"), 4))
            .collect();
        assert_eq!(spread.len(), 4);
    }
}
