//! End-to-end fan-out through a real broker: the engine turning list entries
//! into notices on every implementing department's topic, beside a raw rdkafka
//! produce of the same number of equally sized records to the same topics, in
//! the same run.
//!
//! * Throughput: the engine drains a pre-published backlog of entries; the
//!   clock runs from the end of its recovery (every partition claimed, read
//!   and given floors) to the metric counting the last notice acknowledged
//!   (claim and recovery are measured by the chaos test). The baseline is a
//!   raw copy of exactly the records the engine wrote (keys, payloads,
//!   headers, partitions; so equally sized and equally compressible) to fresh
//!   department topics, with the same producer and acknowledgement counting,
//!   awaiting every acknowledgement.
//! * Latency: on fresh topics, entries published at half the measured entry
//!   rate (or `--latency-rate`); latency is from handing an entry to the
//!   producer to reading back the last of its notices (an upper bound on "last
//!   notice acknowledged"), beside a raw fan-out (consume, produce as many
//!   records as the entry has notices, store offsets after the acks) at the
//!   same rate. The engine's own histogram of input timestamp to last notice
//!   acknowledged is printed too.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use credit_core::topics::Naming;
use credit_measures::Catalogue;
use credit_measures::rules;
use credit_runtime::acks::{AckContext, AckProducer, Acks};
use credit_runtime::metrics::MetricName;
use credit_runtime::telemetry::Telemetry;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::e2e::{E2eArgs, common, cpu_seconds, kafka, metric, setup, start_registry};

#[derive(clap::Args, Clone)]
pub struct FanoutArgs {
    #[arg(
        long,
        env = "CREDIT_BUS__KAFKA__BROKERS",
        default_value = "127.0.0.1:9092"
    )]
    brokers: String,
    /// Normalised records in the throughput backlog (about three in four are list entries).
    #[arg(long, default_value_t = 20_000)]
    records: usize,
    /// Records in the latency run.
    #[arg(long, default_value_t = 3_000)]
    latency_records: usize,
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    #[arg(long, default_value_t = 2000)]
    batch_size: usize,
    /// Records/s in the latency run; 0: half the measured entry rate.
    #[arg(long, default_value_t = 0.0)]
    latency_rate: f64,
}

fn args(a: &FanoutArgs) -> E2eArgs {
    E2eArgs {
        brokers: a.brokers.clone(),
        department: "courts".into(),
        records: a.records,
        latency_records: a.latency_records,
        latency_rate: 0,
        partitions: a.partitions,
        batch_size: a.batch_size,
        bad_share: 0.0,
    }
}

struct Engine {
    tel: Telemetry,
    stop: CancellationToken,
    handle: tokio::task::JoinHandle<Result<(), credit_engine::Error>>,
}

fn start_engine(a: &FanoutArgs, prefix: &str, registry: &str) -> anyhow::Result<Engine> {
    let config = credit_engine::Config {
        common: common(kafka(&args(a), prefix), registry),
        engine: credit_engine::EngineConfig {
            batch_size: a.batch_size,
            catalogue_file: String::new(),
            takeover_grace_ms: 1500,
            instance_id: format!("{prefix}-bench"),
        },
    };
    let tel = Telemetry::new("credit-engine")?;
    let stop = CancellationToken::new();
    let handle = tokio::spawn(credit_engine::run(
        config,
        tel.clone(),
        Default::default(),
        stop.clone(),
    ));
    Ok(Engine { tel, stop, handle })
}

async fn publish(
    producer: &FutureProducer,
    topic: &str,
    records: &[(String, Vec<u8>)],
    rate: f64,
) -> anyhow::Result<HashMap<String, Instant>> {
    let start = Instant::now();
    let mut sent = HashMap::with_capacity(records.len());
    let mut acks = Vec::with_capacity(records.len());
    for (i, (k, v)) in records.iter().enumerate() {
        if rate > 0.0 {
            let due = Duration::from_secs_f64(i as f64 / rate);
            if let Some(w) = due.checked_sub(start.elapsed()) {
                tokio::time::sleep(w).await;
            }
        }
        sent.insert(k.clone(), Instant::now());
        acks.push(
            producer
                .send_result(FutureRecord::to(topic).key(k).payload(v))
                .map_err(|(e, _)| e)?,
        );
    }
    for a in acks {
        a.await?.map_err(|(e, _)| e)?;
    }
    Ok(sent)
}

/// Reads every notice topic from the beginning; per record id, when its last
/// notice arrived, until `want` notices arrived.
fn read_back(
    brokers: &str,
    naming: &Naming,
    partitions: i32,
    want: usize,
    ready: Arc<AtomicBool>,
) -> anyhow::Result<HashMap<String, Instant>> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("fetch.wait.max.ms", "10")
        .set("enable.auto.commit", "false")
        .set("group.id", "bench-fanout-read-back")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for d in credit_core::DEPARTMENTS {
        for p in 0..partitions {
            tpl.add_partition_offset(&naming.notices(d.id), p, Offset::Beginning)?;
        }
    }
    c.assign(&tpl)?;
    ready.store(true, Ordering::Release);
    let (mut last, mut n) = (HashMap::new(), 0usize);
    let deadline = Instant::now() + Duration::from_secs(300);
    while n < want && Instant::now() < deadline {
        if let Some(m) = c.poll(Duration::from_millis(50)) {
            let m = m?;
            n += 1;
            if let Some(record) = m
                .key()
                .and_then(|k| std::str::from_utf8(k).ok())
                .and_then(|k| k.split('/').next())
            {
                last.insert(record.to_string(), Instant::now());
            }
        }
    }
    Ok(last)
}

/// [`read_back`] on its own thread; the flag turns true once it is assigned.
fn spawn_read_back(
    a: &FanoutArgs,
    naming: &Naming,
    want: usize,
) -> (
    std::thread::JoinHandle<anyhow::Result<HashMap<String, Instant>>>,
    Arc<AtomicBool>,
) {
    let ready = Arc::new(AtomicBool::new(false));
    let (b, n, p, r) = (
        a.brokers.clone(),
        naming.clone(),
        a.partitions,
        ready.clone(),
    );
    (
        std::thread::spawn(move || read_back(&b, &n, p, want, r)),
        ready,
    )
}

/// A notice as the engine wrote it: department (index), partition, key,
/// payload and headers.
struct Written {
    department: usize,
    partition: i32,
    key: Vec<u8>,
    payload: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
}

impl Written {
    fn headers(&self) -> rdkafka::message::OwnedHeaders {
        self.headers.iter().fold(
            rdkafka::message::OwnedHeaders::new_with_capacity(self.headers.len()),
            |h, (k, v)| {
                h.insert(rdkafka::message::Header {
                    key: k,
                    value: Some(v),
                })
            },
        )
    }
}

/// Every notice on the department topics, as written.
fn read_all(
    brokers: &str,
    naming: &Naming,
    partitions: i32,
    want: usize,
) -> anyhow::Result<Vec<Written>> {
    use rdkafka::message::Headers;
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("fetch.wait.max.ms", "10")
        .set("enable.auto.commit", "false")
        .set("group.id", "bench-fanout-read-all")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    let mut index = HashMap::new();
    for (i, d) in credit_core::DEPARTMENTS.iter().enumerate() {
        index.insert(naming.notices(d.id), i);
        for p in 0..partitions {
            tpl.add_partition_offset(&naming.notices(d.id), p, Offset::Beginning)?;
        }
    }
    c.assign(&tpl)?;
    let mut out = Vec::with_capacity(want);
    let deadline = Instant::now() + Duration::from_secs(300);
    while out.len() < want && Instant::now() < deadline {
        if let Some(m) = c.poll(Duration::from_millis(50)) {
            let m = m?;
            out.push(Written {
                department: index[m.topic()],
                partition: m.partition(),
                key: m.key().unwrap_or_default().to_vec(),
                payload: m.payload().unwrap_or_default().to_vec(),
                headers: m.headers().map_or(Vec::new(), |h| {
                    h.iter()
                        .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                        .collect()
                }),
            });
        }
    }
    anyhow::ensure!(
        out.len() == want,
        "read {} of {want} notices back",
        out.len()
    );
    Ok(out)
}

/// The latency baseline: consume each entry and produce as many records as it
/// has notices (payloads and headers of real notices, in turn), to the
/// department topics, storing offsets after every batch's acks: a raw rdkafka
/// fan-out through the same broker, without the engine's planning, fencing and
/// changelog.
async fn raw_fanout_loop(
    k: &credit_runtime::config::KafkaConfig,
    naming: &Naming,
    fanout: HashMap<String, usize>,
    sample: Arc<Vec<Written>>,
    batch_size: usize,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    use futures::FutureExt;
    use rdkafka::consumer::StreamConsumer;
    let inbound = naming.records();
    let consumer: StreamConsumer =
        credit_runtime::kafka::consumer(k, "bench-raw-fanout", "bench-raw-fanout").create()?;
    consumer.subscribe(&[&inbound])?;
    let producer: AckProducer =
        credit_runtime::kafka::producer(k, "bench-raw-fanout").create_with_context(AckContext)?;
    let topics: Vec<String> = credit_core::DEPARTMENTS
        .iter()
        .map(|d| naming.notices(d.id))
        .collect();
    let mut key = String::new();
    let mut turn = 0usize;
    loop {
        let m = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            m = consumer.recv() => m,
        };
        let acks = Acks::new();
        let mut offsets: HashMap<i32, i64> = HashMap::new();
        let (mut next, mut read) = (Some(m), 0);
        while let Some(m) = next.take() {
            let m = m?;
            read += 1;
            let id = m
                .key()
                .and_then(|k| std::str::from_utf8(k).ok())
                .unwrap_or("");
            for i in 0..fanout.get(id).copied().unwrap_or(0) {
                key.clear();
                key.push_str(id);
                key.push('/');
                key.push_str(itoa::Buffer::new().format(i));
                let w = &sample[turn % sample.len()];
                turn += 1;
                acks.send(
                    &producer,
                    BaseRecord::to(&topics[i % topics.len()])
                        .key(key.as_str())
                        .payload(&w.payload[..])
                        .headers(w.headers()),
                )
                .await?;
            }
            let o = offsets.entry(m.partition()).or_insert(0);
            *o = (*o).max(m.offset() + 1);
            if read < batch_size {
                next = consumer.recv().now_or_never();
            }
        }
        acks.wait().await?;
        let mut tpl = TopicPartitionList::new();
        for (p, o) in &offsets {
            tpl.add_partition_offset(&inbound, *p, Offset::Offset(*o))?;
        }
        consumer.store_offsets(&tpl)?;
    }
}

fn percentiles(
    w: &credit_bus_tests::engine::Workload,
    sent: &HashMap<String, Instant>,
    got: &HashMap<String, Instant>,
) -> (f64, f64, usize) {
    let mut ms: Vec<f64> = w
        .entries
        .iter()
        .filter_map(|en| {
            let s = sent.get(&en.record_id)?;
            let g = got.get(&en.record_id)?;
            Some(g.duration_since(*s).as_secs_f64() * 1000.0)
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    let p = |q: f64| {
        ms.get(((ms.len().max(1) - 1) as f64 * q) as usize)
            .copied()
            .unwrap_or(f64::NAN)
    };
    (p(0.5), p(0.99), ms.len())
}

/// The upper bound (ms) of the histogram bucket holding quantile `q`, from
/// Prometheus text.
fn bucket_quantile(text: &str, name: &str, q: f64) -> String {
    let prefix = format!("{name}_bucket{{");
    let mut buckets: Vec<(f64, f64)> = text
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| {
            let le = l.split("le=\"").nth(1)?.split('"').next()?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, l.rsplit_once(' ')?.1.parse().ok()?))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = buckets.last().map_or(0.0, |b| b.1);
    buckets
        .iter()
        .find(|(_, n)| *n >= q * total && total > 0.0)
        .map_or("?".into(), |(le, _)| format!("{}", le * 1000.0))
}

/// Expected notices for a workload under the shipped catalogue.
fn expected_notices(w: &credit_bus_tests::engine::Workload) -> usize {
    let c = Catalogue::parse(credit_measures::V1).expect("the shipped catalogue is valid");
    w.entries.iter().map(|e| rules::targets(&c, e).len()).sum()
}

async fn record_schema(registry: &str, naming: &Naming) -> anyhow::Result<u32> {
    let client = credit_schemas::registry::RegistryClient::new(registry)?;
    Ok(client
        .register(
            &credit_core::topics::value_subject(&naming.records()),
            credit_schemas::CREDIT_RECORD_AVSC,
        )
        .await?)
}

pub async fn run(a: FanoutArgs) -> anyhow::Result<()> {
    let e = args(&a);
    let (prefix, naming) = setup(&e, "fo").await?;
    let registry = start_registry(&e, &prefix).await?;
    let schema = record_schema(&registry.url(), &naming).await?;
    let w = credit_bus_tests::engine::workload(a.records, schema, 5);
    let total = expected_notices(&w);
    println!(
        "fan-out through the broker at {}: {} records, {} list entries, {total} notices, {} partitions, batch {}",
        a.brokers,
        w.records.len(),
        w.entries.len(),
        a.partitions,
        a.batch_size
    );
    let producer: FutureProducer =
        credit_runtime::kafka::producer(&kafka(&e, &prefix), "bench-fanout").create()?;
    publish(&producer, &naming.records(), &w.records, 0.0).await?;

    // The engine drains the backlog.
    let cpu0 = cpu_seconds();
    let engine = start_engine(&a, &prefix, &registry.url())?;
    let recovered = format!("{}_count", MetricName::EngineRecoveryDuration.exported());
    let (mut first, last);
    first = None;
    loop {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let text = engine.tel.render()?;
        let sent = metric(&text, MetricName::NoticesSent.exported());
        if first.is_none() && metric(&text, &recovered) >= a.partitions as f64 {
            first = Some(Instant::now());
        }
        if sent as usize >= total {
            last = Instant::now();
            break;
        }
        if engine.handle.is_finished() {
            anyhow::bail!("engine stopped early: {:?}", engine.handle.await?);
        }
    }
    let engine_cpu = cpu_seconds() - cpu0;
    let first = first.unwrap_or(last);
    let secs = last.duration_since(first).as_secs_f64();
    let engine_rate = total as f64 / secs;
    let entry_rate = w.records.len() as f64 / secs;
    engine.stop.cancel();
    engine.handle.await??;

    // The baseline copies exactly what the engine wrote (keys, payloads,
    // headers, partitions) with a raw produce: equally sized and equally
    // compressible records.
    let written = read_all(&a.brokers, &naming, a.partitions, total)?;
    let mean = written.iter().map(|w| w.payload.len()).sum::<usize>() as f64 / total as f64;
    let (copy_prefix, copy_naming) = setup(&e, "fr").await?;
    let copy_topics: Vec<String> = credit_core::DEPARTMENTS
        .iter()
        .map(|d| copy_naming.notices(d.id))
        .collect();
    // The same producer and acknowledgement counting the engine uses, so the
    // ratio measures the engine's own work, not a difference in client API.
    let raw: AckProducer = credit_runtime::kafka::producer(&kafka(&e, &copy_prefix), "bench-raw")
        .create_with_context(AckContext)?;
    let cpu0 = cpu_seconds();
    let t = Instant::now();
    let acks = Acks::new();
    for w in &written {
        acks.send(
            &raw,
            BaseRecord::to(&copy_topics[w.department])
                .partition(w.partition)
                .key(&w.key[..])
                .payload(&w.payload[..])
                .headers(w.headers()),
        )
        .await?;
    }
    acks.wait().await?;
    let raw_secs = t.elapsed().as_secs_f64();
    let raw_cpu = cpu_seconds() - cpu0;
    let raw_rate = total as f64 / raw_secs;

    let rate = if a.latency_rate > 0.0 {
        a.latency_rate
    } else {
        entry_rate / 2.0
    };
    let c = Catalogue::parse(credit_measures::V1).expect("the shipped catalogue is valid");

    // Latency baseline: the raw fan-out at the same rate, on fresh topics.
    let (raw_prefix, raw_naming) = setup(&e, "fb").await?;
    let rw = credit_bus_tests::engine::workload(a.latency_records, schema, 6);
    let raw_total = expected_notices(&rw);
    let fanout: HashMap<String, usize> = rw
        .entries
        .iter()
        .map(|en| (en.record_id.clone(), rules::targets(&c, en).len()))
        .collect();
    let (reader, ready) = spawn_read_back(&a, &raw_naming, raw_total);
    let stop = CancellationToken::new();
    let copier = {
        let sample = Arc::new(written.into_iter().take(10_000).collect::<Vec<_>>());
        let (k, n, stop, bs) = (
            kafka(&e, &raw_prefix),
            raw_naming.clone(),
            stop.clone(),
            a.batch_size,
        );
        tokio::spawn(async move { raw_fanout_loop(&k, &n, fanout, sample, bs, stop).await })
    };
    while !ready.load(Ordering::Acquire) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Give the copy's consumer group time to join before the clock matters.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let rp: FutureProducer =
        credit_runtime::kafka::producer(&kafka(&e, &raw_prefix), "bench-fanout-lat").create()?;
    let sent = publish(&rp, &raw_naming.records(), &rw.records, rate).await?;
    let got = reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader panicked"))??;
    stop.cancel();
    copier.await??;
    let (r50, r99, rn) = percentiles(&rw, &sent, &got);

    // Latency of the engine at the same rate, on fresh topics.
    let (lat_prefix, lat_naming) = setup(&e, "fl").await?;
    let lat_schema = record_schema(&registry.url(), &lat_naming).await?;
    let lw = credit_bus_tests::engine::workload(a.latency_records, lat_schema, 6);
    let lat_total = expected_notices(&lw);
    let (reader, ready) = spawn_read_back(&a, &lat_naming, lat_total);
    let engine = start_engine(&a, &lat_prefix, &registry.url())?;
    while !ready.load(Ordering::Acquire) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Let the engine join its group and recover its partitions first: the
    // recovery histogram counts one observation per partition recovered.
    let deadline = Instant::now() + Duration::from_secs(60);
    while metric(&engine.tel.render()?, &recovered) < a.partitions as f64 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the engine recovered no partitions within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lp: FutureProducer =
        credit_runtime::kafka::producer(&kafka(&e, &lat_prefix), "bench-fanout-lat").create()?;
    let sent = publish(&lp, &lat_naming.records(), &lw.records, rate).await?;
    let got = reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader panicked"))??;
    let own = engine.tel.render()?;
    engine.stop.cancel();
    let _ = engine.handle.await;
    registry.stop().await?;
    let (e50, e99, en) = percentiles(&lw, &sent, &got);
    let hist = MetricName::EngineFanoutLatency.exported();
    let (h50, h99) = (
        bucket_quantile(&own, hist, 0.5),
        bucket_quantile(&own, hist, 0.99),
    );

    println!(
        "{:<26}{:>14}{:>24}",
        "", "notices/s", "notices/CPU-s (bench)"
    );
    println!(
        "{:<26}{:>14.0}{:>24.0}",
        "raw rdkafka produce",
        raw_rate,
        total as f64 / raw_cpu.max(1e-9)
    );
    println!(
        "{:<26}{:>14.0}{:>24.0}",
        "engine fan-out",
        engine_rate,
        total as f64 / engine_cpu.max(1e-9)
    );
    println!(
        "{:<26}{:>14.3}",
        "ratio (engine/raw)",
        engine_rate / raw_rate
    );
    println!(
        "  the baseline copies the engine's notices (key, payload of {mean:.0} bytes on average, headers); engine entries/s {:.0}",
        entry_rate
    );
    println!(
        "  latency, entry published -> last of its notices read back, at {rate:.0} records/s:"
    );
    println!("    raw rdkafka fan-out       p50 {r50:.1} ms, p99 {r99:.1} ms ({rn} entries)");
    println!("    engine fan-out            p50 {e50:.1} ms, p99 {e99:.1} ms ({en} entries)");
    println!(
        "  engine's own histogram, input timestamp -> last notice acknowledged: p50 <= {h50} ms, p99 <= {h99} ms (bucket bounds)"
    );
    Ok(())
}
