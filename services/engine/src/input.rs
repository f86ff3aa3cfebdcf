//! What the engine reads, decoded and classified: a normalised record from
//! the records topic (Confluent-framed Avro) or an operator command (JSON).
//!
//! Every way an input can fail is an [`InputError`] whose class says what to
//! do (`credit_runtime::errors`): a value that is not ours to read is
//! dead-lettered with its reason; a registry that cannot be reached is
//! retried (the record is fine, the registry is away); a registry that
//! refuses us stops the instance.

use std::collections::HashMap;
use std::sync::Arc;

use credit_core::ReasonCode;
use credit_measures::plan::{Input, Source};
use credit_runtime::errors::{Class, Classify, Disposition, ErrorPolicy, Fault, RetryError};
use credit_runtime::shutdown::Shutdown;
use credit_schemas::commands::CommandParseError;
use credit_schemas::registry::{RegistryClient, RegistryError};
use credit_schemas::wire::{self, WireError};

/// Why an input cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("empty value")]
    Empty,
    #[error("not a Confluent-framed Avro value: {0}")]
    Framing(#[from] WireError),
    #[error("writer schema {id}: {source}")]
    Registry { id: u32, source: RegistryError },
    #[error("writer schema {id}: {detail}")]
    RegistryGaveUp { id: u32, detail: String },
    #[error("writer schema {id} is {name:?}, not a credit record: written for another topic")]
    SchemaMismatch { id: u32, name: String },
    #[error("writer schema {id} does not parse: {detail}")]
    BadSchema { id: u32, detail: String },
    #[error("credit record body: {0}")]
    Body(String),
    #[error(transparent)]
    Command(#[from] CommandParseError),
}

impl Classify for InputError {
    fn class(&self) -> Class {
        let dead = |code, reason| Class::new(code, Fault::Input, Disposition::DeadLetter(reason));
        match self {
            InputError::Empty => dead("input_empty", ReasonCode::EmptyRecord),
            InputError::Framing(_) | InputError::Body(_) => {
                dead("input_malformed_avro", ReasonCode::MalformedAvro)
            }
            InputError::SchemaMismatch { .. } | InputError::BadSchema { .. } => {
                dead("input_schema_mismatch", ReasonCode::SchemaMismatch)
            }
            InputError::Registry { source, .. } => source.class(),
            InputError::RegistryGaveUp { .. } => {
                Class::new("registry_unavailable", Fault::External, Disposition::Stop)
            }
            InputError::Command(_) => dead("input_malformed_command", ReasonCode::MalformedCommand),
        }
    }
}

impl InputError {
    /// The reason code when dead-lettered, with the field at fault.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            InputError::Registry { .. }
            | InputError::SchemaMismatch { .. }
            | InputError::BadSchema { .. } => Some("schema_id"),
            _ => None,
        }
    }
}

/// A writer schema of the records topic.
enum Writer {
    /// Ours: bodies decode directly (resolution costs more than the decode).
    Ours,
    /// Another version of the credit record: decoded with resolution.
    Resolved(apache_avro::Schema),
}

/// Decodes records, caching writer schemas by id (ids are immutable).
pub struct Decoder {
    registry: RegistryClient,
    writers: HashMap<u32, Arc<Writer>>,
}

impl Decoder {
    pub fn new(registry: RegistryClient) -> Decoder {
        Decoder {
            registry,
            writers: HashMap::new(),
        }
    }

    /// The writer schema `id`, fetched once; a registry that is away is
    /// retried (bounded backoff) until it answers or `shutdown`.
    async fn writer(
        &mut self,
        id: u32,
        policy: &ErrorPolicy,
        shutdown: &Shutdown,
    ) -> Result<Arc<Writer>, InputError> {
        if let Some(w) = self.writers.get(&id) {
            return Ok(w.clone());
        }
        let registry = &self.registry;
        let text = policy
            .retry(
                "fetching a writer schema from the registry",
                shutdown,
                || registry.schema_by_id(id),
            )
            .await
            .map_err(|e| match e {
                RetryError::NotRetriable(source) => InputError::Registry { id, source },
                other => InputError::RegistryGaveUp {
                    id,
                    detail: other.to_string(),
                },
            })?;
        let schema = apache_avro::Schema::parse_str(&text).map_err(|e| InputError::BadSchema {
            id,
            detail: e.to_string(),
        })?;
        let ours = credit_schemas::credit_record_schema();
        let writer = if schema.canonical_form() == ours.canonical_form() {
            Writer::Ours
        } else {
            let name = |s: &apache_avro::Schema| match s {
                apache_avro::Schema::Record(r) => Some(r.name.name().to_string()),
                _ => None,
            };
            if name(&schema) != name(ours) {
                return Err(InputError::SchemaMismatch {
                    id,
                    name: name(&schema).unwrap_or_else(|| "not a record".into()),
                });
            }
            Writer::Resolved(schema)
        };
        let w = Arc::new(writer);
        self.writers.insert(id, w.clone());
        Ok(w)
    }

    /// Decodes a value of the records topic at `source`.
    pub async fn record(
        &mut self,
        value: Option<&[u8]>,
        source: Source,
        policy: &ErrorPolicy,
        shutdown: &Shutdown,
    ) -> Result<Input, InputError> {
        let value = value.filter(|v| !v.is_empty()).ok_or(InputError::Empty)?;
        let (id, body) = wire::split(value)?;
        let writer = self.writer(id, policy, shutdown).await?;
        match &*writer {
            Writer::Ours => direct(body, source),
            Writer::Resolved(schema) => resolved(schema, body, source),
        }
    }
}

fn direct(body: &[u8], source: Source) -> Result<Input, InputError> {
    credit_schemas::decode::record_head(body)
        .map(|h| h.to_input(source))
        .map_err(|e| InputError::Body(e.to_string()))
}

/// A body written with another version of the credit record: resolved into
/// ours, written again with ours, and read like any other (so its digest is
/// the one our own writer would give the same content).
fn resolved(
    writer: &apache_avro::Schema,
    body: &[u8],
    source: Source,
) -> Result<Input, InputError> {
    let ours = credit_schemas::credit_record_schema();
    #[allow(deprecated)]
    let v = apache_avro::from_avro_datum(writer, &mut &body[..], Some(ours))
        .map_err(|e| InputError::Body(e.to_string()))?;
    #[allow(deprecated)]
    let canonical =
        apache_avro::to_avro_datum(ours, v).map_err(|e| InputError::Body(e.to_string()))?;
    direct(&canonical, source)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(offset: i64) -> Source {
        Source {
            topic: "credit.records".into(),
            partition: 1,
            offset,
        }
    }

    /// The direct decoder and `apache_avro` with schema resolution (the path
    /// for other writer versions) read every department's sample records the
    /// same way.
    #[test]
    fn both_decode_paths_agree_on_sample_records() {
        let schema = credit_schemas::credit_record_schema();
        let mut g = credit_datagen::Generator::new(7, 0.0);
        let mut entries = 0;
        for d in credit_core::catalogue::publishing_departments() {
            for i in 0..200 {
                let s = g.record(d.id);
                let ctx = credit_core::record::Context {
                    department: d.id,
                    source_topic: "credit.inbound",
                    partition: 2,
                    offset: i,
                    timestamp_ms: None,
                    today: credit_runtime::today(),
                    key: None,
                };
                let mut body = Vec::new();
                credit_normaliser::adapters::normalise(d.inbound.unwrap(), &ctx, &s.value, |r| {
                    credit_schemas::encode::credit_record_body(&mut body, r)
                })
                .expect("valid samples");
                let a = direct(&body, source(i)).unwrap();
                let b = resolved(schema, &body, source(i)).unwrap();
                assert_eq!(a, b);
                entries += usize::from(a.is_list_entry);
            }
        }
        assert!(entries > 100, "the samples hold list entries ({entries})");
        let bad = direct(b"\x02", source(0)).unwrap_err();
        assert!(bad.to_string().contains("truncated"), "{bad}");
        assert_eq!(
            bad.class().disposition,
            Disposition::DeadLetter(ReasonCode::MalformedAvro)
        );
    }

    #[test]
    fn every_input_fault_has_its_reason() {
        let cases: Vec<(InputError, Disposition)> = vec![
            (
                InputError::Empty,
                Disposition::DeadLetter(ReasonCode::EmptyRecord),
            ),
            (
                InputError::Framing(WireError::Magic(7)),
                Disposition::DeadLetter(ReasonCode::MalformedAvro),
            ),
            (
                InputError::SchemaMismatch {
                    id: 3,
                    name: "Notice".into(),
                },
                Disposition::DeadLetter(ReasonCode::SchemaMismatch),
            ),
            (
                InputError::Registry {
                    id: 999,
                    source: RegistryError::Api {
                        status: 404,
                        error_code: 40403,
                        message: "Schema not found".into(),
                    },
                },
                Disposition::DeadLetter(ReasonCode::UnknownSchema),
            ),
            (
                InputError::Registry {
                    id: 1,
                    source: RegistryError::Api {
                        status: 403,
                        error_code: 40301,
                        message: "forbidden".into(),
                    },
                },
                Disposition::Stop,
            ),
            (
                InputError::Command(CommandParseError::Empty),
                Disposition::DeadLetter(ReasonCode::MalformedCommand),
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.class().disposition, want, "{e}");
        }
    }
}
