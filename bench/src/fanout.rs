//! End-to-end fan-out through a real broker: the engine turning list entries
//! into notices on every implementing department's topic, beside a raw rdkafka
//! produce of the same number of equally sized records to the same topics, in
//! the same run.
//!
//! * Throughput, in `--rounds`: the engine drains a pre-published backlog of
//!   entries; the clock runs from the end of its recovery (every partition
//!   claimed, read and given floors) to the metric counting the last notice
//!   acknowledged (claim and recovery are measured by the chaos test). Then
//!   the baseline: a raw copy of exactly the records the engine wrote (keys,
//!   payloads, headers, partitions; so equally sized and equally
//!   compressible), with the same producer and acknowledgement counting,
//!   awaiting every acknowledgement. Each on topics of its own, deleted when
//!   done; each round's ratio and the median are printed.
//! * Latency, after the first round: entries published at half its engine
//!   rate (or `--latency-rate`) for `--warmup-secs` + `--latency-secs`,
//!   counting only those published after the warm-up; first through a raw
//!   fan-out (consume, produce as many records as the entry has notices,
//!   store offsets after the acks: latency to the last record acknowledged and
//!   read back), then through the engine (to the last notice read back, and
//!   its own histogram of input timestamp to last notice acknowledged over the
//!   same window), each on fresh topics.
//!
//! A warm-up round of each (`--warmup-records`) comes first, not counted:
//! a fresh Kafka broker's first consumer group and producer ids take seconds.
//! `--read-committed` reads notices back with `isolation.level=read_committed`
//! (for an engine whose output is transactional).
//!
//! `BENCH_MARK=1` prints a line to
//! stderr as each measured phase starts, for a profiler to attach.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use credit_core::topics::Naming;
use credit_runtime::acks::{AckContext, AckProducer, Acks};
use credit_runtime::metrics::MetricName;
use credit_runtime::telemetry::Telemetry;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::e2e::{
    E2eArgs, common, copy_topic, cpu_seconds, kafka, metric, setup, start_registry, teardown,
};
use crate::procs::{thread_delta, threads_of};

#[derive(clap::Args, Clone)]
pub struct FanoutArgs {
    #[arg(
        long,
        env = "CREDIT_BUS__KAFKA__BROKERS",
        default_value = "127.0.0.1:9092"
    )]
    brokers: String,
    /// Normalised records in the throughput backlog (about three in four are list entries).
    #[arg(long, default_value_t = 100_000)]
    records: usize,
    /// Seconds measured in each latency run, after the warm-up.
    #[arg(long, default_value_t = 10.0)]
    latency_secs: f64,
    /// Seconds of each latency run at the same rate before measuring starts
    /// (connections, producer ids, fetch sessions, caches).
    #[arg(long, default_value_t = 2.0)]
    warmup_secs: f64,
    /// Partitions of the records and command topics (the engine's input).
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// Partitions of each department's notices topic, as `kafka.notice_partitions`
    /// (default 1, the deployment default): each partition a batch touches is a
    /// produce request of its own (librdkafka sends one per partition).
    #[arg(long, default_value_t = 1)]
    notice_partitions: i32,
    #[arg(long, default_value_t = 2000)]
    batch_size: usize,
    /// Throughput rounds (engine, then baseline, each on fresh topics).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Records/s in the latency run; 0: half the measured entry rate.
    #[arg(long, default_value_t = 0.0)]
    latency_rate: f64,
    /// Read notices back with `isolation.level=read_committed`: an engine
    /// with transactional output has acknowledged a notice once its
    /// transaction is committed.
    #[arg(long)]
    read_committed: bool,
    /// Records of an engine round and a raw round before the measured ones
    /// (group coordinator, producer ids, log segments, caches), not counted;
    /// 0: none.
    #[arg(long, default_value_t = 20_000)]
    warmup_records: usize,
}

/// The isolation level readers of notices use.
fn isolation(a: &FanoutArgs) -> &'static str {
    if a.read_committed {
        "read_committed"
    } else {
        "read_uncommitted"
    }
}

fn args(a: &FanoutArgs) -> E2eArgs {
    E2eArgs {
        brokers: a.brokers.clone(),
        department: "courts".into(),
        records: a.records,
        latency_records: 0,
        latency_rate: 0,
        partitions: a.partitions,
        notice_partitions: a.notice_partitions,
        batch_size: a.batch_size,
        bad_share: 0.0,
        rounds: a.rounds,
        warmup_records: 0,
        python: String::new(),
        broker_pid: None,
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
            max_batch: a.batch_size,
            catalogue_file: String::new(),
            instance_id: format!("{prefix}-bench"),
            ..credit_engine::Config::load(None)
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .engine
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

/// Publishes `records` to `topic` at `rate` records/s (0: as fast as possible);
/// returns when each was handed to the producer. The producer is warmed first
/// (one record to `warm`, awaited): an idempotent producer's first send waits
/// for its producer id, which is start-up, not latency.
async fn publish(
    producer: &FutureProducer,
    topic: &str,
    warm: &str,
    records: &[(String, Vec<u8>)],
    rate: f64,
) -> anyhow::Result<HashMap<String, Instant>> {
    producer
        .send(
            FutureRecord::to(warm).key("warm-up").payload("warm-up"),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)?;
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

/// Reads every notice topic from its current end (as the broker reports it)
/// and, per record id, notes when its last record arrived, counting only keys
/// of `segments` '/'-separated parts (a raw fan-out writes `<record>/<n>`, the
/// engine `<record>/<measure>/<dept>/<kind>/<generation>`), until `want` came.
fn read_back(
    brokers: &str,
    naming: &Naming,
    partitions: i32,
    (want, segments): (usize, usize),
    ready: Arc<AtomicBool>,
    isolation: &str,
) -> anyhow::Result<HashMap<String, Instant>> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("isolation.level", isolation)
        .set("fetch.wait.max.ms", "10")
        .set("enable.auto.commit", "false")
        .set("group.id", "bench-fanout-read-back")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for d in credit_core::DEPARTMENTS {
        let t = naming.notices(d.id);
        for p in 0..partitions {
            // A topic just created may not be known to the broker's
            // metadata for a moment (KRaft propagates it): retry.
            let mut tries = 0;
            let (_, high) = loop {
                match c.fetch_watermarks(&t, p, Duration::from_secs(10)) {
                    Ok(w) => break w,
                    Err(e) if tries < 30 => {
                        tries += 1;
                        eprintln!("read-back: watermarks of {t}/{p}: {e}; retrying");
                        std::thread::sleep(Duration::from_millis(500));
                    }
                    Err(e) => return Err(e.into()),
                }
            };
            tpl.add_partition_offset(&t, p, Offset::Offset(high))?;
        }
    }
    c.assign(&tpl)?;
    ready.store(true, Ordering::Release);
    let (mut last, mut n) = (HashMap::new(), 0usize);
    let deadline = Instant::now() + Duration::from_secs(300);
    while n < want && Instant::now() < deadline {
        if let Some(m) = c.poll(Duration::from_millis(50)) {
            let m = m?;
            let Some(key) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
                continue;
            };
            if key.split('/').count() != segments {
                continue;
            }
            n += 1;
            if let Some(record) = key.split('/').next() {
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
    want: (usize, usize),
) -> (
    std::thread::JoinHandle<anyhow::Result<HashMap<String, Instant>>>,
    Arc<AtomicBool>,
) {
    let ready = Arc::new(AtomicBool::new(false));
    let (b, n, p, r) = (
        a.brokers.clone(),
        naming.clone(),
        a.notice_partitions,
        ready.clone(),
    );
    (
        {
            let iso = isolation(a);
            std::thread::spawn(move || read_back(&b, &n, p, want, r, iso))
        },
        ready,
    )
}

/// A notice as the engine wrote it: department (index), partition, key,
/// payload and headers.
#[derive(Clone)]
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
    isolation: &str,
) -> anyhow::Result<Vec<Written>> {
    use rdkafka::message::Headers;
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("isolation.level", isolation)
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
/// changelog. Returns, per entry, when the last of its records was acknowledged.
async fn raw_fanout_loop(
    k: &credit_runtime::config::KafkaConfig,
    inbound: &str,
    naming: &Naming,
    fanout: HashMap<String, usize>,
    sample: Arc<Vec<Written>>,
    batch_size: usize,
    stop: CancellationToken,
) -> anyhow::Result<HashMap<String, Instant>> {
    use futures::FutureExt;
    use rdkafka::consumer::StreamConsumer;
    let consumer: StreamConsumer =
        credit_runtime::kafka::consumer(k, "bench-raw-fanout", "bench-raw-fanout").create()?;
    consumer.subscribe(&[inbound])?;
    let producer: AckProducer =
        credit_runtime::kafka::producer(k, "bench-raw-fanout").create_with_context(AckContext)?;
    let topics: Vec<String> = credit_core::DEPARTMENTS
        .iter()
        .map(|d| naming.notices(d.id))
        .collect();
    let mut key = String::new();
    let mut turn = 0usize;
    let mut acked = HashMap::with_capacity(fanout.len());
    loop {
        let m = tokio::select! {
            _ = stop.cancelled() => return Ok(acked),
            m = consumer.recv() => m,
        };
        let acks = Acks::new();
        let mut offsets: HashMap<i32, i64> = HashMap::new();
        let mut ids = Vec::new();
        let (mut next, mut read) = (Some(m), 0);
        while let Some(m) = next.take() {
            let m = m?;
            read += 1;
            let id = m
                .key()
                .and_then(|k| std::str::from_utf8(k).ok())
                .unwrap_or("");
            let n = fanout.get(id).copied().unwrap_or(0);
            if n > 0 {
                ids.push(id.to_string());
            }
            for i in 0..n {
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
        let now = Instant::now();
        acked.extend(ids.into_iter().map(|id| (id, now)));
        let mut tpl = TopicPartitionList::new();
        for (p, o) in &offsets {
            tpl.add_partition_offset(inbound, *p, Offset::Offset(*o))?;
        }
        consumer.store_offsets(&tpl)?;
    }
}

/// p50 and p99 (ms) from an entry's publication to `got`, over the entries
/// published at or after `from` (the end of the warm-up), and how many.
fn percentiles(
    w: &credit_bus_tests::engine::Workload,
    sent: &HashMap<String, Instant>,
    got: &HashMap<String, Instant>,
    from: Instant,
) -> (f64, f64, usize) {
    let mut ms: Vec<f64> = w
        .entries
        .iter()
        .filter_map(|en| {
            let s = sent.get(&en.record_id).filter(|s| **s >= from)?;
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

/// Cumulative bucket counts (upper bound in s, count) of a histogram, from
/// Prometheus text.
fn buckets(text: &str, name: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{");
    let mut b: Vec<(f64, f64)> = text
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
    b.sort_by(|a, b| a.0.total_cmp(&b.0));
    b
}

/// The upper bound (ms) of the bucket holding quantile `q` of the
/// observations made between two renderings of the same histogram.
fn bucket_quantile(before: &str, after: &str, name: &str, q: f64) -> String {
    let old = buckets(before, name);
    let window: Vec<(f64, f64)> = buckets(after, name)
        .into_iter()
        .map(|(le, n)| {
            let was = old.iter().find(|(l, _)| *l == le).map_or(0.0, |b| b.1);
            (le, n - was)
        })
        .collect();
    let total = window.last().map_or(0.0, |b| b.1);
    window
        .iter()
        .find(|(_, n)| *n >= q * total && total > 0.0)
        .map_or("?".into(), |(le, _)| format!("{}", le * 1000.0))
}

/// The notices the engine plans for a workload, per record id: its own
/// planning run as reference (entries already ended send nothing, duties
/// follow the catalogue's validity and publication periods), over
/// `partitions` engine partitions.
fn planned_notices(
    w: &credit_bus_tests::engine::Workload,
    partitions: i32,
) -> HashMap<String, usize> {
    let mut oracle = credit_bus_tests::engine::Oracle::new(partitions);
    for (id, bytes) in &w.records {
        oracle.record(id, bytes);
    }
    let mut per_record: HashMap<String, usize> = HashMap::new();
    for id in &oracle.notices {
        // `<record_id>/<measure>/<department>/<kind>/<generation>`.
        let record = id.split('/').next().unwrap_or_default();
        *per_record.entry(record.to_string()).or_default() += 1;
    }
    per_record
}

/// Expected notices for a workload.
fn expected_notices(w: &credit_bus_tests::engine::Workload, partitions: i32) -> usize {
    planned_notices(w, partitions).values().sum()
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

/// One throughput measurement: notices/s and notices per CPU-second of this
/// process.
#[derive(Clone)]
struct Rate {
    per_s: f64,
    per_cpu_s: f64,
    /// CPU seconds per thread (name) of this process over the measurement.
    threads: String,
}

/// The engine drains `w` from a fresh set of topics; the clock runs from the
/// end of its recovery to the last notice acknowledged. Returns its rate and
/// the topics' names (still holding its notices).
async fn engine_round(
    a: &FanoutArgs,
    e: &E2eArgs,
    registry: &str,
    w: &credit_bus_tests::engine::Workload,
    total: usize,
    round: usize,
) -> anyhow::Result<(Rate, Naming)> {
    let (prefix, naming) = setup(e, &format!("fo{round}")).await?;
    anyhow::ensure!(
        record_schema(registry, &naming).await? == w.schema_id,
        "the registry gave the record schema another id"
    );
    let producer: FutureProducer =
        credit_runtime::kafka::producer(&kafka(e, &prefix), "bench-fanout").create()?;
    publish(
        &producer,
        &naming.records(),
        &copy_topic(&prefix),
        &w.records,
        0.0,
    )
    .await?;
    let cpu0 = cpu_seconds();
    let engine = start_engine(a, &prefix, registry)?;
    let recovered = format!("{}_count", MetricName::EngineRecoveryDuration.exported());
    let mut first = None;
    let last = loop {
        // Rendering every metric costs ~0.5 ms here: polled every 5 ms it
        // took 5 % of a core from the engine; 20 ms bounds the end-time
        // error at 0.3 % of a round.
        tokio::time::sleep(Duration::from_millis(20)).await;
        let text = engine.tel.render()?;
        let sent = metric(&text, MetricName::NoticesSent.exported());
        if first.is_none() && metric(&text, &recovered) >= a.partitions as f64 {
            first = Some((
                Instant::now(),
                cpu_seconds(),
                threads_of(std::process::id()),
            ));
            if std::env::var_os("BENCH_MARK").is_some() {
                eprintln!("MARK engine draining");
            }
        }
        if sent as usize >= total {
            break (
                Instant::now(),
                cpu_seconds(),
                threads_of(std::process::id()),
            );
        }
        if engine.handle.is_finished() {
            anyhow::bail!("engine stopped early: {:?}", engine.handle.await?);
        }
    };
    let first = first.unwrap_or((last.0, cpu0, Default::default()));
    let secs = last.0.duration_since(first.0).as_secs_f64();
    engine.stop.cancel();
    engine.handle.await??;
    Ok((
        Rate {
            per_s: total as f64 / secs,
            per_cpu_s: total as f64 / (last.1 - first.1).max(1e-9),
            threads: thread_delta(&first.2, &last.2),
        },
        naming,
    ))
}

/// The baseline: a raw produce of exactly the records the engine wrote (keys,
/// payloads, headers, partitions; so equally sized and equally compressible)
/// to a fresh set of topics, with the same producer settings and
/// acknowledgement counting the engine uses, so the ratio measures the
/// engine's own work, not a difference in client API.
async fn raw_round(e: &E2eArgs, written: &[Written], prefix: &str) -> anyhow::Result<Rate> {
    let naming = Naming::new(prefix);
    let topics: Vec<String> = credit_core::DEPARTMENTS
        .iter()
        .map(|d| naming.notices(d.id))
        .collect();
    let raw: AckProducer = credit_runtime::kafka::producer(&kafka(e, prefix), "bench-raw")
        .create_with_context(AckContext)?;
    // Topics just created take a moment to be served (KRaft propagates
    // their metadata, and the producer waits for its id): one record to
    // every partition first, as the engine's recovery has looked up every
    // output partition before its clock starts.
    let warm = Acks::new();
    for t in &topics {
        for p in 0..e.notice_partitions {
            warm.send(
                &raw,
                BaseRecord::to(t)
                    .partition(p)
                    .key("warm-up")
                    .payload("warm-up"),
            )
            .await?;
        }
    }
    warm.wait().await?;
    let (cpu0, t) = (cpu_seconds(), Instant::now());
    let threads0 = threads_of(std::process::id());
    if std::env::var_os("BENCH_MARK").is_some() {
        eprintln!("MARK raw copying");
    }
    let acks = Acks::new();
    for w in written {
        acks.send(
            &raw,
            BaseRecord::to(&topics[w.department])
                .partition(w.partition)
                .key(&w.key[..])
                .payload(&w.payload[..])
                .headers(w.headers()),
        )
        .await?;
    }
    acks.wait().await?;
    Ok(Rate {
        per_s: written.len() as f64 / t.elapsed().as_secs_f64(),
        per_cpu_s: written.len() as f64 / (cpu_seconds() - cpu0).max(1e-9),
        threads: thread_delta(&threads0, &threads_of(std::process::id())),
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// What the latency runs measured: p50, p99 (ms) and entries counted.
struct Latency {
    rate: f64,
    raw_ack: (f64, f64, usize),
    raw_read: (f64, f64, usize),
    engine_read: (f64, f64, usize),
    /// The engine's own histogram over the measured window (bucket bounds, ms).
    engine_hist: (String, String),
}

/// Entries published at `rate` for warm-up + measured seconds, through a raw
/// fan-out (consume, produce as many records as the entry has notices, store
/// offsets after the acks), then through the engine, each on fresh topics
/// deleted afterwards. Only entries published after the warm-up count.
async fn latency(
    a: &FanoutArgs,
    e: &E2eArgs,
    registry: &str,
    written: &[Written],
    rate: f64,
) -> anyhow::Result<Latency> {
    let records = (rate * (a.warmup_secs + a.latency_secs)).ceil() as usize;
    let warmup = Duration::from_secs_f64(a.warmup_secs);
    let (prefix, naming) = setup(e, "lat-raw").await?;
    let schema = record_schema(registry, &naming).await?;
    let w = credit_bus_tests::engine::workload(records, schema, 6);
    let fanout = planned_notices(&w, a.partitions);
    let total: usize = fanout.values().sum();
    let input = copy_topic(&prefix);
    let k = kafka(e, &prefix);

    // The baseline reads the copy topic. Its warm-up record (fan-out 0) goes
    // there too.
    let (reader, ready) = spawn_read_back(a, &naming, (total, 2));
    let stop = CancellationToken::new();
    let copier = {
        let sample = Arc::new(written.iter().take(10_000).cloned().collect::<Vec<_>>());
        let (k, input, n, stop, bs) = (
            k.clone(),
            input.clone(),
            naming.clone(),
            stop.clone(),
            a.batch_size,
        );
        tokio::spawn(async move { raw_fanout_loop(&k, &input, &n, fanout, sample, bs, stop).await })
    };
    while !ready.load(Ordering::Acquire) {
        anyhow::ensure!(
            !reader.is_finished(),
            "the read-back consumer stopped before it was assigned: {:?}",
            reader.join().map(|r| r.map(|m| m.len()))
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Give the copy's consumer group time to join before the clock matters.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let producer: FutureProducer =
        credit_runtime::kafka::producer(&k, "bench-fanout-lat").create()?;
    let from = Instant::now() + warmup;
    let sent = publish(&producer, &input, &input, &w.records, rate).await?;
    let got = reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader panicked"))??;
    stop.cancel();
    let raw_acked = copier.await??;
    let raw_read = percentiles(&w, &sent, &got, from);
    let raw_ack = percentiles(&w, &sent, &raw_acked, from);

    teardown(e, &naming).await?;

    // The engine. Its warm-up record goes to the copy topic, which it does
    // not read.
    let (prefix, naming) = setup(e, "lat-engine").await?;
    anyhow::ensure!(record_schema(registry, &naming).await? == schema);
    let input = copy_topic(&prefix);
    let k = kafka(e, &prefix);
    let (reader, ready) = spawn_read_back(a, &naming, (total, 5));
    let engine = start_engine(a, &prefix, registry)?;
    while !ready.load(Ordering::Acquire) {
        anyhow::ensure!(
            !reader.is_finished(),
            "the read-back consumer stopped before it was assigned: {:?}",
            reader.join().map(|r| r.map(|m| m.len()))
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Let the engine join its group and recover its partitions first: the
    // recovery histogram counts one observation per partition recovered.
    let deadline = Instant::now() + Duration::from_secs(60);
    let recovered = format!("{}_count", MetricName::EngineRecoveryDuration.exported());
    while metric(&engine.tel.render()?, &recovered) < a.partitions as f64 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the engine recovered no partitions within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let producer: FutureProducer =
        credit_runtime::kafka::producer(&k, "bench-fanout-lat").create()?;
    let from = Instant::now() + warmup;
    // The engine's histogram as the warm-up ends: only what it observes
    // after that counts.
    let before = {
        let tel = engine.tel.clone();
        tokio::spawn(async move {
            tokio::time::sleep_until(from.into()).await;
            tel.render()
        })
    };
    let sent = publish(&producer, &naming.records(), &input, &w.records, rate).await?;
    let got = reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader panicked"))??;
    let (before, after) = (before.await??, engine.tel.render()?);
    engine.stop.cancel();
    let _ = engine.handle.await;
    teardown(e, &naming).await?;
    let hist = MetricName::EngineFanoutLatency.exported();
    Ok(Latency {
        rate,
        raw_ack,
        raw_read,
        engine_read: percentiles(&w, &sent, &got, from),
        engine_hist: (
            bucket_quantile(&before, &after, hist, 0.5),
            bucket_quantile(&before, &after, hist, 0.99),
        ),
    })
}

pub async fn run(a: FanoutArgs) -> anyhow::Result<()> {
    let e = args(&a);
    // The registry creates its own store topic; the records subject needs no topic.
    println!("$ {}", crate::procs::command_line());
    let registry = start_registry(&e, &format!("bench-reg-{}", std::process::id())).await?;
    let schema = record_schema(&registry.url(), &Naming::new("bench-reg")).await?;
    let w = credit_bus_tests::engine::workload(a.records, schema, 5);
    let total = expected_notices(&w, a.partitions);
    println!(
        "fan-out through the broker at {}: {} records, {} list entries, {total} notices, {} input partitions, {} per notices topic, batch {}, {} rounds",
        a.brokers,
        w.records.len(),
        w.entries.len(),
        a.partitions,
        a.notice_partitions,
        a.batch_size,
        a.rounds
    );
    if a.warmup_records > 0 {
        let w0 = credit_bus_tests::engine::workload(a.warmup_records, schema, 4);
        let total0 = expected_notices(&w0, a.partitions);
        let (engine, naming) = engine_round(&a, &e, &registry.url(), &w0, total0, 99).await?;
        let written0 = read_all(
            &a.brokers,
            &naming,
            a.notice_partitions,
            total0,
            isolation(&a),
        )?;
        teardown(&e, &naming).await?;
        let (raw_prefix, raw_naming) = setup(&e, "fw").await?;
        let raw = raw_round(&e, &written0, &raw_prefix).await?;
        teardown(&e, &raw_naming).await?;
        println!(
            "warm-up ({} records, {total0} notices, not counted): engine {:.0} notices/s, raw {:.0} records/s",
            a.warmup_records, engine.per_s, raw.per_s
        );
    }
    // Rounds alternate the engine and the baseline, each on topics of their
    // own, deleted once done, so a drift of the host or the broker shows as
    // spread, not as a ratio, and the broker holds about one bus's topics at
    // a time. The latency runs come after the first engine round, whose rate
    // sets theirs.
    let mut written: Vec<Written> = Vec::new();
    let mut rounds = Vec::with_capacity(a.rounds);
    let mut lat = None;
    println!(
        "{:<8}{:>16}{:>20}{:>16}{:>20}{:>10}",
        "round",
        "engine notices/s",
        "per CPU-s (bench)",
        "raw records/s",
        "per CPU-s (bench)",
        "ratio"
    );
    for round in 0..a.rounds.max(1) {
        let (engine, naming) = engine_round(&a, &e, &registry.url(), &w, total, round).await?;
        if written.is_empty() {
            written = read_all(
                &a.brokers,
                &naming,
                a.notice_partitions,
                total,
                isolation(&a),
            )?;
        }
        teardown(&e, &naming).await?;
        if lat.is_none() {
            let rate = if a.latency_rate > 0.0 {
                a.latency_rate
            } else {
                engine.per_s * w.records.len() as f64 / total as f64 / 2.0
            };
            lat = Some(latency(&a, &e, &registry.url(), &written, rate).await?);
        }
        let (raw_prefix, raw_naming) = setup(&e, &format!("fr{round}")).await?;
        let raw = raw_round(&e, &written, &raw_prefix).await?;
        teardown(&e, &raw_naming).await?;
        println!(
            "{:<8}{:>16.0}{:>20.0}{:>16.0}{:>20.0}{:>10.3}",
            round + 1,
            engine.per_s,
            engine.per_cpu_s,
            raw.per_s,
            raw.per_cpu_s,
            engine.per_s / raw.per_s
        );
        println!("        engine threads (CPU-s): {}", engine.threads);
        println!("        raw threads (CPU-s):    {}", raw.threads);
        rounds.push((engine, raw));
    }
    registry.stop().await?;
    let ratios: Vec<f64> = rounds.iter().map(|(e, r)| e.per_s / r.per_s).collect();
    let engine_rate = median(rounds.iter().map(|(e, _)| e.per_s).collect());
    let entry_rate = engine_rate * w.records.len() as f64 / total as f64;
    let mean = written.iter().map(|w| w.payload.len()).sum::<usize>() as f64 / total as f64;
    let rates = |f: fn(&(Rate, Rate)) -> f64| rounds.iter().map(f).collect::<Vec<f64>>();
    println!(
        "min / median / max over {} rounds: engine {} notices/s ({} per CPU-s), raw {} records/s ({} per CPU-s)",
        rounds.len(),
        crate::procs::spread(&rates(|r| r.0.per_s), 0),
        crate::procs::spread(&rates(|r| r.0.per_cpu_s), 0),
        crate::procs::spread(&rates(|r| r.1.per_s), 0),
        crate::procs::spread(&rates(|r| r.1.per_cpu_s), 0),
    );
    println!(
        "ratio (engine/raw): median {:.3}, min {:.3}, max {:.3}",
        median(ratios.clone()),
        ratios.iter().copied().fold(f64::INFINITY, f64::min),
        ratios.iter().copied().fold(0.0, f64::max)
    );
    println!(
        "  the baseline copies the engine's notices (key, payload of {mean:.0} bytes on average, headers); engine entries/s (median) {entry_rate:.0}"
    );
    let l = lat.expect("the first round measured latency");
    println!(
        "  latency at {:.0} records/s, {} ({:.0} s measured after {:.0} s of warm-up at the same rate):",
        l.rate,
        if a.latency_rate > 0.0 {
            "--latency-rate"
        } else {
            "half the first round's engine rate"
        },
        a.latency_secs,
        a.warmup_secs
    );
    let row = |what: &str, (p50, p99, n): (f64, f64, usize)| {
        println!("    {what:<58} p50 {p50:>6.1} ms, p99 {p99:>6.1} ms ({n} entries)")
    };
    row(
        "raw rdkafka fan-out, published -> last record acknowledged",
        l.raw_ack,
    );
    row(
        "raw rdkafka fan-out, published -> last record read back",
        l.raw_read,
    );
    row("engine, published -> last notice read back", l.engine_read);
    println!(
        "    {:<58} p50 <= {} ms, p99 <= {} ms (bucket bounds)",
        "engine's histogram, input timestamp -> last notice acked",
        l.engine_hist.0,
        l.engine_hist.1
    );
    Ok(())
}
