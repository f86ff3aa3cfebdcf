//! Who may do what on the broker: every principal of the bus (one per
//! department, one per service) with its Kafka ACL bindings, derived from the
//! catalogue and [`Naming`] in this one place.
//!
//! The same model is applied to a broker (`credit-bus access apply`), printed
//! (`credit-bus access users|acls`) and rendered into the Helm chart's Strimzi
//! `KafkaUser`s (`credit-bus access helm`), so there is no second copy to drift.
//!
//! Least privilege, as the architecture table in README.md reads:
//!
//! | principal | may |
//! |---|---|
//! | `dept-<d>` | write `<d>.inbound` (publishers) and `<d>.feedback`; read `<d>.notices` and `<d>.dlq` (publishers); consumer groups under `<prefix>.<d>.` |
//! | `normaliser-<d>` | read `<d>.inbound`, write `records` and `<d>.dlq`; group `normaliser.<d>` |
//! | `registry` | read, write and create its store (`_credit_schemas`) |
//! | `engine` | read `records`, `engine.commands`; read+write `engine.state`, `catalogue`; write every `<d>.notices` and `engine.dlq`; group `engine`; transactional ids `engine.*` |
//! | `feedback` | read every `<d>.notices` and `<d>.feedback`; read+write `feedback.rejected`; group `feedback` |
//! | `operator` | write `engine.commands`; read+write `catalogue`; read `engine.state` (dry-run) and `engine.dlq` |
//! | `archive` | read `records`, every `<d>.notices` and `<d>.feedback`, `engine.commands`, `catalogue`; group `archive` |
//! | `quality` | read `records` and every `<d>.dlq` (reasons only); read+write `quality.state`; write `quality.dlq`; group `quality` |
//!
//! Services that read partitions without a group (recovery, replay, dry-run)
//! may also DESCRIBE groups under [`Naming::reader_groups`]: librdkafka looks a
//! reader's group coordinator up even though it never joins or commits.
//! Topic ACLs are literal names only: a prefix such as `credit.courts.` would
//! also cover topics added later. Creating topics (`credit-bus topics create`)
//! and applying this model are administrator operations, not rights of any
//! principal here; only the registry creates a topic, its own store.
//!
//! Kafka's implications are relied on, not repeated: READ and WRITE imply
//! DESCRIBE, and WRITE on any topic implies the IDEMPOTENT_WRITE an idempotent
//! producer needs (KIP-679).

use std::fmt;

use crate::catalogue::{DEPARTMENTS, Department, publishing_departments};
use crate::topics::Naming;

/// A kind of Kafka resource an ACL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ResourceType {
    Topic,
    Group,
    TransactionalId,
    Cluster,
}

impl ResourceType {
    /// Strimzi's spelling (`KafkaUser.spec.authorization.acls[].resource.type`).
    pub const fn strimzi(self) -> &'static str {
        match self {
            ResourceType::Topic => "topic",
            ResourceType::Group => "group",
            ResourceType::TransactionalId => "transactionalId",
            ResourceType::Cluster => "cluster",
        }
    }
}

impl fmt::Display for ResourceType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ResourceType::Topic => "TOPIC",
            ResourceType::Group => "GROUP",
            ResourceType::TransactionalId => "TRANSACTIONAL_ID",
            ResourceType::Cluster => "CLUSTER",
        })
    }
}

/// How an ACL's resource name matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PatternType {
    /// Exactly this name.
    Literal,
    /// Every name starting with this one.
    Prefixed,
}

impl PatternType {
    pub const fn strimzi(self) -> &'static str {
        match self {
            PatternType::Literal => "literal",
            PatternType::Prefixed => "prefix",
        }
    }
}

impl fmt::Display for PatternType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PatternType::Literal => "LITERAL",
            PatternType::Prefixed => "PREFIXED",
        })
    }
}

/// An operation an ACL allows (the ones the bus grants).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    Read,
    Write,
    Create,
    Describe,
    /// Reading a topic's configuration: every writer of a topic may, so a
    /// service checks at start that its records fit the topic's
    /// `max.message.bytes` (`credit_runtime::limits`).
    DescribeConfigs,
}

impl Operation {
    pub const fn strimzi(self) -> &'static str {
        match self {
            Operation::Read => "Read",
            Operation::Write => "Write",
            Operation::Create => "Create",
            Operation::Describe => "Describe",
            Operation::DescribeConfigs => "DescribeConfigs",
        }
    }

    /// Whether an ACL allowing `self` allows `wanted` (Kafka: READ and WRITE
    /// imply DESCRIBE).
    pub fn implies(self, wanted: Operation) -> bool {
        self == wanted
            || (wanted == Operation::Describe && matches!(self, Operation::Read | Operation::Write))
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operation::Read => "READ",
            Operation::Write => "WRITE",
            Operation::Create => "CREATE",
            Operation::Describe => "DESCRIBE",
            Operation::DescribeConfigs => "DESCRIBE_CONFIGS",
        })
    }
}

/// A resource pattern: type, name and how the name matches.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Resource {
    pub kind: ResourceType,
    pub pattern: PatternType,
    pub name: String,
}

impl Resource {
    pub fn topic(name: String) -> Resource {
        Resource {
            kind: ResourceType::Topic,
            pattern: PatternType::Literal,
            name,
        }
    }

    pub fn group(name: String) -> Resource {
        Resource {
            kind: ResourceType::Group,
            pattern: PatternType::Literal,
            name,
        }
    }

    pub fn prefixed(kind: ResourceType, prefix: String) -> Resource {
        Resource {
            kind,
            pattern: PatternType::Prefixed,
            name: prefix,
        }
    }

    /// Whether this pattern covers the resource `kind`/`name`.
    pub fn matches(&self, kind: ResourceType, name: &str) -> bool {
        self.kind == kind
            && match self.pattern {
                PatternType::Literal => self.name == name,
                PatternType::Prefixed => name.starts_with(&self.name),
            }
    }

    /// Whether some resource name is covered by both patterns.
    pub fn overlaps(&self, other: &Resource) -> bool {
        use PatternType::*;
        self.kind == other.kind
            && match (self.pattern, other.pattern) {
                (Literal, Literal) => self.name == other.name,
                (Literal, Prefixed) => self.name.starts_with(&other.name),
                (Prefixed, Literal) => other.name.starts_with(&self.name),
                (Prefixed, Prefixed) => {
                    self.name.starts_with(&other.name) || other.name.starts_with(&self.name)
                }
            }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.kind, self.pattern, self.name)
    }
}

/// Operations allowed on one resource pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub resource: Resource,
    /// Sorted, without duplicates.
    pub operations: Vec<Operation>,
}

/// What a principal is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A department: publishes its records (if it has an inbound format),
    /// reads its notices and dead letters, sends feedback.
    Department(&'static Department),
    /// The normaliser instances of one publishing department.
    Normaliser(&'static Department),
    Registry,
    Engine,
    /// The feedback tracker.
    Feedback,
    /// The `credit-bus` CLI's operator commands: `entry end`, `catalogue
    /// publish|activate [--dry-run]`. (`topics create` and `access apply` run
    /// as the cluster administrator.)
    Operator,
    /// The archive service: reads records, notices, feedback
    /// and engine commands into the access-controlled store.
    Archive,
    /// The quality service: duplicate codes (重码) from the records and wrong
    /// codes (错码) from the dead letters' reasons.
    Quality,
}

impl Role {
    /// The principal's name without any deployment prefix: `dept-courts`,
    /// `normaliser-tax`, `engine`, ... (Kafka user `<user prefix><name>`).
    pub fn name(&self) -> String {
        match self {
            Role::Department(d) => format!("dept-{}", d.id),
            Role::Normaliser(d) => format!("normaliser-{}", d.id),
            other => other.component().to_string(),
        }
    }

    /// The kind of principal (the Helm chart's component label).
    pub const fn component(&self) -> &'static str {
        match self {
            Role::Department(_) => "department",
            Role::Normaliser(_) => "normaliser",
            Role::Registry => "registry",
            Role::Engine => "engine",
            Role::Feedback => "feedback",
            Role::Operator => "operator",
            Role::Archive => "archive",
            Role::Quality => "quality",
        }
    }

    /// The role named `name` ([`Role::name`]), if any.
    pub fn parse(name: &str) -> Option<Role> {
        if let Some(id) = name.strip_prefix("dept-") {
            return crate::catalogue::department(id).map(Role::Department);
        }
        if let Some(id) = name.strip_prefix("normaliser-") {
            return crate::catalogue::department(id)
                .filter(|d| d.inbound.is_some())
                .map(Role::Normaliser);
        }
        [
            Role::Registry,
            Role::Engine,
            Role::Feedback,
            Role::Operator,
            Role::Archive,
            Role::Quality,
        ]
        .into_iter()
        .find(|r| r.component() == name)
    }
}

/// One principal and everything it may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub role: Role,
    pub grants: Vec<Grant>,
}

impl Principal {
    pub fn name(&self) -> String {
        self.role.name()
    }

    /// Whether one of its ACLs allows `op` on `kind`/`name`.
    pub fn allows(&self, kind: ResourceType, name: &str, op: Operation) -> bool {
        self.grants
            .iter()
            .any(|g| g.resource.matches(kind, name) && g.operations.iter().any(|o| o.implies(op)))
    }

    /// Its ACL bindings, one per (resource, operation): what Kafka stores.
    pub fn bindings(&self) -> impl Iterator<Item = (&Resource, Operation)> {
        self.grants
            .iter()
            .flat_map(|g| g.operations.iter().map(move |o| (&g.resource, *o)))
    }

    /// The literal topics it touches: what a service checks it may describe
    /// at start-up.
    pub fn topics(&self) -> Vec<String> {
        self.grants
            .iter()
            .filter(|g| {
                g.resource.kind == ResourceType::Topic && g.resource.pattern == PatternType::Literal
            })
            .map(|g| g.resource.name.clone())
            .collect()
    }
}

/// Every principal of one deployment (topic prefix and registry store).
#[derive(Debug, Clone)]
pub struct Model {
    pub naming: Naming,
    pub registry_topic: String,
    pub principals: Vec<Principal>,
}

/// Collects grants, merging operations on the same resource.
#[derive(Default)]
struct Grants(Vec<Grant>);

impl Grants {
    fn add(&mut self, resource: Resource, ops: &[Operation]) -> &mut Self {
        match self.0.iter_mut().find(|g| g.resource == resource) {
            Some(g) => g.operations.extend_from_slice(ops),
            None => self.0.push(Grant {
                resource,
                operations: ops.to_vec(),
            }),
        }
        self
    }

    fn topic(&mut self, name: String, ops: &[Operation]) -> &mut Self {
        self.add(Resource::topic(name), ops)
    }

    fn group(&mut self, name: String) -> &mut Self {
        self.add(Resource::group(name), &[Operation::Read])
    }

    fn readers(&mut self, n: &Naming) -> &mut Self {
        self.add(
            Resource::prefixed(ResourceType::Group, n.reader_groups()),
            &[Operation::Describe],
        )
    }

    fn done(&mut self) -> Vec<Grant> {
        let mut v = std::mem::take(&mut self.0);
        for g in &mut v {
            if g.resource.kind == ResourceType::Topic && g.operations.contains(&Operation::Write) {
                g.operations.push(Operation::DescribeConfigs);
            }
            g.operations.sort();
            g.operations.dedup();
        }
        v
    }
}

use Operation::{Create, Read, Write};

impl Model {
    /// The model for topics under `naming` and the registry's store topic
    /// (`registry_service.topic`, [`crate::topics::SCHEMAS`] by default).
    pub fn new(naming: &Naming, registry_topic: &str) -> Model {
        let n = naming;
        let mut principals = Vec::new();
        for d in DEPARTMENTS {
            let mut g = Grants::default();
            if d.inbound.is_some() {
                g.topic(n.inbound(d.id), &[Write]);
            }
            g.topic(n.feedback(d.id), &[Write]);
            g.topic(n.notices(d.id), &[Read]);
            if d.inbound.is_some() {
                g.topic(n.dlq(d.id), &[Read]);
            }
            // Its own groups only; `credit-bus subscribe` uses one of them.
            g.add(
                Resource::prefixed(ResourceType::Group, n.department_groups(d.id)),
                &[Read],
            );
            principals.push(Principal {
                role: Role::Department(d),
                grants: g.done(),
            });
        }
        for d in publishing_departments() {
            let mut g = Grants::default();
            g.topic(n.inbound(d.id), &[Read])
                .topic(n.records(), &[Write])
                .topic(n.dlq(d.id), &[Write])
                .group(n.normaliser_group(d.id));
            principals.push(Principal {
                role: Role::Normaliser(d),
                grants: g.done(),
            });
        }
        {
            // The registry creates its own (compacted) store and replays it.
            let mut g = Grants::default();
            g.topic(registry_topic.to_string(), &[Read, Write, Create])
                .readers(n);
            principals.push(Principal {
                role: Role::Registry,
                grants: g.done(),
            });
        }
        {
            let mut g = Grants::default();
            g.topic(n.records(), &[Read])
                .topic(n.engine_commands(), &[Read])
                .topic(n.engine_state(), &[Read, Write])
                .topic(n.catalogue(), &[Read, Write])
                .topic(n.engine_dead_letters(), &[Write]);
            for d in DEPARTMENTS {
                g.topic(n.notices(d.id), &[Write]);
            }
            g.group(n.engine_group())
                // Every instance's transactional id: `<prefix>.engine.<instance>`.
                .add(
                    Resource::prefixed(
                        ResourceType::TransactionalId,
                        n.engine_transactional_id(""),
                    ),
                    &[Write],
                )
                .readers(n);
            principals.push(Principal {
                role: Role::Engine,
                grants: g.done(),
            });
        }
        {
            let mut g = Grants::default();
            for d in DEPARTMENTS {
                g.topic(n.notices(d.id), &[Read])
                    .topic(n.feedback(d.id), &[Read]);
            }
            // It re-reads what it refused when it rebuilds its state.
            g.topic(n.feedback_rejected(), &[Read, Write])
                .group(n.feedback_group())
                .readers(n);
            principals.push(Principal {
                role: Role::Feedback,
                grants: g.done(),
            });
        }
        {
            let mut g = Grants::default();
            g.topic(n.engine_commands(), &[Write])
                .topic(n.catalogue(), &[Read, Write])
                .topic(n.engine_state(), &[Read])
                .topic(n.engine_dead_letters(), &[Read])
                .readers(n);
            principals.push(Principal {
                role: Role::Operator,
                grants: g.done(),
            });
        }
        {
            let mut g = Grants::default();
            // The catalogue too: an explanation names the catalogue version
            // a notice came from, with its effective date.
            g.topic(n.records(), &[Read])
                .topic(n.engine_commands(), &[Read])
                .topic(n.catalogue(), &[Read]);
            for d in DEPARTMENTS {
                g.topic(n.notices(d.id), &[Read])
                    .topic(n.feedback(d.id), &[Read]);
            }
            g.group(n.archive_group());
            principals.push(Principal {
                role: Role::Archive,
                grants: g.done(),
            });
        }
        {
            // Records for duplicate codes, dead letters for the reasons of
            // wrong codes (it reads only their headers); its own ledger,
            // re-read at start, and dead-letter topic.
            let mut g = Grants::default();
            g.topic(n.records(), &[Read]);
            for d in publishing_departments() {
                g.topic(n.dlq(d.id), &[Read]);
            }
            g.topic(n.quality_state(), &[Read, Write])
                .topic(n.quality_dead_letters(), &[Write])
                .group(n.quality_group())
                .readers(n);
            principals.push(Principal {
                role: Role::Quality,
                grants: g.done(),
            });
        }
        Model {
            naming: n.clone(),
            registry_topic: registry_topic.to_string(),
            principals,
        }
    }

    pub fn principal(&self, role: Role) -> Option<&Principal> {
        self.principals.iter().find(|p| p.role == role)
    }

    /// ACL bindings over every principal (one per resource and operation).
    pub fn binding_count(&self) -> usize {
        self.principals.iter().map(|p| p.bindings().count()).sum()
    }

    /// The principals allowed `op` on `kind`/`name`.
    pub fn allowed(&self, kind: ResourceType, name: &str, op: Operation) -> Vec<Role> {
        self.principals
            .iter()
            .filter(|p| p.allows(kind, name, op))
            .map(|p| p.role)
            .collect()
    }

    /// The chart's `files/access.yaml`: every principal with its ACLs in
    /// Strimzi's `KafkaUser` form, topic names written against the
    /// placeholders [`HELM_PREFIX`] (`kafka.topicPrefix`) and
    /// [`HELM_REGISTRY_TOPIC`] (`registry.topic`), which the template fills in.
    /// A department's dead-letter read carries `when:
    /// departmentsReadDeadLetters`, so that chart value can turn it off.
    pub fn helm() -> String {
        let m = Model::new(&Naming::new(HELM_PREFIX), HELM_REGISTRY_TOPIC);
        let mut out = String::from(HELM_HEADER);
        out.push_str("users:\n");
        for p in &m.principals {
            out.push_str(&format!(
                "  - name: {}\n    component: {}\n    acls:\n",
                p.name(),
                p.role.component()
            ));
            for g in &p.grants {
                let r = &g.resource;
                let ops: Vec<&str> = g.operations.iter().map(|o| o.strimzi()).collect();
                out.push_str(&format!(
                    "      - resource: {{type: {}, name: {}, patternType: {}}}\n        operations: [{}]\n",
                    r.kind.strimzi(),
                    quote(&r.name),
                    r.pattern.strimzi(),
                    ops.join(", ")
                ));
                if let Role::Department(d) = p.role
                    && r.kind == ResourceType::Topic
                    && r.name == m.naming.dlq(d.id)
                {
                    out.push_str("        when: departmentsReadDeadLetters\n");
                }
            }
        }
        out
    }
}

/// Stands for `kafka.topicPrefix` in the chart's `files/access.yaml`.
pub const HELM_PREFIX: &str = "{prefix}";
/// Stands for `registry.topic` in the chart's `files/access.yaml`.
pub const HELM_REGISTRY_TOPIC: &str = "{registryTopic}";

const HELM_HEADER: &str = "\
# Generated from crates/core/src/access.rs (credit_core::access::Model): do not edit.
# Regenerate: cargo run -q -p credit-ctl --bin credit-bus -- access helm > helm/credit-bus/files/access.yaml
# \"{prefix}\" stands for kafka.topicPrefix and \"{registryTopic}\" for registry.topic;
# templates/strimzi-users.yaml fills them in and names each KafkaUser <fullname>-<name>.
";

/// A YAML double-quoted scalar (names are ASCII without quotes or
/// backslashes; escaped anyway).
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topics::SCHEMAS;
    use ResourceType::{Group, Topic, TransactionalId};
    use proptest::prelude::*;

    fn dept(id: &str) -> Role {
        Role::Department(crate::catalogue::department(id).unwrap())
    }

    /// Who writes and who reads each topic, as README.md's architecture table
    /// says (plus the catalogue and the engine's dead letters, which it names
    /// in the engine's section): independent of the model's own code.
    fn table(n: &Naming, registry: &str, topic: &str) -> (Vec<String>, Vec<String>) {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        if topic == n.records() {
            let w: Vec<String> = publishing_departments()
                .map(|d| format!("normaliser-{}", d.id))
                .collect();
            return (w, names(&["engine", "archive", "quality"]));
        }
        if topic == n.engine_commands() {
            return (names(&["operator"]), names(&["engine", "archive"]));
        }
        if topic == n.engine_state() {
            return (names(&["engine"]), names(&["engine", "operator"]));
        }
        if topic == n.engine_dead_letters() {
            return (names(&["engine"]), names(&["operator"]));
        }
        if topic == n.catalogue() {
            return (
                names(&["engine", "operator"]),
                names(&["archive", "engine", "operator"]),
            );
        }
        if topic == n.feedback_rejected() {
            return (names(&["feedback"]), names(&["feedback"]));
        }
        if topic == n.quality_state() {
            return (names(&["quality"]), names(&["quality"]));
        }
        if topic == n.quality_dead_letters() {
            // Operators read it as the administrator, like the DLQs of departments without a user.
            return (names(&["quality"]), vec![]);
        }
        if topic == registry {
            return (names(&["registry"]), names(&["registry"]));
        }
        for d in DEPARTMENTS {
            let dn = format!("dept-{}", d.id);
            let nn = format!("normaliser-{}", d.id);
            if topic == n.inbound(d.id) {
                return (vec![dn], vec![nn]);
            }
            if topic == n.dlq(d.id) {
                return (vec![nn], vec![dn, "quality".into()]);
            }
            if topic == n.notices(d.id) {
                return (
                    names(&["engine"]),
                    vec![dn, "feedback".into(), "archive".into()],
                );
            }
            if topic == n.feedback(d.id) {
                return (vec![dn], names(&["feedback", "archive"]));
            }
        }
        panic!("{topic} is in no row of the table");
    }

    fn sorted(mut v: Vec<String>) -> Vec<String> {
        v.sort();
        v
    }

    fn names(roles: Vec<Role>) -> Vec<String> {
        sorted(roles.iter().map(Role::name).collect())
    }

    fn check_table(prefix: &str, registry: &str) {
        let n = Naming::new(prefix);
        let m = Model::new(&n, registry);
        let mut topics = n.all();
        topics.push(registry.to_string());
        for t in &topics {
            let (w, r) = table(&n, registry, t);
            assert_eq!(
                names(m.allowed(Topic, t, Operation::Write)),
                sorted(w),
                "writers of {t}"
            );
            assert_eq!(
                names(m.allowed(Topic, t, Operation::Read)),
                sorted(r),
                "readers of {t}"
            );
            assert_eq!(
                m.allowed(Topic, t, Operation::Create)
                    .iter()
                    .map(Role::name)
                    .collect::<Vec<_>>(),
                if t == registry {
                    vec!["registry".to_string()]
                } else {
                    vec![]
                },
                "creators of {t}"
            );
        }
        // No grant names a topic the bus does not have: a typo would be a
        // silent denial in production.
        for p in &m.principals {
            for t in p.topics() {
                assert!(
                    topics.contains(&t),
                    "{} is granted unknown topic {t}",
                    p.name()
                );
            }
        }
    }

    #[test]
    fn every_topic_has_exactly_the_writers_and_readers_of_the_architecture_table() {
        check_table("credit", SCHEMAS);
    }

    #[test]
    fn departments_are_confined_to_their_own_topics_and_groups() {
        let n = Naming::default();
        let m = Model::new(&n, SCHEMAS);
        for d in DEPARTMENTS {
            let me = m.principal(dept(d.id)).unwrap();
            for other in DEPARTMENTS.iter().filter(|o| o.id != d.id) {
                for t in [n.inbound(other.id), n.feedback(other.id)] {
                    assert!(
                        !me.allows(Topic, &t, Operation::Write),
                        "{} writes {t}",
                        d.id
                    );
                }
                for t in [n.notices(other.id), n.dlq(other.id), n.inbound(other.id)] {
                    assert!(!me.allows(Topic, &t, Operation::Read), "{} reads {t}", d.id);
                }
                for g in [n.subscriber_group(other.id), n.normaliser_group(other.id)] {
                    assert!(!me.allows(Group, &g, Operation::Read), "{} joins {g}", d.id);
                    assert!(
                        !me.allows(Group, &g, Operation::Describe),
                        "{} describes {g}",
                        d.id
                    );
                }
            }
            // Never its own notices (only the engine writes notices), nor the
            // shared topics.
            assert!(!me.allows(Topic, &n.notices(d.id), Operation::Write));
            assert!(!me.allows(Topic, &n.dlq(d.id), Operation::Write));
            for t in [
                n.records(),
                n.engine_commands(),
                n.engine_state(),
                n.catalogue(),
                n.feedback_rejected(),
            ] {
                assert!(
                    !me.allows(Topic, &t, Operation::Write),
                    "{} writes {t}",
                    d.id
                );
                assert!(!me.allows(Topic, &t, Operation::Read), "{} reads {t}", d.id);
            }
            for g in [
                n.engine_group(),
                n.feedback_group(),
                n.archive_group(),
                n.reader_group("x"),
            ] {
                assert!(
                    !me.allows(Group, &g, Operation::Describe),
                    "{} describes {g}",
                    d.id
                );
            }
            assert!(!me.allows(
                TransactionalId,
                &n.engine_transactional_id("a"),
                Operation::Write
            ));
            // What it needs.
            assert!(me.allows(Topic, &n.notices(d.id), Operation::Read));
            assert!(me.allows(Topic, &n.feedback(d.id), Operation::Write));
            assert!(me.allows(Group, &n.subscriber_group(d.id), Operation::Read));
            // `credit-bus subscribe`'s default, private group.
            let private = n.private_subscriber_group(d.id, "4242-1");
            assert!(me.allows(Group, &private, Operation::Read));
            assert_ne!(private, n.subscriber_group(d.id));
            assert_eq!(
                me.allows(Topic, &n.inbound(d.id), Operation::Write),
                d.inbound.is_some()
            );
            assert_eq!(
                me.allows(Topic, &n.dlq(d.id), Operation::Read),
                d.inbound.is_some()
            );
        }
    }

    #[test]
    fn services_have_what_their_code_uses() {
        let n = Naming::new("staging");
        let m = Model::new(&n, "_staging_schemas");
        let e = m.principal(Role::Engine).unwrap();
        assert!(e.allows(
            TransactionalId,
            &n.engine_transactional_id("engine-0"),
            Operation::Write
        ));
        assert!(e.allows(
            TransactionalId,
            &n.engine_transactional_id("engine-0"),
            Operation::Describe
        ));
        assert!(e.allows(Group, &n.engine_group(), Operation::Read));
        assert!(e.allows(
            Group,
            &n.reader_group("credit-engine-recovery"),
            Operation::Describe
        ));
        assert!(!e.allows(
            Group,
            &n.reader_group("credit-engine-recovery"),
            Operation::Read
        ));
        for d in publishing_departments() {
            let p = m.principal(Role::Normaliser(d)).unwrap();
            assert!(p.allows(Group, &n.normaliser_group(d.id), Operation::Read));
            assert!(p.allows(Topic, &n.inbound(d.id), Operation::Read));
            for o in publishing_departments().filter(|o| o.id != d.id) {
                assert!(!p.allows(Topic, &n.inbound(o.id), Operation::Read));
                assert!(!p.allows(Topic, &n.dlq(o.id), Operation::Write));
                assert!(!p.allows(Group, &n.normaliser_group(o.id), Operation::Read));
            }
        }
        let f = m.principal(Role::Feedback).unwrap();
        assert!(f.allows(Group, &n.feedback_group(), Operation::Read));
        let r = m.principal(Role::Registry).unwrap();
        assert!(r.allows(Topic, "_staging_schemas", Operation::Create));
        assert!(!r.allows(Topic, SCHEMAS, Operation::Read));
        // Only the engine may use a transactional id.
        let tx: Vec<Role> = m.allowed(
            TransactionalId,
            &n.engine_transactional_id("x"),
            Operation::Write,
        );
        assert_eq!(tx, vec![Role::Engine]);
    }

    #[test]
    fn no_two_principals_share_a_consumer_group() {
        // Departments own `<prefix>.<dept>.`: a department id such as
        // `engine` or `reader` would hand it a service's groups.
        for prefix in ["credit", "a", "credit.staging"] {
            let m = Model::new(&Naming::new(prefix), SCHEMAS);
            let groups: Vec<(String, &Grant)> = m
                .principals
                .iter()
                .flat_map(|p| {
                    p.grants
                        .iter()
                        .filter(|g| g.resource.kind == Group)
                        .map(move |g| (p.name(), g))
                })
                .collect();
            let describe_only = |g: &Grant| g.operations == [Operation::Describe];
            for (i, (a, ga)) in groups.iter().enumerate() {
                for (b, gb) in &groups[i + 1..] {
                    // Services share the readers' prefix, which allows no more
                    // than finding a coordinator (readers never commit).
                    let shared_readers =
                        describe_only(ga) && describe_only(gb) && ga.resource == gb.resource;
                    assert!(
                        a == b || shared_readers || !ga.resource.overlaps(&gb.resource),
                        "{a} ({}) and {b} ({}) overlap",
                        ga.resource,
                        gb.resource
                    );
                }
            }
        }
    }

    #[test]
    fn topic_acls_are_literal_and_names_are_unique() {
        let m = Model::new(&Naming::default(), SCHEMAS);
        let mut seen = std::collections::HashSet::new();
        for p in &m.principals {
            assert!(seen.insert(p.name()), "two principals named {}", p.name());
            assert_eq!(Role::parse(&p.name()), Some(p.role), "{}", p.name());
            let mut resources = std::collections::HashSet::new();
            for g in &p.grants {
                assert!(
                    resources.insert(&g.resource),
                    "{}: {} twice",
                    p.name(),
                    g.resource
                );
                assert!(!g.operations.is_empty());
                if g.resource.kind == Topic {
                    assert_eq!(g.resource.pattern, PatternType::Literal, "{}", g.resource);
                }
            }
            // Kubernetes object names (the chart's KafkaUsers): DNS-1123 labels.
            assert!(
                p.name()
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            );
        }
        assert_eq!(Role::parse("dept-nowhere"), None);
        assert_eq!(
            Role::parse("normaliser-finance"),
            None,
            "finance does not publish"
        );
    }

    #[test]
    fn counts() {
        let m = Model::new(&Naming::default(), SCHEMAS);
        let depts = DEPARTMENTS.len();
        let publishers = publishing_departments().count();
        assert_eq!(m.principals.len(), depts + publishers + 6);
        // department: feedback, notices, group (+ inbound, dlq); normaliser: 4;
        // registry: 3 + reader; engine: 5 topics (state and catalogue twice) + notices + group + txn + reader;
        // feedback: 2 per department + rejected twice + group + reader; operator: 5 + reader;
        // archive: 3 + 2 per department + group; quality: records, 1 per
        // publisher, state twice, dead letters, group, reader.
        let want = depts * 3
            + publishers * 2
            + publishers * 4
            + 4
            + (7 + depts + 3)
            + (2 * depts + 2 + 2)
            + (5 + 1)
            + (3 + 2 * depts + 1)
            + (1 + publishers + 2 + 1 + 1 + 1);
        // DescribeConfigs on every topic written: departments' feedback and
        // inbound, normalisers' records and dead letters, the registry's
        // store, the engine's state, catalogue, dead letters and notices, the
        // tracker's rejected feedback, the operator's commands and catalogue,
        // quality's state and dead letters.
        let describe_configs = (depts + publishers) + 2 * publishers + 1 + (3 + depts) + 1 + 2 + 2;
        assert_eq!(m.binding_count(), want + describe_configs);
    }

    #[test]
    fn helm_file_names_every_principal_with_placeholders() {
        let y = Model::helm();
        let m = Model::new(&Naming::default(), SCHEMAS);
        for p in &m.principals {
            assert!(
                y.contains(&format!("  - name: {}\n", p.name())),
                "{}",
                p.name()
            );
        }
        assert!(y.contains("\"{prefix}.courts.inbound\""));
        assert!(y.contains("\"{registryTopic}\""));
        assert!(
            !y.contains("credit."),
            "a concrete prefix leaked into the chart's file"
        );
        assert_eq!(
            y.matches("when: departmentsReadDeadLetters").count(),
            publishing_departments().count()
        );
    }

    proptest! {
        #[test]
        fn the_table_holds_under_any_prefix(prefix in "[a-z][a-z0-9-]{0,12}(\\.[a-z0-9]{1,5})?",
                                            registry in "_[a-z]{1,10}") {
            check_table(&prefix, &registry);
        }
    }
}
