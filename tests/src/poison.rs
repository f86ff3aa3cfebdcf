//! Shared by the poison tests: sending what a department might (large,
//! compressed), and checking a dead letter against what was sent.

use std::time::Duration;

use credit_core::dlq;
use rdkafka::ClientConfig;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};

use credit_core::notice::{Notice, NoticeKind};

use crate::{brokers, header};

pub const MB: usize = 1_000_000;

/// A producer that can send what a department might: up to 32 MB uncompressed,
/// compressed with lz4 so that a large but repetitive record fits the
/// broker's 1 MiB batch limit (the broker checks the compressed batch).
pub fn big_producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("message.max.bytes", (32 * MB + 1024).to_string())
        .set("compression.type", "lz4")
        .set("linger.ms", "2")
        .create()
        .unwrap()
}

/// What was sent: where it landed and its bytes.
#[derive(Debug, Clone)]
pub struct Sent {
    pub label: String,
    pub partition: i32,
    pub offset: i64,
    pub value: Vec<u8>,
}

pub async fn send(p: &FutureProducer, topic: &str, key: &[u8], value: &[u8], label: &str) -> Sent {
    let d = p
        .send(
            FutureRecord::to(topic).key(key).payload(value),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap_or_else(|e| panic!("{label}: {e}"));
    Sent {
        label: label.to_string(),
        partition: d.partition,
        offset: d.offset,
        value: value.to_vec(),
    }
}

/// `base` padded with trailing blanks to `size` bytes (repetitive: lz4 makes
/// it small on the wire).
pub fn padded(base: &[u8], size: usize) -> Vec<u8> {
    let mut v = base.to_vec();
    v.resize(size.max(base.len()), b' ');
    v
}

pub fn find<'m>(dead: &'m [OwnedMessage], topic: &str, s: &Sent) -> Vec<&'m OwnedMessage> {
    dead.iter()
        .filter(|m| {
            header(m, dlq::TOPIC) == Some(topic)
                && header(m, dlq::PARTITION) == Some(&*s.partition.to_string())
                && header(m, dlq::OFFSET) == Some(&*s.offset.to_string())
        })
        .collect()
}

/// A dead letter is the original, or, when it could not be kept whole, a
/// prefix of it with its length and digest; always within the producer's limit.
pub fn assert_dead_letter_of(m: &OwnedMessage, s: &Sent) {
    let payload = m.payload().unwrap_or_default();
    let size = payload.len() + m.key().map_or(0, <[u8]>::len);
    assert!(size < 1_000_000, "{}: {size} bytes", s.label);
    match header(m, dlq::TRUNCATED) {
        None => assert_eq!(payload, &s.value[..], "{}: original bytes kept", s.label),
        Some(cut) => {
            assert!(cut.contains("value"), "{}: {cut}", s.label);
            assert_eq!(payload, &s.value[..payload.len()], "{}: a prefix", s.label);
            assert_eq!(
                header(m, dlq::ORIGINAL_LENGTH),
                Some(&*s.value.len().to_string()),
                "{}",
                s.label
            );
            assert_eq!(
                header(m, dlq::ORIGINAL_SHA256),
                Some(&*dlq::sha256_hex(&s.value)),
                "{}",
                s.label
            );
        }
    }
}

/// A notice as the engine writes it, framed with `schema_id`.
pub fn notice_bytes(schema_id: u32, id: &str, dept: &str) -> Vec<u8> {
    let n = Notice {
        notice_id: id,
        kind: NoticeKind::Punishment,
        department: dept,
        measure_id: "no-subsidy",
        measure_name: "限制申请政府补贴",
        legal_basis: "国发〔2016〕33号",
        catalogue_version: 1,
        generation: 1,
        record_id: "courts:0:1",
        list_type: "JUDGEMENT_DEFAULTER",
        subject_type: "LEGAL_PERSON",
        subject_key: "91440101MA59UU8U0F",
        subject_name: "广州某公司",
        identifying_department: "courts",
        decision_number: "(2024)粤01执1号",
        reason: None,
        source_topic: "credit.records",
        source_partition: 0,
        source_offset: 1,
    };
    let mut buf = Vec::new();
    credit_schemas::encode::notice_framed(&mut buf, schema_id, &n);
    buf
}
