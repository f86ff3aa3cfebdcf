//! Where each department's notices go, and what every notice carries from
//! the catalogue.

use std::collections::BTreeMap;
use std::sync::Arc;

use credit_measures::Catalogue;
use credit_measures::plan::Planned;
use rustc_hash::FxHashMap;

/// One department's notices topic.
#[derive(Debug, Clone)]
pub struct Outlet {
    pub department: &'static str,
    pub topic: String,
    pub partitions: i32,
    /// The registry id of the notice schema under the topic's subject.
    pub schema_id: u32,
}

/// Every department's outlet, looked up by department; and per measure id its
/// name and legal basis from the newest version that has it (a lift may name
/// a measure a newer version dropped).
#[derive(Debug, Default)]
pub struct Outlets {
    pub list: Vec<Outlet>,
    by_department: FxHashMap<&'static str, usize>,
    text: FxHashMap<Arc<str>, (String, String)>,
}

impl Outlets {
    pub fn new(list: Vec<Outlet>) -> Outlets {
        let by_department = list
            .iter()
            .enumerate()
            .map(|(i, o)| (o.department, i))
            .collect();
        Outlets {
            list,
            by_department,
            text: FxHashMap::default(),
        }
    }

    /// Refreshes the measures' names and legal bases from every known version.
    pub fn set_catalogues(&mut self, catalogues: &BTreeMap<u32, Catalogue>) {
        self.text.clear();
        for c in catalogues.values() {
            for m in &c.measures {
                self.text
                    .insert(m.id.clone(), (m.name_zh.clone(), m.legal_basis.clone()));
            }
        }
    }

    /// A measure's name and legal basis ("" if no known version has it).
    pub fn text(&self, measure_id: &str) -> (&str, &str) {
        self.text
            .get(measure_id)
            .map_or(("", ""), |(n, b)| (n.as_str(), b.as_str()))
    }

    /// The outlet (index into `list`) and partition of a planned notice, if
    /// its department has one (catalogues are validated against the same
    /// department table, so every planned department does).
    pub fn target(&self, n: &Planned) -> Option<(usize, i32)> {
        let o = *self.by_department.get(n.department)?;
        Some((o, partition_for(&n.notice_id, self.list[o].partitions)))
    }
}

/// FNV-1a of the notice id picks its partition: the same notice always lands
/// on the same partition, so a department reading one partition sees every
/// notice of a (record, measure) in order.
pub fn partition_for(id: &str, partitions: i32) -> i32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % partitions.max(1) as u64) as i32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notice_partitions_are_stable_and_in_range() {
        for id in ["courts:0:1/no-honours/hrss/punishment/1", "", "x"] {
            let p = partition_for(id, 4);
            assert!((0..4).contains(&p));
            assert_eq!(p, partition_for(id, 4));
        }
        let spread: std::collections::HashSet<i32> = (0..100)
            .map(|i| partition_for(&format!("r:{i}/m/d/punishment/1"), 4))
            .collect();
        assert_eq!(spread.len(), 4);
        assert_eq!(partition_for("anything", 0), 0);
    }

    #[test]
    fn every_department_has_an_outlet_and_every_measure_its_text() {
        let list = credit_core::DEPARTMENTS
            .iter()
            .map(|d| Outlet {
                department: d.id,
                topic: format!("t.{}", d.id),
                partitions: 2,
                schema_id: 1,
            })
            .collect();
        let mut o = Outlets::new(list);
        let c = Catalogue::parse(credit_measures::V1).unwrap();
        o.set_catalogues(&BTreeMap::from([(1, c.clone())]));
        for m in &c.measures {
            assert!(!o.text(&m.id).0.is_empty(), "{}", m.id);
            for d in &m.departments {
                let n = Planned {
                    notice_id: format!("courts:0:1/{}/{d}/punishment/1", m.id),
                    kind: credit_core::notice::NoticeKind::Punishment,
                    record_id: "courts:0:1".into(),
                    measure_id: m.id.clone(),
                    department: d,
                    generation: 1,
                    reason: None,
                };
                let (i, p) = o.target(&n).unwrap();
                assert_eq!(o.list[i].department, *d);
                assert!((0..2).contains(&p));
            }
        }
        assert_eq!(o.text("no-such-measure"), ("", ""));
    }
}
