//! The engine's command topic (`<prefix>.engine.commands`) and the catalogue
//! topic (`<prefix>.catalogue`) as contracts. Commands are JSON, written by
//! operators (`credit-bus entry end`, `credit-bus catalogue activate`):
//!
//! | value | meaning |
//! |---|---|
//! | `{"record_id": "courts:0:12", "reason": "repaired"}` | end an entry (`repaired`, `expired` or `withdrawn`); key = the record id |
//! | `{"activate": 2}` | activate catalogue version 2 from this point of this partition; written to every partition |
//!
//! The catalogue topic (compacted) holds `version/<n>` (the catalogue's TOML
//! text) and `active` (`{"version": n}`, the last activation).

use credit_measures::Catalogue;
use credit_measures::plan::{EndEntry, EndReason};
use serde::{Deserialize, Serialize};

/// A command on the engine's command topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    End(EndEntry),
    Activate(u32),
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndValue<'a> {
    record_id: std::borrow::Cow<'a, str>,
    reason: &'a str,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActivateValue {
    activate: u32,
}

/// Why a command value is not a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandParseError {
    #[error("empty command value")]
    Empty,
    #[error(
        "not a command: expected {{\"record_id\": \"...\", \"reason\": \"repaired|expired|withdrawn\"}} or {{\"activate\": N}} ({0})"
    )]
    Shape(String),
    #[error("unknown reason {0:?}: use repaired, expired or withdrawn")]
    Reason(String),
    #[error("empty record id")]
    EmptyRecordId,
}

impl Command {
    /// Parses a command value.
    pub fn parse(value: &[u8]) -> Result<Command, CommandParseError> {
        if value.iter().all(u8::is_ascii_whitespace) {
            return Err(CommandParseError::Empty);
        }
        if let Ok(e) = serde_json::from_slice::<EndValue<'_>>(value) {
            let reason = EndReason::parse(e.reason)
                .ok_or_else(|| CommandParseError::Reason(e.reason.into()))?;
            if e.record_id.trim().is_empty() {
                return Err(CommandParseError::EmptyRecordId);
            }
            return Ok(Command::End(EndEntry {
                record_id: e.record_id.into_owned(),
                reason,
            }));
        }
        serde_json::from_slice::<ActivateValue>(value)
            .map(|a| Command::Activate(a.activate))
            .map_err(|e| CommandParseError::Shape(e.to_string()))
    }

    /// The command's value (JSON, escaped as JSON).
    pub fn to_json(&self) -> Vec<u8> {
        match self {
            Command::End(e) => serde_json::to_vec(&EndValue {
                record_id: std::borrow::Cow::Borrowed(&e.record_id),
                reason: e.reason.as_str(),
            }),
            Command::Activate(v) => serde_json::to_vec(&ActivateValue { activate: *v }),
        }
        .expect("commands serialise")
    }

    /// The key it is written under: the record id (so it lands on the
    /// partition of its record), or `activate`.
    pub fn key(&self) -> &str {
        match self {
            Command::End(e) => &e.record_id,
            Command::Activate(_) => ACTIVATE_KEY,
        }
    }
}

/// The key of activation commands.
pub const ACTIVATE_KEY: &str = "activate";

/// The catalogue topic's key for version `n`.
pub fn version_key(n: u32) -> String {
    format!("{VERSION_PREFIX}{n}")
}

/// The prefix of version keys on the catalogue topic.
pub const VERSION_PREFIX: &str = "version/";
/// The catalogue topic's key of the last activation.
pub const ACTIVE_KEY: &str = "active";

/// The value under [`ACTIVE_KEY`].
pub fn active_value(version: u32) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "version": version })).expect("json serialises")
}

/// What a catalogue-topic record holds.
#[derive(Debug)]
pub enum CatalogueRecord {
    /// A valid version under `version/<n>`.
    Version(Box<Catalogue>),
    /// A value under `version/<n>` that is not a valid catalogue (or names
    /// another version than its key).
    Invalid { key: String, error: String },
    /// Any other key (`active`, ...).
    Other,
}

/// Reads one catalogue-topic record.
pub fn catalogue_record(key: Option<&[u8]>, value: Option<&[u8]>) -> CatalogueRecord {
    let Some(key) = key.and_then(|k| std::str::from_utf8(k).ok()) else {
        return CatalogueRecord::Other;
    };
    let Some(n) = key.strip_prefix(VERSION_PREFIX) else {
        return CatalogueRecord::Other;
    };
    let invalid = |error: String| CatalogueRecord::Invalid {
        key: key.to_string(),
        error,
    };
    let Some(value) = value else {
        return invalid("no value".into());
    };
    match std::str::from_utf8(value)
        .map_err(|e| e.to_string())
        .and_then(|t| Catalogue::parse(t).map_err(|e| e.to_string()))
    {
        Ok(c) if n.parse() == Ok(c.version) => CatalogueRecord::Version(Box::new(c)),
        Ok(c) => invalid(format!("the text is version {} under key {key}", c.version)),
        Err(e) => invalid(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_round_trip_with_json_escaping() {
        for id in ["courts:0:12", "tax:3:7", "x\"y\\z", "单位:1:2", "a\nb"] {
            for reason in [
                EndReason::Repaired,
                EndReason::Expired,
                EndReason::Withdrawn,
            ] {
                let c = Command::End(EndEntry {
                    record_id: id.into(),
                    reason,
                });
                let json = c.to_json();
                serde_json::from_slice::<serde_json::Value>(&json).expect("valid JSON");
                assert_eq!(Command::parse(&json).unwrap(), c);
            }
        }
        let a = Command::Activate(3);
        assert_eq!(a.to_json(), br#"{"activate":3}"#);
        assert_eq!(Command::parse(&a.to_json()).unwrap(), a);
        assert_eq!(a.key(), ACTIVATE_KEY);
    }

    #[test]
    fn bad_commands_say_what_is_wrong() {
        let cases: [(&[u8], &str); 8] = [
            (b"", "empty command value"),
            (b"  ", "empty command value"),
            (b"\x00\x01garbage", "not a command"),
            (
                br#"{"record_id":"x","reason":"forgiven"}"#,
                "unknown reason \"forgiven\"",
            ),
            (br#"{"record_id":"x","reason":"catalogue-change"}"#, ""),
            (
                br#"{"record_id":"  ","reason":"repaired"}"#,
                "empty record id",
            ),
            (br#"{"activate":-1}"#, "not a command"),
            (
                br#"{"record_id":"x","reason":"repaired","extra":1}"#,
                "not a command",
            ),
        ];
        for (v, want) in cases {
            match Command::parse(v) {
                // An operator reason is checked by planning, which refuses it
                // with its own message (CommandError::NotAnOperatorReason).
                Ok(Command::End(e)) => assert_eq!(e.reason, EndReason::CatalogueChange),
                Ok(c) => panic!("{v:?} parsed as {c:?}"),
                Err(e) => assert!(e.to_string().contains(want), "{v:?}: {e}"),
            }
        }
    }

    #[test]
    fn catalogue_records() {
        let v1 = credit_measures::V1.as_bytes();
        match catalogue_record(Some(b"version/1"), Some(v1)) {
            CatalogueRecord::Version(c) => assert_eq!(c.version, 1),
            r => panic!("{r:?}"),
        }
        assert!(matches!(
            catalogue_record(Some(b"version/2"), Some(v1)),
            CatalogueRecord::Invalid { .. }
        ));
        assert!(matches!(
            catalogue_record(Some(b"version/1"), Some(b"not toml [")),
            CatalogueRecord::Invalid { .. }
        ));
        assert!(matches!(
            catalogue_record(Some(b"active"), Some(&active_value(1))),
            CatalogueRecord::Other
        ));
        assert_eq!(version_key(4), "version/4");
    }
}
