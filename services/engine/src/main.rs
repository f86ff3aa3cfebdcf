//! `credit-engine`: reads config, starts telemetry, runs the engine.

use std::path::PathBuf;

use clap::Parser;
use credit_engine::Config;
use credit_runtime::{ops, shutdown, telemetry};

#[derive(Parser)]
#[command(about = "Fan list entries out into notices to implementing departments, exactly once")]
struct Args {
    /// TOML config file layered over the embedded defaults.
    #[arg(long, env = "CREDIT_BUS_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let config = match Config::load(args.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    let tel = match telemetry::start(&config.common.telemetry, "credit-engine") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("telemetry: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let shutdown = shutdown::on_signals();
    let ready = ops::Readiness::default();
    match ops::serve(
        &config.common.telemetry.ops_listen,
        ops::router(tel.clone(), ready.clone()),
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
    match credit_engine::run(config, tel, ready, shutdown).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "engine stopped");
            std::process::ExitCode::FAILURE
        }
    }
}
