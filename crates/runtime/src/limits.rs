//! Record-size limits checked against each other at start-up.
//!
//! Three limits decide whether a record can be written, and issue 16 was
//! their disagreement: the normaliser accepted inbound values up to 1 MiB
//! (`normaliser.max_record_bytes`), its producer refused anything over
//! librdkafka's default `message.max.bytes` of 1,000,000 bytes, and the
//! broker's own `message.max.bytes` (1,048,588 by default; a topic may lower
//! it with `max.message.bytes`) is a third figure. A rejected 1.02 MB record
//! could then not even be dead-lettered. The rule, checked by [`check`]:
//!
//! * producer + [`BATCH_OVERHEAD`] ≤ broker (every topic written): a record
//!   librdkafka accepts is one the broker accepts, even uncompressed (librdkafka
//!   sends a batch uncompressed when compression would grow it);
//! * producer ≥ [`credit_core::dlq::MIN_LIMIT`]: room for a dead letter's own headers;
//! * service maximum + [`RECORD_RESERVE`] ≤ producer: an input at the maximum
//!   size is dead-lettered whole, with its key, headers and ours.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::config::KafkaConfig;
use crate::errors::{Class, Classify, Disposition, Fault};

/// A record batch's header, which the broker's limit includes.
pub const BATCH_OVERHEAD: usize = 61;
/// Room next to an input's value for its key and headers and a dead letter's own.
pub const RECORD_RESERVE: usize = 16 * 1024;

/// One limit and where it comes from, for the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limit {
    pub bytes: usize,
    /// E.g. `broker 1 message.max.bytes`, `topic credit.records max.message.bytes`.
    pub source: String,
}

/// The limits a service writes under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The smallest of the broker's and the written topics' limits.
    pub broker: Limit,
    /// The producer's `message.max.bytes`.
    pub producer: usize,
    /// The largest input the service accepts, when it has such a setting
    /// (`normaliser.max_record_bytes`).
    pub max_record: Option<Limit>,
}

#[derive(Debug, thiserror::Error)]
pub enum LimitsError {
    #[error("reading the broker's limits: {0}")]
    Kafka(#[from] KafkaError),
    #[error("record size limits disagree: {0}")]
    Inconsistent(String),
}

impl Classify for LimitsError {
    fn class(&self) -> Class {
        match self {
            LimitsError::Kafka(e) => e.class(),
            LimitsError::Inconsistent(_) => {
                Class::new("limits_inconsistent", Fault::Config, Disposition::Stop)
            }
        }
    }
}

/// Every disagreement between the limits, in one message naming each value.
pub fn check(l: &Limits) -> Result<(), String> {
    let mut problems = Vec::new();
    let p = l.producer;
    if p < credit_core::dlq::MIN_LIMIT {
        problems.push(format!(
            "the producer's message.max.bytes ({p}) is below {} bytes, too small for a dead letter's headers",
            credit_core::dlq::MIN_LIMIT
        ));
    }
    if p + BATCH_OVERHEAD > l.broker.bytes {
        problems.push(format!(
            "the producer's message.max.bytes ({p}) + {BATCH_OVERHEAD} bytes of batch header exceeds {} ({}): the broker would refuse records the producer accepts; lower kafka.extra.\"message.max.bytes\" to at most {} or raise the broker's",
            l.broker.source,
            l.broker.bytes,
            l.broker.bytes.saturating_sub(BATCH_OVERHEAD)
        ));
    }
    if let Some(m) = &l.max_record
        && m.bytes + RECORD_RESERVE > p
    {
        problems.push(format!(
            "{} ({}) + {RECORD_RESERVE} bytes for key and headers exceeds the producer's message.max.bytes ({p}): a rejected record of the maximum size could not be dead-lettered whole; set it to at most {}",
            m.source,
            m.bytes,
            p.saturating_sub(RECORD_RESERVE)
        ));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{} (limits: {} = {}, producer message.max.bytes = {p}{})",
            problems.join(" | "),
            l.broker.source,
            l.broker.bytes,
            l.max_record
                .as_ref()
                .map(|m| format!(", {} = {}", m.source, m.bytes))
                .unwrap_or_default()
        ))
    }
}

/// The smallest of every broker's `message.max.bytes` and each of `topics`'
/// `max.message.bytes` (a topic that does not exist yet is skipped: it will
/// get the broker's), read with the admin client.
pub async fn broker_limit(cfg: &KafkaConfig, topics: &[String]) -> Result<Limit, KafkaError> {
    let admin: AdminClient<DefaultClientContext> =
        crate::kafka::base(cfg, "credit-bus-limits").create()?;
    let timeout = Duration::from_secs(30);
    let brokers: Vec<i32> = {
        let meta = admin.inner().fetch_metadata(None, timeout)?;
        meta.brokers().iter().map(|b| b.id()).collect()
    };
    let mut specs: Vec<ResourceSpecifier<'_>> = brokers
        .iter()
        .map(|&id| ResourceSpecifier::Broker(id))
        .collect();
    specs.extend(topics.iter().map(|t| ResourceSpecifier::Topic(t)));
    let opts = AdminOptions::new().request_timeout(Some(timeout));
    let mut best: Option<Limit> = None;
    for (i, r) in admin
        .describe_configs(specs.iter(), &opts)
        .await?
        .into_iter()
        .enumerate()
    {
        let (name, source) = if i < brokers.len() {
            (
                "message.max.bytes",
                format!("broker {} message.max.bytes", brokers[i]),
            )
        } else {
            (
                "max.message.bytes",
                format!("topic {} max.message.bytes", topics[i - brokers.len()]),
            )
        };
        let resource = match r {
            Ok(r) => r,
            Err(RDKafkaErrorCode::UnknownTopicOrPartition) if i >= brokers.len() => continue,
            // A service user may describe the topics it writes but not the
            // cluster (the access model grants no cluster rights): a topic's
            // max.message.bytes already says the broker's default when the
            // topic does not override it.
            Err(RDKafkaErrorCode::ClusterAuthorizationFailed) if i < brokers.len() => continue,
            Err(c) => return Err(KafkaError::AdminOp(c)),
        };
        let Some(bytes) = resource
            .get(name)
            .and_then(|e| e.value.as_deref())
            .and_then(|v| v.parse::<usize>().ok())
        else {
            continue;
        };
        if best.as_ref().is_none_or(|b| bytes < b.bytes) {
            best = Some(Limit { bytes, source });
        }
    }
    best.ok_or(KafkaError::AdminOp(RDKafkaErrorCode::InvalidConfig))
}

/// Reads the broker's limits and checks them against the producer's and
/// the service's: the start-up check every producing service runs.
pub async fn check_at_start(
    cfg: &KafkaConfig,
    topics: &[String],
    producer: usize,
    max_record: Option<Limit>,
) -> Result<Limits, LimitsError> {
    let limits = Limits {
        broker: broker_limit(cfg, topics).await?,
        producer,
        max_record,
    };
    check(&limits).map_err(LimitsError::Inconsistent)?;
    Ok(limits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(broker: usize, producer: usize, max_record: Option<usize>) -> Limits {
        Limits {
            broker: Limit {
                bytes: broker,
                source: "broker 1 message.max.bytes".into(),
            },
            producer,
            max_record: max_record.map(|bytes| Limit {
                bytes,
                source: "normaliser.max_record_bytes".into(),
            }),
        }
    }

    #[test]
    fn the_shipped_defaults_agree_with_kafkas() {
        // Kafka's default message.max.bytes, librdkafka's default, our 960 KiB.
        assert_eq!(check(&limits(1_048_588, 1_000_000, Some(983_040))), Ok(()));
    }

    #[test]
    fn issue_16s_configuration_is_refused_naming_every_value() {
        // 1 MiB accepted for normalising, 1,000,000 writable.
        let e = check(&limits(1_048_588, 1_000_000, Some(1_048_576))).unwrap_err();
        for v in [
            "1048576",
            "1000000",
            "1048588",
            "normaliser.max_record_bytes",
            "at most 983616",
        ] {
            assert!(e.contains(v), "{v}: {e}");
        }
    }

    #[test]
    fn a_producer_above_the_broker_is_refused() {
        let e = check(&limits(1_048_588, 2_000_000, None)).unwrap_err();
        assert!(e.contains("at most 1048527"), "{e}");
        assert_eq!(check(&limits(1_048_588, 1_048_527, None)), Ok(()));
        assert!(check(&limits(1_048_588, 1_048_528, None)).is_err());
    }

    #[test]
    fn every_problem_at_once() {
        let e = check(&limits(1000, 2000, Some(5000))).unwrap_err();
        assert_eq!(e.matches(" | ").count(), 2, "{e}");
    }
}
