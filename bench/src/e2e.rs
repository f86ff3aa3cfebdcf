//! End-to-end through a real broker: the normaliser beside two baselines that
//! read the same records from the same broker, each in a process of its own:
//!
//! * a raw rdkafka consume → produce copy (`credit-bench copy`): same
//!   partitions, same batching and acknowledgement rule (await every ack, then
//!   store offsets), same librdkafka settings;
//! * the Python normaliser a department team would write
//!   (`bench/python/normaliser.py`: confluent-kafka, fastavro, python-stdnum;
//!   same checks, same Avro bytes, same dead letters).
//!
//! Throughput, in `--rounds` after a warm-up pass of each: every contender
//! drains its own copy of the same pre-published backlog on fresh topics
//! (deleted afterwards). The bench watches only the output topics' end offsets
//! (one ListOffsets request every 5 ms), so the clock runs from the first
//! output to the last, over the records output in between, and the
//! contender's CPU (`/proc/<pid>/stat`) over the same window gives records per
//! CPU-second; the broker's CPU too when `--broker-pid` is given.
//!
//! `BENCH_NORMALISER_BIN` runs another build of the normaliser (an A/B of a
//! change); `BENCH_LINGER_MS` and `BENCH_FETCH_WAIT_MS` reach it as its
//! `kafka.linger_ms` and `kafka.fetch_wait_max_ms`.
//!
//! Latency: fresh topics, records published at a fixed rate (half the
//! normaliser's median throughput; the Python one at half its own), from
//! handing a record to the producer to reading its output back.

use std::collections::HashMap;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use credit_core::topics::Naming;
use credit_datagen::Generator;
use credit_runtime::config::{Common, KafkaConfig, RegistryConfig, TelemetryConfig};
use credit_runtime::telemetry::Telemetry;
use futures::FutureExt;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::procs::{Ends, Proc, sibling, spread, thread_delta, threads_of};

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
    /// Throughput rounds (each contender once per round, in turn).
    #[arg(long, default_value_t = 3)]
    pub(crate) rounds: usize,
    /// Records of the warm-up pass of each contender (not counted).
    #[arg(long, default_value_t = 50_000)]
    pub(crate) warmup_records: usize,
    /// The Python normaliser (run with `python3`); empty: leave it out.
    #[arg(long, default_value = "bench/python/normaliser.py")]
    pub(crate) python: String,
    /// The broker's pid, to report its CPU beside each contender's.
    #[arg(long)]
    pub(crate) broker_pid: Option<u32>,
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
/// with them and every client of theirs is gone: each phase starts from a
/// broker holding about one bus's topics, and a run's log directory stays
/// small (a million notices are about half a gigabyte).
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

pub(crate) fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
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
    let mut errors = 0;
    while seen.len() < n && Instant::now() < deadline {
        if let Some(m) = c.poll(Duration::from_millis(50)) {
            // A topic just created is unknown to the broker for a moment
            // (KRaft propagates its metadata): say so and read on; what never
            // arrives shows in the count read back.
            let m = match m {
                Ok(m) => m,
                Err(e) => {
                    errors += 1;
                    if errors <= 3 {
                        eprintln!("read-back of {topic}: {e}; reading on");
                    }
                    continue;
                }
            };
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

/// The raw copy as a process of its own (`credit-bench copy`).
#[derive(clap::Args, Clone)]
pub struct CopyArgs {
    #[arg(long)]
    brokers: String,
    #[arg(long)]
    inbound: String,
    #[arg(long)]
    out: String,
    #[arg(long)]
    group: String,
    #[arg(long, default_value_t = 5000)]
    batch_size: usize,
}

/// Runs the raw copy until SIGTERM.
pub async fn copy_main(c: CopyArgs) -> anyhow::Result<()> {
    let mut k = KafkaConfig::local(&c.brokers, "bench", 1);
    k.extra = kafka(&args_for_env(&c.brokers), "bench").extra;
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        if let Ok(mut t) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            t.recv().await;
        }
        s.cancel();
    });
    copy_loop(&k, &c.inbound, &c.out, &c.group, c.batch_size, stop).await
}

/// E2eArgs with only the brokers set, for [`kafka`]'s environment overrides.
fn args_for_env(brokers: &str) -> E2eArgs {
    E2eArgs {
        brokers: brokers.to_string(),
        department: "courts".into(),
        records: 0,
        latency_records: 0,
        latency_rate: 0,
        partitions: 1,
        notice_partitions: 1,
        batch_size: 1,
        bad_share: 0.0,
        rounds: 0,
        warmup_records: 0,
        python: String::new(),
        broker_pid: None,
    }
}

/// The baseline: consume → produce the same bytes, batch by batch, storing offsets
/// after every ack, exactly as the normaliser does, until `stop`.
async fn copy_loop(
    k: &KafkaConfig,
    inbound: &str,
    out: &str,
    group: &str,
    batch_size: usize,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let consumer: StreamConsumer =
        credit_runtime::kafka::consumer(k, "bench-copy", group).create()?;
    consumer.subscribe(&[inbound])?;
    let producer: FutureProducer = credit_runtime::kafka::producer(k, "bench-copy").create()?;
    let mut key = String::with_capacity(32);
    loop {
        let m = tokio::select! {
            _ = stop.cancelled() => break,
            m = consumer.recv() => m,
        };
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
    }
    let _ = consumer.commit_consumer_state(CommitMode::Sync);
    Ok(())
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Contender {
    Copy,
    Normaliser,
    Python,
}

impl Contender {
    fn label(self) -> &'static str {
        match self {
            Contender::Copy => "raw rdkafka copy",
            Contender::Normaliser => "normaliser (Rust)",
            Contender::Python => "Python normaliser",
        }
    }
}

/// A contender's topics: its input and its outputs.
struct Topics {
    prefix: String,
    inbound: String,
    outputs: Vec<String>,
    all: Vec<String>,
}

fn topics(a: &E2eArgs, c: Contender, tag: &str) -> Topics {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let prefix = format!("bench-{tag}-{}", nanos % 1_000_000_000);
    let n = Naming::new(&prefix);
    let outputs = match c {
        Contender::Copy => vec![copy_topic(&prefix)],
        _ => vec![n.records(), n.dlq(&a.department)],
    };
    let mut all = outputs.clone();
    all.push(n.inbound(&a.department));
    Topics {
        inbound: n.inbound(&a.department),
        prefix,
        outputs,
        all,
    }
}

async fn delete_topics(a: &E2eArgs, topics: &[String]) -> anyhow::Result<()> {
    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    let admin: AdminClient<DefaultClientContext> =
        credit_runtime::kafka::base(&kafka(a, "x"), "bench-teardown").create()?;
    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    for r in admin.delete_topics(&names, &opts).await? {
        if let Err((topic, code)) = r {
            anyhow::bail!("deleting {topic}: {code}");
        }
    }
    Ok(())
}

/// Starts a contender reading `t.inbound`.
fn spawn(a: &E2eArgs, c: Contender, t: &Topics, registry: &str) -> anyhow::Result<Proc> {
    let n = Naming::new(&t.prefix);
    let cmd = match c {
        Contender::Copy => {
            let mut cmd = Command::new(std::env::current_exe()?);
            cmd.args(["copy", "--brokers", &a.brokers, "--inbound", &t.inbound])
                .args([
                    "--out",
                    &t.outputs[0],
                    "--group",
                    &format!("{}.copy", t.prefix),
                ])
                .args(["--batch-size", &a.batch_size.to_string()]);
            cmd
        }
        Contender::Normaliser => {
            // BENCH_NORMALISER_BIN: another build of the normaliser, for an A/B.
            let bin = match std::env::var_os("BENCH_NORMALISER_BIN") {
                Some(b) => b.into(),
                None => sibling("credit-normaliser")?,
            };
            let mut cmd = Command::new(bin);
            cmd.env("CREDIT_BUS__KAFKA__BROKERS", &a.brokers)
                .env("CREDIT_BUS__KAFKA__TOPIC_PREFIX", &t.prefix)
                .env("CREDIT_BUS__KAFKA__PARTITIONS", a.partitions.to_string())
                .env("CREDIT_BUS__REGISTRY__URL", registry)
                .env("CREDIT_BUS__NORMALISER__DEPARTMENT", &a.department)
                .env(
                    "CREDIT_BUS__NORMALISER__BATCH_SIZE",
                    a.batch_size.to_string(),
                )
                .env("CREDIT_BUS__TELEMETRY__LOG_FILTER", "warn")
                .env("CREDIT_BUS__TELEMETRY__LOG_FORMAT", "pretty");
            if let Ok(v) = std::env::var("BENCH_LINGER_MS") {
                cmd.env("CREDIT_BUS__KAFKA__LINGER_MS", v);
            }
            if let Ok(v) = std::env::var("BENCH_FETCH_WAIT_MS") {
                cmd.env("CREDIT_BUS__KAFKA__FETCH_WAIT_MAX_MS", v);
            }
            cmd
        }
        Contender::Python => {
            anyhow::ensure!(
                a.department == "courts",
                "the Python normaliser handles the courts' format only"
            );
            let mut cmd = Command::new("python3");
            cmd.arg(&a.python)
                .args(["--brokers", &a.brokers, "--inbound", &t.inbound])
                .args(["--records", &n.records(), "--dlq", &n.dlq(&a.department)])
                .args([
                    "--registry",
                    registry,
                    "--group",
                    &format!("{}.py", t.prefix),
                ])
                .args(["--batch-size", &a.batch_size.to_string()])
                .stdout(std::process::Stdio::null());
            cmd
        }
    };
    Proc::spawn(c.label(), cmd)
}

/// One contender draining one backlog.
#[derive(Clone)]
struct Drain {
    /// Records output in the measured window, and the window.
    records: i64,
    secs: f64,
    cpu: f64,
    broker_cpu: f64,
    threads: String,
}

impl Drain {
    fn rate(&self) -> f64 {
        self.records as f64 / self.secs
    }
    fn per_cpu(&self) -> f64 {
        self.records as f64 / self.cpu.max(1e-9)
    }
}

/// Publishes `n` records to fresh topics, starts contender `c` on them and
/// measures from its first output to its last; deletes the topics after.
async fn drain(
    a: &E2eArgs,
    c: Contender,
    n: usize,
    registry: &str,
    tag: &str,
) -> anyhow::Result<Drain> {
    let t = topics(a, c, tag);
    credit_runtime::kafka::ensure_topics(&kafka(a, &t.prefix), &t.all).await?;
    publish(a, &t.inbound, n, a.bad_share, 0).await?;
    let parts: Vec<(String, i32)> = t
        .outputs
        .iter()
        .flat_map(|o| (0..a.partitions).map(move |p| (o.clone(), p)))
        .collect();
    let ends = Ends::new(&a.brokers, &parts, false)?;
    let broker_cpu = || a.broker_pid.map_or(f64::NAN, crate::procs::cpu_of);
    let mut p = spawn(a, c, &t, registry)?;
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut first = None;
    let last = loop {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let out = ends.sum()?;
        if first.is_none() && out > 0 {
            first = Some((
                Instant::now(),
                out,
                p.cpu(),
                broker_cpu(),
                threads_of(p.pid()),
            ));
        }
        if out >= n as i64 {
            break (
                Instant::now(),
                out,
                p.cpu(),
                broker_cpu(),
                threads_of(p.pid()),
            );
        }
        p.check()?;
        anyhow::ensure!(
            Instant::now() < deadline,
            "{} output {out} of {n} in 600 s",
            c.label()
        );
    };
    p.stop();
    delete_topics(a, &t.all).await?;
    let first = first.expect("set before the last output");
    Ok(Drain {
        records: last.1 - first.1,
        secs: last.0.duration_since(first.0).as_secs_f64(),
        cpu: last.2 - first.2,
        broker_cpu: last.3 - first.3,
        threads: thread_delta(&first.4, &last.4),
    })
}

/// Latency of contender `c` at `rate` records/s: publish time to read-back time.
async fn latency(
    a: &E2eArgs,
    c: Contender,
    rate: u64,
    registry: &str,
) -> anyhow::Result<(f64, f64, usize)> {
    let t = topics(a, c, "lat");
    credit_runtime::kafka::ensure_topics(&kafka(a, &t.prefix), &t.all).await?;
    let m = a.latency_records;
    let ready = Arc::new(AtomicBool::new(false));
    let reader = {
        let (b, out, ready, parts) = (
            a.brokers.clone(),
            t.outputs[0].clone(),
            ready.clone(),
            a.partitions,
        );
        std::thread::spawn(move || read_back(&b, &out, parts, m, ready))
    };
    let mut p = spawn(a, c, &t, registry)?;
    while !ready.load(Ordering::Acquire) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The contender joins its group and registers its schema first.
    tokio::time::sleep(Duration::from_secs(4)).await;
    p.check()?;
    let sent = publish(a, &t.inbound, m, 0.0, rate).await?;
    let got = reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader panicked"))??;
    p.stop();
    delete_topics(a, &t.all).await?;
    Ok(percentiles(&sent, &got))
}

pub async fn run(a: E2eArgs) -> anyhow::Result<()> {
    let n = a.records;
    println!("$ {}", crate::procs::command_line());
    println!(
        "end-to-end through the broker at {}: department {}, {n} records ({}% bad), {} partitions, batch {}, {} rounds after a warm-up of {} records each",
        a.brokers,
        a.department,
        a.bad_share * 100.0,
        a.partitions,
        a.batch_size,
        a.rounds,
        a.warmup_records
    );
    let mut contenders = vec![Contender::Copy, Contender::Normaliser];
    if !a.python.is_empty() {
        contenders.push(Contender::Python);
    }
    let registry = start_registry(&a, &format!("bench-e2e-reg-{}", std::process::id())).await?;
    let url = registry.url();
    for &c in &contenders {
        let w = drain(&a, c, a.warmup_records, &url, "warm").await?;
        println!("  warm-up {:<20} {:>9.0} records/s", c.label(), w.rate());
    }
    println!(
        "{:<7}{:<20}{:>12}{:>16}{:>14}{:>16}   per-thread CPU",
        "round", "contender", "records/s", "records/CPU-s", "CPU-s", "broker CPU-s"
    );
    let mut all: Vec<Vec<Drain>> = vec![Vec::new(); contenders.len()];
    for round in 1..=a.rounds.max(1) {
        for (i, &c) in contenders.iter().enumerate() {
            let d = drain(&a, c, n, &url, &format!("r{round}")).await?;
            println!(
                "{:<7}{:<20}{:>12.0}{:>16.0}{:>14.2}{:>16.2}   {}",
                round,
                c.label(),
                d.rate(),
                d.per_cpu(),
                d.cpu,
                d.broker_cpu,
                d.threads
            );
            all[i].push(d);
        }
    }
    println!("min / median / max over {} rounds:", a.rounds.max(1));
    for (i, &c) in contenders.iter().enumerate() {
        let rates: Vec<f64> = all[i].iter().map(Drain::rate).collect();
        let cpu: Vec<f64> = all[i].iter().map(Drain::per_cpu).collect();
        println!(
            "  {:<20} records/s {}   records/CPU-s {}",
            c.label(),
            spread(&rates, 0),
            spread(&cpu, 0)
        );
    }
    // Ratios within each round (the host drifts between rounds).
    let ratio = |x: usize, y: usize, f: fn(&Drain) -> f64| -> Vec<f64> {
        all[x]
            .iter()
            .zip(&all[y])
            .map(|(p, q)| f(p) / f(q))
            .collect()
    };
    let goals = [
        (1, 0, "normaliser / raw copy", 0.9),
        (1, 2, "normaliser / Python", 10.0),
    ];
    for (x, y, what, goal) in goals {
        if y >= contenders.len() {
            continue;
        }
        println!(
            "  {what:<24} per CPU-s {} (goal >= {goal}), wall-clock {}",
            spread(&ratio(x, y, Drain::per_cpu), 3),
            spread(&ratio(x, y, Drain::rate), 3)
        );
    }

    let median_rate = |i: usize| crate::procs::median(all[i].iter().map(Drain::rate).collect());
    let rate = if a.latency_rate > 0 {
        a.latency_rate
    } else {
        (median_rate(1) / 2.0) as u64
    };
    println!(
        "latency, publish -> output read back, {} records each (no bad ones):",
        a.latency_records
    );
    for (i, &c) in contenders.iter().enumerate() {
        // The Python normaliser cannot keep up with half the Rust one's
        // rate: it is measured at half its own.
        let r = if c == Contender::Python && a.latency_rate == 0 {
            (median_rate(i) / 2.0) as u64
        } else {
            rate
        };
        let (p50, p99, got) = latency(&a, c, r, &url).await?;
        println!(
            "  {:<20} at {r:>7} records/s: p50 {p50:>7.1} ms, p99 {p99:>7.1} ms ({got} read back)",
            c.label()
        );
    }
    registry.stop().await?;
    Ok(())
}
