//! The engine's one transactional producer. librdkafka's transaction calls
//! block (a commit waits for every record and the coordinator's answer), so
//! each runs in `block_in_place`: the engine's loop has nothing else to do
//! meanwhile, and its runtime's other threads keep the ops endpoint serving.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use credit_runtime::config::KafkaConfig;
use rdkafka::ClientContext;
use rdkafka::TopicPartitionList;
use rdkafka::consumer::ConsumerGroupMetadata;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::ToBytes;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

/// Counts records the broker refused; the transaction they belong to then
/// fails to commit and is aborted, so nothing else is needed here.
#[derive(Default)]
pub struct TxnContext {
    pub failed: AtomicU64,
}

impl ClientContext for TxnContext {}

impl ProducerContext for TxnContext {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result
            && self.failed.fetch_add(1, Ordering::Relaxed) == 0
        {
            tracing::warn!(error = %e, "a record of the open transaction was refused; the transaction will abort");
        }
    }
}

pub struct Transactions {
    producer: ThreadedProducer<TxnContext>,
    timeout: Duration,
}

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

impl Transactions {
    /// A producer with the bus's settings (acks=all, idempotent, lz4) and
    /// `transactional.id`; records time out with the transaction.
    pub fn create(
        kafka: &KafkaConfig,
        transactional_id: &str,
        transaction_timeout: Duration,
    ) -> Result<Transactions, KafkaError> {
        let ms = transaction_timeout.as_millis().to_string();
        let producer = credit_runtime::kafka::producer(kafka, "credit-engine")
            .set("transactional.id", transactional_id)
            .set("transaction.timeout.ms", &ms)
            .set("message.timeout.ms", &ms)
            .create_with_context(TxnContext::default())?;
        Ok(Transactions {
            producer,
            timeout: transaction_timeout,
        })
    }

    /// Registers the transactional id: fences every earlier producer with
    /// it (a previous incarnation of this instance) and aborts what it left open.
    pub fn init(&self) -> Result<(), KafkaError> {
        blocking(|| self.producer.init_transactions(self.timeout))
    }

    pub fn begin(&self) -> Result<(), KafkaError> {
        self.producer.begin_transaction()
    }

    /// Queues a record of the open transaction; waits while the local
    /// queue is full.
    pub fn send<K, P>(&self, mut record: BaseRecord<'_, K, P, ()>) -> Result<(), KafkaError>
    where
        K: ToBytes + ?Sized,
        P: ToBytes + ?Sized,
    {
        loop {
            match self.producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    blocking(|| self.producer.poll(Duration::from_millis(10)));
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// Waits until every queued record is acknowledged.
    pub fn flush(&self) -> Result<(), KafkaError> {
        blocking(|| self.producer.flush(self.timeout))
    }

    pub fn send_offsets(
        &self,
        offsets: &TopicPartitionList,
        group: &ConsumerGroupMetadata,
    ) -> Result<(), KafkaError> {
        blocking(|| {
            self.producer
                .send_offsets_to_transaction(offsets, group, self.timeout)
        })
    }

    pub fn commit(&self) -> Result<(), KafkaError> {
        blocking(|| self.producer.commit_transaction(self.timeout))
    }

    pub fn abort(&self) -> Result<(), KafkaError> {
        blocking(|| self.producer.abort_transaction(self.timeout))
    }

    /// Records refused since the last call.
    pub fn take_failed(&self) -> u64 {
        self.producer.context().failed.swap(0, Ordering::Relaxed)
    }
}

/// librdkafka's transaction-error flags of `e`: (fatal, requires abort, retriable).
pub fn flags(e: &KafkaError) -> (bool, bool, bool) {
    match e {
        KafkaError::Transaction(t) => (t.is_fatal(), t.txn_requires_abort(), t.is_retriable()),
        // Not a transaction error (a flush timed out, offsets refused):
        // the transaction's outcome is unknown; abort it.
        _ => (false, true, false),
    }
}
