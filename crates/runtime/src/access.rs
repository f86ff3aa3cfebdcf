//! The access model ([`credit_core::access`]) on a real broker: SCRAM-SHA-512
//! credentials and ACL bindings applied through librdkafka's admin API
//! (rust-rdkafka wraps neither), and the credentials check every service runs
//! at start-up.
//!
//! librdkafka's admin calls are asynchronous: each takes a result queue,
//! and the result arrives there as one event. [`Admin`] creates a queue per
//! call, waits on it, reads the event's results and frees everything it
//! allocated (librdkafka copies its arguments, so they are freed after the
//! call). Errors librdkafka reports outside a result (a failed SASL
//! handshake) arrive on the client's main queue, which [`Admin`] drains while
//! it waits, so an authentication failure is named instead of surfacing as a
//! timeout.
//!
//! Passwords live in a credentials directory, one file per user (mode 0600,
//! directory 0700); they are generated there when missing and never printed
//! or logged.

use std::collections::HashSet;
use std::ffi::{CStr, CString, c_char};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use credit_core::access::{Model, Operation, PatternType, Resource, ResourceType, Role};
use rdkafka::ClientConfig;
use rdkafka::admin::AdminClient;
use rdkafka::bindings as rd;
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::config::KafkaConfig;

/// SCRAM mechanism of every user the bus creates (Strimzi's `scram-sha-512`).
pub const MECHANISM: &str = "SCRAM-SHA-512";
/// PBKDF2 iterations of the stored credentials: Kafka's minimum and default
/// (and Strimzi's). librdkafka salts every password on the client, one
/// user after another: 45 users at 8192 iterations took over 30 s on a
/// loaded 2-core host.
const ITERATIONS: i32 = 4096;
/// Length of a generated password: 32 alphanumerics, ~190 bits.
pub const PASSWORD_LEN: usize = 32;

/// The Kafka user of a principal: `<user prefix><role name>`.
pub fn username(user_prefix: &str, role: Role) -> String {
    format!("{user_prefix}{}", role.name())
}

/// The user prefix when none is given: the topic prefix and a dash
/// (`credit-engine`), so two deployments sharing a cluster under different
/// prefixes never share a user.
pub fn default_user_prefix(cfg: &KafkaConfig) -> String {
    format!("{}-", cfg.topic_prefix)
}

/// The literal topics a service's role touches, from the access model: what
/// [`check_credentials`] asks the broker about.
pub fn topics_of(cfg: &KafkaConfig, registry_topic: &str, role: Role) -> Vec<String> {
    Model::new(&cfg.naming(), registry_topic)
        .principal(role)
        .map(|p| p.topics())
        .unwrap_or_default()
}

#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("kafka admin client: {0}")]
    Client(#[from] rdkafka::error::KafkaError),
    #[error("{op} against {brokers}: no answer within {timeout:?}{why}")]
    Timeout {
        op: &'static str,
        brokers: String,
        timeout: Duration,
        /// What the client reported meanwhile (an authentication failure), if anything.
        why: String,
    },
    #[error("{op} against {brokers} refused: {code:?}: {message}")]
    Request {
        op: &'static str,
        brokers: String,
        code: RDKafkaErrorCode,
        message: String,
    },
    #[error("{op}: {failed} of {total} failed; first: {first}")]
    Items {
        op: &'static str,
        failed: usize,
        total: usize,
        first: String,
    },
    #[error("{op}: cannot authenticate to {brokers}: {reason}")]
    Authentication {
        op: &'static str,
        brokers: String,
        reason: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("credentials {path}: {message}")]
    Credentials { path: PathBuf, message: String },
}

// ---------------------------------------------------------------------------
// Credentials directory

/// One password file per user.
pub struct CredentialsDir {
    dir: PathBuf,
}

impl CredentialsDir {
    /// Opens (creating with mode 0700) a credentials directory. One readable
    /// by group or others is refused: it holds every principal's password.
    pub fn open(dir: &Path) -> Result<CredentialsDir, AccessError> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let err = |message: String| AccessError::Credentials {
            path: dir.to_path_buf(),
            message,
        };
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| err(format!("cannot create: {e}")))?;
        }
        let meta = std::fs::metadata(dir).map_err(|e| err(e.to_string()))?;
        if !meta.is_dir() {
            return Err(err("not a directory".into()));
        }
        if meta.permissions().mode() & 0o077 != 0 {
            return Err(err(format!(
                "mode {:o} lets others in: chmod 700 it",
                meta.permissions().mode() & 0o777
            )));
        }
        Ok(CredentialsDir {
            dir: dir.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The file holding `user`'s password.
    pub fn file(&self, user: &str) -> PathBuf {
        self.dir.join(user)
    }

    /// `user`'s password: read from its file, or generated and written there
    /// (mode 0600) when there is none. The bool says whether it was generated.
    pub fn password(&self, user: &str) -> Result<(String, bool), AccessError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        if user.is_empty()
            || !user
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(AccessError::Invalid(format!(
                "user name {user:?}: only letters, digits, '.', '_' and '-' make a safe file name"
            )));
        }
        let path = self.file(user);
        match read_password(&path) {
            Ok(p) => return Ok((p, false)),
            Err(AccessError::Credentials { message, .. }) if message == NOT_FOUND => {}
            Err(e) => return Err(e),
        }
        let password = generate_password();
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| AccessError::Credentials {
                path: path.clone(),
                message: format!("cannot create: {e}"),
            })?;
        f.write_all(password.as_bytes())
            .and_then(|_| f.sync_all())
            .map_err(|e| AccessError::Credentials {
                path: path.clone(),
                message: format!("cannot write: {e}"),
            })?;
        Ok((password, true))
    }
}

const NOT_FOUND: &str = "not found";

/// Reads a password file: its content without surrounding whitespace, which
/// must be non-empty and free of whitespace and control characters.
pub fn read_password(path: &Path) -> Result<String, AccessError> {
    let err = |message: String| AccessError::Credentials {
        path: path.to_path_buf(),
        message,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(err(NOT_FOUND.into())),
        Err(e) => return Err(err(format!("cannot read: {e}"))),
    };
    let p = text.trim();
    if p.is_empty() {
        return Err(err("empty".into()));
    }
    if p.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(err("holds whitespace or control characters".into()));
    }
    Ok(p.to_string())
}

/// A fresh random password ([`PASSWORD_LEN`] alphanumerics from the thread's
/// CSPRNG, seeded by the OS).
pub fn generate_password() -> String {
    use rand::distr::{Alphanumeric, SampleString};
    Alphanumeric.sample_string(&mut rand::rng(), PASSWORD_LEN)
}

// ---------------------------------------------------------------------------
// ACL bindings as librdkafka sees them

/// One ACL binding: a principal allowed or denied one operation on one
/// resource pattern from one host.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AclBinding {
    pub principal: String,
    pub host: String,
    pub resource_type: rd::rd_kafka_ResourceType_t,
    pub pattern: rd::rd_kafka_ResourcePatternType_t,
    pub name: String,
    pub operation: rd::rd_kafka_AclOperation_t,
    pub permission: rd::rd_kafka_AclPermissionType_t,
}

impl AclBinding {
    /// The model's grant of `op` on `resource` to `user`, from any host.
    pub fn allow(user: &str, resource: &Resource, op: Operation) -> AclBinding {
        use rd::rd_kafka_AclOperation_t::*;
        use rd::rd_kafka_ResourcePatternType_t::*;
        use rd::rd_kafka_ResourceType_t::*;
        AclBinding {
            principal: format!("User:{user}"),
            host: "*".into(),
            resource_type: match resource.kind {
                ResourceType::Topic => RD_KAFKA_RESOURCE_TOPIC,
                ResourceType::Group => RD_KAFKA_RESOURCE_GROUP,
                ResourceType::TransactionalId => RD_KAFKA_RESOURCE_TRANSACTIONAL_ID,
                ResourceType::Cluster => RD_KAFKA_RESOURCE_BROKER,
            },
            pattern: match resource.pattern {
                PatternType::Literal => RD_KAFKA_RESOURCE_PATTERN_LITERAL,
                PatternType::Prefixed => RD_KAFKA_RESOURCE_PATTERN_PREFIXED,
            },
            name: resource.name.clone(),
            operation: match op {
                Operation::Read => RD_KAFKA_ACL_OPERATION_READ,
                Operation::Write => RD_KAFKA_ACL_OPERATION_WRITE,
                Operation::Create => RD_KAFKA_ACL_OPERATION_CREATE,
                Operation::Describe => RD_KAFKA_ACL_OPERATION_DESCRIBE,
                Operation::DescribeConfigs => RD_KAFKA_ACL_OPERATION_DESCRIBE_CONFIGS,
            },
            permission: rd::rd_kafka_AclPermissionType_t::RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW,
        }
    }

    /// A native binding (`filter`: a DeleteAcls filter matching exactly this one).
    fn to_native(&self, filter: bool) -> Result<Native<rd::rd_kafka_AclBinding_t>, AccessError> {
        let c = |s: &str| {
            CString::new(s).map_err(|_| AccessError::Invalid(format!("NUL byte in {s:?}")))
        };
        let (name, principal, host) = (c(&self.name)?, c(&self.principal)?, c(&self.host)?);
        let mut errstr = [0 as c_char; 512];
        // SAFETY: every string is a valid NUL-terminated C string for the
        // call's duration (librdkafka copies them); errstr is writable.
        let ptr = unsafe {
            let f = if filter {
                rd::rd_kafka_AclBindingFilter_new
            } else {
                rd::rd_kafka_AclBinding_new
            };
            f(
                self.resource_type,
                name.as_ptr(),
                self.pattern,
                principal.as_ptr(),
                host.as_ptr(),
                self.operation,
                self.permission,
                errstr.as_mut_ptr(),
                errstr.len(),
            )
        };
        if ptr.is_null() {
            // SAFETY: librdkafka NUL-terminates errstr.
            let why = unsafe { CStr::from_ptr(errstr.as_ptr()) }.to_string_lossy();
            return Err(AccessError::Invalid(format!("ACL binding {self}: {why}")));
        }
        Ok(Native(ptr, rd::rd_kafka_AclBinding_destroy))
    }

    /// # Safety
    /// `b` points to a valid binding for the call's duration.
    unsafe fn from_native(b: *const rd::rd_kafka_AclBinding_t) -> AclBinding {
        unsafe {
            AclBinding {
                principal: cstr(rd::rd_kafka_AclBinding_principal(b)),
                host: cstr(rd::rd_kafka_AclBinding_host(b)),
                resource_type: rd::rd_kafka_AclBinding_restype(b),
                pattern: rd::rd_kafka_AclBinding_resource_pattern_type(b),
                name: cstr(rd::rd_kafka_AclBinding_name(b)),
                operation: rd::rd_kafka_AclBinding_operation(b),
                permission: rd::rd_kafka_AclBinding_permission_type(b),
            }
        }
    }
}

impl fmt::Display for AclBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SAFETY: librdkafka's *_name functions return static strings.
        let (perm, op, kind, pattern) = unsafe {
            (
                cstr(rd::rd_kafka_AclPermissionType_name(self.permission)),
                cstr(rd::rd_kafka_AclOperation_name(self.operation)),
                cstr(rd::rd_kafka_ResourceType_name(self.resource_type)),
                cstr(rd::rd_kafka_ResourcePatternType_name(self.pattern)),
            )
        };
        write!(
            f,
            "{} {perm} {op} on {kind} {pattern} {} from {}",
            self.principal, self.name, self.host
        )
    }
}

/// # Safety
/// `p` is null or a valid NUL-terminated string.
unsafe fn cstr(p: *const c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }
}

/// # Safety
/// `e` is null or a valid `rd_kafka_error_t`.
unsafe fn error_of(e: *const rd::rd_kafka_error_t) -> Option<(RDKafkaErrorCode, String)> {
    if e.is_null() {
        return None;
    }
    unsafe {
        Some((
            RDKafkaErrorCode::from(rd::rd_kafka_error_code(e)),
            cstr(rd::rd_kafka_error_string(e)),
        ))
    }
}

/// An owned librdkafka object and its destructor.
struct Native<T>(*mut T, unsafe extern "C" fn(*mut T));

impl<T> Drop for Native<T> {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: created by the matching constructor, freed once.
            unsafe { (self.1)(self.0) }
        }
    }
}

// ---------------------------------------------------------------------------
// The admin client

/// An admin connection to the broker (any principal; ACL and SCRAM calls
/// need an administrator).
pub struct Admin {
    client: AdminClient<DefaultClientContext>,
    brokers: String,
    timeout: Duration,
    /// Errors librdkafka reported on the main queue (e.g. SASL failures).
    errors: std::cell::RefCell<Vec<String>>,
}

impl Admin {
    pub fn new(
        cfg: &KafkaConfig,
        client_id: &str,
        timeout: Duration,
    ) -> Result<Admin, AccessError> {
        let mut c: ClientConfig = crate::kafka::base(cfg, client_id);
        // A metadata request for a missing topic must not create it.
        c.set("allow.auto.create.topics", "false");
        Ok(Admin {
            client: c.create()?,
            brokers: cfg.brokers.clone(),
            timeout,
            errors: Default::default(),
        })
    }

    fn rk(&self) -> *mut rd::rd_kafka_t {
        self.client.inner().native_ptr()
    }

    /// Moves error events of the main queue into `errors`.
    fn drain_main_queue(&self) {
        // SAFETY: the main queue reference is released by `Native`; each
        // event is read, then destroyed.
        unsafe {
            let main = Native(
                rd::rd_kafka_queue_get_main(self.rk()),
                rd::rd_kafka_queue_destroy,
            );
            loop {
                let ev = rd::rd_kafka_queue_poll(main.0, 0);
                if ev.is_null() {
                    break;
                }
                let ev = Native(ev, rd::rd_kafka_event_destroy);
                if rd::rd_kafka_event_type(ev.0) == rd::RD_KAFKA_EVENT_ERROR {
                    let code = RDKafkaErrorCode::from(rd::rd_kafka_event_error(ev.0));
                    let text = cstr(rd::rd_kafka_event_error_string(ev.0));
                    let mut errors = self.errors.borrow_mut();
                    if errors.len() < 32 {
                        errors.push(format!("{code:?}: {text}"));
                    }
                }
            }
        }
    }

    /// What the client reported so far, for an error message ("" if nothing).
    fn reported(&self) -> String {
        self.drain_main_queue();
        let errors = self.errors.borrow();
        match errors.iter().find(|e| e.starts_with("Authentication")) {
            Some(auth) => format!(" ({auth})"),
            None => errors.last().map(|e| format!(" ({e})")).unwrap_or_default(),
        }
    }

    /// The first authentication failure reported, if any.
    pub fn authentication_failure(&self) -> Option<String> {
        self.drain_main_queue();
        self.errors
            .borrow()
            .iter()
            .find(|e| e.starts_with("Authentication"))
            .cloned()
    }

    /// Runs one admin call and waits for its result event.
    fn call(
        &self,
        op: &'static str,
        api: rd::rd_kafka_admin_op_t,
        expect: i32,
        start: impl FnOnce(
            *mut rd::rd_kafka_t,
            *const rd::rd_kafka_AdminOptions_t,
            *mut rd::rd_kafka_queue_t,
        ),
    ) -> Result<Native<rd::rd_kafka_event_t>, AccessError> {
        let rk = self.rk();
        // SAFETY: queue and options are created on this live client, passed
        // to one call and freed by `Native` after it (librdkafka keeps its
        // own references to what it needs).
        unsafe {
            let queue = Native(rd::rd_kafka_queue_new(rk), rd::rd_kafka_queue_destroy);
            let opts = Native(
                rd::rd_kafka_AdminOptions_new(rk, api),
                rd::rd_kafka_AdminOptions_destroy,
            );
            let mut errstr = [0 as c_char; 256];
            rd::rd_kafka_AdminOptions_set_request_timeout(
                opts.0,
                self.timeout.as_millis().min(i32::MAX as u128) as i32,
                errstr.as_mut_ptr(),
                errstr.len(),
            );
            start(rk, opts.0, queue.0);
            // librdkafka answers by the request timeout; the margin covers its queueing.
            let deadline = Instant::now() + self.timeout + Duration::from_secs(5);
            loop {
                let ev = rd::rd_kafka_queue_poll(queue.0, 100);
                if !ev.is_null() {
                    let ev = Native(ev, rd::rd_kafka_event_destroy);
                    if rd::rd_kafka_event_type(ev.0) != expect {
                        continue;
                    }
                    let code = RDKafkaErrorCode::from(rd::rd_kafka_event_error(ev.0));
                    if code != RDKafkaErrorCode::NoError {
                        let message = cstr(rd::rd_kafka_event_error_string(ev.0));
                        if matches!(
                            code,
                            RDKafkaErrorCode::RequestTimedOut | RDKafkaErrorCode::OperationTimedOut
                        ) {
                            return Err(AccessError::Timeout {
                                op,
                                brokers: self.brokers.clone(),
                                timeout: self.timeout,
                                why: self.reported(),
                            });
                        }
                        return Err(AccessError::Request {
                            op,
                            brokers: self.brokers.clone(),
                            code,
                            message: message + &self.reported(),
                        });
                    }
                    return Ok(ev);
                }
                // librdkafka retries a refused SASL handshake until the
                // request times out: a wrong password is final, say so now.
                if let Some(reason) = self.authentication_failure() {
                    return Err(AccessError::Authentication {
                        op,
                        brokers: self.brokers.clone(),
                        reason,
                    });
                }
                if Instant::now() > deadline {
                    return Err(AccessError::Timeout {
                        op,
                        brokers: self.brokers.clone(),
                        timeout: self.timeout,
                        why: self.reported(),
                    });
                }
            }
        }
    }

    /// Creates or replaces each user's SCRAM-SHA-512 credential.
    pub fn upsert_scram(&self, users: &[(String, String)]) -> Result<(), AccessError> {
        if users.is_empty() {
            return Ok(());
        }
        let mut alterations = Vec::with_capacity(users.len());
        for (user, password) in users {
            let u = CString::new(user.as_str())
                .map_err(|_| AccessError::Invalid(format!("NUL byte in user {user:?}")))?;
            // SAFETY: valid strings and lengths; a NULL salt makes librdkafka
            // generate one with OpenSSL.
            let a = unsafe {
                rd::rd_kafka_UserScramCredentialUpsertion_new(
                    u.as_ptr(),
                    rd::rd_kafka_ScramMechanism_t::RD_KAFKA_SCRAM_MECHANISM_SHA_512,
                    ITERATIONS,
                    password.as_ptr(),
                    password.len(),
                    std::ptr::null(),
                    0,
                )
            };
            if a.is_null() {
                return Err(AccessError::Invalid(format!(
                    "SCRAM upsertion for {user} refused by librdkafka"
                )));
            }
            alterations.push(Native(
                a,
                rd::rd_kafka_UserScramCredentialAlteration_destroy,
            ));
        }
        let mut ptrs: Vec<_> = alterations.iter().map(|a| a.0).collect();
        let ev = self.call(
            "AlterUserScramCredentials",
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_ALTERUSERSCRAMCREDENTIALS,
            rd::RD_KAFKA_EVENT_ALTERUSERSCRAMCREDENTIALS_RESULT,
            // SAFETY: the array and its alterations outlive the call (copied inside).
            |rk, opts, q| unsafe {
                rd::rd_kafka_AlterUserScramCredentials(rk, ptrs.as_mut_ptr(), ptrs.len(), opts, q)
            },
        )?;
        let mut failed = Vec::new();
        // SAFETY: the responses live as long as the event.
        unsafe {
            let res = rd::rd_kafka_event_AlterUserScramCredentials_result(ev.0);
            let mut n = 0usize;
            let responses = rd::rd_kafka_AlterUserScramCredentials_result_responses(res, &mut n);
            for i in 0..n {
                let r = *responses.add(i);
                if let Some((code, msg)) =
                    error_of(rd::rd_kafka_AlterUserScramCredentials_result_response_error(r))
                    && code != RDKafkaErrorCode::NoError
                {
                    let user = cstr(rd::rd_kafka_AlterUserScramCredentials_result_response_user(
                        r,
                    ));
                    failed.push(format!("{user}: {code:?}: {msg}"));
                }
            }
        }
        items("AlterUserScramCredentials", failed, users.len())
    }

    /// Every ACL binding on the cluster.
    pub fn describe_acls(&self) -> Result<Vec<AclBinding>, AccessError> {
        // SAFETY: a filter of ANY/NULL values; librdkafka copies it.
        let filter = unsafe {
            let mut errstr = [0 as c_char; 256];
            let f = rd::rd_kafka_AclBindingFilter_new(
                rd::rd_kafka_ResourceType_t::RD_KAFKA_RESOURCE_ANY,
                std::ptr::null(),
                rd::rd_kafka_ResourcePatternType_t::RD_KAFKA_RESOURCE_PATTERN_ANY,
                std::ptr::null(),
                std::ptr::null(),
                rd::rd_kafka_AclOperation_t::RD_KAFKA_ACL_OPERATION_ANY,
                rd::rd_kafka_AclPermissionType_t::RD_KAFKA_ACL_PERMISSION_TYPE_ANY,
                errstr.as_mut_ptr(),
                errstr.len(),
            );
            if f.is_null() {
                return Err(AccessError::Invalid(format!(
                    "ACL filter: {}",
                    cstr(errstr.as_ptr())
                )));
            }
            Native(f, rd::rd_kafka_AclBinding_destroy)
        };
        let ev = self.call(
            "DescribeAcls",
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DESCRIBEACLS,
            rd::RD_KAFKA_EVENT_DESCRIBEACLS_RESULT,
            // SAFETY: the filter outlives the call.
            |rk, opts, q| unsafe { rd::rd_kafka_DescribeAcls(rk, filter.0, opts, q) },
        )?;
        let mut out = Vec::new();
        // SAFETY: the bindings live as long as the event.
        unsafe {
            let res = rd::rd_kafka_event_DescribeAcls_result(ev.0);
            let mut n = 0usize;
            let acls = rd::rd_kafka_DescribeAcls_result_acls(res, &mut n);
            for i in 0..n {
                out.push(AclBinding::from_native(*acls.add(i)));
            }
        }
        Ok(out)
    }

    /// Creates bindings (one already present is left as it is).
    pub fn create_acls(&self, bindings: &[AclBinding]) -> Result<(), AccessError> {
        if bindings.is_empty() {
            return Ok(());
        }
        let natives = bindings
            .iter()
            .map(|b| b.to_native(false))
            .collect::<Result<Vec<_>, _>>()?;
        let mut ptrs: Vec<_> = natives.iter().map(|n| n.0).collect();
        let ev = self.call(
            "CreateAcls",
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_CREATEACLS,
            rd::RD_KAFKA_EVENT_CREATEACLS_RESULT,
            // SAFETY: the array and bindings outlive the call (copied inside).
            |rk, opts, q| unsafe {
                rd::rd_kafka_CreateAcls(rk, ptrs.as_mut_ptr(), ptrs.len(), opts, q)
            },
        )?;
        let mut failed = Vec::new();
        // SAFETY: results live as long as the event; in request order.
        unsafe {
            let res = rd::rd_kafka_event_CreateAcls_result(ev.0);
            let mut n = 0usize;
            let results = rd::rd_kafka_CreateAcls_result_acls(res, &mut n);
            for i in 0..n {
                if let Some((code, msg)) = error_of(rd::rd_kafka_acl_result_error(*results.add(i)))
                    && code != RDKafkaErrorCode::NoError
                {
                    let which = bindings.get(i).map(|b| b.to_string()).unwrap_or_default();
                    failed.push(format!("{which}: {code:?}: {msg}"));
                }
            }
        }
        items("CreateAcls", failed, bindings.len())
    }

    /// Deletes exactly these bindings.
    pub fn delete_acls(&self, bindings: &[AclBinding]) -> Result<(), AccessError> {
        if bindings.is_empty() {
            return Ok(());
        }
        let natives = bindings
            .iter()
            .map(|b| b.to_native(true))
            .collect::<Result<Vec<_>, _>>()?;
        let mut ptrs: Vec<_> = natives.iter().map(|n| n.0).collect();
        let ev = self.call(
            "DeleteAcls",
            rd::rd_kafka_admin_op_t::RD_KAFKA_ADMIN_OP_DELETEACLS,
            rd::RD_KAFKA_EVENT_DELETEACLS_RESULT,
            // SAFETY: the filters outlive the call (copied inside).
            |rk, opts, q| unsafe {
                rd::rd_kafka_DeleteAcls(rk, ptrs.as_mut_ptr(), ptrs.len(), opts, q)
            },
        )?;
        let mut failed = Vec::new();
        // SAFETY: responses live as long as the event; in request order.
        unsafe {
            let res = rd::rd_kafka_event_DeleteAcls_result(ev.0);
            let mut n = 0usize;
            let responses = rd::rd_kafka_DeleteAcls_result_responses(res, &mut n);
            for i in 0..n {
                if let Some((code, msg)) = error_of(rd::rd_kafka_DeleteAcls_result_response_error(
                    *responses.add(i),
                )) && code != RDKafkaErrorCode::NoError
                {
                    let which = bindings.get(i).map(|b| b.to_string()).unwrap_or_default();
                    failed.push(format!("{which}: {code:?}: {msg}"));
                }
            }
        }
        items("DeleteAcls", failed, bindings.len())
    }

    /// Metadata of every topic this principal may describe, or of one topic.
    fn metadata(
        &self,
        topic: Option<&str>,
        timeout: Duration,
    ) -> Result<rdkafka::metadata::Metadata, rdkafka::error::KafkaError> {
        self.client.inner().fetch_metadata(topic, timeout)
    }
}

fn items(op: &'static str, failed: Vec<String>, total: usize) -> Result<(), AccessError> {
    match failed.first() {
        None => Ok(()),
        Some(first) => Err(AccessError::Items {
            op,
            failed: failed.len(),
            total,
            first: first.clone(),
        }),
    }
}

// ---------------------------------------------------------------------------
// Applying the model

/// What [`apply`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Users whose SCRAM credential was set.
    pub users: usize,
    /// Of those, users whose password was generated now.
    pub generated: usize,
    /// Bindings the model wants.
    pub bindings: usize,
    pub created: usize,
    /// Bindings of the model's users the model does not want, removed.
    pub removed: usize,
    pub unchanged: usize,
}

/// Every binding the model wants, for users `<user_prefix><role name>`.
pub fn desired_bindings(model: &Model, user_prefix: &str) -> Vec<AclBinding> {
    model
        .principals
        .iter()
        .flat_map(|p| {
            let user = username(user_prefix, p.role);
            p.bindings()
                .map(move |(r, op)| AclBinding::allow(&user, r, op))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Makes the broker hold exactly the model: a SCRAM-SHA-512 credential for
/// every user (passwords from `creds`, generated there when missing) and,
/// for those users, exactly the model's ACL bindings (missing ones created,
/// others of theirs removed). `admin` must authenticate as a super user.
/// Idempotent: a second run creates and removes nothing.
pub fn apply(
    admin: &KafkaConfig,
    model: &Model,
    user_prefix: &str,
    creds: &CredentialsDir,
) -> Result<Applied, AccessError> {
    let mut users = Vec::with_capacity(model.principals.len());
    let mut generated = 0;
    for p in &model.principals {
        let user = username(user_prefix, p.role);
        let (password, new) = creds.password(&user)?;
        generated += usize::from(new);
        users.push((user, password));
    }
    // Generous: the SCRAM upsertion salts every password client-side first.
    let a = Admin::new(admin, "credit-bus-access", Duration::from_secs(120))?;
    a.upsert_scram(&users)?;
    let principals: HashSet<String> = users.iter().map(|(u, _)| format!("User:{u}")).collect();
    let desired: HashSet<AclBinding> = desired_bindings(model, user_prefix).into_iter().collect();
    let present: HashSet<AclBinding> = a
        .describe_acls()?
        .into_iter()
        .filter(|b| principals.contains(&b.principal))
        .collect();
    let create: Vec<AclBinding> = desired.difference(&present).cloned().collect();
    let remove: Vec<AclBinding> = present.difference(&desired).cloned().collect();
    a.create_acls(&create)?;
    a.delete_acls(&remove)?;
    Ok(Applied {
        users: users.len(),
        generated,
        bindings: desired.len(),
        created: create.len(),
        removed: remove.len(),
        unchanged: desired.len() - create.len(),
    })
}

// ---------------------------------------------------------------------------
// The start-up check

/// Why a service's Kafka credentials cannot work.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    /// Wrong user, password or mechanism: restarting will not help.
    #[error(
        "kafka user {user} cannot authenticate to {brokers} ({protocol}, {mechanism}): {reason}. \
         Check kafka.sasl_username and kafka.sasl_password (CREDIT_BUS__KAFKA__SASL_PASSWORD) \
         against the credentials `credit-bus access apply` wrote"
    )]
    Authentication {
        user: String,
        brokers: String,
        protocol: String,
        mechanism: String,
        reason: String,
    },
    /// Authenticated, but not allowed to see topics it needs: the ACLs are
    /// missing or the user is someone else's.
    #[error(
        "kafka user {user} on {brokers} may not describe {topics}: not authorised \
         (run `credit-bus access apply`, or check that this service runs with its own user)"
    )]
    Denied {
        user: String,
        brokers: String,
        topics: String,
    },
    /// No broker answered: may pass (the service retries on its own).
    #[error("no metadata from {brokers} within {waited:?}: {reason}")]
    Unreachable {
        brokers: String,
        waited: Duration,
        reason: String,
    },
    #[error("kafka client: {0}")]
    Client(String),
}

impl CredentialError {
    /// Whether the service should stop for good (configuration/authorisation)
    /// rather than start and retry.
    pub fn is_stop(&self) -> bool {
        matches!(
            self,
            CredentialError::Authentication { .. }
                | CredentialError::Denied { .. }
                | CredentialError::Client(_)
        )
    }
}

/// Checks at start-up that `cfg`'s credentials authenticate and may describe
/// `topics` (those that exist): a metadata request, answered in milliseconds.
/// A wrong password otherwise shows only as a delivery that never completes
/// (librdkafka retries forever), so this names the user and the broker.
/// Gives up after `wait` without an answer: [`CredentialError::Unreachable`].
pub fn check_credentials(
    cfg: &KafkaConfig,
    topics: &[String],
    wait: Duration,
) -> Result<(), CredentialError> {
    let user = cfg
        .sasl_username
        .clone()
        .unwrap_or_else(|| "ANONYMOUS (no SASL username)".into());
    let admin = Admin::new(cfg, "credit-bus-credentials-check", Duration::from_secs(10))
        .map_err(|e| CredentialError::Client(e.to_string()))?;
    let started = Instant::now();
    let all = loop {
        match admin.metadata(None, Duration::from_millis(1000)) {
            Ok(m) => break m,
            Err(e) => {
                if let Some(reason) = admin.authentication_failure() {
                    return Err(CredentialError::Authentication {
                        user,
                        brokers: cfg.brokers.clone(),
                        protocol: cfg.security_protocol.clone(),
                        mechanism: cfg
                            .sasl_mechanism
                            .clone()
                            .unwrap_or_else(|| "no mechanism".into()),
                        reason,
                    });
                }
                if started.elapsed() >= wait {
                    let reported = admin.reported();
                    return Err(CredentialError::Unreachable {
                        brokers: cfg.brokers.clone(),
                        waited: started.elapsed(),
                        reason: format!("{e}{reported}"),
                    });
                }
            }
        }
    };
    // A metadata request for every topic silently leaves out the ones the
    // user may not describe: ask about each missing one by name, which says
    // TOPIC_AUTHORIZATION_FAILED (or that it does not exist yet).
    let listed: HashSet<&str> = all.topics().iter().map(|t| t.name()).collect();
    let mut denied = Vec::new();
    for t in topics.iter().filter(|t| !listed.contains(t.as_str())) {
        match admin.metadata(Some(t), Duration::from_secs(5)) {
            Ok(m) => {
                let err = m
                    .topics()
                    .iter()
                    .find(|x| x.name() == t)
                    .and_then(|x| x.error());
                if let Some(e) = err
                    && RDKafkaErrorCode::from(e) == RDKafkaErrorCode::TopicAuthorizationFailed
                {
                    denied.push(t.clone());
                }
            }
            Err(e) => tracing::debug!(topic = %t, error = %e, "metadata of one topic"),
        }
    }
    if !denied.is_empty() {
        let n = denied.len();
        let mut topics = denied.into_iter().take(5).collect::<Vec<_>>().join(", ");
        if n > 5 {
            topics.push_str(&format!(" and {} more", n - 5));
        }
        return Err(CredentialError::Denied {
            user,
            brokers: cfg.brokers.clone(),
            topics,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use credit_core::topics::{Naming, SCHEMAS};

    #[test]
    fn generated_passwords_are_long_random_and_safe_in_a_file() {
        let a = generate_password();
        let b = generate_password();
        assert_eq!(a.len(), PASSWORD_LEN);
        assert!(a.len() >= 24);
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn credentials_are_generated_once_with_private_modes_and_read_back() {
        use std::os::unix::fs::PermissionsExt;
        let root = std::env::temp_dir().join(format!(
            "cb-creds-{}-{}",
            std::process::id(),
            generate_password()
        ));
        let dir = root.join("creds");
        let c = CredentialsDir::open(&dir).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        let (p1, new1) = c.password("credit-engine").unwrap();
        let (p2, new2) = c.password("credit-engine").unwrap();
        assert!(new1 && !new2);
        assert_eq!(p1, p2);
        assert_eq!(mode(&c.file("credit-engine")), 0o600);
        // An operator's own password (with a trailing newline) is used as is.
        std::fs::write(c.file("credit-dept-tax"), "Chosen-By-Ops-123\n").unwrap();
        assert_eq!(
            c.password("credit-dept-tax").unwrap(),
            ("Chosen-By-Ops-123".to_string(), false)
        );
        std::fs::write(c.file("credit-dept-pboc"), "  \n").unwrap();
        assert!(
            c.password("credit-dept-pboc").is_err(),
            "an empty file is an error, not a new password"
        );
        assert!(c.password("../escape").is_err());
        // A directory others can read is refused.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let e = CredentialsDir::open(&dir)
            .err()
            .expect("refused")
            .to_string();
        assert!(e.contains("chmod 700"), "{e}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn desired_bindings_are_the_models_under_the_user_prefix() {
        let m = Model::new(&Naming::new("t1"), SCHEMAS);
        let b = desired_bindings(&m, "t1-");
        assert_eq!(b.len(), m.binding_count());
        let set: HashSet<_> = b.iter().collect();
        assert_eq!(set.len(), b.len(), "no binding twice");
        assert!(
            b.iter()
                .all(|x| x.principal.starts_with("User:t1-") && x.host == "*")
        );
        let courts = b
            .iter()
            .filter(|x| x.principal == "User:t1-dept-courts")
            .map(|x| x.to_string())
            .collect::<Vec<_>>();
        assert!(
            courts.contains(
                &"User:t1-dept-courts ALLOW WRITE on TOPIC LITERAL t1.courts.inbound from *"
                    .to_string()
            ),
            "{courts:?}"
        );
        assert!(
            courts.contains(
                &"User:t1-dept-courts ALLOW READ on GROUP PREFIXED t1.courts. from *".to_string()
            ),
            "{courts:?}"
        );
    }

    #[test]
    fn services_check_the_topics_their_role_touches() {
        let cfg = KafkaConfig::local("127.0.0.1:1", "p", 1);
        let t = topics_of(&cfg, "_s", Role::Registry);
        assert_eq!(t, vec!["_s".to_string()]);
        let e = topics_of(&cfg, "_s", Role::Engine);
        assert!(
            e.contains(&"p.records".to_string()) && e.contains(&"p.courts.notices".to_string())
        );
        assert_eq!(username("p-", Role::Engine), "p-engine");
        assert_eq!(default_user_prefix(&cfg), "p-");
    }
}
