//! The archive's PostgreSQL side: migrations, the batched idempotent writes
//! of the ingest, and the reads of the API.
//!
//! Writes: one multi-row `INSERT ... SELECT FROM UNNEST($1, $2, ...)` per
//! table per batch (one round trip however many rows), `ON CONFLICT DO
//! NOTHING` on the row's source position, and the batch's input positions in
//! the same transaction. Times are passed as integers (ms since the epoch,
//! days since 1970-01-01) and turned into `timestamptz`/`date` by the
//! statement, so the crate needs no date library and the values round-trip
//! exactly.

use std::collections::HashMap;

use credit_core::notice::NoticeKind;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Row, Transaction};

use crate::decode::{CatalogueFact, CommandFact, Fact};
use crate::history::{EndFact, Facts, FeedbackFact, Lineage, NoticeFact, Pos, RecordFact};

/// The migrations in `services/archive/migrations`, embedded.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// `learned_at` from ms since the epoch, exactly.
const TS: &str = "(TIMESTAMPTZ 'epoch' + {} * INTERVAL '1 millisecond')";
/// ms since the epoch from a `timestamptz` column.
fn ms(col: &str) -> String {
    format!("(extract(epoch FROM {col}) * 1000)::int8")
}
/// days since 1970-01-01 from a `date` column.
fn days(col: &str) -> String {
    format!("({col} - DATE '1970-01-01')")
}
fn ts(expr: &str) -> String {
    TS.replace("{}", expr)
}

/// Connects (a small pool) and applies the migrations.
pub async fn connect(url: &str, max_connections: u32) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = url
        .parse()
        .map_err(|e| anyhow::anyhow!("the archive database URL: {e}"))?;
    // Every statement here is prepared once per connection and has the same
    // shape whatever its parameters (look-ups by key): planning it again for
    // each execution (PostgreSQL's custom plans) cost 0.6 ms of the subject
    // query's 0.7 ms on the server, the generic plan 0.02 ms.
    let options = options.options([("plan_cache_mode", "force_generic_plan")]);
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(std::time::Duration::from_secs(10))
        .connect_with(options)
        .await
        .map_err(|e| anyhow::anyhow!("connecting to the archive database: {e}"))?;
    MIGRATOR
        .run(&pool)
        .await
        .map_err(|e| anyhow::anyhow!("migrating the archive database: {e}"))?;
    Ok(pool)
}

/// Where the ingest stands, per (topic, partition): the next offset to read.
pub async fn positions(pool: &PgPool) -> sqlx::Result<HashMap<(String, i32), i64>> {
    let rows = sqlx::query(r#"SELECT topic, "partition", next_offset FROM ingest_positions"#)
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| ((r.get(0), r.get(1)), r.get(2)))
        .collect())
}

/// One batch of the ingest: its facts, the messages that could not be read,
/// and the next offset of every partition it read.
#[derive(Debug, Default)]
pub struct Batch {
    pub facts: Vec<Fact>,
    pub errors: Vec<(Pos, i64, String)>,
    pub next: HashMap<(String, i32), i64>,
}

#[derive(Default)]
struct Columns {
    topic: Vec<String>,
    partition: Vec<i32>,
    offset: Vec<i64>,
    learned: Vec<i64>,
}

impl Columns {
    fn push(&mut self, p: &Pos, learned: i64) {
        self.topic.push(p.topic.clone());
        self.partition.push(p.partition);
        self.offset.push(p.offset);
        self.learned.push(learned);
    }
}

/// Writes a batch in one transaction; returns the rows inserted (a replayed
/// message inserts nothing).
pub async fn write(pool: &PgPool, batch: &Batch) -> sqlx::Result<u64> {
    let mut tx = pool.begin().await?;
    let mut n = 0;
    let records: Vec<_> = batch
        .facts
        .iter()
        .filter_map(|f| match f {
            Fact::Record(r, a) => Some((&**r, a)),
            _ => None,
        })
        .collect();
    n += insert_records(&mut tx, &records).await?;
    let notices: Vec<&NoticeFact> = batch
        .facts
        .iter()
        .filter_map(|f| match f {
            Fact::Notice(n) => Some(&**n),
            _ => None,
        })
        .collect();
    n += insert_notices(&mut tx, &notices).await?;
    let feedback: Vec<&FeedbackFact> = batch
        .facts
        .iter()
        .filter_map(|f| match f {
            Fact::Feedback(x) => Some(x),
            _ => None,
        })
        .collect();
    n += insert_feedback(&mut tx, &feedback).await?;
    let commands: Vec<&CommandFact> = batch
        .facts
        .iter()
        .filter_map(|f| match f {
            Fact::Command(c) => Some(c),
            _ => None,
        })
        .collect();
    n += insert_commands(&mut tx, &commands).await?;
    for f in &batch.facts {
        if let Fact::Catalogue(c) = f {
            n += insert_catalogue(&mut tx, c).await?;
        }
    }
    if !batch.errors.is_empty() {
        let mut c = Columns::default();
        let mut reasons = Vec::new();
        for (p, learned, reason) in &batch.errors {
            c.push(p, *learned);
            reasons.push(reason.clone());
        }
        n += sqlx::query(&format!(
            r#"INSERT INTO ingest_errors (topic, "partition", "offset", learned_at, reason)
               SELECT t, p, o, {}, r FROM UNNEST($1::text[], $2::int4[], $3::int8[], $4::int8[], $5::text[]) AS u(t, p, o, l, r)
               ON CONFLICT DO NOTHING"#,
            ts("l")
        ))
        .bind(&c.topic)
        .bind(&c.partition)
        .bind(&c.offset)
        .bind(&c.learned)
        .bind(&reasons)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    }
    if !batch.next.is_empty() {
        let (mut t, mut p, mut o) = (Vec::new(), Vec::new(), Vec::new());
        for ((topic, partition), next) in &batch.next {
            t.push(topic.clone());
            p.push(*partition);
            o.push(*next);
        }
        sqlx::query(
            r#"INSERT INTO ingest_positions (topic, "partition", next_offset)
               SELECT * FROM UNNEST($1::text[], $2::int4[], $3::int8[])
               ON CONFLICT (topic, "partition") DO UPDATE
               SET next_offset = GREATEST(ingest_positions.next_offset, EXCLUDED.next_offset)"#,
        )
        .bind(&t)
        .bind(&p)
        .bind(&o)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(n)
}

async fn insert_records(
    tx: &mut Transaction<'_, Postgres>,
    rows: &[(&RecordFact, &serde_json::Value)],
) -> sqlx::Result<u64> {
    if rows.is_empty() {
        return Ok(0);
    }
    let mut c = Columns::default();
    let mut s: [Vec<String>; 11] = Default::default();
    let mut o: [Vec<Option<String>>; 4] = Default::default();
    let (mut dd, mut vf, mut sp, mut so) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut pd, mut vu, mut amount) = (Vec::new(), Vec::new(), Vec::new());
    for (r, _) in rows {
        c.push(&r.pos, r.learned_ms);
        for (col, v) in s.iter_mut().zip([
            &r.record_id,
            &r.department,
            &r.domain,
            &r.subject_type,
            &r.subject_key,
            &r.subject_name,
            &r.info_kind,
            &r.decision_number,
            &r.severity,
            &r.conduct,
            &r.source.topic,
        ]) {
            col.push(v.clone());
        }
        for (col, v) in o.iter_mut().zip([
            &r.responsible_person,
            &r.list_type,
            &r.grade,
            &r.legal_basis,
        ]) {
            col.push(v.clone());
        }
        dd.push(r.decision_date);
        vf.push(r.valid_from);
        pd.push(r.publication_date);
        vu.push(r.valid_until);
        amount.push(r.amount_fen);
        sp.push(r.source.partition);
        so.push(r.source.offset);
    }
    let attrs: Vec<String> = rows.iter().map(|(_, a)| a.to_string()).collect();
    let keys: Vec<String> = rows
        .iter()
        .map(|(r, _)| r.source.record_key.clone())
        .collect();
    let sql = format!(
        r#"INSERT INTO records (topic, "partition", "offset", learned_at, record_id, department, domain,
             subject_type, subject_key, subject_name, responsible_person, info_kind, list_type, grade,
             decision_number, decision_date, publication_date, valid_from, valid_until, severity,
             legal_basis, conduct, amount_fen, attributes, source_topic, source_partition, source_offset,
             source_record_id)
           SELECT t, p, o, {learned}, rid, dep, dom, st, sk, sn, rp, ik, lt, gr, dn,
             DATE '1970-01-01' + dd, DATE '1970-01-01' + pd, DATE '1970-01-01' + vf, DATE '1970-01-01' + vu,
             sev, lb, con, amt, attrs::jsonb, stp, spa, sof, skey
           FROM UNNEST($1::text[], $2::int4[], $3::int8[], $4::int8[], $5::text[], $6::text[], $7::text[],
             $8::text[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[],
             $15::text[], $16::int4[], $17::int4[], $18::int4[], $19::int4[], $20::text[], $21::text[],
             $22::text[], $23::int8[], $24::text[], $25::text[], $26::int4[], $27::int8[], $28::text[])
             AS u(t, p, o, l, rid, dep, dom, st, sk, sn, rp, ik, lt, gr, dn, dd, pd, vf, vu, sev, lb, con,
                  amt, attrs, stp, spa, sof, skey)
           ON CONFLICT DO NOTHING"#,
        learned = ts("l")
    );
    let [rid, dep, dom, st, sk, sn, ik, dn, sev, con, stp] = s;
    let [rp, lt, gr, lb] = o;
    Ok(sqlx::query(&sql)
        .bind(&c.topic)
        .bind(&c.partition)
        .bind(&c.offset)
        .bind(&c.learned)
        .bind(&rid)
        .bind(&dep)
        .bind(&dom)
        .bind(&st)
        .bind(&sk)
        .bind(&sn)
        .bind(&rp)
        .bind(&ik)
        .bind(&lt)
        .bind(&gr)
        .bind(&dn)
        .bind(&dd)
        .bind(&pd)
        .bind(&vf)
        .bind(&vu)
        .bind(&sev)
        .bind(&lb)
        .bind(&con)
        .bind(&amount)
        .bind(&attrs)
        .bind(&stp)
        .bind(&sp)
        .bind(&so)
        .bind(&keys)
        .execute(&mut **tx)
        .await?
        .rows_affected())
}

async fn insert_notices(
    tx: &mut Transaction<'_, Postgres>,
    rows: &[&NoticeFact],
) -> sqlx::Result<u64> {
    if rows.is_empty() {
        return Ok(0);
    }
    let mut c = Columns::default();
    let mut s: [Vec<String>; 14] = Default::default();
    let (mut cv, mut generation, mut sp, mut so, mut reason) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for n in rows {
        c.push(&n.pos, n.learned_ms);
        for (col, v) in s.iter_mut().zip([
            &n.notice_id,
            &n.kind.as_str().to_string(),
            &n.department,
            &n.measure_id,
            &n.measure_name,
            &n.legal_basis,
            &n.record_id,
            &n.list_type,
            &n.subject_type,
            &n.subject_key,
            &n.subject_name,
            &n.identifying_department,
            &n.decision_number,
            &n.source_topic,
        ]) {
            col.push(v.clone());
        }
        cv.push(n.catalogue_version);
        generation.push(n.generation);
        sp.push(n.source_partition);
        so.push(n.source_offset);
        reason.push(n.reason.clone());
    }
    let [
        nid,
        kind,
        dep,
        mid,
        mname,
        lb,
        rid,
        lt,
        st,
        sk,
        sn,
        idep,
        dn,
        stp,
    ] = s;
    Ok(sqlx::query(&format!(
        r#"INSERT INTO notices (topic, "partition", "offset", learned_at, notice_id, kind, department,
             measure_id, measure_name, legal_basis, catalogue_version, generation, record_id, list_type,
             subject_type, subject_key, subject_name, identifying_department, decision_number, reason,
             source_topic, source_partition, source_offset)
           SELECT t, p, o, {}, nid, k, dep, mid, mn, lb, cv, g, rid, lt, st, sk, sn, idep, dn, rs, stp, spa, sof
           FROM UNNEST($1::text[], $2::int4[], $3::int8[], $4::int8[], $5::text[], $6::text[], $7::text[],
             $8::text[], $9::text[], $10::text[], $11::int4[], $12::int4[], $13::text[], $14::text[],
             $15::text[], $16::text[], $17::text[], $18::text[], $19::text[], $20::text[], $21::text[],
             $22::int4[], $23::int8[])
             AS u(t, p, o, l, nid, k, dep, mid, mn, lb, cv, g, rid, lt, st, sk, sn, idep, dn, rs, stp, spa, sof)
           ON CONFLICT DO NOTHING"#,
        ts("l")
    ))
    .bind(&c.topic)
    .bind(&c.partition)
    .bind(&c.offset)
    .bind(&c.learned)
    .bind(&nid)
    .bind(&kind)
    .bind(&dep)
    .bind(&mid)
    .bind(&mname)
    .bind(&lb)
    .bind(&cv)
    .bind(&generation)
    .bind(&rid)
    .bind(&lt)
    .bind(&st)
    .bind(&sk)
    .bind(&sn)
    .bind(&idep)
    .bind(&dn)
    .bind(&reason)
    .bind(&stp)
    .bind(&sp)
    .bind(&so)
    .execute(&mut **tx)
    .await?
    .rows_affected())
}

async fn insert_feedback(
    tx: &mut Transaction<'_, Postgres>,
    rows: &[&FeedbackFact],
) -> sqlx::Result<u64> {
    if rows.is_empty() {
        return Ok(0);
    }
    let mut c = Columns::default();
    let (mut nid, mut dep, mut out, mut reason, mut at) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for f in rows {
        c.push(&f.pos, f.learned_ms);
        nid.push(f.notice_id.clone());
        dep.push(f.department.clone());
        out.push(f.outcome.clone());
        reason.push(f.reason.clone());
        at.push(f.responded_at_ms);
    }
    Ok(sqlx::query(&format!(
        r#"INSERT INTO feedback (topic, "partition", "offset", learned_at, notice_id, department, outcome,
             reason, responded_at)
           SELECT t, p, o, {}, nid, dep, oc, rs, {}
           FROM UNNEST($1::text[], $2::int4[], $3::int8[], $4::int8[], $5::text[], $6::text[], $7::text[],
             $8::text[], $9::int8[]) AS u(t, p, o, l, nid, dep, oc, rs, ra)
           ON CONFLICT DO NOTHING"#,
        ts("l"),
        ts("ra")
    ))
    .bind(&c.topic)
    .bind(&c.partition)
    .bind(&c.offset)
    .bind(&c.learned)
    .bind(&nid)
    .bind(&dep)
    .bind(&out)
    .bind(&reason)
    .bind(&at)
    .execute(&mut **tx)
    .await?
    .rows_affected())
}

async fn insert_commands(
    tx: &mut Transaction<'_, Postgres>,
    rows: &[&CommandFact],
) -> sqlx::Result<u64> {
    if rows.is_empty() {
        return Ok(0);
    }
    let mut c = Columns::default();
    let (mut rid, mut reason, mut version) = (Vec::new(), Vec::new(), Vec::new());
    for cmd in rows {
        match cmd {
            CommandFact::End(e) => {
                c.push(&e.pos, e.learned_ms);
                rid.push(Some(e.record_id.clone()));
                reason.push(Some(e.reason.clone()));
                version.push(None);
            }
            CommandFact::Activate {
                pos,
                learned_ms,
                version: v,
            } => {
                c.push(pos, *learned_ms);
                rid.push(None);
                reason.push(None);
                version.push(Some(*v));
            }
        }
    }
    Ok(sqlx::query(&format!(
        r#"INSERT INTO commands (topic, "partition", "offset", learned_at, record_id, reason, activate_version)
           SELECT t, p, o, {}, rid, rs, v
           FROM UNNEST($1::text[], $2::int4[], $3::int8[], $4::int8[], $5::text[], $6::text[], $7::int4[])
             AS u(t, p, o, l, rid, rs, v)
           ON CONFLICT DO NOTHING"#,
        ts("l")
    ))
    .bind(&c.topic)
    .bind(&c.partition)
    .bind(&c.offset)
    .bind(&c.learned)
    .bind(&rid)
    .bind(&reason)
    .bind(&version)
    .execute(&mut **tx)
    .await?
    .rows_affected())
}

async fn insert_catalogue(
    tx: &mut Transaction<'_, Postgres>,
    c: &CatalogueFact,
) -> sqlx::Result<u64> {
    Ok(sqlx::query(&format!(
        "INSERT INTO catalogue_versions (version, learned_at, effective, description, body)
         VALUES ($1, {}, $3, $4, $5) ON CONFLICT DO NOTHING",
        ts("$2::int8")
    ))
    .bind(c.version)
    .bind(c.learned_ms)
    .bind(&c.effective)
    .bind(&c.description)
    .bind(&c.body)
    .execute(&mut **tx)
    .await?
    .rows_affected())
}

/// One fact row of [`facts`]' single statement, as `row_to_json` spells it.
#[derive(serde::Deserialize)]
struct RecordRow {
    topic: String,
    partition: i32,
    offset: i64,
    learned_ms: i64,
    record_id: String,
    department: String,
    domain: String,
    subject_type: String,
    subject_key: String,
    subject_name: String,
    responsible_person: Option<String>,
    info_kind: String,
    list_type: Option<String>,
    grade: Option<String>,
    decision_number: String,
    dd: i32,
    pd: Option<i32>,
    vf: i32,
    vu: Option<i32>,
    severity: String,
    legal_basis: Option<String>,
    conduct: String,
    amount_fen: Option<i64>,
    source_topic: String,
    source_partition: i32,
    source_offset: i64,
    source_record_id: String,
}

#[derive(serde::Deserialize)]
struct NoticeRow {
    topic: String,
    partition: i32,
    offset: i64,
    learned_ms: i64,
    notice_id: String,
    kind: String,
    department: String,
    measure_id: String,
    measure_name: String,
    legal_basis: String,
    catalogue_version: i32,
    generation: i32,
    record_id: String,
    list_type: String,
    subject_type: String,
    subject_key: String,
    subject_name: String,
    identifying_department: String,
    decision_number: String,
    reason: Option<String>,
    source_topic: String,
    source_partition: i32,
    source_offset: i64,
}

#[derive(serde::Deserialize)]
struct FeedbackRow {
    topic: String,
    partition: i32,
    offset: i64,
    learned_ms: i64,
    notice_id: String,
    department: String,
    outcome: String,
    reason: Option<String>,
    responded_ms: i64,
}

#[derive(serde::Deserialize)]
struct EndRow {
    topic: String,
    partition: i32,
    offset: i64,
    learned_ms: i64,
    record_id: String,
    reason: String,
}

/// Every fact about `codes` learned at or before `known_ms`, in one
/// statement (one round trip: the subject query's latency is mostly round
/// trips): the records and notices by subject, the feedback on those
/// notices and the end commands of those entries, each row as JSON tagged
/// with its table. Feedback and commands are looked up per id (a LATERAL
/// subquery fenced with OFFSET 0): the generic plan cannot know the array
/// holds one code and hash-joined a sequential scan of all commands instead
/// (57 ms against 0.6 ms on the 10M-subject bench archive).
pub async fn facts(pool: &PgPool, codes: &[String], known_ms: i64) -> sqlx::Result<Facts> {
    let sql = format!(
        r#"WITH r AS (
             SELECT topic, "partition", "offset", {l} AS learned_ms, record_id, department, domain,
               subject_type, subject_key, subject_name, responsible_person, info_kind, list_type, grade,
               decision_number, {dd} AS dd, {pd} AS pd, {vf} AS vf, {vu} AS vu, severity, legal_basis,
               conduct, amount_fen, source_topic, source_partition, source_offset, source_record_id
             FROM records WHERE subject_key = ANY($1) AND learned_at <= {learned}),
           n AS (
             SELECT topic, "partition", "offset", {l} AS learned_ms, notice_id, kind, department,
               measure_id, measure_name, legal_basis, catalogue_version, generation, record_id, list_type,
               subject_type, subject_key, subject_name, identifying_department, decision_number, reason,
               source_topic, source_partition, source_offset
             FROM notices WHERE subject_key = ANY($1) AND learned_at <= {learned}),
           f AS (
             SELECT x.* FROM (SELECT DISTINCT notice_id FROM n) ids CROSS JOIN LATERAL (
               SELECT topic, "partition", "offset", {l} AS learned_ms, notice_id, department, outcome,
                 reason, {ra} AS responded_ms
               FROM feedback WHERE notice_id = ids.notice_id AND learned_at <= {learned}
               OFFSET 0) x),
           c AS (
             SELECT x.* FROM (SELECT record_id FROM r UNION SELECT record_id FROM n) ids
             CROSS JOIN LATERAL (
               SELECT topic, "partition", "offset", {l} AS learned_ms, record_id, reason
               FROM commands
               WHERE record_id = ids.record_id AND reason IS NOT NULL AND learned_at <= {learned}
               OFFSET 0) x)
           SELECT 0::int2, row_to_json(r)::text FROM r
           UNION ALL SELECT 1::int2, row_to_json(n)::text FROM n
           UNION ALL SELECT 2::int2, row_to_json(f)::text FROM f
           UNION ALL SELECT 3::int2, row_to_json(c)::text FROM c"#,
        l = ms("learned_at"),
        dd = days("decision_date"),
        pd = days("publication_date"),
        vf = days("valid_from"),
        vu = days("valid_until"),
        ra = ms("responded_at"),
        learned = ts("$2::int8"),
    );
    let rows: Vec<(i16, String)> = sqlx::query_as(&sql)
        .bind(codes)
        .bind(known_ms)
        .fetch_all(pool)
        .await?;
    let mut out = Facts::default();
    let bad = |e: serde_json::Error| sqlx::Error::Decode(Box::new(e));
    for (table, json) in rows {
        match table {
            0 => {
                let r: RecordRow = serde_json::from_str(&json).map_err(bad)?;
                out.records.push(RecordFact {
                    pos: Pos {
                        topic: r.topic,
                        partition: r.partition,
                        offset: r.offset,
                    },
                    learned_ms: r.learned_ms,
                    record_id: r.record_id,
                    department: r.department,
                    domain: r.domain,
                    subject_type: r.subject_type,
                    subject_key: r.subject_key,
                    subject_name: r.subject_name,
                    responsible_person: r.responsible_person,
                    info_kind: r.info_kind,
                    list_type: r.list_type,
                    grade: r.grade,
                    decision_number: r.decision_number,
                    decision_date: r.dd,
                    publication_date: r.pd,
                    valid_from: r.vf,
                    valid_until: r.vu,
                    severity: r.severity,
                    legal_basis: r.legal_basis,
                    conduct: r.conduct,
                    amount_fen: r.amount_fen,
                    source: Lineage {
                        topic: r.source_topic,
                        partition: r.source_partition,
                        offset: r.source_offset,
                        record_key: r.source_record_id,
                    },
                });
            }
            1 => {
                let n: NoticeRow = serde_json::from_str(&json).map_err(bad)?;
                // A kind this build does not know (a newer writer's) is not
                // a duty it can reason about.
                let Some(kind) = NoticeKind::ALL.into_iter().find(|k| k.as_str() == n.kind) else {
                    continue;
                };
                out.notices.push(NoticeFact {
                    pos: Pos {
                        topic: n.topic,
                        partition: n.partition,
                        offset: n.offset,
                    },
                    learned_ms: n.learned_ms,
                    notice_id: n.notice_id,
                    kind,
                    department: n.department,
                    measure_id: n.measure_id,
                    measure_name: n.measure_name,
                    legal_basis: n.legal_basis,
                    catalogue_version: n.catalogue_version,
                    generation: n.generation,
                    record_id: n.record_id,
                    list_type: n.list_type,
                    subject_type: n.subject_type,
                    subject_key: n.subject_key,
                    subject_name: n.subject_name,
                    identifying_department: n.identifying_department,
                    decision_number: n.decision_number,
                    reason: n.reason,
                    source_topic: n.source_topic,
                    source_partition: n.source_partition,
                    source_offset: n.source_offset,
                });
            }
            2 => {
                let f: FeedbackRow = serde_json::from_str(&json).map_err(bad)?;
                out.feedback.push(FeedbackFact {
                    pos: Pos {
                        topic: f.topic,
                        partition: f.partition,
                        offset: f.offset,
                    },
                    learned_ms: f.learned_ms,
                    notice_id: f.notice_id,
                    department: f.department,
                    outcome: f.outcome,
                    reason: f.reason,
                    responded_at_ms: f.responded_ms,
                });
            }
            _ => {
                let e: EndRow = serde_json::from_str(&json).map_err(bad)?;
                out.ends.push(EndFact {
                    pos: Pos {
                        topic: e.topic,
                        partition: e.partition,
                        offset: e.offset,
                    },
                    learned_ms: e.learned_ms,
                    record_id: e.record_id,
                    reason: e.reason,
                });
            }
        }
    }
    Ok(out)
}

/// What the pre-check folds for `codes` as of `known_ms`: only the columns
/// that decide whether a duty is in force (the entry's standing, the
/// duties' notices, the end commands), typed, with the descriptive text
/// left empty. The subjects are the few [`punished`] names, but a batch's
/// worth of them: reading every column as JSON cost 0.1 ms per subject.
/// Of the notices, only the duties of `measure` / `department` and the
/// lifts and withdrawals (which confirm ends) are read: the others decide
/// nothing the pre-check asks.
pub async fn duty_facts(
    pool: &PgPool,
    codes: &[String],
    known_ms: i64,
    measure: Option<&str>,
    department: Option<&str>,
) -> sqlx::Result<Facts> {
    let mut conn = pool.acquire().await?;
    let learned = ts("$2::int8");
    let records: Vec<RecordFact> = sqlx::query_as::<_, (String, i32, i64, i64, String, String, String, String, String, i32, Option<i32>, String)>(&format!(
        r#"SELECT topic, "partition", "offset", {l}, record_id, department, subject_type, subject_key,
             info_kind, {vf}, {vu}, source_record_id
           FROM records WHERE subject_key = ANY($1) AND learned_at <= {learned}"#,
        l = ms("learned_at"),
        vf = days("valid_from"),
        vu = days("valid_until"),
    ))
    .bind(codes)
    .bind(known_ms)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(|(topic, partition, offset, learned_ms, record_id, department, subject_type, subject_key, info_kind, valid_from, valid_until, record_key)| RecordFact {
        pos: Pos { topic, partition, offset },
        learned_ms,
        record_id,
        department,
        domain: String::new(),
        subject_type,
        subject_key,
        subject_name: String::new(),
        responsible_person: None,
        info_kind,
        list_type: None,
        grade: None,
        decision_number: String::new(),
        decision_date: valid_from,
        publication_date: None,
        valid_from,
        valid_until,
        severity: String::new(),
        legal_basis: None,
        conduct: String::new(),
        amount_fen: None,
        source: Lineage { topic: String::new(), partition: 0, offset: 0, record_key },
    })
    .collect();
    let notices: Vec<NoticeFact> = sqlx::query_as::<
        _,
        (
            String,
            i32,
            i64,
            i64,
            String,
            String,
            String,
            String,
            i32,
            i32,
            String,
            String,
            String,
            Option<String>,
        ),
    >(&format!(
        r#"SELECT topic, "partition", "offset", {l}, notice_id, kind, department, measure_id,
             generation, catalogue_version, record_id, subject_type, subject_key, reason
           FROM notices WHERE subject_key = ANY($1) AND learned_at <= {learned}
             AND (kind IN ('{lift}', '{withdrawal}')
                  OR (($3::text IS NULL OR measure_id = $3) AND ($4::text IS NULL OR department = $4)))"#,
        l = ms("learned_at"),
        lift = NoticeKind::Lift.as_str(),
        withdrawal = NoticeKind::Withdrawal.as_str(),
    ))
    .bind(codes)
    .bind(known_ms)
    .bind(measure)
    .bind(department)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .filter_map(
        |(
            topic,
            partition,
            offset,
            learned_ms,
            notice_id,
            kind,
            department,
            measure_id,
            generation,
            catalogue_version,
            record_id,
            subject_type,
            subject_key,
            reason,
        )| {
            Some(NoticeFact {
                pos: Pos {
                    topic,
                    partition,
                    offset,
                },
                learned_ms,
                notice_id,
                kind: NoticeKind::ALL.into_iter().find(|k| k.as_str() == kind)?,
                department,
                measure_id,
                measure_name: String::new(),
                legal_basis: String::new(),
                catalogue_version,
                generation,
                record_id,
                list_type: String::new(),
                subject_type,
                subject_key,
                subject_name: String::new(),
                identifying_department: String::new(),
                decision_number: String::new(),
                reason,
                source_topic: String::new(),
                source_partition: 0,
                source_offset: 0,
            })
        },
    )
    .collect();
    let mut ids: Vec<&str> = records
        .iter()
        .map(|r| r.record_id.as_str())
        .chain(notices.iter().map(|n| n.record_id.as_str()))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let ends = sqlx::query_as::<_, (String, i32, i64, i64, String, String)>(&format!(
        r#"SELECT x.* FROM unnest($1::text[]) ids(record_id) CROSS JOIN LATERAL (
             SELECT topic, "partition", "offset", {l}, record_id, reason
             FROM commands WHERE record_id = ids.record_id AND reason IS NOT NULL
               AND learned_at <= {learned} OFFSET 0) x"#,
        l = ms("learned_at"),
    ))
    .bind(&ids)
    .bind(known_ms)
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .map(
        |(topic, partition, offset, learned_ms, record_id, reason)| EndFact {
            pos: Pos {
                topic,
                partition,
                offset,
            },
            learned_ms,
            record_id,
            reason,
        },
    )
    .collect();
    Ok(Facts {
        records,
        notices,
        feedback: Vec::new(),
        ends,
    })
}

/// Of `codes`, those with a duty whose greatest known (generation,
/// lift-after-apply) notice as of `known_ms` is a punishment of `measure`
/// and/or by `department`: the only subjects a pre-check can find
/// restricted. One statement over the covering `notices_subject` index; the
/// caller folds the full facts of these few to decide (an entry that ended
/// or expired without a lift is not restricted).
pub async fn punished(
    pool: &PgPool,
    codes: &[String],
    known_ms: i64,
    measure: Option<&str>,
    department: Option<&str>,
) -> sqlx::Result<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(&format!(
        r#"SELECT DISTINCT subject_key FROM (
             SELECT DISTINCT ON (record_id, measure_id, department) subject_key, kind
             FROM notices
             WHERE subject_key = ANY($1) AND learned_at <= {learned}
               AND ($3::text IS NULL OR measure_id = $3)
               AND ($4::text IS NULL OR department = $4)
             ORDER BY record_id, measure_id, department, generation DESC,
                      kind IN ('{lift}', '{withdrawal}') DESC
           ) duty
           WHERE kind = '{punishment}'"#,
        learned = ts("$2::int8"),
        lift = NoticeKind::Lift.as_str(),
        withdrawal = NoticeKind::Withdrawal.as_str(),
        punishment = NoticeKind::Punishment.as_str(),
    ))
    .bind(codes)
    .bind(known_ms)
    .bind(measure)
    .bind(department)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(c,)| c).collect())
}

/// One audit row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Audit {
    pub department: String,
    pub action: String,
    pub subject_key: String,
    pub fields: Vec<String>,
    pub masked: bool,
}

/// Writes audit rows (one statement).
pub async fn audit(pool: &PgPool, rows: &[Audit]) -> sqlx::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    // Arrays of arrays are not rectangular here: the fields go as one
    // comma-joined text each and are split by the statement.
    sqlx::query(
        "INSERT INTO audit (department, action, subject_key, fields, masked)
         SELECT d, a, s, string_to_array(f, ','), m
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bool[]) AS u(d, a, s, f, m)",
    )
    .bind(rows.iter().map(|r| r.department.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.action.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.subject_key.clone()).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.fields.join(",")).collect::<Vec<_>>())
    .bind(rows.iter().map(|r| r.masked).collect::<Vec<_>>())
    .execute(pool)
    .await?;
    Ok(())
}

/// An audit row as read back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditRow {
    pub id: i64,
    /// When (ms since the epoch).
    pub at_ms: i64,
    #[serde(flatten)]
    pub audit: Audit,
}

/// Audit rows, newest first, optionally of one subject.
pub async fn audit_rows(
    pool: &PgPool,
    subject: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<AuditRow>> {
    Ok(sqlx::query(&format!(
        "SELECT id, {} AS at_ms, department, action, subject_key, fields, masked FROM audit
         WHERE $1::text IS NULL OR subject_key = $1 ORDER BY id DESC LIMIT $2",
        ms("at")
    ))
    .bind(subject)
    .bind(limit)
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|r| AuditRow {
        id: r.get("id"),
        at_ms: r.get("at_ms"),
        audit: Audit {
            department: r.get("department"),
            action: r.get("action"),
            subject_key: r.get("subject_key"),
            fields: r.get("fields"),
            masked: r.get("masked"),
        },
    })
    .collect())
}

/// Every fact table in a stable order, one JSON line per row: what a rebuild
/// from the topics must reproduce exactly (the audit log and the ingest's
/// positions are not facts from the topics).
pub async fn dump(pool: &PgPool) -> sqlx::Result<String> {
    let mut out = String::new();
    for (table, order) in [
        ("records", r#"topic, "partition", "offset""#),
        ("notices", r#"topic, "partition", "offset""#),
        ("feedback", r#"topic, "partition", "offset""#),
        ("commands", r#"topic, "partition", "offset""#),
        ("catalogue_versions", "version"),
        ("ingest_errors", r#"topic, "partition", "offset""#),
    ] {
        let rows = sqlx::query(&format!(
            "SELECT row_to_json(x)::text FROM (SELECT * FROM {table} ORDER BY {order}) x"
        ))
        .fetch_all(pool)
        .await?;
        for r in rows {
            out.push_str(table);
            out.push(' ');
            out.push_str(&r.get::<String, _>(0));
            out.push('\n');
        }
    }
    Ok(out)
}
