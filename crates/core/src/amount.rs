//! Money amounts as integer fen (0.01 CNY), parsed from decimal text without floats.
//!
//! Each amount field has a unit its adapter documents (tax `金额(元)`: 元; market
//! `CF_NR_FK`: 万元). Departments also write the unit into the value, and not
//! always the field's: `12,345.67元` in a 万元 field is 12,345.67 yuan, not
//! 123,456,700 yuan. [`parse_amount`] reads what is written:
//!
//! ```text
//! [currency] number [unit][整] [currency]        (spaces allowed between the parts)
//! currency: RMB CNY 人民币 ¥ ￥ (any letter case)
//! number:   digits, ASCII or full-width; `,` `，` thousands separators in groups
//!           of three; `.` or `．` decimal point
//! unit:     元 圆 | 千元 | 万元 万 | 百万元 | 亿元 亿       (none: the field's unit)
//! ```
//!
//! Decisions, each tested below:
//! * Exact decimal arithmetic in `i64` fen; overflow is an error.
//! * Digits finer than a fen are rejected, not rounded (`12.345元`): rounding would
//!   change a legal amount silently. Trailing zeros are exact and accepted
//!   (`12.3400元`, `0.850000万元`).
//! * Foreign currencies (美元, USD, $, 港元, HKD, 欧元, ...) are rejected as
//!   `invalid_unit`: the record has no currency field, and converting needs a
//!   rate of the decision date that the bus does not have.
//! * 角 and 分 are rejected as units: no fine or tax amount is stated in them,
//!   and 分 in a credit record more often means points (a score) than fen.
//! * Chinese numerals (`壹万元`, `一万元`) are not read: the fields are structured
//!   data, and a numeral there is rejected as not a number.

use std::fmt;

use crate::codes::fullwidth_to_ascii;
use crate::correction::{Correction, Corrections};
use crate::reject::{ReasonCode, Rejection};

/// A unit of CNY an amount can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    Yuan,
    QianYuan,
    WanYuan,
    BaiWanYuan,
    YiYuan,
}

impl Unit {
    pub const ALL: [Unit; 5] = [
        Unit::Yuan,
        Unit::QianYuan,
        Unit::WanYuan,
        Unit::BaiWanYuan,
        Unit::YiYuan,
    ];

    /// Fen per unit as a power of ten.
    pub const fn exp(self) -> u32 {
        match self {
            Unit::Yuan => 2,
            Unit::QianYuan => 5,
            Unit::WanYuan => 6,
            Unit::BaiWanYuan => 8,
            Unit::YiYuan => 10,
        }
    }

    /// The unit as written in Chinese.
    pub const fn symbol(self) -> &'static str {
        match self {
            Unit::Yuan => "元",
            Unit::QianYuan => "千元",
            Unit::WanYuan => "万元",
            Unit::BaiWanYuan => "百万元",
            Unit::YiYuan => "亿元",
        }
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}

/// Unit spellings after the number, longest first so `万元` is not read as `万`.
const UNITS: [(&str, Unit); 8] = [
    ("百万元", Unit::BaiWanYuan),
    ("千元", Unit::QianYuan),
    ("万元", Unit::WanYuan),
    ("亿元", Unit::YiYuan),
    ("元", Unit::Yuan),
    ("圆", Unit::Yuan),
    ("万", Unit::WanYuan),
    ("亿", Unit::YiYuan),
];

/// Markers of CNY, before or after the amount (matched ignoring ASCII case).
const CNY: [&str; 5] = ["人民币", "RMB", "CNY", "¥", "￥"];

/// Foreign currencies by what departments write; the first name is reported.
const FOREIGN: [(&str, &str); 27] = [
    ("美元", "US dollar"),
    ("美金", "US dollar"),
    ("USD", "US dollar"),
    ("US$", "US dollar"),
    ("HK$", "Hong Kong dollar"),
    ("$", "US dollar"),
    ("港元", "Hong Kong dollar"),
    ("港币", "Hong Kong dollar"),
    ("HKD", "Hong Kong dollar"),
    ("澳门元", "pataca"),
    ("澳門元", "pataca"),
    ("MOP", "pataca"),
    ("新台币", "New Taiwan dollar"),
    ("TWD", "New Taiwan dollar"),
    ("欧元", "euro"),
    ("EUR", "euro"),
    ("€", "euro"),
    ("日元", "yen"),
    ("JPY", "yen"),
    ("英镑", "pound sterling"),
    ("GBP", "pound sterling"),
    ("£", "pound sterling"),
    ("澳元", "Australian dollar"),
    ("AUD", "Australian dollar"),
    ("韩元", "won"),
    ("卢布", "rouble"),
    ("SGD", "Singapore dollar"),
];

/// Why an amount was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("no amount, only {0:?}")]
    NoNumber(String),
    #[error("not a decimal number (digits, optional thousands separators, optional decimal point)")]
    NotDecimal,
    #[error("negative amount")]
    Negative,
    #[error("thousands separators must group the integer digits by three, e.g. 1,234,567.89")]
    Grouping,
    #[error("more decimals than a fen: {0} has at most {1} decimal places")]
    TooPrecise(Unit, u32),
    #[error("amount too large")]
    TooLarge,
    #[error(
        "amount in {name} ({what}): the record has no currency field, only CNY amounts are accepted"
    )]
    ForeignCurrency { name: String, what: &'static str },
    #[error(
        "{0} is not a unit an amount here is stated in (fines and tax are in 元 or multiples; 分 may be a score)"
    )]
    SubYuanUnit(&'static str),
    #[error("{0:?} is not a unit of money")]
    UnknownUnit(String),
}

impl AmountError {
    /// Whether the problem is the unit (`invalid_unit`) rather than the number (`invalid_amount`).
    pub const fn is_unit(&self) -> bool {
        matches!(
            self,
            AmountError::ForeignCurrency { .. }
                | AmountError::SubYuanUnit(_)
                | AmountError::UnknownUnit(_)
        )
    }
}

/// An amount read from text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Amount {
    pub fen: i64,
    /// The unit it was written in: the field's unless the text named one.
    pub unit: Unit,
    /// Whether full-width digits or punctuation were read.
    pub fullwidth: bool,
}

/// Strips `prefix` from `s` ignoring ASCII case.
fn strip_prefix_ci<'s>(s: &'s str, prefix: &str) -> Option<&'s str> {
    let n = prefix.len();
    (s.len() >= n && s.is_char_boundary(n) && s[..n].eq_ignore_ascii_case(prefix)).then(|| &s[n..])
}

fn strip_suffix_ci<'s>(s: &'s str, suffix: &str) -> Option<&'s str> {
    let n = s.len().checked_sub(suffix.len())?;
    (s.is_char_boundary(n) && s[n..].eq_ignore_ascii_case(suffix)).then(|| &s[..n])
}

fn foreign(s: &str) -> Option<AmountError> {
    let upper = s.to_ascii_uppercase();
    FOREIGN
        .iter()
        .find(|(name, _)| upper.contains(&name.to_ascii_uppercase()))
        .map(|(name, what)| AmountError::ForeignCurrency {
            name: (*name).to_string(),
            what,
        })
}

/// Reads the unit text after the number (trimmed): `None` for no unit.
fn unit_of(rest: &str) -> Result<Option<Unit>, AmountError> {
    let mut r = rest.trim();
    for c in CNY {
        if let Some(x) = strip_suffix_ci(r, c) {
            r = x.trim_end();
            break;
        }
    }
    let r = r.strip_suffix('整').unwrap_or(r).trim_end();
    if r.is_empty() {
        return Ok(None);
    }
    // A digit after the number means the number itself is malformed
    // (`1 234`, `12.34.56`, `1.2E5`, `12万5千`), not that the unit is unknown.
    if r.bytes().any(|b| b.is_ascii_digit()) || r.starts_with(['.', ',', '-', '+']) {
        return Err(AmountError::NotDecimal);
    }
    if let Some((_, u)) = UNITS.iter().find(|(s, _)| *s == r) {
        return Ok(Some(*u));
    }
    if let Some(e) = foreign(rest) {
        return Err(e);
    }
    match r {
        "角" | "毛" => Err(AmountError::SubYuanUnit("角")),
        "分" => Err(AmountError::SubYuanUnit("分")),
        _ => Err(AmountError::UnknownUnit(rest.trim().to_string())),
    }
}

/// Parses an amount in `field_unit` unless the text names its own unit.
/// Allocation-free unless the text is rejected.
pub fn parse_amount(s: &str, field_unit: Unit) -> Result<Amount, AmountError> {
    let mut s = s.trim();
    // Most values are plain ASCII numbers (`1,234,567.89`, `0.85`): no
    // currency marker or unit to look for.
    let plain = s
        .bytes()
        .all(|b| b.is_ascii_digit() || b == b'.' || b == b',');
    if !plain {
        for c in CNY {
            if let Some(x) = strip_prefix_ci(s, c) {
                s = x.trim_start().trim_start_matches([':', '：']).trim_start();
                break;
            }
        }
    }
    // The number: the longest prefix of digits, separators and points in
    // either width. Everything after it is the unit.
    let mut int: u64 = 0;
    let mut int_digits = 0u32;
    let mut frac: u64 = 0;
    let mut frac_digits = 0u32; // significant (kept) fraction digits
    let mut frac_zeros = 0u32; // trailing zeros not yet counted
    let mut in_frac = false;
    let mut group: Option<u32> = None; // digits since the last separator
    let mut fullwidth = false;
    let mut end = s.len();
    let mut big = false;
    for (i, c0) in s.char_indices() {
        let c = match if c0.is_ascii() {
            None
        } else {
            fullwidth_to_ascii(c0)
        } {
            Some(a) => {
                if a.is_ascii_digit() || a == '.' || a == ',' {
                    fullwidth = true;
                }
                a
            }
            None => c0,
        };
        match c {
            '0'..='9' => {
                let d = (c as u8 - b'0') as u64;
                if in_frac {
                    if d == 0 {
                        frac_zeros += 1;
                    } else {
                        for _ in 0..frac_zeros {
                            frac = frac.checked_mul(10).unwrap_or_else(|| {
                                big = true;
                                0
                            });
                        }
                        frac_digits += frac_zeros + 1;
                        frac_zeros = 0;
                        frac = frac
                            .checked_mul(10)
                            .and_then(|f| f.checked_add(d))
                            .unwrap_or_else(|| {
                                big = true;
                                0
                            });
                    }
                } else {
                    int = match int.checked_mul(10).and_then(|v| v.checked_add(d)) {
                        Some(v) => v,
                        None => {
                            big = true;
                            0
                        }
                    };
                    int_digits += 1;
                    if let Some(g) = group.as_mut() {
                        *g += 1;
                    }
                }
            }
            ',' if !in_frac => {
                match group {
                    None if (1..=3).contains(&int_digits) => {}
                    Some(3) => {}
                    _ => return Err(AmountError::Grouping),
                }
                group = Some(0);
            }
            '.' if !in_frac => {
                if group.is_some_and(|g| g != 3) {
                    return Err(AmountError::Grouping);
                }
                group = None;
                in_frac = true;
            }
            '-' if i == 0 => return Err(AmountError::Negative),
            _ => {
                end = i;
                break;
            }
        }
    }
    if group.is_some_and(|g| g != 3) {
        return Err(AmountError::Grouping);
    }
    let rest = &s[end..];
    if int_digits == 0 {
        if let Some(e) = foreign(s) {
            return Err(e);
        }
        return Err(
            if end == 0 && !s.is_empty() && !rest.starts_with(['.', '．']) {
                AmountError::NoNumber(s.to_string())
            } else {
                AmountError::NotDecimal
            },
        );
    }
    let unit = match if rest.is_empty() {
        None
    } else {
        unit_of(rest)?
    } {
        Some(u) => u,
        None => field_unit,
    };
    if big {
        return Err(AmountError::TooLarge);
    }
    let exp = unit.exp();
    if frac_digits > exp {
        return Err(AmountError::TooPrecise(unit, exp));
    }
    let scale = |e: u32| 10i64.checked_pow(e).ok_or(AmountError::TooLarge);
    let int = i64::try_from(int).map_err(|_| AmountError::TooLarge)?;
    let frac = i64::try_from(frac).map_err(|_| AmountError::TooLarge)?;
    let fen = int
        .checked_mul(scale(exp)?)
        .and_then(|v| v.checked_add(frac.checked_mul(scale(exp - frac_digits).ok()?)?))
        .ok_or(AmountError::TooLarge)?;
    Ok(Amount {
        fen,
        unit,
        fullwidth,
    })
}

/// Reads an amount field documented in `unit` for an adapter: fen and the
/// corrections made, or the rejection (`invalid_unit` naming the unit written
/// and the field's own, `invalid_amount` otherwise).
pub fn field_amount(
    field: &'static str,
    raw: &str,
    unit: Unit,
) -> Result<(i64, Corrections), Rejection> {
    match parse_amount(raw, unit) {
        Ok(a) => {
            let mut c = Corrections::NONE;
            if a.fullwidth {
                c.insert(Correction::FullwidthNormalised);
            }
            if a.unit != unit {
                c.insert(Correction::AmountUnitConverted);
            }
            Ok((a.fen, c))
        }
        Err(e) if e.is_unit() => Err(Rejection::new(
            ReasonCode::InvalidUnit,
            Some(field),
            format!("{e}; {field} is in {unit}"),
        )),
        Err(e) => Err(Rejection::new(
            ReasonCode::InvalidAmount,
            Some(field),
            format!(
                "{e}; {field} is a non-negative amount in {unit} unless the value names its unit"
            ),
        )),
    }
}

/// Formats `fen` in `unit` with exactly the decimals the unit needs, e.g.
/// `1234567.89` in 元 or `123.456789` in 万元 (the inverse of [`parse_amount`]).
pub fn format_fen(fen: i64, unit: Unit) -> String {
    let exp = unit.exp();
    let p = 10i64.pow(exp);
    format!("{}.{:0width$}", fen / p, fen % p, width = exp as usize)
}

/// Yuan as written in tax and penalty records.
pub const YUAN: Unit = Unit::Yuan;
/// 万元 (ten thousand yuan), the unit of "double publicity" penalty amounts.
pub const WAN_YUAN: Unit = Unit::WanYuan;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_shared_table_holds() {
        // Every case of `crate::cases::AMOUNTS`, which the adapters' tests run too.
        for c in crate::cases::AMOUNTS {
            let got = parse_amount(c.raw, c.field_unit);
            match c.expect {
                crate::cases::AmountVerdict::Fen {
                    fen,
                    converted,
                    fullwidth,
                } => {
                    let a = got.unwrap_or_else(|e| panic!("{:?} in {}: {e}", c.raw, c.field_unit));
                    assert_eq!(a.fen, fen, "{:?}", c.raw);
                    assert_eq!(a.unit != c.field_unit, converted, "{:?}", c.raw);
                    assert_eq!(a.fullwidth, fullwidth, "{:?}", c.raw);
                }
                crate::cases::AmountVerdict::Rejected(code) => {
                    let e = got.expect_err(c.raw);
                    let got_code = if e.is_unit() {
                        crate::ReasonCode::InvalidUnit
                    } else {
                        crate::ReasonCode::InvalidAmount
                    };
                    assert_eq!(got_code, code, "{:?}: {e}", c.raw);
                }
            }
        }
        assert!(crate::cases::AMOUNTS.len() >= 40);
    }

    #[test]
    fn field_amounts_name_the_field_and_both_units() {
        let e = field_amount("CF_NR_FK", "1,000美元", WAN_YUAN).unwrap_err();
        assert_eq!(
            (e.code, e.field),
            (ReasonCode::InvalidUnit, Some("CF_NR_FK"))
        );
        assert_eq!(
            e.detail,
            "amount in 美元 (US dollar): the record has no currency field, only CNY amounts are accepted; CF_NR_FK is in 万元"
        );
        let e = field_amount("金额(元)", "12.345", YUAN).unwrap_err();
        assert_eq!(e.code, ReasonCode::InvalidAmount);
        assert_eq!(
            field_amount("CF_NR_FK", "１２３４５．６７元", WAN_YUAN).unwrap(),
            (
                1_234_567,
                Corrections::of(&[
                    Correction::FullwidthNormalised,
                    Correction::AmountUnitConverted
                ])
            )
        );
        assert_eq!(
            field_amount("CF_NR_FK", "0.85", WAN_YUAN).unwrap(),
            (850_000, Corrections::NONE)
        );
    }

    /// Blank is not in the shared table: adapters treat a blank field as
    /// absent before parsing (a missing field in tax, no fine in market).
    #[test]
    fn blank_is_no_number() {
        assert_eq!(parse_amount("", YUAN), Err(AmountError::NotDecimal));
        assert_eq!(parse_amount("　", YUAN), Err(AmountError::NotDecimal));
    }

    #[test]
    fn error_messages_say_what_is_wrong() {
        assert_eq!(
            parse_amount("12.345元", YUAN).unwrap_err().to_string(),
            "more decimals than a fen: 元 has at most 2 decimal places"
        );
        assert_eq!(
            parse_amount("USD 1,000", YUAN).unwrap_err().to_string(),
            "amount in USD (US dollar): the record has no currency field, only CNY amounts are accepted"
        );
        assert_eq!(
            parse_amount("1,000美元", WAN_YUAN).unwrap_err().to_string(),
            "amount in 美元 (US dollar): the record has no currency field, only CNY amounts are accepted"
        );
        assert!(
            parse_amount("30吨", YUAN)
                .unwrap_err()
                .to_string()
                .contains("吨")
        );
    }

    /// Unit spellings for the property tests: a template with `{}` for the number.
    fn spellings(unit: Unit) -> Vec<String> {
        let s = unit.symbol();
        let mut v = vec![
            format!("{{}}{s}"),
            format!("{{}} {s}"),
            format!("人民币{{}}{s}"),
            format!("RMB {{}}{s}"),
            format!("rmb{{}}{s}"),
            format!("CNY {{}} {s}"),
            format!("¥{{}}{s}"),
            format!("￥ {{}}{s}"),
            format!("{{}}{s}人民币"),
            format!("{{}}{s}整"),
            format!("　{{}}{s}　"),
        ];
        if matches!(unit, Unit::WanYuan | Unit::YiYuan) {
            v.push(format!("{{}}{}", s.trim_end_matches('元')));
        }
        if unit == Unit::Yuan {
            v.push("{}圆".into());
            v.push("{}元 RMB".into());
        }
        v
    }

    fn with_separators(n: &str) -> String {
        let (int, frac) = n.split_once('.').unwrap();
        let mut out = String::new();
        for (i, c) in int.chars().enumerate() {
            if i > 0 && (int.len() - i).is_multiple_of(3) {
                out.push(',');
            }
            out.push(c);
        }
        format!("{out}.{frac}")
    }

    fn fullwidth(n: &str) -> String {
        n.chars()
            .map(|c| match c {
                '0'..='9' | '.' | ',' => char::from_u32(c as u32 + 0xFEE0).unwrap(),
                c => c,
            })
            .collect()
    }

    proptest! {
        /// For any amount in fen and any unit spelling: formatting it in that
        /// unit and parsing gives the same fen, whatever the field's unit.
        #[test]
        fn format_then_parse_is_identity(
            fen in 0i64..1_000_000_000_000_000,
            unit in prop::sample::select(Unit::ALL.to_vec()),
            field in prop::sample::select(Unit::ALL.to_vec()),
            spelling in any::<prop::sample::Index>(),
            form in 0u8..4,
        ) {
            let n = format_fen(fen, unit);
            let n = match form {
                0 => n,
                1 => with_separators(&n),
                2 => fullwidth(&n),
                _ => fullwidth(&with_separators(&n)),
            };
            let sp = spellings(unit);
            let text = sp[spelling.index(sp.len())].replace("{}", &n);
            let a = parse_amount(&text, field).unwrap();
            prop_assert_eq!(a.fen, fen, "{}", text);
            prop_assert_eq!(a.unit, unit);
            prop_assert_eq!(a.fullwidth, form >= 2);
            // Without a unit the field's unit applies.
            let bare = parse_amount(&format_fen(fen, field), field).unwrap();
            prop_assert_eq!((bare.fen, bare.unit), (fen, field));
        }

        /// A 万元 field holding an explicit 元 value is read in 元, never ×10,000.
        #[test]
        fn explicit_yuan_in_a_wan_field_is_yuan(yuan in 0u64..100_000_000_000, cents in 0u64..100) {
            let text = format!("{yuan}.{cents:02}元");
            let a = parse_amount(&text, WAN_YUAN).unwrap();
            prop_assert_eq!(a.fen as u64, yuan * 100 + cents);
            prop_assert_eq!(a.unit, YUAN);
            prop_assert_eq!(parse_amount(&format!("{yuan}.{cents:02}"), WAN_YUAN).unwrap().fen as u64, (yuan * 100 + cents) * 10_000);
        }

        /// More significant decimals than a fen are rejected in every unit.
        #[test]
        fn sub_fen_precision_is_rejected(int in 0u64..1_000_000, unit in prop::sample::select(Unit::ALL.to_vec())) {
            let text = format!("{int}.{}1{}", "0".repeat(unit.exp() as usize), unit.symbol());
            prop_assert_eq!(parse_amount(&text, YUAN), Err(AmountError::TooPrecise(unit, unit.exp())));
        }

        #[test]
        fn never_panics(s in "\\PC{0,30}", u in prop::sample::select(Unit::ALL.to_vec())) {
            let _ = parse_amount(&s, u);
        }
    }
}
