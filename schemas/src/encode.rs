//! A direct Avro binary encoder for [`CreditRecord`], field by field in the order of
//! `credit_record.avsc`. It skips `apache_avro::types::Value` (about ten times slower
//! on the hot path); the tests below decode its output with `apache_avro` and the
//! `.avsc` itself, so the two cannot drift apart unnoticed.

use credit_core::record::CreditRecord;

use crate::wire;

#[inline]
fn zigzag(buf: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        buf.push((z as u8) | 0x80);
        z >>= 7;
    }
    buf.push(z as u8);
}

#[inline]
fn string(buf: &mut Vec<u8>, s: &str) {
    zigzag(buf, s.len() as i64);
    buf.extend_from_slice(s.as_bytes());
}

#[inline]
fn opt_string(buf: &mut Vec<u8>, s: Option<&str>) {
    match s {
        None => zigzag(buf, 0),
        Some(s) => {
            zigzag(buf, 1);
            string(buf, s);
        }
    }
}

#[inline]
fn opt_long(buf: &mut Vec<u8>, v: Option<i64>) {
    match v {
        None => zigzag(buf, 0),
        Some(v) => {
            zigzag(buf, 1);
            zigzag(buf, v);
        }
    }
}

/// Appends the Avro binary body of `r` to `buf`.
pub fn credit_record_body(buf: &mut Vec<u8>, r: &CreditRecord<'_>) {
    let id = r.record_id();
    let (mut pb, mut ob) = (itoa::Buffer::new(), itoa::Buffer::new());
    let (p, o) = (pb.format(id.partition), ob.format(id.offset));
    zigzag(buf, (id.department.len() + 2 + p.len() + o.len()) as i64);
    buf.extend_from_slice(id.department.as_bytes());
    buf.push(b':');
    buf.extend_from_slice(p.as_bytes());
    buf.push(b':');
    buf.extend_from_slice(o.as_bytes());
    string(buf, r.department);
    string(buf, r.domain);
    zigzag(buf, r.subject.kind.index() as i64);
    string(buf, &r.subject.key);
    string(buf, &r.subject.name);
    opt_string(buf, r.responsible_person.as_deref());
    zigzag(buf, r.info_kind.index() as i64);
    opt_long(buf, r.list_type.map(|l| l.index() as i64));
    opt_string(buf, r.grade.as_deref());
    string(buf, &r.decision_number);
    zigzag(buf, r.decision_date as i64);
    opt_long(buf, r.publication_date.map(i64::from));
    zigzag(buf, r.valid_from as i64);
    opt_long(buf, r.valid_until.map(i64::from));
    zigzag(buf, r.severity.index() as i64);
    opt_string(buf, r.legal_basis.as_deref());
    string(buf, &r.conduct);
    opt_long(buf, r.amount_fen);
    if !r.attributes.is_empty() {
        zigzag(buf, r.attributes.len() as i64);
        for (k, v) in &r.attributes {
            string(buf, k);
            string(buf, v);
        }
    }
    zigzag(buf, 0);
    let l = &r.lineage;
    string(buf, &l.source_topic);
    zigzag(buf, l.source_partition as i64);
    zigzag(buf, l.source_offset);
    string(buf, &l.source_record_id);
    opt_long(buf, l.source_timestamp_ms);
    // corrections: one array block (none for most records), then the end marker.
    if !r.corrections.is_empty() {
        zigzag(buf, r.corrections.len() as i64);
        for c in r.corrections.iter() {
            string(buf, c.as_str());
        }
    }
    zigzag(buf, 0);
}

/// Appends the Avro binary body of a notice to `buf`, in the order of `notice.avsc`.
pub fn notice_body(buf: &mut Vec<u8>, n: &credit_core::notice::Notice<'_>) {
    string(buf, n.notice_id);
    zigzag(buf, n.kind.index() as i64);
    string(buf, n.department);
    string(buf, n.measure_id);
    string(buf, n.measure_name);
    string(buf, n.legal_basis);
    zigzag(buf, n.catalogue_version as i64);
    zigzag(buf, n.generation as i64);
    string(buf, n.record_id);
    string(buf, n.list_type);
    string(buf, n.subject_type);
    string(buf, n.subject_key);
    string(buf, n.subject_name);
    string(buf, n.identifying_department);
    string(buf, n.decision_number);
    opt_string(buf, n.reason);
    string(buf, n.source_topic);
    zigzag(buf, n.source_partition as i64);
    zigzag(buf, n.source_offset);
}

/// Appends a notice in the Confluent wire format to `buf`.
pub fn notice_framed(buf: &mut Vec<u8>, schema_id: u32, n: &credit_core::notice::Notice<'_>) {
    wire::write_header(buf, schema_id);
    notice_body(buf, n);
}

/// Appends the Avro binary body of a feedback to `buf`, in the order of `feedback.avsc`.
pub fn feedback_body(buf: &mut Vec<u8>, f: &credit_core::feedback::Feedback<'_>) {
    string(buf, f.notice_id);
    string(buf, f.department);
    zigzag(buf, f.outcome.index() as i64);
    opt_string(buf, f.reason);
    zigzag(buf, f.responded_at_ms);
}

/// Appends a feedback in the Confluent wire format to `buf`.
pub fn feedback_framed(buf: &mut Vec<u8>, schema_id: u32, f: &credit_core::feedback::Feedback<'_>) {
    wire::write_header(buf, schema_id);
    feedback_body(buf, f);
}

/// Appends `r` in the Confluent wire format (header + body) to `buf`.
pub fn credit_record_framed(buf: &mut Vec<u8>, schema_id: u32, r: &CreditRecord<'_>) {
    wire::write_header(buf, schema_id);
    credit_record_body(buf, r);
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use apache_avro::types::Value;
    use credit_core::record::*;
    use credit_core::{Correction, Corrections};
    use proptest::prelude::*;
    use std::borrow::Cow;

    pub(crate) fn arb_record() -> impl Strategy<Value = CreditRecord<'static>> {
        (
            (
                Just(()),
                0usize..SubjectType::ALL.len(),
                "\\PC{0,20}",
                proptest::option::of("\\PC{0,8}"),
                0usize..InfoKind::ALL.len(),
                proptest::option::of(0usize..ListType::ALL.len()),
                proptest::option::of("[A-D]"),
            ),
            (
                "\\PC{0,30}",
                any::<i32>(),
                proptest::option::of(any::<i32>()),
                proptest::option::of(any::<i32>()),
                0usize..Severity::ALL.len(),
                proptest::option::of("\\PC{0,30}"),
                proptest::option::of(any::<i64>()),
                proptest::collection::btree_map("[a-z]{1,6}", "\\PC{0,6}", 0..4),
                (
                    any::<i32>(),
                    any::<i64>(),
                    proptest::option::of(any::<i64>()),
                ),
                proptest::sample::subsequence(Correction::ALL.to_vec(), 0..=Correction::ALL.len())
                    .prop_map(|cs| cs.into_iter().collect::<Corrections>()),
            ),
        )
            .prop_map(|(a, b)| CreditRecord {
                department: "courts",
                domain: "judicial",
                subject: Subject {
                    kind: SubjectType::ALL[a.1],
                    key: Cow::Owned("91440101MA59UU8U0F".into()),
                    name: Cow::Owned(a.2),
                },
                responsible_person: a.3.map(Cow::Owned),
                info_kind: InfoKind::ALL[a.4],
                list_type: a.5.map(|i| ListType::ALL[i]),
                grade: a.6.map(Cow::Owned),
                decision_number: Cow::Owned(b.0),
                decision_date: b.1,
                publication_date: b.2,
                valid_from: b.1,
                valid_until: b.3,
                severity: Severity::ALL[b.4],
                legal_basis: b.5.map(Cow::Owned),
                conduct: Cow::Borrowed("有履行能力而拒不履行"),
                amount_fen: b.6,
                attributes: b
                    .7
                    .into_iter()
                    .map(|(k, v)| (&*Box::leak(k.into_boxed_str()), Cow::Owned(v)))
                    .collect(),
                lineage: Lineage {
                    source_topic: Cow::Borrowed("credit.courts.inbound"),
                    source_partition: b.8.0,
                    source_offset: b.8.1,
                    source_record_id: Cow::Borrowed("(2020)粤01执123号"),
                    source_timestamp_ms: b.8.2,
                },
                corrections: b.9,
            })
    }

    /// One fixed record, for tests that need a body rather than a property.
    pub(crate) fn sample_record() -> CreditRecord<'static> {
        use proptest::strategy::ValueTree;
        let mut runner = proptest::test_runner::TestRunner::deterministic();
        let mut r = arb_record().new_tree(&mut runner).unwrap().current();
        r.corrections = Corrections::NONE;
        r
    }

    fn field<'v>(fields: &'v [(String, Value)], name: &str) -> &'v Value {
        &fields.iter().find(|(n, _)| n == name).unwrap().1
    }

    fn opt(v: &Value) -> Option<Value> {
        match v {
            Value::Union(0, _) => None,
            Value::Union(_, inner) => Some((**inner).clone()),
            other => panic!("not a union: {other:?}"),
        }
    }

    #[test]
    #[allow(deprecated)]
    fn apache_avro_reads_notices() {
        use credit_core::notice::{Notice, NoticeKind};
        for (kind, reason) in [
            (NoticeKind::Punishment, None),
            (NoticeKind::Lift, Some("repaired")),
        ] {
            let n = Notice {
                notice_id: "courts:1:7/no-honours/hrss/punishment/1",
                kind,
                department: "hrss",
                measure_id: "no-honours",
                measure_name: "不得参加评先评优",
                legal_basis: "国发〔2016〕33号",
                catalogue_version: 3,
                generation: 2,
                record_id: "courts:1:7",
                list_type: "JUDGEMENT_DEFAULTER",
                subject_type: "LEGAL_PERSON",
                subject_key: "91440101MA59UU8U0F",
                subject_name: "广州某公司",
                identifying_department: "courts",
                decision_number: "(2020)粤01执123号",
                reason,
                source_topic: "credit.records",
                source_partition: 1,
                source_offset: -5,
            };
            let mut buf = Vec::new();
            notice_body(&mut buf, &n);
            let schema = crate::notice_schema();
            let mut slice = &buf[..];
            let Value::Record(f) = apache_avro::from_avro_datum(schema, &mut slice, None).unwrap()
            else {
                panic!()
            };
            assert!(slice.is_empty());
            assert_eq!(
                field(&f, "kind"),
                &Value::Enum(kind.index() as u32, kind.symbol().into())
            );
            assert_eq!(field(&f, "generation"), &Value::Int(2));
            assert_eq!(
                field(&f, "subject_name"),
                &Value::String("广州某公司".into())
            );
            assert_eq!(
                opt(field(&f, "reason")),
                reason.map(|r| Value::String(r.into()))
            );
            assert_eq!(field(&f, "source_offset"), &Value::Long(-5));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        #[allow(deprecated)]
        fn apache_avro_reads_what_we_write(r in arb_record()) {
            let mut buf = Vec::new();
            credit_record_body(&mut buf, &r);
            let schema = crate::credit_record_schema();
            let mut slice = &buf[..];
            let v = apache_avro::from_avro_datum(schema, &mut slice, None).unwrap();
            prop_assert!(slice.is_empty(), "trailing bytes");
            let Value::Record(f) = v else { panic!("not a record") };
            prop_assert_eq!(field(&f, "record_id"), &Value::String(r.record_id().to_string()));
            let Value::Record(s) = field(&f, "subject") else { panic!() };
            prop_assert_eq!(field(s, "type"), &Value::Enum(r.subject.kind.index() as u32, r.subject.kind.symbol().into()));
            prop_assert_eq!(field(s, "name"), &Value::String(r.subject.name.to_string()));
            prop_assert_eq!(opt(field(&f, "responsible_person")), r.responsible_person.as_ref().map(|p| Value::String(p.to_string())));
            prop_assert_eq!(field(&f, "info_kind"), &Value::Enum(r.info_kind.index() as u32, r.info_kind.symbol().into()));
            prop_assert_eq!(opt(field(&f, "list_type")), r.list_type.map(|l| Value::Enum(l.index() as u32, l.symbol().into())));
            prop_assert_eq!(field(&f, "decision_date"), &Value::Date(r.decision_date));
            prop_assert_eq!(opt(field(&f, "publication_date")), r.publication_date.map(Value::Date));
            prop_assert_eq!(opt(field(&f, "valid_until")), r.valid_until.map(Value::Date));
            prop_assert_eq!(field(&f, "severity"), &Value::Enum(r.severity.index() as u32, r.severity.symbol().into()));
            prop_assert_eq!(opt(field(&f, "legal_basis")), r.legal_basis.as_ref().map(|p| Value::String(p.to_string())));
            prop_assert_eq!(opt(field(&f, "amount_fen")), r.amount_fen.map(Value::Long));
            let Value::Map(m) = field(&f, "attributes") else { panic!() };
            prop_assert_eq!(m.len(), r.attributes.len());
            for (k, v) in &r.attributes {
                prop_assert_eq!(m.get(*k), Some(&Value::String(v.to_string())));
            }
            let Value::Record(l) = field(&f, "lineage") else { panic!() };
            prop_assert_eq!(field(l, "source_partition"), &Value::Int(r.lineage.source_partition));
            prop_assert_eq!(field(l, "source_offset"), &Value::Long(r.lineage.source_offset));
            prop_assert_eq!(opt(field(l, "source_timestamp")), r.lineage.source_timestamp_ms.map(Value::TimestampMillis));
            let Value::Array(cs) = field(&f, "corrections") else { panic!() };
            let want: Vec<Value> = r.corrections.iter().map(|c| Value::String(c.as_str().into())).collect();
            prop_assert_eq!(cs, &want);
        }
    }
}
