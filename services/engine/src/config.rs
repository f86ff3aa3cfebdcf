//! Configuration of an engine instance (`[engine]`; defaults in `default.toml`).

use std::path::Path;

use credit_runtime::config::{Common, ConfigError, Loader, Validate};
use serde::Deserialize;

pub const DEFAULTS: &str = include_str!("../default.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// Most inputs (records and commands) planned into one transaction.
    pub max_batch: usize,
    /// Longest a transaction stays open while input keeps arriving (ms).
    pub commit_interval_ms: u64,
    /// Kafka `transaction.timeout.ms` of the engine's producer.
    pub transaction_timeout_ms: u64,
    /// Measures catalogue file; empty means the shipped catalogue.
    pub catalogue_file: String,
    /// Static group membership id and transactional id suffix; empty = host name.
    pub instance_id: String,
    /// A fixed "today" (YYYY-MM-DD) for expiry; empty = the calendar.
    pub today: String,
}

impl Validate for EngineConfig {
    fn validate(&self, s: &str, p: &mut Vec<String>) {
        if self.max_batch == 0 {
            p.push(format!("{s}.max_batch: must be at least 1"));
        }
        if self.commit_interval_ms == 0 {
            p.push(format!("{s}.commit_interval_ms: must be at least 1"));
        }
        if !(1000..=900_000).contains(&self.transaction_timeout_ms) {
            p.push(format!(
                "{s}.transaction_timeout_ms: {} is outside 1000..=900000 (the broker's default maximum is 900000)",
                self.transaction_timeout_ms
            ));
        } else if self.transaction_timeout_ms < 10 * self.commit_interval_ms {
            p.push(format!(
                "{s}.transaction_timeout_ms: {} leaves too little room for commits every {} ms (use at least ten times commit_interval_ms)",
                self.transaction_timeout_ms, self.commit_interval_ms
            ));
        }
        if !self.today.is_empty() && credit_core::date::parse(&self.today).is_none() {
            p.push(format!(
                "{s}.today: {:?} is not a date (YYYY-MM-DD)",
                self.today
            ));
        }
        if !self.instance_id.is_empty()
            && !self
                .instance_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            p.push(format!(
                "{s}.instance_id: {:?} may hold only letters, digits, '.', '_' and '-'",
                self.instance_id
            ));
        }
        if !self.catalogue_file.is_empty() {
            match std::fs::read_to_string(&self.catalogue_file) {
                Err(e) => p.push(format!("{s}.catalogue_file: {}: {e}", self.catalogue_file)),
                Ok(text) => {
                    if let Err(e) = credit_measures::Catalogue::parse(&text) {
                        p.extend(e.0.into_iter().map(|x| format!("{s}.catalogue_file: {x}")));
                    }
                }
            }
        }
    }
}

impl EngineConfig {
    /// The catalogue this instance applies (validated at config load).
    pub fn catalogue(&self) -> Result<credit_measures::Catalogue, credit_measures::CatalogueError> {
        credit_measures::Catalogue::parse(&self.catalogue_text()?)
    }

    /// The TOML text of [`EngineConfig::catalogue`], as it is published.
    pub fn catalogue_text(&self) -> Result<String, credit_measures::CatalogueError> {
        if self.catalogue_file.is_empty() {
            Ok(credit_measures::V1.to_string())
        } else {
            std::fs::read_to_string(&self.catalogue_file)
                .map_err(|e| credit_measures::CatalogueError(vec![e.to_string()]))
        }
    }

    /// This instance's id: the configured one, else the host name.
    pub fn instance(&self) -> String {
        if !self.instance_id.is_empty() {
            return self.instance_id.clone();
        }
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .or_else(|_| std::env::var("HOSTNAME"))
            .unwrap_or_default();
        let host: String = host
            .trim()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || "._-".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        if host.is_empty() {
            "engine".into()
        } else {
            host
        }
    }

    /// Today, in days since 1970-01-01: the fixed date, else the city's calendar.
    pub fn today(&self) -> i32 {
        credit_core::date::parse(&self.today).unwrap_or_else(credit_runtime::today)
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub common: Common,
    pub engine: EngineConfig,
}

impl Config {
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut l = Loader::new(DEFAULTS, file);
        let common = Common::load(&mut l);
        let engine = l.section("engine");
        l.finish(|| {
            Some(Config {
                common: common?,
                engine: engine?,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_defaults_load_and_every_problem_is_reported() {
        let c = Config::load(None).expect("defaults load");
        assert!(c.engine.max_batch > 0);
        let mut bad = c.engine.clone();
        bad.max_batch = 0;
        bad.transaction_timeout_ms = 500;
        bad.today = "2026-02-30".into();
        bad.instance_id = "a b".into();
        let mut p = Vec::new();
        bad.validate("engine", &mut p);
        assert_eq!(p.len(), 4, "{p:?}");
        assert!(p.iter().any(|x| x.contains("engine.today")), "{p:?}");
    }

    #[test]
    fn a_fixed_today_is_used_and_instance_ids_are_legal() {
        let mut c = Config::load(None).unwrap().engine;
        c.today = "2030-01-02".into();
        assert_eq!(c.today(), credit_core::date::days_from_civil(2030, 1, 2));
        c.instance_id = String::new();
        let id = c.instance();
        assert!(!id.is_empty());
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
            "{id}"
        );
    }
}
