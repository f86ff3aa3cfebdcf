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

/// A registry started in this process (tests, benchmarks, embedded use).
pub struct Running {
    pub addr: std::net::SocketAddr,
    stop: CancellationToken,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving and waits for the task to end.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.handle.await?
    }
}

/// Starts the registry on a task and waits until it serves (at most 60 s).
pub async fn spawn(config: Config, tel: Telemetry) -> anyhow::Result<Running> {
    let stop = CancellationToken::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let handle = tokio::spawn(run(config, tel, stop.clone(), Some(tx)));
    match tokio::time::timeout(std::time::Duration::from_secs(60), rx).await {
        Ok(Ok(addr)) => Ok(Running { addr, stop, handle }),
        Ok(Err(_)) => Err(handle
            .await?
            .err()
            .unwrap_or_else(|| anyhow::anyhow!("registry stopped before serving"))),
        Err(_) => {
            stop.cancel();
            anyhow::bail!("registry did not start within 60 s")
        }
    }
}
