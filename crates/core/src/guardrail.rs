//! The legal guardrail of the seed (六(十七)): without legislation, six minor
//! behaviours must never enter a natural person's credit record.

/// One of the six minor behaviours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinorBehaviour {
    Petitioning,
    DemolitionDispute,
    RunningRedLight,
    UncivilisedDogKeeping,
    UnpaidPropertyFees,
    NotSortingGarbage,
}

impl MinorBehaviour {
    pub const ALL: [MinorBehaviour; 6] = [
        MinorBehaviour::Petitioning,
        MinorBehaviour::DemolitionDispute,
        MinorBehaviour::RunningRedLight,
        MinorBehaviour::UncivilisedDogKeeping,
        MinorBehaviour::UnpaidPropertyFees,
        MinorBehaviour::NotSortingGarbage,
    ];

    /// Stable id, used in rejection details.
    pub const fn id(self) -> &'static str {
        match self {
            MinorBehaviour::Petitioning => "petitioning",
            MinorBehaviour::DemolitionDispute => "demolition-dispute",
            MinorBehaviour::RunningRedLight => "running-red-light",
            MinorBehaviour::UncivilisedDogKeeping => "uncivilised-dog-keeping",
            MinorBehaviour::UnpaidPropertyFees => "unpaid-property-fees",
            MinorBehaviour::NotSortingGarbage => "not-sorting-garbage",
        }
    }

    /// The words by which department records name the behaviour.
    pub const fn keywords(self) -> &'static [&'static str] {
        match self {
            MinorBehaviour::Petitioning => &["信访", "上访"],
            MinorBehaviour::DemolitionDispute => &["拆迁"],
            MinorBehaviour::RunningRedLight => &["闯红灯"],
            MinorBehaviour::UncivilisedDogKeeping => &["不文明养犬", "违规养犬", "养犬"],
            MinorBehaviour::UnpaidPropertyFees => &["欠缴物业费", "拖欠物业费", "物业费"],
            MinorBehaviour::NotSortingGarbage => &["垃圾分类"],
        }
    }
}

/// Every keyword with its behaviour, searched in one pass over each text.
static MATCHER: std::sync::LazyLock<(aho_corasick::AhoCorasick, Vec<MinorBehaviour>)> =
    std::sync::LazyLock::new(|| {
        let pairs: Vec<(&str, MinorBehaviour)> = MinorBehaviour::ALL
            .iter()
            .flat_map(|b| b.keywords().iter().map(move |k| (*k, *b)))
            .collect();
        let ac = aho_corasick::AhoCorasick::new(pairs.iter().map(|(k, _)| k))
            .expect("a few fixed keywords always build");
        (ac, pairs.into_iter().map(|(_, b)| b).collect())
    });

/// The minor behaviour a natural person's record describes, if any.
/// Every text field that states the conduct must be passed.
pub fn minor_behaviour<'a>(texts: impl IntoIterator<Item = &'a str>) -> Option<MinorBehaviour> {
    let (ac, behaviours) = &*MATCHER;
    texts
        .into_iter()
        // All keywords are CJK, so pure-ASCII text cannot match.
        .filter(|t| !t.is_ascii())
        .find_map(|t| ac.find(t).map(|m| behaviours[m.pattern().as_usize()]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_behaviour_is_recognised_in_real_wording() {
        let cases = [
            ("多次越级信访扰乱秩序", MinorBehaviour::Petitioning),
            ("拒不配合房屋拆迁", MinorBehaviour::DemolitionDispute),
            ("行人闯红灯", MinorBehaviour::RunningRedLight),
            ("不文明养犬，未拴绳", MinorBehaviour::UncivilisedDogKeeping),
            ("欠缴物业费12个月", MinorBehaviour::UnpaidPropertyFees),
            ("未执行垃圾分类规定", MinorBehaviour::NotSortingGarbage),
        ];
        for (text, want) in cases {
            assert_eq!(minor_behaviour([text]), Some(want), "{text}");
        }
    }

    #[test]
    fn ordinary_dishonesty_passes() {
        for text in [
            "有履行能力而拒不履行生效法律文书确定义务",
            "虚开增值税专用发票",
            "",
            "fraud",
        ] {
            assert_eq!(minor_behaviour([text]), None, "{text}");
        }
    }
}
