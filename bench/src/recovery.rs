//! Recovery: a service (the engine or a normaliser, as its own process) runs
//! under a steady input published at `--rate`; after `--steady-secs` of output
//! either the service is killed with SIGKILL and started again at once (as a
//! supervisor would), or the broker is killed with SIGKILL and restarted on
//! the same log directory (`--kill broker`, commands `--broker-kill` and
//! `--broker-restart`, by default `bench/broker.sh kill|restart DIR`). The
//! bench watches only the output topics' end offsets (every 50 ms) and prints,
//! from the kill:
//!
//! * restarted: the service spawned again, or the broker's restart command
//!   returned (the broker serving requests);
//! * resumed: the first output after the restart;
//! * full rate: the first second after that whose output rate is at least
//!   90 % of the rate before the kill;
//! * caught up: output since the kill is within half a second's output of
//!   what the pre-kill rate would have produced by then (the outage's backlog
//!   is worked off).
//!
//! A service that exits on its own after the kill (a broker outage can make
//! it give up) is started again at once, as its supervisor would, and
//! counted. Every round runs on fresh topics, deleted afterwards.

use std::process::Command;
use std::time::{Duration, Instant};

use credit_datagen::Generator;
use rdkafka::producer::{FutureProducer, FutureRecord};

use crate::e2e::{E2eArgs, kafka, setup, start_registry, teardown};
use crate::procs::{Ends, Proc, sibling, spread};

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Service {
    Engine,
    Normaliser,
}

#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Victim {
    Service,
    Broker,
}

#[derive(clap::Args, Clone)]
pub struct RecoveryArgs {
    #[arg(
        long,
        env = "CREDIT_BUS__KAFKA__BROKERS",
        default_value = "127.0.0.1:9092"
    )]
    brokers: String,
    #[arg(long, value_enum, default_value = "engine")]
    service: Service,
    #[arg(long, value_enum, default_value = "service")]
    kill: Victim,
    /// Input records/s (the engine: normalised records; a normaliser: inbound).
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Seconds of steady output before the kill.
    #[arg(long, default_value_t = 8.0)]
    steady_secs: f64,
    /// Give up waiting for "caught up" this long after the kill.
    #[arg(long, default_value_t = 60.0)]
    max_secs: f64,
    /// Input partitions (records and commands for the engine, inbound for a normaliser).
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    #[arg(long, default_value_t = 1)]
    notice_partitions: i32,
    /// Output counted once committed (`isolation.level=read_committed`:
    /// the last stable offset), for an engine with transactional output.
    #[arg(long)]
    read_committed: bool,
    /// The broker's directory for `bench/broker.sh` (with `--kill broker`).
    #[arg(long)]
    broker_dir: Option<String>,
    /// Shell command that kills the broker with SIGKILL and returns once it is gone.
    #[arg(long)]
    broker_kill: Option<String>,
    /// Shell command that starts the broker again and returns once it serves requests.
    #[arg(long)]
    broker_restart: Option<String>,
}

fn e2e_args(a: &RecoveryArgs) -> E2eArgs {
    E2eArgs {
        brokers: a.brokers.clone(),
        department: "courts".into(),
        records: 0,
        latency_records: 0,
        latency_rate: 0,
        partitions: a.partitions,
        notice_partitions: a.notice_partitions,
        batch_size: 2000,
        bad_share: 0.0,
        rounds: a.rounds,
        warmup_records: 0,
        python: String::new(),
        broker_pid: None,
    }
}

fn spawn_service(a: &RecoveryArgs, prefix: &str, registry: &str) -> anyhow::Result<Proc> {
    let (bin, what) = match a.service {
        Service::Engine => ("credit-engine", "engine"),
        Service::Normaliser => ("credit-normaliser", "normaliser"),
    };
    let mut cmd = Command::new(sibling(bin)?);
    cmd.env("CREDIT_BUS__KAFKA__BROKERS", &a.brokers)
        .env("CREDIT_BUS__KAFKA__TOPIC_PREFIX", prefix)
        .env("CREDIT_BUS__KAFKA__PARTITIONS", a.partitions.to_string())
        .env(
            "CREDIT_BUS__KAFKA__NOTICE_PARTITIONS",
            a.notice_partitions.to_string(),
        )
        .env("CREDIT_BUS__REGISTRY__URL", registry)
        .env("CREDIT_BUS__TELEMETRY__LOG_FILTER", "warn")
        .env("CREDIT_BUS__TELEMETRY__LOG_FORMAT", "pretty");
    if a.service == Service::Engine {
        // Static membership, as deployed (the pod name): the restarted
        // instance takes its partitions back without waiting out a session.
        cmd.env("CREDIT_BUS__ENGINE__INSTANCE_ID", format!("{prefix}-0"));
    } else {
        cmd.env("CREDIT_BUS__NORMALISER__DEPARTMENT", "courts");
    }
    // The service's own log (its warnings while the broker is away) goes to a file.
    let path = std::env::temp_dir().join(format!("credit-bench-recovery-{what}.log"));
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    cmd.stdout(log.try_clone()?).stderr(log);
    Proc::spawn(what, cmd)
}

/// The shell commands that kill and restart the broker.
fn broker_commands(a: &RecoveryArgs) -> anyhow::Result<(String, String)> {
    let from_dir = |verb: &str| {
        a.broker_dir
            .as_ref()
            .map(|d| format!("bench/broker.sh {verb} {d}"))
    };
    match (
        a.broker_kill.clone().or_else(|| from_dir("kill")),
        a.broker_restart.clone().or_else(|| from_dir("restart")),
    ) {
        (Some(k), Some(r)) => Ok((k, r)),
        _ => {
            anyhow::bail!("--kill broker needs --broker-dir, or --broker-kill and --broker-restart")
        }
    }
}

fn sh(cmd: &str) -> anyhow::Result<()> {
    let st = Command::new("sh").arg("-c").arg(cmd).status()?;
    anyhow::ensure!(st.success(), "`{cmd}` failed: {st}");
    Ok(())
}

/// What one round measured, in seconds after the kill.
#[derive(Clone, Copy)]
struct Round {
    pre_rate: f64,
    /// Times the service exited on its own after the kill and was started
    /// again, as a supervisor (Kubernetes) would.
    exits: usize,
    restarted: f64,
    resumed: f64,
    full_rate: f64,
    caught_up: f64,
}

async fn round(a: &RecoveryArgs, registry: &str, n: usize) -> anyhow::Result<Round> {
    let e = e2e_args(a);
    let (prefix, naming) = setup(&e, &format!("rec{n}")).await?;
    let total = (a.rate * (a.steady_secs + a.max_secs + 10.0)).ceil() as usize;
    // (input topic, records to publish as (key, value), output partitions)
    type Plan = (String, Vec<(String, Vec<u8>)>, Vec<(String, i32)>);
    let (input, records, outputs): Plan = match a.service {
        Service::Engine => {
            let client = credit_schemas::registry::RegistryClient::new(registry)?;
            let schema = client
                .register(
                    &credit_core::topics::value_subject(&naming.records()),
                    credit_schemas::CREDIT_RECORD_AVSC,
                )
                .await?;
            let w = credit_bus_tests::engine::workload(total, schema, 11 + n as u64);
            let outs = credit_core::DEPARTMENTS
                .iter()
                .flat_map(|d| (0..a.notice_partitions).map(move |p| (d.id, p)))
                .map(|(d, p)| (naming.notices(d), p))
                .collect();
            (naming.records(), w.records, outs)
        }
        Service::Normaliser => {
            let mut g = Generator::new(11 + n as u64, 0.0);
            let recs = (0..total)
                .map(|_| {
                    let s = g.record("courts");
                    (s.key, s.value)
                })
                .collect();
            let outs = (0..a.partitions).map(|p| (naming.records(), p)).collect();
            (naming.inbound("courts"), recs, outs)
        }
    };
    let ends = Ends::new(&a.brokers, &outputs, a.read_committed)?;
    let mut service = spawn_service(a, &prefix, registry)?;

    // The publisher: `rate` records/s until stopped, acknowledgements awaited at the end.
    let stop = tokio_util::sync::CancellationToken::new();
    let publisher = {
        let (k, stop, rate) = (kafka(&e, &prefix), stop.clone(), a.rate);
        tokio::spawn(async move {
            let producer: FutureProducer =
                credit_runtime::kafka::producer(&k, "bench-recovery").create()?;
            let start = Instant::now();
            let mut acks = Vec::new();
            for (i, (key, value)) in records.iter().enumerate() {
                let due = Duration::from_secs_f64(i as f64 / rate);
                if let Some(w) = due.checked_sub(start.elapsed()) {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(w) => {}
                    }
                }
                acks.push(
                    producer
                        .send_result(FutureRecord::to(&input).key(key).payload(value))
                        .map_err(|(e, _)| e)?,
                );
            }
            for f in acks {
                f.await?.map_err(|(e, _)| e)?;
            }
            anyhow::Ok(())
        })
    };

    // Samples of (time, output end offsets); a failed look (broker down) is skipped.
    let mut samples: Vec<(Instant, i64)> = Vec::new();
    let sample = |samples: &mut Vec<(Instant, i64)>| {
        if let Ok(o) = ends.sum() {
            samples.push((Instant::now(), o));
        }
    };
    // Steady output first.
    let deadline = Instant::now() + Duration::from_secs(120);
    let steady_from = loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        sample(&mut samples);
        service.check()?;
        if samples.last().is_some_and(|s| s.1 > 0) {
            break Instant::now();
        }
        anyhow::ensure!(Instant::now() < deadline, "no output within 120 s");
    };
    while steady_from.elapsed().as_secs_f64() < a.steady_secs {
        tokio::time::sleep(Duration::from_millis(50)).await;
        sample(&mut samples);
        service.check()?;
    }
    let at = |samples: &[(Instant, i64)], t: Instant| {
        samples.iter().rev().find(|s| s.0 <= t).map_or(0, |s| s.1)
    };
    let killed = Instant::now();
    let window = Duration::from_secs(3).min(killed - steady_from);
    let pre_rate =
        (at(&samples, killed) - at(&samples, killed - window)) as f64 / window.as_secs_f64();
    let out_at_kill = at(&samples, killed);

    let restarted = match a.kill {
        Victim::Service => {
            service.kill9()?;
            service = spawn_service(a, &prefix, registry)?;
            killed.elapsed()
        }
        Victim::Broker => {
            let (kill, restart) = broker_commands(a)?;
            sh(&kill)?;
            sh(&restart)?;
            killed.elapsed()
        }
    };
    // Produce requests in flight at the kill may still land: the output
    // counted as before the restart is what stands once they have.
    tokio::time::sleep(Duration::from_millis(300).saturating_sub(killed.elapsed())).await;
    sample(&mut samples);
    let base = samples.last().map_or(out_at_kill, |s| s.1).max(out_at_kill);
    let (mut resumed, mut full_rate, mut caught_up) = (None, None, None);
    let mut exits = 0;
    while (caught_up.is_none() || full_rate.is_none())
        && killed.elapsed().as_secs_f64() < a.max_secs
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
        sample(&mut samples);
        if let Err(e) = service.check() {
            eprintln!("{e}: starting it again");
            exits += 1;
            service = spawn_service(a, &prefix, registry)?;
        }
        let Some(&(now, out)) = samples.last() else {
            continue;
        };
        if resumed.is_none() && out > base {
            resumed = Some(now - killed);
        }
        if resumed.is_some() && full_rate.is_none() {
            let second = now - Duration::from_secs(1);
            if second >= killed + resumed.unwrap_or_default()
                && (out - at(&samples, second)) as f64 >= 0.9 * pre_rate
            {
                full_rate = Some(now - killed);
            }
        }
        let due = pre_rate * (now - killed).as_secs_f64();
        if resumed.is_some()
            && caught_up.is_none()
            && (out - out_at_kill) as f64 >= due - 0.5 * pre_rate
        {
            caught_up = Some(now - killed);
        }
    }
    stop.cancel();
    publisher.await??;
    service.stop();
    teardown(&e, &naming).await?;
    let secs = |d: Option<Duration>| d.map_or(f64::NAN, |d| d.as_secs_f64());
    Ok(Round {
        pre_rate,
        exits,
        restarted: restarted.as_secs_f64(),
        resumed: secs(resumed),
        full_rate: secs(full_rate),
        caught_up: secs(caught_up),
    })
}

pub async fn run(a: RecoveryArgs) -> anyhow::Result<()> {
    println!("$ {}", crate::procs::command_line());
    let e = e2e_args(&a);
    let registry = start_registry(&e, &format!("bench-rec-reg-{}", std::process::id())).await?;
    let url = registry.url();
    println!(
        "recovery of the {:?} after SIGKILL of the {:?}: input {} records/s, {} input partitions, {} per notices topic, {} s of steady output first{}",
        a.service,
        a.kill,
        a.rate,
        a.partitions,
        a.notice_partitions,
        a.steady_secs,
        if a.read_committed {
            ", output counted once committed"
        } else {
            ""
        }
    );
    println!(
        "{:<7}{:>18}{:>12}{:>10}{:>11}{:>12}{:>16}   (seconds after the kill)",
        "round",
        "output/s before",
        "restarted",
        "resumed",
        "full rate",
        "caught up",
        "service exits"
    );
    let mut rounds = Vec::new();
    for n in 1..=a.rounds.max(1) {
        let r = round(&a, &url, n).await?;
        println!(
            "{:<7}{:>18.0}{:>12.2}{:>10.2}{:>11.2}{:>12.2}{:>16}",
            n, r.pre_rate, r.restarted, r.resumed, r.full_rate, r.caught_up, r.exits
        );
        rounds.push(r);
    }
    let col = |f: fn(&Round) -> f64| rounds.iter().map(f).collect::<Vec<f64>>();
    println!("min / median / max over {} rounds (s):", rounds.len());
    println!("  restarted  {}", spread(&col(|r| r.restarted), 2));
    println!("  resumed    {}", spread(&col(|r| r.resumed), 2));
    println!("  full rate  {}", spread(&col(|r| r.full_rate), 2));
    println!("  caught up  {}", spread(&col(|r| r.caught_up), 2));
    registry.stop().await?;
    Ok(())
}
