//! From scraped `/metrics` pages to the summary the page shows: pure functions,
//! no I/O, so every figure is unit-tested.
//!
//! A scrape round holds, per target, the series the dashboard reads. Totals are
//! sums over the targets that answered in the latest round. Rates are computed
//! per target and series, as Prometheus' `rate()` does: over a window of recent
//! rounds, only for targets that answered at both ends, and a counter that went
//! down (the service restarted) counts from zero. So a target that is down for a
//! while or restarts never shows as a negative rate or a spike.

use std::collections::BTreeMap;

use credit_core::notice::NoticeKind;
use credit_runtime::metrics::{MetricName, label};
use credit_runtime::prom;
use serde::Serialize;

/// A series the dashboard reads, with the labels it keeps.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    RecordsIn {
        department: String,
    },
    RecordsOut {
        department: String,
    },
    DeadLettered {
        department: String,
        reason: String,
    },
    NoticesSent {
        department: String,
        kind: String,
    },
    /// Gauge.
    ConsumerLag {
        group: String,
        topic: String,
        partition: i64,
    },
    /// Gauge.
    NoticesTracked {
        department: String,
        state: String,
    },
    ErrorsHandled {
        class: String,
    },
    /// A latency histogram's cumulative bucket, summed over its other labels.
    Bucket {
        metric: &'static str,
        /// Upper bound in seconds (`+Inf` as infinity), as text so keys order.
        le: String,
    },
}

/// The latency histograms the page shows, by exported base name: each
/// service's processing time per batch, the engine's input-to-notices time and
/// its transaction commit time.
pub const LATENCIES: [MetricName; 3] = [
    MetricName::ProcessingDuration,
    MetricName::EngineFanoutLatency,
    MetricName::EngineCommitDuration,
];

impl Key {
    fn is_counter(&self) -> bool {
        !matches!(self, Key::ConsumerLag { .. } | Key::NoticesTracked { .. })
    }
}

/// The series of one `/metrics` page that the dashboard reads (others are ignored).
pub fn extract(text: &str) -> BTreeMap<Key, f64> {
    let mut out = BTreeMap::new();
    for s in prom::parse(text) {
        let l = |k: &str| s.label(k).unwrap_or("-").to_string();
        let key = if s.name == MetricName::RecordsIn.exported() {
            Key::RecordsIn {
                department: l(label::DEPARTMENT),
            }
        } else if s.name == MetricName::RecordsOut.exported() {
            Key::RecordsOut {
                department: l(label::DEPARTMENT),
            }
        } else if s.name == MetricName::RecordsDeadLettered.exported() {
            Key::DeadLettered {
                department: l(label::DEPARTMENT),
                reason: l(label::REASON),
            }
        } else if s.name == MetricName::NoticesSent.exported() {
            Key::NoticesSent {
                department: l(label::DEPARTMENT),
                kind: l(label::KIND),
            }
        } else if s.name == MetricName::ConsumerLag.exported() {
            Key::ConsumerLag {
                group: l(label::GROUP),
                topic: l(label::TOPIC),
                partition: s
                    .label(label::PARTITION)
                    .and_then(|p| p.parse().ok())
                    .unwrap_or(-1),
            }
        } else if s.name == MetricName::NoticesTracked.exported() {
            Key::NoticesTracked {
                department: l(label::DEPARTMENT),
                state: l(label::STATE),
            }
        } else if s.name == MetricName::ErrorsHandled.exported() {
            Key::ErrorsHandled {
                class: l(label::CLASS),
            }
        } else if let Some(m) = LATENCIES
            .iter()
            .find(|m| s.name.strip_suffix("_bucket") == Some(m.exported()))
        {
            Key::Bucket {
                metric: m.exported(),
                le: l("le"),
            }
        } else {
            continue;
        };
        if s.value.is_finite() {
            *out.entry(key).or_insert(0.0) += s.value;
        }
    }
    out
}

/// One target's answer in one round.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetScrape {
    pub name: String,
    pub url: String,
    /// `None` when it answered; otherwise why not.
    pub error: Option<String>,
    pub series: BTreeMap<Key, f64>,
}

impl TargetScrape {
    pub fn up(name: &str, url: &str, text: &str) -> TargetScrape {
        TargetScrape {
            name: name.into(),
            url: url.into(),
            error: None,
            series: extract(text),
        }
    }

    pub fn down(name: &str, url: &str, error: impl Into<String>) -> TargetScrape {
        TargetScrape {
            name: name.into(),
            url: url.into(),
            error: Some(error.into()),
            series: BTreeMap::new(),
        }
    }

    pub fn is_up(&self) -> bool {
        self.error.is_none()
    }
}

/// Every target scraped once, at `at_ms` (milliseconds since the epoch).
#[derive(Debug, Clone, PartialEq)]
pub struct Round {
    pub at_ms: u64,
    pub targets: Vec<TargetScrape>,
    /// Each Kafka listener probed in this round.
    pub brokers: Vec<BrokerProbe>,
}

/// One Kafka listener, probed with a TCP connect: it answers or not, and how
/// fast. It says the broker process listens (not that it serves requests:
/// the services' retried errors, [`Summary::errors`], say that).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BrokerProbe {
    pub address: String,
    pub up: bool,
    pub connect_ms: Option<f64>,
    pub error: Option<String>,
}

/// A broker as the page shows it: the latest probe and its connect time in
/// every kept round (0 when down), and the share of kept rounds it was up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BrokerStatus {
    #[serde(flatten)]
    pub latest: BrokerProbe,
    pub up_percent: f64,
    pub history_connect_ms: Vec<f64>,
}

/// Errors the services handled per second over the window, by class (retry,
/// dead_letter, stop): the error policy's own counter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ErrorRate {
    pub class: String,
    pub total: f64,
    pub per_s: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    /// When the latest round was scraped (ms since the epoch); 0 before the first.
    pub at_ms: u64,
    /// Seconds the rates are averaged over.
    pub window_s: f64,
    pub targets: Vec<TargetStatus>,
    pub totals: Flow,
    pub departments: Vec<DepartmentFlow>,
    pub dead_letter_reasons: Vec<ReasonRate>,
    pub dead_letters: Vec<DepartmentReasonRate>,
    pub consumer_lag: Vec<Lag>,
    pub lag_by_group: Vec<GroupLag>,
    /// Records per second each publishing department is meant to send (the
    /// dashboard's `target_rate_per_s`), shown against what it reaches.
    pub target_per_s: Option<f64>,
    /// p50 / p99 of each latency histogram over the rate window.
    pub latency: Vec<Latency>,
    /// The Kafka listeners the dashboard probes.
    pub brokers: Vec<BrokerStatus>,
    /// Errors handled by the services, by class.
    pub errors: Vec<ErrorRate>,
    /// The latest dead letter per reason (`dashboard.dead_letter_samples`).
    pub dead_letter_samples: Vec<crate::samples::Sample>,
    pub notices: Vec<NoticeRate>,
    /// The `kind` label values the engine counts notices under, in the order
    /// the page shows them ([`NoticeKind::ALL`], [`NoticeKind::as_str`]): the
    /// page builds its columns from this list, never from a copy of its own.
    pub notice_kinds: Vec<&'static str>,
    /// Notices per department, one count per kind of [`Summary::notice_kinds`].
    pub notices_by_department: Vec<DepartmentNotices>,
    pub feedback: Vec<Feedback>,
}

/// One department's notices: a count per kind, the same order as
/// [`Summary::notice_kinds`].
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DepartmentNotices {
    pub department: String,
    pub by_kind: Vec<f64>,
    /// Notices under a `kind` label value that is no [`NoticeKind`] (an
    /// engine of another version): shown, never silently dropped.
    pub other: f64,
    pub total: f64,
    pub per_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetStatus {
    pub name: String,
    pub url: String,
    pub up: bool,
    pub error: Option<String>,
}

/// Records in / out / dead-lettered: totals and per-second rates.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Flow {
    pub records_in: f64,
    pub records_out: f64,
    pub dead_lettered: f64,
    pub in_per_s: f64,
    pub out_per_s: f64,
    pub dead_per_s: f64,
    /// Records in per second between consecutive rounds, oldest first.
    pub history_in_per_s: Vec<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DepartmentFlow {
    pub department: String,
    #[serde(flatten)]
    pub flow: Flow,
    /// Accepted share of what was decided, in percent; `None` before anything was.
    pub pass_rate: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReasonRate {
    pub reason: String,
    pub total: f64,
    pub per_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DepartmentReasonRate {
    pub department: String,
    pub reason: String,
    pub total: f64,
    pub per_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Lag {
    pub group: String,
    pub topic: String,
    pub partition: i64,
    pub lag: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupLag {
    pub group: String,
    pub lag: f64,
    /// The group's lag in every kept round, oldest first (rounds where no
    /// target reported it count 0): its trend.
    pub history: Vec<f64>,
}

/// One latency histogram over the rate window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Latency {
    /// Exported name (`credit_bus_processing_duration_seconds`).
    pub metric: String,
    /// What it measures, for the page.
    pub what: &'static str,
    /// Observations per second in the window.
    pub per_s: f64,
    /// Estimated quantiles in seconds (linear within a bucket, as
    /// Prometheus' `histogram_quantile`); `None` without observations.
    pub p50_s: Option<f64>,
    pub p99_s: Option<f64>,
}

/// The `q` quantile of cumulative `buckets` (upper bound, count), sorted by
/// bound, as Prometheus' `histogram_quantile` estimates it: linear within the
/// bucket it falls in; in the `+Inf` bucket, the highest finite bound.
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut prev = (0.0, 0.0);
    for &(le, count) in buckets {
        if count >= rank {
            if le.is_infinite() {
                return Some(prev.0);
            }
            let inside = count - prev.1;
            let frac = if inside > 0.0 {
                (rank - prev.1) / inside
            } else {
                1.0
            };
            return Some(prev.0 + (le - prev.0) * frac);
        }
        prev = (le, count);
    }
    Some(prev.0)
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NoticeRate {
    pub department: String,
    pub kind: String,
    pub total: f64,
    pub per_s: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Feedback {
    pub department: String,
    pub open: f64,
    pub overdue: f64,
    pub done: f64,
}

/// Sum of each series over the targets that answered.
fn totals(round: &Round) -> BTreeMap<&Key, f64> {
    let mut out = BTreeMap::new();
    for t in round.targets.iter().filter(|t| t.is_up()) {
        for (k, v) in &t.series {
            *out.entry(k).or_insert(0.0) += v;
        }
    }
    out
}

/// Increase of each counter of one target from `from` to `to`; a counter that
/// went down restarted and counts from zero.
fn increases<'r>(
    from: &TargetScrape,
    to: &'r TargetScrape,
) -> impl Iterator<Item = (&'r Key, f64)> {
    to.series
        .iter()
        .filter(|(k, _)| k.is_counter())
        .map(move |(k, v)| {
            let before = from.series.get(k).copied().unwrap_or(0.0);
            (k, if *v >= before { v - before } else { *v })
        })
}

/// Per-second rates of every counter at the last round of `history`, and the
/// longest span they were averaged over. Per target, the span starts at the
/// oldest earlier round within `window_ms` in which that target answered, or
/// else at the round just before the last if it answered then; a target down
/// at the last round, or at every possible start, contributes nothing.
fn rates(history: &[Round], window_ms: u64) -> (BTreeMap<&Key, f64>, f64) {
    let mut out = BTreeMap::new();
    let mut span = 0.0f64;
    let Some((latest, earlier)) = history.split_last() else {
        return (out, span);
    };
    let find = |r: &'_ Round, name: &str| -> Option<usize> {
        r.targets.iter().position(|t| t.name == name && t.is_up())
    };
    for t in latest.targets.iter().filter(|t| t.is_up()) {
        let base = earlier
            .iter()
            .filter(|r| r.at_ms + window_ms >= latest.at_ms)
            .find_map(|r| find(r, &t.name).map(|i| (r, i)))
            .or_else(|| {
                let r = earlier.last()?;
                find(r, &t.name).map(|i| (r, i))
            });
        let Some((r, i)) = base else { continue };
        let dt = latest.at_ms.saturating_sub(r.at_ms) as f64 / 1000.0;
        if dt <= 0.0 {
            continue;
        }
        span = span.max(dt);
        for (k, inc) in increases(&r.targets[i], t) {
            *out.entry(k).or_insert(0.0) += inc / dt;
        }
    }
    (out, span)
}

/// Sum of the values whose key `pick` accepts (0 when none: not `Sum`'s -0.0).
fn sum_where(m: &BTreeMap<&Key, f64>, pick: impl Fn(&Key) -> bool) -> f64 {
    m.iter()
        .filter(|(k, _)| pick(k))
        .fold(0.0, |a, (_, v)| a + v)
}

/// The summary of `history` (oldest first): totals from its last round, rates
/// over the last `window_ms` (at least the last two rounds), sparklines over
/// every consecutive pair of rounds.
pub fn summarise(history: &[Round], window_ms: u64) -> Summary {
    let Some(latest) = history.last() else {
        return Summary::default();
    };
    let mut s = Summary {
        at_ms: latest.at_ms,
        targets: latest
            .targets
            .iter()
            .map(|t| TargetStatus {
                name: t.name.clone(),
                url: t.url.clone(),
                up: t.is_up(),
                error: t.error.clone(),
            })
            .collect(),
        ..Summary::default()
    };
    let (rate, window_s) = rates(history, window_ms);
    s.window_s = window_s;
    // One point per consecutive pair of rounds.
    let sparks: Vec<BTreeMap<&Key, f64>> = (2..=history.len())
        .map(|n| rates(&history[..n], 0).0)
        .collect();
    let total = totals(latest);
    let r = |k: &Key| rate.get(k).copied().unwrap_or(0.0);

    let mut depts: BTreeMap<&str, DepartmentFlow> = BTreeMap::new();
    let mut reasons: BTreeMap<&str, ReasonRate> = BTreeMap::new();
    let mut notices = Vec::new();
    let mut feedback: BTreeMap<&str, Feedback> = BTreeMap::new();
    let mut groups: BTreeMap<&str, f64> = BTreeMap::new();
    for (&k, &v) in &total {
        match k {
            Key::RecordsIn { department } => {
                let d = depts.entry(department).or_default();
                d.flow.records_in += v;
                d.flow.in_per_s += r(k);
            }
            Key::RecordsOut { department } => {
                let d = depts.entry(department).or_default();
                d.flow.records_out += v;
                d.flow.out_per_s += r(k);
            }
            Key::DeadLettered { department, reason } => {
                let d = depts.entry(department).or_default();
                d.flow.dead_lettered += v;
                d.flow.dead_per_s += r(k);
                let e = reasons.entry(reason).or_insert_with(|| ReasonRate {
                    reason: reason.clone(),
                    total: 0.0,
                    per_s: 0.0,
                });
                e.total += v;
                e.per_s += r(k);
                s.dead_letters.push(DepartmentReasonRate {
                    department: department.clone(),
                    reason: reason.clone(),
                    total: v,
                    per_s: r(k),
                });
            }
            Key::NoticesSent { department, kind } => notices.push(NoticeRate {
                department: department.clone(),
                kind: kind.clone(),
                total: v,
                per_s: r(k),
            }),
            Key::ConsumerLag {
                group,
                topic,
                partition,
            } => {
                *groups.entry(group).or_default() += v;
                s.consumer_lag.push(Lag {
                    group: group.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                    lag: v,
                });
            }
            Key::Bucket { .. } => {}
            Key::ErrorsHandled { class } => s.errors.push(ErrorRate {
                class: class.clone(),
                total: v,
                per_s: r(k),
            }),
            Key::NoticesTracked { department, state } => {
                let f = feedback.entry(department).or_default();
                match state.as_str() {
                    "open" => f.open += v,
                    "overdue" => f.overdue += v,
                    "done" => f.done += v,
                    _ => {}
                }
            }
        }
    }
    for (name, d) in depts.iter_mut() {
        d.department = name.to_string();
        let decided = d.flow.records_out + d.flow.dead_lettered;
        d.pass_rate = (decided > 0.0).then(|| 100.0 * d.flow.records_out / decided);
        d.flow.history_in_per_s = sparks
            .iter()
            .map(|m| {
                sum_where(
                    m,
                    |k| matches!(k, Key::RecordsIn { department } if department == name),
                )
            })
            .collect();
        let t = &mut s.totals;
        t.records_in += d.flow.records_in;
        t.records_out += d.flow.records_out;
        t.dead_lettered += d.flow.dead_lettered;
        t.in_per_s += d.flow.in_per_s;
        t.out_per_s += d.flow.out_per_s;
        t.dead_per_s += d.flow.dead_per_s;
    }
    s.totals.history_in_per_s = sparks
        .iter()
        .map(|m| sum_where(m, |k| matches!(k, Key::RecordsIn { .. })))
        .collect();
    s.departments = depts.into_values().collect();
    s.dead_letter_reasons = reasons.into_values().collect();
    s.dead_letter_reasons.sort_by(|a, b| {
        b.per_s
            .total_cmp(&a.per_s)
            .then(b.total.total_cmp(&a.total))
    });
    s.notice_kinds = NoticeKind::ALL.iter().map(|k| k.as_str()).collect();
    let mut by_dept: BTreeMap<&str, DepartmentNotices> = BTreeMap::new();
    for n in &notices {
        let d = by_dept
            .entry(n.department.as_str())
            .or_insert_with(|| DepartmentNotices {
                department: n.department.clone(),
                by_kind: vec![0.0; NoticeKind::ALL.len()],
                ..DepartmentNotices::default()
            });
        match NoticeKind::ALL.iter().position(|k| k.as_str() == n.kind) {
            Some(i) => d.by_kind[i] += n.total,
            None => d.other += n.total,
        }
        d.total += n.total;
        d.per_s += n.per_s;
    }
    s.notices_by_department = by_dept.into_values().collect();
    s.notices = notices;
    let per_round: Vec<BTreeMap<&Key, f64>> = history.iter().map(totals).collect();
    s.lag_by_group = groups
        .into_iter()
        .map(|(g, lag)| GroupLag {
            group: g.to_string(),
            lag,
            history: per_round
                .iter()
                .map(|t| {
                    sum_where(
                        t,
                        |k| matches!(k, Key::ConsumerLag { group, .. } if group == g),
                    )
                })
                .collect(),
        })
        .collect();
    s.brokers = latest
        .brokers
        .iter()
        .map(|b| {
            let probes: Vec<Option<&BrokerProbe>> = history
                .iter()
                .map(|r| r.brokers.iter().find(|p| p.address == b.address))
                .collect();
            let up = probes.iter().filter(|p| p.is_some_and(|p| p.up)).count();
            BrokerStatus {
                latest: b.clone(),
                up_percent: 100.0 * up as f64 / probes.len() as f64,
                history_connect_ms: probes
                    .iter()
                    .map(|p| p.and_then(|p| p.connect_ms).unwrap_or(0.0))
                    .collect(),
            }
        })
        .collect();
    s.latency = LATENCIES
        .iter()
        .filter_map(|m| {
            let mut b: Vec<(f64, f64)> = rate
                .iter()
                .filter_map(|(k, v)| match k {
                    Key::Bucket { metric, le } if *metric == m.exported() => {
                        Some((le.parse::<f64>().ok()?, *v))
                    }
                    _ => None,
                })
                .collect();
            let seen = total
                .keys()
                .any(|k| matches!(k, Key::Bucket { metric, .. } if *metric == m.exported()));
            if !seen {
                return None;
            }
            b.sort_by(|x, y| x.0.total_cmp(&y.0));
            Some(Latency {
                metric: m.exported().to_string(),
                what: match m {
                    MetricName::ProcessingDuration => {
                        "normaliser batch, first record read to last output acknowledged"
                    }
                    MetricName::EngineFanoutLatency => {
                        "engine, input published to its notices committed"
                    }
                    _ => "engine transaction commit",
                },
                per_s: b.last().map_or(0.0, |x| x.1),
                p50_s: quantile(0.5, &b),
                p99_s: quantile(0.99, &b),
            })
        })
        .collect();
    s.feedback = feedback
        .into_iter()
        .map(|(d, mut f)| {
            f.department = d.to_string();
            f
        })
        .collect();
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const COURTS_T0: &str = r#"# HELP credit_bus_records_in_total Inbound records read
# TYPE credit_bus_records_in_total counter
credit_bus_records_in_total{department="courts"} 100
credit_bus_records_out_total{department="courts"} 90
credit_bus_records_dead_lettered_total{department="courts",reason="invalid_uscc"} 6
credit_bus_records_dead_lettered_total{department="courts",reason="invalid_date"} 4
credit_bus_consumer_lag{group="credit.normaliser.courts",partition="0",topic="credit.courts.inbound"} 7
credit_bus_consumer_lag{group="credit.normaliser.courts",partition="1",topic="credit.courts.inbound"} 3
credit_bus_processing_duration_seconds_bucket{department="courts",le="0.001"} 4
target_info{service_name="credit-normaliser"} 1
"#;

    const COURTS_T1: &str = r#"credit_bus_records_in_total{department="courts"} 300
credit_bus_records_out_total{department="courts"} 280
credit_bus_records_dead_lettered_total{department="courts",reason="invalid_uscc"} 12
credit_bus_records_dead_lettered_total{department="courts",reason="invalid_date"} 8
credit_bus_consumer_lag{group="credit.normaliser.courts",partition="0",topic="credit.courts.inbound"} 0
credit_bus_consumer_lag{group="credit.normaliser.courts",partition="1",topic="credit.courts.inbound"} 5
"#;

    const TAX: &str = r#"credit_bus_records_in_total{department="tax"} 50
credit_bus_records_out_total{department="tax"} 48
credit_bus_records_dead_lettered_total{department="tax",reason="invalid_uscc"} 2
"#;

    /// What the engine's `/metrics` shows (label values as the engine writes
    /// them, `NoticeKind::as_str`; the page test reads a real engine's).
    const ENGINE: &str = r#"credit_bus_notices_sent_total{department="finance",kind="punishment"} 40
credit_bus_notices_sent_total{department="finance",kind="lift"} 2
credit_bus_consumer_lag{group="credit.engine",partition="0",topic="credit.records"} 11
"#;

    const TRACKER: &str = r#"credit_bus_notices_tracked{department="finance",state="open"} 30
credit_bus_notices_tracked{department="finance",state="overdue"} 4
credit_bus_notices_tracked{department="finance",state="done"} 8
credit_bus_notices_tracked{department="tax",state="open"} 1
"#;

    fn round(at_ms: u64, targets: Vec<TargetScrape>) -> Round {
        Round {
            at_ms,
            targets,
            brokers: Vec::new(),
        }
    }

    fn up(name: &str, text: &str) -> TargetScrape {
        TargetScrape::up(name, &format!("http://{name}"), text)
    }

    fn down(name: &str) -> TargetScrape {
        TargetScrape::down(name, &format!("http://{name}"), "connection refused")
    }

    #[test]
    fn extract_keeps_only_the_series_it_reads() {
        let s = extract(COURTS_T0);
        // Counters, lag, and the latency histogram's buckets; not target_info.
        assert_eq!(s.len(), 7, "{s:?}");
        assert_eq!(
            s[&Key::ConsumerLag {
                group: "credit.normaliser.courts".into(),
                topic: "credit.courts.inbound".into(),
                partition: 1
            }],
            3.0
        );
    }

    #[test]
    fn nothing_scraped_yet_is_an_empty_summary() {
        assert_eq!(summarise(&[], 5000), Summary::default());
    }

    #[test]
    fn totals_and_rates_per_department_reason_and_kind() {
        let h = vec![
            round(
                10_000,
                vec![
                    up("courts", COURTS_T0),
                    up("tax", TAX),
                    up("engine", ENGINE),
                ],
            ),
            round(
                12_000,
                vec![
                    up("courts", COURTS_T1),
                    up("tax", TAX),
                    up("engine", ENGINE),
                ],
            ),
        ];
        let s = summarise(&h, 5000);
        assert_eq!(s.at_ms, 12_000);
        assert_eq!(s.window_s, 2.0);
        let courts = &s.departments[0];
        assert_eq!(courts.department, "courts");
        assert_eq!(courts.flow.records_in, 300.0);
        assert_eq!(courts.flow.records_out, 280.0);
        assert_eq!(courts.flow.dead_lettered, 20.0);
        assert_eq!(courts.flow.in_per_s, 100.0);
        assert_eq!(courts.flow.out_per_s, 95.0);
        assert_eq!(courts.flow.dead_per_s, 5.0);
        assert_eq!(courts.pass_rate, Some(100.0 * 280.0 / 300.0));
        assert_eq!(courts.flow.history_in_per_s, vec![100.0]);
        let tax = &s.departments[1];
        assert_eq!((tax.flow.records_in, tax.flow.in_per_s), (50.0, 0.0));
        assert_eq!(s.totals.records_in, 350.0);
        assert_eq!(s.totals.dead_lettered, 22.0);
        assert_eq!(s.totals.in_per_s, 100.0);
        // By reason over departments, fastest first.
        assert_eq!(
            s.dead_letter_reasons,
            vec![
                ReasonRate {
                    reason: "invalid_uscc".into(),
                    total: 14.0,
                    per_s: 3.0
                },
                ReasonRate {
                    reason: "invalid_date".into(),
                    total: 8.0,
                    per_s: 2.0
                },
            ]
        );
        assert_eq!(s.dead_letters.len(), 3);
        assert_eq!(
            s.notices,
            vec![
                NoticeRate {
                    department: "finance".into(),
                    kind: "lift".into(),
                    total: 2.0,
                    per_s: 0.0
                },
                NoticeRate {
                    department: "finance".into(),
                    kind: "punishment".into(),
                    total: 40.0,
                    per_s: 0.0
                },
            ]
        );
        assert_eq!(
            s.lag_by_group,
            vec![
                GroupLag {
                    group: "credit.engine".into(),
                    lag: 11.0,
                    history: vec![11.0, 11.0],
                },
                // Its trend: 10 then 5.
                GroupLag {
                    group: "credit.normaliser.courts".into(),
                    lag: 5.0,
                    history: vec![10.0, 5.0],
                },
            ]
        );
        assert_eq!(s.consumer_lag.len(), 3);
        assert!(s.targets.iter().all(|t| t.up));
    }

    #[test]
    fn rates_use_the_window_not_just_the_last_pair() {
        let t = |at, n: u64| {
            round(
                at,
                vec![up(
                    "courts",
                    &format!("credit_bus_records_in_total{{department=\"courts\"}} {n}\n"),
                )],
            )
        };
        // 0..4 s: 1000 records in the first second, none after.
        let h = vec![
            t(0, 0),
            t(1000, 1000),
            t(2000, 1000),
            t(3000, 1000),
            t(4000, 1000),
        ];
        let s = summarise(&h, 3000);
        // Window: from the round at 1 s to 4 s.
        assert_eq!(s.window_s, 3.0);
        assert_eq!(s.totals.in_per_s, 0.0);
        assert_eq!(s.totals.history_in_per_s, vec![1000.0, 0.0, 0.0, 0.0]);
        let s = summarise(&h, 4000);
        assert_eq!(s.totals.in_per_s, 250.0);
        // A window shorter than one interval still uses the last two rounds.
        assert_eq!(summarise(&h, 10).window_s, 1.0);
    }

    #[test]
    fn a_down_target_shows_as_down_and_never_as_a_negative_rate_or_spike() {
        let h = vec![
            round(0, vec![up("courts", COURTS_T0), up("tax", TAX)]),
            round(1000, vec![up("courts", COURTS_T0), down("tax")]),
            round(2000, vec![up("courts", COURTS_T0), up("tax", TAX)]),
        ];
        let s = summarise(&h[..2], 500);
        let tax = s.targets.iter().find(|t| t.name == "tax").unwrap();
        assert!(!tax.up);
        assert_eq!(tax.error.as_deref(), Some("connection refused"));
        // Totals come from who answered; tax is not there while down.
        assert_eq!(s.totals.records_in, 100.0);
        assert_eq!(s.departments.len(), 1);
        // Back up: its full counter is not counted as one second's work.
        let s = summarise(&h, 500);
        assert_eq!(s.totals.records_in, 150.0);
        assert_eq!(s.totals.in_per_s, 0.0);
        assert_eq!(s.totals.history_in_per_s, vec![0.0, 0.0]);
    }

    #[test]
    fn rates_start_where_each_target_first_answered_in_the_window() {
        let courts = |n: u64| {
            up(
                "courts",
                &format!("credit_bus_records_in_total{{department=\"courts\"}} {n}\n"),
            )
        };
        // courts was not up yet at the start of the window (a service starting),
        // tax answered throughout.
        let h = vec![
            round(0, vec![down("courts"), up("tax", "")]),
            round(1000, vec![courts(100), up("tax", "")]),
            round(2000, vec![courts(300), up("tax", TAX)]),
        ];
        let s = summarise(&h, 5000);
        assert_eq!(s.departments[0].flow.in_per_s, 200.0);
        assert_eq!(s.departments[1].flow.in_per_s, 25.0);
        assert_eq!(s.window_s, 2.0);
        assert_eq!(s.totals.history_in_per_s, vec![0.0, 250.0]);
    }

    #[test]
    fn a_restarted_service_counts_from_zero() {
        let t = |at, n: u64| {
            round(
                at,
                vec![up(
                    "courts",
                    &format!("credit_bus_records_in_total{{department=\"courts\"}} {n}\n"),
                )],
            )
        };
        let s = summarise(&[t(0, 5000), t(1000, 40)], 1000);
        assert_eq!(s.totals.in_per_s, 40.0);
    }

    #[test]
    fn new_series_count_from_zero_when_the_target_was_up() {
        let h = vec![
            round(0, vec![up("tax", "")]),
            round(1000, vec![up("tax", TAX)]),
        ];
        let s = summarise(&h, 1000);
        assert_eq!(s.totals.in_per_s, 50.0);
        assert_eq!(s.dead_letter_reasons[0].per_s, 2.0);
    }

    /// Every kind the engine counts lands in its own column, whatever the
    /// kind: the label values are `NoticeKind::as_str`, as in the engine's
    /// `count_committed`; an unknown value is counted apart, not dropped.
    #[test]
    fn notices_by_department_have_one_count_per_engine_kind() {
        let mut page = String::new();
        for (i, k) in NoticeKind::ALL.iter().enumerate() {
            page.push_str(&format!(
                "credit_bus_notices_sent_total{{department=\"finance\",kind=\"{}\"}} {}\n",
                k.as_str(),
                i + 1
            ));
        }
        page.push_str("credit_bus_notices_sent_total{department=\"tax\",kind=\"LIFT\"} 5\n");
        let s = summarise(&[round(0, vec![up("engine", &page)])], 1000);
        assert_eq!(
            s.notice_kinds,
            vec!["punishment", "reward", "lift", "withdrawal"]
        );
        assert_eq!(
            s.notices_by_department,
            vec![
                DepartmentNotices {
                    department: "finance".into(),
                    by_kind: vec![1.0, 2.0, 3.0, 4.0],
                    other: 0.0,
                    total: 10.0,
                    per_s: 0.0,
                },
                DepartmentNotices {
                    department: "tax".into(),
                    by_kind: vec![0.0; 4],
                    other: 5.0,
                    total: 5.0,
                    per_s: 0.0,
                },
            ]
        );
    }

    #[test]
    fn quantiles_interpolate_within_buckets_as_prometheus_does() {
        let b = [
            (0.01, 50.0),
            (0.1, 90.0),
            (1.0, 100.0),
            (f64::INFINITY, 100.0),
        ];
        assert_eq!(quantile(0.5, &b), Some(0.01));
        assert!((quantile(0.7, &b).unwrap() - 0.055).abs() < 1e-12);
        assert!((quantile(0.99, &b).unwrap() - 0.91).abs() < 1e-12);
        assert_eq!(quantile(0.5, &[(0.1, 0.0), (f64::INFINITY, 0.0)]), None);
        // Beyond the last finite bound: that bound.
        assert_eq!(
            quantile(0.99, &[(0.1, 1.0), (f64::INFINITY, 10.0)]),
            Some(0.1)
        );
    }

    /// The engine's fan-out histogram (as the exporter writes it, two
    /// departments' series summed) gives p50 / p99 over the window.
    #[test]
    fn latency_from_histogram_buckets_over_the_window() {
        let name = MetricName::EngineFanoutLatency.exported();
        let page = |n: f64| {
            let mut p = String::new();
            for d in ["tax", "courts"] {
                for (le, c) in [("0.005", 0.0), ("0.05", 0.5), ("0.5", 0.9), ("+Inf", 1.0)] {
                    p += &format!(
                        "{name}_bucket{{department=\"{d}\",le=\"{le}\"}} {}\n",
                        c * n
                    );
                }
                p += &format!("{name}_count{{department=\"{d}\"}} {n}\n");
            }
            p
        };
        let h = vec![
            round(0, vec![up("engine", &page(100.0))]),
            round(2_000, vec![up("engine", &page(300.0))]),
        ];
        let s = summarise(&h, 5000);
        assert_eq!(s.latency.len(), 1, "{:?}", s.latency);
        let l = &s.latency[0];
        assert_eq!(l.metric, name);
        assert_eq!(l.per_s, 200.0);
        assert!((l.p50_s.unwrap() - 0.05).abs() < 1e-12, "{l:?}");
        assert!((l.p99_s.unwrap() - 0.5).abs() < 1e-12, "{l:?}");
    }

    #[test]
    fn brokers_with_their_uptime_and_connect_trend_and_errors_by_class() {
        let probe = |up: bool, ms: f64| BrokerProbe {
            address: "127.0.0.1:9092".into(),
            up,
            connect_ms: up.then_some(ms),
            error: (!up).then(|| "connection refused".into()),
        };
        let errors = |n: u64| {
            format!(
                "credit_bus_errors_total{{class=\"retry\",error=\"kafka_transport\"}} {n}\n\
                 credit_bus_errors_total{{class=\"dead_letter\",error=\"invalid_uscc\"}} 3\n"
            )
        };
        let mut h = Vec::new();
        for (i, (listening, ms)) in [(true, 0.5), (false, 0.0), (true, 1.5), (true, 0.25)]
            .into_iter()
            .enumerate()
        {
            let mut r = round(i as u64 * 1000, vec![up("courts", &errors(10 * i as u64))]);
            r.brokers.push(probe(listening, ms));
            h.push(r);
        }
        let s = summarise(&h, 2000);
        assert_eq!(s.brokers.len(), 1);
        let b = &s.brokers[0];
        assert!(b.latest.up);
        assert_eq!(b.up_percent, 75.0);
        assert_eq!(b.history_connect_ms, vec![0.5, 0.0, 1.5, 0.25]);
        let retry = s.errors.iter().find(|e| e.class == "retry").unwrap();
        assert_eq!((retry.total, retry.per_s), (30.0, 10.0));
        let dl = s.errors.iter().find(|e| e.class == "dead_letter").unwrap();
        assert_eq!((dl.total, dl.per_s), (3.0, 0.0));
    }

    #[test]
    fn feedback_by_department_from_tracked_notices() {
        let s = summarise(
            &[round(0, vec![up("tracker", TRACKER), down("engine")])],
            1000,
        );
        assert_eq!(
            s.feedback,
            vec![
                Feedback {
                    department: "finance".into(),
                    open: 30.0,
                    overdue: 4.0,
                    done: 8.0
                },
                Feedback {
                    department: "tax".into(),
                    open: 1.0,
                    overdue: 0.0,
                    done: 0.0
                },
            ]
        );
        // One round: totals, no rates yet.
        assert_eq!(s.window_s, 0.0);
    }

    #[test]
    fn summary_serialises_with_flat_department_rows() {
        let s = summarise(&[round(0, vec![up("courts", COURTS_T0)])], 1000);
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["departments"][0]["department"], "courts");
        assert_eq!(v["departments"][0]["records_in"], 100.0);
        assert_eq!(v["targets"][0]["up"], true);
    }
}
