//! A joint reward/punishment notice to one implementing department:
//! what `schemas/avro/notice.avsc` describes on the wire.

/// What a notice asks of its department.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NoticeKind {
    /// Apply a joint punishment measure.
    Punishment,
    /// Apply a joint reward measure.
    Reward,
    /// Lift a measure: the entry ended (expiry, repair) or the catalogue dropped it.
    Lift,
    /// Withdraw a notice that should never have been sent (record withdrawn after objection).
    Withdrawal,
}

impl NoticeKind {
    pub const ALL: [NoticeKind; 4] = [
        NoticeKind::Punishment,
        NoticeKind::Reward,
        NoticeKind::Lift,
        NoticeKind::Withdrawal,
    ];

    /// Lower-case name used in notice ids.
    pub const fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Punishment => "punishment",
            NoticeKind::Reward => "reward",
            NoticeKind::Lift => "lift",
            NoticeKind::Withdrawal => "withdrawal",
        }
    }

    /// The Avro enum symbol.
    pub const fn symbol(self) -> &'static str {
        match self {
            NoticeKind::Punishment => "PUNISHMENT",
            NoticeKind::Reward => "REWARD",
            NoticeKind::Lift => "LIFT",
            NoticeKind::Withdrawal => "WITHDRAWAL",
        }
    }

    /// The Avro enum index; also this kind's position in [`NoticeKind::ALL`].
    pub const fn index(self) -> i32 {
        self as i32
    }
}

/// One notice, fields in the order of `notice.avsc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice<'a> {
    pub notice_id: &'a str,
    pub kind: NoticeKind,
    pub department: &'a str,
    pub measure_id: &'a str,
    pub measure_name: &'a str,
    pub legal_basis: &'a str,
    pub catalogue_version: i32,
    pub generation: i32,
    pub record_id: &'a str,
    pub list_type: &'a str,
    pub subject_type: &'a str,
    pub subject_key: &'a str,
    pub subject_name: &'a str,
    pub identifying_department: &'a str,
    pub decision_number: &'a str,
    pub reason: Option<&'a str>,
    pub source_topic: &'a str,
    pub source_partition: i32,
    pub source_offset: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_is_the_position_in_all() {
        for (i, k) in NoticeKind::ALL.iter().enumerate() {
            assert_eq!(k.index() as usize, i, "{k:?}");
        }
    }
}
