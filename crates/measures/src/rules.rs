//! The rules, as plain functions: which (measure, department) pairs an entry
//! binds under a catalogue, and what moving from one catalogue version to the
//! next adds and lifts.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use credit_core::record::{ListType, SubjectType};

use crate::{Catalogue, Kind};

/// A list entry as the rules see it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Entry {
    /// The normalised record that put the subject on the list.
    pub record_id: String,
    pub list_type: ListType,
    pub subject_type: SubjectType,
}

/// One implementing department's duty under one measure for one entry: the unit
/// that is notified exactly once.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Target {
    pub record_id: String,
    pub measure_id: Arc<str>,
    pub department: &'static str,
}

pub use credit_core::notice::NoticeKind;

/// The notice kind that applies a measure of `kind`.
pub const fn applying(kind: Kind) -> NoticeKind {
    match kind {
        Kind::Punishment => NoticeKind::Punishment,
        Kind::Reward => NoticeKind::Reward,
    }
}

/// The deterministic id of the `generation`-th notice of `kind` for a target.
/// Generations count how often the target was applied (1 for the first
/// punishment, its lift, a re-application after a later catalogue version...),
/// so a replay computes the same id and a genuine re-application a new one.
pub fn notice_id(t: &Target, kind: NoticeKind, generation: u32) -> String {
    notice_id_of(&t.record_id, &t.measure_id, t.department, kind, generation)
}

/// [`notice_id`] from the target's parts, for callers that hold them borrowed.
pub fn notice_id_of(
    record_id: &str,
    measure_id: &str,
    department: &str,
    kind: NoticeKind,
    generation: u32,
) -> String {
    // Built by hand: `format!` cost more than the rest of planning a notice.
    let mut g = itoa::Buffer::new();
    let g = g.format(generation);
    let parts = [record_id, measure_id, department, kind.as_str(), g];
    let mut id = String::with_capacity(parts.iter().map(|p| p.len() + 1).sum());
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            id.push('/');
        }
        id.push_str(p);
    }
    id
}

/// Every (measure, implementing department) a catalogue binds to an entry of
/// this list and subject type, ordered by measure id, then department (the
/// order of [`targets`]), each once. Borrows from the catalogue: the
/// engine plans every new entry with it, and allocating targets per notice
/// was a measurable share of its CPU.
pub fn bound(
    catalogue: &Catalogue,
    list: ListType,
    subject: SubjectType,
) -> Vec<(&crate::Measure, &'static str)> {
    let mut out: Vec<(&crate::Measure, &'static str)> = catalogue
        .measures
        .iter()
        .filter(|m| m.applies_to(list, subject))
        .flat_map(|m| m.departments.iter().map(move |d| (m, *d)))
        .collect();
    out.sort_unstable_by(|a, b| (&*a.0.id, a.1).cmp(&(&*b.0.id, b.1)));
    out.dedup_by(|a, b| a.0.id == b.0.id && a.1 == b.1);
    out
}

/// Every target an entry binds under `catalogue`, with the kind of notice that applies it.
pub fn targets(catalogue: &Catalogue, entry: &Entry) -> BTreeMap<Target, NoticeKind> {
    bound(catalogue, entry.list_type, entry.subject_type)
        .into_iter()
        .map(|(m, d)| {
            (
                Target {
                    record_id: entry.record_id.clone(),
                    measure_id: m.id.clone(),
                    department: d,
                },
                applying(m.kind),
            )
        })
        .collect()
}

/// What activating a new catalogue version means for the active entries.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delta {
    /// Targets the new version binds and the old did not: apply them.
    pub apply: BTreeMap<Target, NoticeKind>,
    /// Targets the old version bound and the new does not: lift them.
    pub lift: BTreeSet<Target>,
}

/// The exact difference between two versions over `entries`.
pub fn delta<'e>(
    old: &Catalogue,
    new: &Catalogue,
    entries: impl IntoIterator<Item = &'e Entry>,
) -> Delta {
    let mut d = Delta::default();
    for e in entries {
        let before = targets(old, e);
        let mut after = targets(new, e);
        for t in before.keys() {
            if after.remove(t).is_none() {
                d.lift.insert(t.clone());
            }
        }
        d.apply.extend(after);
    }
    d
}

/// Counts a delta would send, per (department, measure): (apply, lift).
pub fn dry_run(delta: &Delta) -> BTreeMap<(&'static str, Arc<str>), (usize, usize)> {
    let mut out: BTreeMap<(&'static str, Arc<str>), (usize, usize)> = BTreeMap::new();
    for t in delta.apply.keys() {
        out.entry((t.department, t.measure_id.clone()))
            .or_default()
            .0 += 1;
    }
    for t in &delta.lift {
        out.entry((t.department, t.measure_id.clone()))
            .or_default()
            .1 += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Measure, V1};

    proptest::proptest! {
        /// The hand-built id is `record/measure/department/kind/generation`.
        #[test]
        fn notice_ids_join_their_parts(record in "[a-z]{1,8}:[0-9]{1,3}:[0-9]{1,9}", measure in "[a-z-]{1,24}", g in proptest::prelude::any::<u32>(), k in 0usize..4) {
            let kind = [NoticeKind::Punishment, NoticeKind::Reward, NoticeKind::Lift, NoticeKind::Withdrawal][k];
            let t = Target { record_id: record.clone(), measure_id: measure.as_str().into(), department: "hrss" };
            proptest::prop_assert_eq!(notice_id(&t, kind, g), format!("{record}/{measure}/hrss/{}/{g}", kind.as_str()));
        }
    }
    use proptest::prelude::*;

    fn entry(id: &str, list: ListType, subject: SubjectType) -> Entry {
        Entry {
            record_id: id.into(),
            list_type: list,
            subject_type: subject,
        }
    }

    #[test]
    fn a_natural_defaulter_gets_high_consumption_limits_a_company_does_not() {
        let c = Catalogue::parse(V1).unwrap();
        let person = targets(
            &c,
            &entry(
                "courts:0:1",
                ListType::JudgementDefaulter,
                SubjectType::NaturalPerson,
            ),
        );
        let company = targets(
            &c,
            &entry(
                "courts:0:2",
                ListType::JudgementDefaulter,
                SubjectType::LegalPerson,
            ),
        );
        assert!(
            person
                .keys()
                .any(|t| &*t.measure_id == "restrict-high-consumption"
                    && t.department == "transport")
        );
        assert!(
            !company
                .keys()
                .any(|t| &*t.measure_id == "restrict-high-consumption")
        );
        assert!(
            company
                .keys()
                .any(|t| &*t.measure_id == "restrict-procurement" && t.department == "finance")
        );
        assert!(
            person
                .values()
                .chain(company.values())
                .all(|k| *k == NoticeKind::Punishment)
        );
        let red = targets(
            &c,
            &entry("tax:0:3", ListType::TaxGradeA, SubjectType::LegalPerson),
        );
        assert!(!red.is_empty() && red.values().all(|k| *k == NoticeKind::Reward));
    }

    #[test]
    fn notice_ids_are_deterministic_and_distinct_per_kind_and_generation() {
        let t = Target {
            record_id: "courts:1:7".into(),
            measure_id: "no-honours".into(),
            department: "hrss",
        };
        assert_eq!(
            notice_id(&t, NoticeKind::Punishment, 1),
            "courts:1:7/no-honours/hrss/punishment/1"
        );
        assert_ne!(
            notice_id(&t, NoticeKind::Punishment, 1),
            notice_id(&t, NoticeKind::Lift, 1)
        );
        assert_ne!(
            notice_id(&t, NoticeKind::Punishment, 1),
            notice_id(&t, NoticeKind::Punishment, 2)
        );
    }

    fn arb_catalogue() -> impl Strategy<Value = Catalogue> {
        let depts: Vec<&'static str> = credit_core::DEPARTMENTS.iter().map(|d| d.id).collect();
        let measure = (
            0usize..12,
            any::<bool>(),
            proptest::sample::subsequence(ListType::ALL.to_vec(), 1..4),
            proptest::sample::subsequence(SubjectType::ALL.to_vec(), 1..4),
            proptest::sample::subsequence(depts, 1..4),
        )
            .prop_map(|(n, reward, lists, subjects, departments)| Measure {
                id: format!("m{n}").into(),
                kind: if reward {
                    Kind::Reward
                } else {
                    Kind::Punishment
                },
                name_zh: "措施".into(),
                name_en: "measure".into(),
                legal_basis: "basis".into(),
                lists,
                subject_types: subjects,
                departments,
                validity_months: None,
            });
        (1u32..5, proptest::collection::vec(measure, 0..10)).prop_map(|(version, mut measures)| {
            // Measure ids are unique within a version.
            let mut seen = BTreeSet::new();
            measures.retain(|m| seen.insert(m.id.clone()));
            Catalogue {
                version,
                effective: "2020-10-01".into(),
                description: String::new(),
                measures,
                publication: Vec::new(),
            }
        })
    }

    fn arb_entries() -> impl Strategy<Value = Vec<Entry>> {
        proptest::collection::vec(
            (
                0u32..50,
                0usize..ListType::ALL.len(),
                0usize..SubjectType::ALL.len(),
            )
                .prop_map(|(n, l, s)| Entry {
                    record_id: format!("dept:0:{n}"),
                    list_type: ListType::ALL[l],
                    subject_type: SubjectType::ALL[s],
                }),
            0..20,
        )
        // A record is one entry: record ids are unique.
        .prop_map(|mut es| {
            let mut seen = BTreeSet::new();
            es.retain(|e| seen.insert(e.record_id.clone()));
            es
        })
    }

    proptest! {
        /// The set of notices for any entry and catalogue is exactly the brute-force one:
        /// every department of every measure that binds the entry's list and subject type.
        #[test]
        fn targets_are_exactly_the_expected_set(c in arb_catalogue(), es in arb_entries()) {
            for e in &es {
                let got: BTreeSet<(String, &str)> = targets(&c, e).keys().map(|t| (t.measure_id.to_string(), t.department)).collect();
                let mut want = BTreeSet::new();
                for m in &c.measures {
                    for l in &m.lists {
                        for s in &m.subject_types {
                            if *l == e.list_type && *s == e.subject_type {
                                for d in &m.departments {
                                    want.insert((m.id.to_string(), *d));
                                }
                            }
                        }
                    }
                }
                prop_assert_eq!(got, want);
            }
        }

        /// A delta is exactly the difference: old − lift + apply = new, nothing applied
        /// twice, nothing lifted that was not applied.
        #[test]
        fn delta_is_exactly_the_difference(old in arb_catalogue(), new in arb_catalogue(), es in arb_entries()) {
            let d = delta(&old, &new, &es);
            let before: BTreeSet<Target> = es.iter().flat_map(|e| targets(&old, e).into_keys()).collect();
            let after: BTreeSet<Target> = es.iter().flat_map(|e| targets(&new, e).into_keys()).collect();
            prop_assert!(d.lift.is_subset(&before));
            prop_assert!(d.apply.keys().all(|t| !before.contains(t)));
            let mut result: BTreeSet<Target> = before.difference(&d.lift).cloned().collect();
            result.extend(d.apply.keys().cloned());
            prop_assert_eq!(result, after);
            let counts = dry_run(&d);
            prop_assert_eq!(counts.values().map(|c| c.0).sum::<usize>(), d.apply.len());
            prop_assert_eq!(counts.values().map(|c| c.1).sum::<usize>(), d.lift.len());
        }

        #[test]
        fn a_version_against_itself_changes_nothing(c in arb_catalogue(), es in arb_entries()) {
            prop_assert_eq!(delta(&c, &c, &es), Delta::default());
        }
    }
}
