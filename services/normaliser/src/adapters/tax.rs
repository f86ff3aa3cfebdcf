//! Tax: parties to major tax violations (重大税收违法失信主体) and taxpayer credit
//! grades A/B/M/C/D, one CSV row per message (an optional header row first),
//! in UTF-8 or GBK/GB18030 as the bureau's exports come. Columns, in order:
//!
//! `记录类型, 纳税人名称, 统一社会信用代码, 主管税务机关, 文书编号, 认定日期, 有效期至,
//! 类别, 金额(元), 法定代表人, 违法事实`
//!
//! `记录类型` is `重大税收违法` (类别 = case type, 金额 = tax involved) or `纳税信用等级`
//! (类别 = grade A/B/M/C/D).

use std::borrow::Cow;

use credit_core::amount;
use credit_core::codes::{self, Legacy};
use credit_core::record::{
    Context, CreditRecord, InfoKind, ListType, Severity, Subject, SubjectType, check_period,
};
use credit_core::reject::{ReasonCode, Rejection};
use csv_core::{ReadRecordResult, Reader};

use super::{check_document_number, optional, optional_date, required, required_date};

pub const COLUMNS: [&str; 11] = [
    "记录类型",
    "纳税人名称",
    "统一社会信用代码",
    "主管税务机关",
    "文书编号",
    "认定日期",
    "有效期至",
    "类别",
    "金额(元)",
    "法定代表人",
    "违法事实",
];
pub const VIOLATION: &str = "重大税收违法";
pub const GRADE: &str = "纳税信用等级";

fn csv_err(detail: impl Into<String>) -> Rejection {
    Rejection::new(ReasonCode::MalformedCsv, None, detail)
}

/// UTF-8 if the bytes are UTF-8, else GB18030 (a superset of GBK and GB2312).
/// Bytes that are neither are rejected, never replaced with U+FFFD.
fn decode(value: &[u8]) -> Result<Cow<'_, str>, Rejection> {
    let value = value.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(value);
    if let Ok(s) = simdutf8::basic::from_utf8(value) {
        return Ok(Cow::Borrowed(s));
    }
    encoding_rs::GB18030
        .decode_without_bom_handling_and_without_replacement(value)
        .ok_or_else(|| {
            Rejection::new(
                ReasonCode::BadEncoding,
                None,
                "bytes are neither UTF-8 nor GB18030/GBK",
            )
        })
}

/// Field boundaries of one CSV record read from `input`.
struct Row {
    ends: [usize; 16],
    n: usize,
}

/// Reads one record into `out`; returns the row and the input consumed, or `None`
/// at the end. `input` always ends in a newline (see `normalise`), so a record that
/// still wants input is an unterminated quoted field.
fn read_row(
    rdr: &mut Reader,
    input: &[u8],
    out: &mut [u8],
) -> Result<Option<(Row, usize)>, Rejection> {
    let mut row = Row {
        ends: [0; 16],
        n: 0,
    };
    let (res, nin, _, nend) = rdr.read_record(input, out, &mut row.ends);
    row.n = nend;
    match res {
        ReadRecordResult::Record => Ok(Some((row, nin))),
        ReadRecordResult::End => Ok(None),
        ReadRecordResult::InputEmpty
            if nend == 0 && nin == input.len() && input.iter().all(u8::is_ascii_whitespace) =>
        {
            Ok(None)
        }
        ReadRecordResult::InputEmpty => Err(csv_err("unterminated quoted field")),
        ReadRecordResult::OutputFull => Err(csv_err("record larger than its input")),
        ReadRecordResult::OutputEndsFull => Err(csv_err("more than 16 fields")),
    }
}

/// The fields of a row read by csv-core. The input was a `&str` and csv-core only
/// drops or keeps ASCII bytes (delimiters, quotes), so each field is valid UTF-8;
/// re-checking it per field cost 15 % of the tax adapter's time.
fn fields<'o>(row: &Row, out: &'o [u8]) -> Result<Vec<&'o str>, Rejection> {
    let mut start = 0;
    let mut v = Vec::with_capacity(row.n);
    for &end in &row.ends[..row.n] {
        let field = out
            .get(start..end)
            .ok_or_else(|| csv_err("field out of bounds"))?;
        debug_assert!(std::str::from_utf8(field).is_ok());
        // SAFETY: see above: a valid UTF-8 input with only ASCII bytes removed.
        v.push(unsafe { std::str::from_utf8_unchecked(field) });
        start = end;
    }
    Ok(v)
}

fn is_header(first: &str) -> bool {
    matches!(first.trim(), "记录类型" | "record_type")
}

pub(super) fn normalise<R>(
    ctx: &Context<'_>,
    value: &[u8],
    f: impl FnOnce(&CreditRecord<'_>) -> R,
) -> Result<R, Rejection> {
    let mut text = decode(value)?;
    // Most exports quote nothing: then a row is its fields, split in place.
    if !text.contains('"') {
        return from_columns(ctx, &plain_row(&text)?, f);
    }
    if !text.ends_with('\n') {
        text.to_mut().push('\n');
    }
    let input = text.as_bytes();
    // Building a csv-core reader compiles its DFA (microseconds); reuse one per thread.
    thread_local! {
        static READER: std::cell::RefCell<Reader> = std::cell::RefCell::new(Reader::new());
    }
    READER.with_borrow_mut(|rdr| {
        rdr.reset();
        let mut out = vec![0u8; input.len()];
        let cols = quoted_row(input, rdr, &mut out)?;
        from_columns(ctx, &cols, f)
    })
}

/// The data row of a message without quotes: blank lines ignored, an optional
/// header first, exactly one data row.
fn plain_row(text: &str) -> Result<Vec<&str>, Rejection> {
    let mut lines = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.trim().is_empty());
    let mut row = lines.next().ok_or_else(|| csv_err("no row"))?;
    if row.split(',').next().is_some_and(is_header) {
        row = lines
            .next()
            .ok_or_else(|| Rejection::missing("data row after header"))?;
    }
    if lines.next().is_some() {
        return Err(csv_err(MORE_THAN_ONE_ROW));
    }
    Ok(row.split(',').collect())
}

const MORE_THAN_ONE_ROW: &str = "more than one data row in one message; publish one row per record";

/// The data row of a message with quoted fields, read by csv-core into `out`.
fn quoted_row<'o>(
    input: &[u8],
    rdr: &mut Reader,
    out: &'o mut [u8],
) -> Result<Vec<&'o str>, Rejection> {
    let (row, mut used) = read_row(rdr, input, out)?.ok_or_else(|| csv_err("no row"))?;
    let (row, out): (Row, &'o [u8]) = if fields(&row, out)?.first().is_some_and(|f| is_header(f)) {
        // Read the data row over the header's output: its fields are not needed.
        let next = read_row(rdr, &input[used..], out)?;
        let (r2, u2) = next.ok_or_else(|| Rejection::missing("data row after header"))?;
        used += u2;
        (r2, out)
    } else {
        (row, out)
    };
    // One record per message: anything after the data row other than blank lines is an error.
    if input[used..].iter().any(|b| !b.is_ascii_whitespace()) {
        return Err(csv_err(MORE_THAN_ONE_ROW));
    }
    fields(&row, out)
}

fn from_columns<R>(
    ctx: &Context<'_>,
    cols: &[&str],
    f: impl FnOnce(&CreditRecord<'_>) -> R,
) -> Result<R, Rejection> {
    if cols.len() != COLUMNS.len() {
        return Err(csv_err(format!(
            "expected {} columns, got {}",
            COLUMNS.len(),
            cols.len()
        )));
    }
    let col = |i: usize| Some(Cow::Borrowed(cols[i]));

    let record_type = required(COLUMNS[0], col(0))?;
    let name = required(COLUMNS[1], col(1))?;
    let uscc = required(COLUMNS[2], col(2))?;
    // A pre-2015 registration number is kept (flagged): the row names the
    // taxpayer and its district tax bureau (主管税务机关), which is enough for
    // the archive to find the taxpayer's USCC.
    let (uscc, mut corrections) = codes::subject_key(
        SubjectType::LegalPerson,
        uscc,
        COLUMNS[2],
        ctx.today,
        Legacy::Keep,
    )?;
    let authority = required(COLUMNS[3], col(3))?;
    let doc_no = required(COLUMNS[4], col(4))?;
    let decided = required_date(COLUMNS[5], Some(cols[5]))?;
    let valid_until = optional_date(COLUMNS[6], Some(cols[6]))?;
    check_period(decided, valid_until, COLUMNS[6])?;
    let category = required(COLUMNS[7], col(7))?;

    let (info_kind, list_type, grade, severity, amount_fen, conduct) = match record_type.as_ref() {
        VIOLATION => {
            check_document_number(COLUMNS[4], &doc_no)?;
            let amount = required(COLUMNS[8], col(8))?;
            let (fen, c) = amount::field_amount(COLUMNS[8], &amount, amount::YUAN)?;
            corrections.extend(c);
            let facts = required(COLUMNS[10], col(10))?;
            (
                InfoKind::DishonestyList,
                Some(ListType::MajorTaxViolation),
                None,
                Severity::Serious,
                Some(fen),
                facts,
            )
        }
        GRADE => {
            let (info, list, sev) = match category.as_ref() {
                "A" => (
                    InfoKind::RedList,
                    Some(ListType::TaxGradeA),
                    Severity::Minor,
                ),
                "B" | "M" => (InfoKind::CreditGrade, None, Severity::Minor),
                "C" => (InfoKind::CreditGrade, None, Severity::Ordinary),
                "D" => (
                    InfoKind::DishonestyList,
                    Some(ListType::TaxGradeD),
                    Severity::Serious,
                ),
                other => {
                    return Err(Rejection::invalid(
                        COLUMNS[7],
                        format!("grade {other:?} is not A, B, M, C or D"),
                    ));
                }
            };
            let conduct = optional(col(10)).unwrap_or(Cow::Borrowed(""));
            (info, list, Some(category.clone()), sev, None, conduct)
        }
        other => {
            return Err(Rejection::new(
                ReasonCode::UnknownRecordType,
                Some(COLUMNS[0]),
                format!("{other:?} is not {VIOLATION} or {GRADE}"),
            ));
        }
    };

    let mut attributes = vec![("tax_authority", authority)];
    if list_type == Some(ListType::MajorTaxViolation) {
        attributes.push(("case_type", category));
    }
    let record = CreditRecord {
        department: ctx.department,
        domain: "tax",
        subject: Subject {
            kind: SubjectType::LegalPerson,
            key: uscc,
            name,
        },
        responsible_person: optional(col(9)),
        info_kind,
        list_type,
        grade,
        lineage: ctx.lineage(doc_no.clone()),
        decision_number: doc_no,
        decision_date: decided,
        publication_date: None,
        valid_from: decided,
        valid_until,
        severity,
        legal_basis: None,
        conduct,
        amount_fen,
        attributes,
        corrections,
    };
    Ok(f(&record))
}

#[cfg(test)]
mod tests {
    use super::super::tests::ctx;
    use super::*;

    fn uscc() -> String {
        credit_core::ids::complete_uscc("9144010166400000").unwrap()
    }

    fn violation(u: &str) -> String {
        format!(
            "重大税收违法,广州某某贸易有限公司,{u},国家税务总局广州市天河区税务局,穗天税稽罚〔2020〕88号,2020-06-01,2023-05-31,虚开增值税专用发票,\"1,234,567.89\",陈某,\"虚开发票12份，价税合计123万元\"\n"
        )
    }

    type Out = (
        InfoKind,
        Option<ListType>,
        Option<String>,
        Option<i64>,
        String,
    );
    fn run(b: &[u8]) -> Result<Out, Rejection> {
        normalise(&ctx("tax"), b, |r| {
            (
                r.info_kind,
                r.list_type,
                r.grade.as_deref().map(str::to_string),
                r.amount_fen,
                r.subject.name.to_string(),
            )
        })
    }

    #[test]
    fn violation_row_in_utf8_and_gbk_with_and_without_header() {
        let row = violation(&uscc());
        let want = (
            InfoKind::DishonestyList,
            Some(ListType::MajorTaxViolation),
            None,
            Some(123_456_789),
            "广州某某贸易有限公司".to_string(),
        );
        assert_eq!(run(row.as_bytes()).unwrap(), want);
        let with_header = format!("{}\r\n{row}", COLUMNS.join(","));
        assert_eq!(run(with_header.as_bytes()).unwrap(), want);
        let gbk = encoding_rs::GBK.encode(&with_header).0;
        assert!(std::str::from_utf8(&gbk).is_err());
        assert_eq!(run(&gbk).unwrap(), want);
        let no_newline = row.trim_end();
        assert_eq!(run(no_newline.as_bytes()).unwrap(), want);
    }

    #[test]
    fn grades_map_to_lists() {
        for (g, kind, list) in [
            ("A", InfoKind::RedList, Some(ListType::TaxGradeA)),
            ("B", InfoKind::CreditGrade, None),
            ("M", InfoKind::CreditGrade, None),
            ("C", InfoKind::CreditGrade, None),
            ("D", InfoKind::DishonestyList, Some(ListType::TaxGradeD)),
        ] {
            let row = format!(
                "纳税信用等级,广州某某科技有限公司,{},国家税务总局广州市税务局,2023年度评价,2024-04-01,2025-03-31,{g},,,\n",
                uscc()
            );
            let (k, l, grade, amount, _) = run(row.as_bytes()).unwrap();
            assert_eq!(
                (k, l, grade.as_deref(), amount),
                (kind, list, Some(g), None)
            );
        }
    }

    #[test]
    fn table_of_rejections() {
        let mut bad = uscc();
        bad.replace_range(17.., if uscc().ends_with('0') { "1" } else { "0" });
        let good = violation(&uscc());
        let cases: Vec<(Vec<u8>, ReasonCode, Option<&str>)> = vec![
            (
                violation(&bad).into_bytes(),
                ReasonCode::InvalidUscc,
                Some("统一社会信用代码"),
            ),
            (
                good.replace("\"1,234,567.89\"", "12.345").into_bytes(),
                ReasonCode::InvalidAmount,
                Some("金额(元)"),
            ),
            (
                good.replace("\"1,234,567.89\"", "").into_bytes(),
                ReasonCode::MissingField,
                Some("金额(元)"),
            ),
            (
                good.replace("重大税收违法", "欠税公告").into_bytes(),
                ReasonCode::UnknownRecordType,
                Some("记录类型"),
            ),
            (
                good.replace("2020-06-01", "2020-06-31").into_bytes(),
                ReasonCode::InvalidDate,
                Some("认定日期"),
            ),
            (
                good.replace("2023-05-31", "2019-05-31").into_bytes(),
                ReasonCode::InvalidDate,
                Some("有效期至"),
            ),
            (
                good.as_bytes()[..40].to_vec(),
                ReasonCode::MalformedCsv,
                None,
            ),
            (
                format!("{good}{good}").into_bytes(),
                ReasonCode::MalformedCsv,
                None,
            ),
            (
                COLUMNS.join(",").into_bytes(),
                ReasonCode::MissingField,
                Some("data row after header"),
            ),
            (
                vec![0xff, 0xfe, 0xfd, b',', 0x81],
                ReasonCode::BadEncoding,
                None,
            ),
            (
                format!(
                    "纳税信用等级,某公司,{},税务局,2023年度,2024-04-01,,E,,,",
                    uscc()
                )
                .into_bytes(),
                ReasonCode::InvalidValue,
                Some("类别"),
            ),
        ];
        for (bytes, code, field) in cases {
            let e = run(&bytes).unwrap_err();
            assert_eq!(
                (e.code, e.field),
                (code, field),
                "{}: {e}",
                String::from_utf8_lossy(&bytes)
            );
        }
    }
}
