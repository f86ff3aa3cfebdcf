//! A department's feedback on a notice (initiate → respond → feed back): what
//! `schemas/avro/feedback.avsc` describes on the wire, and the stable reasons
//! the feedback tracker refuses one for.

use std::fmt;

/// What the department did with the notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    /// The measure is in force (or lifted, for a lift or withdrawal notice).
    Applied,
    /// The measure does not apply to this subject.
    NotApplicable,
    /// The measure could not be applied.
    Failed,
}

impl Outcome {
    pub const ALL: [Outcome; 3] = [Outcome::Applied, Outcome::NotApplicable, Outcome::Failed];

    /// The Avro enum symbol.
    pub const fn symbol(self) -> &'static str {
        match self {
            Outcome::Applied => "APPLIED",
            Outcome::NotApplicable => "NOT_APPLICABLE",
            Outcome::Failed => "FAILED",
        }
    }

    /// Metric label and report field: `applied`, `not_applicable`, `failed`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::NotApplicable => "not_applicable",
            Outcome::Failed => "failed",
        }
    }

    pub const fn index(self) -> i32 {
        self as i32
    }

    pub fn from_symbol(s: &str) -> Option<Outcome> {
        Self::ALL.into_iter().find(|o| o.symbol() == s)
    }

    /// Whether feedback with this outcome must say why.
    pub const fn needs_reason(self) -> bool {
        !matches!(self, Outcome::Applied)
    }
}

/// One feedback, fields in the order of `feedback.avsc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feedback<'a> {
    pub notice_id: &'a str,
    pub department: &'a str,
    pub outcome: Outcome,
    pub reason: Option<&'a str>,
    pub responded_at_ms: i64,
}

/// Why the tracker refused a feedback (`credit-bus.reason` on
/// `credit.feedback.rejected`). Stable, append-only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FeedbackReason {
    /// Not a Confluent-framed Avro record of the feedback schema.
    Undecodable,
    /// The payload names another department than the feedback topic it was published to.
    DepartmentMismatch,
    /// NOT_APPLICABLE or FAILED without a (non-blank) reason.
    MissingReason,
    /// No notice with this id was ever sent, as far as the notice topics
    /// read to their end after the feedback arrived show.
    UnknownNotice,
    /// The notice was sent to another department than the one answering.
    WrongDepartment,
}

impl FeedbackReason {
    pub const ALL: [FeedbackReason; 5] = [
        FeedbackReason::Undecodable,
        FeedbackReason::DepartmentMismatch,
        FeedbackReason::MissingReason,
        FeedbackReason::UnknownNotice,
        FeedbackReason::WrongDepartment,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            FeedbackReason::Undecodable => "undecodable",
            FeedbackReason::DepartmentMismatch => "department-mismatch",
            FeedbackReason::MissingReason => "missing-reason",
            FeedbackReason::UnknownNotice => "unknown-notice",
            FeedbackReason::WrongDepartment => "wrong-department",
        }
    }

    pub fn parse(s: &str) -> Option<FeedbackReason> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }

    /// The field at fault, for the `credit-bus.field` header.
    pub const fn field(self) -> Option<&'static str> {
        match self {
            FeedbackReason::Undecodable => None,
            FeedbackReason::DepartmentMismatch | FeedbackReason::WrongDepartment => {
                Some("department")
            }
            FeedbackReason::MissingReason => Some("reason"),
            FeedbackReason::UnknownNotice => Some("notice_id"),
        }
    }

    /// `__connect.errors.stage`, in Kafka Connect's vocabulary.
    pub const fn stage(self) -> &'static str {
        match self {
            FeedbackReason::Undecodable => "VALUE_CONVERTER",
            _ => "TRANSFORMATION",
        }
    }
}

impl fmt::Display for FeedbackReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `__connect.errors.class.name` on rejected feedback.
pub const TRACKER_CLASS: &str = "cn.gov.guangzhou.creditbus.feedback.Tracker";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_are_unique() {
        for r in FeedbackReason::ALL {
            assert_eq!(FeedbackReason::parse(r.as_str()), Some(r));
        }
        for o in Outcome::ALL {
            assert_eq!(Outcome::from_symbol(o.symbol()), Some(o));
        }
        assert!(!Outcome::Applied.needs_reason());
        assert!(Outcome::Failed.needs_reason() && Outcome::NotApplicable.needs_reason());
    }
}
