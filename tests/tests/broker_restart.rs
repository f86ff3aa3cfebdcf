//! Exactly once across a broker restart. This test runs an Apache Kafka broker
//! of its own (scripts/kafka.sh), kills it with SIGKILL and starts it again on
//! the same data while an engine works, then kills the engine too; every
//! expected notice is on its department's topic exactly once, none missing and
//! none unexpected.
//!
//! It is its own test binary because it points `CREDIT_BUS_TEST_BROKERS` at its
//! private broker for every helper it uses.

use std::collections::BTreeSet;
use std::time::Duration;

use credit_bus_tests::engine::*;
use credit_bus_tests::*;
use credit_measures::Catalogue;
use credit_measures::rules;
use rdkafka::producer::FutureProducer;

/// The engine as a supervisor would run it: started again whenever it exits
/// (it stops on errors it cannot ride out, such as a broker gone for long).
struct Supervised {
    proc: Proc,
    port: u16,
    prefix: String,
    registry: String,
    log: std::path::PathBuf,
    restarts: usize,
}

impl Supervised {
    fn start(prefix: &str, registry: &str, log: &std::path::Path) -> Supervised {
        let port = free_port();
        Supervised {
            proc: spawn_engine(&brokers(), prefix, registry, log, "engine-a", port),
            port,
            prefix: prefix.to_string(),
            registry: registry.to_string(),
            log: log.to_path_buf(),
            restarts: 0,
        }
    }

    fn restart(&mut self) {
        self.proc.kill9();
        self.port = free_port();
        self.proc = spawn_engine(
            &brokers(),
            &self.prefix,
            &self.registry,
            &self.log,
            "engine-a",
            self.port,
        );
        self.restarts += 1;
    }

    fn keep_alive(&mut self) {
        if matches!(self.proc.0.try_wait(), Ok(Some(_))) {
            self.restart();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn notices_survive_a_broker_restart_exactly_once() {
    let dir = std::env::temp_dir().join(unique("broker-restart"));
    std::fs::create_dir_all(&dir).unwrap();
    let broker = OwnBroker::start("restart");
    // SAFETY: the only test in this binary, set before any thread reads it.
    unsafe { std::env::set_var("CREDIT_BUS_TEST_BROKERS", &broker.brokers) };

    let prefix = unique("t-restart");
    let (naming, registry, schema_id) = setup(&prefix).await;
    let catalogue = Catalogue::parse(credit_measures::V1).unwrap();
    let w = workload(900, schema_id, 11);
    let mut expected: BTreeSet<String> = BTreeSet::new();
    for e in &w.entries {
        for (t, k) in rules::targets(&catalogue, e) {
            expected.insert(rules::notice_id(&t, k, 1));
        }
    }
    let producer: FutureProducer =
        credit_runtime::kafka::producer(&kafka_config(&prefix), "restart-test")
            .create()
            .unwrap();
    let log = dir.join("engine.log");
    let mut engine = Supervised::start(&prefix, &registry.url, &log);

    let chunks: Vec<_> = w.records.chunks(300).collect();
    // 1. First chunk; the broker dies mid-stream and comes back on the same storage.
    send_all(&producer, &naming.records(), chunks[0]).await;
    wait_for_progress(engine.port).await;
    broker.kill9();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    broker.restart();

    // 2. Second chunk through the restarted broker; then the engine dies mid-stream.
    send_all(&producer, &naming.records(), chunks[1]).await;
    engine.keep_alive();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    engine.keep_alive();
    engine.restart();

    // 3. The rest.
    for c in &chunks[2..] {
        send_all(&producer, &naming.records(), c).await;
    }
    engine.keep_alive();
    let seen = read_notices(
        &naming,
        |s| s.len() >= expected.len(),
        Duration::from_secs(400),
    );
    eprintln!(
        "{} records ({} list entries), broker restarted once, engine restarted {} times, {} notices expected, {} distinct seen",
        w.records.len(),
        w.entries.len(),
        engine.restarts,
        expected.len(),
        seen.len()
    );
    assert_exactly_once(&expected, &seen);
    drop(engine);
    registry.stop().await;
    drop(broker);
    let _ = std::fs::remove_dir_all(&dir);
}
