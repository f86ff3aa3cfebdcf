//! `credit_runtime::acks` against the real broker: a group counts every
//! record sent in it, `wait` returns once all are acknowledged with the offset
//! after the last record per partition (what the engine's floors rest on), and
//! a record the producer refuses is reported and not counted.

use std::collections::BTreeMap;
use std::time::Duration;

use credit_bus_tests::*;
use credit_runtime::acks::{AckContext, AckProducer, Acks};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::BaseRecord;

#[tokio::test]
async fn groups_count_every_record_and_report_the_offsets_after_them() {
    let prefix = unique("t-acks");
    create_topics(&prefix).await;
    let naming = credit_core::topics::Naming::new(&prefix);
    let k = kafka_config(&prefix);
    let producer: AckProducer = credit_runtime::kafka::producer(&k, "acks-test")
        .create_with_context(AckContext)
        .unwrap();
    // Three partitions (kafka.partitions; notices topics have notice_partitions).
    let topic = naming.records();

    // Two groups interleaved on the same partitions: each sees only its own.
    let (a, b) = (Acks::new(), Acks::new());
    let mut sent: BTreeMap<i32, (usize, usize)> = BTreeMap::new();
    for i in 0..3000usize {
        let q = (i % 3) as i32;
        let key = i.to_string();
        let group = if i % 4 == 0 { &b } else { &a };
        group
            .send(
                &producer,
                BaseRecord::to(&topic)
                    .partition(q)
                    .key(key.as_str())
                    .payload("x"),
            )
            .await
            .unwrap();
        let e = sent.entry(q).or_default();
        if i % 4 == 0 { e.1 += 1 } else { e.0 += 1 }
    }
    let (wa, wb) = (a.wait().await.unwrap(), b.wait().await.unwrap());
    assert!(a.is_settled() && b.is_settled());

    // The partitions' ends, read with a consumer: the later of the two groups'
    // offsets per partition is the end, and each group's offsets are within it.
    let c: BaseConsumer = credit_runtime::kafka::base(&k, "acks-test-check")
        .create()
        .unwrap();
    for (q, (na, nb)) in &sent {
        let (_, end) = c
            .fetch_watermarks(&topic, *q, Duration::from_secs(10))
            .unwrap();
        let (oa, ob) = (wa.next(&topic, *q).unwrap(), wb.next(&topic, *q).unwrap());
        assert_eq!(oa.max(ob) as usize, na + nb, "partition {q}: {oa} {ob}");
        assert!(oa as usize >= *na && ob as usize >= *nb);
        // The broker's end is exactly what was acknowledged.
        assert_eq!(end, oa.max(ob), "partition {q}: watermark {end}");
    }
    assert_eq!(wa.iter().count(), 3);
    assert_eq!(wa.next(&naming.notices("courts"), 0), None);

    // A record that cannot be delivered is reported (refused at once, or as
    // the group's error) and the group still completes.
    let g = Acks::new();
    let at_send = g
        .send(
            &producer,
            BaseRecord::to(&topic).partition(99).key("k").payload("x"),
        )
        .await
        .is_err();
    let waited = tokio::time::timeout(Duration::from_secs(30), g.wait())
        .await
        .expect("the group completes");
    assert!(
        at_send || waited.is_err(),
        "a record for partition 99 of 3 went unreported"
    );
}
