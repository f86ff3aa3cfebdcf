//! The subject view: `POST /api/subject` `{"code": "...", "as_of"?: "..."}`
//! looks the subject up in the archive's API (`GET /v1/subjects/{code}`,
//! [`credit_core::archive_api::SUBJECT`]) with the configured department's
//! token and returns the archive's answer as it is: the subject's record, its
//! notices and the measures in force with their explanations (the answer of
//! `/measures` is a part of it, so one look is one read and one audit row).
//!
//! * The token is read once at start and only ever sent to the archive; the
//!   browser never sees it.
//! * The code travels in the request body, never in the dashboard's URL, and
//!   is never logged (a reqwest error's text holds the URL, so only its kind
//!   is). What the department may not see comes back masked by the archive.
//! * Errors are RFC 7807 problem details: the archive's own (bad code,
//!   unknown subject, 401/403 for the dashboard's token, ...) passed on with
//!   their status and `"source": "archive"`; the dashboard's own when the
//!   archive cannot be reached, answers something that is not JSON, or no
//!   archive is configured, with `"source": "dashboard"`.

use std::time::Duration;

use anyhow::Context;
use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use credit_core::archive_api;
use serde::Deserialize;
use serde_json::{Value, json};

/// How long one look may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// The archive as the dashboard reaches it.
pub struct ArchiveLink {
    base: reqwest::Url,
    token: String,
    http: reqwest::Client,
}

/// What the page sends.
#[derive(Debug, Deserialize)]
pub struct Lookup {
    pub code: String,
    #[serde(default)]
    pub as_of: Option<String>,
}

impl ArchiveLink {
    /// Reads the token file (trailing newline ignored).
    pub fn new(url: &str, token_file: &str) -> anyhow::Result<ArchiveLink> {
        let base = reqwest::Url::parse(url).context("dashboard.archive_url")?;
        if base.cannot_be_a_base() {
            anyhow::bail!("dashboard.archive_url cannot be a base URL");
        }
        let token = std::fs::read_to_string(token_file)
            .with_context(|| format!("reading dashboard.archive_token_file {token_file}"))?
            .trim_end_matches(['\n', '\r'])
            .to_string();
        if token.is_empty() {
            anyhow::bail!("dashboard.archive_token_file {token_file} is empty");
        }
        Ok(ArchiveLink {
            base,
            token,
            http: reqwest::Client::builder().timeout(TIMEOUT).build()?,
        })
    }

    /// The archive's URL of `route` for `code` (percent-encoded as a path segment).
    fn url(&self, route: &str, code: &str, as_of: Option<&str>) -> reqwest::Url {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .expect("checked in new")
            .pop_if_empty()
            .extend(archive_api::segments(route, code));
        if let Some(a) = as_of.filter(|a| !a.trim().is_empty()) {
            url.query_pairs_mut().append_pair("as_of", a.trim());
        }
        url
    }

    /// One look at a subject: the archive's answer or a problem.
    pub async fn lookup(&self, q: &Lookup) -> Response {
        let code = q.code.trim();
        if code.is_empty() {
            return problem(
                StatusCode::BAD_REQUEST,
                "bad-code",
                "Bad subject code",
                "type a subject code (USCC, resident ID or registration number)",
            );
        }
        let url = self.url(archive_api::SUBJECT, code, q.as_of.as_deref());
        let resp = match self.http.get(url).bearer_auth(&self.token).send().await {
            Ok(r) => r,
            Err(e) => {
                let why = kind(&e);
                // Never the error itself: its text carries the URL, and so the code.
                tracing::warn!(why, "subject view: archive not reachable");
                return problem(
                    StatusCode::BAD_GATEWAY,
                    "archive-unreachable",
                    "Archive unreachable",
                    &format!("the archive at {} is {why}", self.base_shown()),
                );
            }
        };
        let status = resp.status();
        let body: Option<Value> = resp.json().await.ok();
        match body {
            Some(v) if status.is_success() => {
                let mut r = Json(v).into_response();
                no_store(&mut r);
                r
            }
            Some(mut v) if v.get("type").is_some() && v.get("title").is_some() => {
                v["source"] = json!("archive");
                if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
                    v["hint"] = json!(
                        "the archive refuses the dashboard's token: check dashboard.archive_token_file and that its department has the role read"
                    );
                }
                let mut r = (status, Json(v)).into_response();
                problem_headers(&mut r);
                r
            }
            _ => {
                tracing::warn!(
                    status = status.as_u16(),
                    "subject view: archive answered without problem details"
                );
                problem(
                    StatusCode::BAD_GATEWAY,
                    "bad-archive-answer",
                    "Unexpected answer from the archive",
                    &format!(
                        "the archive at {} answered HTTP {} without a JSON body",
                        self.base_shown(),
                        status.as_u16()
                    ),
                )
            }
        }
    }

    /// The base URL without any credentials it might carry.
    fn base_shown(&self) -> String {
        let mut u = self.base.clone();
        let _ = u.set_username("");
        let _ = u.set_password(None);
        u.to_string()
    }
}

/// The dashboard's own problem (`"source": "dashboard"`).
pub fn problem(status: StatusCode, kind: &str, title: &str, detail: &str) -> Response {
    let body = json!({
        "type": format!("{}{kind}", archive_api::PROBLEM_BASE),
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
        "source": "dashboard",
    });
    let mut r = (status, Json(body)).into_response();
    problem_headers(&mut r);
    r
}

/// No archive configured.
pub fn not_configured() -> Response {
    problem(
        StatusCode::SERVICE_UNAVAILABLE,
        "archive-not-configured",
        "No archive configured",
        "the dashboard has no archive to ask: set dashboard.archive_url and dashboard.archive_token_file",
    )
}

fn problem_headers(r: &mut Response) {
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    no_store(r);
}

/// Answers about a subject are not kept by the browser or a proxy.
fn no_store(r: &mut Response) {
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

/// The kind of failure, never the error's text (it names the URL).
fn kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "not answering in time"
    } else if e.is_connect() {
        "not accepting connections"
    } else {
        "not reachable"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typed_code_stays_one_path_segment() {
        let dir = std::env::temp_dir().join(format!("dash-token-{}", std::process::id()));
        std::fs::write(&dir, "s3cret\n").unwrap();
        let l = ArchiveLink::new("http://u:p@127.0.0.1:9140/", dir.to_str().unwrap()).unwrap();
        assert_eq!(l.token, "s3cret");
        let u = l.url(archive_api::SUBJECT, "91/../x?y", Some(" 2026-12-01 "));
        assert_eq!(u.path(), "/v1/subjects/91%2F..%2Fx%3Fy");
        assert_eq!(u.query(), Some("as_of=2026-12-01"));
        assert_eq!(l.base_shown(), "http://127.0.0.1:9140/");
        std::fs::remove_file(dir).unwrap();
    }
}
