//! Configuration of the feedback tracker: `[feedback]` over the common sections.

use std::path::Path;

use credit_runtime::config::{Common, ConfigError, Loader, Validate};
use serde::Deserialize;

use crate::rules::{Calendar, Clock, parse_local_datetime};

pub const DEFAULTS: &str = include_str!("../default.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackConfig {
    /// Working days after the sending day before an unanswered notice is overdue.
    pub working_days: u32,
    /// Weekdays that are not working days, `YYYY-MM-DD`.
    pub holidays: Vec<String>,
    /// Weekend days that are working days, `YYYY-MM-DD`.
    pub working_weekends: Vec<String>,
    /// A fixed "now", `YYYY-MM-DDTHH:MM:SS` in UTC+8; empty for the system clock.
    pub now: String,
    /// Shifts the clock (fixed or system) by this many seconds.
    pub clock_offset_seconds: i64,
    /// How long feedback waits for its notice to stream in before the notice
    /// topics are read to their end to decide whether it is unknown (ms).
    pub pending_grace_ms: u64,
    /// How often the tracked-notices gauges are recomputed (ms).
    pub refresh_ms: u64,
}

fn days(list: &[String]) -> Vec<Result<i32, String>> {
    list.iter()
        .map(|d| credit_core::date::parse(d).ok_or_else(|| d.clone()))
        .collect()
}

impl Validate for FeedbackConfig {
    fn validate(&self, s: &str, p: &mut Vec<String>) {
        for (name, list) in [
            ("holidays", &self.holidays),
            ("working_weekends", &self.working_weekends),
        ] {
            for bad in days(list).into_iter().filter_map(Result::err) {
                p.push(format!("{s}.{name}: {bad:?} is not a YYYY-MM-DD date"));
            }
        }
        if !self.now.is_empty() && parse_local_datetime(&self.now).is_none() {
            p.push(format!(
                "{s}.now: {:?} is not YYYY-MM-DDTHH:MM:SS (UTC+8) or empty",
                self.now
            ));
        }
        if self.working_days > 366 {
            p.push(format!("{s}.working_days: at most 366"));
        }
        if self.refresh_ms < 10 {
            p.push(format!("{s}.refresh_ms: at least 10"));
        }
    }
}

impl FeedbackConfig {
    pub fn calendar(&self) -> Calendar {
        Calendar {
            holidays: days(&self.holidays).into_iter().flatten().collect(),
            working_weekends: days(&self.working_weekends).into_iter().flatten().collect(),
        }
    }

    pub fn clock(&self) -> Clock {
        Clock {
            fixed_ms: parse_local_datetime(&self.now),
            offset_ms: self.clock_offset_seconds.saturating_mul(1000),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub common: Common,
    pub feedback: FeedbackConfig,
}

impl Config {
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut l = Loader::new(DEFAULTS, file);
        let common = Common::load(&mut l);
        let feedback = l.section("feedback");
        l.finish(|| {
            Some(Config {
                common: common?,
                feedback: feedback?,
            })
        })
    }

    /// The embedded defaults alone, for tests and embedding.
    pub fn defaults() -> FeedbackConfig {
        let mut l = Loader::new(DEFAULTS, None);
        let f = l.section("feedback");
        l.finish(|| f).expect("embedded defaults are valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load_and_bad_values_are_all_reported() {
        let d = Config::defaults();
        assert_eq!(d.working_days, 5);
        assert_eq!(d.clock().fixed_ms, None);
        let bad = FeedbackConfig {
            holidays: vec!["2024-13-01".into(), "2024-05-01".into()],
            working_weekends: vec!["soon".into()],
            now: "tomorrow".into(),
            refresh_ms: 0,
            ..d
        };
        let mut p = Vec::new();
        bad.validate("feedback", &mut p);
        assert_eq!(p.len(), 4, "{p:?}");
        assert_eq!(bad.calendar().holidays.len(), 1);
    }
}
