//! Dead letters: what a service writes when it cannot use an input.
//!
//! A dead-lettered record keeps the original key, value and headers and adds
//! Kafka Connect's `__connect.errors.*` headers (so tools that read Connect
//! DLQs read ours) plus our stable reason code and field.
//!
//! [`build`] makes that record and guarantees it fits a byte limit, whatever
//! the input: a dead-letter write must never fail on size. Issue 16: a 1.02 MB
//! customs record was refused by the normaliser's own producer
//! (`message.max.bytes`) while being dead-lettered; the normaliser exited, and
//! read the same record again on restart, for ever. So when the original does
//! not fit, the record keeps a bounded prefix of the value plus its full length
//! and SHA-256 ([`ORIGINAL_LENGTH`], [`ORIGINAL_SHA256`]); the input's topic,
//! partition and offset are always there, so the original can be found.
//!
//! Sizes are counted the way librdkafka checks `message.max.bytes` before it
//! accepts a record ([`wire_size`]), so a record [`build`] made for the
//! producer's limit is never refused by it.

use std::borrow::Cow;

use sha2::{Digest, Sha256};

pub const TOPIC: &str = "__connect.errors.topic";
pub const PARTITION: &str = "__connect.errors.partition";
pub const OFFSET: &str = "__connect.errors.offset";
pub const CONNECTOR_NAME: &str = "__connect.errors.connector.name";
pub const TASK_ID: &str = "__connect.errors.task.id";
pub const STAGE: &str = "__connect.errors.stage";
pub const CLASS_NAME: &str = "__connect.errors.class.name";
pub const EXCEPTION_CLASS_NAME: &str = "__connect.errors.exception.class.name";
pub const EXCEPTION_MESSAGE: &str = "__connect.errors.exception.message";
/// Our stable machine-readable reason code ([`crate::ReasonCode::as_str`]).
pub const REASON: &str = "credit-bus.reason";
/// The offending field, when there is one.
pub const FIELD: &str = "credit-bus.field";
/// What of the original was cut to fit: a comma-separated list of `value`,
/// `headers`, `key`. Absent when the original is kept whole.
pub const TRUNCATED: &str = "credit-bus.truncated";
/// Length in bytes of the original value, when the value was cut.
pub const ORIGINAL_LENGTH: &str = "credit-bus.original-length";
/// Lower-case hex SHA-256 of the original value, when the value was cut.
pub const ORIGINAL_SHA256: &str = "credit-bus.original-sha256";
/// Length in bytes of the original key, when the key was cut.
pub const ORIGINAL_KEY_LENGTH: &str = "credit-bus.original-key-length";
/// How many original headers were left out, when some were.
pub const HEADERS_DROPPED: &str = "credit-bus.headers-dropped";

/// `__connect.errors.class.name`: the component that rejected the record.
pub const NORMALISER_CLASS: &str = "cn.gov.guangzhou.creditbus.normaliser.Adapter";
/// `__connect.errors.exception.class.name` prefix; the reason code follows.
pub const REJECTION_CLASS: &str = "cn.gov.guangzhou.creditbus.Rejection";

/// librdkafka's per-record overhead bound (`RD_KAFKAP_MESSAGE_V2_MAX_OVERHEAD`:
/// length, attributes, timestamp and offset deltas, key and value lengths,
/// header count, each varint at its widest).
pub const RECORD_OVERHEAD: usize = 5 + 1 + 10 + 5 + 5 + 5 + 5;
/// Per header: its key and value lengths as varints at their widest.
pub const HEADER_OVERHEAD: usize = 5 + 5;
/// Room [`build`] leaves for headers the sender adds after it (the trace
/// context: `traceparent` is 55 bytes, `tracestate` is dropped by the sender
/// when it would not fit in the rest).
pub const SENDER_RESERVE: usize = 1024;
/// The exception message is cut to this many bytes (at a character boundary).
pub const MAX_DETAIL: usize = 1024;
/// The smallest limit [`build`] can always meet: our own headers (names, a
/// topic name of at most 249 characters, a detail of at most [`MAX_DETAIL`])
/// plus [`SENDER_RESERVE`], with room to spare.
pub const MIN_LIMIT: usize = 4096;

/// The size librdkafka counts for a record against `message.max.bytes`
/// (an upper bound: varints counted at their widest).
pub fn wire_size<'h>(
    key: usize,
    value: usize,
    headers: impl IntoIterator<Item = (&'h str, Option<&'h [u8]>)>,
) -> usize {
    RECORD_OVERHEAD
        + key
        + value
        + headers
            .into_iter()
            .map(|(k, v)| HEADER_OVERHEAD + k.len() + v.map_or(0, <[u8]>::len))
            .sum::<usize>()
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let d = Sha256::digest(bytes);
    let mut s = String::with_capacity(64);
    for b in d.iter() {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

/// The input that could not be used, as it was read.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// The original headers in order; the sender leaves out the original trace
    /// context (it adds the dead letter's own).
    pub headers: &'a [(&'a str, Option<&'a [u8]>)],
}

/// Why it is dead-lettered.
#[derive(Debug, Clone, Copy)]
pub struct Reason<'a> {
    /// `credit-bus.reason`: a stable code ([`crate::ReasonCode::as_str`] or a
    /// service's own, such as the feedback tracker's).
    pub code: &'a str,
    /// `__connect.errors.stage`, in Kafka Connect's vocabulary.
    pub stage: &'a str,
    /// `credit-bus.field`, when one field is at fault.
    pub field: Option<&'a str>,
    /// `__connect.errors.exception.message`: for a human. Cut to
    /// [`MAX_DETAIL`] bytes; anything shaped like a resident ID is masked.
    pub detail: &'a str,
}

impl<'a> From<&'a crate::Rejection> for Reason<'a> {
    fn from(r: &'a crate::Rejection) -> Reason<'a> {
        Reason {
            code: r.code.as_str(),
            stage: r.code.stage(),
            field: r.field,
            detail: &r.detail,
        }
    }
}

/// Who writes the dead letter.
#[derive(Debug, Clone, Copy)]
pub struct Writer<'a> {
    /// `__connect.errors.connector.name`, e.g. `credit-normaliser-courts`.
    pub connector: &'a str,
    /// `__connect.errors.class.name`, e.g. [`NORMALISER_CLASS`].
    pub class_name: &'a str,
}

/// A header of a dead letter: borrowed from the input or made by [`build`].
pub type Header<'a> = (Cow<'a, str>, Option<Cow<'a, [u8]>>);

/// A dead-letter record ready to send: key and value borrow from the input
/// (a prefix of it when cut), so a 20 MB value is never copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter<'a> {
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: Vec<Header<'a>>,
    /// Whether anything of the original was cut or left out to fit.
    pub truncated: bool,
}

impl DeadLetter<'_> {
    /// [`wire_size`] of this record.
    pub fn wire_size(&self) -> usize {
        wire_size(
            self.key.map_or(0, <[u8]>::len),
            self.value.map_or(0, <[u8]>::len),
            self.headers.iter().map(|(k, v)| (&**k, v.as_deref())),
        )
    }

    /// The value of a header [`build`] wrote (or kept), if present and UTF-8.
    pub fn header(&self, key: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| std::str::from_utf8(v.as_deref()?).ok())
    }
}

/// Masks every run of characters shaped like a resident ID (17 digits and a
/// digit or `X`, or a 15-digit first-generation number) that stands alone.
pub fn scrub(detail: &str) -> Cow<'_, str> {
    let b = detail.as_bytes();
    let is_word = |c: u8| c.is_ascii_alphanumeric();
    let mut out: Option<String> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_digit() && (i == 0 || !is_word(b[i - 1])) {
            let mut j = i;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            if j - i == 17 && j < b.len() && (b[j] == b'X' || b[j] == b'x') {
                j += 1;
            }
            let n = j - i;
            let alone = j == b.len() || !is_word(b[j]);
            if alone && (n == 18 || n == 15) {
                let s = out.get_or_insert_with(|| String::with_capacity(detail.len()));
                s.push_str(&detail[copied..i]);
                s.push_str(&crate::ids::mask_id(&detail[i..j]));
                copied = j;
            }
            i = j.max(i + 1);
        } else {
            i += 1;
        }
    }
    match out {
        None => Cow::Borrowed(detail),
        Some(mut s) => {
            s.push_str(&detail[copied..]);
            Cow::Owned(s)
        }
    }
}

/// `s` cut to at most `max` bytes at a character boundary.
fn cut_str(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Builds the dead letter for `input`: the original key, value and headers,
/// then our headers; cut to fit `limit` ([`wire_size`] plus
/// [`SENDER_RESERVE`] ≤ `limit`), giving up first the value's tail, then
/// original headers from the last, then the key's tail.
///
/// `limit` is the producer's `message.max.bytes`; it must be at least
/// [`MIN_LIMIT`] (checked at start-up), below which it is taken as
/// [`MIN_LIMIT`].
pub fn build<'a>(
    input: &Input<'a>,
    reason: &Reason<'_>,
    writer: &Writer<'_>,
    limit: usize,
) -> DeadLetter<'a> {
    let budget = limit.max(MIN_LIMIT) - SENDER_RESERVE;
    let detail = scrub(cut_str(reason.detail, MAX_DETAIL));
    // Kafka caps topic names at 249 characters; ours never come near, but a
    // bound keeps MIN_LIMIT honest.
    let topic = cut_str(input.topic, 249);
    let mut own: Vec<(&'static str, String)> = vec![
        (TOPIC, topic.to_string()),
        (PARTITION, input.partition.to_string()),
        (OFFSET, input.offset.to_string()),
        (CONNECTOR_NAME, cut_str(writer.connector, 128).to_string()),
        (TASK_ID, "0".to_string()),
        (STAGE, cut_str(reason.stage, 64).to_string()),
        (CLASS_NAME, cut_str(writer.class_name, 128).to_string()),
        (
            EXCEPTION_CLASS_NAME,
            format!("{REJECTION_CLASS}.{}", cut_str(reason.code, 64)),
        ),
        (EXCEPTION_MESSAGE, detail.into_owned()),
        (REASON, cut_str(reason.code, 64).to_string()),
    ];
    if let Some(f) = reason.field {
        own.push((FIELD, cut_str(f, 128).to_string()));
    }
    let own_size = |own: &[(&str, String)]| -> usize {
        own.iter()
            .map(|(k, v)| HEADER_OVERHEAD + k.len() + v.len())
            .sum()
    };
    let key_len = input.key.map_or(0, <[u8]>::len);
    let value_len = input.value.map_or(0, <[u8]>::len);
    let orig_size = |n: usize| -> usize {
        input.headers[..n]
            .iter()
            .map(|(k, v)| HEADER_OVERHEAD + k.len() + v.map_or(0, <[u8]>::len))
            .sum()
    };
    let all_headers = input.headers.len();
    let whole = RECORD_OVERHEAD + key_len + value_len + orig_size(all_headers) + own_size(&own);

    let (mut key, mut value, mut kept_headers) = (input.key, input.value, all_headers);
    let truncated = whole > budget;
    if truncated {
        // The headers that say what was cut. Their size is fixed before any
        // cut is chosen: a 64-hex digest, and lengths of at most 20 digits.
        let mut cut = Vec::new();
        own.push((ORIGINAL_LENGTH, value_len.to_string()));
        own.push((ORIGINAL_SHA256, sha256_hex(input.value.unwrap_or_default())));
        // Worst case of the rest: "value,headers,key", both counts.
        let reserve = HEADER_OVERHEAD
            + TRUNCATED.len()
            + "value,headers,key".len()
            + HEADER_OVERHEAD
            + ORIGINAL_KEY_LENGTH.len()
            + 20
            + HEADER_OVERHEAD
            + HEADERS_DROPPED.len()
            + 20;
        let fixed = RECORD_OVERHEAD + own_size(&own) + reserve;
        // What is left for the original's key, value and headers.
        let mut room = budget.saturating_sub(fixed);
        // Keep the key and headers whole if they fit; the value takes the rest.
        let headers_full = orig_size(all_headers);
        if key_len + headers_full <= room {
            room -= key_len + headers_full;
            let keep = value_len.min(room);
            value = input.value.map(|v| &v[..keep]);
            cut.push("value");
        } else {
            value = input.value.map(|v| &v[..0]);
            if value_len > 0 {
                cut.push("value");
            }
            // Headers from the first, while they fit next to the whole key.
            kept_headers = 0;
            let for_headers = room.saturating_sub(key_len);
            while kept_headers < all_headers && orig_size(kept_headers + 1) <= for_headers {
                kept_headers += 1;
            }
            if kept_headers < all_headers {
                cut.push("headers");
                own.push((HEADERS_DROPPED, (all_headers - kept_headers).to_string()));
            }
            room -= orig_size(kept_headers).min(room);
            if key_len > room {
                key = input.key.map(|k| &k[..room]);
                cut.push("key");
                own.push((ORIGINAL_KEY_LENGTH, key_len.to_string()));
            }
        }
        own.push((TRUNCATED, cut.join(",")));
    }

    let mut headers: Vec<Header<'a>> = Vec::with_capacity(kept_headers + own.len());
    for (k, v) in &input.headers[..kept_headers] {
        headers.push((Cow::Borrowed(*k), v.map(Cow::Borrowed)));
    }
    for (k, v) in own {
        headers.push((Cow::Borrowed(k), Some(Cow::Owned(v.into_bytes()))));
    }
    DeadLetter {
        key,
        value,
        headers,
        truncated,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const WRITER: Writer<'static> = Writer {
        connector: "credit-normaliser-gz-customs",
        class_name: NORMALISER_CLASS,
    };

    fn reason(detail: &str) -> Reason<'_> {
        Reason {
            code: "malformed_xml",
            stage: "VALUE_CONVERTER",
            field: Some("CustomsCreditRecord"),
            detail,
        }
    }

    fn input<'a>(
        key: Option<&'a [u8]>,
        value: Option<&'a [u8]>,
        headers: &'a [(&'a str, Option<&'a [u8]>)],
    ) -> Input<'a> {
        Input {
            topic: "credit.gz-customs.inbound",
            partition: 2,
            offset: 1_234_567,
            key,
            value,
            headers,
        }
    }

    #[test]
    fn a_record_that_fits_is_kept_whole_with_position_and_reason() {
        let headers = [("source", Some(&b"h2018"[..])), ("empty", None)];
        let inp = input(Some(b"rec-7"), Some(b"<CustomsCreditRecord>"), &headers);
        let dl = build(&inp, &reason("unclosed tag"), &WRITER, 1_000_000);
        assert!(!dl.truncated);
        assert_eq!(dl.key, Some(&b"rec-7"[..]));
        assert_eq!(dl.value, Some(&b"<CustomsCreditRecord>"[..]));
        assert_eq!(
            dl.headers[0],
            (Cow::Borrowed("source"), Some(Cow::Borrowed(&b"h2018"[..])))
        );
        assert_eq!(dl.headers[1], (Cow::Borrowed("empty"), None));
        assert_eq!(dl.header(TOPIC), Some("credit.gz-customs.inbound"));
        assert_eq!(dl.header(PARTITION), Some("2"));
        assert_eq!(dl.header(OFFSET), Some("1234567"));
        assert_eq!(dl.header(REASON), Some("malformed_xml"));
        assert_eq!(dl.header(FIELD), Some("CustomsCreditRecord"));
        assert_eq!(dl.header(STAGE), Some("VALUE_CONVERTER"));
        assert_eq!(dl.header(EXCEPTION_MESSAGE), Some("unclosed tag"));
        assert_eq!(
            dl.header(EXCEPTION_CLASS_NAME),
            Some("cn.gov.guangzhou.creditbus.Rejection.malformed_xml")
        );
        for h in [TRUNCATED, ORIGINAL_LENGTH, ORIGINAL_SHA256] {
            assert_eq!(dl.header(h), None, "{h}");
        }
    }

    #[test]
    fn a_value_too_large_keeps_a_prefix_its_length_and_digest() {
        // 1.02 MB of customs XML against librdkafka's default limit (issue 16).
        let value = b"<CustomsCreditRecord>x</CustomsCreditRecord>".repeat(23_182);
        assert!(value.len() > 1_020_000);
        let inp = input(Some(b"k"), Some(&value), &[]);
        let dl = build(&inp, &reason("too big"), &WRITER, 1_000_000);
        assert!(dl.truncated);
        assert!(dl.wire_size() + SENDER_RESERVE <= 1_000_000);
        let kept = dl.value.unwrap();
        assert!(
            kept.len() > 990_000,
            "most of the value is kept: {}",
            kept.len()
        );
        assert_eq!(kept, &value[..kept.len()]);
        assert_eq!(dl.header(TRUNCATED), Some("value"));
        assert_eq!(dl.header(ORIGINAL_LENGTH), Some(&*value.len().to_string()));
        assert_eq!(dl.header(ORIGINAL_SHA256), Some(&*sha256_hex(&value)));
        assert_eq!(dl.key, Some(&b"k"[..]));
    }

    #[test]
    fn sha256_matches_the_standard_vectors() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn resident_ids_in_a_detail_are_masked() {
        for (detail, want) in [
            ("id 44010619900307123X bad", "id 440106********123X bad"),
            ("440106199003071234", "440106********1234"),
            ("old 440106900307123", "old ***************"),
            // Longer digit runs and codes inside words are not IDs.
            ("n=4401061990030712345", "n=4401061990030712345"),
            ("a44010619900307123Xb", "a44010619900307123Xb"),
            ("no id here", "no id here"),
        ] {
            assert_eq!(scrub(detail), want, "{detail}");
        }
        let dl = build(
            &input(None, Some(b"x"), &[]),
            &reason("subject 44010619900307123X"),
            &WRITER,
            MIN_LIMIT,
        );
        assert_eq!(
            dl.header(EXCEPTION_MESSAGE),
            Some("subject 440106********123X")
        );
    }

    #[test]
    fn huge_headers_and_key_are_cut_last_and_said_so() {
        let big = vec![b'h'; 50_000];
        let headers = [
            ("a", Some(&b"1"[..])),
            ("b", Some(&big[..])),
            ("c", Some(&b"3"[..])),
        ];
        let key = vec![b'k'; 30_000];
        let inp = input(Some(&key), Some(b"value"), &headers);
        let dl = build(&inp, &reason("x"), &WRITER, 20_000);
        assert!(dl.wire_size() + SENDER_RESERVE <= 20_000);
        // The key alone is too large: every original header goes, then the key's tail.
        assert_eq!(dl.header(TRUNCATED), Some("value,headers,key"));
        assert_eq!(dl.header(HEADERS_DROPPED), Some("3"));
        assert_eq!(dl.header(ORIGINAL_KEY_LENGTH), Some("30000"));
        assert_eq!(dl.key, Some(&key[..dl.key.unwrap().len()]));
        assert_eq!(dl.header(ORIGINAL_LENGTH), Some("5"));
        // A key that fits stays whole; headers are kept from the first while they fit.
        let inp = input(Some(b"rec-1"), Some(b"value"), &headers);
        let dl = build(&inp, &reason("x"), &WRITER, 20_000);
        assert!(dl.wire_size() + SENDER_RESERVE <= 20_000);
        assert_eq!(dl.header(TRUNCATED), Some("value,headers"));
        assert_eq!(dl.header(HEADERS_DROPPED), Some("2"));
        assert_eq!(dl.headers[0].0, "a");
        assert_eq!(dl.key, Some(&b"rec-1"[..]));
        assert_eq!(dl.value, Some(&b""[..]));
    }

    fn arb_headers() -> impl Strategy<Value = Vec<(String, Option<Vec<u8>>)>> {
        prop::collection::vec(
            (
                "[a-z._-]{0,40}",
                prop::option::of(prop::collection::vec(any::<u8>(), 0..3000)),
            ),
            0..8,
        )
    }

    proptest! {
        /// Whatever the input and the limit, the dead letter fits, keeps its
        /// position and reason, and anything it keeps is the original's prefix.
        #[test]
        fn always_fits_the_limit(
            limit in MIN_LIMIT..200_000usize,
            key in prop::option::of(prop::collection::vec(any::<u8>(), 0..20_000)),
            value_len in prop::option::of(0..400_000usize),
            headers in arb_headers(),
            detail in ".{0,2000}",
            topic in "[a-z.]{1,300}",
        ) {
            let value: Option<Vec<u8>> = value_len.map(|n| (0..n).map(|i| (i * 7 % 251) as u8).collect());
            let hs: Vec<(&str, Option<&[u8]>)> =
                headers.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect();
            let inp = Input {
                topic: &topic,
                partition: 7,
                offset: i64::MAX,
                key: key.as_deref(),
                value: value.as_deref(),
                headers: &hs,
            };
            let dl = build(&inp, &reason(&detail), &WRITER, limit);
            prop_assert!(dl.wire_size() + SENDER_RESERVE <= limit, "{} > {limit}", dl.wire_size());
            prop_assert_eq!(dl.header(OFFSET), Some(&*i64::MAX.to_string()));
            prop_assert_eq!(dl.header(PARTITION), Some("7"));
            prop_assert_eq!(dl.header(REASON), Some("malformed_xml"));
            if let (Some(kept), Some(orig)) = (dl.value, value.as_deref()) {
                prop_assert_eq!(kept, &orig[..kept.len()]);
            }
            if let (Some(kept), Some(orig)) = (dl.key, key.as_deref()) {
                prop_assert_eq!(kept, &orig[..kept.len()]);
            }
            let whole = wire_size(
                key.as_ref().map_or(0, Vec::len),
                value.as_ref().map_or(0, Vec::len),
                hs.iter().copied(),
            );
            if dl.truncated {
                prop_assert!(dl.header(TRUNCATED).is_some());
                prop_assert_eq!(dl.header(ORIGINAL_LENGTH), Some(&*value.as_ref().map_or(0, Vec::len).to_string()));
                prop_assert_eq!(dl.header(ORIGINAL_SHA256), Some(&*sha256_hex(value.as_deref().unwrap_or_default())));
            } else {
                prop_assert_eq!(dl.value, value.as_deref());
                prop_assert_eq!(dl.key, key.as_deref());
                prop_assert_eq!(dl.headers.len(), hs.len() + 10 + 1);
                prop_assert!(whole < limit);
            }
        }
    }
}
