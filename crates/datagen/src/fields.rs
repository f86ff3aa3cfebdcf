//! One field value put into each department's native format, so a table of
//! values ([`credit_core::cases`]) can be run through every adapter, in-process
//! (`services/normaliser/src/adapters/mod.rs`) or through a real broker.
//!
//! Each slot is a record that is valid except for the one field, with every
//! other value fixed. A slot says which kind of key field it is, whether its
//! adapter keeps a pre-2015 registration number, and the field name a
//! rejection names.

use credit_core::amount::Unit;
use credit_core::cases::{COMPANY, KeyField};

/// A key field of one department's format.
#[derive(Debug, Clone, Copy)]
pub struct KeySlot {
    pub department: &'static str,
    /// What the slot is, for messages: `courts/自然人`, `market/JYYC`, ...
    pub name: &'static str,
    pub field: KeyField,
    /// The field name a rejection of the key carries.
    pub field_name: &'static str,
    /// Whether the adapter keeps a valid 15-digit registration number.
    pub keeps_legacy: bool,
    /// The record's bytes with `raw` in the key field.
    pub build: fn(&str) -> Vec<u8>,
}

/// An amount field of one department's format.
#[derive(Debug, Clone, Copy)]
pub struct AmountSlot {
    pub department: &'static str,
    pub name: &'static str,
    pub field_name: &'static str,
    pub unit: Unit,
    pub build: fn(&str) -> Vec<u8>,
}

/// The value as the inside of a JSON string.
fn json(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// The value as XML text.
fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The value as a quoted CSV field.
fn csv(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

fn courts(card: &str, party: Option<&str>, name: &str) -> Vec<u8> {
    let party = party
        .map(|p| format!(r#""partyTypeName":"{p}","#))
        .unwrap_or_default();
    format!(
        r#"{{"iname":"{name}","caseCode":"(2020)粤0106执1234号","cardNum":"{}",{party}"courtName":"广州市天河区人民法院","areaName":"广东","gistId":"(2019)粤0106民初456号","regDate":"2020年03月02日","gistUnit":"广州市天河区人民法院","duty":"支付货款人民币120000元及利息","performance":"全部未履行","disruptTypeName":"有履行能力而拒不履行生效法律文书确定义务","publishDate":"2020年05月12日"}}"#,
        json(card)
    )
    .into_bytes()
}

fn customs(uscc: &str) -> Vec<u8> {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CustomsCreditRecord><RecordType>DISHONEST_ENTERPRISE</RecordType><EntName>广州市恒信进出口有限公司</EntName><Uscc>{}</Uscc><CustomsRegNo>4401961234</CustomsRegNo><CreditLevel>失信企业</CreditLevel><DecisionNo>广关信认〔2020〕15号</DecisionNo><DecisionDate>2020-05-12</DecisionDate><ValidUntil>2022-05-11</ValidUntil><Reason>被海关处以罚款累计超过100万元</Reason><Customs>广州海关</Customs></CustomsCreditRecord>\n",
        xml(uscc)
    )
    .into_bytes()
}

fn tax(uscc: &str, amount: &str) -> Vec<u8> {
    format!(
        "重大税收违法,广州市华兴贸易有限公司,{},国家税务总局广州市天河区税务局,穗天税稽罚〔2020〕88号,2020-06-01,2023-05-31,虚开增值税专用发票,{},陈某,虚开发票12份\n",
        csv(uscc),
        csv(amount)
    )
    .into_bytes()
}

fn market_cf(lb: &str, key_field: &str, key: &str, fine: &str) -> Vec<u8> {
    format!(
        r#"{{"recordType":"CF","CF_WSH":"穗市监处罚〔2020〕123号","CF_WFXW":"销售不符合食品安全标准的食品","CF_CFLB":"罚款","CF_NR_FK":"{}","CF_XDR_MC":"广州市金穗餐饮店","CF_XDR_LB":"{lb}","{key_field}":"{}","CF_JDRQ":"2020-07-15","CF_YXQ":"2021-07-14","CF_CFJG":"广州市市场监督管理局"}}"#,
        json(fine),
        json(key)
    )
    .into_bytes()
}

fn market_list(uscc: &str) -> Vec<u8> {
    format!(
        r#"{{"recordType":"JYYC","entName":"广州市南方电子商务有限公司","uniscid":"{}","decNo":"穗天市监异〔2021〕8号","abnTime":"2021-03-01","speCause":"通过登记的住所或者经营场所无法联系","decOrg":"广州市天河区市场监督管理局"}}"#,
        json(uscc)
    )
    .into_bytes()
}

/// Every key field of every adapter.
pub const KEY_SLOTS: &[KeySlot] = &[
    KeySlot {
        department: "courts",
        name: "courts/法人或其他组织",
        field: KeyField::Uscc,
        field_name: "cardNum",
        keeps_legacy: false,
        build: |v| courts(v, Some("法人或其他组织"), "广州市恒信建材有限公司"),
    },
    KeySlot {
        department: "courts",
        name: "courts/自然人",
        field: KeyField::ResidentId,
        field_name: "cardNum",
        keeps_legacy: false,
        build: |v| courts(v, Some("自然人"), "陈伟"),
    },
    KeySlot {
        department: "courts",
        name: "courts/no partyTypeName",
        field: KeyField::Unknown,
        field_name: "cardNum",
        keeps_legacy: false,
        build: |v| courts(v, None, "陈伟"),
    },
    KeySlot {
        department: "gz-customs",
        name: "gz-customs/Uscc",
        field: KeyField::Uscc,
        field_name: "Uscc",
        keeps_legacy: false,
        build: customs,
    },
    KeySlot {
        department: "tax",
        name: "tax/统一社会信用代码",
        field: KeyField::Uscc,
        field_name: "统一社会信用代码",
        keeps_legacy: true,
        build: |v| tax(v, "1,234,567.89"),
    },
    KeySlot {
        department: "market",
        name: "market/CF 法人及非法人组织",
        field: KeyField::Uscc,
        field_name: "CF_XDR_SHXYM",
        keeps_legacy: false,
        build: |v| market_cf("法人及非法人组织", "CF_XDR_SHXYM", v, "0.85"),
    },
    KeySlot {
        department: "market",
        name: "market/CF 自然人",
        field: KeyField::ResidentId,
        field_name: "CF_XDR_ZJHM",
        keeps_legacy: false,
        build: |v| market_cf("自然人", "CF_XDR_ZJHM", v, "0.85"),
    },
    KeySlot {
        department: "market",
        name: "market/JYYC",
        field: KeyField::Uscc,
        field_name: "uniscid",
        keeps_legacy: true,
        build: market_list,
    },
];

/// Every amount field of every adapter.
pub const AMOUNT_SLOTS: &[AmountSlot] = &[
    AmountSlot {
        department: "tax",
        name: "tax/金额(元)",
        field_name: "金额(元)",
        unit: Unit::Yuan,
        build: |v| tax(COMPANY, v),
    },
    AmountSlot {
        department: "market",
        name: "market/CF_NR_FK",
        field_name: "CF_NR_FK",
        unit: Unit::WanYuan,
        build: |v| market_cf("法人及非法人组织", "CF_XDR_SHXYM", COMPANY, v),
    },
];
