//! End-to-end through a real broker: the normaliser beside a raw rdkafka
//! consume → produce copy of the same records, same partitions, same batching
//! and acknowledgement rule (await every ack, then store offsets), same
//! librdkafka settings, in the same run.
//!
//! * Throughput: both drain the same pre-published backlog; the clock runs from
//!   the first record read to the last output acknowledged. Also records per
//!   CPU-second of this process (the broker's CPU is not counted).
//! * Latency: fresh topics, records published at a fixed rate; latency is the
//!   time from handing a record to the producer to reading its output back.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use credit_core::topics::Naming;
use credit_datagen::Generator;
use credit_runtime::config::{Common, KafkaConfig, RegistryConfig, TelemetryConfig};
use credit_runtime::metrics::MetricName;
use credit_runtime::telemetry::Telemetry;
use futures::FutureExt;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

#[derive(clap::Args, Clone)]
pub struct E2eArgs {
    #[arg(
        long,
        env = "CREDIT_BUS__KAFKA__BROKERS",
        default_value = "127.0.0.1:9092"
    )]
    pub(crate) brokers: String,
    #[arg(long, default_value = "courts")]
    pub(crate) department: String,
    /// Records in the throughput backlog.
    #[arg(long, default_value_t = 200_000)]
    pub(crate) records: usize,
    /// Records in each latency run.
    #[arg(long, default_value_t = 20_000)]
    pub(crate) latency_records: usize,
    /// Publish rate of the latency runs; 0 = half the normaliser's measured throughput.
    #[arg(long, default_value_t = 0)]
    pub(crate) latency_rate: u64,
    #[arg(long, default_value_t = 4)]
    pub(crate) partitions: i32,
    /// Partitions of each department's notices and feedback topic
    /// (`kafka.notice_partitions`; the embedded and Helm default is 1).
    #[arg(long, default_value_t = 1)]
    pub(crate) notice_partitions: i32,
    #[arg(long, default_value_t = 5000)]
    pub(crate) batch_size: usize,
    /// Share of bad records (dead-lettered) in the throughput backlog.
    #[arg(long, default_value_t = 0.05)]
    pub(crate) bad_share: f64,
}

/// The embedded profile's client settings; `BENCH_LINGER_MS` and
/// `BENCH_FETCH_WAIT_MS` override `linger.ms` and `fetch.wait.max.ms` to see
/// how the figures move with them.
pub(crate) fn kafka(a: &E2eArgs, prefix: &str) -> KafkaConfig {
    let mut k = KafkaConfig::local(&a.brokers, prefix, a.partitions);
    k.notice_partitions = a.notice_partitions;
    if let Some(v) = std::env::var("BENCH_LINGER_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        k.linger_ms = v;
    }
    if let Some(v) = std::env::var("BENCH_FETCH_WAIT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        k.fetch_wait_max_ms = v;
    }
    // librdkafka settings for experiments, `key=value,key=value`: applied after
    // the bus's own, as `kafka.extra` is in a service.
    if let Ok(v) = std::env::var("BENCH_KAFKA_EXTRA") {
        for kv in v.split(',').filter(|s| !s.is_empty()) {
            if let Some((key, value)) = kv.split_once('=') {
                k.extra
                    .insert(key.trim().to_string(), value.trim().to_string());
            }
        }
    }
    k
}

pub(crate) fn common(k: KafkaConfig, registry: &str) -> Common {
    Common {
        kafka: k,
        registry: RegistryConfig {
            url: registry.to_string(),
        },
        telemetry: TelemetryConfig {
            log_format: "pretty".into(),
            log_filter: "warn".into(),
            ops_listen: "127.0.0.1:0".into(),
            otlp_endpoint: String::new(),
            trace_sample_ratio: 1.0,
        },
    }
}

pub(crate) fn copy_topic(prefix: &str) -> String {
    format!("{prefix}.bench-copy")
}

/// CPU seconds (user + system) this process has used.
pub(crate) fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

pub(crate) async fn setup(a: &E2eArgs, tag: &str) -> anyhow::Result<(String, Naming)> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_nanos();
    let prefix = format!("bench-{tag}-{}", nanos % 1_000_000_000);
    let naming = Naming::new(&prefix);
    let mut topics = naming.all();
    topics.push(copy_topic(&prefix));
    credit_runtime::kafka::ensure_topics(&kafka(a, &prefix), &topics).await?;
    Ok((prefix, naming))
}

/// Deletes the topics [`setup`] created for `naming` once a phase is done
/// with them and every client of theirs is gone: tansu keeps every topic's
/// metadata in one document that it rewrites on each idempotent produce, so a
/// broker holding several phases' topics answers later phases measurably
/// slower than one holding a single bus's topics, as in production.
pub(crate) async fn teardown(a: &E2eArgs, naming: &Naming) -> anyhow::Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    let k = kafka(a, naming.prefix());
    let admin: AdminClient<DefaultClientContext> =
        credit_runtime::kafka::base(&k, "bench-teardown").create()?;
    let mut topics = naming.all();
    topics.push(copy_topic(naming.prefix()));
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for r in admin.delete_topics(&names, &opts).await? {
        if let Err((topic, code)) = r {
            anyhow::bail!("deleting {topic}: {code}");
        }
    }
    Ok(())
}

/// Publishes records; returns the send instant of each (partition, offset).
async fn publish(
    a: &E2eArgs,
    topic: &str,
    n: usize,
    bad_share: f64,
    rate: u64,
) -> anyhow::Result<HashMap<(i32, i64), Instant>> {
    let producer: FutureProducer =
        credit_runtime::kafka::producer(&kafka(a, "x"), "bench-publisher").create()?;
    let mut g = Generator::new(7, bad_share);
    let samples: Vec<_> = (0..n).map(|_| g.record(&a.department)).collect();
    let start = Instant::now();
    let mut pending = Vec::with_capacity(n);
    for (i, s) in samples.iter().enumerate() {
        if rate > 0 {
            let due = Duration::from_secs_f64(i as f64 / rate as f64);
            if let Some(w) = due.checked_sub(start.elapsed()) {
                tokio::time::sleep(w).await;
            }
        }
        let sent = Instant::now();
        let f = producer
            .send_result(FutureRecord::to(topic).key(&s.key).payload(&s.value))
            .map_err(|(e, _)| e)?;
        pending.push((sent, f));
    }
    let mut out = HashMap::with_capacity(n);
    for (sent, f) in pending {
        let d = f.await?.map_err(|(e, _)| e)?;
        out.insert((d.partition, d.offset), sent);
    }
    Ok(out)
}

/// The baseline: consume → produce the same bytes, batch by batch, storing offsets
/// after every ack, exactly as the normaliser does. Returns (first read, last ack).
async fn copy_loop(
    k: &KafkaConfig,
    inbound: &str,
    out: &str,
    batch_size: usize,
    n: usize,
    stop: CancellationToken,
) -> anyhow::Result<(Instant, Instant)> {
    let consumer: StreamConsumer =
        credit_runtime::kafka::consumer(k, "bench-copy", &format!("{out}.group")).create()?;
    consumer.subscribe(&[inbound])?;
    let producer: FutureProducer = credit_runtime::kafka::producer(k, "bench-copy").create()?;
    let mut first = None;
    let mut done = 0usize;
    let mut key = String::with_capacity(32);
    loop {
        let m = tokio::select! {
            _ = stop.cancelled() => anyhow::bail!("copy stopped after {done} of {n}"),
            m = consumer.recv() => m,
        };
        first.get_or_insert_with(Instant::now);
        let mut pending = Vec::with_capacity(batch_size);
        let mut offsets: HashMap<i32, i64> = HashMap::new();
        let mut next = Some(m);
        let mut read = 0;
        while let Some(m) = next.take() {
            let msg = m?;
            read += 1;
            // The key carries the source position, as the normaliser's record id does.
            key.clear();
            key.push_str(itoa::Buffer::new().format(msg.partition()));
            key.push(':');
            key.push_str(itoa::Buffer::new().format(msg.offset()));
            let mut rec = FutureRecord::<[u8], [u8]>::to(out).key(key.as_bytes());
            if let Some(p) = msg.payload() {
                rec = rec.payload(p);
            }
            pending.push(producer.send_result(rec).map_err(|(e, _)| e)?);
            let o = offsets.entry(msg.partition()).or_insert(0);
            *o = (*o).max(msg.offset() + 1);
            if read < batch_size {
                next = consumer.recv().now_or_never();
            }
        }
        for f in pending {
            f.await?.map_err(|(e, _)| e)?;
        }
        let mut tpl = TopicPartitionList::new();
        for (p, o) in &offsets {
            tpl.add_partition_offset(inbound, *p, Offset::Offset(*o))?;
        }
        consumer.store_offsets(&tpl)?;
        done += read;
        if done >= n {
            let _ = consumer.commit_consumer_state(CommitMode::Async);
            return Ok((first.unwrap_or_else(Instant::now), Instant::now()));
        }
    }
}

pub(crate) fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

/// Runs the normaliser until `n` records are acknowledged; returns (first read, last ack).
async fn normaliser_until(
    a: &E2eArgs,
    prefix: &str,
    registry: &str,
    n: usize,
    started: impl FnOnce(),
) -> anyhow::Result<(
    Instant,
    Instant,
    CancellationToken,
    tokio::task::JoinHandle<Result<(), credit_normaliser::Error>>,
)> {
    let config = credit_normaliser::Config {
        common: common(kafka(a, prefix), registry),
        normaliser: credit_normaliser::NormaliserConfig {
            department: a.department.clone(),
            batch_size: a.batch_size,
            max_record_bytes: credit_normaliser::DEFAULT_MAX_RECORD_BYTES,
        },
    };
    let tel = Telemetry::new("credit-normaliser")?;
    let stop = CancellationToken::new();
    let handle = tokio::spawn(credit_normaliser::run(
        config,
        tel.clone(),
        Default::default(),
        stop.clone(),
    ));
    started();
    let mut first = None;
    loop {
        // Polling the exporter every 5 ms bounds the timing error at 5 ms per end.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let text = tel.render()?;
        if first.is_none() && metric(&text, MetricName::RecordsIn.exported()) > 0.0 {
            first = Some(Instant::now());
        }
        let acked = metric(&text, MetricName::RecordsOut.exported())
            + metric(&text, MetricName::RecordsDeadLettered.exported());
        if acked as usize >= n {
            return Ok((
                first.unwrap_or_else(Instant::now),
                Instant::now(),
                stop,
                handle,
            ));
        }
        if handle.is_finished() {
            anyhow::bail!("normaliser stopped early: {:?}", handle.await?);
        }
    }
}

/// Reads `topic` from the beginning (no group, no rebalance wait) and records when
/// each output with a `...:partition:offset` key arrived, until `n` arrived.
fn read_back(
    brokers: &str,
    topic: &str,
    partitions: i32,
    n: usize,
    ready: Arc<AtomicBool>,
) -> anyhow::Result<HashMap<(i32, i64), Instant>> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("fetch.wait.max.ms", "10")
        .set("enable.auto.commit", "false")
        .set("group.id", "bench-read-back")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    c.assign(&tpl)?;
    ready.store(true, Ordering::Release);
    let mut seen = HashMap::with_capacity(n);
    let deadline = Instant::now() + Duration::from_secs(300);
    while seen.len() < n && Instant::now() < deadline {
        if let Some(m) = c.poll(Duration::from_millis(50)) {
            let m = m?;
            let at = Instant::now();
            let key = m
                .key()
                .and_then(|k| std::str::from_utf8(k).ok())
                .unwrap_or("");
            let mut it = key.rsplitn(3, ':');
            if let (Some(o), Some(p)) = (
                it.next().and_then(|o| o.parse().ok()),
                it.next().and_then(|p| p.parse().ok()),
            ) {
                seen.entry((p, o)).or_insert(at);
            }
        }
    }
    Ok(seen)
}

fn percentiles(
    sent: &HashMap<(i32, i64), Instant>,
    got: &HashMap<(i32, i64), Instant>,
) -> (f64, f64, usize) {
    let mut ms: Vec<f64> = sent
        .iter()
        .filter_map(|(k, s)| {
            got.get(k)
                .map(|g| g.duration_since(*s).as_secs_f64() * 1000.0)
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    if ms.is_empty() {
        return (f64::NAN, f64::NAN, 0);
    }
    let p = |q: f64| ms[((ms.len() - 1) as f64 * q) as usize];
    (p(0.5), p(0.99), ms.len())
}

pub(crate) async fn start_registry(
    a: &E2eArgs,
    prefix: &str,
) -> anyhow::Result<credit_registry::Running> {
    let config = credit_registry::Config {
        common: common(kafka(a, prefix), "http://unused"),
        registry: credit_registry::config::RegistryServiceConfig {
            listen: "127.0.0.1:0".into(),
            topic: format!("{prefix}._schemas"),
            compatibility: "BACKWARD".into(),
        },
    };
    credit_registry::spawn(config, Telemetry::new("credit-registry")?).await
}

pub async fn run(a: E2eArgs) -> anyhow::Result<()> {
    let n = a.records;
    println!(
        "end-to-end through the broker at {}: department {}, {n} records ({}% bad), {} partitions, batch {}",
        a.brokers,
        a.department,
        a.bad_share * 100.0,
        a.partitions,
        a.batch_size
    );
    let (prefix, naming) = setup(&a, "tp").await?;
    let registry = start_registry(&a, &prefix).await?;
    let inbound = naming.inbound(&a.department);
    let t = Instant::now();
    publish(&a, &inbound, n, a.bad_share, 0).await?;
    println!(
        "  published the backlog in {:.2}s",
        t.elapsed().as_secs_f64()
    );

    let cpu0 = cpu_seconds();
    let (f, l) = copy_loop(
        &kafka(&a, &prefix),
        &inbound,
        &copy_topic(&prefix),
        a.batch_size,
        n,
        CancellationToken::new(),
    )
    .await?;
    let copy_cpu = cpu_seconds() - cpu0;
    let copy_rate = n as f64 / l.duration_since(f).as_secs_f64();

    let cpu0 = cpu_seconds();
    let (f, l, stop, handle) = normaliser_until(&a, &prefix, &registry.url(), n, || ()).await?;
    let norm_cpu = cpu_seconds() - cpu0;
    let norm_rate = n as f64 / l.duration_since(f).as_secs_f64();
    stop.cancel();
    handle.await??;

    // Latency at a fixed rate, each side on fresh topics so neither sees a backlog.
    let rate = if a.latency_rate > 0 {
        a.latency_rate
    } else {
        (norm_rate / 2.0) as u64
    };
    let lat = |tag: &'static str| {
        let a = a.clone();
        async move { setup(&a, tag).await }
    };
    let m = a.latency_records;

    let (p2, n2) = lat("lc").await?;
    let ready = Arc::new(AtomicBool::new(false));
    let out = copy_topic(&p2);
    let reader = {
        let (b, out, ready, parts) = (a.brokers.clone(), out.clone(), ready.clone(), a.partitions);
        std::thread::spawn(move || read_back(&b, &out, parts, m, ready))
    };
    let stop = CancellationToken::new();
    let copier = {
        let (k, inb, out, bs, stop) = (
            kafka(&a, &p2),
            n2.inbound(&a.department),
            out.clone(),
            a.batch_size,
            stop.clone(),
        );
        tokio::spawn(async move { copy_loop(&k, &inb, &out, bs, m, stop).await })
    };
    while !ready.load(Ordering::Acquire) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Give the copy's consumer group time to join before the clock matters.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let sent = publish(&a, &n2.inbound(&a.department), m, 0.0, rate).await?;
    let got = reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader panicked"))??;
    let (c50, c99, cn) = percentiles(&sent, &got);
    stop.cancel();
    let _ = copier.await;

    let (p3, n3) = lat("ln").await?;
    let ready = Arc::new(AtomicBool::new(false));
    let reader = {
        let (b, out, ready, parts) = (a.brokers.clone(), n3.records(), ready.clone(), a.partitions);
        std::thread::spawn(move || read_back(&b, &out, parts, m, ready))
    };
    let config = credit_normaliser::Config {
        common: common(kafka(&a, &p3), &registry.url()),
        normaliser: credit_normaliser::NormaliserConfig {
            department: a.department.clone(),
            batch_size: a.batch_size,
            max_record_bytes: credit_normaliser::DEFAULT_MAX_RECORD_BYTES,
        },
    };
    let stop = CancellationToken::new();
    let norm = tokio::spawn(credit_normaliser::run(
        config,
        Telemetry::new("credit-normaliser")?,
        Default::default(),
        stop.clone(),
    ));
    while !ready.load(Ordering::Acquire) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tokio::time::sleep(Duration::from_secs(4)).await;
    let sent = publish(&a, &n3.inbound(&a.department), m, 0.0, rate).await?;
    let got = reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader panicked"))??;
    let (n50, n99, nn) = percentiles(&sent, &got);
    stop.cancel();
    norm.await??;
    registry.stop().await?;

    println!(
        "{:<22}{:>12}{:>22}{:>10}{:>10}",
        "", "records/s", "records/CPU-s (bench)", "p50 ms", "p99 ms"
    );
    println!(
        "{:<22}{:>12.0}{:>22.0}{:>10.1}{:>10.1}",
        "raw rdkafka copy",
        copy_rate,
        n as f64 / copy_cpu.max(1e-9),
        c50,
        c99
    );
    println!(
        "{:<22}{:>12.0}{:>22.0}{:>10.1}{:>10.1}",
        "normaliser",
        norm_rate,
        n as f64 / norm_cpu.max(1e-9),
        n50,
        n99
    );
    println!(
        "{:<22}{:>12.3}",
        "ratio (normaliser/copy)",
        norm_rate / copy_rate
    );
    println!("  latency at {rate} records/s, {m} records each ({cn} and {nn} read back)");
    Ok(())
}
