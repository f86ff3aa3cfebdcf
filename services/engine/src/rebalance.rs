//! The consumer's context: counts rebalances, so the loop notices each one
//! at the first input after it, and remembers the assigned partitions of the
//! records topic; publishes the group's lag from librdkafka statistics.
//!
//! A rebalance ends the open transaction (aborted: the partitions' new owner,
//! this instance or another, redoes its work from the committed offsets) and
//! drops every partition's state, replayed from the changelog when input for
//! it arrives again. Input received after the rebalance callback ran belongs
//! to the new assignment: librdkafka discards fetched records of revoked
//! partitions, and assigned partitions start at their committed offsets.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;

pub struct EngineContext {
    records: String,
    generation: AtomicU64,
    assigned: Mutex<BTreeSet<i32>>,
    lag: credit_runtime::kafka::ConsumerLag,
}

impl EngineContext {
    pub fn new(records: String, lag: credit_runtime::kafka::ConsumerLag) -> EngineContext {
        EngineContext {
            records,
            generation: AtomicU64::new(0),
            assigned: Mutex::new(BTreeSet::new()),
            lag,
        }
    }

    /// Bumped by every revocation and assignment.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Partitions of the records topic assigned now (engine partitions).
    pub fn assigned(&self) -> BTreeSet<i32> {
        self.assigned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl ClientContext for EngineContext {
    fn stats(&self, s: rdkafka::Statistics) {
        self.lag.record(&s);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::error!(error = %error, reason, "librdkafka error");
    }
}

impl ConsumerContext for EngineContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            let parts: Vec<i32> = tpl.elements().iter().map(|e| e.partition()).collect();
            tracing::info!(partitions = ?parts, "partitions revoked");
            let mut a = self.assigned.lock().unwrap_or_else(|e| e.into_inner());
            for e in tpl.elements() {
                if e.topic() == self.records {
                    a.remove(&e.partition());
                }
            }
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                let parts: Vec<String> = tpl
                    .elements()
                    .iter()
                    .map(|e| format!("{}:{}", e.topic(), e.partition()))
                    .collect();
                tracing::info!(partitions = ?parts, "partitions assigned");
                let mut a = self.assigned.lock().unwrap_or_else(|e| e.into_inner());
                a.extend(
                    tpl.elements()
                        .iter()
                        .filter(|e| e.topic() == self.records)
                        .map(|e| e.partition()),
                );
                self.generation.fetch_add(1, Ordering::AcqRel);
            }
            Rebalance::Error(e) => tracing::warn!(error = %e, "rebalance failed"),
            Rebalance::Revoke(_) => {}
        }
    }
}
