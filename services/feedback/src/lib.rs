//! The feedback tracker: the "feed back" of initiate → respond → feed back.
//!
//! `credit.<dept>.notices` + `credit.<dept>.feedback` ─▶ tracker ─▶ `/report`, metrics
//!                                                         │
//!                                                         └─▶ `credit.feedback.rejected`
//!
//! * [`rules`]: working-day deadlines, the clock, which feedback is accepted.
//! * [`state`]: notices and their feedback as plain data.
//! * [`pipeline`]: the Kafka side: rebuild from the topics, then follow them.
//!
//! Design, reasons and limits: `docs/feedback.md`.

pub mod config;
pub mod pipeline;
pub mod rules;
pub mod state;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json};
use axum::routing::get;
use credit_runtime::ops::{self, Readiness};
use credit_runtime::telemetry::Telemetry;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

pub use config::{Config, FeedbackConfig};
pub use state::Counts;

/// The body of `GET /report`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The tracker's clock when the report was made, ms since the epoch.
    pub as_of_ms: i64,
    /// Feedback waiting for its notice to be read.
    pub pending: u64,
    /// Departments with at least one notice.
    pub departments: BTreeMap<String, Counts>,
}

#[derive(Clone)]
struct ReportState {
    shared: Arc<pipeline::Shared>,
    ready: Readiness,
}

async fn report(State(s): State<ReportState>) -> impl IntoResponse {
    if !s.ready.is_ready() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "rebuilding from the topics",
        )
            .into_response();
    }
    Json(s.shared.report()).into_response()
}

/// Rebuilds the state from the topics, then follows them until `shutdown`,
/// serving `/report` and the ops endpoints on `telemetry.ops_listen`
/// (`bound` receives the address once it listens).
pub async fn run(
    config: Config,
    tel: Telemetry,
    shutdown: CancellationToken,
    bound: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> anyhow::Result<()> {
    let ready = Readiness::default();
    let shared = Arc::new(pipeline::Shared::new(&config.feedback));
    let app = axum::Router::new()
        .route("/report", get(report))
        .with_state(ReportState {
            shared: shared.clone(),
            ready: ready.clone(),
        })
        .merge(ops::router(tel.clone(), ready.clone()));
    let (addr, server) =
        ops::serve(&config.common.telemetry.ops_listen, app, shutdown.clone()).await?;
    tracing::info!(%addr, "ops endpoints and /report listening");
    if let Some(tx) = bound {
        let _ = tx.send(addr);
    }
    let result = pipeline::run(config, tel, shared, ready, shutdown.clone()).await;
    shutdown.cancel();
    let _ = server.await;
    result
}

pub use credit_runtime::service::Running;

/// Starts it on a task and returns once its endpoints listen (within 60 s).
pub async fn spawn(config: Config, tel: Telemetry) -> anyhow::Result<Running> {
    credit_runtime::service::spawn("credit-feedback", move |stop, bound| {
        run(config, tel, stop, Some(bound))
    })
    .await
}
