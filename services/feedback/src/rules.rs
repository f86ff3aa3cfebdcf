//! The pure rules of the feedback loop: working-day deadlines, the tracker's
//! clock, and which feedback is accepted. Plain functions over plain types.

use std::collections::BTreeSet;

use credit_core::feedback::{Feedback, FeedbackReason};

pub const DAY_MS: i64 = 86_400_000;
/// The city's calendar is UTC+8 all year (no daylight saving).
pub const UTC8_MS: i64 = 8 * 3_600_000;

/// The local (UTC+8) day, in days since 1970-01-01, of an instant in ms.
pub fn local_day(ms: i64) -> i32 {
    (ms + UTC8_MS).div_euclid(DAY_MS) as i32
}

/// Day of the week of a day number, 0 = Monday .. 6 = Sunday
/// (1970-01-01 was a Thursday).
pub fn weekday(day: i32) -> u32 {
    (day as i64 + 3).rem_euclid(7) as u32
}

/// Working days: Monday to Friday, minus holidays, plus make-up weekend days.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Calendar {
    pub holidays: BTreeSet<i32>,
    pub working_weekends: BTreeSet<i32>,
}

impl Calendar {
    pub fn is_working_day(&self, day: i32) -> bool {
        if self.working_weekends.contains(&day) {
            return true;
        }
        weekday(day) < 5 && !self.holidays.contains(&day)
    }

    /// The first instant a notice sent at `sent_ms` is overdue: the end of the
    /// `n`th working day after the local day it was sent (that day itself never
    /// counts, whatever the hour, as in "within 5 working days" in practice).
    pub fn deadline_ms(&self, sent_ms: i64, n: u32) -> i64 {
        let mut day = local_day(sent_ms);
        let mut left = n;
        while left > 0 {
            day += 1;
            if self.is_working_day(day) {
                left -= 1;
            }
        }
        (day as i64 + 1) * DAY_MS - UTC8_MS
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS` (or with a space, or without the seconds) as a
/// UTC+8 wall-clock time, into ms since the epoch.
pub fn parse_local_datetime(s: &str) -> Option<i64> {
    let s = s.trim();
    if s.len() < 16 || !matches!(s.as_bytes()[10], b'T' | b' ') {
        return None;
    }
    let day = credit_core::date::parse(&s[..10])?;
    let mut hms = s[11..].split(':');
    let mut part = |max: i64| -> Option<i64> {
        let v: i64 = hms.next()?.parse().ok()?;
        (0..=max).contains(&v).then_some(v)
    };
    let (h, m) = (part(23)?, part(59)?);
    let sec = part(59).unwrap_or(0);
    if hms.next().is_some() {
        return None;
    }
    Some(day as i64 * DAY_MS + ((h * 60 + m) * 60 + sec) * 1000 - UTC8_MS)
}

/// The tracker's clock: the system clock, or a fixed instant, shifted by an offset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clock {
    pub fixed_ms: Option<i64>,
    pub offset_ms: i64,
}

impl Clock {
    pub fn now_ms(&self) -> i64 {
        let base = self.fixed_ms.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64)
        });
        base + self.offset_ms
    }
}

/// What to do with one decoded feedback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    /// Its notice is not known yet: hold it until the notice topics have been
    /// read to their end after it arrived.
    Pending,
    Reject(FeedbackReason),
}

/// Checks a feedback that arrived on `topic_department`'s feedback topic.
/// `notice_department` is where its notice was sent, if the notice is known;
/// `notices_read_past` says the notice topics were read to their end after the
/// feedback arrived (so an unknown notice is really unknown).
///
/// Order: what the payload alone shows first (its department, its reason), then
/// what needs the notice.
pub fn check(
    fb: &Feedback<'_>,
    topic_department: &str,
    notice_department: Option<&str>,
    notices_read_past: bool,
) -> Verdict {
    if fb.department != topic_department {
        return Verdict::Reject(FeedbackReason::DepartmentMismatch);
    }
    if fb.outcome.needs_reason() && fb.reason.is_none_or(|r| r.trim().is_empty()) {
        return Verdict::Reject(FeedbackReason::MissingReason);
    }
    match notice_department {
        Some(d) if d != topic_department => Verdict::Reject(FeedbackReason::WrongDepartment),
        Some(_) => Verdict::Accept,
        None if notices_read_past => Verdict::Reject(FeedbackReason::UnknownNotice),
        None => Verdict::Pending,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use credit_core::date::days_from_civil;
    use credit_core::feedback::Outcome;
    use proptest::prelude::*;

    /// ms of a UTC+8 wall-clock time.
    fn at(y: i32, m: u32, d: u32, h: i64) -> i64 {
        days_from_civil(y, m, d) as i64 * DAY_MS + h * 3_600_000 - UTC8_MS
    }

    #[test]
    fn weekdays_are_right() {
        assert_eq!(weekday(days_from_civil(2024, 3, 1)), 4); // a Friday
        assert_eq!(weekday(days_from_civil(2024, 3, 4)), 0); // a Monday
        assert_eq!(weekday(days_from_civil(1970, 1, 1)), 3); // a Thursday
    }

    #[test]
    fn five_working_days_from_a_friday() {
        let cal = Calendar::default();
        // Sent Friday 2024-03-01 at 17:00: due by the end of Friday 2024-03-08.
        let sent = at(2024, 3, 1, 17);
        let due = cal.deadline_ms(sent, 5);
        assert_eq!(due, at(2024, 3, 9, 0));
        // Not overdue the next Wednesday, nor late on the due Friday; overdue on Saturday.
        assert!(at(2024, 3, 6, 12) < due);
        assert!(at(2024, 3, 8, 23) < due);
        assert!(at(2024, 3, 9, 0) >= due);
        // Sent just before midnight UTC+8 (15:59 UTC): still Friday's notice.
        assert_eq!(cal.deadline_ms(at(2024, 3, 1, 23) + 59 * 60_000, 5), due);
        // Sent on a Saturday: Monday to Friday of the next week.
        assert_eq!(cal.deadline_ms(at(2024, 3, 2, 10), 5), at(2024, 3, 9, 0));
    }

    #[test]
    fn holidays_and_make_up_days() {
        // Labour Day 2024: 1-5 May off, Sunday 28 April and Saturday 11 May worked.
        let mut cal = Calendar::default();
        for d in 1..=5 {
            cal.holidays.insert(days_from_civil(2024, 5, d));
        }
        cal.working_weekends.insert(days_from_civil(2024, 4, 28));
        cal.working_weekends.insert(days_from_civil(2024, 5, 11));
        // Sent Friday 26 April: Sun 28, Mon 29, Tue 30, Mon 6, Tue 7.
        assert_eq!(cal.deadline_ms(at(2024, 4, 26, 9), 5), at(2024, 5, 8, 0));
        // Sent Tuesday 30 April: Mon 6 .. Fri 10 (Saturday 11 is the sixth).
        assert_eq!(cal.deadline_ms(at(2024, 4, 30, 9), 5), at(2024, 5, 11, 0));
        assert_eq!(cal.deadline_ms(at(2024, 4, 30, 9), 6), at(2024, 5, 12, 0));
    }

    #[test]
    fn local_datetimes_parse() {
        assert_eq!(
            parse_local_datetime("2024-03-06T12:00:00"),
            Some(at(2024, 3, 6, 12))
        );
        assert_eq!(
            parse_local_datetime("2024-03-06 12:00"),
            Some(at(2024, 3, 6, 12))
        );
        for bad in [
            "",
            "2024-03-06",
            "2024-03-06T25:00",
            "2024-02-30T01:00",
            "2024-03-06T1:2:3:4",
        ] {
            assert_eq!(parse_local_datetime(bad), None, "{bad}");
        }
    }

    fn fb(dept: &str, outcome: Outcome, reason: Option<&'static str>) -> Feedback<'static> {
        Feedback {
            notice_id: "n",
            department: Box::leak(dept.to_string().into_boxed_str()),
            outcome,
            reason,
            responded_at_ms: 0,
        }
    }

    #[test]
    fn feedback_checks_in_order() {
        use FeedbackReason::*;
        let ok = fb("finance", Outcome::Applied, None);
        assert_eq!(
            check(&ok, "finance", Some("finance"), false),
            Verdict::Accept
        );
        assert_eq!(check(&ok, "finance", None, false), Verdict::Pending);
        assert_eq!(
            check(&ok, "finance", None, true),
            Verdict::Reject(UnknownNotice)
        );
        assert_eq!(
            check(&ok, "finance", Some("tax"), true),
            Verdict::Reject(WrongDepartment)
        );
        assert_eq!(
            check(&ok, "tax", Some("tax"), true),
            Verdict::Reject(DepartmentMismatch)
        );
        for o in [Outcome::NotApplicable, Outcome::Failed] {
            for r in [None, Some(""), Some("  ")] {
                let f = fb("finance", o, r);
                assert_eq!(
                    check(&f, "finance", Some("finance"), true),
                    Verdict::Reject(MissingReason)
                );
            }
            let f = fb("finance", o, Some("主体已注销"));
            assert_eq!(check(&f, "finance", Some("finance"), true), Verdict::Accept);
        }
    }

    proptest! {
        /// The deadline falls at the end of a working day, exactly `n` working
        /// days after the sending day, and never moves earlier for a later send.
        #[test]
        fn deadlines_count_working_days(
            sent in 0i64..4_000_000_000_000,
            later in 0i64..(30 * DAY_MS),
            n in 0u32..30,
            holidays in proptest::collection::btree_set(19_000i32..19_800, 0..80),
        ) {
            let cal = Calendar { holidays, working_weekends: Default::default() };
            let due = cal.deadline_ms(sent, n);
            prop_assert!(due > sent);
            prop_assert_eq!((due + UTC8_MS).rem_euclid(DAY_MS), 0);
            let (from, last) = (local_day(sent), local_day(due - 1));
            let counted = ((from + 1)..=last).filter(|d| cal.is_working_day(*d)).count();
            prop_assert_eq!(counted as u32, n);
            if n > 0 {
                prop_assert!(cal.is_working_day(last));
            }
            prop_assert!(cal.deadline_ms(sent + later, n) >= due);
        }

        /// A feedback is accepted only with its own department on its own topic,
        /// a reason when one is needed, and a notice sent to that department.
        #[test]
        fn only_complete_matching_feedback_is_accepted(
            topic in 0usize..3, payload in 0usize..3, notice in proptest::option::of(0usize..3),
            outcome in 0usize..3, reason in proptest::option::of("[ a]{0,2}"), past in any::<bool>(),
        ) {
            let depts = ["courts", "tax", "finance"];
            let reason: Option<&'static str> = reason.map(|r| &*Box::leak(r.into_boxed_str()));
            let f = fb(depts[payload], Outcome::ALL[outcome], reason);
            let v = check(&f, depts[topic], notice.map(|n| depts[n]), past);
            let complete = !Outcome::ALL[outcome].needs_reason() || reason.is_some_and(|r| !r.trim().is_empty());
            prop_assert_eq!(
                v == Verdict::Accept,
                topic == payload && complete && notice == Some(topic)
            );
            prop_assert_eq!(v == Verdict::Pending, topic == payload && complete && notice.is_none() && !past);
        }
    }
}
