//! The legal guardrail of the seed (六(十七)): without legislation, minor
//! behaviours (petitioning, demolition disputes, running red lights, uncivilised
//! dog keeping, unpaid property fees, not sorting garbage) must never enter a
//! natural person's credit record.
//!
//! The behaviours are *concepts* maintained as data (`data/guardrail.toml`,
//! compiled in): each with its legal and colloquial phrasings, bounded-gap
//! patterns for wording a list cannot cover, and exceptions for texts that
//! merely mention a word (an organisation's name, the source of a case).
//! Text is folded first (blanks, zero-width characters, punctuation, width,
//! case, traditional characters), then searched in one Aho-Corasick pass.
//!
//! Whether a record is a natural person's, and what a match means for it, is
//! decided in [`crate::record::guardrail`]; this module only recognises.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, MatchKind};
use serde::Deserialize;

use crate::text::{half_width, is_invisible, is_punctuation};

/// The compiled-in rules.
pub const RULES_TOML: &str = include_str!("../data/guardrail.toml");

static RULES: LazyLock<Rules> = LazyLock::new(|| {
    Rules::parse(RULES_TOML)
        .unwrap_or_else(|e| panic!("data/guardrail.toml (checked by its tests): {e:?}"))
});

/// The rules in force. Call once at start-up so a broken build fails there.
pub fn rules() -> &'static Rules {
    &RULES
}

/// One minor behaviour.
#[derive(Debug)]
pub struct Concept {
    id: String,
    name: String,
}

impl Concept {
    /// Stable id: metric label and rejection detail (`running-red-light`).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The seed's name for it (`闯红灯`).
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A concept found in one of the texts searched.
#[derive(Debug, Clone, Copy)]
pub struct Finding<'r> {
    pub concept: &'r Concept,
    /// Index of the text it was found in.
    pub text: usize,
    /// Some text also states a legal process (a court judgement or ruling the
    /// subject failed to perform): the record is not there for the behaviour.
    pub exempt: bool,
}

/// What one literal of the automaton stands for.
#[derive(Debug, Clone, Copy)]
enum Lit {
    Phrase(u16),
    Except(u16),
    /// The last part of a pattern.
    Anchor(u16),
    Exempt,
}

#[derive(Debug)]
struct Pattern {
    concept: u16,
    /// Every part but the last (the anchor), each a set of alternatives.
    before: Vec<Vec<String>>,
    within: usize,
}

/// The concepts compiled into one automaton.
#[derive(Debug)]
pub struct Rules {
    concepts: Vec<Concept>,
    patterns: Vec<Pattern>,
    ac: AhoCorasick,
    /// The automaton's literals, for the tests.
    #[cfg_attr(not(test), allow(dead_code))]
    literals: Vec<String>,
    /// Per automaton literal, everything it stands for.
    lits: Vec<Vec<Lit>>,
    /// Traditional → simplified, sorted by the traditional character.
    fold: Vec<(char, char)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    fold: FoldSpec,
    exempt: ExemptSpec,
    concept: Vec<ConceptSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FoldSpec {
    pairs: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExemptSpec {
    markers: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConceptSpec {
    id: String,
    name: String,
    phrases: Vec<String>,
    #[serde(default)]
    patterns: Vec<PatternSpec>,
    #[serde(default)]
    except: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PatternSpec {
    parts: Vec<String>,
    within: usize,
}

/// Longest span a pattern may declare: beyond a clause, words stop being related.
const MAX_WITHIN: usize = 40;

/// One automaton match within a folded text.
#[derive(Debug, Clone, Copy)]
struct Hit {
    start: usize,
    end: usize,
    lit: usize,
}

thread_local! {
    /// The folded text and the matches in it, reused so that the common path
    /// (every natural person's record) allocates nothing once warm.
    static SCRATCH: RefCell<(String, Vec<Hit>)> = RefCell::new((String::with_capacity(256), Vec::with_capacity(16)));
}

impl Rules {
    /// Parses and checks the rules, reporting every problem at once.
    pub fn parse(src: &str) -> Result<Rules, Vec<String>> {
        let file: File = toml::from_str(src).map_err(|e| vec![e.to_string()])?;
        let mut errors = Vec::new();

        let mut fold: Vec<(char, char)> = Vec::new();
        for pair in file.fold.pairs.split_whitespace() {
            let cs: Vec<char> = pair.chars().collect();
            match cs[..] {
                [t, s] if t != s => fold.push((t, s)),
                _ => errors.push(format!(
                    "fold pair {pair:?} is not two different characters"
                )),
            }
        }
        fold.sort_unstable();
        for w in fold.windows(2) {
            if w[0].0 == w[1].0 {
                errors.push(format!("fold pair for {:?} given twice", w[0].0));
            }
        }

        let mut rules = Rules {
            concepts: Vec::new(),
            patterns: Vec::new(),
            ac: AhoCorasick::new(["x"]).expect("one literal"),
            literals: Vec::new(),
            lits: Vec::new(),
            fold,
        };
        // Literals must be written folded: what is searched is folded text.
        let literal = |s: &str, what: &str, errors: &mut Vec<String>| -> Option<String> {
            let folded = rules_fold(&rules.fold, s);
            if folded.is_empty() {
                errors.push(format!("{what}: {s:?} is empty once folded"));
                None
            } else {
                if folded != s {
                    errors.push(format!("{what}: {s:?} is not folded (write {folded:?})"));
                }
                Some(folded)
            }
        };

        let mut index: HashMap<String, usize> = HashMap::new();
        let mut literals: Vec<String> = Vec::new();
        let mut lits: Vec<Vec<Lit>> = Vec::new();
        let mut add = |s: String, lit: Lit| {
            let i = *index.entry(s.clone()).or_insert_with(|| {
                literals.push(s);
                lits.push(Vec::new());
                literals.len() - 1
            });
            lits[i].push(lit);
        };

        for m in &file.exempt.markers {
            if let Some(m) = literal(m, "exempt marker", &mut errors) {
                add(m, Lit::Exempt);
            }
        }
        let mut patterns = Vec::new();
        let mut concepts = Vec::new();
        for (ci, c) in file.concept.iter().enumerate() {
            let Ok(cu) = u16::try_from(ci) else {
                errors.push("too many concepts".into());
                break;
            };
            let what = format!("concept {}", c.id);
            if c.id.is_empty() || !c.id.bytes().all(|b| b.is_ascii_lowercase() || b == b'-') {
                errors.push(format!(
                    "{what}: id must be lower-case ASCII words joined by '-'"
                ));
            }
            if concepts.iter().any(|k: &Concept| k.id == c.id) {
                errors.push(format!("{what}: id given twice"));
            }
            if c.phrases.is_empty() && c.patterns.is_empty() {
                errors.push(format!("{what}: no phrases and no patterns"));
            }
            for p in &c.phrases {
                if let Some(p) = literal(p, &what, &mut errors) {
                    if c.except.contains(&p) {
                        errors.push(format!("{what}: {p:?} is both a phrase and an exception"));
                    }
                    add(p, Lit::Phrase(cu));
                }
            }
            for e in &c.except {
                if let Some(e) = literal(e, &what, &mut errors) {
                    add(e, Lit::Except(cu));
                }
            }
            for p in &c.patterns {
                let pi = u16::try_from(patterns.len()).unwrap_or(u16::MAX);
                let mut parts: Vec<Vec<String>> = Vec::new();
                for part in &p.parts {
                    let alts: Vec<String> = part
                        .split('|')
                        .filter_map(|a| literal(a, &what, &mut errors))
                        .collect();
                    parts.push(alts);
                }
                if parts.len() < 2 {
                    errors.push(format!(
                        "{what}: pattern {:?} has fewer than two parts",
                        p.parts
                    ));
                    continue;
                }
                let shortest: usize = parts
                    .iter()
                    .map(|alts| alts.iter().map(|a| a.chars().count()).min().unwrap_or(0))
                    .sum();
                if p.within < shortest || p.within > MAX_WITHIN {
                    errors.push(format!(
                        "{what}: pattern {:?}: within = {} must lie in {shortest}..={MAX_WITHIN}",
                        p.parts, p.within
                    ));
                }
                let anchor = parts.pop().unwrap_or_default();
                for a in anchor {
                    add(a, Lit::Anchor(pi));
                }
                patterns.push(Pattern {
                    concept: cu,
                    before: parts,
                    within: p.within,
                });
            }
            concepts.push(Concept {
                id: c.id.clone(),
                name: c.name.clone(),
            });
        }
        if concepts.is_empty() {
            errors.push("no concepts".into());
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        // Standard semantics with overlapping search: every occurrence of every
        // literal is seen, so an exception can cover a phrase whatever their order.
        rules.ac = AhoCorasick::builder()
            .match_kind(MatchKind::Standard)
            .build(&literals)
            .map_err(|e| vec![e.to_string()])?;
        rules.literals = literals;
        rules.lits = lits;
        rules.patterns = patterns;
        rules.concepts = concepts;
        Ok(rules)
    }

    #[cfg(test)]
    fn ac_literals(&self) -> impl Iterator<Item = (&String, &Vec<Lit>)> {
        self.literals.iter().zip(&self.lits)
    }

    pub fn concepts(&self) -> &[Concept] {
        &self.concepts
    }

    pub fn concept(&self, id: &str) -> Option<&Concept> {
        self.concepts.iter().find(|c| c.id == id)
    }

    /// The text as it is matched: see the module documentation.
    pub fn fold(&self, s: &str) -> String {
        rules_fold(&self.fold, s)
    }

    /// The first concept named by any of `texts` (every text that states the
    /// conduct must be passed), and whether the record is exempt.
    pub fn find<'t>(&self, texts: impl IntoIterator<Item = &'t str>) -> Option<Finding<'_>> {
        SCRATCH.with_borrow_mut(|(buf, hits)| {
            let mut found: Option<(u16, usize)> = None;
            let mut exempt = false;
            for (ti, text) in texts.into_iter().enumerate() {
                if text.is_empty() {
                    continue;
                }
                fold_into(&self.fold, text, buf);
                let (c, e) = self.scan(buf, hits);
                exempt |= e;
                if found.is_none() {
                    found = c.map(|c| (c, ti));
                }
            }
            found.map(|(c, ti)| Finding {
                concept: &self.concepts[c as usize],
                text: ti,
                exempt,
            })
        })
    }

    /// The first concept in one folded text, and whether it holds an exempt marker.
    fn scan(&self, t: &str, hits: &mut Vec<Hit>) -> (Option<u16>, bool) {
        hits.clear();
        hits.extend(self.ac.find_overlapping_iter(t).map(|m| Hit {
            start: m.start(),
            end: m.end(),
            lit: m.pattern().as_usize(),
        }));
        let exempt = hits
            .iter()
            .any(|h| self.lits[h.lit].iter().any(|l| matches!(l, Lit::Exempt)));
        let covered = |h: &Hit, c: u16| {
            hits.iter().any(|e| {
                e.start <= h.start
                    && h.end <= e.end
                    && self.lits[e.lit]
                        .iter()
                        .any(|l| matches!(l, Lit::Except(x) if *x == c))
            })
        };
        for h in hits.iter() {
            for lit in &self.lits[h.lit] {
                match *lit {
                    Lit::Phrase(c) if !covered(h, c) => return (Some(c), exempt),
                    Lit::Anchor(p) => {
                        let p = &self.patterns[p as usize];
                        if !covered(h, p.concept) && p.matches_before(t, h.start, h.end) {
                            return (Some(p.concept), exempt);
                        }
                    }
                    _ => {}
                }
            }
        }
        (None, exempt)
    }
}

impl Pattern {
    /// Whether the parts before the anchor at `start..end` occur in order, the
    /// whole within `self.within` characters ending at `end`.
    fn matches_before(&self, t: &str, start: usize, end: usize) -> bool {
        let from = t[..end]
            .char_indices()
            .rev()
            .nth(self.within - 1)
            .map_or(0, |(i, _)| i);
        if from > start {
            return false;
        }
        // Earliest end of each part in turn: if any order fits, this one does.
        let mut pos = from;
        for alts in &self.before {
            let region = &t[pos..start];
            match alts
                .iter()
                .filter_map(|a| region.find(a.as_str()).map(|i| i + a.len()))
                .min()
            {
                Some(e) => pos += e,
                None => return false,
            }
        }
        true
    }
}

fn rules_fold(fold: &[(char, char)], s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    fold_into(fold, s, &mut out);
    out
}

fn fold_into(fold: &[(char, char)], s: &str, out: &mut String) {
    out.clear();
    for c in s.chars() {
        if c.is_ascii() {
            if c.is_ascii_alphanumeric() {
                out.push(c.to_ascii_lowercase());
            }
            // ASCII blanks, controls and punctuation separate words only.
            continue;
        }
        if is_invisible(c) {
            continue;
        }
        let c = half_width(c);
        if is_punctuation(c) {
            continue;
        }
        if c.is_ascii() {
            out.push(c.to_ascii_lowercase());
            continue;
        }
        out.push(match fold.binary_search_by_key(&c, |p| p.0) {
            Ok(i) => fold[i].1,
            Err(_) => c,
        });
    }
}

/// The first concept named by any of `texts`, by the compiled-in rules.
pub fn find<'t>(texts: impl IntoIterator<Item = &'t str>) -> Option<Finding<'static>> {
    RULES.find(texts)
}

/// The case table (`data/guardrail_cases.toml`): texts and the verdict each
/// must get, for this crate's tests and for end-to-end tests through the broker.
#[cfg(any(test, feature = "cases"))]
pub mod cases {
    use serde::Deserialize;
    use std::collections::BTreeMap;

    pub const CASES_TOML: &str = include_str!("../data/guardrail_cases.toml");

    /// What a natural person's record stating the text must get.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Expect {
        /// Rejected (`guardrail_minor_behaviour`) for this concept id.
        Block(String),
        /// Accepted: the concept is named but a legal process is stated.
        Exempt(String),
        /// Accepted: a near miss.
        Pass,
    }

    #[derive(Debug, Clone)]
    pub struct Case {
        pub text: String,
        pub expect: Expect,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        block: BTreeMap<String, Vec<String>>,
        exempt: BTreeMap<String, Vec<String>>,
        pass: Vec<Pass>,
    }

    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Pass {
        text: String,
        #[allow(dead_code)]
        why: String,
    }

    /// Every case, blocks first.
    pub fn all() -> Vec<Case> {
        let f: File = toml::from_str(CASES_TOML).expect("guardrail_cases.toml parses (tested)");
        let mut v = Vec::new();
        for (c, texts) in f.block {
            v.extend(texts.into_iter().map(|text| Case {
                text,
                expect: Expect::Block(c.clone()),
            }));
        }
        for (c, texts) in f.exempt {
            v.extend(texts.into_iter().map(|text| Case {
                text,
                expect: Expect::Exempt(c.clone()),
            }));
        }
        v.extend(f.pass.into_iter().map(|p| Case {
            text: p.text,
            expect: Expect::Pass,
        }));
        v
    }
}

#[cfg(test)]
mod tests;
