//! What one input message becomes: a fact for the archive, or the reason it
//! cannot be read. Pure, given the writer schema of an Avro value (the ingest
//! fetches it from the registry by the id in the Confluent frame).
//!
//! Avro values are resolved from their writer's schema to ours
//! (`credit_record.avsc`, `notice.avsc`, `feedback.avsc` in `schemas/`), so a
//! department or service on an older compatible version is still read.

use apache_avro::Schema;
use apache_avro::types::Value;
use credit_core::notice::NoticeKind;
use credit_schemas::commands::{CatalogueRecord, Command};

use crate::history::{EndFact, FeedbackFact, Lineage, NoticeFact, Pos, RecordFact};

/// A catalogue version as the catalogue topic holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CatalogueFact {
    pub version: i32,
    pub learned_ms: i64,
    pub effective: String,
    pub description: String,
    pub body: String,
}

/// A command as stored (ends and activations).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandFact {
    End(EndFact),
    Activate {
        pos: Pos,
        learned_ms: i64,
        version: i32,
    },
}

/// What a message comes to.
#[derive(Debug, Clone, PartialEq)]
pub enum Fact {
    Record(Box<RecordFact>, serde_json::Value),
    Notice(Box<NoticeFact>),
    Feedback(FeedbackFact),
    Command(CommandFact),
    Catalogue(CatalogueFact),
    /// Nothing to store (a catalogue-topic key other than a version).
    Nothing,
}

/// Which input a topic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    Records,
    Notices,
    Feedback,
    Commands,
    Catalogue,
}

impl Input {
    /// The schema values of this input are resolved to, if Avro.
    pub fn reader_schema(self) -> Option<&'static Schema> {
        match self {
            Input::Records => Some(credit_schemas::credit_record_schema()),
            Input::Notices => Some(credit_schemas::notice_schema()),
            Input::Feedback => Some(credit_schemas::feedback_schema()),
            Input::Commands | Input::Catalogue => None,
        }
    }
}

fn field<'v>(f: &'v [(String, Value)], name: &str) -> Result<&'v Value, String> {
    f.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v)
        .ok_or_else(|| format!("{name}: missing"))
}

fn unwrap_union(v: &Value) -> &Value {
    match v {
        Value::Union(_, inner) => inner,
        v => v,
    }
}

fn string(f: &[(String, Value)], name: &str) -> Result<String, String> {
    match unwrap_union(field(f, name)?) {
        Value::String(s) => Ok(s.clone()),
        Value::Enum(_, s) => Ok(s.clone()),
        _ => Err(format!("{name}: not a string")),
    }
}

fn opt_string(f: &[(String, Value)], name: &str) -> Result<Option<String>, String> {
    match unwrap_union(field(f, name)?) {
        Value::Null => Ok(None),
        Value::String(s) | Value::Enum(_, s) => Ok(Some(s.clone())),
        _ => Err(format!("{name}: not a string")),
    }
}

fn int(f: &[(String, Value)], name: &str) -> Result<i32, String> {
    match unwrap_union(field(f, name)?) {
        Value::Int(i) | Value::Date(i) => Ok(*i),
        _ => Err(format!("{name}: not an int")),
    }
}

fn opt_int(f: &[(String, Value)], name: &str) -> Result<Option<i32>, String> {
    match unwrap_union(field(f, name)?) {
        Value::Null => Ok(None),
        Value::Int(i) | Value::Date(i) => Ok(Some(*i)),
        _ => Err(format!("{name}: not an int")),
    }
}

fn long(f: &[(String, Value)], name: &str) -> Result<i64, String> {
    match unwrap_union(field(f, name)?) {
        Value::Long(i) | Value::TimestampMillis(i) => Ok(*i),
        Value::Int(i) => Ok(i64::from(*i)),
        _ => Err(format!("{name}: not a long")),
    }
}

fn opt_long(f: &[(String, Value)], name: &str) -> Result<Option<i64>, String> {
    match unwrap_union(field(f, name)?) {
        Value::Null => Ok(None),
        Value::Long(i) | Value::TimestampMillis(i) => Ok(Some(*i)),
        _ => Err(format!("{name}: not a long")),
    }
}

fn record_fields(v: Value) -> Result<Vec<(String, Value)>, String> {
    match v {
        Value::Record(f) => Ok(f),
        _ => Err("not a record".into()),
    }
}

/// Resolves an Avro body written with `writer` to `reader`; trailing bytes
/// are an error (the writer schema is not what the frame claims).
pub fn resolve(writer: &Schema, reader: &Schema, body: &[u8]) -> Result<Value, String> {
    let mut slice = body;
    #[allow(deprecated)]
    let v = apache_avro::from_avro_datum(writer, &mut slice, Some(reader))
        .map_err(|e| e.to_string())?;
    if !slice.is_empty() {
        return Err(format!("{} bytes after the value", slice.len()));
    }
    Ok(v)
}

/// A normalised record from its resolved value; `attributes` as a JSON object.
pub fn record(v: Value, pos: Pos, learned_ms: i64) -> Result<Fact, String> {
    let f = record_fields(v)?;
    let subject = record_fields(field(&f, "subject")?.clone())?;
    let lineage = record_fields(field(&f, "lineage")?.clone())?;
    let attributes = match field(&f, "attributes")? {
        Value::Map(m) => {
            let mut o = serde_json::Map::new();
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            for k in keys {
                if let Value::String(s) = &m[k] {
                    o.insert(k.clone(), serde_json::Value::String(s.clone()));
                }
            }
            serde_json::Value::Object(o)
        }
        _ => return Err("attributes: not a map".into()),
    };
    let r = RecordFact {
        pos,
        learned_ms,
        record_id: string(&f, "record_id")?,
        department: string(&f, "department")?,
        domain: string(&f, "domain")?,
        subject_type: string(&subject, "type")?,
        subject_key: string(&subject, "key")?,
        subject_name: string(&subject, "name")?,
        responsible_person: opt_string(&f, "responsible_person")?,
        info_kind: string(&f, "info_kind")?,
        list_type: opt_string(&f, "list_type")?,
        grade: opt_string(&f, "grade")?,
        decision_number: string(&f, "decision_number")?,
        decision_date: int(&f, "decision_date")?,
        publication_date: opt_int(&f, "publication_date")?,
        valid_from: int(&f, "valid_from")?,
        valid_until: opt_int(&f, "valid_until")?,
        severity: string(&f, "severity")?,
        legal_basis: opt_string(&f, "legal_basis")?,
        conduct: string(&f, "conduct")?,
        amount_fen: opt_long(&f, "amount_fen")?,
        source: Lineage {
            topic: string(&lineage, "source_topic")?,
            partition: int(&lineage, "source_partition")?,
            offset: long(&lineage, "source_offset")?,
            record_key: string(&lineage, "source_record_id")?,
        },
    };
    Ok(Fact::Record(Box::new(r), attributes))
}

/// A notice from its resolved value.
pub fn notice(v: Value, pos: Pos, learned_ms: i64) -> Result<Fact, String> {
    let f = record_fields(v)?;
    let kind_symbol = string(&f, "kind")?;
    let kind = NoticeKind::ALL
        .into_iter()
        .find(|k| k.symbol() == kind_symbol)
        .ok_or_else(|| format!("kind: unknown {kind_symbol:?}"))?;
    Ok(Fact::Notice(Box::new(NoticeFact {
        pos,
        learned_ms,
        notice_id: string(&f, "notice_id")?,
        kind,
        department: string(&f, "department")?,
        measure_id: string(&f, "measure_id")?,
        measure_name: string(&f, "measure_name")?,
        legal_basis: string(&f, "legal_basis")?,
        catalogue_version: int(&f, "catalogue_version")?,
        generation: int(&f, "generation")?,
        record_id: string(&f, "record_id")?,
        list_type: string(&f, "list_type")?,
        subject_type: string(&f, "subject_type")?,
        subject_key: string(&f, "subject_key")?,
        subject_name: string(&f, "subject_name")?,
        identifying_department: string(&f, "identifying_department")?,
        decision_number: string(&f, "decision_number")?,
        reason: opt_string(&f, "reason")?,
        source_topic: string(&f, "source_topic")?,
        source_partition: int(&f, "source_partition")?,
        source_offset: long(&f, "source_offset")?,
    })))
}

/// Feedback, decoded by the contract's own reader (`credit_schemas::feedback`).
pub fn feedback(writer: &Schema, body: &[u8], pos: Pos, learned_ms: i64) -> Result<Fact, String> {
    let fb = credit_schemas::feedback::decode_body(writer, body)?;
    Ok(Fact::Feedback(FeedbackFact {
        pos,
        learned_ms,
        notice_id: fb.notice_id,
        department: fb.department,
        outcome: fb.outcome.as_str().to_string(),
        reason: fb.reason,
        responded_at_ms: fb.responded_at_ms,
    }))
}

/// An engine command (JSON, `credit_schemas::commands`).
pub fn command(value: &[u8], pos: Pos, learned_ms: i64) -> Result<Fact, String> {
    match Command::parse(value).map_err(|e| e.to_string())? {
        Command::End(e) => Ok(Fact::Command(CommandFact::End(EndFact {
            pos,
            learned_ms,
            record_id: e.record_id,
            reason: e.reason.as_str().to_string(),
        }))),
        Command::Activate(v) => Ok(Fact::Command(CommandFact::Activate {
            pos,
            learned_ms,
            version: i32::try_from(v).map_err(|_| format!("version {v} out of range"))?,
        })),
    }
}

/// A catalogue-topic record: a valid version is stored, other keys skipped.
pub fn catalogue(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    learned_ms: i64,
) -> Result<Fact, String> {
    match credit_schemas::commands::catalogue_record(key, value) {
        CatalogueRecord::Version(c) => Ok(Fact::Catalogue(CatalogueFact {
            version: i32::try_from(c.version).map_err(|_| "version out of range".to_string())?,
            learned_ms,
            effective: c.effective.clone(),
            description: c.description.clone(),
            body: value
                .and_then(|v| std::str::from_utf8(v).ok())
                .unwrap_or_default()
                .to_string(),
        })),
        CatalogueRecord::Invalid { key, error } => Err(format!("catalogue {key}: {error}")),
        CatalogueRecord::Other => Ok(Fact::Nothing),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pos() -> Pos {
        Pos {
            topic: "t".into(),
            partition: 0,
            offset: 9,
        }
    }

    /// Every sample record of every department, as the normaliser writes it,
    /// reads back with the values it was written with.
    #[test]
    fn sample_records_read_back() {
        let schema = credit_schemas::credit_record_schema();
        let mut g = credit_datagen_like::records();
        let mut n = 0;
        for (r, body) in g.drain(..) {
            let v = resolve(schema, schema, &body).unwrap();
            let Fact::Record(f, attrs) = record(v, pos(), 5).unwrap() else {
                panic!()
            };
            assert_eq!(f.record_id, r.0);
            assert_eq!(f.subject_key, r.1);
            assert_eq!(f.valid_from, r.2);
            assert!(attrs.is_object());
            n += 1;
        }
        assert!(n > 0);
    }

    /// Records as the normaliser writes them, with (record id, key, valid_from).
    mod credit_datagen_like {
        pub type Expected = (String, String, i32);
        pub fn records() -> Vec<(Expected, Vec<u8>)> {
            let mut out = Vec::new();
            let mut r = credit_schemas_sample();
            for i in 0..3 {
                r.lineage.source_offset = i;
                let mut body = Vec::new();
                credit_schemas::encode::credit_record_body(&mut body, &r);
                out.push((
                    (
                        r.record_id().to_string(),
                        r.subject.key.to_string(),
                        r.valid_from,
                    ),
                    body,
                ));
            }
            out
        }

        fn credit_schemas_sample() -> credit_core::record::CreditRecord<'static> {
            use credit_core::record::*;
            use std::borrow::Cow;
            CreditRecord {
                department: "courts",
                domain: "0",
                subject: Subject {
                    kind: SubjectType::LegalPerson,
                    key: Cow::Borrowed("91440101MA5CYUF21X"),
                    name: Cow::Borrowed("广州某公司"),
                },
                responsible_person: Some(Cow::Borrowed("张三")),
                info_kind: InfoKind::DishonestyList,
                list_type: Some(ListType::JudgementDefaulter),
                grade: None,
                decision_number: Cow::Borrowed("(2020)粤01执123号"),
                decision_date: 18_400,
                publication_date: None,
                valid_from: 18_401,
                valid_until: None,
                severity: Severity::Serious,
                legal_basis: None,
                conduct: Cow::Borrowed("有履行能力而拒不履行"),
                amount_fen: Some(12_345),
                attributes: vec![("court", Cow::Borrowed("广州中院"))],
                lineage: Lineage {
                    source_topic: Cow::Borrowed("credit.courts.inbound"),
                    source_partition: 2,
                    source_offset: 0,
                    source_record_id: Cow::Borrowed("case-1"),
                    source_timestamp_ms: None,
                },
                corrections: Default::default(),
            }
        }
    }

    #[test]
    fn notices_and_commands_decode() {
        let n = credit_core::notice::Notice {
            notice_id: "courts:0:1/m/finance/punishment/1",
            kind: NoticeKind::Punishment,
            department: "finance",
            measure_id: "m",
            measure_name: "限制",
            legal_basis: "b",
            catalogue_version: 1,
            generation: 1,
            record_id: "courts:0:1",
            list_type: "JUDGEMENT_DEFAULTER",
            subject_type: "LEGAL_PERSON",
            subject_key: "91440101MA5CYUF21X",
            subject_name: "x",
            identifying_department: "courts",
            decision_number: "d",
            reason: None,
            source_topic: "credit.records",
            source_partition: 0,
            source_offset: 1,
        };
        let mut body = Vec::new();
        credit_schemas::encode::notice_body(&mut body, &n);
        let s = credit_schemas::notice_schema();
        let Fact::Notice(f) = notice(resolve(s, s, &body).unwrap(), pos(), 3).unwrap() else {
            panic!()
        };
        assert_eq!(
            (f.kind, &f.notice_id[..], f.learned_ms),
            (NoticeKind::Punishment, n.notice_id, 3)
        );
        assert!(resolve(s, s, &body[..body.len() - 1]).is_err());
        let Fact::Command(CommandFact::End(e)) = command(
            br#"{"record_id":"courts:0:1","reason":"repaired"}"#,
            pos(),
            4,
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(
            (&e.record_id[..], &e.reason[..]),
            ("courts:0:1", "repaired")
        );
        assert!(
            command(b"{}", pos(), 4)
                .unwrap_err()
                .contains("not a command")
        );
    }
}
