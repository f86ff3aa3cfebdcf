//! A direct Avro binary decoder for the engine's view of a [`CreditRecord`]:
//! the fields it plans from, borrowed from the body, with every other field
//! walked and checked (string lengths, enum and union indexes, map blocks,
//! nothing left over), so a damaged body is refused rather than half-read.
//! Only for bodies written with `credit_record.avsc` itself; other writer
//! schemas go through `apache_avro` with resolution. The tests compare it
//! with `apache_avro` on generated records.
//!
//! [`CreditRecord`]: credit_core::record::CreditRecord

use credit_core::correction::{Correction, Corrections};
use credit_core::record::{InfoKind, ListType, Severity, SubjectType};

/// What the engine needs of a normalised record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHead<'a> {
    pub record_id: &'a str,
    pub department: &'a str,
    pub subject_type: SubjectType,
    pub subject_key: &'a str,
    pub subject_name: &'a str,
    pub info_kind: InfoKind,
    pub list_type: Option<ListType>,
    pub decision_number: &'a str,
    pub severity: Severity,
    /// FNV-1a over the body from the field after `record_id` up to the
    /// attributes: what the department stated, not where the bus read it
    /// (record id, lineage) nor the free-form attributes (a map, whose order
    /// another encoder need not keep). A resend with the same digest says
    /// the same thing.
    pub digest: u64,
    /// Days since 1970-01-01.
    pub valid_from: i32,
    pub valid_until: Option<i32>,
    /// The department's own id for the record (`lineage.source_record_id`).
    pub source_record_id: &'a str,
    /// The corrections named in the body; names this build does not know
    /// (added by a newer writer) are skipped, as the schema's doc asks.
    pub corrections: Corrections,
}

impl RecordHead<'_> {
    /// What the engine plans from: `credit_measures::plan::Input`, the
    /// record being at `source` on the records topic.
    pub fn to_input(&self, source: credit_measures::plan::Source) -> credit_measures::plan::Input {
        credit_measures::plan::Input {
            record_id: self.record_id.to_string(),
            department: self.department.to_string(),
            list_type: self.list_type,
            is_list_entry: matches!(self.info_kind, InfoKind::DishonestyList | InfoKind::RedList),
            subject_type: self.subject_type,
            subject_key: self.subject_key.to_string(),
            subject_name: self.subject_name.to_string(),
            decision_number: self.decision_number.to_string(),
            valid_from: self.valid_from,
            valid_until: self.valid_until,
            severity: self.severity,
            source_key: self.source_record_id.to_string(),
            digest: self.digest,
            source,
        }
    }
}

/// Why a body does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("credit record body: {0}")]
pub struct DecodeError(pub &'static str);

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn long(&mut self) -> Result<i64, DecodeError> {
        let mut z: u64 = 0;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.b.split_first().ok_or(DecodeError("truncated"))?;
            self.b = rest;
            z |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok((z >> 1) as i64 ^ -((z & 1) as i64));
            }
        }
        Err(DecodeError("varint longer than 10 bytes"))
    }

    fn int(&mut self) -> Result<i32, DecodeError> {
        i32::try_from(self.long()?).map_err(|_| DecodeError("int out of range"))
    }

    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let n = usize::try_from(self.long()?).map_err(|_| DecodeError("negative length"))?;
        if n > self.b.len() {
            return Err(DecodeError("truncated"));
        }
        let (s, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(s)
    }

    fn string(&mut self) -> Result<&'a str, DecodeError> {
        simdutf8::basic::from_utf8(self.bytes()?).map_err(|_| DecodeError("string not UTF-8"))
    }

    fn symbol<T: Copy>(&mut self, all: &[T]) -> Result<T, DecodeError> {
        let i = self.long()?;
        usize::try_from(i)
            .ok()
            .and_then(|i| all.get(i).copied())
            .ok_or(DecodeError("enum index out of range"))
    }

    /// `["null", T]`: whether T follows.
    fn present(&mut self) -> Result<bool, DecodeError> {
        match self.long()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(DecodeError("union index out of range")),
        }
    }
}

/// 64-bit FNV-1a: stable across builds and machines (the digest is stored).
fn fnv1a(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for x in b {
        h ^= u64::from(*x);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Decodes a body written with `credit_record.avsc`.
pub fn record_head(body: &[u8]) -> Result<RecordHead<'_>, DecodeError> {
    let mut r = Reader { b: body };
    let record_id = r.string()?;
    let content_start = body.len() - r.b.len();
    let department = r.string()?;
    r.string()?; // domain
    let subject_type = r.symbol(SubjectType::ALL)?;
    let subject_key = r.string()?;
    let subject_name = r.string()?;
    if r.present()? {
        r.string()?; // responsible_person
    }
    let info_kind = r.symbol(InfoKind::ALL)?;
    let list_type = if r.present()? {
        Some(r.symbol(ListType::ALL)?)
    } else {
        None
    };
    if r.present()? {
        r.string()?; // grade
    }
    let decision_number = r.string()?;
    r.int()?; // decision_date
    if r.present()? {
        r.int()?; // publication_date
    }
    let valid_from = r.int()?;
    let valid_until = if r.present()? { Some(r.int()?) } else { None };
    let severity = r.symbol(Severity::ALL)?;
    if r.present()? {
        r.string()?; // legal_basis
    }
    r.string()?; // conduct
    if r.present()? {
        r.long()?; // amount_fen
    }
    let digest = fnv1a(&body[content_start..body.len() - r.b.len()]);
    // attributes: map blocks until a zero count; a negative count is followed
    // by the block's size in bytes.
    loop {
        let n = r.long()?;
        if n == 0 {
            break;
        }
        if n < 0 {
            r.long()?;
        }
        for _ in 0..n.unsigned_abs() {
            r.string()?;
            r.string()?;
        }
    }
    r.string()?; // lineage.source_topic
    r.int()?; // lineage.source_partition
    r.long()?; // lineage.source_offset
    let source_record_id = r.string()?;
    if r.present()? {
        r.long()?; // lineage.source_timestamp_ms
    }
    // corrections: array blocks of strings until a zero count.
    let mut corrections = Corrections::NONE;
    loop {
        let n = r.long()?;
        if n == 0 {
            break;
        }
        if n < 0 {
            r.long()?;
        }
        for _ in 0..n.unsigned_abs() {
            if let Some(c) = Correction::parse(r.string()?) {
                corrections.insert(c);
            }
        }
    }
    if !r.b.is_empty() {
        return Err(DecodeError("bytes after the record"));
    }
    Ok(RecordHead {
        record_id,
        department,
        subject_type,
        subject_key,
        subject_name,
        info_kind,
        list_type,
        decision_number,
        severity,
        digest,
        valid_from,
        valid_until,
        source_record_id,
        corrections,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::{credit_record_body, tests::arb_record};
    use proptest::prelude::*;

    proptest! {
        /// What the direct decoder reads is what was written, and what
        /// `apache_avro` reads with the schema itself.
        #[test]
        fn reads_what_the_encoder_wrote(r in arb_record()) {
            let mut body = Vec::new();
            credit_record_body(&mut body, &r);
            let h = record_head(&body).unwrap();
            let id = r.record_id();
            prop_assert_eq!(h.record_id, format!("{}:{}:{}", id.department, id.partition, id.offset));
            prop_assert_eq!(h.department, r.department);
            prop_assert_eq!(h.subject_type, r.subject.kind);
            prop_assert_eq!(h.subject_key, &*r.subject.key);
            prop_assert_eq!(h.subject_name, &*r.subject.name);
            prop_assert_eq!(h.info_kind, r.info_kind);
            prop_assert_eq!(h.list_type, r.list_type);
            prop_assert_eq!(h.decision_number, &*r.decision_number);
            prop_assert_eq!(h.valid_from, r.valid_from);
            prop_assert_eq!(h.valid_until, r.valid_until);
            prop_assert_eq!(h.source_record_id, &*r.lineage.source_record_id);
            prop_assert_eq!(h.severity, r.severity);
            // The same record read elsewhere (another offset, topic) has the
            // same digest; another decision number does not.
            let mut moved = r.clone();
            moved.lineage.source_offset += 1;
            moved.lineage.source_partition += 1;
            let mut b2 = Vec::new();
            credit_record_body(&mut b2, &moved);
            prop_assert_eq!(record_head(&b2).unwrap().digest, h.digest);
            let mut changed = r.clone();
            changed.decision_number = format!("{}x", r.decision_number).into();
            let mut b3 = Vec::new();
            credit_record_body(&mut b3, &changed);
            prop_assert_ne!(record_head(&b3).unwrap().digest, h.digest);
            prop_assert_eq!(h.corrections, r.corrections);
            #[allow(deprecated)]
            let v = apache_avro::from_avro_datum(crate::credit_record_schema(), &mut &body[..], None);
            let Ok(apache_avro::types::Value::Record(f)) = v else { panic!("{v:?}") };
            // Both decode paths agree on the corrections.
            let Some((_, apache_avro::types::Value::Array(cs))) = f.iter().find(|(n, _)| n == "corrections") else { panic!() };
            let theirs: Corrections = cs.iter().map(|v| match v {
                apache_avro::types::Value::String(s) => Correction::parse(s).unwrap(),
                other => panic!("{other:?}"),
            }).collect();
            prop_assert_eq!(theirs, h.corrections);
        }

        /// A cut-short body, or one with bytes after the record, is refused.
        #[test]
        fn refuses_truncated_or_padded_bodies(r in arb_record(), cut in any::<prop::sample::Index>(), extra in 1u8..=255) {
            let mut body = Vec::new();
            credit_record_body(&mut body, &r);
            let at = cut.index(body.len());
            prop_assert!(record_head(&body[..at]).is_err());
            body.push(extra);
            prop_assert_eq!(record_head(&body), Err(DecodeError("bytes after the record")));
        }
    }

    #[test]
    fn refuses_out_of_range_enums_and_unions() {
        // record_id, department, domain, then subject type 7 (of 3).
        let mut body = Vec::new();
        for s in ["courts:0:1", "courts", "judicial"] {
            body.push((s.len() * 2) as u8);
            body.extend_from_slice(s.as_bytes());
        }
        body.push(14);
        assert_eq!(
            record_head(&body),
            Err(DecodeError("enum index out of range"))
        );
        assert_eq!(
            record_head(&[0x80; 11]),
            Err(DecodeError("varint longer than 10 bytes"))
        );
        assert_eq!(record_head(&[1]), Err(DecodeError("negative length")));
    }
}
