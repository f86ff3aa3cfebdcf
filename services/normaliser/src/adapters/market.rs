//! Market regulation, JSON with a `recordType`:
//!
//! * `CF`: an administrative penalty decision in the national "double publicity"
//!   (双公示) data standard's field names (`CF_WSH` decision number, `CF_XDR_MC`
//!   party, `CF_XDR_LB` party category, `CF_XDR_SHXYM` USCC, `CF_XDR_ZJHM` ID number
//!   of a natural person, `CF_WFXW` offence, `CF_SY` facts, `CF_YJ` basis, `CF_CFLB`
//!   penalty kinds, `CF_NR_FK` fine in 万元, `CF_JDRQ` decision date, `CF_YXQ`
//!   publicity end, `CF_CFJG` authority, `CF_FRDB` legal representative);
//! * `JYYC`: an entry on the abnormal-operation list (经营异常名录);
//! * `YZWF`: an entry on the serious-violation list (严重违法失信名单).
//!
//! List entries use the publicity system's names: `entName, uniscid, decNo,
//! abnTime | addDate, speCause | serILLRea, decOrg, legalBasis`.

use credit_core::amount;
use credit_core::codes::{self, Legacy};
use credit_core::record::{
    Context, CreditRecord, InfoKind, ListType, Severity, Subject, SubjectType, check_period,
    guardrail,
};
use credit_core::reject::{ReasonCode, Rejection};
use serde::Deserialize;

use super::{
    Findings, Text, check_document_number, json_error, optional, optional_date, required,
    required_date, text, utf8,
};

#[derive(Deserialize)]
#[allow(non_snake_case)]
struct MarketRecord<'a> {
    #[serde(borrow, rename = "recordType")]
    record_type: Option<Text<'a>>,
    #[serde(borrow)]
    CF_WSH: Option<Text<'a>>,
    #[serde(borrow)]
    CF_AJMC: Option<Text<'a>>,
    #[serde(borrow)]
    CF_WFXW: Option<Text<'a>>,
    #[serde(borrow)]
    CF_SY: Option<Text<'a>>,
    #[serde(borrow)]
    CF_YJ: Option<Text<'a>>,
    #[serde(borrow)]
    CF_CFLB: Option<Text<'a>>,
    #[serde(borrow)]
    CF_NR_FK: Option<Text<'a>>,
    #[serde(borrow)]
    CF_XDR_MC: Option<Text<'a>>,
    #[serde(borrow)]
    CF_XDR_LB: Option<Text<'a>>,
    #[serde(borrow)]
    CF_XDR_SHXYM: Option<Text<'a>>,
    #[serde(borrow)]
    CF_XDR_ZJHM: Option<Text<'a>>,
    #[serde(borrow)]
    CF_FRDB: Option<Text<'a>>,
    #[serde(borrow)]
    CF_JDRQ: Option<Text<'a>>,
    #[serde(borrow)]
    CF_YXQ: Option<Text<'a>>,
    #[serde(borrow)]
    CF_CFJG: Option<Text<'a>>,
    #[serde(borrow, rename = "entName")]
    ent_name: Option<Text<'a>>,
    #[serde(borrow)]
    uniscid: Option<Text<'a>>,
    #[serde(borrow, rename = "decNo")]
    dec_no: Option<Text<'a>>,
    #[serde(borrow, rename = "abnTime", alias = "addDate")]
    listed_on: Option<Text<'a>>,
    #[serde(borrow, rename = "speCause", alias = "serILLRea")]
    cause: Option<Text<'a>>,
    #[serde(borrow, rename = "decOrg")]
    dec_org: Option<Text<'a>>,
    #[serde(borrow, rename = "legalBasis")]
    legal_basis: Option<Text<'a>>,
    #[serde(borrow, rename = "legalRep")]
    legal_rep: Option<Text<'a>>,
}

/// Severity from the penalty kinds (`CF_CFLB`, `;`-separated): licence revocation,
/// suspension and bans are serious; warnings and circulated criticism are minor.
fn penalty_severity(kinds: &str) -> Severity {
    const SERIOUS: [&str; 6] = [
        "吊销",
        "责令停产停业",
        "责令关闭",
        "限制从业",
        "暂扣",
        "降低资质等级",
    ];
    const MINOR: [&str; 2] = ["警告", "通报批评"];
    if SERIOUS.iter().any(|k| kinds.contains(k)) {
        Severity::Serious
    } else if kinds
        .split([';', '；', ',', '，'])
        .all(|k| MINOR.contains(&k.trim()))
    {
        Severity::Minor
    } else {
        Severity::Ordinary
    }
}

fn penalty<'a>(
    ctx: &Context<'a>,
    r: MarketRecord<'a>,
    findings: &mut Findings,
) -> Result<CreditRecord<'a>, Rejection> {
    let decision_no = required("CF_WSH", text(r.CF_WSH))?;
    check_document_number("CF_WSH", &decision_no)?;
    let name = required("CF_XDR_MC", text(r.CF_XDR_MC))?;
    let kind = match required("CF_XDR_LB", text(r.CF_XDR_LB))?.as_ref() {
        "法人及非法人组织" | "法人" => SubjectType::LegalPerson,
        "自然人" => SubjectType::NaturalPerson,
        "个体工商户" => SubjectType::IndividualBusiness,
        other => {
            return Err(Rejection::invalid(
                "CF_XDR_LB",
                format!("{other:?} is not 法人及非法人组织, 自然人 or 个体工商户"),
            ));
        }
    };
    let (key, key_field) = if kind == SubjectType::NaturalPerson {
        (required("CF_XDR_ZJHM", text(r.CF_XDR_ZJHM))?, "CF_XDR_ZJHM")
    } else {
        (
            required("CF_XDR_SHXYM", text(r.CF_XDR_SHXYM))?,
            "CF_XDR_SHXYM",
        )
    };
    // A penalty names the penalising authority, not the district that
    // registered the party: a pre-2015 registration number is rejected.
    let (key, mut corrections) =
        codes::subject_key(kind, key, key_field, ctx.today, Legacy::Reject)?;
    let offence = required("CF_WFXW", text(r.CF_WFXW))?;
    let facts = optional(text(r.CF_SY));
    let case_name = optional(text(r.CF_AJMC));
    findings.guardrail = guardrail(
        kind,
        &[
            ("CF_WFXW", offence.as_ref()),
            ("CF_SY", facts.as_deref().unwrap_or("")),
            ("CF_AJMC", case_name.as_deref().unwrap_or("")),
        ],
    );
    if let Some(d) = findings.guardrail {
        d.check()?;
    }
    let kinds = required("CF_CFLB", text(r.CF_CFLB))?;
    let fine = match optional(text(r.CF_NR_FK)) {
        None => None,
        Some(s) => {
            let (fen, c) = amount::field_amount("CF_NR_FK", &s, amount::WAN_YUAN)?;
            corrections.extend(c);
            Some(fen)
        }
    };
    let decided = required_date("CF_JDRQ", r.CF_JDRQ.as_ref().map(Text::as_str))?;
    let until = optional_date("CF_YXQ", r.CF_YXQ.as_ref().map(Text::as_str))?;
    check_period(decided, until, "CF_YXQ")?;
    let authority = required("CF_CFJG", text(r.CF_CFJG))?;
    let severity = penalty_severity(&kinds);

    let mut attributes = vec![("authority", authority), ("penalty_kinds", kinds)];
    if let Some(c) = case_name {
        attributes.push(("case_name", c));
    }
    if let Some(f) = facts {
        attributes.push(("facts", f));
    }
    Ok(CreditRecord {
        department: ctx.department,
        domain: "food-drug",
        subject: Subject { kind, key, name },
        responsible_person: optional(text(r.CF_FRDB)),
        info_kind: InfoKind::AdministrativePenalty,
        list_type: None,
        grade: None,
        lineage: ctx.lineage(decision_no.clone()),
        decision_number: decision_no,
        decision_date: decided,
        publication_date: None,
        valid_from: decided,
        valid_until: until,
        severity,
        legal_basis: optional(text(r.CF_YJ)),
        conduct: offence,
        amount_fen: fine,
        attributes,
        corrections,
    })
}

fn list_entry<'a>(
    ctx: &Context<'a>,
    r: MarketRecord<'a>,
    list: ListType,
) -> Result<CreditRecord<'a>, Rejection> {
    let name = required("entName", text(r.ent_name))?;
    let key = required("uniscid", text(r.uniscid))?;
    // List entries are decided by the authority that registered the
    // enterprise (decOrg, a district bureau): with the name, that identifies
    // a pre-2015 registration number's subject, so it is kept (flagged).
    let (key, corrections) = codes::subject_key(
        SubjectType::LegalPerson,
        key,
        "uniscid",
        ctx.today,
        Legacy::Keep,
    )?;
    let decision_no = required("decNo", text(r.dec_no))?;
    check_document_number("decNo", &decision_no)?;
    let listed = required_date(
        if list == ListType::AbnormalOperation {
            "abnTime"
        } else {
            "addDate"
        },
        r.listed_on.as_ref().map(Text::as_str),
    )?;
    let cause = required(
        if list == ListType::AbnormalOperation {
            "speCause"
        } else {
            "serILLRea"
        },
        text(r.cause),
    )?;
    let org = required("decOrg", text(r.dec_org))?;
    Ok(CreditRecord {
        department: ctx.department,
        domain: "platform-economy",
        subject: Subject {
            kind: SubjectType::LegalPerson,
            key,
            name,
        },
        responsible_person: optional(text(r.legal_rep)),
        info_kind: InfoKind::DishonestyList,
        list_type: Some(list),
        grade: None,
        lineage: ctx.lineage(decision_no.clone()),
        decision_number: decision_no,
        decision_date: listed,
        publication_date: None,
        valid_from: listed,
        valid_until: None,
        severity: if list == ListType::SeriousViolation {
            Severity::Serious
        } else {
            Severity::Ordinary
        },
        legal_basis: optional(text(r.legal_basis)),
        conduct: cause,
        amount_fen: None,
        attributes: vec![("authority", org)],
        corrections,
    })
}

#[cfg(test)]
pub(super) fn normalise<'a>(
    ctx: &Context<'a>,
    value: &'a [u8],
) -> Result<CreditRecord<'a>, Rejection> {
    normalise_with(ctx, value, &mut Findings::default())
}

pub(super) fn normalise_with<'a>(
    ctx: &Context<'a>,
    value: &'a [u8],
    findings: &mut Findings,
) -> Result<CreditRecord<'a>, Rejection> {
    let r: MarketRecord<'a> = serde_json::from_str(utf8(value)?).map_err(json_error)?;
    let rt = r
        .record_type
        .as_ref()
        .map(Text::as_str)
        .unwrap_or("")
        .trim();
    if rt.is_empty() {
        return Err(Rejection::missing("recordType"));
    }
    match rt {
        "CF" => penalty(ctx, r, findings),
        "JYYC" => list_entry(ctx, r, ListType::AbnormalOperation),
        "YZWF" => list_entry(ctx, r, ListType::SeriousViolation),
        other => Err(Rejection::new(
            ReasonCode::UnknownRecordType,
            Some("recordType"),
            format!("{other:?} is not CF, JYYC or YZWF"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::ctx;
    use super::*;

    fn uscc() -> String {
        credit_core::ids::complete_uscc("9244010166400000").unwrap()
    }
    fn person() -> String {
        credit_core::ids::complete_resident_id("44010619800101123").unwrap()
    }

    fn cf(lb: &str, key_field: &str, key: &str, offence: &str, kinds: &str) -> String {
        format!(
            r#"{{"recordType":"CF","CF_WSH":"穗市监处罚〔2020〕123号","CF_AJMC":"销售不合格食品案",
            "CF_WFXW":"{offence}","CF_SY":"经查，当事人销售的食品经抽检不合格","CF_YJ":"《中华人民共和国食品安全法》第一百二十四条",
            "CF_CFLB":"{kinds}","CF_NR_FK":"0.85","CF_XDR_MC":"广州某某餐饮店","CF_XDR_LB":"{lb}","{key_field}":"{key}",
            "CF_FRDB":"黄某","CF_JDRQ":"2020-07-15","CF_YXQ":"2021-07-14","CF_CFJG":"广州市市场监督管理局"}}"#
        )
    }

    #[test]
    fn penalty_decision_is_normalised() {
        let json = cf(
            "个体工商户",
            "CF_XDR_SHXYM",
            &uscc(),
            "销售不符合食品安全标准的食品",
            "罚款;没收违法所得",
        );
        let r = normalise(&ctx("market"), json.as_bytes()).unwrap();
        assert_eq!(r.info_kind, InfoKind::AdministrativePenalty);
        assert_eq!(r.subject.kind, SubjectType::IndividualBusiness);
        assert_eq!(r.amount_fen, Some(850_000));
        assert_eq!(r.severity, Severity::Ordinary);
        let json = cf("自然人", "CF_XDR_ZJHM", &person(), "无照经营", "警告");
        let r = normalise(&ctx("market"), json.as_bytes()).unwrap();
        assert_eq!(
            (r.subject.kind, r.severity),
            (SubjectType::NaturalPerson, Severity::Minor)
        );
        let json = cf(
            "法人及非法人组织",
            "CF_XDR_SHXYM",
            &uscc(),
            "生产假药",
            "罚款;吊销许可证",
        );
        let r = normalise(&ctx("market"), json.as_bytes()).unwrap();
        assert_eq!(r.severity, Severity::Serious);
    }

    #[test]
    fn list_entries_are_normalised() {
        let u = uscc();
        let j = format!(
            r#"{{"recordType":"JYYC","entName":"广州某某电子商务有限公司","uniscid":"{u}","decNo":"穗市监异〔2021〕8号","abnTime":"2021-03-01","speCause":"通过登记的住所或者经营场所无法联系","decOrg":"广州市市场监督管理局"}}"#
        );
        let r = normalise(&ctx("market"), j.as_bytes()).unwrap();
        assert_eq!(r.list_type, Some(ListType::AbnormalOperation));
        let y = format!(
            r#"{{"recordType":"YZWF","entName":"广州某某电子商务有限公司","uniscid":"{u}","decNo":"穗市监严〔2021〕2号","addDate":"2021-09-01","serILLRea":"列入经营异常名录届满3年仍未履行相关义务","decOrg":"广州市市场监督管理局"}}"#
        );
        let r = normalise(&ctx("market"), y.as_bytes()).unwrap();
        assert_eq!(
            (r.list_type, r.severity),
            (Some(ListType::SeriousViolation), Severity::Serious)
        );
    }

    #[test]
    fn table_of_rejections() {
        let mut bad = person();
        bad.replace_range(17.., if person().ends_with('0') { "1" } else { "0" });
        let ok = cf(
            "法人及非法人组织",
            "CF_XDR_SHXYM",
            &uscc(),
            "无照经营",
            "罚款",
        );
        let cases: Vec<(String, ReasonCode, Option<&str>)> = vec![
            (
                cf("自然人", "CF_XDR_ZJHM", &bad, "无照经营", "罚款"),
                ReasonCode::InvalidResidentId,
                Some("CF_XDR_ZJHM"),
            ),
            (
                cf("自然人", "CF_XDR_ZJHM", &person(), "拖欠物业费", "罚款"),
                ReasonCode::GuardrailMinorBehaviour,
                Some("CF_WFXW"),
            ),
            (
                cf("自然人", "CF_XDR_SHXYM", &uscc(), "无照经营", "罚款"),
                ReasonCode::MissingField,
                Some("CF_XDR_ZJHM"),
            ),
            (
                cf("外国人", "CF_XDR_SHXYM", &uscc(), "无照经营", "罚款"),
                ReasonCode::InvalidValue,
                Some("CF_XDR_LB"),
            ),
            (
                ok.replace("0.85", "-1"),
                ReasonCode::InvalidAmount,
                Some("CF_NR_FK"),
            ),
            (
                ok.replace("2021-07-14", "2019-07-14"),
                ReasonCode::InvalidDate,
                Some("CF_YXQ"),
            ),
            (
                ok.replace(r#""recordType":"CF""#, r#""recordType":"XK""#),
                ReasonCode::UnknownRecordType,
                Some("recordType"),
            ),
            (
                ok.replace(r#""recordType":"CF","#, ""),
                ReasonCode::MissingField,
                Some("recordType"),
            ),
            (
                ok[..ok.len() / 2].to_string(),
                ReasonCode::MalformedJson,
                None,
            ),
            ("[1,2]".to_string(), ReasonCode::MalformedJson, None),
        ];
        for (json, code, field) in cases {
            let e = normalise(&ctx("market"), json.as_bytes()).unwrap_err();
            assert_eq!((e.code, e.field), (code, field), "{json}: {e}");
        }
    }
}
