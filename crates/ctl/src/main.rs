//! `credit-bus`: operator commands.
//!
//! * `credit-bus topics create` creates every topic the catalogue implies.
//! * `credit-bus topics list` prints them.
//! * `credit-bus watch --service NAME=URL ...` shows live per-department
//!   accepted / dead-lettered counts, throughput and dead-letter reasons,
//!   scraped from each service's `/metrics`, and feedback open / overdue / done.
//! * `credit-bus feedback send|report`: answer a notice as a department; the
//!   tracker's per-department table.
//! * `credit-bus subject <code> [--as-of] [--measures]` and `credit-bus
//!   precheck --file codes.txt --measure <id> | --department <id>`: the
//!   archive's answers, through its API with a department's token.
//! * `credit-bus access apply|users|acls|helm`: the access model (one Kafka
//!   user per department and service, with its ACLs) applied to a broker,
//!   printed, or rendered for the Helm chart.
//!
//! Commands that reach Kafka as a department or operator check their
//! credentials first, so a wrong password stops them with a clear message.

mod access;
mod archive;
mod catalogue;
mod entry;
mod prom;

use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use credit_core::access::Role;
use credit_core::feedback::{Feedback, Outcome};
use credit_runtime::config::{KafkaConfig, RegistryConfig};
use credit_runtime::metrics::{MetricName, label};

#[derive(Parser)]
#[command(name = "credit-bus", about = "Operate credit-bus", version)]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Topics derived from the department catalogue.
    Topics {
        #[command(subcommand)]
        cmd: TopicsCmd,
    },
    /// List entries: end one (repaired, expired, withdrawn after objection).
    Entry {
        #[command(subcommand)]
        cmd: EntryCmd,
    },
    /// Print a department's notices, decoded through the schema registry.
    Subscribe {
        /// Department id from the catalogue.
        #[arg(long)]
        department: String,
        /// Stop after this many notices (0 = until Ctrl-C).
        #[arg(long, default_value_t = 0)]
        max: u64,
        /// Acknowledge each notice printed by publishing this feedback as the department.
        #[arg(long, value_enum)]
        ack: Option<OutcomeArg>,
        /// The feedback's reason (required with --ack not-applicable|failed).
        #[arg(long, requires = "ack")]
        reason: Option<String>,
        #[arg(long, env = "CREDIT_BUS_CONFIG")]
        config: Option<std::path::PathBuf>,
    },
    /// Feedback on notices: send one as a department, or the tracker's report.
    Feedback {
        #[command(subcommand)]
        cmd: FeedbackCmd,
    },
    /// Measures catalogue versions: validate, publish, dry-run and activate.
    Catalogue {
        #[command(subcommand)]
        cmd: CatalogueCmd,
    },
    /// Users and ACLs: apply the access model to a broker, print it, render it for Helm.
    Access {
        #[command(subcommand)]
        cmd: access::AccessCmd,
    },
    /// A subject's record from the archive (or its measures in force, with
    /// their explanation chains).
    Subject {
        /// USCC or resident ID number.
        code: String,
        /// A date (end of that day in the city) or an RFC 3339 timestamp.
        #[arg(long)]
        as_of: Option<String>,
        /// Only the measures in force, by implementing department.
        #[arg(long)]
        measures: bool,
        #[command(flatten)]
        target: archive::Target,
    },
    /// Which subjects in a file (one code a line) a measure or an
    /// implementing department restricts, from the archive.
    Precheck {
        #[arg(long)]
        file: std::path::PathBuf,
        /// A catalogue measure id.
        #[arg(
            long,
            required_unless_present = "department",
            conflicts_with = "department"
        )]
        measure: Option<String>,
        /// An implementing department id.
        #[arg(long)]
        department: Option<String>,
        #[arg(long)]
        as_of: Option<String>,
        #[command(flatten)]
        target: archive::Target,
    },
    /// Live view of the bus from the services' /metrics endpoints.
    Watch {
        /// `name=http://host:port` of a service's ops endpoint; repeat per service.
        #[arg(long = "service", required = true)]
        services: Vec<String>,
        /// Refresh interval in milliseconds.
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
        /// Stop after this many refreshes (0 = until Ctrl-C).
        #[arg(long, default_value_t = 0)]
        iterations: u64,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum OutcomeArg {
    Applied,
    NotApplicable,
    Failed,
}

impl From<OutcomeArg> for Outcome {
    fn from(o: OutcomeArg) -> Outcome {
        match o {
            OutcomeArg::Applied => Outcome::Applied,
            OutcomeArg::NotApplicable => Outcome::NotApplicable,
            OutcomeArg::Failed => Outcome::Failed,
        }
    }
}

#[derive(Subcommand)]
enum FeedbackCmd {
    /// Publish one feedback on a notice, as the department it was sent to.
    Send {
        /// The responding department (the notice's department).
        #[arg(long)]
        department: String,
        #[arg(long)]
        notice_id: String,
        #[arg(long, value_enum)]
        outcome: OutcomeArg,
        /// Why; required for not-applicable and failed.
        #[arg(long)]
        reason: Option<String>,
        /// The notice's `traceparent` header, so the feedback joins the notice's
        /// trace (`subscribe --ack` does this by itself).
        #[arg(long, env = "TRACEPARENT")]
        traceparent: Option<String>,
        #[arg(long, env = "CREDIT_BUS_CONFIG")]
        config: Option<std::path::PathBuf>,
    },
    /// Per-department open / overdue / done notices, from the tracker's /report.
    Report {
        /// Base URL of the feedback tracker.
        #[arg(long, default_value = "http://127.0.0.1:9120")]
        tracker: String,
    },
}

#[derive(Subcommand)]
enum CatalogueCmd {
    /// Checks a catalogue file and reports every problem at once.
    Validate { file: std::path::PathBuf },
    /// Validates a catalogue file and publishes it as its `version`.
    Publish {
        file: std::path::PathBuf,
        #[arg(long, env = "CREDIT_BUS_CONFIG")]
        config: Option<std::path::PathBuf>,
    },
    /// Activates a published version while everything runs: subjects with active
    /// entries get exactly the difference (new measures applied, dropped ones lifted).
    Activate {
        #[arg(long)]
        version: u32,
        /// Print, per department and measure, what activation would apply and
        /// lift, and send nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long, env = "CREDIT_BUS_CONFIG")]
        config: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand)]
enum EntryCmd {
    /// Ends a list entry: every department that got a notice for it gets exactly
    /// one lift (or, for `withdrawn`, withdrawal) notice.
    End {
        /// The normalised record's id, e.g. `courts:0:1234`.
        #[arg(long)]
        record_id: String,
        #[arg(long, value_enum)]
        reason: entry::Reason,
        /// Send even if the engine's changelog shows no such entry.
        #[arg(long)]
        force: bool,
        #[arg(long, env = "CREDIT_BUS_CONFIG")]
        config: Option<std::path::PathBuf>,
    },
}

#[derive(Subcommand)]
enum TopicsCmd {
    /// Create every topic that does not exist yet, with the services' `[kafka]`
    /// settings (brokers, prefix, partitions, replication, security).
    Create {
        /// TOML config file layered over the embedded defaults.
        #[arg(long, env = "CREDIT_BUS_CONFIG")]
        config: Option<std::path::PathBuf>,
    },
    /// Print every topic name under the configured prefix.
    List {
        #[arg(long, env = "CREDIT_BUS_CONFIG")]
        config: Option<std::path::PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Args::parse().cmd {
        Cmd::Topics {
            cmd: TopicsCmd::List { config },
        } => {
            for t in load_kafka(config.as_deref())?.naming().all() {
                println!("{t}");
            }
        }
        Cmd::Topics {
            cmd: TopicsCmd::Create { config },
        } => {
            let kafka = load_kafka(config.as_deref())?;
            let all = kafka.naming().all();
            credit_runtime::kafka::ensure_topics(&kafka, &all)
                .await
                .context("creating topics")?;
            eprintln!("{} topics present", all.len());
        }
        Cmd::Access { cmd } => access::run(cmd).await?,
        Cmd::Catalogue { cmd } => match cmd {
            CatalogueCmd::Validate { file } => {
                let c = catalogue::validate(&file)?;
                println!(
                    "{}: catalogue version {} is valid ({} measures)",
                    file.display(),
                    c.version,
                    c.measures.len()
                );
            }
            CatalogueCmd::Publish { file, config } => {
                let kafka = load_kafka(config.as_deref())?;
                access::check(&kafka, Role::Operator).await?;
                catalogue::publish(&kafka, &file).await?;
            }
            CatalogueCmd::Activate {
                version,
                dry_run,
                config,
            } => {
                let kafka = load_kafka(config.as_deref())?;
                access::check(&kafka, Role::Operator).await?;
                if dry_run {
                    let d =
                        tokio::task::spawn_blocking(move || catalogue::dry_run(&kafka, version))
                            .await??;
                    catalogue::print_dry_run(version, &d);
                } else {
                    catalogue::activate(&kafka, version).await?;
                }
            }
        },
        Cmd::Entry {
            cmd:
                EntryCmd::End {
                    record_id,
                    reason,
                    force,
                    config,
                },
        } => {
            let kafka = load_kafka(config.as_deref())?;
            access::check(&kafka, Role::Operator).await?;
            entry::end(&kafka, &record_id, reason, force).await?;
        }
        Cmd::Subscribe {
            department,
            max,
            ack,
            reason,
            config,
        } => {
            let ack = ack.map(|a| (Outcome::from(a), reason));
            subscribe(&department, max, ack, config.as_deref()).await?
        }
        Cmd::Feedback {
            cmd:
                FeedbackCmd::Send {
                    department,
                    notice_id,
                    outcome,
                    reason,
                    traceparent,
                    config,
                },
        } => {
            check_reason(outcome.into(), reason.as_deref())?;
            let (kafka, registry) = load_kafka_registry(config.as_deref())?;
            let dep = credit_core::catalogue::department(&department)
                .with_context(|| format!("unknown department {department:?}"))?;
            access::check(&kafka, Role::Department(dep)).await?;
            let tracer = load_tracer(config.as_deref())?;
            let sender = FeedbackSender::new(&kafka, &registry, &department, tracer).await?;
            let fb = Feedback {
                notice_id: &notice_id,
                department: sender.department,
                outcome: outcome.into(),
                reason: reason.as_deref(),
                responded_at_ms: now_ms(),
            };
            let parent = traceparent.and_then(|t| credit_runtime::trace::parse(t.as_bytes(), None));
            sender.send(&fb, parent.as_ref()).await?;
            eprintln!(
                "sent: {} on {notice_id} to {}",
                fb.outcome.symbol(),
                sender.topic
            );
        }
        Cmd::Feedback {
            cmd: FeedbackCmd::Report { tracker },
        } => feedback_report(&tracker).await?,
        Cmd::Watch {
            services,
            interval_ms,
            iterations,
        } => watch(services, interval_ms, iterations).await?,
        Cmd::Subject {
            code,
            as_of,
            measures,
            target,
        } => archive::subject(&target, &code, as_of.as_deref(), measures).await?,
        Cmd::Precheck {
            file,
            measure,
            department,
            as_of,
            target,
        } => {
            archive::precheck(
                &target,
                &file,
                measure.as_deref(),
                department.as_deref(),
                as_of.as_deref(),
            )
            .await?
        }
    }
    Ok(())
}

/// Prints each notice of a department as one JSON line, decoded with the writer
/// schema the registry serves for the id in its Confluent frame.
///
/// With `ack`, each notice printed is answered with that outcome and reason as
/// the department, after it is printed.
async fn subscribe(
    department: &str,
    max: u64,
    ack: Option<(Outcome, Option<String>)>,
    config: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::message::Message;
    let dep = credit_core::catalogue::department(department)
        .with_context(|| format!("unknown department {department:?}"))?;
    let (kafka, registry) = load_kafka_registry(config)?;
    access::check(&kafka, Role::Department(dep)).await?;
    let sender = match &ack {
        Some((outcome, reason)) => {
            check_reason(*outcome, reason.as_deref())?;
            let tracer = load_tracer(config)?;
            Some(FeedbackSender::new(&kafka, &registry, dep.id, tracer).await?)
        }
        None => None,
    };
    let topic = kafka.naming().notices(dep.id);
    let group = kafka.naming().subscriber_group(dep.id);
    let consumer: StreamConsumer =
        credit_runtime::kafka::consumer(&kafka, "credit-bus-subscriber", &group)
            .set("enable.auto.offset.store", "true")
            .create()?;
    consumer.subscribe(&[&topic])?;
    let client = credit_schemas::registry::RegistryClient::new(&registry.url)?;
    let mut schemas: std::collections::HashMap<u32, apache_avro::Schema> = Default::default();
    eprintln!("reading {topic} as group {group}");
    let mut n = 0u64;
    while max == 0 || n < max {
        let m = consumer.recv().await?;
        let Some(payload) = m.payload() else { continue };
        let (id, body) = credit_schemas::wire::split(payload)?;
        if let std::collections::hash_map::Entry::Vacant(slot) = schemas.entry(id) {
            slot.insert(apache_avro::Schema::parse_str(
                &client.schema_by_id(id).await?,
            )?);
        }
        #[allow(deprecated)]
        let value = apache_avro::from_avro_datum(&schemas[&id], &mut &body[..], None)?;
        let json: serde_json::Value = value.try_into()?;
        println!("{json}");
        if let (Some(sender), Some((outcome, reason))) = (&sender, &ack) {
            // The key is the notice id (notice.avsc).
            let Some(id) = m.key().and_then(|k| std::str::from_utf8(k).ok()) else {
                eprintln!(
                    "notice without a UTF-8 key at offset {}: not acknowledged",
                    m.offset()
                );
                continue;
            };
            // The feedback joins the notice's trace: `process <notices>`, then `send <feedback>`.
            let processing = sender.tracer.process_message(&m, &group);
            sender
                .send(
                    &Feedback {
                        notice_id: id,
                        department: sender.department,
                        outcome: *outcome,
                        reason: reason.as_deref(),
                        responded_at_ms: now_ms(),
                    },
                    Some(processing.context()),
                )
                .await?;
        }
        n += 1;
    }
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The tracker refuses NOT_APPLICABLE and FAILED without a reason; say so before sending.
fn check_reason(outcome: Outcome, reason: Option<&str>) -> anyhow::Result<()> {
    if outcome.needs_reason() && reason.is_none_or(|r| r.trim().is_empty()) {
        anyhow::bail!(
            "--reason is required with {}",
            outcome.as_str().replace('_', "-")
        );
    }
    Ok(())
}

/// Publishes feedback as one department: Avro in the Confluent wire format,
/// schema registered under `credit.<dept>.feedback-value`, key = notice id.
struct FeedbackSender {
    department: &'static str,
    topic: String,
    schema_id: u32,
    producer: rdkafka::producer::FutureProducer,
    tracer: credit_runtime::trace::Tracer,
}

impl FeedbackSender {
    async fn new(
        kafka: &KafkaConfig,
        registry: &RegistryConfig,
        department: &str,
        tracer: credit_runtime::trace::Tracer,
    ) -> anyhow::Result<FeedbackSender> {
        let dep = credit_core::catalogue::department(department)
            .with_context(|| format!("unknown department {department:?}"))?;
        let topic = kafka.naming().feedback(dep.id);
        let client = credit_schemas::registry::RegistryClient::new(&registry.url)?;
        let schema_id = client
            .register_with_retry(
                &credit_core::topics::value_subject(&topic),
                credit_schemas::FEEDBACK_AVSC,
                10,
            )
            .await
            .context("registering the feedback schema")?;
        Ok(FeedbackSender {
            department: dep.id,
            topic,
            schema_id,
            producer: credit_runtime::kafka::producer(kafka, "credit-bus-feedback").create()?,
            tracer,
        })
    }

    /// Sends `fb` in a `send` span, child of `parent` (the notice's trace) or a
    /// new trace; the record carries the span's trace context.
    async fn send(
        &self,
        fb: &Feedback<'_>,
        parent: Option<&credit_runtime::trace::SpanContext>,
    ) -> anyhow::Result<()> {
        check_reason(fb.outcome, fb.reason)?;
        // The key is a notice id, no personal data.
        let span = self.tracer.send(parent, &self.topic, Some(fb.notice_id));
        let mut buf = Vec::with_capacity(64 + fb.notice_id.len());
        credit_schemas::encode::feedback_framed(&mut buf, self.schema_id, fb);
        self.producer
            .send(
                rdkafka::producer::FutureRecord::to(&self.topic)
                    .key(fb.notice_id)
                    .payload(&buf)
                    .headers(credit_runtime::trace::headers(span.context())),
                Duration::from_secs(15),
            )
            .await
            .map_err(|(e, _)| e)
            .context("sending the feedback")?;
        Ok(())
    }
}

/// Prints the tracker's `/report` as a table.
async fn feedback_report(tracker: &str) -> anyhow::Result<()> {
    let url = format!("{}/report", tracker.trim_end_matches('/'));
    let resp = reqwest::get(&url)
        .await
        .with_context(|| format!("asking {url}"))?;
    if !resp.status().is_success() {
        anyhow::bail!(
            "{url}: {} {}",
            resp.status(),
            resp.text().await.unwrap_or_default()
        );
    }
    let report: serde_json::Value = resp.json().await?;
    let cols = [
        "open",
        "overdue",
        "done",
        "applied",
        "not_applicable",
        "failed",
    ];
    print!("{:<22}", "department");
    for c in cols {
        print!("{c:>16}");
    }
    println!();
    let mut total = [0u64; 6];
    if let Some(deps) = report["departments"].as_object() {
        for (dept, counts) in deps {
            print!("{dept:<22}");
            for (i, c) in cols.iter().enumerate() {
                let v = counts[*c].as_u64().unwrap_or(0);
                total[i] += v;
                print!("{v:>16}");
            }
            println!();
        }
    }
    print!("{:<22}", "all");
    for v in total {
        print!("{v:>16}");
    }
    println!();
    if let Some(p) = report["pending"].as_u64().filter(|p| *p > 0) {
        println!("({p} feedback waiting for its notice)");
    }
    Ok(())
}

/// The `[kafka]` and `[registry]` sections exactly as the services load them.
fn load_kafka_registry(
    file: Option<&std::path::Path>,
) -> anyhow::Result<(KafkaConfig, RegistryConfig)> {
    let mut l = credit_runtime::config::Loader::new("", file);
    let kafka = l.section::<KafkaConfig>("kafka");
    let registry = l.section::<RegistryConfig>("registry");
    Ok(l.finish(|| Some((kafka?, registry?)))?)
}

/// The tracer the `[telemetry]` section configures: spans exported when
/// `otlp_endpoint` is set; trace context propagated either way.
fn load_tracer(file: Option<&std::path::Path>) -> anyhow::Result<credit_runtime::trace::Tracer> {
    let mut l = credit_runtime::config::Loader::new("", file);
    let t = l.section::<credit_runtime::config::TelemetryConfig>("telemetry");
    let t = l.finish(|| t)?;
    credit_runtime::trace::Tracer::from_config("credit-bus", &t.otlp_endpoint, t.trace_sample_ratio)
}

/// The `[kafka]` section exactly as the services load it.
pub(crate) fn load_kafka(file: Option<&std::path::Path>) -> anyhow::Result<KafkaConfig> {
    let mut l = credit_runtime::config::Loader::new("", file);
    let kafka = l.section::<KafkaConfig>("kafka");
    Ok(l.finish(|| kafka)?)
}

#[derive(Default, Clone)]
struct Row {
    received: f64,
    accepted: f64,
    dead: f64,
}

async fn watch(services: Vec<String>, interval_ms: u64, iterations: u64) -> anyhow::Result<()> {
    let targets: Vec<(String, String)> = services
        .iter()
        .map(|s| {
            s.split_once('=').map(|(n, u)| {
                (
                    n.to_string(),
                    format!("{}/metrics", u.trim_end_matches('/')),
                )
            })
        })
        .collect::<Option<_>>()
        .context("--service must be NAME=URL")?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let mut prev: Option<(Instant, BTreeMap<String, Row>)> = None;
    let mut n = 0u64;
    loop {
        let mut rows: BTreeMap<String, Row> = BTreeMap::new();
        let mut reasons: BTreeMap<(String, String), f64> = BTreeMap::new();
        let mut notices: BTreeMap<(String, String), f64> = BTreeMap::new();
        // department -> [open, overdue, done], from the tracker's gauge.
        let mut tracked: BTreeMap<String, [f64; 3]> = BTreeMap::new();
        let mut down = Vec::new();
        for (name, url) in &targets {
            let text = match http
                .get(url)
                .send()
                .await
                .and_then(|r| r.error_for_status())
            {
                Ok(r) => r.text().await.unwrap_or_default(),
                Err(_) => {
                    down.push(name.clone());
                    continue;
                }
            };
            for s in prom::parse(&text) {
                let dept = s.label(label::DEPARTMENT).unwrap_or("-").to_string();
                if s.name == MetricName::NoticesTracked.exported() {
                    let i = match s.label(label::STATE) {
                        Some("open") => 0,
                        Some("overdue") => 1,
                        Some("done") => 2,
                        _ => continue,
                    };
                    tracked.entry(dept).or_default()[i] += s.value;
                    continue;
                }
                if s.name == MetricName::NoticesSent.exported() {
                    let kind = s.label(label::KIND).unwrap_or("-").to_string();
                    *notices.entry((dept, kind)).or_default() += s.value;
                    continue;
                }
                let counted = [
                    MetricName::RecordsIn,
                    MetricName::RecordsOut,
                    MetricName::RecordsDeadLettered,
                ];
                if !counted.iter().any(|m| m.exported() == s.name) {
                    continue;
                }
                let row = rows.entry(dept.clone()).or_default();
                if s.name == MetricName::RecordsIn.exported() {
                    row.received += s.value;
                } else if s.name == MetricName::RecordsOut.exported() {
                    row.accepted += s.value;
                } else {
                    row.dead += s.value;
                    let reason = s.label(label::REASON).unwrap_or("-").to_string();
                    *reasons.entry((dept, reason)).or_default() += s.value;
                }
            }
        }
        let now = Instant::now();
        let mut out = String::new();
        out.push_str("\x1b[2J\x1b[H");
        out.push_str("credit-bus live view (Ctrl-C stops the demo)\n\n");
        out.push_str(&format!(
            "{:<14}{:>12}{:>12}{:>14}{:>12}{:>12}\n",
            "department", "received", "accepted", "dead-letter", "pass rate", "records/s"
        ));
        let mut total_rate = 0.0;
        for (dept, r) in &rows {
            let rate = match &prev {
                Some((t, p)) => {
                    let d = p.get(dept).map_or(0.0, |x| x.received);
                    (r.received - d) / now.duration_since(*t).as_secs_f64().max(1e-3)
                }
                None => 0.0,
            };
            total_rate += rate;
            let pass = if r.accepted + r.dead > 0.0 {
                100.0 * r.accepted / (r.accepted + r.dead)
            } else {
                0.0
            };
            out.push_str(&format!(
                "{dept:<14}{:>12}{:>12}{:>14}{:>11.2}%{:>12.0}\n",
                r.received, r.accepted, r.dead, pass, rate
            ));
        }
        out.push_str(&format!("{:<14}{:>62.0}\n", "all", total_rate));
        out.push_str("\ndead-letter reasons\n");
        for ((dept, reason), v) in &reasons {
            out.push_str(&format!("  {dept:<14}{reason:<28}{v:>10}\n"));
        }
        if !notices.is_empty() {
            out.push_str("\nnotices sent by the engine (department, kind)\n");
            for ((dept, kind), v) in &notices {
                out.push_str(&format!("  {dept:<20}{kind:<14}{v:>10}\n"));
            }
        }
        tracked.retain(|_, v| v.iter().any(|x| *x > 0.0));
        if !tracked.is_empty() {
            out.push_str(&format!(
                "\nfeedback on notices\n  {:<20}{:>10}{:>10}{:>10}\n",
                "department", "open", "overdue", "done"
            ));
            for (dept, [open, overdue, done]) in &tracked {
                out.push_str(&format!("  {dept:<20}{open:>10}{overdue:>10}{done:>10}\n"));
            }
        }
        if !down.is_empty() {
            out.push_str(&format!("\nnot answering: {}\n", down.join(", ")));
        }
        print!("{out}");
        std::io::stdout().flush()?;
        prev = Some((now, rows));
        n += 1;
        if iterations > 0 && n >= iterations {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(interval_ms)).await;
    }
}
