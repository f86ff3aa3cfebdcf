//! The joint-punishment engine.
//!
//! `credit.records` + `credit.engine.commands` ─▶ engine ─▶ `credit.<dept>.notices`
//!                                                 │
//!                                                 └─▶ `credit.engine.state` (changelog)
//!
//! * [`state`]: per-partition state and the pure planning of notices.
//! * [`pipeline`]: the Kafka loop with exactly-once notices (`docs/engine.md`).

pub mod config;
mod fence;
pub mod pipeline;
pub mod state;

pub use config::{Config, EngineConfig};
pub use pipeline::{Error, run};
