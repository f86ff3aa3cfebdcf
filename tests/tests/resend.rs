//! A department resending its records (issue 16, class 7), against the real
//! broker: identical resends cause no notice, changed resends notify only the
//! difference, and a correction that makes a record no list entry lifts every
//! notice of its entry, each exactly once across a `kill -9` of the engine.

use std::time::Duration;

use credit_bus_tests::engine::*;
use credit_bus_tests::*;
use credit_core::catalogue::publishing_departments;
use credit_core::notice::NoticeKind;
use credit_core::record::{Context, InfoKind};
use credit_measures::Catalogue;
use credit_measures::rules::{self, Entry};
use rdkafka::producer::FutureProducer;

/// What a resend does to its record.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Resend {
    Identical,
    /// Another decision number: an update that changes no duty.
    Renumbered,
    /// No longer a list entry: a correction that lifts every duty.
    Withdrawn,
}

/// Normalised records of `n` samples, and for every list entry one resend of
/// the given kind, with its record id (`<dept>:0:<offset + 1_000_000>`).
struct Plan {
    first: Vec<(String, Vec<u8>)>,
    resends: Vec<(String, Vec<u8>)>,
    /// (entry, what its resend did)
    entries: Vec<(Entry, Resend)>,
}

fn plan(n: usize, schema_id: u32) -> Plan {
    let mut g = credit_datagen::Generator::new(11, 0.0);
    let depts: Vec<_> = publishing_departments().collect();
    let kinds = [Resend::Identical, Resend::Renumbered, Resend::Withdrawn];
    let mut p = Plan {
        first: Vec::new(),
        resends: Vec::new(),
        entries: Vec::new(),
    };
    for i in 0..n {
        let d = depts[i % depts.len()];
        let s = g.record(d.id);
        let ctx = Context {
            department: d.id,
            source_topic: "credit.inbound",
            partition: 0,
            offset: i as i64,
            timestamp_ms: None,
            today: credit_runtime::today(),
            key: Some(&s.key),
        };
        let kind = kinds[i % kinds.len()];
        credit_normaliser::adapters::normalise(d.inbound.unwrap(), &ctx, &s.value, |r| {
            let mut buf = Vec::new();
            credit_schemas::encode::credit_record_framed(&mut buf, schema_id, r);
            p.first.push((r.record_id().to_string(), buf));
            let is_entry = matches!(r.info_kind, InfoKind::DishonestyList | InfoKind::RedList);
            let late = r.valid_until.is_some_and(|u| u < ctx.today);
            let (Some(list), true, false) = (r.list_type, is_entry, late) else {
                return;
            };
            let mut again = r.clone();
            again.lineage.source_offset += 1_000_000;
            match kind {
                Resend::Identical => {}
                Resend::Renumbered => {
                    again.decision_number = format!("{}（更正）", r.decision_number).into();
                }
                Resend::Withdrawn => {
                    again.info_kind = InfoKind::AdministrativePenalty;
                    again.list_type = None;
                }
            }
            let mut buf = Vec::new();
            credit_schemas::encode::credit_record_framed(&mut buf, schema_id, &again);
            p.resends.push((again.record_id().to_string(), buf));
            p.entries.push((
                Entry {
                    record_id: r.record_id().to_string(),
                    list_type: list,
                    subject_type: r.subject.kind,
                },
                kind,
            ));
        })
        .expect("valid samples");
    }
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resends_notify_only_what_changed_exactly_once() {
    let prefix = unique("t-resend");
    let (naming, registry, schema_id) = setup(&prefix).await;
    let catalogue = Catalogue::parse(credit_measures::V1).unwrap();
    let p = plan(3_000, schema_id);
    let producer: FutureProducer =
        credit_runtime::kafka::producer(&kafka_config(&prefix), "resend-test")
            .create()
            .unwrap();
    let log = std::env::temp_dir().join(format!("{}.log", unique("resend")));
    let mut port = free_port();
    let mut engine = spawn_engine(&brokers(), &prefix, &registry.url, &log, "engine-r", port);

    // The planning as reference, over the same records in the same order; the
    // resends add exactly the lifts of the withdrawn entries' active duties.
    let mut oracle = Oracle::new(kafka_config(&prefix).partitions);
    for (id, b) in &p.first {
        oracle.record(id, b);
    }
    let before = oracle.notices.clone();
    for (id, b) in p.resends.iter().chain(&p.resends[..10]) {
        oracle.record(id, b);
    }
    let expected = oracle.notices.clone();
    let added: Vec<&String> = expected.difference(&before).collect();
    assert!(!added.is_empty(), "the corrections lift something");
    assert!(
        added.iter().all(|n| n.contains("/lift/")),
        "resends only lift: {:?}",
        &added[..3.min(added.len())]
    );
    // Every withdrawn entry's applied notices are lifted; nothing else is.
    for (e, kind) in &p.entries {
        for (t, k) in rules::targets(&catalogue, e) {
            let applied = rules::notice_id(&t, k, 1);
            let lifted = rules::notice_id(&t, NoticeKind::Lift, 1);
            if before.contains(&applied) {
                assert_eq!(
                    expected.contains(&lifted),
                    *kind == Resend::Withdrawn,
                    "{lifted}"
                );
            }
        }
    }

    // The first versions, then the resends, with a kill -9 while they flow.
    send_all(&producer, &naming.records(), &p.first).await;
    wait_for_progress(port).await;
    let half = p.resends.len() / 2;
    send_all(&producer, &naming.records(), &p.resends[..half]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    engine.kill9();
    port = free_port();
    engine = spawn_engine(&brokers(), &prefix, &registry.url, &log, "engine-r", port);
    send_all(&producer, &naming.records(), &p.resends[half..]).await;
    // The bus replaying a resend (at-least-once normaliser) changes nothing either.
    send_all(&producer, &naming.records(), &p.resends[..10]).await;

    let seen = read_notices(
        &naming,
        |s| s.len() >= expected.len(),
        Duration::from_secs(240),
    );
    assert_exactly_once(&expected, &seen);

    // What the engine counted: duplicates and updates per department.
    let metrics = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let sum = |name: &str| -> f64 {
        metrics
            .lines()
            .filter(|l| l.starts_with(name))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    let updated = sum(credit_runtime::metrics::MetricName::EntriesUpdated.exported());
    let duplicates = sum(credit_runtime::metrics::MetricName::RecordsDuplicate.exported());
    eprintln!(
        "{} entries, {} resends: {duplicates} duplicates and {updated} updates counted by the restarted engine; {} notices exactly once",
        p.entries.len(),
        p.resends.len(),
        expected.len()
    );
    assert!(
        updated > 0.0 && duplicates > 0.0,
        "the restarted engine counted updates ({updated}) and duplicates ({duplicates})"
    );
    engine.kill9();
    registry.stop().await;
}
