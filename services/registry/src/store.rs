//! The compacted topic behind the registry: write-ahead for every change,
//! replayed in full on start.

use std::time::Duration;

use credit_runtime::config::KafkaConfig;
use credit_runtime::read::Stable;
use rdkafka::Offset;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

use crate::state::{Change, Compatibility, State};

pub struct Store {
    producer: FutureProducer,
    kafka: KafkaConfig,
    topic: String,
}

impl Store {
    /// Connects and makes sure the (single-partition, compacted) topic exists.
    pub async fn open(kafka: &KafkaConfig, topic: &str) -> anyhow::Result<Store> {
        credit_runtime::kafka::ensure_compacted_topic(kafka, topic).await?;
        let producer = credit_runtime::kafka::producer(kafka, "credit-registry").create()?;
        Ok(Store {
            producer,
            kafka: kafka.clone(),
            topic: topic.to_string(),
        })
    }

    /// Rebuilds the state from every change in the topic, in order.
    pub async fn replay(&self, default: Compatibility) -> anyhow::Result<State> {
        let kafka = self.kafka.clone();
        let topic = self.topic.clone();
        tokio::task::spawn_blocking(move || replay_blocking(&kafka, &topic, default)).await?
    }

    /// Writes a change and waits until the broker has acknowledged it.
    pub async fn write(&self, change: &Change) -> anyhow::Result<()> {
        let key = change.key();
        let value = serde_json::to_vec(change)?;
        self.producer
            .send(
                FutureRecord::to(&self.topic)
                    .key(&key)
                    .payload(&value)
                    .partition(0),
                Timeout::After(Duration::from_secs(15)),
            )
            .await
            .map_err(|(e, _)| e)?;
        Ok(())
    }
}

fn replay_blocking(
    kafka: &KafkaConfig,
    topic: &str,
    default: Compatibility,
) -> anyhow::Result<State> {
    let mut state = State::new(default);
    // Written by the registry alone, without transactions: its end is where
    // it is now.
    credit_runtime::read::read_to_end(
        kafka,
        "credit-registry-replay",
        topic,
        &[(0, Offset::Beginning)],
        Stable::AsIs,
        Duration::from_secs(60),
        |m| {
            if let Some(v) = m.payload() {
                match serde_json::from_slice::<Change>(v) {
                    Ok(c) => state.apply(c),
                    Err(e) => {
                        tracing::warn!(offset = m.offset(), error = %e, "skipping unreadable registry record")
                    }
                }
            }
        },
    )?;
    Ok(state)
}
