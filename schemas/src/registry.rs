//! A client for the Confluent schema-registry REST API. It speaks only what every
//! compatible registry (Confluent, Karapace, Apicurio's ccompat API, ours) serves,
//! so `registry.url` can point at any of them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use reqwest::Url;
use serde::Deserialize;

pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry URL {0:?} is not a valid base URL")]
    Url(String),
    #[error("registry unreachable: {0}")]
    Transport(#[from] reqwest::Error),
    #[error("registry answered {status} (error_code {error_code}): {message}")]
    Api {
        status: u16,
        error_code: i64,
        message: String,
    },
}

impl RegistryError {
    /// Whether trying again later may succeed (unreachable, timeout, 5xx,
    /// 408, 429), as opposed to a request the registry will always refuse.
    /// The services' error policy classifies these errors in
    /// `credit_runtime::errors::registry` (retry, dead-letter an unknown
    /// schema id, or stop); this agrees with its "retry", which a test there
    /// checks, for callers without the runtime (the CLI's retries).
    pub fn is_retriable(&self) -> bool {
        match self {
            RegistryError::Url(_) => false,
            // A 200 whose body is not the registry's JSON is not a registry.
            RegistryError::Transport(e) => !(e.is_decode() || e.is_builder()),
            RegistryError::Api { status, .. } => matches!(*status, 408 | 429 | 500..=599),
        }
    }

    /// The registry does not know this schema id (404, error code 40403):
    /// the record that names it is at fault, not the registry.
    pub fn is_unknown_schema(&self) -> bool {
        matches!(
            self,
            RegistryError::Api {
                status: 404,
                error_code: 40403,
                ..
            }
        )
    }
}

#[derive(Deserialize)]
struct ApiError {
    #[serde(default)]
    error_code: i64,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct IdResponse {
    id: u32,
}

#[derive(Deserialize)]
struct SchemaResponse {
    schema: String,
}

/// A registry client with an id → schema cache (ids are immutable).
pub struct RegistryClient {
    base: Url,
    http: reqwest::Client,
    by_id: Mutex<HashMap<u32, String>>,
}

impl RegistryClient {
    pub fn new(url: &str) -> Result<Self, RegistryError> {
        let mut base = Url::parse(url).map_err(|_| RegistryError::Url(url.to_string()))?;
        if base.cannot_be_a_base() {
            return Err(RegistryError::Url(url.to_string()));
        }
        if !base.path().ends_with('/') {
            let p = format!("{}/", base.path());
            base.set_path(&p);
        }
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()?;
        Ok(RegistryClient {
            base,
            http,
            by_id: Mutex::new(HashMap::new()),
        })
    }

    fn url(&self, segments: &[&str]) -> Url {
        let mut u = self.base.clone();
        {
            let mut p = u.path_segments_mut().expect("checked in new()");
            p.pop_if_empty();
            p.extend(segments);
        }
        u
    }

    async fn send<T: for<'de> Deserialize<'de>>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, RegistryError> {
        let resp = req
            .header(reqwest::header::ACCEPT, CONTENT_TYPE)
            .send()
            .await?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp.json().await?);
        }
        let body = resp.text().await.unwrap_or_default();
        let err: ApiError = serde_json::from_str(&body).unwrap_or(ApiError {
            error_code: status.as_u16() as i64,
            message: body,
        });
        Err(RegistryError::Api {
            status: status.as_u16(),
            error_code: err.error_code,
            message: err.message,
        })
    }

    /// Registers `schema` (Avro JSON) under `subject`, returning its global id.
    /// Registering an identical schema again returns the same id.
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let req = self
            .http
            .post(self.url(&["subjects", subject, "versions"]))
            .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
            .body(serde_json::json!({ "schema": schema }).to_string());
        let r: IdResponse = self.send(req).await?;
        self.by_id.lock().unwrap().insert(r.id, schema.to_string());
        Ok(r.id)
    }

    /// The schema with a global id, from the cache after the first fetch.
    pub async fn schema_by_id(&self, id: u32) -> Result<String, RegistryError> {
        if let Some(s) = self.by_id.lock().unwrap().get(&id) {
            return Ok(s.clone());
        }
        let r: SchemaResponse = self
            .send(
                self.http
                    .get(self.url(&["schemas", "ids", &id.to_string()])),
            )
            .await?;
        self.by_id.lock().unwrap().insert(id, r.schema.clone());
        Ok(r.schema)
    }

    /// Registers with retries while the registry is starting or briefly away.
    pub async fn register_with_retry(
        &self,
        subject: &str,
        schema: &str,
        attempts: u32,
    ) -> Result<u32, RegistryError> {
        let mut delay = Duration::from_millis(100);
        let mut n = 0;
        loop {
            match self.register(subject, schema).await {
                Err(e) if e.is_retriable() && n + 1 < attempts => {
                    n += 1;
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
                other => return other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_percent_encoded_path_segments() {
        let c = RegistryClient::new("http://127.0.0.1:8081/base").unwrap();
        assert_eq!(
            c.url(&["subjects", "a b/c", "versions"]).as_str(),
            "http://127.0.0.1:8081/base/subjects/a%20b%2Fc/versions"
        );
        let c = RegistryClient::new("http://127.0.0.1:8081").unwrap();
        assert_eq!(
            c.url(&["schemas", "ids", "7"]).as_str(),
            "http://127.0.0.1:8081/schemas/ids/7"
        );
        assert!(RegistryClient::new("not a url").is_err());
    }
}
