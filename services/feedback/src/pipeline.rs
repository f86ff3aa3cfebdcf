//! The tracker's Kafka side.
//!
//! Start: read `credit.feedback.rejected` (decisions already written), every
//! notices topic and every feedback topic from the beginning to their end
//! (`credit_runtime::read`, read_committed), replaying them into the [`Book`]; then
//! read the notices topics to their end once more and reject what still names
//! no notice. Ready. Then follow all notices and feedback topics from there.
//!
//! A feedback whose notice is not known yet waits (notices and feedback are on
//! different topics, so a feedback can be read first). Its notice streaming in
//! decides it; otherwise, after `pending_grace_ms`, the notices topics are read
//! to their end from where the tracker is, and whatever still waits and
//! arrived before that read began names no notice: any notice a department
//! answered was committed before it could read it, so it lies below the end
//! (the last stable offset) that read reached.
//!
//! Errors follow the bus's policy (`credit_runtime::errors`, `docs/errors.md`):
//! feedback that cannot be decoded (empty, not framed, a schema id the
//! registry does not know, another subject's schema, a damaged body) is
//! refused onto the rejected topic, its dead-letter topic, with the reason and
//! its position; a registry or broker that is away is waited for with bounded
//! backoff, never a reason to refuse; an authorisation or configuration fault
//! stops the tracker.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use credit_core::ReasonCode;
use credit_core::dlq;
use credit_core::feedback::{FeedbackReason, TRACKER_CLASS};
use credit_runtime::config::KafkaConfig;
use credit_runtime::dlq as runtime_dlq;
use credit_runtime::errors::{Classify, Disposition, ErrorPolicy, RetryError};
use credit_runtime::metrics::{MetricName, label};
use credit_runtime::ops::Readiness;
use credit_runtime::telemetry::Telemetry;
use credit_runtime::trace;
use credit_schemas::feedback::OwnedFeedback;
use credit_schemas::registry::RegistryClient;
use opentelemetry::KeyValue;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::producer::FutureProducer;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::config::{Config, FeedbackConfig};
use crate::rules::Clock;
use crate::state::{Book, Event};

/// A record as read, kept whole so a rejection can carry the original.
#[derive(Debug, Clone)]
pub struct Origin {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: Option<i64>,
    pub key: Option<Vec<u8>>,
    pub payload: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Origin {
    fn of<M: Message>(m: &M) -> Origin {
        Origin {
            topic: m.topic().to_string(),
            partition: m.partition(),
            offset: m.offset(),
            timestamp_ms: m.timestamp().to_millis(),
            key: m.key().map(<[u8]>::to_vec),
            payload: m.payload().map(<[u8]>::to_vec),
            headers: m.headers().map_or_else(Vec::new, |h| {
                h.iter()
                    .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            }),
        }
    }

    fn header(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| std::str::from_utf8(v.as_deref()?).ok())
    }

    /// The record's trace context, if it carries a valid one.
    fn trace_context(&self) -> Option<trace::SpanContext> {
        trace::parse(
            self.header(trace::TRACEPARENT)?.as_bytes(),
            self.header(trace::TRACESTATE).map(str::as_bytes),
        )
    }
}

/// Why the tracker refused a feedback: a rule of the loop ([`FeedbackReason`])
/// or an input it cannot decode ([`ReasonCode`]: `empty_record`,
/// `malformed_avro`, `unknown_schema`, `schema_mismatch`). Both spell the
/// `credit-bus.reason` header and the `reason` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Refusal {
    Feedback(FeedbackReason),
    Input(ReasonCode),
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Feedback(r) => r.as_str(),
            Refusal::Input(c) => c.as_str(),
        }
    }

    pub fn parse(s: &str) -> Option<Refusal> {
        FeedbackReason::parse(s)
            .map(Refusal::Feedback)
            .or_else(|| ReasonCode::parse(s).map(Refusal::Input))
    }

    fn stage(self) -> &'static str {
        match self {
            Refusal::Feedback(r) => r.stage(),
            Refusal::Input(c) => c.stage(),
        }
    }

    fn field(self) -> Option<&'static str> {
        match self {
            Refusal::Feedback(r) => r.field(),
            Refusal::Input(_) => None,
        }
    }
}

/// What [`Tracker::decode`] makes of a payload.
enum Decoded {
    Feedback(OwnedFeedback),
    Refused(ReasonCode, String),
}

/// The state the loop writes and `/report` reads.
pub struct Shared {
    book: Mutex<Book<Origin>>,
    clock: Clock,
}

impl Shared {
    pub fn new(cfg: &FeedbackConfig) -> Shared {
        Shared {
            book: Mutex::new(Book::new(cfg.calendar(), cfg.working_days)),
            clock: cfg.clock(),
        }
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book<Origin>> {
        self.book.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn report(&self) -> crate::Report {
        let now = self.clock.now_ms();
        let book = self.book();
        crate::Report {
            as_of_ms: now,
            pending: book.pending() as u64,
            departments: book
                .report(now)
                .into_iter()
                .map(|(d, c)| (d.to_string(), c))
                .collect(),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Notices,
    Feedback,
}

/// Topics to read, each partition from a position (`None`: the beginning).
type ReadPlan = Vec<(String, Vec<(i32, Option<i64>)>)>;

/// Reads each topic of `plan`, as a department reads it (`read_committed`:
/// notices of aborted engine transactions are never seen), up to what was
/// committed when the read began (`credit_runtime::read::read_written`): a
/// notices topic the engine writes faster than it is read still ends. Every
/// notice a department has answered was committed before it answered, so a
/// barrier that looks for a notice some feedback names finds it. Partition
/// EOF names no topic, so each topic gets its own short-lived reader; up to
/// `READERS` run at once. `stop` ends the reads (shutdown).
fn read_topics(
    kafka: &KafkaConfig,
    plan: ReadPlan,
    stop: &CancellationToken,
) -> Result<Vec<Origin>, String> {
    const READERS: usize = 8;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Result<Vec<Origin>, String>> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..READERS.min(plan.len()))
            .map(|_| {
                s.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((topic, parts)) = plan.get(i) else {
                            return Ok(out);
                        };
                        // Offset 0, not "beginning": a logical offset costs a
                        // ListOffsets round trip per partition first.
                        let from: Vec<(i32, Offset)> = parts
                            .iter()
                            .map(|&(p, o)| (p, Offset::Offset(o.unwrap_or(0))))
                            .collect();
                        credit_runtime::read::read_written(
                            kafka,
                            "credit-feedback-reader",
                            topic,
                            &from,
                            Duration::from_secs(120),
                            &|| stop.is_cancelled(),
                            |m| out.push(Origin::of(m)),
                        )
                        .map_err(|e| e.to_string())?;
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join()
                    .unwrap_or_else(|_| Err("reader thread panicked".into()))
            })
            .collect()
    });
    let mut out = Vec::new();
    for r in results {
        out.extend(r?);
    }
    // Each topic's records stay in offset order per partition; across topics
    // order does not matter (notices are applied before feedback is judged).
    Ok(out)
}

struct Instruments {
    received: opentelemetry::metrics::Counter<u64>,
    rejected: opentelemetry::metrics::Counter<u64>,
    tracked: opentelemetry::metrics::Gauge<i64>,
}

struct Tracker {
    kafka: KafkaConfig,
    shared: Arc<Shared>,
    registry: RegistryClient,
    /// Writer schemas by id (ids are immutable); `None` for a schema that
    /// does not parse. Ids the registry does not know are not remembered.
    schemas: HashMap<u32, Option<Arc<apache_avro::Schema>>>,
    producer: FutureProducer,
    /// The producer's `message.max.bytes`: every rejection fits it.
    limit: usize,
    policy: ErrorPolicy,
    rejected_topic: String,
    /// Rejections already on the rejected topic, by the original's
    /// (topic, partition, offset): a rebuild repeats those decisions as they
    /// were and does not write them again.
    already_rejected: HashMap<(String, i32, i64), Refusal>,
    topics: HashMap<String, (&'static str, Kind)>,
    partitions: HashMap<String, i32>,
    /// Next offset to read per (topic, partition).
    positions: HashMap<(String, i32), i64>,
    /// Arrival order of feedback.
    seq: u64,
    m: Instruments,
    shutdown: CancellationToken,
    tracer: trace::Tracer,
    group: String,
    /// Past the rebuild: feedback read from here on gets a `process` span
    /// (a rebuild re-reads old feedback and would repeat them at every start).
    live: bool,
}

impl Tracker {
    fn advance(&mut self, o: &Origin) {
        let p = self
            .positions
            .entry((o.topic.clone(), o.partition))
            .or_insert(0);
        *p = (*p).max(o.offset + 1);
    }

    fn plan(&self, kind: Kind) -> ReadPlan {
        let mut plan: ReadPlan = Vec::new();
        for (topic, (_, k)) in &self.topics {
            if *k != kind {
                continue;
            }
            let n = self.partitions.get(topic).copied().unwrap_or(0);
            let parts = (0..n)
                .map(|p| (p, self.positions.get(&(topic.clone(), p)).copied()))
                .collect();
            plan.push((topic.clone(), parts));
        }
        plan.sort();
        plan
    }

    async fn read(&self, plan: ReadPlan) -> anyhow::Result<Vec<Origin>> {
        let kafka = self.kafka.clone();
        let stop = self.shutdown.clone();
        tokio::task::spawn_blocking(move || read_topics(&kafka, plan, &stop))
            .await?
            .map_err(|e| anyhow::anyhow!(e))
    }

    async fn on_record(&mut self, o: Origin) -> anyhow::Result<()> {
        let Some(&(department, kind)) = self.topics.get(&o.topic) else {
            return Ok(());
        };
        self.advance(&o);
        match kind {
            Kind::Notices => self.on_notice(department, o).await,
            Kind::Feedback => self.on_feedback(department, o).await,
        }
    }

    async fn on_notice(&mut self, department: &'static str, o: Origin) -> anyhow::Result<()> {
        // The key is the notice id (notice.avsc): no need to decode the notice,
        // so the tracker never handles its subject's personal data.
        let Some(id) = o.key.as_deref().and_then(|k| std::str::from_utf8(k).ok()) else {
            tracing::warn!(topic = %o.topic, partition = o.partition, offset = o.offset, "notice without a UTF-8 key ignored");
            return Ok(());
        };
        let sent = o.timestamp_ms.unwrap_or_else(|| self.shared.clock.now_ms());
        let events = self.shared.book().add_notice(id, department, sent);
        self.handle(events).await
    }

    async fn on_feedback(&mut self, department: &'static str, o: Origin) -> anyhow::Result<()> {
        let seq = self.seq;
        self.seq += 1;
        let at = (o.topic.clone(), o.partition, o.offset);
        if let Some(&reason) = self.already_rejected.get(&at) {
            self.count_rejected(department, reason);
            return Ok(());
        }
        // `process <feedback topic>`, child of the feedback's trace context,
        // which `credit-bus` sets to the notice's trace.
        let mut span = self.live.then(|| {
            self.tracer.process(
                o.trace_context().as_ref(),
                trace::Consumed {
                    topic: &o.topic,
                    partition: o.partition,
                    offset: o.offset,
                    group: &self.group,
                },
            )
        });
        let fb = match self.decode(o.payload.as_deref()).await? {
            Decoded::Feedback(fb) => fb,
            Decoded::Refused(code, detail) => {
                if let Some(s) = &mut span {
                    s.set_error(code.as_str());
                }
                return self
                    .reject(department, Refusal::Input(code), &detail, o)
                    .await;
            }
        };
        let event = self.shared.book().add_feedback(seq, department, fb, o);
        if let (Some(s), Some(Event::Rejected { reason, .. })) = (&mut span, &event) {
            s.set_error(reason.as_str());
        }
        self.handle(event.into_iter().collect()).await
    }

    /// Decodes a payload, or says why it cannot be: the registry is asked
    /// under the error policy (waited for while away; an id it does not know
    /// is the record's fault).
    async fn decode(&mut self, payload: Option<&[u8]>) -> anyhow::Result<Decoded> {
        let refused = |c: ReasonCode, d: &str| Ok(Decoded::Refused(c, d.to_string()));
        let payload = match payload {
            None | Some([]) => return refused(ReasonCode::EmptyRecord, "no value"),
            Some(p) => p,
        };
        let (id, body) = match credit_schemas::wire::split(payload) {
            Ok(x) => x,
            Err(e) => return refused(ReasonCode::MalformedAvro, &e.to_string()),
        };
        if !self.schemas.contains_key(&id) {
            let fetched = self
                .policy
                .retry("fetching a writer schema", &self.shutdown, || {
                    self.registry.schema_by_id(id)
                })
                .await;
            let text = match fetched {
                Ok(text) => text,
                Err(RetryError::Shutdown) => {
                    anyhow::bail!("shutdown while waiting for the registry")
                }
                Err(RetryError::NotRetriable(e))
                    if e.class().disposition
                        == Disposition::DeadLetter(ReasonCode::UnknownSchema) =>
                {
                    self.policy.count(e.class());
                    return refused(
                        ReasonCode::UnknownSchema,
                        &format!("schema id {id} is not in the registry"),
                    );
                }
                Err(e) => {
                    if let Some(err) = e.error() {
                        self.policy.stop("fetching a writer schema", err);
                    }
                    anyhow::bail!("schema registry: {e}");
                }
            };
            let parsed = apache_avro::Schema::parse_str(&text).ok().map(Arc::new);
            self.schemas.insert(id, parsed);
        }
        let Some(Some(writer)) = self.schemas.get(&id) else {
            return refused(
                ReasonCode::SchemaMismatch,
                &format!("schema id {id} does not parse as Avro"),
            );
        };
        // A writer schema of another record (a notice's, say) is the wrong
        // contract; a feedback schema whose body does not decode is a damaged
        // record. apache-avro's own messages may quote values, so neither is
        // passed on.
        let reader = credit_schemas::feedback_schema();
        if writer.name() != reader.name() {
            return refused(
                ReasonCode::SchemaMismatch,
                &format!(
                    "schema id {id} is {}, not {}",
                    writer
                        .name()
                        .map_or("not a named record".into(), |n| n.fullname(None)),
                    reader.name().map_or(String::new(), |n| n.fullname(None))
                ),
            );
        }
        Ok(match credit_schemas::feedback::decode_body(writer, body) {
            Ok(fb) => Decoded::Feedback(fb),
            Err(_) => Decoded::Refused(
                ReasonCode::MalformedAvro,
                format!(
                    "a body of {} bytes does not decode with schema id {id}",
                    body.len()
                ),
            ),
        })
    }

    async fn handle(&mut self, events: Vec<Event<Origin>>) -> anyhow::Result<()> {
        for e in events {
            match e {
                Event::Accepted {
                    department,
                    outcome,
                } => self.m.received.add(
                    1,
                    &[
                        KeyValue::new(label::DEPARTMENT, department),
                        KeyValue::new(label::OUTCOME, outcome.as_str()),
                    ],
                ),
                Event::Repeated { department } => {
                    tracing::debug!(department, "identical feedback repeated; not counted")
                }
                Event::Rejected {
                    department,
                    reason,
                    origin,
                } => {
                    let detail = format!("feedback refused: {reason}");
                    self.reject(department, Refusal::Feedback(reason), &detail, origin)
                        .await?
                }
            }
        }
        Ok(())
    }

    fn count_rejected(&self, department: &'static str, reason: Refusal) {
        self.m.rejected.add(
            1,
            &[
                KeyValue::new(label::DEPARTMENT, department),
                KeyValue::new(label::REASON, reason.as_str()),
            ],
        );
    }

    /// Writes the original key, value and headers plus the dead-letter headers
    /// to the rejected topic (cut to fit the producer's limit: a rejection
    /// never fails on size) and waits for the acknowledgement, retrying a
    /// broker that is away; any other failure stops the tracker.
    async fn reject(
        &mut self,
        department: &'static str,
        reason: Refusal,
        detail: &str,
        o: Origin,
    ) -> anyhow::Result<()> {
        tracing::info!(department, reason = reason.as_str(), topic = %o.topic, partition = o.partition, offset = o.offset, "feedback rejected");
        // The original headers but its trace context, replaced by a `send` span's
        // under it (the key is a notice id, no personal data).
        let span = self.tracer.send(
            o.trace_context().as_ref(),
            &self.rejected_topic,
            o.key.as_deref().and_then(|k| std::str::from_utf8(k).ok()),
        );
        let headers: Vec<(&str, Option<&[u8]>)> = o
            .headers
            .iter()
            .filter(|(k, _)| !trace::is_trace_header(k))
            .map(|(k, v)| (k.as_str(), v.as_deref()))
            .collect();
        let input = dlq::Input {
            topic: &o.topic,
            partition: o.partition,
            offset: o.offset,
            key: o.key.as_deref(),
            value: o.payload.as_deref(),
            headers: &headers,
        };
        let dl = dlq::build(
            &input,
            &dlq::Reason {
                code: reason.as_str(),
                stage: reason.stage(),
                field: reason.field(),
                detail,
            },
            &dlq::Writer {
                connector: "credit-feedback",
                class_name: TRACKER_CLASS,
            },
            self.limit,
        );
        let sc = span.context().clone();
        let (producer, topic) = (&self.producer, &self.rejected_topic);
        let sent = self
            .policy
            .retry("writing a rejected feedback", &self.shutdown, || async {
                let rec = runtime_dlq::future_record(
                    topic,
                    &dl,
                    runtime_dlq::owned_headers(&dl, Some(&sc)),
                );
                producer
                    .send(rec, Duration::from_secs(30))
                    .await
                    .map(|_| ())
                    .map_err(|(e, _)| e)
            })
            .await;
        match sent {
            Ok(()) => {}
            Err(RetryError::Shutdown) => {
                anyhow::bail!("shutdown while writing a rejected feedback")
            }
            Err(e) => {
                if let Some(err) = e.error() {
                    self.policy.stop("writing a rejected feedback", err);
                }
                anyhow::bail!(
                    "writing the rejection of {}/{}@{}: {e}",
                    o.topic,
                    o.partition,
                    o.offset
                );
            }
        }
        self.count_rejected(department, reason);
        Ok(())
    }

    /// Reads the notices topics to their end from where the tracker is, then
    /// rejects feedback that arrived before the read began and still names no notice.
    async fn barrier(&mut self) -> anyhow::Result<()> {
        let before = self.seq;
        for o in self.read(self.plan(Kind::Notices)).await? {
            self.on_record(o).await?;
        }
        let events = self.shared.book().expire_pending(before);
        self.handle(events).await
    }

    fn refresh_gauges(&self) {
        let report = self.shared.report();
        for d in credit_core::DEPARTMENTS {
            let c = report.departments.get(d.id).copied().unwrap_or_default();
            for (state, v) in [("open", c.open), ("overdue", c.overdue), ("done", c.done)] {
                self.m.tracked.record(
                    v as i64,
                    &[
                        KeyValue::new(label::DEPARTMENT, d.id),
                        KeyValue::new(label::STATE, state),
                    ],
                );
            }
        }
    }
}

/// Rebuilds from the topics, marks ready, follows the topics until `shutdown`.
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
        received: MetricName::FeedbackReceived.counter(
            &meter,
            "Feedback accepted (repeats of identical feedback not counted), by department and outcome",
        ),
        rejected: MetricName::FeedbackRejected.counter(
            &meter,
            "Feedback refused and written to the rejected topic, by department and reason",
        ),
        tracked: MetricName::NoticesTracked
            .gauge(&meter, "Notices known to the tracker, by department and state"),
    };
    let mut topics = HashMap::new();
    for d in credit_core::DEPARTMENTS {
        topics.insert(naming.notices(d.id), (d.id, Kind::Notices));
        topics.insert(naming.feedback(d.id), (d.id, Kind::Feedback));
    }
    let rejected_topic = naming.feedback_rejected();
    let meta_kafka = kafka.clone();
    let partitions: HashMap<String, i32> = tokio::task::spawn_blocking(move || {
        let c = credit_runtime::kafka::reader(&meta_kafka, "credit-feedback-metadata")?;
        let meta = c.fetch_metadata(None, Duration::from_secs(30))?;
        Ok::<_, rdkafka::error::KafkaError>(
            meta.topics()
                .iter()
                .map(|t| (t.name().to_string(), t.partitions().len() as i32))
                .collect(),
        )
    })
    .await??;
    let missing: Vec<&String> = topics
        .keys()
        .chain([&rejected_topic])
        .filter(|t| partitions.get(*t).copied().unwrap_or(0) == 0)
        .collect();
    if missing.contains(&&rejected_topic) {
        anyhow::bail!("{rejected_topic} does not exist: run `credit-bus topics create`");
    }
    if !missing.is_empty() {
        tracing::warn!(
            missing = missing.len(),
            "some notices/feedback topics do not exist; not read"
        );
    }
    let policy = ErrorPolicy::new(&tel);
    let producer_config = credit_runtime::kafka::producer(&kafka, "credit-feedback");
    let limit = runtime_dlq::producer_limit(&producer_config);
    let written = [rejected_topic.clone()];
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
    let mut t = Tracker {
        registry: RegistryClient::new(&config.common.registry.url)?,
        schemas: HashMap::new(),
        producer: producer_config.create()?,
        limit,
        policy,
        rejected_topic: rejected_topic.clone(),
        already_rejected: HashMap::new(),
        topics,
        partitions,
        positions: HashMap::new(),
        seq: 0,
        m,
        shutdown: shutdown.clone(),
        tracer: tel.tracer().clone(),
        group: naming.feedback_group(),
        live: false,
        kafka,
        shared,
    };

    let started = Instant::now();
    tokio::select! {
        r = rebuild(&mut t, &rejected_topic) => match r {
            // Its reads end early on a shutdown.
            Err(_) if shutdown.is_cancelled() => {
                tracing::info!("stopped while rebuilding");
                return Ok(());
            }
            r => r?,
        },
        _ = shutdown.cancelled() => {
            tracing::info!("stopped while rebuilding");
            return Ok(());
        }
    }
    ready.set_ready();
    t.live = true;
    {
        let book = t.shared.book();
        tracing::info!(
            notices = book.notices(),
            feedback = t.seq,
            seconds = started.elapsed().as_secs_f64(),
            "state rebuilt from the topics"
        );
    }

    let consumer: StreamConsumer =
        credit_runtime::kafka::consumer(&t.kafka, "credit-feedback", &naming.feedback_group())
            .set("enable.auto.commit", "false")
            // Notices come from the engine's transactions: only committed ones.
            .set("isolation.level", "read_committed")
            .create()?;
    let mut tpl = TopicPartitionList::new();
    for kind in [Kind::Notices, Kind::Feedback] {
        for (topic, parts) in t.plan(kind) {
            for (p, from) in parts {
                tpl.add_partition_offset(
                    &topic,
                    p,
                    from.map_or(Offset::Beginning, Offset::Offset),
                )?;
            }
        }
    }
    consumer.assign(&tpl)?;
    let grace = Duration::from_millis(config.feedback.pending_grace_ms);
    let refresh = Duration::from_millis(config.feedback.refresh_ms);
    let mut tick = tokio::time::interval(Duration::from_millis(50).min(refresh));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut waiting_since: Option<Instant> = None;
    let mut refreshed = Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            m = consumer.recv() => match m {
                Ok(m) => {
                    let o = Origin::of(&m);
                    t.on_record(o).await?;
                }
                Err(e) => consumer_error(&t.policy, e)?,
            },
            _ = tick.tick() => {}
        }
        let pending = t.shared.book().pending();
        match (pending, waiting_since) {
            (0, _) => waiting_since = None,
            (_, None) => waiting_since = Some(Instant::now()),
            (_, Some(since)) if since.elapsed() >= grace => {
                // A barrier re-reads the notices topics; a shutdown stops it
                // (what it read is read again after a restart).
                if let Err(e) = t.barrier().await {
                    if shutdown.is_cancelled() {
                        break;
                    }
                    return Err(e);
                }
                waiting_since = (t.shared.book().pending() > 0).then(Instant::now);
            }
            _ => {}
        }
        if refreshed.elapsed() >= refresh {
            t.refresh_gauges();
            refreshed = Instant::now();
        }
    }
    t.tracer.flush();
    tracing::info!("feedback tracker stopped");
    Ok(())
}

/// Reads the rejected topic, then every notices and feedback topic from the
/// beginning to its end, then decides feedback that still names no notice.
async fn rebuild(t: &mut Tracker, rejected_topic: &str) -> anyhow::Result<()> {
    let n = t.partitions[rejected_topic];
    for o in t
        .read(vec![(
            rejected_topic.to_string(),
            (0..n).map(|p| (p, None)).collect(),
        )])
        .await?
    {
        let (Some(topic), Some(p), Some(off), Some(reason)) = (
            o.header(dlq::TOPIC),
            o.header(dlq::PARTITION).and_then(|p| p.parse().ok()),
            o.header(dlq::OFFSET).and_then(|p| p.parse().ok()),
            o.header(dlq::REASON).and_then(Refusal::parse),
        ) else {
            continue;
        };
        t.already_rejected
            .insert((topic.to_string(), p, off), reason);
    }
    for o in t.read(t.plan(Kind::Notices)).await? {
        t.on_record(o).await?;
    }
    for o in t.read(t.plan(Kind::Feedback)).await? {
        t.on_record(o).await?;
    }
    t.barrier().await?;
    t.refresh_gauges();
    Ok(())
}

/// A consumer error: a stop (authorisation, fatal) ends the tracker; anything
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
