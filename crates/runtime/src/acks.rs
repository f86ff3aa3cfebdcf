//! A producer that counts acknowledgements per group of records.
//!
//! rdkafka's `FutureProducer` allocates a oneshot channel per record and wakes
//! a task per acknowledgement: for the engine, which sends tens of thousands of
//! notices per batch and only needs "all acknowledged, and the highest offset
//! per partition", that was a large share of the CPU per notice. Here every
//! record of a group carries one shared [`Acks`] as its delivery opaque (an
//! `Arc` clone per record); the producer's polling thread counts deliveries and
//! wakes the one waiter when the last arrives.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, ToBytes};
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};

/// The delivery context: hands each delivery to the group its record belongs to.
#[derive(Default)]
pub struct AckContext;

impl ClientContext for AckContext {}

impl ProducerContext for AckContext {
    type DeliveryOpaque = Arc<Acks>;

    fn delivery(&self, result: &DeliveryResult<'_>, acks: Arc<Acks>) {
        acks.delivered(result);
    }
}

/// A producer whose records are counted in [`Acks`] groups.
pub type AckProducer = ThreadedProducer<AckContext>;

/// Acknowledgements of one group of records sent together.
#[derive(Default)]
pub struct Acks {
    /// Records sent and not yet reported. Outside the lock: the sending
    /// thread counts each record without contending with the delivery thread,
    /// which holds the lock for every report.
    pending: AtomicUsize,
    state: Mutex<State>,
    done: tokio::sync::Notify,
}

#[derive(Default)]
struct State {
    /// Per topic, per partition: one past the highest acknowledged offset (0: none).
    next: HashMap<String, Vec<i64>>,
    error: Option<KafkaError>,
}

/// What a completed group wrote: per topic and partition, the offset after the
/// highest record acknowledged there.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Written(HashMap<String, Vec<i64>>);

impl Written {
    /// The offset after the last record written to `topic`/`partition`, if any was.
    pub fn next(&self, topic: &str, partition: i32) -> Option<i64> {
        self.0
            .get(topic)
            .and_then(|v| v.get(usize::try_from(partition).ok()?))
            .copied()
            .filter(|o| *o > 0)
    }

    /// Every (topic, partition, next offset) written.
    pub fn iter(&self) -> impl Iterator<Item = (&str, i32, i64)> {
        self.0.iter().flat_map(|(t, v)| {
            v.iter()
                .enumerate()
                .filter(|(_, o)| **o > 0)
                .map(move |(q, o)| (t.as_str(), q as i32, *o))
        })
    }
}

impl Acks {
    pub fn new() -> Arc<Acks> {
        Arc::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn delivered(&self, result: &DeliveryResult<'_>) {
        let mut s = self.lock();
        match result {
            Ok(m) => {
                let (q, o) = (m.partition(), m.offset());
                let v = match s.next.get_mut(m.topic()) {
                    Some(v) => v,
                    None => s.next.entry(m.topic().to_string()).or_default(),
                };
                let q = usize::try_from(q).unwrap_or(0);
                if v.len() <= q {
                    v.resize(q + 1, 0);
                }
                v[q] = v[q].max(o + 1);
            }
            Err((e, _)) => {
                s.error.get_or_insert_with(|| e.clone());
            }
        }
        drop(s);
        // Release: whoever sees the count at zero sees every report's offsets.
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.done.notify_one();
        }
    }

    /// Sends `record` as a member of this group, waiting while the producer's
    /// queue is full. Any other refusal is returned (the record is not counted).
    pub async fn send<K, P>(
        self: &Arc<Self>,
        producer: &AckProducer,
        record: BaseRecord<'_, K, P, ()>,
    ) -> Result<(), KafkaError>
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        self.pending.fetch_add(1, Ordering::AcqRel);
        let mut rec = BaseRecord {
            topic: record.topic,
            partition: record.partition,
            payload: record.payload,
            key: record.key,
            timestamp: record.timestamp,
            headers: record.headers,
            delivery_opaque: self.clone(),
        };
        loop {
            match producer.send(rec) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    rec = r;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err((e, _)) => {
                    // Not handed over: no report will come for it.
                    if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
                        self.done.notify_one();
                    }
                    return Err(e);
                }
            }
        }
    }

    /// Whether every record sent so far in this group has its delivery report.
    pub fn is_settled(&self) -> bool {
        self.pending.load(Ordering::Acquire) == 0
    }

    /// Waits until every record sent so far in this group has its delivery
    /// report (without taking the result: see [`Acks::wait`]).
    pub async fn settled(&self) {
        loop {
            let notified = self.done.notified();
            if self.is_settled() {
                return;
            }
            notified.await;
        }
    }

    /// Waits until every record sent in this group is acknowledged; the first
    /// delivery error if any failed (records are retried until
    /// `message.timeout.ms`, so an error here is final).
    pub async fn wait(&self) -> Result<Written, KafkaError> {
        loop {
            let notified = self.done.notified();
            if self.is_settled() {
                let mut s = self.lock();
                if let Some(e) = s.error.take() {
                    return Err(e);
                }
                return Ok(Written(std::mem::take(&mut s.next)));
            }
            notified.await;
        }
    }
}
