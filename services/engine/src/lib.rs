//! The joint-punishment engine: list entries in, notices out, exactly once.
//!
//! ```text
//! credit.records ─────────┐                        ┌─▶ credit.<dept>.notices (35 departments)
//!                         ├─▶ plan (pure) ─▶ one ──┼─▶ credit.engine.state (changelog, compacted)
//! credit.engine.commands ─┘      ▲       transaction ├─▶ credit.engine.dlq (inputs it cannot use)
//!                                │                  └─▶ input offsets (consumer group)
//!              state per partition, replayed from the changelog
//! ```
//!
//! Every notice, dead letter and changelog write of an input goes into one
//! Kafka transaction with that input's offset, so each is committed exactly
//! once or not at all (`docs/engine.md`).
//!
//! * [`run`]: the loop: read, plan, send, commit.
//! * [`cycle`]: when a transaction commits and what an abort undoes (a pure
//!   state machine).
//! * [`input`]: decoding records and commands, each failure classified.
//! * [`outlets`]: each department's notices topic and the notices' text.
//! * [`restore`]: replaying partitions from the changelog, reading catalogue versions.
//! * [`rebalance`]: the consumer context that notices rebalances.
//! * [`producer`]: the transactional producer.
//!
//! Planning itself (entries, duties, expiry, catalogue activation) is
//! `credit_measures::plan`; the changelog and command formats are contracts
//! in `credit_schemas::{changelog, commands}`.

pub mod config;
pub mod cycle;
pub mod input;
pub mod outlets;
pub mod producer;
pub mod rebalance;
pub mod restore;
pub mod run;

pub use config::{Config, EngineConfig};
pub use run::{Error, run};
