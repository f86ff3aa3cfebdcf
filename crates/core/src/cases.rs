//! Tables of real-looking field values and what the bus must do with each:
//! accept (as which canonical value, with which [`Correction`]s) or reject (with
//! which [`ReasonCode`]). One table per class of issue 16, shared by
//!
//! * the unit tests of [`crate::amount`] and [`crate::codes`] (below and there),
//! * every adapter's tests (`services/normaliser/src/adapters/mod.rs` puts each
//!   value into each department's native format through
//!   `credit_datagen::fields`),
//! * and the end-to-end tests through a real broker, which can iterate the
//!   same tables.
//!
//! Codes come from the shapes of DOMAIN.md and the seed (Guangzhou divisions,
//! 91/92/93 market-regulation codes, court and tax records), GB 32100's table,
//! GB 11643's examples and GB/T 2260's history; their check characters were
//! computed, and the tests prove every value is what its note says.

use crate::amount::Unit;
use crate::correction::Correction;
use crate::reject::ReasonCode;

/// What the bus must do with an amount, read in its field's unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AmountVerdict {
    /// Accepted as `fen`; `converted`: the text named a unit other than the
    /// field's ([`Correction::AmountUnitConverted`]); `fullwidth`: full-width
    /// digits or punctuation were read ([`Correction::FullwidthNormalised`]).
    Fen {
        fen: i64,
        converted: bool,
        fullwidth: bool,
    },
    /// Rejected: `InvalidAmount` (the number) or `InvalidUnit` (the unit).
    Rejected(ReasonCode),
}

impl AmountVerdict {
    /// The corrections an accepted record carries for this amount.
    pub fn corrections(self) -> Vec<Correction> {
        match self {
            AmountVerdict::Fen {
                converted,
                fullwidth,
                ..
            } => {
                let mut v = Vec::new();
                if fullwidth {
                    v.push(Correction::FullwidthNormalised);
                }
                if converted {
                    v.push(Correction::AmountUnitConverted);
                }
                v
            }
            AmountVerdict::Rejected(_) => Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct AmountCase {
    /// The field's value exactly as the department writes it.
    pub raw: &'static str,
    /// The unit the field is documented in (tax `金额(元)`: 元; market `CF_NR_FK`: 万元).
    pub field_unit: Unit,
    pub expect: AmountVerdict,
    pub note: &'static str,
}

const fn fen(fen: i64) -> AmountVerdict {
    AmountVerdict::Fen {
        fen,
        converted: false,
        fullwidth: false,
    }
}
const fn converted(fen: i64) -> AmountVerdict {
    AmountVerdict::Fen {
        fen,
        converted: true,
        fullwidth: false,
    }
}
const fn fullwidth(fen: i64, converted: bool) -> AmountVerdict {
    AmountVerdict::Fen {
        fen,
        converted,
        fullwidth: true,
    }
}
const BAD_AMOUNT: AmountVerdict = AmountVerdict::Rejected(ReasonCode::InvalidAmount);
const BAD_UNIT: AmountVerdict = AmountVerdict::Rejected(ReasonCode::InvalidUnit);

const fn amount(
    raw: &'static str,
    field_unit: Unit,
    expect: AmountVerdict,
    note: &'static str,
) -> AmountCase {
    AmountCase {
        raw,
        field_unit,
        expect,
        note,
    }
}

use Unit::{WanYuan as WAN, Yuan as YUAN};

/// Amount spellings, in the two field units the adapters have.
pub const AMOUNTS: &[AmountCase] = &[
    // The field's own unit, written or not.
    amount("1234567.89", YUAN, fen(123_456_789), "plain yuan"),
    amount(
        "1,234,567.89",
        YUAN,
        fen(123_456_789),
        "thousands separators",
    ),
    amount(
        "1，234，567.89",
        YUAN,
        fullwidth(123_456_789, false),
        "full-width commas from a Chinese input method",
    ),
    amount(
        "１２３．４５",
        YUAN,
        fullwidth(12_345, false),
        "full-width digits and point",
    ),
    amount(
        "１，２３４．５０元",
        YUAN,
        fullwidth(123_450, false),
        "all full-width, with 元",
    ),
    amount("3元", YUAN, fen(300), "元 in a 元 field"),
    amount("3 元", YUAN, fen(300), "space before the unit"),
    amount(
        "人民币120000元",
        YUAN,
        fen(12_000_000),
        "人民币 prefix, as court duties are written",
    ),
    amount("人民币：5,000元", YUAN, fen(500_000), "人民币 with a colon"),
    amount("RMB 1,000.00", YUAN, fen(100_000), "RMB prefix"),
    amount("rmb1000", YUAN, fen(100_000), "lower-case rmb"),
    amount("CNY 88.8", YUAN, fen(8_880), "CNY prefix"),
    amount("¥1,288.00", YUAN, fen(128_800), "yen sign (half-width)"),
    amount("￥1,288.00", YUAN, fen(128_800), "yuan sign (full-width)"),
    amount("5000元人民币", YUAN, fen(500_000), "人民币 after the unit"),
    amount("5000 RMB", YUAN, fen(500_000), "RMB suffix"),
    amount(
        "12,000元整",
        YUAN,
        fen(1_200_000),
        "整 as on a decision document",
    ),
    amount("100圆", YUAN, fen(10_000), "圆, the formal character"),
    amount(
        "0.85",
        WAN,
        fen(850_000),
        "plain 万元, the double-publicity unit",
    ),
    amount("0.850000", WAN, fen(850_000), "trailing zeros are exact"),
    amount(
        "12.3400元",
        YUAN,
        fen(1_234),
        "trailing zeros beyond the fen are exact",
    ),
    amount("0.85万元", WAN, fen(850_000), "万元 in a 万元 field"),
    amount("5.", YUAN, fen(500), "trailing point"),
    amount("007", YUAN, fen(700), "leading zeros"),
    amount("0", YUAN, fen(0), "zero"),
    // An explicit unit that differs from the field's: converted, flagged.
    amount(
        "12,345.67元",
        WAN,
        converted(1_234_567),
        "the bug: 元 in a 万元 field is not x10,000",
    ),
    amount("8500元", WAN, converted(850_000), "元 in a 万元 field"),
    amount(
        "１２３４５．６７元",
        WAN,
        fullwidth(1_234_567, true),
        "full-width 元 amount in a 万元 field",
    ),
    amount("1.5万元", YUAN, converted(1_500_000), "万元 in a 元 field"),
    amount("1.5万", YUAN, converted(1_500_000), "万 alone"),
    amount("3千元", YUAN, converted(300_000), "千元"),
    amount(
        "2.5百万元",
        YUAN,
        converted(250_000_000),
        "百万元, as in financial statements",
    ),
    amount(
        "182.28亿元",
        WAN,
        converted(1_822_800_000_000),
        "亿元: the largest fines",
    ),
    amount("1亿", YUAN, converted(10_000_000_000), "亿 alone"),
    amount(
        "人民币12万元",
        YUAN,
        converted(12_000_000),
        "prefix and 万元",
    ),
    amount("0.000001万元", YUAN, converted(1), "one fen in 万元"),
    amount(
        "9,223,372,036,854,775.807元",
        YUAN,
        BAD_AMOUNT,
        "more than i64 fen, and sub-fen digits",
    ),
    // Rejected: the number.
    amount(
        "12.345",
        YUAN,
        BAD_AMOUNT,
        "a tenth of a fen: rejected, not rounded",
    ),
    amount(
        "12.345元",
        WAN,
        BAD_AMOUNT,
        "sub-fen in an explicit 元 amount",
    ),
    amount("0.0000001万元", WAN, BAD_AMOUNT, "a tenth of a fen in 万元"),
    amount("-1", YUAN, BAD_AMOUNT, "negative"),
    amount("－100元", YUAN, BAD_AMOUNT, "negative, full-width minus"),
    amount(".5", YUAN, BAD_AMOUNT, "no integer digit"),
    amount(
        "1,23",
        YUAN,
        BAD_AMOUNT,
        "European decimal comma: ambiguous",
    ),
    amount("12,3456.00", YUAN, BAD_AMOUNT, "groups of four"),
    amount("1 234", YUAN, BAD_AMOUNT, "a space inside the number"),
    amount("12.34.56", YUAN, BAD_AMOUNT, "two decimal points"),
    amount("1.2E5", YUAN, BAD_AMOUNT, "scientific notation"),
    amount("12万5千元", YUAN, BAD_AMOUNT, "mixed units"),
    amount(
        "壹万元整",
        YUAN,
        BAD_AMOUNT,
        "Chinese capital numerals are not read",
    ),
    amount("元", YUAN, BAD_AMOUNT, "a unit without a number"),
    amount("99999999999999999999", YUAN, BAD_AMOUNT, "overflow"),
    amount(
        "922337203685477.58",
        WAN,
        BAD_AMOUNT,
        "overflow after scaling to fen",
    ),
    // Rejected: the unit.
    amount("1,000美元", WAN, BAD_UNIT, "US dollars: no currency field"),
    amount("USD 1,000", YUAN, BAD_UNIT, "USD prefix"),
    amount("$500", YUAN, BAD_UNIT, "dollar sign"),
    amount("500 HKD", YUAN, BAD_UNIT, "HKD suffix"),
    amount("3000港元", YUAN, BAD_UNIT, "Hong Kong dollars"),
    amount("2万美元", YUAN, BAD_UNIT, "ten thousands of US dollars"),
    amount("€200", YUAN, BAD_UNIT, "euro sign"),
    amount(
        "5角",
        YUAN,
        BAD_UNIT,
        "角: not a unit fines or tax are stated in",
    ),
    amount("12分", YUAN, BAD_UNIT, "分: more likely a score"),
    amount("30吨", YUAN, BAD_UNIT, "not money"),
    amount("15%", YUAN, BAD_UNIT, "a rate, not money"),
    amount(
        "200元/吨",
        YUAN,
        BAD_UNIT,
        "a price per unit, not an amount",
    ),
];

/// Which kind of key field a code is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyField {
    /// A USCC field: tax, customs, market list entries, court and market
    /// records of organisations.
    Uscc,
    /// A resident ID field: court and market records of natural persons.
    ResidentId,
    /// A court record without `partyTypeName`: the code's structure decides.
    Unknown,
}

/// What the bus must do with a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeVerdict {
    /// Accepted as `key` (canonical form), of a person or an organisation.
    Accepted {
        key: &'static str,
        person: bool,
        corrections: &'static [Correction],
    },
    /// A valid 15-digit registration number where a USCC belongs: rejected
    /// with `LegacyRegistrationNumber` by adapters that reject it, kept as
    /// `key` with [`Correction::LegacyRegistrationNumber`] (plus `corrections`)
    /// by those that keep it (`docs/normaliser.md`).
    Legacy {
        key: &'static str,
        corrections: &'static [Correction],
    },
    /// Rejected with this reason. For [`KeyField::Unknown`] a `MissingField`
    /// names the subject-type field, every other reason the key field.
    Rejected(ReasonCode),
}

#[derive(Debug, Clone, Copy)]
pub struct CodeCase {
    pub raw: &'static str,
    pub field: KeyField,
    pub expect: CodeVerdict,
    pub note: &'static str,
}

use Correction::{
    CodeSeparatorsRemoved as SEP, FullwidthNormalised as FW, ResidentIdCheckLowercase as LOWER_X,
    ResidentIdUpgraded15 as UP15, UsccLowercase as LOWER,
};
use KeyField::{ResidentId as RIC, Unknown as ANY, Uscc as USCC};

const fn org(key: &'static str, corrections: &'static [Correction]) -> CodeVerdict {
    CodeVerdict::Accepted {
        key,
        person: false,
        corrections,
    }
}
const fn person(key: &'static str, corrections: &'static [Correction]) -> CodeVerdict {
    CodeVerdict::Accepted {
        key,
        person: true,
        corrections,
    }
}
const fn rejected(code: ReasonCode) -> CodeVerdict {
    CodeVerdict::Rejected(code)
}
const fn code(
    raw: &'static str,
    field: KeyField,
    expect: CodeVerdict,
    note: &'static str,
) -> CodeCase {
    CodeCase {
        raw,
        field,
        expect,
        note,
    }
}

const BAD_USCC: CodeVerdict = rejected(ReasonCode::InvalidUscc);
const SEGMENT: CodeVerdict = rejected(ReasonCode::InvalidUsccSegment);
const PLACEHOLDER: CodeVerdict = rejected(ReasonCode::PlaceholderCode);
const BAD_RIC: CodeVerdict = rejected(ReasonCode::InvalidResidentId);

/// A valid Guangzhou company code used in several spellings below.
pub const COMPANY: &str = "91440101MA59UU8U6U";
/// A valid resident ID (天河区, born 1980-01-01) used in several spellings below.
pub const PERSON: &str = "440106198001011230";

/// Code spellings and codes, by the kind of field they are written in.
pub const CODES: &[CodeCase] = &[
    // USCC fields: accepted as written.
    code(
        COMPANY,
        USCC,
        org(COMPANY, &[]),
        "company registered at Guangzhou city level (440101)",
    ),
    code(
        "91440106MA9UKXL468",
        USCC,
        org("91440106MA9UKXL468", &[]),
        "天河区 company",
    ),
    code(
        "92440106MA5CKD0P64",
        USCC,
        org("92440106MA5CKD0P64", &[]),
        "92: individual business",
    ),
    code(
        "93440118MA59T7LX55",
        USCC,
        org("93440118MA59T7LX55", &[]),
        "93: farmers' cooperative, 增城区 (a district since 2014)",
    ),
    code(
        "52440104MJL1234N1N",
        USCC,
        org("52440104MJL1234N1N", &[]),
        "52: private non-enterprise unit (civil affairs)",
    ),
    code(
        "Y1440111MA5AB3CD67",
        USCC,
        org("Y1440111MA5AB3CD67", &[]),
        "Y1: other authority, a letter in position 1 (stdnum refuses it)",
    ),
    code(
        "N2440113MF0E7K2B3F",
        USCC,
        org("N2440113MF0E7K2B3F", &[]),
        "N2: village collective economic organisation",
    ),
    code(
        "11100000000013127D",
        USCC,
        org("11100000000013127D", &[]),
        "11 + 100000: a central government body",
    ),
    code(
        "91371200MA3C4R5T8K",
        USCC,
        org("91371200MA3C4R5T8K", &[]),
        "莱芜市 (371200), merged into 济南 in 2019: a 2016 code keeps it",
    ),
    // USCC fields: spellings normalised and flagged.
    code(
        "９１４４０１０１ＭＡ５９ＵＵ８Ｕ６Ｕ",
        USCC,
        org(COMPANY, &[FW]),
        "full-width digits and letters",
    ),
    code(
        "91440101ＭＡ59UU8U6U",
        USCC,
        org(COMPANY, &[FW]),
        "partly full-width",
    ),
    code(
        "91440101ma59uu8u6u",
        USCC,
        org(COMPANY, &[LOWER]),
        "lower-case letters",
    ),
    code(
        "９１４４０１０１ｍａ５９ｕｕ８ｕ６ｕ",
        USCC,
        org(COMPANY, &[FW, LOWER]),
        "full-width lower-case",
    ),
    code(
        "9144 0101 MA59 UU8U 6U",
        USCC,
        org(COMPANY, &[SEP]),
        "grouped with spaces",
    ),
    code(
        "91440101-MA59UU8U-6U",
        USCC,
        org(COMPANY, &[SEP]),
        "grouped with hyphens",
    ),
    code(
        "91440101－MA59UU8U－6U",
        USCC,
        org(COMPANY, &[FW, SEP]),
        "full-width hyphens",
    ),
    code(
        "91440101　MA59UU8U6U",
        USCC,
        org(COMPANY, &[SEP]),
        "ideographic space inside",
    ),
    code(
        "\u{200B}91440101MA59UU8U6U",
        USCC,
        org(COMPANY, &[SEP]),
        "zero-width space pasted from a web page",
    ),
    code(
        "  91440101MA59UU8U6U\u{3000}",
        USCC,
        org(COMPANY, &[]),
        "surrounding whitespace is trimmed, not flagged",
    ),
    // USCC fields: placeholders.
    code(
        "000000000000000000",
        USCC,
        PLACEHOLDER,
        "all zeros: the one repeated code that passes both checks",
    ),
    code(
        "111111111111111111",
        USCC,
        PLACEHOLDER,
        "repeated 1 (fails its checks too)",
    ),
    code(
        "91440101000000000J",
        USCC,
        PLACEHOLDER,
        "real head, organisation code 00000000, check characters computed",
    ),
    code(
        "914401011111111174",
        USCC,
        PLACEHOLDER,
        "real head, organisation code 11111111",
    ),
    code(
        "91440101123456788R",
        USCC,
        PLACEHOLDER,
        "real head, organisation code 12345678",
    ),
    code("123456789012345678", USCC, PLACEHOLDER, "sequential digits"),
    code(
        "777777777777777",
        USCC,
        PLACEHOLDER,
        "repeated 7: passes the GS 15-2006 check digit",
    ),
    // USCC fields: segments.
    code(
        "94440101MA59UU8U6J",
        USCC,
        SEGMENT,
        "authority 9 has no category 4",
    ),
    code(
        "99440101MA59UU8U63",
        USCC,
        SEGMENT,
        "authority 9 has no category 9",
    ),
    code("B1440101MA59UU8U6R", USCC, SEGMENT, "no authority B"),
    code("91449999MA59UU8U6K", USCC, SEGMENT, "449999 is no division"),
    code(
        "91440116MA59UU8U6K",
        USCC,
        SEGMENT,
        "440116 萝岗区, merged into 黄埔区 in 2014, before the first USCC",
    ),
    code(
        "91440102MA59UU8U6A",
        USCC,
        SEGMENT,
        "440102 东山区, merged in 2005",
    ),
    code(
        "914401A1MA59UU8U6N",
        USCC,
        SEGMENT,
        "letters in the division",
    ),
    // USCC fields: wrong codes, never fixed.
    code(
        "91440101MA59UU8U0F",
        USCC,
        BAD_USCC,
        "a look-alike of a published code: organisation check wrong",
    ),
    code(
        "９１４４０１０１ＭＡ５９ＵＵ８Ｕ０Ｆ",
        USCC,
        BAD_USCC,
        "the issue's full-width example: normalised, then its check fails",
    ),
    code(
        "91440101MA59UU8U6W",
        USCC,
        BAD_USCC,
        "check character wrong",
    ),
    code("91440101MA59UU8U6", USCC, BAD_USCC, "17 characters"),
    code("91440101MA59UU8U6UU", USCC, BAD_USCC, "19 characters"),
    code(
        "91440101MA59UU8UOU",
        USCC,
        BAD_USCC,
        "letter O for zero: never substituted",
    ),
    code("91440101MA59UU8U6中", USCC, BAD_USCC, "a Chinese character"),
    code(PERSON, USCC, BAD_USCC, "a resident ID in a USCC field"),
    code(
        "440101999999991",
        USCC,
        BAD_USCC,
        "15 digits, not a registration number either",
    ),
    // USCC fields: pre-2015 registration numbers (GS 15-2006).
    code(
        "440106400001239",
        USCC,
        CodeVerdict::Legacy {
            key: "440106400001239",
            corrections: &[],
        },
        "天河 registration number",
    ),
    code(
        "440101000123455",
        USCC,
        CodeVerdict::Legacy {
            key: "440101000123455",
            corrections: &[],
        },
        "city-level registration number",
    ),
    code(
        "４４０１１３６００２１７８９０",
        USCC,
        CodeVerdict::Legacy {
            key: "440113600217890",
            corrections: &[FW],
        },
        "full-width registration number",
    ),
    // Resident ID fields.
    code(PERSON, RIC, person(PERSON, &[]), "天河区, born 1980-01-01"),
    code(
        "440111197203154711",
        RIC,
        person("440111197203154711", &[]),
        "白云区, born 1972",
    ),
    code(
        "440105200002290028",
        RIC,
        person("440105200002290028", &[]),
        "born on 2000-02-29",
    ),
    code(
        "440104190001010060",
        RIC,
        person("440104190001010060", &[]),
        "born 1900-01-01, the earliest accepted",
    ),
    code(
        "44010619850612103X",
        RIC,
        person("44010619850612103X", &[]),
        "check character X",
    ),
    code(
        "44010619850612103x",
        RIC,
        person("44010619850612103X", &[LOWER_X]),
        "lower-case x",
    ),
    code(
        "４４０１０６１９８５０６１２１０３ｘ",
        RIC,
        person("44010619850612103X", &[FW, LOWER_X]),
        "full-width, lower-case x",
    ),
    code(
        "440106 19800101 1230",
        RIC,
        person(PERSON, &[SEP]),
        "grouped with spaces",
    ),
    code(
        "440106-19800101-1230",
        RIC,
        person(PERSON, &[SEP]),
        "grouped with hyphens",
    ),
    code(
        "440106800101101",
        RIC,
        person("440106198001011011", &[UP15]),
        "first-generation 15-digit ID, upgraded",
    ),
    code(
        "４４０１０６８００１０１１０１",
        RIC,
        person("440106198001011011", &[FW, UP15]),
        "full-width 15-digit ID",
    ),
    code("440106801301101", RIC, BAD_RIC, "15 digits, month 13"),
    code("440106198001011231", RIC, BAD_RIC, "check character wrong"),
    code("44010619800101123", RIC, BAD_RIC, "17 digits"),
    code(
        "440106209901011237",
        RIC,
        BAD_RIC,
        "born in the future (check right)",
    ),
    code(
        "44010618991231123X",
        RIC,
        BAD_RIC,
        "born 1899 (check right)",
    ),
    code(
        "440106198102291235",
        RIC,
        BAD_RIC,
        "1981-02-29 does not exist (check right)",
    ),
    code(
        "4401061980010x1230",
        RIC,
        BAD_RIC,
        "a letter before the check character",
    ),
    code(COMPANY, RIC, BAD_RIC, "a USCC in a resident ID field"),
    code(
        "11010519491231002X",
        RIC,
        PLACEHOLDER,
        "GB 11643's worked example",
    ),
    code(
        "440524188001010014",
        RIC,
        PLACEHOLDER,
        "GB 11643's other example",
    ),
    code("000000000000000000", RIC, PLACEHOLDER, "all zeros"),
    code("111111111111111111", RIC, PLACEHOLDER, "repeated 1"),
    code(
        "111111111111111",
        RIC,
        PLACEHOLDER,
        "repeated 1, 15 digits (would read as born 1911-11-11)",
    ),
    code("123456789012345678", RIC, PLACEHOLDER, "sequential digits"),
    // No subject type: the structure decides.
    code(
        PERSON,
        ANY,
        person(PERSON, &[]),
        "a valid resident ID is a person's",
    ),
    code(
        "44010619850612103x",
        ANY,
        person("44010619850612103X", &[LOWER_X]),
        "lower-case x, still a person",
    ),
    code(
        COMPANY,
        ANY,
        org(COMPANY, &[]),
        "a USCC is an organisation's",
    ),
    code(
        "９１４４０１０１ＭＡ５９ＵＵ８Ｕ６Ｕ",
        ANY,
        org(COMPANY, &[FW]),
        "full-width USCC",
    ),
    code(
        "440106800101101",
        ANY,
        person("440106198001011011", &[UP15]),
        "birth date at 7-12, no GS 15 check digit: a first-generation ID",
    ),
    code(
        "440106400001239",
        ANY,
        CodeVerdict::Legacy {
            key: "440106400001239",
            corrections: &[],
        },
        "no birth date, GS 15 check digit right: a registration number",
    ),
    code(
        "440101000123455",
        ANY,
        rejected(ReasonCode::MissingField),
        "both readings fit (1900-01-23; check digit right): the subject type must say",
    ),
    code(
        "440101999999991",
        ANY,
        BAD_USCC,
        "15 digits, neither reading fits",
    ),
    code("111111111111111", ANY, PLACEHOLDER, "repeated digit"),
    code(
        "440106198001011231",
        ANY,
        BAD_USCC,
        "a resident ID with a wrong check is judged as a USCC",
    ),
];
