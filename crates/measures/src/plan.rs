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
//!
//! The rules, in one place:
//! * A list entry binds the catalogue's (measure, department) duties: one
//!   punishment or reward notice each.
//! * A department that sends the same record again (same record key of its
//!   own, same content digest) causes nothing ([`RecordOutcome::Duplicate`]);
//!   the same key with other content is an update ([`RecordOutcome::Updated`]):
//!   only the difference in duties is notified, and a correction that makes
//!   it no list entry lifts every duty (reason `corrected`).
//! * An entry's end is the earlier of its stated end and its catalogue
//!   publication period's maximum ([`Catalogue::publication`]); a duty's is
//!   its measure's `validity_months` after the entry starts. Both are lifted
//!   the day after ([`PartitionState::plan_expiry`]); an entry already ended
//!   when it arrives sends nothing ([`RecordOutcome::Late`]).
//! * Credit repair is refused before the publication period's minimum.

use std::collections::BTreeSet;
use std::sync::Arc;

use credit_core::date::add_months;
use credit_core::notice::{Notice, NoticeKind};
use credit_core::record::{ListType, Severity, SubjectType};
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
    /// The identifying department corrected the record (same record key,
    /// other content) so that it no longer binds the measure. Operators
    /// cannot send it.
    Corrected,
}

impl EndReason {
    pub const ALL: [EndReason; 5] = [
        EndReason::Expired,
        EndReason::Repaired,
        EndReason::Withdrawn,
        EndReason::CatalogueChange,
        EndReason::Corrected,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            EndReason::Expired => "expired",
            EndReason::Repaired => "repaired",
            EndReason::Withdrawn => "withdrawn",
            EndReason::CatalogueChange => "catalogue-change",
            EndReason::Corrected => "corrected",
        }
    }

    pub fn parse(s: &str) -> Option<EndReason> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// Whether an operator may end an entry for this reason.
    pub const fn is_operator_reason(self) -> bool {
        !matches!(self, EndReason::CatalogueChange | EndReason::Corrected)
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
    pub severity: Severity,
    /// The department's own key for the record (`lineage.source_record_id`):
    /// with `department`, what a resend of the same record shares.
    pub source_key: String,
    /// A digest of the record's content (everything a department states,
    /// not where or when the bus read it): a resend with the same digest is
    /// the same record.
    pub digest: u64,
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
    /// The duty's last day: its measure's `validity_months` after the entry
    /// started; `None` while the entry lasts.
    pub until: Option<i32>,
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
    /// The last day the entry is valid: the stated end, cut to its
    /// publication period's maximum; `None`: until lifted.
    pub valid_until: Option<i32>,
    pub severity: Severity,
    /// The department's own record key (see [`Input::source_key`]).
    pub source_key: String,
    /// The content digest of the record version last applied.
    pub digest: u64,
    /// The latest version of the record on the records topic.
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
                until: self.duty_until(m),
            })
            .collect()
    }

    /// The last day measure `m` applies to this entry.
    fn duty_until(&self, m: &crate::Measure) -> Option<i32> {
        m.validity_months
            .map(|months| add_months(self.valid_from, months) - 1)
    }

    /// The next day on which something of this entry ends: its own end or a
    /// duty's, if it is still active.
    fn next_end(&self) -> Option<i32> {
        if self.ended.is_some() {
            return None;
        }
        self.duties
            .iter()
            .filter(|d| d.active)
            .filter_map(|d| d.until)
            .chain(self.valid_until)
            .min()
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
                    && duty.until == self.duty_until(m)
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
    /// The same record again (same record id: a replay of the bus's own).
    Known,
    /// The department sent the same record again (same record key of its
    /// own, same content): nothing changes.
    Duplicate,
    /// The department sent its record again with other content: the entry
    /// takes the new content; only the difference in duties is notified.
    Updated,
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
    #[error("{0} is not a reason an operator can give; use repaired, expired or withdrawn")]
    NotAnOperatorReason(&'static str),
    #[error(
        "credit repair of {record_id} is possible from {from}: a {severity} entry of this list stays published at least {months} months"
    )]
    TooEarly {
        record_id: String,
        from: String,
        severity: &'static str,
        months: u32,
    },
}

/// All that is known about the entries of one input partition.
#[derive(Debug, Default)]
pub struct PartitionState {
    pub entries: FxHashMap<String, Entry>,
    /// The catalogue version in force on this partition (its last activation).
    pub catalogue_version: u32,
    /// Entries changed since [`PartitionState::take_dirty`] last ran.
    dirty: FxHashSet<String>,
    /// (next end, record id) of every active entry with something that ends:
    /// what [`PartitionState::plan_expiry`] looks at first.
    expiry: BTreeSet<(i32, String)>,
    /// The day each entry is scheduled under in `expiry`.
    scheduled: FxHashMap<String, i32>,
    /// (department, department's record key) → record id of its entry.
    by_source: FxHashMap<(String, String), String>,
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
        if !e.source_key.is_empty() {
            self.by_source.insert(
                (e.department.clone(), e.source_key.clone()),
                e.record_id.clone(),
            );
        }
        let id = e.record_id.clone();
        self.entries.insert(id.clone(), e);
        self.reschedule(&id);
    }

    /// Puts entry `id` under its next end in the schedule (or takes it out).
    fn reschedule(&mut self, id: &str) {
        if let Some(day) = self.scheduled.remove(id) {
            self.expiry.remove(&(day, id.to_string()));
        }
        if let Some(day) = self.entries.get(id).and_then(Entry::next_end) {
            self.expiry.insert((day, id.to_string()));
            self.scheduled.insert(id.to_string(), day);
        }
    }

    /// The record ids of the entries changed since the last call.
    pub fn take_dirty(&mut self) -> Vec<String> {
        let mut v: Vec<String> = self.dirty.drain().collect();
        v.sort_unstable();
        v
    }

    /// The earliest day something of an active entry ends, if any.
    pub fn next_expiry(&self) -> Option<i32> {
        self.expiry.first().map(|(d, _)| *d)
    }

    /// The record id of the entry a department's record key belongs to.
    pub fn entry_of(&self, department: &str, source_key: &str) -> Option<&str> {
        self.by_source
            .get(&(department.to_string(), source_key.to_string()))
            .map(String::as_str)
    }

    /// Notices for a record on `today`: a new list entry gets one per duty,
    /// unless its validity already ended (then it is kept as ended, and
    /// nothing is sent); a resend of a department's record is a duplicate or
    /// an update; anything else gets none.
    pub fn plan_record(
        &mut self,
        catalogue: &Catalogue,
        r: Input,
        today: i32,
    ) -> (RecordOutcome, Vec<Planned>) {
        if self.entries.contains_key(&r.record_id) {
            return (RecordOutcome::Known, Vec::new());
        }
        if !r.source_key.is_empty()
            && let Some(id) = self
                .by_source
                .get(&(r.department.clone(), r.source_key.clone()))
                .cloned()
        {
            return self.plan_update(catalogue, &id, r, today);
        }
        let Some(list_type) = r.list_type.filter(|_| r.is_list_entry) else {
            return (RecordOutcome::NotAnEntry, Vec::new());
        };
        let mut e = Entry {
            record_id: r.record_id,
            department: r.department,
            list_type,
            subject_type: r.subject_type,
            subject_key: r.subject_key,
            subject_name: r.subject_name,
            decision_number: r.decision_number,
            valid_from: r.valid_from,
            valid_until: published_until(
                catalogue,
                list_type,
                r.severity,
                r.valid_from,
                r.valid_until,
            ),
            severity: r.severity,
            source_key: r.source_key,
            digest: r.digest,
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
        // A duty whose own validity already ended is not applied at all.
        for d in &mut e.duties {
            if d.until.is_some_and(|u| u < today) {
                d.active = false;
            }
        }
        let planned = if late {
            Vec::new()
        } else {
            let record_id: Arc<str> = e.record_id.as_str().into();
            e.duties
                .iter()
                .filter(|d| d.active)
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

    /// A department's record `r` for the entry `id` already holds.
    fn plan_update(
        &mut self,
        catalogue: &Catalogue,
        id: &str,
        r: Input,
        today: i32,
    ) -> (RecordOutcome, Vec<Planned>) {
        let e = self.entries.get_mut(id).expect("indexed entries exist");
        if e.digest == r.digest {
            return (RecordOutcome::Duplicate, Vec::new());
        }
        let Some(list_type) = r.list_type.filter(|_| r.is_list_entry) else {
            // A correction that makes the record no list entry: lift everything.
            e.digest = r.digest;
            e.source = r.source;
            let planned = self.end(id, EndReason::Corrected);
            self.dirty.insert(id.to_string());
            return (RecordOutcome::Updated, planned);
        };
        e.list_type = list_type;
        e.subject_type = r.subject_type;
        e.subject_key = r.subject_key;
        e.subject_name = r.subject_name;
        e.decision_number = r.decision_number;
        e.valid_from = r.valid_from;
        e.valid_until = published_until(
            catalogue,
            list_type,
            r.severity,
            r.valid_from,
            r.valid_until,
        );
        e.severity = r.severity;
        e.digest = r.digest;
        e.source = r.source;
        let mut planned = Vec::new();
        if e.ended.is_none() {
            // The duties the corrected record binds, against those it had:
            // the same difference a catalogue activation sends.
            planned = move_duties(e, catalogue, EndReason::Corrected, today);
        }
        e.catalogue_version = catalogue.version;
        self.dirty.insert(id.to_string());
        self.reschedule(id);
        (RecordOutcome::Updated, planned)
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
        self.dirty.insert(id.to_string());
        self.reschedule(id);
        planned
    }

    /// Notices for an operator's command under the partition's `catalogue`
    /// on `today`: ending an entry lifts (or withdraws) each active duty
    /// exactly once; ending it again changes nothing. Credit repair waits for
    /// the entry's minimum publication period.
    pub fn plan_command(
        &mut self,
        c: &EndEntry,
        catalogue: &Catalogue,
        today: i32,
    ) -> Result<Vec<Planned>, CommandError> {
        if !c.reason.is_operator_reason() {
            return Err(CommandError::NotAnOperatorReason(c.reason.as_str()));
        }
        let e = self
            .entries
            .get(&c.record_id)
            .ok_or_else(|| CommandError::UnknownEntry(c.record_id.clone()))?;
        if c.reason == EndReason::Repaired
            && e.ended.is_none()
            && let Some(p) = catalogue.publication(e.list_type, e.severity)
        {
            let from = add_months(e.valid_from, p.min_months);
            if today < from {
                return Err(CommandError::TooEarly {
                    record_id: c.record_id.clone(),
                    from: credit_core::date::format(from),
                    severity: e.severity.symbol(),
                    months: p.min_months,
                });
            }
        }
        Ok(self.end(&c.record_id, c.reason))
    }

    /// Lifts, oldest first, every duty whose measure's validity ended before
    /// `today`, and ends every entry whose own validity did (each exactly
    /// once: what ended leaves the schedule).
    pub fn plan_expiry(&mut self, today: i32) -> Vec<Planned> {
        let mut planned = Vec::new();
        while let Some((day, id)) = self.expiry.first().cloned() {
            if day >= today {
                break;
            }
            let e = self.entries.get_mut(&id).expect("scheduled entries exist");
            if e.expired_by(today) {
                planned.extend(self.end(&id, EndReason::Expired));
                continue;
            }
            let record_id: Arc<str> = e.record_id.as_str().into();
            for i in 0..e.duties.len() {
                let d = &e.duties[i];
                if d.active && d.until.is_some_and(|u| u < today) {
                    e.duties[i].active = false;
                    planned.push(Planned::new(
                        e,
                        &record_id,
                        &e.duties[i],
                        NoticeKind::Lift,
                        Some(EndReason::Expired),
                    ));
                }
            }
            self.dirty.insert(id.clone());
            self.reschedule(&id);
        }
        planned
    }

    /// Notices for activating catalogue `new` on this partition: for every
    /// entry still active, each duty the new version no longer binds is lifted,
    /// and each (measure, department) it binds without an active duty is
    /// applied (again, with the next generation, if an earlier version had
    /// lifted it). Activating the version already in force plans nothing.
    pub fn plan_activation(&mut self, new: &Catalogue, today: i32) -> Vec<Planned> {
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
            planned.extend(move_duties(e, new, EndReason::CatalogueChange, today));
            e.catalogue_version = new.version;
            self.dirty.insert(id.clone());
            self.reschedule(&id);
        }
        self.catalogue_version = new.version;
        planned
    }
}

/// The last day an entry is published: its stated end, cut to the maximum of
/// its publication period when the catalogue sets one.
pub fn published_until(
    catalogue: &Catalogue,
    list: ListType,
    severity: Severity,
    from: i32,
    until: Option<i32>,
) -> Option<i32> {
    let max = catalogue
        .publication(list, severity)
        .map(|p| add_months(from, p.max_months) - 1);
    match (until, max) {
        (Some(u), Some(m)) => Some(u.min(m)),
        (u, m) => u.or(m),
    }
}

/// Moves an active entry's duties to what `catalogue` binds for it now: each
/// active duty no longer bound is lifted for `reason`, each bound (measure,
/// department) without an active duty is applied (under the next generation
/// if it was applied before), unless its measure's validity already ended.
fn move_duties(
    e: &mut Entry,
    catalogue: &Catalogue,
    reason: EndReason,
    today: i32,
) -> Vec<Planned> {
    let record_id: Arc<str> = e.record_id.as_str().into();
    let mut planned = Vec::new();
    let mut wanted = rules::targets(
        catalogue,
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
                Some(reason),
            ));
        }
    }
    for (t, kind) in wanted {
        let until = catalogue
            .measure(&t.measure_id)
            .and_then(|m| e.duty_until(m));
        if until.is_some_and(|u| u < today) {
            continue;
        }
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
                d.until = until;
                i
            }
            None => {
                e.duties.push(Duty {
                    measure_id: t.measure_id.clone(),
                    department: t.department,
                    applied_as: kind,
                    generation: 1,
                    active: true,
                    until,
                });
                e.duties.len() - 1
            }
        };
        planned.push(Planned::new(e, &record_id, &e.duties[i], kind, None));
    }
    planned
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::rules::Entry as RuleEntry;

    const TODAY: i32 = 20_000;

    impl PartitionState {
        /// `plan_command` under v1, today.
        fn plan_command_v1(&mut self, c: &EndEntry) -> Result<Vec<Planned>, CommandError> {
            self.plan_command(c, &v1(), TODAY)
        }
    }

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
            severity: Severity::Serious,
            source_key: format!("key-{id}"),
            digest: 7,
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
            .plan_command_v1(&end(&r.record_id, EndReason::Repaired))
            .unwrap();
        assert_eq!(lifts.len(), first.len());
        assert!(
            lifts
                .iter()
                .all(|p| p.kind == NoticeKind::Lift && p.notice_id.ends_with("/lift/1"))
        );
        assert!(
            s.plan_command_v1(&end(&r.record_id, EndReason::Repaired))
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            s.plan_command_v1(&end("nope", EndReason::Expired)),
            Err(CommandError::UnknownEntry("nope".into()))
        );
        assert_eq!(
            s.plan_command_v1(&end(&r.record_id, EndReason::CatalogueChange)),
            Err(CommandError::NotAnOperatorReason("catalogue-change"))
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
            .plan_command_v1(&end("tax:0:2", EndReason::Withdrawn))
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
        s.plan_command_v1(&end("courts:0:1", EndReason::Repaired))
            .unwrap();
        assert_eq!(s.next_expiry(), None);
        assert!(s.plan_expiry(TODAY + 100).is_empty());
    }

    /// A department resending its records: each case is (what the resend
    /// changes, outcome, notices by kind, whether the entry stays active).
    #[test]
    fn resends_table() {
        let c = v1();
        type Change = fn(&mut Input);
        let cases: [(&str, Change, RecordOutcome, usize, usize, bool); 6] = [
            (
                "identical resend",
                |_| {},
                RecordOutcome::Duplicate,
                0,
                0,
                true,
            ),
            (
                "name corrected",
                |r| {
                    r.subject_name = "广州某某有限公司".into();
                    r.digest = 8;
                },
                RecordOutcome::Updated,
                0,
                0,
                true,
            ),
            (
                "list changed",
                |r| {
                    r.list_type = Some(ListType::WageArrears);
                    r.digest = 9;
                },
                RecordOutcome::Updated,
                1,
                1,
                true,
            ),
            (
                "no longer an entry",
                |r| {
                    r.is_list_entry = false;
                    r.digest = 10;
                },
                RecordOutcome::Updated,
                0,
                1,
                false,
            ),
            (
                "subject type corrected",
                |r| {
                    r.subject_type = SubjectType::NaturalPerson;
                    r.digest = 11;
                },
                RecordOutcome::Updated,
                1,
                1,
                true,
            ),
            (
                "ended in the past",
                |r| {
                    r.valid_until = Some(TODAY - 1);
                    r.digest = 12;
                },
                RecordOutcome::Updated,
                0,
                0,
                true,
            ),
        ];
        for (name, change, outcome, applies, lifts, active) in cases {
            let mut s = PartitionState::new(1);
            let first = input(
                "courts:0:1",
                Some(ListType::JudgementDefaulter),
                SubjectType::LegalPerson,
            );
            let (_, sent) = s.plan_record(&c, first.clone(), TODAY);
            let mut again = first.clone();
            again.record_id = "courts:0:2".into();
            again.source.offset = 10;
            change(&mut again);
            let (o, ns) = s.plan_record(&c, again.clone(), TODAY);
            assert_eq!(o, outcome, "{name}");
            let count = |k: &[NoticeKind]| ns.iter().filter(|n| k.contains(&n.kind)).count();
            let applied = count(&[NoticeKind::Punishment, NoticeKind::Reward]);
            let lifted = count(&[NoticeKind::Lift]);
            assert_eq!(applied > 0, applies > 0, "{name}: {ns:?}");
            assert_eq!(lifted > 0, lifts > 0, "{name}: {ns:?}");
            if name == "no longer an entry" {
                assert_eq!(lifted, sent.len(), "{name}: every duty lifted");
                assert!(ns.iter().all(|n| n.reason == Some(EndReason::Corrected)));
            }
            // Nothing is notified twice, whatever the resend did.
            let mut ids: Vec<&String> = sent.iter().chain(&ns).map(|n| &n.notice_id).collect();
            ids.sort();
            let n = ids.len();
            ids.dedup();
            assert_eq!(ids.len(), n, "{name}");
            let e = &s.entries["courts:0:1"];
            assert_eq!(e.ended.is_none(), active, "{name}");
            assert_eq!(e.duties.iter().any(|d| d.active), active, "{name}");
            // The entry keeps its identity; what it says is the latest version.
            assert_eq!(s.entry_of("courts", &first.source_key), Some("courts:0:1"));
            if o == RecordOutcome::Updated {
                assert_eq!(e.source.offset, 10, "{name}");
            }
            // The same resend once more (or the bus replaying it) changes nothing.
            assert_eq!(
                s.plan_record(&c, again, TODAY),
                (RecordOutcome::Duplicate, Vec::new()),
                "{name}"
            );
            if name == "ended in the past" {
                let l = s.plan_expiry(TODAY);
                assert_eq!(l.len(), sent.len(), "{name}: lifted as expired at once");
            }
        }
    }

    /// Publication periods of v1: a serious violation is published at least
    /// 12 and at most 36 months; judgement defaulters have no period.
    #[test]
    fn publication_periods_bound_repair_and_end() {
        let c = v1();
        let mut s = PartitionState::new(1);
        let mut r = input(
            "market:0:1",
            Some(ListType::SeriousViolation),
            SubjectType::LegalPerson,
        );
        r.valid_from = TODAY - 30;
        r.valid_until = Some(TODAY + 5000);
        let (_, sent) = s.plan_record(&c, r, TODAY);
        let e = &s.entries["market:0:1"];
        assert_eq!(
            e.valid_until,
            Some(add_months(TODAY - 30, 36) - 1),
            "cut to 36 months"
        );
        let too_early = s.plan_command(&end("market:0:1", EndReason::Repaired), &c, TODAY);
        match too_early {
            Err(CommandError::TooEarly {
                months, ref from, ..
            }) => {
                assert_eq!(months, 12);
                assert_eq!(*from, credit_core::date::format(add_months(TODAY - 30, 12)));
            }
            other => panic!("{other:?}"),
        }
        // Withdrawal after an objection is not bound by the period.
        let mut w = PartitionState::new(1);
        let mut r2 = input(
            "market:0:2",
            Some(ListType::SeriousViolation),
            SubjectType::LegalPerson,
        );
        r2.valid_from = TODAY - 30;
        w.plan_record(&c, r2, TODAY);
        assert!(
            !w.plan_command(&end("market:0:2", EndReason::Withdrawn), &c, TODAY)
                .unwrap()
                .is_empty()
        );
        // A year later repair is granted.
        let later = add_months(TODAY - 30, 12);
        let lifts = s
            .plan_command(&end("market:0:1", EndReason::Repaired), &c, later)
            .unwrap();
        assert_eq!(lifts.len(), sent.len());
        // Judgement defaulters: no period, repair at once, no cut end.
        let mut j = PartitionState::new(1);
        j.plan_record(
            &c,
            input(
                "courts:0:3",
                Some(ListType::JudgementDefaulter),
                SubjectType::LegalPerson,
            ),
            TODAY,
        );
        assert_eq!(j.entries["courts:0:3"].valid_until, None);
        assert!(
            !j.plan_command(&end("courts:0:3", EndReason::Repaired), &c, TODAY)
                .unwrap()
                .is_empty()
        );
    }

    /// A measure with `validity_months` is lifted on its own, the day after
    /// its last day, while the entry's other duties stay.
    #[test]
    fn measure_validity_lifts_its_duties_only() {
        let c = v1();
        let m = c
            .measures
            .iter()
            .find(|m| {
                m.validity_months.is_some()
                    && m.lists.contains(&ListType::JudgementDefaulter)
                    && m.subject_types.contains(&SubjectType::LegalPerson)
            })
            .expect("v1 has a measure with a validity");
        let months = m.validity_months.unwrap();
        let mut s = PartitionState::new(1);
        let r = input(
            "courts:0:1",
            Some(ListType::JudgementDefaulter),
            SubjectType::LegalPerson,
        );
        let start = r.valid_from;
        let (_, sent) = s.plan_record(&c, r, TODAY);
        let last = add_months(start, months) - 1;
        assert!(
            s.plan_expiry(last).is_empty(),
            "still valid on its last day"
        );
        let lifted = s.plan_expiry(last + 1);
        let with_validity = sent
            .iter()
            .filter(|n| c.measure(&n.measure_id).unwrap().validity_months == Some(months))
            .count();
        assert_eq!(lifted.len(), with_validity);
        assert!(
            lifted
                .iter()
                .all(|n| c.measure(&n.measure_id).unwrap().validity_months.is_some())
        );
        assert!(s.plan_expiry(last + 400).len() <= sent.len() - with_validity);
        assert!(s.entries["courts:0:1"].ended.is_none() || sent.len() == with_validity);
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
            let got = s.plan_activation(&v2, TODAY);
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
            proptest::prop_assert!(s.plan_activation(&v2, TODAY).is_empty());
            // Back to v1: what v2 lifted comes back as generation 2.
            let back = s.plan_activation(&v1, TODAY);
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
            ops in proptest::collection::vec((0usize..12, 0u8..5, 0i32..30), 1..120),
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
                    1 => s.plan_command_v1(&end(&id, EndReason::ALL[i % 3])).unwrap_or_default(),
                    2 => { today += 1; s.plan_expiry(today) }
                    // The department resends record i with other content.
                    3 if until % 3 == 0 => {
                        let mut r = input(&format!("courts:1:{i}-{until}"), Some(ListType::ALL[(i + until as usize) % ListType::ALL.len()]), SubjectType::ALL[i % 3]);
                        r.source_key = format!("key-{id}");
                        r.digest = until as u64;
                        r.is_list_entry = until % 2 == 0;
                        s.plan_record(&c, r, today).1
                    }
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
