//! The live dashboard: scrapes every target's `/metrics` once per interval,
//! keeps the last rounds, and serves
//!
//! * `/` — one self-contained page (inline CSS, vanilla JS, SVG sparklines; no
//!   network beyond this server) polling `/api/summary` every second;
//! * `/api/summary` — the [`summary::Summary`] of the kept rounds, as JSON;
//! * `POST /api/subject` — the subject view: one subject's record and measures
//!   in force from the archive's API ([`subject`]), with `dashboard.archive_url`;
//! * `/metrics`, `/healthz`, `/readyz` like every service (ready after the
//!   first round).
//!
//! * [`summary`]: the pure part, from scraped pages to the summary.
//! * [`config`]: the `[dashboard]` section.

pub mod config;
pub mod samples;
pub mod subject;
pub mod summary;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::{get, post};
use credit_runtime::ops::{self, Readiness};
use credit_runtime::shutdown::Shutdown;
use credit_runtime::telemetry::Telemetry;

pub use config::{Config, DashboardConfig, Target};
use summary::{Round, TargetScrape};

/// The page, served as is.
pub const PAGE: &str = include_str!("page.html");

/// Rates are averaged over this long (or the last two rounds if longer apart).
const RATE_WINDOW_MS: u64 = 5_000;

#[derive(Clone)]
struct AppState {
    /// The latest summary, serialised once per round.
    summary: Arc<Mutex<Arc<String>>>,
    /// The archive, for the subject view.
    archive: Option<Arc<subject::ArchiveLink>>,
}

/// The dashboard's routes over the latest summary (and the ops routes).
fn router(state: AppState, tel: Telemetry, ready: Readiness) -> Router {
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/api/summary", get(api_summary))
        .route("/api/subject", post(api_subject))
        .with_state(state)
        .merge(ops::router(tel, ready))
}

async fn api_summary(State(s): State<AppState>) -> impl IntoResponse {
    let body = s.summary.lock().unwrap_or_else(|e| e.into_inner()).clone();
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body.as_str().to_owned(),
    )
}

async fn api_subject(
    State(s): State<AppState>,
    q: Result<Json<subject::Lookup>, JsonRejection>,
) -> axum::response::Response {
    let Some(archive) = s.archive else {
        return subject::not_configured();
    };
    match q {
        Ok(Json(q)) => archive.lookup(&q).await,
        Err(_) => subject::problem(
            axum::http::StatusCode::BAD_REQUEST,
            "malformed-request",
            "Malformed request",
            "send {\"code\": \"...\", \"as_of\": \"...\"} as JSON",
        ),
    }
}

/// Scrapes every target once, concurrently; a target that does not answer
/// within `timeout` (or not with 200) is down.
pub async fn scrape(
    http: &reqwest::Client,
    targets: &[Target],
    brokers: &[String],
    timeout: Duration,
) -> Round {
    let at_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let scrapes = targets.iter().map(|t| async move {
        let r = http
            .get(t.metrics_url())
            .timeout(timeout)
            .send()
            .await
            .and_then(|r| r.error_for_status());
        match r {
            Ok(r) => match r.text().await {
                Ok(text) => TargetScrape::up(&t.name, &t.url, &text),
                Err(e) => TargetScrape::down(&t.name, &t.url, short(&e)),
            },
            Err(e) => TargetScrape::down(&t.name, &t.url, short(&e)),
        }
    });
    let probes = brokers.iter().map(|b| probe(b, timeout));
    let (targets, brokers) = futures::future::join(
        futures::future::join_all(scrapes),
        futures::future::join_all(probes),
    )
    .await;
    Round {
        at_ms,
        targets,
        brokers,
    }
}

/// Connects to a Kafka listener and closes again.
async fn probe(address: &str, timeout: Duration) -> summary::BrokerProbe {
    let started = std::time::Instant::now();
    let r = tokio::time::timeout(timeout, tokio::net::TcpStream::connect(address)).await;
    let (up, error) = match r {
        Ok(Ok(_)) => (true, None),
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            (false, Some("connection refused".to_string()))
        }
        Ok(Err(e)) => (false, Some(e.kind().to_string())),
        Err(_) => (false, Some("timed out".to_string())),
    };
    summary::BrokerProbe {
        address: address.to_string(),
        up,
        connect_ms: up.then(|| started.elapsed().as_secs_f64() * 1000.0),
        error,
    }
}

/// What the page shows about a failed scrape: the kind of failure, not a
/// library's whole error chain.
fn short(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        "not answering".into()
    } else if let Some(s) = e.status() {
        format!("HTTP {}", s.as_u16())
    } else {
        "bad answer".into()
    }
}

/// A running dashboard.
pub struct Running {
    pub addr: SocketAddr,
    shutdown: Shutdown,
    server: tokio::task::JoinHandle<()>,
    scraper: tokio::task::JoinHandle<()>,
    /// Reads dead-letter samples; stops on `shutdown` within 200 ms.
    follower: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops scraping and serving, and waits for both.
    pub async fn stop(self) {
        self.shutdown.cancel();
        let _ = self.server.await;
        let _ = self.scraper.await;
        if let Some(f) = self.follower {
            let _ = f.await;
        }
    }

    /// Runs until `shutdown` (from the caller's signals) fires.
    pub async fn wait(self) {
        let _ = self.server.await;
        let _ = self.scraper.await;
        if let Some(f) = self.follower {
            let _ = f.await;
        }
    }
}

/// Binds `dashboard.listen`, starts scraping, and serves until `shutdown`.
pub async fn spawn(config: Config, tel: Telemetry, shutdown: Shutdown) -> anyhow::Result<Running> {
    let d = config.dashboard;
    let samples = samples::Samples::default();
    let follower = config.kafka.map(|kafka| {
        let (out, stop) = (samples.clone(), shutdown.clone());
        tokio::task::spawn_blocking(move || samples::follow(kafka, out, stop))
    });
    let empty = serde_json::to_string(&summary::summarise(&[], RATE_WINDOW_MS))?;
    let archive = if d.archive_url.is_empty() {
        None
    } else {
        Some(Arc::new(subject::ArchiveLink::new(
            &d.archive_url,
            &d.archive_token_file,
        )?))
    };
    let state = AppState {
        summary: Arc::new(Mutex::new(Arc::new(empty))),
        archive,
    };
    let ready = Readiness::default();
    let app = router(state.clone(), tel, ready.clone());
    let (addr, server) = ops::serve(&d.listen, app, shutdown.clone()).await?;
    let interval = Duration::from_millis(d.scrape_interval_ms);
    let timeout = interval.clamp(Duration::from_millis(200), Duration::from_secs(2));
    let http = reqwest::Client::builder().build()?;
    let stop = shutdown.clone();
    let scraper = tokio::spawn(async move {
        let mut history: VecDeque<Round> = VecDeque::with_capacity(d.history);
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            let round = scrape(&http, &d.targets, &d.brokers, timeout).await;
            if history.len() == d.history {
                history.pop_front();
            }
            history.push_back(round);
            let mut s = summary::summarise(history.make_contiguous(), RATE_WINDOW_MS);
            s.target_per_s = (d.target_rate_per_s > 0.0).then_some(d.target_rate_per_s);
            s.dead_letter_samples = samples
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .values()
                .cloned()
                .collect();
            match serde_json::to_string(&s) {
                Ok(json) => {
                    *state.summary.lock().unwrap_or_else(|e| e.into_inner()) = Arc::new(json)
                }
                Err(e) => tracing::error!(error = %e, "summary not serialisable"),
            }
            ready.set_ready();
        }
    });
    Ok(Running {
        addr,
        shutdown,
        server,
        scraper,
        follower,
    })
}
