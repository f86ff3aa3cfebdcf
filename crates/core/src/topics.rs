//! Topic names, consumer groups and schema subjects, derived from the catalogue
//! in this one place.
//!
//! | topic                       | holds                                                 |
//! |-----------------------------|-------------------------------------------------------|
//! | `credit.<dept>.inbound`     | what a department publishes, in its native format     |
//! | `credit.<dept>.dlq`         | what the bus could not accept: original bytes + why   |
//! | `credit.records`            | normalised credit records (Avro, `credit.records-value`) |
//! | `credit.<dept>.notices`     | notices a department must implement                   |
//! | `credit.<dept>.feedback`    | that department's feedback on its notices (Avro)      |
//! | `credit.feedback.rejected`  | feedback the bus refused: original bytes + why        |
//! | `credit.catalogue`          | measures catalogue versions and the active one (compacted) |
//! | `credit.quality.state`      | the quality service's ledger: one fact per record id (compacted) |
//! | `credit.quality.dlq`        | records the quality service could not read: original bytes + why |
//! | `_credit_schemas`           | the schema registry's compacted store                 |
//!
//! `credit` is the default prefix; `kafka.topic_prefix` changes it, so several
//! environments (or parallel tests) can share one cluster. Schema subjects
//! follow Confluent's TopicNameStrategy: `<topic>-value`.

use crate::catalogue::Department;

/// The default topic prefix.
pub const PREFIX: &str = "credit";
/// The schema registry's durable store (compacted).
pub const SCHEMAS: &str = "_credit_schemas";

/// Names under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Naming {
    prefix: String,
}

impl Default for Naming {
    fn default() -> Self {
        Naming::new(PREFIX)
    }
}

impl Naming {
    pub fn new(prefix: &str) -> Self {
        Naming {
            prefix: prefix.to_string(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The shared topic of normalised records.
    pub fn records(&self) -> String {
        format!("{}.records", self.prefix)
    }

    pub fn inbound(&self, department_id: &str) -> String {
        format!("{}.{department_id}.inbound", self.prefix)
    }

    pub fn dlq(&self, department_id: &str) -> String {
        format!("{}.{department_id}.dlq", self.prefix)
    }

    pub fn notices(&self, department_id: &str) -> String {
        format!("{}.{department_id}.notices", self.prefix)
    }

    /// Feedback a department publishes on the notices it received
    /// (applied / not applicable / failed).
    pub fn feedback(&self, department_id: &str) -> String {
        format!("{}.{department_id}.feedback", self.prefix)
    }

    /// Feedback the tracker refused (unknown notice, wrong department,
    /// undecodable), with the original bytes and a reason header.
    pub fn feedback_rejected(&self) -> String {
        format!("{}.feedback.rejected", self.prefix)
    }

    /// Measures catalogue versions (`version/<n>`) and the active version
    /// (`active`), compacted so every service sees the same catalogue.
    pub fn catalogue(&self) -> String {
        format!("{}.catalogue", self.prefix)
    }

    /// The consumer group of the feedback tracker.
    pub fn feedback_group(&self) -> String {
        format!("{}.feedback", self.prefix)
    }

    /// Operator commands to the engine (end an entry), keyed by record id and
    /// partitioned like `records`.
    pub fn engine_commands(&self) -> String {
        format!("{}.engine.commands", self.prefix)
    }

    /// The engine's changelog: entry state and checkpoints, one partition per
    /// input partition (compacted).
    pub fn engine_state(&self) -> String {
        format!("{}.engine.state", self.prefix)
    }

    /// What the engine could not use (undecodable records, unreadable or
    /// refused commands): original bytes, reason and input position, for
    /// operators to inspect and replay.
    pub fn engine_dead_letters(&self) -> String {
        format!("{}.engine.dlq", self.prefix)
    }

    /// The transactional id of an engine instance: stable per instance, so a
    /// restarted instance fences its predecessor's open transaction at once.
    pub fn engine_transactional_id(&self, instance: &str) -> String {
        format!("{}.engine.{instance}", self.prefix)
    }

    /// The quality service's ledger (compacted): per record id, the code and
    /// name it carried or the wrong-code reason it was rejected with, so a
    /// restart rebuilds the counts without reading the records again and a
    /// replayed record is recognised by its id.
    pub fn quality_state(&self) -> String {
        format!("{}.quality.state", self.prefix)
    }

    /// What the quality service could not read (undecodable records):
    /// original bytes, reason and input position.
    pub fn quality_dead_letters(&self) -> String {
        format!("{}.quality.dlq", self.prefix)
    }

    /// The consumer group the quality service commits its input offsets under.
    pub fn quality_group(&self) -> String {
        format!("{}.quality", self.prefix)
    }

    /// Whether a topic under this prefix keeps only the latest record per key.
    pub fn is_compacted(&self, topic: &str) -> bool {
        topic == self.engine_state() || topic == self.catalogue() || topic == self.quality_state()
    }

    /// Whether a topic is a department's notices or feedback topic: one
    /// department's traffic each, sized by `kafka.notice_partitions` rather
    /// than `kafka.partitions` (the engine writes to every one of them, and a
    /// producer sends each partition its own produce request).
    pub fn is_notice_or_feedback(&self, topic: &str) -> bool {
        crate::DEPARTMENTS
            .iter()
            .any(|d| topic == self.notices(d.id) || topic == self.feedback(d.id))
    }

    /// The consumer group of the engine instances.
    pub fn engine_group(&self) -> String {
        format!("{}.engine", self.prefix)
    }

    /// The consumer group of a department's normaliser instance.
    pub fn normaliser_group(&self, department_id: &str) -> String {
        format!("{}.normaliser.{department_id}", self.prefix)
    }

    /// The prefix of every consumer group a department may use
    /// (`<prefix>.<dept>.`): its own systems name their groups under it, and
    /// the access model grants each department exactly this prefix.
    pub fn department_groups(&self, department_id: &str) -> String {
        format!("{}.{department_id}.", self.prefix)
    }

    /// The consumer group `credit-bus subscribe` reads a department's notices
    /// with: under [`Naming::department_groups`], so the department's own
    /// credentials cover it.
    pub fn subscriber_group(&self, department_id: &str) -> String {
        format!("{}subscriber", self.department_groups(department_id))
    }

    /// A private consumer group for one `credit-bus subscribe` run
    /// (`<prefix>.<dept>.subscriber-<suffix>`): still under
    /// [`Naming::department_groups`], so the department's credentials cover
    /// it, but of its own, so it never takes partitions (and records) from a
    /// consumer already running in the shared [`Naming::subscriber_group`].
    pub fn private_subscriber_group(&self, department_id: &str, suffix: &str) -> String {
        format!("{}-{suffix}", self.subscriber_group(department_id))
    }

    /// The group id of a group-less reader (partitions assigned by hand, no
    /// offsets committed). librdkafka still looks its coordinator up, which a
    /// broker with ACLs allows only with DESCRIBE on the group, so readers get
    /// names under [`Naming::reader_groups`] that services may describe.
    pub fn reader_group(&self, client_id: &str) -> String {
        format!("{}{client_id}", self.reader_groups())
    }

    /// The prefix of every reader's group id (`<prefix>.reader.`).
    pub fn reader_groups(&self) -> String {
        format!("{}.reader.", self.prefix)
    }

    /// The consumer group of the archive service (reads records, notices,
    /// feedback and engine commands into the access-controlled store).
    pub fn archive_group(&self) -> String {
        format!("{}.archive", self.prefix)
    }

    /// Every topic the bus needs for one department.
    pub fn department_topics(&self, dep: &Department) -> Vec<String> {
        let mut out = vec![self.notices(dep.id), self.feedback(dep.id)];
        if dep.inbound.is_some() {
            out.push(self.inbound(dep.id));
            out.push(self.dlq(dep.id));
        }
        out
    }

    /// Every data topic the bus needs, from the catalogue (the registry's store
    /// is created by the registry itself).
    pub fn all(&self) -> Vec<String> {
        let mut out = vec![
            self.records(),
            self.engine_commands(),
            self.engine_state(),
            self.engine_dead_letters(),
            self.catalogue(),
            self.feedback_rejected(),
            self.quality_state(),
            self.quality_dead_letters(),
        ];
        for dep in crate::DEPARTMENTS {
            out.extend(self.department_topics(dep));
        }
        out
    }
}

/// The partition the Java client's default partitioner (murmur2 of the key,
/// made positive, modulo the partition count) gives a keyed record. Every
/// producer of the bus uses it (librdkafka `partitioner=murmur2_random`), so
/// the `credit-bus` CLI knows which engine partition holds an entry before it
/// sends a command there.
pub fn partition_of(key: &[u8], partitions: i32) -> i32 {
    ((murmur2(key) & 0x7fff_ffff) as u32 % partitions.max(1) as u32) as i32
}

/// The records-topic partition of a normalised record, and so the engine
/// partition that holds its list entry and takes the commands that end it:
/// every record read from one inbound partition of one department goes to one
/// partition (murmur2 of the record id without its offset, `courts:3`). A
/// department keys its inbound records by its own record id, so its resends
/// of a record arrive on the same inbound partition and meet, in the engine,
/// the entry they repeat or update. The records topic's partition count must
/// not change while entries are held (as with any keyed Kafka state).
pub fn record_partition(record_id: &str, partitions: i32) -> i32 {
    let stream = record_id.rsplit_once(':').map_or(record_id, |(s, _)| s);
    partition_of(stream.as_bytes(), partitions)
}

/// Kafka's `Utils.murmur2` (seed 0x9747b28c).
pub fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M) ^ k;
    }
    let rest = chunks.remainder();
    if rest.len() == 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// TopicNameStrategy subject of a topic's values.
pub fn value_subject(topic: &str) -> String {
    format!("{topic}-value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notice_and_feedback_topics_are_told_apart() {
        let n = Naming::new("staging");
        let mut delivery = 0;
        for t in n.all() {
            let expected = t.ends_with(".notices") || t.ends_with(".feedback");
            assert_eq!(n.is_notice_or_feedback(&t), expected, "{t}");
            delivery += usize::from(expected);
        }
        assert_eq!(delivery, 2 * crate::DEPARTMENTS.len());
        assert!(!n.is_notice_or_feedback(&n.feedback_rejected()));
        assert!(!n.is_notice_or_feedback(&Naming::default().notices("finance")));
    }

    /// The vectors of Kafka's own `UtilsTest.testMurmur2`.
    #[test]
    fn murmur2_matches_the_java_client() {
        for (key, want) in [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
        ] {
            assert_eq!(murmur2(key.as_bytes()), want, "{key}");
        }
        for n in 1..10 {
            assert!((0..n).contains(&partition_of(b"courts:0:12", n)));
            // One inbound partition's records share a records partition.
            assert_eq!(
                record_partition("courts:3:12", n),
                record_partition("courts:3:99999", n)
            );
            assert_eq!(
                record_partition("courts:3:12", n),
                partition_of(b"courts:3", n)
            );
        }
    }

    #[test]
    fn names_follow_the_documented_convention() {
        let n = Naming::default();
        assert_eq!(n.inbound("courts"), "credit.courts.inbound");
        assert_eq!(n.dlq("gz-customs"), "credit.gz-customs.dlq");
        assert_eq!(n.records(), "credit.records");
        assert_eq!(value_subject(&n.records()), "credit.records-value");
        assert_eq!(n.normaliser_group("tax"), "credit.normaliser.tax");
        assert_eq!(Naming::new("staging").inbound("tax"), "staging.tax.inbound");
    }

    #[test]
    fn all_topics_are_unique_and_legal_kafka_names() {
        let all = Naming::default().all();
        let set: std::collections::HashSet<_> = all.iter().collect();
        assert_eq!(set.len(), all.len());
        for t in &all {
            assert!(t.len() <= 249);
            assert!(
                t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
                "{t}"
            );
        }
        // A notice and a feedback topic per department, inbound + dlq per publisher
        // (5), records, the engine's commands, changelog and dead letters, the
        // catalogue, rejected feedback, the quality ledger and its dead letters.
        assert_eq!(all.len(), 2 * crate::DEPARTMENTS.len() + 2 * 5 + 8);
    }
}
