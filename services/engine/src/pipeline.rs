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
use credit_core::notice::{ENGINE_INPUT_HEADER, NoticeKind};
use credit_core::record::{InfoKind, ListType, SubjectType};
use credit_measures::Catalogue;
use credit_runtime::acks::{AckContext, AckProducer, Acks};
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
use rdkafka::producer::BaseRecord;
use rdkafka::{Offset, TopicPartitionList};
use rustc_hash::FxHashMap;

use crate::config::Config;
use crate::fence::{ClaimWatch, Verdict as Fence};
use crate::state::{
    Activation, Checkpoint, Claim, Command, EntryState, Input, InputPosition, InputTopic,
    PartitionState, Planned, StoredEntry, floor_key, parse_floor_key, write_entry,
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

/// A writer schema of the records topic, and whether it is ours (then records
/// decode without schema resolution, which costs more than the decode itself).
struct WriterSchema {
    schema: apache_avro::Schema,
    is_ours: bool,
}

/// Decodes a normalised record: directly when its writer schema is ours,
/// otherwise with the writer's schema resolved to ours.
fn decode(
    writer: &WriterSchema,
    body: &[u8],
    topic: &str,
    partition: i32,
    offset: i64,
) -> Result<Input, String> {
    if writer.is_ours {
        let h = credit_schemas::decode::record_head(body).map_err(|e| e.to_string())?;
        return Ok(Input {
            record_id: h.record_id.to_string(),
            department: h.department.to_string(),
            list_type: h.list_type,
            is_list_entry: matches!(h.info_kind, InfoKind::DishonestyList | InfoKind::RedList),
            subject_type: h.subject_type,
            subject_key: h.subject_key.to_string(),
            subject_name: h.subject_name.to_string(),
            decision_number: h.decision_number.to_string(),
            topic: topic.to_string(),
            partition,
            offset,
        });
    }
    #[allow(deprecated)]
    let v = apache_avro::from_avro_datum(
        &writer.schema,
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
    fanout_latency: opentelemetry::metrics::Histogram<f64>,
}

/// Reads one changelog partition to its end (entries and the last checkpoint),
/// then every output partition from its floor to its end for notices this
/// partition already sent. The entries come back as stored (the last value
/// of each), for [`Engine::recover`] to restore with their catalogue versions.
fn replay_changelog(
    k: &KafkaConfig,
    changelog: &str,
    (records, commands): (&str, &str),
    p: i32,
) -> Result<(PartitionState, Vec<StoredEntry>), String> {
    const LIMIT: Duration = Duration::from_secs(120);
    let c =
        credit_runtime::kafka::reader(k, "credit-engine-recovery").map_err(|e| e.to_string())?;
    let mut st = PartitionState::default();
    let mut stored: FxHashMap<String, StoredEntry> = FxHashMap::default();
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
            && let Ok(e) = serde_json::from_slice::<StoredEntry>(value)
        {
            stored.insert(e.record_id.clone(), e);
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
    // Only this partition's notices of input at or after the checkpoint can be
    // planned again; the rest are not "already sent" as far as replay goes.
    let next = |t: &str| st.checkpoint.next.get(t).copied().unwrap_or(0);
    let (records_next, commands_next) = (next(records), next(commands));
    let replayed = |v: &[u8]| match InputPosition::parse(v) {
        Some(i) if i.partition == p => match i.topic {
            InputTopic::Records => i.offset >= records_next,
            InputTopic::Commands => i.offset >= commands_next,
        },
        _ => false,
    };
    let found: Vec<Result<Vec<String>, String>> = std::thread::scope(|s| {
        let handles: Vec<_> = by_topic
            .iter()
            .map(|(topic, parts)| {
                let replayed = &replayed;
                s.spawn(move || {
                    let c = credit_runtime::kafka::reader(k, "credit-engine-recovery")
                        .map_err(|e| e.to_string())?;
                    let mut ids = Vec::new();
                    credit_runtime::kafka::read_to_end(&c, topic, parts, LIMIT, |m| {
                        let mine = m
                            .headers()
                            .and_then(|h| h.iter().find(|h| h.key == ENGINE_INPUT_HEADER))
                            .and_then(|h| h.value)
                            .is_some_and(replayed);
                        if mine && let Some(key) = m.key() {
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
    Ok((st, stored.into_values().collect()))
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
    producer: AckProducer,
    /// Per department, where its notices go; `outlet_of` finds a department's.
    outlets: Vec<Outlet>,
    outlet_of: FxHashMap<&'static str, usize>,
    /// Per measure id, its Chinese name and legal basis, from the newest
    /// version that has it (a lift may name a measure a newer version dropped).
    measure_text: FxHashMap<std::sync::Arc<str>, (String, String)>,
    writer_schemas: HashMap<u32, std::sync::Arc<WriterSchema>>,
    registry: RegistryClient,
    states: FxHashMap<i32, PartitionState>,
    /// Batches sent but not yet checkpointed, oldest first.
    inflight: std::collections::VecDeque<InFlight>,
    /// Per input partition, the offsets after its notices acknowledged so far.
    acked: Floors,
    /// Partitions another instance claimed: not touched until a rebalance hands them over again.
    fenced: HashSet<i32>,
    /// The next input offset wanted per (topic, partition), from the checkpoint:
    /// catches a broker that skips records when a fetch resumes inside a batch.
    guard: GapGuard<(String, i32)>,
    commands: String,
    owner: String,
    grace: Duration,
    watch: ClaimWatch,
    inst: Instruments,
    tracer: credit_runtime::trace::Tracer,
    group: String,
    /// A batch's encoded notices, kept between batches so its pages stay mapped.
    bodies: Vec<u8>,
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
        let acks = Acks::new();
        for p in &parts {
            self.changelog_write(&acks, *p, "claim", &claim).await?;
        }
        acks.wait().await?;
        tokio::time::sleep(self.grace).await;
        let replays: Vec<_> = parts
            .iter()
            .map(|&p| {
                let (k, cl) = (self.kafka.clone(), self.changelog.clone());
                let (r, c) = (self.records.clone(), self.commands.clone());
                tokio::task::spawn_blocking(move || (p, replay_changelog(&k, &cl, (&r, &c), p)))
            })
            .collect();
        for r in replays {
            let (p, st) = r.await.map_err(|e| Error::Recovery(-1, e.to_string()))?;
            let (mut st, stored) = st.map_err(|e| Error::Recovery(p, e))?;
            if stored
                .iter()
                .filter_map(StoredEntry::needs_catalogue)
                .any(|v| !self.catalogues.contains_key(&v))
            {
                self.load_catalogues().await?;
            }
            for e in stored {
                let c = self.catalogues.get(&e.catalogue_version);
                let e = e.restore(c).map_err(|e| Error::Recovery(p, e))?;
                st.entries.insert(e.record_id.clone(), e);
            }
            tracing::info!(
                pid = std::process::id(),
                partition = p,
                entries = st.entries.len(),
                already_sent = st.already_sent.len(),
                ms = started.elapsed().as_millis() as u64,
                "partition recovered"
            );
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
            if st.claimed_by.as_deref() == Some(self.owner.as_str()) {
                self.watch.register(p, st.tail);
            } else {
                tracing::warn!(partition = p, by = ?st.claimed_by, "partition claimed by another instance during takeover; leaving it");
                self.fenced.insert(p);
            }
            self.states.insert(p, st);
        }
        // Floors for every output partition now, in one go: a batch then never
        // waits for them (the per-batch path stays for partitions added later).
        let mut new_floors: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
        for p in parts.iter().filter(|p| !self.fenced.contains(p)) {
            let st = &self.states[p];
            for o in &self.outlets {
                for q in 0..o.partitions {
                    if !st.checkpoint.floors.contains_key(&floor_key(&o.topic, q)) {
                        new_floors.entry(*p).or_default().push((o.topic.clone(), q));
                    }
                }
            }
        }
        if !new_floors.is_empty() {
            self.persist_floors(new_floors).await?;
        }
        // One observation per partition: claim to ready to send.
        for _ in &parts {
            self.inst
                .recovery
                .record(started.elapsed().as_secs_f64(), &[]);
        }
        Ok(())
    }

    async fn writer_schema(&mut self, id: u32) -> Result<std::sync::Arc<WriterSchema>, Error> {
        if !self.writer_schemas.contains_key(&id) {
            let text = self.registry.schema_by_id(id).await?;
            let schema = apache_avro::Schema::parse_str(&text)
                .map_err(|e| Error::Config(format!("schema {id}: {e}")))?;
            let is_ours =
                schema.canonical_form() == credit_schemas::credit_record_schema().canonical_form();
            self.writer_schemas
                .insert(id, std::sync::Arc::new(WriterSchema { schema, is_ours }));
        }
        Ok(self.writer_schemas[&id].clone())
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
        self.measure_text = measure_text(&self.catalogues);
        Ok(())
    }

    /// Makes sure the configured catalogue is on the catalogue topic, so
    /// every reader of the changelog (another instance, `credit-bus catalogue
    /// activate --dry-run`) can restore the duties an entry leaves out from its
    /// version; a version published there with other content is refused.
    async fn publish_base_catalogue(
        &mut self,
        config: &crate::config::EngineConfig,
    ) -> Result<(), Error> {
        let (k, (topic, parts)) = (self.kafka.clone(), self.catalogue_topic.clone());
        let published = tokio::task::spawn_blocking(move || read_catalogues(&k, &topic, parts))
            .await
            .map_err(|e| Error::Config(e.to_string()))?
            .map_err(Error::Config)?;
        match published.iter().find(|c| c.version == self.base_version) {
            Some(c) if *c == self.catalogues[&self.base_version] => return Ok(()),
            Some(_) => {
                return Err(Error::Config(format!(
                    "catalogue version {} on {} differs from the configured one: bump `version`",
                    self.base_version, self.catalogue_topic.0
                )));
            }
            None => {}
        }
        let text = config
            .catalogue_text()
            .map_err(|e| Error::Config(e.to_string()))?;
        let acks = Acks::new();
        acks.send(
            &self.producer,
            BaseRecord::to(&self.catalogue_topic.0)
                .key(&format!("version/{}", self.base_version))
                .payload(text.as_bytes()),
        )
        .await?;
        acks.wait().await?;
        tracing::info!(version = self.base_version, topic = %self.catalogue_topic.0, "published the configured catalogue version");
        Ok(())
    }

    /// Forgets a partition's state: it is rebuilt from the changelog if it comes back.
    fn drop_partition(&mut self, p: i32) {
        self.states.remove(&p);
        self.acked.remove(&p);
        self.watch.forget(p);
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
                    let writer = self.writer_schema(id).await?;
                    decode(&writer, body, &topic, p, offset)
                }
                Some(Err(e)) => Err(e.to_string()),
                None => Err("empty value".into()),
            };
            match input {
                Ok(i) => {
                    let st = self.states.get_mut(&p).expect("recovered above");
                    let catalogue = &self.catalogues[&st.catalogue_version];
                    st.plan_record(catalogue, i)
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

    /// Sends one changelog record to partition `p`, counted in `acks`.
    async fn changelog_write(
        &self,
        acks: &std::sync::Arc<Acks>,
        p: i32,
        key: &str,
        value: &[u8],
    ) -> Result<(), Error> {
        Ok(acks
            .send(
                &self.producer,
                BaseRecord::to(&self.changelog)
                    .partition(p)
                    .key(key)
                    .payload(value),
            )
            .await?)
    }

    /// The notice's outlet (index into `outlets`) and partition.
    fn notice_target(&self, n: &Planned) -> (usize, i32) {
        let o = self.outlet_of[n.department];
        (o, partition_for(&n.notice_id, self.outlets[o].partitions))
    }

    /// Sends a batch's notices exactly once and checkpoints every touched partition.
    /// Drops every partition another instance has claimed since we last looked,
    /// with the notices this batch planned for it: that instance replays them.
    async fn fence(&mut self, touched: &HashSet<i32>) -> Result<(), Error> {
        let parts: Vec<i32> = touched
            .iter()
            .copied()
            .filter(|p| self.states.contains_key(p))
            .collect();
        if parts.is_empty() {
            return Ok(());
        }
        let verdicts = self
            .watch
            .verdicts(&parts, Duration::from_secs(30))
            .await
            .map_err(|e| Error::Recovery(-1, e))?;
        for (p, v) in verdicts {
            if let Fence::Claimed(other) = v {
                tracing::warn!(partition = p, by = %other, "partition claimed by another instance; dropping it");
                self.drop_partition(p);
                self.fenced.insert(p);
            }
        }
        Ok(())
    }

    /// Persists, per input partition, the current end of each output partition
    /// given as its floor (one checkpoint per input partition), before anything
    /// is sent there.
    async fn persist_floors(
        &mut self,
        new_floors: BTreeMap<i32, Vec<(String, i32)>>,
    ) -> Result<(), Error> {
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
                // Every end in one ListOffsets round trip per broker ("latest"
                // is timestamp -1); one query per partition for any it missed.
                let mut tpl = TopicPartitionList::new();
                for (t, q) in &wanted {
                    tpl.add_partition_offset(t, *q, Offset::End)?;
                }
                let mut out = HashMap::new();
                if let Ok(ends) = c.offsets_for_times(tpl, Duration::from_secs(15)) {
                    for e in ends.elements() {
                        if let (None, Offset::Offset(o)) = (e.error().err(), e.offset()) {
                            out.insert((e.topic().to_string(), e.partition()), o);
                        }
                    }
                }
                for (t, q) in wanted {
                    if !out.contains_key(&(t.clone(), q)) {
                        let (_, high) = c.fetch_watermarks(&t, q, Duration::from_secs(15))?;
                        out.insert((t, q), high);
                    }
                }
                Ok(out)
            },
        )
        .await
        .map_err(|e| Error::Config(e.to_string()))??;
        let acks = Acks::new();
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
            let cp = serde_json::to_vec(&self.states[p].checkpoint).expect("checkpoints serialise");
            self.changelog_write(&acks, *p, "checkpoint", &cp).await?;
        }
        acks.wait().await?;
        Ok(())
    }

    /// Sends a batch's notices (after the fence check and any new floors) and
    /// queues its checkpoint behind their acknowledgements: see [`Engine::advance`].
    async fn send_batch(
        &mut self,
        consumer: &StreamConsumer<EngineContext>,
        planned: Vec<(i32, usize, Planned)>,
        inputs: &[Planning],
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
        let planned: Vec<(i32, usize, Planned)> = planned
            .into_iter()
            .filter(|(p, _, _)| touched.contains(p))
            .collect();
        // 1. Output partitions new to an input partition get a floor, persisted first.
        let mut new_floors: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
        // (Recovery gave every known output partition a floor; this catches
        // the rest.) Each (input, department, partition) is looked at once.
        let mut targets = Vec::with_capacity(planned.len());
        let mut seen: rustc_hash::FxHashSet<(i32, usize, i32)> = Default::default();
        for (p, _, n) in &planned {
            let (o, q) = self.notice_target(n);
            targets.push((o, q));
            let topic = &self.outlets[o].topic;
            if seen.insert((*p, o, q))
                && !self.states[p]
                    .checkpoint
                    .floors
                    .contains_key(&floor_key(topic, q))
            {
                new_floors.entry(*p).or_default().push((topic.clone(), q));
            }
        }
        if !new_floors.is_empty() {
            // A floor checkpoint restates the last checkpoint: let every batch
            // in flight write its own first.
            self.advance(consumer, 0).await?;
            self.persist_floors(new_floors).await?;
        }

        // 2. Every notice sent from now on lies above the offsets acknowledged so
        // far: those are the floors of the batch before this one.
        if let Some(prev) = self.inflight.back_mut()
            && prev.floors.is_none()
        {
            prev.floors = Some(self.acked.clone());
        }

        // 3. The notices themselves, skipping those a dead instance already sent;
        // one acknowledgement group per input partition, whose floors they move.
        let groups: FxHashMap<i32, std::sync::Arc<Acks>> =
            touched.iter().map(|p| (*p, Acks::new())).collect();
        let mut counts: SentCounts = vec![[0; NoticeKind::ALL.len()]; self.outlets.len()];
        // Encoded in plan order, while each entry's state is in cache, into
        // one buffer; then sent grouped by output partition, each partition's
        // notices in plan order (so every partition receives exactly what it
        // would unsorted), and librdkafka writes and frees each partition's
        // messages from memory allocated together. Sent in plan order, one
        // entry's notices spread over every department and the produce path
        // cost about twice the CPU per notice (docs/engine.md, session 6).
        let mut bodies = std::mem::take(&mut self.bodies);
        bodies.clear();
        // (target, plan index, body start and end in `bodies`): sorted, by
        // target and then plan order, the plan index being unique.
        let mut order: Vec<((usize, i32), u32, u32, u32)> = Vec::with_capacity(planned.len());
        // What recovery found already sent is not sent again (only after a
        // takeover is anything there).
        let mut skip = Vec::new();
        if touched
            .iter()
            .any(|p| !self.states[p].already_sent.is_empty())
        {
            skip = planned
                .iter()
                .map(|(p, _, n)| {
                    let st = self.states.get_mut(p).expect("recovered");
                    st.already_sent.remove(&n.notice_id)
                })
                .collect();
            let suppressed = skip.iter().filter(|s| **s).count();
            self.inst.suppressed.add(suppressed as u64, &[]);
        }
        // An entry's notices are planned together: its state is looked up
        // once, not once per notice.
        let mut last: Option<(i32, usize, &EntryState)> = None;
        for (i, ((p, _, n), t)) in planned.iter().zip(&targets).enumerate() {
            if skip.get(i) == Some(&true) {
                continue;
            }
            let id = std::sync::Arc::as_ptr(&n.record_id) as *const u8 as usize;
            let e = match last {
                Some((lp, lid, e)) if lp == *p && lid == id => e,
                _ => {
                    let e = &self.states[p].entries[&*n.record_id];
                    last = Some((*p, id, e));
                    e
                }
            };
            let (measure_name, legal_basis) = self
                .measure_text
                .get(&n.measure_id)
                .map_or(("", ""), |(a, b)| (a.as_str(), b.as_str()));
            let notice = n.notice(e, measure_name, legal_basis);
            let start = bodies.len() as u32;
            encode::notice_framed(&mut bodies, self.outlets[t.0].schema_id, &notice);
            order.push((*t, i as u32, start, bodies.len() as u32));
            counts[t.0][n.kind.index() as usize] += 1;
        }
        order.sort_unstable();
        for ((o, q), i, start, end) in order {
            let (p, input, n) = &planned[i as usize];
            let topic = self.outlets[o].topic.as_str();
            let acks = &groups[p];
            let input = &inputs[*input];
            // `send <notices topic>` under the input's `process` span; the key
            // is a notice id (no personal data).
            let sending = self
                .tracer
                .send(Some(&input.context), topic, Some(&n.notice_id));
            let headers = credit_runtime::trace::inject(
                OwnedHeaders::new_with_capacity(2).insert(Header {
                    key: ENGINE_INPUT_HEADER,
                    value: Some(input.position.as_str()),
                }),
                sending.context(),
            );
            acks.send(
                &self.producer,
                BaseRecord::to(topic)
                    .partition(q)
                    .key(n.notice_id.as_str())
                    .payload(&bodies[start as usize..end as usize])
                    .headers(headers),
            )
            .await?;
        }
        self.bodies = bodies;

        // 4. What the checkpoint after this batch will hold, written once every
        // notice above is acknowledged.
        let mut checkpoints = Vec::with_capacity(touched.len());
        for p in &touched {
            let st = self.states.get_mut(p).expect("recovered");
            let dirty: Vec<String> = st.dirty.drain().collect();
            let mut entries = Vec::with_capacity(dirty.len());
            for id in dirty {
                let e = &st.entries[&id];
                // Sized for a typical entry without its duties, so the
                // writer does not regrow it.
                let mut v = Vec::with_capacity(512);
                write_entry(&mut v, e, self.catalogues.get(&e.catalogue_version));
                entries.push((format!("entry/{id}"), v));
            }
            checkpoints.push((
                *p,
                PendingCheckpoint {
                    // Floors rise only once every notice recovery found has been
                    // replayed: until then a second crash must still scan from
                    // where the first left.
                    raise_floors: st.already_sent.is_empty(),
                    entries,
                    next: st.next.clone(),
                    catalogue_version: st.catalogue_version,
                },
            ));
        }
        self.inflight.push_back(InFlight {
            notices: groups.into_iter().collect(),
            checkpoints,
            sent: counts,
            floors: None,
            changelog: None,
            created_ms: inputs.iter().filter_map(|i| i.created_ms).collect(),
        });
        self.advance(consumer, MAX_IN_FLIGHT).await
    }

    /// What the oldest batch in flight waits for, if any batch is.
    fn front_acks(&self) -> Option<std::sync::Arc<Acks>> {
        let b = self.inflight.front()?;
        match &b.changelog {
            Some((a, _)) => Some(a.clone()),
            None => b
                .notices
                .iter()
                .find(|(_, a)| !a.is_settled())
                .or(b.notices.first())
                .map(|(_, a)| a.clone()),
        }
    }

    /// Moves batches in flight on, oldest first. Once the oldest batches'
    /// notices are all acknowledged, their changed entries and one checkpoint
    /// per input partition are written together (group commit: one changelog
    /// round trip for however many batches completed meanwhile, and never
    /// before the previous write is acknowledged, so a retried produce cannot
    /// put an older checkpoint last); once those are acknowledged their input
    /// offsets are stored. Returns when nothing can move without waiting and
    /// at most `limit` batches remain in flight.
    async fn advance(
        &mut self,
        consumer: &StreamConsumer<EngineContext>,
        limit: usize,
    ) -> Result<(), Error> {
        loop {
            let must = self.inflight.len() > limit;
            let Some(front) = self.inflight.front_mut() else {
                break;
            };
            if let Some((acks, _)) = &front.changelog {
                if !must && !acks.is_settled() {
                    return Ok(());
                }
                let (acks, tpl) = front.changelog.take().expect("checked above");
                self.inflight.pop_front();
                acks.wait().await?;
                // The changelog checkpoint is the truth; the group's committed
                // offset only says where to start reading.
                if tpl.count() > 0
                    && let Err(e) = consumer.store_offsets(&tpl)
                {
                    tracing::warn!(error = %e, "offsets not stored (rebalance?); the changelog checkpoint still holds");
                }
                continue;
            }
            let settled = |b: &InFlight| b.notices.iter().all(|(_, a)| a.is_settled());
            if !must && !settled(front) {
                return Ok(());
            }
            // The oldest batch (awaited if it must) and every batch behind it
            // whose notices are all acknowledged already.
            let mut done = vec![self.inflight.pop_front().expect("front exists")];
            while let Some(b) = self.inflight.front() {
                if b.changelog.is_some() || !settled(b) {
                    break;
                }
                done.push(self.inflight.pop_front().expect("front exists"));
            }
            let mut sent: SentCounts = vec![[0; NoticeKind::ALL.len()]; self.outlets.len()];
            // Per input partition: its changed entries (last value of each) and
            // what the last batch touching it says the checkpoint holds.
            let mut entries: BTreeMap<i32, BTreeMap<String, Vec<u8>>> = BTreeMap::new();
            let mut last: BTreeMap<i32, (PendingCheckpoint, Option<FxHashMap<String, i64>>)> =
                BTreeMap::new();
            for mut b in done {
                for (p, acks) in std::mem::take(&mut b.notices) {
                    let w = acks.wait().await?;
                    let acked = self.acked.entry(p).or_default();
                    for (topic, q, next) in w.iter() {
                        let o = acked.entry(floor_key(topic, q)).or_insert(0);
                        *o = (*o).max(next);
                    }
                }
                for (total, by_kind) in sent.iter_mut().zip(&b.sent) {
                    for (t, n) in total.iter_mut().zip(by_kind) {
                        *t += n;
                    }
                }
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as i64);
                for c in b.created_ms {
                    let s = (now_ms - c).max(0) as f64 / 1000.0;
                    self.inst.fanout_latency.record(s, &[]);
                }
                for (p, mut pc) in b.checkpoints {
                    entries.entry(p).or_default().extend(pc.entries.drain(..));
                    // The next batch's start, or now if none started since.
                    let floors = b.floors.as_ref().unwrap_or(&self.acked).get(&p).cloned();
                    last.insert(p, (pc, floors));
                }
            }
            // One counter update per (department, kind), not per notice.
            for (o, by_kind) in self.outlets.iter().zip(&sent) {
                for (kind, n) in NoticeKind::ALL.iter().zip(by_kind) {
                    if *n > 0 {
                        self.inst.notices.add(
                            *n,
                            &[
                                credit_runtime::metrics::department(o.department),
                                KeyValue::new(credit_runtime::metrics::label::KIND, kind.as_str()),
                            ],
                        );
                    }
                }
            }
            let acks = Acks::new();
            let mut tpl = TopicPartitionList::new();
            for (p, (pc, floors)) in last {
                // A partition dropped since (revoked, claimed) is its new owner's.
                if self.fenced.contains(&p) {
                    continue;
                }
                let Some(st) = self.states.get_mut(&p) else {
                    continue;
                };
                if pc.raise_floors
                    && let Some(f) = floors
                {
                    st.checkpoint.floors.extend(f);
                }
                st.checkpoint.next = pc.next;
                st.checkpoint.catalogue_version = pc.catalogue_version;
                for (topic, next) in &st.checkpoint.next {
                    tpl.add_partition_offset(topic, p, Offset::Offset(*next))?;
                }
                let cp = serde_json::to_vec(&st.checkpoint).expect("checkpoints serialise");
                for (k, v) in entries.remove(&p).unwrap_or_default() {
                    self.changelog_write(&acks, p, &k, &v).await?;
                }
                self.changelog_write(&acks, p, "checkpoint", &cp).await?;
            }
            self.inflight.push_front(InFlight {
                notices: Vec::new(),
                checkpoints: Vec::new(),
                sent: Vec::new(),
                floors: None,
                changelog: Some((acks, tpl)),
                created_ms: Vec::new(),
            });
        }
        Ok(())
    }
}

/// How many batches may have notices or checkpoints unacknowledged at once.
const MAX_IN_FLIGHT: usize = 16;

/// An input message that planned notices: its `process` span (each notice is
/// sent in a child span) and its position, for the notices' input header.
struct Planning {
    context: credit_runtime::trace::SpanContext,
    position: String,
    /// The input's timestamp (ms since the epoch), for the fan-out latency.
    created_ms: Option<i64>,
}

/// What a touched input partition's checkpoint will hold after a batch.
struct PendingCheckpoint {
    raise_floors: bool,
    /// Changed entries, serialised as they were at the end of the batch.
    entries: Vec<(String, Vec<u8>)>,
    next: BTreeMap<String, i64>,
    catalogue_version: u32,
}

/// A batch whose notices are sent but whose checkpoint is not yet acknowledged.
struct InFlight {
    /// Per input partition, its notices' acknowledgements; emptied once all came.
    notices: Vec<(i32, std::sync::Arc<Acks>)>,
    checkpoints: Vec<(i32, PendingCheckpoint)>,
    sent: SentCounts,
    /// Per input partition, the offsets acknowledged when the next batch began
    /// sending: every notice after this batch lies at or above them.
    floors: Option<Floors>,
    /// Once written: the changelog writes' acknowledgements and the input
    /// offsets to store after them.
    changelog: Option<(std::sync::Arc<Acks>, TopicPartitionList)>,
    /// Timestamps (ms) of the inputs that planned this batch's notices.
    created_ms: Vec<i64>,
}

/// Notices sent per outlet (index into `Engine::outlets`) and kind
/// (`NoticeKind::ALL` order); empty for a batch that sent none.
type SentCounts = Vec<[u64; NoticeKind::ALL.len()]>;

/// Where one department's notices go.
struct Outlet {
    department: &'static str,
    topic: String,
    partitions: i32,
    /// The registry id of the notice schema under the topic's subject.
    schema_id: u32,
}

/// Per input partition, per output partition (`floor_key`): an offset.
type Floors = FxHashMap<i32, FxHashMap<String, i64>>;

/// Per measure id, its name and legal basis from the newest version that has
/// it: what every notice carries, looked up once per notice.
pub fn measure_text(
    catalogues: &BTreeMap<u32, Catalogue>,
) -> FxHashMap<std::sync::Arc<str>, (String, String)> {
    let mut out = FxHashMap::default();
    for c in catalogues.values() {
        for m in &c.measures {
            out.insert(m.id.clone(), (m.name_zh.clone(), m.legal_basis.clone()));
        }
    }
    out
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
    if revoked.is_empty() && newly.is_empty() {
        return Ok(());
    }
    // Batches in flight finish first (as a batch being sent during a rebalance
    // always did): their partitions' state is about to go.
    engine.advance(consumer, 0).await?;
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
    let mut schema_ids = Vec::with_capacity(credit_core::DEPARTMENTS.len());
    for d in credit_core::DEPARTMENTS {
        let subject = credit_core::topics::value_subject(&naming.notices(d.id));
        schema_ids.push(
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
    if catalogue_topic.1 == 0 {
        return Err(Error::Config(format!(
            "{} must exist: run `credit-bus topics create`",
            catalogue_topic.0
        )));
    }
    let outlets: Vec<Outlet> = credit_core::DEPARTMENTS
        .iter()
        .zip(schema_ids)
        .map(|(d, schema_id)| {
            let topic = naming.notices(d.id);
            Outlet {
                department: d.id,
                partitions: partitions(&topic).max(1),
                topic,
                schema_id,
            }
        })
        .collect();
    let outlet_of = outlets
        .iter()
        .enumerate()
        .map(|(i, o)| (o.department, i))
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
        fanout_latency: credit_runtime::metrics::MetricName::EngineFanoutLatency.seconds_histogram(
            &m,
            "Time from an input's timestamp to its last notice acknowledged",
        ),
    };
    let producer: AckProducer =
        credit_runtime::kafka::producer(&kafka, "credit-engine").create_with_context(AckContext)?;
    let owner = format!(
        "{}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
        rand_suffix()
    );
    let grace = Duration::from_millis(config.engine.takeover_grace_ms);
    let catalogues = BTreeMap::from([(base_version, catalogue)]);
    let mut engine = Engine {
        kafka: kafka.clone(),
        records,
        changelog,
        measure_text: measure_text(&catalogues),
        catalogues,
        base_version,
        catalogue_topic,
        catalogue_gauge: credit_runtime::metrics::MetricName::CatalogueActiveVersion.gauge(
            &tel.meter(),
            "The newest catalogue version this engine has activated",
        ),
        producer,
        outlets,
        outlet_of,
        writer_schemas: HashMap::new(),
        registry,
        states: FxHashMap::default(),
        inflight: Default::default(),
        acked: Default::default(),
        fenced: HashSet::new(),
        guard: GapGuard::default(),
        commands: naming.engine_commands(),
        watch: ClaimWatch::start(&kafka, naming.engine_state(), owner.clone(), grace)?,
        owner,
        grace,
        inst,
        tracer: tel.tracer().clone(),
        group: naming.engine_group(),
        bodies: Vec::new(),
    };
    engine.publish_base_catalogue(&config.engine).await?;
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
        let front = engine.front_acks();
        let first = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            // The oldest batch in flight can move on: checkpoint it, store its offsets.
            _ = async { front.as_ref()?.settled().await; Some(()) }, if front.is_some() => {
                engine.advance(&consumer, usize::MAX).await?;
                continue;
            }
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

        // Sized for a batch of list entries, so it does not grow by copying.
        let mut planned = Vec::with_capacity(batch.len() * 12);
        let mut inputs = Vec::new();
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
                    if !ns.is_empty() {
                        let i = inputs.len();
                        let topic = if m.topic() == engine.records {
                            InputTopic::Records
                        } else {
                            InputTopic::Commands
                        };
                        let position = InputPosition {
                            partition: m.partition(),
                            topic,
                            offset: m.offset(),
                        };
                        inputs.push(Planning {
                            context: processing.context().clone(),
                            position: position.to_string(),
                            created_ms: m.timestamp().to_millis(),
                        });
                        planned.extend(ns.into_iter().map(|n| (m.partition(), i, n)));
                    }
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
        engine
            .send_batch(&consumer, planned, &inputs, touched)
            .await?;
    }
    tracing::info!("engine draining");
    engine.advance(&consumer, 0).await?;
    let _ = consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The direct decoder and `apache_avro` with schema resolution (the path
    /// for foreign writer schemas) read every department's sample records
    /// the same way.
    #[test]
    fn both_decode_paths_agree_on_sample_records() {
        let ours = |is_ours| WriterSchema {
            schema: credit_schemas::credit_record_schema().clone(),
            is_ours,
        };
        let (fast, generic) = (ours(true), ours(false));
        let mut g = credit_datagen::Generator::new(7, 0.0);
        let mut entries = 0;
        for d in credit_core::catalogue::publishing_departments() {
            for i in 0..200 {
                let s = g.record(d.id);
                let ctx = credit_core::record::Context {
                    department: d.id,
                    source_topic: "credit.inbound",
                    partition: 2,
                    offset: i,
                    timestamp_ms: None,
                    today: credit_runtime::today(),
                };
                let mut body = Vec::new();
                credit_normaliser::adapters::normalise(d.inbound.unwrap(), &ctx, &s.value, |r| {
                    credit_schemas::encode::credit_record_body(&mut body, r)
                })
                .expect("valid samples");
                let a = decode(&fast, &body, "credit.records", 1, i).unwrap();
                let b = decode(&generic, &body, "credit.records", 1, i).unwrap();
                assert_eq!(a, b);
                entries += usize::from(a.is_list_entry);
            }
        }
        assert!(entries > 100, "the samples hold list entries ({entries})");
        let bad = decode(&fast, b"\x02", "credit.records", 0, 0).unwrap_err();
        assert!(bad.contains("truncated"), "{bad}");
    }

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
