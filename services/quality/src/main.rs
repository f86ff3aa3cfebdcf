//! `credit-quality`: reads config, starts telemetry, runs (see `credit_runtime::service`).

use std::path::PathBuf;

use clap::Parser;
use credit_core::access::Role;
use credit_core::topics::SCHEMAS;
use credit_quality::Config;

#[derive(Parser)]
#[command(
    about = "Measure code quality per department: duplicate codes (one code, two names) and wrong codes, against the 0.005 % target"
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
        "credit-quality",
        Config::load(args.config.as_deref()),
        |c: &Config| &c.common.telemetry,
        |c: &Config| {
            (
                &c.common.kafka,
                credit_runtime::access::topics_of(&c.common.kafka, SCHEMAS, Role::Quality),
            )
        },
        false,
        |s| async move { credit_quality::run(s.config, s.telemetry, s.shutdown, None).await },
    )
    .await
}
