//! From what a department wrote in a code field to a checked subject key.
//!
//! Departments key their exports by hand and through many systems: full-width
//! digits from a Chinese input method (`９１４４０１０１ＭＡ５９ＵＵ８Ｕ０Ｆ`), codes grouped
//! with spaces or hyphens, lower-case USCC letters or a lower-case `x` check
//! character, first-generation 15-digit resident IDs, and pre-2015 15-digit
//! business registration numbers where a USCC belongs. Each adapter hands the
//! raw field to [`subject_key`] or [`resolve`], which
//!
//! 1. rewrites the *spelling* only (full-width forms to ASCII, separators out,
//!    letter case), recording each kind of rewrite as a [`Correction`];
//! 2. classifies a 15-digit code (legacy resident ID or registration number);
//! 3. runs the strict checks of [`crate::ids`] on the canonical form.
//!
//! Nothing that changes a symbol's *value* is ever done: a wrong check
//! character, an `O` for a `0`, a transposition is rejected with its reason.
//! Rejection details never contain the code (it may be a resident ID).
//!
//! The happy path (an ASCII, upper-case, 18-character code) borrows and does
//! not allocate.

use std::borrow::Cow;

use crate::correction::{Correction, Corrections};
use crate::ids::{self, RegNoError};
use crate::record::SubjectType;
use crate::reject::{ReasonCode, Rejection};

/// What a key field is declared to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Declared {
    /// A USCC (organisations and individual businesses).
    Uscc,
    /// A resident ID (natural persons).
    ResidentId,
    /// Either: the record has no subject type (older court feeds). The code's
    /// structure decides; `type_field` is the field that would have said.
    Unknown { type_field: &'static str },
}

/// What to do with a valid 15-digit pre-2015 business registration number
/// found where a USCC belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Legacy {
    /// Reject with [`ReasonCode::LegacyRegistrationNumber`].
    Reject,
    /// Keep it as the subject key, flagged [`Correction::LegacyRegistrationNumber`]:
    /// for adapters whose record names the subject *and* the district that
    /// registered it, from which the archive can find the subject's USCC.
    Keep,
}

/// Whose key it turned out to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    Organisation,
    Person,
}

/// A checked subject key in canonical form and what was changed to get it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key<'a> {
    pub key: Cow<'a, str>,
    pub holder: Holder,
    pub corrections: Corrections,
}

/// Separators people put inside codes: spaces (ASCII, no-break, ideographic),
/// tabs, and every hyphen and dash look-alike.
fn is_separator(c: char) -> bool {
    matches!(
        c,
        ' ' | '\t' | '\u{A0}' | '\u{3000}' | '-' | '\u{2010}'
            ..='\u{2015}'
            | '\u{2212}'
            | '\u{FE63}'
            // Zero-width space and BOM, carried in by copying from web pages.
            | '\u{200B}'
            | '\u{FEFF}'
    )
}

/// The ASCII character a full-width form stands for (U+FF01..U+FF5E).
pub fn fullwidth_to_ascii(c: char) -> Option<char> {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0),
        _ => None,
    }
}

/// Rewrites full-width forms to ASCII and drops separators. Letter case is
/// left alone: what to do with it depends on the kind of code.
pub fn normalise_code(raw: Cow<'_, str>) -> (Cow<'_, str>, Corrections) {
    let mut fixes = Corrections::NONE;
    if raw.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return (raw, fixes);
    }
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        let c = match fullwidth_to_ascii(c) {
            Some(a) => {
                fixes.insert(Correction::FullwidthNormalised);
                a
            }
            None => c,
        };
        if is_separator(c) {
            fixes.insert(Correction::CodeSeparatorsRemoved);
        } else {
            out.push(c);
        }
    }
    if fixes.is_empty() {
        (raw, fixes)
    } else {
        (Cow::Owned(out), fixes)
    }
}

fn to_upper<'a>(code: Cow<'a, str>, fixes: &mut Corrections, what: Correction) -> Cow<'a, str> {
    if code.bytes().any(|b| b.is_ascii_lowercase()) {
        fixes.insert(what);
        Cow::Owned(code.to_ascii_uppercase())
    } else {
        code
    }
}

fn is_digits(s: &str, n: usize) -> bool {
    s.len() == n && s.bytes().all(|b| b.is_ascii_digit())
}

fn resident_id<'a>(
    code: Cow<'a, str>,
    mut fixes: Corrections,
    field: &'static str,
    today: i32,
) -> Result<Key<'a>, Rejection> {
    let reject = |e: ids::RicError| Rejection::new(e.reason(), Some(field), e.to_string());
    if is_digits(&code, 15) {
        let up = ids::upgrade_resident_id_15(&code, today).map_err(reject)?;
        fixes.insert(Correction::ResidentIdUpgraded15);
        // Always ASCII digits (and possibly X).
        let key = String::from_utf8_lossy(&up).into_owned();
        return Ok(Key {
            key: Cow::Owned(key),
            holder: Holder::Person,
            corrections: fixes,
        });
    }
    let code = if code.len() == 18 && code.ends_with('x') {
        fixes.insert(Correction::ResidentIdCheckLowercase);
        let mut s = code.into_owned();
        s.replace_range(17.., "X");
        Cow::Owned(s)
    } else {
        code
    };
    ids::check_resident_id(&code, today).map_err(reject)?;
    Ok(Key {
        key: code,
        holder: Holder::Person,
        corrections: fixes,
    })
}

fn organisation<'a>(
    code: Cow<'a, str>,
    mut fixes: Corrections,
    field: &'static str,
    today: i32,
    legacy: Legacy,
) -> Result<Key<'a>, Rejection> {
    if is_digits(&code, 15) {
        return match ids::check_registration_number(&code) {
            Ok(()) if legacy == Legacy::Keep => {
                fixes.insert(Correction::LegacyRegistrationNumber);
                Ok(Key {
                    key: code,
                    holder: Holder::Organisation,
                    corrections: fixes,
                })
            }
            Ok(()) => Err(Rejection::new(
                ReasonCode::LegacyRegistrationNumber,
                Some(field),
                "a 15-digit pre-2015 business registration number (GS 15-2006), not a USCC: publish the subject's 18-character USCC",
            )),
            Err(RegNoError::Placeholder(p)) => Err(Rejection::new(
                ReasonCode::PlaceholderCode,
                Some(field),
                format!("15-digit code is a placeholder, not a real number: {p}"),
            )),
            Err(_) => Err(Rejection::new(
                ReasonCode::InvalidUscc,
                Some(field),
                "USCC must be 18 characters, got 15 digits, which are not a pre-2015 registration number either (GS 15-2006 check digit wrong)",
            )),
        };
    }
    let code = to_upper(code, &mut fixes, Correction::UsccLowercase);
    match ids::check_uscc(&code) {
        Ok(()) => Ok(Key {
            key: code,
            holder: Holder::Organisation,
            corrections: fixes,
        }),
        // Say so when the code is in fact somebody's resident ID.
        Err(e) if ids::check_resident_id(&code, today).is_ok() => Err(Rejection::new(
            ReasonCode::InvalidUscc,
            Some(field),
            format!("a resident ID where a USCC is required ({e})"),
        )),
        Err(e) => Err(Rejection::new(e.reason(), Some(field), e.to_string())),
    }
}

/// Normalises and checks a raw key field (already trimmed by the adapter).
pub fn resolve<'a>(
    raw: Cow<'a, str>,
    declared: Declared,
    field: &'static str,
    today: i32,
    legacy: Legacy,
) -> Result<Key<'a>, Rejection> {
    // Surrounding whitespace (any, ideographic included) is not part of the
    // code and not worth a correction flag; adapters trim fields already.
    let raw = match raw {
        Cow::Borrowed(s) => Cow::Borrowed(s.trim()),
        Cow::Owned(s) if s.trim().len() == s.len() => Cow::Owned(s),
        Cow::Owned(s) => Cow::Owned(s.trim().to_string()),
    };
    if raw.is_empty() {
        return Err(Rejection::missing(field));
    }
    let (code, fixes) = normalise_code(raw);
    match declared {
        Declared::ResidentId => resident_id(code, fixes, field, today),
        Declared::Uscc => organisation(code, fixes, field, today, legacy),
        Declared::Unknown { type_field } => {
            if is_digits(&code, 15) {
                // A first-generation resident ID has a birth date at 7-12 and no
                // check digit; a registration number has a MOD 11,10 check digit
                // and a sequence number at 7-14. Only one may fit.
                let birth = ids::legacy_birth_date_ok(code.as_bytes(), today);
                let regno = ids::check_registration_number(&code);
                return match regno {
                    // Reported as the placeholder it is.
                    Err(RegNoError::Placeholder(_)) => {
                        organisation(code, fixes, field, today, legacy)
                    }
                    Ok(()) if birth => Err(Rejection::new(
                        ReasonCode::MissingField,
                        Some(type_field),
                        "the 15-digit code reads both as a first-generation resident ID and as a pre-2015 registration number: the subject type must say which",
                    )),
                    Ok(()) => organisation(code, fixes, field, today, legacy),
                    Err(_) if birth => resident_id(code, fixes, field, today),
                    Err(_) => Err(Rejection::new(
                        ReasonCode::InvalidUscc,
                        Some(field),
                        "15 digits that are neither a first-generation resident ID (positions 7-12 are not a birth date) nor a pre-2015 registration number (GS 15-2006 check digit wrong)",
                    )),
                };
            }
            // 18 characters: a valid resident ID is a person's; anything else
            // is judged as a USCC.
            let person = code.len() == 18
                && code.as_bytes()[..17].iter().all(u8::is_ascii_digit)
                && matches!(code.as_bytes()[17], b'0'..=b'9' | b'X' | b'x');
            if person {
                if code.ends_with('x') {
                    let mut upper = code.into_owned();
                    upper.replace_range(17.., "X");
                    if ids::check_resident_id(&upper, today).is_ok() {
                        let mut fixes = fixes;
                        fixes.insert(Correction::ResidentIdCheckLowercase);
                        return Ok(Key {
                            key: Cow::Owned(upper),
                            holder: Holder::Person,
                            corrections: fixes,
                        });
                    }
                    return organisation(Cow::Owned(upper), fixes, field, today, legacy);
                }
                // Checked once here; a valid ID needs nothing more.
                if ids::check_resident_id(&code, today).is_ok() {
                    return Ok(Key {
                        key: code,
                        holder: Holder::Person,
                        corrections: fixes,
                    });
                }
            }
            organisation(code, fixes, field, today, legacy)
        }
    }
}

/// The checked key of a subject of a known type: a USCC for organisations and
/// individual businesses, a resident ID for natural persons.
pub fn subject_key<'a>(
    kind: SubjectType,
    raw: Cow<'a, str>,
    field: &'static str,
    today: i32,
    legacy: Legacy,
) -> Result<(Cow<'a, str>, Corrections), Rejection> {
    let declared = match kind {
        SubjectType::NaturalPerson => Declared::ResidentId,
        SubjectType::LegalPerson | SubjectType::IndividualBusiness => Declared::Uscc,
    };
    let k = resolve(raw, declared, field, today, legacy)?;
    Ok((k.key, k.corrections))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::{CODES, CodeVerdict, KeyField};
    use crate::ids;
    use proptest::prelude::*;

    const TODAY: i32 = 19_875; // 2024-06-01

    fn run(raw: &str, field: KeyField, legacy: Legacy) -> Result<Key<'_>, Rejection> {
        let declared = match field {
            KeyField::Uscc => Declared::Uscc,
            KeyField::ResidentId => Declared::ResidentId,
            KeyField::Unknown => Declared::Unknown {
                type_field: "partyTypeName",
            },
        };
        resolve(Cow::Borrowed(raw), declared, "key", TODAY, legacy)
    }

    #[test]
    fn the_shared_table_holds_under_both_legacy_policies() {
        for c in CODES {
            for legacy in [Legacy::Reject, Legacy::Keep] {
                let got = run(c.raw, c.field, legacy);
                let ctx = format!(
                    "{:?} in {:?} ({}), {legacy:?}: {got:?}",
                    c.raw, c.field, c.note
                );
                match c.expect {
                    CodeVerdict::Accepted {
                        key,
                        person,
                        corrections,
                    } => {
                        let k = got.expect(&ctx);
                        assert_eq!(k.key, key, "{ctx}");
                        assert_eq!(k.holder == Holder::Person, person, "{ctx}");
                        assert_eq!(k.corrections, Corrections::of(corrections), "{ctx}");
                    }
                    CodeVerdict::Legacy { key, corrections } if legacy == Legacy::Keep => {
                        let k = got.expect(&ctx);
                        assert_eq!(k.key, key, "{ctx}");
                        assert_eq!(k.holder, Holder::Organisation, "{ctx}");
                        let mut want = Corrections::of(corrections);
                        want.insert(Correction::LegacyRegistrationNumber);
                        assert_eq!(k.corrections, want, "{ctx}");
                    }
                    CodeVerdict::Legacy { .. } => {
                        let e = got.expect_err(&ctx);
                        assert_eq!(e.code, ReasonCode::LegacyRegistrationNumber, "{ctx}");
                        assert_eq!(e.field, Some("key"), "{ctx}");
                    }
                    CodeVerdict::Rejected(code) => {
                        let e = got.expect_err(&ctx);
                        assert_eq!(e.code, code, "{ctx}");
                        let field = if code == ReasonCode::MissingField {
                            "partyTypeName"
                        } else {
                            "key"
                        };
                        assert_eq!(e.field, Some(field), "{ctx}");
                    }
                }
            }
        }
        assert!(CODES.len() >= 60, "{}", CODES.len());
    }

    /// No rejection detail repeats the code, nor the birth date in it.
    #[test]
    fn rejection_details_never_hold_the_code() {
        for c in CODES {
            if let Err(e) = run(c.raw, c.field, Legacy::Reject) {
                let digits: String = c
                    .raw
                    .chars()
                    .filter_map(|ch| fullwidth_to_ascii(ch).or(Some(ch)))
                    .filter(char::is_ascii_alphanumeric)
                    .collect();
                let text = e.to_string();
                assert!(!text.contains(c.raw.trim()), "{text}");
                if digits.len() >= 14 {
                    assert!(!text.contains(&digits[6..14]), "{text}");
                }
            }
        }
    }

    #[test]
    fn the_happy_path_borrows() {
        let k = run(crate::cases::COMPANY, KeyField::Uscc, Legacy::Reject).unwrap();
        assert!(matches!(k.key, Cow::Borrowed(_)));
        let k = run(crate::cases::PERSON, KeyField::Unknown, Legacy::Reject).unwrap();
        assert!(matches!(k.key, Cow::Borrowed(_)));
    }

    /// Re-spells a canonical code the ways departments do; returns the
    /// spelling and the corrections it must be recorded with.
    fn respell(code: &str, fw: bool, lower: bool, sep: Option<char>) -> (String, Corrections) {
        let mut fixes = Corrections::NONE;
        let mut out = String::new();
        for (i, c) in code.chars().enumerate() {
            if let Some(s) = sep.filter(|_| i > 0 && i % 4 == 0) {
                out.push(s);
                fixes.insert(Correction::CodeSeparatorsRemoved);
                if s == '－' {
                    fixes.insert(Correction::FullwidthNormalised);
                }
            }
            let c = if lower && c.is_ascii_uppercase() {
                c.to_ascii_lowercase()
            } else {
                c
            };
            out.push(if fw {
                char::from_u32(c as u32 + 0xFEE0).unwrap()
            } else {
                c
            });
        }
        if fw {
            fixes.insert(Correction::FullwidthNormalised);
        }
        (out, fixes)
    }

    proptest! {
        /// Any valid USCC in any mix of full-width, lower case and separators
        /// resolves to itself with exactly the corrections made.
        #[test]
        fn uscc_spellings_resolve_to_the_code(
            org in "[0-9A-HJ-NP-RTUW-Y]{8}",
            head in prop::sample::select(vec!["91440101", "92440113", "93440118", "11440100"]),
            fw: bool, lower: bool,
            sep in prop::option::of(prop::sample::select(vec![' ', '-', '\u{3000}', '－', '\u{2014}'])),
        ) {
            let code = ids::complete_uscc(&format!("{head}{org}")).unwrap();
            prop_assume!(ids::check_uscc(&code).is_ok());
            let (raw, mut want) = respell(&code, fw, lower, sep);
            if lower && code.bytes().any(|b| b.is_ascii_uppercase()) {
                want.insert(Correction::UsccLowercase);
            }
            for field in [KeyField::Uscc, KeyField::Unknown] {
                let k = run(&raw, field, Legacy::Reject).unwrap();
                prop_assert_eq!(&k.key, &code);
                prop_assert_eq!(k.corrections, want);
                prop_assert_eq!(k.holder, Holder::Organisation);
            }
        }

        /// The same for resident IDs, 18 and 15 digits.
        #[test]
        fn resident_id_spellings_resolve_to_the_id(
            days in crate::date::days_from_civil(1930, 1, 1)..crate::date::days_from_civil(1999, 12, 31),
            seq in 0u32..1000, fw: bool, lower: bool, short: bool,
            sep in prop::option::of(prop::sample::select(vec![' ', '-', '\u{3000}'])),
        ) {
            let (y, m, d) = crate::date::civil_from_days(days);
            let id = ids::complete_resident_id(&format!("440106{y}{m:02}{d:02}{seq:03}")).unwrap();
            let id15 = format!("440106{:02}{m:02}{d:02}{seq:03}", y % 100);
            let source = if short { &id15 } else { &id };
            let (raw, mut want) = respell(source, fw, lower, sep);
            if short {
                want.insert(Correction::ResidentIdUpgraded15);
            } else if lower && id.ends_with('X') {
                want.insert(Correction::ResidentIdCheckLowercase);
            }
            let k = run(&raw, KeyField::ResidentId, Legacy::Reject).unwrap();
            prop_assert_eq!(&k.key, &id);
            prop_assert_eq!(k.corrections, want);
        }

        #[test]
        fn never_panics(s in "\\PC{0,24}", which in 0usize..3, keep: bool) {
            let field = [KeyField::Uscc, KeyField::ResidentId, KeyField::Unknown][which];
            let _ = run(&s, field, if keep { Legacy::Keep } else { Legacy::Reject });
        }
    }
}
