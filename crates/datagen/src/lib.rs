//! Realistic sample records for each publishing department, with a chosen share
//! of bad ones whose expected rejection is known, so tests can check every
//! outcome and the demo shows every dead-letter reason.
//!
//! Codes are valid by the check algorithms (built with `credit_core::ids`),
//! divisions are Guangzhou's, names and case numbers look like the real thing.

pub mod cases;
pub mod fields;

use credit_core::catalogue::{self, InboundFormat};
use credit_core::ids;
use credit_core::reject::ReasonCode;
use rand::rngs::SmallRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

/// Header carrying what the generator expects of a sample: `ok` or a reason code.
pub const EXPECT_HEADER: &str = "credit-bus-sample-expect";

/// One generated department record.
#[derive(Debug, Clone)]
pub struct Sample {
    pub department: &'static str,
    /// Kafka key: the department's own record id.
    pub key: String,
    pub value: Vec<u8>,
    /// `None` if the record must be accepted, else the reason it must be rejected for.
    pub expect: Option<ReasonCode>,
}

impl Sample {
    pub fn expect_str(&self) -> &'static str {
        self.expect.map(ReasonCode::as_str).unwrap_or("ok")
    }
}

/// Guangzhou's district division codes and names.
pub const DISTRICTS: &[(&str, &str, &str)] = &[
    ("440103", "荔湾区", "粤0103"),
    ("440104", "越秀区", "粤0104"),
    ("440105", "海珠区", "粤0105"),
    ("440106", "天河区", "粤0106"),
    ("440111", "白云区", "粤0111"),
    ("440112", "黄埔区", "粤0112"),
    ("440113", "番禺区", "粤0113"),
    ("440114", "花都区", "粤0114"),
    ("440115", "南沙区", "粤0115"),
    ("440117", "从化区", "粤0117"),
    ("440118", "增城区", "粤0118"),
];

const SURNAMES: &[&str] = &[
    "陈", "李", "黄", "张", "梁", "林", "刘", "吴", "罗", "何", "郑", "谢", "冯", "邓", "曾",
];
const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "秀英", "志强", "建华",
];
const TRADE_WORDS: &[&str] = &[
    "恒信", "宏达", "粤海", "天瑞", "金穗", "南方", "珠江", "华兴", "信达", "骏隆", "羊城", "广利",
];
const INDUSTRIES: &[&str] = &[
    "建材",
    "贸易",
    "进出口",
    "科技",
    "餐饮",
    "电子商务",
    "物流",
    "建筑工程",
    "医药",
    "食品",
];
const DISRUPT: &[&str] = &[
    "有履行能力而拒不履行生效法律文书确定义务",
    "违反财产报告制度",
    "违反限制消费令",
    "以伪造证据、暴力、威胁等方法妨碍、抗拒执行",
    "以虚假诉讼、虚假仲裁或者以隐匿、转移财产等方法规避执行",
];
const TAX_CASES: &[&str] = &[
    "虚开增值税专用发票",
    "偷税",
    "逃避追缴欠税",
    "骗取出口退税",
    "虚开普通发票",
];
const OFFENCES: &[&str] = &[
    "销售不符合食品安全标准的食品",
    "无照经营",
    "发布虚假广告",
    "价格欺诈",
    "销售侵犯注册商标专用权的商品",
];
const MINOR_BEHAVIOURS: &[&str] = &[
    "拒不配合房屋拆迁",
    "多次闯红灯",
    "不文明养犬",
    "欠缴物业费",
    "未执行垃圾分类",
    "越级信访",
];
const USCC_BODY: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";

/// A deterministic generator: the same seed gives the same records.
pub struct Generator {
    rng: SmallRng,
    bad_share: f64,
    seq: u64,
    /// Today (days since 1970-01-01) and its year: decision dates are drawn
    /// up to today and validities around it, so most list entries are in
    /// force when they arrive and some have already expired (the engine's
    /// late path), whenever the data is made.
    today: i32,
    year: i32,
}

/// Today in the city's calendar (UTC+8), days since 1970-01-01.
fn today() -> i32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| ((d.as_secs() + 8 * 3600) / 86_400) as i32)
}

/// `1234567` as `1,234,567`.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn flip_last(code: &str) -> String {
    let mut s = code.to_string();
    let last = s.pop().unwrap_or('0');
    s.push(if last == '1' { '2' } else { '1' });
    s
}

impl Generator {
    pub fn new(seed: u64, bad_share: f64) -> Self {
        Generator {
            rng: SmallRng::seed_from_u64(seed),
            bad_share: bad_share.clamp(0.0, 1.0),
            seq: 0,
            today: today(),
            year: credit_core::date::civil_from_days(today()).0,
        }
    }

    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        xs.choose(&mut self.rng).expect("non-empty table")
    }

    fn district(&mut self) -> (&'static str, &'static str, &'static str) {
        *self.pick(DISTRICTS)
    }

    /// A valid USCC of a Guangzhou company (`91…`) or individual business (`92…`).
    pub fn uscc(&mut self, individual: bool) -> String {
        let (div, _, _) = self.district();
        let mut s = String::with_capacity(18);
        s.push_str(if individual { "92" } else { "91" });
        s.push_str(div);
        for _ in 0..8 {
            s.push(*self.pick(USCC_BODY) as char);
        }
        ids::complete_uscc(&s).expect("body drawn from the USCC alphabet")
    }

    /// A valid resident ID of someone born in a Guangzhou district, 1950-2000.
    pub fn resident_id(&mut self) -> String {
        let (div, _, _) = self.district();
        let y = self.rng.random_range(1950..2001);
        let m = self.rng.random_range(1..13);
        let d = self.rng.random_range(1..29);
        let seq = self.rng.random_range(0..1000);
        ids::complete_resident_id(&format!("{div}{y:04}{m:02}{d:02}{seq:03}")).expect("17 digits")
    }

    /// A Guangzhou head with organisation code `00000000` and both check
    /// characters computed: passes the arithmetic, names nobody.
    pub fn placeholder_uscc(&mut self) -> String {
        let (div, _, _) = self.district();
        ids::complete_uscc(&format!("91{div}00000000")).expect("USCC symbols")
    }

    /// A valid pre-2015 business registration number (GS 15-2006) of a
    /// Guangzhou district whose digits 7-12 are no birth date (digits 9-10,
    /// the "month", are 00), so it cannot be read as a first-generation
    /// resident ID.
    pub fn registration_number(&mut self) -> String {
        let (div, _, _) = self.district();
        let (a, b) = (
            self.rng.random_range(0..100u32),
            self.rng.random_range(0..10_000u32),
        );
        ids::complete_registration_number(&format!("{div}{a:02}00{b:04}")).expect("14 digits")
    }

    pub fn person_name(&mut self) -> String {
        format!("{}{}", self.pick(SURNAMES), self.pick(GIVEN))
    }

    pub fn company_name(&mut self) -> String {
        format!(
            "广州市{}{}有限公司",
            self.pick(TRADE_WORDS),
            self.pick(INDUSTRIES)
        )
    }

    /// A date in the years given, never after today.
    fn date(&mut self, from_year: i32, to_year: i32) -> (i32, u32, u32) {
        let from = credit_core::date::days_from_civil(from_year, 1, 1);
        let to = credit_core::date::days_from_civil(to_year, 12, 28).min(self.today);
        let (y, m, d) =
            credit_core::date::civil_from_days(self.rng.random_range(from..=to.max(from)));
        // Days 29-31 are left out: generated periods add years and months to them.
        (y, m, d.min(28))
    }

    /// Whether the next record should be bad, and which of `reasons` it breaks.
    fn bad(&mut self, reasons: &[ReasonCode]) -> Option<ReasonCode> {
        if self.rng.random_bool(self.bad_share) {
            Some(*self.pick(reasons))
        } else {
            None
        }
    }

    /// Generates the next record for a publishing department.
    pub fn record(&mut self, department: &str) -> Sample {
        let dep = catalogue::department(department).expect("known department");
        self.seq += 1;
        let mut s = match dep.inbound {
            Some(InboundFormat::CourtsJson) => self.courts(dep.id),
            Some(InboundFormat::CustomsXml) => self.customs(dep.id),
            Some(InboundFormat::TaxCsv) => self.tax(dep.id),
            Some(InboundFormat::MarketJson) => self.market(dep.id),
            None => panic!("{department} publishes no inbound format"),
        };
        // The department's own record id, unique per record as real systems'
        // are: the document number it names is not (a case lists several
        // defaulters, a random number repeats), and the engine takes two
        // records under one key for versions of one record.
        s.key = format!("{}#{:08}", s.key, self.seq);
        s
    }

    fn courts(&mut self, dept: &'static str) -> Sample {
        use ReasonCode::*;
        let expect = self.bad(&[
            InvalidUscc,
            InvalidResidentId,
            MalformedJson,
            MissingField,
            GuardrailMinorBehaviour,
            InvalidDate,
            PlaceholderCode,
            LegacyRegistrationNumber,
        ]);
        let natural = matches!(expect, Some(InvalidResidentId | GuardrailMinorBehaviour))
            || (expect.is_none() && self.rng.random_bool(0.4));
        let (name, card, party) = if natural {
            (self.person_name(), self.resident_id(), "自然人")
        } else {
            (self.company_name(), self.uscc(false), "法人或其他组织")
        };
        let card = match expect {
            Some(InvalidUscc | InvalidResidentId) => flip_last(&card),
            Some(PlaceholderCode) => self.placeholder_uscc(),
            Some(LegacyRegistrationNumber) => self.registration_number(),
            _ => card,
        };
        let (_, district, court_code) = self.district();
        let (y, m, d) = self.date(2016, 2024);
        let case_no = format!("({y}){court_code}执{}号", self.rng.random_range(1..20000));
        let conduct = if expect == Some(GuardrailMinorBehaviour) {
            *self.pick(MINOR_BEHAVIOURS)
        } else {
            *self.pick(DISRUPT)
        };
        let reg = if expect == Some(InvalidDate) {
            format!("{y}年02月30日")
        } else {
            format!("{y}年{m:02}月{d:02}日")
        };
        let amount = self.rng.random_range(5_000..5_000_000);
        let iname = if expect == Some(MissingField) {
            String::new()
        } else {
            format!(r#""iname":"{name}","#)
        };
        let business_entity = if natural {
            String::new()
        } else {
            self.person_name()
        };
        let mut json = format!(
            r#"{{{iname}"caseCode":"{case_no}","cardNum":"{card}","courtName":"广州市{district}人民法院","areaName":"广东","partyTypeName":"{party}","gistId":"({y}){court_code}民初{}号","regDate":"{reg}","gistUnit":"广州市{district}人民法院","duty":"支付人民币{amount}元及利息","performance":"全部未履行","disruptTypeName":"{conduct}","publishDate":"{}年{m:02}月{d:02}日","businessEntity":"{business_entity}"}}"#,
            self.rng.random_range(1..9000),
            y + 1,
        );
        if expect == Some(MalformedJson) {
            let cut = self.rng.random_range(1..json.len() - 1);
            json = String::from_utf8_lossy(&json.as_bytes()[..cut]).into_owned();
        }
        Sample {
            department: dept,
            key: case_no,
            value: json.into_bytes(),
            expect,
        }
    }

    fn customs(&mut self, dept: &'static str) -> Sample {
        use ReasonCode::*;
        let expect = self.bad(&[
            InvalidUscc,
            MalformedXml,
            InvalidValue,
            MissingField,
            InvalidDate,
            InvalidUsccSegment,
        ]);
        let uscc = self.uscc(false);
        let uscc = match expect {
            Some(InvalidUscc) => flip_last(&uscc),
            // 萝岗区 (440116) was merged into 黄埔区 in 2014, before any USCC.
            Some(InvalidUsccSegment) => {
                ids::complete_uscc(&format!("91440116{}", &uscc[8..16])).expect("USCC symbols")
            }
            _ => uscc,
        };
        let level = match expect {
            Some(InvalidValue) => "优质企业",
            _ => *self.pick(&["失信企业", "失信企业", "高级认证企业", "一般信用企业"]),
        };
        let rtype = if level == "失信企业" {
            "DISHONEST_ENTERPRISE"
        } else {
            "CREDIT_STATUS"
        };
        let (y, m, d) = self.date(self.year - 3, self.year);
        let customs = if dept == "hp-customs" {
            ("黄埔海关", "埔关")
        } else {
            ("广州海关", "广关")
        };
        let no = format!(
            "{}信认〔{y}〕{}号",
            customs.1,
            self.rng.random_range(1..500)
        );
        let name = if expect == Some(MissingField) {
            String::new()
        } else {
            self.company_name()
        };
        let until = if expect == Some(InvalidDate) {
            format!("{}-01-01", y - 1)
        } else {
            format!("{}-{m:02}-{d:02}", y + 3)
        };
        let reason = if level == "失信企业" {
            "被海关处以罚款累计超过100万元"
        } else {
            ""
        };
        let mut xml = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CustomsCreditRecord>\n  <RecordType>{rtype}</RecordType>\n  <EntName>{name}</EntName>\n  <Uscc>{uscc}</Uscc>\n  <CustomsRegNo>44019{:05}</CustomsRegNo>\n  <CreditLevel>{level}</CreditLevel>\n  <DecisionNo>{no}</DecisionNo>\n  <DecisionDate>{y}-{m:02}-{d:02}</DecisionDate>\n  <ValidUntil>{until}</ValidUntil>\n  <Reason>{reason}</Reason>\n  <LegalBasis>《中华人民共和国海关注册登记和备案企业信用管理办法》</LegalBasis>\n  <Customs>{}</Customs>\n  <LegalRepresentative>{}</LegalRepresentative>\n</CustomsCreditRecord>\n",
            self.rng.random_range(0..100_000),
            customs.0,
            self.person_name(),
        );
        if expect == Some(MalformedXml) {
            // Cut inside the document body, at a character boundary.
            let mut cut = self.rng.random_range(60..xml.len() - 30);
            while !xml.is_char_boundary(cut) {
                cut -= 1;
            }
            xml.truncate(cut);
        }
        Sample {
            department: dept,
            key: no,
            value: xml.into_bytes(),
            expect,
        }
    }

    fn tax(&mut self, dept: &'static str) -> Sample {
        use ReasonCode::*;
        let expect = self.bad(&[
            InvalidUscc,
            BadEncoding,
            InvalidAmount,
            MalformedCsv,
            InvalidValue,
            InvalidUnit,
        ]);
        let uscc = self.uscc(false);
        let uscc = if expect == Some(InvalidUscc) {
            flip_last(&uscc)
        } else {
            uscc
        };
        let (_, district, _) = self.district();
        let (y, m, d) = self.date(self.year - 1, self.year);
        let name = self.company_name();
        let rep = self.person_name();
        let grade_row =
            !matches!(expect, Some(InvalidAmount | InvalidUnit)) && self.rng.random_bool(0.5);
        let (key, row) = if grade_row {
            let grade = if expect == Some(InvalidValue) {
                "E"
            } else {
                *self.pick(&["A", "B", "M", "C", "D"])
            };
            let key = format!("{y}年度评价-{uscc}");
            (
                key.clone(),
                format!(
                    "纳税信用等级,{name},{uscc},国家税务总局广州市{district}税务局,{key},{y}-04-{d:02},{}-03-31,{grade},,{rep},\n",
                    y + 1
                ),
            )
        } else {
            let case = *self.pick(TAX_CASES);
            let amount = if expect == Some(InvalidAmount) {
                "12.345".to_string()
            } else if expect == Some(InvalidUnit) {
                "\"12,000美元\"".to_string()
            } else {
                // As the bureau's exports write it: thousands grouped by three.
                let yuan: u64 = self.rng.random_range(1_000..9_999_999);
                format!("\"{}.{:02}\"", grouped(yuan), self.rng.random_range(0..100))
            };
            let case_type = if expect == Some(InvalidValue) {
                "".to_string()
            } else {
                case.to_string()
            };
            let key = format!("穗税稽罚〔{y}〕{}号", self.rng.random_range(1..2000));
            let expect_missing = case_type.is_empty();
            let row = format!(
                "重大税收违法,{name},{uscc},国家税务总局广州市{district}税务局,{key},{y}-{m:02}-{d:02},{}-{m:02}-{d:02},{case_type},{amount},{rep},经查该单位{case}，涉案税款{}元\n",
                y + 3,
                amount.trim_matches('"').replace(',', "")
            );
            if expect_missing {
                // An empty category on a violation row is a missing field, not an invalid value.
                return Sample {
                    department: dept,
                    key,
                    value: row.into_bytes(),
                    expect: Some(MissingField),
                };
            }
            (key, row)
        };
        let with_header = expect != Some(MalformedCsv) && self.rng.random_bool(0.2);
        let text = if with_header {
            format!(
                "记录类型,纳税人名称,统一社会信用代码,主管税务机关,文书编号,认定日期,有效期至,类别,金额(元),法定代表人,违法事实\n{row}"
            )
        } else {
            row
        };
        let mut value = if self.rng.random_bool(0.5) || expect == Some(BadEncoding) {
            encoding_rs::GBK.encode(&text).0.into_owned()
        } else {
            text.into_bytes()
        };
        match expect {
            // A lone GBK lead byte before a comma: valid in neither UTF-8 nor GB18030.
            Some(BadEncoding) => value.splice(0..0, [0x81, b',']).for_each(drop),
            Some(MalformedCsv) => {
                let keep = value.iter().position(|b| *b == b',').unwrap_or(1) + 1;
                value.truncate(keep + 8.min(value.len() - keep));
                // Truncation may split a multi-byte character; keep the record decodable
                // so the reason is the missing columns, not the encoding.
                while std::str::from_utf8(&value).is_err()
                    && encoding_rs::GB18030
                        .decode_without_bom_handling_and_without_replacement(&value)
                        .is_none()
                {
                    value.pop();
                }
            }
            _ => {}
        }
        Sample {
            department: dept,
            key,
            value,
            expect,
        }
    }

    fn market(&mut self, dept: &'static str) -> Sample {
        use ReasonCode::*;
        let expect = self.bad(&[
            InvalidResidentId,
            GuardrailMinorBehaviour,
            MalformedJson,
            UnknownRecordType,
            InvalidUscc,
            InvalidUnit,
            PlaceholderCode,
        ]);
        let (y, m, d) = self.date(self.year - 3, self.year);
        let kind = match expect {
            Some(InvalidResidentId | GuardrailMinorBehaviour | PlaceholderCode) => 0,
            Some(InvalidUscc | InvalidUnit) => 1,
            _ => self.rng.random_range(0..4),
        };
        let (key, mut json) = if kind <= 1 {
            // Penalty decision (two in four): natural persons, businesses, companies.
            let natural = matches!(
                expect,
                Some(InvalidResidentId | GuardrailMinorBehaviour | PlaceholderCode)
            ) || (!matches!(expect, Some(InvalidUscc | InvalidUnit))
                && self.rng.random_bool(0.2));
            let no = format!("穗市监处罚〔{y}〕{}号", self.rng.random_range(1..5000));
            let (lb, key_field, key, name) = if natural {
                let id = self.resident_id();
                (
                    "自然人",
                    "CF_XDR_ZJHM",
                    match expect {
                        Some(InvalidResidentId) => flip_last(&id),
                        // GB 11643's worked example, copied from a form.
                        Some(PlaceholderCode) => "11010519491231002X".to_string(),
                        _ => id,
                    },
                    self.person_name(),
                )
            } else if expect != Some(InvalidUscc) && self.rng.random_bool(0.3) {
                (
                    "个体工商户",
                    "CF_XDR_SHXYM",
                    self.uscc(true),
                    format!(
                        "广州市{}{}店",
                        self.pick(TRADE_WORDS),
                        self.pick(INDUSTRIES)
                    ),
                )
            } else {
                let u = self.uscc(false);
                (
                    "法人及非法人组织",
                    "CF_XDR_SHXYM",
                    if expect == Some(InvalidUscc) {
                        flip_last(&u)
                    } else {
                        u
                    },
                    self.company_name(),
                )
            };
            let offence = if expect == Some(GuardrailMinorBehaviour) {
                *self.pick(MINOR_BEHAVIOURS)
            } else {
                *self.pick(OFFENCES)
            };
            let kinds = *self.pick(&["罚款", "警告", "罚款;没收违法所得", "罚款;吊销营业执照"]);
            let fine = if expect == Some(InvalidUnit) {
                format!("{} USD", self.rng.random_range(100..5000))
            } else {
                format!(
                    "{}.{:02}",
                    self.rng.random_range(0..50),
                    self.rng.random_range(0..100)
                )
            };
            let record_type = if expect == Some(UnknownRecordType) {
                "XK"
            } else {
                "CF"
            };
            (
                no.clone(),
                format!(
                    r#"{{"recordType":"{record_type}","CF_WSH":"{no}","CF_AJMC":"{offence}案","CF_WFXW":"{offence}","CF_SY":"经查，当事人{offence}","CF_YJ":"《中华人民共和国行政处罚法》","CF_CFLB":"{kinds}","CF_NR_FK":"{fine}","CF_XDR_MC":"{name}","CF_XDR_LB":"{lb}","{key_field}":"{key}","CF_FRDB":"{}","CF_JDRQ":"{y}-{m:02}-{d:02}","CF_YXQ":"{}-{m:02}-{d:02}","CF_CFJG":"广州市市场监督管理局"}}"#,
                    self.person_name(),
                    y + 1
                ),
            )
        } else {
            let abnormal = kind == 2;
            let no = format!(
                "穗市监{}〔{y}〕{}号",
                if abnormal { "异" } else { "严" },
                self.rng.random_range(1..5000)
            );
            let u = self.uscc(false);
            let record_type = if expect == Some(UnknownRecordType) {
                "HMD"
            } else if abnormal {
                "JYYC"
            } else {
                "YZWF"
            };
            let json = if abnormal {
                format!(
                    r#"{{"recordType":"{record_type}","entName":"{}","uniscid":"{u}","decNo":"{no}","abnTime":"{y}-{m:02}-{d:02}","speCause":"通过登记的住所或者经营场所无法联系","decOrg":"广州市市场监督管理局","legalRep":"{}"}}"#,
                    self.company_name(),
                    self.person_name()
                )
            } else {
                format!(
                    r#"{{"recordType":"{record_type}","entName":"{}","uniscid":"{u}","decNo":"{no}","addDate":"{y}-{m:02}-{d:02}","serILLRea":"列入经营异常名录届满3年仍未履行相关义务","decOrg":"广州市市场监督管理局","legalBasis":"《严重违法失信名单管理办法》第十条"}}"#,
                    self.company_name()
                )
            };
            (no, json)
        };
        if expect == Some(MalformedJson) {
            let cut = self.rng.random_range(1..json.len() - 1);
            json = String::from_utf8_lossy(&json.as_bytes()[..cut]).into_owned();
        }
        Sample {
            department: dept,
            key,
            value: json.into_bytes(),
            expect,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_records() {
        let mut a = Generator::new(7, 0.2);
        let mut b = Generator::new(7, 0.2);
        for _ in 0..50 {
            assert_eq!(a.record("courts").value, b.record("courts").value);
        }
    }

    #[test]
    fn generated_codes_are_valid() {
        let mut g = Generator::new(1, 0.0);
        for _ in 0..1000 {
            assert_eq!(ids::check_uscc(&g.uscc(false)), Ok(()));
            assert_eq!(ids::check_resident_id(&g.resident_id(), 30_000), Ok(()));
        }
    }

    #[test]
    fn generated_bad_codes_fail_for_their_reason() {
        let mut g = Generator::new(5, 0.0);
        for _ in 0..200 {
            let p = g.placeholder_uscc();
            assert!(
                matches!(ids::check_uscc(&p), Err(ids::UsccError::Placeholder(_))),
                "{p}"
            );
            let r = g.registration_number();
            assert_eq!(ids::check_registration_number(&r), Ok(()), "{r}");
            assert!(!ids::legacy_birth_date_ok(r.as_bytes(), 30_000), "{r}");
        }
    }

    #[test]
    fn amounts_are_grouped_by_three() {
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_000), "1,000");
    }

    #[test]
    fn bad_share_is_respected() {
        let mut g = Generator::new(3, 0.25);
        let bad = (0..4000)
            .filter(|_| g.record("market").expect.is_some())
            .count();
        assert!((800..1200).contains(&bad), "{bad}");
    }
}
