//! librdkafka settings shared by every service, and topic administration.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;

use crate::config::KafkaConfig;

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
        .set("linger.ms", cfg.linger_ms.to_string())
        // Infinite delivery timeout: a record is either acknowledged or the process
        // stops; it is never dropped after a retry budget runs out.
        .set("message.timeout.ms", "0")
        .set("compression.type", "lz4")
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
/// auto-create). Compacted topics get `cleanup.policy=compact`.
pub async fn ensure_topics(cfg: &KafkaConfig, topics: &[String]) -> Result<(), AdminError> {
    let naming = cfg.naming();
    let specs: Vec<(&str, i32, bool)> = topics
        .iter()
        .map(|t| (t.as_str(), cfg.partitions, naming.is_compacted(t)))
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

/// A client context that does not log partition-EOF as an error: readers ask for it.
pub struct QuietEof;

impl rdkafka::client::ClientContext for QuietEof {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        use rdkafka::error::{KafkaError, RDKafkaErrorCode};
        if !matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        ) {
            tracing::error!(error = %error, reason, "librdkafka error");
        }
    }
}

impl rdkafka::consumer::ConsumerContext for QuietEof {}

/// A group-less reader: see [`read_to_end`].
pub type Reader = rdkafka::consumer::BaseConsumer<QuietEof>;

/// A consumer for reading partitions to their end without a group: see [`read_to_end`].
pub fn reader(cfg: &KafkaConfig, client_id: &str) -> Result<Reader, rdkafka::error::KafkaError> {
    base(cfg, client_id)
        .set("group.id", client_id)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", cfg.fetch_wait_max_ms.to_string())
        .create_with_context(QuietEof)
}

/// Reads partitions of one topic, each from its own offset, to their end as of
/// now, calling `f` on each record. The end is where the broker's fetch
/// responses put the high watermark (librdkafka's partition-EOF event), not a
/// ListOffsets answer: tansu 0.6 was seen answering ListOffsets with a stale
/// offset (2058 where 2751 records were readable), so a reader trusting it
/// stopped short and missed state. All partitions are read at once (one
/// metadata round trip); partition-EOF names only the partition, hence one topic
/// per call.
pub fn read_to_end(
    consumer: &Reader,
    topic: &str,
    partitions: &[(i32, rdkafka::Offset)],
    timeout: Duration,
    mut f: impl FnMut(&rdkafka::message::BorrowedMessage<'_>),
) -> Result<(), String> {
    use rdkafka::consumer::Consumer;
    use rdkafka::error::KafkaError;
    use rdkafka::message::Message;
    if partitions.is_empty() {
        return Ok(());
    }
    let mut tpl = rdkafka::TopicPartitionList::new();
    for (p, from) in partitions {
        tpl.add_partition_offset(topic, *p, *from)
            .map_err(|e| e.to_string())?;
    }
    consumer.assign(&tpl).map_err(|e| e.to_string())?;
    let mut open: std::collections::HashSet<i32> = partitions.iter().map(|(p, _)| *p).collect();
    let deadline = std::time::Instant::now() + timeout;
    while !open.is_empty() {
        if std::time::Instant::now() > deadline {
            return Err(format!(
                "{topic} {open:?}: end not reached within {timeout:?}"
            ));
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) if m.topic() == topic => f(&m),
            Some(Ok(_)) => {}
            Some(Err(KafkaError::PartitionEOF(p))) => {
                open.remove(&p);
            }
            Some(Err(e)) => return Err(format!("{topic}: {e}")),
        }
    }
    Ok(())
}
