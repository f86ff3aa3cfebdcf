//! The quality ledger as plain data: which names each subject code was seen
//! with, which records carried them, and per department how many records
//! were counted, how many of them name a code that another record names
//! differently (重码, duplicate code), and how many were rejected for a wrong
//! code (错码). No Kafka here; `pipeline` feeds it and persists each new fact.
//!
//! Everything is keyed by record id (`<dept>:<partition>:<offset>`, the same
//! for a normalised record and for the dead letter of a rejected one): a fact
//! whose id the ledger already holds is a replay and changes nothing, so a
//! restart that reads some records again never counts them twice.
//!
//! **The comparison.** Two names are the same when their folded forms are
//! equal ([`fold_name`]): spelling only — blanks and invisible characters
//! removed, full-width made half-width, every bracket made `(`/`)`, middle
//! dots unified, ASCII lower-cased, and the legal-form suffix 有限责任公司
//! written as its permitted short form 有限公司 (公司登记管理条例 lets a limited
//! liability company use either). Nothing else is folded: 广州 vs 广州市, a
//! branch's name (分公司), 股份有限公司 vs 有限公司 are different names, so a
//! real second subject is never hidden. A natural person's name that is
//! masked (`陈某某`, `陈*`, `陈××`) names nobody in particular and is not
//! compared. A code seen with two or more different names is a conflict, and
//! every record carrying it counts as conflicting once, whatever its
//! department: the first record too, since nothing tells which name is right.

use std::collections::{BTreeMap, HashMap};

use credit_core::ReasonCode;
use credit_core::text;
use serde::{Deserialize, Serialize};

/// The seed's target for the wrong/duplicate-code rate (重错码率): at most 0.005 %.
pub const TARGET_RATIO: f64 = 0.000_05;

/// Dead-letter reasons that are wrong codes (错码): a code that is not a
/// valid code. A pre-2015 registration number (`legacy_registration_number`)
/// is a valid old code, not a wrong one.
pub const WRONG_CODE_REASONS: [ReasonCode; 4] = [
    ReasonCode::InvalidUscc,
    ReasonCode::InvalidResidentId,
    ReasonCode::InvalidUsccSegment,
    ReasonCode::PlaceholderCode,
];

/// Whether a dead letter's reason is a wrong code.
pub fn is_wrong_code(reason: &str) -> bool {
    WRONG_CODE_REASONS.iter().any(|r| r.as_str() == reason)
}

/// What one record id contributes: the state topic's value (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Fact {
    /// A normalised record: its subject's code and name.
    Named {
        department: String,
        /// A natural person's (resident ID, personal name: masked in reports).
        person: bool,
        key: String,
        name: String,
    },
    /// A record rejected for a wrong code, with the reason.
    WrongCode { department: String, reason: String },
}

impl Fact {
    pub fn department(&self) -> &str {
        match self {
            Fact::Named { department, .. } | Fact::WrongCode { department, .. } => department,
        }
    }
}

/// A name as compared: see the module's doc.
pub fn fold_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if text::is_invisible(c) {
            continue;
        }
        let c = text::ascii_bracket(text::half_width(c));
        let c = match c {
            '\u{00B7}' | '\u{2022}' | '\u{2027}' | '\u{2219}' | '\u{30FB}' | '\u{FF65}' => '·',
            c => c.to_ascii_lowercase(),
        };
        out.push(c);
    }
    if let Some(stem) = out.strip_suffix("有限责任公司") {
        out = format!("{stem}有限公司");
    }
    out
}

/// Whether a natural person's name is masked (`陈某某`, `陈*`, `陈××`, `陈XX`).
pub fn is_masked_person_name(name: &str) -> bool {
    let folded = fold_name(name);
    folded.is_empty()
        || folded.contains(['某', '*', '×', '＊', '○', '〇'])
        || (folded.chars().count() >= 2 && folded.chars().skip(1).all(|c| c == 'x'))
}

/// A natural person's name for a report: the surname's first character, the
/// rest masked (one helper for the bus, in `credit_core::ids`).
pub use credit_core::ids::mask_person_name;

/// Counts of one department.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    /// Normalised records counted (each record id once).
    pub records: u64,
    /// Of those, records whose code another record names differently.
    pub conflicting: u64,
    /// Records rejected for a wrong code (each record id once).
    pub wrong_codes: u64,
}

impl Counts {
    /// Duplicate-code rate: conflicting / records (0 without records).
    pub fn conflict_ratio(&self) -> f64 {
        ratio(self.conflicting, self.records)
    }

    /// The seed's wrong-or-duplicate-code rate: (wrong + conflicting) over
    /// every record received with a code (normalised + wrong-code rejects).
    pub fn wrong_or_duplicate_ratio(&self) -> f64 {
        ratio(
            self.conflicting + self.wrong_codes,
            self.records + self.wrong_codes,
        )
    }

    fn add(&mut self, o: &Counts) {
        self.records += o.records;
        self.conflicting += o.conflicting;
        self.wrong_codes += o.wrong_codes;
    }
}

fn ratio(n: u64, d: u64) -> f64 {
    if d == 0 { 0.0 } else { n as f64 / d as f64 }
}

/// What applying a new fact changed (a replay changes nothing: `None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delta {
    /// The fact's department: one more record, or one more wrong code.
    pub department: String,
    pub wrong_code: bool,
    /// Departments of records that became conflicting with this fact, one
    /// entry per record (the new record and, when its code just became a
    /// conflict, every earlier record of the code).
    pub newly_conflicting: Vec<String>,
}

struct Group {
    folded: String,
    /// The name as first written.
    name: String,
    records: Vec<usize>,
}

#[derive(Default)]
struct Code {
    person: bool,
    groups: Vec<Group>,
    /// Set once the code has two names: every record of it is conflicting.
    conflict: bool,
}

struct Rec {
    id: String,
    department: String,
}

/// A record in a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordRef {
    pub record_id: String,
    pub department: String,
}

/// One name a conflicting code was seen with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NameSeen {
    /// As first written; a natural person's masked.
    pub name: String,
    /// Records carrying this name (all of them).
    pub records: Vec<RecordRef>,
}

/// A code seen with two or more names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    /// The code; a resident ID masked (`440106********123X`).
    pub subject_key: String,
    pub natural_person: bool,
    pub names: Vec<NameSeen>,
}

/// Every fact seen, by record id.
#[derive(Default)]
pub struct Ledger {
    ids: HashMap<String, ()>,
    recs: Vec<Rec>,
    codes: HashMap<String, Code>,
    departments: BTreeMap<String, Counts>,
    conflicts: usize,
}

impl Ledger {
    pub fn new() -> Ledger {
        Ledger::default()
    }

    /// Whether a fact with this record id was applied.
    pub fn contains(&self, record_id: &str) -> bool {
        self.ids.contains_key(record_id)
    }

    /// Facts applied (distinct record ids).
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Applies a fact under its record id; `None` when that id was applied
    /// before (a replay), whatever the fact says.
    pub fn apply(&mut self, record_id: &str, fact: &Fact) -> Option<Delta> {
        if self.ids.contains_key(record_id) {
            return None;
        }
        self.ids.insert(record_id.to_string(), ());
        let department = fact.department().to_string();
        let counts = self.departments.entry(department.clone()).or_default();
        let (key, person, name) = match fact {
            Fact::WrongCode { .. } => {
                counts.wrong_codes += 1;
                return Some(Delta {
                    department,
                    wrong_code: true,
                    newly_conflicting: Vec::new(),
                });
            }
            Fact::Named {
                key, person, name, ..
            } => (key, *person, name),
        };
        counts.records += 1;
        let mut delta = Delta {
            department: department.clone(),
            wrong_code: false,
            newly_conflicting: Vec::new(),
        };
        if person && is_masked_person_name(name) {
            return Some(delta);
        }
        let index = self.recs.len();
        self.recs.push(Rec {
            id: record_id.to_string(),
            department,
        });
        let code = self.codes.entry(key.clone()).or_default();
        code.person = person;
        let folded = fold_name(name);
        match code.groups.iter_mut().find(|g| g.folded == folded) {
            Some(g) => g.records.push(index),
            None => code.groups.push(Group {
                folded,
                name: name.trim().to_string(),
                records: vec![index],
            }),
        }
        if code.conflict {
            delta
                .newly_conflicting
                .push(self.recs[index].department.clone());
        } else if code.groups.len() >= 2 {
            code.conflict = true;
            self.conflicts += 1;
            for g in &code.groups {
                for &r in &g.records {
                    delta
                        .newly_conflicting
                        .push(self.recs[r].department.clone());
                }
            }
        }
        for d in &delta.newly_conflicting {
            self.departments.entry(d.clone()).or_default().conflicting += 1;
        }
        Some(delta)
    }

    /// Counts per department (departments with at least one fact).
    pub fn departments(&self) -> &BTreeMap<String, Counts> {
        &self.departments
    }

    /// Counts over every department.
    pub fn total(&self) -> Counts {
        let mut t = Counts::default();
        for c in self.departments.values() {
            t.add(c);
        }
        t
    }

    /// Codes seen with two or more names.
    pub fn conflict_count(&self) -> usize {
        self.conflicts
    }

    /// Up to `limit` conflicting codes, ordered by code, with every record;
    /// natural persons' codes and names masked.
    pub fn conflicts(&self, limit: usize) -> Vec<Conflict> {
        let mut keys: Vec<&String> = self
            .codes
            .iter()
            .filter(|(_, c)| c.conflict)
            .map(|(k, _)| k)
            .collect();
        keys.sort();
        keys.into_iter()
            .take(limit)
            .map(|k| {
                let c = &self.codes[k];
                Conflict {
                    subject_key: if c.person {
                        credit_core::ids::mask_id(k)
                    } else {
                        k.clone()
                    },
                    natural_person: c.person,
                    names: c
                        .groups
                        .iter()
                        .map(|g| NameSeen {
                            name: if c.person {
                                mask_person_name(&g.name)
                            } else {
                                g.name.clone()
                            },
                            records: g
                                .records
                                .iter()
                                .map(|&r| RecordRef {
                                    record_id: self.recs[r].id.clone(),
                                    department: self.recs[r].department.clone(),
                                })
                                .collect(),
                        })
                        .collect(),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const CODE: &str = "91440101MA59UU8U6U";
    const PERSON: &str = "440106198001011230";

    fn named(dept: &str, key: &str, name: &str) -> Fact {
        Fact::Named {
            department: dept.into(),
            person: key == PERSON,
            key: key.into(),
            name: name.into(),
        }
    }

    /// Spellings of one name that must compare equal, and different names
    /// that must not.
    #[test]
    fn names_compare_by_spelling_not_by_subject() {
        let same = [
            ("广州市恒信建材有限公司", "广州市恒信建材有限责任公司"),
            ("广州市恒信建材有限公司", " 广州市恒信建材有限公司\u{3000}"),
            ("广州市恒信建材有限公司", "广州市恒信\u{200B}建材 有限公司"),
            ("广州恒信（集团）有限公司", "广州恒信(集团)有限公司"),
            ("广州恒信【集团】有限公司", "广州恒信(集团)有限公司"),
            ("ＡＢＣ贸易有限公司", "abc贸易有限公司"),
            ("阿卜杜·艾力", "阿卜杜・艾力"),
            ("阿卜杜·艾力", "阿卜杜•艾力"),
        ];
        for (a, b) in same {
            assert_eq!(fold_name(a), fold_name(b), "{a} / {b}");
        }
        let different = [
            ("广州市恒信建材有限公司", "广州市恒信建材股份有限公司"),
            ("广州市恒信建材有限公司", "广州恒信建材有限公司"),
            ("广州市恒信建材有限公司", "广州市恒信建材有限公司天河分公司"),
            ("广州市恒信建材有限公司", "广州市恒兴建材有限公司"),
            ("陈伟", "陈玮"),
            ("广州市恒信建材有限责任公司", "广州市恒信建材责任公司"),
        ];
        for (a, b) in different {
            assert_ne!(fold_name(a), fold_name(b), "{a} / {b}");
        }
    }

    #[test]
    fn masked_person_names() {
        for n in ["陈某某", "陈某", "陈*", "陈**", "陈××", "陈XX", "陈xx", " "] {
            assert!(is_masked_person_name(n), "{n}");
        }
        for n in ["陈伟", "欧阳娜娜", "阿卜杜·艾力", "X"] {
            assert!(!is_masked_person_name(n), "{n}");
        }
        assert_eq!(mask_person_name("陈伟"), "陈*");
        assert_eq!(mask_person_name("欧阳娜娜"), "欧***");
        assert_eq!(mask_person_name("陈"), "陈*");
    }

    #[test]
    fn two_departments_one_code_two_names_counts_each_record_once() {
        let mut l = Ledger::new();
        let a = l.apply("tax:0:1", &named("tax", CODE, "广州市恒信建材有限公司"));
        assert_eq!(a.unwrap().newly_conflicting, Vec::<String>::new());
        // Same subject, other spelling: no conflict.
        let b = l.apply(
            "market:0:7",
            &named("market", CODE, "广州市恒信建材有限责任公司"),
        );
        assert!(b.unwrap().newly_conflicting.is_empty());
        // Another name: all three records conflict now.
        let c = l.apply(
            "courts:1:3",
            &named("courts", CODE, "广州市恒兴贸易有限公司"),
        );
        let mut got = c.unwrap().newly_conflicting;
        got.sort();
        assert_eq!(got, vec!["courts", "market", "tax"]);
        // A fourth record of the conflicting code conflicts at once; a replay counts nothing.
        let d = l.apply("tax:2:9", &named("tax", CODE, "广州市恒信建材有限公司"));
        assert_eq!(d.unwrap().newly_conflicting, vec!["tax"]);
        assert_eq!(
            l.apply(
                "courts:1:3",
                &named("courts", CODE, "广州市恒兴贸易有限公司")
            ),
            None
        );
        assert_eq!(l.apply("tax:0:1", &named("tax", CODE, "别的名字")), None);
        let d = l.departments();
        assert_eq!(
            d["tax"],
            Counts {
                records: 2,
                conflicting: 2,
                wrong_codes: 0
            }
        );
        assert_eq!(d["market"].conflicting, 1);
        assert_eq!(d["courts"].conflicting, 1);
        assert_eq!(l.conflict_count(), 1);
        let c = l.conflicts(10);
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].subject_key, CODE);
        assert_eq!(c[0].names.len(), 2);
        let ids: Vec<&str> = c[0]
            .names
            .iter()
            .flat_map(|n| n.records.iter().map(|r| r.record_id.as_str()))
            .collect();
        assert_eq!(ids, vec!["tax:0:1", "market:0:7", "tax:2:9", "courts:1:3"]);
    }

    #[test]
    fn persons_are_masked_and_masked_names_never_conflict() {
        let mut l = Ledger::new();
        l.apply("courts:0:1", &named("courts", PERSON, "陈伟"));
        // A masked name names nobody in particular.
        let m = l
            .apply("market:0:1", &named("market", PERSON, "陈某某"))
            .unwrap();
        assert!(m.newly_conflicting.is_empty());
        assert_eq!(l.departments()["market"].records, 1);
        let c = l
            .apply("market:0:2", &named("market", PERSON, "李娜"))
            .unwrap();
        assert_eq!(c.newly_conflicting.len(), 2);
        let report = serde_json::to_string(&l.conflicts(10)).unwrap();
        assert!(!report.contains(PERSON), "{report}");
        assert!(
            !report.contains("陈伟") && !report.contains("李娜"),
            "{report}"
        );
        assert!(report.contains("440106********1230"), "{report}");
        assert!(report.contains("陈*") && report.contains("李*"), "{report}");
    }

    #[test]
    fn wrong_codes_count_once_and_enter_the_rate() {
        let mut l = Ledger::new();
        let wrong = Fact::WrongCode {
            department: "tax".into(),
            reason: "invalid_uscc".into(),
        };
        assert!(l.apply("tax:0:5", &wrong).unwrap().wrong_code);
        assert_eq!(l.apply("tax:0:5", &wrong), None);
        for i in 0..3 {
            l.apply(
                &format!("tax:0:{i}"),
                &named("tax", CODE, "广州市恒信建材有限公司"),
            );
        }
        let t = l.departments()["tax"];
        assert_eq!((t.records, t.wrong_codes, t.conflicting), (3, 1, 0));
        assert_eq!(t.wrong_or_duplicate_ratio(), 0.25);
        assert_eq!(t.conflict_ratio(), 0.0);
        assert!(is_wrong_code("placeholder_code") && !is_wrong_code("invalid_date"));
        assert!(!is_wrong_code("legacy_registration_number"));
    }

    #[test]
    fn facts_round_trip_as_json() {
        for f in [
            named("tax", CODE, "广州市恒信建材有限公司"),
            Fact::WrongCode {
                department: "courts".into(),
                reason: "invalid_resident_id".into(),
            },
        ] {
            let j = serde_json::to_vec(&f).unwrap();
            assert_eq!(serde_json::from_slice::<Fact>(&j).unwrap(), f);
        }
    }

    proptest! {
        /// Counts depend on the set of facts, not on their order or on
        /// replays: any order, with any record applied again, gives the
        /// counts of applying each once.
        #[test]
        fn counts_ignore_order_and_replays(
            facts in proptest::collection::vec((0usize..4, 0usize..3, 0usize..3), 1..40),
            order in any::<proptest::sample::Index>(),
            replays in proptest::collection::vec(any::<proptest::sample::Index>(), 0..20),
        ) {
            let depts = ["tax", "market", "courts", "gz-customs"];
            let codes = [CODE, "91440101664000001X", PERSON];
            let names = ["广州市恒信建材有限公司", "广州市恒信建材有限责任公司", "广州恒兴贸易有限公司"];
            let all: Vec<(String, Fact)> = facts
                .iter()
                .enumerate()
                .map(|(i, &(d, c, n))| (format!("{}:0:{i}", depts[d]), named(depts[d], codes[c], names[n])))
                .collect();
            let mut once = Ledger::new();
            for (id, f) in &all {
                once.apply(id, f);
            }
            let mut shuffled = all.clone();
            shuffled.rotate_left(order.index(all.len()));
            for r in &replays {
                let i = r.index(all.len());
                shuffled.insert(i, all[i].clone());
            }
            let mut other = Ledger::new();
            for (id, f) in &shuffled {
                other.apply(id, f);
            }
            prop_assert_eq!(once.departments(), other.departments());
            // A record conflicts exactly when its code has two folded names.
            let mut names_of: HashMap<&str, std::collections::HashSet<String>> = HashMap::new();
            for (_, f) in &all {
                if let Fact::Named { key, name, .. } = f {
                    names_of.entry(key).or_default().insert(fold_name(name));
                }
            }
            let want: u64 = all
                .iter()
                .filter(|(_, f)| matches!(f, Fact::Named { key, .. } if names_of[key.as_str()].len() > 1))
                .count() as u64;
            prop_assert_eq!(once.total().conflicting, want);
            prop_assert_eq!(once.total().records, all.len() as u64);
        }
    }
}
