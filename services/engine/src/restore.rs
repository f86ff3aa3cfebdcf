//! Recovery: rebuilding partitions' state from the changelog, and the
//! catalogue versions it needs from the catalogue topic.
//!
//! A partition's state is replayed when its first input arrives after an
//! assignment (so the group's committed offsets for it are stable: every
//! transaction that committed offsets for it has ended) and after an abort
//! (its in-memory state held the aborted changes). Every partition assigned
//! and not yet replayed is replayed with it, in parallel. The changelog is
//! read `read_committed` to its end, waiting until no transaction is open on
//! it ([`Stable::Wait`]): whatever an instance that died or was fenced left
//! open has been committed or aborted by then.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use credit_measures::Catalogue;
use credit_measures::plan::PartitionState;
use credit_runtime::config::KafkaConfig;
use credit_runtime::errors::{Class, Classify, Disposition, Fault};
use credit_runtime::read::{self, ChangelogError, Stable};
use credit_schemas::changelog::Replay;

/// Why a partition could not be recovered.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Changelog(#[from] ChangelogError),
    #[error("a replay thread failed: {0}")]
    Join(String),
}

impl Classify for RestoreError {
    fn class(&self) -> Class {
        match self {
            RestoreError::Changelog(e) => e.class(),
            RestoreError::Join(_) => Class::new("internal", Fault::Internal, Disposition::Stop),
        }
    }
}

/// How long a replay may take: long enough to outlast a dead writer's
/// transaction (its timeout) and to read a large changelog.
pub fn read_limit(transaction_timeout: Duration) -> Duration {
    transaction_timeout * 2 + Duration::from_secs(60)
}

/// Replays partitions in parallel (one blocking thread each); the replays
/// come back unfinished, for the caller to finish with the catalogue
/// versions they need.
pub async fn read_changelogs(
    kafka: &KafkaConfig,
    changelog: &str,
    parts: &[i32],
    limit: Duration,
) -> Result<Vec<(i32, Replay)>, RestoreError> {
    let tasks: Vec<_> = parts
        .iter()
        .map(|&p| {
            let (k, c) = (kafka.clone(), changelog.to_string());
            tokio::task::spawn_blocking(move || {
                (
                    p,
                    read::changelog(&k, "credit-engine-restore", &c, p, Stable::Wait, limit),
                )
            })
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        let (p, r) = t.await.map_err(|e| RestoreError::Join(e.to_string()))?;
        out.push((p, r?));
    }
    Ok(out)
}

/// Finishes a replay with the known catalogue versions.
pub fn finish(
    p: i32,
    replay: Replay,
    catalogues: &BTreeMap<u32, Catalogue>,
    base_version: u32,
) -> Result<PartitionState, RestoreError> {
    replay.finish(catalogues, base_version).map_err(|source| {
        RestoreError::Changelog(ChangelogError::Replay {
            partition: p,
            source,
        })
    })
}

/// Times one recovery, for the recovery-duration histogram.
pub struct Timer(Instant);

impl Timer {
    pub fn start() -> Timer {
        Timer(Instant::now())
    }

    pub fn seconds(&self) -> f64 {
        self.0.elapsed().as_secs_f64()
    }
}
