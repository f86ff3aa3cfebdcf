//! Folding of department text before it is compared with known words: the same
//! word reaches us with ideographic spaces, zero-width characters, full-width
//! letters and digits, or brackets of either width, and must still be recognised.

/// Characters that render as nothing or as blank space: every Unicode white
/// space (including U+3000 ideographic space and no-break spaces) and the
/// format characters that editors and copy-paste leave inside words.
pub fn is_invisible(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '\u{00AD}'                      // soft hyphen
            | '\u{034F}'                    // combining grapheme joiner
            | '\u{061C}'                    // Arabic letter mark
            | '\u{115F}' | '\u{1160}'       // Hangul fillers
            | '\u{17B4}' | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'       // Mongolian selectors and vowel separator
            | '\u{200B}'..='\u{200F}'       // zero-width space/joiners, LRM, RLM
            | '\u{202A}'..='\u{202E}'       // bidi embeddings
            | '\u{2060}'..='\u{206F}'       // word joiner, invisible operators, bidi isolates
            | '\u{3164}'                    // Hangul filler
            | '\u{FE00}'..='\u{FE0F}'       // variation selectors
            | '\u{FEFF}'                    // BOM / zero-width no-break space
            | '\u{FFA0}'
            | '\u{E0000}'..='\u{E007F}' // tags
        )
}

/// Full-width ASCII forms (U+FF01..U+FF5E) and the ideographic full stop's
/// half-width twin become plain ASCII; other characters are unchanged.
pub fn half_width(c: char) -> char {
    match c {
        '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        _ => c,
    }
}

/// Punctuation and symbols that separate words but never carry one: ASCII
/// punctuation, CJK symbols and punctuation (except 〇 and 々, which are
/// characters of words), general punctuation, CJK compatibility, small and
/// vertical forms, half-width CJK punctuation, the middle dots.
pub fn is_punctuation(c: char) -> bool {
    c.is_ascii_punctuation()
        || matches!(
            c,
            '\u{00A1}'..='\u{00BF}'         // ¡ ¢ £ … « · » ¿ (Latin-1 punctuation and signs)
            | '\u{00D7}' | '\u{00F7}'
            | '\u{2010}'..='\u{205E}'       // ‐ – — ‘ ’ “ ” … ‰ ※ ⁂
            | '\u{2190}'..='\u{21FF}'       // arrows
            | '\u{2200}'..='\u{22FF}'       // math operators
            | '\u{2460}'..='\u{24FF}'       // enclosed numbers (①)
            | '\u{2500}'..='\u{27BF}'       // box drawing, shapes, dingbats (■ ● ★ ✓)
            | '\u{3001}'..='\u{3004}'       // 、 。 〃 〄
            | '\u{3008}'..='\u{3020}'       // 〈 〉 《 》 「 」 『 』 【 】 〔 〕 …
            | '\u{3030}' | '\u{303D}'
            | '\u{30FB}'                    // ・
            | '\u{FE10}'..='\u{FE1F}'       // vertical forms
            | '\u{FE30}'..='\u{FE6F}'       // CJK compatibility and small forms
            | '\u{FF5F}'..='\u{FF65}' // ｟ ｠ ｡ ｢ ｣ ､ ･
        )
}

/// Maps every bracket form to ASCII `(` / `)`: header cells write units as
/// `金额(元)`, `金额（元）`, `金额【元】` or `金额〔元〕` alike.
pub fn ascii_bracket(c: char) -> char {
    match c {
        '(' | '（' | '[' | '［' | '【' | '〔' | '〖' | '〘' | '﹙' | '︵' | '{' | '｛' | '<'
        | '〈' | '《' => '(',
        ')' | '）' | ']' | '］' | '】' | '〕' | '〗' | '〙' | '﹚' | '︶' | '}' | '｝' | '>'
        | '〉' | '》' => ')',
        _ => c,
    }
}

/// A CSV header cell as a comparable name: invisible characters and blanks
/// removed, full-width folded, brackets made ASCII, ASCII lower-cased, and the
/// `*` that marks required columns in some templates dropped. `统一社会信用代码 `,
/// `﻿记录类型` (BOM) and `金额（元）` become `统一社会信用代码`, `记录类型`, `金额(元)`.
pub fn header_name(cell: &str) -> String {
    let mut out = String::with_capacity(cell.len());
    header_name_into(cell, &mut out);
    out
}

/// [`header_name`] into `out` (cleared first), allocation-free once it has grown.
pub fn header_name_into(cell: &str, out: &mut String) {
    out.clear();
    for c in cell.chars() {
        if is_invisible(c) {
            continue;
        }
        let c = ascii_bracket(half_width(c)).to_ascii_lowercase();
        if !matches!(c, '*' | '"' | '\'') {
            out.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_names_fold_width_brackets_blanks_and_case() {
        for (raw, want) in [
            ("\u{FEFF}记录类型", "记录类型"),
            (" 统一社会信用代码\u{3000}", "统一社会信用代码"),
            ("金额（元）", "金额(元)"),
            ("金额【万元】", "金额(万元)"),
            ("金额 ( 元 )", "金额(元)"),
            ("Record_Type", "record_type"),
            ("ＲＥＣＯＲＤ＿ＴＹＰＥ", "record_type"),
            ("*纳税人名称", "纳税人名称"),
            ("纳\u{200B}税人名称", "纳税人名称"),
        ] {
            assert_eq!(header_name(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn width_folding_covers_the_full_width_ascii_block() {
        for c in '\u{FF01}'..='\u{FF5E}' {
            let h = half_width(c);
            assert!(h.is_ascii_graphic(), "{c:?} -> {h:?}");
        }
        assert_eq!(half_width('闯'), '闯');
        assert_eq!(half_width('a'), 'a');
    }

    #[test]
    fn invisible_and_punctuation_do_not_swallow_words() {
        for c in ['闯', '红', '〇', '々', 'a', '1', '元'] {
            assert!(!is_invisible(c) && !is_punctuation(c), "{c:?}");
        }
        for c in [' ', '\u{3000}', '\u{200B}', '\u{FEFF}', '\u{00A0}', '\t'] {
            assert!(is_invisible(c), "{c:?}");
        }
        for c in [
            '，', '。', '、', '《', '》', '“', '”', '…', '—', '·', '(', '】',
        ] {
            assert!(is_punctuation(half_width(c)), "{c:?}");
        }
    }
}
