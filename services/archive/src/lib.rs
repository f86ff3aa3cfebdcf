//! The credit archive: what is on a subject's record, which measures apply
//! to it and why, as of now or any earlier moment.
//!
//! `credit.records`, `credit.<d>.notices`, `credit.<d>.feedback`,
//! `credit.engine.commands`, `credit.catalogue`
//!     ─▶ [`ingest`] ─▶ PostgreSQL (facts keyed by source position) ─▶ [`api`]
//!
//! * [`history`]: the state as of a moment, from stored facts (pure).
//! * [`decode`]: a message to a fact (pure, given its writer schema).
//! * [`db`]: migrations, batched idempotent writes, reads, the audit log.
//! * [`ingest`]: the Kafka side, replay-safe.
//! * [`auth`]: departments' bearer tokens and roles.
//! * [`api`]: the HTTP API, problem details, masking and audit.
//!
//! Design and operation: `docs/archive.md`.

pub mod api;
pub mod auth;
pub mod config;
pub mod db;
pub mod decode;
pub mod history;
pub mod ingest;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use credit_runtime::ops::{self, Readiness};
use credit_runtime::telemetry::Telemetry;
use tokio_util::sync::CancellationToken;

pub use config::{ArchiveConfig, Config};

/// Connects to the database (migrating it), follows the topics and serves
/// the API and the ops endpoints on `telemetry.ops_listen` until `shutdown`
/// (`bound` receives the address once it listens).
pub async fn run(
    config: Config,
    tel: Telemetry,
    shutdown: CancellationToken,
    bound: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> anyhow::Result<()> {
    let a = &config.archive;
    let tokens = auth::Tokens::load(&a.departments)
        .map_err(|p| anyhow::anyhow!("archive tokens: {}", p.join("; ")))?;
    let pool = db::connect(&a.database_url, a.pool_size).await?;
    let ready = Readiness::default();
    let api = Arc::new(api::Api::new(
        pool.clone(),
        tokens,
        a.max_precheck,
        a.audit_limit,
    ));
    let requests = credit_runtime::metrics::MetricName::ArchiveRequestDuration.seconds_histogram(
        &tel.meter(),
        "Time to answer one archive API request, by route and outcome",
    );
    let app = api::router(api)
        .route_layer(axum::middleware::from_fn_with_state(
            requests,
            api::time_request,
        ))
        .merge(ops::router(tel.clone(), ready.clone()));
    let (addr, server) =
        ops::serve(&config.common.telemetry.ops_listen, app, shutdown.clone()).await?;
    tracing::info!(%addr, "archive API and ops endpoints listening");
    if let Some(tx) = bound {
        let _ = tx.send(addr);
    }
    let result = ingest::run(
        config.common.kafka.clone(),
        config.common.registry.clone(),
        pool,
        ingest::Settings {
            batch_size: a.batch_size,
            batch_wait: Duration::from_millis(a.batch_wait_ms),
        },
        ready,
        &tel,
        shutdown.clone(),
    )
    .await;
    shutdown.cancel();
    let _ = server.await;
    result
}

pub use credit_runtime::service::Running;

/// Starts it on a task and returns once its endpoints listen (within 60 s).
pub async fn spawn(config: Config, tel: Telemetry) -> anyhow::Result<Running> {
    credit_runtime::service::spawn("credit-archive", move |stop, bound| {
        run(config, tel, stop, Some(bound))
    })
    .await
}
