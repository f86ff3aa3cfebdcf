//! `credit-bench`: reproducible benchmarks, each printed beside a baseline
//! measured in the same run.
//!
//! `cargo run --release -p credit-bench -- normalise` measures, per department,
//! decode + validate + Avro encode with Confluent framing on one core, beside
//! a baseline that only copies the same bytes behind the same 5-byte header.
//! Figures: records/s per core and per-record latency percentiles (p50/p99).
//!
//! `cargo run --release -p credit-bench -- e2e --brokers 127.0.0.1:9092` measures the
//! normaliser through a real broker beside a raw rdkafka copy and the Python
//! normaliser of `bench/python` (see [`e2e`]).
//!
//! `cargo run --release -p credit-bench -- fanout --brokers 127.0.0.1:9092` measures
//! the engine's fan-out beside a raw produce of as many notices (see [`fanout`]).
//!
//! `cargo run --release -p credit-bench -- recovery --brokers 127.0.0.1:9092` measures
//! the time to resumed output after SIGKILL of a service or the broker (see
//! [`recovery`]). `bench/run.sh` runs each against a broker of its own.

mod e2e;
mod fanout;
mod procs;
mod recovery;

use std::hint::black_box;
use std::time::Instant;

use clap::{Parser, Subcommand};
use credit_core::catalogue::publishing_departments;
use credit_core::record::Context;
use credit_datagen::Generator;
use credit_normaliser::adapters;
use credit_schemas::{encode, wire};

/// mimalloc: the engine allocates a few small strings per notice, and glibc's
/// malloc spent a third of the CPU per notice on them (see `docs/engine.md`).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// In-process normalisation per department, single core.
    Normalise {
        /// Distinct sample records per department.
        #[arg(long, default_value_t = 20_000)]
        samples: usize,
        /// Passes over the samples.
        #[arg(long, default_value_t = 20)]
        passes: usize,
        /// Only this department (default: every publishing department).
        #[arg(long)]
        department: Option<String>,
        /// Share of records that are rejected (the dead-letter path).
        #[arg(long, default_value_t = 0.0)]
        bad_share: f64,
    },
    /// Through a real broker, beside a raw rdkafka copy of the same records.
    E2e(e2e::E2eArgs),
    /// The engine's fan-out through a real broker, beside a raw rdkafka produce.
    Fanout(fanout::FanoutArgs),
    /// Time to resumed output after SIGKILL of a service or of the broker.
    Recovery(recovery::RecoveryArgs),
    /// The raw consume -> produce copy `e2e` runs as its baseline process.
    #[command(hide = true)]
    Copy(e2e::CopyArgs),
    /// In-process notice planning and Avro encoding, one core.
    Notices {
        /// List entries to fan out.
        #[arg(long, default_value_t = 100_000)]
        entries: usize,
    },
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if matches!(args.cmd, Cmd::Normalise { .. } | Cmd::Notices { .. }) {
        println!("$ {}", procs::command_line());
    }
    match args.cmd {
        Cmd::Notices { entries } => notices(entries),
        Cmd::E2e(a) => tokio::runtime::Runtime::new()?.block_on(e2e::run(a))?,
        Cmd::Recovery(a) => tokio::runtime::Runtime::new()?.block_on(recovery::run(a))?,
        Cmd::Copy(a) => tokio::runtime::Runtime::new()?.block_on(e2e::copy_main(a))?,
        Cmd::Fanout(a) => tokio::runtime::Runtime::new()?.block_on(fanout::run(a))?,
        Cmd::Normalise {
            samples,
            passes,
            department,
            bad_share,
        } => normalise(samples, passes, department.as_deref(), bad_share),
    }
    Ok(())
}

/// One record's decode + validate + Avro encode with framing: the hot path
/// per record. Not inlined, so `bench/callgrind.sh` counts the instructions
/// inside it alone (`--toggle-collect`).
#[inline(never)]
fn normalise_one(
    format: credit_core::catalogue::InboundFormat,
    ctx: &Context<'_>,
    value: &[u8],
    buf: &mut Vec<u8>,
) -> Result<(), credit_core::reject::Rejection> {
    buf.clear();
    adapters::normalise(format, ctx, value, |rec| {
        encode::credit_record_framed(buf, 1, rec)
    })
}

fn normalise(samples: usize, passes: usize, only: Option<&str>, bad_share: f64) {
    println!("in-process normalise, 1 core, {samples} records x {passes} passes per department");
    println!(
        "{:<12}{:>16}{:>12}{:>12}{:>18}{:>10}",
        "department", "records/s/core", "p50 ns", "p99 ns", "baseline rec/s", "ratio"
    );
    let today = credit_runtime::today();
    for dep in publishing_departments().filter(|d| only.is_none_or(|o| o == d.id)) {
        let mut g = Generator::new(1, bad_share);
        let values: Vec<Vec<u8>> = (0..samples).map(|_| g.record(dep.id).value).collect();
        let format = dep.inbound.unwrap();
        let mut buf = Vec::with_capacity(2048);
        // Per-record latency: time blocks of 64 records, divide (Instant costs ~20 ns).
        let mut block_ns = Vec::with_capacity(samples * passes / 64 + 1);
        let start = Instant::now();
        for pass in 0..passes {
            for (i, chunk) in values.chunks(64).enumerate() {
                let t = Instant::now();
                for (j, v) in chunk.iter().enumerate() {
                    let ctx = Context {
                        department: dep.id,
                        source_topic: "credit.bench.inbound",
                        partition: 0,
                        offset: (pass * samples + i * 64 + j) as i64,
                        timestamp_ms: Some(1_700_000_000_000),
                        today,
                        key: None,
                    };
                    let r = normalise_one(format, &ctx, v, &mut buf);
                    assert!(bad_share > 0.0 || r.is_ok(), "bench samples are valid");
                    black_box(&r);
                    black_box(&buf);
                }
                block_ns.push(t.elapsed().as_nanos() as f64 / chunk.len() as f64);
            }
        }
        let secs = start.elapsed().as_secs_f64();
        let rate = (samples * passes) as f64 / secs;
        block_ns.sort_by(f64::total_cmp);

        let start = Instant::now();
        for _ in 0..passes {
            for v in &values {
                buf.clear();
                wire::write_header(&mut buf, 1);
                buf.extend_from_slice(v);
                black_box(&buf);
            }
        }
        let base = (samples * passes) as f64 / start.elapsed().as_secs_f64();
        println!(
            "{:<12}{:>16.0}{:>12.0}{:>12.0}{:>18.0}{:>10.3}",
            dep.id,
            rate,
            percentile(&block_ns, 0.5),
            percentile(&block_ns, 0.99),
            base,
            rate / base
        );
    }
    trace_cost(samples * passes);
}

/// What the normaliser adds per record for tracing when no span is exported:
/// read the inbound `traceparent`, derive the `process` and `send` span
/// contexts, write the output's `traceparent` header (librdkafka allocates it).
/// Baseline: the same header list with a constant value, no trace work.
fn trace_cost(n: usize) {
    use credit_runtime::trace::{self, Consumed, Tracer};
    use rdkafka::message::{Header, OwnedHeaders};
    let tracer = Tracer::propagating(1.0);
    let inbound = OwnedHeaders::new().insert(Header {
        key: trace::TRACEPARENT,
        value: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    });
    let at = Consumed {
        topic: "credit.courts.inbound",
        partition: 0,
        offset: 1,
        group: "credit.normaliser.courts",
    };
    let run = |with_parent: bool| {
        let start = Instant::now();
        for _ in 0..n {
            let parent = if with_parent {
                trace::extract(Some(black_box(&inbound)))
            } else {
                None
            };
            let p = tracer.process(parent.as_ref(), at);
            let s = tracer.send(Some(p.context()), "credit.records", None);
            black_box(trace::headers(s.context()));
        }
        start.elapsed().as_nanos() as f64 / n as f64
    };
    let (with, without) = (run(true), run(false));
    let start = Instant::now();
    for _ in 0..n {
        black_box(OwnedHeaders::new_with_capacity(2).insert(Header {
            key: trace::TRACEPARENT,
            value: Some(black_box(&[b'0'; 55][..])),
        }));
    }
    let base = start.elapsed().as_nanos() as f64 / n as f64;
    println!(
        "trace context per record (not exported): {with:.0} ns with an inbound traceparent, \
         {without:.0} ns starting a trace; of which {base:.0} ns is librdkafka's header list"
    );
}

/// Plans every notice of `n` list entries under the shipped catalogue with the
/// engine's own planning (`PartitionState::plan_record`: the entry's state,
/// its duties, the notice ids) and encodes each with Confluent framing, on one
/// core; baseline: copying the same number of equally sized byte strings.
fn notices(n: usize) {
    use credit_core::record::{ListType, SubjectType};
    use credit_measures::plan::{Input, PartitionState, Source};
    let catalogue =
        credit_measures::Catalogue::parse(credit_measures::V1).expect("shipped catalogue");
    let lists = [
        ListType::JudgementDefaulter,
        ListType::MajorTaxViolation,
        ListType::TaxGradeA,
        ListType::CustomsDishonest,
        ListType::SeriousViolation,
    ];
    let inputs: Vec<Input> = (0..n)
        .map(|i| Input {
            record_id: format!("courts:{}:{i}", i % 4),
            department: "courts".into(),
            list_type: Some(lists[i % lists.len()]),
            is_list_entry: true,
            subject_type: if i % 3 == 0 {
                SubjectType::NaturalPerson
            } else {
                SubjectType::LegalPerson
            },
            subject_key: "91440101MA59UU8U0F".into(),
            subject_name: "广州市恒信建材有限公司".into(),
            decision_number: "(2020)粤0106执123号".into(),
            valid_from: 19_000,
            valid_until: None,
            severity: credit_core::record::Severity::Serious,
            source_key: format!("(2020)粤0106执{i}号"),
            digest: i as u64,
            source: Source {
                topic: "credit.records".into(),
                partition: 1,
                offset: i as i64,
            },
        })
        .collect();
    // The engine's own planning: a partition's state records each entry and
    // its duties and returns the notices to send.
    let mut state = PartitionState::new(catalogue.version);
    let text: std::collections::HashMap<_, _> = catalogue
        .measures
        .iter()
        .map(|m| (m.id.clone(), (m.name_zh.clone(), m.legal_basis.clone())))
        .collect();
    let today = credit_runtime::today();
    let mut buf = Vec::with_capacity(1024);
    let mut count = 0usize;
    let mut bytes = 0usize;
    let mut block_ns = Vec::with_capacity(n / 64 + 1);
    let start = Instant::now();
    let mut inputs = inputs.into_iter().peekable();
    while inputs.peek().is_some() {
        let t = Instant::now();
        let mut in_chunk = 0;
        for input in inputs.by_ref().take(64) {
            for p in state.plan_record(&catalogue, input, today).1 {
                let (name, basis) = &text[&p.measure_id];
                let e = &state.entries[&*p.record_id];
                let notice = p.notice(e, name, basis);
                buf.clear();
                credit_schemas::encode::notice_framed(&mut buf, 2, &notice);
                bytes += buf.len();
                count += 1;
                in_chunk += 1;
                black_box(&buf);
            }
        }
        block_ns.push(t.elapsed().as_nanos() as f64 / in_chunk.max(1) as f64);
    }
    let secs = start.elapsed().as_secs_f64();
    block_ns.sort_by(f64::total_cmp);
    let size = bytes / count.max(1);
    let src = vec![7u8; size];
    let t = Instant::now();
    for _ in 0..count {
        buf.clear();
        buf.extend_from_slice(&src);
        black_box(&buf);
    }
    let base = count as f64 / t.elapsed().as_secs_f64();
    println!(
        "notice planning + Avro encoding, 1 core: {n} entries -> {count} notices ({size} bytes each on average)"
    );
    println!(
        "{:<22}{:>16}{:>12}{:>12}",
        "", "notices/s/core", "p50 ns", "p99 ns"
    );
    println!(
        "{:<22}{:>16.0}{:>12.0}{:>12.0}",
        "plan + encode",
        count as f64 / secs,
        percentile(&block_ns, 0.5),
        percentile(&block_ns, 0.99)
    );
    println!("{:<22}{:>16.0}", "copy baseline", base);
}
