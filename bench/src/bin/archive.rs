//! The archive's benchmark, each figure beside a bare PostgreSQL baseline
//! measured on the same database in the same run:
//!
//! * ingest: the archive's write path (`credit_archive::db::write`: one
//!   transaction per batch, multi-row `INSERT ... FROM UNNEST`, `ON CONFLICT
//!   DO NOTHING`, positions) for generated records and notices, against a
//!   bare `COPY` of the same rows into tables of the same shape;
//! * subject query: `GET /v1/subjects/{code}` (and `?as_of=`) over HTTP on
//!   loopback, the facts read and folded, against a bare primary-key lookup
//!   of one record row; p50/p99/p99.9 with `--clients` concurrent clients;
//! * pre-check: `POST /v1/precheck` of 10,000 codes, against one bare
//!   `subject_key = ANY($1)` of the same 10,000 codes.
//!
//! Kafka is not involved (the ingest's decoding is not measured here); the
//! API runs in this process on its own tasks, the clients on others.
//!
//! `cargo run --release -p credit-bench --bin archive -- --database-url postgres://postgres@127.0.0.1:19432/postgres`

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use credit_archive::decode::Fact;
use credit_archive::history::{Lineage, NoticeFact, Pos, RecordFact};
use credit_core::notice::NoticeKind;
use sqlx::Connection;

#[derive(Parser)]
struct Args {
    /// A server URL (any database on it): the benchmark creates its own database and drops it.
    #[arg(long, env = "CREDIT_BUS_TEST_DATABASE_URL")]
    database_url: String,
    /// Subjects; each gets `records_per_subject` list entries.
    #[arg(long, default_value_t = 50_000)]
    subjects: usize,
    #[arg(long, default_value_t = 2)]
    records_per_subject: usize,
    /// Punishment notices per record.
    #[arg(long, default_value_t = 2)]
    notices_per_record: usize,
    /// Queries per latency figure.
    #[arg(long, default_value_t = 20_000)]
    samples: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 4)]
    clients: usize,
}

fn code(i: usize) -> String {
    credit_core::ids::complete_uscc(&format!("91440101MA{i:06}")).expect("USCC symbols")
}

fn facts(
    args: &Args,
    subject: usize,
    offset: &mut i64,
    measures: &[(String, String, String)],
) -> Vec<Fact> {
    let key = code(subject);
    let mut out = Vec::new();
    for r in 0..args.records_per_subject {
        *offset += 1;
        let record_id = format!("courts:{}:{}", subject % 4, *offset);
        let learned = 1_760_000_000_000 + *offset;
        let rec = RecordFact {
            pos: Pos {
                topic: "credit.records".into(),
                partition: (subject % 4) as i32,
                offset: *offset,
            },
            learned_ms: learned,
            record_id: record_id.clone(),
            department: "courts".into(),
            domain: "0".into(),
            subject_type: "LEGAL_PERSON".into(),
            subject_key: key.clone(),
            subject_name: format!("广州某某贸易有限公司{subject}"),
            responsible_person: Some("张三".into()),
            info_kind: "DISHONESTY_LIST".into(),
            list_type: Some("JUDGEMENT_DEFAULTER".into()),
            grade: None,
            decision_number: format!("(2024)粤01执{subject}号"),
            decision_date: 19_800 + r as i32,
            publication_date: None,
            valid_from: 19_800 + r as i32,
            valid_until: None,
            severity: "SERIOUS".into(),
            legal_basis: Some("《最高人民法院关于公布失信被执行人名单信息的若干规定》".into()),
            conduct: "有履行能力而拒不履行生效法律文书确定的义务".into(),
            amount_fen: Some(1_000_000),
            source: Lineage {
                topic: "credit.courts.inbound".into(),
                partition: (subject % 4) as i32,
                offset: *offset,
                record_key: format!("case-{subject}-{r}"),
            },
        };
        out.push(Fact::Record(
            Box::new(rec),
            serde_json::json!({"court": "广州中院"}),
        ));
        for (m, (measure, dept, basis)) in measures.iter().take(args.notices_per_record).enumerate()
        {
            out.push(Fact::Notice(Box::new(NoticeFact {
                pos: Pos {
                    topic: format!("credit.{dept}.notices"),
                    partition: 0,
                    offset: *offset * 16 + m as i64,
                },
                learned_ms: learned + 5,
                notice_id: format!("{record_id}/{measure}/{dept}/punishment/1"),
                kind: NoticeKind::Punishment,
                department: dept.clone(),
                measure_id: measure.clone(),
                measure_name: "限制参与政府采购".into(),
                legal_basis: basis.clone(),
                catalogue_version: 1,
                generation: 1,
                record_id: record_id.clone(),
                list_type: "JUDGEMENT_DEFAULTER".into(),
                subject_type: "LEGAL_PERSON".into(),
                subject_key: key.clone(),
                subject_name: format!("广州某某贸易有限公司{subject}"),
                identifying_department: "courts".into(),
                decision_number: format!("(2024)粤01执{subject}号"),
                reason: None,
                source_topic: "credit.records".into(),
                source_partition: (subject % 4) as i32,
                source_offset: *offset,
            })));
        }
    }
    out
}

fn tsv(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
}

/// The same rows as COPY text (records and notices in their own tables).
fn copy_rows(f: &[Fact], records: &mut Vec<u8>, notices: &mut Vec<u8>) {
    use std::io::Write;
    let date = |d: i32| credit_core::date::format(d);
    let ts = |ms: i64| credit_archive::history::rfc3339(ms);
    for x in f {
        match x {
            Fact::Record(r, a) => {
                writeln!(
                    records,
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t\\N\t{}\t{}\t\\N\t{}\t\\N\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    r.pos.topic, r.pos.partition, r.pos.offset, ts(r.learned_ms), r.record_id, r.department, r.domain,
                    r.subject_type, r.subject_key, tsv(&r.subject_name), tsv(r.responsible_person.as_deref().unwrap_or("")),
                    r.info_kind, r.list_type.as_deref().unwrap_or(""), tsv(&r.decision_number), date(r.decision_date),
                    date(r.valid_from), r.severity, tsv(r.legal_basis.as_deref().unwrap_or("")), tsv(&r.conduct),
                    r.amount_fen.unwrap_or(0), tsv(&a.to_string()), r.source.topic, r.source.partition, r.source.offset,
                    tsv(&r.source.record_key)
                )
                .unwrap();
            }
            Fact::Notice(n) => {
                writeln!(
                    notices,
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t\\N\t{}\t{}\t{}",
                    n.pos.topic, n.pos.partition, n.pos.offset, ts(n.learned_ms), n.notice_id, n.kind.as_str(), n.department,
                    n.measure_id, tsv(&n.measure_name), tsv(&n.legal_basis), n.catalogue_version, n.generation, n.record_id,
                    n.list_type, n.subject_type, n.subject_key, tsv(&n.subject_name), n.identifying_department,
                    tsv(&n.decision_number), n.source_topic, n.source_partition, n.source_offset
                )
                .unwrap();
            }
            _ => {}
        }
    }
}

fn percentiles(mut v: Vec<Duration>) -> String {
    v.sort();
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)].as_secs_f64() * 1000.0;
    format!(
        "p50 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  (n={})",
        at(0.5),
        at(0.99),
        at(0.999),
        v.len()
    )
}

/// Runs `f` `samples` times spread over `clients` tasks; the latencies.
async fn load<F, Fut>(samples: usize, clients: usize, f: F) -> Vec<Duration>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let f = Arc::new(f);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let f = f.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in (c..samples).step_by(clients) {
                let t = Instant::now();
                f(i).await;
                out.push(t.elapsed());
            }
            out
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let name = format!("bench_archive_{}", std::process::id());
    let (root, _) = args.database_url.rsplit_once('/').expect("a database URL");
    let mut admin = sqlx::PgConnection::connect(&args.database_url).await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await?;
    let url = format!("{root}/{name}");
    let result = run(&args, &url).await;
    drop(
        sqlx::PgPool::connect(&url)
            .await
            .map(|p| async move { p.close().await }),
    );
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut admin)
        .await?;
    result
}

async fn run(args: &Args, url: &str) -> anyhow::Result<()> {
    let pool = credit_archive::db::connect(url, (args.clients as u32 + 2).max(4)).await?;
    let catalogue = credit_measures::Catalogue::parse(credit_measures::V1)?;
    let measures: Vec<(String, String, String)> = catalogue
        .measures
        .iter()
        .filter(|m| m.kind == credit_measures::Kind::Punishment)
        .map(|m| {
            (
                m.id.to_string(),
                m.departments[0].to_string(),
                m.legal_basis.clone(),
            )
        })
        .collect();

    // Ingest through the archive's write path, in batches of 2,000 facts.
    let mut offset = 0;
    let mut batch = credit_archive::db::Batch::default();
    let (mut records, mut notices) = (Vec::new(), Vec::new());
    let mut rows = 0u64;
    let mut write_time = Duration::ZERO;
    for s in 0..args.subjects {
        let f = facts(args, s, &mut offset, &measures);
        copy_rows(&f, &mut records, &mut notices);
        batch.facts.extend(f);
        if batch.facts.len() >= 2_000 || s + 1 == args.subjects {
            batch.next.insert(("credit.records".into(), 0), offset + 1);
            let t = Instant::now();
            rows += credit_archive::db::write(&pool, &batch).await?;
            write_time += t.elapsed();
            batch = credit_archive::db::Batch::default();
        }
    }
    // COPY of the same rows into tables of the same shape (no conflict handling).
    sqlx::query("CREATE TABLE copy_records (LIKE records INCLUDING ALL)")
        .execute(&pool)
        .await?;
    sqlx::query("CREATE TABLE copy_notices (LIKE notices INCLUDING ALL)")
        .execute(&pool)
        .await?;
    let mut conn = pool.acquire().await?;
    let t = Instant::now();
    for (table, data) in [("copy_records", &records), ("copy_notices", &notices)] {
        let mut copy = conn
            .copy_in_raw(&format!("COPY {table} FROM STDIN"))
            .await?;
        for chunk in data.chunks(1 << 20) {
            copy.send(chunk).await?;
        }
        copy.finish().await?;
    }
    let copy_time = t.elapsed();
    drop(conn);
    let ingest_rate = rows as f64 / write_time.as_secs_f64();
    let copy_rate = rows as f64 / copy_time.as_secs_f64();
    sqlx::query("ANALYZE").execute(&pool).await?;
    let size: (String,) =
        sqlx::query_as("SELECT pg_size_pretty(pg_database_size(current_database()))")
            .fetch_one(&pool)
            .await?;
    println!(
        "data: {} subjects, {} records, {} notices ({} rows), database {}",
        args.subjects,
        args.subjects * args.records_per_subject,
        args.subjects * args.records_per_subject * args.notices_per_record,
        rows,
        size.0
    );
    println!(
        "ingest (db::write, batches of 2,000): {:.0} rows/s; bare COPY of the same rows: {:.0} rows/s; ratio {:.2}",
        ingest_rate,
        copy_rate,
        ingest_rate / copy_rate
    );

    // The API in this process.
    let token = "bench-token";
    let tokens = credit_archive::auth::Tokens::load(&[credit_archive::config::DepartmentAccess {
        id: "finance".into(),
        token_file: None,
        token_env: None,
        token_sha256: Some(credit_archive::auth::token_sha256(token)),
        roles: vec![credit_archive::auth::Role::Read],
    }])
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let api = Arc::new(credit_archive::api::Api::new(
        pool.clone(),
        tokens,
        10_000,
        1000,
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, credit_archive::api::router(api)).await });
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .build()?;
    let n = args.subjects;

    // Bare primary-key lookups of one record row.
    let p = pool.clone();
    let recs = args.records_per_subject as i64;
    let bare = load(args.samples, args.clients, move |i| {
        let p = p.clone();
        async move {
            let off = (i * 7919 % n) as i64 * recs + 1;
            let row: Option<(String,)> = sqlx::query_as(
                r#"SELECT record_id FROM records WHERE topic = 'credit.records' AND "partition" = $1 AND "offset" = $2"#,
            )
            .bind(((i * 7919 % n) % 4) as i32)
            .bind(off)
            .fetch_optional(&p)
            .await
            .unwrap();
            assert!(row.is_some());
        }
    })
    .await;
    for (label, suffix) in [
        ("subject record", ""),
        ("subject record as of", "?as_of=2026-01-01"),
    ] {
        let (h, b) = (http.clone(), base.clone());
        let lat = load(args.samples, args.clients, move |i| {
            let (h, url) = (
                h.clone(),
                format!("{b}/v1/subjects/{}{suffix}", code(i * 7919 % n)),
            );
            async move {
                let r = h.get(url).bearer_auth(token).send().await.unwrap();
                assert!(
                    r.status().is_success() || r.status() == 404,
                    "{}",
                    r.status()
                );
                r.bytes().await.unwrap();
            }
        })
        .await;
        println!("{label:<24} {}", percentiles(lat));
    }
    println!("{:<24} {}", "bare PK lookup", percentiles(bare));

    // Pre-check of 10,000 codes (half archived, half not) against one bare ANY($1).
    let codes: Vec<String> = (0..10_000).map(|i| code(i * 13 % (2 * n))).collect();
    let mut api_times = Vec::new();
    let mut bare_times = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let r = http
            .post(format!("{base}/v1/precheck"))
            .bearer_auth(token)
            .json(&serde_json::json!({"codes": codes, "department": measures[0].1}))
            .send()
            .await?;
        anyhow::ensure!(r.status().is_success(), "precheck {}", r.status());
        let a: serde_json::Value = r.json().await?;
        api_times.push(t.elapsed());
        anyhow::ensure!(a["checked"] == 10_000);
        let t = Instant::now();
        let _: Vec<(String,)> =
            sqlx::query_as("SELECT record_id FROM records WHERE subject_key = ANY($1)")
                .bind(&codes)
                .fetch_all(&pool)
                .await?;
        bare_times.push(t.elapsed());
    }
    api_times.sort();
    bare_times.sort();
    println!(
        "precheck of 10,000: median {:.1} ms (min {:.1}); bare ANY($1) of the same codes: median {:.1} ms",
        api_times[5].as_secs_f64() * 1000.0,
        api_times[0].as_secs_f64() * 1000.0,
        bare_times[5].as_secs_f64() * 1000.0
    );
    pool.close().await;
    Ok(())
}
