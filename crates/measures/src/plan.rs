//! Planning: what one engine partition knows about its list entries, and the
//! plain functions that turn an input into the notices it causes.
//!
//! Everything here is a value: the engine persists entries to its changelog
//! (the format is a contract in `credit_schemas::changelog`), replays them on
//! recovery, and calls [`PartitionState::plan_record`],
//! [`PartitionState::plan_command`], [`PartitionState::plan_activation`] and
//! [`PartitionState::plan_expiry`] with a catalogue and today's date. No
//! clock, broker or random number is read here, so a replay of the same inputs
//! on the same state plans the same notices with the same ids.

use std::collections::BTreeSet;
use std::sync::Arc;

use credit_core::notice::{Notice, NoticeKind};
use credit_core::record::{ListType, SubjectType};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::{Deserialize, Serialize};

use crate::Catalogue;
use crate::rules::{self, Target};

/// Why an entry ends (or, for [`EndReason::CatalogueChange`], why a duty is lifted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndReason {
    /// The validity ran out.
    Expired,
    /// Credit repair granted by the identifying department.
    Repaired,
    /// Withdrawn after an objection: every notice it caused is withdrawn.
    Withdrawn,
    /// Not an end: the reason on a lift when a new catalogue version drops a
    /// measure. Operators cannot send it.
    CatalogueChange,
}

impl EndReason {
    pub const ALL: [EndReason; 4] = [
        EndReason::Expired,
        EndReason::Repaired,
        EndReason::Withdrawn,
        EndReason::CatalogueChange,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            EndReason::Expired => "expired",
            EndReason::Repaired => "repaired",
            EndReason::Withdrawn => "withdrawn",
            EndReason::CatalogueChange => "catalogue-change",
        }
    }

    pub fn parse(s: &str) -> Option<EndReason> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether an operator may end an entry for this reason.
    pub const fn is_operator_reason(self) -> bool {
        !matches!(self, EndReason::CatalogueChange)
    }
}

/// Where a normalised record sits on the records topic.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Source {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// A normalised record, reduced to what planning needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub record_id: String,
    /// The identifying department (catalogue id).
    pub department: String,
    pub list_type: Option<ListType>,
    /// Only dishonesty and red list entries bind measures.
    pub is_list_entry: bool,
    pub subject_type: SubjectType,
    pub subject_key: String,
    pub subject_name: String,
    pub decision_number: String,
    /// Days since 1970-01-01 of the first and last day the entry is valid.
    pub valid_from: i32,
    pub valid_until: Option<i32>,
    pub source: Source,
}

/// One (measure, department) duty of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duty {
    /// Shared with the catalogue and the planned notices (an entry holds a
    /// dozen duties, the engine millions of entries).
    pub measure_id: Arc<str>,
    /// A catalogue department id.
    pub department: &'static str,
    /// The kind of notice that applied it (punishment or reward).
    pub applied_as: NoticeKind,
    /// How often it was applied: a duty lifted by one catalogue version and
    /// bound again by a later one is applied again under the next generation.
    pub generation: u32,
    pub active: bool,
}

/// A list entry and every duty it created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub record_id: String,
    /// The identifying department.
    pub department: String,
    pub list_type: ListType,
    pub subject_type: SubjectType,
    pub subject_key: String,
    pub subject_name: String,
    pub decision_number: String,
    pub valid_from: i32,
    /// The last day the entry is valid; `None` until lifted.
    pub valid_until: Option<i32>,
    pub source: Source,
    /// The catalogue version its duties were last planned under.
    pub catalogue_version: u32,
    pub duties: Vec<Duty>,
    pub ended: Option<EndReason>,
}

impl Entry {
    /// The duties `catalogue` gives an entry of this list and subject type when
    /// nothing has moved them: generation 1 each, active unless it ended.
    pub fn bound_duties(&self, catalogue: &Catalogue) -> Vec<Duty> {
        rules::bound(catalogue, self.list_type, self.subject_type)
            .into_iter()
            .map(|(m, d)| Duty {
                measure_id: m.id.clone(),
                department: d,
                applied_as: rules::applying(m.kind),
                generation: 1,
                active: self.ended.is_none(),
            })
            .collect()
    }

    /// Whether the duties are exactly [`Entry::bound_duties`], compared in
    /// place (the changelog then leaves them out).
    pub fn is_as_bound(&self, catalogue: &Catalogue) -> bool {
        let bound = rules::bound(catalogue, self.list_type, self.subject_type);
        bound.len() == self.duties.len()
            && bound.iter().zip(&self.duties).all(|((m, d), duty)| {
                duty.measure_id == m.id
                    && duty.department == *d
                    && duty.applied_as == rules::applying(m.kind)
                    && duty.generation == 1
                    && duty.active == self.ended.is_none()
            })
    }

    /// Whether the entry's validity ended before `today`.
    pub fn expired_by(&self, today: i32) -> bool {
        self.valid_until.is_some_and(|last| last < today)
    }
}

/// A notice decided but not yet sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planned {
    pub notice_id: String,
    pub kind: NoticeKind,
    /// Shared by the entry's notices.
    pub record_id: Arc<str>,
    pub measure_id: Arc<str>,
    pub department: &'static str,
    pub generation: u32,
    pub reason: Option<EndReason>,
}

impl Planned {
    fn new(
        e: &Entry,
        record_id: &Arc<str>,
        d: &Duty,
        kind: NoticeKind,
        reason: Option<EndReason>,
    ) -> Planned {
        Planned {
            notice_id: rules::notice_id_of(
                &e.record_id,
                &d.measure_id,
                d.department,
                kind,
                d.generation,
            ),
            kind,
            record_id: record_id.clone(),
            measure_id: d.measure_id.clone(),
            department: d.department,
            generation: d.generation,
            reason,
        }
    }

    /// The notice this plan sends for entry `e`, with its measure's name and
    /// legal basis.
    pub fn notice<'a>(
        &'a self,
        e: &'a Entry,
        measure_name: &'a str,
        legal_basis: &'a str,
    ) -> Notice<'a> {
        Notice {
            notice_id: &self.notice_id,
            kind: self.kind,
            department: self.department,
            measure_id: &self.measure_id,
            measure_name,
            legal_basis,
            catalogue_version: e.catalogue_version as i32,
            generation: self.generation as i32,
            record_id: &self.record_id,
            list_type: e.list_type.symbol(),
            subject_type: e.subject_type.symbol(),
            subject_key: &e.subject_key,
            subject_name: &e.subject_name,
            identifying_department: &e.department,
            decision_number: &e.decision_number,
            reason: self.reason.map(|r| r.as_str()),
            source_topic: &e.source.topic,
            source_partition: e.source.partition,
            source_offset: e.source.offset,
        }
    }
}

/// What a record did to the partition's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordOutcome {
    /// A new list entry: one notice per duty.
    Entered,
    /// A list entry whose validity had already ended when it arrived: kept
    /// (ended, expired), no punishment or reward sent.
    Late,
    /// The entry is already known (a replayed or duplicated record).
    Known,
    /// Not a list entry (licence, penalty, grade...): binds no measure.
    NotAnEntry,
}

/// An operator's request to end an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndEntry {
    pub record_id: String,
    pub reason: EndReason,
}

/// Why a command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error(
        "no active or ended entry {0} on this partition: the record was never a list entry here"
    )]
    UnknownEntry(String),
    #[error(
        "catalogue-change is not a reason an operator can give; use repaired, expired or withdrawn"
    )]
    NotAnOperatorReason,
}

/// All that is known about the entries of one input partition.
#[derive(Debug, Default)]
pub struct PartitionState {
    pub entries: FxHashMap<String, Entry>,
    /// The catalogue version in force on this partition (its last activation).
    pub catalogue_version: u32,
    /// Entries changed since [`PartitionState::take_dirty`] last ran.
    dirty: FxHashSet<String>,
    /// (last valid day, record id) of every entry that is still active and
    /// has an end: what [`PartitionState::plan_expiry`] looks at first.
    expiry: BTreeSet<(i32, String)>,
}

impl PartitionState {
    pub fn new(catalogue_version: u32) -> PartitionState {
        PartitionState {
            catalogue_version,
            ..Default::default()
        }
    }

    /// Adds an entry read back from the changelog.
    pub fn restore(&mut self, e: Entry) {
        if let (None, Some(last)) = (e.ended, e.valid_until) {
            self.expiry.insert((last, e.record_id.clone()));
        }
        self.entries.insert(e.record_id.clone(), e);
    }

    /// The record ids of the entries changed since the last call.
    pub fn take_dirty(&mut self) -> Vec<String> {
        let mut v: Vec<String> = self.dirty.drain().collect();
        v.sort_unstable();
        v
    }

    /// The earliest last-valid-day of an active entry, if any.
    pub fn next_expiry(&self) -> Option<i32> {
        self.expiry.first().map(|(d, _)| *d)
    }

    /// Notices for a record on `today`: a new list entry gets one per duty,
    /// unless its validity already ended (then it is kept as ended, and
    /// nothing is sent); anything else gets none.
    pub fn plan_record(
        &mut self,
        catalogue: &Catalogue,
        r: Input,
        today: i32,
    ) -> (RecordOutcome, Vec<Planned>) {
        let Some(list_type) = r.list_type.filter(|_| r.is_list_entry) else {
            return (RecordOutcome::NotAnEntry, Vec::new());
        };
        if self.entries.contains_key(&r.record_id) {
            return (RecordOutcome::Known, Vec::new());
        }
        let mut e = Entry {
            record_id: r.record_id,
            department: r.department,
            list_type,
            subject_type: r.subject_type,
            subject_key: r.subject_key,
            subject_name: r.subject_name,
            decision_number: r.decision_number,
            valid_from: r.valid_from,
            valid_until: r.valid_until,
            source: r.source,
            catalogue_version: catalogue.version,
            duties: Vec::new(),
            ended: None,
        };
        let late = e.expired_by(today);
        if late {
            e.ended = Some(EndReason::Expired);
        }
        e.duties = e.bound_duties(catalogue);
        let planned = if late {
            Vec::new()
        } else {
            let record_id: Arc<str> = e.record_id.as_str().into();
            e.duties
                .iter()
                .map(|d| Planned::new(&e, &record_id, d, d.applied_as, None))
                .collect()
        };
        self.dirty.insert(e.record_id.clone());
        self.restore(e);
        let outcome = if late {
            RecordOutcome::Late
        } else {
            RecordOutcome::Entered
        };
        (outcome, planned)
    }

    /// Ends entry `id` for `reason`: every active duty is lifted (withdrawn,
    /// for a withdrawal) exactly once; an entry that already ended plans nothing.
    fn end(&mut self, id: &str, reason: EndReason) -> Vec<Planned> {
        let Some(e) = self.entries.get_mut(id) else {
            return Vec::new();
        };
        if e.ended.is_some() {
            return Vec::new();
        }
        let kind = if reason == EndReason::Withdrawn {
            NoticeKind::Withdrawal
        } else {
            NoticeKind::Lift
        };
        let record_id: Arc<str> = e.record_id.as_str().into();
        let mut planned = Vec::new();
        for i in 0..e.duties.len() {
            if e.duties[i].active {
                e.duties[i].active = false;
                planned.push(Planned::new(
                    e,
                    &record_id,
                    &e.duties[i],
                    kind,
                    Some(reason),
                ));
            }
        }
        e.ended = Some(reason);
        if let Some(last) = e.valid_until {
            self.expiry.remove(&(last, e.record_id.clone()));
        }
        self.dirty.insert(id.to_string());
        planned
    }

    /// Notices for an operator's command: ending an entry lifts (or
    /// withdraws) each active duty exactly once; ending it again changes nothing.
    pub fn plan_command(&mut self, c: &EndEntry) -> Result<Vec<Planned>, CommandError> {
        if !c.reason.is_operator_reason() {
            return Err(CommandError::NotAnOperatorReason);
        }
        if !self.entries.contains_key(&c.record_id) {
            return Err(CommandError::UnknownEntry(c.record_id.clone()));
        }
        Ok(self.end(&c.record_id, c.reason))
    }

    /// Lifts every entry whose validity ended before `today`, oldest first,
    /// each exactly once (an ended entry leaves the schedule).
    pub fn plan_expiry(&mut self, today: i32) -> Vec<Planned> {
        let mut planned = Vec::new();
        while let Some((last, id)) = self.expiry.first().cloned() {
            if last >= today {
                break;
            }
            self.expiry.remove(&(last, id.clone()));
            planned.extend(self.end(&id, EndReason::Expired));
        }
        planned
    }

    /// Notices for activating catalogue `new` on this partition: for every
    /// entry still active, each duty the new version no longer binds is lifted,
    /// and each (measure, department) it binds without an active duty is
    /// applied (again, with the next generation, if an earlier version had
    /// lifted it). Activating the version already in force plans nothing.
    pub fn plan_activation(&mut self, new: &Catalogue) -> Vec<Planned> {
        let mut planned = Vec::new();
        let mut ids: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.ended.is_none() && e.catalogue_version != new.version)
            .map(|(id, _)| id.clone())
            .collect();
        ids.sort_unstable();
        for id in ids {
            let e = self.entries.get_mut(&id).expect("listed above");
            let record_id: Arc<str> = e.record_id.as_str().into();
            let mut wanted = rules::targets(
                new,
                &rules::Entry {
                    record_id: e.record_id.clone(),
                    list_type: e.list_type,
                    subject_type: e.subject_type,
                },
            );
            for i in 0..e.duties.len() {
                let d = &e.duties[i];
                if !d.active {
                    continue;
                }
                let t = Target {
                    record_id: e.record_id.clone(),
                    measure_id: d.measure_id.clone(),
                    department: d.department,
                };
                if wanted.remove(&t).is_none() {
                    e.duties[i].active = false;
                    planned.push(Planned::new(
                        e,
                        &record_id,
                        &e.duties[i],
                        NoticeKind::Lift,
                        Some(EndReason::CatalogueChange),
                    ));
                }
            }
            for (t, kind) in wanted {
                let i = match e
                    .duties
                    .iter()
                    .position(|d| d.measure_id == t.measure_id && d.department == t.department)
                {
                    Some(i) => {
                        let d = &mut e.duties[i];
                        d.generation += 1;
                        d.active = true;
                        d.applied_as = kind;
                        i
                    }
                    None => {
                        e.duties.push(Duty {
                            measure_id: t.measure_id.clone(),
                            department: t.department,
                            applied_as: kind,
                            generation: 1,
                            active: true,
                        });
                        e.duties.len() - 1
                    }
                };
                planned.push(Planned::new(e, &record_id, &e.duties[i], kind, None));
            }
            e.catalogue_version = new.version;
            self.dirty.insert(id);
        }
        self.catalogue_version = new.version;
        planned
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::rules::Entry as RuleEntry;

    const TODAY: i32 = 20_000;

    fn input(id: &str, list: Option<ListType>, subject: SubjectType) -> Input {
        Input {
            record_id: id.into(),
            department: "courts".into(),
            list_type: list,
            is_list_entry: list.is_some(),
            subject_type: subject,
            subject_key: "91440101MA59UU8U0F".into(),
            subject_name: "广州某公司".into(),
            decision_number: "(2020)粤01执1号".into(),
            valid_from: TODAY - 10,
            valid_until: None,
            source: Source {
                topic: "credit.records".into(),
                partition: 0,
                offset: 9,
            },
        }
    }

    fn v1() -> Catalogue {
        Catalogue::parse(crate::V1).unwrap()
    }

    fn end(id: &str, reason: EndReason) -> EndEntry {
        EndEntry {
            record_id: id.into(),
            reason,
        }
    }

    #[test]
    fn an_entry_fans_out_once_and_ends_once() {
        let c = v1();
        let mut s = PartitionState::new(1);
        let r = input(
            "courts:0:1",
            Some(ListType::JudgementDefaulter),
            SubjectType::LegalPerson,
        );
        let (outcome, first) = s.plan_record(&c, r.clone(), TODAY);
        assert_eq!(outcome, RecordOutcome::Entered);
        let want: Vec<String> = rules::targets(
            &c,
            &RuleEntry {
                record_id: r.record_id.clone(),
                list_type: ListType::JudgementDefaulter,
                subject_type: SubjectType::LegalPerson,
            },
        )
        .iter()
        .map(|(t, k)| rules::notice_id(t, *k, 1))
        .collect();
        assert!(!want.is_empty());
        assert_eq!(
            first
                .iter()
                .map(|p| p.notice_id.clone())
                .collect::<Vec<_>>(),
            want
        );
        assert_eq!(
            s.plan_record(&c, r.clone(), TODAY),
            (RecordOutcome::Known, Vec::new()),
            "a replayed record sends nothing"
        );
        let lifts = s
            .plan_command(&end(&r.record_id, EndReason::Repaired))
            .unwrap();
        assert_eq!(lifts.len(), first.len());
        assert!(
            lifts
                .iter()
                .all(|p| p.kind == NoticeKind::Lift && p.notice_id.ends_with("/lift/1"))
        );
        assert!(
            s.plan_command(&end(&r.record_id, EndReason::Repaired))
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            s.plan_command(&end("nope", EndReason::Expired)),
            Err(CommandError::UnknownEntry("nope".into()))
        );
        assert_eq!(
            s.plan_command(&end(&r.record_id, EndReason::CatalogueChange)),
            Err(CommandError::NotAnOperatorReason)
        );
        assert_eq!(s.take_dirty(), vec![r.record_id.clone()]);
        assert!(s.take_dirty().is_empty());
    }

    #[test]
    fn withdrawal_and_non_entries() {
        let c = v1();
        let mut s = PartitionState::new(1);
        assert_eq!(
            s.plan_record(
                &c,
                input("market:0:1", None, SubjectType::LegalPerson),
                TODAY
            ),
            (RecordOutcome::NotAnEntry, Vec::new())
        );
        let (_, n) = s.plan_record(
            &c,
            input(
                "tax:0:2",
                Some(ListType::TaxGradeA),
                SubjectType::LegalPerson,
            ),
            TODAY,
        );
        assert!(!n.is_empty() && n.iter().all(|p| p.kind == NoticeKind::Reward));
        let w = s
            .plan_command(&end("tax:0:2", EndReason::Withdrawn))
            .unwrap();
        assert_eq!(w.len(), n.len());
        assert!(w.iter().all(|p| p.kind == NoticeKind::Withdrawal));
    }

    /// A table of validity cases: what arrives, on which day, and what the
    /// engine does with it then and as the days pass.
    #[test]
    fn expiry_table() {
        let c = v1();
        // (last valid day relative to today, sent on arrival, lifted on day +n)
        let cases: [(Option<i32>, bool, Option<i32>); 6] = [
            (None, true, None),         // open-ended: until lifted
            (Some(-3650), false, None), // ended ten years ago: late
            (Some(-1), false, None),    // ended yesterday: late
            (Some(0), true, Some(1)),   // last day today: lifted tomorrow
            (Some(1), true, Some(2)),
            (Some(400), true, Some(401)),
        ];
        for (i, (until, sent, lifted_on)) in cases.into_iter().enumerate() {
            let mut s = PartitionState::new(1);
            let mut r = input(
                &format!("courts:0:{i}"),
                Some(ListType::JudgementDefaulter),
                SubjectType::NaturalPerson,
            );
            r.valid_until = until.map(|d| TODAY + d);
            let (outcome, n) = s.plan_record(&c, r, TODAY);
            assert_eq!(!n.is_empty(), sent, "case {i}");
            assert_eq!(
                outcome,
                if sent {
                    RecordOutcome::Entered
                } else {
                    RecordOutcome::Late
                },
                "case {i}"
            );
            let mut lifted_at = None;
            for day in TODAY..TODAY + 500 {
                let l = s.plan_expiry(day);
                if !l.is_empty() {
                    assert!(lifted_at.is_none(), "case {i}: lifted twice");
                    assert_eq!(l.len(), n.len(), "case {i}: every notice lifted");
                    assert!(
                        l.iter()
                            .all(|p| p.kind == NoticeKind::Lift
                                && p.reason == Some(EndReason::Expired)),
                        "case {i}"
                    );
                    lifted_at = Some(day - TODAY);
                }
            }
            assert_eq!(lifted_at, lifted_on, "case {i}");
            let e = s.entries.values().next().unwrap();
            if !sent || lifted_on.is_some() {
                assert_eq!(e.ended, Some(EndReason::Expired), "case {i}");
                assert!(e.duties.iter().all(|d| !d.active), "case {i}");
            }
        }
    }

    #[test]
    fn an_entry_ended_by_an_operator_does_not_expire_again() {
        let c = v1();
        let mut s = PartitionState::new(1);
        let mut r = input(
            "courts:0:1",
            Some(ListType::JudgementDefaulter),
            SubjectType::LegalPerson,
        );
        r.valid_until = Some(TODAY + 5);
        s.plan_record(&c, r, TODAY);
        assert_eq!(s.next_expiry(), Some(TODAY + 5));
        s.plan_command(&end("courts:0:1", EndReason::Repaired))
            .unwrap();
        assert_eq!(s.next_expiry(), None);
        assert!(s.plan_expiry(TODAY + 100).is_empty());
    }

    fn v1_entries(c: &Catalogue, n: usize) -> (PartitionState, Vec<RuleEntry>) {
        let mut s = PartitionState::new(c.version);
        let mut entries = Vec::new();
        for i in 0..n {
            let list = ListType::ALL[i % ListType::ALL.len()];
            let subject = SubjectType::ALL[(i / 3) % SubjectType::ALL.len()];
            let r = input(&format!("courts:0:{i}"), Some(list), subject);
            s.plan_record(c, r.clone(), TODAY);
            entries.push(RuleEntry {
                record_id: r.record_id,
                list_type: list,
                subject_type: subject,
            });
        }
        (s, entries)
    }

    /// V1 with some measures dropped, some departments moved, and one new measure.
    pub(crate) fn v2_from(v1: &Catalogue, keep: &[bool], swap: &[bool]) -> Catalogue {
        let mut c = v1.clone();
        c.version = 2;
        let mut ms = Vec::new();
        for (i, m) in c.measures.iter().enumerate() {
            if !keep[i % keep.len()] {
                continue;
            }
            let mut m = m.clone();
            if swap[i % swap.len()] {
                m.departments = vec!["gov-data"];
            }
            ms.push(m);
        }
        let mut extra = v1.measures[0].clone();
        extra.id = "new-measure".into();
        extra.departments = vec!["culture-tourism", "finance"];
        ms.push(extra);
        c.measures = ms;
        c
    }

    proptest::proptest! {
        /// Activating a new version on planned entries sends exactly the rules'
        /// delta (applies and lifts), nothing on a second activation, and going
        /// back re-applies lifted duties under a new generation.
        #[test]
        fn activation_sends_exactly_the_delta(
            keep in proptest::collection::vec(proptest::bool::weighted(0.7), 16),
            swap in proptest::collection::vec(proptest::bool::weighted(0.2), 16),
            n in 1usize..60,
        ) {
            let v1 = v1();
            let v2 = v2_from(&v1, &keep, &swap);
            let (mut s, entries) = v1_entries(&v1, n);
            let want = rules::delta(&v1, &v2, &entries);
            let got = s.plan_activation(&v2);
            let target = |p: &Planned| Target { record_id: p.record_id.to_string(), measure_id: p.measure_id.clone(), department: p.department };
            let applied: BTreeMap<Target, NoticeKind> = got
                .iter()
                .filter(|p| p.kind != NoticeKind::Lift)
                .map(|p| (target(p), p.kind))
                .collect();
            let lifted: BTreeSet<Target> = got
                .iter()
                .filter(|p| p.kind == NoticeKind::Lift)
                .map(target)
                .collect();
            proptest::prop_assert_eq!(&applied, &want.apply);
            proptest::prop_assert_eq!(&lifted, &want.lift);
            proptest::prop_assert!(got.iter().filter(|p| p.kind == NoticeKind::Lift).all(|p| p.reason == Some(EndReason::CatalogueChange)));
            proptest::prop_assert!(s.plan_activation(&v2).is_empty());
            // Back to v1: what v2 lifted comes back as generation 2.
            let back = s.plan_activation(&v1);
            for t in &want.lift {
                let again = back.iter().any(|p| *p.record_id == *t.record_id && p.measure_id == t.measure_id && p.department == t.department && p.generation == 2 && p.kind != NoticeKind::Lift);
                proptest::prop_assert!(again, "{:?} not re-applied", t);
            }
        }

        /// Whatever mix of records, commands and days: every notice id is
        /// planned at most once, and every lift or withdrawal follows the
        /// punishment or reward it undoes.
        #[test]
        fn no_notice_is_planned_twice(
            ops in proptest::collection::vec((0usize..12, 0u8..4, 0i32..30), 1..120),
        ) {
            let c = v1();
            let mut s = PartitionState::new(1);
            let mut seen = BTreeSet::new();
            let mut applied = BTreeSet::new();
            let mut today = TODAY;
            for (i, op, until) in ops {
                let id = format!("courts:0:{i}");
                let planned = match op {
                    0 => {
                        let mut r = input(&id, Some(ListType::ALL[i % ListType::ALL.len()]), SubjectType::ALL[i % 3]);
                        r.valid_until = Some(TODAY + until - 5);
                        s.plan_record(&c, r, today).1
                    }
                    1 => s.plan_command(&end(&id, EndReason::ALL[i % 3])).unwrap_or_default(),
                    2 => { today += 1; s.plan_expiry(today) }
                    _ => s.plan_record(&c, input(&id, None, SubjectType::LegalPerson), today).1,
                };
                for p in planned {
                    proptest::prop_assert!(seen.insert(p.notice_id.clone()), "{} twice", p.notice_id);
                    let duty = (p.record_id.to_string(), p.measure_id.to_string(), p.department);
                    match p.kind {
                        NoticeKind::Punishment | NoticeKind::Reward => { applied.insert(duty); }
                        _ => proptest::prop_assert!(applied.contains(&duty), "{} undoes nothing", p.notice_id),
                    }
                }
            }
        }
    }
}
