//! `credit-bus entry end`: ends a list entry, after checking on the engine's
//! changelog that it is one and is still active, so an operator learns at
//! once that an id is wrong instead of from an engine's dead-letter topic.

use std::time::Duration;

use anyhow::{Context, bail};
use credit_measures::plan::{EndEntry, EndReason};
use credit_runtime::config::KafkaConfig;
use credit_schemas::commands::Command;
use rdkafka::producer::{FutureProducer, FutureRecord};

/// Why an operator ends an entry (the engine's own `catalogue-change` is not one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Reason {
    /// Credit repair granted by the identifying department: lift every measure.
    Repaired,
    /// The entry's validity ended: lift every measure.
    Expired,
    /// Withdrawn after an objection: withdraw every notice it caused.
    Withdrawn,
}

impl From<Reason> for EndReason {
    fn from(r: Reason) -> EndReason {
        match r {
            Reason::Repaired => EndReason::Repaired,
            Reason::Expired => EndReason::Expired,
            Reason::Withdrawn => EndReason::Withdrawn,
        }
    }
}

/// What ending the entry would do, from its replayed state.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Active: this many departments get a lift or withdrawal.
    Active { notices: usize, partition: i32 },
    /// Already ended: nothing would be sent.
    Ended(EndReason),
    /// No entry with that id on the partition it would live on.
    Unknown { partition: i32 },
}

/// Looks the entry up where the engine keeps it.
pub fn check(kafka: &KafkaConfig, record_id: &str) -> anyhow::Result<Verdict> {
    let naming = kafka.naming();
    let n = crate::catalogue::partitions(kafka, &naming.engine_commands())?;
    let partition = credit_core::topics::record_partition(record_id, n);
    let catalogues = crate::catalogue::published(kafka)?;
    let st = crate::catalogue::partition_state(kafka, &catalogues, partition)?;
    Ok(match st.entries.get(record_id) {
        None => Verdict::Unknown { partition },
        Some(e) => match e.ended {
            Some(r) => Verdict::Ended(r),
            None => Verdict::Active {
                notices: e.duties.iter().filter(|d| d.active).count(),
                partition,
            },
        },
    })
}

/// Ends entry `record_id` unless the check says it would do nothing.
pub async fn end(
    kafka: &KafkaConfig,
    record_id: &str,
    reason: Reason,
    force: bool,
) -> anyhow::Result<()> {
    let k = kafka.clone();
    let id = record_id.to_string();
    let verdict = tokio::task::spawn_blocking(move || check(&k, &id)).await??;
    match verdict {
        Verdict::Unknown { partition } if !force => bail!(
            "no list entry {record_id} (engine partition {partition}): the record is not a dishonesty or red list entry, was dead-lettered, or the engine has not processed it yet; check the id (e.g. courts:0:1234) or pass --force to send the command anyway"
        ),
        Verdict::Ended(r) => {
            eprintln!(
                "entry {record_id} already ended ({}): nothing to send",
                r.as_str()
            );
            return Ok(());
        }
        _ => {}
    }
    let command = Command::End(EndEntry {
        record_id: record_id.to_string(),
        reason: reason.into(),
    });
    let topic = kafka.naming().engine_commands();
    let n = crate::catalogue::partitions(kafka, &topic)?;
    let producer: FutureProducer =
        credit_runtime::kafka::producer(kafka, "credit-bus-cli").create()?;
    producer
        .send(
            FutureRecord::to(&topic)
                // The partition that holds the entry (and its record).
                .partition(credit_core::topics::record_partition(record_id, n))
                .key(command.key())
                .payload(&command.to_json()),
            Duration::from_secs(15),
        )
        .await
        .map_err(|(e, _)| e)
        .context("sending the command")?;
    match verdict {
        Verdict::Active { notices, partition } => eprintln!(
            "sent: end {record_id} ({}) to {topic} partition {partition}: {notices} department notice(s) will be {}",
            EndReason::from(reason).as_str(),
            if reason == Reason::Withdrawn {
                "withdrawn"
            } else {
                "lifted"
            }
        ),
        _ => eprintln!(
            "sent anyway (--force): end {record_id} to {topic}; the engine dead-letters it to {} if it knows no such entry",
            kafka.naming().engine_dead_letters()
        ),
    }
    Ok(())
}
