//! The dashboard's subject view against a real archive: the archive's API
//! (`credit_archive::api`, in process) over a real PostgreSQL database of the
//! test's own, holding facts written through the archive's own write path,
//! and `credit-dashboard` binaries pointed at it with department tokens.
//!
//! What the page's entry box gets from `POST /api/subject`: a natural person's
//! record and measures in force, masked for a read-only department, with the
//! archive's audit row for the look; the archive's problems (bad code,
//! unknown subject, 401 and 403 for the dashboard's token) passed on; the
//! dashboard's own when the archive is unreachable or the code empty; the
//! resident ID never in the dashboard's log or any answer. Then the same look
//! typed into the page in a headless chromium (`tests/browser/subject.mjs`).

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use credit_archive::auth::{Role, Tokens, token_sha256};
use credit_archive::config::DepartmentAccess;
use credit_archive::decode::Fact;
use credit_archive::history::{Lineage, NoticeFact, Pos, RecordFact};
use credit_bus_tests::*;
use credit_core::notice::NoticeKind;
use serde_json::{Value, json};

fn access(id: &str, token: &str, roles: &[Role]) -> DepartmentAccess {
    DepartmentAccess {
        id: id.into(),
        token_file: None,
        token_env: None,
        token_sha256: Some(token_sha256(token)),
        roles: roles.to_vec(),
    }
}

/// A natural person on the courts' defaulter list, punished by finance.
fn facts(code: &str, name: &str) -> Vec<Fact> {
    let record_id = "courts:0:7".to_string();
    let rec = RecordFact {
        pos: Pos {
            topic: "credit.records".into(),
            partition: 0,
            offset: 7,
        },
        learned_ms: 1_760_000_000_000,
        record_id: record_id.clone(),
        department: "courts".into(),
        domain: "0".into(),
        subject_type: "NATURAL_PERSON".into(),
        subject_key: code.into(),
        subject_name: name.into(),
        responsible_person: None,
        info_kind: "DISHONESTY_LIST".into(),
        list_type: Some("JUDGEMENT_DEFAULTER".into()),
        grade: None,
        decision_number: "(2025)粤01执77号".into(),
        decision_date: 20_000,
        publication_date: None,
        valid_from: 20_000,
        valid_until: None,
        severity: "SERIOUS".into(),
        legal_basis: Some("《最高人民法院关于公布失信被执行人名单信息的若干规定》".into()),
        conduct: "有履行能力而拒不履行生效法律文书确定的义务".into(),
        amount_fen: None,
        source: Lineage {
            topic: "credit.courts.inbound".into(),
            partition: 0,
            offset: 3,
            record_key: "case-77".into(),
        },
    };
    let notice = NoticeFact {
        pos: Pos {
            topic: "credit.finance.notices".into(),
            partition: 0,
            offset: 1,
        },
        learned_ms: 1_760_000_000_005,
        notice_id: format!("{record_id}/M-PROCUREMENT/finance/punishment/1"),
        kind: NoticeKind::Punishment,
        department: "finance".into(),
        measure_id: "M-PROCUREMENT".into(),
        measure_name: "限制参与政府采购".into(),
        legal_basis: "《政府采购法》第二十二条".into(),
        catalogue_version: 1,
        generation: 1,
        record_id,
        list_type: "JUDGEMENT_DEFAULTER".into(),
        subject_type: "NATURAL_PERSON".into(),
        subject_key: code.into(),
        subject_name: name.into(),
        identifying_department: "courts".into(),
        decision_number: "(2025)粤01执77号".into(),
        reason: None,
        source_topic: "credit.records".into(),
        source_partition: 0,
        source_offset: 7,
    };
    vec![
        Fact::Record(Box::new(rec), json!({"court": "广州中院"})),
        Fact::Notice(Box::new(notice)),
    ]
}

struct Dashboard {
    url: String,
    log: std::path::PathBuf,
    _proc: Proc,
}

/// A `credit-dashboard` binary whose subject view asks `archive` with `token`.
async fn dashboard(archive: &str, token: &str) -> Dashboard {
    let dir = std::env::temp_dir().join(unique("dash-subject"));
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("finance.token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let log = dir.join("dashboard.log");
    let port = free_port();
    let child = Command::new(bin("credit-dashboard"))
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .env("CREDIT_BUS__DASHBOARD__ARCHIVE_URL", archive)
        .env("CREDIT_BUS__DASHBOARD__ARCHIVE_TOKEN_FILE", &token_file)
        .env("CREDIT_BUS__DASHBOARD__SCRAPE_INTERVAL_MS", "200")
        // Everything it logs, so the test can look for the resident ID.
        .env("CREDIT_BUS__TELEMETRY__LOG_FILTER", "debug")
        .stdout(std::fs::File::create(dir.join("dashboard.out")).unwrap())
        .stderr(std::fs::File::create(&log).unwrap())
        .stdin(Stdio::null())
        .spawn()
        .expect("spawning credit-dashboard");
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = reqwest::get(format!("{url}/readyz")).await
            && r.status().is_success()
        {
            break;
        }
        assert!(Instant::now() < deadline, "dashboard not ready in 30 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Dashboard {
        url,
        log,
        _proc: Proc(child),
    }
}

/// `POST /api/subject` as the page sends it: status, content type, body.
async fn look(d: &Dashboard, body: Value) -> (u16, String, Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/api/subject", d.url))
        .json(&body);
    answer(r.send().await.unwrap()).await
}

fn kind(v: &Value) -> &str {
    v["type"].as_str().unwrap_or("").rsplit('/').next().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_subject_view_shows_what_a_read_only_department_may_see() {
    let db = database("dash-subject").await;
    let pool = credit_archive::db::connect(&db, 4).await.unwrap();
    let rid = credit_core::ids::complete_resident_id("44010619900101123").unwrap();
    let name = "王小明";
    let batch = credit_archive::db::Batch {
        facts: facts(&rid, name),
        ..Default::default()
    };
    credit_archive::db::write(&pool, &batch).await.unwrap();

    let (read, audit_only) = ("finance-read-token-1", "tax-audit-token-2");
    let tokens = Tokens::load(&[
        access("finance", read, &[Role::Read]),
        access("tax", audit_only, &[Role::Audit]),
    ])
    .unwrap();
    let api = Arc::new(credit_archive::api::Api::new(
        pool.clone(),
        tokens,
        10_000,
        1_000,
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let archive = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, credit_archive::api::router(api)).await });

    let d = dashboard(&archive, read).await;

    // The page carries the entry box.
    let page = reqwest::get(format!("{}/", d.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains(r#"id="subject-form""#) && page.contains(r#"id="subject-code""#));

    // A natural person: record and measures in force, masked, and audited.
    let (status, _, a) = look(&d, json!({ "code": rid.to_lowercase() })).await;
    assert_eq!(status, 200, "{a:#}");
    assert_eq!(a["subject"]["code"], credit_core::ids::mask_id(&rid));
    assert_eq!(
        a["subject"]["name"],
        credit_core::ids::mask_person_name(name)
    );
    assert_eq!(a["subject"]["type"], "NATURAL_PERSON");
    let entries = a["list_entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{a:#}");
    assert_eq!(entries[0]["status"], "active");
    assert_eq!(entries[0]["department"], "courts");
    let m = &a["measures_in_force"]["finance"][0];
    assert_eq!(m["measure_id"], "M-PROCUREMENT", "{a:#}");
    assert_eq!(m["kind"], "punishment");
    assert_eq!(m["explanation"]["identifying_department"], "courts");
    let text = a.to_string();
    assert!(
        !text.contains(&rid) && !text.contains(name),
        "unmasked: {text}"
    );
    let rows: Vec<(String, String, bool)> =
        sqlx::query_as("SELECT department, action, masked FROM audit WHERE subject_key = $1")
            .bind(&rid)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(rows, [("finance".into(), "subject".into(), true)]);

    // As of a day before the archive knew anything: unknown then.
    let (status, ct, p) = look(&d, json!({ "code": rid, "as_of": "2025-01-01" })).await;
    assert_eq!((status, kind(&p)), (404, "unknown-subject"), "{p:#}");
    assert_eq!(ct, "application/problem+json");
    assert_eq!(p["source"], "archive");

    // The archive's problems, passed on as they are, never repeating the code.
    let mut wrong = rid.clone();
    wrong.replace_range(17.., if rid.ends_with('0') { "1" } else { "0" });
    let (status, ct, p) = look(&d, json!({ "code": wrong })).await;
    assert_eq!((status, kind(&p)), (400, "bad-code"), "{p:#}");
    assert_eq!(
        (ct.as_str(), &p["source"]),
        ("application/problem+json", &json!("archive"))
    );
    assert!(!p.to_string().contains(&wrong[..17]), "{p}");
    let unknown = credit_core::ids::complete_uscc("91440101MA5CYUF2").unwrap();
    let (status, _, p) = look(&d, json!({ "code": unknown })).await;
    assert_eq!((status, kind(&p)), (404, "unknown-subject"), "{p:#}");

    // The dashboard's own refusals.
    let (status, _, p) = look(&d, json!({ "code": "  " })).await;
    assert_eq!(
        (status, kind(&p), &p["source"]),
        (400, "bad-code", &json!("dashboard"))
    );
    let (status, _, p) = look(&d, json!({ "subject": rid })).await;
    assert_eq!((status, kind(&p)), (400, "malformed-request"), "{p:#}");

    // A token the archive does not know: 401; a department without `read`: 403.
    let stranger = dashboard(&archive, "nobody-knows-this").await;
    let (status, _, p) = look(&stranger, json!({ "code": rid })).await;
    assert_eq!((status, kind(&p)), (401, "unknown-token"), "{p:#}");
    assert!(p["hint"].as_str().unwrap().contains("archive_token_file"));
    let auditor = dashboard(&archive, audit_only).await;
    let (status, _, p) = look(&auditor, json!({ "code": rid })).await;
    assert_eq!((status, kind(&p)), (403, "forbidden"), "{p:#}");
    assert!(!p.to_string().contains(&rid));

    // Nothing listens: the dashboard says so itself.
    let gone = dashboard(&format!("http://127.0.0.1:{}", free_port()), read).await;
    let (status, _, p) = look(&gone, json!({ "code": rid })).await;
    assert_eq!((status, kind(&p)), (502, "archive-unreachable"), "{p:#}");
    assert_eq!(p["source"], "dashboard");
    assert!(!p.to_string().contains(&rid));

    // One audit row per successful look, and the resident ID in no log.
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM audit")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 1);
    for x in [&d, &stranger, &auditor, &gone] {
        let log = std::fs::read_to_string(&x.log).unwrap();
        assert!(
            !log.contains(&rid[..17]),
            "resident ID in {}",
            x.log.display()
        );
    }
    let gone_log = std::fs::read_to_string(&gone.log).unwrap();
    assert!(gone_log.contains("archive not reachable"), "{gone_log}");

    // The same look in a real browser, as an operator types it into the page
    // (tests/browser/subject.mjs): masked, with the measure and why, and the
    // bad code's problem shown; one more audit row for it.
    let browser_dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").exists(),
        "playwright-core not installed in {}: run scripts/test.sh (ensure_browser_test_deps)",
        browser_dir.display()
    );
    let chromium = std::env::var("CHROMIUM_PATH").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        std::path::Path::new(&chromium).exists(),
        "{chromium} missing: run scripts/test.sh (ensure_chromium)"
    );
    let url = format!("{}/", d.url);
    let (code, masked_code, masked_name, bad) = (
        rid.clone(),
        credit_core::ids::mask_id(&rid),
        credit_core::ids::mask_person_name(name),
        wrong.clone(),
    );
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("subject.mjs")
            .args(["--url", &url, "--code", &code])
            .args(["--masked-code", &masked_code, "--masked-name", &masked_name])
            .args(["--measure", "M-PROCUREMENT", "--bad-code", &bad])
            .args(["--timeout-s", "30"])
            .current_dir(browser_dir)
            .env("CHROMIUM_PATH", chromium)
            .output()
            .expect("running node (scripts/test.sh installs it)")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}");
    assert!(
        out.status.success() && stdout.contains("subject browser check: all ok"),
        "browser check failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM audit")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 2, "the browser's look is audited too");
}
