//! What the key and amount checks cost per record, on one core:
//! `cargo run --release -p credit-core --example codes_cost`.
//!
//! `check_uscc_checksums` is the work the USCC check did before placeholders
//! and segments existed; the rest is what every record pays now.

use std::borrow::Cow;
use std::hint::black_box;
use std::time::Instant;

use credit_core::amount::{self, Unit};
use credit_core::cases::{COMPANY, PERSON};
use credit_core::codes::{self, Declared, Legacy};
use credit_core::ids;

/// Calls per run; `CODES_COST_N` overrides (e.g. small under valgrind).
fn n() -> u32 {
    std::env::var("CODES_COST_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000_000)
}

fn time(name: &str, mut f: impl FnMut() -> bool) {
    // Warm up, then take the best of five runs.
    let n = n();
    for _ in 0..n / 10 {
        black_box(f());
    }
    let best = (0..5)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..n {
                assert!(black_box(f()));
            }
            t.elapsed().as_nanos() as f64 / n as f64
        })
        .fold(f64::INFINITY, f64::min);
    println!("{name:<48}{best:>8.1} ns");
}

fn main() {
    let today = credit_core::date::days_from_civil(2026, 1, 1);
    let company = black_box(COMPANY);
    let person = black_box(PERSON);
    time("ids::check_uscc_checksums (the old check)", || {
        ids::check_uscc_checksums(company).is_ok()
    });
    time("ids::check_uscc (+ placeholder, segments)", || {
        ids::check_uscc(company).is_ok()
    });
    time("codes::resolve USCC (+ spelling)", || {
        codes::resolve(
            Cow::Borrowed(company),
            Declared::Uscc,
            "k",
            today,
            Legacy::Reject,
        )
        .is_ok()
    });
    time("ids::check_resident_id", || {
        ids::check_resident_id(person, today).is_ok()
    });
    time("codes::resolve resident ID", || {
        codes::resolve(
            Cow::Borrowed(person),
            Declared::ResidentId,
            "k",
            today,
            Legacy::Reject,
        )
        .is_ok()
    });
    time("codes::resolve, no subject type, resident ID", || {
        let d = Declared::Unknown { type_field: "t" };
        codes::resolve(Cow::Borrowed(person), d, "k", today, Legacy::Reject).is_ok()
    });
    let full_width = black_box("９１４４０１０１ＭＡ５９ＵＵ８Ｕ６Ｕ");
    time("codes::resolve full-width USCC (allocates)", || {
        codes::resolve(
            Cow::Borrowed(full_width),
            Declared::Uscc,
            "k",
            today,
            Legacy::Reject,
        )
        .is_ok()
    });
    let a = black_box("1,234,567.89");
    time("amount::parse_amount \"1,234,567.89\" in 元", || {
        amount::parse_amount(a, Unit::Yuan).is_ok()
    });
    let w = black_box("0.85");
    time("amount::parse_amount \"0.85\" in 万元", || {
        amount::parse_amount(w, Unit::WanYuan).is_ok()
    });
}
