//! `credit-bus topics create` against the real broker: every topic of the
//! catalogue, departments' notices and feedback topics with
//! `kafka.notice_partitions`, the rest with `kafka.partitions`.

use std::process::Command;
use std::time::Duration;

use credit_bus_tests::*;
use credit_core::topics::Naming;

#[test]
fn topics_create_sizes_notice_and_feedback_topics_apart() {
    for (partitions, notice_partitions) in [("3", None), ("2", Some("4"))] {
        let prefix = unique("t-topics");
        let mut cmd = Command::new(bin("credit-bus"));
        cmd.env("CREDIT_BUS__KAFKA__BROKERS", brokers())
            .env("CREDIT_BUS__KAFKA__TOPIC_PREFIX", &prefix)
            .env("CREDIT_BUS__KAFKA__PARTITIONS", partitions)
            .env_remove("CREDIT_BUS__KAFKA__NOTICE_PARTITIONS")
            .args(["topics", "create"]);
        if let Some(n) = notice_partitions {
            cmd.env("CREDIT_BUS__KAFKA__NOTICE_PARTITIONS", n);
        }
        let out = cmd.output().expect("running credit-bus");
        assert!(
            out.status.success(),
            "topics create: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let naming = Naming::new(&prefix);
        wait_for_topics(&naming.all(), Duration::from_secs(30));
        let got = partition_counts(&format!("{prefix}."));
        let want: std::collections::BTreeMap<String, usize> = naming
            .all()
            .into_iter()
            .map(|t| {
                let n = if naming.is_notice_or_feedback(&t) {
                    notice_partitions.unwrap_or("1") // the embedded default
                } else {
                    partitions
                };
                (t, n.parse().unwrap())
            })
            .collect();
        assert_eq!(got, want);
        assert_ne!(got[&naming.records()], got[&naming.notices("finance")]);
    }
}
