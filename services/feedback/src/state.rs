//! What the tracker knows, as plain data: every notice sent, the feedback on
//! it, and feedback waiting for its notice. No Kafka here; the pipeline feeds
//! it records in the order it reads them.
//!
//! A notice is *open* until feedback is accepted for it, *overdue* while open
//! past its deadline, and *done* with the outcome of its latest accepted
//! feedback. Overdue notices can still become done. A feedback identical to the
//! notice's current outcome and reason (a department resending) changes and
//! counts nothing.

use std::collections::{BTreeMap, HashMap};

use credit_core::feedback::{FeedbackReason, Outcome};
use credit_schemas::feedback::OwnedFeedback;
use serde::Serialize;

use crate::rules::{Calendar, Verdict, check};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticeState {
    pub department: &'static str,
    pub sent_ms: i64,
    pub deadline_ms: i64,
    /// Outcome and reason of the latest accepted feedback.
    pub done: Option<(Outcome, Option<String>)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Open,
    Overdue,
    Done(Outcome),
}

impl NoticeState {
    pub fn phase(&self, now_ms: i64) -> Phase {
        match &self.done {
            Some((o, _)) => Phase::Done(*o),
            None if now_ms >= self.deadline_ms => Phase::Overdue,
            None => Phase::Open,
        }
    }
}

/// What processing a record decided, for metrics and the rejected topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<T> {
    /// Feedback accepted and counted.
    Accepted {
        department: &'static str,
        outcome: Outcome,
    },
    /// Feedback identical to what the notice already has: not counted again.
    Repeated { department: &'static str },
    Rejected {
        department: &'static str,
        reason: FeedbackReason,
        origin: T,
    },
}

/// Per-department figures of `/report`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Counts {
    pub open: u64,
    pub overdue: u64,
    pub done: u64,
    pub applied: u64,
    pub not_applicable: u64,
    pub failed: u64,
}

struct Pending<T> {
    seq: u64,
    department: &'static str,
    feedback: OwnedFeedback,
    origin: T,
}

/// The tracker's state. `T` is whatever the caller needs to reject a feedback
/// later (the pipeline keeps the original message).
pub struct Book<T> {
    calendar: Calendar,
    working_days: u32,
    notices: HashMap<String, NoticeState>,
    pending: HashMap<String, Vec<Pending<T>>>,
}

impl<T> Book<T> {
    pub fn new(calendar: Calendar, working_days: u32) -> Self {
        Book {
            calendar,
            working_days,
            notices: HashMap::new(),
            pending: HashMap::new(),
        }
    }

    pub fn notice(&self, id: &str) -> Option<&NoticeState> {
        self.notices.get(id)
    }

    pub fn notices(&self) -> usize {
        self.notices.len()
    }

    /// Feedback waiting for its notice.
    pub fn pending(&self) -> usize {
        self.pending.values().map(Vec::len).sum()
    }

    /// A notice read from `department`'s notices topic. A notice seen again (a
    /// resend, a re-read) is the same notice: its first sending time stands.
    /// Returns the decisions on feedback that was waiting for it.
    pub fn add_notice(
        &mut self,
        id: &str,
        department: &'static str,
        sent_ms: i64,
    ) -> Vec<Event<T>> {
        if self.notices.contains_key(id) {
            return Vec::new();
        }
        let deadline_ms = self.calendar.deadline_ms(sent_ms, self.working_days);
        self.notices.insert(
            id.to_string(),
            NoticeState {
                department,
                sent_ms,
                deadline_ms,
                done: None,
            },
        );
        let waiting = self.pending.remove(id).unwrap_or_default();
        waiting
            .into_iter()
            .map(|p| self.decide(p.department, p.feedback, p.origin, true))
            .collect()
    }

    /// A decoded feedback read from `department`'s feedback topic; `seq` grows
    /// with the order of arrival. `None` means it waits for its notice.
    pub fn add_feedback(
        &mut self,
        seq: u64,
        department: &'static str,
        feedback: OwnedFeedback,
        origin: T,
    ) -> Option<Event<T>> {
        // Pending exists only while the notice is unknown, so later feedback on
        // the same notice queues behind earlier feedback and keeps its order.
        match self.verdict(department, &feedback, false) {
            Verdict::Pending => {
                self.pending
                    .entry(feedback.notice_id.clone())
                    .or_default()
                    .push(Pending {
                        seq,
                        department,
                        feedback,
                        origin,
                    });
                None
            }
            _ => Some(self.decide(department, feedback, origin, false)),
        }
    }

    /// The notice topics were read to their end after every feedback with a
    /// `seq` below `before_seq` arrived: those still waiting name no notice.
    pub fn expire_pending(&mut self, before_seq: u64) -> Vec<Event<T>> {
        let mut expired = Vec::new();
        self.pending.retain(|_, q| {
            let (old, young): (Vec<_>, Vec<_>) = std::mem::take(q)
                .into_iter()
                .partition(|p| p.seq < before_seq);
            expired.extend(old);
            *q = young;
            !q.is_empty()
        });
        expired.sort_by_key(|p| p.seq);
        expired
            .into_iter()
            .map(|p| self.decide(p.department, p.feedback, p.origin, true))
            .collect()
    }

    fn verdict(&self, department: &str, fb: &OwnedFeedback, read_past: bool) -> Verdict {
        let notice = self.notices.get(&fb.notice_id).map(|n| n.department);
        check(&fb.borrow(), department, notice, read_past)
    }

    fn decide(
        &mut self,
        department: &'static str,
        fb: OwnedFeedback,
        origin: T,
        read_past: bool,
    ) -> Event<T> {
        match self.verdict(department, &fb, read_past) {
            Verdict::Reject(reason) => Event::Rejected {
                department,
                reason,
                origin,
            },
            Verdict::Pending => unreachable!("decide is called only once a notice can be judged"),
            Verdict::Accept => {
                let n = self
                    .notices
                    .get_mut(&fb.notice_id)
                    .expect("accepted feedback has its notice");
                let new = (fb.outcome, fb.reason);
                if n.done.as_ref() == Some(&new) {
                    Event::Repeated { department }
                } else {
                    n.done = Some(new);
                    Event::Accepted {
                        department,
                        outcome: fb.outcome,
                    }
                }
            }
        }
    }

    /// Figures per department that has any notice, as of `now_ms`.
    pub fn report(&self, now_ms: i64) -> BTreeMap<&'static str, Counts> {
        let mut out: BTreeMap<&'static str, Counts> = BTreeMap::new();
        for n in self.notices.values() {
            let c = out.entry(n.department).or_default();
            match n.phase(now_ms) {
                Phase::Open => c.open += 1,
                Phase::Overdue => c.overdue += 1,
                Phase::Done(o) => {
                    c.done += 1;
                    match o {
                        Outcome::Applied => c.applied += 1,
                        Outcome::NotApplicable => c.not_applicable += 1,
                        Outcome::Failed => c.failed += 1,
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::DAY_MS;
    use proptest::prelude::*;

    const DEPTS: [&str; 3] = ["courts", "tax", "finance"];

    fn fb(id: &str, dept: &str, outcome: Outcome, reason: Option<&str>) -> OwnedFeedback {
        OwnedFeedback {
            notice_id: id.into(),
            department: dept.into(),
            outcome,
            reason: reason.map(Into::into),
            responded_at_ms: 0,
        }
    }

    #[test]
    fn a_notice_goes_open_overdue_done() {
        let mut b: Book<u64> = Book::new(Calendar::default(), 5);
        // 2024-03-01 (a Friday) 10:00 UTC+8.
        let sent = 19_783 * DAY_MS + 2 * 3_600_000;
        assert!(b.add_notice("n1", "tax", sent).is_empty());
        assert_eq!(
            b.notice("n1").unwrap().phase(sent + 5 * DAY_MS),
            Phase::Open
        );
        assert_eq!(
            b.notice("n1").unwrap().phase(sent + 8 * DAY_MS),
            Phase::Overdue
        );
        let e = b.add_feedback(0, "tax", fb("n1", "tax", Outcome::Applied, None), 0);
        assert_eq!(
            e,
            Some(Event::Accepted {
                department: "tax",
                outcome: Outcome::Applied
            })
        );
        // The same feedback again changes and counts nothing; a correction does.
        let e = b.add_feedback(1, "tax", fb("n1", "tax", Outcome::Applied, None), 1);
        assert_eq!(e, Some(Event::Repeated { department: "tax" }));
        let e = b.add_feedback(2, "tax", fb("n1", "tax", Outcome::Failed, Some("x")), 2);
        assert!(matches!(
            e,
            Some(Event::Accepted {
                outcome: Outcome::Failed,
                ..
            })
        ));
        let r = b.report(sent + 8 * DAY_MS)["tax"];
        assert_eq!((r.done, r.failed, r.applied, r.overdue), (1, 1, 0, 0));
    }

    #[test]
    fn early_feedback_waits_for_its_notice() {
        let mut b: Book<u64> = Book::new(Calendar::default(), 5);
        assert_eq!(
            b.add_feedback(0, "tax", fb("n1", "tax", Outcome::Applied, None), 0),
            None
        );
        assert_eq!(
            b.add_feedback(1, "tax", fb("n2", "tax", Outcome::Applied, None), 1),
            None
        );
        assert_eq!(
            b.add_feedback(2, "courts", fb("n3", "courts", Outcome::Applied, None), 2),
            None
        );
        assert_eq!(b.pending(), 3);
        // n1 arrives on tax: accepted; n3 arrives on tax but was answered by courts.
        assert_eq!(b.add_notice("n1", "tax", 0).len(), 1);
        let e = b.add_notice("n3", "tax", 0);
        assert!(matches!(
            e[..],
            [Event::Rejected {
                reason: FeedbackReason::WrongDepartment,
                origin: 2,
                ..
            }]
        ));
        // The notice topics were read past seq 1 only: feedback 1 is unknown.
        let e = b.expire_pending(2);
        assert!(matches!(
            e[..],
            [Event::Rejected {
                reason: FeedbackReason::UnknownNotice,
                origin: 1,
                ..
            }]
        ));
        assert_eq!(b.pending(), 0);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Notice(usize, usize),
        Feedback(usize, usize, usize, usize, bool),
    }

    fn run(ops: &[Op], now: i64) -> (BTreeMap<&'static str, Counts>, Vec<(u64, String)>, usize) {
        let mut b: Book<u64> = Book::new(Calendar::default(), 5);
        let mut events = Vec::new();
        let mut seq = 0;
        for op in ops {
            match *op {
                Op::Notice(id, d) => {
                    events.extend(b.add_notice(&format!("n{id}"), DEPTS[d], id as i64 * DAY_MS))
                }
                Op::Feedback(id, topic, payload, o, reason) => {
                    let f = fb(
                        &format!("n{id}"),
                        DEPTS[payload],
                        Outcome::ALL[o],
                        reason.then_some("r"),
                    );
                    events.extend(b.add_feedback(seq, DEPTS[topic], f, seq));
                    seq += 1;
                }
            }
        }
        events.extend(b.expire_pending(u64::MAX));
        assert_eq!(b.pending(), 0);
        let mut rejected: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                Event::Rejected { reason, origin, .. } => Some((*origin, reason.to_string())),
                _ => None,
            })
            .collect();
        rejected.sort();
        let accepted = events
            .iter()
            .filter(|e| matches!(e, Event::Accepted { .. }))
            .count();
        (b.report(now), rejected, accepted)
    }

    proptest! {
        /// Whether a notice is read before or after its feedback, the outcome is
        /// the same, as long as the notice topics are read to their end before
        /// unknown notices are decided; repeats are never counted twice; every
        /// notice is in exactly one state.
        #[test]
        fn order_of_notices_and_feedback_does_not_matter(
            notices in proptest::collection::btree_map(0usize..20, 0usize..3, 0..15),
            feedback in proptest::collection::vec((0usize..25, 0usize..3, 0usize..3, 0usize..3, any::<bool>()), 0..40),
            shuffle in proptest::collection::vec(any::<u32>(), 60),
            now in 0i64..40,
        ) {
            let notice_ops: Vec<Op> = notices.iter().map(|(&id, &d)| Op::Notice(id, d)).collect();
            let feedback_ops: Vec<Op> = feedback.iter().map(|&(a, b, c, d, e)| Op::Feedback(a, b, c, d, e)).collect();
            let mut in_order = notice_ops.clone();
            in_order.extend(feedback_ops.iter().cloned());
            // Merge keeping each list's own order (feedback for one notice stays in order).
            let (mut n, mut f, mut mixed) = (notice_ops.into_iter().peekable(), feedback_ops.into_iter().peekable(), Vec::new());
            let mut i = 0;
            while n.peek().is_some() || f.peek().is_some() {
                let take_notice = f.peek().is_none() || (n.peek().is_some() && shuffle[i % shuffle.len()] % 2 == 0);
                mixed.push(if take_notice { n.next().unwrap() } else { f.next().unwrap() });
                i += 1;
            }
            let now = now * DAY_MS;
            let a = run(&in_order, now);
            let b = run(&mixed, now);
            prop_assert_eq!(&a, &b);
            let total: u64 = a.0.values().map(|c| c.open + c.overdue + c.done).sum();
            prop_assert_eq!(total as usize, notices.len());
            let done: u64 = a.0.values().map(|c| c.done).sum();
            let by_outcome: u64 = a.0.values().map(|c| c.applied + c.not_applicable + c.failed).sum();
            prop_assert_eq!(done, by_outcome);
            // Accepted counts at most one per distinct (notice, outcome, reason) change.
            prop_assert!(a.2 as u64 >= done);
            prop_assert!(a.1.len() + a.2 <= feedback.len());
        }
    }
}
