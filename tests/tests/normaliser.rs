//! Against the real broker: every publishing department's records become
//! normalised Avro records that a plain Avro reader decodes with the schema
//! fetched from the registry by id, and every bad one lands in the department's
//! dead-letter topic with the original bytes and the documented headers.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use credit_bus_tests::*;
use credit_core::catalogue::publishing_departments;
use credit_core::dlq;
use credit_core::topics::Naming;
use credit_datagen::Generator;
use credit_normaliser::{Config, NormaliserConfig};
use rdkafka::message::Message;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_department_normalises_and_dead_letters_with_reasons() {
    let prefix = unique("t-norm");
    let naming = Naming::new(&prefix);
    create_topics(&prefix).await;
    let registry = Registry::start(&unique("t-norm-schemas")).await;

    let stop = CancellationToken::new();
    let mut services = Vec::new();
    let mut tels = Vec::new();
    for dep in publishing_departments() {
        let config = Config {
            common: common(&prefix, &registry.url),
            normaliser: NormaliserConfig {
                department: dep.id.into(),
                batch_size: 500,
                max_record_bytes: credit_normaliser::DEFAULT_MAX_RECORD_BYTES,
            },
        };
        let tel = credit_runtime::telemetry::Telemetry::new("credit-normaliser").unwrap();
        tels.push((dep.id, tel.clone()));
        services.push(tokio::spawn(credit_normaliser::run(
            config,
            tel,
            Default::default(),
            stop.clone(),
        )));
    }

    let mut g = Generator::new(11, 0.25);
    let per_dept = 400;
    let mut samples = Vec::new();
    for dep in publishing_departments() {
        samples.extend((0..per_dept).map(|_| g.record(dep.id)));
    }
    let mut published = BTreeMap::new();
    for dep in publishing_departments() {
        let mine: Vec<_> = samples
            .iter()
            .filter(|s| s.department == dep.id)
            .cloned()
            .collect();
        for ((p, o), s) in publish(&naming, mine).await {
            published.insert((dep.id, p, o), s);
        }
    }
    let want_ok = published.values().filter(|s| s.expect.is_none()).count();
    let records = consume(
        &naming.records(),
        want_ok,
        Duration::from_secs(90),
        Duration::from_secs(2),
    );
    eprintln!(
        "published {} ({want_ok} valid), normalised {}",
        published.len(),
        records.len()
    );

    // Decode with the schema the registry serves for the id in each frame.
    let http = reqwest::Client::new();
    let mut schemas: BTreeMap<u32, apache_avro::Schema> = BTreeMap::new();
    let mut seen = HashSet::new();
    for m in &records {
        let (id, body) = credit_schemas::wire::split(m.payload().unwrap()).unwrap();
        if let std::collections::btree_map::Entry::Vacant(slot) = schemas.entry(id) {
            let v: serde_json::Value = http
                .get(format!("{}/schemas/ids/{id}", registry.url))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            slot.insert(apache_avro::Schema::parse_str(v["schema"].as_str().unwrap()).unwrap());
        }
        #[allow(deprecated)]
        let value = apache_avro::from_avro_datum(&schemas[&id], &mut &body[..], None).unwrap();
        let apache_avro::types::Value::Record(fields) = value else {
            panic!("not a record")
        };
        let get = |n: &str| fields.iter().find(|(k, _)| k == n).unwrap().1.clone();
        let apache_avro::types::Value::String(record_id) = get("record_id") else {
            panic!()
        };
        assert_eq!(
            std::str::from_utf8(m.key().unwrap()).unwrap(),
            record_id,
            "key is the record id"
        );
        let apache_avro::types::Value::Record(lineage) = get("lineage") else {
            panic!()
        };
        let lget = |n: &str| lineage.iter().find(|(k, _)| k == n).unwrap().1.clone();
        let (apache_avro::types::Value::Int(p), apache_avro::types::Value::Long(o)) =
            (lget("source_partition"), lget("source_offset"))
        else {
            panic!()
        };
        let apache_avro::types::Value::String(dept) = get("department") else {
            panic!()
        };
        let dept = publishing_departments().find(|d| d.id == dept).unwrap().id;
        let sample = &published[&(dept, p, o)];
        assert_eq!(
            sample.expect, None,
            "{record_id}: an invalid record was normalised"
        );
        assert_eq!(record_id, format!("{dept}:{p}:{o}"));
        assert!(seen.insert(record_id), "normalised twice without a crash");
    }
    for dep in publishing_departments() {
        let want = published
            .iter()
            .filter(|((d, _, _), s)| *d == dep.id && s.expect.is_none())
            .count();
        let got = seen
            .iter()
            .filter(|id| id.starts_with(&format!("{}:", dep.id)))
            .count();
        let parts: Vec<_> = (0..3)
            .map(|p| {
                seen.iter()
                    .filter(|id| id.starts_with(&format!("{}:{p}:", dep.id)))
                    .count()
            })
            .collect();
        eprintln!(
            "{}: normalised {got} of {want}, per partition {parts:?}",
            dep.id
        );
    }
    assert_eq!(seen.len(), want_ok, "every valid record normalised");
    assert_eq!(schemas.len(), 1, "one schema id for the one contract");

    // Dead letters: original bytes and key, Connect headers, our reason code.
    let mut reasons = HashSet::new();
    for dep in publishing_departments() {
        let want_bad = published
            .iter()
            .filter(|((d, _, _), s)| *d == dep.id && s.expect.is_some())
            .count();
        let dead = consume(
            &naming.dlq(dep.id),
            want_bad,
            Duration::from_secs(60),
            Duration::from_secs(1),
        );
        assert_eq!(
            dead.len(),
            want_bad,
            "{}: every rejected record dead-lettered once",
            dep.id
        );
        for m in &dead {
            assert_eq!(header(m, dlq::TOPIC), Some(naming.inbound(dep.id).as_str()));
            let p: i32 = header(m, dlq::PARTITION).unwrap().parse().unwrap();
            let o: i64 = header(m, dlq::OFFSET).unwrap().parse().unwrap();
            let sample = &published[&(dep.id, p, o)];
            assert_eq!(
                m.payload().unwrap(),
                &sample.value[..],
                "original bytes kept"
            );
            assert_eq!(m.key().unwrap(), sample.key.as_bytes(), "original key kept");
            assert_eq!(
                header(m, credit_datagen::EXPECT_HEADER),
                Some(sample.expect_str()),
                "original headers kept"
            );
            let reason = header(m, dlq::REASON).unwrap();
            assert_eq!(
                reason,
                sample.expect_str(),
                "{}: {:?}",
                dep.id,
                header(m, dlq::EXCEPTION_MESSAGE)
            );
            let code = credit_core::ReasonCode::parse(reason).unwrap();
            assert_eq!(header(m, dlq::STAGE), Some(code.stage()));
            assert!(
                header(m, dlq::EXCEPTION_CLASS_NAME)
                    .unwrap()
                    .ends_with(reason)
            );
            assert!(!header(m, dlq::EXCEPTION_MESSAGE).unwrap().is_empty());
            reasons.insert(reason.to_string());
        }
    }
    assert!(
        reasons.len() >= 10,
        "a wide spread of reasons was exercised: {reasons:?}"
    );

    // The metrics an ops team watches say the same as the topics.
    for (dept, tel) in &tels {
        let text = tel.render().unwrap();
        let value = |name: &str, reason: Option<&str>| -> f64 {
            text.lines()
                .filter(|l| {
                    l.starts_with(&format!("{name}{{"))
                        && l.contains(&format!("department=\"{dept}\""))
                })
                .filter(|l| reason.is_none_or(|r| l.contains(&format!("reason=\"{r}\""))))
                .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
                .sum()
        };
        let mine: Vec<_> = published
            .iter()
            .filter(|((d, _, _), _)| d == dept)
            .map(|(_, s)| s)
            .collect();
        let bad = mine.iter().filter(|s| s.expect.is_some()).count();
        use credit_runtime::metrics::MetricName;
        assert_eq!(
            value(MetricName::RecordsIn.exported(), None),
            mine.len() as f64,
            "{dept} records in"
        );
        assert_eq!(
            value(MetricName::RecordsOut.exported(), None),
            (mine.len() - bad) as f64,
            "{dept} records out"
        );
        assert_eq!(
            value(MetricName::RecordsDeadLettered.exported(), None),
            bad as f64,
            "{dept} dead-lettered"
        );
        for s in mine.iter().filter(|s| s.expect.is_some()).take(3) {
            assert!(
                value(
                    MetricName::RecordsDeadLettered.exported(),
                    Some(s.expect_str())
                ) >= 1.0,
                "{dept} by reason"
            );
        }
        assert!(
            text.contains(&format!(
                "{}_count",
                MetricName::ProcessingDuration.exported()
            )),
            "latency histogram exported"
        );
    }

    stop.cancel();
    for s in services {
        s.await.unwrap().unwrap();
    }
    registry.stop().await;
}
