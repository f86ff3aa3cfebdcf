//! Typed rejections. Every reason has a stable machine-readable code that goes into
//! the dead-letter headers and the `reason` metric label; codes are append-only.

use std::fmt;

/// Why a department record was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReasonCode {
    /// The value is empty or only whitespace.
    EmptyRecord,
    /// The value is larger than the configured maximum.
    RecordTooLarge,
    /// The bytes are neither UTF-8 nor decodable GB18030/GBK.
    BadEncoding,
    MalformedJson,
    MalformedXml,
    MalformedCsv,
    /// A required field is absent or empty.
    MissingField,
    /// The record type / list name is not one this department publishes.
    UnknownRecordType,
    /// A USCC failed GB 32100 / GB 11714.
    InvalidUscc,
    /// A resident ID failed GB 11643.
    InvalidResidentId,
    /// A date is not a real date in an accepted spelling, or dates are out of order.
    InvalidDate,
    /// An amount is not a non-negative decimal in the stated unit.
    InvalidAmount,
    /// A field holds a value outside its allowed set (grade, category, ...).
    InvalidValue,
    /// A natural person's record names one of the six minor behaviours (六(十七)).
    GuardrailMinorBehaviour,
    /// A code whose check character is right but which is a placeholder
    /// (all zeros, one repeated digit, a known dummy) rather than a real subject.
    PlaceholderCode,
    /// A USCC whose registration-authority/type characters or administrative
    /// division are not valid per GB 32100 and GB/T 2260.
    InvalidUsccSegment,
    /// A 15-digit business registration number (pre-2015) where a USCC is required.
    LegacyRegistrationNumber,
    /// A CSV header lacks a required column (the field names it).
    MissingColumn,
    /// An amount written with a unit that cannot be meant for its field.
    InvalidUnit,
    /// A framed Avro value whose schema id the registry does not know.
    UnknownSchema,
    /// A framed Avro value whose writer schema belongs to another subject or
    /// cannot be read as this topic's record.
    SchemaMismatch,
    /// Not a Confluent-framed Avro value, or a body that does not decode
    /// (bad magic byte, truncated, trailing bytes).
    MalformedAvro,
    /// A command or control record that is not one of the documented shapes.
    MalformedCommand,
    /// A well-formed command the service refused (unknown entry, operator
    /// giving a reason only the engine may use, unpublished catalogue version).
    RefusedCommand,
    /// An output for this input could not be written for a reason that
    /// retrying will not change (e.g. the broker refuses its size).
    UndeliverableOutput,
}

impl ReasonCode {
    pub const ALL: [ReasonCode; 25] = [
        ReasonCode::EmptyRecord,
        ReasonCode::RecordTooLarge,
        ReasonCode::BadEncoding,
        ReasonCode::MalformedJson,
        ReasonCode::MalformedXml,
        ReasonCode::MalformedCsv,
        ReasonCode::MissingField,
        ReasonCode::UnknownRecordType,
        ReasonCode::InvalidUscc,
        ReasonCode::InvalidResidentId,
        ReasonCode::InvalidDate,
        ReasonCode::InvalidAmount,
        ReasonCode::InvalidValue,
        ReasonCode::GuardrailMinorBehaviour,
        ReasonCode::PlaceholderCode,
        ReasonCode::InvalidUsccSegment,
        ReasonCode::LegacyRegistrationNumber,
        ReasonCode::MissingColumn,
        ReasonCode::InvalidUnit,
        ReasonCode::UnknownSchema,
        ReasonCode::SchemaMismatch,
        ReasonCode::MalformedAvro,
        ReasonCode::MalformedCommand,
        ReasonCode::RefusedCommand,
        ReasonCode::UndeliverableOutput,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            ReasonCode::EmptyRecord => "empty_record",
            ReasonCode::RecordTooLarge => "record_too_large",
            ReasonCode::BadEncoding => "bad_encoding",
            ReasonCode::MalformedJson => "malformed_json",
            ReasonCode::MalformedXml => "malformed_xml",
            ReasonCode::MalformedCsv => "malformed_csv",
            ReasonCode::MissingField => "missing_field",
            ReasonCode::UnknownRecordType => "unknown_record_type",
            ReasonCode::InvalidUscc => "invalid_uscc",
            ReasonCode::InvalidResidentId => "invalid_resident_id",
            ReasonCode::InvalidDate => "invalid_date",
            ReasonCode::InvalidAmount => "invalid_amount",
            ReasonCode::InvalidValue => "invalid_value",
            ReasonCode::GuardrailMinorBehaviour => "guardrail_minor_behaviour",
            ReasonCode::PlaceholderCode => "placeholder_code",
            ReasonCode::InvalidUsccSegment => "invalid_uscc_segment",
            ReasonCode::LegacyRegistrationNumber => "legacy_registration_number",
            ReasonCode::MissingColumn => "missing_column",
            ReasonCode::InvalidUnit => "invalid_unit",
            ReasonCode::UnknownSchema => "unknown_schema",
            ReasonCode::SchemaMismatch => "schema_mismatch",
            ReasonCode::MalformedAvro => "malformed_avro",
            ReasonCode::MalformedCommand => "malformed_command",
            ReasonCode::RefusedCommand => "refused_command",
            ReasonCode::UndeliverableOutput => "undeliverable_output",
        }
    }

    pub fn parse(s: &str) -> Option<ReasonCode> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The stage of the pipeline at which the reason is found, for the
    /// `__connect.errors.stage` header (Kafka Connect's vocabulary).
    pub const fn stage(self) -> &'static str {
        match self {
            ReasonCode::EmptyRecord
            | ReasonCode::RecordTooLarge
            | ReasonCode::BadEncoding
            | ReasonCode::MalformedJson
            | ReasonCode::MalformedXml
            | ReasonCode::MalformedCsv
            | ReasonCode::MissingColumn
            | ReasonCode::UnknownSchema
            | ReasonCode::SchemaMismatch
            | ReasonCode::MalformedAvro
            | ReasonCode::MalformedCommand => "VALUE_CONVERTER",
            ReasonCode::UndeliverableOutput => "PRODUCER",
            _ => "TRANSFORMATION",
        }
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rejected record: the reason code, the offending field, and a human-readable
/// detail that never contains a resident ID number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}{}: {detail}", field.map(|f| format!(" ({f})")).unwrap_or_default())]
pub struct Rejection {
    pub code: ReasonCode,
    pub field: Option<&'static str>,
    pub detail: String,
}

impl Rejection {
    pub fn new(code: ReasonCode, field: Option<&'static str>, detail: impl Into<String>) -> Self {
        Rejection {
            code,
            field,
            detail: detail.into(),
        }
    }

    pub fn missing(field: &'static str) -> Self {
        Rejection::new(
            ReasonCode::MissingField,
            Some(field),
            "required field is absent or empty",
        )
    }

    pub fn invalid(field: &'static str, detail: impl Into<String>) -> Self {
        Rejection::new(ReasonCode::InvalidValue, Some(field), detail)
    }

    pub fn date(field: &'static str) -> Self {
        Rejection::new(
            ReasonCode::InvalidDate,
            Some(field),
            "not a real date as YYYY-MM-DD, YYYYMMDD, YYYY/MM/DD or YYYY年MM月DD日",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for c in ReasonCode::ALL {
            assert!(seen.insert(c.as_str()));
            assert_eq!(ReasonCode::parse(c.as_str()), Some(c));
            assert!(
                c.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_')
            );
        }
    }

    #[test]
    fn display_names_code_and_field() {
        let r = Rejection::missing("caseCode");
        assert_eq!(
            r.to_string(),
            "missing_field (caseCode): required field is absent or empty"
        );
    }
}
