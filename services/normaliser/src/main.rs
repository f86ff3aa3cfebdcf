//! `credit-normaliser`: reads config, starts telemetry, runs (see `credit_runtime::service`).

use std::path::PathBuf;

use clap::Parser;
use credit_core::access::Role;
use credit_core::topics::SCHEMAS;
use credit_normaliser::Config;

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
    credit_runtime::service::main(
        "credit-normaliser",
        Config::load(args.config.as_deref(), args.department.as_deref()),
        |c: &Config| &c.common.telemetry,
        |c: &Config| {
            // The department was validated with the config.
            let topics = credit_core::catalogue::department(&c.normaliser.department)
                .map(|d| {
                    credit_runtime::access::topics_of(&c.common.kafka, SCHEMAS, Role::Normaliser(d))
                })
                .unwrap_or_default();
            (&c.common.kafka, topics)
        },
        true,
        |s| async move {
            credit_normaliser::run(s.config, s.telemetry, s.ready, s.shutdown)
                .await
                .map_err(|e| {
                    use credit_runtime::errors::Classify;
                    let c = e.class();
                    format!("{e} (error {}, {} fault)", c.code, c.fault.as_str())
                })
        },
    )
    .await
}
