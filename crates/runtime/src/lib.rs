//! Plumbing every credit-bus service shares, kept out of the pure domain:
//!
//! * [`config`]: embedded defaults, then a TOML file, then `CREDIT_BUS__` env vars;
//!   every problem reported at once.
//! * [`telemetry`]: JSON logs through `tracing`, metrics through the OpenTelemetry
//!   SDK exported for Prometheus.
//! * [`metrics`]: the one list of metric names.
//! * [`kafka`]: librdkafka settings and topic administration.
//! * [`errors`]: the error policy: retry, dead-letter or stop, and the retry helper.
//! * [`dlq`]: dead letters from consumed messages to rdkafka records.
//! * [`limits`]: record-size limits of broker, producer and service, checked at start.
//! * [`read`]: reading partitions to their end (changelogs, compacted topics).
//! * [`access`]: SCRAM users and ACLs of the access model applied to a broker;
//!   the credentials check every service runs at start-up.
//! * [`ops`]: `/metrics`, `/healthz`, `/readyz` on every service.
//! * [`prom`]: reading a `/metrics` page back (live view, dashboard).
//! * [`trace`]: W3C trace context in record headers, send/process spans, OTLP export.
//! * [`shutdown`]: SIGINT/SIGTERM into one cancellation token.
//! * [`service`]: what every service binary's `main` does.

pub mod access;
pub mod acks;
pub mod config;
pub mod dlq;
pub mod errors;
pub mod kafka;
pub mod limits;
pub mod metrics;
pub mod ops;
pub mod prom;
pub mod read;
pub mod service;
pub mod shutdown;
pub mod telemetry;
pub mod trace;

/// Today in days since 1970-01-01 (UTC+8, the city's calendar).
pub fn today() -> i32 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    ((secs + 8 * 3600) / 86_400) as i32
}
