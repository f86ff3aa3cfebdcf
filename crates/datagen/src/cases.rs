//! Case tables with their expected verdicts, for unit tests and for end-to-end
//! tests through the broker: publish `value` to the department's inbound topic
//! and check the outcome against `expect`.
//!
//! * [`tax_csv`]: tax CSV headers (issue 16, class 2): reordered, extra,
//!   missing, aliased, duplicated and empty columns, units, encodings.
//! * [`guardrail`]: the guardrail's texts (issue 16, class 5), each wrapped
//!   into a market-regulation penalty record of a natural person and of a
//!   company ([`market_penalty`]), and into a court entry ([`court_entry`]).

use credit_core::ids;
use credit_core::reject::ReasonCode;

pub use credit_core::guardrail::cases::{Case as GuardrailCase, Expect as GuardrailExpect};

/// What the normaliser must do with a tax CSV case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CsvExpect {
    /// Normalised, with these facts (the fields a swapped column would break).
    Accepted {
        name: String,
        uscc: String,
        authority: String,
        amount_fen: Option<i64>,
        responsible_person: Option<String>,
        /// Header cells ignored (folded names, `""` for an empty cell), in order.
        unknown_columns: Vec<String>,
    },
    /// Dead-lettered with this reason (`credit-bus.reason`) and field
    /// (`credit-bus.field`).
    Rejected {
        reason: ReasonCode,
        field: Option<&'static str>,
    },
}

#[derive(Debug, Clone)]
pub struct CsvCase {
    pub name: &'static str,
    pub value: Vec<u8>,
    pub expect: CsvExpect,
}

/// The USCC every tax case uses (valid).
pub fn tax_uscc() -> String {
    ids::complete_uscc("9144010166400000").expect("16 valid characters")
}

const NAME: &str = "广州某某贸易有限公司";
const AUTHORITY: &str = "国家税务总局广州市天河区税务局";
const REP: &str = "陈某";

/// A violation row's cells under the documented names, in the documented order.
fn violation() -> Vec<(&'static str, String)> {
    vec![
        ("记录类型", "重大税收违法".into()),
        ("纳税人名称", NAME.into()),
        ("统一社会信用代码", tax_uscc()),
        ("主管税务机关", AUTHORITY.into()),
        ("文书编号", "穗天税稽罚〔2020〕88号".into()),
        ("认定日期", "2020-06-01".into()),
        ("有效期至", "2023-05-31".into()),
        ("类别", "虚开增值税专用发票".into()),
        ("金额(元)", "1234567.89".into()),
        ("法定代表人", REP.into()),
        ("违法事实", "虚开发票12份，价税合计123万元".into()),
    ]
}

fn grade() -> Vec<(&'static str, String)> {
    vec![
        ("记录类型", "纳税信用等级".into()),
        ("纳税人名称", NAME.into()),
        ("统一社会信用代码", tax_uscc()),
        ("主管税务机关", AUTHORITY.into()),
        ("文书编号", "2023年度评价".into()),
        ("认定日期", "2024-04-01".into()),
        ("有效期至", "2025-03-31".into()),
        ("类别", "D".into()),
    ]
}

fn quote(v: &str) -> String {
    if v.contains([',', '"', '\n']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_string()
    }
}

/// A header line and a data line from (header cell, value) pairs.
fn csv(cells: &[(&str, String)]) -> String {
    let head: Vec<String> = cells.iter().map(|(h, _)| quote(h)).collect();
    let data: Vec<String> = cells.iter().map(|(_, v)| quote(v)).collect();
    format!("{}\n{}\n", head.join(","), data.join(","))
}

fn rename(
    mut cells: Vec<(&'static str, String)>,
    from: &str,
    to: &'static str,
) -> Vec<(&'static str, String)> {
    for c in &mut cells {
        if c.0 == from {
            c.0 = to;
        }
    }
    cells
}

fn without(mut cells: Vec<(&'static str, String)>, col: &str) -> Vec<(&'static str, String)> {
    cells.retain(|c| c.0 != col);
    cells
}

fn ok(amount_fen: Option<i64>, unknown: &[&str]) -> CsvExpect {
    CsvExpect::Accepted {
        name: NAME.into(),
        uscc: tax_uscc(),
        authority: AUTHORITY.into(),
        amount_fen,
        responsible_person: Some(REP.into()),
        unknown_columns: unknown.iter().map(|s| s.to_string()).collect(),
    }
}

fn grade_ok(unknown: &[&str]) -> CsvExpect {
    CsvExpect::Accepted {
        name: NAME.into(),
        uscc: tax_uscc(),
        authority: AUTHORITY.into(),
        amount_fen: None,
        responsible_person: None,
        unknown_columns: unknown.iter().map(|s| s.to_string()).collect(),
    }
}

fn rejected(reason: ReasonCode, field: Option<&'static str>) -> CsvExpect {
    CsvExpect::Rejected { reason, field }
}

const FEN: Option<i64> = Some(123_456_789);

/// Every tax CSV header case.
pub fn tax_csv() -> Vec<CsvCase> {
    let v = violation;
    let mut reordered = v();
    reordered.rotate_left(3); // 主管税务机关 first
    let mut reversed = v();
    reversed.reverse();
    let mut middle = v();
    middle.insert(2, ("登记注册类型", "有限责任公司".into()));
    middle.insert(5, ("所属行业", "批发业".into()));
    let mut with_old_id = v();
    with_old_id.insert(3, ("纳税人识别号", "440106664000001".into()));
    let mut two_aliases = rename(v(), "统一社会信用代码", "纳税人识别号");
    two_aliases.insert(3, ("社会信用代码", tax_uscc()));
    let mut twice = v();
    twice.push(("统一社会信用代码", tax_uscc()));
    let mut empty_mid = v();
    empty_mid.insert(4, ("", "备用".into()));
    let mut shuffled_gbk = v();
    shuffled_gbk.swap(1, 3);
    shuffled_gbk.swap(8, 10);

    let aliases = rename(
        rename(
            rename(
                rename(v(), "统一社会信用代码", "纳税人识别号"),
                "纳税人名称",
                "企业名称",
            ),
            "法定代表人",
            "法定代表人（负责人）",
        ),
        "金额(元)",
        "金额（元）",
    );
    let aliases2 = rename(
        rename(
            rename(v(), "统一社会信用代码", "统一社会信用代码（纳税人识别号）"),
            "法定代表人",
            "法人代表",
        ),
        "主管税务机关",
        "税务机关",
    );
    let english = {
        let names = [
            "record_type",
            "taxpayer_name",
            "USCC",
            "tax_authority",
            "document_number",
            "decision_date",
            "valid_until",
            "category",
            "amount",
            "legal_representative",
            "facts",
        ];
        let mut c = v();
        for (cell, n) in c.iter_mut().zip(names) {
            cell.0 = n;
        }
        c
    };
    let spaced = rename(
        rename(
            rename(v(), "记录类型", " 记录类型 "),
            "纳税人名称",
            "纳税人名称\u{3000}",
        ),
        "金额(元)",
        "金额 【元】",
    );
    let wan = {
        let mut c = rename(v(), "金额(元)", "金额(万元)");
        c[8].1 = "123.456789".into();
        c
    };
    let wan_bad = {
        let mut c = rename(v(), "金额(元)", "金额(万元)");
        c[8].1 = "123.4567891".into();
        c
    };

    let mut cases = vec![
        CsvCase {
            name: "documented header in documented order",
            value: csv(&v()).into_bytes(),
            expect: ok(FEN, &[]),
        },
        CsvCase {
            name: "reordered columns (tax office first)",
            value: csv(&reordered).into_bytes(),
            expect: ok(FEN, &[]),
        },
        CsvCase {
            name: "columns in reverse order",
            value: csv(&reversed).into_bytes(),
            expect: ok(FEN, &[]),
        },
        CsvCase {
            name: "one extra trailing column",
            value: csv(&[v(), vec![("备注", "已移送公安".to_string())]].concat()).into_bytes(),
            expect: ok(FEN, &["备注"]),
        },
        CsvCase {
            name: "extra columns in the middle",
            value: csv(&middle).into_bytes(),
            expect: ok(FEN, &["登记注册类型", "所属行业"]),
        },
        CsvCase {
            name: "missing required column 统一社会信用代码",
            value: csv(&without(v(), "统一社会信用代码")).into_bytes(),
            expect: rejected(ReasonCode::MissingColumn, Some("统一社会信用代码")),
        },
        CsvCase {
            name: "missing required column 纳税人名称",
            value: csv(&without(v(), "纳税人名称")).into_bytes(),
            expect: rejected(ReasonCode::MissingColumn, Some("纳税人名称")),
        },
        CsvCase {
            name: "violation row under a header without 金额",
            value: csv(&without(v(), "金额(元)")).into_bytes(),
            expect: rejected(ReasonCode::MissingColumn, Some("金额(元)")),
        },
        CsvCase {
            name: "grade row under a header without 金额 and 违法事实",
            value: csv(&grade()).into_bytes(),
            expect: grade_ok(&[]),
        },
        CsvCase {
            name: "aliases 纳税人识别号, 企业名称, 法定代表人（负责人）, 金额（元）",
            value: csv(&aliases).into_bytes(),
            expect: ok(FEN, &[]),
        },
        CsvCase {
            name: "aliases 统一社会信用代码（纳税人识别号）, 法人代表, 税务机关",
            value: csv(&aliases2).into_bytes(),
            expect: ok(FEN, &[]),
        },
        CsvCase {
            name: "English header names",
            value: csv(&english).into_bytes(),
            expect: ok(FEN, &[]),
        },
        CsvCase {
            name: "header names with blanks, ideographic space and other brackets",
            value: csv(&spaced).into_bytes(),
            expect: ok(FEN, &[]),
        },
        CsvCase {
            name: "金额(万元): the header's unit applies",
            value: csv(&wan).into_bytes(),
            expect: ok(FEN, &[]),
        },
        CsvCase {
            name: "金额(万元) with more decimals than fen",
            value: csv(&wan_bad).into_bytes(),
            expect: rejected(ReasonCode::InvalidAmount, Some("金额(元)")),
        },
        CsvCase {
            name: "金额(美元): a unit the bus cannot take",
            value: csv(&rename(v(), "金额(元)", "金额(美元)")).into_bytes(),
            expect: rejected(ReasonCode::InvalidUnit, Some("金额(元)")),
        },
        CsvCase {
            name: "GBK header, shuffled",
            value: encoding_rs::GBK.encode(&csv(&shuffled_gbk)).0.into_owned(),
            expect: ok(FEN, &[]),
        },
        CsvCase {
            name: "UTF-8 BOM before the header, CRLF",
            value: format!("\u{FEFF}{}", csv(&reordered).replace('\n', "\r\n")).into_bytes(),
            expect: ok(FEN, &[]),
        },
        CsvCase {
            name: "duplicated column name",
            value: csv(&twice).into_bytes(),
            expect: rejected(ReasonCode::MalformedCsv, Some("统一社会信用代码")),
        },
        CsvCase {
            name: "two aliases of one column",
            value: csv(&two_aliases).into_bytes(),
            expect: rejected(ReasonCode::MalformedCsv, Some("统一社会信用代码")),
        },
        CsvCase {
            name: "documented name wins over an alias, which is ignored",
            value: csv(&with_old_id).into_bytes(),
            expect: ok(FEN, &["纳税人识别号"]),
        },
        CsvCase {
            name: "empty trailing header cell",
            value: csv(&[v(), vec![("", String::new())]].concat()).into_bytes(),
            expect: ok(FEN, &[""]),
        },
        CsvCase {
            name: "empty header cell in the middle",
            value: csv(&empty_mid).into_bytes(),
            expect: ok(FEN, &[""]),
        },
        CsvCase {
            name: "empty header cell where 纳税人名称 belongs",
            value: csv(&rename(v(), "纳税人名称", "")).into_bytes(),
            expect: rejected(ReasonCode::MissingColumn, Some("纳税人名称")),
        },
        CsvCase {
            name: "header only, no data row",
            value: csv(&v()).lines().next().unwrap_or("").as_bytes().to_vec(),
            expect: rejected(ReasonCode::MissingField, Some("data row after header")),
        },
        CsvCase {
            name: "data row shorter than its header",
            value: {
                let s = csv(&v());
                s.as_bytes()[..s.trim_end().rfind(',').unwrap_or(0)].to_vec()
            },
            expect: rejected(ReasonCode::MalformedCsv, None),
        },
        CsvCase {
            name: "two data rows after one header",
            value: {
                let s = csv(&v());
                let data = s.lines().nth(1).unwrap_or("").to_string();
                format!("{s}{data}\n").into_bytes()
            },
            expect: rejected(ReasonCode::MalformedCsv, None),
        },
        CsvCase {
            name: "quoted header and quoted amount with thousands separators",
            value: {
                let mut c = reordered.clone();
                for cell in &mut c {
                    if cell.0 == "金额(元)" {
                        cell.1 = "1,234,567.89".into();
                    }
                }
                let head: Vec<String> = c.iter().map(|(h, _)| format!("\"{h}\"")).collect();
                let data: Vec<String> = c.iter().map(|(_, v)| quote(v)).collect();
                format!("{}\r\n{}\r\n", head.join(","), data.join(",")).into_bytes()
            },
            expect: ok(FEN, &[]),
        },
    ];

    // Without a header: the documented positional layout.
    let positional: Vec<String> = v().into_iter().map(|(_, x)| quote(&x)).collect();
    let row = positional.join(",");
    cases.extend([
        CsvCase {
            name: "headerless row in documented order",
            value: format!("{row}\n").into_bytes(),
            expect: ok(FEN, &[]),
        },
        CsvCase {
            name: "headerless row ending in a comma",
            value: format!("{row},\n").into_bytes(),
            expect: ok(FEN, &[]),
        },
        CsvCase {
            name: "headerless row with an extra value",
            value: format!("{row},已移送公安\n").into_bytes(),
            expect: rejected(ReasonCode::MalformedCsv, None),
        },
        CsvCase {
            name: "headerless GBK row whose facts cell reads like a column name",
            value: encoding_rs::GBK
                .encode(&format!("{},违法事实\n", positional[..10].join(",")))
                .0
                .into_owned(),
            expect: ok(FEN, &[]),
        },
    ]);
    cases
}

/// JSON string contents for `s`.
fn json_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o
}

/// The guardrail's case table.
pub fn guardrail() -> Vec<GuardrailCase> {
    credit_core::guardrail::cases::all()
}

/// A market-regulation penalty decision stating `conduct` as the offence
/// (`CF_WFXW`), for a natural person (`natural`) or a company. A natural
/// person's record is rejected with `guardrail_minor_behaviour`, field
/// `CF_WFXW`, exactly when the case expects `Block`; a company's is accepted.
pub fn market_penalty(conduct: &str, natural: bool, seq: u32) -> Vec<u8> {
    let (lb, key_field, key, name) = if natural {
        (
            "自然人",
            "CF_XDR_ZJHM",
            ids::complete_resident_id("44010619800101123").expect("17 digits"),
            "陈某某",
        )
    } else {
        ("法人及非法人组织", "CF_XDR_SHXYM", tax_uscc(), NAME)
    };
    let c = json_str(conduct);
    format!(
        r#"{{"recordType":"CF","CF_WSH":"穗市监处罚〔2024〕{seq}号","CF_WFXW":"{c}","CF_YJ":"《中华人民共和国行政处罚法》","CF_CFLB":"罚款","CF_NR_FK":"0.02","CF_XDR_MC":"{name}","CF_XDR_LB":"{lb}","{key_field}":"{key}","CF_JDRQ":"2024-03-01","CF_YXQ":"2025-03-01","CF_CFJG":"广州市市场监督管理局"}}"#
    )
    .into_bytes()
}

/// A court's judgement-defaulter entry of a natural person whose duty (the
/// judgement's debt) is `duty` and whose listed conduct is `conduct`. The
/// guardrail judges the conduct only: an entry with a statutory conduct is
/// accepted whatever the duty says.
pub fn court_entry(duty: &str, conduct: &str, seq: u32) -> Vec<u8> {
    let card = ids::complete_resident_id("44010619800101123").expect("17 digits");
    format!(
        r#"{{"iname":"陈某某","caseCode":"(2023)粤0106执{seq}号","cardNum":"{card}","courtName":"广州市天河区人民法院","partyTypeName":"自然人","regDate":"2023年03月02日","duty":"{}","performance":"全部未履行","disruptTypeName":"{}","publishDate":"2023年05月12日"}}"#,
        json_str(duty),
        json_str(conduct)
    )
    .into_bytes()
}
