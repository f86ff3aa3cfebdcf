//! What the benches need around processes and topics: child processes whose
//! CPU time is read from `/proc/<pid>/stat` (each contender runs in a
//! process of its own, so "per core" is that process's CPU), the per-thread
//! split of that CPU, and the end offsets of output topics as the broker
//! reports them (one ListOffsets request per poll, so watching costs the
//! contenders nothing).

use std::collections::BTreeMap;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// Clock ticks per second of `/proc/*/stat` (`sysconf(_SC_CLK_TCK)`, 100 on Linux).
const TICKS: f64 = 100.0;

/// utime + stime of a `/proc/.../stat` line, in seconds, and its command name.
fn stat_cpu(text: &str) -> Option<(String, f64)> {
    let (head, rest) = text.rsplit_once(')')?;
    let name = head.split_once('(').map_or("", |(_, n)| n).to_string();
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Fields after the name: state is field 3, utime 14, stime 15.
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((name, (utime + stime) / TICKS))
}

/// CPU seconds (user + system) process `pid` has used so far.
pub fn cpu_of(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|t| stat_cpu(&t))
        .map_or(f64::NAN, |(_, s)| s)
}

/// CPU seconds per thread name of process `pid`, with digits dropped from
/// names so librdkafka's `rdk:broker1`, `rdk:broker2`... add up to one row.
pub fn threads_of(pid: u32) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out;
    };
    for e in dir.flatten() {
        if let Some((name, s)) = std::fs::read_to_string(e.path().join("stat"))
            .ok()
            .and_then(|t| stat_cpu(&t))
        {
            let name: String = name.chars().filter(|c| !c.is_ascii_digit()).collect();
            *out.entry(name).or_insert(0.0) += s;
        }
    }
    out
}

/// Per-thread CPU spent between two [`threads_of`] snapshots, largest first.
pub fn thread_delta(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> String {
    let mut v: Vec<(&String, f64)> = after
        .iter()
        .map(|(k, s)| (k, s - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, d)| *d >= 0.01)
        .collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    v.iter()
        .map(|(k, d)| format!("{k} {d:.2}s"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A benchmarked process, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Proc {
    pub child: Child,
    pub what: String,
}

impl Proc {
    pub fn spawn(what: &str, mut cmd: Command) -> anyhow::Result<Proc> {
        let child = cmd
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting {what} ({cmd:?}): {e}"))?;
        Ok(Proc {
            child,
            what: what.to_string(),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn cpu(&self) -> f64 {
        cpu_of(self.pid())
    }

    /// Fails if the process has exited.
    pub fn check(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            anyhow::bail!("{} exited early: {status}", self.what);
        }
        Ok(())
    }

    /// SIGKILL, and reap it.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        signal(self.pid(), "KILL");
        self.child.wait()?;
        Ok(())
    }

    /// SIGTERM, then SIGKILL after 10 s.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        signal(self.pid(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// The end offsets of a set of partitions, as one ListOffsets request.
pub struct Ends {
    consumer: BaseConsumer,
    tpl: TopicPartitionList,
}

impl Ends {
    /// `read_committed`: the last stable offset instead of the high
    /// watermark (transactional output counts once committed).
    pub fn new(
        brokers: &str,
        parts: &[(String, i32)],
        read_committed: bool,
    ) -> anyhow::Result<Ends> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", "bench-ends")
            .set(
                "isolation.level",
                if read_committed {
                    "read_committed"
                } else {
                    "read_uncommitted"
                },
            )
            .create()?;
        let mut tpl = TopicPartitionList::new();
        for (t, p) in parts {
            tpl.add_partition_offset(t, *p, Offset::End)?;
        }
        Ok(Ends { consumer, tpl })
    }

    /// Per partition, in the order given.
    pub fn each(&self) -> anyhow::Result<Vec<i64>> {
        let got = self
            .consumer
            .offsets_for_times(self.tpl.clone(), Duration::from_secs(10))?;
        Ok(got
            .elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(o) => o,
                _ => 0,
            })
            .collect())
    }

    pub fn sum(&self) -> anyhow::Result<i64> {
        Ok(self.each()?.iter().sum())
    }
}

/// Path of a binary built beside this one (`target/release/credit-normaliser`).
pub fn sibling(name: &str) -> anyhow::Result<std::path::PathBuf> {
    let exe = std::env::current_exe()?;
    let p = exe
        .parent()
        .ok_or_else(|| anyhow::anyhow!("no parent of {exe:?}"))?
        .join(name);
    anyhow::ensure!(
        p.exists(),
        "{p:?} is missing: build it with `cargo build --release -p credit-bench --bins -p credit-normaliser -p credit-engine`"
    );
    Ok(p)
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// "min / median / max" of a set of figures; figures not measured (NaN) are
/// left out and counted.
pub fn spread(v: &[f64], digits: usize) -> String {
    let got: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    if got.is_empty() {
        return "not measured".into();
    }
    let min = got.iter().copied().fold(f64::INFINITY, f64::min);
    let max = got.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let missing = v.len() - got.len();
    format!(
        "{min:.digits$} / {:.digits$} / {max:.digits$}{}",
        median(got),
        if missing > 0 {
            format!(" ({missing} not measured)")
        } else {
            String::new()
        }
    )
}

/// The command line this process was started with, for the report.
pub fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}
