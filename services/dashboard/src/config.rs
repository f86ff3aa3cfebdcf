//! Configuration of the dashboard.

use std::path::Path;

use credit_runtime::config::{ConfigError, KafkaConfig, Loader, TelemetryConfig, Validate};
use serde::Deserialize;

pub const DEFAULTS: &str = include_str!("../default.toml");

/// One service's ops endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// What the page calls it (`courts`, `engine`, `registry`).
    pub name: String,
    /// Base URL of its ops endpoints; `/metrics` is appended.
    pub url: String,
}

impl Target {
    /// Parses `name=url` (the `--target` flag).
    pub fn parse(s: &str) -> Option<Target> {
        let (name, url) = s.split_once('=')?;
        Some(Target {
            name: name.trim().to_string(),
            url: url.trim().to_string(),
        })
    }

    pub fn metrics_url(&self) -> String {
        format!("{}/metrics", self.url.trim_end_matches('/'))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardConfig {
    /// Address of `/`, `/api/summary` and the ops endpoints.
    pub listen: String,
    /// How often every target is scraped.
    pub scrape_interval_ms: u64,
    /// Scrape rounds kept for rates and sparklines.
    pub history: usize,
    /// Ops endpoints to scrape.
    pub targets: Vec<Target>,
    /// Records per second each publishing department is meant to send (the
    /// demo's publisher rate), shown against the rate reached; 0 = none.
    pub target_rate_per_s: f64,
    /// Kafka listeners (`host:port`) probed each round with a TCP connect.
    pub brokers: Vec<String>,
    /// Read the publishing departments' dead-letter topics (with the
    /// `[kafka]` section's login) for one sample per reason, personal data
    /// masked; off: no Kafka access at all.
    pub dead_letter_samples: bool,
    /// The archive's API base URL for the subject view; empty = none.
    pub archive_url: String,
    /// A file holding the bearer token of a department with role `read`
    /// (only: what the page shows is then masked); needed with `archive_url`.
    pub archive_token_file: String,
}

impl Validate for DashboardConfig {
    fn validate(&self, s: &str, p: &mut Vec<String>) {
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            p.push(format!("{s}.listen: {:?} is not ip:port", self.listen));
        }
        if self.scrape_interval_ms < 100 {
            p.push(format!("{s}.scrape_interval_ms: must be at least 100"));
        }
        if !(self.target_rate_per_s >= 0.0 && self.target_rate_per_s.is_finite()) {
            p.push(format!("{s}.target_rate_per_s: must be 0 (none) or more"));
        }
        for (i, b) in self.brokers.iter().enumerate() {
            if b.rsplit_once(':')
                .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
            {
                p.push(format!("{s}.brokers[{i}]: {b:?} is not host:port"));
            }
        }
        if !self.archive_url.is_empty() {
            if !(self.archive_url.starts_with("http://")
                || self.archive_url.starts_with("https://"))
            {
                p.push(format!(
                    "{s}.archive_url: {:?} is not an http(s) URL",
                    self.archive_url
                ));
            }
            if self.archive_token_file.is_empty() {
                p.push(format!(
                    "{s}.archive_token_file: needed with archive_url (a department token with role read)"
                ));
            }
        }
        if self.history < 2 {
            p.push(format!("{s}.history: must be at least 2"));
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, t) in self.targets.iter().enumerate() {
            if t.name.is_empty() {
                p.push(format!("{s}.targets[{i}].name: must not be empty"));
            } else if !seen.insert(&t.name) {
                p.push(format!("{s}.targets[{i}].name: {:?} appears twice", t.name));
            }
            if !(t.url.starts_with("http://") || t.url.starts_with("https://")) {
                p.push(format!(
                    "{s}.targets[{i}].url: {:?} is not an http(s) URL",
                    t.url
                ));
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub telemetry: TelemetryConfig,
    pub dashboard: DashboardConfig,
    /// Loaded only with `dashboard.dead_letter_samples`.
    pub kafka: Option<KafkaConfig>,
}

impl Config {
    /// Loads the layers; `targets` (from `--target` flags), when not empty,
    /// replaces the configured list, and `listen` (`--listen`) the address.
    pub fn load(
        file: Option<&Path>,
        listen: Option<&str>,
        targets: &[String],
    ) -> Result<Config, ConfigError> {
        let mut l = Loader::new(DEFAULTS, file);
        if let Some(a) = listen {
            l = l.set("dashboard.listen", a);
        }
        let telemetry = l.section::<TelemetryConfig>("telemetry");
        let mut dashboard = l.section::<DashboardConfig>("dashboard");
        let mut flag_problems = Vec::new();
        if !targets.is_empty() {
            let parsed: Vec<Target> = targets
                .iter()
                .filter_map(|t| {
                    let p = Target::parse(t);
                    if p.is_none() {
                        flag_problems.push(format!("--target {t:?}: must be NAME=URL"));
                    }
                    p
                })
                .collect();
            if let Some(d) = dashboard.as_mut() {
                d.targets = parsed;
                let mut problems = Vec::new();
                d.validate("dashboard", &mut problems);
                flag_problems.extend(problems);
            }
        }
        let kafka = match &dashboard {
            Some(d) if d.dead_letter_samples => Some(l.section::<KafkaConfig>("kafka")),
            _ => None,
        };
        let result = l.finish(|| {
            Some(Config {
                telemetry: telemetry?,
                dashboard: dashboard?,
                kafka: match kafka {
                    Some(k) => Some(k?),
                    None => None,
                },
            })
        });
        match result {
            Ok(c) if flag_problems.is_empty() => Ok(c),
            Ok(_) => Err(ConfigError(flag_problems)),
            Err(mut e) => {
                for p in flag_problems {
                    if !e.0.contains(&p) {
                        e.0.push(p);
                    }
                }
                Err(e)
            }
        }
    }
}

#[cfg(test)]
// figment's Jail API returns its own large error type.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load() {
        figment::Jail::expect_with(|_| {
            let c = Config::load(None, None, &[]).unwrap();
            assert_eq!(c.dashboard.listen, "127.0.0.1:9200");
            assert_eq!(c.dashboard.scrape_interval_ms, 1000);
            assert!(c.dashboard.targets.is_empty());
            Ok(())
        });
    }

    #[test]
    fn targets_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            jail.set_env(
                "CREDIT_BUS__DASHBOARD__TARGETS",
                r#"[{name="courts",url="http://127.0.0.1:9101"},{name="engine",url="http://127.0.0.1:9110"}]"#,
            );
            let c = Config::load(None, None, &[]).unwrap();
            assert_eq!(
                c.dashboard.targets,
                vec![
                    Target::parse("courts=http://127.0.0.1:9101").unwrap(),
                    Target::parse("engine=http://127.0.0.1:9110").unwrap(),
                ]
            );
            Ok(())
        });
    }

    #[test]
    fn the_archive_link_needs_an_http_url_and_a_token_file() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("CREDIT_BUS__DASHBOARD__ARCHIVE_URL", "ftp://archive");
            let err = Config::load(None, None, &[]).unwrap_err().to_string();
            assert!(err.contains("archive_url"), "{err}");
            assert!(err.contains("archive_token_file"), "{err}");
            jail.set_env(
                "CREDIT_BUS__DASHBOARD__ARCHIVE_URL",
                "http://127.0.0.1:9140",
            );
            jail.set_env(
                "CREDIT_BUS__DASHBOARD__ARCHIVE_TOKEN_FILE",
                "/run/finance.token",
            );
            let c = Config::load(None, None, &[]).unwrap();
            assert_eq!(c.dashboard.archive_token_file, "/run/finance.token");
            Ok(())
        });
    }

    #[test]
    fn flags_replace_targets_and_every_problem_is_reported() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("CREDIT_BUS__DASHBOARD__SCRAPE_INTERVAL_MS", "5");
            let err = Config::load(
                None,
                Some("nowhere"),
                &["a=http://x".into(), "a=ftp://y".into(), "junk".into()],
            )
            .unwrap_err()
            .to_string();
            for want in [
                "dashboard.listen",
                "scrape_interval_ms",
                "appears twice",
                "not an http(s) URL",
                "--target \"junk\"",
            ] {
                assert!(err.contains(want), "{want}: {err}");
            }
            let c = Config::load(None, None, &["tax=http://127.0.0.1:9104".into()]);
            assert!(c.is_err(), "the env's interval is still bad");
            Ok(())
        });
    }
}
