//! `credit-feedback`: reads config, starts telemetry, runs the feedback tracker.

use std::path::PathBuf;

use clap::Parser;
use credit_feedback::Config;
use credit_runtime::{shutdown, telemetry};

#[derive(Parser)]
#[command(
    about = "Track department feedback on notices: open, overdue, done (applied, not applicable, failed)"
)]
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
    let tel = match telemetry::start(&config.common.telemetry, "credit-feedback") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("telemetry: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match credit_feedback::run(config, tel, shutdown::on_signals(), None).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "feedback tracker stopped");
            std::process::ExitCode::FAILURE
        }
    }
}
