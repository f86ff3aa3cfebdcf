//! One sample dead letter per reason: the latest the dashboard has read from
//! the publishing departments' dead-letter topics.
//!
//! What an operator needs to see why records are refused, and nothing
//! personal: the reason code, department, offending field, the rejection's
//! message (resident-ID-shaped numbers masked again here, whoever wrote it:
//! [`credit_core::dlq::scrub`]) and where the original is. Never the record's
//! key or value, which hold names and ID numbers.
//!
//! A reader without a group (partitions assigned by hand, nothing committed)
//! starts [`TAIL`] records before each partition's end and follows it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use credit_core::catalogue::publishing_departments;
use credit_core::dlq;
use credit_runtime::config::KafkaConfig;
use credit_runtime::shutdown::Shutdown;
use rdkafka::Offset;
use rdkafka::consumer::Consumer;
use rdkafka::message::{Headers, Message};
use serde::Serialize;

/// Records read back from each partition's end at start.
const TAIL: i64 = 200;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    pub reason: String,
    pub department: String,
    pub field: Option<String>,
    /// The rejection's message, resident IDs masked.
    pub detail: String,
    /// Where the original record is: `topic/partition@offset`.
    pub original: Option<String>,
    /// Where this dead letter is.
    pub dead_letter: String,
}

/// The latest sample per reason, shared with the scraper.
pub type Samples = Arc<Mutex<BTreeMap<String, Sample>>>;

/// The sample a dead letter gives, if it carries a reason.
pub fn sample(department: &str, m: &impl Message) -> Option<Sample> {
    let headers = m.headers()?;
    let get = |k: &str| {
        headers
            .iter()
            .find(|h| h.key == k)
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    };
    let reason = get(dlq::REASON)?;
    let original = match (get(dlq::TOPIC), get(dlq::PARTITION), get(dlq::OFFSET)) {
        (Some(t), Some(p), Some(o)) => Some(format!("{t}/{p}@{o}")),
        _ => None,
    };
    Some(Sample {
        reason,
        department: department.to_string(),
        field: get(dlq::FIELD),
        detail: dlq::scrub(&get(dlq::EXCEPTION_MESSAGE).unwrap_or_default()).into_owned(),
        original,
        dead_letter: format!("{}/{}@{}", m.topic(), m.partition(), m.offset()),
    })
}

/// Follows every publishing department's dead-letter topic until `shutdown`,
/// keeping the latest sample per reason in `out`. Errors are logged and
/// retried: samples are a convenience, never a reason for the page to fail.
pub fn follow(kafka: KafkaConfig, out: Samples, shutdown: Shutdown) {
    let naming = kafka.naming();
    let topics: BTreeMap<String, &'static str> = publishing_departments()
        .map(|d| (naming.dlq(d.id), d.id))
        .collect();
    while !shutdown.is_cancelled() {
        if let Err(e) = follow_once(&kafka, &topics, &out, &shutdown) {
            tracing::warn!(error = %e, "reading dead-letter samples; retrying in 5 s");
            for _ in 0..50 {
                if shutdown.is_cancelled() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}

fn follow_once(
    kafka: &KafkaConfig,
    topics: &BTreeMap<String, &'static str>,
    out: &Samples,
    shutdown: &Shutdown,
) -> Result<(), rdkafka::error::KafkaError> {
    let reader = credit_runtime::kafka::reader(kafka, "credit-dashboard-samples")?;
    let mut tpl = rdkafka::TopicPartitionList::new();
    for topic in topics.keys() {
        let md = reader.fetch_metadata(Some(topic), Duration::from_secs(10))?;
        for t in md.topics() {
            for p in t.partitions() {
                tpl.add_partition_offset(topic, p.id(), Offset::OffsetTail(TAIL))?;
            }
        }
    }
    reader.assign(&tpl)?;
    while !shutdown.is_cancelled() {
        match reader.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(m)) => {
                if let Some(dept) = topics.get(m.topic())
                    && let Some(s) = sample(dept, &m)
                {
                    out.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(s.reason.clone(), s);
                }
            }
            Some(Err(rdkafka::error::KafkaError::PartitionEOF(_))) => {}
            Some(Err(e)) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::{OwnedHeaders, OwnedMessage, Timestamp};

    #[test]
    fn a_sample_has_the_reason_and_masked_detail_never_the_record() {
        let headers = OwnedHeaders::new()
            .insert(rdkafka::message::Header {
                key: dlq::REASON,
                value: Some("invalid_resident_id"),
            })
            .insert(rdkafka::message::Header {
                key: dlq::FIELD,
                value: Some("cardNum"),
            })
            .insert(rdkafka::message::Header {
                key: dlq::EXCEPTION_MESSAGE,
                value: Some("check digit of 44010619800101123X is wrong"),
            })
            .insert(rdkafka::message::Header {
                key: dlq::TOPIC,
                value: Some("credit.courts.inbound"),
            })
            .insert(rdkafka::message::Header {
                key: dlq::PARTITION,
                value: Some("2"),
            })
            .insert(rdkafka::message::Header {
                key: dlq::OFFSET,
                value: Some("41"),
            });
        let m = OwnedMessage::new(
            Some(br#"{"iname":"Zhang San","cardNum":"44010619800101123X"}"#.to_vec()),
            Some(b"key".to_vec()),
            "credit.courts.dlq".into(),
            Timestamp::NotAvailable,
            0,
            7,
            Some(headers),
        );
        let s = sample("courts", &m).unwrap();
        assert_eq!(s.reason, "invalid_resident_id");
        assert_eq!(s.field.as_deref(), Some("cardNum"));
        assert_eq!(s.detail, "check digit of 440106********123X is wrong");
        assert_eq!(s.original.as_deref(), Some("credit.courts.inbound/2@41"));
        assert_eq!(s.dead_letter, "credit.courts.dlq/0@7");
        let json = serde_json::to_string(&s).unwrap();
        assert!(
            !json.contains("Zhang") && !json.contains("19800101"),
            "{json}"
        );
        // A message without a reason is no sample.
        let plain = OwnedMessage::new(None, None, "t".into(), Timestamp::NotAvailable, 0, 0, None);
        assert!(sample("courts", &plain).is_none());
    }
}
