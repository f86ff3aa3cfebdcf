//! The Kafka loop of a normaliser instance.
//!
//! Records are processed in batches: read up to `batch_size` records, send each
//! one's output (normalised or dead-lettered), wait for every acknowledgement,
//! then store the batch's offsets for the next auto-commit. A crash anywhere
//! before the store replays the batch from the last commit: nothing is lost, and
//! a replayed record carries the same key and the same bytes as before
//! (`record_id` is derived from its inbound partition and offset), so
//! downstream recognises the duplicate.
//!
//! Errors follow the bus's policy (`credit_runtime::errors`, `docs/errors.md`):
//! a bad input is dead-lettered and processing goes on; an output the broker
//! or the producer refuses for good (too large, invalid) has its input
//! dead-lettered instead, cut to fit the producer's limit so that write cannot
//! fail on size; a registry or broker that is away is waited for with bounded
//! backoff; a configuration or authorisation fault stops the instance with
//! nothing stored past the input it was on. The record-size limits of broker,
//! producer and `normaliser.max_record_bytes` are checked against each other
//! at start.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use credit_core::catalogue::{self, InboundFormat};
use credit_core::record::{Context, GuardrailDecision, RecordId};
use credit_core::reject::{ReasonCode, Rejection};
use credit_core::{dlq, topics};
use credit_runtime::dlq as runtime_dlq;
use credit_runtime::errors::{Class, Classify, Disposition, ErrorPolicy, Fault, RetryError};
use credit_runtime::limits::{self, Limit, LimitsError};
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
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

use crate::adapters::{self, Findings};
use crate::config::Config;

/// Why the service stopped. Every kind says whose fault it is and what to do
/// through [`Classify`] (the table is `docs/errors.md`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration: {0}")]
    Config(String),
    #[error("schema registry: {0}")]
    Registry(#[from] RegistryError),
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    /// An output, and then the dead letter of its input, not acknowledged:
    /// nothing after that input is committed.
    #[error("{what}: {error}")]
    Delivery { what: String, error: KafkaError },
    #[error(transparent)]
    Limits(#[from] LimitsError),
    #[error("{0}")]
    GaveUp(String),
}

impl Classify for Error {
    fn class(&self) -> Class {
        match self {
            Error::Config(_) => Class::new("config", Fault::Config, Disposition::Stop),
            Error::Registry(e) => e.class(),
            Error::Kafka(e) | Error::Delivery { error: e, .. } => e.class(),
            Error::Limits(e) => e.class(),
            Error::GaveUp(_) => Class::new("gave_up", Fault::External, Disposition::Stop),
        }
    }
}

/// A failed retry as the error the service stops with (`None`: shutdown).
fn stopped<E: Classify + Into<Error>>(e: RetryError<E>) -> Option<Error> {
    match e {
        RetryError::NotRetriable(e) => Some(e.into()),
        e @ RetryError::GaveUp { .. } => Some(Error::GaveUp(e.to_string())),
        RetryError::Shutdown => None,
    }
}

struct Instruments {
    records_in: Counter<u64>,
    records_out: Counter<u64>,
    dead_lettered: Counter<u64>,
    duration: Histogram<f64>,
    dept: [KeyValue; 1],
    guardrail: Counter<u64>,
    unknown_columns: Counter<u64>,
}

impl Instruments {
    fn new(tel: &Telemetry, dept: &'static str) -> Self {
        let m = tel.meter();
        Instruments {
            guardrail: MetricName::GuardrailDecisions.counter(
                &m,
                "Guardrail decisions on natural persons' records, by concept and decision",
            ),
            unknown_columns: MetricName::CsvUnknownColumns.counter(
                &m,
                "Unknown CSV header columns ignored in accepted records, by column",
            ),
            records_in: MetricName::RecordsIn.counter(&m, "Inbound records read"),
            records_out: MetricName::RecordsOut.counter(&m, "Normalised records acknowledged"),
            dead_lettered: MetricName::RecordsDeadLettered
                .counter(&m, "Records dead-lettered, by reason"),
            duration: MetricName::ProcessingDuration.seconds_histogram(
                &m,
                "Batch read to its last output acknowledged (an upper bound for each record in it)",
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
    /// Its input's index in the batch.
    input: usize,
    /// `None` for a normalised record, the reason for a dead letter.
    rejected: Option<ReasonCode>,
    delivery: DeliveryFuture,
    /// The record's `process` and `send` spans, only when they are recorded
    /// (sampled and exported); they end when the output is acknowledged.
    spans: Option<Box<[trace::Span; 2]>>,
}

/// The output a record turns into, before it is sent.
enum Output {
    Normalised { id: RecordId<'static> },
    Dead(Rejection),
}

/// What stays fixed for every record an instance processes.
struct Route {
    format: InboundFormat,
    department: &'static str,
    schema_id: u32,
    max_bytes: usize,
}

/// Turns one inbound record into its output bytes (in `buf`) or its
/// rejection; what the adapter noticed on the way (guardrail decision,
/// ignored columns) goes into `findings`.
fn process(
    route: &Route,
    today: i32,
    msg: &BorrowedMessage<'_>,
    buf: &mut Vec<u8>,
    findings: &mut Findings,
) -> Output {
    buf.clear();
    findings.clear();
    let ctx = Context {
        department: route.department,
        source_topic: msg.topic(),
        partition: msg.partition(),
        offset: msg.offset(),
        timestamp_ms: msg.timestamp().to_millis(),
        today,
        key: msg.key().and_then(|k| std::str::from_utf8(k).ok()),
    };
    let value = msg.payload().unwrap_or(&[]);
    let result = if value.len() > route.max_bytes {
        Err(Rejection::new(
            ReasonCode::RecordTooLarge,
            None,
            format!(
                "{} bytes exceed the limit of {} (normaliser.max_record_bytes)",
                value.len(),
                route.max_bytes
            ),
        ))
    } else {
        adapters::normalise_with(route.format, &ctx, value, findings, |r| {
            encode::credit_record_framed(buf, route.schema_id, r);
        })
    };
    if let Some(d) = findings.guardrail {
        log_guardrail(route.department, d, msg.partition(), msg.offset());
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
            Output::Dead(rejection)
        }
    }
}

/// The rejection of an input whose normalised record the producer or the
/// broker refuses for good (too large, invalid): its error, not its content.
fn undeliverable(records_topic: &str, e: &KafkaError) -> Rejection {
    Rejection::new(
        ReasonCode::UndeliverableOutput,
        None,
        format!("{records_topic} refused its normalised record: {e}"),
    )
}

/// Where outputs go and how they are written.
struct Sink<'a> {
    producer: &'a FutureProducer,
    records_topic: &'a str,
    /// Partitions of the records topic (see `topics::record_partition`).
    records_partitions: i32,
    dlq_topic: &'a str,
    writer: dlq::Writer<'a>,
    /// The producer's `message.max.bytes`: every dead letter fits it.
    limit: usize,
    policy: &'a ErrorPolicy,
    shutdown: &'a CancellationToken,
}

impl Sink<'_> {
    /// Hands a record to the producer, waiting for room while its queue is
    /// full; any other refusal comes back for the caller to classify.
    async fn enqueue(
        &self,
        mut record: FutureRecord<'_, [u8], [u8]>,
    ) -> Result<DeliveryFuture, KafkaError> {
        loop {
            match self.producer.send_result(record) {
                Ok(delivery) => return Ok(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    async fn send_and_wait(&self, record: FutureRecord<'_, [u8], [u8]>) -> Result<(), KafkaError> {
        match self.enqueue(record).await?.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((e, _))) => Err(e),
            Err(_) => Err(KafkaError::Canceled),
        }
    }

    /// Sends the dead letter of `msg` (cut to fit the producer's limit, so
    /// never refused for its size) with the trace context of `sending`.
    async fn send_dead(
        &self,
        msg: &BorrowedMessage<'_>,
        rejection: &Rejection,
        sending: Option<&trace::SpanContext>,
    ) -> Result<DeliveryFuture, KafkaError> {
        let headers = runtime_dlq::input_headers(msg.headers());
        let input = runtime_dlq::input(msg, &headers);
        let dl = dlq::build(&input, &rejection.into(), &self.writer, self.limit);
        let record = runtime_dlq::future_record(
            self.dlq_topic,
            &dl,
            runtime_dlq::owned_headers(&dl, sending),
        );
        self.enqueue(record).await
    }

    /// One attempt at writing the output of `msg` and waiting for it: the
    /// normalised record, or, when it is rejected or its record is refused
    /// for good, its dead letter.
    async fn write_one(
        &self,
        route: &Route,
        today: i32,
        msg: &BorrowedMessage<'_>,
    ) -> Result<Option<ReasonCode>, KafkaError> {
        let mut buf = Vec::new();
        // The first pass counted what the adapter found; this is a retry.
        let rejection = match process(route, today, msg, &mut buf, &mut Findings::default()) {
            Output::Normalised { id } => {
                let key = id.to_string();
                let record = FutureRecord::to(self.records_topic)
                    .partition(topics::record_partition(&key, self.records_partitions))
                    .key(key.as_bytes())
                    .payload(&buf[..]);
                match self.send_and_wait(record).await {
                    Ok(()) => return Ok(None),
                    Err(e) if matches!(e.class().disposition, Disposition::DeadLetter(_)) => {
                        self.policy.count(e.class());
                        undeliverable(self.records_topic, &e)
                    }
                    Err(e) => return Err(e),
                }
            }
            Output::Dead(r) => r,
        };
        match self.send_dead(msg, &rejection, None).await?.await {
            Ok(Ok(_)) => Ok(Some(rejection.code)),
            Ok(Err((e, _))) => Err(e),
            Err(_) => Err(KafkaError::Canceled),
        }
    }

    /// The slow path for an input whose output failed: write it again on its
    /// own under the error policy (retry what is transient; a record refused
    /// for good is dead-lettered instead; a dead letter refused, or a stop,
    /// stops the service with nothing committed past this input).
    /// `Ok(None)` on shutdown.
    async fn settle(
        &self,
        route: &Route,
        today: i32,
        msg: &BorrowedMessage<'_>,
        failed: &KafkaError,
    ) -> Result<Option<Option<ReasonCode>>, Error> {
        tracing::warn!(
            error = %failed,
            code = failed.class().code,
            partition = msg.partition(),
            offset = msg.offset(),
            "output not written; writing it again on its own"
        );
        match self
            .policy
            .retry("writing one input's output", self.shutdown, || {
                self.write_one(route, today, msg)
            })
            .await
        {
            Ok(code) => Ok(Some(code)),
            Err(RetryError::Shutdown) => Ok(None),
            Err(e) => {
                if let Some(err) = e.error() {
                    self.policy.stop("writing one input's output", err);
                }
                let what = format!(
                    "{}/{}@{}: neither its output nor its dead letter was written",
                    msg.topic(),
                    msg.partition(),
                    msg.offset()
                );
                Err(match e {
                    RetryError::NotRetriable(error) => Error::Delivery { what, error },
                    e => Error::GaveUp(format!("{what}: {e}")),
                })
            }
        }
    }
}

/// A consumer error: a stop (authorisation, fatal) ends the service; anything
/// else librdkafka retries by itself, so it is counted and logged.
fn consumer_error(policy: &ErrorPolicy, e: KafkaError) -> Result<(), Error> {
    let class = e.class();
    if class.disposition == Disposition::Stop {
        policy.stop("consuming", &e);
        return Err(Error::Kafka(e));
    }
    policy.count(class);
    tracing::warn!(error = %e, code = class.code, "consumer error; librdkafka retries");
    Ok(())
}

/// Runs one normaliser instance until `shutdown`, then drains and commits.
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
    let kafka = &config.common.kafka;
    let naming = config.common.kafka.naming();
    let inbound = naming.inbound(dep.id);
    let dlq_topic = naming.dlq(dep.id);
    let records_topic = naming.records();
    let connector = format!("credit-normaliser-{}", dep.id);
    let group = naming.normaliser_group(dep.id);
    let tracer = tel.tracer().clone();
    let policy = ErrorPolicy::new(&tel);

    // Start-up waits out a registry or broker that is away (bounded), and
    // stops on anything else with the reason.
    let registry = RegistryClient::new(&config.common.registry.url)?;
    let subject = topics::value_subject(&records_topic);
    let schema_id = match policy
        .retry("registering the credit-record schema", &shutdown, || {
            registry.register(&subject, credit_schemas::CREDIT_RECORD_AVSC)
        })
        .await
    {
        Ok(id) => id,
        Err(e) => return stopped(e).map_or(Ok(()), Err),
    };
    let producer_config = credit_runtime::kafka::producer(kafka, &connector);
    let limit = runtime_dlq::producer_limit(&producer_config);
    let max_bytes = config.normaliser.max_record_bytes;
    let written = [records_topic.clone(), dlq_topic.clone()];
    let limits = match policy
        .retry("checking record size limits", &shutdown, || {
            limits::check_at_start(
                kafka,
                &written,
                limit,
                Some(Limit {
                    bytes: max_bytes,
                    source: "normaliser.max_record_bytes".into(),
                }),
            )
        })
        .await
    {
        Ok(l) => l,
        Err(e) => return stopped(e).map_or(Ok(()), Err),
    };

    // Publishes credit_bus_consumer_lag for the group from librdkafka statistics.
    let consumer: StreamConsumer<credit_runtime::kafka::BusContext> =
        credit_runtime::kafka::consumer_with_lag(kafka, &connector, &group, &tel)?;
    consumer.subscribe(&[&inbound])?;
    // Records go to the partition of their inbound partition's stream
    // (`topics::record_partition`), so a department's resends of a record
    // meet its entry in the engine.
    let records_partitions = consumer
        .fetch_metadata(Some(&records_topic), Duration::from_secs(15))?
        .topics()
        .iter()
        .find(|t| t.name() == records_topic)
        .map_or(0, |t| t.partitions().len() as i32);
    if records_partitions == 0 {
        return Err(Error::Config(format!(
            "{records_topic} does not exist: run `credit-bus topics create`"
        )));
    }
    let producer: FutureProducer = producer_config.create()?;
    let inst = Instruments::new(&tel, dep.id);
    let batch_size = config.normaliser.batch_size;
    let route = Route {
        format,
        department: dep.id,
        schema_id,
        max_bytes,
    };
    let sink = Sink {
        producer: &producer,
        records_topic: &records_topic,
        records_partitions,
        dlq_topic: &dlq_topic,
        writer: dlq::Writer {
            connector: &connector,
            class_name: dlq::NORMALISER_CLASS,
        },
        limit,
        policy: &policy,
        shutdown: &shutdown,
    };
    tracing::info!(
        department = dep.id,
        topic = %inbound,
        schema_id,
        max_record_bytes = max_bytes,
        producer_max_bytes = limit,
        broker_max_bytes = limits.broker.bytes,
        guardrail_concepts = credit_core::guardrail::rules().concepts().len(),
        "normaliser running"
    );
    ready.set_ready();

    let mut buf = Vec::with_capacity(1024);
    let mut key_buf = String::with_capacity(64);
    let mut batch: Vec<BorrowedMessage<'_>> = Vec::with_capacity(batch_size);
    let mut pending: Vec<Pending> = Vec::with_capacity(batch_size);
    let mut reason_attrs: HashMap<ReasonCode, [KeyValue; 2]> = HashMap::new();
    let mut findings = Findings::default();
    let mut guardrail_attrs: HashMap<(&'static str, &'static str), [KeyValue; 3]> = HashMap::new();
    let mut column_attrs = ColumnLabels::new(dep.id);
    'batches: loop {
        let first = tokio::select! {
            biased;
            _ = shutdown.cancelled() => break,
            m = consumer.recv() => m,
        };
        // One clock read per batch: per-record reads were 8 % of a profile.
        let batch_started = Instant::now();
        let today = credit_runtime::today();
        let mut next = Some(first);
        while let Some(m) = next.take() {
            match m {
                Ok(msg) => batch.push(msg),
                Err(e) => consumer_error(&policy, e)?,
            }
            if batch.len() < batch_size {
                next = consumer.recv().now_or_never();
            }
        }
        inst.records_in.add(batch.len() as u64, &inst.dept);

        for (i, msg) in batch.iter().enumerate() {
            // `process <inbound>`, child of the record's trace context (or
            // a new trace); its output carries a `send` span's context.
            let mut processing = tracer.process_message(msg, &group);
            let output = process(&route, today, msg, &mut buf, &mut findings);
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
            // Counted for records read under their header, not for a header
            // whose record is rejected (its reason is in the dead letter):
            // the metric says which ignored columns accepted data carries.
            if matches!(output, Output::Normalised { .. }) {
                for name in &findings.unknown_columns {
                    inst.unknown_columns.add(1, column_attrs.attrs(name));
                }
            }
            let sent = match output {
                Output::Normalised { id } => {
                    id.write_to(&mut key_buf);
                    // The key is a record id (department:partition:offset).
                    let sending =
                        tracer.send(Some(processing.context()), &records_topic, Some(&key_buf));
                    let record = FutureRecord::to(&records_topic)
                        .partition(topics::record_partition(&key_buf, records_partitions))
                        .key(key_buf.as_bytes())
                        .payload(&buf[..])
                        .headers(trace::headers(sending.context()));
                    sink.enqueue(record).await.map(|d| (d, None, Some(sending)))
                }
                Output::Dead(rejection) => {
                    processing.set_error(rejection.code.as_str());
                    // The inbound key is the department's own: maybe personal, not recorded.
                    let sending = tracer.send(Some(processing.context()), &dlq_topic, None);
                    sink.send_dead(msg, &rejection, Some(sending.context()))
                        .await
                        .map(|d| (d, Some(rejection.code), Some(sending)))
                }
            };
            match sent {
                Ok((delivery, rejected, sending)) => {
                    let spans = processing
                        .is_recording()
                        .then(|| sending.map(|s| Box::new([processing, s])))
                        .flatten();
                    pending.push(Pending {
                        input: i,
                        rejected,
                        delivery,
                        spans,
                    });
                }
                // Refused before it was queued (too large for the producer,
                // most often): the slow path dead-letters it, or stops.
                Err(e) => match sink.settle(&route, today, msg, &e).await? {
                    Some(code) => count_settled(&inst, &mut reason_attrs, dep.id, code),
                    None => break 'batches,
                },
            }
        }

        // Wait for every output, then store the offsets after them.
        let mut next_offsets: HashMap<i32, i64> = HashMap::new();
        let mut normalised = 0u64;
        for p in pending.drain(..) {
            let msg = &batch[p.input];
            let rejected = match p.delivery.await {
                Ok(Ok(d)) => {
                    if let Some(mut spans) = p.spans {
                        spans[1].set_partition(d.partition);
                    }
                    p.rejected
                }
                Ok(Err((e, _))) => {
                    if e.class().is_retry() {
                        policy.count(e.class());
                    }
                    match sink.settle(&route, today, msg, &e).await? {
                        Some(code) => code,
                        None => break 'batches,
                    }
                }
                Err(_) => match sink
                    .settle(&route, today, msg, &KafkaError::Canceled)
                    .await?
                {
                    Some(code) => code,
                    None => break 'batches,
                },
            };
            match rejected {
                None => normalised += 1,
                Some(code) => {
                    let attrs = reason_attrs.entry(code).or_insert_with(|| {
                        [metrics::department(dep.id), metrics::reason(code.as_str())]
                    });
                    inst.dead_lettered.add(1, attrs);
                }
            }
        }
        // Every input of the batch is written and acknowledged now (or the
        // service stopped above, storing nothing).
        for msg in &batch {
            let e = next_offsets.entry(msg.partition()).or_insert(0);
            *e = (*e).max(msg.offset() + 1);
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
        batch.clear();
    }
    // A shutdown in the middle of a batch leaves its offsets unstored: replayed.
    pending.clear();
    batch.clear();

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

/// Counts an input the slow path wrote (settled before it was queued).
fn count_settled(
    inst: &Instruments,
    reason_attrs: &mut HashMap<ReasonCode, [KeyValue; 2]>,
    dept: &'static str,
    code: Option<ReasonCode>,
) {
    match code {
        None => inst.records_out.add(1, &inst.dept),
        Some(code) => {
            let attrs = reason_attrs
                .entry(code)
                .or_insert_with(|| [metrics::department(dept), metrics::reason(code.as_str())]);
            inst.dead_lettered.add(1, attrs);
        }
    }
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
