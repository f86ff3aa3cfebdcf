//! The normaliser service: one instance (and consumer group) per department.
//!
//! `credit.<dept>.inbound` ─▶ adapter ─┬─▶ `credit.records` (Avro, Confluent framing)
//!                                     └─▶ `credit.<dept>.dlq` (original bytes + reason)
//!
//! * [`adapters`]: pure parsers, one per department format.
//! * [`pipeline`]: the Kafka loop; offsets are stored only after every output
//!   a record caused is acknowledged.
//! * [`config`]: this service's config section.

pub mod adapters;
pub mod config;
pub mod pipeline;

pub use config::{Config, DEFAULT_MAX_RECORD_BYTES, NormaliserConfig};
pub use pipeline::{Error, run};
