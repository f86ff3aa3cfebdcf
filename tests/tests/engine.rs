//! The engine against the real broker: one or two instances, random `kill -9`s
//! while tens of thousands of records flow (with replayed duplicates), then end
//! commands; afterwards every department topic holds exactly the expected
//! notice ids, none missing and none twice, as a department reads them
//! (`read_committed`). Also measured: the time from restarting a killed
//! instance to its first committed notice (goal: 5 s).

use std::collections::BTreeSet;
use std::time::Duration;

use credit_bus_tests::engine::*;
use credit_bus_tests::*;
use credit_measures::plan::EndReason;
use rand::{Rng, SeedableRng};
use rdkafka::producer::FutureProducer;

/// One engine instance, killed with SIGKILL mid-stream after every chunk and
/// restarted under the same static member id.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_engine_killed_repeatedly_sends_every_notice_exactly_once() {
    chaos(1).await;
}

/// Two instances sharing the partitions, either killed at random.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_engines_with_kill_9s_send_every_notice_exactly_once() {
    chaos(2).await;
}

async fn chaos(instances: usize) {
    let prefix = unique("t-engine");
    let (naming, registry, schema_id) = setup(&prefix).await;
    let w = workload(
        std::env::var("ENGINE_TEST_RECORDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(20_000),
        schema_id,
        3,
    );
    let producer: FutureProducer =
        credit_runtime::kafka::producer(&kafka_config(&prefix), "engine-test")
            .create()
            .unwrap();

    let log = std::env::temp_dir().join(format!("{}.log", unique("engine")));
    let brokers = brokers();
    let names = ["engine-a", "engine-b"];
    let mut ports: Vec<u16> = (0..instances).map(|_| free_port()).collect();
    let mut engines: Vec<Proc> = (0..instances)
        .map(|i| spawn_engine(&brokers, &prefix, &registry.url, &log, names[i], ports[i]))
        .collect();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(9);
    let mut kills = 0;

    // Records in chunks, with 5 % replayed duplicates, killing an engine between
    // chunks at a random moment while it works; the restarted instance gets the
    // next chunk at once, and the time to its first committed notice is its
    // recovery (process start, fencing its predecessor, rejoining, replay).
    let mut resumed_ms: Vec<u128> = Vec::new();
    let chunks: Vec<Vec<(String, Vec<u8>)>> = w
        .records
        .chunks(2_000)
        .map(|chunk| {
            let mut items = chunk.to_vec();
            items.extend(chunk.iter().filter(|_| rng.random_bool(0.05)).cloned());
            items
        })
        .collect();
    send_all(&producer, &naming.records(), &chunks[0]).await;
    for chunk in &chunks[1..] {
        let i = rng.random_range(0..instances);
        wait_for_progress(ports[i]).await;
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..300))).await;
        engines[i].kill9();
        kills += 1;
        ports[i] = free_port();
        let started = std::time::Instant::now();
        engines[i] = spawn_engine(&brokers, &prefix, &registry.url, &log, names[i], ports[i]);
        send_all(&producer, &naming.records(), chunk).await;
        wait_for_progress(ports[i]).await;
        resumed_ms.push(started.elapsed().as_millis());
    }

    // What the engine must send: the planning itself, run here as reference
    // over the same records (duplicates included) in the same order.
    let mut oracle = Oracle::new(kafka_config(&prefix).partitions);
    for (id, bytes) in chunks.iter().flatten() {
        oracle.record(id, bytes);
    }
    let mut expected: BTreeSet<String> = oracle.notices.clone();
    assert!(
        expected.len() > w.entries.len(),
        "the workload's entries plan notices ({} for {} entries)",
        expected.len(),
        w.entries.len()
    );
    // Wait until every applying notice is out before ending entries: commands for
    // records the engine has not seen yet are refused (and counted).
    let seen = read_notices(
        &naming,
        |s| s.len() >= expected.len(),
        Duration::from_secs(300),
    );
    let missing: Vec<_> = expected
        .iter()
        .filter(|id| !seen.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} missing before commands, by department: {:?}; first: {:?} ({} of {} seen)",
        missing.len(),
        by_department(&missing),
        &missing[..missing.len().min(5)],
        seen.len(),
        expected.len()
    );

    // End some entries: repaired (lift) and withdrawn (withdrawal), with a kill in between.
    let mut commands = Vec::new();
    for (i, e) in w.entries.iter().enumerate().filter(|(i, _)| i % 10 == 0) {
        let reason = if i % 30 == 0 {
            EndReason::Withdrawn
        } else {
            EndReason::Repaired
        };
        oracle.end(&e.record_id, reason);
        let reason = reason.as_str();
        let body = serde_json::json!({"record_id": e.record_id, "reason": reason})
            .to_string()
            .into_bytes();
        commands.push((e.record_id.clone(), body));
    }
    expected = oracle.notices.clone();
    assert!(
        expected.iter().any(|n| n.contains("/lift/"))
            && expected.iter().any(|n| n.contains("/withdrawal/")),
        "the commands lift and withdraw"
    );
    let half = commands.len() / 2;
    send_all(&producer, &naming.engine_commands(), &commands[..half]).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    wait_for_progress(ports[0]).await;
    engines[0].kill9();
    kills += 1;
    ports[0] = free_port();
    engines[0] = spawn_engine(&brokers, &prefix, &registry.url, &log, names[0], ports[0]);
    // A repeated command changes nothing.
    send_all(&producer, &naming.engine_commands(), &commands[..]).await;

    let seen = read_notices(
        &naming,
        |s| s.len() >= expected.len(),
        Duration::from_secs(300),
    );
    for e in &mut engines {
        e.kill9();
    }
    let logs = std::fs::read_to_string(&log).unwrap_or_default();
    let recoveries = logs.matches("partition replayed").count();
    eprintln!(
        "restart after kill -9 to first committed notice: max {:?} ms, all {resumed_ms:?}",
        resumed_ms.iter().max()
    );
    eprintln!(
        "{} records ({} list entries), {kills} kill -9s, {} partition replays, {} notices expected, {} distinct seen",
        w.records.len(),
        w.entries.len(),
        recoveries,
        expected.len(),
        seen.len()
    );
    assert_exactly_once(&expected, &seen);
    assert!(
        kills >= 3 && recoveries > 2,
        "the test must exercise recovery ({kills} kills, {recoveries} replays)"
    );

    // New instances take over from the killed ones with nothing left to do:
    // they replay every partition, send nothing, and stop cleanly on SIGTERM.
    let takeover = std::env::temp_dir().join(format!("{}.log", unique("engine-takeover")));
    let mut es: Vec<Proc> = names[..instances]
        .iter()
        .map(|n| spawn_engine(&brokers, &prefix, &registry.url, &takeover, n, free_port()))
        .collect();
    // One more end command makes every partition's owner replay it.
    send_all(&producer, &naming.engine_commands(), &commands[..1]).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    while std::fs::read_to_string(&takeover)
        .unwrap_or_default()
        .matches("partition replayed")
        .count()
        < 1
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no partition replayed within 90 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    for e in &mut es {
        let exit = e.terminate(Duration::from_secs(30));
        assert!(exit.success(), "exit after SIGTERM: {exit}");
    }
    let again = read_notices(
        &naming,
        |s| s.len() >= expected.len(),
        Duration::from_secs(60),
    );
    assert_exactly_once(&expected, &again);
    registry.stop().await;
}
