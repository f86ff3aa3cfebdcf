//! The quality service's Kafka side.
//!
//! Start: read `<prefix>.quality.state` (the ledger, compacted, keyed by
//! record id) to its end and apply every fact; the counters start from the
//! rebuilt totals, so a restart continues them rather than resetting or
//! doubling them. Ready. Then follow `<prefix>.records` (read_committed) and
//! every publishing department's dead-letter topic from the offsets committed
//! under the group `<prefix>.quality`, all partitions assigned to this one
//! instance (a conflict can join records of any two partitions).
//!
//! Per batch: each record or dead letter becomes at most one fact under its
//! record id; a fact the ledger does not hold yet is applied, counted and
//! written to the state topic; once every write of the batch is acknowledged
//! the batch's offsets are committed. A crash replays at most the batches
//! after the last commit, whose facts the rebuilt ledger already holds (same
//! record ids): nothing is counted twice and nothing is lost.
//!
//! Errors follow the bus's policy (`credit_runtime::errors`): a record that
//! cannot be decoded is dead-lettered to `<prefix>.quality.dlq` with its
//! reason and position; the registry or the broker away is waited for; an
//! authorisation or configuration fault stops the service.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use credit_core::dlq;
use credit_core::record::SubjectType;
use credit_engine::input::{Decoder, InputError};
use credit_measures::plan::Source;
use credit_runtime::config::KafkaConfig;
use credit_runtime::dlq as runtime_dlq;
use credit_runtime::errors::{Classify, Disposition, ErrorPolicy, RetryError};
use credit_runtime::metrics::{self, MetricName};
use credit_runtime::ops::Readiness;
use credit_runtime::read::Stable;
use credit_runtime::telemetry::Telemetry;
use credit_schemas::registry::RegistryClient;
use opentelemetry::KeyValue;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::ledger::{Fact, Ledger, is_wrong_code};

/// `__connect.errors.class.name` of the service's dead letters.
pub const DEAD_LETTER_CLASS: &str = "cn.gov.guangzhou.creditbus.quality.Reader";

/// The ledger the loop writes and `/report` reads.
pub struct Shared {
    ledger: Mutex<Ledger>,
    pub report_limit: usize,
}

impl Shared {
    pub fn new(report_limit: usize) -> Shared {
        Shared {
            ledger: Mutex::new(Ledger::new()),
            report_limit,
        }
    }

    pub fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Instruments {
    conflicts: opentelemetry::metrics::Counter<u64>,
    ratio: opentelemetry::metrics::Gauge<f64>,
}

/// Which input a topic is.
#[derive(Clone, Copy)]
enum Input {
    Records,
    /// A publishing department's dead letters.
    DeadLetters(&'static str),
}

/// What one input message comes to.
enum Read {
    /// A fact under a record id.
    Fact(String, Fact),
    /// Nothing to count (a dead letter for another reason than a wrong code).
    Nothing,
    /// Not readable: dead-letter it with this reason.
    Dead(InputError),
}

struct Service {
    shared: Arc<Shared>,
    producer: FutureProducer,
    state_topic: String,
    dead_topic: String,
    limit: usize,
    policy: ErrorPolicy,
    decoder: Decoder,
    inputs: HashMap<String, Input>,
    m: Instruments,
    shutdown: CancellationToken,
}

fn key_str<M: Message>(m: &M) -> Option<&str> {
    m.key().and_then(|k| std::str::from_utf8(k).ok())
}

fn header<'m>(m: &'m BorrowedMessage<'_>, key: &str) -> Option<&'m str> {
    let h = m.headers()?;
    h.iter()
        .find(|h| h.key == key)
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
}

impl Service {
    async fn read(&mut self, m: &BorrowedMessage<'_>, input: Input) -> Read {
        match input {
            Input::Records => {
                let source = Source {
                    topic: m.topic().to_string(),
                    partition: m.partition(),
                    offset: m.offset(),
                };
                match self
                    .decoder
                    .record(m.payload(), source, &self.policy, &self.shutdown)
                    .await
                {
                    Ok(r) => Read::Fact(
                        r.record_id,
                        Fact::Named {
                            department: r.department,
                            person: r.subject_type == SubjectType::NaturalPerson,
                            key: r.subject_key,
                            name: r.subject_name,
                        },
                    ),
                    Err(e) => Read::Dead(e),
                }
            }
            Input::DeadLetters(department) => {
                // The dead letter names the inbound record it stands for: its
                // id is the one a normalised record would have had.
                let (Some(reason), Some(p), Some(o)) = (
                    header(m, dlq::REASON),
                    header(m, dlq::PARTITION),
                    header(m, dlq::OFFSET),
                ) else {
                    return Read::Nothing;
                };
                if !is_wrong_code(reason) {
                    return Read::Nothing;
                }
                Read::Fact(
                    format!("{department}:{p}:{o}"),
                    Fact::WrongCode {
                        department: department.to_string(),
                        reason: reason.to_string(),
                    },
                )
            }
        }
    }

    /// Writes a dead letter for an unreadable record, or stops when the error
    /// is not the record's fault.
    fn dead_letter(
        &self,
        m: &BorrowedMessage<'_>,
        e: &InputError,
    ) -> anyhow::Result<rdkafka::producer::DeliveryFuture> {
        let class = e.class();
        let Disposition::DeadLetter(reason) = class.disposition else {
            self.policy.stop("reading a record", e);
            anyhow::bail!(
                "reading {}/{}@{}: {e}",
                m.topic(),
                m.partition(),
                m.offset()
            );
        };
        let hs = runtime_dlq::input_headers(m.headers());
        let detail = e.to_string();
        let dl = dlq::build(
            &runtime_dlq::input(m, &hs),
            &dlq::Reason {
                code: reason.as_str(),
                stage: reason.stage(),
                field: e.field(),
                detail: &detail,
            },
            &dlq::Writer {
                connector: "credit-quality",
                class_name: DEAD_LETTER_CLASS,
            },
            self.limit,
        );
        let rec = runtime_dlq::future_record(
            &self.dead_topic,
            &dl,
            runtime_dlq::owned_headers(&dl, None),
        );
        let f = self
            .producer
            .send_result(rec)
            .map_err(|(e, _)| anyhow::anyhow!("queueing a dead letter: {e}"))?;
        self.policy.count(class);
        tracing::warn!(
            topic = m.topic(),
            partition = m.partition(),
            offset = m.offset(),
            reason = reason.as_str(),
            detail,
            "record dead-lettered"
        );
        Ok(f)
    }

    /// Applies a fact; a new one is counted and written to the state topic.
    fn apply(
        &self,
        id: &str,
        fact: &Fact,
        touched: &mut BTreeMap<String, ()>,
    ) -> anyhow::Result<Option<rdkafka::producer::DeliveryFuture>> {
        let Some(delta) = self.shared.ledger().apply(id, fact) else {
            return Ok(None);
        };
        touched.insert(delta.department.clone(), ());
        for d in &delta.newly_conflicting {
            self.m.conflicts.add(1, &[dept_label(d)]);
            touched.insert(d.clone(), ());
        }
        let value = serde_json::to_vec(fact)?;
        let f = self
            .producer
            .send_result(
                FutureRecord::to(&self.state_topic)
                    .key(id.as_bytes())
                    .payload(&value),
            )
            .map_err(|(e, _)| anyhow::anyhow!("queueing a ledger fact: {e}"))?;
        Ok(Some(f))
    }

    /// Sets the ratio gauge of each department named.
    fn gauges<'a>(&self, departments: impl Iterator<Item = &'a str>) {
        let l = self.shared.ledger();
        for d in departments {
            let r = l.departments().get(d).map_or(0.0, |c| c.conflict_ratio());
            self.m.ratio.record(r, &[dept_label(d)]);
        }
    }
}

/// The `department` label of a department id as the records carry it.
fn dept_label(d: &str) -> KeyValue {
    match credit_core::catalogue::department(d) {
        Some(dep) => metrics::department(dep.id),
        // Not a catalogue id (a record from a newer catalogue): its own label.
        None => KeyValue::new(metrics::label::DEPARTMENT, d.to_string()),
    }
}

/// Reads the state topic to its end, applying every fact.
async fn rebuild(
    kafka: &KafkaConfig,
    topic: &str,
    partitions: i32,
    shared: &Shared,
) -> anyhow::Result<(usize, usize)> {
    let kafka = kafka.clone();
    let topic = topic.to_string();
    let facts: Vec<(String, Fact)> = tokio::task::spawn_blocking(move || {
        let from: Vec<(i32, Offset)> = (0..partitions).map(|p| (p, Offset::Offset(0))).collect();
        let mut out = Vec::new();
        let mut unreadable = 0usize;
        // The ledger is written by this service alone, without transactions:
        // its end is where it is now.
        credit_runtime::read::read_to_end(
            &kafka,
            "credit-quality-rebuild",
            &topic,
            &from,
            Stable::AsIs,
            Duration::from_secs(300),
            |m| match (
                key_str(m),
                m.payload()
                    .and_then(|v| serde_json::from_slice::<Fact>(v).ok()),
            ) {
                (Some(k), Some(f)) => out.push((k.to_string(), f)),
                _ => unreadable += 1,
            },
        )
        .map_err(|e| e.to_string())?;
        if unreadable > 0 {
            tracing::warn!(unreadable, "ledger entries that do not parse were skipped");
        }
        Ok::<_, String>(out)
    })
    .await?
    .map_err(|e| anyhow::anyhow!("reading the ledger: {e}"))?;
    let read = facts.len();
    let mut l = shared.ledger();
    for (id, f) in &facts {
        l.apply(id, f);
    }
    Ok((read, l.len()))
}

/// Rebuilds the ledger, marks ready, follows the inputs until `shutdown`.
pub async fn run(
    config: Config,
    tel: Telemetry,
    shared: Arc<Shared>,
    ready: Readiness,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let kafka = config.common.kafka.clone();
    let naming = kafka.naming();
    let meter = tel.meter();
    let m = Instruments {
        conflicts: MetricName::CodeConflicts.counter(
            &meter,
            "Records whose code another record names differently (duplicate code), by department; each record once",
        ),
        ratio: MetricName::CodeConflictRatio.ratio_gauge(
            &meter,
            "Share of a department's records whose code another record names differently; target at most 0.00005 (0.005 %)",
        ),
    };
    let state_topic = naming.quality_state();
    let dead_topic = naming.quality_dead_letters();
    let mut inputs = HashMap::new();
    inputs.insert(naming.records(), Input::Records);
    for d in credit_core::catalogue::publishing_departments() {
        inputs.insert(naming.dlq(d.id), Input::DeadLetters(d.id));
    }
    let meta_kafka = kafka.clone();
    let partitions: HashMap<String, i32> = tokio::task::spawn_blocking(move || {
        let c = credit_runtime::kafka::reader(&meta_kafka, "credit-quality-metadata")?;
        let meta = c.fetch_metadata(None, Duration::from_secs(30))?;
        Ok::<_, KafkaError>(
            meta.topics()
                .iter()
                .map(|t| (t.name().to_string(), t.partitions().len() as i32))
                .collect(),
        )
    })
    .await??;
    for t in [&naming.records(), &state_topic, &dead_topic] {
        if partitions.get(t).copied().unwrap_or(0) == 0 {
            anyhow::bail!("{t} does not exist: run `credit-bus topics create`");
        }
    }
    let policy = ErrorPolicy::new(&tel);
    let producer_config = credit_runtime::kafka::producer(&kafka, "credit-quality");
    let limit = runtime_dlq::producer_limit(&producer_config);
    let written = [state_topic.clone(), dead_topic.clone()];
    match policy
        .retry("checking record size limits", &shutdown, || {
            credit_runtime::limits::check_at_start(&kafka, &written, limit, None)
        })
        .await
    {
        Ok(_) => {}
        Err(RetryError::Shutdown) => return Ok(()),
        Err(e) => anyhow::bail!("{e}"),
    }

    let started = Instant::now();
    let rebuilt = tokio::select! {
        r = rebuild(&kafka, &state_topic, partitions[&state_topic], &shared) => r?,
        _ = shutdown.cancelled() => {
            tracing::info!("stopped while rebuilding");
            return Ok(());
        }
    };
    let s = Service {
        shared: shared.clone(),
        producer: producer_config.create()?,
        state_topic,
        dead_topic,
        limit,
        policy,
        decoder: Decoder::new(RegistryClient::new(&config.common.registry.url)?),
        inputs,
        m,
        shutdown: shutdown.clone(),
    };
    // Counters continue from the rebuilt totals: a restart neither resets nor
    // repeats them.
    {
        let l = shared.ledger();
        for (d, c) in l.departments() {
            if c.conflicting > 0 {
                s.m.conflicts.add(c.conflicting, &[dept_label(d)]);
            }
        }
        tracing::info!(
            facts_read = rebuilt.0,
            records = rebuilt.1,
            conflicting_codes = l.conflict_count(),
            seconds = started.elapsed().as_secs_f64(),
            "ledger rebuilt from the state topic"
        );
    }
    let mut all: Vec<String> = credit_core::catalogue::publishing_departments()
        .map(|d| d.id.to_string())
        .collect();
    all.extend(shared.ledger().departments().keys().cloned());
    all.sort();
    all.dedup();
    s.gauges(all.iter().map(String::as_str));
    ready.set_ready();

    let group = naming.quality_group();
    let consumer: StreamConsumer =
        credit_runtime::kafka::consumer(&kafka, "credit-quality", &group)
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed")
            .create()?;
    // Every partition to this instance, from the group's committed offsets
    // (none yet: the beginning).
    let mut tpl = TopicPartitionList::new();
    let mut topics: Vec<&String> = s.inputs.keys().collect();
    topics.sort();
    for t in topics {
        for p in 0..partitions.get(t).copied().unwrap_or(0) {
            tpl.add_partition_offset(t, p, Offset::Stored)?;
        }
    }
    consumer.assign(&tpl)?;
    run_loop(s, &consumer, config.quality.batch_size).await?;
    tracing::info!("quality service stopped");
    Ok(())
}

async fn run_loop(
    mut s: Service,
    consumer: &StreamConsumer,
    batch_size: usize,
) -> anyhow::Result<()> {
    let mut commit = TopicPartitionList::new();
    loop {
        let first = tokio::select! {
            biased;
            _ = s.shutdown.cancelled() => break,
            m = consumer.recv() => m,
        };
        let mut batch: Vec<BorrowedMessage<'_>> = Vec::with_capacity(batch_size);
        let mut next = Some(first);
        while let Some(m) = next.take() {
            match m {
                Ok(msg) => batch.push(msg),
                Err(e) => consumer_error(&s.policy, e)?,
            }
            if batch.len() < batch_size {
                next = futures::FutureExt::now_or_never(consumer.recv());
            }
        }
        let mut writes = Vec::new();
        let mut touched = BTreeMap::new();
        let mut positions: HashMap<(String, i32), i64> = HashMap::new();
        for m in &batch {
            positions.insert((m.topic().to_string(), m.partition()), m.offset() + 1);
            let Some(&input) = s.inputs.get(m.topic()) else {
                continue;
            };
            match s.read(m, input).await {
                Read::Fact(id, fact) => {
                    if let Some(f) = s.apply(&id, &fact, &mut touched)? {
                        writes.push(f);
                    }
                }
                Read::Nothing => {}
                Read::Dead(e) => writes.push(s.dead_letter(m, &e)?),
            }
        }
        for f in writes {
            match f.await {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => {
                    s.policy.stop("writing the ledger", &e);
                    anyhow::bail!("writing the ledger: {e}");
                }
                Err(_) => anyhow::bail!("the producer was dropped"),
            }
        }
        commit = TopicPartitionList::new();
        for ((t, p), o) in positions {
            commit.add_partition_offset(&t, p, Offset::Offset(o))?;
        }
        if let Err(e) = consumer.commit(&commit, CommitMode::Async) {
            consumer_error(&s.policy, e)?;
        }
        s.gauges(touched.keys().map(String::as_str));
    }
    if commit.count() > 0 {
        let _ = consumer.commit(&commit, CommitMode::Sync);
    }
    Ok(())
}

/// A consumer error: a stop (authorisation, fatal) ends the service; anything
/// else librdkafka retries by itself, so it is counted and logged.
fn consumer_error(policy: &ErrorPolicy, e: KafkaError) -> anyhow::Result<()> {
    let class = e.class();
    if class.disposition == Disposition::Stop {
        policy.stop("consuming", &e);
        anyhow::bail!("consuming: {e}");
    }
    policy.count(class);
    tracing::warn!(error = %e, code = class.code, "consumer error; librdkafka retries");
    Ok(())
}
