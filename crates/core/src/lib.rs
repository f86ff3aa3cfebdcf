//! The pure domain of credit-bus.
//!
//! Nothing in this crate touches Kafka, HTTP or a database, so everything here is
//! tested in microseconds:
//!
//! * [`access`]: every principal (department, service) and its Kafka ACLs.
//! * [`catalogue`]: the departments and supervision domains of DOMAIN.md, with
//!   stable ids; every topic name and schema subject is derived from it in [`topics`].
//! * [`ids`]: the USCC (GB 32100) and resident ID (GB 11643) checks, and masking.
//! * [`guardrail`]: the minor behaviours that never enter a natural person's record
//!   (concepts as data, matched on text folded by [`text`]).
//! * [`record`]: the normalised credit record every adapter produces.
//! * [`feedback`]: a department's feedback on a notice, and why one is refused.
//! * [`reject`]: typed rejections with stable machine-readable reason codes.
//! * [`codes`]: what departments write in code fields (full-width forms,
//!   separators, letter case, 15-digit legacy codes) to a checked subject key,
//!   with the [`correction`]s made recorded; [`division`]: the GB/T 2260 table.
//! * [`date`] and [`amount`]: the small parsers every department format needs;
//!   amounts with their units.
//! * [`cases`]: tables of real-looking values and their expected verdicts,
//!   shared by unit, adapter and end-to-end tests.

pub mod access;
pub mod amount;
pub mod archive_api;
pub mod cases;
pub mod catalogue;
pub mod codes;
pub mod correction;
pub mod date;
pub mod division;
pub mod dlq;
pub mod feedback;
pub mod guardrail;
pub mod ids;
pub mod notice;
pub mod record;
pub mod reject;
pub mod text;
pub mod topics;

pub use catalogue::{DEPARTMENTS, DOMAINS, Department, Domain, InboundFormat};
pub use correction::{Correction, Corrections};
pub use record::{
    Context, CreditRecord, InfoKind, Lineage, ListType, Severity, Subject, SubjectType,
};
pub use reject::{ReasonCode, Rejection};
