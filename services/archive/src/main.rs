//! `credit-archive`: reads config, starts telemetry, runs (see `credit_runtime::service`).

use std::path::PathBuf;

use clap::Parser;
use credit_archive::Config;
use credit_core::access::Role;
use credit_core::topics::SCHEMAS;

#[derive(Parser)]
#[command(
    about = "The credit archive: records, notices, feedback and commands into PostgreSQL, and the query API (subject record, measures in force with explanations, batch pre-check, as-of queries)"
)]
struct Args {
    /// TOML config file layered over the embedded defaults.
    #[arg(long, env = "CREDIT_BUS_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    credit_runtime::service::main(
        "credit-archive",
        Config::load(args.config.as_deref()),
        |c: &Config| &c.common.telemetry,
        |c: &Config| {
            (
                &c.common.kafka,
                credit_runtime::access::topics_of(&c.common.kafka, SCHEMAS, Role::Archive),
            )
        },
        false,
        |s| async move { credit_archive::run(s.config, s.telemetry, s.shutdown, None).await },
    )
    .await
}
