//! Tax: parties to major tax violations (重大税收违法失信主体) and taxpayer credit
//! grades A/B/M/C/D, one CSV row per message, in UTF-8 (with or without BOM) or
//! GBK/GB18030 as the bureau's exports come. The documented columns, in order:
//!
//! `记录类型, 纳税人名称, 统一社会信用代码, 主管税务机关, 文书编号, 认定日期, 有效期至,
//! 类别, 金额(元), 法定代表人, 违法事实`
//!
//! `记录类型` is `重大税收违法` (类别 = case type, 金额 = tax involved) or `纳税信用等级`
//! (类别 = grade A/B/M/C/D).
//!
//! A message may start with a header row (a row with at least two cells that
//! are known column names); then columns are mapped **by name**: in any order,
//! under the names departments use ([`ALIASES`]), folded for width, brackets,
//! blanks, BOM and case; a unit in the amount's header (`金额(万元)`) sets the
//! amount's unit; unknown columns are ignored and reported in
//! [`Findings::unknown_columns`]. Without a header the documented order applies.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::LazyLock;

use credit_core::amount;
use credit_core::codes::{self, Legacy};
use credit_core::record::{
    Context, CreditRecord, InfoKind, ListType, Severity, Subject, SubjectType, check_period,
};
use credit_core::reject::{ReasonCode, Rejection};
use credit_core::text;
use csv_core::{ReadRecordResult, Reader};

use super::{Findings, check_document_number, optional, optional_date, required, required_date};

/// The fields, by their documented names, in the documented (headerless) order.
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
const RECORD_TYPE: usize = 0;
const NAME: usize = 1;
const USCC: usize = 2;
const AUTHORITY: usize = 3;
const DOC_NO: usize = 4;
const DECIDED: usize = 5;
const VALID_UNTIL: usize = 6;
const CATEGORY: usize = 7;
const AMOUNT: usize = 8;
const REPRESENTATIVE: usize = 9;
const FACTS: usize = 10;

/// Columns every header must have; 金额 and 违法事实 are required of violation
/// rows only, so a grade-only export may leave them out.
const REQUIRED: [usize; 7] = [
    RECORD_TYPE,
    NAME,
    USCC,
    AUTHORITY,
    DOC_NO,
    DECIDED,
    CATEGORY,
];

/// Header names per field, folded as [`text::header_name`] folds a cell, the
/// documented name first. The amount's names are [`AMOUNT_NAMES`] with a unit.
pub const ALIASES: [&[&str]; 11] = [
    &["记录类型", "record_type", "信息类型", "数据类型"],
    &[
        "纳税人名称",
        "企业名称",
        "单位名称",
        "纳税人",
        "taxpayer_name",
    ],
    &[
        "统一社会信用代码",
        "社会信用代码",
        "纳税人识别号",
        "统一社会信用代码(纳税人识别号)",
        "纳税人识别号(统一社会信用代码)",
        "统一社会信用代码/纳税人识别号",
        "uscc",
    ],
    &[
        "主管税务机关",
        "税务机关",
        "认定机关",
        "主管税务机关名称",
        "tax_authority",
    ],
    &[
        "文书编号",
        "文书号",
        "决定书文号",
        "文号",
        "document_number",
    ],
    &[
        "认定日期",
        "认定时间",
        "评定日期",
        "列入日期",
        "decision_date",
    ],
    &[
        "有效期至",
        "有效期截止日期",
        "有效截止日期",
        "截止日期",
        "valid_until",
    ],
    &[
        "类别",
        "案件性质",
        "违法类型",
        "信用等级",
        "案件类别",
        "category",
    ],
    &[],
    &[
        "法定代表人",
        "法定代表人(负责人)",
        "法人代表",
        "负责人",
        "法定代表人姓名",
        "legal_representative",
    ],
    &["违法事实", "主要违法事实", "案件事实", "失信事实", "facts"],
];

/// Names of the amount column, each alone (yuan) or followed by `(unit)`.
pub const AMOUNT_NAMES: [&str; 4] = ["金额", "涉案金额", "涉税金额", "amount"];

/// Units an amount header may name: the amount column's unit.
pub const AMOUNT_UNITS: [(&str, amount::Unit); 5] = [
    ("元", amount::YUAN),
    ("人民币元", amount::YUAN),
    ("yuan", amount::YUAN),
    ("万元", amount::WAN_YUAN),
    ("人民币万元", amount::WAN_YUAN),
];

pub const VIOLATION: &str = "重大税收违法";
pub const GRADE: &str = "纳税信用等级";

/// At most this many cells per row: real exports carry a few extra columns.
const MAX_FIELDS: usize = 64;

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

/// What one header cell names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cell {
    Field {
        field: usize,
        /// Under its documented name (not an alias).
        documented: bool,
        /// The amount's unit, for the amount column.
        unit: amount::Unit,
    },
    /// An amount column in a unit the bus cannot take.
    BadUnit,
    Unknown,
}

/// Folded header name → (field, documented).
static NAMES: LazyLock<HashMap<&'static str, (usize, bool)>> = LazyLock::new(|| {
    let mut m = HashMap::new();
    for (field, names) in ALIASES.iter().enumerate() {
        for (i, n) in names.iter().enumerate() {
            m.insert(*n, (field, i == 0));
        }
    }
    m
});

/// Classifies a header cell already folded into `name`.
fn classify(name: &str) -> Cell {
    if let Some(&(field, documented)) = NAMES.get(name) {
        return Cell::Field {
            field,
            documented,
            unit: amount::YUAN,
        };
    }
    for base in AMOUNT_NAMES {
        let Some(rest) = name.strip_prefix(base) else {
            continue;
        };
        if rest.is_empty() {
            return Cell::Field {
                field: AMOUNT,
                documented: false,
                unit: amount::YUAN,
            };
        }
        if let Some(unit) = rest.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
            return match AMOUNT_UNITS.iter().find(|(u, _)| *u == unit) {
                Some(&(u, exp)) => Cell::Field {
                    field: AMOUNT,
                    documented: base == "金额" && u == "元",
                    unit: exp,
                },
                None => Cell::BadUnit,
            };
        }
    }
    Cell::Unknown
}

thread_local! {
    static NAME_BUF: std::cell::RefCell<String> = std::cell::RefCell::new(String::with_capacity(64));
}

/// Whether a row is a header: at least two of its cells are known column
/// names. Values never are (record types, names, codes, dates, amounts), and
/// cells with digits or longer than any name are skipped without folding, so
/// a data row costs little here.
fn is_header(cells: &[&str]) -> bool {
    NAME_BUF.with_borrow_mut(|buf| {
        cells
            .iter()
            .filter(|c| c.len() <= 96 && !c.bytes().any(|b| b.is_ascii_digit()))
            .filter(|c| {
                text::header_name_into(c, buf);
                classify(buf) != Cell::Unknown
            })
            .nth(1)
            .is_some()
    })
}

/// Where each field is in a data row, and the amount's unit.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Layout {
    at: [Option<usize>; 11],
    /// Cells a row has under this layout.
    width: usize,
    unit: amount::Unit,
    headed: bool,
}

const POSITIONAL: Layout = Layout {
    at: [
        Some(0),
        Some(1),
        Some(2),
        Some(3),
        Some(4),
        Some(5),
        Some(6),
        Some(7),
        Some(8),
        Some(9),
        Some(10),
    ],
    width: 11,
    unit: amount::YUAN,
    headed: false,
};

impl Layout {
    /// Maps a header's cells to fields. Two cells naming one field are
    /// rejected, except that a cell under the documented name wins over one
    /// under an alias (e.g. `统一社会信用代码` next to `纳税人识别号`), which is then
    /// ignored like an unknown column.
    fn from_header(cells: &[&str], findings: &mut Findings) -> Result<Layout, Rejection> {
        let mut at: [Option<usize>; 11] = [None; 11];
        let mut documented = [false; 11];
        let mut unit = amount::YUAN;
        let names: Vec<String> = cells.iter().map(|c| text::header_name(c)).collect();
        for (j, name) in names.iter().enumerate() {
            match classify(name) {
                Cell::Field {
                    field,
                    documented: d,
                    unit: u,
                } => match at[field] {
                    None => {
                        at[field] = Some(j);
                        documented[field] = d;
                        if field == AMOUNT {
                            unit = u;
                        }
                    }
                    Some(prev) if d && !documented[field] => {
                        findings.unknown_columns.push(names[prev].clone());
                        at[field] = Some(j);
                        documented[field] = true;
                        if field == AMOUNT {
                            unit = u;
                        }
                    }
                    Some(_) if !d && documented[field] => {
                        findings.unknown_columns.push(name.clone());
                    }
                    Some(prev) => {
                        return Err(Rejection::new(
                            ReasonCode::MalformedCsv,
                            Some(COLUMNS[field]),
                            format!(
                                "header names {} twice: column {} ({:?}) and column {} ({:?}); keep one",
                                COLUMNS[field],
                                prev + 1,
                                names[prev],
                                j + 1,
                                name
                            ),
                        ));
                    }
                },
                Cell::BadUnit => {
                    return Err(Rejection::new(
                        ReasonCode::InvalidUnit,
                        Some(COLUMNS[AMOUNT]),
                        format!(
                            "header {name:?} names a unit other than 元 or 万元 for the amount"
                        ),
                    ));
                }
                Cell::Unknown => findings.unknown_columns.push(name.clone()),
            }
        }
        if let Some(&first) = REQUIRED.iter().find(|f| at[**f].is_none()) {
            let missing: Vec<&str> = REQUIRED
                .iter()
                .filter(|f| at[**f].is_none())
                .map(|f| COLUMNS[*f])
                .collect();
            return Err(missing_column(first, &missing));
        }
        Ok(Layout {
            at,
            width: cells.len(),
            unit,
            headed: true,
        })
    }

    /// The field's cell in `row`, `None` when the header has no such column.
    fn cell<'r>(&self, row: &[&'r str], field: usize) -> Option<&'r str> {
        self.at[field].map(|j| row[j])
    }

    /// A row has exactly the layout's cells; extra trailing cells are
    /// tolerated only when empty (exports often end rows with a comma).
    fn check_width(&self, row: &[&str]) -> Result<(), Rejection> {
        let w = self.width;
        if row.len() >= w && row[w..].iter().all(|c| c.trim().is_empty()) {
            return Ok(());
        }
        Err(csv_err(if self.headed {
            format!("data row has {} fields, its header {w}", row.len())
        } else {
            format!("expected {w} columns, got {}", row.len())
        }))
    }

    /// Rejects a violation row whose header lacks a column violations need.
    fn require(&self, field: usize) -> Result<(), Rejection> {
        match self.at[field] {
            Some(_) => Ok(()),
            None => Err(missing_column(field, &[COLUMNS[field]])),
        }
    }
}

fn missing_column(field: usize, all: &[&str]) -> Rejection {
    let aliases = ALIASES[field]
        .iter()
        .skip(1)
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    Rejection::new(
        ReasonCode::MissingColumn,
        Some(COLUMNS[field]),
        format!(
            "header has no column for {} (nor {}); missing: {}",
            COLUMNS[field],
            if field == AMOUNT {
                "金额, 金额(万元), 涉案金额, 涉税金额".to_string()
            } else {
                aliases
            },
            all.join(", ")
        ),
    )
}

/// Field boundaries of one CSV record read from `input`.
struct Row {
    ends: [usize; MAX_FIELDS],
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
        ends: [0; MAX_FIELDS],
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
        ReadRecordResult::OutputEndsFull => Err(csv_err(format!("more than {MAX_FIELDS} fields"))),
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

#[cfg(test)]
pub(super) fn normalise<R>(
    ctx: &Context<'_>,
    value: &[u8],
    f: impl FnOnce(&CreditRecord<'_>) -> R,
) -> Result<R, Rejection> {
    normalise_with(ctx, value, &mut Findings::default(), f)
}

pub(super) fn normalise_with<R>(
    ctx: &Context<'_>,
    value: &[u8],
    findings: &mut Findings,
    f: impl FnOnce(&CreditRecord<'_>) -> R,
) -> Result<R, Rejection> {
    let mut text = decode(value)?;
    // Most exports quote nothing: then a row is its fields, split in place.
    if !text.contains('"') {
        let (header, data) = plain_rows(&text)?;
        let layout = layout(header.as_deref(), findings)?;
        return from_columns(ctx, &layout, &data, f);
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
        let (header, data) = quoted_rows(input, rdr, &mut out)?;
        let layout = layout(header.as_deref(), findings)?;
        from_columns(ctx, &layout, &data, f)
    })
}

fn layout(header: Option<&[&str]>, findings: &mut Findings) -> Result<Layout, Rejection> {
    match header {
        None => Ok(POSITIONAL),
        Some(h) => Layout::from_header(h, findings),
    }
}

fn split_cells(line: &str) -> Result<Vec<&str>, Rejection> {
    let cells: Vec<&str> = line.split(',').collect();
    if cells.len() > MAX_FIELDS {
        return Err(csv_err(format!("more than {MAX_FIELDS} fields")));
    }
    Ok(cells)
}

/// The optional header and the data row of a message without quotes: blank
/// lines ignored, exactly one data row.
type Rows<'a> = (Option<Vec<&'a str>>, Vec<&'a str>);

fn plain_rows(text: &str) -> Result<Rows<'_>, Rejection> {
    let mut lines = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .filter(|l| !l.trim().is_empty());
    let first = split_cells(lines.next().ok_or_else(|| csv_err("no row"))?)?;
    let rows = if is_header(&first) {
        let data = lines
            .next()
            .ok_or_else(|| Rejection::missing("data row after header"))?;
        (Some(first), split_cells(data)?)
    } else {
        (None, first)
    };
    if lines.next().is_some() {
        return Err(csv_err(MORE_THAN_ONE_ROW));
    }
    Ok(rows)
}

const MORE_THAN_ONE_ROW: &str = "more than one data row in one message; publish one row per record";

/// The optional header and the data row of a message with quoted fields, read
/// by csv-core into `out` (the header's fields first, the data row's after them).
fn quoted_rows<'o>(
    input: &[u8],
    rdr: &mut Reader,
    out: &'o mut [u8],
) -> Result<Rows<'o>, Rejection> {
    let (row, mut used) = read_row(rdr, input, out)?.ok_or_else(|| csv_err("no row"))?;
    let written = row.ends[..row.n].last().copied().unwrap_or(0);
    let (first_out, rest_out) = out.split_at_mut(written);
    let first = fields(&row, first_out)?;
    let rows = if is_header(&first) {
        let next = read_row(rdr, &input[used..], rest_out)?;
        let (r2, u2) = next.ok_or_else(|| Rejection::missing("data row after header"))?;
        used += u2;
        (Some(first), fields(&r2, rest_out)?)
    } else {
        (None, first)
    };
    // One record per message: anything after the data row other than blank lines is an error.
    if input[used..].iter().any(|b| !b.is_ascii_whitespace()) {
        return Err(csv_err(MORE_THAN_ONE_ROW));
    }
    Ok(rows)
}

fn from_columns<R>(
    ctx: &Context<'_>,
    layout: &Layout,
    cols: &[&str],
    f: impl FnOnce(&CreditRecord<'_>) -> R,
) -> Result<R, Rejection> {
    layout.check_width(cols)?;
    let cell = |i: usize| layout.cell(cols, i);
    let col = |i: usize| cell(i).map(Cow::Borrowed);

    let record_type = required(COLUMNS[RECORD_TYPE], col(RECORD_TYPE))?;
    let name = required(COLUMNS[NAME], col(NAME))?;
    let uscc = required(COLUMNS[USCC], col(USCC))?;
    // A pre-2015 registration number is kept (flagged): the row names the
    // taxpayer and its district tax bureau (主管税务机关), which is enough for
    // the archive to find the taxpayer's USCC.
    let (uscc, mut corrections) = codes::subject_key(
        SubjectType::LegalPerson,
        uscc,
        COLUMNS[USCC],
        ctx.today,
        Legacy::Keep,
    )?;
    let authority = required(COLUMNS[AUTHORITY], col(AUTHORITY))?;
    let doc_no = required(COLUMNS[DOC_NO], col(DOC_NO))?;
    let decided = required_date(COLUMNS[DECIDED], cell(DECIDED))?;
    let valid_until = optional_date(COLUMNS[VALID_UNTIL], cell(VALID_UNTIL))?;
    check_period(decided, valid_until, COLUMNS[VALID_UNTIL])?;
    let category = required(COLUMNS[CATEGORY], col(CATEGORY))?;

    let (info_kind, list_type, grade, severity, amount_fen, conduct) = match record_type.as_ref() {
        VIOLATION => {
            check_document_number(COLUMNS[DOC_NO], &doc_no)?;
            layout.require(AMOUNT)?;
            layout.require(FACTS)?;
            let amount = required(COLUMNS[AMOUNT], col(AMOUNT))?;
            // The field's unit is the header's (金额(万元)), yuan without a
            // header; a unit written in the value itself is converted.
            let (fen, c) = amount::field_amount(COLUMNS[AMOUNT], &amount, layout.unit)?;
            corrections.extend(c);
            let facts = required(COLUMNS[FACTS], col(FACTS))?;
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
                        COLUMNS[CATEGORY],
                        format!("grade {other:?} is not A, B, M, C or D"),
                    ));
                }
            };
            let conduct = optional(col(FACTS)).unwrap_or(Cow::Borrowed(""));
            (info, list, Some(category.clone()), sev, None, conduct)
        }
        other => {
            return Err(Rejection::new(
                ReasonCode::UnknownRecordType,
                Some(COLUMNS[RECORD_TYPE]),
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
        responsible_person: optional(col(REPRESENTATIVE)),
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
    use proptest::prelude::*;

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

    /// Every header case of `credit_datagen::cases::tax_csv` gets its verdict,
    /// and an accepted record has every field from its own column.
    #[test]
    fn header_case_table() {
        use credit_datagen::cases::{CsvExpect, tax_csv};
        let cases = tax_csv();
        assert!(cases.len() >= 30, "{}", cases.len());
        let mut wrong = Vec::new();
        for case in cases {
            let mut findings = Findings::default();
            let got = normalise_with(&ctx("tax"), &case.value, &mut findings, |r| {
                (
                    r.subject.name.to_string(),
                    r.subject.key.to_string(),
                    r.attributes
                        .iter()
                        .find(|(k, _)| *k == "tax_authority")
                        .map(|(_, v)| v.to_string())
                        .unwrap_or_default(),
                    r.amount_fen,
                    r.responsible_person.as_deref().map(str::to_string),
                )
            });
            let got = match got {
                Ok((name, uscc, authority, amount_fen, responsible_person)) => {
                    CsvExpect::Accepted {
                        name,
                        uscc,
                        authority,
                        amount_fen,
                        responsible_person,
                        unknown_columns: findings.unknown_columns.clone(),
                    }
                }
                Err(e) => CsvExpect::Rejected {
                    reason: e.code,
                    field: e.field,
                },
            };
            if got != case.expect {
                wrong.push(format!(
                    "{}: expected {:?}, got {got:?}",
                    case.name, case.expect
                ));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn rejections_name_the_column_and_its_aliases() {
        let header = COLUMNS
            .iter()
            .filter(|c| **c != "统一社会信用代码" && **c != "文书编号")
            .copied()
            .collect::<Vec<_>>()
            .join(",");
        let e = run(
            format!("{header}\n重大税收违法,某公司,税务局,2020-06-01,,类,1,,事实\n").as_bytes(),
        )
        .unwrap_err();
        assert_eq!(e.code, ReasonCode::MissingColumn);
        assert!(e.detail.contains("纳税人识别号"), "{e}");
        assert!(e.detail.contains("统一社会信用代码, 文书编号"), "{e}");
        let twice = format!("{},记录类型\n", COLUMNS.join(","));
        let e = run(format!("{twice}{}", violation(&uscc())).as_bytes()).unwrap_err();
        assert_eq!(
            (e.code, e.field),
            (ReasonCode::MalformedCsv, Some("记录类型"))
        );
        assert!(
            e.detail.contains("column 1") && e.detail.contains("column 12"),
            "{e}"
        );
    }

    #[test]
    fn aliases_are_written_folded_and_name_one_field_each() {
        let mut seen = std::collections::HashSet::new();
        for (field, names) in ALIASES.iter().enumerate() {
            if field != AMOUNT {
                assert_eq!(names[0], COLUMNS[field]);
            }
            for n in *names {
                assert_eq!(text::header_name(n), *n, "{n}");
                assert!(seen.insert(*n), "{n} names two fields");
                assert!(
                    !matches!(*n, VIOLATION | GRADE),
                    "{n} is a record type value"
                );
            }
        }
        assert_eq!(
            classify("金额(元)"),
            Cell::Field {
                field: AMOUNT,
                documented: true,
                unit: amount::YUAN
            }
        );
    }

    proptest! {
        /// Any permutation of the documented columns, with or without an unknown
        /// column inserted anywhere, gives the record the documented order gives.
        #[test]
        fn any_column_order_gives_the_same_record(
            perm in proptest::sample::subsequence((0..11usize).collect::<Vec<_>>(), 11).prop_shuffle(),
            extra_at in 0usize..12,
            extra in proptest::bool::ANY,
            gbk in proptest::bool::ANY,
        ) {
            let row = violation(&uscc());
            let mut cells: Vec<String> = Vec::new();
            let mut rdr = csv_core::Reader::new();
            let mut out = vec![0u8; row.len()];
            let (r, _) = read_row(&mut rdr, row.as_bytes(), &mut out).unwrap().unwrap();
            for c in fields(&r, &out).unwrap() {
                cells.push(c.to_string());
            }
            let q = |v: &str| if v.contains(',') { format!("\"{v}\"") } else { v.to_string() };
            let mut head: Vec<String> = perm.iter().map(|i| COLUMNS[*i].to_string()).collect();
            let mut data: Vec<String> = perm.iter().map(|i| q(&cells[*i])).collect();
            if extra {
                head.insert(extra_at.min(head.len()), "备注".into());
                data.insert(extra_at.min(data.len()), "无".into());
            }
            let text = format!("{}\n{}\n", head.join(","), data.join(","));
            let bytes = if gbk { encoding_rs::GBK.encode(&text).0.into_owned() } else { text.into_bytes() };
            prop_assert_eq!(run(&bytes).unwrap(), run(row.as_bytes()).unwrap());
        }
    }
}
