//! The transaction cycle, as a pure state machine.
//!
//! Every notice, dead letter and changelog write the engine makes goes into a
//! Kafka transaction together with the input offsets that caused it
//! (`send_offsets_to_transaction`), so a crash, a rebalance or a broker
//! restart commits all of it or none. [`Cycle`] decides what the I/O around it
//! does next and remembers what each outcome means:
//!
//! * a transaction opens at the first input (or expiry) after the last one
//!   closed ([`Cycle::consumed`], [`Cycle::touched`]);
//! * it commits when input pauses (latency: one commit, not an interval),
//!   after `commit_interval` while input keeps arriving, or at `max_batch`
//!   inputs ([`Cycle::should_commit`]);
//! * a commit covers, per input partition, the offset after its last input
//!   ([`Cycle::offsets`]); once committed those become the positions an abort
//!   rewinds to ([`Cycle::committed`]);
//! * an abort ([`Cycle::aborted`]) names each partition the transaction
//!   touched, with the position to seek it back to and its state to drop
//!   (the state held uncommitted changes; it is replayed from the changelog);
//! * a failed commit is retried, aborted or stops the instance, by its error
//!   ([`on_commit_error`]).
//!
//! The unit tests drive it with fake outcomes; the chaos tests
//! (`tests/tests/engine.rs`) drive the real thing with `kill -9`s.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// An input partition: (topic, partition).
pub type Part = (String, i32);

/// Where the transaction cycle is.
#[derive(Debug)]
pub struct Cycle {
    max_batch: usize,
    interval: Duration,
    /// When the open transaction began; `None`: none is open.
    open_since: Option<Instant>,
    /// Inputs planned into the open transaction.
    inputs: usize,
    /// Per input partition, the offset after its last input in the open transaction.
    next: BTreeMap<Part, i64>,
    /// Per input partition, the offset after the last committed input (or the
    /// first offset read since it was assigned): where an abort rewinds to.
    committed: BTreeMap<Part, i64>,
    /// Engine partitions whose state the open transaction changed.
    touched: BTreeSet<i32>,
}

/// What to undo after an abort.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rewind {
    /// Seek each to its offset: the input after the last commit.
    pub seek: Vec<(Part, i64)>,
    /// Drop the state of each engine partition (replayed from the changelog).
    pub drop: BTreeSet<i32>,
}

/// What a failed commit asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnCommitError {
    /// Call commit again (the transaction is still whole).
    Retry,
    /// Abort the transaction and redo its work from the last commit.
    Abort,
    /// The producer cannot go on (fenced by a newer instance, fatal): stop.
    Stop,
}

/// How librdkafka's transaction error flags map to what to do: fatal first,
/// then abortable, then retriable (librdkafka's documented order of checks).
pub fn on_commit_error(fatal: bool, requires_abort: bool, retriable: bool) -> OnCommitError {
    if fatal {
        OnCommitError::Stop
    } else if requires_abort {
        OnCommitError::Abort
    } else if retriable {
        OnCommitError::Retry
    } else {
        // Neither flag: librdkafka says the transaction's state is unknown;
        // aborting is the one safe move (nothing of it becomes visible).
        OnCommitError::Abort
    }
}

impl Cycle {
    pub fn new(max_batch: usize, interval: Duration) -> Cycle {
        Cycle {
            max_batch: max_batch.max(1),
            interval,
            open_since: None,
            inputs: 0,
            next: BTreeMap::new(),
            committed: BTreeMap::new(),
            touched: BTreeSet::new(),
        }
    }

    /// Whether a transaction is open (must be committed or aborted).
    pub fn is_open(&self) -> bool {
        self.open_since.is_some()
    }

    /// Opens a transaction if none is: `true` means "begin one now".
    pub fn open(&mut self, now: Instant) -> bool {
        if self.open_since.is_some() {
            return false;
        }
        self.open_since = Some(now);
        true
    }

    /// An input at `offset` was planned into the open transaction. The
    /// first input read from a partition also fixes where an abort rewinds
    /// it to, until a commit moves that.
    pub fn consumed(&mut self, part: Part, offset: i64, engine_partition: i32) {
        debug_assert!(self.is_open(), "input outside a transaction");
        self.committed.entry(part.clone()).or_insert(offset);
        self.next.insert(part, offset + 1);
        self.touched.insert(engine_partition);
        self.inputs += 1;
    }

    /// The open transaction changed an engine partition's state without input
    /// (expiry).
    pub fn touched(&mut self, engine_partition: i32) {
        debug_assert!(self.is_open(), "change outside a transaction");
        self.touched.insert(engine_partition);
    }

    /// Engine partitions the open transaction changed.
    pub fn touched_partitions(&self) -> &BTreeSet<i32> {
        &self.touched
    }

    /// Whether to commit now: `idle` says no more input is waiting.
    pub fn should_commit(&self, now: Instant, idle: bool) -> bool {
        let Some(since) = self.open_since else {
            return false;
        };
        idle || self.inputs >= self.max_batch || now.duration_since(since) >= self.interval
    }

    /// How long until the open transaction must commit even if input keeps
    /// arriving; `None` when none is open.
    pub fn deadline(&self) -> Option<Instant> {
        self.open_since.map(|t| t + self.interval)
    }

    /// The input offsets the open transaction commits: per partition, the
    /// offset after its last input.
    pub fn offsets(&self) -> impl Iterator<Item = (&Part, i64)> {
        self.next.iter().map(|(p, o)| (p, *o))
    }

    /// Inputs in the open transaction.
    pub fn inputs(&self) -> usize {
        self.inputs
    }

    /// The open transaction committed: its offsets are where an abort now rewinds to.
    pub fn committed(&mut self) {
        for (p, o) in std::mem::take(&mut self.next) {
            self.committed.insert(p, o);
        }
        self.close();
    }

    /// The open transaction was aborted: what to seek back and drop.
    pub fn aborted(&mut self) -> Rewind {
        let seek = self
            .next
            .keys()
            .filter_map(|p| self.committed.get(p).map(|o| (p.clone(), *o)))
            .collect();
        let drop = std::mem::take(&mut self.touched);
        self.next.clear();
        self.close();
        Rewind { seek, drop }
    }

    /// The consumer's assignment changed: positions of partitions it lost
    /// (or may have lost) are no longer ours to remember. Call with no
    /// transaction open (abort first).
    pub fn forget_positions(&mut self) {
        debug_assert!(!self.is_open());
        self.committed.clear();
    }

    fn close(&mut self) {
        self.open_since = None;
        self.inputs = 0;
        self.touched.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(p: i32) -> Part {
        ("credit.records".to_string(), p)
    }

    #[test]
    fn commits_when_idle_full_or_late() {
        let t0 = Instant::now();
        let mut c = Cycle::new(3, Duration::from_millis(100));
        assert!(!c.should_commit(t0, true), "nothing open");
        assert!(c.open(t0));
        assert!(!c.open(t0), "already open");
        c.consumed(part(0), 10, 0);
        assert!(!c.should_commit(t0, false));
        assert!(c.should_commit(t0, true), "input paused");
        assert!(
            c.should_commit(t0 + Duration::from_millis(100), false),
            "interval"
        );
        c.consumed(part(0), 11, 0);
        c.consumed(part(1), 4, 1);
        assert!(c.should_commit(t0, false), "max batch");
        assert_eq!(c.deadline(), Some(t0 + Duration::from_millis(100)));
    }

    #[test]
    fn a_commit_covers_the_offset_after_each_partitions_last_input() {
        let t0 = Instant::now();
        let mut c = Cycle::new(100, Duration::from_secs(1));
        c.open(t0);
        c.consumed(part(0), 10, 0);
        c.consumed(part(0), 11, 0);
        c.consumed(("credit.engine.commands".into(), 0), 3, 0);
        c.consumed(part(2), 7, 2);
        let got: Vec<(Part, i64)> = c.offsets().map(|(p, o)| (p.clone(), o)).collect();
        assert_eq!(
            got,
            vec![
                (("credit.engine.commands".into(), 0), 4),
                (part(0), 12),
                (part(2), 8)
            ]
        );
        assert_eq!(c.touched_partitions(), &BTreeSet::from([0, 2]));
        c.committed();
        assert!(!c.is_open() && c.offsets().next().is_none() && c.inputs() == 0);
    }

    /// An abort rewinds each partition it touched to the input after the
    /// last commit (or to its first input read, if none committed since it
    /// was assigned), and drops exactly the states it changed; what was
    /// committed before stays.
    #[test]
    fn an_abort_rewinds_to_the_last_commit() {
        let t0 = Instant::now();
        let mut c = Cycle::new(100, Duration::from_secs(1));
        c.open(t0);
        c.consumed(part(0), 10, 0);
        c.consumed(part(1), 50, 1);
        c.committed();
        c.open(t0);
        c.consumed(part(0), 11, 0);
        c.consumed(part(0), 12, 0);
        c.consumed(part(3), 90, 3);
        c.touched(2);
        let r = c.aborted();
        assert_eq!(r.seek, vec![(part(0), 11), (part(3), 90)]);
        assert_eq!(r.drop, BTreeSet::from([0, 2, 3]));
        assert!(!c.is_open());
        // The redo reads 11 again; aborting once more rewinds to the same place.
        c.open(t0);
        c.consumed(part(0), 11, 0);
        assert_eq!(c.aborted().seek, vec![(part(0), 11)]);
        // After a rebalance nothing is remembered: the first input read fixes it.
        c.forget_positions();
        c.open(t0);
        c.consumed(part(0), 30, 0);
        assert_eq!(c.aborted().seek, vec![(part(0), 30)]);
    }

    /// A sequence of fake outcomes: whatever commits and aborts happen, the
    /// committed position of a partition only moves forward, to one past an
    /// input that was committed, and an abort always rewinds to it.
    #[test]
    fn positions_follow_outcomes() {
        let t0 = Instant::now();
        let mut c = Cycle::new(1000, Duration::from_secs(1));
        let mut committed = 0i64; // what the broker holds for partition 0
        let mut pos = 0i64; // the consumer's position
        // (inputs in the transaction, outcome: true = committed)
        for (n, ok) in [
            (3, true),
            (2, false),
            (2, false),
            (5, true),
            (1, false),
            (4, true),
        ] {
            c.open(t0);
            for _ in 0..n {
                c.consumed(part(0), pos, 0);
                pos += 1;
            }
            if ok {
                committed = c.offsets().next().unwrap().1;
                c.committed();
            } else {
                let r = c.aborted();
                assert_eq!(r.seek, vec![(part(0), committed)]);
                pos = committed;
            }
        }
        assert_eq!(committed, 12);
    }

    #[test]
    fn commit_errors_in_librdkafkas_order() {
        assert_eq!(on_commit_error(true, true, true), OnCommitError::Stop);
        assert_eq!(on_commit_error(false, true, true), OnCommitError::Abort);
        assert_eq!(on_commit_error(false, false, true), OnCommitError::Retry);
        assert_eq!(on_commit_error(false, false, false), OnCommitError::Abort);
    }
}
