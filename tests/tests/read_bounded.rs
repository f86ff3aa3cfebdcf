//! `credit_runtime::read::read_written` ends on a partition written faster
//! than it is read: it reads what was committed before it began, and nothing
//! after. The
//! feedback tracker's barrier once read notices topics to partition-EOF, which
//! never came while the engine wrote, and the tracker stopped after 120 s.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use credit_bus_tests::*;
use credit_core::topics::Naming;
use rdkafka::Offset;
use rdkafka::consumer::Consumer;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounded_read_ends_while_the_partition_is_written() {
    let prefix = unique("t-read-bounded");
    create_topics(&prefix).await;
    let topic = Naming::new(&prefix).records();
    let kafka = kafka_config(&prefix);

    // A writer that never pauses, from before the read until after it.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, topic) = (stop.clone(), topic.clone());
        std::thread::spawn(move || {
            let p: BaseProducer = rdkafka::ClientConfig::new()
                .set("bootstrap.servers", brokers())
                .set("linger.ms", "1")
                .create()
                .unwrap();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let key = n.to_string();
                match p.send(BaseRecord::to(&topic).partition(0).key(&key).payload("x")) {
                    Ok(()) => n += 1,
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
                p.poll(Duration::ZERO);
                // At most ~20k records/s: a busy topic, not a large log on the
                // suite's shared broker.
                if n.is_multiple_of(20) {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            p.flush(Duration::from_secs(10)).unwrap();
            n
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;

    let (read, end, took) = tokio::task::spawn_blocking(move || {
        let reader = credit_runtime::kafka::reader(&kafka, "t-read-bounded").unwrap();
        let mut offsets = Vec::new();
        let started = Instant::now();
        credit_runtime::read::read_written(
            &kafka,
            "t-read-bounded",
            &topic,
            &[(0, Offset::Offset(0))],
            Duration::from_secs(60),
            &|| false,
            |m| offsets.push(rdkafka::message::Message::offset(m)),
        )
        .expect("the bounded read ends");
        let took = started.elapsed();
        // The end as of the read's start lies between what it read and now.
        let (_, now) = reader
            .fetch_watermarks(&topic, 0, Duration::from_secs(10))
            .unwrap();
        let end = offsets.len() as i64;
        assert!(end > 0 && end <= now, "read {end} of {now} written");
        (offsets, end, took)
    })
    .await
    .unwrap();
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap() as i64;

    assert_eq!(
        read,
        (0..end).collect::<Vec<_>>(),
        "exactly what was written before the end"
    );
    assert!(
        written > end,
        "the partition was still written ({written} > {end})"
    );
    eprintln!("read {end} records in {took:?} while {written} were written");
}
