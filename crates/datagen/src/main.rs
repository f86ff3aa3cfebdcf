//! `credit-datagen`: publishes realistic department records to their inbound
//! topics (or writes them to files), with a chosen share of bad ones.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use credit_core::catalogue::{self, publishing_departments};
use credit_datagen::{EXPECT_HEADER, Generator};
use credit_runtime::config::{KafkaConfig, Loader};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

#[derive(Parser)]
#[command(about = "Generate sample department records for credit-bus")]
struct Args {
    /// Department id, or `all` for every publishing department.
    #[arg(long, default_value = "all")]
    department: String,
    /// Records per department (0 with --rate: until Ctrl-C).
    #[arg(long, default_value_t = 1000)]
    count: u64,
    /// Share of records that must be rejected, 0.0..=1.0.
    #[arg(long, default_value_t = 0.05)]
    bad_share: f64,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Records per second per department; 0 = as fast as possible.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Write files `<dir>/<department>/<n>.<ext>` instead of publishing.
    #[arg(long)]
    out_dir: Option<PathBuf>,
    /// TOML config file layered over the embedded defaults; its `[kafka]`
    /// section (brokers, prefix, security) is read exactly as the services
    /// read it, `CREDIT_BUS__KAFKA__*` environment variables included.
    #[arg(long, env = "CREDIT_BUS_CONFIG")]
    config: Option<PathBuf>,
    /// Topic prefix: overrides `kafka.topic_prefix`.
    #[arg(long)]
    topic_prefix: Option<String>,
    /// Bootstrap servers: override `kafka.brokers`.
    #[arg(long)]
    brokers: Option<String>,
}

/// The `[kafka]` section as the services load it, with the flags over it.
fn load_kafka(args: &Args) -> anyhow::Result<KafkaConfig> {
    let mut l = Loader::new("", args.config.as_deref());
    if let Some(b) = &args.brokers {
        l = l.set("kafka.brokers", b);
    }
    if let Some(p) = &args.topic_prefix {
        l = l.set("kafka.topic_prefix", p);
    }
    let kafka = l.section::<KafkaConfig>("kafka");
    Ok(l.finish(|| kafka)?)
}

fn ext(dept: &str) -> &'static str {
    match catalogue::department(dept).and_then(|d| d.inbound) {
        Some(catalogue::InboundFormat::CustomsXml) => "xml",
        Some(catalogue::InboundFormat::TaxCsv) => "csv",
        _ => "json",
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let depts: Vec<&'static str> = if args.department == "all" {
        publishing_departments().map(|d| d.id).collect()
    } else {
        match catalogue::department(&args.department) {
            Some(d) if d.inbound.is_some() => vec![d.id],
            Some(_) => bail!("{} publishes nothing the bus normalises", args.department),
            None => bail!("unknown department {:?}", args.department),
        }
    };
    let mut gen_ = Generator::new(args.seed, args.bad_share);

    if let Some(dir) = &args.out_dir {
        for d in &depts {
            let sub = dir.join(d);
            std::fs::create_dir_all(&sub).with_context(|| format!("creating {}", sub.display()))?;
            for n in 0..args.count {
                let s = gen_.record(d);
                std::fs::write(sub.join(format!("{n:06}.{}", ext(d))), &s.value)?;
            }
        }
        eprintln!(
            "wrote {} records per department to {}",
            args.count,
            dir.display()
        );
        return Ok(());
    }

    let kafka = load_kafka(&args)?;
    let naming = kafka.naming();
    // The shared client settings carry the security protocol and SASL login.
    let producer: FutureProducer = credit_runtime::kafka::base(&kafka, "credit-datagen")
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .set("message.timeout.ms", "60000")
        .create()
        .context("creating producer")?;
    let start = Instant::now();
    let mut sent: u64 = 0;
    let mut pending = Vec::with_capacity(10_000);
    let forever = args.count == 0;
    let mut n: u64 = 0;
    while forever || n < args.count {
        for d in &depts {
            let s = gen_.record(d);
            let topic = naming.inbound(d);
            let headers = OwnedHeaders::new().insert(Header {
                key: EXPECT_HEADER,
                value: Some(s.expect_str()),
            });
            let rec = FutureRecord::to(&topic)
                .key(&s.key)
                .payload(&s.value)
                .headers(headers);
            pending.push(producer.send_result(rec).map_err(|(e, _)| e)?);
        }
        n += 1;
        // Deliveries are awaited in bulk, never one round at a time: waiting
        // for each round's acknowledgements (linger plus a broker round trip,
        // several ms) capped a paced run well below its --rate (131/s
        // reached of 200/s in the demo, issue 22).
        if pending.len() >= 5_000 {
            for f in pending.drain(..) {
                f.await?.map_err(|(e, _)| e).context("delivery failed")?;
                sent += 1;
            }
        }
        if args.rate > 0 {
            let due = Duration::from_secs_f64(n as f64 / args.rate as f64);
            if let Some(wait) = due.checked_sub(start.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
    }
    for f in pending.drain(..) {
        f.await?.map_err(|(e, _)| e).context("delivery failed")?;
        sent += 1;
    }
    producer.flush(Duration::from_secs(10))?;
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "published {sent} records to {} department topics in {secs:.2}s ({:.0}/s)",
        depts.len(),
        sent as f64 / secs
    );
    Ok(())
}
