//! The query API (axum). Every answer comes from the facts stored in
//! PostgreSQL, filtered by when the archive learned them and folded by
//! [`crate::history::state_with`] (with the archived catalogue versions, for
//! the entries' publication periods); nothing is re-planned.
//!
//! | route | role | what |
//! |---|---|---|
//! | `GET /v1/subjects/{code}[?as_of=]` | read | the subject's record |
//! | `GET /v1/subjects/{code}/measures[?as_of=]` | read | measures in force by implementing department, with explanation chains |
//! | `POST /v1/precheck` | read | which of up to `max_precheck` subjects a measure or department restricts |
//! | `GET /v1/audit[?subject=]` | audit | reads of personal data |
//! | `GET /openapi.json` | none | the OpenAPI document (`services/archive/openapi.json`) |
//!
//! Errors are RFC 7807 problem details (`application/problem+json`), and
//! never carry a subject's code or name. Personal data (natural persons' ID
//! numbers and names, responsible persons' names) is masked unless the
//! caller has `personal_data`; each answer about a subject with personal
//! data writes an audit row before it is sent (no audit, no answer).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use credit_core::archive_api;
use serde::{Deserialize, Serialize};
use sqlx::PgPool;

use crate::auth::{AuthError, Caller, Role, Tokens};
use crate::db;
use crate::history::{self, AsOf, SubjectState};

/// The OpenAPI document, kept in the repository beside the code.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// Base of every problem `type` URI.
pub const PROBLEM_BASE: &str = archive_api::PROBLEM_BASE;

/// Shared by the handlers.
pub struct Api {
    pub pool: PgPool,
    pub tokens: Tokens,
    pub max_precheck: usize,
    pub audit_limit: i64,
    /// The archived catalogue versions, parsed (publication periods,
    /// measure ids, effective dates, descriptions): a published version never
    /// changes, so it is read again only when a version not held is asked for.
    catalogues: Mutex<(bool, Arc<history::Catalogues>)>,
}

impl Api {
    pub fn new(pool: PgPool, tokens: Tokens, max_precheck: usize, audit_limit: i64) -> Api {
        Api {
            pool,
            tokens,
            max_precheck,
            audit_limit,
            catalogues: Mutex::new((false, Arc::default())),
        }
    }
}

/// An RFC 7807 problem.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Problem {
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// For a pre-check with bad codes: which, by index, and why.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub invalid: Vec<InvalidCode>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InvalidCode {
    pub index: usize,
    pub reason: String,
}

impl Problem {
    pub fn new(status: StatusCode, kind: &str, title: &str, detail: impl Into<String>) -> Problem {
        Problem {
            kind: format!("{PROBLEM_BASE}{kind}"),
            title: title.into(),
            status: status.as_u16(),
            detail: detail.into(),
            invalid: Vec::new(),
        }
    }

    fn unavailable(e: sqlx::Error) -> Problem {
        tracing::error!(error = %e, "archive database");
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "database-unavailable",
            "Archive database unavailable",
            "the archive's database did not answer; try again",
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut r = (status, Json(&self)).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if status == StatusCode::UNAUTHORIZED {
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"credit-archive\""),
            );
        }
        r
    }
}

type Answer = Result<Response, Problem>;

fn caller<'a>(api: &'a Api, headers: &HeaderMap, role: Role) -> Result<&'a Caller, Problem> {
    let h = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let c = api.tokens.authenticate(h).map_err(|e| {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            match e {
                AuthError::Missing => "missing-token",
                AuthError::Unknown => "unknown-token",
            },
            "Not authenticated",
            e.to_string(),
        )
    })?;
    if !c.has(role) {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "Role missing",
            format!(
                "department {} does not have the archive role {:?} this request needs",
                c.department,
                role.as_str()
            ),
        ));
    }
    Ok(c)
}

/// Checks a subject code: a USCC (GB 32100), a resident ID (GB 11643) or a
/// pre-2015 15-digit registration number, as the normaliser accepts them.
/// Letters are upper-cased (a lower-case check character `x`); nothing else
/// is corrected. The reason never repeats the code.
/// Whether a code [`check_code`] accepted is a resident ID number (a natural
/// person): 18 characters, 17 digits first, and not a valid USCC (the order
/// `check_code` tries them in).
fn is_resident_id(code: &str) -> bool {
    code.len() == 18
        && code.as_bytes()[..17].iter().all(u8::is_ascii_digit)
        && credit_core::ids::check_uscc(code).is_err()
}

pub fn check_code(raw: &str, today: i32) -> Result<String, String> {
    use credit_core::ids;
    let code = raw.trim().to_ascii_uppercase();
    match code.len() {
        18 => {
            let uscc = ids::check_uscc(&code);
            if uscc.is_ok() {
                return Ok(code);
            }
            if code.as_bytes()[..17].iter().all(u8::is_ascii_digit) {
                return ids::check_resident_id(&code, today)
                    .map(|()| code.clone())
                    .map_err(|e| format!("not a valid resident ID number (GB 11643): {e}"));
            }
            Err(format!(
                "not a valid USCC (GB 32100): {}",
                uscc.unwrap_err()
            ))
        }
        15 => ids::check_registration_number(&code)
            .map(|()| code.clone())
            .map_err(|e| format!("not a valid 15-digit registration number: {e}")),
        n => Err(format!(
            "a subject code is an 18-character USCC or resident ID number (or a 15-digit registration number); this one has {n} characters"
        )),
    }
}

fn as_of(q: &HashMap<String, String>) -> Result<AsOf, Problem> {
    match q.get("as_of") {
        None => Ok(AsOf::instant(now_ms())),
        Some(s) => AsOf::parse(s)
            .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "bad-as-of", "Bad as_of", e)),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn code_of(path: &str) -> Result<String, Problem> {
    check_code(path, credit_runtime::today())
        .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "bad-code", "Bad subject code", e))
}

/// Who the subject is, from its latest record or notice.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SubjectHead {
    pub code: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
}

/// The moment an answer is about.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AsOfView {
    /// Facts learned at or before this instant (RFC 3339, UTC).
    pub known_at: String,
    /// The day validity was judged on (the city's calendar).
    pub day: String,
}

impl From<AsOf> for AsOfView {
    fn from(a: AsOf) -> Self {
        AsOfView {
            known_at: history::rfc3339(a.known_ms),
            day: credit_core::date::format(a.day),
        }
    }
}

fn head(code: &str, s: &SubjectState) -> SubjectHead {
    let latest = s
        .licences
        .iter()
        .chain(&s.penalties)
        .chain(&s.list_entries)
        .chain(&s.red_lists)
        .chain(&s.grades)
        .chain(&s.commitments)
        .max_by_key(|v| v.record.learned_ms)
        .map(|v| (v.record.subject_type.clone(), v.record.subject_name.clone()));
    let (kind, name) = latest
        .or_else(|| {
            s.notices
                .last()
                .map(|n| (n.notice.subject_type.clone(), n.notice.subject_name.clone()))
        })
        .unwrap_or_default();
    SubjectHead {
        code: code.to_string(),
        kind,
        name,
    }
}

/// Loads, folds, masks and audits one subject's state; with the catalogue
/// versions its notices name.
async fn subject_state(
    api: &Api,
    c: &Caller,
    code: &str,
    at: AsOf,
    action: &str,
) -> Result<(SubjectHead, SubjectState, Arc<history::Catalogues>), Problem> {
    let facts = db::facts(&api.pool, &[code.to_string()], at.known_ms)
        .await
        .map_err(Problem::unavailable)?;
    let cats = catalogues(api, facts.notices.iter().map(|n| n.catalogue_version)).await?;
    let mut s = history::state_with(&facts, at, &cats);
    if s.is_empty() {
        return Err(Problem::new(
            StatusCode::NOT_FOUND,
            "unknown-subject",
            "Unknown subject",
            format!(
                "the archive holds nothing about this subject as of {}",
                history::rfc3339(at.known_ms)
            ),
        ));
    }
    let fields = history::personal_fields(&s);
    let mut h = head(code, &s);
    let unmasked = c.has(Role::PersonalData);
    if !fields.is_empty() {
        db::audit(
            &api.pool,
            &[db::Audit {
                department: c.department.clone(),
                action: action.into(),
                subject_key: code.to_string(),
                fields: fields.iter().map(|f| f.to_string()).collect(),
                masked: !unmasked,
            }],
        )
        .await
        .map_err(Problem::unavailable)?;
    }
    if !unmasked {
        history::mask(&mut s);
        if h.kind == "NATURAL_PERSON" {
            h.code = credit_core::ids::mask_id(&h.code);
            h.name = credit_core::ids::mask_person_name(&h.name);
        }
    }
    Ok((h, s, cats))
}

/// `GET /v1/subjects/{code}` (`S`: the subject's state) and
/// `/measures` (`S`: its measures in force only). Serialised once, straight
/// from the state.
#[derive(Debug, Serialize, Deserialize)]
pub struct SubjectAnswer<S> {
    pub subject: SubjectHead,
    pub as_of: AsOfView,
    #[serde(flatten)]
    pub state: S,
}

/// The `/measures` answer's state.
#[derive(Debug, Serialize)]
struct InForce {
    measures_in_force: BTreeMap<String, Vec<history::MeasureInForce>>,
}

async fn subject(
    State(api): State<Arc<Api>>,
    Path(code): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Answer {
    let c = caller(&api, &headers, Role::Read)?;
    let code = code_of(&code)?;
    let at = as_of(&q)?;
    let (h, mut s, cats) = subject_state(&api, c, &code, at, "subject").await?;
    fill_catalogue(&mut s.measures_in_force, &cats);
    Ok(Json(SubjectAnswer {
        subject: h,
        as_of: at.into(),
        state: s,
    })
    .into_response())
}

/// `GET /v1/subjects/{code}/measures`.
async fn measures(
    State(api): State<Arc<Api>>,
    Path(code): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Answer {
    let c = caller(&api, &headers, Role::Read)?;
    let code = code_of(&code)?;
    let at = as_of(&q)?;
    let (h, s, cats) = subject_state(&api, c, &code, at, "measures").await?;
    let mut state = InForce {
        measures_in_force: s.measures_in_force,
    };
    fill_catalogue(&mut state.measures_in_force, &cats);
    Ok(Json(SubjectAnswer {
        subject: h,
        as_of: at.into(),
        state,
    })
    .into_response())
}

/// Adds each explanation's catalogue version details (effective date,
/// description) where the archive holds that version.
fn fill_catalogue(
    by_dept: &mut BTreeMap<String, Vec<history::MeasureInForce>>,
    cats: &history::Catalogues,
) {
    for e in by_dept.values_mut().flatten().map(|m| &mut m.explanation) {
        if let Some(c) = cats.get(&e.catalogue_version) {
            e.catalogue_effective = Some(c.effective.clone());
            e.catalogue_description = Some(c.description.clone());
        }
    }
}

/// `POST /v1/precheck` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrecheckRequest {
    pub codes: Vec<String>,
    #[serde(default)]
    pub measure: Option<String>,
    #[serde(default)]
    pub department: Option<String>,
    #[serde(default)]
    pub as_of: Option<String>,
}

/// One restricted subject.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Restricted {
    /// Its position in the request's `codes`.
    pub index: usize,
    /// The code (a natural person's masked without `personal_data`).
    pub code: String,
    pub measures: Vec<RestrictingMeasure>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RestrictingMeasure {
    pub measure_id: String,
    pub implementing_department: String,
    pub notice_id: String,
    pub record_id: String,
}

/// `POST /v1/precheck` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PrecheckAnswer {
    pub as_of: AsOfView,
    pub measure: Option<String>,
    pub department: Option<String>,
    pub checked: usize,
    pub restricted: Vec<Restricted>,
}

/// The parsed catalogue versions, read from the database on first use and
/// whenever one of `want` is not held (a version not archived yet, or
/// unparseable, stays missing; the shipped one stands in for it).
async fn catalogues(
    api: &Api,
    want: impl IntoIterator<Item = i32>,
) -> Result<Arc<history::Catalogues>, Problem> {
    let (loaded, held) = api
        .catalogues
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    if loaded && want.into_iter().all(|v| held.contains_key(&v)) {
        return Ok(held);
    }
    let bodies: Vec<(i32, String)> = sqlx::query_as("SELECT version, body FROM catalogue_versions")
        .fetch_all(&api.pool)
        .await
        .map_err(Problem::unavailable)?;
    let mut map = (*held).clone();
    for (v, body) in bodies {
        if let std::collections::btree_map::Entry::Vacant(e) = map.entry(v)
            && let Ok(c) = credit_measures::Catalogue::parse(&body)
        {
            e.insert(Arc::new(c));
        }
    }
    let map = Arc::new(map);
    *api.catalogues.lock().unwrap_or_else(|e| e.into_inner()) = (true, map.clone());
    Ok(map)
}

/// Whether `id` is a measure of the shipped catalogue or of an archived version.
async fn known_measure(api: &Api, id: &str) -> Result<bool, Problem> {
    let has = |c: &credit_measures::Catalogue| c.measures.iter().any(|m| &*m.id == id);
    if history::SHIPPED.as_ref().is_some_and(has) {
        return Ok(true);
    }
    Ok(catalogues(api, None).await?.values().any(|c| has(c)))
}

async fn precheck(
    State(api): State<Arc<Api>>,
    headers: HeaderMap,
    body: Result<Json<PrecheckRequest>, JsonRejection>,
) -> Answer {
    let c = caller(&api, &headers, Role::Read)?;
    let Json(req) = body.map_err(|e| {
        let status = e.status();
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            Problem::new(status, "batch-too-large", "Batch too large", e.body_text())
        } else {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "malformed-batch",
                "Malformed pre-check",
                format!(
                    "expected {{\"codes\": [...], \"measure\": id | \"department\": id, \"as_of\"?}}: {}",
                    e.body_text()
                ),
            )
        }
    })?;
    let malformed = |detail: String| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "malformed-batch",
            "Malformed pre-check",
            detail,
        )
    };
    if req.codes.len() > api.max_precheck {
        return Err(Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch-too-large",
            "Batch too large",
            format!(
                "{} codes; one pre-check takes at most {}",
                req.codes.len(),
                api.max_precheck
            ),
        ));
    }
    if req.codes.is_empty() {
        return Err(malformed("codes is empty".into()));
    }
    match (&req.measure, &req.department) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(malformed(
                "give exactly one of measure (a catalogue measure id) and department (a catalogue department id)".into(),
            ));
        }
        (Some(m), None) if !known_measure(&api, m).await? => {
            return Err(malformed(format!(
                "measure {m:?} is in no catalogue version"
            )));
        }
        (None, Some(d)) if credit_core::catalogue::department(d).is_none() => {
            return Err(malformed(format!(
                "department {d:?} is not a catalogue department"
            )));
        }
        _ => {}
    }
    let at = match &req.as_of {
        None => AsOf::instant(now_ms()),
        Some(s) => AsOf::parse(s)
            .map_err(|e| Problem::new(StatusCode::BAD_REQUEST, "bad-as-of", "Bad as_of", e))?,
    };
    let today = credit_runtime::today();
    let mut codes = Vec::with_capacity(req.codes.len());
    let mut invalid = Vec::new();
    for (index, raw) in req.codes.iter().enumerate() {
        match check_code(raw, today) {
            Ok(c) => codes.push(c),
            Err(reason) => invalid.push(InvalidCode { index, reason }),
        }
    }
    if !invalid.is_empty() {
        let mut p = Problem::new(
            StatusCode::BAD_REQUEST,
            "bad-code",
            "Bad subject codes",
            format!(
                "{} of {} codes are not valid subject codes (see invalid)",
                invalid.len(),
                req.codes.len()
            ),
        );
        invalid.truncate(100);
        p.invalid = invalid;
        return Err(p);
    }
    let mut unique: Vec<String> = codes.clone();
    unique.sort();
    unique.dedup();
    // Narrow first (index only), then fold the full facts of the candidates.
    let candidates = db::punished(
        &api.pool,
        &unique,
        at.known_ms,
        req.measure.as_deref(),
        req.department.as_deref(),
    )
    .await
    .map_err(Problem::unavailable)?;
    let facts = if candidates.is_empty() {
        history::Facts::default()
    } else {
        db::duty_facts(
            &api.pool,
            &candidates,
            at.known_ms,
            req.measure.as_deref(),
            req.department.as_deref(),
        )
        .await
        .map_err(Problem::unavailable)?
    };
    let cats = catalogues(&api, facts.notices.iter().map(|n| n.catalogue_version)).await?;
    // One subject's facts each.
    let mut per: BTreeMap<&str, history::Facts> = BTreeMap::new();
    let record_subject: HashMap<&str, &str> = facts
        .records
        .iter()
        .map(|r| (r.record_id.as_str(), r.subject_key.as_str()))
        .chain(
            facts
                .notices
                .iter()
                .map(|n| (n.record_id.as_str(), n.subject_key.as_str())),
        )
        .collect();
    let notice_subject: HashMap<&str, &str> = facts
        .notices
        .iter()
        .map(|n| (n.notice_id.as_str(), n.subject_key.as_str()))
        .collect();
    for r in &facts.records {
        per.entry(&r.subject_key)
            .or_default()
            .records
            .push(r.clone());
    }
    for n in &facts.notices {
        per.entry(&n.subject_key)
            .or_default()
            .notices
            .push(n.clone());
    }
    for f in &facts.feedback {
        if let Some(s) = notice_subject.get(f.notice_id.as_str()) {
            per.entry(s).or_default().feedback.push(f.clone());
        }
    }
    for e in &facts.ends {
        if let Some(s) = record_subject.get(e.record_id.as_str()) {
            per.entry(s).or_default().ends.push(e.clone());
        }
    }
    let mut restricted_by_code: HashMap<&str, (bool, Vec<RestrictingMeasure>)> = HashMap::new();
    for (code, f) in &per {
        let s = history::state_with(f, at, &cats);
        let ms: Vec<RestrictingMeasure> = s
            .restricted(req.measure.as_deref(), req.department.as_deref())
            .into_iter()
            .map(|m| RestrictingMeasure {
                measure_id: m.measure_id.clone(),
                implementing_department: m.implementing_department.clone(),
                notice_id: m.explanation.notice_id.clone(),
                record_id: m.explanation.record_id.clone(),
            })
            .collect();
        if !ms.is_empty() {
            let person = f
                .records
                .iter()
                .map(|r| &r.subject_type)
                .chain(f.notices.iter().map(|n| &n.subject_type))
                .any(|t| t == "NATURAL_PERSON");
            restricted_by_code.insert(code, (person, ms));
        }
    }
    let unmasked = c.has(Role::PersonalData);
    // A natural person: a resident ID asked about, or a subject its facts
    // say is one.
    let person =
        |code: &str| is_resident_id(code) || restricted_by_code.get(code).is_some_and(|(p, _)| *p);
    // Every natural person asked about is a read of personal data, restricted
    // or not (the answer says which): one audit row each.
    let audit: Vec<db::Audit> = unique
        .iter()
        .filter(|code| person(code))
        .map(|code| db::Audit {
            department: c.department.clone(),
            action: "precheck".into(),
            subject_key: code.clone(),
            fields: vec!["subject_key".into(), "restriction".into()],
            masked: !unmasked,
        })
        .collect();
    let mut restricted = Vec::new();
    for (index, code) in codes.iter().enumerate() {
        if let Some((_, ms)) = restricted_by_code.get(code.as_str()) {
            restricted.push(Restricted {
                index,
                code: if person(code) && !unmasked {
                    credit_core::ids::mask_id(code)
                } else {
                    code.clone()
                },
                measures: ms.clone(),
            });
        }
    }
    db::audit(&api.pool, &audit)
        .await
        .map_err(Problem::unavailable)?;
    Ok(Json(PrecheckAnswer {
        as_of: at.into(),
        measure: req.measure,
        department: req.department,
        checked: codes.len(),
        restricted,
    })
    .into_response())
}

/// `GET /v1/audit` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditAnswer {
    pub rows: Vec<db::AuditRow>,
}

async fn audit(
    State(api): State<Arc<Api>>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Answer {
    caller(&api, &headers, Role::Audit)?;
    let subject = match q.get("subject") {
        Some(s) => Some(code_of(s)?),
        None => None,
    };
    let limit = match q.get("limit") {
        None => api.audit_limit,
        Some(l) => l
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=api.audit_limit).contains(n))
            .ok_or_else(|| {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "bad-limit",
                    "Bad limit",
                    format!("limit is a number from 1 to {}", api.audit_limit),
                )
            })?,
    };
    let rows = db::audit_rows(&api.pool, subject.as_deref(), limit)
        .await
        .map_err(Problem::unavailable)?;
    Ok(Json(AuditAnswer { rows }).into_response())
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn not_found() -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "no-such-route",
        "No such route",
        "see GET /openapi.json for the archive's routes",
    )
}

/// Every route, as (method, path template) — the OpenAPI test checks each
/// is documented.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", archive_api::SUBJECT),
    ("get", archive_api::MEASURES),
    ("post", archive_api::PRECHECK),
    ("get", archive_api::AUDIT),
    ("get", archive_api::OPENAPI),
];

/// The API's routes (the ops routes are merged by the caller).
/// Middleware timing every API request into
/// `credit_bus_archive_request_duration_seconds{route,outcome}`: the route is
/// the matched template (`/v1/subjects/{code}`), never a code. Applied with
/// `route_layer(from_fn_with_state(histogram, time_request))`.
pub async fn time_request(
    State(h): State<opentelemetry::metrics::Histogram<f64>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use credit_runtime::metrics::label;
    let route = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let started = std::time::Instant::now();
    let resp = next.run(req).await;
    let outcome = match resp.status().as_u16() {
        200..=399 => "ok",
        400..=499 => "client_error",
        _ => "server_error",
    };
    h.record(
        started.elapsed().as_secs_f64(),
        &[
            opentelemetry::KeyValue::new(label::ROUTE, route),
            opentelemetry::KeyValue::new(label::OUTCOME, outcome),
        ],
    );
    resp
}

pub fn router(api: Arc<Api>) -> Router {
    Router::new()
        .route(ROUTES[0].1, get(subject))
        .route(ROUTES[1].1, get(measures))
        .route(ROUTES[2].1, post(precheck))
        .route(ROUTES[3].1, get(audit))
        .route(ROUTES[4].1, get(openapi))
        .fallback(not_found)
        .with_state(api)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_in_the_openapi_document() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        for (method, path) in ROUTES {
            assert!(
                doc["paths"][path][method].is_object(),
                "{method} {path} is not in openapi.json"
            );
        }
        let documented: usize = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|p| p.as_object().unwrap().len())
            .sum();
        assert_eq!(
            documented,
            ROUTES.len(),
            "openapi.json documents a route the API does not serve"
        );
    }

    #[test]
    fn codes_are_checked_without_being_repeated() {
        let today = credit_runtime::today();
        let uscc = credit_core::ids::complete_uscc("91440101MA5CYUF2").unwrap();
        assert_eq!(check_code(&uscc.to_lowercase(), today).unwrap(), uscc);
        let rid = credit_core::ids::complete_resident_id("44010619900101123").unwrap();
        assert_eq!(check_code(&format!(" {rid} "), today).unwrap(), rid);
        let mut wrong = rid.clone();
        wrong.replace_range(17.., if rid.ends_with('0') { "1" } else { "0" });
        let e = check_code(&wrong, today).unwrap_err();
        assert!(
            e.contains("resident ID") && !e.contains(&wrong[..17]),
            "{e}"
        );
        let mut bad = uscc.clone();
        bad.replace_range(17.., if uscc.ends_with('0') { "1" } else { "0" });
        let e = check_code(&bad, today).unwrap_err();
        assert!(e.contains("USCC") && !e.contains(&bad[..10]), "{e}");
        assert!(
            check_code("123", today)
                .unwrap_err()
                .contains("3 characters")
        );
    }
}
