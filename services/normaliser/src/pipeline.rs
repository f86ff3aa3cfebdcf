//! The Kafka loop of a normaliser instance.
//!
//! Records are processed in batches: read up to `batch_size` records, send each
//! one's output (normalised or dead-lettered), wait for every acknowledgement,
//! then store the batch's offsets for the next auto-commit. A crash anywhere
//! before the store replays the batch from the last commit: nothing is lost, and
//! a replayed record carries the same key and the same bytes as before
//! (`record_id` is derived from its inbound partition and offset), so
//! downstream recognises the duplicate.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use credit_core::catalogue::{self, InboundFormat};
use credit_core::record::{Context, GuardrailDecision, RecordId};
use credit_core::reject::{ReasonCode, Rejection};
use credit_core::{dlq, topics};
use credit_runtime::gap::{GapGuard, Verdict};
use credit_runtime::metrics::{self, MetricName};
use credit_runtime::ops::Readiness;
use credit_runtime::shutdown::Shutdown as CancellationToken;
use credit_runtime::telemetry::Telemetry;
use credit_runtime::trace;
use credit_schemas::encode;
use credit_schemas::registry::{RegistryClient, RegistryError};
use futures::FutureExt;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use crate::adapters::{self, Findings};
use crate::config::Config;

/// Why the service stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration: {0}")]
    Config(String),
    #[error("schema registry: {0}")]
    Registry(#[from] RegistryError),
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("output not acknowledged: {0}")]
    Delivery(KafkaError),
}

impl Error {
    /// Whether a restart may succeed. Offsets of unacknowledged work were not
    /// stored, so restarting replays it.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Config(_) => false,
            Error::Registry(e) => e.is_retriable(),
            Error::Kafka(_) | Error::Delivery(_) => true,
        }
    }
}

struct Instruments {
    records_in: Counter<u64>,
    records_out: Counter<u64>,
    dead_lettered: Counter<u64>,
    duration: Histogram<f64>,
    guardrail: Counter<u64>,
    unknown_columns: Counter<u64>,
    dept: [KeyValue; 1],
}

impl Instruments {
    fn new(tel: &Telemetry, dept: &'static str) -> Self {
        let m = tel.meter();
        Instruments {
            records_in: MetricName::RecordsIn.counter(&m, "Inbound records read"),
            records_out: MetricName::RecordsOut.counter(&m, "Normalised records acknowledged"),
            dead_lettered: MetricName::RecordsDeadLettered
                .counter(&m, "Records dead-lettered, by reason"),
            duration: MetricName::ProcessingDuration.seconds_histogram(
                &m,
                "Batch read to its last output acknowledged (an upper bound for each record in it)",
            ),
            guardrail: MetricName::GuardrailDecisions.counter(
                &m,
                "Guardrail decisions on natural persons' records, by concept and decision",
            ),
            unknown_columns: MetricName::CsvUnknownColumns.counter(
                &m,
                "Unknown CSV header columns accepted and ignored, by column",
            ),
            dept: [metrics::department(dept)],
        }
    }
}

/// Most distinct `column` label values one instance reports; later new names
/// are counted under [`OTHER_COLUMN`]. Header names come from departments, so
/// without a cap a stream of odd headers would grow the metric without bound.
const MAX_COLUMN_LABELS: usize = 32;
const OTHER_COLUMN: &str = "(other)";

/// The `column` label of an ignored header cell (already folded): `(empty)`
/// for a blank cell, `(other)` for a long name or one with a run of six
/// digits (never an identifier in a label), else the name.
fn column_label(name: &str) -> &str {
    if name.is_empty() {
        return "(empty)";
    }
    let mut run = 0;
    let digits = name.chars().any(|c| {
        run = if c.is_ascii_digit() { run + 1 } else { 0 };
        run >= 6
    });
    if digits || name.chars().count() > 32 {
        OTHER_COLUMN
    } else {
        name
    }
}

/// Label sets per `column` value, capped at [`MAX_COLUMN_LABELS`].
struct ColumnLabels {
    dept: &'static str,
    seen: HashMap<String, [KeyValue; 2]>,
}

impl ColumnLabels {
    fn new(dept: &'static str) -> Self {
        ColumnLabels {
            dept,
            seen: HashMap::new(),
        }
    }

    fn attrs(&mut self, name: &str) -> &[KeyValue; 2] {
        let mut label = column_label(name);
        if !self.seen.contains_key(label) && self.seen.len() >= MAX_COLUMN_LABELS - 1 {
            label = OTHER_COLUMN;
        }
        let dept = self.dept;
        self.seen.entry(label.to_string()).or_insert_with(|| {
            [
                metrics::department(dept),
                KeyValue::new(metrics::label::COLUMN, label.to_string()),
            ]
        })
    }
}

/// Logs a guardrail decision: department, concept, decision and the inbound
/// position only, never the text or the subject. Blocks and exemptions at
/// info, passes at debug (target `credit_bus::guardrail`).
fn log_guardrail(department: &str, d: GuardrailDecision, partition: i32, offset: i64) {
    match d {
        GuardrailDecision::Blocked { concept, field } => tracing::info!(
            target: "credit_bus::guardrail",
            department,
            concept,
            field,
            decision = d.label(),
            partition,
            offset,
            "guardrail decision"
        ),
        GuardrailDecision::Exempt { concept } => tracing::info!(
            target: "credit_bus::guardrail",
            department,
            concept,
            decision = d.label(),
            partition,
            offset,
            "guardrail decision"
        ),
        GuardrailDecision::Passed => tracing::debug!(
            target: "credit_bus::guardrail",
            department,
            decision = d.label(),
            partition,
            offset,
            "guardrail decision"
        ),
    }
}

/// An output in flight.
struct Pending {
    sent: Sent,
    delivery: DeliveryFuture,
    /// The record's `process` and `send` spans, only when they are recorded
    /// (sampled and exported); they end when the output is acknowledged.
    spans: Option<Box<[trace::Span; 2]>>,
}

/// The output a record turns into, before it is sent.
enum Output<'m> {
    Normalised {
        id: RecordId<'static>,
    },
    Dead {
        rejection: Rejection,
        headers: OwnedHeaders,
        key: Option<&'m [u8]>,
    },
}

fn dlq_headers(msg: &BorrowedMessage<'_>, r: &Rejection, connector: &str) -> OwnedHeaders {
    // Keep the original headers first, then add ours. The original trace
    // context is replaced by the dead letter's own (same trace), added on sending.
    let mut h = OwnedHeaders::new_with_capacity(msg.headers().map_or(0, |h| h.count()) + 13);
    if let Some(orig) = msg.headers() {
        for hd in orig.iter().filter(|hd| !trace::is_trace_header(hd.key)) {
            h = h.insert(Header {
                key: hd.key,
                value: hd.value,
            });
        }
    }
    let partition = msg.partition().to_string();
    let offset = msg.offset().to_string();
    let exception = format!("{}.{}", dlq::REJECTION_CLASS, r.code.as_str());
    let message = r.to_string();
    for (k, v) in [
        (dlq::TOPIC, msg.topic()),
        (dlq::PARTITION, &partition),
        (dlq::OFFSET, &offset),
        (dlq::CONNECTOR_NAME, connector),
        (dlq::TASK_ID, "0"),
        (dlq::STAGE, r.code.stage()),
        (dlq::CLASS_NAME, dlq::NORMALISER_CLASS),
        (dlq::EXCEPTION_CLASS_NAME, &exception),
        (dlq::EXCEPTION_MESSAGE, &message),
        (dlq::REASON, r.code.as_str()),
    ] {
        h = h.insert(Header {
            key: k,
            value: Some(v),
        });
    }
    if let Some(f) = r.field {
        h = h.insert(Header {
            key: dlq::FIELD,
            value: Some(f),
        });
    }
    h
}

/// What stays fixed for every record an instance processes.
struct Route<'a> {
    format: InboundFormat,
    department: &'static str,
    schema_id: u32,
    max_bytes: usize,
    connector: &'a str,
}

/// Turns one inbound record into its output bytes (in `buf`) and routing.
fn process<'m>(
    route: &Route<'_>,
    today: i32,
    msg: &'m BorrowedMessage<'m>,
    buf: &mut Vec<u8>,
    findings: &mut Findings,
) -> Output<'m> {
    let Route {
        format,
        department,
        schema_id,
        max_bytes,
        connector,
    } = *route;
    buf.clear();
    findings.clear();
    let ctx = Context {
        department,
        source_topic: msg.topic(),
        partition: msg.partition(),
        offset: msg.offset(),
        timestamp_ms: msg.timestamp().to_millis(),
        today,
    };
    let value = msg.payload().unwrap_or(&[]);
    let result = if value.len() > max_bytes {
        Err(Rejection::new(
            ReasonCode::RecordTooLarge,
            None,
            format!("{} bytes exceed the limit of {max_bytes}", value.len()),
        ))
    } else {
        adapters::normalise_with(format, &ctx, value, findings, |r| {
            encode::credit_record_framed(buf, schema_id, r);
        })
    };
    if let Some(d) = findings.guardrail {
        log_guardrail(department, d, msg.partition(), msg.offset());
    }
    match result {
        Ok(()) => Output::Normalised {
            id: ctx.record_id(),
        },
        Err(rejection) => {
            // The detail goes to the DLQ header; the log line names only the code and
            // position, so no personal data reaches the logs.
            tracing::debug!(
                reason = rejection.code.as_str(),
                partition = msg.partition(),
                offset = msg.offset(),
                "dead-lettered"
            );
            let headers = dlq_headers(msg, &rejection, connector);
            Output::Dead {
                rejection,
                headers,
                key: msg.key(),
            }
        }
    }
}

/// What a batch remembers about one inbound record until its output is acknowledged.
struct Sent {
    partition: i32,
    offset: i64,
    rejected: Option<ReasonCode>,
}

/// Sends one record, waiting for room in the producer queue if it is full.
async fn send(
    producer: &FutureProducer,
    mut record: FutureRecord<'_, [u8], [u8]>,
    pending: &mut Vec<Pending>,
    sent: Sent,
    spans: Option<Box<[trace::Span; 2]>>,
) -> Result<(), Error> {
    loop {
        match producer.send_result(record) {
            Ok(delivery) => {
                pending.push(Pending {
                    sent,
                    delivery,
                    spans,
                });
                return Ok(());
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                record = r;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err((e, _)) => return Err(Error::Kafka(e)),
        }
    }
}

/// Registers the record schema, retrying while the registry starts.
pub async fn register_schema(registry_url: &str, records_topic: &str) -> Result<u32, Error> {
    let client = RegistryClient::new(registry_url)?;
    Ok(client
        .register_with_retry(
            &topics::value_subject(records_topic),
            credit_schemas::CREDIT_RECORD_AVSC,
            60,
        )
        .await?)
}

/// Runs one normaliser instance until `shutdown`, then drains and commits.
/// How often the loop checks for partitions stuck below their high watermark.
const STALL_CHECK: Duration = Duration::from_millis(500);

/// Whether to process `msg`: not if it was processed before (read again after a
/// rewind), nor if the broker skipped records before it; then the partition is
/// sought back and the rest of this batch from it dropped. A partition's first
/// record is judged against the group's committed offset.
fn admit(
    guard: &mut GapGuard<i32>,
    consumer: &StreamConsumer<credit_runtime::kafka::BusContext>,
    topic: &str,
    msg: &BorrowedMessage<'_>,
    rewound: &mut HashSet<i32>,
) -> Result<bool, Error> {
    let p = msg.partition();
    if rewound.contains(&p) {
        return Ok(false);
    }
    if guard.next(&p).is_none() {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(topic, p);
        if let Ok(c) = consumer.committed_offsets(tpl, Duration::from_secs(10))
            && let Some(Offset::Offset(n)) = c.find_partition(topic, p).map(|e| e.offset())
        {
            guard.expect(p, n);
        }
    }
    Ok(match guard.check(&p, msg.offset()) {
        Verdict::Process => true,
        Verdict::Skip => false,
        Verdict::Gone { from, to } => {
            tracing::error!(
                topic,
                partition = p,
                from,
                to,
                "inbound offsets gone from the log before they were normalised"
            );
            true
        }
        Verdict::Rewind(to) => {
            tracing::warn!(topic, partition = p, wanted = ?guard.next(&p), got = msg.offset(), to, "broker skipped inbound records: re-reading from further back");
            consumer.seek(topic, p, Offset::Offset(to), Duration::from_secs(10))?;
            rewound.insert(p);
            false
        }
    })
}

/// Seeks back every partition stuck below its high watermark.
fn unstall(
    guard: &mut GapGuard<i32>,
    consumer: &StreamConsumer<credit_runtime::kafka::BusContext>,
    topic: &str,
) -> Result<(), Error> {
    Ok(credit_runtime::kafka::unstall(
        guard,
        consumer,
        STALL_CHECK * 4,
        |p| (topic.to_string(), *p),
    )?)
}

pub async fn run(
    config: Config,
    tel: Telemetry,
    ready: Readiness,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let dep = catalogue::department(&config.normaliser.department).ok_or_else(|| {
        Error::Config(format!(
            "unknown department {}",
            config.normaliser.department
        ))
    })?;
    let format = dep
        .inbound
        .ok_or_else(|| Error::Config(format!("{} publishes nothing the bus normalises", dep.id)))?;
    // Compile the guardrail's concepts now (tested data, compiled in) rather
    // than on the first natural person's record.
    let concepts = credit_core::guardrail::rules().concepts().len();
    let kafka = &config.common.kafka;
    let naming = config.common.kafka.naming();
    let inbound = naming.inbound(dep.id);
    let dlq_topic = naming.dlq(dep.id);
    let records_topic = naming.records();
    let connector = format!("credit-normaliser-{}", dep.id);
    let group = naming.normaliser_group(dep.id);
    let tracer = tel.tracer().clone();
    let schema_id = register_schema(&config.common.registry.url, &records_topic).await?;

    // Publishes credit_bus_consumer_lag for the group from librdkafka statistics.
    let consumer: StreamConsumer<credit_runtime::kafka::BusContext> =
        credit_runtime::kafka::consumer_with_lag(kafka, &connector, &group, &tel)?;
    consumer.subscribe(&[&inbound])?;
    let producer: FutureProducer = credit_runtime::kafka::producer(kafka, &connector).create()?;
    let inst = Instruments::new(&tel, dep.id);
    let batch_size = config.normaliser.batch_size;
    let max_bytes = config.normaliser.max_record_bytes;
    let route = Route {
        format,
        department: dep.id,
        schema_id,
        max_bytes,
        connector: &connector,
    };
    tracing::info!(department = dep.id, topic = %inbound, schema_id, guardrail_concepts = concepts, "normaliser running");
    ready.set_ready();

    // The next inbound offset wanted per partition: catches a broker that skips
    // records when a fetch resumes inside a batch (see credit_runtime::gap).
    let mut guard: GapGuard<i32> = GapGuard::default();
    let mut last_stall_check = Instant::now();
    let mut buf = Vec::with_capacity(1024);
    let mut key_buf = String::with_capacity(64);
    let mut pending: Vec<Pending> = Vec::with_capacity(batch_size);
    let mut reason_attrs: HashMap<ReasonCode, [KeyValue; 2]> = HashMap::new();
    let mut findings = Findings::default();
    let mut guardrail_attrs: HashMap<(&'static str, &'static str), [KeyValue; 3]> = HashMap::new();
    let mut column_attrs = ColumnLabels::new(dep.id);
    loop {
        let first = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            m = consumer.recv() => m,
            _ = tokio::time::sleep(STALL_CHECK) => {
                unstall(&mut guard, &consumer, &inbound)?;
                last_stall_check = Instant::now();
                continue;
            }
        };
        if last_stall_check.elapsed() >= STALL_CHECK {
            unstall(&mut guard, &consumer, &inbound)?;
            last_stall_check = Instant::now();
        }
        let mut rewound: HashSet<i32> = HashSet::new();
        // One clock read per batch: per-record reads were 8 % of a profile.
        let batch_started = Instant::now();
        let today = credit_runtime::today();
        let mut next = Some(first);
        let mut read = 0usize;
        while let Some(m) = next.take() {
            match m {
                Ok(msg) if !admit(&mut guard, &consumer, &inbound, &msg, &mut rewound)? => {}
                Ok(msg) => {
                    read += 1;
                    // `process <inbound>`, child of the record's trace context (or
                    // a new trace); its output carries a `send` span's context.
                    let mut processing = tracer.process_message(&msg, &group);
                    let output = process(&route, today, &msg, &mut buf, &mut findings);
                    if let Some(d) = findings.guardrail {
                        let attrs = guardrail_attrs
                            .entry((d.concept(), d.label()))
                            .or_insert_with(|| {
                                [
                                    metrics::department(dep.id),
                                    KeyValue::new(metrics::label::CONCEPT, d.concept()),
                                    KeyValue::new(metrics::label::DECISION, d.label()),
                                ]
                            });
                        inst.guardrail.add(1, attrs);
                    }
                    for name in &findings.unknown_columns {
                        inst.unknown_columns.add(1, column_attrs.attrs(name));
                    }
                    let (rec, rejected, sending) = match output {
                        Output::Normalised { id } => {
                            id.write_to(&mut key_buf);
                            // The key is a record id (department:partition:offset).
                            let sending = tracer.send(
                                Some(processing.context()),
                                &records_topic,
                                Some(&key_buf),
                            );
                            let rec = FutureRecord::to(&records_topic)
                                .key(key_buf.as_bytes())
                                .payload(&buf[..])
                                .headers(trace::headers(sending.context()));
                            (rec, None, sending)
                        }
                        Output::Dead {
                            rejection,
                            headers,
                            key,
                        } => {
                            processing.set_error(rejection.code.as_str());
                            // The inbound key is the department's own: maybe personal, not recorded.
                            let sending = tracer.send(Some(processing.context()), &dlq_topic, None);
                            let headers = trace::inject(headers, sending.context());
                            let mut rec = FutureRecord::to(&dlq_topic).headers(headers);
                            if let Some(k) = key {
                                rec = rec.key(k);
                            }
                            if let Some(v) = msg.payload() {
                                rec = rec.payload(v);
                            }
                            (rec, Some(rejection.code), sending)
                        }
                    };
                    let spans = processing
                        .is_recording()
                        .then(|| Box::new([processing, sending]));
                    let sent = Sent {
                        partition: msg.partition(),
                        offset: msg.offset(),
                        rejected,
                    };
                    send(&producer, rec, &mut pending, sent, spans).await?;
                }
                // Consumer errors (a broker going away, a rebalance) are reported and
                // retried by librdkafka itself; they never lose a record.
                Err(e) => tracing::warn!(error = %e, "consumer error"),
            }
            if read < batch_size {
                next = consumer.recv().now_or_never();
            }
        }
        inst.records_in.add(read as u64, &inst.dept);

        // Wait for every output, then store the offsets after them.
        let mut next_offsets: HashMap<i32, i64> = HashMap::new();
        let mut normalised = 0u64;
        for p in pending.drain(..) {
            match p.delivery.await {
                Ok(Ok(d)) => {
                    if let Some(mut spans) = p.spans {
                        spans[1].set_partition(d.partition);
                    }
                }
                Ok(Err((e, _))) => return Err(Error::Delivery(e)),
                Err(_) => return Err(Error::Delivery(KafkaError::Canceled)),
            }
            let p = p.sent;
            match p.rejected {
                None => normalised += 1,
                Some(code) => {
                    let attrs = reason_attrs.entry(code).or_insert_with(|| {
                        [metrics::department(dep.id), metrics::reason(code.as_str())]
                    });
                    inst.dead_lettered.add(1, attrs);
                }
            }
            let e = next_offsets.entry(p.partition).or_insert(0);
            *e = (*e).max(p.offset + 1);
        }
        inst.records_out.add(normalised, &inst.dept);
        inst.duration
            .record(batch_started.elapsed().as_secs_f64(), &inst.dept);
        if !next_offsets.is_empty() {
            let mut tpl = TopicPartitionList::with_capacity(next_offsets.len());
            for (p, o) in &next_offsets {
                tpl.add_partition_offset(&inbound, *p, Offset::Offset(*o))?;
            }
            // A partition revoked by a rebalance mid-batch refuses the store; its new
            // owner replays those records, which carry the same keys.
            if let Err(e) = consumer.store_offsets(&tpl) {
                tracing::warn!(error = %e, "offsets not stored (rebalance?); records will be replayed");
            }
        }
    }

    tracer.flush();
    tracing::info!("draining: committing stored offsets");
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) | Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => {
            tracing::warn!(error = %e, "final commit failed; the last batch will be replayed")
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn column_labels_are_bounded_and_never_hold_identifiers() {
        assert_eq!(column_label(""), "(empty)");
        assert_eq!(column_label("登记注册类型"), "登记注册类型");
        assert_eq!(column_label("440106198001011234"), OTHER_COLUMN);
        assert_eq!(column_label("备注2024"), "备注2024");
        assert_eq!(column_label(&"列".repeat(33)), OTHER_COLUMN);
        let mut labels = ColumnLabels::new("tax");
        let value = |kv: &[KeyValue; 2]| kv[1].value.as_str().into_owned();
        for i in 0..100 {
            labels.attrs(&format!("备注{i}"));
        }
        assert_eq!(labels.seen.len(), MAX_COLUMN_LABELS);
        assert_eq!(value(labels.attrs("备注0")), "备注0");
        assert_eq!(value(labels.attrs("新列")), OTHER_COLUMN);
    }
}
