//! The archive against the real broker and a real PostgreSQL (a database of
//! each test's own on the suite's server):
//!
//! * normalised records through the engine: a list entry appears on its
//!   subject's record with its notices, a department's feedback shows on its
//!   notice, the measures are in force with their explanation chain; after an
//!   end command they leave "in force" now but stay as of a moment before;
//!   then the database is dropped and the topics replayed: the dump is
//!   identical, row for row.
//! * who may see what: no token 401, a department without the role 403 (and
//!   nothing about the subject in the error), masked and unmasked reads, an
//!   audit row for each read of personal data; bad codes, unknown subjects,
//!   malformed and oversized pre-checks as problem details.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use credit_archive::auth::{Role, token_sha256};
use credit_archive::config::DepartmentAccess;
use credit_bus_tests::engine::*;
use credit_bus_tests::*;
use credit_core::record::*;
use credit_measures::plan::{EndEntry, EndReason};
use credit_schemas::commands::Command;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;

struct Archive {
    running: credit_archive::Running,
    url: String,
}

fn access(id: &str, token: &str, roles: &[Role]) -> DepartmentAccess {
    DepartmentAccess {
        id: id.into(),
        token_file: None,
        token_env: None,
        token_sha256: Some(token_sha256(token)),
        roles: roles.to_vec(),
    }
}

async fn start_archive(
    prefix: &str,
    registry: &str,
    db: &str,
    departments: Vec<DepartmentAccess>,
) -> Archive {
    let config = credit_archive::Config {
        common: common(prefix, registry),
        archive: credit_archive::ArchiveConfig {
            database_url: db.to_string(),
            departments,
            ..credit_archive::Config::defaults()
        },
    };
    let tel = credit_runtime::telemetry::Telemetry::new("credit-archive").unwrap();
    let running = credit_archive::spawn(config, tel)
        .await
        .expect("archive starts");
    Archive {
        url: running.url(),
        running,
    }
}

async fn get(url: &str, token: Option<&str>) -> (u16, String, Value) {
    let mut r = reqwest::Client::new().get(url);
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    answer(r.send().await.unwrap()).await
}

async fn post(url: &str, token: &str, body: &Value) -> (u16, String, Value) {
    let r = reqwest::Client::new()
        .post(url)
        .bearer_auth(token)
        .json(body);
    answer(r.send().await.unwrap()).await
}

/// Polls `url` until `ok` holds for a 200 answer (within `secs`).
async fn wait_for(
    url: &str,
    token: &str,
    secs: u64,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut last = Value::Null;
    while Instant::now() < deadline {
        let (status, _, body) = get(url, Some(token)).await;
        if status == 200 && ok(&body) {
            return body;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{what} within {secs} s; last answer: {last}");
}

fn in_force_for(body: &Value, record_id: &str) -> Vec<Value> {
    body["measures_in_force"]
        .as_object()
        .map(|m| {
            m.values()
                .flat_map(|v| v.as_array().cloned().unwrap_or_default())
                .filter(|m| m["explanation"]["record_id"] == record_id)
                .collect()
        })
        .unwrap_or_default()
}

fn random_token() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..32)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_through_the_engine_are_archived_explained_as_of_and_rebuilt_identically() {
    let prefix = unique("t-archive");
    let (naming, registry, schema_id) = setup(&prefix).await;
    let db = database("archive").await;
    let token = random_token();
    let deps = || vec![access("finance", &token, &[Role::Read, Role::PersonalData])];

    // A small workload, and an entry the engine must punish (from its own
    // planning, run here as the reference).
    let w = workload(40, schema_id, 11);
    let mut oracle = Oracle::new(kafka_config(&prefix).partitions);
    for (id, bytes) in &w.records {
        oracle.record(id, bytes);
    }
    let entry =
        w.entries
            .iter()
            .find(|e| {
                oracle.notices.iter().any(|n| {
                    n.starts_with(&format!("{}/", e.record_id)) && n.contains("/punishment/")
                })
            })
            .expect("the workload has a punished entry");
    let record_id = entry.record_id.clone();
    let framed = &w.records.iter().find(|(id, _)| *id == record_id).unwrap().1;
    let head = credit_schemas::decode::record_head(&framed[5..]).unwrap();
    let code = head.subject_key.to_string();
    let record_key = head.source_record_id.to_string();

    let producer: FutureProducer =
        credit_runtime::kafka::producer(&kafka_config(&prefix), "archive-test")
            .create()
            .unwrap();
    send_all(&producer, &naming.records(), &w.records).await;
    let log = std::env::temp_dir().join(format!("{}.log", unique("archive-engine")));
    let mut engine = spawn_engine(
        &brokers(),
        &prefix,
        &registry.url,
        &log,
        "engine-a",
        free_port(),
    );
    let archive = start_archive(&prefix, &registry.url, &db, deps()).await;
    let subject_url = format!("{}/v1/subjects/{code}", archive.url);
    let measures_url = format!("{subject_url}/measures");

    // The entry on the subject's record, with its notices and measures.
    let body = wait_for(
        &measures_url,
        &token,
        120,
        "the entry's measures in force",
        |b| !in_force_for(b, &record_id).is_empty(),
    )
    .await;
    let m = &in_force_for(&body, &record_id)[0];
    let e = &m["explanation"];
    assert_eq!(e["identifying_department"], head.department, "{m}");
    assert_eq!(e["record_topic"], naming.records(), "{m}");
    assert_eq!(e["department_record_key"], record_key.as_str(), "{m}");
    assert_eq!(e["catalogue_version"], 1, "{m}");
    assert!(!e["legal_basis"].as_str().unwrap().is_empty(), "{m}");
    assert!(
        e["notice_id"].as_str().unwrap().starts_with(&record_id),
        "{m}"
    );
    let (status, _, record) = get(&subject_url, Some(&token)).await;
    assert_eq!(status, 200, "{record}");
    let listed = record["list_entries"]
        .as_array()
        .unwrap()
        .iter()
        .chain(record["red_lists"].as_array().unwrap())
        .find(|r| r["record_id"] == record_id.as_str())
        .cloned()
        .unwrap_or_else(|| panic!("the entry is on the record: {record}"));
    assert_eq!(listed["status"], "active", "{listed}");
    assert_eq!(
        listed["valid_from"],
        credit_core::date::format(head.valid_from)
    );

    // A department's feedback shows on its notice.
    let notice_id = e["notice_id"].as_str().unwrap().to_string();
    let dept = m["implementing_department"].as_str().unwrap().to_string();
    let client = credit_schemas::registry::RegistryClient::new(&registry.url).unwrap();
    let fb_id = client
        .register(
            &credit_core::topics::value_subject(&naming.feedback(&dept)),
            credit_schemas::FEEDBACK_AVSC,
        )
        .await
        .unwrap();
    let mut fb = Vec::new();
    credit_schemas::encode::feedback_framed(
        &mut fb,
        fb_id,
        &credit_core::feedback::Feedback {
            notice_id: &notice_id,
            department: &dept,
            outcome: credit_core::feedback::Outcome::Applied,
            reason: None,
            responded_at_ms: 1_760_000_000_000,
        },
    );
    producer
        .send(
            FutureRecord::to(&naming.feedback(&dept))
                .key(&notice_id)
                .payload(&fb),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    let record = wait_for(
        &subject_url,
        &token,
        60,
        "the feedback on the notice",
        |b| {
            b["notices"].as_array().is_some_and(|ns| {
                ns.iter().any(|n| {
                    n["notice_id"] == notice_id.as_str() && n["feedback_state"] == "applied"
                })
            })
        },
    )
    .await;
    assert!(
        record["measures_in_force"][&dept]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["explanation"]["notice_id"] == notice_id.as_str()
                && x["feedback_state"] == "applied"),
        "{record}"
    );

    // The pre-check agrees with every subject's own measures in force, by
    // measure and by department, once every planned notice is archived.
    let pool = sqlx::PgPool::connect(&db).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (n,): (i64,) = sqlx::query_as("SELECT count(DISTINCT notice_id) FROM notices")
            .fetch_one(&pool)
            .await
            .unwrap();
        if n as usize >= oracle.notices.len() {
            assert_eq!(n as usize, oracle.notices.len(), "archived notices");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{n} of {} notices archived",
            oracle.notices.len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    pool.close().await;
    let mut codes: Vec<String> = w
        .records
        .iter()
        .map(|(_, f)| {
            credit_schemas::decode::record_head(&f[5..])
                .unwrap()
                .subject_key
                .to_string()
        })
        .collect();
    codes.sort();
    codes.dedup();
    let punishing = m["kind"] == "punishment";
    assert!(punishing, "{m}");
    let measure = m["measure_id"].as_str().unwrap().to_string();
    let pre = format!("{}/v1/precheck", archive.url);
    let restricted = |a: &Value| -> BTreeSet<String> {
        a["restricted"]
            .as_array()
            .unwrap_or_else(|| panic!("{a}"))
            .iter()
            .map(|r| r["code"].as_str().unwrap().to_string())
            .collect()
    };
    let mut by_measure = BTreeSet::new();
    let mut by_department = BTreeSet::new();
    let mut answered = 0;
    for c in &codes {
        let (status, _, b) = get(
            &format!("{}/v1/subjects/{c}/measures", archive.url),
            Some(&token),
        )
        .await;
        assert!(status == 200 || status == 404, "{b}");
        answered += usize::from(status == 200);
        for ms in b["measures_in_force"]
            .as_object()
            .into_iter()
            .flat_map(|o| o.values())
        {
            for x in ms
                .as_array()
                .unwrap()
                .iter()
                .filter(|x| x["kind"] == "punishment")
            {
                if x["measure_id"] == measure.as_str() {
                    by_measure.insert(c.clone());
                }
                if x["implementing_department"] == dept.as_str() {
                    by_department.insert(c.clone());
                }
            }
        }
    }
    assert!(by_measure.contains(&code) && by_department.contains(&code));
    for (filter, want) in [
        (serde_json::json!({"measure": measure}), &by_measure),
        (serde_json::json!({"department": dept}), &by_department),
    ] {
        let mut body = filter.clone();
        body["codes"] = serde_json::json!(codes);
        let (status, _, a) = post(&pre, &token, &body).await;
        assert_eq!(status, 200, "{a}");
        assert_eq!(a["checked"], codes.len(), "{a}");
        assert_eq!(&restricted(&a), want, "pre-check by {filter}: {a}");
    }
    let precheck_code = serde_json::json!({"codes": [code], "measure": measure});

    // What ops see on /metrics: the facts stored by input and the requests
    // by route template and outcome, never a subject's code.
    use credit_runtime::metrics::MetricName;
    let scrape = || async {
        reqwest::get(format!("{}/metrics", archive.url))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    };
    let sum = |text: &str, name: &str, labels: &[&str]| -> f64 {
        text.lines()
            .filter(|l| l.starts_with(&format!("{name}{{")) && labels.iter().all(|x| l.contains(x)))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    };
    let stored = MetricName::ArchiveFactsStored.exported();
    let mut metrics = scrape().await;
    for _ in 0..50 {
        if sum(&metrics, stored, &["input=\"notices\""]) as usize >= oracle.notices.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        metrics = scrape().await;
    }
    assert_eq!(
        (
            sum(&metrics, stored, &["input=\"records\""]) as usize,
            sum(&metrics, stored, &["input=\"notices\""]) as usize,
        ),
        (w.records.len(), oracle.notices.len()),
        "{metrics}"
    );
    let count = format!("{}_count", MetricName::ArchiveRequestDuration.exported());
    let measures_route = format!("route=\"{}\"", "/v1/subjects/{code}/measures");
    assert!(
        sum(&metrics, &count, &[&measures_route, "outcome=\"ok\""]) as usize >= answered
            && sum(
                &metrics,
                &count,
                &["route=\"/v1/precheck\"", "outcome=\"ok\""]
            ) >= 2.0,
        "{metrics}"
    );
    assert!(!metrics.contains(&code), "a subject code on /metrics");

    // The entry is withdrawn: out of force now, in force as of before.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let before = credit_archive::history::rfc3339(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64,
    );
    tokio::time::sleep(Duration::from_millis(20)).await;
    let cmd = Command::End(EndEntry {
        record_id: record_id.clone(),
        reason: EndReason::Withdrawn,
    });
    send_all(
        &producer,
        &naming.engine_commands(),
        &[(record_id.clone(), cmd.to_json())],
    )
    .await;
    let now = wait_for(
        &subject_url,
        &token,
        120,
        "the withdrawal notices and the end",
        |b| {
            in_force_for(b, &record_id).is_empty()
                && b["notices"].as_array().is_some_and(|ns| {
                    ns.iter()
                        .any(|n| n["record_id"] == record_id.as_str() && n["kind"] == "withdrawal")
                })
        },
    )
    .await;
    let ended = now["list_entries"]
        .as_array()
        .unwrap()
        .iter()
        .chain(now["red_lists"].as_array().unwrap())
        .find(|r| r["record_id"] == record_id.as_str())
        .unwrap();
    assert_eq!(
        (&ended["status"], &ended["reason"]),
        (&Value::from("ended"), &Value::from("withdrawn")),
        "{ended}"
    );
    let (status, _, then) = get(&format!("{measures_url}?as_of={before}"), Some(&token)).await;
    assert_eq!(status, 200, "{then}");
    assert!(
        !in_force_for(&then, &record_id).is_empty(),
        "in force as of {before}: {then}"
    );
    assert_eq!(then["as_of"]["known_at"], before.as_str());
    // The pre-check says the same, now and as of before.
    let (status, _, a) = post(&pre, &token, &precheck_code).await;
    assert_eq!((status, restricted(&a).len()), (200, 0), "{a}");
    let mut then_body = precheck_code.clone();
    then_body["as_of"] = Value::from(before.as_str());
    let (status, _, a) = post(&pre, &token, &then_body).await;
    assert_eq!(status, 200, "{a}");
    assert_eq!(restricted(&a), BTreeSet::from([code.clone()]), "{a}");
    // As of a day before anything was archived, the subject is unknown.
    let (status, ct, p) = get(&format!("{subject_url}?as_of=2000-01-01"), Some(&token)).await;
    assert_eq!(
        (status, ct.as_str()),
        (404, "application/problem+json"),
        "{p}"
    );
    engine.terminate(Duration::from_secs(30));

    // Rebuild: the same rows from the topics into an empty database.
    let pool = sqlx::PgPool::connect(&db).await.unwrap();
    let first = credit_archive::db::dump(&pool).await.unwrap();
    pool.close().await;
    archive.running.stop().await.unwrap();
    assert!(
        first.lines().count() > w.records.len(),
        "the dump holds the records and notices"
    );
    assert!(
        first.contains("\"kind\":\"withdrawal\"") && first.contains("\"outcome\":\"applied\""),
        "{first}"
    );
    recreate_database(&db).await;
    let archive = start_archive(&prefix, &registry.url, &db, deps()).await;
    let pool = sqlx::PgPool::connect(&db).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut second = String::new();
    while Instant::now() < deadline {
        second = credit_archive::db::dump(&pool).await.unwrap();
        if second.len() >= first.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(
        second == first,
        "the rebuilt archive differs:\n{}",
        first_difference(&first, &second)
    );
    // And a restart on the rebuilt database resumes where it stood: nothing new.
    archive.running.stop().await.unwrap();
    let archive = start_archive(&prefix, &registry.url, &db, deps()).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(credit_archive::db::dump(&pool).await.unwrap() == first);
    archive.running.stop().await.unwrap();
    pool.close().await;
    drop_database(&db).await;
    registry.stop().await;
}

fn first_difference(a: &str, b: &str) -> String {
    for (i, (x, y)) in a.lines().zip(b.lines()).enumerate() {
        if x != y {
            return format!("line {i}:\n- {x}\n+ {y}");
        }
    }
    format!(
        "{} lines before, {} after",
        a.lines().count(),
        b.lines().count()
    )
}

/// A natural person on a dishonesty list, as a normaliser would write it.
fn person_record(schema_id: u32, id: &str, offset: i64) -> Vec<u8> {
    let r = CreditRecord {
        department: "courts",
        domain: "0",
        subject: Subject {
            kind: SubjectType::NaturalPerson,
            key: Cow::Borrowed(id),
            name: Cow::Borrowed("王小明"),
        },
        responsible_person: None,
        info_kind: InfoKind::DishonestyList,
        list_type: Some(ListType::JudgementDefaulter),
        grade: None,
        decision_number: Cow::Borrowed("(2024)粤01执9号"),
        decision_date: credit_core::date::days_from_civil(2024, 3, 1),
        publication_date: None,
        valid_from: credit_core::date::days_from_civil(2024, 3, 1),
        valid_until: None,
        severity: Severity::Serious,
        legal_basis: None,
        conduct: Cow::Borrowed("有履行能力而拒不履行生效法律文书确定的义务"),
        amount_fen: Some(100_000),
        attributes: vec![],
        lineage: Lineage {
            source_topic: Cow::Borrowed("credit.courts.inbound"),
            source_partition: 0,
            source_offset: offset,
            source_record_id: Cow::Borrowed("case-9"),
            source_timestamp_ms: None,
        },
        corrections: Default::default(),
    };
    let mut buf = Vec::new();
    credit_schemas::encode::credit_record_framed(&mut buf, schema_id, &r);
    buf
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn departments_see_what_their_roles_allow_and_every_personal_read_is_audited() {
    let prefix = unique("t-archive-auth");
    let (naming, registry, schema_id) = setup(&prefix).await;
    let db = database("archive_auth").await;
    let (reader, person_reader, auditor, outsider) = (
        random_token(),
        random_token(),
        random_token(),
        random_token(),
    );
    // One token from a file, as an operator would mount it.
    let file = std::env::temp_dir().join(unique("archive-token"));
    std::fs::write(&file, format!("{person_reader}\n")).unwrap();
    let departments = vec![
        access("finance", &reader, &[Role::Read]),
        DepartmentAccess {
            token_file: Some(file.clone()),
            token_sha256: None,
            ..access("courts", "", &[Role::Read, Role::PersonalData])
        },
        access("tax", &auditor, &[Role::Audit]),
    ];
    let person = credit_core::ids::complete_resident_id("44010619850312123").unwrap();
    let producer: FutureProducer =
        credit_runtime::kafka::producer(&kafka_config(&prefix), "archive-auth")
            .create()
            .unwrap();
    let rid = "courts:0:5".to_string();
    send_all(
        &producer,
        &naming.records(),
        &[(rid.clone(), person_record(schema_id, &person, 5))],
    )
    .await;
    let archive = start_archive(&prefix, &registry.url, &db, departments).await;
    let base = archive.url.clone();
    let url = format!("{base}/v1/subjects/{person}");

    // Masked for a department without personal_data.
    let masked = wait_for(&url, &reader, 60, "the person's record", |b| {
        b["list_entries"].as_array().is_some_and(|l| !l.is_empty())
    })
    .await;
    let text = masked.to_string();
    assert!(
        !text.contains(&person) && !text.contains("王小明"),
        "{text}"
    );
    assert_eq!(
        masked["subject"]["code"],
        credit_core::ids::mask_id(&person)
    );
    assert_eq!(masked["subject"]["name"], "王**");
    assert_eq!(
        masked["list_entries"][0]["subject_key"],
        credit_core::ids::mask_id(&person)
    );
    // Unmasked with it.
    let (status, _, full) = get(&url, Some(&person_reader)).await;
    assert_eq!(status, 200, "{full}");
    assert_eq!(
        (&full["subject"]["code"], &full["subject"]["name"]),
        (&Value::from(person.as_str()), &Value::from("王小明"))
    );
    // Lower-case check character and spaces are the same subject.
    let (status, _, _) = get(
        &format!("{base}/v1/subjects/%20{}%20", person.to_lowercase()),
        Some(&reader),
    )
    .await;
    assert_eq!(status, 200);

    // 401 without a token or with an unknown one; 403 without the role, and
    // nothing about the subject in the answer.
    for t in [None, Some(outsider.as_str())] {
        let (status, ct, p) = get(&url, t).await;
        assert_eq!(
            (status, ct.as_str()),
            (401, "application/problem+json"),
            "{p}"
        );
    }
    let (status, ct, p) = get(&url, Some(&auditor)).await;
    assert_eq!(
        (status, ct.as_str()),
        (403, "application/problem+json"),
        "{p}"
    );
    let text = p.to_string();
    assert!(
        !text.contains(&person[6..14]) && !text.contains("王") && !text.contains("list"),
        "{text}"
    );
    assert!(text.contains("tax") && text.contains("read"), "{text}");
    let (status, _, p) = get(&format!("{base}/v1/audit"), Some(&reader)).await;
    assert_eq!(status, 403, "{p}");

    // Every read of personal data is audited: who, which subject, which fields, masked or not.
    let (status, _, audit) =
        get(&format!("{base}/v1/audit?subject={person}"), Some(&auditor)).await;
    assert_eq!(status, 200, "{audit}");
    let rows = audit["rows"].as_array().unwrap();
    let by = |d: &str, masked: bool| {
        rows.iter()
            .filter(|r| r["department"] == d && r["masked"] == masked)
            .count()
    };
    assert!(by("finance", true) >= 2, "the masked reads: {audit}");
    assert_eq!(by("courts", false), 1, "the unmasked read: {audit}");
    assert!(
        rows.iter().all(|r| r["subject_key"] == person.as_str()
            && r["fields"] == serde_json::json!(["subject_key", "subject_name"])),
        "{audit}"
    );
    assert_eq!(
        by("tax", true) + by("tax", false),
        0,
        "a refused read reads nothing"
    );

    // Problem details for bad input.
    let (status, ct, p) = get(
        &format!("{base}/v1/subjects/91440101MA5CYUF210"),
        Some(&reader),
    )
    .await;
    assert_eq!(
        (status, ct.as_str()),
        (400, "application/problem+json"),
        "{p}"
    );
    assert!(
        p["type"].as_str().unwrap().ends_with("bad-code")
            && p["detail"].as_str().unwrap().contains("USCC"),
        "{p}"
    );
    let unknown = credit_core::ids::complete_uscc("91440101MA5CYUF2").unwrap();
    let (status, _, p) = get(&format!("{base}/v1/subjects/{unknown}"), Some(&reader)).await;
    assert_eq!(status, 404, "{p}");
    assert!(
        p["type"].as_str().unwrap().ends_with("unknown-subject"),
        "{p}"
    );
    let (status, _, p) = get(&format!("{url}?as_of=last-tuesday"), Some(&reader)).await;
    assert_eq!(status, 400, "{p}");

    // Pre-check: restricted by department courts' list? No engine here, so no
    // notices: nobody is restricted; malformed and oversized batches refused.
    let pre = format!("{base}/v1/precheck");
    let (status, _, a) = post(
        &pre,
        &reader,
        &serde_json::json!({"codes": [person, unknown], "department": "finance"}),
    )
    .await;
    assert_eq!(
        (
            status,
            a["checked"].as_u64(),
            a["restricted"].as_array().map(Vec::len)
        ),
        (200, Some(2), Some(0)),
        "{a}"
    );
    // Asking about a natural person is a read of personal data even when the
    // answer is "not restricted": audited; the legal person is not.
    let (status, _, audit) =
        get(&format!("{base}/v1/audit?subject={person}"), Some(&auditor)).await;
    assert_eq!(status, 200, "{audit}");
    let prechecks: Vec<&Value> = audit["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["action"] == "precheck")
        .collect();
    assert_eq!(prechecks.len(), 1, "{audit}");
    assert_eq!(
        (
            &prechecks[0]["department"],
            &prechecks[0]["masked"],
            &prechecks[0]["fields"]
        ),
        (
            &Value::from("finance"),
            &Value::from(true),
            &serde_json::json!(["subject_key", "restriction"])
        ),
        "{audit}"
    );
    let (_, _, audit) = get(
        &format!("{base}/v1/audit?subject={unknown}"),
        Some(&auditor),
    )
    .await;
    assert_eq!(audit["rows"], serde_json::json!([]), "{audit}");
    let (status, ct, p) = post(&pre, &reader, &serde_json::json!({"codes": [person]})).await;
    assert_eq!(
        (status, ct.as_str()),
        (400, "application/problem+json"),
        "{p}"
    );
    assert!(
        p["detail"]
            .as_str()
            .unwrap()
            .contains("exactly one of measure"),
        "{p}"
    );
    let (status, _, p) = post(
        &pre,
        &reader,
        &serde_json::json!({"codes": [person, "nope", unknown], "department": "finance"}),
    )
    .await;
    assert_eq!(status, 400, "{p}");
    assert_eq!(p["invalid"][0]["index"], 1, "{p}");
    let (status, _, p) = post(&pre, &reader, &serde_json::json!({"codes": "all"})).await;
    assert_eq!(status, 400, "{p}");
    assert!(
        p["type"].as_str().unwrap().ends_with("malformed-batch"),
        "{p}"
    );
    let many: Vec<String> = (0..10_001).map(|_| unknown.clone()).collect();
    let (status, _, p) = post(
        &pre,
        &reader,
        &serde_json::json!({"codes": many, "department": "finance"}),
    )
    .await;
    assert_eq!(status, 413, "{p}");
    let (status, _, p) = post(
        &pre,
        &reader,
        &serde_json::json!({"codes": [unknown], "measure": "no-such-measure"}),
    )
    .await;
    assert_eq!(status, 400, "{p}");

    // The CLI prints the same answers, with the department's token.
    let cli = |args: &[&str], token: &str| {
        let out = std::process::Command::new(bin("credit-bus"))
            .args(args)
            .args(["--archive", &base])
            .env("CREDIT_BUS_ARCHIVE_TOKEN", token)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, stdout, stderr) = cli(&["subject", &person], &reader);
    assert!(ok, "{stderr}");
    let printed: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(printed["subject"], masked["subject"]);
    assert_eq!(printed["list_entries"], masked["list_entries"]);
    let (ok, _, stderr) = cli(&["subject", "91440101MA5CYUF210"], &reader);
    assert!(!ok && stderr.contains("400 Bad subject code"), "{stderr}");
    let codes = std::env::temp_dir().join(unique("codes"));
    std::fs::write(&codes, format!("# applicants\n{person}\n{unknown}\n")).unwrap();
    let (ok, stdout, stderr) = cli(
        &[
            "precheck",
            "--file",
            codes.to_str().unwrap(),
            "--department",
            "finance",
        ],
        &reader,
    );
    assert!(ok, "{stderr}");
    assert!(
        stdout.is_empty() && stderr.contains("0 of 2 restricted"),
        "{stdout}{stderr}"
    );
    std::fs::remove_file(codes).ok();

    // The OpenAPI document is served without a token.
    let (status, _, doc) = get(&format!("{base}/openapi.json"), None).await;
    assert_eq!(status, 200);
    assert!(doc["paths"]["/v1/precheck"]["post"].is_object());

    archive.running.stop().await.unwrap();
    drop_database(&db).await;
    registry.stop().await;
    std::fs::remove_file(file).ok();
}
