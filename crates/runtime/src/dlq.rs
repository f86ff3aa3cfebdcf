//! Dead letters on the wire: [`credit_core::dlq::build`] makes the record (pure,
//! always within the limit); this module feeds it from a consumed message and
//! turns it into rdkafka headers and records. Sending is the service's job (the
//! normaliser and the tracker wait for the acknowledgement; the engine sends
//! inside its transaction).
//!
//! ```ignore
//! let headers = dlq::input_headers(msg.headers());
//! let dl = credit_core::dlq::build(&dlq::input(&msg, &headers), &(&rejection).into(), &writer, limit);
//! let rec = dlq::future_record(&dlq_topic, &dl, dlq::owned_headers(&dl, Some(span.context())));
//! ```

use credit_core::dlq::{self, DeadLetter, Input, SENDER_RESERVE};
use rdkafka::ClientConfig;
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, FutureRecord};

use crate::trace;

/// librdkafka's default `message.max.bytes`, which [`crate::kafka::producer`]
/// states explicitly.
pub const DEFAULT_MESSAGE_MAX_BYTES: usize = 1_000_000;

/// The limit a dead letter must fit for a producer made from `config`: its
/// `message.max.bytes` (what librdkafka checks before accepting a record).
pub fn producer_limit(config: &ClientConfig) -> usize {
    config
        .get("message.max.bytes")
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(DEFAULT_MESSAGE_MAX_BYTES)
}

/// A message's headers as [`Input::headers`] wants them, without its trace
/// context (the dead letter carries its own, added by [`owned_headers`]).
pub fn input_headers<H: Headers>(headers: Option<&H>) -> Vec<(&str, Option<&[u8]>)> {
    headers.map_or_else(Vec::new, |h| {
        h.iter()
            .filter(|hd| !trace::is_trace_header(hd.key))
            .map(|hd| (hd.key, hd.value))
            .collect()
    })
}

/// The [`Input`] of a consumed message; `headers` from [`input_headers`].
pub fn input<'a, M: Message>(msg: &'a M, headers: &'a [(&'a str, Option<&'a [u8]>)]) -> Input<'a> {
    Input {
        topic: msg.topic(),
        partition: msg.partition(),
        offset: msg.offset(),
        key: msg.key(),
        value: msg.payload(),
        headers,
    }
}

/// The dead letter's headers, then the trace context of `trace` when given:
/// `traceparent` always (it fits [`SENDER_RESERVE`]), `tracestate` only when
/// it fits the rest of the reserve.
pub fn owned_headers(dl: &DeadLetter<'_>, trace: Option<&trace::SpanContext>) -> OwnedHeaders {
    let mut h = OwnedHeaders::new_with_capacity(dl.headers.len() + 2);
    for (k, v) in &dl.headers {
        h = h.insert(Header {
            key: k,
            value: v.as_deref(),
        });
    }
    if let Some(sc) = trace {
        let tp = trace::format_traceparent(sc);
        h = h.insert(Header {
            key: trace::TRACEPARENT,
            value: Some(&tp[..]),
        });
        let state = sc.trace_state().header();
        let used = dlq::HEADER_OVERHEAD + trace::TRACEPARENT.len() + tp.len();
        if !state.is_empty()
            && used + dlq::HEADER_OVERHEAD + trace::TRACESTATE.len() + state.len() <= SENDER_RESERVE
        {
            h = h.insert(Header {
                key: trace::TRACESTATE,
                value: Some(state.as_str()),
            });
        }
    }
    h
}

/// A [`FutureRecord`] of the dead letter to `topic`.
pub fn future_record<'a>(
    topic: &'a str,
    dl: &'a DeadLetter<'_>,
    headers: OwnedHeaders,
) -> FutureRecord<'a, [u8], [u8]> {
    let mut r = FutureRecord::to(topic).headers(headers);
    if let Some(k) = dl.key {
        r = r.key(k);
    }
    if let Some(v) = dl.value {
        r = r.payload(v);
    }
    r
}

/// A [`BaseRecord`] of the dead letter to `topic` (threaded or transactional producers).
pub fn base_record<'a, D: rdkafka::util::IntoOpaque>(
    topic: &'a str,
    dl: &'a DeadLetter<'_>,
    headers: OwnedHeaders,
    delivery_opaque: D,
) -> BaseRecord<'a, [u8], [u8], D> {
    let mut r = BaseRecord::with_opaque_to(topic, delivery_opaque).headers(headers);
    if let Some(k) = dl.key {
        r = r.key(k);
    }
    if let Some(v) = dl.value {
        r = r.payload(v);
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use credit_core::dlq::{Reason, Writer, build};
    use rdkafka::Timestamp;
    use rdkafka::message::OwnedMessage;

    #[test]
    fn a_consumed_message_becomes_a_dead_letter_with_its_trace_replaced() {
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "source",
                value: Some("dept-system"),
            })
            .insert(Header {
                key: trace::TRACEPARENT,
                value: Some("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
            });
        let msg = OwnedMessage::new(
            Some(vec![0; 2_000_000]),
            Some(b"k1".to_vec()),
            "credit.tax.inbound".into(),
            Timestamp::CreateTime(1),
            3,
            99,
            Some(headers),
        );
        let hs = input_headers(msg.headers());
        assert_eq!(hs, vec![("source", Some(&b"dept-system"[..]))]);
        let dl = build(
            &input(&msg, &hs),
            &Reason {
                code: "record_too_large",
                stage: "VALUE_CONVERTER",
                field: None,
                detail: "2000000 bytes exceed the limit of 983040",
            },
            &Writer {
                connector: "credit-normaliser-tax",
                class_name: dlq::NORMALISER_CLASS,
            },
            DEFAULT_MESSAGE_MAX_BYTES,
        );
        assert!(dl.truncated);
        let sc = trace::parse(
            b"00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01",
            Some(&b"vendor=x"[..]),
        )
        .unwrap();
        let oh = owned_headers(&dl, Some(&sc));
        let keys: Vec<&str> = oh.iter().map(|h| h.key).collect();
        assert_eq!(keys[0], "source");
        assert!(keys.contains(&dlq::OFFSET) && keys.contains(&dlq::ORIGINAL_SHA256));
        assert_eq!(
            &keys[keys.len() - 2..],
            [trace::TRACEPARENT, trace::TRACESTATE]
        );
        let rec = future_record("credit.tax.dlq", &dl, oh);
        assert_eq!(rec.key, Some(&b"k1"[..]));
        assert!(rec.payload.unwrap().len() < DEFAULT_MESSAGE_MAX_BYTES);
    }

    #[test]
    fn the_limit_is_the_producers_message_max_bytes() {
        let mut c = ClientConfig::new();
        assert_eq!(producer_limit(&c), DEFAULT_MESSAGE_MAX_BYTES);
        c.set("message.max.bytes", "2000000");
        assert_eq!(producer_limit(&c), 2_000_000);
    }
}
