//! The pure domain of credit-bus.
//!
//! Nothing in this crate touches Kafka, HTTP or a database, so everything here is
//! tested in microseconds:
//!
//! * [`access`]: every principal (department, service) and its Kafka ACLs.
//! * [`catalogue`]: the departments and supervision domains of DOMAIN.md, with
//!   stable ids; every topic name and schema subject is derived from it in [`topics`].
//! * [`ids`]: the USCC (GB 32100) and resident ID (GB 11643) checks, and masking.
//! * [`guardrail`]: the minor behaviours that never enter a natural person's record.
//! * [`record`]: the normalised credit record every adapter produces.
//! * [`feedback`]: a department's feedback on a notice, and why one is refused.
//! * [`reject`]: typed rejections with stable machine-readable reason codes.
//! * [`date`] and [`amount`]: the small parsers every department format needs.

pub mod access;
pub mod amount;
pub mod catalogue;
pub mod date;
pub mod dlq;
pub mod feedback;
pub mod guardrail;
pub mod ids;
pub mod notice;
pub mod record;
pub mod reject;
pub mod topics;

pub use catalogue::{DEPARTMENTS, DOMAINS, Department, Domain, InboundFormat};
pub use record::{
    Context, CreditRecord, InfoKind, Lineage, ListType, Severity, Subject, SubjectType,
};
pub use reject::{ReasonCode, Rejection};
