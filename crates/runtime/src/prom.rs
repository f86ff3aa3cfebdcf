//! Just enough of the Prometheus text format to read our own `/metrics`
//! (the `credit-bus watch` view and the dashboard scrape with it).

pub struct Sample<'a> {
    pub name: &'a str,
    labels: Vec<(&'a str, &'a str)>,
    pub value: f64,
}

impl<'a> Sample<'a> {
    pub fn label(&self, key: &str) -> Option<&'a str> {
        self.labels.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
    }

    pub fn labels(&self) -> &[(&'a str, &'a str)] {
        &self.labels
    }
}

/// Parses sample lines; comments and lines it cannot read are skipped.
pub fn parse(text: &str) -> Vec<Sample<'_>> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(line)
        .collect()
}

fn line(l: &str) -> Option<Sample<'_>> {
    let (head, value) = l.rsplit_once(' ')?;
    let value = value.parse().ok()?;
    let (name, labels) = match head.split_once('{') {
        None => (head, Vec::new()),
        Some((n, rest)) => {
            let body = rest.strip_suffix('}')?;
            // Our label values never contain `",` so a plain split is enough.
            let labels = body
                .split("\",")
                .filter(|p| !p.is_empty())
                .filter_map(|p| {
                    let (k, v) = p.split_once("=\"")?;
                    Some((k, v.trim_end_matches('"')))
                })
                .collect();
            (n, labels)
        }
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_counters_with_labels() {
        let text = "# HELP x y\ncredit_bus_records_in_total{department=\"tax\",reason=\"bad_encoding\"} 42\nup 1\n";
        let s = super::parse(text);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].label("department"), Some("tax"));
        assert_eq!(s[0].label("reason"), Some("bad_encoding"));
        assert_eq!(s[0].value, 42.0);
        assert_eq!(s[1].name, "up");
    }
}
