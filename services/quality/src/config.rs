//! Configuration of the quality service: `[quality]` over the common sections.

use std::path::Path;

use credit_runtime::config::{Common, ConfigError, Loader, Validate};
use serde::Deserialize;

pub const DEFAULTS: &str = include_str!("../default.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QualityConfig {
    /// Records read per batch.
    pub batch_size: usize,
    /// Most conflicting codes `/report` lists.
    pub report_limit: usize,
}

impl Validate for QualityConfig {
    fn validate(&self, s: &str, p: &mut Vec<String>) {
        if self.batch_size == 0 || self.batch_size > 100_000 {
            p.push(format!("{s}.batch_size: 1..=100000"));
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub common: Common,
    pub quality: QualityConfig,
}

impl Config {
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut l = Loader::new(DEFAULTS, file);
        let common = Common::load(&mut l);
        let quality = l.section("quality");
        l.finish(|| {
            Some(Config {
                common: common?,
                quality: quality?,
            })
        })
    }

    /// The embedded defaults alone, for tests and embedding.
    pub fn defaults() -> QualityConfig {
        let mut l = Loader::new(DEFAULTS, None);
        let q = l.section("quality");
        l.finish(|| q).expect("embedded defaults are valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load_and_bad_values_are_reported() {
        let d = Config::defaults();
        assert_eq!(d.batch_size, 1000);
        let mut p = Vec::new();
        QualityConfig { batch_size: 0, ..d }.validate("quality", &mut p);
        assert_eq!(p.len(), 1, "{p:?}");
    }
}
