//! No input may stop the engine (issue 21), against the real broker: the
//! poison inputs on each topic it consumes, each followed by good input.
//!
//! * `credit.records`: garbage bytes, magic byte 0 with a schema id the
//!   registry does not know, a valid frame of another subject's schema (a
//!   notice), a truncated Avro body, an empty value, 5 MB;
//! * `credit.engine.commands`: the same garbage, empty and 5 MB values, JSON
//!   that is no command, a truncated command, an end for an entry that does
//!   not exist, an end sent to another partition than its entry's;
//! * `credit.catalogue`: a version whose text is not a catalogue, then an
//!   activation of it (and of a version never published).
//!
//! Each bad input is on `credit.engine.dlq` with its reason and its topic,
//! partition and offset (the original bytes, or a prefix with length and
//! SHA-256 when too large), the engine process is the one started and still
//! healthy, and the good records' notices are there exactly once.
//!
//! And the registry away for 30 s while records the engine cannot decode
//! without it flow: it waits (counted as retries), stays up, dead-letters
//! nothing, and resumes by itself.

use std::collections::BTreeSet;
use std::time::Duration;

use credit_bus_tests::engine::*;
use credit_bus_tests::poison::*;
use credit_bus_tests::*;
use credit_core::dlq;
use credit_core::topics::{record_partition, value_subject};
use credit_schemas::registry::RegistryClient;

fn garbage() -> Vec<u8> {
    let mut x: u32 = 0x2545_f491;
    let mut v: Vec<u8> = (0..300)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    v[0] = 0xff; // never a Confluent magic byte, never JSON
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_engine_dead_letters_poison_on_every_input_and_stays_up() {
    let prefix = unique("t-engine-poison");
    let (naming, registry, schema_id) = setup(&prefix).await;
    let partitions = kafka_config(&prefix).partitions;
    let client = RegistryClient::new(&registry.url).unwrap();
    let notice_schema = client
        .register(
            &value_subject(&naming.notices("finance")),
            credit_schemas::NOTICE_AVSC,
        )
        .await
        .unwrap();
    let w = workload(400, schema_id, 41);
    let (first, second) = w.records.split_at(200);
    let p = big_producer();

    let port = free_port();
    let log = std::env::temp_dir().join(format!("{}.log", unique("engine-poison")));
    let mut engine = spawn_engine(&brokers(), &prefix, &registry.url, &log, "engine-p", port);

    // Good records first, so commands can name a real entry.
    let mut sent = Vec::new();
    send_all(&p, &naming.records(), first).await;
    wait_for_progress(port).await;

    // credit.records
    let records = naming.records();
    let (_, good) = &first[0];
    let mut unknown_id = vec![0, 0x7f, 0xff, 0xff, 0xf0];
    unknown_id.extend_from_slice(&good[5..]);
    let truncated = good[..good.len() - 9].to_vec();
    for (label, value, reason) in [
        ("records: garbage", garbage(), "malformed_avro"),
        ("records: unknown schema id", unknown_id, "unknown_schema"),
        (
            "records: another subject's schema",
            notice_bytes(
                notice_schema,
                "courts:0:1/no-subsidy/finance/punishment/1",
                "finance",
            ),
            "schema_mismatch",
        ),
        ("records: truncated Avro", truncated, "malformed_avro"),
        ("records: empty", Vec::new(), "empty_record"),
        ("records: 5 MB", padded(b"\xff", 5 * MB), "malformed_avro"),
    ] {
        let key = format!("poison:{label}");
        sent.push((
            send(&p, &records, key.as_bytes(), &value, label).await,
            records.clone(),
            reason,
        ));
    }

    // credit.engine.commands: each to the partition of the key it names, as
    // `credit-bus entry end` sends them.
    let commands = naming.engine_commands();
    let entry = &w.entries[0].record_id;
    let elsewhere = (record_partition(entry, partitions) + 1) % partitions;
    let to = |k: &str| record_partition(k, partitions);
    for (label, key, partition, value, reason) in [
        (
            "commands: garbage",
            "g",
            to("g"),
            garbage(),
            "malformed_command",
        ),
        (
            "commands: empty",
            "e",
            to("e"),
            Vec::new(),
            "malformed_command",
        ),
        (
            "commands: 5 MB",
            "m",
            to("m"),
            padded(b"{", 5 * MB),
            "malformed_command",
        ),
        (
            "commands: not a command",
            "n",
            to("n"),
            br#"{"hello": "world"}"#.to_vec(),
            "malformed_command",
        ),
        (
            "commands: truncated",
            entry.as_str(),
            to(entry),
            format!(r#"{{"record_id": "{entry}", "reas"#).into_bytes(),
            "malformed_command",
        ),
        (
            "commands: unknown entry",
            "courts:9:999999",
            to("courts:9:999999"),
            br#"{"record_id": "courts:9:999999", "reason": "repaired"}"#.to_vec(),
            "refused_command",
        ),
        (
            "commands: wrong partition",
            entry.as_str(),
            elsewhere,
            format!(r#"{{"record_id": "{entry}", "reason": "withdrawn"}}"#).into_bytes(),
            "refused_command",
        ),
    ] {
        let d = p
            .send(
                rdkafka::producer::FutureRecord::to(&commands)
                    .partition(partition)
                    .key(key)
                    .payload(&value),
                Duration::from_secs(30),
            )
            .await
            .map_err(|(e, _)| e)
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        let s = Sent {
            label: label.to_string(),
            partition: d.partition,
            offset: d.offset,
            value,
        };
        sent.push((s, commands.clone(), reason));
    }

    // credit.catalogue: a version that is no catalogue, then its activation
    // (and one of a version never published) on every engine partition.
    let catalogue = naming.catalogue();
    send(
        &p,
        &catalogue,
        credit_schemas::commands::version_key(7).as_bytes(),
        b"this is [not a catalogue",
        "catalogue: not TOML",
    )
    .await;
    for v in [7u32, 8] {
        for partition in 0..partitions {
            let value = format!(r#"{{"activate": {v}}}"#).into_bytes();
            let d = p
                .send(
                    rdkafka::producer::FutureRecord::to(&commands)
                        .partition(partition)
                        .key(credit_schemas::commands::ACTIVATE_KEY)
                        .payload(&value),
                    Duration::from_secs(30),
                )
                .await
                .map_err(|(e, _)| e)
                .unwrap();
            let s = Sent {
                label: format!("activate {v} on partition {partition}"),
                partition: d.partition,
                offset: d.offset,
                value,
            };
            sent.push((s, commands.clone(), "refused_command"));
        }
    }

    // Good records after all of it.
    send_all(&p, &naming.records(), second).await;

    // Every bad input dead-lettered with its reason and position.
    let dead = consume(
        &naming.engine_dead_letters(),
        sent.len() + 1,
        Duration::from_secs(120),
        Duration::from_secs(2),
    );
    let mut wrong = Vec::new();
    for (s, topic, reason) in &sent {
        let found = find(&dead, topic, s);
        assert_eq!(
            found.len(),
            1,
            "{}: one dead letter ({} in all)",
            s.label,
            dead.len()
        );
        assert_dead_letter_of(found[0], s);
        let got = header(found[0], dlq::REASON);
        if got != Some(*reason) {
            wrong.push(format!("{}: {got:?}, want {reason}", s.label));
        }
    }
    assert!(wrong.is_empty(), "reasons: {wrong:#?}");
    // The version that is no catalogue, found when an activation names it:
    // dead-lettered once, with the key and every problem found in it (the
    // catalogue reader keeps the problems, not the value's position).
    let bad_version: Vec<_> = dead
        .iter()
        .filter(|m| header(m, dlq::TOPIC) == Some(catalogue.as_str()))
        .collect();
    assert_eq!(bad_version.len(), 1, "the bad catalogue version, once");
    assert_eq!(header(bad_version[0], dlq::REASON), Some("invalid_value"));
    let why = String::from_utf8_lossy(
        rdkafka::message::Message::payload(bad_version[0]).unwrap_or_default(),
    )
    .into_owned();
    assert!(
        why.contains("version/7") && why.contains("TOML parse error"),
        "{why}"
    );
    let others: Vec<String> = dead
        .iter()
        .filter(|m| header(m, dlq::TOPIC) != Some(catalogue.as_str()))
        .filter(|m| {
            !sent
                .iter()
                .any(|(s, t, _)| find(std::slice::from_ref(*m), t, s).len() == 1)
        })
        .map(|m| {
            format!(
                "{:?}/{:?}/{:?}: {:?}",
                header(m, dlq::TOPIC),
                header(m, dlq::PARTITION),
                header(m, dlq::OFFSET),
                header(m, dlq::REASON)
            )
        })
        .collect();
    assert!(others.is_empty(), "nothing else dead-lettered: {others:#?}");

    // Every good record's notices once; nothing for the bad ones.
    let mut oracle = Oracle::new(partitions);
    for (id, bytes) in &w.records {
        oracle.record(id, bytes);
    }
    let expected: BTreeSet<String> = oracle.notices.clone();
    let seen = read_notices(
        &naming,
        |s| s.len() >= expected.len(),
        Duration::from_secs(120),
    );
    assert_exactly_once(&expected, &seen);

    // The process started is the one running, and healthy.
    assert!(
        engine.0.try_wait().unwrap().is_none(),
        "the engine exited (log: {})",
        log.display()
    );
    let health = reqwest::get(format!("http://127.0.0.1:{port}/healthz"))
        .await
        .unwrap();
    assert!(health.status().is_success());
    eprintln!(
        "{} poison inputs dead-lettered with their reasons; {} notices for {} good records, each once",
        sent.len(),
        seen.len(),
        w.records.len()
    );
    engine.kill9();
    registry.stop().await;
}

/// The records schema with one more optional field at the end: a version a
/// department's normaliser might write while the engine has not fetched it.
fn evolved_record_schema() -> String {
    let avsc = credit_schemas::CREDIT_RECORD_AVSC.trim_end();
    let end = avsc.rfind(']').expect("the top-level field list");
    format!(
        r#"{},
    {{"name": "channel", "type": ["null", "string"], "default": null}}
  ]
}}"#,
        avsc[..end].trim_end()
    )
}

/// The registry away for 30 s while records the engine cannot decode
/// without it flow (framed with a schema id it has not fetched yet): the
/// engine waits (counted as retries), stays up, dead-letters nothing, and
/// once the registry is back every notice comes, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_engine_waits_for_a_registry_away_for_30_s() {
    let prefix = unique("t-engine-regaway");
    let naming = credit_core::topics::Naming::new(&prefix);
    create_topics(&prefix).await;
    let store = unique("t-engine-regaway-schemas");
    let listen = format!("127.0.0.1:{}", free_port());
    let registry = Registry::start_at(&store, &listen).await;
    let client = RegistryClient::new(&registry.url).unwrap();
    let subject = value_subject(&naming.records());
    let schema_id = client
        .register(&subject, credit_schemas::CREDIT_RECORD_AVSC)
        .await
        .unwrap();
    let evolved = client
        .register(&subject, &evolved_record_schema())
        .await
        .unwrap();
    assert_ne!(schema_id, evolved);
    let partitions = kafka_config(&prefix).partitions;
    let w = workload(300, schema_id, 43);
    let (first, second) = w.records.split_at(100);
    let p = big_producer();
    let port = free_port();
    let log = std::env::temp_dir().join(format!("{}.log", unique("engine-regaway")));
    let mut engine = spawn_engine(&brokers(), &prefix, &registry.url, &log, "engine-r", port);
    send_all(&p, &naming.records(), first).await;
    wait_for_progress(port).await;

    // Away; records in the evolved version (its optional field null) arrive.
    registry.stop().await;
    let later: Vec<(String, Vec<u8>)> = second
        .iter()
        .map(|(id, framed)| {
            let mut v = framed.clone();
            v[1..5].copy_from_slice(&evolved.to_be_bytes());
            v.push(0); // channel: null
            (id.clone(), v)
        })
        .collect();
    send_all(&p, &naming.records(), &later).await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(
        engine.0.try_wait().unwrap().is_none(),
        "the engine waits, it does not stop (log: {})",
        log.display()
    );
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.lines().any(|l| l
            .starts_with(credit_runtime::metrics::MetricName::ErrorsHandled.exported())
            && l.contains("class=\"retry\"")
            && l.contains("error=\"registry_unavailable\"")),
        "the engine's retries are counted"
    );

    // Back on the same address and store: everything resumes by itself.
    let registry = Registry::start_at(&store, &listen).await;
    let mut oracle = Oracle::new(partitions);
    for (id, bytes) in &w.records {
        oracle.record(id, bytes);
    }
    let expected: BTreeSet<String> = oracle.notices.clone();
    let seen = read_notices(
        &naming,
        |s| s.len() >= expected.len(),
        Duration::from_secs(120),
    );
    assert_exactly_once(&expected, &seen);
    let dead = consume(
        &naming.engine_dead_letters(),
        1,
        Duration::from_secs(3),
        Duration::from_secs(3),
    );
    assert!(
        dead.is_empty(),
        "nothing dead-lettered for the registry being away: {}",
        dead.len()
    );
    eprintln!(
        "registry away 30 s: {} notices for {} records, each once, engine up",
        seen.len(),
        w.records.len()
    );
    engine.kill9();
    registry.stop().await;
}
