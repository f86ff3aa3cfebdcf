//! A new catalogue version activated while the engine runs: the dry run reports
//! exactly what activation then sends, and the department topics end up with
//! exactly the version-1 notices plus the delta (new measures applied, dropped
//! ones lifted), each once, across a `kill -9` of the engine mid-activation.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use credit_bus_tests::engine::*;
use credit_bus_tests::*;
use credit_core::notice::NoticeKind;
use credit_measures::Catalogue;
use rdkafka::message::Message;
use rdkafka::producer::FutureProducer;

/// Version 2: `restrict-subsidies` dropped, one new measure for every
/// dishonesty list's companies.
fn v2_text() -> String {
    let v1 = credit_measures::V1;
    let start = v1.find("id = \"restrict-subsidies\"").unwrap();
    let block_start = v1[..start].rfind("[[measure]]").unwrap();
    let block_end = block_start + 11 + v1[block_start + 11..].find("[[measure]]").unwrap();
    let mut t = format!("{}{}", &v1[..block_start], &v1[block_end..]);
    t = t.replacen("version = 1", "version = 2", 1);
    t.push_str(
        r#"
[[measure]]
id = "restrict-land-supply"
kind = "punishment"
name_zh = "限制参与国有土地出让"
name_en = "Restrict bidding for state-owned land use rights"
legal_basis = "《国务院关于建立完善守信联合激励和失信联合惩戒制度加快推进社会诚信建设的指导意见》（国发〔2016〕33号）"
lists = ["JUDGEMENT_DEFAULTER", "MAJOR_TAX_VIOLATION", "SERIOUS_VIOLATION"]
subject_types = ["LEGAL_PERSON"]
departments = ["planning", "trading-centre"]
"#,
    );
    t
}

fn cli(prefix: &str, args: &[&str]) -> std::process::Output {
    Command::new(bin("credit-bus"))
        .env("CREDIT_BUS__KAFKA__BROKERS", brokers())
        .env("CREDIT_BUS__KAFKA__TOPIC_PREFIX", prefix)
        .args(args)
        .output()
        .expect("running credit-bus")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn activating_a_new_version_sends_exactly_the_delta_once() {
    let prefix = unique("t-catalogue");
    let (naming, registry, schema_id) = setup(&prefix).await;
    let text = v2_text();
    let v2 = Catalogue::parse(&text).expect("version 2 is valid");
    let w = workload(2_000, schema_id, 21);
    // What the engine must send: its planning, run here as reference over the
    // same records in the same order (entries already ended, measures'
    // validity and publication periods plan what the engine plans).
    let mut oracle = Oracle::new(kafka_config(&prefix).partitions);
    for (id, bytes) in &w.records {
        oracle.record(id, bytes);
    }
    let mut expected: BTreeSet<String> = oracle.notices.clone();
    assert!(expected.len() > w.entries.len(), "version 1 plans notices");
    let producer: FutureProducer =
        credit_runtime::kafka::producer(&kafka_config(&prefix), "catalogue-test")
            .create()
            .unwrap();
    let log = std::env::temp_dir().join(format!("{}.log", unique("catalogue-engine")));
    let mut port = free_port();
    let mut engine = spawn_engine(&brokers(), &prefix, &registry.url, &log, "engine-a", port);
    send_all(&producer, &naming.records(), &w.records).await;
    let seen = read_notices(
        &naming,
        |s| s.len() >= expected.len(),
        Duration::from_secs(240),
    );
    assert_eq!(
        seen.len(),
        expected.len(),
        "version 1 notices before activation"
    );

    // Not published yet: refused, with the reason.
    let out = cli(
        &prefix,
        &["catalogue", "activate", "--version", "2", "--dry-run"],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not published"));

    let file = std::env::temp_dir().join(format!("{}.toml", unique("catalogue-v2")));
    std::fs::write(&file, &text).unwrap();
    let out = cli(&prefix, &["catalogue", "publish", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The dry run: per (department, measure), exactly what activation plans.
    let delta = oracle.activate(&v2);
    let mut want: BTreeMap<(String, String), (usize, usize)> = BTreeMap::new();
    for n in &delta {
        let counts = want
            .entry((n.department.to_string(), n.measure_id.to_string()))
            .or_default();
        match n.kind {
            NoticeKind::Lift => counts.1 += 1,
            _ => counts.0 += 1,
        }
    }
    let lifts = delta.iter().filter(|n| n.kind == NoticeKind::Lift).count();
    assert!(
        lifts > 0 && lifts < delta.len(),
        "version 2 both applies and lifts"
    );
    let out = cli(
        &prefix,
        &["catalogue", "activate", "--version", "2", "--dry-run"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    let mut got: BTreeMap<(String, String), (usize, usize)> = BTreeMap::new();
    for line in table.lines().skip(2) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() == 4 {
            got.insert(
                (f[0].to_string(), f[1].to_string()),
                (f[2].parse().unwrap(), f[3].parse().unwrap()),
            );
        }
    }
    assert_eq!(got, want, "dry run table:\n{table}");

    // The dry run sent nothing.
    let still = read_notices(
        &naming,
        |s| s.len() >= expected.len(),
        Duration::from_secs(10),
    );
    assert_eq!(still.len(), expected.len(), "a dry run sends nothing");

    // Activate, kill the engine while it works, start it again.
    let out = cli(&prefix, &["catalogue", "activate", "--version", "2"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    engine.kill9();
    port = free_port();
    let _engine = spawn_engine(&brokers(), &prefix, &registry.url, &log, "engine-a", port);
    // Activating it again changes nothing.
    let out = cli(&prefix, &["catalogue", "activate", "--version", "2"]);
    assert!(out.status.success());

    expected.extend(delta.iter().map(|n| n.notice_id.clone()));
    let seen = read_notices(
        &naming,
        |s| s.len() >= expected.len(),
        Duration::from_secs(240),
    );
    assert_exactly_once(&expected, &seen);
    eprintln!(
        "{} entries; activation applied {} and lifted {} notices; {} in all, each once",
        w.entries.len(),
        delta.len() - lifts,
        lifts,
        seen.len()
    );
    registry.stop().await;
}

/// An engine puts its configured version on the catalogue topic, where the
/// entries it writes without their duties find it again; an engine whose
/// configured version is there with other content refuses to start, and so
/// does publishing other content under that number.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_engine_publishes_its_catalogue_version_and_refuses_another_under_that_number() {
    let log = std::env::temp_dir().join(format!("{}.log", unique("engine-catalogue")));
    let waiting = |engine: &mut Proc, limit: Duration| {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(s) = engine.0.try_wait().unwrap() {
                return Some(s);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };

    // A fresh bus: the engine publishes version 1 as shipped.
    let prefix = unique("t-cat-base");
    let (naming, registry, _) = setup(&prefix).await;
    let mut engine = spawn_engine(
        &brokers(),
        &prefix,
        &registry.url,
        &log,
        "cat-a",
        free_port(),
    );
    let got = consume_until(
        &naming.catalogue(),
        Duration::from_secs(60),
        Duration::ZERO,
        |m| !m.is_empty(),
    );
    assert_eq!(got.len(), 1, "one version on {}", naming.catalogue());
    assert_eq!(got[0].key(), Some(&b"version/1"[..]));
    assert_eq!(got[0].payload(), Some(credit_measures::V1.as_bytes()));
    assert!(
        waiting(&mut engine, Duration::from_secs(2)).is_none(),
        "the engine runs on"
    );
    drop(engine);
    let other = credit_measures::V1.replacen("限制", "严格限制", 1);
    assert_ne!(other, credit_measures::V1);
    let file = std::env::temp_dir().join(format!("{}.toml", unique("catalogue-v1-other")));
    std::fs::write(&file, &other).unwrap();
    let out = cli(&prefix, &["catalogue", "publish", file.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("already published with other content"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    registry.stop().await;

    // A bus whose version 1 says something else: the engine refuses.
    let prefix = unique("t-cat-other");
    let (_, registry, _) = setup(&prefix).await;
    let out = cli(&prefix, &["catalogue", "publish", file.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut engine = spawn_engine(
        &brokers(),
        &prefix,
        &registry.url,
        &log,
        "cat-b",
        free_port(),
    );
    let status = waiting(&mut engine, Duration::from_secs(60)).expect("the engine stops");
    assert!(!status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("catalogue version 1") && text.contains("differs from the configured one"),
        "{text}"
    );
    registry.stop().await;
}
