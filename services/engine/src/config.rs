//! Configuration of an engine instance.

use std::path::Path;

use credit_runtime::config::{Common, ConfigError, Loader, Validate};
use serde::Deserialize;

pub const DEFAULTS: &str = include_str!("../default.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// Input records and commands per batch (one checkpoint per batch).
    pub batch_size: usize,
    /// Measures catalogue file; empty means the shipped catalogue.
    pub catalogue_file: String,
    /// Wait between claiming a partition and reading its state (ms).
    pub takeover_grace_ms: u64,
    /// Static group membership id; empty for dynamic membership.
    pub instance_id: String,
}

impl Validate for EngineConfig {
    fn validate(&self, s: &str, p: &mut Vec<String>) {
        if self.batch_size == 0 {
            p.push(format!("{s}.batch_size: must be at least 1"));
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
