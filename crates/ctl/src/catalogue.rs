//! `credit-bus catalogue`: validate, publish and activate measures catalogue
//! versions, and dry-run an activation against the engine's current entries.
//!
//! Versions live on the compacted catalogue topic under `version/<n>` (the TOML
//! text, validated before it is sent); `active` records the last activation.
//! Activation itself is a command `{"activate": n}` written to *every*
//! partition of the engine's command topic, so each input partition switches at
//! one definite point of its stream and a replay after a crash decides the same.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};
use credit_measures::Catalogue;
use credit_runtime::config::KafkaConfig;
use credit_runtime::read::Stable;
use credit_schemas::commands::{self, Command};
use rdkafka::consumer::Consumer;
use rdkafka::producer::{FutureProducer, FutureRecord};

/// Reads and validates a catalogue file; every problem is reported at once.
pub fn validate(file: &std::path::Path) -> anyhow::Result<Catalogue> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    Catalogue::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))
}

/// The partition count of `topic`; an error naming the command that creates it if absent.
pub fn partitions(kafka: &KafkaConfig, topic: &str) -> anyhow::Result<i32> {
    let c: rdkafka::consumer::BaseConsumer =
        credit_runtime::kafka::base(kafka, "credit-bus-cli").create()?;
    let meta = c.fetch_metadata(Some(topic), Duration::from_secs(15))?;
    let n = meta
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .map_or(0, |t| t.partitions().len() as i32);
    if n == 0 {
        bail!("topic {topic} does not exist: run `credit-bus topics create`");
    }
    Ok(n)
}

/// Every valid version on the catalogue topic; invalid ones are reported.
pub fn published(kafka: &KafkaConfig) -> anyhow::Result<BTreeMap<u32, Catalogue>> {
    let topic = kafka.naming().catalogue();
    let n = partitions(kafka, &topic)?;
    let (good, bad) = credit_runtime::read::catalogue_versions(kafka, "credit-bus-cli", &topic, n)?;
    for (key, error) in bad {
        eprintln!("warning: {topic} holds an invalid value under {key} (never applied): {error}");
    }
    Ok(good.into_iter().map(|c| (c.version, c)).collect())
}

/// Replays engine partition `p` from the changelog, as the engine does.
pub fn partition_state(
    kafka: &KafkaConfig,
    catalogues: &BTreeMap<u32, Catalogue>,
    p: i32,
) -> anyhow::Result<credit_measures::plan::PartitionState> {
    let naming = kafka.naming();
    let mut replay = credit_runtime::read::changelog(
        kafka,
        "credit-bus-cli",
        &naming.engine_state(),
        p,
        Stable::AsIs,
        Duration::from_secs(120),
    )?;
    let missing: Vec<u32> = replay
        .catalogue_versions()
        .into_iter()
        .filter(|v| !catalogues.contains_key(v))
        .collect();
    if !missing.is_empty() {
        bail!(
            "changelog partition {p} names catalogue versions {missing:?}, which are not on {}",
            naming.catalogue()
        );
    }
    let base = catalogues.keys().next().copied().unwrap_or(1);
    Ok(replay.finish(catalogues, base)?)
}

async fn send(producer: &FutureProducer, rec: FutureRecord<'_, str, [u8]>) -> anyhow::Result<()> {
    producer
        .send(rec, Duration::from_secs(15))
        .await
        .map_err(|(e, _)| e)?;
    Ok(())
}

/// Publishes a version (validated first). The same version with other content is refused.
pub async fn publish(kafka: &KafkaConfig, file: &std::path::Path) -> anyhow::Result<()> {
    let c = validate(file)?;
    let text = std::fs::read_to_string(file)?;
    if let Some(old) = published(kafka)?.remove(&c.version) {
        if old == c {
            eprintln!(
                "version {} is already published with this content",
                c.version
            );
            return Ok(());
        }
        bail!(
            "version {} is already published with other content: bump `version`",
            c.version
        );
    }
    let producer: FutureProducer =
        credit_runtime::kafka::producer(kafka, "credit-bus-cli").create()?;
    let topic = kafka.naming().catalogue();
    let key = commands::version_key(c.version);
    send(
        &producer,
        FutureRecord::to(&topic)
            .key(key.as_str())
            .payload(text.as_bytes()),
    )
    .await?;
    eprintln!(
        "published catalogue version {} ({} measures) to {topic}",
        c.version,
        c.measures.len()
    );
    Ok(())
}

/// Per (department, measure): notices activation would (apply, lift).
pub type DryRun = BTreeMap<(String, String), (usize, usize)>;

/// What activating `version` would send now, from the engine's changelog:
/// the same planning the engine runs, on each partition's replayed state.
pub fn dry_run(kafka: &KafkaConfig, version: u32) -> anyhow::Result<DryRun> {
    let catalogues = published(kafka)?;
    let new = catalogues
        .get(&version)
        .cloned()
        .with_context(|| format!("catalogue version {version} is not published"))?;
    let n = partitions(kafka, &kafka.naming().engine_state())?;
    let mut out = DryRun::new();
    for p in 0..n {
        let mut st = partition_state(kafka, &catalogues, p)?;
        for n in st.plan_activation(&new, credit_runtime::today()) {
            let e = out
                .entry((n.department.to_string(), n.measure_id.to_string()))
                .or_default();
            if n.kind == credit_core::notice::NoticeKind::Lift {
                e.1 += 1;
            } else {
                e.0 += 1;
            }
        }
    }
    Ok(out)
}

pub fn print_dry_run(version: u32, d: &DryRun) {
    println!("dry run: activating catalogue version {version} would send");
    println!(
        "{:<22} {:<28} {:>8} {:>8}",
        "department", "measure", "apply", "lift"
    );
    let (mut a, mut l) = (0, 0);
    for ((dept, measure), (apply, lift)) in d {
        println!("{dept:<22} {measure:<28} {apply:>8} {lift:>8}");
        a += apply;
        l += lift;
    }
    println!("{:<22} {:<28} {a:>8} {l:>8}", "total", "");
}

/// Activates a published version: `active` on the catalogue topic, then one
/// activation command per command-topic partition.
pub async fn activate(kafka: &KafkaConfig, version: u32) -> anyhow::Result<()> {
    if !published(kafka)?.contains_key(&version) {
        bail!(
            "catalogue version {version} is not published: `credit-bus catalogue publish FILE` first"
        );
    }
    let naming = kafka.naming();
    let producer: FutureProducer =
        credit_runtime::kafka::producer(kafka, "credit-bus-cli").create()?;
    let body = commands::active_value(version);
    send(
        &producer,
        FutureRecord::to(&naming.catalogue())
            .key(commands::ACTIVE_KEY)
            .payload(&body),
    )
    .await?;
    let topic = naming.engine_commands();
    let command = Command::Activate(version);
    let value = command.to_json();
    for p in 0..partitions(kafka, &topic)? {
        send(
            &producer,
            FutureRecord::to(&topic)
                .partition(p)
                .key(command.key())
                .payload(&value),
        )
        .await?;
    }
    eprintln!("activation of catalogue version {version} sent to every partition of {topic}");
    Ok(())
}
