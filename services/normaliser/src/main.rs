//! `credit-normaliser --department <id>`: reads config, starts telemetry, runs.

use std::path::PathBuf;

use clap::Parser;
use credit_normaliser::Config;
use credit_runtime::{ops, shutdown, telemetry};

#[derive(Parser)]
#[command(about = "Normalise one department's inbound records into credit.records")]
struct Args {
    /// TOML config file layered over the embedded defaults.
    #[arg(long, env = "CREDIT_BUS_CONFIG")]
    config: Option<PathBuf>,
    /// Department id; overrides `normaliser.department`.
    #[arg(long)]
    department: Option<String>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let config = match Config::load(args.config.as_deref(), args.department.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    let tel = match telemetry::start(&config.common.telemetry, "credit-normaliser") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("telemetry: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let shutdown = shutdown::on_signals();
    let ready = ops::Readiness::default();
    let ops_router = ops::router(tel.clone(), ready.clone());
    match ops::serve(
        &config.common.telemetry.ops_listen,
        ops_router,
        shutdown.clone(),
    )
    .await
    {
        Ok((addr, _)) => tracing::info!(%addr, "ops endpoints listening"),
        Err(e) => {
            tracing::error!(error = %e, "cannot bind ops endpoint");
            return std::process::ExitCode::FAILURE;
        }
    }
    match credit_normaliser::run(config, tel, ready, shutdown).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, retriable = e.is_retriable(), "normaliser stopped");
            std::process::ExitCode::FAILURE
        }
    }
}
