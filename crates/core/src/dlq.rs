//! Dead-letter headers. A dead-lettered record keeps the original key, value and
//! headers and adds Kafka Connect's `__connect.errors.*` headers (so tools that
//! read Connect DLQs read ours) plus our stable reason code and field.

pub const TOPIC: &str = "__connect.errors.topic";
pub const PARTITION: &str = "__connect.errors.partition";
pub const OFFSET: &str = "__connect.errors.offset";
pub const CONNECTOR_NAME: &str = "__connect.errors.connector.name";
pub const TASK_ID: &str = "__connect.errors.task.id";
pub const STAGE: &str = "__connect.errors.stage";
pub const CLASS_NAME: &str = "__connect.errors.class.name";
pub const EXCEPTION_CLASS_NAME: &str = "__connect.errors.exception.class.name";
pub const EXCEPTION_MESSAGE: &str = "__connect.errors.exception.message";
/// Our stable machine-readable reason code ([`crate::ReasonCode::as_str`]).
pub const REASON: &str = "credit-bus.reason";
/// The offending field, when there is one.
pub const FIELD: &str = "credit-bus.field";

/// `__connect.errors.class.name`: the component that rejected the record.
pub const NORMALISER_CLASS: &str = "cn.gov.guangzhou.creditbus.normaliser.Adapter";
/// `__connect.errors.exception.class.name` prefix; the reason code follows.
pub const REJECTION_CLASS: &str = "cn.gov.guangzhou.creditbus.Rejection";
