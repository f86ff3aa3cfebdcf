//! Expiry of list entries through the real broker, with the engine's clock
//! under the test's control (`engine.today`): entries already ended when they
//! arrive send nothing and are counted as late; when the day moves on, every
//! entry and duty whose validity (stated end, publication period, measure
//! validity) ended is lifted on that day, not before, exactly once, across
//! `kill -9`s of the engine while it lifts. The engine receives no input after
//! the first day: expiry must not wait for input.

use std::collections::BTreeSet;
use std::time::Duration;

use credit_bus_tests::engine::*;
use credit_bus_tests::*;
use credit_core::notice::NoticeKind;
use credit_runtime::metrics::MetricName;
use rdkafka::producer::FutureProducer;

/// The sum over labels of a counter on an engine's `/metrics`.
async fn counter(port: u16, name: MetricName) -> u64 {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let name = name.exported();
    text.lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn entries_expire_on_their_day_exactly_once_across_kills() {
    let prefix = unique("t-expiry");
    let (naming, registry, schema_id) = setup(&prefix).await;
    let partitions = kafka_config(&prefix).partitions;
    let day0 = credit_runtime::today();
    let w = workload(1_500, schema_id, 31);
    let mut oracle = Oracle::at(partitions, day0);
    for (id, bytes) in &w.records {
        oracle.record(id, bytes);
    }
    assert!(
        oracle.late > 0,
        "the workload holds entries already ended on arrival"
    );
    let mut expected: BTreeSet<String> = oracle.notices.clone();

    let log = std::env::temp_dir().join(format!("{}.log", unique("expiry-engine")));
    let engine_on = |day: i32, port: u16| {
        spawn_engine_with(
            &brokers(),
            &prefix,
            &registry.url,
            &log,
            "engine-a",
            port,
            &[("CREDIT_BUS__ENGINE__TODAY", credit_core::date::format(day))],
        )
    };

    // Day 0: the records arrive; late entries send nothing and are counted.
    let mut port = free_port();
    let mut engine = engine_on(day0, port);
    let producer: FutureProducer =
        credit_runtime::kafka::producer(&kafka_config(&prefix), "expiry-test")
            .create()
            .unwrap();
    send_all(&producer, &naming.records(), &w.records).await;
    let seen = read_notices(
        &naming,
        |s| s.len() >= expected.len(),
        Duration::from_secs(240),
    );
    assert_exactly_once(&expected, &seen);
    assert_eq!(
        counter(port, MetricName::EntriesLate).await,
        oracle.late as u64,
        "entries already ended on arrival, counted as late"
    );

    // Two later days, each with a kill -9 while the engine lifts. On each,
    // exactly what the planning lifts on that day appears, and no more: an
    // entry is not lifted early.
    let mut lifted_total = 0;
    for (step, day) in [day0 + 400, day0 + 4_000].into_iter().enumerate() {
        let lifts = oracle.expire(day);
        assert!(
            !lifts.is_empty() && lifts.iter().all(|n| n.kind == NoticeKind::Lift),
            "day {day}: expiry lifts something, and only lifts"
        );
        lifted_total += lifts.len();
        expected.extend(lifts.iter().map(|n| n.notice_id.clone()));
        engine.kill9();
        port = free_port();
        engine = engine_on(day, port);
        wait_for_progress(port).await;
        engine.kill9();
        port = free_port();
        engine = engine_on(day, port);
        let seen = read_notices(
            &naming,
            |s| s.len() >= expected.len(),
            Duration::from_secs(240),
        );
        assert_exactly_once(&expected, &seen);
        eprintln!(
            "step {step}: day +{}: {} lifts by expiry, {} notices in all, each once",
            day - day0,
            lifts.len(),
            seen.len()
        );
    }
    eprintln!(
        "{} records, {} late on arrival, {} notices on day 0, {} lifted by expiry",
        w.records.len(),
        oracle.late,
        expected.len() - lifted_total,
        lifted_total
    );
    drop(engine);
    registry.stop().await;
}
