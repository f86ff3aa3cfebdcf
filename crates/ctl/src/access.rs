//! `credit-bus access`: the access model (`credit_core::access`) printed,
//! rendered for the Helm chart, and applied to a broker.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Subcommand;
use credit_core::access::{Model, Role};
use credit_runtime::access::{self as rt, CredentialsDir};
use credit_runtime::config::KafkaConfig;

#[derive(Subcommand)]
pub enum AccessCmd {
    /// Create or update every user's SCRAM-SHA-512 credential and make the
    /// broker hold exactly the model's ACLs for them, as the administrator.
    /// Passwords come from the credentials directory (one file per user),
    /// generated there when missing; none is ever printed.
    Apply {
        /// Directory of password files (created 0700; files 0600).
        #[arg(long, env = "CREDIT_BUS_CREDENTIALS_DIR")]
        credentials_dir: PathBuf,
        /// The administrator's password file. Without it the `[kafka]`
        /// settings are used as they are (a listener where the client is a
        /// super user).
        #[arg(long, env = "CREDIT_BUS_ADMIN_PASSWORD_FILE")]
        admin_password_file: Option<PathBuf>,
        #[arg(long, default_value = "admin")]
        admin_user: String,
        #[command(flatten)]
        names: Names,
    },
    /// Print every principal: user, kind, ACL bindings.
    Users {
        #[command(flatten)]
        names: Names,
    },
    /// Print every ACL binding of the model.
    Acls {
        #[command(flatten)]
        names: Names,
    },
    /// Print the Helm chart's `files/access.yaml` (Strimzi KafkaUser ACLs).
    Helm,
}

#[derive(clap::Args)]
pub struct Names {
    /// Prefix of every Kafka user name; default `<kafka.topic_prefix>-`.
    #[arg(long)]
    user_prefix: Option<String>,
    /// The registry's store topic (`registry_service.topic`).
    #[arg(long, env = "CREDIT_BUS__REGISTRY_SERVICE__TOPIC", default_value = credit_core::topics::SCHEMAS)]
    registry_topic: String,
    #[arg(long, env = "CREDIT_BUS_CONFIG")]
    config: Option<PathBuf>,
}

impl Names {
    fn resolve(&self) -> anyhow::Result<(KafkaConfig, Model, String)> {
        let kafka = crate::load_kafka(self.config.as_deref())?;
        let model = Model::new(&kafka.naming(), &self.registry_topic);
        let prefix = self
            .user_prefix
            .clone()
            .unwrap_or_else(|| rt::default_user_prefix(&kafka));
        Ok((kafka, model, prefix))
    }
}

pub async fn run(cmd: AccessCmd) -> anyhow::Result<()> {
    use std::fmt::Write as _;
    let mut out = String::new();
    match cmd {
        AccessCmd::Helm => out = Model::helm(),
        AccessCmd::Users { names } => {
            let (_, model, prefix) = names.resolve()?;
            writeln!(out, "{:<36}{:<12}{:>9}", "user", "kind", "bindings")?;
            for p in &model.principals {
                writeln!(
                    out,
                    "{:<36}{:<12}{:>9}",
                    rt::username(&prefix, p.role),
                    p.role.component(),
                    p.bindings().count()
                )?;
            }
            writeln!(
                out,
                "{} users, {} ACL bindings",
                model.principals.len(),
                model.binding_count()
            )?;
        }
        AccessCmd::Acls { names } => {
            let (_, model, prefix) = names.resolve()?;
            for b in rt::desired_bindings(&model, &prefix) {
                writeln!(out, "{b}")?;
            }
        }
        AccessCmd::Apply {
            credentials_dir,
            admin_password_file,
            admin_user,
            names,
        } => {
            let (mut kafka, model, prefix) = names.resolve()?;
            if let Some(file) = &admin_password_file {
                as_admin(&mut kafka, &admin_user, file)?;
            }
            let creds = CredentialsDir::open(&credentials_dir)?;
            let brokers = kafka.brokers.clone();
            let applied =
                tokio::task::spawn_blocking(move || rt::apply(&kafka, &model, &prefix, &creds))
                    .await?
                    .with_context(|| format!("applying the access model to {brokers}"))?;
            eprintln!(
                "{}: {} users ({} new passwords in {}), {} ACL bindings: {} created, {} already present, {} removed",
                brokers,
                applied.users,
                applied.generated,
                credentials_dir.display(),
                applied.bindings,
                applied.created,
                applied.unchanged,
                applied.removed
            );
        }
    }
    // An error, not a panic, when the reader goes away (`| head`).
    std::io::Write::write_all(&mut std::io::stdout().lock(), out.as_bytes())
        .context("writing to stdout")?;
    Ok(())
}

/// `kafka` authenticating as the administrator (SCRAM-SHA-512) on the same
/// listener family: plaintext becomes sasl_plaintext, ssl sasl_ssl.
fn as_admin(
    kafka: &mut KafkaConfig,
    user: &str,
    password_file: &std::path::Path,
) -> anyhow::Result<()> {
    let password = rt::read_password(password_file)?;
    kafka.security_protocol = match kafka.security_protocol.as_str() {
        "plaintext" => "sasl_plaintext".into(),
        "ssl" => "sasl_ssl".into(),
        other => other.to_string(),
    };
    kafka.sasl_mechanism = Some(rt::MECHANISM.into());
    kafka.sasl_username = Some(user.into());
    kafka.sasl_password = Some(password);
    Ok(())
}

/// The start-up credentials check for a CLI command run as `role`: a wrong
/// password or missing ACLs stop the command with a message naming the user
/// and broker; a broker that does not answer within 10 s is only warned about.
pub async fn check(kafka: &KafkaConfig, role: Role) -> anyhow::Result<()> {
    let topics = rt::topics_of(kafka, credit_core::topics::SCHEMAS, role);
    let k = kafka.clone();
    match tokio::task::spawn_blocking(move || {
        rt::check_credentials(&k, &topics, Duration::from_secs(10))
    })
    .await?
    {
        Ok(()) => Ok(()),
        Err(e) if e.is_stop() => Err(e.into()),
        Err(e) => {
            eprintln!("warning: {e}");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The chart's KafkaUsers come from this file: it must be what the model
    /// generates now.
    #[test]
    fn the_charts_access_file_is_the_models() {
        let committed = include_str!("../../../helm/credit-bus/files/access.yaml");
        let generated = Model::helm();
        let first_difference = committed
            .lines()
            .zip(generated.lines())
            .enumerate()
            .find(|(_, (a, b))| a != b)
            .map(|(i, (a, b))| format!("line {}: committed {a:?}, model {b:?}", i + 1))
            .unwrap_or_else(|| "a different length".into());
        assert!(
            committed == generated,
            "helm/credit-bus/files/access.yaml is stale ({first_difference}); regenerate it:\n  \
             cargo run -q -p credit-ctl --bin credit-bus -- access helm > helm/credit-bus/files/access.yaml"
        );
    }
}
