//! What the normaliser changed in a value it accepted, so every consumer can see
//! that a record's key or amount is not byte for byte what the department sent.
//!
//! Each correction has a stable snake_case name: it goes on the wire in the
//! record's `corrections` array (`credit_record.avsc`) and into metric labels.
//! The list is append-only, like [`crate::reject::ReasonCode`].

use std::fmt;

/// One kind of change the normaliser made to an accepted value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Correction {
    /// Full-width digits, letters or punctuation (`９１４４…`, `１２３．４５`) read as ASCII.
    FullwidthNormalised,
    /// Spaces, ideographic spaces or hyphens inside a code removed (`9144 0101 …`).
    CodeSeparatorsRemoved,
    /// Lower-case letters of a USCC upper-cased (the standard's symbols are upper-case).
    UsccLowercase,
    /// A resident ID's lower-case check character `x` read as `X`.
    ResidentIdCheckLowercase,
    /// A 15-digit (first-generation) resident ID upgraded to 18 characters:
    /// century `19` inserted, GB 11643 check character computed.
    ResidentIdUpgraded15,
    /// The subject key is a 15-digit pre-2015 business registration number
    /// (GS 15-2006), kept because the record names the subject and its district.
    LegacyRegistrationNumber,
    /// An amount written with an explicit unit other than the field's (e.g. `元`
    /// in a `万元` field) converted to fen from the unit written.
    AmountUnitConverted,
}

impl Correction {
    pub const ALL: [Correction; 7] = [
        Correction::FullwidthNormalised,
        Correction::CodeSeparatorsRemoved,
        Correction::UsccLowercase,
        Correction::ResidentIdCheckLowercase,
        Correction::ResidentIdUpgraded15,
        Correction::LegacyRegistrationNumber,
        Correction::AmountUnitConverted,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Correction::FullwidthNormalised => "fullwidth_normalised",
            Correction::CodeSeparatorsRemoved => "code_separators_removed",
            Correction::UsccLowercase => "uscc_lowercase",
            Correction::ResidentIdCheckLowercase => "resident_id_check_lowercase",
            Correction::ResidentIdUpgraded15 => "resident_id_upgraded_15",
            Correction::LegacyRegistrationNumber => "legacy_registration_number",
            Correction::AmountUnitConverted => "amount_unit_converted",
        }
    }

    pub fn parse(s: &str) -> Option<Correction> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    const fn bit(self) -> u16 {
        1 << self as u16
    }
}

impl fmt::Display for Correction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of corrections: a bit set, so the happy path (none) costs nothing
/// and never allocates.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Corrections(u16);

impl Corrections {
    pub const NONE: Corrections = Corrections(0);

    pub const fn of(cs: &[Correction]) -> Corrections {
        let mut bits = 0;
        let mut i = 0;
        while i < cs.len() {
            bits |= cs[i].bit();
            i += 1;
        }
        Corrections(bits)
    }

    pub fn insert(&mut self, c: Correction) {
        self.0 |= c.bit();
    }

    pub fn extend(&mut self, other: Corrections) {
        self.0 |= other.0;
    }

    pub const fn contains(self, c: Correction) -> bool {
        self.0 & c.bit() != 0
    }

    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// The corrections in the order of [`Correction::ALL`] (the wire order).
    pub fn iter(self) -> impl Iterator<Item = Correction> {
        Correction::ALL
            .into_iter()
            .filter(move |c| self.contains(*c))
    }
}

impl FromIterator<Correction> for Corrections {
    fn from_iter<I: IntoIterator<Item = Correction>>(iter: I) -> Self {
        let mut s = Corrections::NONE;
        for c in iter {
            s.insert(c);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_stable_snake_case_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for c in Correction::ALL {
            assert!(seen.insert(c.as_str()));
            assert_eq!(Correction::parse(c.as_str()), Some(c));
            assert!(
                c.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            );
        }
        // The set is a u16: room for 16 corrections.
        assert!(Correction::ALL.len() <= 16);
    }

    #[test]
    fn set_operations() {
        let mut s = Corrections::NONE;
        assert!(s.is_empty());
        s.insert(Correction::AmountUnitConverted);
        s.insert(Correction::FullwidthNormalised);
        s.insert(Correction::FullwidthNormalised);
        assert_eq!(s.len(), 2);
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            [
                Correction::FullwidthNormalised,
                Correction::AmountUnitConverted
            ]
        );
        assert_eq!(
            s,
            Corrections::of(&[
                Correction::AmountUnitConverted,
                Correction::FullwidthNormalised
            ])
        );
    }
}
