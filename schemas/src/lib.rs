//! The shared contracts of credit-bus.
//!
//! The `.avsc` files in `schemas/avro/` are the single source of every schema;
//! this crate embeds them, frames records in the Confluent wire format
//! ([`wire`]), encodes the normalised record without going through
//! `apache_avro::types::Value` ([`encode`]), and talks to any Confluent-compatible
//! schema registry ([`registry`]). The engine's own topics are contracts too:
//! its changelog ([`changelog`], with the one replay function the engine and
//! the CLI share) and its command and catalogue topics ([`commands`]).

pub mod changelog;
pub mod commands;
pub mod decode;
pub mod encode;
pub mod feedback;
pub mod registry;
pub mod wire;

use std::sync::OnceLock;

/// Value schema of `credit.records`.
pub const CREDIT_RECORD_AVSC: &str = include_str!("../avro/credit_record.avsc");

/// Value schema of every `credit.<dept>.notices`.
pub const NOTICE_AVSC: &str = include_str!("../avro/notice.avsc");

/// Value schema of every `credit.<dept>.feedback`.
pub const FEEDBACK_AVSC: &str = include_str!("../avro/feedback.avsc");

/// Every schema the bus registers, by the topic whose values it describes.
pub fn value_schemas(naming: &credit_core::topics::Naming) -> Vec<(String, &'static str)> {
    let mut out = vec![(naming.records(), CREDIT_RECORD_AVSC)];
    for d in credit_core::DEPARTMENTS {
        out.push((naming.notices(d.id), NOTICE_AVSC));
        out.push((naming.feedback(d.id), FEEDBACK_AVSC));
    }
    out
}

/// The parsed notice schema, parsed once per process.
pub fn notice_schema() -> &'static apache_avro::Schema {
    static SCHEMA: OnceLock<apache_avro::Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        apache_avro::Schema::parse_str(NOTICE_AVSC)
            .expect("notice.avsc is checked by this crate's tests")
    })
}

/// The parsed feedback schema, parsed once per process.
pub fn feedback_schema() -> &'static apache_avro::Schema {
    static SCHEMA: OnceLock<apache_avro::Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        apache_avro::Schema::parse_str(FEEDBACK_AVSC)
            .expect("feedback.avsc is checked by this crate's tests")
    })
}

/// The parsed credit-record schema, parsed once per process.
pub fn credit_record_schema() -> &'static apache_avro::Schema {
    static SCHEMA: OnceLock<apache_avro::Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        apache_avro::Schema::parse_str(CREDIT_RECORD_AVSC)
            .expect("credit_record.avsc is checked by this crate's tests")
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn embedded_schemas_parse() {
        for (_, avsc) in super::value_schemas(&Default::default()) {
            apache_avro::Schema::parse_str(avsc).unwrap();
        }
    }
}
