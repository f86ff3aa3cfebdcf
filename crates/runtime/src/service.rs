//! What every service binary's `main` does, in one place: load the config
//! (every problem printed, exit 2), start logs and metrics, check the Kafka
//! credentials (a user that cannot authenticate or may not see its topics:
//! logged with the user and broker, exit 2, a "stop" that no restart fixes),
//! optionally serve the ops endpoints, run until SIGTERM/SIGINT, and exit 1
//! if the service stopped on an error (logged with its cause).

use std::future::Future;
use std::process::ExitCode;

use crate::config::{ConfigError, KafkaConfig, TelemetryConfig};
use crate::ops::Readiness;
use crate::shutdown::Shutdown;
use crate::telemetry::Telemetry;

/// What a service is handed to run with.
pub struct Started<C> {
    pub config: C,
    pub telemetry: Telemetry,
    /// Cancelled on SIGTERM or SIGINT.
    pub shutdown: Shutdown,
    /// Reported on `/readyz` when [`main`] serves the ops endpoints.
    pub ready: Readiness,
}

/// How long the start-up check waits for a broker to answer at all; a broker
/// that is down is the service's own retry logic's business, not a stop.
const CHECK_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// Runs a service binary. `kafka` names the service's Kafka settings and the
/// topics its access role touches ([`crate::access::topics_of`]), checked
/// before anything else ([`crate::access::check_credentials`]). With
/// `serve_ops`, `/metrics`, `/healthz` and `/readyz` are served on
/// `telemetry.ops_listen` before the service starts (services that serve
/// their own HTTP merge the ops routes themselves).
pub async fn main<C, F, Fut, E>(
    name: &'static str,
    config: Result<C, ConfigError>,
    telemetry: fn(&C) -> &TelemetryConfig,
    kafka: fn(&C) -> (&KafkaConfig, Vec<String>),
    serve_ops: bool,
    run: F,
) -> ExitCode
where
    F: FnOnce(Started<C>) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let config = match config {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let tcfg = telemetry(&config).clone();
    let tel = match crate::telemetry::start(&tcfg, name) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("telemetry: {e}");
            return ExitCode::FAILURE;
        }
    };
    let (kcfg, topics) = kafka(&config);
    let kcfg = kcfg.clone();
    let checked = tokio::task::spawn_blocking(move || {
        crate::access::check_credentials(&kcfg, &topics, CHECK_WAIT)
    })
    .await;
    match checked {
        Ok(Ok(())) => {}
        Ok(Err(e)) if e.is_stop() => {
            tracing::error!(error = %e, service = name, class = "stop", "kafka credentials refused");
            eprintln!("{name}: {e}");
            return ExitCode::from(2);
        }
        Ok(Err(e)) => tracing::warn!(error = %e, "kafka not answering yet; starting anyway"),
        Err(e) => tracing::warn!(error = %e, "kafka credentials check did not run"),
    }
    let shutdown = crate::shutdown::on_signals();
    let ready = Readiness::default();
    if serve_ops {
        let router = crate::ops::router(tel.clone(), ready.clone());
        match crate::ops::serve(&tcfg.ops_listen, router, shutdown.clone()).await {
            Ok((addr, _)) => tracing::info!(%addr, "ops endpoints listening"),
            Err(e) => {
                tracing::error!(error = %e, listen = %tcfg.ops_listen, "cannot bind ops endpoint");
                return ExitCode::FAILURE;
            }
        }
    }
    let started = Started {
        config,
        telemetry: tel,
        shutdown,
        ready,
    };
    match run(started).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), service = name, "service stopped");
            ExitCode::FAILURE
        }
    }
}

/// A service started on a task in this process (tests, benchmarks, embedding).
pub struct Running {
    pub addr: std::net::SocketAddr,
    stop: Shutdown,
    handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops it (as SIGTERM does) and waits for its task to end.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.handle.await?
    }
}

/// Starts `run` on a task and returns once it reports the address it listens
/// on (through the sender it is given), within 60 s; if it stops first, its
/// error.
pub async fn spawn<Fut>(
    name: &'static str,
    run: impl FnOnce(Shutdown, tokio::sync::oneshot::Sender<std::net::SocketAddr>) -> Fut,
) -> anyhow::Result<Running>
where
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let stop = Shutdown::new();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let handle = tokio::spawn(run(stop.clone(), tx));
    match tokio::time::timeout(std::time::Duration::from_secs(60), rx).await {
        Ok(Ok(addr)) => Ok(Running { addr, stop, handle }),
        Ok(Err(_)) => Err(handle
            .await?
            .err()
            .unwrap_or_else(|| anyhow::anyhow!("{name} stopped before listening"))),
        Err(_) => {
            stop.cancel();
            anyhow::bail!("{name} did not listen within 60 s")
        }
    }
}
