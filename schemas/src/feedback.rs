//! Reading feedback back: a Confluent-framed record decoded with its writer's
//! schema, resolved to ours (`feedback.avsc`), so a department on an older or
//! newer compatible version of the contract is still understood.

use apache_avro::types::Value;
use credit_core::feedback::{Feedback, Outcome};

/// A decoded feedback that owns its strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedFeedback {
    pub notice_id: String,
    pub department: String,
    pub outcome: Outcome,
    pub reason: Option<String>,
    pub responded_at_ms: i64,
}

impl OwnedFeedback {
    pub fn borrow(&self) -> Feedback<'_> {
        Feedback {
            notice_id: &self.notice_id,
            department: &self.department,
            outcome: self.outcome,
            reason: self.reason.as_deref(),
            responded_at_ms: self.responded_at_ms,
        }
    }
}

fn field<'v>(fields: &'v [(String, Value)], name: &str) -> Option<&'v Value> {
    fields.iter().find(|(n, _)| n == name).map(|(_, v)| v)
}

/// Decodes an Avro body written with `writer` into a feedback. Trailing bytes
/// are an error: they mean the writer's schema is not what the frame claims.
pub fn decode_body(writer: &apache_avro::Schema, body: &[u8]) -> Result<OwnedFeedback, String> {
    let mut slice = body;
    #[allow(deprecated)]
    let v = apache_avro::from_avro_datum(writer, &mut slice, Some(crate::feedback_schema()))
        .map_err(|e| e.to_string())?;
    if !slice.is_empty() {
        return Err(format!("{} trailing bytes", slice.len()));
    }
    let Value::Record(f) = v else {
        return Err("not a record".into());
    };
    let string = |name: &str| match field(&f, name) {
        Some(Value::String(s)) => Ok(s.clone()),
        _ => Err(format!("{name}: not a string")),
    };
    let outcome = match field(&f, "outcome") {
        Some(Value::Enum(_, s)) => Outcome::from_symbol(s).ok_or(format!("outcome {s:?}"))?,
        _ => return Err("outcome: not an enum".into()),
    };
    let reason = match field(&f, "reason") {
        Some(Value::Union(_, inner)) => match &**inner {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            _ => return Err("reason: not a string".into()),
        },
        _ => return Err("reason: not a union".into()),
    };
    let responded_at_ms = match field(&f, "responded_at") {
        Some(Value::TimestampMillis(t) | Value::Long(t)) => *t,
        _ => return Err("responded_at: not a timestamp".into()),
    };
    Ok(OwnedFeedback {
        notice_id: string("notice_id")?,
        department: string("department")?,
        outcome,
        reason,
        responded_at_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::{feedback_body, feedback_framed};
    use proptest::prelude::*;

    fn arb_feedback() -> impl Strategy<Value = OwnedFeedback> {
        (
            "\\PC{0,60}",
            "[a-z-]{0,12}",
            0usize..3,
            proptest::option::of("\\PC{0,40}"),
            any::<i64>(),
        )
            .prop_map(|(n, d, o, r, t)| OwnedFeedback {
                notice_id: n,
                department: d,
                outcome: Outcome::ALL[o],
                reason: r,
                responded_at_ms: t,
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        /// The direct encoder agrees with apache-avro reading the .avsc itself.
        #[test]
        fn apache_avro_reads_what_we_write(fb in arb_feedback()) {
            let mut buf = Vec::new();
            feedback_body(&mut buf, &fb.borrow());
            let mut slice = &buf[..];
            #[allow(deprecated)]
            let v = apache_avro::from_avro_datum(crate::feedback_schema(), &mut slice, None).unwrap();
            prop_assert!(slice.is_empty());
            let Value::Record(f) = v else { panic!("not a record") };
            prop_assert_eq!(field(&f, "notice_id"), Some(&Value::String(fb.notice_id.clone())));
            prop_assert_eq!(field(&f, "department"), Some(&Value::String(fb.department.clone())));
            prop_assert_eq!(field(&f, "outcome"), Some(&Value::Enum(fb.outcome.index() as u32, fb.outcome.symbol().into())));
            let want_reason = match &fb.reason {
                None => Value::Union(0, Box::new(Value::Null)),
                Some(r) => Value::Union(1, Box::new(Value::String(r.clone()))),
            };
            prop_assert_eq!(field(&f, "reason"), Some(&want_reason));
            prop_assert_eq!(field(&f, "responded_at"), Some(&Value::TimestampMillis(fb.responded_at_ms)));
            prop_assert_eq!(decode_body(crate::feedback_schema(), &buf), Ok(fb));
        }

        /// Arbitrary bytes never panic the decoder.
        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_body(crate::feedback_schema(), &bytes);
        }
    }

    #[test]
    fn framed_feedback_splits_into_id_and_body() {
        let fb = OwnedFeedback {
            notice_id: "courts:0:1/no-honours/hrss/punishment/1".into(),
            department: "hrss".into(),
            outcome: Outcome::Failed,
            reason: Some("系统故障".into()),
            responded_at_ms: 1_709_280_000_000,
        };
        let mut buf = Vec::new();
        feedback_framed(&mut buf, 42, &fb.borrow());
        let (id, body) = crate::wire::split(&buf).unwrap();
        assert_eq!(id, 42);
        assert_eq!(decode_body(crate::feedback_schema(), body), Ok(fb));
        // A notice body is not a feedback.
        assert!(decode_body(crate::feedback_schema(), &body[..body.len() - 1]).is_err());
    }
}
