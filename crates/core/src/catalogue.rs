//! The one catalogue of departments and supervision domains (DOMAIN.md, attachment 1).
//!
//! Department ids are stable: they appear in topic names, schema subjects, metric
//! labels and consumer-group names, so renaming one is a migration, not an edit.

/// How a department publishes to its inbound topic, which decides the adapter
/// the normaliser runs for it. Departments without an adapter yet only subscribe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InboundFormat {
    /// Court dishonest-defaulter records, JSON (`iname, caseCode, cardNum, ...`).
    CourtsJson,
    /// Customs enterprise credit status and dishonest-enterprise lists, XML.
    CustomsXml,
    /// Major tax violations and taxpayer credit grades, CSV in UTF-8 or GBK/GB18030.
    TaxCsv,
    /// "Double publicity" penalty decisions and market-regulation lists, JSON.
    MarketJson,
}

impl InboundFormat {
    pub const fn as_str(self) -> &'static str {
        match self {
            InboundFormat::CourtsJson => "courts-json",
            InboundFormat::CustomsXml => "customs-xml",
            InboundFormat::TaxCsv => "tax-csv",
            InboundFormat::MarketJson => "market-json",
        }
    }
}

/// A city department or central agency that identifies facts, implements measures, or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Department {
    /// Stable id: lower-case ASCII, digits and `-`; safe in topic and metric names.
    pub id: &'static str,
    pub name_en: &'static str,
    pub name_zh: &'static str,
    /// The format of its inbound topic, if the bus normalises what it publishes.
    pub inbound: Option<InboundFormat>,
}

/// A supervision domain of attachment 1 (numbers 1-29), plus domain 0 for the
/// courts' judicial enforcement, which the attachment does not list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Domain {
    pub number: u8,
    /// Stable id, as used in normalised records.
    pub id: &'static str,
    pub name_en: &'static str,
    pub name_zh: &'static str,
    /// Responsible departments, by id.
    pub departments: &'static [&'static str],
}

const fn dept(
    id: &'static str,
    name_en: &'static str,
    name_zh: &'static str,
    inbound: Option<InboundFormat>,
) -> Department {
    Department {
        id,
        name_en,
        name_zh,
        inbound,
    }
}

use InboundFormat::*;

/// Every department named in DOMAIN.md, plus the courts.
pub static DEPARTMENTS: &[Department] = &[
    dept(
        "courts",
        "Intermediate People's Court (enforcement)",
        "市中级人民法院",
        Some(CourtsJson),
    ),
    dept(
        "housing",
        "Housing and Urban-Rural Development Bureau",
        "市住房城乡建设局",
        None,
    ),
    dept(
        "planning",
        "Planning and Natural Resources Bureau",
        "市规划和自然资源局",
        None,
    ),
    dept("transport", "Transport Bureau", "市交通运输局", None),
    dept("water", "Water Affairs Bureau", "市水务局", None),
    dept("port", "Port Authority", "市港务局", None),
    dept(
        "forestry",
        "Forestry and Landscaping Bureau",
        "市林业园林局",
        None,
    ),
    dept(
        "ecology",
        "Ecology and Environment Bureau",
        "市生态环境局",
        None,
    ),
    dept(
        "urban-mgmt",
        "Urban Management and Comprehensive Law Enforcement Bureau",
        "市城市管理综合执法局",
        None,
    ),
    dept(
        "gov-data",
        "Government Services and Data Administration",
        "市政务服务数据管理局",
        None,
    ),
    dept(
        "trading-centre",
        "Public Resources Trading Centre",
        "市公共资源交易中心",
        None,
    ),
    dept("finance", "Finance Bureau", "市财政局", None),
    dept("postal", "Postal Administration", "市邮政管理局", None),
    dept("commerce", "Commerce Bureau", "市商务局", None),
    dept("tax", "Taxation Bureau", "市税务局", Some(TaxCsv)),
    dept(
        "gz-customs",
        "Guangzhou Customs",
        "广州海关",
        Some(CustomsXml),
    ),
    dept(
        "hp-customs",
        "Huangpu Customs",
        "黄埔海关",
        Some(CustomsXml),
    ),
    dept(
        "pboc",
        "People's Bank of China, Guangzhou Branch",
        "人民银行广州分行",
        None,
    ),
    dept(
        "banking-regulator",
        "Banking and Insurance Regulatory Bureau",
        "广州银保监分局",
        None,
    ),
    dept(
        "local-finance",
        "Local Financial Supervision Bureau",
        "市地方金融监管局",
        None,
    ),
    dept(
        "market",
        "Market Regulation Administration",
        "市市场监管局",
        Some(MarketJson),
    ),
    dept(
        "development-reform",
        "Development and Reform Commission",
        "市发展改革委",
        None,
    ),
    dept(
        "emergency",
        "Emergency Management Bureau",
        "市应急管理局",
        None,
    ),
    dept("health", "Health Commission", "市卫生健康委", None),
    dept(
        "medical-insurance",
        "Medical Security Bureau",
        "市医保局",
        None,
    ),
    dept(
        "hrss",
        "Human Resources and Social Security Bureau",
        "市人力资源社会保障局",
        None,
    ),
    dept("civil-affairs", "Civil Affairs Bureau", "市民政局", None),
    dept(
        "establishment",
        "Institutional Establishment Office",
        "市委编办",
        None,
    ),
    dept(
        "social-orgs",
        "Social Organisations Administration",
        "市社会组织管理局",
        None,
    ),
    dept(
        "migrant",
        "Migrant Population Services Bureau",
        "市来穗人员服务管理局",
        None,
    ),
    dept("education", "Education Bureau", "市教育局", None),
    dept("science", "Science and Technology Bureau", "市科技局", None),
    dept(
        "culture-tourism",
        "Culture, Radio, Television and Tourism Bureau",
        "市文化广电旅游局",
        None,
    ),
    dept("sports", "Sports Bureau", "市体育局", None),
    dept(
        "industry-it",
        "Industry and Information Technology Bureau",
        "市工业和信息化局",
        None,
    ),
];

const fn domain(
    number: u8,
    id: &'static str,
    name_en: &'static str,
    name_zh: &'static str,
    departments: &'static [&'static str],
) -> Domain {
    Domain {
        number,
        id,
        name_en,
        name_zh,
        departments,
    }
}

/// Domain 0 plus the 29 supervision domains of attachment 1, in its order.
pub static DOMAINS: &[Domain] = &[
    domain(
        0,
        "judicial",
        "judicial enforcement",
        "司法执行",
        &["courts"],
    ),
    domain(
        1,
        "construction",
        "construction incl. tendering",
        "建设工程（含招标投标）",
        &[
            "housing",
            "planning",
            "transport",
            "water",
            "port",
            "forestry",
            "ecology",
            "urban-mgmt",
            "gov-data",
            "trading-centre",
        ],
    ),
    domain(
        2,
        "procurement",
        "government procurement",
        "政府采购",
        &["finance", "trading-centre"],
    ),
    domain(3, "transport", "transport", "交通运输", &["transport"]),
    domain(
        4,
        "logistics",
        "logistics",
        "物流",
        &["transport", "postal", "commerce"],
    ),
    domain(5, "tax", "tax", "税务", &["tax"]),
    domain(
        6,
        "customs",
        "trade and customs clearance",
        "贸易与通关",
        &["gz-customs", "hp-customs"],
    ),
    domain(
        7,
        "intermediary",
        "intermediary services",
        "中介服务",
        &["housing", "commerce", "gov-data", "trading-centre"],
    ),
    domain(8, "port", "port management", "港口管理", &["port"]),
    domain(
        9,
        "finance",
        "finance",
        "金融",
        &["pboc", "banking-regulator", "local-finance"],
    ),
    domain(
        10,
        "prices",
        "prices",
        "价格",
        &["market", "development-reform"],
    ),
    domain(11, "exhibitions", "exhibitions", "会展", &["commerce"]),
    domain(12, "work-safety", "work safety", "安全生产", &["emergency"]),
    domain(
        13,
        "urban-management",
        "urban management",
        "城市管理",
        &["urban-mgmt"],
    ),
    domain(14, "health-care", "health care", "卫生健康", &["health"]),
    domain(
        15,
        "food-drug",
        "food and drug safety",
        "食品药品安全",
        &["market"],
    ),
    domain(
        16,
        "medical",
        "medical services / medicines",
        "医疗医药",
        &["medical-insurance", "trading-centre"],
    ),
    domain(
        17,
        "social-security",
        "social security",
        "社会保障",
        &["hrss", "civil-affairs"],
    ),
    domain(
        18,
        "elderly-care",
        "elderly care",
        "养老服务",
        &["civil-affairs"],
    ),
    domain(
        19,
        "infant-care",
        "infant care",
        "托育服务",
        &["health", "establishment", "market", "social-orgs"],
    ),
    domain(20, "employment", "employment", "劳动用工", &["hrss"]),
    domain(
        21,
        "migrant-services",
        "migrant population services",
        "来穗人员服务",
        &["migrant"],
    ),
    domain(22, "education", "education", "教育", &["education"]),
    domain(
        23,
        "science-tech",
        "science & technology programmes",
        "科研",
        &["science"],
    ),
    domain(
        24,
        "culture-sports-tourism",
        "culture, sports, tourism",
        "文化体育旅游",
        &["culture-tourism", "sports"],
    ),
    domain(
        25,
        "intellectual-property",
        "intellectual property",
        "知识产权",
        &["market"],
    ),
    domain(
        26,
        "environment",
        "environmental protection",
        "环境保护",
        &["ecology"],
    ),
    domain(27, "energy", "energy", "能源", &["development-reform"]),
    domain(
        28,
        "social-organisations",
        "social organisations",
        "社会组织",
        &["social-orgs"],
    ),
    domain(
        29,
        "platform-economy",
        "platform economy",
        "平台经济",
        &[
            "industry-it",
            "market",
            "commerce",
            "transport",
            "housing",
            "education",
            "health",
            "medical-insurance",
        ],
    ),
];

/// Looks a department up by its stable id.
pub fn department(id: &str) -> Option<&'static Department> {
    DEPARTMENTS.iter().find(|d| d.id == id)
}

/// Looks a domain up by its stable id.
pub fn domain_by_id(id: &str) -> Option<&'static Domain> {
    DOMAINS.iter().find(|d| d.id == id)
}

/// Departments whose inbound topic the normaliser serves.
pub fn publishing_departments() -> impl Iterator<Item = &'static Department> {
    DEPARTMENTS.iter().filter(|d| d.inbound.is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_and_topic_safe() {
        let mut seen = HashSet::new();
        for d in DEPARTMENTS {
            assert!(seen.insert(d.id), "duplicate department id {}", d.id);
            assert!(
                d.id.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{} is not topic-safe",
                d.id
            );
        }
        let mut seen = HashSet::new();
        for d in DOMAINS {
            assert!(seen.insert(d.id), "duplicate domain id {}", d.id);
        }
    }

    #[test]
    fn every_domain_names_known_departments_and_all_29_are_present() {
        let numbers: Vec<u8> = DOMAINS.iter().map(|d| d.number).collect();
        assert_eq!(numbers, (0..=29).collect::<Vec<u8>>());
        for d in DOMAINS {
            assert!(!d.departments.is_empty());
            for id in d.departments {
                assert!(
                    department(id).is_some(),
                    "domain {} names unknown {id}",
                    d.id
                );
            }
        }
    }

    #[test]
    fn every_department_belongs_to_some_domain() {
        for dep in DEPARTMENTS {
            assert!(
                DOMAINS.iter().any(|d| d.departments.contains(&dep.id)),
                "{} is in no domain",
                dep.id
            );
        }
    }

    #[test]
    fn the_four_publishing_formats_are_served() {
        let formats: HashSet<_> = publishing_departments().filter_map(|d| d.inbound).collect();
        assert_eq!(formats.len(), 4);
    }
}
