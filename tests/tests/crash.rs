//! `kill -9` the normaliser mid-stream, again and again, then restart it: every
//! inbound record is still accounted for (normalised or dead-lettered), and any
//! record processed twice carries the same key and identical bytes both times.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use credit_bus_tests::*;
use credit_core::dlq;
use credit_core::topics::Naming;
use credit_datagen::Generator;
use rdkafka::message::Message;

/// Waits until the instance behind `port` has read records (it owns partitions and
/// is mid-stream), so the kill that follows interrupts real work.
async fn wait_for_progress(port: u16) {
    let url = format!("http://127.0.0.1:{port}/metrics");
    for _ in 0..600 {
        if let Ok(r) = reqwest::get(&url).await
            && let Ok(text) = r.text().await
            && text.lines().any(|l| {
                l.starts_with(credit_runtime::metrics::MetricName::RecordsIn.exported())
                    && !l.ends_with(" 0")
            })
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("normaliser on ops port {port} made no progress within 60 s");
}

fn spawn_normaliser(
    prefix: &str,
    registry: &str,
    dept: &str,
    ops_port: u16,
    log: &std::path::Path,
) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(bin("credit-normaliser"))
        .env(
            "CREDIT_BUS__TELEMETRY__OPS_LISTEN",
            format!("127.0.0.1:{ops_port}"),
        )
        .env("CREDIT_BUS__KAFKA__BROKERS", brokers())
        .env("CREDIT_BUS__KAFKA__TOPIC_PREFIX", prefix)
        .env("CREDIT_BUS__REGISTRY__URL", registry)
        .env("CREDIT_BUS__NORMALISER__DEPARTMENT", dept)
        .env("CREDIT_BUS__NORMALISER__BATCH_SIZE", "200")
        // Debug logging, so the check below that no resident ID is ever logged has
        // every log line the normaliser can write to look at.
        .env(
            "CREDIT_BUS__TELEMETRY__LOG_FILTER",
            "info,credit_normaliser=debug",
        )
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawning credit-normaliser")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_stream_loses_nothing() {
    let prefix = unique("t-crash");
    let naming = Naming::new(&prefix);
    create_topics(&prefix).await;
    let registry = Registry::start(&unique("t-crash-schemas")).await;
    let dept = "courts";
    let mut g = Generator::new(5, 0.1);
    let mut published = BTreeMap::new();

    let log = std::env::temp_dir().join(format!("{}.log", unique("normaliser")));
    let mut port = free_port();
    let mut child = spawn_normaliser(&prefix, &registry.url, dept, port, &log);
    let kills = 3;
    for round in 0..kills {
        // Publish while the normaliser is mid-stream, then kill it without warning.
        let chunk: Vec<_> = (0..4000).map(|_| g.record(dept)).collect();
        published.extend(publish(&naming, chunk).await);
        wait_for_progress(port).await;
        tokio::time::sleep(Duration::from_millis(50 + 100 * round)).await;
        child.kill().expect("SIGKILL"); // Child::kill is SIGKILL on Unix
        child.wait().unwrap();
        port = free_port();
        child = spawn_normaliser(&prefix, &registry.url, dept, port, &log);
    }
    let chunk: Vec<_> = (0..4000).map(|_| g.record(dept)).collect();
    published.extend(publish(&naming, chunk).await);

    let total = published.len();
    let want_ok = published.values().filter(|s| s.expect.is_none()).count();
    // Replays add duplicates, so wait for the distinct keys, not the record count.
    let distinct = |want: usize| {
        move |got: &[rdkafka::message::OwnedMessage]| {
            got.iter()
                .map(|m| {
                    (
                        m.partition(),
                        m.key().map(<[u8]>::to_vec),
                        header(m, dlq::OFFSET).map(str::to_string),
                    )
                })
                .collect::<BTreeSet<_>>()
                .len()
                >= want
        }
    };
    let records = consume_until(
        &naming.records(),
        Duration::from_secs(150),
        Duration::from_secs(2),
        distinct(want_ok),
    );
    let dead = consume_until(
        &naming.dlq(dept),
        Duration::from_secs(60),
        Duration::from_secs(2),
        distinct(total - want_ok),
    );
    let metrics_text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    child.kill().unwrap();
    child.wait().unwrap();

    // Resident ID numbers never appear in logs or metrics, masked or not.
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(
        logs.contains("normaliser running") && logs.contains("dead-lettered"),
        "debug logs were written"
    );
    assert!(
        metrics_text.contains(credit_runtime::metrics::MetricName::RecordsDeadLettered.exported())
    );
    let mut ids = 0;
    for s in published.values() {
        let v = String::from_utf8_lossy(&s.value);
        if !v.contains("自然人") {
            continue;
        }
        if let Some(i) = v.find("\"cardNum\":\"") {
            let id: String = v[i + 11..].chars().take(18).collect();
            ids += 1;
            assert!(
                !logs.contains(&id) && !metrics_text.contains(&id),
                "resident ID leaked"
            );
            assert!(
                !logs.contains(&id[6..14]),
                "a birth date from a resident ID leaked"
            );
        }
    }
    assert!(ids > 1000, "only {ids} natural persons in the sample");

    // Each inbound (partition, offset) → the distinct outputs it produced.
    let mut outputs: BTreeMap<(i32, i64), BTreeSet<Vec<u8>>> = BTreeMap::new();
    let mut copies = 0usize;
    for m in &records {
        let key = std::str::from_utf8(m.key().unwrap()).unwrap();
        let mut parts = key.rsplitn(3, ':');
        let o: i64 = parts.next().unwrap().parse().unwrap();
        let p: i32 = parts.next().unwrap().parse().unwrap();
        assert_eq!(parts.next(), Some(dept));
        assert_eq!(published[&(p, o)].expect, None);
        outputs
            .entry((p, o))
            .or_default()
            .insert(m.payload().unwrap().to_vec());
        copies += 1;
    }
    for m in &dead {
        let p: i32 = header(m, dlq::PARTITION).unwrap().parse().unwrap();
        let o: i64 = header(m, dlq::OFFSET).unwrap().parse().unwrap();
        assert_eq!(
            Some(header(m, dlq::REASON).unwrap()),
            published[&(p, o)].expect.map(|r| r.as_str())
        );
        outputs
            .entry((p, o))
            .or_default()
            .insert(m.payload().unwrap().to_vec());
        copies += 1;
    }
    for p in 0..3 {
        let lost: Vec<_> = published
            .keys()
            .filter(|k| k.0 == p && !outputs.contains_key(k))
            .map(|k| k.1)
            .collect();
        let max = published.keys().filter(|k| k.0 == p).map(|k| k.1).max();
        eprintln!(
            "partition {p}: published up to {max:?}, lost {} (first {:?}, last {:?})",
            lost.len(),
            lost.first(),
            lost.last()
        );
    }
    let missing: Vec<_> = published
        .keys()
        .filter(|k| !outputs.contains_key(k))
        .take(10)
        .collect();
    assert!(
        missing.is_empty(),
        "lost inbound records (partition, offset): {missing:?}"
    );
    assert_eq!(outputs.len(), total, "every inbound record accounted for");
    let differing: Vec<_> = outputs
        .iter()
        .filter(|(_, v)| v.len() > 1)
        .map(|(k, _)| k)
        .take(5)
        .collect();
    assert!(
        differing.is_empty(),
        "a replayed record produced different bytes: {differing:?}"
    );
    eprintln!(
        "{total} inbound records, {kills} kill -9s, {} outputs ({} replayed duplicates with identical key and bytes)",
        copies,
        copies - total
    );
    registry.stop().await;
}

/// SIGTERM (what Kubernetes sends) mid-stream: the normaliser finishes its
/// in-flight batch, commits what was acknowledged and exits 0; a restart then
/// replays nothing, so every inbound record yields exactly one output.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_and_commits_so_a_restart_replays_nothing() {
    let prefix = unique("t-term");
    let naming = Naming::new(&prefix);
    create_topics(&prefix).await;
    let registry = Registry::start(&unique("t-term-schemas")).await;
    let dept = "courts";
    let mut g = Generator::new(8, 0.1);
    let log = std::env::temp_dir().join(format!("{}.log", unique("normaliser-term")));
    let port = free_port();
    let mut child = Proc(spawn_normaliser(&prefix, &registry.url, dept, port, &log));
    let mut published = publish(&naming, (0..6000).map(|_| g.record(dept)).collect()).await;
    wait_for_progress(port).await;
    let exit = child.terminate(Duration::from_secs(30));
    assert!(exit.success(), "exit after SIGTERM: {exit}");
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(logs.contains("draining"), "the drain was logged");

    let mut child = spawn_normaliser(&prefix, &registry.url, dept, free_port(), &log);
    published.extend(publish(&naming, (0..1000).map(|_| g.record(dept)).collect()).await);
    let want_ok = published.values().filter(|s| s.expect.is_none()).count();
    let total = published.len();
    let records = consume(
        &naming.records(),
        want_ok,
        Duration::from_secs(120),
        Duration::from_secs(3),
    );
    let dead = consume(
        &naming.dlq(dept),
        total - want_ok,
        Duration::from_secs(60),
        Duration::from_secs(2),
    );
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        records.len(),
        want_ok,
        "each good record normalised exactly once"
    );
    assert_eq!(
        dead.len(),
        total - want_ok,
        "each bad record dead-lettered exactly once"
    );
    let distinct: BTreeSet<_> = records
        .iter()
        .map(|m| m.key().map(<[u8]>::to_vec))
        .collect();
    assert_eq!(distinct.len(), want_ok, "no record id twice");
    registry.stop().await;
}
