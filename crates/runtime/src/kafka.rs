//! librdkafka settings shared by every service, and topic administration.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;

use crate::config::KafkaConfig;
use crate::metrics::{MetricName, label};
use crate::telemetry::Telemetry;

/// Settings common to producers, consumers and admin clients.
pub fn base(cfg: &KafkaConfig, client_id: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.brokers)
        .set("client.id", client_id)
        .set("security.protocol", &cfg.security_protocol);
    if let Some(m) = &cfg.sasl_mechanism {
        c.set("sasl.mechanism", m);
    }
    if let Some(u) = &cfg.sasl_username {
        c.set("sasl.username", u);
    }
    if let Some(p) = &cfg.sasl_password {
        c.set("sasl.password", p);
    }
    for (k, v) in &cfg.extra {
        c.set(k, v);
    }
    c
}

/// A producer whose acknowledgements mean "stored by all in-sync replicas".
pub fn producer(cfg: &KafkaConfig, client_id: &str) -> ClientConfig {
    let mut c = base(cfg, client_id);
    c.set("acks", "all")
        // Idempotent: a produce retried after a lost acknowledgement (a broker
        // restart mid-request) is not appended twice. The engine's exactly-once
        // notices rest on it: no recovery can undo a record the broker wrote
        // twice (seen once in the broker-restart test before this was set).
        .set("enable.idempotence", "true")
        .set("linger.ms", cfg.linger_ms.to_string())
        // Infinite delivery timeout: a record is either acknowledged or the process
        // stops; it is never dropped after a retry budget runs out.
        .set("message.timeout.ms", "0")
        .set("compression.type", "lz4")
        // librdkafka's default, stated: the limit dead letters are cut to and
        // the start-up check compares with the broker's (crate::limits).
        .set(
            "message.max.bytes",
            crate::dlq::DEFAULT_MESSAGE_MAX_BYTES.to_string(),
        )
        // Java clients' partitioner, so a key lands on the same partition whoever
        // produces it (the engine relies on records and commands co-partitioning).
        .set("partitioner", "murmur2_random")
        .set("queue.buffering.max.messages", "1000000")
        .set("batch.num.messages", "10000");
    // Re-apply pass-through settings so operators can override ours.
    for (k, v) in &cfg.extra {
        c.set(k, v);
    }
    c
}

/// A consumer that stores offsets only when told to, after its outputs are acknowledged.
pub fn consumer(cfg: &KafkaConfig, client_id: &str, group: &str) -> ClientConfig {
    let mut c = base(cfg, client_id);
    c.set("group.id", group)
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", "1000")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("fetch.wait.max.ms", cfg.fetch_wait_max_ms.to_string())
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000");
    for (k, v) in &cfg.extra {
        c.set(k, v);
    }
    c
}

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("kafka admin client: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
    #[error("creating topic {topic}: {code}")]
    Create {
        topic: String,
        code: RDKafkaErrorCode,
    },
}

/// Creates each topic that does not exist yet (brokers such as tansu do not
/// auto-create). Compacted topics get `cleanup.policy=compact`; departments'
/// notices and feedback topics get `notice_partitions`, the rest `partitions`.
pub async fn ensure_topics(cfg: &KafkaConfig, topics: &[String]) -> Result<(), AdminError> {
    let naming = cfg.naming();
    let specs: Vec<(&str, i32, bool)> = topics
        .iter()
        .map(|t| {
            let partitions = if naming.is_notice_or_feedback(t) {
                cfg.notice_partitions
            } else {
                cfg.partitions
            };
            (t.as_str(), partitions, naming.is_compacted(t))
        })
        .collect();
    create(cfg, &specs).await
}

/// Creates a single-partition compacted topic (a store such as the registry's) if missing.
pub async fn ensure_compacted_topic(cfg: &KafkaConfig, topic: &str) -> Result<(), AdminError> {
    create(cfg, &[(topic, 1, true)]).await
}

async fn create(cfg: &KafkaConfig, specs: &[(&str, i32, bool)]) -> Result<(), AdminError> {
    let admin: AdminClient<DefaultClientContext> = base(cfg, "credit-bus-admin").create()?;
    let new: Vec<NewTopic<'_>> = specs
        .iter()
        .map(|&(t, partitions, compacted)| {
            let nt = NewTopic::new(
                t,
                partitions,
                TopicReplication::Fixed(cfg.replication_factor),
            );
            if compacted {
                nt.set("cleanup.policy", "compact")
            } else {
                nt
            }
        })
        .collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for result in admin.create_topics(&new, &opts).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => return Err(AdminError::Create { topic, code }),
        }
    }
    Ok(())
}

/// The client context of the bus's consumers: partition-EOF (which readers ask
/// for) is not logged as an error, and, when given a [`ConsumerLag`], every
/// librdkafka statistics report (`kafka.statistics_interval_ms`) updates the
/// consumer-lag gauge.
#[derive(Default)]
pub struct BusContext {
    lag: Option<ConsumerLag>,
}

impl BusContext {
    /// A context that publishes consumer lag from statistics.
    pub fn with_lag(lag: ConsumerLag) -> BusContext {
        BusContext { lag: Some(lag) }
    }
}

impl rdkafka::client::ClientContext for BusContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        use rdkafka::error::{KafkaError, RDKafkaErrorCode};
        if !matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        ) {
            tracing::error!(error = %error, reason, "librdkafka error");
        }
    }

    fn stats(&self, statistics: rdkafka::Statistics) {
        if let Some(lag) = &self.lag {
            lag.record(&statistics);
        }
    }
}

impl rdkafka::consumer::ConsumerContext for BusContext {}

/// Sets librdkafka's `statistics.interval.ms` from `kafka.statistics_interval_ms`
/// (0 turns statistics off), so a context's `stats` callback runs.
pub fn enable_statistics<'c>(c: &'c mut ClientConfig, cfg: &KafkaConfig) -> &'c mut ClientConfig {
    c.set(
        "statistics.interval.ms",
        cfg.statistics_interval_ms.to_string(),
    )
}

/// [`consumer`] with statistics on and a [`BusContext`] publishing the group's
/// lag to `telemetry`:
/// `let c: StreamConsumer<BusContext> = kafka::consumer_with_lag(cfg, id, group, &tel)?;`
pub fn consumer_with_lag<C>(
    cfg: &KafkaConfig,
    client_id: &str,
    group: &str,
    telemetry: &Telemetry,
) -> Result<C, rdkafka::error::KafkaError>
where
    C: rdkafka::config::FromClientConfigAndContext<BusContext>,
{
    let mut c = consumer(cfg, client_id, group);
    enable_statistics(&mut c, cfg);
    c.create_with_context(BusContext::with_lag(ConsumerLag::new(telemetry, group)))
}

/// Publishes `credit_bus_consumer_lag{group,topic,partition}` from librdkafka
/// statistics. Cheap to clone; a custom consumer context holds one and calls
/// [`ConsumerLag::record`] from its `ClientContext::stats`.
///
/// The figure is librdkafka's `consumer_lag_stored` (high watermark, or last
/// stable offset under `read_committed`, minus the offset the application
/// stored: records read but not yet finished count as lag), falling back to
/// `consumer_lag` (minus the committed offset) before anything was stored;
/// partitions where both are -1 (unknown) are skipped. A partition this
/// instance no longer consumes is set to 0 once, so a sum over a group's
/// instances stays right after a rebalance.
#[derive(Clone)]
pub struct ConsumerLag {
    gauge: opentelemetry::metrics::Gauge<i64>,
    group: opentelemetry::Value,
    reported: std::sync::Arc<std::sync::Mutex<std::collections::BTreeSet<(String, i32)>>>,
}

impl ConsumerLag {
    pub fn new(telemetry: &Telemetry, group: &str) -> ConsumerLag {
        ConsumerLag {
            gauge: MetricName::ConsumerLag.gauge(
                &telemetry.meter(),
                "Records not yet processed, per group, topic and partition (librdkafka statistics)",
            ),
            group: opentelemetry::Value::from(group.to_string()),
            reported: Default::default(),
        }
    }

    /// Updates the gauge from one statistics report.
    pub fn record(&self, stats: &rdkafka::Statistics) {
        let now = lag_by_partition(stats);
        let mut reported = self.reported.lock().unwrap_or_else(|e| e.into_inner());
        for ((topic, partition), lag) in &now {
            self.gauge.record(*lag, &self.attributes(topic, *partition));
        }
        for (topic, partition) in reported.iter() {
            if !now.contains_key(&(topic.clone(), *partition)) {
                self.gauge.record(0, &self.attributes(topic, *partition));
            }
        }
        *reported = now.into_keys().collect();
    }

    fn attributes(&self, topic: &str, partition: i32) -> [opentelemetry::KeyValue; 3] {
        use opentelemetry::KeyValue;
        [
            KeyValue::new(label::GROUP, self.group.clone()),
            KeyValue::new(label::TOPIC, topic.to_string()),
            KeyValue::new(label::PARTITION, i64::from(partition)),
        ]
    }
}

/// The lag of each partition this client consumes, per [`ConsumerLag`]'s rule.
pub fn lag_by_partition(
    stats: &rdkafka::Statistics,
) -> std::collections::BTreeMap<(String, i32), i64> {
    let mut out = std::collections::BTreeMap::new();
    for (topic, t) in &stats.topics {
        for (&partition, p) in &t.partitions {
            // -1 is librdkafka's internal "unassigned" partition; an undesired
            // partition is one this client does not consume (any more).
            if partition < 0 || !p.desired {
                continue;
            }
            let lag = if p.consumer_lag_stored >= 0 {
                p.consumer_lag_stored
            } else {
                p.consumer_lag
            };
            if lag >= 0 {
                out.insert((topic.clone(), partition), lag);
            }
        }
    }
    out
}

/// A group-less reader: see [`read_to_end`].
pub type Reader = rdkafka::consumer::BaseConsumer<BusContext>;

/// A consumer for reading partitions to their end without a group: see [`read_to_end`].
/// Its group id is [`credit_core::topics::Naming::reader_group`]: it joins
/// nothing and commits nothing, but librdkafka looks the group's coordinator
/// up, which a broker with ACLs allows only under the readers' prefix.
pub fn reader(cfg: &KafkaConfig, client_id: &str) -> Result<Reader, rdkafka::error::KafkaError> {
    base(cfg, client_id)
        .set("group.id", cfg.naming().reader_group(client_id))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", cfg.fetch_wait_max_ms.to_string())
        .create_with_context(BusContext::default())
}

/// The high watermark librdkafka last saw in a fetch response for a partition
/// (no request is made), if it has one.
pub fn cached_high_watermark<
    C: rdkafka::consumer::Consumer<X>,
    X: rdkafka::consumer::ConsumerContext,
>(
    consumer: &C,
    topic: &str,
    partition: i32,
) -> Option<i64> {
    let topic = std::ffi::CString::new(topic).ok()?;
    let (mut low, mut high) = (-1i64, -1i64);
    // SAFETY: the client pointer is valid for the consumer's lifetime; librdkafka
    // only reads the topic string and writes the two integers.
    let err = unsafe {
        rdkafka::bindings::rd_kafka_get_watermark_offsets(
            consumer.client().native_ptr(),
            topic.as_ptr(),
            partition,
            &mut low,
            &mut high,
        )
    };
    (err == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
        .then_some(high)
}

/// Seeks back every partition of `consumer` quiet for `quiet` while its cached
/// high watermark says records exist from the wanted offset on (see
/// [`crate::gap::GapGuard::stalled`]); `partition` names a guard key's topic
/// and partition.
pub fn unstall<K, C, X>(
    guard: &mut crate::gap::GapGuard<K>,
    consumer: &C,
    quiet: Duration,
    partition: impl Fn(&K) -> (String, i32),
) -> Result<(), rdkafka::error::KafkaError>
where
    K: std::hash::Hash + Eq + Clone,
    C: rdkafka::consumer::Consumer<X>,
    X: rdkafka::consumer::ConsumerContext,
{
    let stalled = guard.stalled(quiet, |k| {
        let (t, p) = partition(k);
        cached_high_watermark(consumer, &t, p)
    });
    for (k, to) in stalled {
        let (topic, p) = partition(&k);
        tracing::warn!(
            topic,
            partition = p,
            to,
            "no records below the high watermark: re-reading from further back"
        );
        consumer.seek(
            &topic,
            p,
            rdkafka::Offset::Offset(to),
            Duration::from_secs(10),
        )?;
    }
    Ok(())
}

/// Reads partitions of one topic, each from its own offset, to their end as of
/// now, calling `f` on each record at or after its partition's start, once.
///
/// The end is where the broker's fetch responses put the high watermark
/// (librdkafka's partition-EOF event), not a ListOffsets answer: tansu 0.6 was
/// seen answering ListOffsets with a stale offset (2058 where 2751 records were
/// readable). A start inside a record batch is re-read from further back when
/// the broker skipped to the next batch (see [`crate::gap`]); a partition whose
/// fetches stay empty below the cached high watermark counts as such a skip.
/// All partitions are read at once (one metadata round trip); partition-EOF
/// names only the partition, hence one topic per call.
pub fn read_to_end(
    consumer: &Reader,
    topic: &str,
    partitions: &[(i32, rdkafka::Offset)],
    timeout: Duration,
    f: impl FnMut(&rdkafka::message::BorrowedMessage<'_>),
) -> Result<(), String> {
    read_to_end_bounded(
        consumer,
        topic,
        partitions,
        &std::collections::HashMap::new(),
        timeout,
        &|| false,
        f,
    )
}

/// What [`read_to_end_bounded`] returns when `stop` said so.
pub const READ_STOPPED: &str = "stopped on request";

/// As [`read_to_end`], but a partition with an entry in `ends` (its high
/// watermark when the caller started: what was written before then) is also
/// done once the record before that offset is read, and records at or after
/// it are left for the caller's next read. A partition written faster than it
/// is read then still ends: the feedback tracker's barrier re-read its
/// notices topics to partition-EOF, which under the demo's load never came,
/// and the tracker stopped after 120 s (issue 22, "done" falling behind).
/// `stop` is asked every poll (50 ms): when it answers true, the read ends
/// with [`READ_STOPPED`], so a service shutting down is not held by it.
#[allow(clippy::too_many_arguments)]
pub fn read_to_end_bounded(
    consumer: &Reader,
    topic: &str,
    partitions: &[(i32, rdkafka::Offset)],
    ends: &std::collections::HashMap<i32, i64>,
    timeout: Duration,
    stop: &dyn Fn() -> bool,
    mut f: impl FnMut(&rdkafka::message::BorrowedMessage<'_>),
) -> Result<(), String> {
    use crate::gap::{GapGuard, Verdict};
    use rdkafka::consumer::Consumer;
    use rdkafka::error::KafkaError;
    use rdkafka::message::Message;
    use std::time::Instant;
    if partitions.is_empty() {
        return Ok(());
    }
    let mut tpl = rdkafka::TopicPartitionList::new();
    let mut guard: GapGuard<i32> = GapGuard::default();
    for (p, from) in partitions {
        tpl.add_partition_offset(topic, *p, *from)
            .map_err(|e| e.to_string())?;
        if let rdkafka::Offset::Offset(n) = from {
            guard.expect(*p, *n);
        }
    }
    consumer.assign(&tpl).map_err(|e| e.to_string())?;
    let mut open: std::collections::HashMap<i32, Instant> = partitions
        .iter()
        .filter(|(p, from)| match (from, ends.get(p)) {
            // Nothing written before the end that is not read already.
            (rdkafka::Offset::Offset(n), Some(end)) => n < end,
            _ => true,
        })
        .map(|(p, _)| (*p, Instant::now()))
        .collect();
    let seek = |p: i32, to: i64| {
        consumer
            .seek(
                topic,
                p,
                rdkafka::Offset::Offset(to),
                Duration::from_secs(10),
            )
            .map_err(|e| format!("{topic}/{p}: seek to {to}: {e}"))
    };
    let deadline = Instant::now() + timeout;
    while !open.is_empty() {
        if stop() {
            return Err(READ_STOPPED.into());
        }
        if Instant::now() > deadline {
            let open: Vec<_> = open.keys().collect();
            return Err(format!(
                "{topic} {open:?}: end not reached within {timeout:?}"
            ));
        }
        match consumer.poll(Duration::from_millis(50)) {
            None => {}
            Some(Ok(m)) if m.topic() == topic => {
                let p = m.partition();
                if !open.contains_key(&p) {
                    // Past its end: for the caller's next read.
                    continue;
                }
                open.entry(p).and_modify(|t| *t = Instant::now());
                if ends.get(&p).is_some_and(|end| m.offset() + 1 >= *end) {
                    open.remove(&p);
                }
                match guard.check(&p, m.offset()) {
                    Verdict::Process => f(&m),
                    Verdict::Skip => {}
                    Verdict::Gone { from, to } => {
                        tracing::warn!(
                            topic,
                            partition = p,
                            from,
                            to,
                            "offsets gone from the log; reading on after them"
                        );
                        f(&m)
                    }
                    Verdict::Rewind(to) => {
                        tracing::debug!(
                            topic,
                            partition = p,
                            to,
                            "broker skipped offsets; re-reading from further back"
                        );
                        seek(p, to)?;
                    }
                }
            }
            Some(Ok(_)) => {}
            Some(Err(KafkaError::PartitionEOF(p))) => {
                let end = cached_high_watermark(consumer, topic, p);
                match end.and_then(|e| guard.check_end(&p, e)) {
                    Some(to) => {
                        seek(p, to)?;
                        open.insert(p, Instant::now());
                    }
                    None => {
                        open.remove(&p);
                    }
                }
            }
            Some(Err(e)) => return Err(format!("{topic}: {e}")),
        }
        // Fetches that stay empty below the high watermark: the broker skips a
        // start inside the partition's last batch without ever reaching EOF.
        let now = Instant::now();
        for (p, since) in open.iter_mut() {
            if now.duration_since(*since) > Duration::from_millis(500) {
                *since = now;
                if let Some(to) =
                    cached_high_watermark(consumer, topic, *p).and_then(|e| guard.check_end(p, e))
                {
                    seek(*p, to)?;
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use rdkafka::statistics::{Partition, Statistics, Topic};

    fn partition(id: i32, desired: bool, lag: i64, lag_stored: i64) -> (i32, Partition) {
        (
            id,
            Partition {
                partition: id,
                desired,
                consumer_lag: lag,
                consumer_lag_stored: lag_stored,
                ..Default::default()
            },
        )
    }

    #[test]
    fn lag_prefers_stored_skips_unknown_unassigned_and_undesired() {
        let mut stats = Statistics::default();
        stats.topics.insert(
            "credit.courts.inbound".into(),
            Topic {
                topic: "credit.courts.inbound".into(),
                partitions: [
                    partition(-1, false, -1, -1),
                    partition(0, true, 120, 20),
                    partition(1, true, 7, -1),
                    partition(2, true, -1, -1),
                    partition(3, false, 50, 50),
                ]
                .into_iter()
                .collect(),
                ..Default::default()
            },
        );
        let lag = super::lag_by_partition(&stats);
        let want: Vec<((String, i32), i64)> = vec![
            (("credit.courts.inbound".into(), 0), 20),
            (("credit.courts.inbound".into(), 1), 7),
        ];
        assert_eq!(lag.into_iter().collect::<Vec<_>>(), want);
    }

    #[test]
    fn lag_gauge_is_exported_and_zeroed_when_a_partition_goes() {
        let tel = crate::telemetry::Telemetry::new("test").unwrap();
        let lag = super::ConsumerLag::new(&tel, "credit.normaliser.courts");
        let mut stats = Statistics::default();
        let topic = |parts: Vec<(i32, Partition)>| Topic {
            topic: "t".into(),
            partitions: parts.into_iter().collect(),
            ..Default::default()
        };
        stats.topics.insert(
            "t".into(),
            topic(vec![partition(0, true, 5, 3), partition(1, true, 9, 9)]),
        );
        lag.record(&stats);
        let text = tel.render().unwrap();
        assert!(
            text.contains(r#"credit_bus_consumer_lag{group="credit.normaliser.courts",partition="0",topic="t"} 3"#),
            "{text}"
        );
        stats
            .topics
            .insert("t".into(), topic(vec![partition(0, true, 4, 1)]));
        lag.record(&stats);
        let text = tel.render().unwrap();
        assert!(text.contains(r#"partition="0",topic="t"} 1"#), "{text}");
        assert!(text.contains(r#"partition="1",topic="t"} 0"#), "{text}");
    }
}
