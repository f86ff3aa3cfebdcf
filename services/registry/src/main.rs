//! `credit-registry`: reads config, starts telemetry, runs (see `credit_runtime::service`).

use std::path::PathBuf;

use clap::Parser;
use credit_core::access::Role;
use credit_registry::Config;

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
    credit_runtime::service::main(
        "credit-registry",
        Config::load(args.config.as_deref()),
        |c: &Config| &c.common.telemetry,
        |c: &Config| {
            (
                &c.common.kafka,
                credit_runtime::access::topics_of(
                    &c.common.kafka,
                    &c.registry.topic,
                    Role::Registry,
                ),
            )
        },
        false,
        |s| async move { credit_registry::run(s.config, s.telemetry, s.shutdown, None).await },
    )
    .await
}
