//! The engine's state for one input partition, and the pure planning step that
//! turns an input (a normalised record or a command) into notices.
//!
//! Everything here is a plain value: the Kafka loop persists it to the
//! changelog, replays it on recovery and hands inputs to [`PartitionState::plan_record`]
//! and [`PartitionState::plan_command`].

use std::collections::BTreeMap;
use std::sync::Arc;

use rustc_hash::{FxHashMap, FxHashSet};

use credit_core::notice::NoticeKind;
use credit_core::record::{ListType, SubjectType};
use credit_measures::Catalogue;
use credit_measures::rules::{self, Entry, Target};
use serde::{Deserialize, Serialize};

/// A normalised record, reduced to what the engine needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    pub record_id: String,
    pub department: String,
    pub list_type: Option<ListType>,
    /// Only dishonesty and red list entries bind measures.
    pub is_list_entry: bool,
    pub subject_type: SubjectType,
    pub subject_key: String,
    pub subject_name: String,
    pub decision_number: String,
    /// Where the record sits on the records topic.
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// Why an entry ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
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
    pub const fn as_str(self) -> &'static str {
        match self {
            EndReason::Expired => "expired",
            EndReason::Repaired => "repaired",
            EndReason::Withdrawn => "withdrawn",
            EndReason::CatalogueChange => "catalogue-change",
        }
    }
}

/// An operator command on the engine's command topic (JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Command {
    pub record_id: String,
    pub reason: EndReason,
}

/// An operator command activating a catalogue version (JSON `{"activate": N}`),
/// written once to every partition of the command topic, so each partition
/// switches at a definite point of its input and replays decide the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Activation {
    pub activate: u32,
}

/// One (measure, department) duty of an entry. In the changelog a duty is the
/// array `[measure_id, department, applied_as, generation, active]`: an entry
/// has a dozen duties, and their field names were most of its JSON and of the
/// time spent writing it. Duties written as objects (before) still read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duty {
    /// Shared with the catalogue and the planned notices (an entry holds a
    /// dozen duties, the engine millions of entries).
    pub measure_id: Arc<str>,
    /// A catalogue department id.
    pub department: &'static str,
    /// The kind of notice that applied it (punishment or reward).
    pub applied_as: NoticeKindName,
    pub generation: u32,
    pub active: bool,
}

impl Serialize for Duty {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        (
            &*self.measure_id,
            self.department,
            self.applied_as,
            self.generation,
            self.active,
        )
            .serialize(s)
    }
}

/// A stored duty's department as its catalogue id; catalogues are validated
/// against the department table, so anything else is a corrupt record.
fn known_dept<E: serde::de::Error>(id: &str) -> Result<&'static str, E> {
    credit_core::catalogue::department(id)
        .map(|d| d.id)
        .ok_or_else(|| E::custom(format!("unknown department {id:?} in a duty")))
}

impl<'de> Deserialize<'de> for Duty {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Object {
            measure_id: String,
            department: String,
            applied_as: NoticeKindName,
            generation: u32,
            active: bool,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Array(String, String, NoticeKindName, u32, bool),
            Object(Object),
        }
        Ok(match Form::deserialize(d)? {
            Form::Array(measure_id, department, applied_as, generation, active) => Duty {
                measure_id: measure_id.into(),
                department: known_dept(&department)?,
                applied_as,
                generation,
                active,
            },
            Form::Object(o) => Duty {
                measure_id: o.measure_id.into(),
                department: known_dept(&o.department)?,
                applied_as: o.applied_as,
                generation: o.generation,
                active: o.active,
            },
        })
    }
}

/// `NoticeKind` as stored in the changelog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NoticeKindName {
    Punishment,
    Reward,
    Lift,
    Withdrawal,
}

impl From<NoticeKind> for NoticeKindName {
    fn from(k: NoticeKind) -> Self {
        match k {
            NoticeKind::Punishment => NoticeKindName::Punishment,
            NoticeKind::Reward => NoticeKindName::Reward,
            NoticeKind::Lift => NoticeKindName::Lift,
            NoticeKind::Withdrawal => NoticeKindName::Withdrawal,
        }
    }
}

impl From<NoticeKindName> for NoticeKind {
    fn from(k: NoticeKindName) -> Self {
        match k {
            NoticeKindName::Punishment => NoticeKind::Punishment,
            NoticeKindName::Reward => NoticeKind::Reward,
            NoticeKindName::Lift => NoticeKind::Lift,
            NoticeKindName::Withdrawal => NoticeKind::Withdrawal,
        }
    }
}

/// A list entry and every duty it created (changelog value under `entry/<record_id>`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EntryState {
    pub record_id: String,
    pub department: String,
    pub list_type: String,
    pub subject_type: String,
    pub subject_key: String,
    pub subject_name: String,
    pub decision_number: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub catalogue_version: u32,
    pub duties: Vec<Duty>,
    pub ended: Option<EndReason>,
}

impl EntryState {
    /// The entry's list and subject type, `None` if either does not parse.
    fn types(&self) -> Option<(ListType, SubjectType)> {
        let list = ListType::ALL
            .iter()
            .copied()
            .find(|l| l.symbol() == self.list_type)?;
        let subject = SubjectType::ALL
            .iter()
            .copied()
            .find(|t| t.symbol() == self.subject_type)?;
        Some((list, subject))
    }
}

/// The duties an entry of `e`'s list and subject type gets from `catalogue`
/// when nothing has moved them: generation 1 each, active unless the entry
/// ended. `None` if the entry's types do not parse.
fn as_bound(catalogue: &Catalogue, e: &EntryState) -> Option<Vec<Duty>> {
    let (list, subject) = e.types()?;
    Some(
        rules::bound(catalogue, list, subject)
            .into_iter()
            .map(|(m, d)| Duty {
                measure_id: m.id.clone(),
                department: d,
                applied_as: rules::applying(m.kind).into(),
                generation: 1,
                active: e.ended.is_none(),
            })
            .collect(),
    )
}

/// Whether `e`'s duties are [`as_bound`] by `catalogue`, compared in place
/// (the engine asks for every entry it writes).
fn is_as_bound(catalogue: &Catalogue, e: &EntryState) -> bool {
    let Some((list, subject)) = e.types() else {
        return false;
    };
    let bound = rules::bound(catalogue, list, subject);
    bound.len() == e.duties.len()
        && bound.iter().zip(&e.duties).all(|((m, d), duty)| {
            duty.measure_id == m.id
                && duty.department == *d
                && duty.applied_as == rules::applying(m.kind).into()
                && duty.generation == 1
                && duty.active == e.ended.is_none()
        })
}

/// An entry as the changelog holds it. Its duties are left out when they are
/// exactly what its catalogue version binds ([`as_bound`]; most entries: new
/// ones, and ones ended without a catalogue change), since they were most of
/// the entry's bytes and of the time spent writing it; they are restored from
/// that version on replay. Entries written with their duties still read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEntry {
    pub record_id: String,
    pub department: String,
    pub list_type: String,
    pub subject_type: String,
    pub subject_key: String,
    pub subject_name: String,
    pub decision_number: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub catalogue_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duties: Option<Vec<Duty>>,
    pub ended: Option<EndReason>,
}

/// Writes `e` as the changelog value of its entry, leaving its duties out
/// when `catalogue` (its version) binds exactly them.
pub fn write_entry(out: &mut Vec<u8>, e: &EntryState, catalogue: Option<&Catalogue>) {
    #[derive(Serialize)]
    struct Out<'a> {
        record_id: &'a str,
        department: &'a str,
        list_type: &'a str,
        subject_type: &'a str,
        subject_key: &'a str,
        subject_name: &'a str,
        decision_number: &'a str,
        topic: &'a str,
        partition: i32,
        offset: i64,
        catalogue_version: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        duties: Option<&'a [Duty]>,
        ended: Option<EndReason>,
    }
    let derived = catalogue
        .filter(|c| c.version == e.catalogue_version)
        .is_some_and(|c| is_as_bound(c, e));
    let v = Out {
        record_id: &e.record_id,
        department: &e.department,
        list_type: &e.list_type,
        subject_type: &e.subject_type,
        subject_key: &e.subject_key,
        subject_name: &e.subject_name,
        decision_number: &e.decision_number,
        topic: &e.topic,
        partition: e.partition,
        offset: e.offset,
        catalogue_version: e.catalogue_version,
        duties: (!derived).then_some(&e.duties[..]),
        ended: e.ended,
    };
    serde_json::to_writer(out, &v).expect("entries serialise");
}

impl StoredEntry {
    /// The catalogue version replay needs to restore the duties, if any.
    pub fn needs_catalogue(&self) -> Option<u32> {
        self.duties.is_none().then_some(self.catalogue_version)
    }

    /// The entry, its left-out duties restored from `catalogue` (its version).
    pub fn restore(self, catalogue: Option<&Catalogue>) -> Result<EntryState, String> {
        let mut e = EntryState {
            record_id: self.record_id,
            department: self.department,
            list_type: self.list_type,
            subject_type: self.subject_type,
            subject_key: self.subject_key,
            subject_name: self.subject_name,
            decision_number: self.decision_number,
            topic: self.topic,
            partition: self.partition,
            offset: self.offset,
            catalogue_version: self.catalogue_version,
            duties: Vec::new(),
            ended: self.ended,
        };
        e.duties = match self.duties {
            Some(d) => d,
            None => {
                let c = catalogue
                    .filter(|c| c.version == e.catalogue_version)
                    .ok_or_else(|| {
                        format!(
                            "entry {} needs catalogue version {} to restore its duties",
                            e.record_id, e.catalogue_version
                        )
                    })?;
                as_bound(c, &e).ok_or_else(|| {
                    format!(
                        "entry {}: unknown list or subject type {} / {}",
                        e.record_id, e.list_type, e.subject_type
                    )
                })?
            }
        };
        Ok(e)
    }
}

/// Which engine input topic an input came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputTopic {
    Records,
    Commands,
}

/// Where the input that planned a notice sits (the notice's input header,
/// `<partition>/r<offset>` or `<partition>/c<offset>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputPosition {
    pub partition: i32,
    pub topic: InputTopic,
    pub offset: i64,
}

impl std::fmt::Display for InputPosition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let t = match self.topic {
            InputTopic::Records => 'r',
            InputTopic::Commands => 'c',
        };
        write!(f, "{}/{t}{}", self.partition, self.offset)
    }
}

impl InputPosition {
    /// The inverse of `to_string`; `None` for anything else.
    pub fn parse(v: &[u8]) -> Option<InputPosition> {
        let v = std::str::from_utf8(v).ok()?;
        let (p, rest) = v.split_once('/')?;
        let topic = match rest.as_bytes().first()? {
            b'r' => InputTopic::Records,
            b'c' => InputTopic::Commands,
            _ => return None,
        };
        // `parse` accepts a leading '+', which we never write.
        let digits = |s: &str| !s.starts_with('+');
        let offset = &rest[1..];
        Some(InputPosition {
            partition: p.parse().ok().filter(|_| digits(p))?,
            topic,
            offset: offset.parse().ok().filter(|_| digits(offset))?,
        })
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
    /// The notice this plan sends for entry `e`, with its measure's name and
    /// legal basis.
    pub fn notice<'a>(
        &'a self,
        e: &'a EntryState,
        measure_name: &'a str,
        legal_basis: &'a str,
    ) -> credit_core::notice::Notice<'a> {
        credit_core::notice::Notice {
            notice_id: &self.notice_id,
            kind: self.kind,
            department: self.department,
            measure_id: &self.measure_id,
            measure_name,
            legal_basis,
            catalogue_version: e.catalogue_version as i32,
            generation: self.generation as i32,
            record_id: &self.record_id,
            list_type: &e.list_type,
            subject_type: &e.subject_type,
            subject_key: &e.subject_key,
            subject_name: &e.subject_name,
            identifying_department: &e.department,
            decision_number: &e.decision_number,
            reason: self.reason.map(|r| r.as_str()),
            source_topic: &e.topic,
            source_partition: e.partition,
            source_offset: e.offset,
        }
    }
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

/// The checkpoint of one input partition (changelog value under `checkpoint`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// Next offset to process, per input topic.
    pub next: BTreeMap<String, i64>,
    /// Per output `topic:partition`, an offset at or below every notice this
    /// input partition wrote after this checkpoint: where recovery scans from.
    pub floors: BTreeMap<String, i64>,
    /// The catalogue version this partition applies; 0 = the engine's configured one.
    #[serde(default)]
    pub catalogue_version: u32,
}

/// The key of an output partition in [`Checkpoint::floors`].
pub fn floor_key(topic: &str, partition: i32) -> String {
    format!("{topic}:{partition}")
}

/// The inverse of [`floor_key`].
pub fn parse_floor_key(key: &str) -> Option<(&str, i32)> {
    let (t, p) = key.rsplit_once(':')?;
    Some((t, p.parse().ok()?))
}

/// All the engine knows about one input partition.
#[derive(Debug, Default)]
pub struct PartitionState {
    pub entries: FxHashMap<String, EntryState>,
    /// The last checkpoint written (or replayed) for this partition.
    pub checkpoint: Checkpoint,
    /// Progress since then: next offset per input topic.
    pub next: BTreeMap<String, i64>,
    /// Notice ids found on the output topics after the last checkpoint: already
    /// sent by an instance that died before checkpointing. Never sent again.
    pub already_sent: FxHashSet<String>,
    /// Entries changed since the last checkpoint.
    pub dirty: FxHashSet<String>,
    /// Changelog offset up to which this owner has checked for other claims.
    pub tail: i64,
    /// The owner of the latest claim seen on the changelog partition.
    pub claimed_by: Option<String>,
    /// The catalogue version in force since the last activation read (0 = the
    /// configured one); checkpointed with `next`.
    pub catalogue_version: u32,
}

/// An ownership claim on a changelog partition (value under `claim`): the
/// engine's own fencing, because a group coordinator may briefly hand one
/// partition to two members (tansu 0.6 was seen doing so for seconds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claim {
    pub owner: String,
}

impl PartitionState {
    /// Whether input at `offset` of `topic` was already processed (before the last
    /// checkpoint, or earlier in this run).
    pub fn already_processed(&self, topic: &str, offset: i64) -> bool {
        self.next.get(topic).is_some_and(|n| offset < *n)
    }

    /// Notices for a record: a new list entry gets one per duty; anything else
    /// (a duplicate delivery, a record that is no list entry) gets none.
    pub fn plan_record(&mut self, catalogue: &Catalogue, r: Input) -> Vec<Planned> {
        // Takes the input by value: its strings move into the entry.
        let Some(list_type) = r.list_type.filter(|_| r.is_list_entry) else {
            return Vec::new();
        };
        if self.entries.contains_key(&r.record_id) {
            return Vec::new();
        }
        let bound = rules::bound(catalogue, list_type, r.subject_type);
        let record_id: Arc<str> = r.record_id.as_str().into();
        let mut planned = Vec::with_capacity(bound.len());
        let mut duties = Vec::with_capacity(bound.len());
        for (m, department) in bound {
            let kind = rules::applying(m.kind);
            planned.push(Planned {
                notice_id: rules::notice_id_of(&r.record_id, &m.id, department, kind, 1),
                kind,
                record_id: record_id.clone(),
                measure_id: m.id.clone(),
                department,
                generation: 1,
                reason: None,
            });
            duties.push(Duty {
                measure_id: m.id.clone(),
                department,
                applied_as: kind.into(),
                generation: 1,
                active: true,
            });
        }
        self.dirty.insert(r.record_id.clone());
        self.entries.insert(
            r.record_id.clone(),
            EntryState {
                record_id: r.record_id,
                department: r.department,
                list_type: list_type.symbol().to_string(),
                subject_type: r.subject_type.symbol().to_string(),
                subject_key: r.subject_key,
                subject_name: r.subject_name,
                decision_number: r.decision_number,
                topic: r.topic,
                partition: r.partition,
                offset: r.offset,
                catalogue_version: catalogue.version,
                duties,
                ended: None,
            },
        );
        planned
    }

    /// Notices for a command: ending an entry lifts (or withdraws) each active
    /// duty exactly once; ending it again changes nothing.
    pub fn plan_command(&mut self, c: &Command) -> Result<Vec<Planned>, CommandError> {
        if c.reason == EndReason::CatalogueChange {
            return Err(CommandError::NotAnOperatorReason);
        }
        let e = self
            .entries
            .get_mut(&c.record_id)
            .ok_or_else(|| CommandError::UnknownEntry(c.record_id.clone()))?;
        if e.ended.is_some() {
            return Ok(Vec::new());
        }
        let kind = if c.reason == EndReason::Withdrawn {
            NoticeKind::Withdrawal
        } else {
            NoticeKind::Lift
        };
        let mut planned = Vec::new();
        let record_id: Arc<str> = e.record_id.as_str().into();
        for d in e.duties.iter_mut().filter(|d| d.active) {
            d.active = false;
            planned.push(Planned {
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
                reason: Some(c.reason),
            });
        }
        e.ended = Some(c.reason);
        self.dirty.insert(c.record_id.clone());
        Ok(planned)
    }
}

impl PartitionState {
    /// Notices for activating catalogue `new` on this partition: for every entry
    /// still active, each duty the new version no longer binds is lifted, and each
    /// (measure, department) it binds without an active duty is applied (again,
    /// with the next generation, if an earlier version had lifted it). Activating
    /// the version already in force plans nothing.
    pub fn plan_activation(&mut self, new: &Catalogue) -> Vec<Planned> {
        let mut planned = Vec::new();
        let mut ids: Vec<&String> = self.entries.keys().collect();
        ids.sort();
        let ids: Vec<String> = ids.into_iter().cloned().collect();
        for id in ids {
            let e = self.entries.get_mut(&id).expect("listed above");
            if e.ended.is_some() || e.catalogue_version == new.version {
                continue;
            }
            let Some((list_type, subject_type)) = e.types() else {
                continue;
            };
            let entry = Entry {
                record_id: e.record_id.clone(),
                list_type,
                subject_type,
            };
            let record_id: Arc<str> = e.record_id.as_str().into();
            let mut wanted = rules::targets(new, &entry);
            for d in e.duties.iter_mut().filter(|d| d.active) {
                let t = Target {
                    record_id: e.record_id.clone(),
                    measure_id: d.measure_id.clone(),
                    department: d.department,
                };
                if wanted.remove(&t).is_none() {
                    d.active = false;
                    planned.push(Planned {
                        notice_id: rules::notice_id(&t, NoticeKind::Lift, d.generation),
                        kind: NoticeKind::Lift,
                        record_id: record_id.clone(),
                        measure_id: t.measure_id,
                        department: t.department,
                        generation: d.generation,
                        reason: Some(EndReason::CatalogueChange),
                    });
                }
            }
            for (t, kind) in wanted {
                let generation = match e
                    .duties
                    .iter_mut()
                    .find(|d| d.measure_id == t.measure_id && d.department == t.department)
                {
                    Some(d) => {
                        d.generation += 1;
                        d.active = true;
                        d.applied_as = kind.into();
                        d.generation
                    }
                    None => {
                        e.duties.push(Duty {
                            measure_id: t.measure_id.clone(),
                            department: t.department,
                            applied_as: kind.into(),
                            generation: 1,
                            active: true,
                        });
                        1
                    }
                };
                planned.push(Planned {
                    notice_id: rules::notice_id(&t, kind, generation),
                    kind,
                    record_id: record_id.clone(),
                    measure_id: t.measure_id,
                    department: t.department,
                    generation,
                    reason: None,
                });
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
    use super::*;

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
            topic: "credit.records".into(),
            partition: 0,
            offset: 9,
        }
    }

    #[test]
    fn an_entry_fans_out_once_and_ends_once() {
        let c = Catalogue::parse(credit_measures::V1).unwrap();
        let mut s = PartitionState::default();
        let r = input(
            "courts:0:1",
            Some(ListType::JudgementDefaulter),
            SubjectType::LegalPerson,
        );
        let first = s.plan_record(&c, r.clone());
        let want: Vec<String> = rules::targets(
            &c,
            &Entry {
                record_id: r.record_id.clone(),
                list_type: ListType::JudgementDefaulter,
                subject_type: SubjectType::LegalPerson,
            },
        )
        .iter()
        .map(|(t, k)| rules::notice_id(t, *k, 1))
        .collect();
        assert_eq!(
            first
                .iter()
                .map(|p| p.notice_id.clone())
                .collect::<Vec<_>>(),
            want
        );
        assert!(
            s.plan_record(&c, r.clone()).is_empty(),
            "a replayed record sends nothing"
        );
        let lifts = s
            .plan_command(&Command {
                record_id: r.record_id.clone(),
                reason: EndReason::Repaired,
            })
            .unwrap();
        assert_eq!(lifts.len(), first.len());
        assert!(
            lifts
                .iter()
                .all(|p| p.kind == NoticeKind::Lift && p.notice_id.ends_with("/lift/1"))
        );
        assert!(
            s.plan_command(&Command {
                record_id: r.record_id.clone(),
                reason: EndReason::Repaired
            })
            .unwrap()
            .is_empty()
        );
        assert_eq!(
            s.plan_command(&Command {
                record_id: "nope".into(),
                reason: EndReason::Expired
            }),
            Err(CommandError::UnknownEntry("nope".into()))
        );
    }

    #[test]
    fn withdrawal_and_non_entries() {
        let c = Catalogue::parse(credit_measures::V1).unwrap();
        let mut s = PartitionState::default();
        assert!(
            s.plan_record(&c, input("market:0:1", None, SubjectType::LegalPerson))
                .is_empty()
        );
        let n = s.plan_record(
            &c,
            input(
                "tax:0:2",
                Some(ListType::TaxGradeA),
                SubjectType::LegalPerson,
            ),
        );
        assert!(!n.is_empty() && n.iter().all(|p| p.kind == NoticeKind::Reward));
        let w = s
            .plan_command(&Command {
                record_id: "tax:0:2".into(),
                reason: EndReason::Withdrawn,
            })
            .unwrap();
        assert!(w.iter().all(|p| p.kind == NoticeKind::Withdrawal));
    }

    fn v1_entries(c: &Catalogue, n: usize) -> (PartitionState, Vec<Entry>) {
        let mut s = PartitionState::default();
        let mut entries = Vec::new();
        for i in 0..n {
            let list = ListType::ALL[i % ListType::ALL.len()];
            let subject = SubjectType::ALL[(i / 3) % SubjectType::ALL.len()];
            let r = input(&format!("courts:0:{i}"), Some(list), subject);
            s.plan_record(c, r.clone());
            entries.push(Entry {
                record_id: r.record_id,
                list_type: list,
                subject_type: subject,
            });
        }
        (s, entries)
    }

    /// V1 with some measures dropped, some departments moved, and one new measure.
    fn v2_from(v1: &Catalogue, keep: &[bool], swap: &[bool]) -> Catalogue {
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

    #[test]
    fn duties_are_arrays_in_the_changelog_and_old_objects_still_read() {
        let d = Duty {
            measure_id: "no-honours".into(),
            department: "hrss",
            applied_as: NoticeKindName::Punishment,
            generation: 2,
            active: true,
        };
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, r#"["no-honours","hrss","punishment",2,true]"#);
        assert_eq!(serde_json::from_str::<Duty>(&json).unwrap(), d);
        let old = r#"{"measure_id":"no-honours","department":"hrss","applied_as":"punishment","generation":2,"active":true}"#;
        assert_eq!(serde_json::from_str::<Duty>(old).unwrap(), d);
        assert!(serde_json::from_str::<Duty>(r#"["no-honours","hrss"]"#).is_err());
        let e = serde_json::from_str::<Duty>(r#"["no-honours","nobody","punishment",2,true]"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains(r#"unknown department "nobody""#), "{e}");
    }

    proptest::proptest! {
        /// The input header parses back to what was written, and nothing
        /// else parses: a foreign or damaged header never counts as ours.
        #[test]
        fn input_positions_round_trip(p in 0i32..10_000, o in 0i64..i64::MAX, commands: bool, junk in ".{0,12}") {
            let topic = if commands { InputTopic::Commands } else { InputTopic::Records };
            let pos = InputPosition { partition: p, topic, offset: o };
            proptest::prop_assert_eq!(InputPosition::parse(pos.to_string().as_bytes()), Some(pos));
            let mangled = format!("{pos}{junk}");
            if junk.chars().any(|c| !c.is_ascii_digit()) {
                proptest::prop_assert_eq!(InputPosition::parse(mangled.as_bytes()), None);
            }
            for bad in ["", "3", "3/", "3/x1", "/r1", "3/r", "a/r1", "3/r+1", "+3/r1", "3r1"] {
                proptest::prop_assert_eq!(InputPosition::parse(bad.as_bytes()), None);
            }
        }

        /// Activating a new version on planned entries sends exactly the rules'
        /// delta (applies and lifts), nothing on a second activation, and going
        /// back re-applies lifted duties under a new generation.
        #[test]
        fn activation_sends_exactly_the_delta(
            keep in proptest::collection::vec(proptest::bool::weighted(0.7), 16),
            swap in proptest::collection::vec(proptest::bool::weighted(0.2), 16),
            n in 1usize..60,
        ) {
            let v1 = Catalogue::parse(credit_measures::V1).unwrap();
            let v2 = v2_from(&v1, &keep, &swap);
            let (mut s, entries) = v1_entries(&v1, n);
            let want = rules::delta(&v1, &v2, &entries);
            let got = s.plan_activation(&v2);
            let applied: BTreeMap<Target, NoticeKind> = got
                .iter()
                .filter(|p| p.kind != NoticeKind::Lift)
                .map(|p| (Target { record_id: p.record_id.to_string(), measure_id: p.measure_id.clone(), department: p.department }, p.kind))
                .collect();
            let lifted: std::collections::BTreeSet<Target> = got
                .iter()
                .filter(|p| p.kind == NoticeKind::Lift)
                .map(|p| Target { record_id: p.record_id.to_string(), measure_id: p.measure_id.clone(), department: p.department })
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
    }

    /// Writes `e` the way the engine does and reads it back the way replay does.
    fn through_changelog(
        e: &EntryState,
        catalogues: &BTreeMap<u32, Catalogue>,
    ) -> (EntryState, bool) {
        let mut v = Vec::new();
        write_entry(&mut v, e, catalogues.get(&e.catalogue_version));
        let stored: StoredEntry = serde_json::from_slice(&v).unwrap();
        let left_out = stored.duties.is_none();
        let back = stored
            .restore(catalogues.get(&e.catalogue_version))
            .unwrap();
        (back, left_out)
    }

    proptest::proptest! {
        /// Every entry, new, ended, moved by an activation (and back) or
        /// ended after it, reads back from its changelog value as it was;
        /// its duties are left out exactly when its version binds them.
        #[test]
        fn entries_round_trip_through_the_changelog(
            keep in proptest::collection::vec(proptest::bool::weighted(0.7), 16),
            swap in proptest::collection::vec(proptest::bool::weighted(0.2), 16),
            n in 1usize..40,
            end_every in 1usize..5,
        ) {
            let v1 = Catalogue::parse(credit_measures::V1).unwrap();
            let v2 = v2_from(&v1, &keep, &swap);
            let catalogues = BTreeMap::from([(1, v1.clone()), (2, v2.clone())]);
            let (mut s, _) = v1_entries(&v1, n);
            let check = |s: &PartitionState, expect_left_out: Option<bool>| -> Result<(), proptest::test_runner::TestCaseError> {
                for e in s.entries.values() {
                    let (back, left_out) = through_changelog(e, &catalogues);
                    proptest::prop_assert_eq!(&back, e);
                    let bound = as_bound(&catalogues[&e.catalogue_version], e).unwrap();
                    proptest::prop_assert_eq!(left_out, bound == e.duties);
                    proptest::prop_assert_eq!(left_out, is_as_bound(&catalogues[&e.catalogue_version], e));
                    if let Some(want) = expect_left_out {
                        proptest::prop_assert_eq!(left_out, want);
                    }
                }
                Ok(())
            };
            // New entries and entries ended from there are what v1 binds.
            check(&s, Some(true))?;
            let ids: Vec<String> = s.entries.keys().cloned().collect();
            for id in ids.iter().step_by(end_every) {
                s.plan_command(&Command { record_id: id.clone(), reason: EndReason::Repaired }).unwrap();
            }
            check(&s, Some(true))?;
            s.plan_activation(&v2);
            check(&s, None)?;
            s.plan_activation(&v1);
            check(&s, None)?;
        }
    }

    #[test]
    fn stored_entries_need_their_catalogue_version_and_old_values_still_read() {
        let c = Catalogue::parse(credit_measures::V1).unwrap();
        let (s, _) = v1_entries(&c, 1);
        let e = s.entries.values().next().unwrap();
        let mut v = Vec::new();
        write_entry(&mut v, e, Some(&c));
        let stored: StoredEntry = serde_json::from_slice(&v).unwrap();
        assert_eq!(stored.needs_catalogue(), Some(1));
        let err = stored.clone().restore(None).unwrap_err();
        assert!(err.contains("needs catalogue version 1"), "{err}");
        let mut other = c.clone();
        other.version = 7;
        assert!(stored.restore(Some(&other)).is_err());
        // A value written with every duty (before, or without a catalogue)
        // reads as itself.
        let full = serde_json::to_vec(e).unwrap();
        let old: StoredEntry = serde_json::from_slice(&full).unwrap();
        assert_eq!(old.needs_catalogue(), None);
        assert_eq!(&old.restore(None).unwrap(), e);
        let mut without = Vec::new();
        write_entry(&mut without, e, None);
        assert_eq!(
            serde_json::from_slice::<StoredEntry>(&without)
                .unwrap()
                .restore(None)
                .unwrap(),
            *e
        );
        assert!(
            v.len() * 2 < full.len(),
            "left-out duties: {} bytes against {}",
            v.len(),
            full.len()
        );
    }

    #[test]
    fn commands_parse_from_json() {
        let c: Command =
            serde_json::from_str(r#"{"record_id":"courts:0:1","reason":"repaired"}"#).unwrap();
        assert_eq!(c.reason, EndReason::Repaired);
        assert!(
            serde_json::from_str::<Command>(r#"{"record_id":"x","reason":"forgiven"}"#).is_err()
        );
        let a: Activation = serde_json::from_str(r#"{"activate":2}"#).unwrap();
        assert_eq!(a.activate, 2);
        assert!(serde_json::from_str::<Command>(r#"{"activate":2}"#).is_err());
        let mut s = PartitionState::default();
        assert_eq!(
            s.plan_command(&Command {
                record_id: "x".into(),
                reason: EndReason::CatalogueChange
            }),
            Err(CommandError::NotAnOperatorReason)
        );
    }
}
