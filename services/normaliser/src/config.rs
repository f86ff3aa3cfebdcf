//! Configuration of a normaliser instance.

use std::path::Path;

use credit_runtime::config::{Common, ConfigError, Loader, Validate};
use serde::Deserialize;

pub const DEFAULTS: &str = include_str!("../default.toml");

/// 960 KiB: with 16 KiB for key and headers it stays under the producer's
/// `message.max.bytes` of 1,000,000, which stays a record batch's header
/// under Kafka's default broker limit of 1,048,588 (`credit_runtime::limits`).
pub const DEFAULT_MAX_RECORD_BYTES: usize = 983_040;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormaliserConfig {
    /// Catalogue id of the department this instance serves.
    pub department: String,
    /// Records processed and acknowledged together before offsets are stored.
    pub batch_size: usize,
    /// Inbound values larger than this (bytes) are dead-lettered as
    /// `record_too_large` (a prefix, the length and a SHA-256 when the value
    /// does not fit the producer's limit). Checked at start: it plus 16 KiB
    /// must not exceed the producer's `message.max.bytes`
    /// (`credit_runtime::limits`). Default [`DEFAULT_MAX_RECORD_BYTES`].
    pub max_record_bytes: usize,
}

impl Validate for NormaliserConfig {
    fn validate(&self, s: &str, p: &mut Vec<String>) {
        match credit_core::catalogue::department(&self.department) {
            None => p.push(format!(
                "{s}.department: {:?} is not in the catalogue",
                self.department
            )),
            Some(d) if d.inbound.is_none() => p.push(format!(
                "{s}.department: {} publishes no format the bus normalises",
                d.id
            )),
            Some(_) => {}
        }
        if self.batch_size == 0 {
            p.push(format!("{s}.batch_size: must be at least 1"));
        }
        if self.max_record_bytes == 0 {
            p.push(format!("{s}.max_record_bytes: must be at least 1"));
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub common: Common,
    pub normaliser: NormaliserConfig,
}

impl Config {
    /// Loads the layers; `department` (a command-line flag) overrides them all.
    pub fn load(file: Option<&Path>, department: Option<&str>) -> Result<Config, ConfigError> {
        let mut l = Loader::new(DEFAULTS, file);
        if let Some(d) = department {
            l = l.set("normaliser.department", d);
        }
        let common = Common::load(&mut l);
        let normaliser = l.section("normaliser");
        l.finish(|| {
            Some(Config {
                common: common?,
                normaliser: normaliser?,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_embedded_default_is_the_documented_one() {
        let c = super::Config::load(None, None).unwrap();
        assert_eq!(
            c.normaliser.max_record_bytes,
            super::DEFAULT_MAX_RECORD_BYTES
        );
    }
}
