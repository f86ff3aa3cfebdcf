//! The one list of metric names and labels.
//!
//! Convention (after Vector's instrumentation spec): every name starts with
//! `credit_bus_`, counters end in `_total`, durations are histograms in seconds
//! ending in `_seconds`. Labels: `department` (catalogue id), `reason` (a stable
//! reason code), `topic`, `outcome`. Never a resident ID, subject key or name.
//!
//! Instruments are created through the OpenTelemetry SDK under the *base* name;
//! the Prometheus exporter appends `_total` to counters and `_seconds` to
//! histograms with unit `s`. [`MetricName::exported`] is what a scrape shows.

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricName {
    /// Inbound records read by a normaliser, by department.
    RecordsIn,
    /// Normalised records acknowledged on `credit.records`, by department.
    RecordsOut,
    /// Records sent to a dead-letter topic, by department and reason.
    RecordsDeadLettered,
    /// Time from reading a batch's first record to acknowledging its last output,
    /// one observation per batch, by department: an upper bound on every record's
    /// processing latency in that batch.
    ProcessingDuration,
    /// Schemas registered by the registry service, by outcome.
    SchemasRegistered,
    /// Notices acknowledged on department topics, by department and kind.
    NoticesSent,
    /// Records and commands the engine could not use (dead-lettered), by input
    /// (record, command, catalogue).
    EngineInputsRejected,
    /// Time to rebuild an engine partition's state.
    EngineRecoveryDuration,
    /// Time from an engine input's timestamp (its producer's create time) to
    /// the engine seeing the last of its notices acknowledged, per input that
    /// planned notices.
    EngineFanoutLatency,
    /// Consumer lag (high watermark minus committed/stored position), by
    /// group, topic and partition, from librdkafka statistics. Gauge.
    ConsumerLag,
    /// Feedback accepted by the tracker, by department and outcome
    /// (applied, not_applicable, failed).
    FeedbackReceived,
    /// Feedback refused, by department and reason.
    FeedbackRejected,
    /// Notices known to the tracker, by department and state
    /// (open, overdue, done). Gauge.
    NoticesTracked,
    /// The catalogue version the engine applies. Gauge.
    CatalogueActiveVersion,
    /// Unknown CSV header columns accepted and ignored, by department and column.
    CsvUnknownColumns,
    /// Guardrail decisions on natural persons' records, by department, concept and decision (blocked, passed).
    GuardrailDecisions,
    /// Errors met by a service, by class (retry, dead_letter, stop) and error code: the error policy's one counter.
    ErrorsHandled,
    /// List entries already expired when they reached the engine (no punishment sent), by department.
    EntriesLate,
    /// List entries lifted because their validity ended, by department.
    EntriesExpired,
    /// Records a department resent unchanged (same key and content digest), by department.
    RecordsDuplicate,
    /// Records whose code was already seen with another name (duplicate code), by department.
    CodeConflicts,
    /// Share of a department's records with a code/name conflict, against the seed's 0.005 % target. Gauge.
    CodeConflictRatio,
    /// Time to commit one engine transaction (notices, changelog and input offsets).
    EngineCommitDuration,
    /// List entries a department's resend changed (same record key, other content), by department.
    EntriesUpdated,
    /// Facts the archive stored, by input (records, notices, feedback, commands, catalogue, unreadable).
    ArchiveFactsStored,
    /// Time to write one archive batch to PostgreSQL (one transaction).
    ArchiveWriteDuration,
    /// Time to answer one archive API request, by route (the template, never a code) and outcome.
    ArchiveRequestDuration,
}

impl MetricName {
    pub const ALL: [MetricName; 27] = [
        MetricName::RecordsIn,
        MetricName::RecordsOut,
        MetricName::RecordsDeadLettered,
        MetricName::ProcessingDuration,
        MetricName::SchemasRegistered,
        MetricName::NoticesSent,
        MetricName::EngineInputsRejected,
        MetricName::EngineRecoveryDuration,
        MetricName::EngineFanoutLatency,
        MetricName::ConsumerLag,
        MetricName::FeedbackReceived,
        MetricName::FeedbackRejected,
        MetricName::NoticesTracked,
        MetricName::CatalogueActiveVersion,
        MetricName::CsvUnknownColumns,
        MetricName::GuardrailDecisions,
        MetricName::ErrorsHandled,
        MetricName::EntriesLate,
        MetricName::EntriesExpired,
        MetricName::RecordsDuplicate,
        MetricName::CodeConflicts,
        MetricName::CodeConflictRatio,
        MetricName::EngineCommitDuration,
        MetricName::EntriesUpdated,
        MetricName::ArchiveFactsStored,
        MetricName::ArchiveWriteDuration,
        MetricName::ArchiveRequestDuration,
    ];

    /// Instrument name given to the OpenTelemetry SDK.
    pub const fn base(self) -> &'static str {
        match self {
            MetricName::RecordsIn => "credit_bus_records_in",
            MetricName::RecordsOut => "credit_bus_records_out",
            MetricName::RecordsDeadLettered => "credit_bus_records_dead_lettered",
            MetricName::ProcessingDuration => "credit_bus_processing_duration",
            MetricName::SchemasRegistered => "credit_bus_schemas_registered",
            MetricName::NoticesSent => "credit_bus_notices_sent",
            MetricName::EngineInputsRejected => "credit_bus_engine_inputs_rejected",
            MetricName::EngineRecoveryDuration => "credit_bus_engine_recovery_duration",
            MetricName::EngineFanoutLatency => "credit_bus_engine_fanout_latency",
            MetricName::ConsumerLag => "credit_bus_consumer_lag",
            MetricName::FeedbackReceived => "credit_bus_feedback_received",
            MetricName::FeedbackRejected => "credit_bus_feedback_rejected",
            MetricName::NoticesTracked => "credit_bus_notices_tracked",
            MetricName::CatalogueActiveVersion => "credit_bus_catalogue_active_version",
            MetricName::CsvUnknownColumns => "credit_bus_csv_unknown_columns",
            MetricName::GuardrailDecisions => "credit_bus_guardrail_decisions",
            MetricName::ErrorsHandled => "credit_bus_errors",
            MetricName::EntriesLate => "credit_bus_entries_late",
            MetricName::EntriesExpired => "credit_bus_entries_expired",
            MetricName::RecordsDuplicate => "credit_bus_records_duplicate",
            MetricName::CodeConflicts => "credit_bus_code_conflicts",
            MetricName::CodeConflictRatio => "credit_bus_code_conflict_ratio",
            MetricName::EngineCommitDuration => "credit_bus_engine_commit_duration",
            MetricName::EntriesUpdated => "credit_bus_entries_updated",
            MetricName::ArchiveFactsStored => "credit_bus_archive_facts_stored",
            MetricName::ArchiveWriteDuration => "credit_bus_archive_write_duration",
            MetricName::ArchiveRequestDuration => "credit_bus_archive_request_duration",
        }
    }

    /// The name as Prometheus scrapes it.
    pub const fn exported(self) -> &'static str {
        match self {
            MetricName::RecordsIn => "credit_bus_records_in_total",
            MetricName::RecordsOut => "credit_bus_records_out_total",
            MetricName::RecordsDeadLettered => "credit_bus_records_dead_lettered_total",
            MetricName::ProcessingDuration => "credit_bus_processing_duration_seconds",
            MetricName::SchemasRegistered => "credit_bus_schemas_registered_total",
            MetricName::NoticesSent => "credit_bus_notices_sent_total",
            MetricName::EngineInputsRejected => "credit_bus_engine_inputs_rejected_total",
            MetricName::EngineRecoveryDuration => "credit_bus_engine_recovery_duration_seconds",
            MetricName::EngineFanoutLatency => "credit_bus_engine_fanout_latency_seconds",
            MetricName::ConsumerLag => "credit_bus_consumer_lag",
            MetricName::FeedbackReceived => "credit_bus_feedback_received_total",
            MetricName::FeedbackRejected => "credit_bus_feedback_rejected_total",
            MetricName::NoticesTracked => "credit_bus_notices_tracked",
            MetricName::CatalogueActiveVersion => "credit_bus_catalogue_active_version",
            MetricName::CsvUnknownColumns => "credit_bus_csv_unknown_columns_total",
            MetricName::GuardrailDecisions => "credit_bus_guardrail_decisions_total",
            MetricName::ErrorsHandled => "credit_bus_errors_total",
            MetricName::EntriesLate => "credit_bus_entries_late_total",
            MetricName::EntriesExpired => "credit_bus_entries_expired_total",
            MetricName::RecordsDuplicate => "credit_bus_records_duplicate_total",
            MetricName::CodeConflicts => "credit_bus_code_conflicts_total",
            MetricName::CodeConflictRatio => "credit_bus_code_conflict_ratio",
            MetricName::EngineCommitDuration => "credit_bus_engine_commit_duration_seconds",
            MetricName::EntriesUpdated => "credit_bus_entries_updated_total",
            MetricName::ArchiveFactsStored => "credit_bus_archive_facts_stored_total",
            MetricName::ArchiveWriteDuration => "credit_bus_archive_write_duration_seconds",
            MetricName::ArchiveRequestDuration => "credit_bus_archive_request_duration_seconds",
        }
    }

    pub fn counter(self, meter: &Meter, description: &'static str) -> Counter<u64> {
        meter
            .u64_counter(self.base())
            .with_description(description)
            .build()
    }

    pub fn gauge(self, meter: &Meter, description: &'static str) -> Gauge<i64> {
        meter
            .i64_gauge(self.base())
            .with_description(description)
            .build()
    }

    /// A gauge of a share (0..1), e.g. [`MetricName::CodeConflictRatio`]:
    /// integer gauges cannot hold a rate measured against 0.005 %.
    pub fn ratio_gauge(self, meter: &Meter, description: &'static str) -> Gauge<f64> {
        meter
            .f64_gauge(self.base())
            .with_description(description)
            .build()
    }

    pub fn seconds_histogram(self, meter: &Meter, description: &'static str) -> Histogram<f64> {
        meter
            .f64_histogram(self.base())
            .with_unit("s")
            .with_description(description)
            // Sub-millisecond to seconds: the bus's latencies live in 0.1 ms..1 s;
            // finer between 10 ms and 1 s, where the fan-out's p99 goal (50 ms)
            // and its figures on a loaded broker lie.
            .with_boundaries(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.04, 0.05, 0.075,
                0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0,
            ])
            .build()
    }
}

/// Label keys.
pub mod label {
    pub const DEPARTMENT: &str = "department";
    pub const REASON: &str = "reason";
    pub const OUTCOME: &str = "outcome";
    pub const KIND: &str = "kind";
    pub const INPUT: &str = "input";
    pub const STATE: &str = "state";
    pub const GROUP: &str = "group";
    pub const TOPIC: &str = "topic";
    pub const PARTITION: &str = "partition";
    pub const CLASS: &str = "class";
    pub const ERROR: &str = "error";
    pub const CONCEPT: &str = "concept";
    pub const DECISION: &str = "decision";
    pub const COLUMN: &str = "column";
    pub const ROUTE: &str = "route";
}

pub fn department(id: &'static str) -> KeyValue {
    KeyValue::new(label::DEPARTMENT, id)
}

pub fn reason(code: &'static str) -> KeyValue {
    KeyValue::new(label::REASON, code)
}
