//! Traces across services: W3C trace context in Kafka record headers, and
//! `send <topic>` / `process <topic>` spans after OpenTelemetry's messaging
//! semantic conventions.
//!
//! **Propagation always happens.** Every record a service writes because of a
//! record it read carries a `traceparent` (and `tracestate` when the input had
//! a non-empty one) naming the same trace as its input, with a new span id. An
//! input without a valid `traceparent` starts a new trace. Whether the trace is
//! *sampled* (flag `01`) follows the parent; a new trace is sampled with
//! probability `telemetry.trace_sample_ratio` (by trace id, like
//! OpenTelemetry's `TraceIdRatioBased`), whether or not this service exports,
//! so the decision is the same in every service the trace crosses.
//!
//! **Spans are recorded only when exported.** Without `telemetry.otlp_endpoint`
//! no span is built: a record costs a header parse, two random ids and a header
//! write, with no heap allocation of ours (librdkafka allocates the header).
//! With an endpoint, sampled spans go through the OpenTelemetry SDK
//! (parent-based sampler, batch processor, OTLP/HTTP protobuf); unsampled ones
//! take the cheap path.
//!
//! The `traceparent` parser and writer are ours, for speed; they agree with
//! OpenTelemetry's `TraceContextPropagator` (tests below), which parses every
//! value that is not the canonical version-00 form, through [`HeaderExtractor`].
//!
//! **Personal data.** Span names carry only topic names; attributes carry
//! topics, partitions, offsets, groups, reason codes and, for keys that are
//! record or notice ids (never a subject key or resident ID), the key.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
pub use opentelemetry::trace::SpanContext;
use opentelemetry::trace::{
    Span as _, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId, TraceState,
    Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{
    IdGenerator, RandomIdGenerator, Sampler, SdkTracer, SdkTracerProvider, SpanExporter,
};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};

/// Record header carrying the W3C `traceparent` (`00-<trace id>-<span id>-<flags>`).
pub const TRACEPARENT: &str = "traceparent";
/// Record header carrying the W3C `tracestate`; written only when non-empty.
pub const TRACESTATE: &str = "tracestate";

/// Whether a record header is one of ours for trace context (to drop when
/// copying an input's headers onto an output that gets its own).
pub fn is_trace_header(key: &str) -> bool {
    key == TRACEPARENT || key == TRACESTATE
}

/// Attribute names (OpenTelemetry messaging semantic conventions).
pub mod attr {
    pub const SYSTEM: &str = "messaging.system";
    pub const OPERATION_TYPE: &str = "messaging.operation.type";
    pub const DESTINATION: &str = "messaging.destination.name";
    pub const PARTITION: &str = "messaging.destination.partition.id";
    pub const GROUP: &str = "messaging.consumer.group.name";
    pub const OFFSET: &str = "messaging.kafka.offset";
    pub const KEY: &str = "messaging.kafka.message.key";
    pub const ERROR_TYPE: &str = "error.type";
}

// ---------------------------------------------------------------- propagation

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    }
}

fn hex_into(src: &[u8], dst: &mut [u8]) -> Option<()> {
    for (i, d) in dst.iter_mut().enumerate() {
        *d = hex_val(src[2 * i])? << 4 | hex_val(src[2 * i + 1])?;
    }
    Some(())
}

/// The canonical form `00-<32 lowercase hex>-<16 lowercase hex>-<2 lowercase hex>`.
fn parse_canonical(v: &[u8]) -> Option<(TraceId, SpanId, TraceFlags)> {
    if v.len() != 55 || &v[..3] != b"00-" || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let (mut t, mut s, mut f) = ([0u8; 16], [0u8; 8], [0u8; 1]);
    hex_into(&v[3..35], &mut t)?;
    hex_into(&v[36..52], &mut s)?;
    hex_into(&v[53..55], &mut f)?;
    Some((
        TraceId::from_bytes(t),
        SpanId::from_bytes(s),
        TraceFlags::new(f[0]) & TraceFlags::SAMPLED,
    ))
}

/// Parses a `traceparent` (and `tracestate`) value. `None` when absent or
/// invalid (all-zero ids, version `ff`, bad hex...): the caller starts a new
/// trace. Never panics.
pub fn parse(traceparent: &[u8], tracestate: Option<&[u8]>) -> Option<SpanContext> {
    let state = || {
        tracestate
            .and_then(|s| std::str::from_utf8(s).ok())
            .and_then(|s| s.parse::<TraceState>().ok())
            .unwrap_or_default()
    };
    if let Some((t, s, f)) = parse_canonical(traceparent) {
        let sc = SpanContext::new(t, s, f, true, state());
        return sc.is_valid().then_some(sc);
    }
    // Anything else (a later version, surrounding blanks...) as OpenTelemetry reads it.
    let tp = std::str::from_utf8(traceparent).ok()?;
    let ts = tracestate.and_then(|s| std::str::from_utf8(s).ok());
    let pairs = Pairs(&[(TRACEPARENT, Some(tp)), (TRACESTATE, ts)]);
    let cx = TraceContextPropagator::new().extract(&pairs);
    let sc = cx.span().span_context().clone();
    sc.is_valid().then_some(sc)
}

/// The trace context of a record's headers, if it carries a valid one.
pub fn extract<H: Headers + ?Sized>(headers: Option<&H>) -> Option<SpanContext> {
    let h = headers?;
    let (mut tp, mut ts) = (None, None);
    for i in 0..h.count() {
        let hd = h.get(i);
        if tp.is_none() && hd.key == TRACEPARENT {
            tp = hd.value;
        } else if ts.is_none() && hd.key == TRACESTATE {
            ts = hd.value;
        }
    }
    parse(tp?, ts)
}

/// The trace context of a message, if it carries a valid one.
pub fn extract_message<M: Message>(m: &M) -> Option<SpanContext> {
    extract(m.headers())
}

/// `traceparent` of `sc`, written without allocating.
pub fn format_traceparent(sc: &SpanContext) -> [u8; 55] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'-'; 55];
    out[0] = b'0';
    out[1] = b'0';
    let mut put = |at: usize, bytes: &[u8]| {
        for (i, b) in bytes.iter().enumerate() {
            out[at + 2 * i] = HEX[(b >> 4) as usize];
            out[at + 2 * i + 1] = HEX[(b & 15) as usize];
        }
    };
    put(3, &sc.trace_id().to_bytes());
    put(36, &sc.span_id().to_bytes());
    put(53, &[(sc.trace_flags() & TraceFlags::SAMPLED).to_u8()]);
    out
}

/// Adds `traceparent` (and a non-empty `tracestate`) for `sc` to `headers`.
pub fn inject(headers: OwnedHeaders, sc: &SpanContext) -> OwnedHeaders {
    let tp = format_traceparent(sc);
    let mut h = headers.insert(Header {
        key: TRACEPARENT,
        value: Some(&tp[..]),
    });
    let state = sc.trace_state().header();
    if !state.is_empty() {
        h = h.insert(Header {
            key: TRACESTATE,
            value: Some(state.as_str()),
        });
    }
    h
}

/// Fresh headers holding only the trace context of `sc`.
pub fn headers(sc: &SpanContext) -> OwnedHeaders {
    inject(OwnedHeaders::new_with_capacity(2), sc)
}

/// An OpenTelemetry [`Extractor`] over a record's headers (first value of a key).
pub struct HeaderExtractor<'a, H: ?Sized>(pub &'a H);

impl<H: Headers + ?Sized> Extractor for HeaderExtractor<'_, H> {
    fn get(&self, key: &str) -> Option<&str> {
        (0..self.0.count())
            .map(|i| self.0.get(i))
            .find(|h| h.key.eq_ignore_ascii_case(key))
            .and_then(|h| std::str::from_utf8(h.value?).ok())
    }

    fn keys(&self) -> Vec<&str> {
        (0..self.0.count()).map(|i| self.0.get(i).key).collect()
    }
}

/// An OpenTelemetry [`Injector`] adding headers to [`OwnedHeaders`].
#[derive(Default)]
pub struct HeaderInjector(pub Option<OwnedHeaders>);

impl HeaderInjector {
    pub fn into_headers(self) -> OwnedHeaders {
        self.0.unwrap_or_default()
    }
}

impl Injector for HeaderInjector {
    fn set(&mut self, key: &str, value: String) {
        let h = self.0.take().unwrap_or_default();
        self.0 = Some(h.insert(Header {
            key,
            value: Some(value.as_str()),
        }));
    }
}

struct Pairs<'a>(&'a [(&'a str, Option<&'a str>)]);

impl Extractor for Pairs<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.iter().find(|(k, _)| *k == key).and_then(|(_, v)| *v)
    }
    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(k, _)| *k).collect()
    }
}

// ---------------------------------------------------------------- spans

/// Where a consumed record came from.
#[derive(Debug, Clone, Copy)]
pub struct Consumed<'a> {
    pub topic: &'a str,
    pub partition: i32,
    pub offset: i64,
    pub group: &'a str,
}

/// A span: its context (always valid, to propagate) and, when sampled and
/// exported, the recording SDK span. Ends when dropped.
pub struct Span {
    cx: SpanContext,
    recorded: Option<opentelemetry_sdk::trace::Span>,
}

impl fmt::Debug for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Span")
            .field("cx", &self.cx)
            .field("recording", &self.recorded.is_some())
            .finish()
    }
}

impl Span {
    pub fn context(&self) -> &SpanContext {
        &self.cx
    }

    pub fn is_recording(&self) -> bool {
        self.recorded.is_some()
    }

    /// Marks the span failed with a low-cardinality `error.type` (a reason code).
    pub fn set_error(&mut self, error_type: &'static str) {
        if let Some(s) = &mut self.recorded {
            s.set_attribute(KeyValue::new(attr::ERROR_TYPE, error_type));
            s.set_status(Status::error(error_type));
        }
    }

    /// Records the partition a sent record landed on.
    pub fn set_partition(&mut self, partition: i32) {
        if let Some(s) = &mut self.recorded {
            s.set_attribute(KeyValue::new(attr::PARTITION, partition.to_string()));
        }
    }

    /// Ends the span now (dropping it does the same).
    pub fn end(self) {}
}

/// Starts spans and carries the sampling decision. Cheap to clone.
#[derive(Clone)]
pub struct Tracer {
    inner: Arc<Inner>,
}

struct Inner {
    sdk: Option<(SdkTracerProvider, SdkTracer)>,
    ids: RandomIdGenerator,
    /// New traces are sampled when the trace id's low 63 bits are below this.
    root_bound: u64,
}

impl fmt::Debug for Tracer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tracer")
            .field("exporting", &self.inner.sdk.is_some())
            .finish()
    }
}

fn root_bound(ratio: f64) -> u64 {
    if ratio >= 1.0 {
        u64::MAX
    } else if ratio > 0.0 {
        (ratio * (1u64 << 63) as f64) as u64
    } else {
        0
    }
}

impl Tracer {
    /// Propagates trace context, records nothing (no exporter configured).
    pub fn propagating(ratio: f64) -> Tracer {
        Tracer {
            inner: Arc::new(Inner {
                sdk: None,
                ids: RandomIdGenerator::default(),
                root_bound: root_bound(ratio),
            }),
        }
    }

    /// Records sampled spans into `exporter` through a batch processor
    /// (`batch = false`: exported as each span ends, for tests).
    pub fn with_exporter<E: SpanExporter + 'static>(
        service: &'static str,
        exporter: E,
        ratio: f64,
        batch: bool,
    ) -> Tracer {
        let b = SdkTracerProvider::builder()
            .with_resource(Resource::builder().with_service_name(service).build())
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                ratio.clamp(0.0, 1.0),
            ))));
        let provider = if batch {
            b.with_batch_exporter(exporter)
        } else {
            b.with_simple_exporter(exporter)
        }
        .build();
        let tracer = provider.tracer("credit-bus");
        Tracer {
            inner: Arc::new(Inner {
                sdk: Some((provider, tracer)),
                ids: RandomIdGenerator::default(),
                root_bound: root_bound(ratio),
            }),
        }
    }

    /// From configuration: OTLP/HTTP (protobuf) export to `endpoint` (the
    /// collector's base URL; `/v1/traces` is appended) when it is not empty.
    /// Building never contacts the endpoint: a collector that is down costs
    /// dropped spans (after a 3 s timeout per batch, off the hot path), never
    /// a failed start.
    pub fn from_config(
        service: &'static str,
        endpoint: &str,
        ratio: f64,
    ) -> anyhow::Result<Tracer> {
        if endpoint.trim().is_empty() {
            return Ok(Tracer::propagating(ratio));
        }
        use opentelemetry_otlp::{WithExportConfig, WithHttpConfig as _};
        let url = format!("{}/v1/traces", endpoint.trim().trim_end_matches('/'));
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(url)
            .with_timeout(Duration::from_secs(3))
            .with_headers(Default::default())
            .build()?;
        Ok(Tracer::with_exporter(service, exporter, ratio, true))
    }

    pub fn is_exporting(&self) -> bool {
        self.inner.sdk.is_some()
    }

    /// Exports what has ended so far (before a process exits).
    pub fn flush(&self) {
        if let Some((p, _)) = &self.inner.sdk {
            let _ = p.force_flush();
        }
    }

    fn sample_root(&self, t: TraceId) -> bool {
        let low = u64::from_be_bytes(t.to_bytes()[8..].try_into().expect("8 bytes"));
        self.inner.root_bound == u64::MAX || (low >> 1) < self.inner.root_bound
    }

    fn start(
        &self,
        parent: Option<&SpanContext>,
        kind: SpanKind,
        name: impl FnOnce() -> String,
        attrs: impl FnOnce() -> Vec<KeyValue>,
    ) -> Span {
        let ids = &self.inner.ids;
        let (trace_id, flags, state) = match parent {
            Some(p) => (
                p.trace_id(),
                p.trace_flags() & TraceFlags::SAMPLED,
                p.trace_state().clone(),
            ),
            None => {
                let t = ids.new_trace_id();
                let f = if self.sample_root(t) {
                    TraceFlags::SAMPLED
                } else {
                    TraceFlags::default()
                };
                (t, f, TraceState::default())
            }
        };
        if let Some((_, sdk)) = &self.inner.sdk
            && (parent.is_none() || flags.is_sampled())
        {
            let cx = match parent {
                Some(p) => Context::new().with_remote_span_context(p.clone()),
                None => Context::new(),
            };
            let span = sdk
                .span_builder(name())
                .with_kind(kind)
                .with_attributes(attrs())
                .start_with_context(sdk, &cx);
            let sc = span.span_context().clone();
            if sc.is_sampled() {
                return Span {
                    cx: sc,
                    recorded: Some(span),
                };
            }
            return Span {
                cx: sc,
                recorded: None,
            };
        }
        Span {
            cx: SpanContext::new(trace_id, ids.new_span_id(), flags, false, state),
            recorded: None,
        }
    }

    /// `process <topic>` (CONSUMER) for a consumed record, child of `parent`
    /// (the record's trace context) or the root of a new trace.
    pub fn process(&self, parent: Option<&SpanContext>, at: Consumed<'_>) -> Span {
        self.start(
            parent,
            SpanKind::Consumer,
            || format!("process {}", at.topic),
            || {
                vec![
                    KeyValue::new(attr::SYSTEM, "kafka"),
                    KeyValue::new(attr::OPERATION_TYPE, "process"),
                    KeyValue::new(attr::DESTINATION, at.topic.to_string()),
                    KeyValue::new(attr::PARTITION, at.partition.to_string()),
                    KeyValue::new(attr::GROUP, at.group.to_string()),
                    KeyValue::new(attr::OFFSET, at.offset),
                ]
            },
        )
    }

    /// [`Tracer::process`] for a message, its parent read from its headers.
    pub fn process_message<M: Message>(&self, m: &M, group: &str) -> Span {
        let parent = extract_message(m);
        self.process(
            parent.as_ref(),
            Consumed {
                topic: m.topic(),
                partition: m.partition(),
                offset: m.offset(),
                group,
            },
        )
    }

    /// `send <topic>` (PRODUCER), child of `parent` or the root of a new trace.
    /// `key` only when it is not personal data (a record or notice id).
    pub fn send(&self, parent: Option<&SpanContext>, topic: &str, key: Option<&str>) -> Span {
        self.start(
            parent,
            SpanKind::Producer,
            || format!("send {topic}"),
            || {
                let mut v = vec![
                    KeyValue::new(attr::SYSTEM, "kafka"),
                    KeyValue::new(attr::OPERATION_TYPE, "send"),
                    KeyValue::new(attr::DESTINATION, topic.to_string()),
                ];
                if let Some(k) = key {
                    v.push(KeyValue::new(attr::KEY, k.to_string()));
                }
                v
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry::trace::TraceContextExt;
    use rdkafka::message::BorrowedHeaders;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn via_propagator(tp: &str, ts: Option<&str>) -> Option<SpanContext> {
        let mut h = OwnedHeaders::new().insert(Header {
            key: TRACEPARENT,
            value: Some(tp),
        });
        if let Some(ts) = ts {
            h = h.insert(Header {
                key: TRACESTATE,
                value: Some(ts),
            });
        }
        let cx = TraceContextPropagator::new().extract(&HeaderExtractor(&h));
        let sc = cx.span().span_context().clone();
        sc.is_valid().then_some(sc)
    }

    #[test]
    fn inject_extract_round_trip() {
        let t = Tracer::propagating(1.0);
        let parent = parse(TP.as_bytes(), Some(b"congo=t61rcWkgMzE")).unwrap();
        let child = t.send(Some(&parent), "credit.records", Some("courts:0:1"));
        let h = inject(OwnedHeaders::new(), child.context());
        let back = extract(Some(&h)).unwrap();
        assert_eq!(back.trace_id(), parent.trace_id());
        assert_eq!(back.span_id(), child.context().span_id());
        assert_ne!(back.span_id(), parent.span_id());
        assert!(back.is_sampled());
        assert_eq!(back.trace_state().header(), "congo=t61rcWkgMzE");
        // What we write is exactly what OpenTelemetry's propagator writes.
        let mut inj = HeaderInjector::default();
        TraceContextPropagator::new().inject_context(
            &Context::new().with_remote_span_context(child.context().clone()),
            &mut inj,
        );
        let theirs = inj.into_headers();
        let mine = HeaderExtractor(&h);
        let theirs = HeaderExtractor(&theirs);
        assert_eq!(mine.get(TRACEPARENT), theirs.get(TRACEPARENT));
        assert_eq!(mine.get(TRACESTATE), theirs.get(TRACESTATE));
    }

    #[test]
    fn our_parser_agrees_with_the_propagator() {
        let cases = [
            TP,
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            " 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01 ",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736g00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "",
            "-",
            "00---",
            "garbage",
            "00-\u{e9}bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
        ];
        for c in cases {
            let ours = parse(c.as_bytes(), None);
            let theirs = via_propagator(c, None);
            assert_eq!(
                ours.as_ref()
                    .map(|s| (s.trace_id(), s.span_id(), s.trace_flags())),
                theirs
                    .as_ref()
                    .map(|s| (s.trace_id(), s.span_id(), s.trace_flags())),
                "{c:?}"
            );
        }
    }

    #[test]
    fn malformed_context_never_panics_and_starts_a_new_trace() {
        let t = Tracer::propagating(1.0);
        for bad in [
            &b"\xff\xfe"[..],
            b"00-zz",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0\xff",
            &[b'0'; 55][..],
            &[b'-'; 55][..],
        ] {
            let h = OwnedHeaders::new()
                .insert(Header {
                    key: TRACEPARENT,
                    value: Some(bad),
                })
                .insert(Header {
                    key: TRACESTATE,
                    value: Some(&b"\xff,,=="[..]),
                });
            let parent = extract(Some(&h));
            assert!(parent.is_none(), "{bad:?}");
            let s = t.send(parent.as_ref(), "x", None);
            assert!(s.context().is_valid());
            assert!(s.context().is_sampled());
        }
        assert!(extract::<BorrowedHeaders>(None).is_none());
        // A header without a value.
        let h = OwnedHeaders::new().insert::<str>(Header {
            key: TRACEPARENT,
            value: None,
        });
        assert!(extract(Some(&h)).is_none());
        // A bad tracestate keeps the traceparent.
        let sc = parse(TP.as_bytes(), Some(b"not a=valid,,state\xff")).unwrap();
        assert_eq!(sc.trace_state().header(), "");
    }

    #[test]
    fn new_traces_follow_the_ratio_and_children_their_parent() {
        let never = Tracer::propagating(0.0);
        let always = Tracer::propagating(1.0);
        let half = Tracer::propagating(0.5);
        assert!(!never.send(None, "x", None).context().is_sampled());
        assert!(always.send(None, "x", None).context().is_sampled());
        let n = (0..4000)
            .filter(|_| half.send(None, "x", None).context().is_sampled())
            .count();
        assert!((1600..2400).contains(&n), "{n}");
        let unsampled = parse(
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
            None,
        )
        .unwrap();
        assert!(
            !always
                .send(Some(&unsampled), "x", None)
                .context()
                .is_sampled()
        );
        let sampled = parse(TP.as_bytes(), None).unwrap();
        assert!(never.send(Some(&sampled), "x", None).context().is_sampled());
    }

    #[test]
    fn an_unreachable_endpoint_does_not_fail_or_block() {
        let started = std::time::Instant::now();
        let t = Tracer::from_config("test", "http://127.0.0.1:9", 1.0).unwrap();
        assert!(t.is_exporting());
        let p = t.process(
            None,
            Consumed {
                topic: "credit.courts.inbound",
                partition: 0,
                offset: 1,
                group: "g",
            },
        );
        assert!(p.is_recording());
        let s = t.send(Some(p.context()), "credit.records", Some("courts:0:1"));
        assert_eq!(s.context().trace_id(), p.context().trace_id());
        drop((s, p));
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(
            Tracer::from_config("test", "", 1.0)
                .map(|t| !t.is_exporting())
                .unwrap()
        );
    }
}
