//! Money amounts as integer fen (0.01 CNY), parsed from decimal text without floats.

/// Parses a non-negative decimal amount in units of `10^unit_exp` fen per unit
/// (yuan: `2`; 万元, ten-thousand yuan: `6`). Thousands separators (`,`) are allowed.
/// More fractional digits than the unit can represent in fen are rejected, not rounded.
pub fn parse_fen(s: &str, unit_exp: u32) -> Option<i64> {
    let s = s.trim();
    let s = s.strip_suffix("元").unwrap_or(s);
    if s.is_empty() {
        return None;
    }
    let (int, frac) = match s.split_once('.') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if int.is_empty() || frac.len() > unit_exp as usize {
        return None;
    }
    let mut v: i64 = 0;
    let mut any = false;
    for c in int.bytes() {
        match c {
            b'0'..=b'9' => {
                v = v.checked_mul(10)?.checked_add((c - b'0') as i64)?;
                any = true;
            }
            b',' => {}
            _ => return None,
        }
    }
    if !any {
        return None;
    }
    let mut scale = unit_exp;
    for c in frac.bytes() {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as i64)?;
        scale -= 1;
    }
    v.checked_mul(10i64.checked_pow(scale)?)
}

/// Yuan as written in tax and penalty records.
pub const YUAN: u32 = 2;
/// 万元 (ten thousand yuan), the unit of "double publicity" penalty amounts.
pub const WAN_YUAN: u32 = 6;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn table() {
        assert_eq!(parse_fen("123.45", YUAN), Some(12_345));
        assert_eq!(parse_fen("1,234", YUAN), Some(123_400));
        assert_eq!(parse_fen("0.5", WAN_YUAN), Some(500_000));
        assert_eq!(parse_fen("3元", YUAN), Some(300));
        assert_eq!(parse_fen("1.234", YUAN), None);
        assert_eq!(parse_fen("-1", YUAN), None);
        assert_eq!(parse_fen("", YUAN), None);
        assert_eq!(parse_fen(".5", YUAN), None);
        assert_eq!(parse_fen("99999999999999999999", YUAN), None);
    }

    proptest! {
        #[test]
        fn fen_round_trip(fen in 0i64..1_000_000_000_000) {
            let s = format!("{}.{:02}", fen / 100, fen % 100);
            prop_assert_eq!(parse_fen(&s, YUAN), Some(fen));
        }

        #[test]
        fn never_panics(s in "\\PC{0,30}", e in 0u32..8) {
            let _ = parse_fen(&s, e);
        }
    }
}
