use super::cases::{self, Expect};
use super::*;
use proptest::prelude::*;

/// The six behaviours of 六(十七), by their stable ids (metric labels).
const SEED_CONCEPTS: [&str; 6] = [
    "petitioning",
    "demolition-dispute",
    "running-red-light",
    "uncivilised-dog-keeping",
    "unpaid-property-fees",
    "not-sorting-garbage",
];

#[test]
fn the_rules_file_is_valid_and_names_the_six_behaviours_of_the_seed() {
    let rules = Rules::parse(RULES_TOML).unwrap_or_else(|e| panic!("{e:#?}"));
    let ids: Vec<&str> = rules.concepts().iter().map(Concept::id).collect();
    for id in SEED_CONCEPTS {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    for c in rules.concepts() {
        assert!(!c.name().is_empty(), "{}", c.id());
    }
}

#[test]
fn every_phrase_alone_is_found_as_its_own_concept() {
    let rules = rules();
    let mut checked = 0;
    for (lit, meanings) in rules.ac_literals() {
        for m in meanings {
            if let Lit::Phrase(c) = m {
                let f = rules
                    .find([lit.as_str()])
                    .unwrap_or_else(|| panic!("{lit}"));
                assert_eq!(f.concept.id(), rules.concepts[*c as usize].id(), "{lit}");
                checked += 1;
            }
        }
    }
    assert!(checked > 50, "{checked}");
}

#[test]
fn a_broken_rules_file_reports_every_problem_at_once() {
    let src = r#"
[fold]
pairs = "紅红 紅红 xx"
[exempt]
markers = ["判决"]
[[concept]]
id = "Bad Id"
name = "x"
phrases = ["闯 红灯", "红灯"]
patterns = [{ parts = ["闯"], within = 3 }, { parts = ["闯", "红灯"], within = 99 }]
except = ["红灯"]
[[concept]]
id = "empty"
name = "y"
phrases = []
"#;
    let errors = Rules::parse(src).unwrap_err();
    for want in [
        "given twice",
        "not two different characters",
        "lower-case ASCII",
        "is not folded",
        "both a phrase and an exception",
        "fewer than two parts",
        "within = 99",
        "no phrases and no patterns",
    ] {
        assert!(
            errors.iter().any(|e| e.contains(want)),
            "{want:?} not in {errors:#?}"
        );
    }
    assert!(Rules::parse("not toml [").is_err());
}

#[test]
fn the_case_table_gets_its_verdicts() {
    let all = cases::all();
    let mut per_concept: HashMap<String, usize> = HashMap::new();
    let mut passes = 0;
    let mut wrong = Vec::new();
    for case in &all {
        let got = find([case.text.as_str()]);
        let ok = match (&case.expect, got) {
            (Expect::Block(c), Some(f)) => {
                *per_concept.entry(c.clone()).or_default() += 1;
                f.concept.id() == c && !f.exempt
            }
            (Expect::Exempt(c), Some(f)) => f.concept.id() == c && f.exempt,
            (Expect::Pass, None) => {
                passes += 1;
                true
            }
            _ => false,
        };
        if !ok {
            wrong.push(format!(
                "{:?}: expected {:?}, got {:?}",
                case.text,
                case.expect,
                got.map(|f| (f.concept.id(), f.exempt))
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    for id in SEED_CONCEPTS {
        let n = per_concept.get(id).copied().unwrap_or(0);
        assert!(n >= 50, "{id}: only {n} phrasings in the table");
    }
    assert!(passes >= 30, "only {passes} near misses");
}

#[test]
fn the_first_text_naming_a_concept_is_reported_and_exemption_spans_texts() {
    let f = find(["销售过期食品", "", "多次闯红灯"]).unwrap();
    assert_eq!(
        (f.concept.id(), f.text, f.exempt),
        ("running-red-light", 2, false)
    );
    // The judgement is stated in one field, the debt behind it in another.
    let f = find(["拖欠物业费", "拒不履行生效判决"]).unwrap();
    assert_eq!(
        (f.concept.id(), f.text, f.exempt),
        ("unpaid-property-fees", 0, true)
    );
    assert!(find(std::iter::empty()).is_none());
}

#[test]
fn folding_removes_what_does_not_change_a_word() {
    let r = rules();
    assert_eq!(r.fold("闯\u{3000}红\u{200B}灯！"), "闯红灯");
    assert_eq!(r.fold("《道路交通安全法》第３８条"), "道路交通安全法第38条");
    assert_eq!(r.fold("Red Light"), "redlight");
    assert_eq!(r.fold("闖紅燈"), "闯红灯");
    assert_eq!(r.fold("〇々"), "〇々");
}

#[test]
fn patterns_respect_their_span() {
    // 违反 … 信号灯 within 14 characters: 13 between is too far.
    assert!(find(["违反交通信号灯"]).is_some());
    assert!(find(["违反一二三四五六七八九十一二三信号灯"]).is_none());
    // Order matters: the anchor comes last.
    assert!(find(["信号灯违反"]).is_none());
}

/// A character that looks the same or blank to a reader: the other width of an
/// ASCII character (or space), or unchanged.
fn other_width(c: char) -> char {
    match c {
        ' ' => '\u{3000}',
        '\u{3000}' => ' ',
        '!'..='~' => char::from_u32(c as u32 + 0xFEE0).unwrap_or(c),
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        // The ideographic comma has no ASCII twin: it folds like punctuation.
        '、' => '，',
        _ => c,
    }
}

const INVISIBLE: [char; 9] = [
    ' ', '\u{3000}', '\u{200B}', '\u{200C}', '\u{200D}', '\u{FEFF}', '\u{00A0}', '\t', '\u{2060}',
];

fn disguise(text: &str, ops: &[u8]) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        let op = ops.get(i).copied().unwrap_or(255);
        match op {
            0..=8 => {
                out.push(INVISIBLE[op as usize]);
                out.push(c);
            }
            9..=11 => out.push(other_width(c)),
            12 => out.push(c.to_ascii_uppercase()),
            13 => {
                out.push(other_width(c));
                out.push('\u{200B}');
            }
            _ => out.push(c),
        }
    }
    out
}

static BLOCKS: LazyLock<Vec<(String, String)>> = LazyLock::new(|| {
    cases::all()
        .into_iter()
        .filter_map(|c| match c.expect {
            Expect::Block(id) => Some((c.text, id)),
            _ => None,
        })
        .collect()
});

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Blanks, zero-width characters, width and case switched anywhere inside
    /// a blocked text never turn the block into a pass (nor change the concept).
    #[test]
    fn disguises_never_turn_a_block_into_a_pass(
        which in any::<prop::sample::Index>(),
        ops in proptest::collection::vec(0u8..30, 0..80),
    ) {
        let blocks = &*BLOCKS;
        let (text, id) = &blocks[which.index(blocks.len())];
        let disguised = disguise(text, &ops);
        prop_assert_eq!(rules().fold(&disguised), rules().fold(text));
        let f = find([disguised.as_str()]);
        prop_assert_eq!(f.map(|f| f.concept.id()), Some(id.as_str()), "{:?}", disguised);
    }

    /// A blocked text embedded in ordinary surrounding wording still blocks.
    #[test]
    fn context_around_a_block_keeps_it(
        which in any::<prop::sample::Index>(),
        before in "[当事人于年月日在广州市天河区某路口]{0,12}",
        after in "[，。被处以罚款元记分]{0,10}",
    ) {
        let blocks = &*BLOCKS;
        let (text, id) = &blocks[which.index(blocks.len())];
        let t = format!("{before}{text}{after}");
        prop_assert_eq!(find([t.as_str()]).map(|f| f.concept.id()), Some(id.as_str()), "{}", t);
    }

    /// Any text at all: a verdict, never a panic.
    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,200}") {
        let _ = find([s.as_str()]);
    }
}
