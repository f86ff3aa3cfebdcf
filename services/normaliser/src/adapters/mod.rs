//! One adapter per department format. Each is a pure function from the inbound
//! bytes to a [`CreditRecord`] or a typed [`Rejection`]; none can panic on any
//! input (property-tested below), and none sees Kafka.
//!
//! Adapters hand the record to a callback instead of returning it, so the record
//! may borrow from text the adapter decoded itself (GBK CSV, unescaped XML).

mod courts;
mod customs;
mod market;
mod tax;

use std::borrow::Cow;

use credit_core::catalogue::InboundFormat;
use credit_core::record::{Context, CreditRecord, GuardrailDecision};
use credit_core::reject::{ReasonCode, Rejection};

/// What an adapter noticed on the way, whatever the outcome, for the pipeline
/// to count and log (the adapters stay pure). Reused across records: `clear` it.
#[derive(Debug, Default)]
pub struct Findings {
    /// The guardrail's decision, when the record is a natural person's and got
    /// that far.
    pub guardrail: Option<GuardrailDecision>,
    /// Header cells the bus does not know, accepted and ignored (tax CSV),
    /// folded (`text::header_name`); `""` for an empty cell.
    pub unknown_columns: Vec<String>,
}

impl Findings {
    pub fn clear(&mut self) {
        self.guardrail = None;
        self.unknown_columns.clear();
    }
}

/// Normalises one inbound record and hands it to `f`.
pub fn normalise<R>(
    format: InboundFormat,
    ctx: &Context<'_>,
    value: &[u8],
    f: impl FnOnce(&CreditRecord<'_>) -> R,
) -> Result<R, Rejection> {
    normalise_with(format, ctx, value, &mut Findings::default(), f)
}

/// [`normalise`], also reporting what the adapter noticed into `findings`.
pub fn normalise_with<R>(
    format: InboundFormat,
    ctx: &Context<'_>,
    value: &[u8],
    findings: &mut Findings,
    f: impl FnOnce(&CreditRecord<'_>) -> R,
) -> Result<R, Rejection> {
    if value.iter().all(u8::is_ascii_whitespace) {
        return Err(Rejection::new(
            ReasonCode::EmptyRecord,
            None,
            "value is empty",
        ));
    }
    match format {
        InboundFormat::CourtsJson => courts::normalise_with(ctx, value, findings).map(|r| f(&r)),
        InboundFormat::CustomsXml => customs::normalise(ctx, value, f),
        InboundFormat::TaxCsv => tax::normalise_with(ctx, value, findings, f),
        InboundFormat::MarketJson => market::normalise_with(ctx, value, findings).map(|r| f(&r)),
    }
}

/// A JSON string that borrows from the input when it has no escapes.
/// (`Option<Cow<str>>` with `#[serde(borrow)]` always allocates: serde does not
/// propagate borrowing through `Option`, and this runs for every field.)
#[derive(Debug, Default)]
pub struct Text<'a>(pub Cow<'a, str>);

impl<'de: 'a, 'a> serde::Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: serde::de::Error>(
                self,
                v: &'de str,
            ) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

impl Text<'_> {
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }
}

/// The text of an optional JSON field.
fn text(v: Option<Text<'_>>) -> Option<Cow<'_, str>> {
    v.map(|t| t.0)
}

/// A required text field: present and not blank, trimmed.
fn required<'a>(field: &'static str, v: Option<Cow<'a, str>>) -> Result<Cow<'a, str>, Rejection> {
    optional(v).ok_or_else(|| Rejection::missing(field))
}

/// An optional text field, trimmed; blank counts as absent.
fn optional(v: Option<Cow<'_, str>>) -> Option<Cow<'_, str>> {
    match v? {
        Cow::Borrowed(b) => {
            let t = b.trim();
            (!t.is_empty()).then_some(Cow::Borrowed(t))
        }
        Cow::Owned(o) => {
            let t = o.trim();
            if t.is_empty() {
                None
            } else if t.len() == o.len() {
                Some(Cow::Owned(o))
            } else {
                Some(Cow::Owned(t.to_string()))
            }
        }
    }
}

/// Checks that the whole value is UTF-8 once, with SIMD, so the parsers after it
/// work on `&str` and skip validating string by string.
fn utf8(value: &[u8]) -> Result<&str, Rejection> {
    simdutf8::basic::from_utf8(value).map_err(|_| {
        let at = std::str::from_utf8(value)
            .err()
            .map_or(0, |e| e.valid_up_to());
        Rejection::new(
            ReasonCode::BadEncoding,
            None,
            format!("not UTF-8 (first bad byte at {at})"),
        )
    })
}

fn required_date(field: &'static str, v: Option<&str>) -> Result<i32, Rejection> {
    match v {
        Some(s) if !s.trim().is_empty() => {
            credit_core::date::parse(s).ok_or_else(|| Rejection::date(field))
        }
        _ => Err(Rejection::missing(field)),
    }
}

fn optional_date(field: &'static str, v: Option<&str>) -> Result<Option<i32>, Rejection> {
    match v {
        Some(s) if !s.trim().is_empty() => credit_core::date::parse(s)
            .map(Some)
            .ok_or_else(|| Rejection::date(field)),
        _ => Ok(None),
    }
}

fn json_error(e: serde_json::Error) -> Rejection {
    Rejection::new(ReasonCode::MalformedJson, None, e.to_string())
}

/// Case codes and decision numbers look like `(2020)粤01执123号` / `穗市监罚〔2020〕12号`:
/// a bracketed four-digit year somewhere and a closing `号`.
fn check_document_number(field: &'static str, s: &str) -> Result<(), Rejection> {
    let has_year = s
        .char_indices()
        .filter(|(_, c)| matches!(c, '(' | '（' | '〔' | '[' | '【'))
        .any(|(i, c)| {
            let rest = &s[i + c.len_utf8()..];
            rest.len() >= 4 && rest.as_bytes()[..4].iter().all(u8::is_ascii_digit)
        });
    if has_year && s.ends_with('号') {
        Ok(())
    } else {
        Err(Rejection::invalid(
            field,
            "document number must carry a bracketed year and end in 号, e.g. (2020)粤01执123号",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use credit_core::cases::{AMOUNTS, AmountVerdict, CODES, CodeVerdict};
    use credit_core::catalogue::DEPARTMENTS;
    use credit_core::record::SubjectType;
    use credit_core::{Correction, Corrections};
    use credit_datagen::fields::{AMOUNT_SLOTS, KEY_SLOTS};
    use proptest::prelude::*;

    pub(crate) fn ctx(department: &'static str) -> Context<'static> {
        Context {
            department,
            source_topic: "credit.test.inbound",
            partition: 1,
            offset: 7,
            timestamp_ms: Some(1_600_000_000_000),
            today: credit_core::date::days_from_civil(2024, 6, 1),
            key: None,
        }
    }

    #[test]
    fn document_numbers() {
        for ok in [
            "(2020)粤01执123号",
            "（2019）粤0106执恢45号",
            "穗市监处罚〔2020〕123号",
            "广关信〔2021〕7号",
        ] {
            assert!(check_document_number("n", ok).is_ok(), "{ok}");
        }
        for bad in ["123", "(20a0)粤01执1号", "(2020)粤01执123", ""] {
            assert!(check_document_number("n", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn blank_values_are_empty_records_for_every_format() {
        for d in DEPARTMENTS.iter().filter(|d| d.inbound.is_some()) {
            for v in [&b""[..], b"  \n"] {
                let e = normalise(d.inbound.unwrap(), &ctx(d.id), v, |_| ()).unwrap_err();
                assert_eq!(e.code, ReasonCode::EmptyRecord);
            }
        }
    }

    /// Every generated sample meets its expected fate: accepted, or rejected for
    /// exactly the reason the generator broke it for. Covers every reason code the
    /// generator produces, across thousands of real-looking records.
    #[test]
    fn generated_samples_meet_their_expected_fate() {
        let mut g = credit_datagen::Generator::new(99, 0.3);
        let mut reasons = std::collections::HashSet::new();
        for d in DEPARTMENTS.iter().filter(|d| d.inbound.is_some()) {
            for _ in 0..3000 {
                let s = g.record(d.id);
                let got = normalise(d.inbound.unwrap(), &ctx(d.id), &s.value, |_| ())
                    .err()
                    .map(|e| e.code);
                assert_eq!(
                    got,
                    s.expect,
                    "{}: {}",
                    d.id,
                    String::from_utf8_lossy(&s.value)
                );
                reasons.extend(got);
            }
        }
        assert!(reasons.len() >= 16, "{reasons:?}");
    }

    /// What an adapter did with a record: its key, subject type, amount and
    /// corrections, or the rejection's code and field.
    type Outcome =
        Result<(String, SubjectType, Option<i64>, Corrections), (ReasonCode, Option<&'static str>)>;

    fn outcome(department: &'static str, value: &[u8]) -> Outcome {
        let d = credit_core::catalogue::department(department).unwrap();
        normalise(d.inbound.unwrap(), &ctx(d.id), value, |r| {
            (
                r.subject.key.to_string(),
                r.subject.kind,
                r.amount_fen,
                r.corrections,
            )
        })
        .map_err(|e| (e.code, e.field))
    }

    /// Every code of `credit_core::cases::CODES` through every adapter's key
    /// field of its kind: the same verdict as the shared table, the record
    /// carrying the canonical key and exactly the corrections made.
    #[test]
    fn code_table_through_every_adapter() {
        let mut runs = 0;
        for slot in KEY_SLOTS {
            for c in CODES.iter().filter(|c| c.field == slot.field) {
                let got = outcome(slot.department, &(slot.build)(c.raw));
                let what = format!("{} with {:?} ({}): {got:?}", slot.name, c.raw, c.note);
                match c.expect {
                    CodeVerdict::Accepted {
                        key,
                        person,
                        corrections,
                    } => {
                        let (k, kind, _, cs) = got.expect(&what);
                        assert_eq!(k, key, "{what}");
                        assert_eq!(kind == SubjectType::NaturalPerson, person, "{what}");
                        assert_eq!(cs, Corrections::of(corrections), "{what}");
                    }
                    CodeVerdict::Legacy { key, corrections } if slot.keeps_legacy => {
                        let (k, _, _, cs) = got.expect(&what);
                        assert_eq!(k, key, "{what}");
                        let mut want = Corrections::of(corrections);
                        want.insert(Correction::LegacyRegistrationNumber);
                        assert_eq!(cs, want, "{what}");
                    }
                    CodeVerdict::Legacy { .. } => assert_eq!(
                        got.unwrap_err(),
                        (ReasonCode::LegacyRegistrationNumber, Some(slot.field_name)),
                        "{what}"
                    ),
                    CodeVerdict::Rejected(ReasonCode::MissingField) => assert_eq!(
                        got.unwrap_err(),
                        (ReasonCode::MissingField, Some("partyTypeName")),
                        "{what}"
                    ),
                    CodeVerdict::Rejected(code) => {
                        assert_eq!(got.unwrap_err(), (code, Some(slot.field_name)), "{what}")
                    }
                }
                runs += 1;
            }
        }
        assert!(runs >= 150, "{runs}");
    }

    /// Every amount of `credit_core::cases::AMOUNTS` through every amount
    /// field whose unit the case is written for.
    #[test]
    fn amount_table_through_every_adapter() {
        let mut runs = 0;
        for slot in AMOUNT_SLOTS {
            for c in AMOUNTS.iter().filter(|c| c.field_unit == slot.unit) {
                let got = outcome(slot.department, &(slot.build)(c.raw));
                let what = format!("{} with {:?} ({}): {got:?}", slot.name, c.raw, c.note);
                match c.expect {
                    AmountVerdict::Fen { fen, .. } => {
                        let (_, _, amount, cs) = got.expect(&what);
                        assert_eq!(amount, Some(fen), "{what}");
                        assert_eq!(cs, c.expect.corrections().into_iter().collect(), "{what}");
                    }
                    AmountVerdict::Rejected(code) => {
                        assert_eq!(got.unwrap_err(), (code, Some(slot.field_name)), "{what}")
                    }
                }
                runs += 1;
            }
        }
        assert!(runs >= 60, "{runs}");
    }

    /// The guardrail's case table through the market adapter: a natural
    /// person's penalty is rejected exactly for the blocked texts, naming the
    /// field; a company's with the same text is accepted and not judged; the
    /// decision reported matches. Court entries are judged on their conduct,
    /// never on the judgement's debt.
    #[test]
    fn guardrail_case_table_through_the_adapters() {
        use credit_core::record::GuardrailDecision;
        use credit_datagen::cases::{GuardrailExpect, court_entry, guardrail, market_penalty};
        let mut wrong = Vec::new();
        let cases = guardrail();
        for (i, case) in cases.iter().enumerate() {
            let seq = i as u32 + 1;
            let mut found = Findings::default();
            let natural = normalise_with(
                InboundFormat::MarketJson,
                &ctx("market"),
                &market_penalty(&case.text, true, seq),
                &mut found,
                |_| (),
            );
            let ok = match (&case.expect, &natural, found.guardrail) {
                (
                    GuardrailExpect::Block(c),
                    Err(e),
                    Some(GuardrailDecision::Blocked { concept, field }),
                ) => {
                    e.code == ReasonCode::GuardrailMinorBehaviour
                        && e.field == Some("CF_WFXW")
                        && concept == c
                        && field == "CF_WFXW"
                }
                (
                    GuardrailExpect::Exempt(c),
                    Ok(()),
                    Some(GuardrailDecision::Exempt { concept }),
                ) => concept == c,
                (GuardrailExpect::Pass, Ok(()), Some(GuardrailDecision::Passed)) => true,
                _ => false,
            };
            if !ok {
                wrong.push(format!(
                    "{:?}: {natural:?} {:?}",
                    case.text, found.guardrail
                ));
            }
            let mut found = Findings::default();
            let company = normalise_with(
                InboundFormat::MarketJson,
                &ctx("market"),
                &market_penalty(&case.text, false, seq),
                &mut found,
                |_| (),
            );
            if company.is_err() || found.guardrail.is_some() {
                wrong.push(format!("company {:?}: {company:?}", case.text));
            }
            // The judgement's debt is never judged; the listed conduct is.
            let mut found = Findings::default();
            let duty = normalise_with(
                InboundFormat::CourtsJson,
                &ctx("courts"),
                &court_entry(&case.text, "有履行能力而拒不履行生效法律文书确定义务", seq),
                &mut found,
                |_| (),
            );
            if duty.is_err() || found.guardrail != Some(GuardrailDecision::Passed) {
                wrong.push(format!("court duty {:?}: {duty:?}", case.text));
            }
            let conduct = normalise(
                InboundFormat::CourtsJson,
                &ctx("courts"),
                &court_entry("支付人民币12000元", &case.text, seq),
                |_| (),
            );
            let blocked = matches!(case.expect, GuardrailExpect::Block(_));
            if blocked
                != conduct
                    .as_ref()
                    .is_err_and(|e| e.code == ReasonCode::GuardrailMinorBehaviour)
            {
                wrong.push(format!("court conduct {:?}: {conduct:?}", case.text));
            }
        }
        assert!(
            wrong.is_empty(),
            "{} wrong:\n{}",
            wrong.len(),
            wrong.join("\n")
        );
        assert!(cases.len() > 300, "{}", cases.len());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Any bytes at all give a record or a typed rejection, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512), which in 0usize..4) {
            let fmt = [InboundFormat::CourtsJson, InboundFormat::CustomsXml, InboundFormat::TaxCsv, InboundFormat::MarketJson][which];
            let _ = normalise(fmt, &ctx("courts"), &bytes, |r| r.record_id().offset);
        }

        /// Mutated real records (the hardest inputs for a parser) never panic either.
        #[test]
        fn mutated_samples_never_panic(seed in any::<u64>(), cut in any::<prop::sample::Index>(), flip in any::<prop::sample::Index>(), byte in any::<u8>()) {
            let mut g = credit_datagen::Generator::new(seed, 0.3);
            for d in DEPARTMENTS.iter().filter(|d| d.inbound.is_some()) {
                let mut v = g.record(d.id).value;
                if !v.is_empty() {
                    let i = flip.index(v.len());
                    v[i] = byte;
                    v.truncate(cut.index(v.len() + 1));
                }
                let _ = normalise(d.inbound.unwrap(), &ctx(d.id), &v, |r| r.record_id().offset);
            }
        }
    }
}
