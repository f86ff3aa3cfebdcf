//! One department record followed through the bus by its W3C trace context:
//! inbound (with a known `traceparent`) → normaliser (process span, its output
//! carries a send span's context) → engine → every notice → `credit-bus
//! subscribe --ack` → the feedback on the notice. A record without a
//! `traceparent` starts a new, valid trace.
//!
//! The normaliser runs in this process with an exporter collecting its spans,
//! so the parent links can be checked; the engine and `credit-bus` run as the
//! binaries (`CREDIT_BUS_BIN_DIR`, default `target/debug`).

use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use credit_bus_tests::*;
use credit_core::topics::Naming;
use credit_runtime::telemetry::Telemetry;
use credit_runtime::trace::{self, SpanContext, Tracer};
use opentelemetry::trace::{SpanKind, TraceId};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SpanData, SpanExporter};
use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::FutureRecord;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

#[derive(Debug, Clone, Default)]
struct Collector(Arc<Mutex<Vec<SpanData>>>);

impl SpanExporter for Collector {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.0.lock().unwrap().extend(batch);
        Ok(())
    }
}

fn bin(name: &str) -> std::path::PathBuf {
    let dir = std::env::var("CREDIT_BUS_BIN_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../target/debug").to_string());
    let p = std::path::Path::new(&dir).join(name);
    assert!(p.exists(), "{} not built: run scripts/test.sh", p.display());
    p
}

fn context_of(m: &OwnedMessage) -> SpanContext {
    trace::extract_message(m).unwrap_or_else(|| {
        panic!(
            "{} {}:{} carries no valid traceparent ({:?})",
            m.topic(),
            m.partition(),
            m.offset(),
            header(m, trace::TRACEPARENT)
        )
    })
}

/// Reads `topics` from the beginning until `done` holds or `timeout` passes.
fn read_all(
    topics: &[String],
    timeout: Duration,
    done: impl Fn(&[OwnedMessage]) -> bool,
) -> Vec<OwnedMessage> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .set("group.id", unique("trace-reader"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("fetch.wait.max.ms", "10")
        .create()
        .unwrap();
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    c.subscribe(&names).unwrap();
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while Instant::now() < deadline && !done(&out) {
        if let Some(Ok(m)) = c.poll(Duration::from_millis(100)) {
            out.push(m.detach());
        }
    }
    out
}

fn env_config<'c>(cmd: &'c mut Command, prefix: &str, registry: &str) -> &'c mut Command {
    cmd.env("CREDIT_BUS__KAFKA__BROKERS", brokers())
        .env("CREDIT_BUS__KAFKA__TOPIC_PREFIX", prefix)
        .env("CREDIT_BUS__KAFKA__PARTITIONS", "3")
        .env("CREDIT_BUS__REGISTRY__URL", registry)
        .env("CREDIT_BUS__TELEMETRY__LOG_FILTER", "warn")
        .env_remove("TRACEPARENT")
        .stdout(Stdio::null())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_record_is_one_trace_from_inbound_to_feedback() {
    let prefix = unique("t-trace");
    let naming = Naming::new(&prefix);
    create_topics(&prefix).await;
    let registry = Registry::start(&unique("t-trace-schemas")).await;

    // Two valid court records (dishonest-defaulter list entries): one with a trace context.
    let mut g = credit_datagen::Generator::new(7, 0.0);
    let traced = g.record("courts");
    let untraced = g.record("courts");
    let inbound = naming.inbound("courts");
    let p = producer();
    let traceparent = format!("00-{TRACE}-{PARENT}-01");
    let mut positions = Vec::new();
    for (s, tp) in [(&traced, Some(traceparent.as_str())), (&untraced, None)] {
        let mut h = OwnedHeaders::new();
        if let Some(tp) = tp {
            h = h.insert(Header {
                key: trace::TRACEPARENT,
                value: Some(tp),
            });
        }
        let d = p
            .send(
                FutureRecord::to(&inbound)
                    .key(&s.key)
                    .payload(&s.value)
                    .headers(h),
                Duration::from_secs(15),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap();
        positions.push((d.partition, d.offset));
    }
    let record_id = format!("courts:{}:{}", positions[0].0, positions[0].1);
    let other_id = format!("courts:{}:{}", positions[1].0, positions[1].1);

    // The normaliser, in this process, exporting every span to the collector.
    let spans = Collector::default();
    let tel = Telemetry::with_tracer(
        "credit-normaliser",
        Tracer::with_exporter("credit-normaliser", spans.clone(), 1.0, false),
    )
    .unwrap();
    let stop = tokio_util::sync::CancellationToken::new();
    let normaliser = tokio::spawn(credit_normaliser::run(
        credit_normaliser::Config {
            common: common(&prefix, &registry.url),
            normaliser: credit_normaliser::NormaliserConfig {
                department: "courts".into(),
                batch_size: 100,
                max_record_bytes: credit_normaliser::DEFAULT_MAX_RECORD_BYTES,
            },
        },
        tel,
        credit_runtime::ops::Readiness::default(),
        stop.clone(),
    ));
    let log = std::env::temp_dir().join(format!("{}.log", unique("trace-engine")));
    let _engine = Proc(
        env_config(
            &mut Command::new(bin("credit-engine")),
            &prefix,
            &registry.url,
        )
        .env("CREDIT_BUS__ENGINE__MAX_BATCH", "100")
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("engine starts"),
    );

    // The normalised records: same trace as their input, a new span whose
    // parent is the process span whose parent is the inbound record's span.
    let records = tokio::task::spawn_blocking({
        let t = naming.records();
        move || read_all(&[t], Duration::from_secs(60), |got| got.len() >= 2)
    })
    .await
    .unwrap();
    let by_key = |id: &str| {
        records
            .iter()
            .find(|m| m.key() == Some(id.as_bytes()))
            .unwrap_or_else(|| panic!("no record {id} on credit.records"))
    };
    let out = context_of(by_key(&record_id));
    let trace_id = TraceId::from_hex(TRACE).unwrap();
    assert_eq!(out.trace_id(), trace_id);
    assert_ne!(out.span_id().to_string(), PARENT);
    assert!(out.is_sampled());
    let fresh = context_of(by_key(&other_id));
    assert!(fresh.is_valid());
    assert_ne!(fresh.trace_id(), trace_id);

    // Spans end when the output is acknowledged: wait for them.
    let deadline = Instant::now() + Duration::from_secs(10);
    let (send, process) = loop {
        let got = spans.0.lock().unwrap().clone();
        let send = got
            .iter()
            .find(|s| s.span_context.span_id() == out.span_id())
            .cloned();
        let process = send.as_ref().and_then(|s| {
            got.iter()
                .find(|p| p.span_context.span_id() == s.parent_span_id)
                .cloned()
        });
        if let (Some(s), Some(p)) = (send, process) {
            break (s, p);
        }
        assert!(Instant::now() < deadline, "spans not exported: {got:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(send.name, format!("send {}", naming.records()));
    assert_eq!(send.span_kind, SpanKind::Producer);
    assert_eq!(process.name, format!("process {inbound}"));
    assert_eq!(process.span_kind, SpanKind::Consumer);
    assert_eq!(process.parent_span_id.to_string(), PARENT);
    assert_eq!(process.span_context.trace_id(), trace_id);
    let attr = |s: &SpanData, k: &str| {
        s.attributes
            .iter()
            .find(|kv| kv.key.as_str() == k)
            .map(|kv| kv.value.to_string())
    };
    assert_eq!(
        attr(&process, trace::attr::SYSTEM).as_deref(),
        Some("kafka")
    );
    assert_eq!(
        attr(&process, trace::attr::GROUP),
        Some(naming.normaliser_group("courts"))
    );
    assert_eq!(
        attr(&process, trace::attr::OFFSET),
        Some(positions[0].1.to_string())
    );
    assert_eq!(
        attr(&process, trace::attr::PARTITION),
        Some(positions[0].0.to_string())
    );
    assert_eq!(
        attr(&send, trace::attr::DESTINATION),
        Some(naming.records())
    );
    assert_eq!(attr(&send, trace::attr::KEY), Some(record_id.clone()));
    // The inbound key is the department's own id: never a span attribute.
    for s in spans.0.lock().unwrap().iter() {
        for kv in &s.attributes {
            assert!(
                !kv.value.to_string().contains(&traced.key),
                "{s:?} names the inbound key"
            );
        }
    }

    // Every notice the engine sends for the record carries its trace.
    let notice_topics: Vec<String> = credit_core::DEPARTMENTS
        .iter()
        .map(|d| naming.notices(d.id))
        .collect();
    let mine = format!("{record_id}/");
    let notices = tokio::task::spawn_blocking({
        let topics = notice_topics.clone();
        let mine = mine.clone();
        move || {
            // Notices of one record are sent in one batch: settle a little after the first.
            let first: Mutex<Option<Instant>> = Mutex::new(None);
            read_all(&topics, Duration::from_secs(90), |got| {
                let any = got
                    .iter()
                    .any(|m| m.key().is_some_and(|k| k.starts_with(mine.as_bytes())));
                let mut f = first.lock().unwrap();
                if any && f.is_none() {
                    *f = Some(Instant::now());
                }
                f.is_some_and(|t| t.elapsed() > Duration::from_secs(3))
            })
        }
    })
    .await
    .unwrap();
    let ours: Vec<&OwnedMessage> = notices
        .iter()
        .filter(|m| m.key().is_some_and(|k| k.starts_with(mine.as_bytes())))
        .collect();
    assert!(
        !ours.is_empty(),
        "no notice for {record_id}; engine log: {}",
        log.display()
    );
    for n in &ours {
        let cx = context_of(n);
        assert_eq!(cx.trace_id(), trace_id, "{:?}", n.key());
        assert_ne!(cx.span_id(), out.span_id());
    }
    for n in notices.iter().filter(|m| {
        m.key()
            .is_some_and(|k| k.starts_with(format!("{other_id}/").as_bytes()))
    }) {
        assert_eq!(context_of(n).trace_id(), fresh.trace_id());
    }

    // A department acknowledges through `credit-bus subscribe --ack`: the
    // feedback joins the notice's trace.
    let first = ours[0];
    let notice_id = String::from_utf8(first.key().unwrap().to_vec()).unwrap();
    let topic = first.topic().to_string();
    let dept = topic
        .strip_prefix(&format!("{prefix}."))
        .and_then(|t| t.strip_suffix(".notices"))
        .unwrap()
        .to_string();
    let on_topic = notices.iter().filter(|m| m.topic() == topic).count();
    let status = tokio::task::spawn_blocking({
        let (prefix, url, dept) = (prefix.clone(), registry.url.clone(), dept.clone());
        move || {
            env_config(&mut Command::new(bin("credit-bus")), &prefix, &url)
                .args(["subscribe", "--department", &dept, "--ack", "applied"])
                .args(["--max", &on_topic.to_string()])
                .stderr(Stdio::null())
                .status()
        }
    })
    .await
    .unwrap()
    .expect("credit-bus runs");
    assert!(status.success(), "credit-bus subscribe --ack: {status}");
    let feedback = tokio::task::spawn_blocking({
        let t = naming.feedback(&dept);
        let id = notice_id.clone();
        move || {
            read_all(&[t], Duration::from_secs(30), |got| {
                got.iter().any(|m| m.key() == Some(id.as_bytes()))
            })
        }
    })
    .await
    .unwrap();
    let fb = feedback
        .iter()
        .find(|m| m.key() == Some(notice_id.as_bytes()))
        .expect("feedback on the notice");
    let fcx = context_of(fb);
    assert_eq!(fcx.trace_id(), trace_id);
    assert_ne!(fcx.span_id(), context_of(first).span_id());

    stop.cancel();
    normaliser.await.unwrap().unwrap();
    registry.stop().await;
}
