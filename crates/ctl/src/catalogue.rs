//! `credit-bus catalogue`: validate, publish and activate measures catalogue
//! versions, and dry-run an activation against the engine's current entries.
//!
//! Versions live on the compacted catalogue topic under `version/<n>` (the TOML
//! text, validated before it is sent); `active` records the last activation.
//! Activation itself is a command `{"activate": n}` written to *every*
//! partition of the engine's command topic, so each input partition switches at
//! one definite point of its stream and a replay after a crash decides the same.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::{Context, bail};
use credit_engine::state::{Checkpoint, PartitionState, StoredEntry};
use credit_measures::Catalogue;
use credit_runtime::config::KafkaConfig;
use rdkafka::Offset;
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};

/// Reads and validates a catalogue file; every problem is reported at once.
pub fn validate(file: &std::path::Path) -> anyhow::Result<Catalogue> {
    let text =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    Catalogue::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))
}

fn partitions(kafka: &KafkaConfig, topic: &str) -> anyhow::Result<i32> {
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

fn published(kafka: &KafkaConfig) -> anyhow::Result<Vec<Catalogue>> {
    let topic = kafka.naming().catalogue();
    let n = partitions(kafka, &topic)?;
    credit_engine::pipeline::read_catalogues(kafka, &topic, n).map_err(anyhow::Error::msg)
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
    if let Some(old) = published(kafka)?
        .into_iter()
        .find(|o| o.version == c.version)
    {
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
    let key = format!("version/{}", c.version);
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
/// the same planning the engine runs, on a copy of each partition's state.
pub fn dry_run(kafka: &KafkaConfig, version: u32) -> anyhow::Result<DryRun> {
    let catalogues = published(kafka)?;
    let new = catalogues
        .iter()
        .find(|c| c.version == version)
        .cloned()
        .with_context(|| format!("catalogue version {version} is not published"))?;
    let naming = kafka.naming();
    let changelog = naming.engine_state();
    let n = partitions(kafka, &changelog)?;
    let reader = credit_runtime::kafka::reader(kafka, "credit-bus-dry-run")?;
    let mut states: HashMap<i32, PartitionState> = HashMap::new();
    let mut stored: HashMap<(i32, String), StoredEntry> = HashMap::new();
    let parts: Vec<(i32, Offset)> = (0..n).map(|p| (p, Offset::Beginning)).collect();
    credit_runtime::kafka::read_to_end(
        &reader,
        &changelog,
        &parts,
        Duration::from_secs(120),
        |m| {
            let st = states.entry(m.partition()).or_default();
            let (Some(key), Some(value)) = (m.key(), m.payload()) else {
                return;
            };
            if key == b"checkpoint" {
                if let Ok(cp) = serde_json::from_slice::<Checkpoint>(value) {
                    st.checkpoint = cp;
                }
            } else if key.starts_with(b"entry/")
                && let Ok(e) = serde_json::from_slice::<StoredEntry>(value)
            {
                stored.insert((m.partition(), e.record_id.clone()), e);
            }
        },
    )
    .map_err(anyhow::Error::msg)?;
    // The last value of each entry, its duties restored from its version.
    for ((p, _), e) in stored {
        let c = catalogues.iter().find(|c| c.version == e.catalogue_version);
        let e = e.restore(c).map_err(anyhow::Error::msg)?;
        states
            .entry(p)
            .or_default()
            .entries
            .insert(e.record_id.clone(), e);
    }
    let mut out = DryRun::new();
    for st in states.values_mut() {
        for n in st.plan_activation(&new) {
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
    if !published(kafka)?.iter().any(|c| c.version == version) {
        bail!(
            "catalogue version {version} is not published: `credit-bus catalogue publish FILE` first"
        );
    }
    let naming = kafka.naming();
    let producer: FutureProducer =
        credit_runtime::kafka::producer(kafka, "credit-bus-cli").create()?;
    let body = format!(r#"{{"version":{version}}}"#);
    send(
        &producer,
        FutureRecord::to(&naming.catalogue())
            .key("active")
            .payload(body.as_bytes()),
    )
    .await?;
    let commands = naming.engine_commands();
    let command = format!(r#"{{"activate":{version}}}"#);
    for p in 0..partitions(kafka, &commands)? {
        send(
            &producer,
            FutureRecord::to(&commands)
                .partition(p)
                .key("activate")
                .payload(command.as_bytes()),
        )
        .await?;
    }
    eprintln!("activation of catalogue version {version} sent to every partition of {commands}");
    Ok(())
}
