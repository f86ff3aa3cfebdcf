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
mod watch;

use anyhow::Context;
use clap::{Parser, Subcommand};
use credit_core::access::Role;
use credit_core::feedback::{Feedback, Outcome};
use credit_runtime::config::{KafkaConfig, RegistryConfig};

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
    ///
    /// By default it reads in a private consumer group of its own,
    /// `<prefix>.<dept>.subscriber-<pid>-<time>`, which commits no offsets: it
    /// never takes records from another consumer of the department (the demo's
    /// acknowledging subscriber, the department's own systems), and leaves
    /// nothing behind. `--group` (or `--shared`, the department's group
    /// `<prefix>.<dept>.subscriber`) joins a named group instead, sharing its
    /// records and committed position with the other members (run several
    /// `--ack` workers in one group so each notice is answered once).
    #[command(verbatim_doc_comment)]
    Subscribe {
        /// Department id from the catalogue.
        #[arg(long)]
        department: String,
        /// Consumer group to join, under `<prefix>.<dept>.` (the only groups a
        /// department's credentials cover), e.g. `credit.finance.subscriber`.
        /// Default: a private group of this run (see above).
        #[arg(long)]
        group: Option<String>,
        /// Join the department's shared group, `<prefix>.<dept>.subscriber`
        /// (what the demo's acknowledging subscribers use).
        #[arg(long, conflicts_with = "group")]
        shared: bool,
        /// Where a group without a committed position starts: the oldest
        /// notice kept, or only notices published from now on. A named group
        /// that has committed offsets resumes there either way.
        #[arg(long, value_enum, default_value_t = Start::Beginning)]
        from: Start,
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
        /// Records per second each publishing department is meant to send
        /// (the demo's publisher rate), shown against the rate reached.
        #[arg(long)]
        target_rate: Option<f64>,
        /// Every department's dead-letter reasons, notice kinds and feedback
        /// (longer than a 50-line terminal; the dashboard shows them too).
        #[arg(long)]
        detail: bool,
    },
}

/// Where `subscribe` starts reading when its group has no committed position.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Start {
    /// The oldest notice the topic still keeps.
    Beginning,
    /// Only notices published after the subscriber joined.
    End,
}

impl Start {
    /// librdkafka's `auto.offset.reset`.
    fn offset_reset(self) -> &'static str {
        match self {
            Start::Beginning => "earliest",
            Start::End => "latest",
        }
    }
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
            group,
            shared,
            from,
            max,
            ack,
            reason,
            config,
        } => {
            let ack = ack.map(|a| (Outcome::from(a), reason));
            let group = match shared {
                true => Some(
                    load_kafka(config.as_deref())?
                        .naming()
                        .subscriber_group(&department),
                ),
                false => group,
            };
            let opts = SubscribeOptions { group, from, max };
            subscribe(&department, &opts, ack, config.as_deref()).await?
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
            target_rate,
            detail,
        } => {
            let opts = watch::Options {
                target_rate,
                detail,
            };
            watch::run(services, interval_ms, iterations, opts).await?
        }
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
struct SubscribeOptions {
    group: Option<String>,
    from: Start,
    max: u64,
}

/// The group `subscribe` reads in, and whether it is a private one (which
/// commits nothing), or why the named group cannot be used.
fn subscriber_group(
    naming: &credit_core::topics::Naming,
    department: &str,
    group: Option<&str>,
    unique: &str,
) -> anyhow::Result<(String, bool)> {
    let Some(g) = group else {
        return Ok((naming.private_subscriber_group(department, unique), true));
    };
    let allowed = naming.department_groups(department);
    match g.strip_prefix(&allowed) {
        Some(rest) if !rest.is_empty() => Ok((g.to_string(), false)),
        _ => anyhow::bail!(
            "--group {g:?}: a department reads only in groups named {allowed}<name> \
             (its credentials cover no others), e.g. {}",
            naming.subscriber_group(department)
        ),
    }
}

async fn subscribe(
    department: &str,
    opts: &SubscribeOptions,
    ack: Option<(Outcome, Option<String>)>,
    config: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    use rdkafka::consumer::{Consumer, StreamConsumer};
    use rdkafka::message::Message;
    let dep = credit_core::catalogue::department(department)
        .with_context(|| format!("unknown department {department:?}"))?;
    let (kafka, registry) = load_kafka_registry(config)?;
    let unique = format!("{}-{}", std::process::id(), now_ms());
    let (group, private) =
        subscriber_group(&kafka.naming(), dep.id, opts.group.as_deref(), &unique)?;
    let max = opts.max;
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
    let consumer: StreamConsumer =
        credit_runtime::kafka::consumer(&kafka, "credit-bus-subscriber", &group)
            .set("enable.auto.offset.store", "true")
            // A private group is this run's alone: nothing to resume later.
            .set("enable.auto.commit", if private { "false" } else { "true" })
            .set("auto.offset.reset", opts.from.offset_reset())
            .create()?;
    consumer.subscribe(&[&topic])?;
    let client = credit_schemas::registry::RegistryClient::new(&registry.url)?;
    let mut schemas: std::collections::HashMap<u32, apache_avro::Schema> = Default::default();
    let start = match opts.from {
        Start::Beginning => "the oldest notice kept",
        Start::End => "notices published from now on",
    };
    if private {
        eprintln!(
            "reading {topic} in a private group {group} (commits nothing, takes no records \
             from other consumers), from {start}"
        );
    } else {
        eprintln!(
            "reading {topic} as group {group}, sharing its records with the group's other \
             members; from its committed position, or else {start}"
        );
    }
    // Feedback handed to the producer whose delivery is not awaited yet.
    const MAX_IN_FLIGHT: usize = 1000;
    let mut in_flight = std::collections::VecDeque::new();
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
            if in_flight.len() >= MAX_IN_FLIGHT
                && let Some(d) = in_flight.pop_front()
            {
                FeedbackSender::delivered(d).await?;
            }
            in_flight.push_back(sender.enqueue(
                &Feedback {
                    notice_id: id,
                    department: sender.department,
                    outcome: *outcome,
                    reason: reason.as_deref(),
                    responded_at_ms: now_ms(),
                },
                Some(processing.context()),
            )?);
        }
        n += 1;
    }
    for d in in_flight {
        FeedbackSender::delivered(d).await?;
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
        let delivery = self.enqueue(fb, parent)?;
        Self::delivered(delivery).await
    }

    /// Hands `fb` to the producer and returns its delivery, without waiting
    /// for it: `subscribe --ack` keeps many in flight, since one broker round
    /// trip per feedback (a few ms) held an acknowledging department below the
    /// rate its notices arrive at in the demo (issue 22: "done" fell ever
    /// further behind "open").
    fn enqueue(
        &self,
        fb: &Feedback<'_>,
        parent: Option<&credit_runtime::trace::SpanContext>,
    ) -> anyhow::Result<rdkafka::producer::DeliveryFuture> {
        check_reason(fb.outcome, fb.reason)?;
        // The key is a notice id, no personal data.
        let span = self.tracer.send(parent, &self.topic, Some(fb.notice_id));
        let mut buf = Vec::with_capacity(64 + fb.notice_id.len());
        credit_schemas::encode::feedback_framed(&mut buf, self.schema_id, fb);
        self.producer
            .send_result(
                rdkafka::producer::FutureRecord::to(&self.topic)
                    .key(fb.notice_id)
                    .payload(&buf)
                    .headers(credit_runtime::trace::headers(span.context())),
            )
            .map_err(|(e, _)| e)
            .context("sending the feedback")
    }

    async fn delivered(d: rdkafka::producer::DeliveryFuture) -> anyhow::Result<()> {
        match d.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((e, _))) => Err(e).context("sending the feedback"),
            Err(_) => anyhow::bail!("sending the feedback: the producer went away"),
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use credit_core::topics::Naming;

    #[test]
    fn subscribe_defaults_to_a_private_group_and_checks_a_named_one() {
        let n = Naming::default();
        let (g, private) = subscriber_group(&n, "finance", None, "7-1").unwrap();
        assert!(private);
        assert_eq!(g, n.private_subscriber_group("finance", "7-1"));
        assert!(g.starts_with(&n.department_groups("finance")), "{g}");
        assert_ne!(g, n.subscriber_group("finance"));

        let shared = n.subscriber_group("finance");
        assert_eq!(
            subscriber_group(&n, "finance", Some(&shared), "x").unwrap(),
            (shared, false)
        );
        for bad in ["credit.tax.subscriber", "credit.finance.", "mine", ""] {
            let e = subscriber_group(&n, "finance", Some(bad), "x").unwrap_err();
            assert!(
                e.to_string().contains("credit.finance.<name>"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn subscribe_help_says_which_group_and_why() {
        use clap::CommandFactory;
        let mut cmd = Args::command();
        let help = cmd
            .find_subcommand_mut("subscribe")
            .unwrap()
            .render_long_help()
            .to_string();
        for want in [
            "private consumer group",
            "never takes records",
            "--group",
            "--from",
        ] {
            assert!(help.contains(want), "{want}: {help}");
        }
    }
}
