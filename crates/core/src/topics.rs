//! Topic names and schema subjects, derived from the catalogue in this one place.
//!
//! | topic                     | holds                                              |
//! |---------------------------|----------------------------------------------------|
//! | `credit.<dept>.inbound`   | what a department publishes, in its native format   |
//! | `credit.<dept>.dlq`       | what the bus could not accept, original bytes + why |
//! | `credit.records`          | normalised credit records (Avro, `credit.records-value`) |
//! | `credit.<dept>.notices`   | notices a department must implement                 |
//! | `_credit_schemas`         | the schema registry's compacted store               |
//!
//! Schema subjects follow Confluent's TopicNameStrategy: `<topic>-value`.

use crate::catalogue::Department;

pub const PREFIX: &str = "credit";
/// The shared topic of normalised records.
pub const RECORDS: &str = "credit.records";
/// The schema registry's durable store (compacted).
pub const SCHEMAS: &str = "_credit_schemas";

pub fn inbound(department_id: &str) -> String {
    format!("{PREFIX}.{department_id}.inbound")
}

pub fn dlq(department_id: &str) -> String {
    format!("{PREFIX}.{department_id}.dlq")
}

pub fn notices(department_id: &str) -> String {
    format!("{PREFIX}.{department_id}.notices")
}

/// TopicNameStrategy subject of a topic's values.
pub fn value_subject(topic: &str) -> String {
    format!("{topic}-value")
}

/// The consumer group of a department's normaliser instance.
pub fn normaliser_group(department_id: &str) -> String {
    format!("{PREFIX}.normaliser.{department_id}")
}

/// Whether a topic holds records that must be kept forever and compacted.
pub fn is_compacted(topic: &str) -> bool {
    topic == SCHEMAS
}

/// Every topic the bus needs for one department.
pub fn department_topics(dep: &Department) -> Vec<String> {
    let mut out = vec![notices(dep.id)];
    if dep.inbound.is_some() {
        out.push(inbound(dep.id));
        out.push(dlq(dep.id));
    }
    out
}

/// Every topic the bus needs, from the catalogue.
pub fn all() -> Vec<String> {
    let mut out = vec![RECORDS.to_string(), SCHEMAS.to_string()];
    for dep in crate::DEPARTMENTS {
        out.extend(department_topics(dep));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_documented_convention() {
        assert_eq!(inbound("courts"), "credit.courts.inbound");
        assert_eq!(dlq("gz-customs"), "credit.gz-customs.dlq");
        assert_eq!(value_subject(RECORDS), "credit.records-value");
        assert_eq!(normaliser_group("tax"), "credit.normaliser.tax");
    }

    #[test]
    fn all_topics_are_unique_and_legal_kafka_names() {
        let all = all();
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
        // 35 departments with a notice topic, 5 publishers with inbound + dlq, plus 2 shared.
        assert_eq!(all.len(), crate::DEPARTMENTS.len() + 2 * 5 + 2);
    }
}
