//! Configuration of the registry service.

use std::path::Path;

use credit_runtime::config::{Common, ConfigError, Loader, Validate};
use serde::Deserialize;

use crate::state::Compatibility;

pub const DEFAULTS: &str = include_str!("../default.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryServiceConfig {
    /// `ip:port` of the REST API.
    pub listen: String,
    /// Compacted topic holding the registry's state.
    pub topic: String,
    /// Default compatibility level.
    pub compatibility: String,
}

impl RegistryServiceConfig {
    pub fn compatibility(&self) -> Compatibility {
        Compatibility::parse(&self.compatibility).unwrap_or(Compatibility::Backward)
    }
}

impl Validate for RegistryServiceConfig {
    fn validate(&self, s: &str, p: &mut Vec<String>) {
        if self.listen.parse::<std::net::SocketAddr>().is_err() {
            p.push(format!("{s}.listen: {:?} is not ip:port", self.listen));
        }
        if self.topic.is_empty() {
            p.push(format!("{s}.topic: must not be empty"));
        }
        if Compatibility::parse(&self.compatibility).is_none() {
            p.push(format!(
                "{s}.compatibility: {:?} is not a compatibility level",
                self.compatibility
            ));
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub common: Common,
    pub registry: RegistryServiceConfig,
}

impl Config {
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut l = Loader::new(DEFAULTS, file);
        let common = Common::load(&mut l);
        let registry = l.section("registry_service");
        l.finish(|| {
            Some(Config {
                common: common?,
                registry: registry?,
            })
        })
    }
}
