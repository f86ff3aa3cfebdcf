//! The archive's state as of a moment, from the facts it stored: plain types,
//! no database, no clock.
//!
//! The archive is bitemporal. Every fact has the time the archive *learned*
//! it (the Kafka timestamp of the message that carried it, so a rebuild from
//! the topics learns everything at the same instants) and, where the record
//! states one, the time it is *valid* (decision date, validity start and end,
//! the lifting of a measure). A question "as of T" means: what the archive
//! knew at T, about the day of T. [`state`] answers it from the facts alone;
//! the facts the database returns may include later ones (they are ignored)
//! and come in any order (the answer does not depend on it), which the
//! property tests at the bottom check against a replay of only the facts
//! known at T.
//!
//! Measures: a duty is one (record, measure, implementing department). Its
//! notices carry a generation (how many times it has been applied); a lift or
//! withdrawal of generation g ends the application of generation g, and a
//! re-application is generation g + 1. So the duty's state is its greatest
//! (generation, lift-after-apply) notice known, whatever order they arrived
//! in: in force when that is a punishment or reward and its list entry is in
//! force on the day.
//!
//! An entry's validity is its stated end cut to the maximum publication
//! period of its catalogue version (the engine ends it then, whatever end
//! its department stated): the version of its latest notice, else the newest
//! version the archive holds, else the shipped one.

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use credit_core::notice::NoticeKind;
use serde::Serialize;

/// Milliseconds the city's clock is ahead of UTC (China Standard Time, no
/// daylight saving): a date alone (`?as_of=2026-12-06`) means the end of that
/// day in the city, and the day of a timestamp is the city's day.
pub const CITY_UTC_OFFSET_MS: i64 = 8 * 3_600_000;
const DAY_MS: i64 = 86_400_000;

/// Where a fact was read: its topic, partition and offset, the key every
/// archived row is stored under (so a message read twice is stored once).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Pos {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// The moment a question is asked about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AsOf {
    /// Facts learned at or before this instant (ms since the epoch) count.
    pub known_ms: i64,
    /// The day (days since 1970-01-01, in the city) validity is judged on.
    pub day: i32,
}

impl AsOf {
    /// At an instant: what was known then, about that day in the city.
    pub fn instant(ms: i64) -> AsOf {
        AsOf {
            known_ms: ms,
            day: (ms + CITY_UTC_OFFSET_MS).div_euclid(DAY_MS) as i32,
        }
    }

    /// At the end of a day in the city.
    pub fn end_of_day(day: i32) -> AsOf {
        AsOf {
            known_ms: (i64::from(day) + 1) * DAY_MS - CITY_UTC_OFFSET_MS - 1,
            day,
        }
    }

    /// Parses `?as_of=`: a date (`2026-12-06`, the end of that day in the
    /// city) or an RFC 3339 timestamp (`2026-12-06T10:00:00Z`,
    /// `2026-12-06T18:00:00.250+08:00`).
    pub fn parse(s: &str) -> Result<AsOf, String> {
        let s = s.trim();
        let b = s.as_bytes();
        let bad = || {
            format!(
                "as_of {s:?} is neither a date (YYYY-MM-DD) nor an RFC 3339 timestamp (YYYY-MM-DDTHH:MM:SS[.fff](Z|+HH:MM))"
            )
        };
        let num = |r: std::ops::Range<usize>| -> Result<u32, String> {
            let part = b.get(r).ok_or_else(bad)?;
            if part.is_empty() || !part.iter().all(u8::is_ascii_digit) {
                return Err(bad());
            }
            std::str::from_utf8(part)
                .ok()
                .and_then(|p| p.parse().ok())
                .ok_or_else(bad)
        };
        if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
            return Err(bad());
        }
        let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
        let day = credit_core::date::parse(&s[..10]).ok_or_else(bad)?;
        debug_assert_eq!(
            day,
            credit_core::date::days_from_civil(y as i32, m, d),
            "the date parser agrees"
        );
        if b.len() == 10 {
            return Ok(AsOf::end_of_day(day));
        }
        if !matches!(b[10], b'T' | b't' | b' ') || b.len() < 20 || b[13] != b':' || b[16] != b':' {
            return Err(bad());
        }
        let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if hh > 23 || mm > 59 || ss > 60 {
            return Err(bad());
        }
        let mut i = 19;
        let mut frac_ms = 0i64;
        if b[i] == b'.' {
            let start = i + 1;
            i = start;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i == start {
                return Err(bad());
            }
            let digits = &s[start..i.min(start + 3)];
            frac_ms = format!("{digits:0<3}").parse::<i64>().map_err(|_| bad())?;
        }
        let offset_ms = match &b[i..] {
            [b'Z' | b'z'] => 0,
            [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
                let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
                if oh > 23 || om > 59 {
                    return Err(bad());
                }
                let o = (i64::from(oh) * 60 + i64::from(om)) * 60_000;
                if *sign == b'-' { -o } else { o }
            }
            _ => return Err(bad()),
        };
        let secs = i64::from(hh) * 3600 + i64::from(mm) * 60 + i64::from(ss.min(59));
        let ms = i64::from(day) * DAY_MS + secs * 1000 + frac_ms - offset_ms;
        Ok(AsOf::instant(ms))
    }
}

/// An instant (ms since the epoch) as RFC 3339 in UTC, to the millisecond.
pub fn rfc3339(ms: i64) -> String {
    let day = ms.div_euclid(DAY_MS);
    let rest = ms.rem_euclid(DAY_MS);
    let (y, m, d) = credit_core::date::civil_from_days(day as i32);
    let (h, min, s, milli) = (
        rest / 3_600_000,
        rest / 60_000 % 60,
        rest / 1000 % 60,
        rest % 1000,
    );
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{min:02}:{s:02}.{milli:03}Z")
}

/// Serialises a day number as `YYYY-MM-DD`.
fn date<S: serde::Serializer>(d: &i32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&credit_core::date::format(*d))
}

fn opt_date<S: serde::Serializer>(d: &Option<i32>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&credit_core::date::format(*d)),
        None => s.serialize_none(),
    }
}

/// Where the department's record came from (the normalised record's lineage).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lineage {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The department's own id for the record.
    pub record_key: String,
}

/// A normalised record as the archive stored it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordFact {
    #[serde(skip)]
    pub pos: Pos,
    /// When the archive learned it (ms since the epoch).
    pub learned_ms: i64,
    pub record_id: String,
    pub department: String,
    pub domain: String,
    pub subject_type: String,
    pub subject_key: String,
    pub subject_name: String,
    pub responsible_person: Option<String>,
    pub info_kind: String,
    pub list_type: Option<String>,
    pub grade: Option<String>,
    pub decision_number: String,
    #[serde(serialize_with = "date")]
    pub decision_date: i32,
    #[serde(serialize_with = "opt_date")]
    pub publication_date: Option<i32>,
    #[serde(serialize_with = "date")]
    pub valid_from: i32,
    #[serde(serialize_with = "opt_date")]
    pub valid_until: Option<i32>,
    pub severity: String,
    pub legal_basis: Option<String>,
    pub conduct: String,
    pub amount_fen: Option<i64>,
    /// The records-topic position it was read at and the inbound record it
    /// came from.
    pub source: Lineage,
}

/// A notice as the archive stored it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NoticeFact {
    #[serde(skip)]
    pub pos: Pos,
    pub learned_ms: i64,
    pub notice_id: String,
    #[serde(serialize_with = "kind")]
    pub kind: NoticeKind,
    /// The implementing department.
    pub department: String,
    pub measure_id: String,
    pub measure_name: String,
    pub legal_basis: String,
    pub catalogue_version: i32,
    pub generation: i32,
    pub record_id: String,
    pub list_type: String,
    pub subject_type: String,
    pub subject_key: String,
    pub subject_name: String,
    pub identifying_department: String,
    pub decision_number: String,
    pub reason: Option<String>,
    /// The records-topic position of the record behind it.
    pub source_topic: String,
    pub source_partition: i32,
    pub source_offset: i64,
}

fn kind<S: serde::Serializer>(k: &NoticeKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(k.as_str())
}

/// A department's feedback on a notice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FeedbackFact {
    #[serde(skip)]
    pub pos: Pos,
    pub learned_ms: i64,
    pub notice_id: String,
    pub department: String,
    /// `applied`, `not_applicable` or `failed`.
    pub outcome: String,
    pub reason: Option<String>,
    pub responded_at_ms: i64,
}

/// An operator's command ending a list entry (repaired, expired, withdrawn).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EndFact {
    #[serde(skip)]
    pub pos: Pos,
    pub learned_ms: i64,
    pub record_id: String,
    pub reason: String,
}

/// Everything stored about one subject (or more, for a batch).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    pub records: Vec<RecordFact>,
    pub notices: Vec<NoticeFact>,
    pub feedback: Vec<FeedbackFact>,
    pub ends: Vec<EndFact>,
}

/// A record's standing on the day asked about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Status {
    /// Valid on the day.
    Active,
    /// Its validity starts after the day.
    Pending,
    /// Its validity ended before the day: its stated end, or the maximum
    /// publication period of its catalogue version, whichever is first.
    Expired,
    /// An operator ended it (credit repair, withdrawal, ...) and the engine
    /// confirmed it (lifted or withdrew the entry's measures for that
    /// reason); `ended_at_ms` is when the archive learned the command.
    Ended { reason: String, ended_at_ms: i64 },
    /// The department sent the same record again (same record key of its
    /// own) with other content: the later one stands.
    Superseded { by: String },
}

/// A record and its standing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordView {
    #[serde(flatten)]
    pub record: RecordFact,
    #[serde(flatten)]
    pub status: Status,
}

/// A notice with its department's feedback.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NoticeView {
    #[serde(flatten)]
    pub notice: NoticeFact,
    /// `open` (no feedback yet), or the latest feedback's outcome.
    pub feedback_state: String,
    pub feedback: Option<FeedbackFact>,
}

/// The current grade: the latest grade record valid on the day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grade {
    pub grade: String,
    pub department: String,
    pub record_id: String,
    #[serde(serialize_with = "date")]
    pub valid_from: i32,
}

/// Why a measure applies, from the notice back to the department's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    pub notice_id: String,
    /// When the archive learned the notice (ms since the epoch).
    pub notice_learned_ms: i64,
    pub measure_id: String,
    pub measure_name: String,
    pub legal_basis: String,
    pub catalogue_version: i32,
    pub identifying_department: String,
    pub list_type: String,
    pub decision_number: String,
    pub record_id: String,
    /// The normalised record on the records topic.
    pub record_topic: String,
    pub record_partition: i32,
    pub record_offset: i64,
    /// The department's own key for the record, when the archive holds the
    /// record (the notice names its position, the record its key).
    pub department_record_key: Option<String>,
    /// The inbound topic, partition and offset the record was normalised from.
    pub inbound: Option<Lineage>,
    /// The catalogue version's effective date and description, when the
    /// archive holds that version (filled by the API).
    pub catalogue_effective: Option<String>,
    pub catalogue_description: Option<String>,
}

/// A measure in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MeasureInForce {
    pub measure_id: String,
    pub measure_name: String,
    /// `punishment` or `reward`.
    pub kind: String,
    pub implementing_department: String,
    pub generation: i32,
    /// The implementing department's latest feedback (`open` without one).
    pub feedback_state: String,
    pub explanation: Explanation,
}

/// A subject's record as of a moment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SubjectState {
    pub licences: Vec<RecordView>,
    pub penalties: Vec<RecordView>,
    /// Dishonesty and watch lists, active and ended.
    pub list_entries: Vec<RecordView>,
    pub red_lists: Vec<RecordView>,
    pub grades: Vec<RecordView>,
    pub commitments: Vec<RecordView>,
    pub grade: Option<Grade>,
    pub notices: Vec<NoticeView>,
    /// By implementing department.
    pub measures_in_force: BTreeMap<String, Vec<MeasureInForce>>,
}

impl SubjectState {
    /// Whether anything at all was known.
    pub fn is_empty(&self) -> bool {
        self.licences.is_empty()
            && self.penalties.is_empty()
            && self.list_entries.is_empty()
            && self.red_lists.is_empty()
            && self.grades.is_empty()
            && self.commitments.is_empty()
            && self.notices.is_empty()
    }

    /// Whether a punishment of `measure` (any department) or by
    /// `department` (any measure) is in force.
    pub fn restricted(
        &self,
        measure: Option<&str>,
        department: Option<&str>,
    ) -> Vec<&MeasureInForce> {
        self.measures_in_force
            .iter()
            .filter(|(d, _)| department.is_none_or(|want| want == d.as_str()))
            .flat_map(|(_, ms)| ms)
            .filter(|m| m.kind == NoticeKind::Punishment.as_str())
            .filter(|m| measure.is_none_or(|want| want == m.measure_id))
            .collect()
    }
}

/// Order of a fact among those about the same thing: learned later wins,
/// ties broken by where it was read.
fn later<'a>(a: (i64, &'a Pos), b: (i64, &'a Pos)) -> bool {
    a > b
}

/// Which notice kinds apply a measure (as opposed to lifting it).
fn applies(k: NoticeKind) -> bool {
    matches!(k, NoticeKind::Punishment | NoticeKind::Reward)
}

/// Catalogue versions by number (the archive's `catalogue_versions`, parsed).
pub type Catalogues = BTreeMap<i32, Arc<credit_measures::Catalogue>>;

/// The catalogue shipped with this build (version 1), parsed once.
pub static SHIPPED: LazyLock<Option<credit_measures::Catalogue>> =
    LazyLock::new(|| credit_measures::Catalogue::parse(credit_measures::V1).ok());

/// The last day `r` is published under `catalogue`: its stated end, cut to
/// the maximum publication period of its list and severity (list entries
/// only; other records keep their stated end).
fn published_until(r: &RecordFact, catalogue: Option<&credit_measures::Catalogue>) -> Option<i32> {
    use credit_core::record::{ListType, Severity};
    let list = r
        .list_type
        .as_deref()
        .and_then(|l| ListType::ALL.iter().copied().find(|x| x.symbol() == l));
    let severity = Severity::ALL
        .iter()
        .copied()
        .find(|x| x.symbol() == r.severity);
    match (list, severity, catalogue) {
        (Some(l), Some(s), Some(c)) => {
            credit_measures::plan::published_until(c, l, s, r.valid_from, r.valid_until)
        }
        _ => r.valid_until,
    }
}

/// The subject's state as of `at`, from `facts` in any order (facts learned
/// after `at.known_ms` are ignored), with only the shipped catalogue known.
pub fn state(facts: &Facts, at: AsOf) -> SubjectState {
    state_with(facts, at, &Catalogues::new())
}

/// [`state`] with the catalogue versions the archive holds (for entries'
/// publication periods).
pub fn state_with(facts: &Facts, at: AsOf, catalogues: &Catalogues) -> SubjectState {
    let known = |ms: i64| ms <= at.known_ms;
    // Each entry's catalogue version: that of its latest known notice.
    let mut version_of: BTreeMap<&str, (i64, &Pos, i32)> = BTreeMap::new();
    for n in facts.notices.iter().filter(|n| known(n.learned_ms)) {
        let v = (n.learned_ms, &n.pos, n.catalogue_version);
        let slot = version_of.entry(&n.record_id).or_insert(v);
        if (v.0, v.1) > (slot.0, slot.1) {
            *slot = v;
        }
    }
    let catalogue_of = |r: &RecordFact| {
        version_of
            .get(r.record_id.as_str())
            .and_then(|(_, _, v)| catalogues.get(v))
            .or_else(|| catalogues.values().next_back())
            .map(|c| &**c)
            .or(SHIPPED.as_ref())
    };

    // Operator ends, each only once the engine confirmed it: a lift or
    // withdrawal of the entry with the command's reason, learned no earlier
    // than the command. The engine refuses some commands (a repair before
    // the minimum publication period, an entry it does not hold), and a
    // refused command ends nothing. The earliest confirmed end counts.
    let confirmed = |e: &EndFact| {
        facts.notices.iter().any(|n| {
            known(n.learned_ms)
                && !applies(n.kind)
                && n.record_id == e.record_id
                && n.reason.as_deref() == Some(e.reason.as_str())
                && n.learned_ms >= e.learned_ms
        })
    };
    let mut ends: BTreeMap<&str, &EndFact> = BTreeMap::new();
    for e in facts
        .ends
        .iter()
        .filter(|e| known(e.learned_ms) && confirmed(e))
    {
        let slot = ends.entry(&e.record_id).or_insert(e);
        if (e.learned_ms, &e.pos) < (slot.learned_ms, &slot.pos) {
            *slot = e;
        }
    }

    // Records: the latest of each (department, record key) stands.
    let records: Vec<&RecordFact> = facts
        .records
        .iter()
        .filter(|r| known(r.learned_ms))
        .collect();
    let mut latest: BTreeMap<(&str, &str), &RecordFact> = BTreeMap::new();
    for r in &records {
        let slot = latest
            .entry((&r.department, &r.source.record_key))
            .or_insert(r);
        if later((r.learned_ms, &r.pos), (slot.learned_ms, &slot.pos)) {
            *slot = r;
        }
    }
    let status_of = |r: &RecordFact| -> Status {
        let top = latest[&(r.department.as_str(), r.source.record_key.as_str())];
        if top.pos != r.pos {
            return Status::Superseded {
                by: top.record_id.clone(),
            };
        }
        if let Some(e) = ends.get(r.record_id.as_str()) {
            return Status::Ended {
                reason: e.reason.clone(),
                ended_at_ms: e.learned_ms,
            };
        }
        if r.valid_from > at.day {
            Status::Pending
        } else if published_until(r, catalogue_of(r)).is_some_and(|u| u < at.day) {
            Status::Expired
        } else {
            Status::Active
        }
    };
    let mut by_id: BTreeMap<&str, (&RecordFact, Status)> = BTreeMap::new();
    let mut views: Vec<RecordView> = Vec::with_capacity(records.len());
    for r in &records {
        let status = status_of(r);
        // Two records under one id (a replay is stored once, so only a
        // foreign writer could): the latest stands.
        let slot = by_id.entry(&r.record_id).or_insert((r, status.clone()));
        if later((r.learned_ms, &r.pos), (slot.0.learned_ms, &slot.0.pos)) {
            *slot = (r, status.clone());
        }
        views.push(RecordView {
            record: (*r).clone(),
            status,
        });
    }
    views.sort_by(|a, b| {
        (b.record.valid_from, b.record.learned_ms, &b.record.pos).cmp(&(
            a.record.valid_from,
            a.record.learned_ms,
            &a.record.pos,
        ))
    });

    let mut out = SubjectState {
        licences: Vec::new(),
        penalties: Vec::new(),
        list_entries: Vec::new(),
        red_lists: Vec::new(),
        grades: Vec::new(),
        commitments: Vec::new(),
        grade: None,
        notices: Vec::new(),
        measures_in_force: BTreeMap::new(),
    };
    for v in views {
        if v.record.info_kind == "CREDIT_GRADE"
            && v.status == Status::Active
            && let Some(g) = &v.record.grade
        {
            // Views are sorted latest first: the first active grade stands.
            let better = out.grade.is_none();
            if better {
                out.grade = Some(Grade {
                    grade: g.clone(),
                    department: v.record.department.clone(),
                    record_id: v.record.record_id.clone(),
                    valid_from: v.record.valid_from,
                });
            }
        }
        let list = match v.record.info_kind.as_str() {
            "ADMINISTRATIVE_LICENSING" => &mut out.licences,
            "ADMINISTRATIVE_PENALTY" => &mut out.penalties,
            "RED_LIST" => &mut out.red_lists,
            "CREDIT_GRADE" => &mut out.grades,
            "COMMITMENT" => &mut out.commitments,
            // DISHONESTY_LIST, WATCH_LIST, and any kind a newer writer adds.
            _ => &mut out.list_entries,
        };
        list.push(v);
    }

    // Feedback: the latest known on each notice.
    let mut feedback: BTreeMap<&str, &FeedbackFact> = BTreeMap::new();
    for f in facts.feedback.iter().filter(|f| known(f.learned_ms)) {
        let slot = feedback.entry(&f.notice_id).or_insert(f);
        if (f.responded_at_ms, f.learned_ms, &f.pos)
            > (slot.responded_at_ms, slot.learned_ms, &slot.pos)
        {
            *slot = f;
        }
    }
    let feedback_state = |id: &str| {
        feedback
            .get(id)
            .map_or_else(|| "open".to_string(), |f| f.outcome.clone())
    };

    // Notices, and each duty's greatest (generation, lift-after-apply).
    let mut duties: BTreeMap<(&str, &str, &str), &NoticeFact> = BTreeMap::new();
    let mut seen_ids: BTreeMap<&str, &NoticeFact> = BTreeMap::new();
    for n in facts.notices.iter().filter(|n| known(n.learned_ms)) {
        // A notice id is deterministic: two copies are one notice (the first).
        let first = seen_ids.entry(&n.notice_id).or_insert(n);
        if (n.learned_ms, &n.pos) < (first.learned_ms, &first.pos) {
            *first = n;
        }
    }
    for n in seen_ids.values() {
        let rank = |n: &NoticeFact| (n.generation, !applies(n.kind), n.learned_ms, n.pos.clone());
        let slot = duties
            .entry((&n.record_id, &n.measure_id, &n.department))
            .or_insert(n);
        if rank(n) > rank(slot) {
            *slot = n;
        }
    }
    let mut notices: Vec<&NoticeFact> = seen_ids.values().copied().collect();
    notices.sort_by(|a, b| (a.learned_ms, &a.pos).cmp(&(b.learned_ms, &b.pos)));
    out.notices = notices
        .iter()
        .map(|n| NoticeView {
            notice: (*n).clone(),
            feedback_state: feedback_state(&n.notice_id),
            feedback: feedback.get(n.notice_id.as_str()).map(|f| (*f).clone()),
        })
        .collect();
    for n in duties.values() {
        if !applies(n.kind) {
            continue;
        }
        let record = by_id.get(n.record_id.as_str());
        // The entry must stand on the day; an entry the archive has not
        // seen yet (its record is on another partition, behind) is taken
        // at the notice's word.
        if record.is_some_and(|(_, s)| *s != Status::Active) {
            continue;
        }
        let r = record.map(|(r, _)| *r);
        out.measures_in_force
            .entry(n.department.clone())
            .or_default()
            .push(MeasureInForce {
                measure_id: n.measure_id.clone(),
                measure_name: n.measure_name.clone(),
                kind: n.kind.as_str().to_string(),
                implementing_department: n.department.clone(),
                generation: n.generation,
                feedback_state: feedback_state(&n.notice_id),
                explanation: Explanation {
                    notice_id: n.notice_id.clone(),
                    notice_learned_ms: n.learned_ms,
                    measure_id: n.measure_id.clone(),
                    measure_name: n.measure_name.clone(),
                    legal_basis: n.legal_basis.clone(),
                    catalogue_version: n.catalogue_version,
                    identifying_department: n.identifying_department.clone(),
                    list_type: n.list_type.clone(),
                    decision_number: n.decision_number.clone(),
                    record_id: n.record_id.clone(),
                    record_topic: n.source_topic.clone(),
                    record_partition: n.source_partition,
                    record_offset: n.source_offset,
                    department_record_key: r.map(|r| r.source.record_key.clone()),
                    inbound: r.map(|r| r.source.clone()),
                    catalogue_effective: None,
                    catalogue_description: None,
                },
            });
    }
    out
}

/// Masks a subject's personal data for a caller who may not read it:
/// natural persons' ID numbers and names, and every responsible person's
/// name. Returns the personal fields the answer shows unmasked otherwise.
pub fn personal_fields(s: &SubjectState) -> Vec<&'static str> {
    let mut fields = Vec::new();
    let all_records = s
        .licences
        .iter()
        .chain(&s.penalties)
        .chain(&s.list_entries)
        .chain(&s.red_lists)
        .chain(&s.grades)
        .chain(&s.commitments);
    let mut person = false;
    let mut responsible = false;
    for v in all_records {
        person |= v.record.subject_type == "NATURAL_PERSON";
        responsible |= v.record.responsible_person.is_some();
    }
    person |= s
        .notices
        .iter()
        .any(|n| n.notice.subject_type == "NATURAL_PERSON");
    if person {
        fields.extend(["subject_key", "subject_name"]);
    }
    if responsible {
        fields.push("responsible_person");
    }
    fields
}

/// Masks what [`personal_fields`] names.
pub fn mask(s: &mut SubjectState) {
    use credit_core::ids::{mask_id, mask_person_name};
    let person = |t: &str| t == "NATURAL_PERSON";
    for v in s
        .licences
        .iter_mut()
        .chain(&mut s.penalties)
        .chain(&mut s.list_entries)
        .chain(&mut s.red_lists)
        .chain(&mut s.grades)
        .chain(&mut s.commitments)
    {
        let r = &mut v.record;
        if person(&r.subject_type) {
            r.subject_key = mask_id(&r.subject_key);
            r.subject_name = mask_person_name(&r.subject_name);
        }
        if let Some(p) = &mut r.responsible_person {
            *p = mask_person_name(p);
        }
    }
    for n in &mut s.notices {
        if person(&n.notice.subject_type) {
            n.notice.subject_key = mask_id(&n.notice.subject_key);
            n.notice.subject_name = mask_person_name(&n.notice.subject_name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pos(topic: &str, offset: i64) -> Pos {
        Pos {
            topic: topic.into(),
            partition: 0,
            offset,
        }
    }

    pub(crate) fn record(
        id: &str,
        key: &str,
        learned_ms: i64,
        from: i32,
        until: Option<i32>,
    ) -> RecordFact {
        RecordFact {
            pos: pos("records", learned_ms),
            learned_ms,
            record_id: id.into(),
            department: "courts".into(),
            domain: "0".into(),
            subject_type: "LEGAL_PERSON".into(),
            subject_key: "91440101MA5CYUF21X".into(),
            subject_name: "某公司".into(),
            responsible_person: Some("张三".into()),
            info_kind: "DISHONESTY_LIST".into(),
            list_type: Some("JUDGEMENT_DEFAULTER".into()),
            grade: None,
            decision_number: "(2020)粤01执123号".into(),
            decision_date: from,
            publication_date: None,
            valid_from: from,
            valid_until: until,
            severity: "SERIOUS".into(),
            legal_basis: None,
            conduct: "x".into(),
            amount_fen: None,
            source: Lineage {
                topic: "credit.courts.inbound".into(),
                partition: 0,
                offset: 1,
                record_key: key.into(),
            },
        }
    }

    fn notice(
        record: &str,
        measure: &str,
        kind: NoticeKind,
        generation: i32,
        learned_ms: i64,
        offset: i64,
    ) -> NoticeFact {
        NoticeFact {
            pos: pos("notices", offset),
            learned_ms,
            notice_id: format!("{record}/{measure}/finance/{}/{generation}", kind.as_str()),
            kind,
            department: "finance".into(),
            measure_id: measure.into(),
            measure_name: "m".into(),
            legal_basis: "b".into(),
            catalogue_version: 1,
            generation,
            record_id: record.into(),
            list_type: "JUDGEMENT_DEFAULTER".into(),
            subject_type: "LEGAL_PERSON".into(),
            subject_key: "91440101MA5CYUF21X".into(),
            subject_name: "某公司".into(),
            identifying_department: "courts".into(),
            decision_number: "d".into(),
            reason: None,
            source_topic: "credit.records".into(),
            source_partition: 0,
            source_offset: 0,
        }
    }

    /// An entry ends at its catalogue version's maximum publication period
    /// (the engine lifts it then) even when its department stated a later
    /// end or none; its duties leave "in force" with it.
    #[test]
    fn an_entry_expires_at_its_maximum_publication_period() {
        let from = credit_core::date::days_from_civil(2024, 1, 10);
        // MAJOR_TAX_VIOLATION, ORDINARY: published 3 to 12 months (v1).
        let mut r = record("tax:0:1", "k1", 1_000, from, None);
        r.list_type = Some("MAJOR_TAX_VIOLATION".into());
        r.severity = "ORDINARY".into();
        let mut stated = r.clone();
        stated.record_id = "tax:0:2".into();
        stated.source.record_key = "k2".into();
        stated.pos.offset += 1;
        stated.valid_until = Some(from + 2000);
        let shorter = {
            let mut x = stated.clone();
            x.record_id = "tax:0:3".into();
            x.source.record_key = "k3".into();
            x.pos.offset += 1;
            x.valid_until = Some(from + 30);
            x
        };
        let facts = Facts {
            records: vec![r.clone(), stated.clone(), shorter.clone()],
            notices: vec![notice("tax:0:1", "m1", NoticeKind::Punishment, 1, 2_000, 1)],
            ..Facts::default()
        };
        let last = credit_core::date::add_months(from, 12) - 1;
        let status = |day: i32| {
            let s = state(
                &facts,
                AsOf {
                    known_ms: 10_000,
                    day,
                },
            );
            let of = |id: &str| {
                s.list_entries
                    .iter()
                    .find(|v| v.record.record_id == id)
                    .map(|v| v.status.clone())
                    .unwrap()
            };
            (
                of("tax:0:1"),
                of("tax:0:2"),
                of("tax:0:3"),
                s.measures_in_force.is_empty(),
            )
        };
        assert_eq!(
            status(from + 10),
            (Status::Active, Status::Active, Status::Active, false)
        );
        assert_eq!(
            status(last),
            (Status::Active, Status::Active, Status::Expired, false)
        );
        assert_eq!(
            status(last + 1),
            (Status::Expired, Status::Expired, Status::Expired, true)
        );
        // A version without a publication period for the list keeps the
        // department's stated end.
        let mut v2 = credit_measures::Catalogue::parse(credit_measures::V1).unwrap();
        v2.publication.clear();
        let cats = Catalogues::from([(1, Arc::new(v2))]);
        let s = state_with(
            &facts,
            AsOf {
                known_ms: 10_000,
                day: last + 1,
            },
            &cats,
        );
        let st: Vec<_> = s.list_entries.iter().map(|v| v.status.clone()).collect();
        assert!(st.contains(&Status::Active), "{st:?}");
        assert!(!s.measures_in_force.is_empty());
    }

    #[test]
    fn as_of_parses_dates_and_timestamps() {
        let d = credit_core::date::days_from_civil(2026, 12, 6);
        let eod = AsOf::parse("2026-12-06").unwrap();
        assert_eq!(eod.day, d);
        // The end of the day in the city is 15:59:59.999 UTC.
        assert_eq!(
            eod.known_ms,
            AsOf::parse("2026-12-06T15:59:59.999Z").unwrap().known_ms
        );
        let t = AsOf::parse("2026-12-06T10:00:00+08:00").unwrap();
        assert_eq!(t, AsOf::parse("2026-12-06T02:00:00Z").unwrap());
        assert_eq!(t.day, d);
        assert_eq!(rfc3339(t.known_ms), "2026-12-06T02:00:00.000Z");
        assert_eq!(AsOf::parse(&rfc3339(eod.known_ms)).unwrap(), eod);
        // 20:00 UTC is already the next day in the city.
        assert_eq!(AsOf::parse("2026-12-06T20:00:00Z").unwrap().day, d + 1);
        assert_eq!(
            AsOf::parse("2026-12-06T02:00:00.5Z").unwrap().known_ms - t.known_ms,
            500
        );
        for bad in [
            "",
            "yesterday",
            "2026-13-01",
            "2026-02-30",
            "2026-12-06T25:00:00Z",
            "2026-12-06T10:00:00",
            "2026-12-06T10:00:00+0800",
            "2026-12-06T10:00:00.Z",
            "２０２６-12-06",
        ] {
            let e = AsOf::parse(bad).unwrap_err();
            assert!(e.contains("RFC 3339"), "{bad}: {e}");
        }
    }

    #[test]
    fn an_ended_entry_leaves_its_measures_in_force_before_its_end_only() {
        let facts = Facts {
            records: vec![record("courts:0:1", "k1", 1_000, 100, None)],
            notices: vec![
                notice("courts:0:1", "m1", NoticeKind::Punishment, 1, 2_000, 0),
                NoticeFact {
                    reason: Some("repaired".into()),
                    ..notice("courts:0:1", "m1", NoticeKind::Lift, 1, 9_000, 1)
                },
            ],
            feedback: vec![],
            ends: vec![EndFact {
                pos: pos("commands", 0),
                learned_ms: 8_000,
                record_id: "courts:0:1".into(),
                reason: "repaired".into(),
            }],
        };
        let at = |ms| AsOf {
            known_ms: ms,
            day: 200,
        };
        assert!(
            state(&facts, at(1_500)).measures_in_force.is_empty(),
            "no notice yet"
        );
        let s = state(&facts, at(5_000));
        assert_eq!(s.measures_in_force["finance"][0].measure_id, "m1");
        assert_eq!(s.list_entries[0].status, Status::Active);
        assert_eq!(
            s.measures_in_force["finance"][0]
                .explanation
                .department_record_key
                .as_deref(),
            Some("k1")
        );
        // The command alone ends nothing: the engine may refuse it.
        let s = state(&facts, at(8_500));
        assert_eq!(s.list_entries[0].status, Status::Active);
        assert_eq!(s.measures_in_force["finance"].len(), 1);
        // Confirmed by the engine's lift: ended since the command.
        let s = state(&facts, at(9_000));
        assert!(s.measures_in_force.is_empty());
        assert_eq!(
            s.list_entries[0].status,
            Status::Ended {
                reason: "repaired".into(),
                ended_at_ms: 8_000
            }
        );
        // A lift for another reason (a duty expiring) confirms no repair.
        let mut other = facts.clone();
        other.notices[1].reason = Some("expired".into());
        assert_eq!(
            state(&other, at(9_500)).list_entries[0].status,
            Status::Active
        );
        assert!(state(&facts, at(10_000)).measures_in_force.is_empty());
        // Expired on the day after its validity.
        let mut f2 = facts.clone();
        f2.ends.clear();
        f2.notices.pop();
        f2.records[0].valid_until = Some(150);
        assert_eq!(
            state(&f2, at(5_000)).list_entries[0].status,
            Status::Expired
        );
        assert_eq!(
            state(
                &f2,
                AsOf {
                    known_ms: 5_000,
                    day: 150
                }
            )
            .list_entries[0]
                .status,
            Status::Active
        );
        assert_eq!(
            state(
                &f2,
                AsOf {
                    known_ms: 5_000,
                    day: 50
                }
            )
            .list_entries[0]
                .status,
            Status::Pending
        );
    }

    #[test]
    fn a_resent_record_supersedes_the_earlier_one() {
        let facts = Facts {
            records: vec![
                record("courts:0:1", "k1", 1_000, 100, None),
                record("courts:0:7", "k1", 3_000, 100, None),
            ],
            ..Facts::default()
        };
        let s = state(
            &facts,
            AsOf {
                known_ms: 5_000,
                day: 200,
            },
        );
        let statuses: Vec<_> = s
            .list_entries
            .iter()
            .map(|v| (&v.record.record_id[..], v.status.clone()))
            .collect();
        assert_eq!(
            statuses,
            vec![
                ("courts:0:7", Status::Active),
                (
                    "courts:0:1",
                    Status::Superseded {
                        by: "courts:0:7".into()
                    }
                )
            ]
        );
    }

    #[test]
    fn masking_hides_persons_only() {
        let mut r = record("courts:0:1", "k1", 1_000, 100, None);
        r.subject_type = "NATURAL_PERSON".into();
        r.subject_key = "44010619900101123X".into();
        r.subject_name = "李四".into();
        let facts = Facts {
            records: vec![r, record("courts:0:2", "k2", 1_000, 100, None)],
            ..Facts::default()
        };
        let mut s = state(
            &facts,
            AsOf {
                known_ms: 5_000,
                day: 200,
            },
        );
        assert_eq!(
            personal_fields(&s),
            ["subject_key", "subject_name", "responsible_person"]
        );
        mask(&mut s);
        let text = serde_json::to_string(&s).unwrap();
        assert!(
            !text.contains("44010619900101123X")
                && !text.contains("李四")
                && !text.contains("张三"),
            "{text}"
        );
        assert!(
            text.contains("440106********123X") && text.contains("李*"),
            "{text}"
        );
        assert!(
            text.contains("91440101MA5CYUF21X"),
            "organisations' codes stay: {text}"
        );
    }

    /// A generated history: records of a few entries (some resent), each
    /// entry's duties applied, lifted and applied again in generation order,
    /// feedback on some notices, and operator ends, with learned times that
    /// may tie and arrive out of order across topics.
    fn arb_facts() -> impl Strategy<Value = Facts> {
        let rec = (
            0..4usize,
            0..3usize,
            0i64..100,
            0i32..20,
            proptest::option::of(0i32..30),
        );
        let duty = (
            0..4usize,
            0..2usize,
            1..4i32,
            0i64..100,
            any::<bool>(),
            proptest::option::of(0i64..100),
        );
        let end = (0..4usize, 0i64..100);
        (
            proptest::collection::vec(rec, 0..8),
            proptest::collection::vec(duty, 0..10),
            proptest::collection::vec(end, 0..3),
        )
            .prop_map(|(recs, duties, ends)| {
                let mut f = Facts::default();
                // One record per record id, one run of generations per duty,
                // as the normaliser and the engine write them.
                let recs: BTreeMap<usize, _> = recs
                    .into_iter()
                    .map(|(e, k, t, from, len)| (e, (k, t, from, len)))
                    .collect();
                let duties: BTreeMap<(usize, usize), _> = duties
                    .into_iter()
                    .map(|(e, m, g, t, l, fb)| ((e, m), (g, t, l, fb)))
                    .collect();
                for (i, (e, (k, t, from, len))) in recs.into_iter().enumerate() {
                    let mut r = record(
                        &format!("courts:0:{e}"),
                        &format!("k{k}"),
                        t,
                        from,
                        len.map(|l| from + l),
                    );
                    r.pos.offset = i as i64;
                    f.records.push(r);
                }
                let mut off = 0;
                for ((e, m), (gens, t, lifted_last, fb)) in duties {
                    let id = format!("courts:0:{e}");
                    let measure = format!("m{m}");
                    let mut t = t;
                    for g in 1..=gens {
                        off += 1;
                        f.notices
                            .push(notice(&id, &measure, NoticeKind::Punishment, g, t, off));
                        if let Some(fb) = fb {
                            off += 1;
                            f.feedback.push(FeedbackFact {
                                pos: pos("feedback", off),
                                learned_ms: t + fb,
                                notice_id: f.notices.last().unwrap().notice_id.clone(),
                                department: "finance".into(),
                                outcome: if fb % 2 == 0 { "applied" } else { "failed" }.into(),
                                reason: None,
                                responded_at_ms: t + fb,
                            });
                        }
                        if g < gens || lifted_last {
                            t += 7;
                            off += 1;
                            f.notices
                                .push(notice(&id, &measure, NoticeKind::Lift, g, t, off));
                        }
                        t += 5;
                    }
                }
                for (i, (e, t)) in ends.into_iter().enumerate() {
                    f.ends.push(EndFact {
                        pos: pos("commands", i as i64),
                        learned_ms: t,
                        record_id: format!("courts:0:{e}"),
                        reason: "repaired".into(),
                    });
                }
                f
            })
    }

    fn known_at(f: &Facts, t: i64) -> Facts {
        Facts {
            records: f
                .records
                .iter()
                .filter(|x| x.learned_ms <= t)
                .cloned()
                .collect(),
            notices: f
                .notices
                .iter()
                .filter(|x| x.learned_ms <= t)
                .cloned()
                .collect(),
            feedback: f
                .feedback
                .iter()
                .filter(|x| x.learned_ms <= t)
                .cloned()
                .collect(),
            ends: f
                .ends
                .iter()
                .filter(|x| x.learned_ms <= t)
                .cloned()
                .collect(),
        }
    }

    /// A duty's state by a plain replay in learned order: an application
    /// puts it in force, the lift of the same generation takes it out.
    fn replayed_in_force(f: &Facts) -> BTreeMap<(String, String), bool> {
        let mut ns: Vec<&NoticeFact> = f.notices.iter().collect();
        ns.sort_by(|a, b| {
            (a.learned_ms, a.generation, !applies(a.kind), &a.pos).cmp(&(
                b.learned_ms,
                b.generation,
                !applies(b.kind),
                &b.pos,
            ))
        });
        let mut out = BTreeMap::new();
        for n in ns {
            out.insert((n.record_id.clone(), n.measure_id.clone()), applies(n.kind));
        }
        out
    }

    proptest! {
        /// The state as of t, computed from every fact (later ones too, in
        /// any order), equals the state built from only the facts known at t.
        #[test]
        fn state_as_of_t_is_the_state_of_the_facts_known_at_t(
            f in arb_facts(),
            t in 0i64..130,
            day in 0i32..40,
            seed in any::<u64>(),
        ) {
            let at = AsOf { known_ms: t, day };
            let mut shuffled = f.clone();
            let mut rng = seed;
            let mut shuffle = |n: usize| -> Vec<usize> {
                let mut idx: Vec<usize> = (0..n).collect();
                for i in (1..n).rev() {
                    rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    idx.swap(i, (rng >> 33) as usize % (i + 1));
                }
                idx
            };
            let o = shuffle(f.records.len());
            shuffled.records = o.iter().map(|&i| f.records[i].clone()).collect();
            let o = shuffle(f.notices.len());
            shuffled.notices = o.iter().map(|&i| f.notices[i].clone()).collect();
            let o = shuffle(f.feedback.len());
            shuffled.feedback = o.iter().map(|&i| f.feedback[i].clone()).collect();
            let o = shuffle(f.ends.len());
            shuffled.ends = o.iter().map(|&i| f.ends[i].clone()).collect();
            let known = known_at(&f, t);
            prop_assert_eq!(state(&shuffled, at), state(&known, at));
        }

        /// The measures in force agree with a plain replay of the notices
        /// known at t, for entries that stand on the day.
        #[test]
        fn measures_in_force_agree_with_a_replay(f in arb_facts(), t in 0i64..130, day in 0i32..40) {
            let at = AsOf { known_ms: t, day };
            let s = state(&f, at);
            let known = known_at(&f, t);
            let in_force: std::collections::BTreeSet<(String, String)> = s
                .measures_in_force
                .values()
                .flatten()
                .map(|m| (m.explanation.record_id.clone(), m.measure_id.clone()))
                .collect();
            let standing = |id: &str| {
                let all: Vec<&RecordView> = s.list_entries.iter().filter(|v| v.record.record_id == id).collect();
                all.is_empty() || all.iter().any(|v| v.status == Status::Active)
            };
            let expected: std::collections::BTreeSet<(String, String)> = replayed_in_force(&known)
                .into_iter()
                .filter(|((id, _), on)| *on && standing(id))
                .map(|(k, _)| k)
                .collect();
            prop_assert_eq!(in_force, expected);
        }
    }
}
