//! Offsets a broker skipped: detection and rewind.
//!
//! Kafka answers a fetch at offset *n* with the record batch that *contains* n;
//! the client drops the records before n. tansu 0.6 answers with the first batch
//! that *starts* at or after n, so a consumer resuming from a committed offset
//! inside a producer's batch silently skips the rest of that batch (seen here:
//! records 1000..1374 of a partition never reached the engine after a `kill -9`,
//! because its committed offset 1000 lay inside the batch 709..1374).
//!
//! Every reader that resumes from a known offset therefore checks that the first
//! record it gets is the one it asked for. When it is not, it seeks back by a
//! growing step until a batch boundary at or before the wanted offset is found,
//! and drops what it already processed. On a broker that behaves like Kafka the
//! check never fires on uncompacted topics; where an earlier offset is really
//! gone (retention on Kafka, compaction), the rewind reaches offset 0, then
//! accepts the gap and says so.

use std::collections::HashMap;
use std::time::{Duration, Instant};

/// The first rewind goes back this many offsets; each further one four times more.
pub const FIRST_STEP: i64 = 512;

/// What to do with a record at some offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The next record: process it.
    Process,
    /// Below what is wanted (already processed, or read again after a rewind): drop it.
    Skip,
    /// Offsets between the wanted one and this record were skipped by the broker:
    /// seek the partition to this offset, drop what is already in hand from it.
    Rewind(i64),
    /// Offsets `from..to` are really gone (the rewind reached offset 0): process
    /// this record and report the gap.
    Gone { from: i64, to: i64 },
}

#[derive(Debug, Clone, Copy)]
struct Cursor {
    /// The next offset wanted.
    next: i64,
    /// The last rewind made for `next`, if any: the offset sought to and the step.
    rewound: Option<(i64, i64)>,
    /// When a record or an expectation last arrived.
    touched: Instant,
}

/// Per partition, the next offset wanted. Keys are whatever identifies a
/// partition to the caller (`i32`, or `(topic, partition)`).
#[derive(Debug)]
pub struct GapGuard<K> {
    cursors: HashMap<K, Cursor>,
}

impl<K> Default for GapGuard<K> {
    fn default() -> Self {
        GapGuard {
            cursors: HashMap::new(),
        }
    }
}

impl<K: std::hash::Hash + Eq + Clone> GapGuard<K> {
    /// The next record wanted from `key` is at `next` (a committed offset, a checkpoint).
    pub fn expect(&mut self, key: K, next: i64) {
        self.cursors.insert(
            key,
            Cursor {
                next,
                rewound: None,
                touched: Instant::now(),
            },
        );
    }

    /// Nothing is known about `key` any more (partition revoked).
    pub fn forget(&mut self, key: &K) {
        self.cursors.remove(key);
    }

    pub fn next(&self, key: &K) -> Option<i64> {
        self.cursors.get(key).map(|c| c.next)
    }

    /// Judges the record at `offset` of `key`. Without an expectation the first
    /// record is taken as the start.
    pub fn check(&mut self, key: &K, offset: i64) -> Verdict {
        let Some(c) = self.cursors.get_mut(key) else {
            self.expect(key.clone(), offset + 1);
            return Verdict::Process;
        };
        c.touched = Instant::now();
        if offset < c.next {
            return Verdict::Skip;
        }
        if offset == c.next {
            c.next = offset + 1;
            c.rewound = None;
            return Verdict::Process;
        }
        match rewind_target(c.next, c.rewound) {
            Some((target, step)) => {
                c.rewound = Some((target, step));
                Verdict::Rewind(target)
            }
            None => {
                let from = c.next;
                c.next = offset + 1;
                c.rewound = None;
                Verdict::Gone { from, to: offset }
            }
        }
    }

    /// The partition ended (partition-EOF) at `end` (the high watermark) before
    /// the wanted offset came: a skip too, unless nothing is wanted below `end`.
    pub fn check_end(&mut self, key: &K, end: i64) -> Option<i64> {
        let c = self.cursors.get_mut(key)?;
        if end <= c.next {
            return None;
        }
        let (target, step) = rewind_target(c.next, c.rewound)?;
        c.rewound = Some((target, step));
        Some(target)
    }
}

impl<K: std::hash::Hash + Eq + Clone> GapGuard<K> {
    /// Partitions quiet for `quiet` although `end` (the cached high watermark)
    /// says records exist from the wanted offset on: the broker skipped a resume
    /// inside the partition's last batch and will serve nothing until another
    /// batch arrives. Returns where to seek each of them.
    pub fn stalled(
        &mut self,
        quiet: Duration,
        mut end: impl FnMut(&K) -> Option<i64>,
    ) -> Vec<(K, i64)> {
        let now = Instant::now();
        let quiet_keys: Vec<K> = self
            .cursors
            .iter()
            .filter(|(_, c)| now.duration_since(c.touched) >= quiet)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::new();
        for k in quiet_keys {
            if let Some(target) = end(&k).and_then(|e| self.check_end(&k, e)) {
                if let Some(c) = self.cursors.get_mut(&k) {
                    c.touched = now;
                }
                out.push((k, target));
            }
        }
        out
    }
}

/// Where to seek when `next` was skipped, given the last rewind for it: `None`
/// when the last one already went to offset 0.
fn rewind_target(next: i64, last: Option<(i64, i64)>) -> Option<(i64, i64)> {
    let step = match last {
        None => FIRST_STEP,
        Some((0, _)) => return None,
        Some((_, s)) => s.saturating_mul(4),
    };
    Some(((next - step).max(0), step))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A broker like tansu 0.6: a fetch at `at` returns records from the first
    /// batch starting at or after `at`. `batches` are the batch start offsets,
    /// `end` the high watermark.
    fn tansu_fetch(batches: &[i64], end: i64, at: i64) -> std::ops::Range<i64> {
        let start = batches.iter().copied().find(|b| *b >= at).unwrap_or(end);
        start..end
    }

    /// Reads everything from `from` through the guard against a skipping broker;
    /// returns what was processed.
    fn read(batches: &[i64], end: i64, from: i64) -> Vec<i64> {
        let mut g = GapGuard::default();
        g.expect(0, from);
        let mut at = from;
        let mut out = Vec::new();
        'fetch: for _ in 0..64 {
            let got = tansu_fetch(batches, end, at);
            if got.is_empty() {
                match g.check_end(&0, end) {
                    Some(t) => {
                        at = t;
                        continue 'fetch;
                    }
                    None => return out,
                }
            }
            for o in got {
                match g.check(&0, o) {
                    Verdict::Process | Verdict::Gone { .. } => out.push(o),
                    Verdict::Skip => {}
                    Verdict::Rewind(t) => {
                        at = t;
                        continue 'fetch;
                    }
                }
            }
            return out;
        }
        panic!("no progress");
    }

    #[test]
    fn a_resume_inside_a_batch_reads_the_rest_of_it() {
        // The case seen: batch 709..1374, committed offset 1000.
        let got = read(&[0, 709, 1375, 1406], 2000, 1000);
        assert_eq!(got, (1000..2000).collect::<Vec<_>>());
        // Inside the last batch: the fetch returns nothing, EOF says more exists.
        let got = read(&[0, 100], 200, 150);
        assert_eq!(got, (150..200).collect::<Vec<_>>());
    }

    #[test]
    fn a_kafka_like_broker_never_rewinds() {
        let mut g = GapGuard::default();
        g.expect("p", 10);
        assert_eq!(g.check(&"p", 8), Verdict::Skip);
        assert_eq!(g.check(&"p", 10), Verdict::Process);
        assert_eq!(g.check(&"p", 11), Verdict::Process);
        assert_eq!(g.check_end(&"p", 12), None);
    }

    #[test]
    fn a_real_hole_is_accepted_once_offset_zero_was_tried() {
        let mut g = GapGuard::default();
        g.expect(1, 100);
        assert_eq!(g.check(&1, 5000), Verdict::Rewind(0));
        // After seeking to 0 the first record is still 5000 (retention removed the rest).
        assert_eq!(
            g.check(&1, 5000),
            Verdict::Gone {
                from: 100,
                to: 5000
            }
        );
        assert_eq!(g.check(&1, 5001), Verdict::Process);
    }

    proptest! {
        /// Whatever the batch layout and the resume point, every offset from the
        /// resume point to the end is processed exactly once, in order.
        #[test]
        fn every_offset_after_the_resume_point_is_read_once(
            sizes in proptest::collection::vec(1i64..5000, 1..40),
            pick in 0.0f64..1.0,
        ) {
            let mut batches = Vec::new();
            let mut end = 0;
            for s in &sizes {
                batches.push(end);
                end += s;
            }
            let from = ((end as f64) * pick) as i64;
            prop_assert_eq!(read(&batches, end, from), (from..end).collect::<Vec<_>>());
        }
    }
}
