//! Configuration of the archive: `[archive]` over the common sections.

use std::fmt;
use std::path::{Path, PathBuf};

use credit_runtime::config::{Common, ConfigError, Loader, REDACTED, Validate};
use serde::Deserialize;

use crate::auth::Role;

pub const DEFAULTS: &str = include_str!("../default.toml");

/// One department that may call the API.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DepartmentAccess {
    /// Catalogue department id.
    pub id: String,
    /// A file holding the department's bearer token (trailing newline ignored).
    pub token_file: Option<PathBuf>,
    /// An environment variable holding it.
    pub token_env: Option<String>,
    /// Or only its SHA-256, hex: the token itself never enters the config.
    pub token_sha256: Option<String>,
    /// What it may do: `read` (subjects, measures, pre-check), `personal_data`
    /// (natural persons' ID numbers and names unmasked), `audit` (the audit log).
    #[serde(default)]
    pub roles: Vec<Role>,
}

impl fmt::Debug for DepartmentAccess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DepartmentAccess")
            .field("id", &self.id)
            .field("token_file", &self.token_file)
            .field("token_env", &self.token_env)
            .field(
                "token_sha256",
                &self.token_sha256.as_ref().map(|_| REDACTED),
            )
            .field("roles", &self.roles)
            .finish()
    }
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveConfig {
    /// PostgreSQL URL (may hold a password: never printed).
    pub database_url: String,
    /// Connections in the pool.
    pub pool_size: u32,
    /// Messages per database transaction at most.
    pub batch_size: usize,
    /// How long a batch waits for more messages once it has one, in ms.
    pub batch_wait_ms: u64,
    /// Most codes in one pre-check.
    pub max_precheck: usize,
    /// Most rows `GET /v1/audit` returns.
    pub audit_limit: i64,
    /// Who may call the API.
    pub departments: Vec<DepartmentAccess>,
}

impl fmt::Debug for ArchiveConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArchiveConfig")
            .field("database_url", &REDACTED)
            .field("pool_size", &self.pool_size)
            .field("batch_size", &self.batch_size)
            .field("batch_wait_ms", &self.batch_wait_ms)
            .field("max_precheck", &self.max_precheck)
            .field("audit_limit", &self.audit_limit)
            .field("departments", &self.departments)
            .finish()
    }
}

impl Validate for ArchiveConfig {
    fn validate(&self, s: &str, p: &mut Vec<String>) {
        if !(self.database_url.starts_with("postgres://")
            || self.database_url.starts_with("postgresql://"))
        {
            p.push(format!("{s}.database_url: not a postgres:// URL"));
        }
        if self.pool_size < 2 {
            p.push(format!("{s}.pool_size: at least 2 (ingest and queries)"));
        }
        if self.batch_size == 0 || self.batch_size > 100_000 {
            p.push(format!("{s}.batch_size: 1..=100000"));
        }
        if self.max_precheck == 0 || self.max_precheck > 100_000 {
            p.push(format!("{s}.max_precheck: 1..=100000"));
        }
        if self.audit_limit < 1 {
            p.push(format!("{s}.audit_limit: at least 1"));
        }
        for (i, d) in self.departments.iter().enumerate() {
            let at = format!("{s}.departments[{i}]");
            if credit_core::catalogue::department(&d.id).is_none() {
                p.push(format!("{at}.id: {:?} is not a catalogue department", d.id));
            }
            let sources = [
                d.token_file.is_some(),
                d.token_env.is_some(),
                d.token_sha256.is_some(),
            ];
            if sources.iter().filter(|x| **x).count() != 1 {
                p.push(format!(
                    "{at}: exactly one of token_file, token_env, token_sha256"
                ));
            }
            if self.departments[..i].iter().any(|o| o.id == d.id) {
                p.push(format!("{at}.id: {:?} listed twice", d.id));
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub common: Common,
    pub archive: ArchiveConfig,
}

impl Config {
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut l = Loader::new(DEFAULTS, file);
        let common = Common::load(&mut l);
        let archive = l.section("archive");
        l.finish(|| {
            Some(Config {
                common: common?,
                archive: archive?,
            })
        })
    }

    /// The embedded defaults alone, for tests and embedding.
    pub fn defaults() -> ArchiveConfig {
        let mut l = Loader::new(DEFAULTS, None);
        let a = l.section("archive");
        l.finish(|| a).expect("embedded defaults are valid")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load_and_every_problem_is_reported() {
        let d = Config::defaults();
        assert_eq!((d.batch_size, d.max_precheck), (2000, 10_000));
        assert!(d.departments.is_empty());
        let bad = ArchiveConfig {
            database_url: "mysql://root:hunter2@x/db".into(),
            pool_size: 1,
            departments: vec![
                DepartmentAccess {
                    id: "nobody".into(),
                    token_file: None,
                    token_env: None,
                    token_sha256: None,
                    roles: vec![],
                },
                DepartmentAccess {
                    id: "finance".into(),
                    token_file: Some("a".into()),
                    token_env: Some("B".into()),
                    token_sha256: None,
                    roles: vec![Role::Read],
                },
            ],
            ..d
        };
        let mut p = Vec::new();
        bad.validate("archive", &mut p);
        assert_eq!(p.len(), 5, "{p:?}");
        let printed = format!("{bad:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
    }
}
