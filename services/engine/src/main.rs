//! `credit-engine`: reads config, starts telemetry, runs (see `credit_runtime::service`).

use std::path::PathBuf;

use clap::Parser;
use credit_core::access::Role;
use credit_core::topics::SCHEMAS;
use credit_engine::Config;

/// mimalloc: the engine allocates a few small strings per notice, and glibc's
/// malloc spent a third of the CPU per notice on them (see `docs/engine.md`).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    credit_runtime::service::main(
        "credit-engine",
        Config::load(args.config.as_deref()),
        |c: &Config| &c.common.telemetry,
        |c: &Config| {
            (
                &c.common.kafka,
                credit_runtime::access::topics_of(&c.common.kafka, SCHEMAS, Role::Engine),
            )
        },
        true,
        |s| async move { credit_engine::run(s.config, s.telemetry, s.ready, s.shutdown).await },
    )
    .await
}
