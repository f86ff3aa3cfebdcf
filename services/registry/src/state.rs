//! The registry's state as a pure value: every change is a [`Change`], the same
//! value that is stored in the topic, so replaying the topic and serving a write
//! go through the one `apply`.

use std::collections::{BTreeMap, HashMap};

use apache_avro::Schema;
use apache_avro::schema_compatibility::SchemaCompatibility;
use serde::{Deserialize, Serialize};

/// Compatibility levels, with Confluent's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Compatibility {
    None,
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl Compatibility {
    pub fn parse(s: &str) -> Option<Compatibility> {
        serde_json::from_value(serde_json::Value::String(s.to_ascii_uppercase())).ok()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Compatibility::None => "NONE",
            Compatibility::Backward => "BACKWARD",
            Compatibility::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Compatibility::Forward => "FORWARD",
            Compatibility::ForwardTransitive => "FORWARD_TRANSITIVE",
            Compatibility::Full => "FULL",
            Compatibility::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    fn transitive(self) -> bool {
        matches!(
            self,
            Compatibility::BackwardTransitive
                | Compatibility::ForwardTransitive
                | Compatibility::FullTransitive
        )
    }
}

/// One change to the registry, as stored (JSON) in the topic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "keytype", rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Change {
    Schema {
        subject: String,
        version: u32,
        id: u32,
        schema: String,
    },
    Config {
        subject: Option<String>,
        compatibility: Compatibility,
    },
}

impl Change {
    /// The compaction key: the latest change per key wins.
    pub fn key(&self) -> String {
        match self {
            Change::Schema {
                subject, version, ..
            } => serde_json::json!({"keytype": "SCHEMA", "subject": subject, "version": version})
                .to_string(),
            Change::Config { subject, .. } => {
                serde_json::json!({"keytype": "CONFIG", "subject": subject}).to_string()
            }
        }
    }
}

/// An error as the Confluent API reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: u16,
    pub error_code: u32,
    pub message: String,
}

impl ApiError {
    fn new(status: u16, error_code: u32, message: impl Into<String>) -> Self {
        ApiError {
            status,
            error_code,
            message: message.into(),
        }
    }
    pub fn subject_not_found(s: &str) -> Self {
        Self::new(404, 40401, format!("Subject '{s}' not found."))
    }
    pub fn version_not_found(v: &str) -> Self {
        Self::new(404, 40402, format!("Version {v} not found."))
    }
    pub fn schema_not_found() -> Self {
        Self::new(404, 40403, "Schema not found")
    }
    pub fn invalid_schema(detail: impl std::fmt::Display) -> Self {
        Self::new(422, 42201, format!("Invalid schema: {detail}"))
    }
    pub fn invalid_version(v: &str) -> Self {
        Self::new(
            422,
            42202,
            format!(
                "The specified version '{v}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\""
            ),
        )
    }
    pub fn invalid_compatibility(c: &str) -> Self {
        Self::new(422, 42203, format!("Invalid compatibility level {c:?}"))
    }
    pub fn incompatible(detail: impl std::fmt::Display) -> Self {
        Self::new(
            409,
            409,
            format!(
                "Schema being registered is incompatible with an earlier schema for subject: {detail}"
            ),
        )
    }
    pub fn config_not_found(s: &str) -> Self {
        Self::new(
            404,
            40408,
            format!("Subject '{s}' does not have subject-level compatibility configured"),
        )
    }
}

struct Stored {
    text: String,
    parsed: Schema,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    pub version: u32,
    pub id: u32,
}

/// What registering a schema under a subject amounts to.
#[derive(Debug, Clone, PartialEq)]
pub enum Registration {
    /// Already registered under the subject: nothing to write.
    Existing { id: u32, version: u32 },
    /// Write this change, then apply it.
    New(Change),
}

/// Which earlier version(s) to check against.
pub enum Against {
    Latest,
    Version(u32),
}

/// The whole registry.
pub struct State {
    default_compatibility: Compatibility,
    global: Option<Compatibility>,
    subject_compat: HashMap<String, Compatibility>,
    subjects: BTreeMap<String, Vec<Version>>,
    schemas: HashMap<u32, Stored>,
    /// Normalised schema JSON → id, so one schema has one id across subjects.
    by_json: HashMap<String, u32>,
    next_id: u32,
}

/// A schema's identity: its JSON re-serialised with sorted keys, so whitespace and
/// key order do not make a new schema, while docs, defaults and aliases do.
fn normalise(text: &str) -> Result<String, ApiError> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(ApiError::invalid_schema)?;
    Ok(v.to_string())
}

fn parse(text: &str) -> Result<Schema, ApiError> {
    Schema::parse_str(text).map_err(ApiError::invalid_schema)
}

impl State {
    pub fn new(default_compatibility: Compatibility) -> Self {
        State {
            default_compatibility,
            global: None,
            subject_compat: HashMap::new(),
            subjects: BTreeMap::new(),
            schemas: HashMap::new(),
            by_json: HashMap::new(),
            next_id: 1,
        }
    }

    /// Applies a stored change. Unparseable schemas in the topic (written by a
    /// foreign tool) are skipped with a warning rather than stopping the registry.
    pub fn apply(&mut self, c: Change) {
        match c {
            Change::Config {
                subject: None,
                compatibility,
            } => self.global = Some(compatibility),
            Change::Config {
                subject: Some(s),
                compatibility,
            } => {
                self.subject_compat.insert(s, compatibility);
            }
            Change::Schema {
                subject,
                version,
                id,
                schema,
            } => {
                if !self.schemas.contains_key(&id) {
                    let (Ok(json), Ok(parsed)) = (normalise(&schema), parse(&schema)) else {
                        tracing::warn!(id, "skipping unparseable stored schema");
                        return;
                    };
                    self.by_json.insert(json, id);
                    self.schemas.insert(
                        id,
                        Stored {
                            text: schema,
                            parsed,
                        },
                    );
                }
                self.next_id = self.next_id.max(id + 1);
                let versions = self.subjects.entry(subject).or_default();
                if !versions.iter().any(|v| v.version == version) {
                    versions.push(Version { version, id });
                    versions.sort_by_key(|v| v.version);
                }
            }
        }
    }

    pub fn subjects(&self) -> Vec<&str> {
        self.subjects.keys().map(String::as_str).collect()
    }

    pub fn versions(&self, subject: &str) -> Result<&[Version], ApiError> {
        self.subjects
            .get(subject)
            .map(Vec::as_slice)
            .ok_or_else(|| ApiError::subject_not_found(subject))
    }

    pub fn schema(&self, id: u32) -> Result<&str, ApiError> {
        self.schemas
            .get(&id)
            .map(|s| s.text.as_str())
            .ok_or_else(ApiError::schema_not_found)
    }

    /// Resolves `latest`, `-1` or a version number.
    pub fn version(&self, subject: &str, v: &str) -> Result<Version, ApiError> {
        let versions = self.versions(subject)?;
        let n: i64 = if v == "latest" {
            -1
        } else {
            v.parse().map_err(|_| ApiError::invalid_version(v))?
        };
        match n {
            -1 => versions
                .last()
                .copied()
                .ok_or_else(|| ApiError::version_not_found(v)),
            n if n >= 1 && n <= i32::MAX as i64 => versions
                .iter()
                .find(|x| x.version as i64 == n)
                .copied()
                .ok_or_else(|| ApiError::version_not_found(v)),
            _ => Err(ApiError::invalid_version(v)),
        }
    }

    pub fn global_compatibility(&self) -> Compatibility {
        self.global.unwrap_or(self.default_compatibility)
    }

    pub fn subject_compatibility(&self, subject: &str) -> Option<Compatibility> {
        self.subject_compat.get(subject).copied()
    }

    fn effective(&self, subject: &str) -> Compatibility {
        self.subject_compatibility(subject)
            .unwrap_or_else(|| self.global_compatibility())
    }

    /// The version under `subject` of an identical schema, if any.
    pub fn lookup(&self, subject: &str, text: &str) -> Result<Version, ApiError> {
        let versions = self.versions(subject)?;
        parse(text)?;
        let json = normalise(text)?;
        let id = self
            .by_json
            .get(&json)
            .ok_or_else(ApiError::schema_not_found)?;
        versions
            .iter()
            .find(|v| v.id == *id)
            .copied()
            .ok_or_else(ApiError::schema_not_found)
    }

    /// Problems that make `new` incompatible with the chosen earlier version(s) under
    /// `level`; empty when compatible.
    fn problems(
        &self,
        subject: &str,
        new: &Schema,
        level: Compatibility,
        against: Against,
    ) -> Result<Vec<String>, ApiError> {
        let versions = match self.subjects.get(subject) {
            None => return Ok(Vec::new()),
            Some(v) => v,
        };
        let olds: Vec<&Version> = match against {
            Against::Version(n) => vec![
                versions
                    .iter()
                    .find(|v| v.version == n)
                    .ok_or_else(|| ApiError::version_not_found(&n.to_string()))?,
            ],
            Against::Latest if level.transitive() => versions.iter().collect(),
            Against::Latest => versions.last().into_iter().collect(),
        };
        let mut out = Vec::new();
        for v in olds {
            let old = &self.schemas[&v.id].parsed;
            let backward = matches!(
                level,
                Compatibility::Backward
                    | Compatibility::BackwardTransitive
                    | Compatibility::Full
                    | Compatibility::FullTransitive
            );
            let forward = matches!(
                level,
                Compatibility::Forward
                    | Compatibility::ForwardTransitive
                    | Compatibility::Full
                    | Compatibility::FullTransitive
            );
            // BACKWARD: consumers on the new schema read data written with the old one.
            if backward && let Err(e) = SchemaCompatibility::can_read(old, new) {
                out.push(format!(
                    "version {}: new schema cannot read data written with it: {e}",
                    v.version
                ));
            }
            if forward && let Err(e) = SchemaCompatibility::can_read(new, old) {
                out.push(format!(
                    "version {}: it cannot read data written with the new schema: {e}",
                    v.version
                ));
            }
        }
        Ok(out)
    }

    /// Whether `text` is compatible with `subject` (its configured level).
    pub fn check(
        &self,
        subject: &str,
        text: &str,
        against: Against,
    ) -> Result<Vec<String>, ApiError> {
        self.versions(subject)?;
        let new = parse(text)?;
        self.problems(subject, &new, self.effective(subject), against)
    }

    /// Plans registering `text` under `subject`.
    pub fn register(&self, subject: &str, text: &str) -> Result<Registration, ApiError> {
        let new = parse(text)?;
        let json = normalise(text)?;
        let existing_id = self.by_json.get(&json).copied();
        if let (Some(id), Some(versions)) = (existing_id, self.subjects.get(subject))
            && let Some(v) = versions.iter().find(|v| v.id == id)
        {
            return Ok(Registration::Existing {
                id,
                version: v.version,
            });
        }
        let problems = self.problems(subject, &new, self.effective(subject), Against::Latest)?;
        if !problems.is_empty() {
            return Err(ApiError::incompatible(problems.join("; ")));
        }
        let version = self
            .subjects
            .get(subject)
            .and_then(|v| v.last())
            .map_or(1, |v| v.version + 1);
        Ok(Registration::New(Change::Schema {
            subject: subject.to_string(),
            version,
            id: existing_id.unwrap_or(self.next_id),
            schema: text.to_string(),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"}]}"#;
    // Adds a field with a default: BACKWARD compatible.
    const V2: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"b","type":"int","default":0}]}"#;
    // Adds a field without a default: new readers cannot read old data.
    const BAD: &str = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"c","type":"int"}]}"#;

    fn apply(s: &mut State, subject: &str, text: &str) -> Result<(u32, u32), ApiError> {
        match s.register(subject, text)? {
            Registration::Existing { id, version } => Ok((id, version)),
            Registration::New(c) => {
                let Change::Schema { id, version, .. } = c.clone() else {
                    unreachable!()
                };
                s.apply(c);
                Ok((id, version))
            }
        }
    }

    #[test]
    fn register_evolve_and_refuse() {
        let mut s = State::new(Compatibility::Backward);
        assert_eq!(apply(&mut s, "t-value", V1), Ok((1, 1)));
        // Same schema, different whitespace: same id, same version.
        assert_eq!(apply(&mut s, "t-value", &V1.replace(',', ", ")), Ok((1, 1)));
        assert_eq!(apply(&mut s, "t-value", V2), Ok((2, 2)));
        let e = apply(&mut s, "t-value", BAD).unwrap_err();
        assert_eq!((e.status, e.error_code), (409, 409));
        // The same schema under another subject keeps its id.
        assert_eq!(apply(&mut s, "u-value", V1), Ok((1, 1)));
        assert_eq!(
            s.version("t-value", "latest").unwrap(),
            Version { version: 2, id: 2 }
        );
        assert_eq!(s.lookup("t-value", V1).unwrap().version, 1);
    }

    #[test]
    fn levels() {
        let mut s = State::new(Compatibility::Backward);
        apply(&mut s, "t", V1).unwrap();
        s.apply(Change::Config {
            subject: Some("t".into()),
            compatibility: Compatibility::None,
        });
        assert!(apply(&mut s, "t", BAD).is_ok());
        // FORWARD: old readers (latest is BAD: a, c) must read new data.
        s.apply(Change::Config {
            subject: Some("t".into()),
            compatibility: Compatibility::Forward,
        });
        assert!(
            !s.check("t", V1, Against::Latest).unwrap().is_empty(),
            "V1 lacks c, which BAD readers need"
        );
        let extra = r#"{"type":"record","name":"R","fields":[{"name":"a","type":"string"},{"name":"c","type":"int"},{"name":"d","type":"int"}]}"#;
        assert!(s.check("t", extra, Against::Latest).unwrap().is_empty());
        // Against version 1 (only a) the extra fields are ignored by old readers too.
        assert!(s.check("t", extra, Against::Version(1)).unwrap().is_empty());
    }

    #[test]
    fn errors_have_confluent_codes() {
        let s = State::new(Compatibility::Backward);
        assert_eq!(s.versions("x").unwrap_err().error_code, 40401);
        assert_eq!(s.schema(9).unwrap_err().error_code, 40403);
        assert_eq!(s.register("x", "{not json").unwrap_err().error_code, 42201);
        assert_eq!(
            s.register("x", r#"{"type":"nope"}"#)
                .unwrap_err()
                .error_code,
            42201
        );
        let mut s = State::new(Compatibility::Backward);
        apply(&mut s, "t", V1).unwrap();
        assert_eq!(s.version("t", "7").unwrap_err().error_code, 40402);
        assert_eq!(s.version("t", "abc").unwrap_err().error_code, 42202);
        assert_eq!(s.version("t", "0").unwrap_err().error_code, 42202);
    }

    #[test]
    fn replay_restores_ids_and_next_id() {
        let mut a = State::new(Compatibility::Backward);
        let mut log = Vec::new();
        for (subj, text) in [("t", V1), ("t", V2), ("u", V1)] {
            if let Registration::New(c) = a.register(subj, text).unwrap() {
                log.push(c.clone());
                a.apply(c);
            }
        }
        let mut b = State::new(Compatibility::Backward);
        for c in log {
            b.apply(c);
        }
        assert_eq!(b.subjects(), vec!["t", "u"]);
        assert_eq!(b.version("u", "1").unwrap().id, 1);
        let Registration::New(Change::Schema { id, .. }) = b.register("v", BAD).unwrap() else {
            panic!()
        };
        assert_eq!(id, 3);
    }
}
