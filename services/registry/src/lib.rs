//! A Confluent-compatible schema registry.
//!
//! No mature embeddable registry exists in Rust, so the bus ships this one. It
//! serves the REST subset real clients call and, like Confluent's, keeps its
//! state in a compacted Kafka topic: every change is written there and
//! acknowledged before it is applied, and a (re)starting registry replays the
//! topic, so schemas and ids survive restarts.
//!
//! * [`state`]: the pure registry (subjects, versions, ids, compatibility).
//! * [`store`]: the Kafka topic behind it.
//! * [`api`]: the REST API.
//!
//! One writer at a time: run a single replica (Confluent elects a leader for this).

pub mod api;
pub mod config;
pub mod state;
pub mod store;

pub use config::Config;

use credit_runtime::ops::{self, Readiness};
use credit_runtime::telemetry::Telemetry;
use tokio_util::sync::CancellationToken;

/// Replays the store, then serves the API on `registry_service.listen` until
/// `shutdown`. Returns once serving stopped; `bound` receives the address.
pub async fn run(
    config: Config,
    tel: Telemetry,
    shutdown: CancellationToken,
    bound: Option<tokio::sync::oneshot::Sender<std::net::SocketAddr>>,
) -> anyhow::Result<()> {
    let ready = Readiness::default();
    let store = store::Store::open(&config.common.kafka, &config.registry.topic).await?;
    let state = store.replay(config.registry.compatibility()).await?;
    tracing::info!(subjects = state.subjects().len(), "registry state replayed");
    let app = api::router(api::AppState::new(state, store, &tel))
        .merge(ops::router(tel.clone(), ready.clone()));
    let (addr, handle) = ops::serve(&config.registry.listen, app, shutdown).await?;
    ready.set_ready();
    tracing::info!(%addr, "schema registry listening");
    if let Some(tx) = bound {
        let _ = tx.send(addr);
    }
    handle.await?;
    Ok(())
}

pub use credit_runtime::service::Running;

/// Starts it on a task and returns once its endpoints listen (within 60 s).
pub async fn spawn(config: Config, tel: Telemetry) -> anyhow::Result<Running> {
    credit_runtime::service::spawn("credit-registry", move |stop, bound| {
        run(config, tel, stop, Some(bound))
    })
    .await
}
