//! `credit-registry`: the schema registry service.

use std::path::PathBuf;

use clap::Parser;
use credit_registry::Config;
use credit_runtime::{shutdown, telemetry};

#[derive(Parser)]
#[command(about = "Confluent-compatible schema registry backed by a compacted Kafka topic")]
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
    let tel = match telemetry::start(&config.common.telemetry, "credit-registry") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("telemetry: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match credit_registry::run(config, tel, shutdown::on_signals(), None).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "registry stopped");
            std::process::ExitCode::FAILURE
        }
    }
}
