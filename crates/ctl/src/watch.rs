//! `credit-bus watch`: the live terminal view, scraped from the services'
//! `/metrics`.
//!
//! The view fits a 50-line terminal whatever the figures (at most 45 lines,
//! a unit test checks): one row per publishing department with its target rate
//! against the rate reached, dead letters by reason over all departments (the
//! commonest few), notices by kind in one line, and feedback for the
//! departments that answer with the rest summed up. `--detail` adds every
//! department's reasons, kinds and feedback (and may scroll); the dashboard
//! shows them all too.
//!
//! [`Figures::add_page`] and [`render`] are pure, so the layout is unit-tested.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Context;
use credit_core::notice::NoticeKind;
use credit_runtime::metrics::{MetricName, label};

use crate::prom;

/// The compact view never prints more lines than this.
#[cfg(test)]
const MAX_LINES: usize = 45;
/// Dead-letter reasons listed in the compact view; the rest are summed.
const TOP_REASONS: usize = 6;
/// Departments with feedback listed in the compact view; the rest are summed.
const TOP_FEEDBACK: usize = 6;
/// Reached rates are averaged over this long.
const RATE_WINDOW: Duration = Duration::from_secs(5);

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Row {
    pub received: f64,
    pub accepted: f64,
    pub dead: f64,
}

/// Feedback on one department's notices, and what is still queued.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Tracked {
    pub open: f64,
    pub overdue: f64,
    pub done: f64,
    /// Notices the engine sent this department that the tracker has not
    /// read yet (sent minus open, overdue and done; 0 when the engine's
    /// counters restarted below it): queued on the notices topic.
    pub unread: f64,
}

/// One round of scrapes, summed over the services that answered.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Figures {
    pub rows: BTreeMap<String, Row>,
    pub reasons: BTreeMap<(String, String), f64>,
    pub notices: BTreeMap<(String, String), f64>,
    pub tracked: BTreeMap<String, Tracked>,
    pub down: Vec<String>,
}

impl Figures {
    /// What the tracker has not read yet, per department: notices the engine
    /// counts as sent minus those the tracker knows. Call once every page is in.
    pub fn settle(&mut self) {
        let mut sent: BTreeMap<&str, f64> = BTreeMap::new();
        for ((dept, _), v) in &self.notices {
            *sent.entry(dept).or_default() += v;
        }
        for (dept, n) in sent {
            let t = self.tracked.entry(dept.to_string()).or_default();
            t.unread = (n - t.open - t.overdue - t.done).max(0.0);
        }
    }

    /// Adds one service's `/metrics` page.
    pub fn add_page(&mut self, text: &str) {
        for s in prom::parse(text) {
            let dept = s.label(label::DEPARTMENT).unwrap_or("-").to_string();
            if s.name == MetricName::NoticesTracked.exported() {
                let t = self.tracked.entry(dept).or_default();
                match s.label(label::STATE) {
                    Some("open") => t.open += s.value,
                    Some("overdue") => t.overdue += s.value,
                    Some("done") => t.done += s.value,
                    _ => {}
                }
            } else if s.name == MetricName::NoticesSent.exported() {
                let kind = s.label(label::KIND).unwrap_or("-").to_string();
                *self.notices.entry((dept, kind)).or_default() += s.value;
            } else if s.name == MetricName::RecordsIn.exported() {
                self.rows.entry(dept).or_default().received += s.value;
            } else if s.name == MetricName::RecordsOut.exported() {
                self.rows.entry(dept).or_default().accepted += s.value;
            } else if s.name == MetricName::RecordsDeadLettered.exported() {
                self.rows.entry(dept.clone()).or_default().dead += s.value;
                let reason = s.label(label::REASON).unwrap_or("-").to_string();
                *self.reasons.entry((dept, reason)).or_default() += s.value;
            }
        }
    }
}

/// What the view shows besides the figures.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Records per second each publishing department is meant to send.
    pub target_rate: Option<f64>,
    /// Every department's reasons, kinds and feedback (may exceed 50 lines).
    pub detail: bool,
}

fn fmt_count(v: f64) -> String {
    format!("{v:.0}")
}

/// The view of `f`; `reached` is each department's received records per
/// second over the rate window (absent before two rounds).
pub fn render(f: &Figures, reached: &BTreeMap<String, f64>, clock: &str, opts: &Options) -> String {
    let mut out = Vec::<String>::new();
    out.push(format!(
        "credit-bus live view, {clock}  (Ctrl-C stops the demo{})",
        if opts.detail {
            ""
        } else {
            "; --detail: every figure"
        }
    ));
    out.push(String::new());
    out.push(format!(
        "{:<14}{:>11}{:>11}{:>12}{:>9}{:>10}{:>10}",
        "publishing", "received", "accepted", "dead-letter", "pass %", "target/s", "reached/s"
    ));
    let target = opts
        .target_rate
        .map_or_else(|| "-".to_string(), |t| format!("{t:.0}"));
    let mut total = Row::default();
    let mut total_rate = 0.0;
    for (dept, r) in &f.rows {
        let rate = reached.get(dept).copied();
        total_rate += rate.unwrap_or(0.0);
        total.received += r.received;
        total.accepted += r.accepted;
        total.dead += r.dead;
        out.push(row_line(dept, r, &target, rate));
    }
    let all_target = opts
        .target_rate
        .map_or_else(|| "-".into(), |t| format!("{:.0}", t * f.rows.len() as f64));
    out.push(row_line("all", &total, &all_target, Some(total_rate)));
    if let Some(t) = opts.target_rate
        && !f.rows.is_empty()
        && total_rate < 0.9 * t * f.rows.len() as f64
        && reached.len() == f.rows.len()
    {
        out.push(format!(
            "  below target: {total_rate:.0}/s reached of {:.0}/s",
            t * f.rows.len() as f64
        ));
    }

    // Dead letters by reason.
    out.push(String::new());
    if opts.detail {
        out.push("dead letters by department and reason".into());
        for ((dept, reason), v) in &f.reasons {
            out.push(format!("  {dept:<14}{reason:<30}{:>10}", fmt_count(*v)));
        }
    } else {
        let mut by_reason: BTreeMap<&str, f64> = BTreeMap::new();
        for ((_, reason), v) in &f.reasons {
            *by_reason.entry(reason).or_default() += v;
        }
        let mut sorted: Vec<_> = by_reason.into_iter().collect();
        sorted.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
        out.push("dead letters by reason (all departments)".into());
        for (reason, v) in sorted.iter().take(TOP_REASONS) {
            out.push(format!("  {reason:<38}{:>10}", fmt_count(*v)));
        }
        if sorted.len() > TOP_REASONS {
            let rest: f64 = sorted[TOP_REASONS..].iter().map(|(_, v)| v).sum();
            out.push(format!(
                "  {:<38}{:>10}",
                format!("{} other reasons", sorted.len() - TOP_REASONS),
                fmt_count(rest)
            ));
        }
    }

    // Notices by kind: the engine's label values (NoticeKind::as_str).
    if !f.notices.is_empty() {
        out.push(String::new());
        let mut by_kind: BTreeMap<&str, f64> = BTreeMap::new();
        for ((_, kind), v) in &f.notices {
            *by_kind.entry(kind).or_default() += v;
        }
        let depts = f
            .notices
            .keys()
            .map(|(d, _)| d)
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        let mut parts: Vec<String> = NoticeKind::ALL
            .iter()
            .map(|k| {
                format!(
                    "{} {}",
                    k.as_str(),
                    fmt_count(by_kind.remove(k.as_str()).unwrap_or(0.0))
                )
            })
            .collect();
        parts.extend(
            by_kind
                .iter()
                .map(|(k, v)| format!("{k} {}", fmt_count(*v))),
        );
        out.push(format!("notices sent to {depts} departments by kind"));
        out.push(format!("  {}", parts.join("   ")));
        if opts.detail {
            for ((dept, kind), v) in &f.notices {
                out.push(format!("  {dept:<20}{kind:<14}{:>10}", fmt_count(*v)));
            }
        }
    }

    // Feedback: departments that answer first, the rest summed.
    let mut tracked: Vec<(&String, &Tracked)> = f
        .tracked
        .iter()
        .filter(|(_, t)| t.open + t.overdue + t.done + t.unread > 0.0)
        .collect();
    if !tracked.is_empty() {
        tracked.sort_by(|a, b| b.1.done.total_cmp(&a.1.done).then(a.0.cmp(b.0)));
        out.push(String::new());
        out.push(format!(
            "feedback on notices{:<10}{:>10}{:>10}{:>10}{:>16}",
            "", "open", "overdue", "done", "not tracked yet"
        ));
        let shown = if opts.detail {
            tracked.len()
        } else {
            tracked
                .iter()
                .take(TOP_FEEDBACK)
                .take_while(|(_, t)| t.done > 0.0)
                .count()
        };
        for (dept, t) in &tracked[..shown] {
            out.push(feedback_line(&format!("  {dept}"), t));
        }
        if shown < tracked.len() {
            let mut rest = Tracked::default();
            for (_, t) in &tracked[shown..] {
                rest.open += t.open;
                rest.overdue += t.overdue;
                rest.done += t.done;
                rest.unread += t.unread;
            }
            out.push(feedback_line(
                &format!("  {} other departments", tracked.len() - shown),
                &rest,
            ));
        }
        out.push("  open: no answer yet; not tracked yet: sent, queued for the tracker".into());
    }
    if !f.down.is_empty() {
        out.push(String::new());
        out.push(format!("not answering: {}", f.down.join(", ")));
    }
    let mut s = out.join("\n");
    s.push('\n');
    s
}

fn row_line(dept: &str, r: &Row, target: &str, rate: Option<f64>) -> String {
    let pass = if r.accepted + r.dead > 0.0 {
        format!("{:.2}", 100.0 * r.accepted / (r.accepted + r.dead))
    } else {
        "-".into()
    };
    let rate = rate.map_or_else(|| "-".into(), |r| format!("{r:.0}"));
    format!(
        "{dept:<14}{:>11}{:>11}{:>12}{pass:>9}{target:>10}{rate:>10}",
        fmt_count(r.received),
        fmt_count(r.accepted),
        fmt_count(r.dead)
    )
}

fn feedback_line(name: &str, t: &Tracked) -> String {
    format!(
        "{name:<29}{:>10}{:>10}{:>10}{:>16}",
        fmt_count(t.open),
        fmt_count(t.overdue),
        fmt_count(t.done),
        fmt_count(t.unread)
    )
}

/// Received records per second per department between the oldest kept round
/// within [`RATE_WINDOW`] and now.
fn reached(history: &VecDeque<(Instant, BTreeMap<String, f64>)>) -> BTreeMap<String, f64> {
    let (Some((t0, first)), Some((t1, last))) = (history.front(), history.back()) else {
        return BTreeMap::new();
    };
    let dt = t1.duration_since(*t0).as_secs_f64();
    if dt <= 0.0 {
        return BTreeMap::new();
    }
    last.iter()
        .map(|(d, v)| {
            let before = first.get(d).copied().unwrap_or(0.0);
            // A restarted normaliser counts from zero.
            let inc = if *v >= before { v - before } else { *v };
            (d.clone(), inc / dt)
        })
        .collect()
}

/// UTC wall-clock time, `HH:MM:SS UTC`.
fn clock() -> String {
    let s = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format!(
        "{:02}:{:02}:{:02} UTC",
        (s / 3600) % 24,
        (s / 60) % 60,
        s % 60
    )
}

pub async fn run(
    services: Vec<String>,
    interval_ms: u64,
    iterations: u64,
    opts: Options,
) -> anyhow::Result<()> {
    let targets: Vec<(String, String)> = services
        .iter()
        .map(|s| {
            s.split_once('=').map(|(n, u)| {
                (
                    n.to_string(),
                    format!("{}/metrics", u.trim_end_matches('/')),
                )
            })
        })
        .collect::<Option<_>>()
        .context("--service must be NAME=URL")?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()?;
    let mut history: VecDeque<(Instant, BTreeMap<String, f64>)> = VecDeque::new();
    let mut n = 0u64;
    loop {
        let mut f = Figures::default();
        for (name, url) in &targets {
            match http
                .get(url)
                .send()
                .await
                .and_then(|r| r.error_for_status())
            {
                Ok(r) => f.add_page(&r.text().await.unwrap_or_default()),
                Err(_) => f.down.push(name.clone()),
            }
        }
        f.settle();
        let now = Instant::now();
        history.push_back((
            now,
            f.rows
                .iter()
                .map(|(d, r)| (d.clone(), r.received))
                .collect(),
        ));
        while history
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > RATE_WINDOW)
            && history.len() > 2
        {
            history.pop_front();
        }
        let view = render(&f, &reached(&history), &clock(), &opts);
        print!("\x1b[2J\x1b[H{view}");
        std::io::stdout().flush()?;
        n += 1;
        if iterations > 0 && n >= iterations {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(interval_ms)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use credit_core::catalogue::{DEPARTMENTS, publishing_departments};

    /// A busy bus: every publishing department with every reason, every
    /// department with notices of every kind and feedback, the tracker lagging.
    fn busy() -> Figures {
        let mut page = String::new();
        let reasons = [
            "invalid_uscc",
            "invalid_resident_id",
            "invalid_date",
            "missing_field",
            "unknown_list",
            "bad_amount",
            "bad_encoding",
            "duplicate",
        ];
        for d in publishing_departments() {
            page += &format!(
                "credit_bus_records_in_total{{department=\"{}\"}} 1000\n",
                d.id
            );
            page += &format!(
                "credit_bus_records_out_total{{department=\"{}\"}} 950\n",
                d.id
            );
            for r in reasons {
                page += &format!(
                    "credit_bus_records_dead_lettered_total{{department=\"{}\",reason=\"{r}\"}} 6\n",
                    d.id
                );
            }
        }
        for d in DEPARTMENTS {
            for k in NoticeKind::ALL {
                page += &format!(
                    "credit_bus_notices_sent_total{{department=\"{}\",kind=\"{}\"}} 10\n",
                    d.id,
                    k.as_str()
                );
            }
            for (state, v) in [("open", 5), ("overdue", 1), ("done", 4)] {
                page += &format!(
                    "credit_bus_notices_tracked{{department=\"{}\",state=\"{state}\"}} {v}\n",
                    d.id
                );
            }
        }
        let mut f = Figures::default();
        f.add_page(&page);
        f.settle();
        f.down.push("quality".into());
        f
    }

    #[test]
    fn the_view_fits_a_50_line_terminal_and_shows_every_publisher() {
        let f = busy();
        let reached: BTreeMap<String, f64> = f.rows.keys().map(|d| (d.clone(), 131.0)).collect();
        let opts = Options {
            target_rate: Some(200.0),
            detail: false,
        };
        let view = render(&f, &reached, "12:00:00 UTC", &opts);
        let lines: Vec<&str> = view.lines().collect();
        assert!(lines.len() <= MAX_LINES, "{} lines:\n{view}", lines.len());
        assert!(lines.iter().all(|l| l.chars().count() <= 100), "{view}");
        for d in publishing_departments() {
            let row = lines
                .iter()
                .find(|l| l.starts_with(&format!("{} ", d.id)))
                .unwrap_or_else(|| panic!("no row for {}:\n{view}", d.id));
            // Target against reached, side by side.
            assert!(row.ends_with("       200       131"), "{row}");
        }
        assert!(
            view.contains("below target: 655/s reached of 1000/s"),
            "{view}"
        );
        assert!(view.contains("2 other reasons"), "{view}");
        let n = DEPARTMENTS.len();
        assert!(
            view.contains(&format!(
                "punishment {n}0   reward {n}0   lift {n}0   withdrawal {n}0"
            )),
            "{view}"
        );
        assert!(view.contains("other departments"), "{view}");
        assert!(view.contains("not answering: quality"), "{view}");
        assert!(view.contains("12:00:00 UTC"), "{view}");

        // --detail lists every department's reasons and kinds.
        let detail = render(
            &f,
            &reached,
            "12:00:00 UTC",
            &Options {
                detail: true,
                ..opts
            },
        );
        assert!(detail.lines().count() > MAX_LINES);
        assert!(detail.contains("courts        duplicate"), "{detail}");
    }

    #[test]
    fn notices_not_tracked_yet_per_department_and_rates_come_from_the_window() {
        let f = busy();
        // 40 sent (10 per kind), 5 open + 1 overdue + 4 done tracked.
        assert_eq!(f.tracked["finance"].unread, 30.0);
        assert_eq!(f.tracked["finance"].done, 4.0);
        let t0 = Instant::now();
        let h: VecDeque<_> = [
            (t0, BTreeMap::from([("courts".to_string(), 100.0)])),
            (
                t0 + Duration::from_secs(1),
                BTreeMap::from([("courts".to_string(), 250.0)]),
            ),
            (
                t0 + Duration::from_secs(2),
                BTreeMap::from([("courts".to_string(), 500.0)]),
            ),
        ]
        .into();
        assert_eq!(reached(&h)["courts"], 200.0);
    }

    #[test]
    fn an_empty_bus_renders() {
        let view = render(
            &Figures::default(),
            &BTreeMap::new(),
            "00:00:00 UTC",
            &Options::default(),
        );
        assert!(view.contains("all"), "{view}");
    }
}
