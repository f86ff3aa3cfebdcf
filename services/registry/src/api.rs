//! The Confluent REST subset: what Confluent's serializers, Kafka Connect,
//! Karapace's clients and `curl` users call.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use credit_runtime::metrics::MetricName;
use opentelemetry::KeyValue;
use opentelemetry::metrics::Counter;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{Mutex, RwLock};

use crate::state::{Against, ApiError, Change, Compatibility, Registration, State as Registry};
use crate::store::Store;

pub const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

pub struct AppState {
    registry: RwLock<Registry>,
    /// Serialises writers: plan, write to the topic, apply, one at a time.
    writer: Mutex<()>,
    store: Store,
    registered: Counter<u64>,
}

impl AppState {
    pub fn new(
        registry: Registry,
        store: Store,
        tel: &credit_runtime::telemetry::Telemetry,
    ) -> Arc<Self> {
        Arc::new(AppState {
            registry: RwLock::new(registry),
            writer: Mutex::new(()),
            store,
            registered: MetricName::SchemasRegistered
                .counter(&tel.meter(), "Schema registrations, by outcome"),
        })
    }
}

type Shared = State<Arc<AppState>>;

struct Reply(StatusCode, Value);

impl IntoResponse for Reply {
    fn into_response(self) -> Response {
        (
            self.0,
            [(header::CONTENT_TYPE, CONTENT_TYPE)],
            self.1.to_string(),
        )
            .into_response()
    }
}

impl From<ApiError> for Reply {
    fn from(e: ApiError) -> Self {
        Reply(
            StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            json!({"error_code": e.error_code, "message": e.message}),
        )
    }
}

fn ok(v: Value) -> Result<Reply, Reply> {
    Ok(Reply(StatusCode::OK, v))
}

fn store_error(e: anyhow::Error) -> Reply {
    tracing::error!(error = format!("{e:#}"), "registry store write failed");
    Reply(
        StatusCode::INTERNAL_SERVER_ERROR,
        json!({"error_code": 50001, "message": format!("Error in the backend data store: {e}")}),
    )
}

#[derive(Deserialize)]
struct SchemaRequest {
    schema: String,
    #[serde(rename = "schemaType")]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<Value>,
}

fn schema_request(body: &[u8]) -> Result<SchemaRequest, Reply> {
    let r: SchemaRequest = serde_json::from_slice(body).map_err(|e| {
        Reply(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"error_code": 422, "message": format!("Unrecognized request body: {e}")}),
        )
    })?;
    if r.schema_type.as_deref().is_some_and(|t| t != "AVRO") {
        return Err(ApiError::invalid_schema("only AVRO schemas are supported").into());
    }
    if !r.references.is_empty() {
        return Err(ApiError::invalid_schema("schema references are not supported").into());
    }
    Ok(r)
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(|| async { Reply(StatusCode::OK, json!({})) }))
        .route("/subjects", get(list_subjects))
        .route("/subjects/{subject}", post(lookup))
        .route(
            "/subjects/{subject}/versions",
            get(list_versions).post(register),
        )
        .route("/subjects/{subject}/versions/{version}", get(get_version))
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(get_version_schema),
        )
        .route("/schemas/ids/{id}", get(get_schema))
        .route("/schemas/ids/{id}/schema", get(get_raw_schema))
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(compatibility),
        )
        .route("/config", get(get_global_config).put(put_global_config))
        .route(
            "/config/{subject}",
            get(get_subject_config).put(put_subject_config),
        )
        .with_state(state)
}

async fn list_subjects(State(s): Shared) -> Result<Reply, Reply> {
    ok(json!(s.registry.read().await.subjects()))
}

async fn list_versions(State(s): Shared, Path(subject): Path<String>) -> Result<Reply, Reply> {
    let r = s.registry.read().await;
    ok(json!(
        r.versions(&subject)?
            .iter()
            .map(|v| v.version)
            .collect::<Vec<_>>()
    ))
}

async fn get_version(
    State(s): Shared,
    Path((subject, version)): Path<(String, String)>,
) -> Result<Reply, Reply> {
    let r = s.registry.read().await;
    let v = r.version(&subject, &version)?;
    ok(json!({"subject": subject, "version": v.version, "id": v.id, "schema": r.schema(v.id)?}))
}

async fn get_version_schema(
    State(s): Shared,
    Path((subject, version)): Path<(String, String)>,
) -> Result<Response, Reply> {
    let r = s.registry.read().await;
    let v = r.version(&subject, &version)?;
    Ok((
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        r.schema(v.id)?.to_string(),
    )
        .into_response())
}

async fn get_schema(State(s): Shared, Path(id): Path<String>) -> Result<Reply, Reply> {
    let id: u32 = id.parse().map_err(|_| ApiError::schema_not_found())?;
    ok(json!({"schema": s.registry.read().await.schema(id)?}))
}

async fn get_raw_schema(State(s): Shared, Path(id): Path<String>) -> Result<Response, Reply> {
    let id: u32 = id.parse().map_err(|_| ApiError::schema_not_found())?;
    let r = s.registry.read().await;
    Ok((
        [(header::CONTENT_TYPE, CONTENT_TYPE)],
        r.schema(id)?.to_string(),
    )
        .into_response())
}

async fn lookup(
    State(s): Shared,
    Path(subject): Path<String>,
    body: Bytes,
) -> Result<Reply, Reply> {
    let req = schema_request(&body)?;
    let r = s.registry.read().await;
    let v = r.lookup(&subject, &req.schema)?;
    ok(json!({"subject": subject, "version": v.version, "id": v.id, "schema": r.schema(v.id)?}))
}

async fn register(
    State(s): Shared,
    Path(subject): Path<String>,
    body: Bytes,
) -> Result<Reply, Reply> {
    let req = schema_request(&body)?;
    let _w = s.writer.lock().await;
    let plan = s.registry.read().await.register(&subject, &req.schema);
    let outcome = match &plan {
        Ok(Registration::Existing { .. }) => "existing",
        Ok(Registration::New(_)) => "new",
        Err(_) => "refused",
    };
    s.registered.add(
        1,
        &[KeyValue::new(
            credit_runtime::metrics::label::OUTCOME,
            outcome,
        )],
    );
    match plan? {
        Registration::Existing { id, .. } => ok(json!({"id": id})),
        Registration::New(change) => {
            s.store.write(&change).await.map_err(store_error)?;
            let Change::Schema { id, version, .. } = change.clone() else {
                unreachable!("register plans schemas")
            };
            s.registry.write().await.apply(change);
            tracing::info!(subject = %subject, version, id, "schema registered");
            ok(json!({"id": id}))
        }
    }
}

async fn compatibility(
    State(s): Shared,
    Path((subject, version)): Path<(String, String)>,
    body: Bytes,
) -> Result<Reply, Reply> {
    let req = schema_request(&body)?;
    let r = s.registry.read().await;
    let against = if version == "latest" {
        Against::Latest
    } else {
        Against::Version(r.version(&subject, &version)?.version)
    };
    let problems = r.check(&subject, &req.schema, against)?;
    ok(json!({"is_compatible": problems.is_empty(), "messages": problems}))
}

#[derive(Deserialize)]
struct ConfigRequest {
    compatibility: String,
}

fn config_request(body: &[u8]) -> Result<Compatibility, Reply> {
    let r: ConfigRequest = serde_json::from_slice(body).map_err(|e| {
        Reply(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"error_code": 422, "message": format!("Unrecognized request body: {e}")}),
        )
    })?;
    Compatibility::parse(&r.compatibility)
        .ok_or_else(|| ApiError::invalid_compatibility(&r.compatibility).into())
}

async fn get_global_config(State(s): Shared) -> Result<Reply, Reply> {
    ok(json!({"compatibilityLevel": s.registry.read().await.global_compatibility().as_str()}))
}

async fn get_subject_config(State(s): Shared, Path(subject): Path<String>) -> Result<Reply, Reply> {
    let r = s.registry.read().await;
    let c = r
        .subject_compatibility(&subject)
        .ok_or_else(|| ApiError::config_not_found(&subject))?;
    ok(json!({"compatibilityLevel": c.as_str()}))
}

async fn put_config(s: &AppState, subject: Option<String>, body: &[u8]) -> Result<Reply, Reply> {
    let compatibility = config_request(body)?;
    let _w = s.writer.lock().await;
    let change = Change::Config {
        subject,
        compatibility,
    };
    s.store.write(&change).await.map_err(store_error)?;
    s.registry.write().await.apply(change);
    ok(json!({"compatibility": compatibility.as_str()}))
}

async fn put_global_config(State(s): Shared, body: Bytes) -> Result<Reply, Reply> {
    put_config(&s, None, &body).await
}

async fn put_subject_config(
    State(s): Shared,
    Path(subject): Path<String>,
    body: Bytes,
) -> Result<Reply, Reply> {
    put_config(&s, Some(subject), &body).await
}
