//! The joint reward and punishment measures catalogue and its rules, pure.
//!
//! * [`Catalogue`]: one version of the catalogue, parsed from TOML (the data in
//!   `catalogue/*.toml`) and validated with every problem reported at once.
//! * [`plan`]: an engine partition's entries and the pure planning of notices
//!   (records, commands, catalogue activation, expiry).
//! * [`rules`]: which notices a list entry gets under a catalogue, what
//!   activating a new version adds and lifts, and deterministic notice ids.

pub mod plan;
pub mod rules;

use std::collections::HashSet;
use std::sync::Arc;

use credit_core::catalogue;
use credit_core::record::{ListType, Severity, SubjectType};
use serde::Deserialize;

/// The catalogue shipped with the bus.
pub const V1: &str = include_str!("../catalogue/v1.toml");

/// What a measure does to its subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// Joint punishment (联合惩戒), for dishonesty lists.
    Punishment,
    /// Joint reward (联合激励), for red lists.
    Reward,
}

/// One measure and who implements it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measure {
    /// Stable id; part of every notice id, so never reused for another measure.
    /// Shared: every duty and planned notice of the engine holds it.
    pub id: Arc<str>,
    pub kind: Kind,
    pub name_zh: String,
    pub name_en: String,
    pub legal_basis: String,
    pub lists: Vec<ListType>,
    pub subject_types: Vec<SubjectType>,
    /// Implementing departments, catalogue ids.
    pub departments: Vec<&'static str>,
    /// Upper bound on how long the measure applies after the entry starts.
    pub validity_months: Option<u32>,
}

impl Measure {
    /// Whether the measure binds an entry of this list and subject type.
    pub fn applies_to(&self, list: ListType, subject: SubjectType) -> bool {
        self.lists.contains(&list) && self.subject_types.contains(&subject)
    }
}

/// How long a list entry of some lists and one severity stays published
/// (DOMAIN.md, credit repair; national practice for administrative-penalty
/// information): credit repair is refused before `min_months` have passed
/// since the entry started, and the entry ends after `max_months` whatever
/// end its department stated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    pub lists: Vec<ListType>,
    pub severity: Severity,
    pub min_months: u32,
    pub max_months: u32,
}

/// One version of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalogue {
    pub version: u32,
    pub effective: String,
    pub description: String,
    pub measures: Vec<Measure>,
    pub publication: Vec<Publication>,
}

/// Every problem in a catalogue version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{} problem(s) in the measures catalogue:\n  - {}", .0.len(), .0.join("\n  - "))]
pub struct CatalogueError(pub Vec<String>);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCatalogue {
    version: u32,
    effective: String,
    #[serde(default)]
    description: String,
    #[serde(default, rename = "measure")]
    measures: Vec<RawMeasure>,
    #[serde(default)]
    publication: Vec<RawPublication>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPublication {
    lists: Vec<String>,
    severity: String,
    min_months: u32,
    max_months: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMeasure {
    id: String,
    kind: Kind,
    name_zh: String,
    name_en: String,
    legal_basis: String,
    lists: Vec<String>,
    subject_types: Vec<String>,
    departments: Vec<String>,
    validity_months: Option<u32>,
}

/// Dishonesty lists: their measures punish.
pub const DISHONESTY_LISTS: [ListType; 7] = [
    ListType::JudgementDefaulter,
    ListType::CustomsDishonest,
    ListType::MajorTaxViolation,
    ListType::TaxGradeD,
    ListType::SeriousViolation,
    ListType::AbnormalOperation,
    ListType::WageArrears,
];

/// Red lists: their measures reward.
pub const RED_LISTS: [ListType; 3] = [
    ListType::TaxGradeA,
    ListType::CustomsAeo,
    ListType::EpidemicKeyEnterprise,
];

/// The fewest measures each list must carry.
pub const MIN_MEASURES_PER_LIST: usize = 3;

pub fn kind_of(list: ListType) -> Kind {
    if RED_LISTS.contains(&list) {
        Kind::Reward
    } else {
        Kind::Punishment
    }
}

fn measure_ids_are_safe(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl Catalogue {
    /// Parses and validates one catalogue version; every problem is reported.
    pub fn parse(toml_text: &str) -> Result<Catalogue, CatalogueError> {
        let raw: RawCatalogue =
            toml::from_str(toml_text).map_err(|e| CatalogueError(vec![e.to_string()]))?;
        let mut problems = Vec::new();
        let mut measures = Vec::with_capacity(raw.measures.len());
        let mut ids = HashSet::new();
        if raw.version == 0 {
            problems.push("version must be at least 1".to_string());
        }
        if credit_core::date::parse(&raw.effective).is_none() {
            problems.push(format!("effective: {:?} is not a date", raw.effective));
        }
        for m in raw.measures {
            let at = format!("measure {:?}", m.id);
            if !measure_ids_are_safe(&m.id) {
                problems.push(format!("{at}: id must be lower-case ASCII, digits and '-'"));
            }
            if !ids.insert(m.id.clone()) {
                problems.push(format!("{at}: duplicate id"));
            }
            for (field, v) in [
                ("name_zh", &m.name_zh),
                ("name_en", &m.name_en),
                ("legal_basis", &m.legal_basis),
            ] {
                if v.trim().is_empty() {
                    problems.push(format!("{at}: {field} is empty"));
                }
            }
            let mut lists = Vec::new();
            for l in &m.lists {
                match ListType::ALL.iter().find(|t| t.symbol() == l) {
                    None => problems.push(format!("{at}: unknown list type {l:?}")),
                    Some(t) if lists.contains(t) => {
                        problems.push(format!("{at}: list {l} named twice"))
                    }
                    Some(t) => {
                        if kind_of(*t) != m.kind {
                            problems.push(format!(
                                "{at}: a {:?} measure cannot apply to list {l}",
                                m.kind
                            ));
                        }
                        lists.push(*t);
                    }
                }
            }
            let mut subject_types = Vec::new();
            for s in &m.subject_types {
                match SubjectType::ALL.iter().find(|t| t.symbol() == s) {
                    None => problems.push(format!("{at}: unknown subject type {s:?}")),
                    Some(t) if subject_types.contains(t) => {
                        problems.push(format!("{at}: subject type {s} named twice"))
                    }
                    Some(t) => subject_types.push(*t),
                }
            }
            let mut departments = Vec::new();
            for d in &m.departments {
                match catalogue::department(d) {
                    None => problems.push(format!("{at}: unknown department {d:?}")),
                    Some(dep) if departments.contains(&dep.id) => {
                        problems.push(format!("{at}: department {d} named twice"))
                    }
                    Some(dep) => departments.push(dep.id),
                }
            }
            for (field, empty) in [
                ("lists", lists.is_empty()),
                ("subject_types", subject_types.is_empty()),
                ("departments", departments.is_empty()),
            ] {
                if empty {
                    problems.push(format!("{at}: {field} is empty"));
                }
            }
            if m.validity_months == Some(0) {
                problems.push(format!(
                    "{at}: validity_months must be at least 1 (omit it for 'while listed')"
                ));
            }
            measures.push(Measure {
                id: m.id.into(),
                kind: m.kind,
                name_zh: m.name_zh,
                name_en: m.name_en,
                legal_basis: m.legal_basis,
                lists,
                subject_types,
                departments,
                validity_months: m.validity_months,
            });
        }
        let mut publication: Vec<Publication> = Vec::new();
        for (i, p) in raw.publication.into_iter().enumerate() {
            let at = format!("publication {}", i + 1);
            let severity = Severity::ALL
                .iter()
                .copied()
                .find(|s| s.symbol() == p.severity);
            if severity.is_none() {
                problems.push(format!("{at}: unknown severity {:?}", p.severity));
            }
            let mut lists = Vec::new();
            for l in &p.lists {
                match ListType::ALL.iter().find(|t| t.symbol() == l) {
                    None => problems.push(format!("{at}: unknown list type {l:?}")),
                    Some(t) => {
                        let taken = publication
                            .iter()
                            .any(|q| Some(q.severity) == severity && q.lists.contains(t));
                        if taken || lists.contains(t) {
                            problems.push(format!(
                                "{at}: list {l} with severity {} has two publication periods",
                                p.severity
                            ));
                        }
                        lists.push(*t);
                    }
                }
            }
            if lists.is_empty() {
                problems.push(format!("{at}: lists is empty"));
            }
            if p.max_months == 0 || p.min_months > p.max_months {
                problems.push(format!(
                    "{at}: needs 0 <= min_months <= max_months and max_months >= 1 (got {} and {})",
                    p.min_months, p.max_months
                ));
            }
            if let Some(severity) = severity {
                publication.push(Publication {
                    lists,
                    severity,
                    min_months: p.min_months,
                    max_months: p.max_months,
                });
            }
        }
        for list in DISHONESTY_LISTS.iter().chain(&RED_LISTS) {
            let n = measures.iter().filter(|m| m.lists.contains(list)).count();
            if n < MIN_MEASURES_PER_LIST {
                problems.push(format!(
                    "list {} has {n} measure(s); at least {MIN_MEASURES_PER_LIST} are required",
                    list.symbol()
                ));
            }
        }
        if problems.is_empty() {
            Ok(Catalogue {
                version: raw.version,
                effective: raw.effective,
                description: raw.description,
                measures,
                publication,
            })
        } else {
            Err(CatalogueError(problems))
        }
    }

    pub fn measure(&self, id: &str) -> Option<&Measure> {
        self.measures.iter().find(|m| &*m.id == id)
    }

    /// The publication period of entries of `list` with `severity`, if one is set.
    pub fn publication(&self, list: ListType, severity: Severity) -> Option<&Publication> {
        self.publication
            .iter()
            .find(|p| p.severity == severity && p.lists.contains(&list))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_catalogue_is_valid_and_covers_every_list() {
        let c = Catalogue::parse(V1).unwrap();
        assert_eq!(c.version, 1);
        for list in DISHONESTY_LISTS.iter().chain(&RED_LISTS) {
            assert!(
                c.measures.iter().filter(|m| m.lists.contains(list)).count() >= 3,
                "{list:?}"
            );
        }
        assert!(
            c.measures
                .iter()
                .any(|m| m.subject_types == [SubjectType::NaturalPerson])
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let bad = V1
            .replace(
                "departments = [\"finance\", \"trading-centre\"]",
                "departments = [\"finanse\", \"trading-centre\", \"trading-centre\"]",
            )
            .replace("id = \"no-honours\"", "id = \"restrict-subsidies\"")
            .replace(
                "lists = [\"CUSTOMS_AEO\"]",
                "lists = [\"CUSTOMS_AEO\", \"TAX_GRADE_D\"]",
            )
            .replace(
                "subject_types = [\"NATURAL_PERSON\"]",
                "subject_types = [\"ALIEN\"]",
            );
        let e = Catalogue::parse(&bad).unwrap_err();
        let all = e.to_string();
        for want in [
            "unknown department \"finanse\"",
            "trading-centre named twice",
            "duplicate id",
            "cannot apply to list TAX_GRADE_D",
            "unknown subject type \"ALIEN\"",
        ] {
            assert!(all.contains(want), "missing {want:?} in\n{all}");
        }
        // Plus "subject_types is empty", a consequence of the unknown one.
        assert_eq!(e.0.len(), 6, "{all}");
    }

    #[test]
    fn publication_periods_are_validated() {
        let c = Catalogue::parse(V1).unwrap();
        let p = c
            .publication(ListType::SeriousViolation, Severity::Serious)
            .expect("serious violations have a period");
        assert_eq!((p.min_months, p.max_months), (12, 36));
        assert!(
            c.publication(ListType::JudgementDefaulter, Severity::Serious)
                .is_none(),
            "judicial entries end when the judgement is performed"
        );
        let bad = format!(
            "{V1}\n[[publication]]\nlists = [\"SERIOUS_VIOLATION\", \"NO_SUCH\"]\nseverity = \"SERIOUS\"\nmin_months = 40\nmax_months = 36\n"
        );
        let e = Catalogue::parse(&bad).unwrap_err().to_string();
        for want in [
            "unknown list type \"NO_SUCH\"",
            "list SERIOUS_VIOLATION with severity SERIOUS has two publication periods",
            "min_months <= max_months",
        ] {
            assert!(e.contains(want), "missing {want:?} in\n{e}");
        }
    }

    #[test]
    fn lists_need_three_measures() {
        let thin = V1
            .replace("lists = [\"CUSTOMS_AEO\"]", "lists = [\"TAX_GRADE_A\"]")
            .replace(
                "lists = [\"TAX_GRADE_A\", \"CUSTOMS_AEO\"]",
                "lists = [\"TAX_GRADE_A\"]",
            );
        let e = Catalogue::parse(&thin).unwrap_err();
        assert!(
            e.to_string().contains("list CUSTOMS_AEO has 2 measure(s)"),
            "{e}"
        );
    }
}
