//! Issue 16's case tables through the real broker, as a department and a
//! consumer see them: every case is published in its department's native
//! format to its inbound topic, with one `credit-normaliser` process per
//! department running, and checked case by case:
//!
//! * accepted: the normalised record on `<prefix>.records`, decoded with the
//!   schema the registry serves for its id, has the expected key, subject type,
//!   amount, names and corrections;
//! * rejected: the department's dead-letter topic has the original bytes with
//!   `credit-bus.reason` and `credit-bus.field` as the table says;
//! * the metrics the issue asks for, from each normaliser's `/metrics`:
//!   `credit_bus_csv_unknown_columns_total` and
//!   `credit_bus_guardrail_decisions_total`.
//!
//! Classes: 2 (tax CSV by header, `credit_datagen::cases::tax_csv`), 3 (amounts
//! with units, `credit_core::cases::AMOUNTS` through `AMOUNT_SLOTS`), 4 (codes,
//! `credit_core::cases::CODES` through `KEY_SLOTS`) and 5 (the guardrail table
//! wrapped by `market_penalty` / `court_entry`). Every case once; every failure
//! names its case. Two phases (classes 2-4, then 5) on the same processes, so
//! the guardrail's counters can be checked exactly as the difference between
//! two scrapes.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use apache_avro::types::Value;
use credit_bus_tests::*;
use credit_core::ReasonCode;
use credit_core::cases::{AMOUNTS, AmountVerdict, CODES, CodeVerdict, KeyField};
use credit_core::correction::Correction;
use credit_core::dlq;
use credit_core::topics::Naming;
use credit_datagen::cases::{
    CsvExpect, GuardrailExpect, court_entry, guardrail, market_penalty, tax_csv,
};
use credit_datagen::fields::{AMOUNT_SLOTS, KEY_SLOTS};
use credit_runtime::metrics::MetricName;
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::FutureRecord;

/// What a user must see for one case.
#[derive(Debug, Clone)]
enum Want {
    Accepted(Accept),
    Rejected {
        reason: ReasonCode,
        field: Option<String>,
    },
}

/// The facts of an accepted record a case pins (`None`: not checked).
#[derive(Debug, Clone, Default)]
struct Accept {
    key: Option<String>,
    person: Option<bool>,
    name: Option<String>,
    tax_authority: Option<String>,
    amount_fen: Option<Option<i64>>,
    responsible_person: Option<Option<String>>,
    /// Exactly these corrections (any order).
    corrections: Option<Vec<Correction>>,
}

#[derive(Debug, Clone)]
struct Case {
    /// Names the case in every failure: class, slot, value, note.
    name: String,
    department: &'static str,
    value: Vec<u8>,
    want: Want,
}

fn rejected(reason: ReasonCode, field: Option<&str>) -> Want {
    Want::Rejected {
        reason,
        field: field.map(str::to_string),
    }
}

/// Class 4: every code of `CODES` through every key slot of its kind.
fn code_cases() -> Vec<Case> {
    let mut out = Vec::new();
    for slot in KEY_SLOTS {
        for c in CODES.iter().filter(|c| c.field == slot.field) {
            let want = match c.expect {
                CodeVerdict::Accepted {
                    key,
                    person,
                    corrections,
                } => Want::Accepted(Accept {
                    key: Some(key.into()),
                    person: Some(person),
                    corrections: Some(corrections.to_vec()),
                    ..Accept::default()
                }),
                CodeVerdict::Legacy { key, corrections } if slot.keeps_legacy => {
                    let mut cs = corrections.to_vec();
                    cs.push(Correction::LegacyRegistrationNumber);
                    Want::Accepted(Accept {
                        key: Some(key.into()),
                        person: Some(false),
                        corrections: Some(cs),
                        ..Accept::default()
                    })
                }
                CodeVerdict::Legacy { .. } => {
                    rejected(ReasonCode::LegacyRegistrationNumber, Some(slot.field_name))
                }
                CodeVerdict::Rejected(ReasonCode::MissingField) => {
                    assert_eq!(slot.field, KeyField::Unknown, "{}", c.note);
                    rejected(ReasonCode::MissingField, Some("partyTypeName"))
                }
                CodeVerdict::Rejected(code) => rejected(code, Some(slot.field_name)),
            };
            out.push(Case {
                name: format!("class 4 codes: {} with {:?} ({})", slot.name, c.raw, c.note),
                department: slot.department,
                value: (slot.build)(c.raw),
                want,
            });
        }
    }
    out
}

/// Class 3: every amount of `AMOUNTS` through every amount slot of its unit.
fn amount_cases() -> Vec<Case> {
    let mut out = Vec::new();
    for slot in AMOUNT_SLOTS {
        for c in AMOUNTS.iter().filter(|c| c.field_unit == slot.unit) {
            let want = match c.expect {
                AmountVerdict::Fen { fen, .. } => Want::Accepted(Accept {
                    amount_fen: Some(Some(fen)),
                    corrections: Some(c.expect.corrections()),
                    ..Accept::default()
                }),
                AmountVerdict::Rejected(code) => rejected(code, Some(slot.field_name)),
            };
            out.push(Case {
                name: format!(
                    "class 3 amounts: {} with {:?} ({})",
                    slot.name, c.raw, c.note
                ),
                department: slot.department,
                value: (slot.build)(c.raw),
                want,
            });
        }
    }
    out
}

/// Class 2: the tax CSV header table. Returns the cases and, per `column`
/// label, how many ignored columns the accepted cases must have counted.
fn csv_cases() -> (Vec<Case>, BTreeMap<String, f64>) {
    let mut columns = BTreeMap::new();
    let cases = tax_csv()
        .into_iter()
        .map(|c| {
            let want = match c.expect {
                CsvExpect::Accepted {
                    name,
                    uscc,
                    authority,
                    amount_fen,
                    responsible_person,
                    unknown_columns,
                } => {
                    for col in unknown_columns {
                        let label = if col.is_empty() {
                            "(empty)".to_string()
                        } else {
                            col
                        };
                        *columns.entry(label).or_insert(0.0) += 1.0;
                    }
                    Want::Accepted(Accept {
                        key: Some(uscc),
                        person: Some(false),
                        name: Some(name),
                        tax_authority: Some(authority),
                        amount_fen: Some(amount_fen),
                        responsible_person: Some(responsible_person),
                        ..Accept::default()
                    })
                }
                CsvExpect::Rejected { reason, field } => rejected(reason, field),
            };
            Case {
                name: format!("class 2 tax CSV: {}", c.name),
                department: "tax",
                value: c.value,
                want,
            }
        })
        .collect();
    (cases, columns)
}

/// Class 5: each guardrail text as a natural person's and a company's market
/// penalty, as a court entry's debt and as its listed conduct. Returns the
/// cases and the guardrail decisions each department must count
/// (`(department, concept, decision)`).
fn guardrail_cases() -> (Vec<Case>, Decisions) {
    let mut out = Vec::new();
    let mut decisions = BTreeMap::new();
    let mut decide = |dept: &'static str, e: &GuardrailExpect| {
        let (concept, decision) = match e {
            GuardrailExpect::Block(c) => (c.clone(), "blocked"),
            GuardrailExpect::Exempt(c) => (c.clone(), "exempt"),
            GuardrailExpect::Pass => ("none".to_string(), "passed"),
        };
        *decisions.entry((dept, concept, decision)).or_insert(0.0) += 1.0;
    };
    for (i, case) in guardrail().into_iter().enumerate() {
        let seq = i as u32 + 1;
        let blocked = matches!(case.expect, GuardrailExpect::Block(_));
        let person = Accept {
            person: Some(true),
            ..Accept::default()
        };
        out.push(Case {
            name: format!(
                "class 5 guardrail: market penalty of a natural person stating {:?} ({:?})",
                case.text, case.expect
            ),
            department: "market",
            value: market_penalty(&case.text, true, seq),
            want: if blocked {
                rejected(ReasonCode::GuardrailMinorBehaviour, Some("CF_WFXW"))
            } else {
                Want::Accepted(person.clone())
            },
        });
        decide("market", &case.expect);
        // A company's record is not a personal credit record: never judged.
        out.push(Case {
            name: format!(
                "class 5 guardrail: market penalty of a company stating {:?}",
                case.text
            ),
            department: "market",
            value: market_penalty(&case.text, false, seq),
            want: Want::Accepted(Accept {
                person: Some(false),
                ..Accept::default()
            }),
        });
        // The judgement's debt is never judged: the listed conduct (not
        // performing a judgement) passes.
        out.push(Case {
            name: format!(
                "class 5 guardrail: court entry whose debt is {:?}",
                case.text
            ),
            department: "courts",
            value: court_entry(&case.text, "有履行能力而拒不履行生效法律文书确定义务", seq),
            want: Want::Accepted(person.clone()),
        });
        decide("courts", &GuardrailExpect::Pass);
        out.push(Case {
            name: format!(
                "class 5 guardrail: court entry whose listed conduct is {:?} ({:?})",
                case.text, case.expect
            ),
            department: "courts",
            value: court_entry("支付人民币12000元", &case.text, seq),
            want: if blocked {
                rejected(ReasonCode::GuardrailMinorBehaviour, Some("disruptTypeName"))
            } else {
                Want::Accepted(person)
            },
        });
        decide("courts", &case.expect);
    }
    (out, decisions)
}

/// Guardrail decisions by (department, concept, decision).
type Decisions = BTreeMap<(&'static str, String, &'static str), f64>;

/// A normalised record's facts, decoded with the registry's schema.
#[derive(Debug)]
struct Seen {
    key: String,
    person: bool,
    name: String,
    responsible_person: Option<String>,
    amount_fen: Option<i64>,
    attributes: HashMap<String, String>,
    corrections: Vec<String>,
}

fn field<'v>(fields: &'v [(String, Value)], n: &str) -> &'v Value {
    &fields
        .iter()
        .find(|(k, _)| k == n)
        .unwrap_or_else(|| panic!("no field {n}"))
        .1
}

fn string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) | Value::Enum(_, s) => Some(s.clone()),
        Value::Union(_, v) => string(v),
        _ => None,
    }
}

fn decode(schema: &apache_avro::Schema, body: &[u8]) -> (String, Seen) {
    #[allow(deprecated)]
    let value = apache_avro::from_avro_datum(schema, &mut &body[..], None).expect("decodes");
    let Value::Record(f) = value else {
        panic!("not a record")
    };
    let Value::Record(subject) = field(&f, "subject") else {
        panic!("subject")
    };
    let amount_fen = match field(&f, "amount_fen") {
        Value::Union(_, v) => match **v {
            Value::Long(x) => Some(x),
            _ => None,
        },
        _ => None,
    };
    let Value::Map(attrs) = field(&f, "attributes") else {
        panic!("attributes")
    };
    let Value::Array(cs) = field(&f, "corrections") else {
        panic!("corrections")
    };
    (
        string(field(&f, "record_id")).unwrap(),
        Seen {
            key: string(field(subject, "key")).unwrap(),
            person: string(field(subject, "type")).as_deref() == Some("NATURAL_PERSON"),
            name: string(field(subject, "name")).unwrap(),
            responsible_person: string(field(&f, "responsible_person")),
            amount_fen,
            attributes: attrs
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), string(v)?)))
                .collect(),
            corrections: cs.iter().filter_map(string).collect(),
        },
    )
}

/// Where each case landed: its inbound position and record id.
struct Published {
    /// record id (`dept:partition:offset`) → case index.
    by_id: HashMap<String, usize>,
}

async fn publish_cases(naming: &Naming, cases: &[Case], base: usize) -> Published {
    let p = producer();
    let mut futures = Vec::with_capacity(cases.len());
    for (i, c) in cases.iter().enumerate() {
        let topic = naming.inbound(c.department);
        let key = format!("case-{}", base + i);
        futures.push(
            p.send_result(FutureRecord::to(&topic).key(&key).payload(&c.value))
                .map_err(|(e, _)| e)
                .expect("queued"),
        );
    }
    let mut by_id = HashMap::new();
    for (i, f) in futures.into_iter().enumerate() {
        let d = f
            .await
            .unwrap()
            .map_err(|(e, _)| e)
            .expect("publish acknowledged");
        by_id.insert(
            format!("{}:{}:{}", cases[i].department, d.partition, d.offset),
            base + i,
        );
    }
    Published { by_id }
}

/// Scrapes a normaliser's /metrics: `(labels, value)` of every sample of `name`.
async fn scrape(port: u16, name: &str) -> Vec<(String, f64)> {
    let text = reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("scrape")
        .text()
        .await
        .unwrap();
    text.lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?.strip_prefix('{')?;
            let (labels, v) = rest.rsplit_once("} ")?;
            Some((labels.to_string(), v.parse().ok()?))
        })
        .collect()
}

fn label<'l>(labels: &'l str, key: &str) -> Option<&'l str> {
    let start = labels.find(&format!("{key}=\""))? + key.len() + 2;
    let end = labels[start..].find('"')?;
    Some(&labels[start..start + end])
}

struct Normalisers {
    ports: BTreeMap<&'static str, u16>,
    _procs: Vec<Proc>,
}

async fn start_normalisers(prefix: &str, registry: &str, depts: &[&'static str]) -> Normalisers {
    let mut procs = Vec::new();
    let mut ports = BTreeMap::new();
    for &dept in depts {
        let port = free_port();
        let log = std::fs::File::create(
            std::env::temp_dir().join(format!("correctness-normaliser-{dept}-{port}.log")),
        )
        .unwrap();
        let child = Command::new(bin("credit-normaliser"))
            .env(
                "CREDIT_BUS__TELEMETRY__OPS_LISTEN",
                format!("127.0.0.1:{port}"),
            )
            .env("CREDIT_BUS__KAFKA__BROKERS", brokers())
            .env("CREDIT_BUS__KAFKA__TOPIC_PREFIX", prefix)
            .env("CREDIT_BUS__REGISTRY__URL", registry)
            .env("CREDIT_BUS__NORMALISER__DEPARTMENT", dept)
            .env("CREDIT_BUS__NORMALISER__BATCH_SIZE", "500")
            .env("CREDIT_BUS__TELEMETRY__LOG_FILTER", "warn")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawning credit-normaliser");
        procs.push(Proc(child));
        ports.insert(dept, port);
    }
    let deadline = Instant::now() + Duration::from_secs(90);
    for (dept, port) in &ports {
        loop {
            let ok = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
                .await
                .is_ok_and(|r| r.status().is_success());
            if ok {
                break;
            }
            assert!(Instant::now() < deadline, "normaliser {dept} not ready");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Normalisers {
        ports,
        _procs: procs,
    }
}

/// Reads `topic` from the beginning until every id `want` names has arrived
/// (`id_of` gives a message's id), or the timeout.
fn read_ids(
    topic: &str,
    want: &HashSet<String>,
    id_of: impl Fn(&OwnedMessage) -> Option<String> + Copy,
) -> Vec<OwnedMessage> {
    consume_until(
        topic,
        Duration::from_secs(120),
        Duration::from_millis(300),
        |got| {
            let have: HashSet<String> = got.iter().filter_map(id_of).collect();
            want.is_subset(&have)
        },
    )
}

fn dead_letter_id(m: &OwnedMessage) -> Option<String> {
    let topic = header(m, dlq::TOPIC)?;
    let dept = topic.split('.').rev().nth(1)?;
    Some(format!(
        "{dept}:{}:{}",
        header(m, dlq::PARTITION)?,
        header(m, dlq::OFFSET)?
    ))
}

/// Checks every case of `cases[range]` against the records and dead letters;
/// returns the failures (each naming its case).
async fn check(
    naming: &Naming,
    registry: &str,
    cases: &[Case],
    published: &Published,
) -> Vec<String> {
    let mut failures = Vec::new();
    let accepted: HashSet<String> = published
        .by_id
        .iter()
        .filter(|(_, i)| matches!(cases[**i].want, Want::Accepted(_)))
        .map(|(id, _)| id.clone())
        .collect();
    let records = tokio::task::block_in_place(|| {
        read_ids(&naming.records(), &accepted, |m| {
            m.key()
                .and_then(|k| std::str::from_utf8(k).ok())
                .map(str::to_string)
        })
    });
    let http = reqwest::Client::new();
    let mut schemas: BTreeMap<u32, apache_avro::Schema> = BTreeMap::new();
    let mut seen: HashMap<String, Seen> = HashMap::new();
    for m in &records {
        let (id, body) = credit_schemas::wire::split(m.payload().unwrap()).unwrap();
        if let std::collections::btree_map::Entry::Vacant(slot) = schemas.entry(id) {
            let v: serde_json::Value = http
                .get(format!("{registry}/schemas/ids/{id}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            slot.insert(apache_avro::Schema::parse_str(v["schema"].as_str().unwrap()).unwrap());
        }
        let (record_id, s) = decode(&schemas[&id], body);
        assert_eq!(
            m.key().map(<[u8]>::to_vec),
            Some(record_id.clone().into_bytes()),
            "key is the record id"
        );
        if seen.insert(record_id.clone(), s).is_some() {
            failures.push(format!("{record_id}: normalised twice without a crash"));
        }
    }

    let mut dead: HashMap<String, OwnedMessage> = HashMap::new();
    let depts: HashSet<&str> = cases.iter().map(|c| c.department).collect();
    for dept in depts {
        let want: HashSet<String> = published
            .by_id
            .iter()
            .filter(|(_, i)| {
                cases[**i].department == dept && matches!(cases[**i].want, Want::Rejected { .. })
            })
            .map(|(id, _)| id.clone())
            .collect();
        let got =
            tokio::task::block_in_place(|| read_ids(&naming.dlq(dept), &want, dead_letter_id));
        for m in got {
            if let Some(id) = dead_letter_id(&m) {
                dead.insert(id, m);
            }
        }
    }

    for (id, &i) in &published.by_id {
        let c = &cases[i];
        let what = format!("{} [{id}]", c.name);
        match (&c.want, seen.get(id), dead.get(id)) {
            (Want::Accepted(a), Some(s), None) => {
                let mut wrong = Vec::new();
                if a.key.as_ref().is_some_and(|k| *k != s.key) {
                    wrong.push(format!("key {:?} (want {:?})", s.key, a.key));
                }
                if a.person.is_some_and(|p| p != s.person) {
                    wrong.push(format!("natural person {} (want {:?})", s.person, a.person));
                }
                if a.name.as_ref().is_some_and(|n| *n != s.name) {
                    wrong.push(format!("name {:?} (want {:?})", s.name, a.name));
                }
                if let Some(t) = &a.tax_authority
                    && s.attributes.get("tax_authority") != Some(t)
                {
                    wrong.push(format!(
                        "tax_authority {:?} (want {t:?})",
                        s.attributes.get("tax_authority")
                    ));
                }
                if a.amount_fen.is_some_and(|f| f != s.amount_fen) {
                    wrong.push(format!(
                        "amount_fen {:?} (want {:?})",
                        s.amount_fen, a.amount_fen
                    ));
                }
                if a.responsible_person
                    .as_ref()
                    .is_some_and(|r| *r != s.responsible_person)
                {
                    wrong.push(format!(
                        "responsible_person {:?} (want {:?})",
                        s.responsible_person, a.responsible_person
                    ));
                }
                if let Some(cs) = &a.corrections {
                    let mut want: Vec<&str> = cs.iter().map(|c| c.as_str()).collect();
                    let mut got: Vec<&str> = s.corrections.iter().map(String::as_str).collect();
                    want.sort();
                    got.sort();
                    if want != got {
                        wrong.push(format!("corrections {got:?} (want {want:?})"));
                    }
                }
                if !wrong.is_empty() {
                    failures.push(format!("{what}: {}", wrong.join("; ")));
                }
            }
            (Want::Rejected { reason, field }, None, Some(m)) => {
                let got_reason = header(m, dlq::REASON);
                let got_field = header(m, dlq::FIELD);
                if got_reason != Some(reason.as_str()) || got_field != field.as_deref() {
                    failures.push(format!(
                        "{what}: dead-lettered as {got_reason:?} field {got_field:?} (want {:?} field {field:?}; {:?})",
                        reason.as_str(),
                        header(m, dlq::EXCEPTION_MESSAGE)
                    ));
                }
                if m.payload() != Some(&c.value[..]) {
                    failures.push(format!("{what}: dead letter lost the original bytes"));
                }
                if header(m, dlq::TOPIC) != Some(naming.inbound(c.department).as_str()) {
                    failures.push(format!("{what}: dead letter names another topic"));
                }
            }
            (want, s, d) => failures.push(format!(
                "{what}: want {}, got {}",
                match want {
                    Want::Accepted(_) => "accepted".to_string(),
                    Want::Rejected { reason, .. } => format!("rejected as {}", reason.as_str()),
                },
                match (s, d) {
                    (Some(_), Some(_)) => "both a record and a dead letter".to_string(),
                    (Some(_), None) => "a record".to_string(),
                    (None, Some(m)) => format!(
                        "a dead letter {:?} field {:?}: {:?}",
                        header(m, dlq::REASON),
                        header(m, dlq::FIELD),
                        header(m, dlq::EXCEPTION_MESSAGE)
                    ),
                    (None, None) => "nothing within the timeout".to_string(),
                }
            )),
        }
    }
    failures
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn case_tables_through_the_broker() {
    let started = Instant::now();
    let prefix = unique("t-cases");
    let naming = Naming::new(&prefix);
    create_topics(&prefix).await;
    let registry = Registry::start(&unique("t-cases-schemas")).await;
    let depts: Vec<&'static str> = {
        let mut d: Vec<&'static str> = KEY_SLOTS
            .iter()
            .map(|s| s.department)
            .chain(AMOUNT_SLOTS.iter().map(|s| s.department))
            .collect();
        d.sort();
        d.dedup();
        d
    };
    let normalisers = start_normalisers(&prefix, &registry.url, &depts).await;

    // Phase 1: classes 2, 3 and 4.
    let (csv, want_columns) = csv_cases();
    let mut cases = csv;
    let n_csv = cases.len();
    let amounts = amount_cases();
    let n_amounts = amounts.len();
    cases.extend(amounts);
    let codes = code_cases();
    let n_codes = codes.len();
    cases.extend(codes);
    assert!(n_csv >= 30 && n_amounts >= 60 && n_codes >= 150);
    let published = publish_cases(&naming, &cases, 0).await;
    let mut failures = check(&naming, &registry.url, &cases, &published).await;

    // Unknown CSV columns: exactly what the accepted cases ignored.
    let got: BTreeMap<String, f64> = scrape(
        normalisers.ports["tax"],
        MetricName::CsvUnknownColumns.exported(),
    )
    .await
    .into_iter()
    .filter(|(l, _)| label(l, "department") == Some("tax"))
    .map(|(l, v)| (label(&l, "column").unwrap_or("?").to_string(), v))
    .collect();
    if got != want_columns {
        failures.push(format!(
            "class 2: {} by column {got:?}, want {want_columns:?}",
            MetricName::CsvUnknownColumns.exported()
        ));
    }
    let decisions = MetricName::GuardrailDecisions.exported();
    let mut before: BTreeMap<(String, String, String), f64> = BTreeMap::new();
    for dept in ["market", "courts"] {
        for (l, v) in scrape(normalisers.ports[dept], decisions).await {
            before.insert(
                (
                    dept.to_string(),
                    label(&l, "concept").unwrap_or("?").to_string(),
                    label(&l, "decision").unwrap_or("?").to_string(),
                ),
                v,
            );
        }
    }
    eprintln!(
        "phase 1: {} cases (tax CSV {n_csv}, amounts {n_amounts}, codes {n_codes}) in {:.1} s",
        cases.len(),
        started.elapsed().as_secs_f64()
    );

    // Phase 2: class 5, its decisions counted as the difference of two scrapes.
    let phase2 = Instant::now();
    let (guard, want_decisions) = guardrail_cases();
    let n_guard = guard.len();
    let base = cases.len();
    cases.extend(guard);
    let published = publish_cases(&naming, &cases[base..], base).await;
    failures.extend(check(&naming, &registry.url, &cases, &published).await);
    let mut got: Decisions = BTreeMap::new();
    for dept in ["market", "courts"] {
        for (l, v) in scrape(normalisers.ports[dept], decisions).await {
            let concept = label(&l, "concept").unwrap_or("?").to_string();
            let decision = label(&l, "decision").unwrap_or("?").to_string();
            let prior = before
                .get(&(dept.to_string(), concept.clone(), decision.clone()))
                .copied()
                .unwrap_or(0.0);
            let decision: &'static str = match decision.as_str() {
                "blocked" => "blocked",
                "exempt" => "exempt",
                "passed" => "passed",
                _ => "?",
            };
            if v > prior {
                got.insert((dept, concept, decision), v - prior);
            }
        }
    }
    if got != want_decisions {
        let keys: std::collections::BTreeSet<_> =
            got.keys().chain(want_decisions.keys()).cloned().collect();
        for k in keys {
            let (g, w) = (got.get(&k), want_decisions.get(&k));
            if g != w {
                failures.push(format!("class 5: {decisions} {k:?} = {g:?}, want {w:?}"));
            }
        }
    }
    eprintln!(
        "phase 2: {n_guard} guardrail cases in {:.1} s; total {} cases in {:.1} s",
        phase2.elapsed().as_secs_f64(),
        cases.len(),
        started.elapsed().as_secs_f64()
    );

    assert!(
        failures.is_empty(),
        "{} of {} cases wrong:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    drop(normalisers);
    registry.stop().await;
}
