//! The engine's loop: read records and commands, plan notices, send them with
//! the changelog writes and input offsets in one Kafka transaction.
//!
//! One iteration takes what input has arrived (up to `max_batch`), plans each
//! input against its partition's state ([`credit_measures::plan`]), sends the
//! batch's notices grouped by output partition, runs expiry, and commits when
//! input pauses, the interval passes or the batch is full ([`Cycle`]). A
//! commit writes the changed entries to the changelog, waits for every record
//! to be acknowledged, adds the input offsets to the transaction and commits
//! it. See `docs/engine.md` for why that is exactly once.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::{Duration, Instant};

use credit_core::ReasonCode;
use credit_core::notice::NoticeKind;
use credit_core::topics::Naming;
use credit_measures::Catalogue;
use credit_measures::plan::{PartitionState, Planned, RecordOutcome, Source};
use credit_runtime::config::KafkaConfig;
use credit_runtime::errors::{Class, Classify, Disposition, ErrorPolicy, Fault};
use credit_runtime::metrics::{MetricName, label};
use credit_runtime::ops::Readiness;
use credit_runtime::shutdown::Shutdown;
use credit_runtime::telemetry::Telemetry;
use credit_schemas::changelog::{self, PartitionMeta};
use credit_schemas::commands::{self, Command};
use credit_schemas::registry::RegistryClient;
use futures::FutureExt;
use opentelemetry::KeyValue;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::BaseRecord;
use rdkafka::{Offset, TopicPartitionList};
use rustc_hash::FxHashMap;

use crate::config::Config;
use crate::cycle::{Cycle, OnCommitError, on_commit_error};
use crate::input::{Decoder, InputError};
use crate::outlets::{Outlet, Outlets};
use crate::producer::{Transactions, flags};
use crate::rebalance::EngineContext;
use crate::restore;

/// `__connect.errors.class.name` of the engine's dead letters.
pub const DEAD_LETTER_CLASS: &str = "cn.gov.guangzhou.creditbus.engine.Engine";

/// Why an engine instance stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration: {0}")]
    Config(String),
    #[error("{what}: {detail} (code {code})")]
    Stop {
        what: &'static str,
        code: &'static str,
        detail: String,
    },
}

impl Error {
    fn stop(what: &'static str, e: &dyn Classify) -> Error {
        Error::Stop {
            what,
            code: e.class().code,
            detail: e.to_string(),
        }
    }
}

struct Instruments {
    notices: opentelemetry::metrics::Counter<u64>,
    recovery: opentelemetry::metrics::Histogram<f64>,
    fanout_latency: opentelemetry::metrics::Histogram<f64>,
    commit: opentelemetry::metrics::Histogram<f64>,
    late: opentelemetry::metrics::Counter<u64>,
    expired: opentelemetry::metrics::Counter<u64>,
    duplicates: opentelemetry::metrics::Counter<u64>,
    updated: opentelemetry::metrics::Counter<u64>,
    rejected: opentelemetry::metrics::Counter<u64>,
    catalogue: opentelemetry::metrics::Gauge<i64>,
}

impl Instruments {
    fn new(tel: &Telemetry) -> Instruments {
        let m = tel.meter();
        Instruments {
            notices: MetricName::NoticesSent.counter(
                &m,
                "Notices committed to department topics, by department and kind",
            ),
            recovery: MetricName::EngineRecoveryDuration
                .seconds_histogram(&m, "Time to replay partitions' state from the changelog"),
            fanout_latency: MetricName::EngineFanoutLatency.seconds_histogram(
                &m,
                "Time from an input's timestamp to the commit of its notices",
            ),
            commit: MetricName::EngineCommitDuration.seconds_histogram(
                &m,
                "Time to commit one transaction (changelog, acknowledgements, offsets, commit)",
            ),
            late: MetricName::EntriesLate.counter(
                &m,
                "List entries already expired on arrival (kept, nothing sent), by department",
            ),
            expired: MetricName::EntriesExpired.counter(
                &m,
                "List entries lifted because their validity ended, by department",
            ),
            duplicates: MetricName::RecordsDuplicate.counter(
                &m,
                "Records a department resent unchanged (same record key and content digest), by department",
            ),
            updated: MetricName::EntriesUpdated.counter(
                &m,
                "List entries a department's resend changed (only the difference notified), by department",
            ),
            rejected: MetricName::EngineInputsRejected.counter(
                &m,
                "Records and commands the engine could not use (dead-lettered), by input",
            ),
            catalogue: MetricName::CatalogueActiveVersion
                .gauge(&m, "The newest catalogue version this engine has activated"),
        }
    }
}

/// What the open transaction sent, counted when it commits.
#[derive(Default)]
struct Pending {
    /// Per outlet and kind (`NoticeKind::ALL` order).
    sent: Vec<[u64; NoticeKind::ALL.len()]>,
    /// Timestamps (ms) of inputs that planned notices.
    created_ms: Vec<i64>,
    late: BTreeMap<String, u64>,
    expired: BTreeMap<String, u64>,
    duplicates: BTreeMap<String, u64>,
    updated: BTreeMap<String, u64>,
    /// Inputs dead-lettered, by input kind.
    rejected: BTreeMap<&'static str, u64>,
}

/// An input that planned notices: its `process` span's context (each notice
/// is sent in a child span).
struct Planning {
    context: Option<credit_runtime::trace::SpanContext>,
}

/// Everything the loop holds.
struct Engine {
    cfg: crate::config::EngineConfig,
    kafka: KafkaConfig,
    records: String,
    commands: String,
    changelog: String,
    dead_letters: String,
    catalogue_topic: (String, i32),
    /// Partitions of the records and command topics (engine partitions).
    partitions: i32,
    catalogues: BTreeMap<u32, Catalogue>,
    base_version: u32,
    outlets: Outlets,
    decoder: Decoder,
    states: FxHashMap<i32, PartitionState>,
    /// Partitions whose catalogue version changed in the open transaction.
    meta_dirty: BTreeSet<i32>,
    cycle: Cycle,
    pending: Pending,
    txn: Transactions,
    policy: ErrorPolicy,
    inst: Instruments,
    tracer: credit_runtime::trace::Tracer,
    group: String,
    connector: String,
    dlq_limit: usize,
    restore_limit: Duration,
    /// The consumer's rebalance generation the states belong to.
    generation: u64,
    /// Invalid catalogue versions already dead-lettered by this process.
    reported: HashSet<String>,
    /// A batch's encoded notices, kept between batches.
    bodies: Vec<u8>,
    shutdown: Shutdown,
}

type Consumer_ = StreamConsumer<EngineContext>;

impl Engine {
    /// Loads every catalogue version published, dead-lettering invalid ones once.
    async fn load_catalogues(&mut self) -> Result<(), Error> {
        for c in self.published().await? {
            self.catalogues.entry(c.version).or_insert(c);
        }
        self.outlets.set_catalogues(&self.catalogues);
        Ok(())
    }

    /// Every valid catalogue version on the catalogue topic; invalid ones
    /// are dead-lettered (once per process) and left out.
    async fn published(&mut self) -> Result<Vec<Catalogue>, Error> {
        let (k, (topic, parts)) = (self.kafka.clone(), self.catalogue_topic.clone());
        let policy = self.policy.clone();
        let (good, bad) = policy
            .retry("reading the catalogue topic", &self.shutdown, || {
                let (k, topic) = (k.clone(), topic.clone());
                async move {
                    tokio::task::spawn_blocking(move || {
                        credit_runtime::read::catalogue_versions(
                            &k,
                            "credit-engine-catalogue",
                            &topic,
                            parts,
                        )
                    })
                    .await
                    .expect("catalogue reader thread")
                }
            })
            .await
            .map_err(|e| Error::Stop {
                what: "reading the catalogue topic",
                code: "catalogue_unreadable",
                detail: e.to_string(),
            })?;
        for (key, error) in bad {
            if self.reported.insert(key.clone()) {
                tracing::error!(key, error, topic = %self.catalogue_topic.0, "invalid catalogue version on the catalogue topic: never applied");
                *self.pending.rejected.entry("catalogue").or_default() += 1;
                self.policy.count(Class::new(
                    "catalogue_invalid",
                    Fault::Input,
                    Disposition::DeadLetter(ReasonCode::InvalidValue),
                ));
                self.open_txn()?;
                let value = format!("{key}: {error}");
                let rec = BaseRecord::to(&self.dead_letters)
                    .key(key.as_str())
                    .payload(value.as_bytes())
                    .headers(
                        OwnedHeaders::new()
                            .insert(Header {
                                key: credit_core::dlq::REASON,
                                value: Some(ReasonCode::InvalidValue.as_str()),
                            })
                            .insert(Header {
                                key: credit_core::dlq::TOPIC,
                                value: Some(self.catalogue_topic.0.as_str()),
                            }),
                    );
                self.txn
                    .send(rec)
                    .map_err(|e| Error::stop("dead-lettering", &e))?;
            }
        }
        Ok(good)
    }

    /// Makes sure the configured catalogue is on the catalogue topic, so every
    /// reader of the changelog can restore the duties an entry leaves out from
    /// its version; a version published there with other content is refused.
    async fn publish_base_catalogue(&mut self) -> Result<(), Error> {
        let configured = self.catalogues[&self.base_version].clone();
        let published = self.published().await?;
        if let Some(c) = published.iter().find(|c| c.version == self.base_version) {
            if *c == configured {
                self.load_catalogues().await?;
                return self.commit(None).await;
            }
            return Err(Error::Config(format!(
                "catalogue version {} on {} differs from the configured one: bump `version`",
                self.base_version, self.catalogue_topic.0
            )));
        }
        let text = self
            .cfg
            .catalogue_text()
            .map_err(|e| Error::Config(e.to_string()))?;
        self.open_txn()?;
        let key = commands::version_key(self.base_version);
        self.txn
            .send(
                BaseRecord::to(&self.catalogue_topic.0)
                    .key(key.as_str())
                    .payload(text.as_bytes()),
            )
            .map_err(|e| Error::stop("publishing the catalogue", &e))?;
        self.commit(None).await?;
        self.catalogues.insert(self.base_version, configured);
        self.outlets.set_catalogues(&self.catalogues);
        tracing::info!(version = self.base_version, topic = %self.catalogue_topic.0, "published the configured catalogue version");
        Ok(())
    }

    fn open_txn(&mut self) -> Result<(), Error> {
        if self.cycle.open(Instant::now()) {
            self.txn
                .begin()
                .map_err(|e| Error::stop("beginning a transaction", &e))?;
        }
        Ok(())
    }

    /// Replays every assigned partition without state (`p` included) from
    /// the changelog, in parallel.
    async fn restore(&mut self, p: i32, assigned: &BTreeSet<i32>) -> Result<(), Error> {
        let mut parts: Vec<i32> = assigned
            .iter()
            .copied()
            .filter(|q| !self.states.contains_key(q))
            .collect();
        if !parts.contains(&p) {
            parts.push(p);
        }
        let timer = restore::Timer::start();
        let policy = self.policy.clone();
        let (k, cl, limit) = (
            self.kafka.clone(),
            self.changelog.clone(),
            self.restore_limit,
        );
        let replays = policy
            .retry("replaying the changelog", &self.shutdown, || {
                restore::read_changelogs(&k, &cl, &parts, limit)
            })
            .await
            .map_err(|e| Error::Stop {
                what: "replaying the changelog",
                code: "changelog_unreadable",
                detail: e.to_string(),
            })?;
        for (q, mut replay) in replays {
            if replay
                .catalogue_versions()
                .iter()
                .any(|v| !self.catalogues.contains_key(v))
            {
                self.load_catalogues().await?;
            }
            let st = restore::finish(q, replay, &self.catalogues, self.base_version)
                .map_err(|e| Error::stop("replaying the changelog", &e))?;
            if !self.catalogues.contains_key(&st.catalogue_version) {
                return Err(Error::Config(format!(
                    "partition {q} applies catalogue version {}, which is not on {}",
                    st.catalogue_version, self.catalogue_topic.0
                )));
            }
            tracing::info!(
                partition = q,
                entries = st.entries.len(),
                catalogue_version = st.catalogue_version,
                ms = (timer.seconds() * 1000.0) as u64,
                "partition replayed"
            );
            self.states.insert(q, st);
            self.inst.recovery.record(timer.seconds(), &[]);
        }
        Ok(())
    }

    /// Ends the open transaction without effect and drops what it changed;
    /// `all` also forgets every partition (after a rebalance).
    async fn abort(&mut self, consumer: &Consumer_, all: bool) -> Result<(), Error> {
        if self.cycle.is_open() {
            self.txn
                .abort()
                .map_err(|e| Error::stop("aborting a transaction", &e))?;
        }
        let rewind = self.cycle.aborted();
        self.pending = Pending::default();
        self.meta_dirty.clear();
        self.txn.take_failed();
        if all {
            self.states.clear();
            self.cycle.forget_positions();
            return Ok(());
        }
        for p in &rewind.drop {
            self.states.remove(p);
        }
        for ((topic, p), offset) in rewind.seek {
            if let Err(e) =
                consumer.seek(&topic, p, Offset::Offset(offset), Duration::from_secs(10))
            {
                // A partition revoked meanwhile: its new owner starts from the
                // committed offset anyway; the next rebalance check drops it.
                tracing::warn!(topic, partition = p, offset, error = %e, "seek after abort failed");
            }
        }
        Ok(())
    }

    /// Plans one input into the open transaction. Inputs that cannot be used
    /// are dead-lettered in it.
    async fn plan(
        &mut self,
        m: &OwnedMessage,
        today: i32,
        planned: &mut Vec<(i32, usize, Planned)>,
        inputs: &mut Vec<Planning>,
    ) -> Result<(), Error> {
        let p = m.partition();
        self.open_txn()?;
        let processing = self.tracer.process_message(m, &self.group);
        let is_record = m.topic() == self.records;
        let result: Result<Vec<Planned>, (Class, ReasonCode, Option<&'static str>, String)> =
            if is_record {
                let source = Source {
                    topic: m.topic().to_string(),
                    partition: p,
                    offset: m.offset(),
                };
                match self
                    .decoder
                    .record(m.payload(), source, &self.policy, &self.shutdown)
                    .await
                {
                    Ok(input) => {
                        let dept = input.department.clone();
                        let st = self.states.get_mut(&p).expect("replayed before planning");
                        let catalogue = &self.catalogues[&st.catalogue_version];
                        let (outcome, ns) = st.plan_record(catalogue, input, today);
                        let counter = match outcome {
                            RecordOutcome::Late => Some(&mut self.pending.late),
                            RecordOutcome::Duplicate => Some(&mut self.pending.duplicates),
                            RecordOutcome::Updated => Some(&mut self.pending.updated),
                            _ => None,
                        };
                        if let Some(c) = counter {
                            *c.entry(dept).or_default() += 1;
                        }
                        Ok(ns)
                    }
                    Err(e) => Err(self.refusal(&e, e.field())?),
                }
            } else {
                match Command::parse(m.payload().unwrap_or_default()) {
                    Ok(Command::End(c))
                        if credit_core::topics::record_partition(&c.record_id, self.partitions)
                            != p =>
                    {
                        Err((
                            Class::new(
                                "command_refused",
                                Fault::Input,
                                Disposition::DeadLetter(ReasonCode::RefusedCommand),
                            ),
                            ReasonCode::RefusedCommand,
                            Some("record_id"),
                            format!(
                                "sent to partition {p}, but entry {} lives on partition {}: send commands with `credit-bus entry end`",
                                c.record_id,
                                credit_core::topics::record_partition(
                                    &c.record_id,
                                    self.partitions
                                )
                            ),
                        ))
                    }
                    Ok(Command::End(c)) => {
                        let st = self.states.get_mut(&p).expect("replayed before planning");
                        let catalogue = &self.catalogues[&st.catalogue_version];
                        st.plan_command(&c, catalogue, today).map_err(|e| {
                            (
                                Class::new(
                                    "command_refused",
                                    Fault::Input,
                                    Disposition::DeadLetter(ReasonCode::RefusedCommand),
                                ),
                                ReasonCode::RefusedCommand,
                                Some("record_id"),
                                e.to_string(),
                            )
                        })
                    }
                    Ok(Command::Activate(v)) => {
                        if !self.catalogues.contains_key(&v) {
                            self.load_catalogues().await?;
                        }
                        match self.catalogues.get(&v) {
                            Some(new) => {
                                let st = self.states.get_mut(&p).expect("replayed before planning");
                                let ns = st.plan_activation(new, today);
                                self.meta_dirty.insert(p);
                                tracing::info!(
                                    partition = p,
                                    version = v,
                                    notices = ns.len(),
                                    "catalogue version activated"
                                );
                                self.inst.catalogue.record(i64::from(v), &[]);
                                Ok(ns)
                            }
                            None => Err((
                                Class::new(
                                    "command_refused",
                                    Fault::Input,
                                    Disposition::DeadLetter(ReasonCode::RefusedCommand),
                                ),
                                ReasonCode::RefusedCommand,
                                Some("activate"),
                                format!(
                                    "catalogue version {v} is not published on {}",
                                    self.catalogue_topic.0
                                ),
                            )),
                        }
                    }
                    Err(e) => {
                        let e = InputError::from(e);
                        Err(self.refusal(&e, None)?)
                    }
                }
            };
        match result {
            Ok(ns) => {
                if !ns.is_empty() {
                    let i = inputs.len();
                    inputs.push(Planning {
                        context: Some(processing.context().clone()),
                    });
                    if let Some(ms) = m.timestamp().to_millis() {
                        self.pending.created_ms.push(ms);
                    }
                    planned.extend(ns.into_iter().map(|n| (p, i, n)));
                }
            }
            Err((class, reason, field, detail)) => {
                self.dead_letter(m, class, reason, field, &detail, &processing)?;
            }
        }
        self.cycle
            .consumed((m.topic().to_string(), p), m.offset(), p);
        Ok(())
    }

    /// What to do with an input error: its dead-letter reason, or a stop.
    fn refusal(
        &self,
        e: &InputError,
        field: Option<&'static str>,
    ) -> Result<(Class, ReasonCode, Option<&'static str>, String), Error> {
        let class = e.class();
        match class.disposition {
            Disposition::DeadLetter(reason) => Ok((class, reason, field, e.to_string())),
            _ => {
                self.policy.stop("reading input", e);
                Err(Error::stop("reading input", e))
            }
        }
    }

    fn dead_letter(
        &mut self,
        m: &OwnedMessage,
        class: Class,
        reason: ReasonCode,
        field: Option<&str>,
        detail: &str,
        span: &credit_runtime::trace::Span,
    ) -> Result<(), Error> {
        let hs = credit_runtime::dlq::input_headers(m.headers());
        let dl = credit_core::dlq::build(
            &credit_runtime::dlq::input(m, &hs),
            &credit_core::dlq::Reason {
                code: reason.as_str(),
                stage: reason.stage(),
                field,
                detail,
            },
            &credit_core::dlq::Writer {
                connector: &self.connector,
                class_name: DEAD_LETTER_CLASS,
            },
            self.dlq_limit,
        );
        let rec = credit_runtime::dlq::base_record(
            &self.dead_letters,
            &dl,
            credit_runtime::dlq::owned_headers(&dl, Some(span.context())),
            (),
        );
        self.txn
            .send(rec)
            .map_err(|e| Error::stop("dead-lettering", &e))?;
        self.policy.count(class);
        let input = if m.topic() == self.records {
            "record"
        } else {
            "command"
        };
        *self.pending.rejected.entry(input).or_default() += 1;
        tracing::warn!(
            topic = m.topic(),
            partition = m.partition(),
            offset = m.offset(),
            reason = reason.as_str(),
            detail,
            "input dead-lettered"
        );
        Ok(())
    }

    /// Lifts, in the open transaction, every entry whose validity ended.
    fn expire(
        &mut self,
        today: i32,
        planned: &mut Vec<(i32, usize, Planned)>,
        inputs: &mut Vec<Planning>,
    ) -> Result<(), Error> {
        let due: Vec<i32> = self
            .states
            .iter()
            .filter(|(_, st)| st.next_expiry().is_some_and(|d| d < today))
            .map(|(p, _)| *p)
            .collect();
        for p in due {
            self.open_txn()?;
            let st = self.states.get_mut(&p).expect("listed above");
            let ns = st.plan_expiry(today);
            let mut entries: BTreeMap<&str, ()> = BTreeMap::new();
            for n in &ns {
                entries.insert(&n.record_id, ());
            }
            for id in entries.keys() {
                let dept = st.entries[*id].department.clone();
                *self.pending.expired.entry(dept).or_default() += 1;
            }
            self.cycle.touched(p);
            if !ns.is_empty() {
                let i = inputs.len();
                inputs.push(Planning { context: None });
                planned.extend(ns.into_iter().map(|n| (p, i, n)));
            }
        }
        Ok(())
    }

    /// Encodes a batch's notices in plan order (each entry's state in cache)
    /// and sends them grouped by output partition: librdkafka then writes and
    /// frees each partition's messages from memory allocated together, which
    /// halved its CPU per notice against plan order (docs/engine.md).
    fn send_notices(
        &mut self,
        planned: &[(i32, usize, Planned)],
        inputs: &[Planning],
    ) -> Result<(), Error> {
        if planned.is_empty() {
            return Ok(());
        }
        if self.pending.sent.len() != self.outlets.list.len() {
            self.pending.sent = vec![[0; NoticeKind::ALL.len()]; self.outlets.list.len()];
        }
        let mut bodies = std::mem::take(&mut self.bodies);
        bodies.clear();
        let mut order: Vec<((usize, i32), u32, u32, u32)> = Vec::with_capacity(planned.len());
        for (i, (p, _, n)) in planned.iter().enumerate() {
            let Some(t) = self.outlets.target(n) else {
                tracing::error!(
                    department = n.department,
                    "a planned department has no notices topic"
                );
                continue;
            };
            let e = &self.states[p].entries[&*n.record_id];
            let (name, basis) = self.outlets.text(&n.measure_id);
            let start = bodies.len() as u32;
            credit_schemas::encode::notice_framed(
                &mut bodies,
                self.outlets.list[t.0].schema_id,
                &n.notice(e, name, basis),
            );
            order.push((t, i as u32, start, bodies.len() as u32));
            self.pending.sent[t.0][n.kind.index() as usize] += 1;
        }
        order.sort_unstable();
        for ((o, q), i, start, end) in order {
            let (_, input, n) = &planned[i as usize];
            let topic = self.outlets.list[o].topic.as_str();
            // `send <notices topic>` under the input's `process` span; the key
            // is a notice id (no personal data).
            let sending =
                self.tracer
                    .send(inputs[*input].context.as_ref(), topic, Some(&n.notice_id));
            let headers = credit_runtime::trace::headers(sending.context());
            self.txn
                .send(
                    BaseRecord::to(topic)
                        .partition(q)
                        .key(n.notice_id.as_str())
                        .payload(&bodies[start as usize..end as usize])
                        .headers(headers),
                )
                .map_err(|e| Error::stop("sending notices", &e))?;
        }
        self.bodies = bodies;
        Ok(())
    }

    /// Commits the open transaction (if any): changed entries and catalogue
    /// versions to the changelog, every record acknowledged, the input
    /// offsets, the commit. Retried, aborted or stopped by its error.
    async fn commit(&mut self, consumer: Option<&Consumer_>) -> Result<(), Error> {
        if !self.cycle.is_open() {
            return Ok(());
        }
        let started = Instant::now();
        for p in self.cycle.touched_partitions().clone() {
            let Some(st) = self.states.get_mut(&p) else {
                continue;
            };
            for id in st.take_dirty() {
                let e = &st.entries[&id];
                let mut v = Vec::with_capacity(512);
                changelog::write_entry(&mut v, e, self.catalogues.get(&e.catalogue_version));
                let key = changelog::entry_key(&id);
                self.txn
                    .send(
                        BaseRecord::to(&self.changelog)
                            .partition(p)
                            .key(key.as_str())
                            .payload(&v),
                    )
                    .map_err(|e| Error::stop("writing the changelog", &e))?;
            }
            if self.meta_dirty.remove(&p) {
                let v = changelog::write_partition(PartitionMeta {
                    catalogue_version: st.catalogue_version,
                });
                self.txn
                    .send(
                        BaseRecord::to(&self.changelog)
                            .partition(p)
                            .key(changelog::PARTITION_KEY)
                            .payload(&v),
                    )
                    .map_err(|e| Error::stop("writing the changelog", &e))?;
            }
        }
        let mut attempts = 0;
        loop {
            attempts += 1;
            let result = self.finish_commit(consumer);
            let Err(e) = result else { break };
            let (fatal, abort, retriable) = flags(&e);
            match on_commit_error(fatal, abort, retriable) {
                OnCommitError::Retry if attempts < 5 => {
                    self.policy.count(credit_runtime::errors::kafka(&e));
                    tracing::warn!(error = %e, attempts, "commit failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100 * attempts)).await;
                }
                OnCommitError::Stop => {
                    self.policy.stop("committing a transaction", &e);
                    return Err(Error::stop("committing a transaction", &e));
                }
                _ => {
                    self.policy.count(Class::new(
                        "kafka_transaction_abort",
                        Fault::External,
                        Disposition::Retry,
                    ));
                    tracing::warn!(error = %e, inputs = self.cycle.inputs(), "commit failed; aborting the transaction and redoing its work");
                    match consumer {
                        Some(c) => self.abort(c, false).await?,
                        None => {
                            self.txn
                                .abort()
                                .map_err(|e| Error::stop("aborting a transaction", &e))?;
                            self.cycle.aborted();
                        }
                    }
                    return Ok(());
                }
            }
        }
        self.cycle.committed();
        self.inst
            .commit
            .record(started.elapsed().as_secs_f64(), &[]);
        self.count_committed();
        Ok(())
    }

    fn finish_commit(&self, consumer: Option<&Consumer_>) -> Result<(), KafkaError> {
        // Every record (the changelog above all) is acknowledged before the
        // offsets join the transaction: once the group coordinator has them, a
        // new owner of these partitions waits for this transaction to end
        // before it reads the changelog, and must then find all of it there.
        self.txn.flush()?;
        if let Some(c) = consumer {
            let mut tpl = TopicPartitionList::new();
            for ((topic, p), next) in self.cycle.offsets() {
                tpl.add_partition_offset(topic, *p, Offset::Offset(next))?;
            }
            // A partition changed without input (expiry) commits its
            // committed offset again: the offsets carry the group's
            // generation, so an instance that lost the partition without
            // noticing cannot commit lifts its new owner also plans.
            let without_input: Vec<i32> = self
                .cycle
                .touched_partitions()
                .iter()
                .copied()
                .filter(|p| !self.cycle.offsets().any(|((_, q), _)| q == p))
                .collect();
            if !without_input.is_empty() {
                let mut ask = TopicPartitionList::new();
                for p in without_input {
                    ask.add_partition(&self.records, p);
                }
                let committed = tokio::task::block_in_place(|| {
                    c.committed_offsets(ask, Duration::from_secs(10))
                })?;
                for e in committed.elements() {
                    if let Offset::Offset(o) = e.offset() {
                        tpl.add_partition_offset(e.topic(), e.partition(), Offset::Offset(o))?;
                    }
                }
            }
            if tpl.count() > 0 {
                let meta = c
                    .group_metadata()
                    .ok_or(KafkaError::Global(rdkafka::types::RDKafkaErrorCode::State))?;
                self.txn.send_offsets(&tpl, &meta)?;
            }
        }
        self.txn.commit()
    }

    fn count_committed(&mut self) {
        let p = std::mem::take(&mut self.pending);
        for (o, by_kind) in self.outlets.list.iter().zip(&p.sent) {
            for (kind, n) in NoticeKind::ALL.iter().zip(by_kind) {
                if *n > 0 {
                    self.inst.notices.add(
                        *n,
                        &[
                            credit_runtime::metrics::department(o.department),
                            KeyValue::new(label::KIND, kind.as_str()),
                        ],
                    );
                }
            }
        }
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        for c in p.created_ms {
            self.inst
                .fanout_latency
                .record((now_ms - c).max(0) as f64 / 1000.0, &[]);
        }
        for (dept, n) in p.late {
            self.inst
                .late
                .add(n, &[KeyValue::new(label::DEPARTMENT, dept)]);
        }
        for (input, n) in p.rejected {
            self.inst
                .rejected
                .add(n, &[KeyValue::new(label::INPUT, input)]);
        }
        for (counter, by_dept) in [
            (&self.inst.expired, p.expired),
            (&self.inst.duplicates, p.duplicates),
            (&self.inst.updated, p.updated),
        ] {
            for (dept, n) in by_dept {
                counter.add(n, &[KeyValue::new(label::DEPARTMENT, dept)]);
            }
        }
    }
}

/// Checks the topics the engine needs and sizes its outlets.
fn topology(
    consumer: &Consumer_,
    naming: &Naming,
    schema_ids: Vec<u32>,
) -> Result<((String, i32), i32, Outlets), Error> {
    let meta = consumer
        .fetch_metadata(None, Duration::from_secs(15))
        .map_err(|e| Error::stop("reading metadata", &e))?;
    let partitions = |t: &str| {
        meta.topics()
            .iter()
            .find(|x| x.name() == t)
            .map_or(0, |x| x.partitions().len() as i32)
    };
    let (records, commands, changelog) = (
        naming.records(),
        naming.engine_commands(),
        naming.engine_state(),
    );
    let (np_records, np_commands, np_changelog) = (
        partitions(&records),
        partitions(&commands),
        partitions(&changelog),
    );
    if np_records == 0 || np_records != np_commands || np_changelog < np_records {
        return Err(Error::Config(format!(
            "{records} ({np_records} partitions), {commands} ({np_commands}) and {changelog} ({np_changelog}) must exist, the first two with equal partition counts and the changelog with at least as many: run `credit-bus topics create`"
        )));
    }
    for t in [naming.catalogue(), naming.engine_dead_letters()] {
        if partitions(&t) == 0 {
            return Err(Error::Config(format!(
                "{t} must exist: run `credit-bus topics create`"
            )));
        }
    }
    let outlets = credit_core::DEPARTMENTS
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
    Ok((
        (naming.catalogue(), partitions(&naming.catalogue())),
        np_records,
        Outlets::new(outlets),
    ))
}

/// How long an idle loop waits before looking at expiry and open transactions again.
const TICK: Duration = Duration::from_millis(500);

impl Error {
    /// Whether a new consumer and producer may recover from it in-process:
    /// the group coordinator fenced this static member (seen after a broker
    /// restart: the member rejoins with a new member id while the broker
    /// still holds the old one). Everything committed is safe; what was open
    /// is aborted by the new producer's fencing.
    fn is_restartable(&self) -> bool {
        matches!(
            self,
            Error::Stop {
                what: "consuming",
                code: "kafka_fenced",
                ..
            }
        )
    }
}

/// Most in-process restarts after a fenced consumer before the instance
/// stops (and its orchestrator restarts it).
const MAX_RESTARTS: u32 = 5;

/// Runs an engine instance until `shutdown`. A consumer fenced by its group
/// coordinator is replaced (at most [`MAX_RESTARTS`] times, with a pause):
/// the instance starts over, its state replayed from the changelog.
pub async fn run(
    config: Config,
    tel: Telemetry,
    ready: Readiness,
    shutdown: Shutdown,
) -> Result<(), Error> {
    let mut restarts = 0;
    loop {
        match run_once(config.clone(), tel.clone(), ready.clone(), shutdown.clone()).await {
            Err(e) if e.is_restartable() && restarts < MAX_RESTARTS && !shutdown.is_cancelled() => {
                restarts += 1;
                tracing::warn!(error = %e, restarts, "the consumer was fenced; starting over with a new consumer and producer");
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
            }
            other => return other,
        }
    }
}

async fn run_once(
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
    let policy = ErrorPolicy::new(&tel);
    let registry = RegistryClient::new(&config.common.registry.url)
        .map_err(|e| Error::Config(e.to_string()))?;
    let mut schema_ids = Vec::with_capacity(credit_core::DEPARTMENTS.len());
    for d in credit_core::DEPARTMENTS {
        let subject = credit_core::topics::value_subject(&naming.notices(d.id));
        let id = policy
            .retry("registering the notice schema", &shutdown, || {
                registry.register(&subject, credit_schemas::NOTICE_AVSC)
            })
            .await
            .map_err(|e| Error::Stop {
                what: "registering the notice schema",
                code: "registry",
                detail: e.to_string(),
            })?;
        schema_ids.push(id);
    }
    let instance = config.engine.instance();
    let group = naming.engine_group();
    let ctx = EngineContext::new(
        naming.records(),
        credit_runtime::kafka::ConsumerLag::new(&tel, &group),
    );
    let mut cc = credit_runtime::kafka::consumer(&kafka, "credit-engine", &group);
    credit_runtime::kafka::enable_statistics(&mut cc, &kafka);
    cc.set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed")
        // Range assignment gives one instance partition p of both input topics.
        .set("partition.assignment.strategy", "range")
        .set("group.instance.id", &instance);
    let consumer: Consumer_ = cc
        .create_with_context(ctx)
        .map_err(|e| Error::stop("creating the consumer", &e))?;
    let (catalogue_topic, partitions, outlets) = topology(&consumer, &naming, schema_ids)?;
    let transactional_id = naming.engine_transactional_id(&instance);
    let timeout = Duration::from_millis(config.engine.transaction_timeout_ms);
    let txn = Transactions::create(&kafka, &transactional_id, timeout)
        .map_err(|e| Error::stop("creating the producer", &e))?;
    policy
        .retry("initialising transactions", &shutdown, || async {
            txn.init()
        })
        .await
        .map_err(|e| Error::Stop {
            what: "initialising transactions",
            code: "kafka",
            detail: e.to_string(),
        })?;
    let dlq_limit = credit_runtime::dlq::producer_limit(&credit_runtime::kafka::producer(
        &kafka,
        "credit-engine",
    ));
    let mut engine = Engine {
        cfg: config.engine.clone(),
        kafka: kafka.clone(),
        records: naming.records(),
        commands: naming.engine_commands(),
        changelog: naming.engine_state(),
        dead_letters: naming.engine_dead_letters(),
        catalogue_topic,
        partitions,
        catalogues: BTreeMap::from([(base_version, catalogue)]),
        base_version,
        outlets,
        decoder: Decoder::new(registry),
        states: FxHashMap::default(),
        meta_dirty: BTreeSet::new(),
        cycle: Cycle::new(
            config.engine.max_batch,
            Duration::from_millis(config.engine.commit_interval_ms),
        ),
        pending: Pending::default(),
        txn,
        policy,
        inst: Instruments::new(&tel),
        tracer: tel.tracer().clone(),
        group: group.clone(),
        connector: format!("credit-engine-{instance}"),
        dlq_limit,
        restore_limit: restore::read_limit(timeout),
        generation: 0,
        reported: HashSet::new(),
        bodies: Vec::new(),
        shutdown: shutdown.clone(),
    };
    engine.publish_base_catalogue().await?;
    consumer
        .subscribe(&[&engine.records, &engine.commands])
        .map_err(|e| Error::stop("subscribing", &e))?;
    tracing::info!(
        instance,
        transactional_id,
        catalogue_version = base_version,
        measures = engine.catalogues[&base_version].measures.len(),
        "engine running"
    );
    engine.inst.catalogue.record(i64::from(base_version), &[]);
    ready.set_ready();

    let max_batch = config.engine.max_batch;
    loop {
        let wait = engine.cycle.deadline().map_or(TICK, |d| {
            d.saturating_duration_since(Instant::now()).min(TICK)
        });
        let first = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            m = consumer.recv() => Some(m.map(|m| m.detach())),
            _ = tokio::time::sleep(wait) => None,
        };
        let today = engine.cfg.today();
        let mut planned = Vec::new();
        let mut inputs = Vec::new();
        let mut next = first;
        let mut taken = 0;
        let mut idle = next.is_none();
        while let Some(m) = next.take() {
            match m {
                Ok(m) => {
                    let generation = consumer.context().generation();
                    if generation != engine.generation {
                        // A rebalance ran before this input arrived: what
                        // the open transaction did belongs to the old
                        // assignment.
                        planned.clear();
                        inputs.clear();
                        engine.abort(&consumer, true).await?;
                        engine.generation = generation;
                    }
                    let p = m.partition();
                    if !engine.states.contains_key(&p) {
                        let assigned = consumer.context().assigned();
                        engine.restore(p, &assigned).await?;
                    }
                    engine.plan(&m, today, &mut planned, &mut inputs).await?;
                    taken += 1;
                }
                Err(e) => {
                    let class = e.class();
                    if class.disposition == Disposition::Stop {
                        engine.policy.stop("consuming", &e);
                        return Err(Error::stop("consuming", &e));
                    }
                    engine.policy.count(class);
                    tracing::warn!(error = %e, "consumer error");
                }
            }
            if taken < max_batch {
                next = consumer
                    .recv()
                    .now_or_never()
                    .map(|r| r.map(|m| m.detach()));
                idle = next.is_none();
            }
        }
        if idle {
            let generation = consumer.context().generation();
            if generation != engine.generation {
                // A rebalance while no input came: the open transaction
                // (expiry) belongs to the old assignment.
                planned.clear();
                inputs.clear();
                engine.abort(&consumer, true).await?;
                engine.generation = generation;
            }
            // Partitions no input has come for since their assignment are
            // replayed now, so their expiry does not wait for input.
            let assigned = consumer.context().assigned();
            if let Some(&p) = assigned.iter().find(|q| !engine.states.contains_key(q)) {
                engine.restore(p, &assigned).await?;
            }
        }
        engine.expire(today, &mut planned, &mut inputs)?;
        engine.send_notices(&planned, &inputs)?;
        if engine.cycle.should_commit(Instant::now(), idle) {
            engine.commit(Some(&consumer)).await?;
        }
    }
    tracing::info!("engine draining");
    engine.commit(Some(&consumer)).await?;
    Ok(())
}
