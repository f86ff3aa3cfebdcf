//! The quality service: duplicate codes (重码) and wrong codes (错码) per
//! department, measured against the seed's target of at most 0.005 %.
//!
//! `credit.records` + `credit.<dept>.dlq` ─▶ quality ─▶ `/report`, metrics
//!                                              │
//!                                              ├─▶ `credit.quality.state` (ledger, compacted)
//!                                              └─▶ `credit.quality.dlq`
//!
//! * [`ledger`]: the comparison of names and the counting, as plain data.
//! * [`pipeline`]: the Kafka side: rebuild the ledger, then follow the inputs.
//!
//! Design, the rule and the rate: `docs/quality.md`.

pub mod config;
pub mod ledger;
pub mod pipeline;

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

pub use config::{Config, QualityConfig};
pub use ledger::{Conflict, Counts, TARGET_RATIO};

/// One department's line of the report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DepartmentReport {
    /// Normalised records counted.
    pub records: u64,
    /// Records whose code another record names differently (重码).
    pub conflicting: u64,
    /// Records rejected for a wrong code (错码: invalid USCC or resident ID,
    /// an impossible USCC segment, a placeholder).
    pub wrong_codes: u64,
    /// conflicting / records.
    pub conflict_ratio: f64,
    /// (conflicting + wrong_codes) / (records + wrong_codes): the seed's 重错码率.
    pub wrong_or_duplicate_ratio: f64,
    /// Whether the wrong-or-duplicate rate is within the target.
    pub meets_target: bool,
}

impl From<Counts> for DepartmentReport {
    fn from(c: Counts) -> Self {
        let r = c.wrong_or_duplicate_ratio();
        DepartmentReport {
            records: c.records,
            conflicting: c.conflicting,
            wrong_codes: c.wrong_codes,
            conflict_ratio: c.conflict_ratio(),
            wrong_or_duplicate_ratio: r,
            meets_target: r <= TARGET_RATIO,
        }
    }
}

/// The body of `GET /report`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// When the report was made, ms since the epoch.
    pub as_of_ms: i64,
    /// The seed's target: at most this share of wrong or duplicate codes.
    pub target_ratio: f64,
    /// Every publishing department, and any other seen in the records.
    pub departments: BTreeMap<String, DepartmentReport>,
    pub total: DepartmentReport,
    /// Codes seen with two or more names.
    pub conflicting_codes: u64,
    /// The first `report_limit` of them by code, each with every record;
    /// natural persons' codes and names masked.
    pub conflicts: Vec<Conflict>,
}

impl pipeline::Shared {
    pub fn report(&self) -> Report {
        let l = self.ledger();
        let mut departments: BTreeMap<String, DepartmentReport> =
            credit_core::catalogue::publishing_departments()
                .map(|d| (d.id.to_string(), Counts::default().into()))
                .collect();
        for (d, c) in l.departments() {
            departments.insert(d.clone(), (*c).into());
        }
        Report {
            as_of_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64),
            target_ratio: TARGET_RATIO,
            departments,
            total: l.total().into(),
            conflicting_codes: l.conflict_count() as u64,
            conflicts: l.conflicts(self.report_limit),
        }
    }
}

#[derive(Clone)]
struct ReportState {
    shared: Arc<pipeline::Shared>,
    ready: Readiness,
}

async fn report(State(s): State<ReportState>) -> impl IntoResponse {
    if !s.ready.is_ready() {
        return (StatusCode::SERVICE_UNAVAILABLE, "rebuilding the ledger").into_response();
    }
    Json(s.shared.report()).into_response()
}

/// Rebuilds the ledger, then follows the inputs until `shutdown`, serving
/// `/report` and the ops endpoints on `telemetry.ops_listen` (`bound`
/// receives the address once it listens).
pub async fn run(
    config: Config,
    tel: Telemetry,
    shutdown: CancellationToken,
    bound: Option<tokio::sync::oneshot::Sender<SocketAddr>>,
) -> anyhow::Result<()> {
    let ready = Readiness::default();
    let shared = Arc::new(pipeline::Shared::new(config.quality.report_limit));
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
    credit_runtime::service::spawn("credit-quality", move |stop, bound| {
        run(config, tel, stop, Some(bound))
    })
    .await
}
