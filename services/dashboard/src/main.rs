//! `credit-dashboard`: the live page over every service's `/metrics`.

use std::path::PathBuf;

use clap::Parser;
use credit_dashboard::Config;
use credit_runtime::{shutdown, telemetry};

#[derive(Parser)]
#[command(about = "Live dashboard of credit-bus, scraped from the services' /metrics")]
struct Args {
    /// TOML config file layered over the embedded defaults.
    #[arg(long, env = "CREDIT_BUS_CONFIG")]
    config: Option<PathBuf>,
    /// Address of the page; overrides `dashboard.listen`.
    #[arg(long)]
    listen: Option<String>,
    /// `name=http://host:port` of a service's ops endpoint; repeat per service.
    /// When given, replaces `dashboard.targets`.
    #[arg(long = "target")]
    targets: Vec<String>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let config = match Config::load(
        args.config.as_deref(),
        args.listen.as_deref(),
        &args.targets,
    ) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return std::process::ExitCode::from(2);
        }
    };
    let tel = match telemetry::start(&config.telemetry, "credit-dashboard") {
        Ok(t) => t,
        Err(e) => {
            eprintln!("telemetry: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let targets = config.dashboard.targets.len();
    match credit_dashboard::spawn(config, tel, shutdown::on_signals()).await {
        Ok(running) => {
            tracing::info!(url = %running.url(), targets, "dashboard listening");
            running.wait().await;
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "dashboard stopped");
            std::process::ExitCode::FAILURE
        }
    }
}
