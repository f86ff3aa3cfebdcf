//! Against the real broker: duplicate codes (重码) and wrong codes (错码) as a
//! measured rate. Departments publish in their native formats through their
//! normalisers; `credit-quality` (the binary, so it can be `kill -9`ed) must
//!
//! * count one code published by two departments under two names as one
//!   conflicting record in each, list both records in `/report` (a natural
//!   person's code and names masked), and count a wrong code from the
//!   dead letters;
//! * after `kill -9` and a restart, rebuild the same counts from its ledger
//!   and continue its counters (not reset, not doubled);
//! * after `kill -9`, its committed offsets deleted and a restart (every
//!   record replayed from the beginning), still count each record once;
//! * go on counting new records afterwards.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use credit_bus_tests::*;
use credit_core::ReasonCode;
use credit_core::cases::{CODES, COMPANY, CodeVerdict, KeyField, PERSON};
use credit_core::topics::Naming;
use credit_datagen::fields::KEY_SLOTS;
use credit_normaliser::{Config, NormaliserConfig};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::FutureRecord;
use tokio_util::sync::CancellationToken;

fn slot(name: &str) -> &'static credit_datagen::fields::KeySlot {
    KEY_SLOTS.iter().find(|s| s.name == name).unwrap()
}

fn quality(prefix: &str, registry: &str, port: u16, log: &str) -> Proc {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(std::env::temp_dir().join(log))
        .unwrap();
    Proc(
        Command::new(bin("credit-quality"))
            .env(
                "CREDIT_BUS__TELEMETRY__OPS_LISTEN",
                format!("127.0.0.1:{port}"),
            )
            .env("CREDIT_BUS__KAFKA__BROKERS", brokers())
            .env("CREDIT_BUS__KAFKA__TOPIC_PREFIX", prefix)
            .env("CREDIT_BUS__REGISTRY__URL", registry)
            .env("CREDIT_BUS__TELEMETRY__LOG_FILTER", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawning credit-quality"),
    )
}

async fn report(port: u16) -> Option<serde_json::Value> {
    let r = reqwest::get(format!("http://127.0.0.1:{port}/report"))
        .await
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    r.json().await.ok()
}

/// (records, conflicting, wrong_codes) per department, for the ones named.
type Want = BTreeMap<&'static str, (u64, u64, u64)>;

fn counts(r: &serde_json::Value, want: &Want) -> Want {
    want.keys()
        .map(|&d| {
            let c = &r["departments"][d];
            (
                d,
                (
                    c["records"].as_u64().unwrap_or(u64::MAX),
                    c["conflicting"].as_u64().unwrap_or(u64::MAX),
                    c["wrong_codes"].as_u64().unwrap_or(u64::MAX),
                ),
            )
        })
        .collect()
}

/// Waits until the report shows `want`, then a little longer to see that
/// nothing more arrives (a double count would); returns the report.
async fn settle(port: u16, want: &Want, what: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut last = None;
    loop {
        if let Some(r) = report(port).await {
            if counts(&r, want) == *want {
                tokio::time::sleep(Duration::from_secs(2)).await;
                let r = report(port).await.expect("report");
                assert_eq!(
                    counts(&r, want),
                    *want,
                    "{what}: counted more after settling"
                );
                return r;
            }
            last = Some(r);
        }
        assert!(
            Instant::now() < deadline,
            "{what}: report never showed {want:?}; last {:?}",
            last.as_ref().map(|r| counts(r, want))
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn metric(port: u16, name: &str, dept: &str) -> Option<f64> {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| l.contains(&format!("department=\"{dept}\"")))
        .find_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse().ok()))
}

async fn send(naming: &Naming, dept: &str, value: Vec<u8>) -> String {
    let d = producer()
        .send(
            FutureRecord::to(&naming.inbound(dept))
                .key("k")
                .payload(&value),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("published");
    format!("{dept}:{}:{}", d.partition, d.offset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicate_codes_are_counted_once_across_restarts_and_replays() {
    let prefix = unique("t-quality");
    let naming = Naming::new(&prefix);
    create_topics(&prefix).await;
    let registry = Registry::start(&unique("t-quality-schemas")).await;
    let stop = CancellationToken::new();
    let mut normalisers = Vec::new();
    for dept in ["tax", "market", "courts"] {
        let config = Config {
            common: common(&prefix, &registry.url),
            normaliser: NormaliserConfig {
                department: dept.into(),
                batch_size: 100,
                max_record_bytes: credit_normaliser::DEFAULT_MAX_RECORD_BYTES,
            },
        };
        let tel = credit_runtime::telemetry::Telemetry::new("credit-normaliser").unwrap();
        normalisers.push(tokio::spawn(credit_normaliser::run(
            config,
            tel,
            Default::default(),
            stop.clone(),
        )));
    }

    // One USCC, two departments, two names: 广州市华兴贸易有限公司 (tax) and
    // 广州市南方电子商务有限公司 (market's abnormal-operation list).
    let tax_u1 = send(
        &naming,
        "tax",
        (slot("tax/统一社会信用代码").build)(COMPANY),
    )
    .await;
    let market_u1 = send(&naming, "market", (slot("market/JYYC").build)(COMPANY)).await;
    // One resident ID under two names: a court's 陈伟 and a market penalty's.
    let courts_p = send(&naming, "courts", (slot("courts/自然人").build)(PERSON)).await;
    let market_p = send(&naming, "market", (slot("market/CF 自然人").build)(PERSON)).await;
    // One USCC, two departments, one name: no conflict.
    let uscc = credit_datagen::cases::tax_uscc();
    send(
        &naming,
        "market",
        credit_datagen::cases::market_penalty("逾期未年报", false, 1),
    )
    .await;
    send(
        &naming,
        "tax",
        credit_datagen::cases::tax_csv().swap_remove(0).value,
    )
    .await;
    // A wrong code: rejected by the normaliser, counted from its dead letter.
    let wrong = CODES
        .iter()
        .find(|c| {
            c.field == KeyField::Uscc && c.expect == CodeVerdict::Rejected(ReasonCode::InvalidUscc)
        })
        .unwrap();
    send(
        &naming,
        "tax",
        (slot("tax/统一社会信用代码").build)(wrong.raw),
    )
    .await;

    // Not a record: dead-lettered by the service, counted nowhere.
    producer()
        .send(
            FutureRecord::to(&naming.records())
                .key("junk")
                .payload(&b"not avro"[..]),
            Duration::from_secs(30),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("published");

    let port = free_port();
    let mut q = quality(
        &prefix,
        &registry.url,
        port,
        &format!("{prefix}-quality.log"),
    );
    let mut want: Want = BTreeMap::from([
        ("tax", (2, 1, 1)),
        ("market", (3, 2, 0)),
        ("courts", (1, 1, 0)),
    ]);
    let r = settle(port, &want, "first run").await;
    assert_eq!(r["conflicting_codes"], 2, "{r:#}");
    assert_eq!(r["target_ratio"].as_f64(), Some(0.000_05));
    assert_eq!(
        r["departments"]["tax"]["conflict_ratio"].as_f64(),
        Some(0.5)
    );
    assert_eq!(
        r["departments"]["tax"]["wrong_or_duplicate_ratio"].as_f64(),
        Some(2.0 / 3.0)
    );
    assert_eq!(r["departments"]["tax"]["meets_target"], false);
    assert_eq!(r["departments"]["hp-customs"]["meets_target"], true);
    let text = r.to_string();
    for id in [&tax_u1, &market_u1, &courts_p, &market_p] {
        assert!(text.contains(&format!("\"{id}\"")), "{id} listed: {r:#}");
    }
    assert!(
        !text.contains(&format!("\"{uscc}\"")),
        "no conflict for one name: {r:#}"
    );
    let conflicts = r["conflicts"].as_array().unwrap();
    let company = conflicts
        .iter()
        .find(|c| c["subject_key"] == COMPANY)
        .expect("the company's conflict");
    let names: Vec<&str> = company["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{company:#}");
    assert!(
        names.contains(&"广州市华兴贸易有限公司") && names.contains(&"广州市南方电子商务有限公司")
    );
    // A natural person: neither the resident ID nor a name in the clear.
    assert!(!text.contains(PERSON) && !text.contains("陈伟"), "{r:#}");
    assert!(text.contains(&credit_core::ids::mask_id(PERSON)), "{r:#}");
    let conflicts_metric = credit_runtime::metrics::MetricName::CodeConflicts.exported();
    let ratio_metric = credit_runtime::metrics::MetricName::CodeConflictRatio.exported();
    assert_eq!(metric(port, conflicts_metric, "tax").await, Some(1.0));
    assert_eq!(metric(port, conflicts_metric, "market").await, Some(2.0));
    assert_eq!(metric(port, ratio_metric, "tax").await, Some(0.5));
    let dead = tokio::task::block_in_place(|| {
        consume(
            &naming.quality_dead_letters(),
            1,
            Duration::from_secs(30),
            Duration::from_millis(500),
        )
    });
    assert_eq!(dead.len(), 1, "the undecodable record dead-lettered once");
    assert_eq!(
        header(&dead[0], credit_core::dlq::REASON),
        Some("malformed_avro")
    );
    assert_eq!(
        rdkafka::message::Message::payload(&dead[0]),
        Some(&b"not avro"[..])
    );

    // kill -9 and restart: the ledger is rebuilt from its topic; the counter
    // continues from the same value.
    q.kill9();
    let port = free_port();
    let mut q = quality(
        &prefix,
        &registry.url,
        port,
        &format!("{prefix}-quality.log"),
    );
    settle(port, &want, "after kill -9").await;
    assert_eq!(metric(port, conflicts_metric, "market").await, Some(2.0));

    // kill -9, forget the committed offsets, restart: every record and dead
    // letter is read again; none counts twice.
    q.kill9();
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers())
        .create()
        .unwrap();
    let deleted = admin
        .delete_groups(&[&naming.quality_group()], &AdminOptions::new())
        .await
        .expect("delete_groups");
    assert!(
        deleted.iter().all(|r| r.is_ok()),
        "group deleted: {deleted:?}"
    );
    let port = free_port();
    let _q = quality(
        &prefix,
        &registry.url,
        port,
        &format!("{prefix}-quality.log"),
    );
    settle(port, &want, "after a full replay").await;
    assert_eq!(metric(port, conflicts_metric, "tax").await, Some(1.0));

    // Live again: a third name for the company from the courts.
    let courts_u1 = send(
        &naming,
        "courts",
        (slot("courts/法人或其他组织").build)(COMPANY),
    )
    .await;
    want.insert("courts", (2, 2, 0));
    let r = settle(port, &want, "a new record after the replay").await;
    assert!(r.to_string().contains(&format!("\"{courts_u1}\"")), "{r:#}");
    assert_eq!(metric(port, conflicts_metric, "courts").await, Some(2.0));

    stop.cancel();
    for n in normalisers {
        n.await.unwrap().unwrap();
    }
    registry.stop().await;
}

/// How many records per second `credit-quality` counts from a backlog:
/// `N` normalised records (courts, tax, market, from the sample generator)
/// already on the records topic, timed from its `/readyz` to its report
/// showing every one. Not part of the suite (a measurement):
/// `cargo test -p credit-bus-tests --test quality -- --ignored --nocapture`,
/// `CREDIT_BUS_QUALITY_RECORDS` sets N (default 100,000),
/// `CREDIT_BUS_BIN_DIR` picks a release build.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore]
async fn throughput_from_a_backlog() {
    let n: usize = std::env::var("CREDIT_BUS_QUALITY_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let prefix = unique("t-quality-rate");
    let naming = Naming::new(&prefix);
    create_topics(&prefix).await;
    let registry = Registry::start(&unique("t-quality-rate-schemas")).await;
    let depts = ["courts", "tax", "market"];
    let mut g = credit_datagen::Generator::new(7, 0.0);
    let samples: Vec<_> = (0..n).map(|i| g.record(depts[i % depts.len()])).collect();
    let valid = samples.iter().filter(|s| s.expect.is_none()).count() as u64;
    publish(&naming, samples).await;
    let stop = CancellationToken::new();
    let mut normalisers = Vec::new();
    for dept in depts {
        let config = Config {
            common: common(&prefix, &registry.url),
            normaliser: NormaliserConfig {
                department: dept.into(),
                batch_size: 2000,
                max_record_bytes: credit_normaliser::DEFAULT_MAX_RECORD_BYTES,
            },
        };
        let tel = credit_runtime::telemetry::Telemetry::new("credit-normaliser").unwrap();
        normalisers.push(tokio::spawn(credit_normaliser::run(
            config,
            tel,
            Default::default(),
            stop.clone(),
        )));
    }
    let got = tokio::task::block_in_place(|| {
        consume(
            &naming.records(),
            valid as usize,
            Duration::from_secs(600),
            Duration::from_secs(1),
        )
        .len()
    });
    assert_eq!(got as u64, valid, "backlog normalised");
    stop.cancel();
    for h in normalisers {
        h.await.unwrap().unwrap();
    }

    let port = free_port();
    let _q = quality(
        &prefix,
        &registry.url,
        port,
        &format!("{prefix}-quality.log"),
    );
    let deadline = Instant::now() + Duration::from_secs(600);
    while !reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "not ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let t0 = Instant::now();
    loop {
        if let Some(r) = report(port).await
            && r["total"]["records"].as_u64() == Some(valid)
        {
            break;
        }
        assert!(Instant::now() < deadline, "not all counted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "credit-quality counted {valid} records in {secs:.2} s: {:.0} records/s ({})",
        valid as f64 / secs,
        bin("credit-quality").display()
    );
    registry.stop().await;
}
