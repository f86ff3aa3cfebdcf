//! The normalised credit record: what every adapter produces and what
//! `schemas/avro/credit_record.avsc` describes on the wire.
//!
//! Strings borrow from the department's bytes where they can (`Cow`), so the hot
//! path allocates little.

use std::borrow::Cow;

use crate::correction::Corrections;
use crate::guardrail;
use crate::reject::{ReasonCode, Rejection};

macro_rules! avro_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident => $symbol:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Variants in the order of the Avro enum's symbols.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The Avro symbol.
            pub const fn symbol(self) -> &'static str {
                match self { $($name::$variant => $symbol),+ }
            }

            /// The symbol's index, which is what Avro binary encodes.
            pub const fn index(self) -> i32 {
                self as i32
            }
        }
    };
}

avro_enum!(
    /// Whose record it is.
    SubjectType {
        LegalPerson => "LEGAL_PERSON",
        NaturalPerson => "NATURAL_PERSON",
        IndividualBusiness => "INDIVIDUAL_BUSINESS",
    }
);

avro_enum!(
    /// The kind of credit information (DOMAIN.md, "Kinds of information").
    InfoKind {
        AdministrativeLicensing => "ADMINISTRATIVE_LICENSING",
        AdministrativePenalty => "ADMINISTRATIVE_PENALTY",
        DishonestyList => "DISHONESTY_LIST",
        RedList => "RED_LIST",
        CreditGrade => "CREDIT_GRADE",
        WatchList => "WATCH_LIST",
        Commitment => "COMMITMENT",
    }
);

avro_enum!(
    /// Dishonesty lists and red lists the bus knows.
    ListType {
        JudgementDefaulter => "JUDGEMENT_DEFAULTER",
        CustomsDishonest => "CUSTOMS_DISHONEST",
        MajorTaxViolation => "MAJOR_TAX_VIOLATION",
        TaxGradeD => "TAX_GRADE_D",
        SeriousViolation => "SERIOUS_VIOLATION",
        AbnormalOperation => "ABNORMAL_OPERATION",
        WageArrears => "WAGE_ARREARS",
        TaxGradeA => "TAX_GRADE_A",
        CustomsAeo => "CUSTOMS_AEO",
        EpidemicKeyEnterprise => "EPIDEMIC_KEY_ENTERPRISE",
    }
);

avro_enum!(
    /// Severity as national practice grades administrative-penalty information.
    Severity {
        Minor => "MINOR",
        Ordinary => "ORDINARY",
        Serious => "SERIOUS",
    }
);

/// The subject a record is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject<'a> {
    pub kind: SubjectType,
    /// USCC for organisations and individual businesses, resident ID for natural persons.
    pub key: Cow<'a, str>,
    pub name: Cow<'a, str>,
}

/// Where a record came from, so anyone can go back to the department's original bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lineage<'a> {
    pub source_topic: Cow<'a, str>,
    pub source_partition: i32,
    pub source_offset: i64,
    /// The department's own id for the record (case code, decision number, ...).
    pub source_record_id: Cow<'a, str>,
    /// The Kafka timestamp of the inbound record, in ms since the epoch.
    pub source_timestamp_ms: Option<i64>,
}

/// One normalised credit record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditRecord<'a> {
    /// Identifying department id (catalogue).
    pub department: &'static str,
    /// Supervision domain id (catalogue).
    pub domain: &'static str,
    pub subject: Subject<'a>,
    /// Legal representative / responsible person of an organisation, by name.
    pub responsible_person: Option<Cow<'a, str>>,
    pub info_kind: InfoKind,
    pub list_type: Option<ListType>,
    /// Credit grade where the record states one (tax A/B/M/C/D, customs grade).
    pub grade: Option<Cow<'a, str>>,
    pub decision_number: Cow<'a, str>,
    /// Days since 1970-01-01.
    pub decision_date: i32,
    pub publication_date: Option<i32>,
    pub valid_from: i32,
    pub valid_until: Option<i32>,
    pub severity: Severity,
    pub legal_basis: Option<Cow<'a, str>>,
    /// The conduct or reason as the department states it.
    pub conduct: Cow<'a, str>,
    /// Amount in fen (0.01 CNY): fine, tax evaded, sum owed.
    pub amount_fen: Option<i64>,
    /// Source-specific facts that have no shared field, e.g. `court`, `performance`.
    pub attributes: Vec<(&'static str, Cow<'a, str>)>,
    pub lineage: Lineage<'a>,
    /// What the normaliser changed in the department's values to accept them
    /// (full-width codes, a lower-case `x`, a 15-digit ID upgraded, an amount's
    /// unit converted, ...). Empty for most records.
    pub corrections: Corrections,
}

/// The id of a normalised record, `<department>:<partition>:<offset>` of the
/// inbound record it came from, so a record re-read after a crash carries the
/// same id (and Kafka key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordId<'a> {
    pub department: &'a str,
    pub partition: i32,
    pub offset: i64,
}

impl std::fmt::Display for RecordId<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.department, self.partition, self.offset)
    }
}

impl RecordId<'_> {
    /// Writes the id into `out` (cleared first), allocation-free once `out` has grown.
    pub fn write_to(&self, out: &mut String) {
        out.clear();
        out.push_str(self.department);
        out.push(':');
        out.push_str(itoa::Buffer::new().format(self.partition));
        out.push(':');
        out.push_str(itoa::Buffer::new().format(self.offset));
    }
}

impl CreditRecord<'_> {
    /// Derived from the department and lineage, never stored twice.
    pub fn record_id(&self) -> RecordId<'_> {
        RecordId {
            department: self.department,
            partition: self.lineage.source_partition,
            offset: self.lineage.source_offset,
        }
    }
}

/// Everything an adapter needs to know about where and when it runs.
#[derive(Debug, Clone)]
pub struct Context<'a> {
    pub department: &'static str,
    pub source_topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub timestamp_ms: Option<i64>,
    /// Today, in days since 1970-01-01 (birth dates after it are invalid).
    pub today: i32,
    /// The inbound record's key: by the bus's convention the department's
    /// own record id (UTF-8, non-empty), when it sent one.
    pub key: Option<&'a str>,
}

impl<'a> Context<'a> {
    /// Where the record came from. Its `source_record_id` is the department's
    /// own record id: the inbound key when there is one, else the id the
    /// content names (`named`: a case code, a decision number). It is what a
    /// resend of the same record shares (the engine deduplicates by it), so a
    /// key is preferred: one court case can list several defaulters.
    pub fn lineage(&self, named: Cow<'a, str>) -> Lineage<'a> {
        Lineage {
            source_topic: Cow::Borrowed(self.source_topic),
            source_partition: self.partition,
            source_offset: self.offset,
            source_record_id: match self.key {
                Some(k) if !k.trim().is_empty() => Cow::Borrowed(k),
                _ => named,
            },
            source_timestamp_ms: self.timestamp_ms,
        }
    }

    pub fn record_id(&self) -> RecordId<'static> {
        RecordId {
            department: self.department,
            partition: self.partition,
            offset: self.offset,
        }
    }
}

/// The guardrail's decision on a natural person's record (六(十七)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardrailDecision {
    /// No minor behaviour is named.
    Passed,
    /// A minor behaviour is named, but the record states a legal process (the
    /// subject did not perform a court judgement or ruling): it is there under
    /// the law that governs that process, not for the behaviour.
    Exempt { concept: &'static str },
    /// A minor behaviour is the stated conduct: the record must not be stored.
    Blocked {
        concept: &'static str,
        /// The field that names it.
        field: &'static str,
    },
}

impl GuardrailDecision {
    /// The `decision` metric label.
    pub const fn label(self) -> &'static str {
        match self {
            GuardrailDecision::Passed => "passed",
            GuardrailDecision::Exempt { .. } => "exempt",
            GuardrailDecision::Blocked { .. } => "blocked",
        }
    }

    /// The `concept` metric label: the concept id, or `none`.
    pub const fn concept(self) -> &'static str {
        match self {
            GuardrailDecision::Passed => "none",
            GuardrailDecision::Exempt { concept } | GuardrailDecision::Blocked { concept, .. } => {
                concept
            }
        }
    }

    /// The rejection a blocked record gets. The detail names the concept only,
    /// never the text (it may hold names).
    pub fn check(self) -> Result<(), Rejection> {
        match self {
            GuardrailDecision::Blocked { concept, field } => Err(Rejection::new(
                ReasonCode::GuardrailMinorBehaviour,
                Some(field),
                format!(
                    "{concept} ({}) must not enter a natural person's credit record without legislation (六(十七))",
                    guardrail::rules().concept(concept).map_or("", |c| c.name())
                ),
            )),
            _ => Ok(()),
        }
    }
}

/// The guardrail's decision on a record whose conduct is stated by `texts`
/// (field name, text); `None` when it does not apply. It applies to natural
/// persons only: an organisation's or individual business's record (keyed by
/// USCC) is not a personal credit record.
pub fn guardrail(kind: SubjectType, texts: &[(&'static str, &str)]) -> Option<GuardrailDecision> {
    if kind != SubjectType::NaturalPerson {
        return None;
    }
    Some(match guardrail::find(texts.iter().map(|(_, t)| *t)) {
        None => GuardrailDecision::Passed,
        Some(f) if f.exempt => GuardrailDecision::Exempt {
            concept: f.concept.id(),
        },
        Some(f) => GuardrailDecision::Blocked {
            concept: f.concept.id(),
            field: texts[f.text].0,
        },
    })
}

/// Rejects a validity period that ends before it starts.
pub fn check_period(from: i32, until: Option<i32>, field: &'static str) -> Result<(), Rejection> {
    match until {
        Some(u) if u < from => Err(Rejection::new(
            ReasonCode::InvalidDate,
            Some(field),
            "validity ends before it starts",
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_id_is_deterministic() {
        let id = RecordId {
            department: "courts",
            partition: 3,
            offset: 42,
        };
        let mut s = String::from("stale");
        id.write_to(&mut s);
        assert_eq!(s, "courts:3:42");
        assert_eq!(id.to_string(), s);
    }

    #[test]
    fn guardrail_applies_only_to_natural_persons() {
        let texts = [("CF_AJMC", "销售过期食品案"), ("CF_WFXW", "行人闯红灯")];
        let d = guardrail(SubjectType::NaturalPerson, &texts).unwrap();
        assert_eq!(
            d,
            GuardrailDecision::Blocked {
                concept: "running-red-light",
                field: "CF_WFXW"
            }
        );
        let e = d.check().unwrap_err();
        assert_eq!(
            (e.code, e.field),
            (ReasonCode::GuardrailMinorBehaviour, Some("CF_WFXW"))
        );
        assert!(e.detail.contains("running-red-light (闯红灯)"), "{e}");
        assert!(!e.detail.contains("行人"), "{e}");
        for kind in [SubjectType::LegalPerson, SubjectType::IndividualBusiness] {
            assert_eq!(guardrail(kind, &texts), None);
        }
        let passed = guardrail(SubjectType::NaturalPerson, &[("CF_WFXW", "无照经营")]).unwrap();
        assert_eq!(
            (passed, passed.label(), passed.concept()),
            (GuardrailDecision::Passed, "passed", "none")
        );
        assert!(passed.check().is_ok());
        let exempt = guardrail(
            SubjectType::NaturalPerson,
            &[("duty", "拒不履行支付物业服务费的判决义务")],
        )
        .unwrap();
        assert_eq!(
            (exempt.label(), exempt.concept()),
            ("exempt", "unpaid-property-fees")
        );
        assert!(exempt.check().is_ok());
    }

    #[test]
    fn enum_indexes_follow_declaration_order() {
        for (i, v) in ListType::ALL.iter().enumerate() {
            assert_eq!(v.index() as usize, i);
        }
    }
}
