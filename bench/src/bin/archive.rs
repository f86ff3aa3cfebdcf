//! The archive's benchmark, each figure beside a bare PostgreSQL baseline
//! measured on the same database in the same run:
//!
//! * ingest: the archive's write path (`credit_archive::db::write`: one
//!   transaction per batch, multi-row `INSERT ... FROM UNNEST`, `ON CONFLICT
//!   DO NOTHING`, positions) for `--ingest-subjects` generated subjects, in a
//!   scratch database, against a bare `COPY` of the same rows into tables of
//!   the same shape;
//! * the loaded archive: `--subjects` subjects with `--records-per-subject`
//!   records each (licences and penalties; `--listed-per-mille` of them also
//!   on a dishonesty list, whose entry fans out to `--notices-per-entry`
//!   punishment notices, a tenth of those lifted again), loaded with `COPY`
//!   into the archive's own tables (indexes dropped during the load and
//!   rebuilt after it, then `VACUUM ANALYZE`), the time each step took;
//! * subject queries: `GET /v1/subjects/{code}`, `?as_of=` and
//!   `/measures`, over HTTP on loopback to the API served by a second process
//!   (this binary with `--serve`), `--clients` concurrent clients, against a
//!   bare primary-key lookup of one record row from this process;
//!   p50/p99/p99.9 per round, `--rounds` rounds;
//! * pre-check: `POST /v1/precheck` of 10,000 codes (drawn from all subjects,
//!   and the worst case: 10,000 listed subjects), against one bare
//!   `subject_key = ANY($1)` of the same codes on the records table.
//!
//! Kafka is not involved (the ingest's decoding is not measured here).
//!
//! `cargo run --release -p credit-bench --bin archive -- --database-url postgres://postgres@127.0.0.1:19432/postgres`
//! (`bench/run.sh archive` starts a PostgreSQL server of its own with the
//! settings the figures are quoted with).

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use credit_archive::decode::{CommandFact, Fact};
use credit_archive::history::{EndFact, FeedbackFact, Lineage, NoticeFact, Pos, RecordFact};
use credit_core::notice::NoticeKind;
use sqlx::Connection;
use tokio::io::AsyncBufReadExt;

#[derive(Parser, Clone)]
struct Args {
    /// A server URL (any database on it): the benchmark creates its databases there.
    #[arg(long, env = "CREDIT_BUS_TEST_DATABASE_URL")]
    database_url: String,
    /// Subjects in the loaded archive.
    #[arg(long, default_value_t = 100_000)]
    subjects: u64,
    /// Records per subject.
    #[arg(long, default_value_t = 5)]
    records_per_subject: u64,
    /// Subjects per thousand on a dishonesty list (one of their records).
    #[arg(long, default_value_t = 50)]
    listed_per_mille: u64,
    /// Punishment notices per list entry.
    #[arg(long, default_value_t = 8)]
    notices_per_entry: usize,
    /// Subjects written through the archive's write path for the ingest ratio.
    #[arg(long, default_value_t = 20_000)]
    ingest_subjects: u64,
    /// Facts per archive write (the service's `archive.batch_size` by default).
    #[arg(long, default_value_t = credit_archive::Config::defaults().batch_size)]
    ingest_batch: usize,
    /// Queries per latency figure and round.
    #[arg(long, default_value_t = 20_000)]
    samples: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 4)]
    clients: usize,
    /// Rounds of every query measurement.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Keep the loaded archive in this database, and reuse it when it holds
    /// the same data (a rerun then skips the load).
    #[arg(long)]
    keep: Option<String>,
    /// Internal: serve the API on this database URL and print its address.
    #[arg(long, hide = true)]
    serve: Option<String>,
}

const TOKEN: &str = "bench-token";
/// When the first facts were learned (ms); layer `j` of every subject's
/// records is learned `j` days later, so an as-of query in between sees
/// part of each record.
const BASE_MS: i64 = 1_760_000_000_000;
const DAY_MS: i64 = 86_400_000;

fn code(i: u64) -> String {
    credit_core::ids::complete_uscc(&format!("91440101M{i:07}")).expect("USCC symbols")
}

/// Whether subject `i` is on a dishonesty list (spread evenly, deterministic).
fn listed(args: &Args, i: u64) -> bool {
    (i.wrapping_mul(2_654_435_761) >> 7) % 1000 < args.listed_per_mille
}

/// Subject `i`'s facts: record `j` on partition `i % 12` at a unique offset.
fn subject_facts(args: &Args, i: u64, measures: &[(String, String, String)]) -> Vec<Fact> {
    let key = code(i);
    let name = format!("广州某某贸易有限公司{i}");
    let mut out = Vec::new();
    for j in 0..args.records_per_subject {
        let offset = (i * args.records_per_subject + j) as i64;
        let partition = (i % 12) as i32;
        let learned = BASE_MS + j as i64 * DAY_MS + i as i64;
        let entry = j == 0 && listed(args, i);
        let (dept, info_kind, list_type, severity) = match (entry, j % 2) {
            (true, _) => (
                "courts",
                "DISHONESTY_LIST",
                Some("JUDGEMENT_DEFAULTER"),
                "SERIOUS",
            ),
            (false, 0) => ("market", "ADMINISTRATIVE_LICENSING", None, "GENERAL"),
            (false, _) => ("tax", "ADMINISTRATIVE_PENALTY", None, "GENERAL"),
        };
        let record_id = format!("{dept}:{partition}:{offset}");
        let day = 19_700 + ((i + j * 37) % 600) as i32;
        let rec = RecordFact {
            pos: Pos {
                topic: "credit.records".into(),
                partition,
                offset,
            },
            learned_ms: learned,
            record_id: record_id.clone(),
            department: dept.into(),
            domain: "0".into(),
            subject_type: "LEGAL_PERSON".into(),
            subject_key: key.clone(),
            subject_name: name.clone(),
            responsible_person: Some("张三".into()),
            info_kind: info_kind.into(),
            list_type: list_type.map(str::to_string),
            grade: None,
            decision_number: format!("穗{dept}〔2025〕{offset}号"),
            decision_date: day,
            publication_date: None,
            valid_from: day,
            valid_until: (!entry).then_some(day + 1095),
            severity: severity.into(),
            legal_basis: entry
                .then(|| "《最高人民法院关于公布失信被执行人名单信息的若干规定》".into()),
            conduct: if entry {
                "有履行能力而拒不履行生效法律文书确定的义务".into()
            } else {
                "食品经营许可".into()
            },
            amount_fen: (j % 2 == 1).then_some(500_000),
            source: Lineage {
                topic: format!("credit.{dept}.inbound"),
                partition,
                offset,
                record_key: format!("{dept}-{i}-{j}"),
            },
        };
        out.push(Fact::Record(Box::new(rec), serde_json::json!({})));
        if !entry {
            continue;
        }
        // A tenth of the entries were repaired: each duty lifted again.
        let kinds: &[NoticeKind] = if i % 10 == 3 {
            &[NoticeKind::Punishment, NoticeKind::Lift]
        } else {
            &[NoticeKind::Punishment]
        };
        if kinds.len() > 1 {
            out.push(Fact::Command(CommandFact::End(EndFact {
                pos: Pos {
                    topic: "credit.engine.commands".into(),
                    partition,
                    offset,
                },
                learned_ms: learned + 12 * 3_600_000,
                record_id: record_id.clone(),
                reason: "repaired".into(),
            })));
        }
        for (m, (measure, mdept, basis)) in measures.iter().take(args.notices_per_entry).enumerate()
        {
            for (n, kind) in kinds.iter().enumerate() {
                out.push(Fact::Notice(Box::new(NoticeFact {
                    pos: Pos {
                        topic: format!("credit.{mdept}.notices"),
                        partition: partition % 3,
                        offset: offset * 64 + (m * 2 + n) as i64,
                    },
                    learned_ms: learned + 3_600_000 * (1 + n as i64 * 24),
                    notice_id: format!("{record_id}/{measure}/{mdept}/{}/1", kind.as_str()),
                    kind: *kind,
                    department: mdept.clone(),
                    measure_id: measure.clone(),
                    measure_name: "限制参与政府采购".into(),
                    legal_basis: basis.clone(),
                    catalogue_version: 1,
                    generation: 1,
                    record_id: record_id.clone(),
                    list_type: "JUDGEMENT_DEFAULTER".into(),
                    subject_type: "LEGAL_PERSON".into(),
                    subject_key: key.clone(),
                    subject_name: name.clone(),
                    identifying_department: "courts".into(),
                    decision_number: format!("穗courts〔2025〕{offset}号"),
                    reason: (*kind == NoticeKind::Lift).then(|| "repaired".into()),
                    source_topic: "credit.records".into(),
                    source_partition: partition,
                    source_offset: offset,
                })));
                // The department applied it (or lifted it) two hours later.
                out.push(Fact::Feedback(FeedbackFact {
                    pos: Pos {
                        topic: format!("credit.{mdept}.feedback"),
                        partition: partition % 3,
                        offset: offset * 64 + (m * 2 + n) as i64,
                    },
                    learned_ms: learned + 3_600_000 * (3 + n as i64 * 24),
                    notice_id: format!("{record_id}/{measure}/{mdept}/{}/1", kind.as_str()),
                    department: mdept.clone(),
                    outcome: "applied".into(),
                    reason: None,
                    responded_at_ms: learned + 3_600_000 * (2 + n as i64 * 24),
                }));
            }
        }
    }
    out
}

fn tsv(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('\t', "\\t")
        .replace('\n', "\\n")
}

fn opt(s: Option<&str>) -> String {
    s.map_or_else(|| "\\N".into(), tsv)
}

/// The tables the bench writes, in the order of [`copy_rows`]' buffers.
const TABLES: [&str; 4] = ["records", "notices", "feedback", "commands"];

/// The facts as `COPY` text rows of the archive's tables (column order of
/// the migrations), one buffer per table of [`TABLES`].
fn copy_rows(f: &[Fact], out: &mut [Vec<u8>; 4]) {
    let [records, notices, feedback, commands] = out;
    let date = |d: i32| credit_core::date::format(d);
    let ts = |ms: i64| credit_archive::history::rfc3339(ms);
    for x in f {
        match x {
            Fact::Record(r, a) => {
                writeln!(
                    records,
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t\\N\t{}\t{}\t\\N\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    r.pos.topic, r.pos.partition, r.pos.offset, ts(r.learned_ms), r.record_id, r.department, r.domain,
                    r.subject_type, r.subject_key, tsv(&r.subject_name), opt(r.responsible_person.as_deref()),
                    r.info_kind, opt(r.list_type.as_deref()), tsv(&r.decision_number), date(r.decision_date),
                    date(r.valid_from), r.valid_until.map_or_else(|| "\\N".into(), date), r.severity,
                    opt(r.legal_basis.as_deref()), tsv(&r.conduct),
                    r.amount_fen.map_or_else(|| "\\N".into(), |a| a.to_string()), tsv(&a.to_string()),
                    r.source.topic, r.source.partition, r.source.offset, tsv(&r.source.record_key)
                )
                .expect("writes to a Vec");
            }
            Fact::Notice(n) => {
                writeln!(
                    notices,
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    n.pos.topic, n.pos.partition, n.pos.offset, ts(n.learned_ms), n.notice_id, n.kind.as_str(), n.department,
                    n.measure_id, tsv(&n.measure_name), tsv(&n.legal_basis), n.catalogue_version, n.generation, n.record_id,
                    n.list_type, n.subject_type, n.subject_key, tsv(&n.subject_name), n.identifying_department,
                    tsv(&n.decision_number), opt(n.reason.as_deref()), n.source_topic, n.source_partition, n.source_offset
                )
                .expect("writes to a Vec");
            }
            Fact::Feedback(f) => {
                writeln!(
                    feedback,
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    f.pos.topic,
                    f.pos.partition,
                    f.pos.offset,
                    ts(f.learned_ms),
                    f.notice_id,
                    f.department,
                    f.outcome,
                    opt(f.reason.as_deref()),
                    ts(f.responded_at_ms)
                )
                .expect("writes to a Vec");
            }
            Fact::Command(CommandFact::End(e)) => {
                writeln!(
                    commands,
                    "{}\t{}\t{}\t{}\t{}\t{}\t\\N",
                    e.pos.topic,
                    e.pos.partition,
                    e.pos.offset,
                    ts(e.learned_ms),
                    e.record_id,
                    tsv(&e.reason)
                )
                .expect("writes to a Vec");
            }
            _ => {}
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// p50/p99/p99.9 in ms.
fn percentiles(mut v: Vec<Duration>) -> [f64; 3] {
    v.sort();
    let at = |q: f64| ms(v[((v.len() as f64 * q) as usize).min(v.len() - 1)]);
    [at(0.5), at(0.99), at(0.999)]
}

/// min/median/max of one figure over the rounds.
fn spread(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    format!("{:.2}/{:.2}/{:.2}", v[0], v[v.len() / 2], v[v.len() - 1])
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
        all.extend(t.await.expect("a client task"));
    }
    all
}

fn punishments() -> anyhow::Result<Vec<(String, String, String)>> {
    let catalogue = credit_measures::Catalogue::parse(credit_measures::V1)?;
    Ok(catalogue
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
        .collect())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(url) = &args.serve {
        return serve(&args, url).await;
    }
    let (root, _) = args.database_url.rsplit_once('/').expect("a database URL");
    let mut admin = sqlx::PgConnection::connect(&args.database_url).await?;
    let measures = punishments()?;

    // Ingest ratio, each round in a scratch database of its own.
    let mut ratios = Vec::new();
    for _ in 0..args.rounds {
        let scratch = format!("bench_archive_ingest_{}", std::process::id());
        sqlx::query(&format!("CREATE DATABASE {scratch}"))
            .execute(&mut admin)
            .await?;
        let result = ingest(&args, &format!("{root}/{scratch}"), &measures).await;
        sqlx::query(&format!("DROP DATABASE {scratch} WITH (FORCE)"))
            .execute(&mut admin)
            .await?;
        ratios.push(result?);
    }
    println!(
        "ingest ratio to COPY over {} rounds: min/median/max {}",
        args.rounds,
        spread(ratios)
    );

    // The loaded archive.
    let name = args
        .keep
        .clone()
        .unwrap_or_else(|| format!("bench_archive_{}", std::process::id()));
    let exists: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM pg_database WHERE datname = $1")
        .bind(&name)
        .fetch_optional(&mut admin)
        .await?;
    if exists.is_none() {
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await?;
    }
    let url = format!("{root}/{name}");
    let result = queries(&args, &url, &measures).await;
    if args.keep.is_none() {
        sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await?;
    }
    result
}

/// The archive's write path against a bare `COPY` of the same rows; the ratio.
async fn ingest(
    args: &Args,
    url: &str,
    measures: &[(String, String, String)],
) -> anyhow::Result<f64> {
    let pool = credit_archive::db::connect(url, 4).await?;
    let mut batch = credit_archive::db::Batch::default();
    let mut bufs: [Vec<u8>; 4] = Default::default();
    let mut rows = 0u64;
    let mut write_time = Duration::ZERO;
    for s in 0..args.ingest_subjects {
        let f = subject_facts(args, s, measures);
        copy_rows(&f, &mut bufs);
        batch.facts.extend(f);
        if batch.facts.len() >= args.ingest_batch || s + 1 == args.ingest_subjects {
            batch
                .next
                .insert(("credit.records".into(), 0), s as i64 + 1);
            let t = Instant::now();
            rows += credit_archive::db::write(&pool, &batch).await?;
            write_time += t.elapsed();
            batch = credit_archive::db::Batch::default();
        }
    }
    for t in TABLES {
        sqlx::query(&format!("CREATE TABLE copy_{t} (LIKE {t} INCLUDING ALL)"))
            .execute(&pool)
            .await?;
    }
    let mut conn = pool.acquire().await?;
    let t = Instant::now();
    for (table, data) in TABLES.iter().zip(&bufs) {
        let mut copy = conn
            .copy_in_raw(&format!("COPY copy_{table} FROM STDIN"))
            .await?;
        for chunk in data.chunks(1 << 20) {
            copy.send(chunk).await?;
        }
        copy.finish().await?;
    }
    let copy_time = t.elapsed();
    drop(conn);
    pool.close().await;
    let ingest_rate = rows as f64 / write_time.as_secs_f64();
    let copy_rate = rows as f64 / copy_time.as_secs_f64();
    println!(
        "ingest: {} subjects, {rows} rows through db::write (batches of {} facts): {ingest_rate:.0} rows/s; \
         bare COPY of the same rows: {copy_rate:.0} rows/s; ratio {:.2}",
        args.ingest_subjects,
        args.ingest_batch,
        ingest_rate / copy_rate
    );
    Ok(ingest_rate / copy_rate)
}

/// What a loaded database holds (reused when it matches).
fn shape(args: &Args) -> String {
    format!(
        "subjects={} records_per_subject={} listed_per_mille={} notices_per_entry={}",
        args.subjects, args.records_per_subject, args.listed_per_mille, args.notices_per_entry
    )
}

/// Loads the archive with `COPY`: indexes dropped, two `COPY` streams
/// (records, notices) fed by a generator thread, indexes rebuilt, vacuumed.
async fn bulk_load(
    args: &Args,
    pool: &sqlx::PgPool,
    measures: &[(String, String, String)],
) -> anyhow::Result<()> {
    let mut rebuild = Vec::new();
    for t in TABLES {
        let defs: Vec<(String, String)> = sqlx::query_as(
            "SELECT indexname::text, indexdef FROM pg_indexes WHERE tablename = $1 AND indexname::text <> $1 || '_pkey'",
        )
        .bind(t)
        .fetch_all(pool)
        .await?;
        for (index, def) in defs {
            sqlx::query(&format!("DROP INDEX {index}"))
                .execute(pool)
                .await?;
            rebuild.push(def);
        }
        sqlx::query(&format!(
            "ALTER TABLE {t} DROP CONSTRAINT IF EXISTS {t}_pkey"
        ))
        .execute(pool)
        .await?;
        rebuild.push(format!(
            r#"ALTER TABLE {t} ADD PRIMARY KEY (topic, "partition", "offset")"#
        ));
    }
    let t0 = Instant::now();
    let mut senders = Vec::new();
    let mut copies = Vec::new();
    for table in TABLES {
        let (tx, rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
        senders.push(tx);
        copies.push(tokio::spawn(copy(pool.clone(), table, rx)));
    }
    let gen_args = args.clone();
    let gen_measures = measures.to_vec();
    let generator = std::thread::spawn(move || -> [u64; 4] {
        let mut bufs: [Vec<u8>; 4] = Default::default();
        let mut rows = [0u64; 4];
        let started = Instant::now();
        'subjects: for i in 0..gen_args.subjects {
            let f = subject_facts(&gen_args, i, &gen_measures);
            for x in &f {
                match x {
                    Fact::Record(..) => rows[0] += 1,
                    Fact::Notice(_) => rows[1] += 1,
                    Fact::Feedback(_) => rows[2] += 1,
                    Fact::Command(_) => rows[3] += 1,
                    _ => {}
                }
            }
            copy_rows(&f, &mut bufs);
            for (b, tx) in bufs.iter_mut().zip(&senders) {
                if b.len() >= 4 << 20 && tx.blocking_send(std::mem::take(b)).is_err() {
                    break 'subjects;
                }
            }
            if (i + 1) % 1_000_000 == 0 {
                eprintln!(
                    "  generated and sent {}M subjects ({rows:?} rows of {TABLES:?}) in {:.0} s",
                    (i + 1) / 1_000_000,
                    started.elapsed().as_secs_f64()
                );
            }
        }
        for (b, tx) in bufs.into_iter().zip(&senders) {
            let _ = tx.blocking_send(b);
        }
        rows
    });
    async fn copy(
        pool: sqlx::PgPool,
        table: &'static str,
        mut rx: tokio::sync::mpsc::Receiver<Vec<u8>>,
    ) -> anyhow::Result<()> {
        let mut tx = pool.begin().await?;
        // TRUNCATE in the loading transaction: with wal_level=minimal the
        // COPY then skips the write-ahead log.
        sqlx::query(&format!("TRUNCATE {table}"))
            .execute(&mut *tx)
            .await?;
        let mut c = tx.copy_in_raw(&format!("COPY {table} FROM STDIN")).await?;
        while let Some(chunk) = rx.recv().await {
            c.send(chunk).await?;
        }
        c.finish().await?;
        tx.commit().await?;
        Ok(())
    }
    for c in copies {
        c.await??;
    }
    let rows = generator
        .join()
        .map_err(|_| anyhow::anyhow!("the generator thread panicked"))?;
    let (nrec, nnot) = (rows[0], rows[1]);
    let total: u64 = rows.iter().sum();
    let load = t0.elapsed();
    println!(
        "load: {nrec} records, {nnot} notices, {} feedback, {} commands by COPY in {:.0} s ({:.0} rows/s)",
        rows[2],
        rows[3],
        load.as_secs_f64(),
        total as f64 / load.as_secs_f64()
    );
    let t = Instant::now();
    for def in &rebuild {
        sqlx::query(def).execute(pool).await?;
    }
    println!("indexes rebuilt in {:.0} s", t.elapsed().as_secs_f64());
    let t = Instant::now();
    sqlx::query("VACUUM (ANALYZE) records, notices, feedback, commands")
        .execute(pool)
        .await?;
    println!("VACUUM ANALYZE in {:.0} s", t.elapsed().as_secs_f64());
    sqlx::query("CREATE TABLE bench_meta (shape text NOT NULL)")
        .execute(pool)
        .await?;
    sqlx::query("INSERT INTO bench_meta VALUES ($1)")
        .bind(shape(args))
        .execute(pool)
        .await?;
    Ok(())
}

/// The API in a second process: prints `listening <base URL>`, serves until killed.
async fn serve(args: &Args, url: &str) -> anyhow::Result<()> {
    let pool = credit_archive::db::connect(url, (args.clients as u32 + 2).max(4)).await?;
    let tokens = credit_archive::auth::Tokens::load(&[credit_archive::config::DepartmentAccess {
        id: "finance".into(),
        token_file: None,
        token_env: None,
        token_sha256: Some(credit_archive::auth::token_sha256(TOKEN)),
        roles: vec![credit_archive::auth::Role::Read],
    }])
    .map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let api = Arc::new(credit_archive::api::Api::new(pool, tokens, 10_000, 1000));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening http://{}", listener.local_addr()?);
    axum::serve(listener, credit_archive::api::router(api)).await?;
    Ok(())
}

async fn queries(
    args: &Args,
    url: &str,
    measures: &[(String, String, String)],
) -> anyhow::Result<()> {
    let pool = credit_archive::db::connect(url, (args.clients as u32 + 2).max(4)).await?;
    let loaded: Option<(String,)> =
        sqlx::query_as("SELECT shape FROM bench_meta WHERE to_regclass('bench_meta') IS NOT NULL")
            .fetch_optional(&pool)
            .await
            .unwrap_or(None);
    match loaded {
        Some((s,)) if s == shape(args) => println!("reusing the loaded archive ({s})"),
        Some((s,)) => anyhow::bail!(
            "database holds {s}, not {}: drop it or choose another --keep",
            shape(args)
        ),
        None => bulk_load(args, &pool, measures).await?,
    }
    let size: (String, String) = sqlx::query_as(
        "SELECT pg_size_pretty(pg_database_size(current_database())), current_setting('shared_buffers')",
    )
    .fetch_one(&pool)
    .await?;
    let counts: (i64, i64) = sqlx::query_as(
        "SELECT (SELECT reltuples::int8 FROM pg_class WHERE relname = 'records'), \
                (SELECT reltuples::int8 FROM pg_class WHERE relname = 'notices')",
    )
    .fetch_one(&pool)
    .await?;
    println!(
        "archive: {} subjects, ~{} records, ~{} notices; database {}, shared_buffers {}",
        args.subjects, counts.0, counts.1, size.0, size.1
    );

    // The API in a second process.
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args(["--database-url", &args.database_url, "--serve", url])
        .args(["--clients", &args.clients.to_string()])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("piped")).lines();
    let base = loop {
        match lines.next_line().await? {
            Some(l) if l.starts_with("listening ") => break l["listening ".len()..].to_string(),
            Some(_) => continue,
            None => anyhow::bail!("the API process ended before listening"),
        }
    };
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .build()?;
    let n = args.subjects;
    let rps = args.records_per_subject;
    // Deterministic spread over every subject.
    let pick = move |i: usize| (i as u64).wrapping_mul(2_654_435_761) % n;
    // Learned after the first three record layers, before the rest.
    let as_of = credit_archive::history::rfc3339(BASE_MS + 2 * DAY_MS + DAY_MS / 2);

    // Warm-up: touch what the rounds touch once.
    let mut figures: Vec<(&str, Vec<[f64; 3]>)> = vec![
        ("bare PK lookup", Vec::new()),
        ("subject record", Vec::new()),
        ("subject record ?as_of", Vec::new()),
        ("subject measures", Vec::new()),
    ];
    for round in 0..=args.rounds {
        let p = pool.clone();
        let bare = load(args.samples, args.clients, move |i| {
            let p = p.clone();
            async move {
                let s = pick(i);
                let row: Option<(String,)> = sqlx::query_as(
                    r#"SELECT record_id FROM records WHERE topic = 'credit.records' AND "partition" = $1 AND "offset" = $2"#,
                )
                .bind((s % 12) as i32)
                .bind((s * rps) as i64)
                .fetch_optional(&p)
                .await
                .expect("the bare lookup");
                assert!(row.is_some(), "record of subject {s}");
            }
        })
        .await;
        let mut this = vec![percentiles(bare)];
        for suffix in ["", "?as_of=AS_OF", "/measures"] {
            let (h, b) = (http.clone(), base.clone());
            let suffix = suffix.replace("AS_OF", &as_of);
            let lat = load(args.samples, args.clients, move |i| {
                let url = format!("{b}/v1/subjects/{}{suffix}", code(pick(i)));
                let h = h.clone();
                async move {
                    let r = h.get(&url).bearer_auth(TOKEN).send().await.expect("HTTP");
                    let status = r.status();
                    let body = r.bytes().await.expect("HTTP body");
                    assert!(
                        status.is_success(),
                        "{url}: {status} {}",
                        String::from_utf8_lossy(&body)
                    );
                }
            })
            .await;
            this.push(percentiles(lat));
        }
        if round == 0 {
            println!("warm-up round done");
            continue;
        }
        for ((label, all), f) in figures.iter_mut().zip(this) {
            println!(
                "round {round}: {label:<22} p50 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms",
                f[0], f[1], f[2]
            );
            all.push(f);
        }
    }
    println!(
        "latency over {} rounds of {} queries, {} clients (min/median/max of each percentile, ms):",
        args.rounds, args.samples, args.clients
    );
    for (label, all) in &figures {
        println!(
            "  {label:<22} p50 {}  p99 {}  p99.9 {}",
            spread(all.iter().map(|f| f[0]).collect()),
            spread(all.iter().map(|f| f[1]).collect()),
            spread(all.iter().map(|f| f[2]).collect())
        );
    }

    // Pre-checks of 10,000 codes against one bare ANY($1) of the same codes.
    let any: Vec<String> = (0..10_000).map(|i| code(pick(i + 7))).collect();
    let worst: Vec<String> = (0..n)
        .filter(|&i| listed(args, i))
        .take(10_000)
        .map(code)
        .collect();
    for (label, codes) in [
        ("10,000 subjects", &any),
        ("10,000 listed subjects", &worst),
    ] {
        for filter in [
            serde_json::json!({"measure": measures[0].0}),
            serde_json::json!({"department": measures[0].1}),
        ] {
            let mut body = filter.clone();
            body["codes"] = serde_json::json!(codes);
            let (mut api_times, mut bare_times, mut restricted) = (Vec::new(), Vec::new(), 0);
            for _ in 0..(args.rounds * 3).max(5) {
                let t = Instant::now();
                let r = http
                    .post(format!("{base}/v1/precheck"))
                    .bearer_auth(TOKEN)
                    .json(&body)
                    .send()
                    .await?;
                anyhow::ensure!(r.status().is_success(), "precheck {}", r.status());
                let a: serde_json::Value = r.json().await?;
                api_times.push(ms(t.elapsed()));
                anyhow::ensure!(a["checked"] == codes.len());
                restricted = a["restricted"].as_array().map_or(0, Vec::len);
                let t = Instant::now();
                let _: Vec<(String,)> =
                    sqlx::query_as("SELECT record_id FROM records WHERE subject_key = ANY($1)")
                        .bind(codes)
                        .fetch_all(&pool)
                        .await?;
                bare_times.push(ms(t.elapsed()));
            }
            println!(
                "precheck of {label} by {}: {restricted} restricted; min/median/max {} ms; bare ANY($1): {} ms",
                filter
                    .as_object()
                    .and_then(|o| o.keys().next())
                    .map_or("", |k| k.as_str()),
                spread(api_times),
                spread(bare_times)
            );
        }
    }
    drop(child);
    pool.close().await;
    Ok(())
}
