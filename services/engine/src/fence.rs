//! Fencing by claims, checked in the background.
//!
//! Before a batch's notices go out, the engine must know that no other
//! instance has claimed the input partitions since a recent moment: a new owner
//! writes its claim, waits `takeover_grace_ms`, and only then reads what was
//! sent (`docs/engine.md`). Reading the changelog for claims inside every batch
//! cost 12-39 ms of each batch's latency, so a thread reads them continuously
//! instead, while batches flow, and a batch only looks at its result:
//!
//! A look that started at `t` and found no foreign claim proves that none was
//! acknowledged before `t`; a claim acknowledged later makes its owner read
//! outputs no earlier than `t + grace`. So a batch may send on the strength of
//! a look started less than `grace / 3` ago: its sends have the remaining two
//! thirds of the grace to be written. A batch that finds no look that fresh
//! waits for the next one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use credit_runtime::config::KafkaConfig;
use rdkafka::Offset;
use rdkafka::message::Message;

use crate::state::Claim;

/// Reads changelog partitions, each from its `from` to its end, in one pass:
/// per partition, the owner of the last claim there, if any, and the offset
/// after the last record.
pub fn claims_since(
    c: &credit_runtime::kafka::Reader,
    changelog: &str,
    from: &[(i32, i64)],
) -> Result<HashMap<i32, (Option<String>, i64)>, String> {
    let mut out: HashMap<i32, (Option<String>, i64)> =
        from.iter().map(|(p, o)| (*p, (None, *o))).collect();
    let parts: Vec<(i32, Offset)> = from.iter().map(|(p, o)| (*p, Offset::Offset(*o))).collect();
    credit_runtime::kafka::read_to_end(c, changelog, &parts, Duration::from_secs(30), |m| {
        let e = out.entry(m.partition()).or_insert((None, 0));
        e.1 = m.offset() + 1;
        if m.key() == Some(b"claim")
            && let Some(c) = m
                .payload()
                .and_then(|v| serde_json::from_slice::<Claim>(v).ok())
        {
            e.0 = Some(c.owner);
        }
    })?;
    Ok(out)
}

/// What a batch may do with an input partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// No other claim as of a look fresh enough: send.
    Send,
    /// Another instance claimed it: drop it and its planned notices.
    Claimed(String),
}

struct Watched {
    /// Changelog offset read up to.
    tail: i64,
    /// Bumped on every registration, so a look that straddles a re-registration is ignored.
    epoch: u64,
    /// Start of the last completed look that covered this partition.
    checked: Option<Instant>,
    claimed_by: Option<String>,
}

#[derive(Default)]
struct Shared {
    parts: HashMap<i32, Watched>,
    epoch: u64,
    /// Last time a batch asked; the thread idles when nobody has for a while.
    wanted: Option<Instant>,
    /// The last failed look's error, until a look succeeds.
    error: Option<String>,
}

/// The background claim reader of one engine instance.
pub struct ClaimWatch {
    shared: Arc<(Mutex<Shared>, Condvar)>,
    stop: Arc<AtomicBool>,
    validity: Duration,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Pause between looks: a look stays usable for a third of the grace (500 ms
/// by default), so looking every ~100 ms keeps batches from waiting for one.
const PAUSE: Duration = Duration::from_millis(100);

/// How long the thread keeps looking after the last batch asked.
const KEEP_LOOKING: Duration = Duration::from_secs(2);

impl ClaimWatch {
    pub fn start(
        kafka: &KafkaConfig,
        changelog: String,
        owner: String,
        grace: Duration,
    ) -> Result<ClaimWatch, rdkafka::error::KafkaError> {
        let reader = credit_runtime::kafka::reader(kafka, "credit-engine-fence")?;
        let shared: Arc<(Mutex<Shared>, Condvar)> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (sh, st) = (shared.clone(), stop.clone());
        let thread = std::thread::Builder::new()
            .name("claim-watch".into())
            .spawn(move || watch(&reader, &changelog, &owner, &sh, &st))
            .expect("the claim watch thread starts");
        Ok(ClaimWatch {
            shared,
            stop,
            validity: grace / 3,
            thread: Some(thread),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts watching partition `p` from changelog offset `tail` (after recovery).
    pub fn register(&self, p: i32, tail: i64) {
        let mut s = self.lock();
        s.epoch += 1;
        let epoch = s.epoch;
        s.parts.insert(
            p,
            Watched {
                tail,
                epoch,
                checked: None,
                claimed_by: None,
            },
        );
    }

    pub fn forget(&self, p: i32) {
        self.lock().parts.remove(&p);
    }

    /// Per partition, what a batch may do, waiting for a fresh enough look
    /// (at most `limit`). Partitions not registered count as claimed away.
    pub async fn verdicts(
        &self,
        parts: &[i32],
        limit: Duration,
    ) -> Result<HashMap<i32, Verdict>, String> {
        let deadline = Instant::now() + limit;
        loop {
            {
                let mut s = self.lock();
                s.wanted = Some(Instant::now());
                let mut out = HashMap::with_capacity(parts.len());
                for p in parts {
                    let v = match s.parts.get(p) {
                        None => Some(Verdict::Claimed("(not watched)".into())),
                        Some(w) => match (&w.claimed_by, w.checked) {
                            (Some(o), _) => Some(Verdict::Claimed(o.clone())),
                            (None, Some(t)) if t.elapsed() < self.validity => Some(Verdict::Send),
                            _ => None,
                        },
                    };
                    match v {
                        Some(v) => out.insert(*p, v),
                        None => break,
                    };
                }
                if out.len() == parts.len() {
                    return Ok(out);
                }
                if Instant::now() > deadline {
                    return Err(format!(
                        "no claim check completed within {limit:?}; last error: {}",
                        s.error.as_deref().unwrap_or("none")
                    ));
                }
            }
            self.shared.1.notify_all();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}

impl Drop for ClaimWatch {
    /// Stops the thread and waits for it (it notices within a look or 200 ms),
    /// so a stopped engine leaves no Kafka client behind.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.shared.1.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn watch(
    reader: &credit_runtime::kafka::Reader,
    changelog: &str,
    owner: &str,
    shared: &(Mutex<Shared>, Condvar),
    stop: &AtomicBool,
) {
    let lock = || shared.0.lock().unwrap_or_else(|e| e.into_inner());
    while !stop.load(Ordering::Relaxed) {
        let from: Vec<(i32, i64, u64)> = {
            let s = lock();
            let busy = s.wanted.is_some_and(|t| t.elapsed() < KEEP_LOOKING);
            if !busy || s.parts.is_empty() {
                // Idle: sleep until a batch asks (or a while, to notice `stop`).
                let _ = shared
                    .1
                    .wait_timeout(s, Duration::from_millis(200))
                    .unwrap_or_else(|e| e.into_inner());
                continue;
            }
            s.parts.iter().map(|(p, w)| (*p, w.tail, w.epoch)).collect()
        };
        let started = Instant::now();
        let tails: Vec<(i32, i64)> = from.iter().map(|(p, t, _)| (*p, *t)).collect();
        match claims_since(reader, changelog, &tails) {
            Ok(found) => {
                let mut s = lock();
                s.error = None;
                // Looks far more often than the validity needs only load the broker.
                let pause = PAUSE;
                for (p, _, epoch) in &from {
                    let Some(w) = s.parts.get_mut(p).filter(|w| w.epoch == *epoch) else {
                        continue;
                    };
                    if let Some((claim, tail)) = found.get(p) {
                        w.tail = *tail;
                        if let Some(o) = claim.as_ref().filter(|o| o.as_str() != owner) {
                            w.claimed_by = Some(o.clone());
                        }
                        w.checked = Some(started);
                    }
                }
                drop(s);
                std::thread::sleep(pause);
            }
            Err(e) => {
                tracing::warn!(error = %e, "claim check failed; retrying");
                lock().error = Some(e);
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}
