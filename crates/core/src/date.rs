//! Calendar dates as days since 1970-01-01 (Avro's `date` logical type).
//!
//! Department feeds write dates as `2020-05-12`, `20200512`, `2020/05/12` or
//! `2020年05月12日`; this parser accepts exactly those, allocation-free.

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub const fn days_from_civil(y: i32, m: u32, d: u32) -> i32 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = (y - era * 400) as u32;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe as i32 - 719_468
}

/// The (year, month, day) of a day number.
pub const fn civil_from_days(z: i32) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = (z - era * 146_097) as u32;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe as i32 + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

const fn is_leap(y: i32) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

const fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(y) => 29,
        2 => 28,
        _ => 0,
    }
}

/// The day `months` calendar months after `day`, clamped to the end of a
/// shorter month (31 January + 1 month = 28 or 29 February), as publication
/// periods are counted.
pub const fn add_months(day: i32, months: u32) -> i32 {
    let (y, m, d) = civil_from_days(day);
    let total = (m - 1) + months;
    let y = y + (total / 12) as i32;
    let m = total % 12 + 1;
    let last = days_in_month(y, m);
    days_from_civil(y, m, if d > last { last } else { d })
}

fn digits(b: &[u8]) -> Option<u32> {
    if b.is_empty() || b.len() > 9 {
        return None;
    }
    let mut v = 0u32;
    for c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as u32;
    }
    Some(v)
}

fn from_parts(y: u32, m: u32, d: u32) -> Option<i32> {
    let y = y as i32;
    if !(1900..=2199).contains(&y) || !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// Parses `YYYYMMDD`.
pub fn parse_compact(b: &[u8]) -> Option<i32> {
    if b.len() != 8 {
        return None;
    }
    from_parts(digits(&b[..4])?, digits(&b[4..6])?, digits(&b[6..])?)
}

/// Parses a date in any of the accepted spellings; a trailing time such as
/// ` 00:00:00` or `T08:00:00` is ignored.
pub fn parse(s: &str) -> Option<i32> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() == 8 {
        return parse_compact(b);
    }
    // 年/月/日 are three bytes each in UTF-8.
    if let Some(rest) = s.strip_suffix('日') {
        let (y, rest) = rest.split_once('年')?;
        let (m, d) = rest.split_once('月')?;
        return from_parts(
            digits(y.as_bytes())?,
            digits(m.as_bytes())?,
            digits(d.as_bytes())?,
        );
    }
    let date = match b.iter().position(|c| *c == b' ' || *c == b'T') {
        Some(i) => &b[..i],
        None => b,
    };
    let sep = *date.get(4)?;
    if sep != b'-' && sep != b'/' && sep != b'.' {
        return None;
    }
    let mut parts = date.split(|c| *c == sep);
    let y = digits(parts.next()?)?;
    let m = digits(parts.next()?)?;
    let d = digits(parts.next()?)?;
    if parts.next().is_some() {
        return None;
    }
    from_parts(y, m, d)
}

/// Formats a day number as `YYYY-MM-DD`.
pub fn format(days: i32) -> String {
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepted_spellings() {
        let want = days_from_civil(2020, 5, 12);
        for s in [
            "2020-05-12",
            "20200512",
            "2020/05/12",
            "2020.5.12",
            "2020年05月12日",
            "2020年5月12日",
            "2020-05-12 00:00:00",
            "2020-05-12T08:00:00+08:00",
            " 2020-05-12 ",
        ] {
            assert_eq!(parse(s), Some(want), "{s}");
        }
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(
            add_months(days_from_civil(2020, 1, 31), 1),
            days_from_civil(2020, 2, 29)
        );
        assert_eq!(
            add_months(days_from_civil(2020, 11, 30), 3),
            days_from_civil(2021, 2, 28)
        );
    }

    #[test]
    fn rejected_spellings() {
        for s in [
            "",
            "2020-02-30",
            "2019-02-29",
            "2020-13-01",
            "1899-12-31",
            "12/05/2020",
            "2020-05",
            "二〇二〇年",
            "2020年05月12",
        ] {
            assert_eq!(parse(s), None, "{s}");
        }
    }

    proptest! {
        #[test]
        fn round_trips(days in days_from_civil(1900, 1, 1)..days_from_civil(2199, 12, 31)) {
            prop_assert_eq!(parse(&format(days)), Some(days));
        }

        /// Adding months moves the month by exactly that many and never
        /// past its last day; adding 12 months is adding a year.
        #[test]
        fn add_months_counts_calendar_months(days in days_from_civil(1900, 1, 1)..days_from_civil(2190, 12, 31), months in 0u32..120) {
            let (y, m, d) = civil_from_days(days);
            let (y2, m2, d2) = civil_from_days(add_months(days, months));
            prop_assert_eq!((y2 * 12 + m2 as i32) - (y * 12 + m as i32), months as i32);
            prop_assert_eq!(d2, d.min(days_in_month(y2, m2)));
        }

        #[test]
        fn never_panics(s in "\\PC{0,30}") {
            let _ = parse(&s);
        }
    }
}
