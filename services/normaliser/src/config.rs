//! Configuration of a normaliser instance.

use std::path::Path;

use credit_runtime::config::{Common, ConfigError, Loader, Validate};
use serde::Deserialize;

pub const DEFAULTS: &str = include_str!("../default.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NormaliserConfig {
    /// Catalogue id of the department this instance serves.
    pub department: String,
    /// Records processed and acknowledged together before offsets are stored.
    pub batch_size: usize,
    /// Inbound values larger than this (bytes) are dead-lettered as `record_too_large`.
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
