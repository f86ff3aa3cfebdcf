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

/// Earlier published versions of the credit-record schema, oldest first. The
/// registry enforces BACKWARD compatibility, so each must stay readable by the
/// current one; the tests below check it the way the registry does.
pub const CREDIT_RECORD_PREVIOUS: &[&str] =
    &[include_str!("../avro/previous/credit_record.v1.avsc")];

#[cfg(test)]
mod tests {
    use apache_avro::schema_compatibility::SchemaCompatibility;
    use apache_avro::types::Value;

    #[test]
    fn embedded_schemas_parse() {
        for (_, avsc) in super::value_schemas(&Default::default()) {
            apache_avro::Schema::parse_str(avsc).unwrap();
        }
    }

    /// BACKWARD, as `services/registry` checks it: the new schema reads data
    /// written with every earlier one (the `corrections` field has a default).
    #[test]
    fn credit_record_schema_is_backward_compatible() {
        let new = super::credit_record_schema();
        for old in super::CREDIT_RECORD_PREVIOUS {
            let old = apache_avro::Schema::parse_str(old).unwrap();
            SchemaCompatibility::can_read(&old, new).unwrap();
            // Not FORWARD-only by accident: the old schema reads new data too
            // (an added field is skipped), so old consumers keep working.
            SchemaCompatibility::can_read(new, &old).unwrap();
        }
    }

    /// A body an old normaliser wrote resolves to the current schema with no
    /// corrections, and a current body is read by an old reader.
    #[test]
    #[allow(deprecated)]
    fn old_bodies_read_with_empty_corrections() {
        use credit_core::Correction;
        let old = apache_avro::Schema::parse_str(super::CREDIT_RECORD_PREVIOUS[0]).unwrap();
        let mut r = crate::encode::tests::sample_record();
        let mut body = Vec::new();
        crate::encode::credit_record_body(&mut body, &r);
        // The current encoder ends with the empty corrections array (one 0
        // byte); without it the body is exactly what the v1 encoder wrote.
        assert_eq!(body.pop(), Some(0));
        let v =
            apache_avro::from_avro_datum(&old, &mut &body[..], Some(super::credit_record_schema()))
                .unwrap();
        let Value::Record(f) = v else { panic!() };
        assert_eq!(
            f.last().unwrap(),
            &("corrections".to_string(), Value::Array(vec![]))
        );

        r.corrections.insert(Correction::ResidentIdUpgraded15);
        let mut body = Vec::new();
        crate::encode::credit_record_body(&mut body, &r);
        let v =
            apache_avro::from_avro_datum(super::credit_record_schema(), &mut &body[..], Some(&old))
                .unwrap();
        let Value::Record(f) = v else { panic!() };
        assert!(f.iter().all(|(n, _)| n != "corrections"));
        assert_eq!(f.len(), 19);
    }

    /// Appended at the end with a default, as the brief for the field asks.
    #[test]
    fn the_field_is_last_and_defaulted() {
        let json: serde_json::Value = serde_json::from_str(super::CREDIT_RECORD_AVSC).unwrap();
        let last = json["fields"].as_array().unwrap().last().unwrap();
        assert_eq!(last["name"], "corrections");
        assert_eq!(last["default"], serde_json::json!([]));
    }
}
