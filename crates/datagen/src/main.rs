//! `credit-datagen`: publishes realistic department records to their inbound
//! topics (or writes them to files), with a chosen share of bad ones.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use credit_core::catalogue::{self, publishing_departments};
use credit_core::topics;
use credit_datagen::{EXPECT_HEADER, Generator};
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
    /// Topic prefix (`kafka.topic_prefix` of the services).
    #[arg(long, env = "CREDIT_BUS__KAFKA__TOPIC_PREFIX", default_value = topics::PREFIX)]
    topic_prefix: String,
    /// Bootstrap servers.
    #[arg(
        long,
        env = "CREDIT_BUS__KAFKA__BROKERS",
        default_value = "127.0.0.1:9092"
    )]
    brokers: String,
    /// `plaintext` or `sasl_plaintext` / `sasl_ssl` (publishing as a department's own user).
    #[arg(
        long,
        env = "CREDIT_BUS__KAFKA__SECURITY_PROTOCOL",
        default_value = "plaintext"
    )]
    security_protocol: String,
    #[arg(long, env = "CREDIT_BUS__KAFKA__SASL_MECHANISM")]
    sasl_mechanism: Option<String>,
    #[arg(long, env = "CREDIT_BUS__KAFKA__SASL_USERNAME")]
    sasl_username: Option<String>,
    /// From the environment only, never a flag (a flag shows in `ps`).
    #[arg(
        long,
        env = "CREDIT_BUS__KAFKA__SASL_PASSWORD",
        hide = true,
        hide_env_values = true
    )]
    sasl_password: Option<String>,
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
    let naming = topics::Naming::new(&args.topic_prefix);

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

    let mut config = rdkafka::ClientConfig::new();
    config
        .set("bootstrap.servers", &args.brokers)
        .set("security.protocol", &args.security_protocol)
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .set("message.timeout.ms", "60000");
    for (k, v) in [
        ("sasl.mechanism", &args.sasl_mechanism),
        ("sasl.username", &args.sasl_username),
        ("sasl.password", &args.sasl_password),
    ] {
        if let Some(v) = v {
            config.set(k, v);
        }
    }
    let producer: FutureProducer = config.create().context("creating producer")?;
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
        if pending.len() >= 5_000 || args.rate > 0 {
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
