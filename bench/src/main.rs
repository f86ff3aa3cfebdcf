//! `credit-bench`: reproducible benchmarks, each printed beside a baseline
//! measured in the same run.
//!
//! `cargo run --release -p credit-bench -- normalise` measures, per department,
//! decode + validate + Avro encode with Confluent framing on one core, beside
//! a baseline that only copies the same bytes behind the same 5-byte header.
//! Figures: records/s per core and per-record latency percentiles (p50/p99).
//!
//! `cargo run --release -p credit-bench -- e2e --brokers 127.0.0.1:9092` measures the
//! normaliser through a real broker beside a raw rdkafka copy (see [`e2e`]).

mod e2e;

use std::hint::black_box;
use std::time::Instant;

use clap::{Parser, Subcommand};
use credit_core::catalogue::publishing_departments;
use credit_core::record::Context;
use credit_datagen::Generator;
use credit_normaliser::adapters;
use credit_schemas::{encode, wire};

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
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

fn main() -> anyhow::Result<()> {
    match Args::parse().cmd {
        Cmd::E2e(a) => tokio::runtime::Runtime::new()?.block_on(e2e::run(a))?,
        Cmd::Normalise {
            samples,
            passes,
            department,
            bad_share,
        } => normalise(samples, passes, department.as_deref(), bad_share),
    }
    Ok(())
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
                    };
                    buf.clear();
                    let r = adapters::normalise(format, &ctx, v, |rec| {
                        encode::credit_record_framed(&mut buf, 1, rec)
                    });
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
}
