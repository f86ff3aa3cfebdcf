//! Layered configuration: an embedded `default.toml` (common and per service), then
//! an optional TOML file, then `CREDIT_BUS__`-prefixed environment variables
//! (`CREDIT_BUS__KAFKA__BROKERS` sets `kafka.brokers`).
//!
//! Each section is extracted on its own and then checked for meaning, and all
//! problems are collected before failing, so an operator fixes a bad config in
//! one round instead of one error per restart.

use std::fmt;
use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Common defaults for every service.
pub const COMMON_DEFAULTS: &str = include_str!("../default.toml");
pub const ENV_PREFIX: &str = "CREDIT_BUS__";

/// Keys read from the environment as raw strings, never parsed as numbers or lists.
const RAW_STRING_KEYS: [&str; 2] = ["kafka.sasl_username", "kafka.sasl_password"];

/// Every problem found in a configuration.
#[derive(Debug)]
pub struct ConfigError(pub Vec<String>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} configuration problem(s):", self.0.len())?;
        for e in &self.0 {
            writeln!(f, "  - {e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// A section that can check its values for meaning once they parsed.
pub trait Validate {
    /// Pushes one message per problem; `section` prefixes field names.
    fn validate(&self, _section: &str, _problems: &mut Vec<String>) {}
}

/// Collects sections from one layered figment, remembering every failure.
pub struct Loader {
    figment: Figment,
    problems: Vec<String>,
}

impl Loader {
    /// Layers the common defaults, the service's own defaults, `file` and the environment.
    pub fn new(service_defaults: &str, file: Option<&Path>) -> Self {
        let mut figment = Figment::new()
            .merge(Toml::string(COMMON_DEFAULTS))
            .merge(Toml::string(service_defaults));
        let mut problems = Vec::new();
        if let Some(path) = file {
            if path.exists() {
                figment = figment.merge(Toml::file(path));
            } else {
                problems.push(format!("config file {} does not exist", path.display()));
            }
        }
        figment = figment.merge(Env::prefixed(ENV_PREFIX).split("__"));
        // figment parses environment values ("00123456" becomes the number
        // 123456); credentials are taken verbatim instead.
        for key in RAW_STRING_KEYS {
            let var = format!(
                "{ENV_PREFIX}{}",
                key.to_ascii_uppercase().replace('.', "__")
            );
            if let Ok(v) = std::env::var(&var) {
                figment = figment.merge(figment::providers::Serialized::default(key, v));
            }
        }
        Loader { figment, problems }
    }

    /// Sets one dotted key over every other layer (a command-line flag).
    pub fn set(mut self, key: &str, value: &str) -> Self {
        self.figment = self
            .figment
            .merge(figment::providers::Serialized::default(key, value));
        self
    }

    /// A loader over an explicit figment (tests).
    pub fn from_figment(figment: Figment) -> Self {
        Loader {
            figment,
            problems: Vec::new(),
        }
    }

    /// Extracts and validates one section; on failure records every error and returns `None`.
    pub fn section<T: DeserializeOwned + Validate>(&mut self, key: &str) -> Option<T> {
        match self.figment.extract_inner::<T>(key) {
            Ok(v) => {
                v.validate(key, &mut self.problems);
                Some(v)
            }
            Err(errs) => {
                for e in errs {
                    // figment puts the section key after the field for inner
                    // extractions ("partitions.kafka"): print `section.field`.
                    let rest: Vec<&str> = e
                        .path
                        .iter()
                        .map(String::as_str)
                        .filter(|p| *p != key)
                        .collect();
                    let path = if rest.is_empty() {
                        key.to_string()
                    } else {
                        format!("{key}.{}", rest.join("."))
                    };
                    // figment's messages quote the offending value; never a secret's.
                    if e.path.iter().any(|p| is_secret_property(p)) {
                        self.problems.push(format!(
                            "{path}: invalid value ({REDACTED}: it is a secret)"
                        ));
                    } else {
                        self.problems.push(format!("{path}: {}", e.kind));
                    }
                }
                None
            }
        }
    }

    /// Fails with every problem, or hands back the sections.
    pub fn finish<T>(self, sections: impl FnOnce() -> Option<T>) -> Result<T, ConfigError> {
        match (self.problems.is_empty(), sections()) {
            (true, Some(t)) => Ok(t),
            (_, _) if !self.problems.is_empty() => Err(ConfigError(self.problems)),
            _ => Err(ConfigError(vec!["configuration incomplete".into()])),
        }
    }
}

/// How services reach the broker.
///
/// `Debug` is written by hand so the SASL password (and any pass-through
/// property that looks like a secret) prints as `<redacted>`: a config dumped
/// into a log or a panic message never carries a department's credentials.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap servers, `host:port[,host:port]`.
    pub brokers: String,
    /// librdkafka `fetch.wait.max.ms`: how long the broker may hold a fetch for more
    /// data. 10 ms on the embedded profile (a quiet topic's records arrive at
    /// once); measured on Apache Kafka 4.4, it makes no difference to throughput.
    pub fetch_wait_max_ms: u32,
    /// Producer `linger.ms`: batching delay before a produce request is sent.
    pub linger_ms: u32,
    /// librdkafka `statistics.interval.ms` for consumers that publish their lag
    /// (`credit_bus_consumer_lag`); 0 turns statistics off.
    pub statistics_interval_ms: u32,
    /// Prefix of every topic and consumer group name (`credit` by default), so
    /// several environments can share one cluster.
    pub topic_prefix: String,
    /// Partitions for topics the bus creates, except departments' notices and
    /// feedback topics (`notice_partitions`).
    pub partitions: i32,
    /// Partitions of each department's notices and feedback topic. One
    /// department's notices are a small stream, and the engine writes to every
    /// such topic: a produce request goes to each partition it touches, so 35
    /// departments at 12 partitions cost 420 requests per round where 35 do.
    /// Raise it for a department whose consumers need to share its notices.
    pub notice_partitions: i32,
    /// Replication factor for topics the bus creates (3 on a production cluster).
    pub replication_factor: i32,
    /// `plaintext`, `ssl`, `sasl_plaintext` or `sasl_ssl`.
    pub security_protocol: String,
    /// SASL mechanism when SASL is used (`SCRAM-SHA-512`, `PLAIN`).
    pub sasl_mechanism: Option<String>,
    pub sasl_username: Option<String>,
    pub sasl_password: Option<String>,
    /// Any other librdkafka property, passed through unchanged.
    #[serde(default)]
    pub extra: std::collections::BTreeMap<String, String>,
}

/// What `Debug` prints instead of a secret.
pub const REDACTED: &str = "<redacted>";

/// Whether a librdkafka property holds a secret (`sasl.password`,
/// `ssl.key.password`, `sasl.oauthbearer.client.secret`, ...).
pub fn is_secret_property(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["password", "secret", "sasl.jaas.config", "ssl.key.pem"]
        .iter()
        .any(|s| k.contains(s))
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured, so a new field cannot be added without deciding here
        // whether it is a secret.
        let KafkaConfig {
            brokers,
            fetch_wait_max_ms,
            linger_ms,
            statistics_interval_ms,
            topic_prefix,
            partitions,
            notice_partitions,
            replication_factor,
            security_protocol,
            sasl_mechanism,
            sasl_username,
            sasl_password,
            extra,
        } = self;
        let extra: std::collections::BTreeMap<&str, &str> = extra
            .iter()
            .map(|(k, v)| {
                let v = if is_secret_property(k) {
                    REDACTED
                } else {
                    v.as_str()
                };
                (k.as_str(), v)
            })
            .collect();
        f.debug_struct("KafkaConfig")
            .field("brokers", brokers)
            .field("fetch_wait_max_ms", fetch_wait_max_ms)
            .field("linger_ms", linger_ms)
            .field("statistics_interval_ms", statistics_interval_ms)
            .field("topic_prefix", topic_prefix)
            .field("partitions", partitions)
            .field("notice_partitions", notice_partitions)
            .field("replication_factor", replication_factor)
            .field("security_protocol", security_protocol)
            .field("sasl_mechanism", sasl_mechanism)
            .field("sasl_username", sasl_username)
            .field("sasl_password", &sasl_password.as_ref().map(|_| REDACTED))
            .field("extra", &extra)
            .finish()
    }
}

impl KafkaConfig {
    /// The embedded profile (one local broker, plaintext, low fetch wait):
    /// what tests, benchmarks and in-process runs start from.
    pub fn local(brokers: &str, prefix: &str, partitions: i32) -> KafkaConfig {
        KafkaConfig {
            brokers: brokers.to_string(),
            fetch_wait_max_ms: 10,
            linger_ms: 5,
            statistics_interval_ms: 1000,
            topic_prefix: prefix.to_string(),
            partitions,
            notice_partitions: 1,
            replication_factor: 1,
            security_protocol: "plaintext".into(),
            sasl_mechanism: None,
            sasl_username: None,
            sasl_password: None,
            extra: Default::default(),
        }
    }

    /// Topic names under the configured prefix.
    pub fn naming(&self) -> credit_core::topics::Naming {
        credit_core::topics::Naming::new(&self.topic_prefix)
    }
}

impl Validate for KafkaConfig {
    fn validate(&self, s: &str, p: &mut Vec<String>) {
        if self.brokers.trim().is_empty() {
            p.push(format!("{s}.brokers: must name at least one host:port"));
        }
        for b in self.brokers.split(',') {
            if !b.trim().is_empty()
                && b.rsplit_once(':')
                    .and_then(|(_, port)| port.parse::<u16>().ok())
                    .is_none()
            {
                p.push(format!("{s}.brokers: {b:?} is not host:port"));
            }
        }
        if self.topic_prefix.is_empty()
            || !self
                .topic_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            p.push(format!(
                "{s}.topic_prefix: {:?} must be non-empty [A-Za-z0-9._-]",
                self.topic_prefix
            ));
        }
        if self.partitions < 1 {
            p.push(format!("{s}.partitions: must be at least 1"));
        }
        if self.notice_partitions < 1 {
            p.push(format!("{s}.notice_partitions: must be at least 1"));
        }
        if self.replication_factor < 1 {
            p.push(format!("{s}.replication_factor: must be at least 1"));
        }
        let proto = self.security_protocol.as_str();
        if !["plaintext", "ssl", "sasl_plaintext", "sasl_ssl"].contains(&proto) {
            p.push(format!(
                "{s}.security_protocol: {proto:?} is not plaintext, ssl, sasl_plaintext or sasl_ssl"
            ));
        }
        if proto.starts_with("sasl")
            && (self.sasl_username.is_none() || self.sasl_password.is_none())
        {
            p.push(format!("{s}: SASL needs sasl_username and sasl_password"));
        }
    }
}

/// Where the schema registry is.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryConfig {
    /// Base URL of any Confluent-compatible registry.
    pub url: String,
}

impl Validate for RegistryConfig {
    fn validate(&self, s: &str, p: &mut Vec<String>) {
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            p.push(format!("{s}.url: {:?} is not an http(s) URL", self.url));
        }
    }
}

/// Logs and metrics.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// `json` (default, for log shippers) or `pretty` (for people).
    pub log_format: String,
    /// A `tracing` filter such as `info,rdkafka=warn`.
    pub log_filter: String,
    /// Address of `/metrics`, `/healthz` and `/readyz`; port 0 picks a free one.
    pub ops_listen: String,
    /// Base URL of an OpenTelemetry collector's OTLP/HTTP receiver
    /// (`http://collector:4318`; spans go to `/v1/traces`). Empty: no span is
    /// recorded, but trace context is still propagated in record headers.
    #[serde(default)]
    pub otlp_endpoint: String,
    /// Share of new traces (records arriving without `traceparent`) that are
    /// sampled, 0.0 to 1.0; records with a trace context follow its decision.
    #[serde(default = "one")]
    pub trace_sample_ratio: f64,
}

fn one() -> f64 {
    1.0
}

impl Validate for TelemetryConfig {
    fn validate(&self, s: &str, p: &mut Vec<String>) {
        if !["json", "pretty"].contains(&self.log_format.as_str()) {
            p.push(format!(
                "{s}.log_format: {:?} is not json or pretty",
                self.log_format
            ));
        }
        if self.ops_listen.parse::<std::net::SocketAddr>().is_err() {
            p.push(format!(
                "{s}.ops_listen: {:?} is not ip:port",
                self.ops_listen
            ));
        }
        let e = self.otlp_endpoint.trim();
        if !(e.is_empty() || e.starts_with("http://") || e.starts_with("https://")) {
            p.push(format!(
                "{s}.otlp_endpoint: {e:?} is not empty nor an http(s) URL"
            ));
        }
        if !(0.0..=1.0).contains(&self.trace_sample_ratio) {
            p.push(format!(
                "{s}.trace_sample_ratio: {} is not between 0 and 1",
                self.trace_sample_ratio
            ));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log_filter).is_err() {
            p.push(format!(
                "{s}.log_filter: {:?} is not a tracing filter",
                self.log_filter
            ));
        }
    }
}

/// The sections every service reads.
#[derive(Debug, Clone)]
pub struct Common {
    pub kafka: KafkaConfig,
    pub registry: RegistryConfig,
    pub telemetry: TelemetryConfig,
}

impl Common {
    pub fn load(loader: &mut Loader) -> Option<Common> {
        let kafka = loader.section("kafka");
        let registry = loader.section("registry");
        let telemetry = loader.section("telemetry");
        Some(Common {
            kafka: kafka?,
            registry: registry?,
            telemetry: telemetry?,
        })
    }
}

#[cfg(test)]
// figment's Jail API returns its own large error type; that is its choice, not ours.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;

    #[test]
    fn defaults_load() {
        let mut l = Loader::new("", None);
        let c = Common::load(&mut l);
        let c = l.finish(|| c).unwrap();
        assert_eq!(c.kafka.fetch_wait_max_ms, 10);
        assert_eq!((c.kafka.partitions, c.kafka.notice_partitions), (4, 1));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "bad.toml",
                r#"
                [kafka]
                brokers = "nohost"
                partitions = 0
                security_protocol = "sasl_ssl"
                [registry]
                url = "ftp://x"
                [telemetry]
                log_format = "xml"
                colour = true
                "#,
            )?;
            jail.set_env("CREDIT_BUS__KAFKA__LINGER_MS", "soon");
            let mut l = Loader::new("", Some(Path::new("bad.toml")));
            let c = Common::load(&mut l);
            let err = l.finish(|| c).unwrap_err();
            let all = err.to_string();
            // The kafka section fails to parse (linger_ms), telemetry has an unknown field,
            // registry parses but fails validation: three sections, all reported.
            assert!(all.contains("kafka.linger_ms"), "section first: {all}");
            assert!(all.contains("colour"), "{all}");
            assert!(all.contains("registry.url"), "{all}");
            Ok(())
        });
    }

    #[test]
    fn meaning_checks_collect_every_problem() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "bad.toml",
                r#"
                [kafka]
                brokers = "nohost"
                partitions = 0
                notice_partitions = 0
                security_protocol = "sasl_ssl"
                "#,
            )?;
            let mut l = Loader::new("", Some(Path::new("bad.toml")));
            let c = Common::load(&mut l);
            let err = l.finish(|| c).unwrap_err();
            assert_eq!(err.0.len(), 4, "{err}");
            assert!(err.to_string().contains("kafka.notice_partitions"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn env_overrides_file_and_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("CREDIT_BUS__KAFKA__BROKERS", "10.0.0.1:9093");
            let mut l = Loader::new("", None);
            let c = Common::load(&mut l);
            assert_eq!(l.finish(|| c).unwrap().kafka.brokers, "10.0.0.1:9093");
            Ok(())
        });
    }

    #[test]
    fn sasl_credentials_come_from_the_environment_and_never_print() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("CREDIT_BUS__KAFKA__SECURITY_PROTOCOL", "sasl_plaintext");
            jail.set_env("CREDIT_BUS__KAFKA__SASL_MECHANISM", "SCRAM-SHA-512");
            jail.set_env("CREDIT_BUS__KAFKA__SASL_USERNAME", "courts");
            jail.set_env("CREDIT_BUS__KAFKA__SASL_PASSWORD", "hunter2-Zx9");
            // Dotted librdkafka names cannot be spelled in an environment
            // variable (figment splits on dots): pass-through goes in the file.
            jail.create_file(
                "bus.toml",
                r#"
                [kafka.extra]
                "ssl.key.password" = "pem-pass-77"
                "client.rack" = "gz-1"
                "#,
            )?;
            let mut l = Loader::new("", Some(Path::new("bus.toml")));
            let c = Common::load(&mut l);
            let c = l.finish(|| c).unwrap();
            assert_eq!(c.kafka.sasl_username.as_deref(), Some("courts"));
            assert_eq!(c.kafka.sasl_password.as_deref(), Some("hunter2-Zx9"));
            assert_eq!(c.kafka.extra["ssl.key.password"], "pem-pass-77");
            for printed in [
                format!("{:?}", c.kafka),
                format!("{:#?}", c.kafka),
                format!("{c:?}"),
            ] {
                assert!(!printed.contains("hunter2"), "{printed}");
                assert!(!printed.contains("pem-pass"), "{printed}");
                assert!(printed.contains(REDACTED), "{printed}");
                // Everything else is still there to debug with.
                assert!(printed.contains("courts"), "{printed}");
                assert!(printed.contains("gz-1"), "{printed}");
            }
            Ok(())
        });
    }

    #[test]
    fn a_numeric_password_stays_a_string() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("CREDIT_BUS__KAFKA__SECURITY_PROTOCOL", "sasl_plaintext");
            jail.set_env("CREDIT_BUS__KAFKA__SASL_USERNAME", "tax");
            jail.set_env("CREDIT_BUS__KAFKA__SASL_PASSWORD", "00123456");
            let mut l = Loader::new("", None);
            let c = Common::load(&mut l);
            let c = l.finish(|| c).unwrap();
            assert_eq!(c.kafka.sasl_password.as_deref(), Some("00123456"));
            Ok(())
        });
    }

    #[test]
    fn a_bad_secret_is_reported_without_its_value() {
        figment::Jail::expect_with(|jail| {
            for (toml, key, secret) in [
                (
                    "[kafka]\nsasl_password = 918273645\n",
                    "sasl_password",
                    "918273645",
                ),
                (
                    "[kafka.extra]\n\"ssl.key.password\" = 5550123\n",
                    "ssl.key.password",
                    "5550123",
                ),
            ] {
                jail.create_file("bad.toml", toml)?;
                let mut l = Loader::new("", Some(Path::new("bad.toml")));
                let c = Common::load(&mut l);
                let all = l.finish(|| c).unwrap_err().to_string();
                assert!(all.contains(key), "{all}");
                assert!(!all.contains(secret), "{all}");
            }
            Ok(())
        });
    }

    #[test]
    fn no_password_prints_as_none() {
        figment::Jail::expect_with(|_jail| {
            let mut l = Loader::new("", None);
            let c = Common::load(&mut l);
            let c = l.finish(|| c).unwrap();
            let printed = format!("{:?}", c.kafka);
            assert!(printed.contains("sasl_password: None"), "{printed}");
            Ok(())
        });
        assert!(is_secret_property("sasl.oauthbearer.client.secret"));
        assert!(is_secret_property("SSL.KEY.PASSWORD"));
        assert!(!is_secret_property("client.rack"));
    }
}
