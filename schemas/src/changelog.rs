//! The engine's changelog (`<prefix>.engine.state`, compacted, one partition
//! per input partition) as a contract: its keys, its values, and the one
//! [`Replay`] that turns a partition's records back into a
//! [`PartitionState`]. The engine writes it inside the same Kafka transaction
//! as the notices the change caused; the engine (on recovery) and the
//! `credit-bus` CLI (dry runs, entry look-ups) read it through [`Replay`].
//!
//! | key | value |
//! |---|---|
//! | `entry/<record_id>` | an entry ([`write_entry`]): JSON, its duties left out when its catalogue version binds exactly them |
//! | `partition` | `{"catalogue_version": N}`: the version in force on this partition since its last activation |
//!
//! A duty is the array `[measure_id, department, applied_as, generation,
//! active]`: an entry has a dozen duties, and their field names were most of
//! its bytes. Entries of earlier formats (claims, checkpoints and floors of the
//! engine before Kafka transactions) are not read: a changelog written by it is
//! replayed from an empty topic prefix.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use credit_core::notice::NoticeKind;
use credit_core::record::{ListType, Severity, SubjectType};
use credit_measures::Catalogue;
use credit_measures::plan::{Duty, EndReason, Entry, PartitionState, Source};
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

/// The key prefix of an entry.
pub const ENTRY_PREFIX: &str = "entry/";
/// The key of a partition's own record.
pub const PARTITION_KEY: &str = "partition";

/// The changelog key of entry `record_id`.
pub fn entry_key(record_id: &str) -> String {
    let mut k = String::with_capacity(ENTRY_PREFIX.len() + record_id.len());
    k.push_str(ENTRY_PREFIX);
    k.push_str(record_id);
    k
}

/// What a changelog key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key<'a> {
    Entry(&'a str),
    Partition,
}

impl<'a> Key<'a> {
    pub fn parse(key: &'a [u8]) -> Option<Key<'a>> {
        let k = std::str::from_utf8(key).ok()?;
        if k == PARTITION_KEY {
            Some(Key::Partition)
        } else {
            k.strip_prefix(ENTRY_PREFIX)
                .filter(|id| !id.is_empty())
                .map(Key::Entry)
        }
    }
}

/// The value under [`PARTITION_KEY`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMeta {
    pub catalogue_version: u32,
}

/// An entry as the changelog holds it (both directions).
#[derive(Serialize, Deserialize)]
struct EntryValue<'a> {
    #[serde(borrow)]
    record_id: Cow<'a, str>,
    #[serde(borrow)]
    department: Cow<'a, str>,
    #[serde(borrow)]
    list_type: Cow<'a, str>,
    #[serde(borrow)]
    subject_type: Cow<'a, str>,
    #[serde(borrow)]
    subject_key: Cow<'a, str>,
    #[serde(borrow)]
    subject_name: Cow<'a, str>,
    #[serde(borrow)]
    decision_number: Cow<'a, str>,
    valid_from: i32,
    valid_until: Option<i32>,
    #[serde(borrow)]
    severity: Cow<'a, str>,
    #[serde(borrow)]
    source_key: Cow<'a, str>,
    digest: u64,
    #[serde(borrow)]
    topic: Cow<'a, str>,
    partition: i32,
    offset: i64,
    catalogue_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    duties: Option<Vec<DutyValue<'a>>>,
    ended: Option<EndReason>,
}

#[derive(Serialize, Deserialize)]
struct DutyValue<'a>(
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    u32,
    bool,
    Option<i32>,
);

/// Writes `e` as its changelog value, leaving its duties out when `catalogue`
/// (its version) binds exactly them.
pub fn write_entry(out: &mut Vec<u8>, e: &Entry, catalogue: Option<&Catalogue>) {
    let derived = catalogue
        .filter(|c| c.version == e.catalogue_version)
        .is_some_and(|c| e.is_as_bound(c));
    let v = EntryValue {
        record_id: Cow::Borrowed(&e.record_id),
        department: Cow::Borrowed(&e.department),
        list_type: Cow::Borrowed(e.list_type.symbol()),
        subject_type: Cow::Borrowed(e.subject_type.symbol()),
        subject_key: Cow::Borrowed(&e.subject_key),
        subject_name: Cow::Borrowed(&e.subject_name),
        decision_number: Cow::Borrowed(&e.decision_number),
        valid_from: e.valid_from,
        valid_until: e.valid_until,
        severity: Cow::Borrowed(e.severity.symbol()),
        source_key: Cow::Borrowed(&e.source_key),
        digest: e.digest,
        topic: Cow::Borrowed(&e.source.topic),
        partition: e.source.partition,
        offset: e.source.offset,
        catalogue_version: e.catalogue_version,
        duties: (!derived).then(|| {
            e.duties
                .iter()
                .map(|d| {
                    DutyValue(
                        Cow::Borrowed(&d.measure_id),
                        Cow::Borrowed(d.department),
                        Cow::Borrowed(d.applied_as.as_str()),
                        d.generation,
                        d.active,
                        d.until,
                    )
                })
                .collect()
        }),
        ended: e.ended,
    };
    serde_json::to_writer(out, &v).expect("entries serialise to a Vec");
}

/// The partition record's value.
pub fn write_partition(meta: PartitionMeta) -> Vec<u8> {
    serde_json::to_vec(&meta).expect("a struct of integers serialises")
}

/// Why a changelog partition cannot be replayed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    #[error("changelog value under {key:?}: {detail}")]
    Corrupt { key: String, detail: String },
    #[error("entry {record_id} needs catalogue version {version}, which is not published")]
    MissingCatalogue { record_id: String, version: u32 },
}

fn corrupt(key: &str, detail: impl ToString) -> ReplayError {
    ReplayError::Corrupt {
        key: key.to_string(),
        detail: detail.to_string(),
    }
}

fn kind(s: &str) -> Option<NoticeKind> {
    NoticeKind::ALL.into_iter().find(|k| k.as_str() == s)
}

fn department(id: &str) -> Option<&'static str> {
    credit_core::catalogue::department(id).map(|d| d.id)
}

/// Reads back what [`write_entry`] wrote; `catalogues` restores left-out duties.
pub fn read_entry(
    value: &[u8],
    catalogues: &BTreeMap<u32, Catalogue>,
) -> Result<Entry, ReplayError> {
    let v: EntryValue<'_> =
        serde_json::from_slice(value).map_err(|e| corrupt("entry", e.to_string()))?;
    let key = v.record_id.as_ref();
    let list_type = ListType::ALL
        .iter()
        .copied()
        .find(|l| l.symbol() == v.list_type)
        .ok_or_else(|| corrupt(key, format!("unknown list type {:?}", v.list_type)))?;
    let subject_type = SubjectType::ALL
        .iter()
        .copied()
        .find(|t| t.symbol() == v.subject_type)
        .ok_or_else(|| corrupt(key, format!("unknown subject type {:?}", v.subject_type)))?;
    let severity = Severity::ALL
        .iter()
        .copied()
        .find(|s| s.symbol() == v.severity)
        .ok_or_else(|| corrupt(key, format!("unknown severity {:?}", v.severity)))?;
    let mut e = Entry {
        record_id: v.record_id.to_string(),
        department: v.department.into_owned(),
        list_type,
        subject_type,
        subject_key: v.subject_key.into_owned(),
        subject_name: v.subject_name.into_owned(),
        decision_number: v.decision_number.into_owned(),
        valid_from: v.valid_from,
        valid_until: v.valid_until,
        severity,
        source_key: v.source_key.into_owned(),
        digest: v.digest,
        source: Source {
            topic: v.topic.into_owned(),
            partition: v.partition,
            offset: v.offset,
        },
        catalogue_version: v.catalogue_version,
        duties: Vec::new(),
        ended: v.ended,
    };
    e.duties = match v.duties {
        Some(ds) => ds
            .into_iter()
            .map(|DutyValue(m, d, k, generation, active, until)| {
                Ok(Duty {
                    measure_id: m.as_ref().into(),
                    department: department(&d).ok_or_else(|| {
                        corrupt(&e.record_id, format!("unknown department {d:?}"))
                    })?,
                    applied_as: kind(&k)
                        .ok_or_else(|| corrupt(&e.record_id, format!("unknown kind {k:?}")))?,
                    generation,
                    active,
                    until,
                })
            })
            .collect::<Result<_, ReplayError>>()?,
        None => {
            let c = catalogues.get(&e.catalogue_version).ok_or_else(|| {
                ReplayError::MissingCatalogue {
                    record_id: e.record_id.clone(),
                    version: e.catalogue_version,
                }
            })?;
            e.bound_duties(c)
        }
    };
    Ok(e)
}

/// Replays one changelog partition: feed it every record in offset order
/// ([`Replay::record`]), then [`Replay::finish`] with the catalogue versions
/// it [needs](Replay::catalogue_versions). Later values of a key replace
/// earlier ones, a tombstone (no value) removes it, as compaction would.
#[derive(Debug, Default)]
pub struct Replay {
    entries: FxHashMap<String, Vec<u8>>,
    meta: Option<PartitionMeta>,
    /// Versions named by entries (their duties may need them).
    versions: BTreeSet<u32>,
    ignored: usize,
}

impl Replay {
    /// One changelog record. Keys this format does not know are counted and
    /// skipped (a newer engine's additions, or a foreign writer).
    pub fn record(&mut self, key: Option<&[u8]>, value: Option<&[u8]>) -> Result<(), ReplayError> {
        match key.and_then(Key::parse) {
            Some(Key::Entry(id)) => match value {
                Some(v) => {
                    self.entries.insert(id.to_string(), v.to_vec());
                }
                None => {
                    self.entries.remove(id);
                }
            },
            Some(Key::Partition) => {
                self.meta = match value {
                    Some(v) => {
                        Some(serde_json::from_slice(v).map_err(|e| corrupt(PARTITION_KEY, e))?)
                    }
                    None => None,
                }
            }
            None => self.ignored += 1,
        }
        Ok(())
    }

    /// Records under keys this format does not know.
    pub fn ignored(&self) -> usize {
        self.ignored
    }

    /// Every catalogue version the partition's entries or its meta name.
    pub fn catalogue_versions(&mut self) -> BTreeSet<u32> {
        #[derive(Deserialize)]
        struct VersionOnly {
            catalogue_version: u32,
        }
        if self.versions.is_empty() {
            for v in self.entries.values() {
                if let Ok(x) = serde_json::from_slice::<VersionOnly>(v) {
                    self.versions.insert(x.catalogue_version);
                }
            }
        }
        let mut out = self.versions.clone();
        out.extend(self.meta.map(|m| m.catalogue_version));
        out
    }

    /// The partition's state; partitions with no `partition` record yet apply
    /// `default_version`.
    pub fn finish(
        self,
        catalogues: &BTreeMap<u32, Catalogue>,
        default_version: u32,
    ) -> Result<PartitionState, ReplayError> {
        let mut st =
            PartitionState::new(self.meta.map_or(default_version, |m| m.catalogue_version));
        for v in self.entries.into_values() {
            st.restore(read_entry(&v, catalogues)?);
        }
        Ok(st)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use credit_measures::plan::{EndEntry, Input, RecordOutcome};

    fn v1() -> Catalogue {
        Catalogue::parse(credit_measures::V1).unwrap()
    }

    fn input(i: usize) -> Input {
        Input {
            record_id: format!("courts:0:{i}"),
            department: "courts".into(),
            list_type: Some(ListType::ALL[i % ListType::ALL.len()]),
            is_list_entry: true,
            subject_type: SubjectType::ALL[(i / 3) % SubjectType::ALL.len()],
            subject_key: "91440101MA59UU8U0F".into(),
            subject_name: "广州\"某\"公司\\".into(),
            decision_number: "(2020)粤01执1号".into(),
            valid_from: 19_400,
            valid_until: i.is_multiple_of(2).then_some(20_000 + i as i32),
            severity: Severity::ALL[i % Severity::ALL.len()],
            source_key: format!("(2020)粤01执{i}号"),
            digest: i as u64 * 31,
            source: Source {
                topic: "credit.records".into(),
                partition: 0,
                offset: i as i64,
            },
        }
    }

    fn v2(v1: &Catalogue) -> Catalogue {
        let mut c = v1.clone();
        c.version = 2;
        c.measures.retain(|m| !m.id.starts_with('r'));
        let mut extra = v1.measures[0].clone();
        extra.id = "new-measure".into();
        extra.departments = vec!["finance", "culture-tourism"];
        c.measures.push(extra);
        c
    }

    /// Writes every dirty entry and the partition record the way the engine
    /// does, as (key, value) records.
    fn flush(
        st: &mut PartitionState,
        cats: &BTreeMap<u32, Catalogue>,
        out: &mut Vec<(String, Vec<u8>)>,
    ) {
        for id in st.take_dirty() {
            let e = &st.entries[&id];
            let mut v = Vec::new();
            write_entry(&mut v, e, cats.get(&e.catalogue_version));
            out.push((entry_key(&id), v));
        }
        out.push((
            PARTITION_KEY.into(),
            write_partition(PartitionMeta {
                catalogue_version: st.catalogue_version,
            }),
        ));
    }

    fn replay(log: &[(String, Vec<u8>)], cats: &BTreeMap<u32, Catalogue>) -> PartitionState {
        let mut r = Replay::default();
        for (k, v) in log {
            r.record(Some(k.as_bytes()), Some(v)).unwrap();
        }
        assert!(r.catalogue_versions().iter().all(|v| cats.contains_key(v)));
        r.finish(cats, 1).unwrap()
    }

    fn same(a: &PartitionState, b: &PartitionState) {
        assert_eq!(a.catalogue_version, b.catalogue_version);
        let mut x: Vec<_> = a.entries.values().collect();
        let mut y: Vec<_> = b.entries.values().collect();
        x.sort_by(|p, q| p.record_id.cmp(&q.record_id));
        y.sort_by(|p, q| p.record_id.cmp(&q.record_id));
        assert_eq!(x, y);
        assert_eq!(a.next_expiry(), b.next_expiry());
    }

    proptest::proptest! {
        /// Whatever happens to a partition (entries, ends, an activation and
        /// back, expiry), replaying its changelog gives the state the engine
        /// holds, and that state plans the same next notices.
        #[test]
        fn replay_rebuilds_the_state(n in 1usize..40, end_every in 1usize..6, activate: bool, expire_on in 20_000i32..20_050) {
            let v1 = v1();
            let v2 = v2(&v1);
            let cats = BTreeMap::from([(1, v1.clone()), (2, v2.clone())]);
            let mut st = PartitionState::new(1);
            let mut log = Vec::new();
            for i in 0..n {
                let (o, _) = st.plan_record(&v1, input(i), 19_500);
                proptest::prop_assert_eq!(o, RecordOutcome::Entered);
            }
            flush(&mut st, &cats, &mut log);
            same(&replay(&log, &cats), &st);
            for i in (0..n).step_by(end_every) {
                st.plan_command(&EndEntry { record_id: format!("courts:0:{i}"), reason: EndReason::Repaired }, &v1, 40_000).unwrap();
            }
            flush(&mut st, &cats, &mut log);
            same(&replay(&log, &cats), &st);
            if activate {
                st.plan_activation(&v2, 19_500);
                flush(&mut st, &cats, &mut log);
                same(&replay(&log, &cats), &st);
            }
            st.plan_expiry(expire_on);
            flush(&mut st, &cats, &mut log);
            let mut back = replay(&log, &cats);
            same(&back, &st);
            proptest::prop_assert_eq!(back.plan_expiry(expire_on + 30), st.plan_expiry(expire_on + 30));
            proptest::prop_assert_eq!(back.plan_activation(&v1, 19_500), st.plan_activation(&v1, 19_500));
        }
    }

    #[test]
    fn left_out_duties_need_their_catalogue_version() {
        let v1 = v1();
        let cats = BTreeMap::from([(1, v1.clone())]);
        let mut st = PartitionState::new(1);
        st.plan_record(&v1, input(0), 19_500);
        let e = &st.entries["courts:0:0"];
        let mut short = Vec::new();
        write_entry(&mut short, e, Some(&v1));
        let mut full = Vec::new();
        write_entry(&mut full, e, None);
        assert!(
            short.len() * 2 < full.len(),
            "{} vs {}",
            short.len(),
            full.len()
        );
        assert_eq!(&read_entry(&short, &cats).unwrap(), e);
        assert_eq!(&read_entry(&full, &BTreeMap::new()).unwrap(), e);
        assert_eq!(
            read_entry(&short, &BTreeMap::new()),
            Err(ReplayError::MissingCatalogue {
                record_id: "courts:0:0".into(),
                version: 1
            })
        );
        let mut r = Replay::default();
        r.record(Some(entry_key("courts:0:0").as_bytes()), Some(&short))
            .unwrap();
        assert_eq!(r.catalogue_versions(), BTreeSet::from([1]));
    }

    #[test]
    fn keys_and_damaged_values() {
        assert_eq!(
            Key::parse(b"entry/courts:0:1"),
            Some(Key::Entry("courts:0:1"))
        );
        assert_eq!(Key::parse(b"partition"), Some(Key::Partition));
        for k in [&b"entry/"[..], b"claim", b"checkpoint", b"\xff", b""] {
            assert_eq!(Key::parse(k), None, "{k:?}");
        }
        let mut r = Replay::default();
        r.record(Some(b"claim"), Some(b"{}")).unwrap();
        assert_eq!(r.ignored(), 1);
        assert!(r.record(Some(b"partition"), Some(b"nope")).is_err());
        r.record(Some(b"entry/x"), Some(b"{\"record_id\":1}"))
            .unwrap();
        let err = r.finish(&BTreeMap::new(), 1).unwrap_err();
        assert!(matches!(err, ReplayError::Corrupt { .. }), "{err}");
        // A tombstone removes the entry.
        let mut r = Replay::default();
        r.record(Some(b"entry/x"), Some(b"garbage")).unwrap();
        r.record(Some(b"entry/x"), None).unwrap();
        assert!(r.finish(&BTreeMap::new(), 3).unwrap().entries.is_empty());
    }
}
