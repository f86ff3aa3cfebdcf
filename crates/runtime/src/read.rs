//! Reading partitions to their end, without a consumer group: how the engine
//! replays its changelog, every reader of a compacted topic (catalogue
//! versions, the registry's store) loads it, the quality service rebuilds its
//! ledger and the feedback tracker reads notices and feedback.
//!
//! "The end" is where a `read_committed` reader stops: the last stable offset.
//! With [`Stable::Wait`] a read first waits until no transaction is open on a
//! partition (its last stable offset has caught up with its high watermark),
//! so whatever a dead or fenced writer left open has been committed or
//! aborted before the reader believes it has seen everything. The engine
//! needs that for its changelog: an owner that takes a partition over must see
//! every committed change of the previous owner.

use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};

use crate::config::KafkaConfig;
use crate::kafka::{BusContext, base};

/// Whether to wait for open transactions on the partitions read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stable {
    /// Stop at the last stable offset as it is.
    AsIs,
    /// Stop only once no transaction is open on the partition.
    Wait,
}

/// Why a read did not reach the end.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{topic}: {source}")]
    Kafka { topic: String, source: KafkaError },
    #[error("{topic}: stopped on request")]
    Stopped { topic: String },
    #[error("{topic} partitions {open:?}: end not reached within {limit:?}{why}")]
    Timeout {
        topic: String,
        open: Vec<i32>,
        limit: Duration,
        why: &'static str,
    },
}

impl crate::errors::Classify for ReadError {
    fn class(&self) -> crate::errors::Class {
        match self {
            ReadError::Kafka { source, .. } => crate::errors::kafka(source),
            ReadError::Stopped { .. } => crate::errors::Class::new(
                "shutdown",
                crate::errors::Fault::External,
                crate::errors::Disposition::Stop,
            ),
            ReadError::Timeout { .. } => crate::errors::Class::new(
                "kafka_read_timeout",
                crate::errors::Fault::External,
                crate::errors::Disposition::Retry,
            ),
        }
    }
}

fn client(
    cfg: &KafkaConfig,
    client_id: &str,
    isolation: &str,
) -> Result<BaseConsumer<BusContext>, KafkaError> {
    base(cfg, client_id)
        // Never joined, but librdkafka looks up its coordinator: a name under
        // the reader-group prefix the access model lets services describe.
        .set("group.id", cfg.naming().reader_group(client_id))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        // A start offset gone to retention (or compaction) reads from the
        // earliest record left, not from the end: a read to the end must see
        // everything still there.
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", isolation)
        .set("fetch.wait.max.ms", cfg.fetch_wait_max_ms.to_string())
        .create_with_context(BusContext::default())
}

/// Reads `partitions` of `topic`, each from its offset, to their end as of
/// now, calling `f` on each record once, in offset order per partition.
/// Blocking: call it from a blocking thread.
pub fn read_to_end(
    cfg: &KafkaConfig,
    client_id: &str,
    topic: &str,
    partitions: &[(i32, Offset)],
    stable: Stable,
    limit: Duration,
    f: impl FnMut(&BorrowedMessage<'_>),
) -> Result<(), ReadError> {
    read_partitions(
        cfg,
        client_id,
        topic,
        partitions,
        stable,
        Bound::End,
        limit,
        &|| false,
        f,
    )
}

/// Reads `partitions` of `topic` as [`read_to_end`] does, but only what was
/// committed when the read began (each partition's last stable offset then):
/// a partition written faster than it is read still ends. The feedback
/// tracker's re-reads of notices topics once waited for an end the engine's
/// writing never let come, and gave up after 120 s (issue 22). `stop` is asked
/// at every poll: when it answers true the read ends with
/// [`ReadError::Stopped`], so a service shutting down is not held by it.
pub fn read_written(
    cfg: &KafkaConfig,
    client_id: &str,
    topic: &str,
    partitions: &[(i32, Offset)],
    limit: Duration,
    stop: &dyn Fn() -> bool,
    f: impl FnMut(&BorrowedMessage<'_>),
) -> Result<(), ReadError> {
    read_partitions(
        cfg,
        client_id,
        topic,
        partitions,
        Stable::AsIs,
        Bound::AsOfStart,
        limit,
        stop,
        f,
    )
}

/// Where a read ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bound {
    /// At the end as the fetches find it (partition EOF).
    End,
    /// At the last stable offset when the read began, or EOF if sooner.
    AsOfStart,
}

#[allow(clippy::too_many_arguments)]
fn read_partitions(
    cfg: &KafkaConfig,
    client_id: &str,
    topic: &str,
    partitions: &[(i32, Offset)],
    stable: Stable,
    bound: Bound,
    limit: Duration,
    stop: &dyn Fn() -> bool,
    mut f: impl FnMut(&BorrowedMessage<'_>),
) -> Result<(), ReadError> {
    let err = |source| ReadError::Kafka {
        topic: topic.to_string(),
        source,
    };
    if partitions.is_empty() {
        return Ok(());
    }
    let c = client(cfg, client_id, "read_committed").map_err(err)?;
    let deadline = Instant::now() + limit;
    if stable == Stable::Wait {
        // A read_committed client's ListOffsets "latest" is the last stable
        // offset, a read_uncommitted client's the high watermark: they differ
        // while a transaction is open on the partition.
        let hw = client(cfg, client_id, "read_uncommitted").map_err(err)?;
        for (p, _) in partitions {
            loop {
                let (_, high) = hw
                    .fetch_watermarks(topic, *p, Duration::from_secs(10))
                    .map_err(err)?;
                let (_, stable) = c
                    .fetch_watermarks(topic, *p, Duration::from_secs(10))
                    .map_err(err)?;
                if stable >= high {
                    break;
                }
                if Instant::now() > deadline {
                    return Err(ReadError::Timeout {
                        topic: topic.to_string(),
                        open: vec![*p],
                        limit,
                        why: " (a transaction stayed open on it: a writer that died keeps it open until transaction.timeout.ms)",
                    });
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
    // Per partition, the offset it ends before (AsOfStart): a read_committed
    // client's "latest" is the last stable offset.
    let mut ends: std::collections::HashMap<i32, i64> = std::collections::HashMap::new();
    if bound == Bound::AsOfStart {
        for (p, _) in partitions {
            let (_, end) = c
                .fetch_watermarks(topic, *p, Duration::from_secs(10))
                .map_err(err)?;
            ends.insert(*p, end);
        }
    }
    let mut tpl = TopicPartitionList::new();
    for (p, from) in partitions {
        tpl.add_partition_offset(topic, *p, *from).map_err(err)?;
    }
    c.assign(&tpl).map_err(err)?;
    let mut open: std::collections::HashSet<i32> = partitions
        .iter()
        .filter(|(p, from)| match (from, ends.get(p)) {
            // Nothing committed from its start on before the read began.
            (Offset::Offset(n), Some(end)) => n < end,
            _ => true,
        })
        .map(|(p, _)| *p)
        .collect();
    while !open.is_empty() {
        if stop() {
            return Err(ReadError::Stopped {
                topic: topic.to_string(),
            });
        }
        if Instant::now() > deadline {
            let mut open: Vec<i32> = open.into_iter().collect();
            open.sort_unstable();
            return Err(ReadError::Timeout {
                topic: topic.to_string(),
                open,
                limit,
                why: "",
            });
        }
        match c.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(m)) if m.topic() == topic => match ends.get(&m.partition()) {
                // Past the bound (the last record before it may be a
                // transaction marker, never delivered): done, not passed on.
                Some(end) if m.offset() >= *end => {
                    open.remove(&m.partition());
                }
                Some(end) if m.offset() + 1 == *end => {
                    f(&m);
                    open.remove(&m.partition());
                }
                _ => {
                    if open.contains(&m.partition()) {
                        f(&m);
                    }
                }
            },
            Some(Ok(_)) => {}
            Some(Err(KafkaError::PartitionEOF(p))) => {
                open.remove(&p);
            }
            Some(Err(e)) => return Err(err(e)),
        }
    }
    Ok(())
}

/// The catalogue topic's versions: the valid ones, and the keys of invalid
/// values with why (a reader reports those and never applies them).
pub type Versions = (Vec<credit_measures::Catalogue>, Vec<(String, String)>);

/// Every catalogue version on the catalogue topic (`partitions` partitions).
pub fn catalogue_versions(
    cfg: &KafkaConfig,
    client_id: &str,
    topic: &str,
    partitions: i32,
) -> Result<Versions, ReadError> {
    use credit_schemas::commands::{CatalogueRecord, catalogue_record};
    let parts: Vec<(i32, Offset)> = (0..partitions).map(|p| (p, Offset::Beginning)).collect();
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    read_to_end(
        cfg,
        client_id,
        topic,
        &parts,
        Stable::AsIs,
        Duration::from_secs(60),
        |m| match catalogue_record(m.key(), m.payload()) {
            CatalogueRecord::Version(c) => good.push(*c),
            CatalogueRecord::Invalid { key, error } => bad.push((key, error)),
            CatalogueRecord::Other => {}
        },
    )?;
    Ok((good, bad))
}

/// Why a changelog partition could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum ChangelogError {
    #[error("reading the changelog: {0}")]
    Read(#[from] ReadError),
    #[error("changelog partition {partition}: {source}")]
    Replay {
        partition: i32,
        source: credit_schemas::changelog::ReplayError,
    },
}

impl crate::errors::Classify for ChangelogError {
    fn class(&self) -> crate::errors::Class {
        match self {
            ChangelogError::Read(e) => e.class(),
            // A value this reader cannot read is not fixed by retrying: an
            // operator must look.
            ChangelogError::Replay { .. } => crate::errors::Class::new(
                "changelog_unreadable",
                crate::errors::Fault::Internal,
                crate::errors::Disposition::Stop,
            ),
        }
    }
}

/// Reads the engine's changelog partition `p` from the beginning into a
/// [`Replay`](credit_schemas::changelog::Replay) (finish it with the
/// catalogue versions it needs).
pub fn changelog(
    cfg: &KafkaConfig,
    client_id: &str,
    topic: &str,
    p: i32,
    stable: Stable,
    limit: Duration,
) -> Result<credit_schemas::changelog::Replay, ChangelogError> {
    let mut replay = credit_schemas::changelog::Replay::default();
    let mut bad = None;
    read_to_end(
        cfg,
        client_id,
        topic,
        &[(p, Offset::Beginning)],
        stable,
        limit,
        |m| {
            if bad.is_none()
                && let Err(e) = replay.record(m.key(), m.payload())
            {
                bad = Some(e);
            }
        },
    )?;
    match bad {
        Some(source) => Err(ChangelogError::Replay {
            partition: p,
            source,
        }),
        None => Ok(replay),
    }
}
