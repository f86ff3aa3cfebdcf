//! The ingest: topics to PostgreSQL, replay-safe.
//!
//! One consumer reads every input partition (`records`, `engine.commands`,
//! `catalogue`, every department's `notices` and `feedback`) with
//! `isolation.level=read_committed` (the engine writes its notices in Kafka
//! transactions: an aborted notice is never archived). Partitions are
//! assigned, not subscribed: the database says where to resume.
//!
//! Per batch (up to `batch_size` messages, or what arrived within
//! `batch_wait_ms` of the first): decode every message into a fact (or an
//! `ingest_errors` row with its reason), then one database transaction writes
//! the facts (`ON CONFLICT DO NOTHING` on their source position) together
//! with the next offset of every partition read. Only after that commit are
//! the offsets committed to the consumer group `<prefix>.archive`, for lag
//! monitoring. A crash before the database commit replays the batch; after
//! it, the positions in the database skip it; either way nothing changes
//! twice. An empty database (dropped, or new) replays every topic from its
//! beginning and, learning each fact at its message's timestamp, rebuilds
//! the same rows.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use apache_avro::Schema;
use credit_runtime::config::{KafkaConfig, RegistryConfig};
use credit_runtime::errors::{Class, Disposition, ErrorPolicy, Fault};
use credit_runtime::metrics::{MetricName, label};
use credit_runtime::ops::Readiness;
use credit_runtime::telemetry::Telemetry;
use credit_schemas::registry::RegistryClient;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use crate::db::{self, Batch};
use crate::decode::{self, Fact, Input};
use crate::history::Pos;

/// Settings of the ingest loop.
#[derive(Debug, Clone)]
pub struct Settings {
    pub batch_size: usize,
    pub batch_wait: Duration,
}

/// Every input topic and what it holds.
pub fn inputs(kafka: &KafkaConfig) -> Vec<(String, Input)> {
    let n = kafka.naming();
    let mut out = vec![
        (n.records(), Input::Records),
        (n.engine_commands(), Input::Commands),
        (n.catalogue(), Input::Catalogue),
    ];
    for d in credit_core::DEPARTMENTS {
        out.push((n.notices(d.id), Input::Notices));
        out.push((n.feedback(d.id), Input::Feedback));
    }
    out
}

/// Writer schemas by registry id (ids are immutable).
struct Schemas {
    registry: RegistryClient,
    by_id: HashMap<u32, Arc<Schema>>,
}

/// Why the ingest cannot go on with a message (a value at fault is not
/// this: it becomes an `ingest_errors` row).
enum Halt {
    /// Stopped while waiting for the registry.
    Stopped,
    /// The registry refuses us: stop the service.
    Fatal(String),
}

impl Schemas {
    /// The writer schema `id`; `Ok(Err(reason))` when the value is at fault
    /// (an unknown id, a schema that does not parse).
    async fn get(
        &mut self,
        id: u32,
        stop: &CancellationToken,
    ) -> Result<Result<Arc<Schema>, String>, Halt> {
        if let Some(s) = self.by_id.get(&id) {
            return Ok(Ok(s.clone()));
        }
        let mut delay = Duration::from_millis(100);
        let text = loop {
            match self.registry.schema_by_id(id).await {
                Ok(t) => break t,
                Err(e) if e.is_unknown_schema() => {
                    return Ok(Err(format!("writer schema {id}: {e}")));
                }
                Err(e) if e.is_retriable() => {
                    tracing::warn!(error = %e, id, "schema registry unavailable; retrying");
                    tokio::select! {
                        _ = stop.cancelled() => return Err(Halt::Stopped),
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
                Err(e) => return Err(Halt::Fatal(format!("schema registry: {e}"))),
            }
        };
        match Schema::parse_str(&text) {
            Ok(s) => {
                let s = Arc::new(s);
                self.by_id.insert(id, s.clone());
                Ok(Ok(s))
            }
            Err(e) => Ok(Err(format!("writer schema {id} does not parse: {e}"))),
        }
    }
}

fn learned_ms(m: &BorrowedMessage<'_>) -> i64 {
    m.timestamp().to_millis().unwrap_or(0)
}

/// Decodes one message.
async fn decode_message(
    m: &BorrowedMessage<'_>,
    input: Input,
    schemas: &mut Schemas,
    stop: &CancellationToken,
) -> Result<Result<Fact, String>, Halt> {
    let pos = Pos {
        topic: m.topic().to_string(),
        partition: m.partition(),
        offset: m.offset(),
    };
    let learned = learned_ms(m);
    let payload = m.payload();
    // Commands (JSON) and catalogue versions (TOML) carry no Avro.
    let Some(reader) = input.reader_schema() else {
        return Ok(match (input, payload) {
            (Input::Catalogue, _) => decode::catalogue(m.key(), payload, learned),
            (_, Some(v)) => decode::command(v, pos, learned),
            (_, None) => Err("empty command value".into()),
        });
    };
    let Some(v) = payload.filter(|v| !v.is_empty()) else {
        return Ok(Err("empty value".into()));
    };
    let (id, body) = match credit_schemas::wire::split(v) {
        Ok(x) => x,
        Err(e) => return Ok(Err(format!("not a Confluent-framed Avro value: {e}"))),
    };
    let writer = match schemas.get(id, stop).await? {
        Ok(w) => w,
        Err(e) => return Ok(Err(e)),
    };
    Ok(match input {
        Input::Feedback => decode::feedback(&writer, body, pos, learned),
        Input::Records => {
            decode::resolve(&writer, reader, body).and_then(|v| decode::record(v, pos, learned))
        }
        _ => decode::resolve(&writer, reader, body).and_then(|v| decode::notice(v, pos, learned)),
    })
}

/// The partitions of `topics` the broker knows, waiting (until `stop`) for
/// topics that do not exist yet.
async fn partitions(
    consumer: &StreamConsumer,
    topics: &[(String, Input)],
    stop: &CancellationToken,
) -> anyhow::Result<Option<Vec<(String, i32)>>> {
    loop {
        let meta = consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .map_err(|e| anyhow::anyhow!("reading the broker's metadata: {e}"))?;
        let mut out = Vec::new();
        let mut missing = Vec::new();
        for (t, _) in topics {
            match meta.topics().iter().find(|m| m.name() == t) {
                Some(m) if !m.partitions().is_empty() && m.error().is_none() => {
                    out.extend(m.partitions().iter().map(|p| (t.clone(), p.id())));
                }
                _ => missing.push(t.clone()),
            }
        }
        if missing.is_empty() {
            return Ok(Some(out));
        }
        tracing::warn!(missing = ?missing, "input topics missing; waiting for them");
        tokio::select! {
            _ = stop.cancelled() => return Ok(None),
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}

/// What the ingest counts: facts stored by input, batch write time, and
/// database retries in the error policy's one counter.
struct Metrics {
    stored: Counter<u64>,
    write: Histogram<f64>,
    errors: ErrorPolicy,
}

impl Metrics {
    fn new(tel: &Telemetry) -> Metrics {
        let meter = tel.meter();
        Metrics {
            stored: MetricName::ArchiveFactsStored.counter(
                &meter,
                "Facts the archive stored, by input (unreadable: kept in ingest_errors)",
            ),
            write: MetricName::ArchiveWriteDuration
                .seconds_histogram(&meter, "Time to write one archive batch (one transaction)"),
            errors: ErrorPolicy::new(tel),
        }
    }

    fn stored(&self, batch: &Batch) {
        let mut by: BTreeMap<&'static str, u64> = BTreeMap::new();
        for f in &batch.facts {
            *by.entry(match f {
                Fact::Record(..) => "records",
                Fact::Notice(_) => "notices",
                Fact::Feedback(_) => "feedback",
                Fact::Command(_) => "commands",
                Fact::Catalogue(_) | Fact::Nothing => "catalogue",
            })
            .or_default() += 1;
        }
        if !batch.errors.is_empty() {
            by.insert("unreadable", batch.errors.len() as u64);
        }
        for (input, n) in by {
            self.stored.add(n, &[KeyValue::new(label::INPUT, input)]);
        }
    }
}

/// The database refused or was away: the same batch is written again.
const DATABASE_RETRY: Class = Class::new("archive_database", Fault::External, Disposition::Retry);

/// Follows the inputs until `stop`.
pub async fn run(
    kafka: KafkaConfig,
    registry: RegistryConfig,
    pool: PgPool,
    settings: Settings,
    ready: Readiness,
    tel: &Telemetry,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let metrics = Metrics::new(tel);
    let naming = kafka.naming();
    let topics = inputs(&kafka);
    let input_of: HashMap<String, Input> = topics.iter().cloned().collect();
    let mut cc = credit_runtime::kafka::consumer(&kafka, "credit-archive", &naming.archive_group());
    cc.set("enable.auto.commit", "false")
        .set("isolation.level", "read_committed");
    let consumer: StreamConsumer = cc
        .create()
        .map_err(|e| anyhow::anyhow!("creating the archive's consumer: {e}"))?;
    let Some(parts) = partitions(&consumer, &topics, &stop).await? else {
        return Ok(());
    };
    let positions = db::positions(&pool).await?;
    let mut tpl = TopicPartitionList::new();
    for (t, p) in &parts {
        let offset = match positions.get(&(t.clone(), *p)) {
            Some(o) => Offset::Offset(*o),
            None => Offset::Beginning,
        };
        tpl.add_partition_offset(t, *p, offset)?;
    }
    consumer.assign(&tpl)?;
    tracing::info!(
        partitions = parts.len(),
        resumed = positions.len(),
        "archive ingest assigned"
    );
    ready.set_ready();
    let mut schemas = Schemas {
        registry: RegistryClient::new(&registry.url)?,
        by_id: HashMap::new(),
    };
    loop {
        // The first message of a batch: wait as long as it takes.
        let first = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            m = consumer.recv() => m,
        };
        let mut batch = Batch::default();
        let mut pending = vec![first];
        let deadline = tokio::time::Instant::now() + settings.batch_wait;
        while pending.len() < settings.batch_size {
            match tokio::time::timeout_at(deadline, consumer.recv()).await {
                Ok(m) => pending.push(m),
                Err(_) => break,
            }
        }
        for m in pending {
            let m = match m {
                Ok(m) => m,
                Err(e) => {
                    // Transport errors are retried by librdkafka; report and go on.
                    tracing::warn!(error = %e, "kafka");
                    continue;
                }
            };
            let Some(input) = input_of.get(m.topic()).copied() else {
                continue;
            };
            let key = (m.topic().to_string(), m.partition());
            match decode_message(&m, input, &mut schemas, &stop).await {
                Ok(Ok(Fact::Nothing)) => {}
                Ok(Ok(f)) => batch.facts.push(f),
                Ok(Err(reason)) => {
                    tracing::warn!(
                        topic = m.topic(),
                        partition = m.partition(),
                        offset = m.offset(),
                        reason,
                        "message not archived"
                    );
                    batch.errors.push((
                        Pos {
                            topic: key.0.clone(),
                            partition: key.1,
                            offset: m.offset(),
                        },
                        learned_ms(&m),
                        reason,
                    ));
                }
                Err(Halt::Stopped) => return Ok(()),
                Err(Halt::Fatal(e)) => anyhow::bail!(e),
            }
            let next = batch.next.entry(key).or_insert(0);
            *next = (*next).max(m.offset() + 1);
        }
        if batch.next.is_empty() {
            continue;
        }
        // The database away: wait and retry the same batch (its rows are
        // idempotent), never skip it.
        let mut delay = Duration::from_millis(200);
        loop {
            let started = std::time::Instant::now();
            match db::write(&pool, &batch).await {
                Ok(_) => {
                    metrics.write.record(started.elapsed().as_secs_f64(), &[]);
                    metrics.stored(&batch);
                    break;
                }
                Err(e) => {
                    metrics.errors.count(DATABASE_RETRY);
                    tracing::warn!(error = %e, "archive database write failed; retrying");
                    tokio::select! {
                        _ = stop.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
        let mut commit = TopicPartitionList::new();
        for ((t, p), next) in &batch.next {
            commit.add_partition_offset(t, *p, Offset::Offset(*next))?;
        }
        if let Err(e) = consumer.commit(&commit, CommitMode::Async) {
            tracing::warn!(error = %e, "committing the group's offsets (monitoring only)");
        }
    }
}
