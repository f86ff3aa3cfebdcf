//! Courts: dishonest judgement defaulters (失信被执行人), JSON shaped like the
//! records the courts publish: `iname, caseCode, cardNum, courtName, areaName,
//! gistId, regDate, gistUnit, duty, performance, disruptTypeName, publishDate`,
//! plus `partyTypeName` and `businessEntity` (legal representative) where given.

use credit_core::codes::{self, Declared, Holder, Legacy};
use credit_core::record::{
    Context, CreditRecord, InfoKind, ListType, Severity, Subject, SubjectType, guardrail,
};
use credit_core::reject::Rejection;
use serde::Deserialize;

use super::{
    Findings, Text, check_document_number, json_error, optional, optional_date, required,
    required_date, text, utf8,
};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CourtRecord<'a> {
    #[serde(borrow)]
    iname: Option<Text<'a>>,
    #[serde(borrow)]
    case_code: Option<Text<'a>>,
    #[serde(borrow)]
    card_num: Option<Text<'a>>,
    #[serde(borrow)]
    court_name: Option<Text<'a>>,
    #[serde(borrow)]
    area_name: Option<Text<'a>>,
    #[serde(borrow)]
    party_type_name: Option<Text<'a>>,
    #[serde(borrow)]
    gist_id: Option<Text<'a>>,
    #[serde(borrow)]
    reg_date: Option<Text<'a>>,
    #[serde(borrow)]
    gist_unit: Option<Text<'a>>,
    #[serde(borrow)]
    duty: Option<Text<'a>>,
    #[serde(borrow)]
    performance: Option<Text<'a>>,
    #[serde(borrow)]
    disrupt_type_name: Option<Text<'a>>,
    #[serde(borrow)]
    publish_date: Option<Text<'a>>,
    #[serde(borrow)]
    business_entity: Option<Text<'a>>,
}

/// The subject type `partyTypeName` states, if it states one.
fn party_type(party: Option<&str>) -> Result<Option<SubjectType>, Rejection> {
    match party.map(str::trim) {
        Some("自然人") => Ok(Some(SubjectType::NaturalPerson)),
        Some("法人" | "法人或其他组织" | "其他组织" | "非法人组织") => {
            Ok(Some(SubjectType::LegalPerson))
        }
        Some("个体工商户") => Ok(Some(SubjectType::IndividualBusiness)),
        Some(other) if !other.is_empty() => Err(Rejection::invalid(
            "partyTypeName",
            format!("{other:?} is not 自然人, 法人或其他组织 or 个体工商户"),
        )),
        _ => Ok(None),
    }
}

/// Courts reject a pre-2015 registration number: a defaulter record names the
/// court and the province (`areaName`), not the district that registered the
/// subject, so nothing in it leads from the old number to the subject's USCC.
const LEGACY: Legacy = Legacy::Reject;

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
    let r: CourtRecord<'a> = serde_json::from_str(utf8(value)?).map_err(json_error)?;
    let name = required("iname", text(r.iname))?;
    let case_code = required("caseCode", text(r.case_code))?;
    check_document_number("caseCode", &case_code)?;
    let card = required("cardNum", text(r.card_num))?;
    let (kind, card, corrections) = match party_type(r.party_type_name.as_ref().map(Text::as_str))?
    {
        Some(kind) => {
            let (key, c) = codes::subject_key(kind, card, "cardNum", ctx.today, LEGACY)?;
            (kind, key, c)
        }
        // Older feeds omit the party type: the code's structure decides
        // (a valid resident ID, 18 or 15 digits, is a person's).
        None => {
            let declared = Declared::Unknown {
                type_field: "partyTypeName",
            };
            let k = codes::resolve(card, declared, "cardNum", ctx.today, LEGACY)?;
            let kind = match k.holder {
                Holder::Person => SubjectType::NaturalPerson,
                Holder::Organisation => SubjectType::LegalPerson,
            };
            (kind, k.key, k.corrections)
        }
    };
    let conduct = required("disruptTypeName", text(r.disrupt_type_name))?;
    let duty = optional(text(r.duty));
    // The guardrail judges why the person is listed: the dishonest conduct
    // (one of the statutory situations). The duty is the judgement's debt
    // (e.g. property fees a court ordered paid); listing for not performing a
    // judgement rests on the Civil Procedure Law, so the duty is not judged.
    findings.guardrail = guardrail(kind, &[("disruptTypeName", conduct.as_ref())]);
    if let Some(d) = findings.guardrail {
        d.check()?;
    }
    let reg_date = required_date("regDate", r.reg_date.as_ref().map(Text::as_str))?;
    let publish_date = optional_date("publishDate", r.publish_date.as_ref().map(Text::as_str))?;
    if publish_date.is_some_and(|p| p < reg_date) {
        return Err(Rejection::new(
            credit_core::ReasonCode::InvalidDate,
            Some("publishDate"),
            "published before the case was registered",
        ));
    }
    let court = required("courtName", text(r.court_name))?;

    let mut attributes = Vec::with_capacity(5);
    attributes.push(("court", court));
    if let Some(v) = optional(text(r.area_name)) {
        attributes.push(("area", v));
    }
    if let Some(v) = optional(text(r.gist_unit)) {
        attributes.push(("basis_issuer", v));
    }
    if let Some(v) = duty {
        attributes.push(("obligation", v));
    }
    if let Some(v) = optional(text(r.performance)) {
        attributes.push(("performance", v));
    }

    Ok(CreditRecord {
        department: ctx.department,
        domain: "judicial",
        subject: Subject {
            kind,
            key: card,
            name,
        },
        responsible_person: optional(text(r.business_entity)),
        info_kind: InfoKind::DishonestyList,
        list_type: Some(ListType::JudgementDefaulter),
        grade: None,
        lineage: ctx.lineage(case_code.clone()),
        decision_number: case_code,
        decision_date: reg_date,
        publication_date: publish_date,
        valid_from: publish_date.unwrap_or(reg_date),
        // Open-ended: the entry lasts until the judgement is performed or repaired.
        valid_until: None,
        severity: Severity::Serious,
        legal_basis: optional(text(r.gist_id)),
        conduct,
        amount_fen: None,
        attributes,
        corrections,
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::ctx;
    use super::*;
    use credit_core::ReasonCode;
    use credit_core::date::days_from_civil;
    use credit_core::ids;

    fn company() -> String {
        ids::complete_uscc("9144010166400000").unwrap()
    }

    fn person() -> String {
        ids::complete_resident_id("44010619800101123").unwrap()
    }

    fn record(card: &str, party: &str, conduct: &str) -> String {
        format!(
            r#"{{"iname":"广州某某建材有限公司","caseCode":"(2020)粤01执123号","cardNum":"{card}",
            "courtName":"广州市中级人民法院","areaName":"广东","partyTypeName":"{party}",
            "gistId":"(2019)粤01民初45号","regDate":"2020年03月02日","gistUnit":"广州市中级人民法院",
            "duty":"支付货款人民币120000元及利息","performance":"全部未履行",
            "disruptTypeName":"{conduct}","publishDate":"2020年05月12日","businessEntity":"李某",
            "age":0,"sexy":""}}"#
        )
    }

    #[test]
    fn company_defaulter_is_normalised() {
        let json = record(
            &company(),
            "法人或其他组织",
            "有履行能力而拒不履行生效法律文书确定义务",
        );
        let r = normalise(&ctx("courts"), json.as_bytes()).unwrap();
        assert_eq!(r.subject.kind, SubjectType::LegalPerson);
        assert_eq!(r.subject.key, company());
        assert_eq!(r.list_type, Some(ListType::JudgementDefaulter));
        assert_eq!(r.decision_date, days_from_civil(2020, 3, 2));
        assert_eq!(r.valid_from, days_from_civil(2020, 5, 12));
        assert_eq!(r.responsible_person.as_deref(), Some("李某"));
        assert_eq!(r.record_id().to_string(), "courts:1:7");
        assert_eq!(r.lineage.source_record_id, "(2020)粤01执123号");
        assert!(
            r.attributes
                .iter()
                .any(|(k, v)| *k == "performance" && v == "全部未履行")
        );
        // No escapes in the input: the hot path borrows instead of allocating.
        assert!(matches!(r.subject.name, std::borrow::Cow::Borrowed(_)));
    }

    #[test]
    fn party_type_is_inferred_when_absent() {
        let json = record(&person(), "", "违反财产报告制度");
        let r = normalise(&ctx("courts"), json.as_bytes()).unwrap();
        assert_eq!(r.subject.kind, SubjectType::NaturalPerson);
    }

    #[test]
    fn table_of_rejections() {
        let mut bad_uscc = company();
        bad_uscc.replace_range(17.., if company().ends_with('0') { "1" } else { "0" });
        let mut bad_id = person();
        bad_id.replace_range(17.., if person().ends_with('0') { "1" } else { "0" });
        let cases: Vec<(String, ReasonCode, Option<&str>)> = vec![
            (
                record(&bad_uscc, "法人或其他组织", "拒不履行"),
                ReasonCode::InvalidUscc,
                Some("cardNum"),
            ),
            (
                record(&bad_id, "自然人", "拒不履行"),
                ReasonCode::InvalidResidentId,
                Some("cardNum"),
            ),
            (
                record(&person(), "自然人", "多次闯红灯"),
                ReasonCode::GuardrailMinorBehaviour,
                Some("disruptTypeName"),
            ),
            (
                record(&company(), "外星人", "拒不履行"),
                ReasonCode::InvalidValue,
                Some("partyTypeName"),
            ),
            (
                record(&company(), "法人", ""),
                ReasonCode::MissingField,
                Some("disruptTypeName"),
            ),
            (
                record(&company(), "法人", "拒不履行").replace("2020年03月02日", "2020年02月30日"),
                ReasonCode::InvalidDate,
                Some("regDate"),
            ),
            (
                record(&company(), "法人", "拒不履行").replace("2020年05月12日", "2019年05月12日"),
                ReasonCode::InvalidDate,
                Some("publishDate"),
            ),
            (
                record(&company(), "法人", "拒不履行").replace("(2020)粤01执123号", "123"),
                ReasonCode::InvalidValue,
                Some("caseCode"),
            ),
            (
                record(&company(), "法人", "拒不履行")
                    .replace(r#""iname":"广州某某建材有限公司","#, ""),
                ReasonCode::MissingField,
                Some("iname"),
            ),
            (
                record(&company(), "法人", "拒不履行")[..60].to_string(),
                ReasonCode::MalformedJson,
                None,
            ),
            (
                r#"{"iname": 5}"#.to_string(),
                ReasonCode::MalformedJson,
                None,
            ),
        ];
        for (json, code, field) in cases {
            let e = normalise(&ctx("courts"), json.as_bytes()).unwrap_err();
            assert_eq!((e.code, e.field), (code, field), "{json}: {e}");
        }
    }
}
