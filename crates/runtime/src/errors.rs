//! The error policy every service follows, in one place.
//!
//! Every error a service meets is classified as one of three things to do
//! ([`Disposition`]), with whose fault it is ([`Fault`]) and a short stable
//! code for the `error` metric label and the logs ([`Class`]):
//!
//! * **retry**: a transient outside fault (broker or registry away, a leader
//!   moving, a timeout). Wait with bounded exponential backoff and try the same
//!   thing again ([`ErrorPolicy::retry`]): one log line when an episode starts,
//!   one a minute while it lasts, one when it ends; every failed attempt counts
//!   in `credit_bus_errors_total{class="retry",error}`. An episode longer than
//!   [`Backoff::give_up_after`] becomes a stop.
//! * **dead-letter**: this one input is at fault (undecodable, unknown schema,
//!   too large to write). It goes to the service's dead-letter topic with its
//!   original bytes, the [`ReasonCode`] and its topic/partition/offset
//!   (`credit_core::dlq`); processing goes on.
//! * **stop**: a configuration or authorisation fault, or a client that can no
//!   longer be used (fenced, fatal). The service stops with a clear message and
//!   commits nothing past the input it was on; a restart resumes from there.
//!
//! What belongs to which class is decided here and only here: librdkafka's
//! errors in [`kafka`], the schema registry's in [`registry`]. A service's own
//! error type implements [`Classify`] by delegating to them. The table, with
//! what an operator sees for each, is `docs/errors.md`.
//!
//! Modelled on arroyo's `errors.rs` (an error says whose fault it is and
//! whether to retry), with the dead-letter case made explicit: for a bus,
//! "the input is bad" is the commonest error and must never stop it.

use std::fmt;
use std::future::Future;
use std::time::Duration;

// tokio's clock, so tests can pause it; the same as std's otherwise.
use tokio::time::Instant;

use credit_core::ReasonCode;
use credit_schemas::registry::RegistryError;
use opentelemetry::KeyValue;
use opentelemetry::metrics::Counter;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::metrics::{MetricName, label};
use crate::shutdown::Shutdown;
use crate::telemetry::Telemetry;

/// What to do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Disposition {
    /// Transient: back off and try the same thing again.
    Retry,
    /// The input is at fault: dead-letter it with this reason, go on.
    DeadLetter(ReasonCode),
    /// Stop the service; commit nothing past the current input.
    Stop,
}

impl Disposition {
    /// The `class` metric label: `retry`, `dead_letter`, `stop`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Disposition::Retry => "retry",
            Disposition::DeadLetter(_) => "dead_letter",
            Disposition::Stop => "stop",
        }
    }
}

/// Whose fault an error is (arroyo's `ErrorDomain`, with the input apart).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The record or command read: a department's or an operator's data.
    Input,
    /// A system we depend on: the broker, the registry, the network.
    External,
    /// How the bus is configured or authorised (config, ACLs, credentials).
    Config,
    /// The bus itself (a fenced or fatally failed client, a bug).
    Internal,
}

impl Fault {
    pub const fn as_str(self) -> &'static str {
        match self {
            Fault::Input => "input",
            Fault::External => "external",
            Fault::Config => "config",
            Fault::Internal => "internal",
        }
    }
}

/// The classification of one error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Class {
    /// Short, stable, low-cardinality: the `error` metric label
    /// (`kafka_transport`, `registry_unknown_schema`, ...). The error's own
    /// message goes to the log line, never to a label.
    pub code: &'static str,
    pub fault: Fault,
    pub disposition: Disposition,
}

impl Class {
    pub const fn new(code: &'static str, fault: Fault, disposition: Disposition) -> Class {
        Class {
            code,
            fault,
            disposition,
        }
    }

    const fn retry(code: &'static str) -> Class {
        Class::new(code, Fault::External, Disposition::Retry)
    }

    const fn stop(code: &'static str, fault: Fault) -> Class {
        Class::new(code, fault, Disposition::Stop)
    }

    pub fn is_retry(&self) -> bool {
        self.disposition == Disposition::Retry
    }
}

/// An error that knows its [`Class`]. Services' error enums implement it by
/// delegating to [`kafka`] and [`registry`] for wrapped client errors.
pub trait Classify: fmt::Display {
    fn class(&self) -> Class;
}

impl Classify for KafkaError {
    fn class(&self) -> Class {
        kafka(self)
    }
}

impl Classify for RegistryError {
    fn class(&self) -> Class {
        registry(self)
    }
}

impl<T: Classify + ?Sized> Classify for &T {
    fn class(&self) -> Class {
        (**self).class()
    }
}

/// The class of a librdkafka error. Sizes and invalid records are about the
/// one record being produced (dead-letter its input, [`ReasonCode::UndeliverableOutput`]);
/// authorisation, authentication and configuration stop; a fenced or fatally
/// failed client stops; anything about reaching the cluster retries; an
/// unknown code retries (bounded by [`Backoff::give_up_after`]).
pub fn kafka(e: &KafkaError) -> Class {
    match e {
        KafkaError::ClientConfig(..)
        | KafkaError::ClientCreation(_)
        | KafkaError::Subscription(_)
        | KafkaError::AdminOpCreation(_)
        | KafkaError::Nul(_) => Class::stop("kafka_config", Fault::Config),
        // The client went away under us: only on shutdown or a bug.
        KafkaError::Canceled => Class::stop("kafka_client_gone", Fault::Internal),
        KafkaError::MessageConsumptionFatal(_) => Class::stop("kafka_fatal", Fault::Internal),
        KafkaError::Transaction(t) => {
            if t.is_fatal() {
                Class::stop("kafka_fatal", Fault::Internal)
            } else if t.txn_requires_abort() {
                // Abort the transaction, then redo its work.
                Class::retry("kafka_transaction_abort")
            } else {
                kafka_code(t.code())
            }
        }
        KafkaError::AdminOp(c)
        | KafkaError::ConsumerCommit(c)
        | KafkaError::ConsumerQueueClose(c)
        | KafkaError::Flush(c)
        | KafkaError::Global(c)
        | KafkaError::GroupListFetch(c)
        | KafkaError::MessageConsumption(c)
        | KafkaError::MessageProduction(c)
        | KafkaError::MetadataFetch(c)
        | KafkaError::OffsetFetch(c)
        | KafkaError::Rebalance(c)
        | KafkaError::SetPartitionOffset(c)
        | KafkaError::StoreOffset(c)
        | KafkaError::MockCluster(c) => kafka_code(*c),
        KafkaError::PartitionEOF(_) | KafkaError::NoMessageReceived => {
            Class::retry("kafka_no_message")
        }
        KafkaError::PauseResume(_) | KafkaError::Seek(_) => Class::retry("kafka_other"),
        // `KafkaError` may grow; a new kind retries, bounded, until classified here.
        #[allow(unreachable_patterns)]
        _ => Class::retry("kafka_other"),
    }
}

/// The class of a librdkafka error code (see [`kafka`]).
pub fn kafka_code(c: RDKafkaErrorCode) -> Class {
    use Disposition::DeadLetter;
    use RDKafkaErrorCode as C;
    match c {
        // One record the broker or the client will never accept.
        C::MessageSizeTooLarge | C::MessageBatchTooLarge => Class::new(
            "kafka_record_too_large",
            Fault::Input,
            DeadLetter(ReasonCode::UndeliverableOutput),
        ),
        C::InvalidRecord
        | C::InvalidTimestamp
        | C::BadMessage
        | C::KeySerialization
        | C::ValueSerialization => Class::new(
            "kafka_invalid_record",
            Fault::Input,
            DeadLetter(ReasonCode::UndeliverableOutput),
        ),

        C::TopicAuthorizationFailed
        | C::GroupAuthorizationFailed
        | C::ClusterAuthorizationFailed
        | C::TransactionalIdAuthorizationFailed
        | C::DelegationTokenAuthorizationFailed => {
            Class::stop("kafka_authorization", Fault::Config)
        }
        C::Authentication
        | C::SaslAuthenticationFailed
        | C::UnsupportedSASLMechanism
        | C::IllegalSASLState
        | C::UnacceptableCredential
        | C::SSL => Class::stop("kafka_authentication", Fault::Config),
        C::InvalidArgument
        | C::InvalidConfig
        | C::InvalidTopic
        | C::InvalidRequiredAcks
        | C::InvalidPartitions
        | C::InvalidReplicationFactor
        | C::InvalidReplicaAssignment
        | C::InvalidSessionTimeout
        | C::InvalidGroupId
        | C::InvalidTransactionTimeout
        | C::InconsistentGroupProtocol
        | C::UnsupportedVersion
        | C::UnsupportedFeature
        | C::UnsupportedCompressionType
        | C::UnsupportedForMessageFormat
        | C::NotImplemented
        | C::NotConfigured
        | C::PolicyViolation
        | C::SecurityDisabled
        | C::UnknownProtocol
        | C::OffsetMetadataTooLarge
        | C::TopicAlreadyExists => Class::stop("kafka_config", Fault::Config),
        C::Fenced
        | C::ProducerFenced
        | C::InvalidProducerEpoch
        | C::TransactionCoordinatorFenced
        | C::FencedInstanceId => Class::stop("kafka_fenced", Fault::Internal),
        C::Fatal
        | C::OutOfOrderSequenceNumber
        | C::InvalidProducerIdMapping
        | C::InvalidTransactionalState
        | C::GaplessGuarantee
        | C::Inconsistent
        | C::State
        | C::CriticalSystemResource
        | C::FileSystem
        | C::BrokerDestroy
        | C::DestroyBroker
        | C::PurgeQueue
        | C::PurgeInflight
        | C::InvalidDifferentRecord => Class::stop("kafka_fatal", Fault::Internal),

        C::QueueFull => Class::retry("kafka_queue_full"),
        C::ConcurrentTransactions => Class::retry("kafka_transaction_busy"),
        // Reaching the cluster and its leaders; librdkafka refreshes metadata
        // and reconnects by itself, so trying again is all there is to do.
        C::BrokerTransportFailure
        | C::Resolve
        | C::AllBrokersDown
        | C::MessageTimedOut
        | C::OperationTimedOut
        | C::TimedOutQueue
        | C::RequestTimedOut
        | C::NetworkException
        | C::LeaderNotAvailable
        | C::NotLeaderForPartition
        | C::BrokerNotAvailable
        | C::ReplicaNotAvailable
        | C::PreferredLeaderNotAvailable
        | C::EligibleLeadersNotAvailable
        | C::FencedLeaderEpoch
        | C::UnknownLeaderEpoch
        | C::NotEnoughReplicas
        | C::NotEnoughReplicasAfterAppend
        | C::ISRInsufficient
        | C::KafkaStorageError
        | C::CoordinatorLoadInProgress
        | C::CoordinatorNotAvailable
        | C::NotCoordinator
        | C::WaitingForCoordinator
        | C::RebalanceInProgress
        | C::IllegalGeneration
        | C::UnknownMemberId
        | C::StaleMemberEpoch
        | C::FencedMemberEpoch
        | C::ThrottlingQuotaExceeded
        | C::InvalidMessage
        | C::NodeUpdate
        | C::RebootstrapRequired
        | C::Retry
        | C::InProgress
        | C::PreviousInProgress
        | C::UnstableOffsetCommit
        | C::OffsetNotAvailable
        // A topic or partition not (yet) in the metadata: just created, or
        // missing; the give-up bound turns a missing one into a stop.
        | C::UnknownTopicOrPartition
        | C::UnknownTopic
        | C::UnknownPartition
        | C::UnknownTopicId => Class::retry("kafka_transport"),
        _ => Class::retry("kafka_other"),
    }
}

/// The class of a schema-registry error. A schema id the registry does not
/// know (404, Confluent error code 40403) is the record's fault: dead-letter
/// it as [`ReasonCode::UnknownSchema`]. A registry that cannot be reached or
/// answers 5xx, 408 or 429 is retried. 401/403 are an authorisation fault, a
/// bad URL or any other refusal (an incompatible or invalid schema of ours, a
/// 404 that is not "schema not found": the URL points elsewhere) a
/// configuration fault: stop.
pub fn registry(e: &RegistryError) -> Class {
    match e {
        RegistryError::Url(_) => Class::stop("registry_config", Fault::Config),
        RegistryError::Transport(t) => {
            // A 200 whose body is not the registry's JSON: not a registry.
            if t.is_decode() || t.is_builder() {
                Class::stop("registry_config", Fault::Config)
            } else {
                Class::retry("registry_unavailable")
            }
        }
        RegistryError::Api { status, .. } => match *status {
            404 if e.is_unknown_schema() => Class::new(
                "registry_unknown_schema",
                Fault::Input,
                Disposition::DeadLetter(ReasonCode::UnknownSchema),
            ),
            401 | 403 => Class::stop("registry_authorization", Fault::Config),
            408 | 429 | 500..=599 => Class::retry("registry_unavailable"),
            _ => Class::stop("registry_refused", Fault::Config),
        },
    }
}

/// How long and how often to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Wait before the second attempt; doubled after each failure.
    pub initial: Duration,
    /// The longest wait between two attempts.
    pub max: Duration,
    /// An episode longer than this becomes a stop (`None`: retry until shutdown).
    pub give_up_after: Option<Duration>,
}

impl Default for Backoff {
    /// 100 ms doubling to 5 s; give up after 5 minutes. A registry or broker
    /// restart (tens of seconds) is ridden out; a cluster away for longer
    /// stops the service, so the orchestrator's restarts and alerts see it.
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(5),
            give_up_after: Some(Duration::from_secs(300)),
        }
    }
}

impl Backoff {
    /// The wait after `failures` failed attempts (1 = after the first).
    pub fn delay(&self, failures: u32) -> Duration {
        let factor = 1u32
            .checked_shl(failures.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

/// Why [`ErrorPolicy::retry`] returned without a result.
#[derive(Debug)]
pub enum RetryError<E> {
    /// The error is not one to retry (its class says dead-letter or stop):
    /// the caller acts on [`Classify::class`].
    NotRetriable(E),
    /// Retried for longer than [`Backoff::give_up_after`]: stop.
    GaveUp {
        last: E,
        attempts: u32,
        elapsed: Duration,
    },
    /// Shutdown was requested while waiting.
    Shutdown,
}

impl<E: Classify> RetryError<E> {
    /// The error to act on, if any (`None` on shutdown).
    pub fn error(&self) -> Option<&E> {
        match self {
            RetryError::NotRetriable(e) | RetryError::GaveUp { last: e, .. } => Some(e),
            RetryError::Shutdown => None,
        }
    }

    /// What the caller does now: a given-up retry is a stop.
    pub fn disposition(&self) -> Disposition {
        match self {
            RetryError::NotRetriable(e) => e.class().disposition,
            RetryError::GaveUp { .. } | RetryError::Shutdown => Disposition::Stop,
        }
    }
}

impl<E: fmt::Display> fmt::Display for RetryError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryError::NotRetriable(e) => e.fmt(f),
            RetryError::GaveUp {
                last,
                attempts,
                elapsed,
            } => write!(
                f,
                "gave up after {attempts} attempts over {:.0} s: {last}",
                elapsed.as_secs_f64()
            ),
            RetryError::Shutdown => f.write_str("shutdown requested while retrying"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for RetryError<E> {}

/// A service's handle on the policy: the backoff and the one error counter.
/// Cheap to clone.
#[derive(Clone)]
pub struct ErrorPolicy {
    counter: Counter<u64>,
    backoff: Backoff,
}

impl ErrorPolicy {
    pub fn new(telemetry: &Telemetry) -> ErrorPolicy {
        ErrorPolicy {
            counter: MetricName::ErrorsHandled.counter(
                &telemetry.meter(),
                "Errors met, by class (retry, dead_letter, stop) and error code (docs/errors.md)",
            ),
            backoff: Backoff::default(),
        }
    }

    pub fn with_backoff(mut self, backoff: Backoff) -> ErrorPolicy {
        self.backoff = backoff;
        self
    }

    pub fn backoff(&self) -> Backoff {
        self.backoff
    }

    /// Counts one error in `credit_bus_errors_total{class,error}`.
    pub fn count(&self, class: Class) {
        self.counter.add(
            1,
            &[
                KeyValue::new(label::CLASS, class.disposition.as_str()),
                KeyValue::new(label::ERROR, class.code),
            ],
        );
    }

    /// Counts a stop and logs it: the one line an operator looks for when a
    /// service exits. `what` names the operation (`"writing a dead letter"`).
    pub fn stop<E: Classify + ?Sized>(&self, what: &str, e: &E) {
        let class = e.class();
        self.count(Class {
            disposition: Disposition::Stop,
            ..class
        });
        tracing::error!(
            error = %e,
            code = class.code,
            fault = class.fault.as_str(),
            "{what}: stopping (nothing committed past this input; a restart resumes here)"
        );
    }

    /// Runs `op` until it succeeds, retrying errors whose class is
    /// [`Disposition::Retry`] with bounded exponential backoff; returns any
    /// other error at once ([`RetryError::NotRetriable`]), gives up after
    /// [`Backoff::give_up_after`], and returns [`RetryError::Shutdown`] as soon
    /// as `shutdown` is cancelled while waiting. Logs one line when an episode
    /// starts (or its error changes), one a minute while it lasts, and one
    /// when it ends; counts every failed attempt.
    pub async fn retry<T, E, F, Fut>(
        &self,
        what: &str,
        shutdown: &Shutdown,
        mut op: F,
    ) -> Result<T, RetryError<E>>
    where
        E: Classify,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut failures = 0u32;
        let mut started: Option<Instant> = None;
        let mut last_code = "";
        let mut last_log = Instant::now();
        loop {
            let e = match op().await {
                Ok(v) => {
                    if let Some(t) = started {
                        tracing::info!(
                            attempts = failures + 1,
                            seconds = t.elapsed().as_secs_f64(),
                            "{what}: recovered"
                        );
                    }
                    return Ok(v);
                }
                Err(e) => e,
            };
            let class = e.class();
            if !class.is_retry() {
                return Err(RetryError::NotRetriable(e));
            }
            self.count(class);
            failures += 1;
            let since = *started.get_or_insert_with(Instant::now);
            let elapsed = since.elapsed();
            if let Some(limit) = self.backoff.give_up_after
                && elapsed >= limit
            {
                self.count(Class {
                    disposition: Disposition::Stop,
                    ..class
                });
                tracing::error!(error = %e, code = class.code, attempts = failures, seconds = elapsed.as_secs_f64(), "{what}: giving up");
                return Err(RetryError::GaveUp {
                    last: e,
                    attempts: failures,
                    elapsed,
                });
            }
            if failures == 1 || class.code != last_code {
                tracing::warn!(error = %e, code = class.code, fault = class.fault.as_str(), "{what}: failed; retrying with backoff");
                last_log = Instant::now();
            } else if last_log.elapsed() >= Duration::from_secs(60) {
                tracing::warn!(error = %e, code = class.code, attempts = failures, seconds = elapsed.as_secs_f64(), "{what}: still failing; retrying");
                last_log = Instant::now();
            }
            last_code = class.code;
            tokio::select! {
                _ = shutdown.cancelled() => return Err(RetryError::Shutdown),
                _ = tokio::time::sleep(self.backoff.delay(failures)) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[test]
    fn the_kafka_table() {
        use Disposition::*;
        use RDKafkaErrorCode as C;
        let dl = DeadLetter(ReasonCode::UndeliverableOutput);
        for (e, code, disposition) in [
            // Issue 16: one record too large for the broker or the client.
            (
                KafkaError::MessageProduction(C::MessageSizeTooLarge),
                "kafka_record_too_large",
                dl,
            ),
            (
                KafkaError::MessageProduction(C::MessageBatchTooLarge),
                "kafka_record_too_large",
                dl,
            ),
            (
                KafkaError::MessageProduction(C::InvalidRecord),
                "kafka_invalid_record",
                dl,
            ),
            (
                KafkaError::MessageProduction(C::TopicAuthorizationFailed),
                "kafka_authorization",
                Stop,
            ),
            (
                KafkaError::MessageConsumption(C::GroupAuthorizationFailed),
                "kafka_authorization",
                Stop,
            ),
            (
                KafkaError::Global(C::SaslAuthenticationFailed),
                "kafka_authentication",
                Stop,
            ),
            (
                KafkaError::Global(C::Authentication),
                "kafka_authentication",
                Stop,
            ),
            (
                KafkaError::MessageProduction(C::ProducerFenced),
                "kafka_fenced",
                Stop,
            ),
            (
                KafkaError::MessageProduction(C::InvalidProducerEpoch),
                "kafka_fenced",
                Stop,
            ),
            (KafkaError::Global(C::Fatal), "kafka_fatal", Stop),
            (
                KafkaError::MessageProduction(C::OutOfOrderSequenceNumber),
                "kafka_fatal",
                Stop,
            ),
            (
                KafkaError::MessageConsumptionFatal(C::Unknown),
                "kafka_fatal",
                Stop,
            ),
            (
                KafkaError::ClientCreation("bad".into()),
                "kafka_config",
                Stop,
            ),
            (KafkaError::Subscription("bad".into()), "kafka_config", Stop),
            (KafkaError::Canceled, "kafka_client_gone", Stop),
            (
                KafkaError::MessageProduction(C::QueueFull),
                "kafka_queue_full",
                Retry,
            ),
            (
                KafkaError::MessageProduction(C::BrokerTransportFailure),
                "kafka_transport",
                Retry,
            ),
            (
                KafkaError::Global(C::AllBrokersDown),
                "kafka_transport",
                Retry,
            ),
            (
                KafkaError::MessageProduction(C::MessageTimedOut),
                "kafka_transport",
                Retry,
            ),
            (
                KafkaError::MessageProduction(C::RequestTimedOut),
                "kafka_transport",
                Retry,
            ),
            (
                KafkaError::MessageProduction(C::LeaderNotAvailable),
                "kafka_transport",
                Retry,
            ),
            (
                KafkaError::MessageProduction(C::NotLeaderForPartition),
                "kafka_transport",
                Retry,
            ),
            (
                KafkaError::MessageProduction(C::NotEnoughReplicas),
                "kafka_transport",
                Retry,
            ),
            (
                KafkaError::MetadataFetch(C::OperationTimedOut),
                "kafka_transport",
                Retry,
            ),
            (
                KafkaError::ConsumerCommit(C::RebalanceInProgress),
                "kafka_transport",
                Retry,
            ),
            (
                KafkaError::ConsumerCommit(C::CoordinatorNotAvailable),
                "kafka_transport",
                Retry,
            ),
            (
                KafkaError::MessageProduction(C::ConcurrentTransactions),
                "kafka_transaction_busy",
                Retry,
            ),
            (
                KafkaError::MessageProduction(C::Unknown),
                "kafka_other",
                Retry,
            ),
        ] {
            let c = kafka(&e);
            assert_eq!((c.code, c.disposition), (code, disposition), "{e}");
            assert_eq!(e.class(), c, "the trait says what the table says");
        }
        // Every code has a class, and the authorisation/authentication ones are all stops.
        for code in [
            C::TopicAuthorizationFailed,
            C::GroupAuthorizationFailed,
            C::ClusterAuthorizationFailed,
            C::TransactionalIdAuthorizationFailed,
            C::SaslAuthenticationFailed,
        ] {
            assert_eq!(kafka_code(code).disposition, Stop);
            assert_eq!(kafka_code(code).fault, Fault::Config);
        }
    }

    #[test]
    fn the_registry_table() {
        use Disposition::*;
        let api = |status: u16, error_code: i64| RegistryError::Api {
            status,
            error_code,
            message: "m".into(),
        };
        for (e, code, disposition) in [
            (
                api(404, 40403),
                "registry_unknown_schema",
                DeadLetter(ReasonCode::UnknownSchema),
            ),
            // A 404 that is not "schema not found": the URL points elsewhere.
            (api(404, 404), "registry_refused", Stop),
            (api(404, 40401), "registry_refused", Stop),
            (api(401, 401), "registry_authorization", Stop),
            (api(403, 40301), "registry_authorization", Stop),
            (api(409, 409), "registry_refused", Stop),
            (api(422, 42201), "registry_refused", Stop),
            (api(500, 50001), "registry_unavailable", Retry),
            (api(503, 503), "registry_unavailable", Retry),
            (api(429, 429), "registry_unavailable", Retry),
            (api(408, 408), "registry_unavailable", Retry),
            (RegistryError::Url("x".into()), "registry_config", Stop),
        ] {
            let c = registry(&e);
            assert_eq!((c.code, c.disposition), (code, disposition), "{e}");
            // The client's own answers agree with the table.
            assert_eq!(e.is_retriable(), c.is_retry(), "{e}");
            assert_eq!(
                e.is_unknown_schema(),
                c.disposition == DeadLetter(ReasonCode::UnknownSchema),
                "{e}"
            );
        }
    }

    #[tokio::test]
    async fn connection_refused_is_a_registry_retry() {
        // A port nothing listens on: what a registry that is down looks like.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client =
            credit_schemas::registry::RegistryClient::new(&format!("http://127.0.0.1:{port}"))
                .unwrap();
        let e = client.schema_by_id(1).await.unwrap_err();
        assert_eq!(registry(&e), Class::retry("registry_unavailable"), "{e}");
    }

    #[test]
    fn backoff_doubles_to_its_bound() {
        let b = Backoff::default();
        let waits: Vec<u64> = (1..=9).map(|n| b.delay(n).as_millis() as u64).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        assert_eq!(b.delay(200), Duration::from_secs(5), "no overflow");
    }

    /// A stand-in error with a chosen class (the helper is generic over `Classify`).
    #[derive(Debug)]
    struct E(Class);
    impl fmt::Display for E {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0.code)
        }
    }
    impl Classify for E {
        fn class(&self) -> Class {
            self.0
        }
    }
    const AWAY: Class = Class::retry("registry_unavailable");

    fn policy(give_up: Option<Duration>) -> (ErrorPolicy, Telemetry) {
        let tel = Telemetry::new("test").unwrap();
        let p = ErrorPolicy::new(&tel).with_backoff(Backoff {
            give_up_after: give_up,
            ..Backoff::default()
        });
        (p, tel)
    }

    fn errors_total(tel: &Telemetry, class: &str, code: &str) -> f64 {
        let text = tel.render().unwrap();
        text.lines()
            .filter(|l| l.starts_with(MetricName::ErrorsHandled.exported()))
            .filter(|l| {
                l.contains(&format!("class=\"{class}\""))
                    && l.contains(&format!("error=\"{code}\""))
            })
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum()
    }

    // Paused time: tokio advances the clock whenever every task waits, so
    // minutes of backoff take microseconds and the waits are exact.
    #[tokio::test(start_paused = true)]
    async fn retries_until_success_counting_every_failure() {
        let (p, tel) = policy(Some(Duration::from_secs(300)));
        let calls = Arc::new(AtomicU32::new(0));
        let t0 = tokio::time::Instant::now();
        let c = calls.clone();
        let r: Result<u32, RetryError<E>> = p
            .retry("fetching a schema", &Shutdown::new(), || {
                let n = c.fetch_add(1, Ordering::SeqCst);
                async move { if n < 4 { Err(E(AWAY)) } else { Ok(n) } }
            })
            .await;
        assert_eq!(r.unwrap(), 4);
        // 100 + 200 + 400 + 800 ms of backoff.
        assert_eq!(t0.elapsed(), Duration::from_millis(1500));
        assert_eq!(errors_total(&tel, "retry", "registry_unavailable"), 4.0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_non_retry_error_returns_at_once() {
        let (p, tel) = policy(None);
        let unknown = Class::new(
            "registry_unknown_schema",
            Fault::Input,
            Disposition::DeadLetter(ReasonCode::UnknownSchema),
        );
        let r: Result<(), _> = p
            .retry("fetching a schema", &Shutdown::new(), || async {
                Err(E(unknown))
            })
            .await;
        let e = r.unwrap_err();
        assert!(matches!(e, RetryError::NotRetriable(_)));
        assert_eq!(
            e.disposition(),
            Disposition::DeadLetter(ReasonCode::UnknownSchema)
        );
        // Counting a dead letter is the caller's, when it writes one.
        assert_eq!(errors_total(&tel, "retry", "registry_unknown_schema"), 0.0);
    }

    #[tokio::test(start_paused = true)]
    async fn gives_up_after_the_bound_as_a_stop() {
        let (p, tel) = policy(Some(Duration::from_secs(30)));
        let t0 = tokio::time::Instant::now();
        let r: Result<(), _> = p
            .retry("registering a schema", &Shutdown::new(), || async {
                Err(E(AWAY))
            })
            .await;
        let e = r.unwrap_err();
        let RetryError::GaveUp {
            attempts, elapsed, ..
        } = &e
        else {
            panic!("{e}")
        };
        assert!(
            *elapsed >= Duration::from_secs(30) && *elapsed < Duration::from_secs(36),
            "{elapsed:?}"
        );
        // 0.1+0.2+0.4+0.8+1.6+3.2 = 6.3 s, then 5 s each: 11 attempts reach 30 s.
        assert_eq!(*attempts, 12);
        assert!(t0.elapsed() >= Duration::from_secs(30));
        assert_eq!(e.disposition(), Disposition::Stop);
        assert!(
            e.to_string().starts_with("gave up after 12 attempts"),
            "{e}"
        );
        assert_eq!(errors_total(&tel, "stop", "registry_unavailable"), 1.0);
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_ends_the_wait() {
        let (p, _tel) = policy(None);
        let stop = Shutdown::new();
        let s = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(42)).await;
            s.cancel();
        });
        let t0 = tokio::time::Instant::now();
        let r: Result<(), _> = p
            .retry("fetching a schema", &stop, || async { Err(E(AWAY)) })
            .await;
        assert!(matches!(r, Err(RetryError::Shutdown)));
        assert_eq!(
            t0.elapsed(),
            Duration::from_secs(42),
            "returns when shutdown comes, not after the next wait"
        );
    }
}
