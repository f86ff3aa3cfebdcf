//! What every service binary's `main` does, in one place: load the config
//! (every problem printed, exit 2), start logs and metrics, optionally serve
//! the ops endpoints, run until SIGTERM/SIGINT, and exit 1 if the service
//! stopped on an error (logged with its cause).

use std::future::Future;
use std::process::ExitCode;

use crate::config::{ConfigError, TelemetryConfig};
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

/// Runs a service binary. With `serve_ops`, `/metrics`, `/healthz` and
/// `/readyz` are served on `telemetry.ops_listen` before the service starts
/// (services that serve their own HTTP merge the ops routes themselves).
pub async fn main<C, F, Fut, E>(
    name: &'static str,
    config: Result<C, ConfigError>,
    telemetry: fn(&C) -> &TelemetryConfig,
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
