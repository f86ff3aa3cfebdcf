//! The schema registry over HTTP, as Confluent clients call it, against the real
//! broker: register, fetch by id, compatible and incompatible evolution,
//! config, and state that survives a registry restart.

use credit_bus_tests::*;
use serde_json::{Value, json};

const V1: &str = r#"{"type":"record","name":"Entry","namespace":"t","fields":[{"name":"uscc","type":"string"}]}"#;
const V2: &str = r#"{"type":"record","name":"Entry","namespace":"t","fields":[{"name":"uscc","type":"string"},{"name":"grade","type":["null","string"],"default":null}]}"#;
const BREAKING: &str = r#"{"type":"record","name":"Entry","namespace":"t","fields":[{"name":"uscc","type":"string"},{"name":"score","type":"int"}]}"#;
const CT: &str = "application/vnd.schemaregistry.v1+json";

async fn call(method: reqwest::Method, url: String, body: Option<Value>) -> (u16, Value) {
    let mut req = reqwest::Client::new()
        .request(method, url)
        .header("Accept", CT);
    if let Some(b) = body {
        req = req.header("Content-Type", CT).body(b.to_string());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    assert_eq!(resp.headers()["content-type"], CT);
    (status, resp.json().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_evolve_refuse_and_survive_a_restart() {
    use reqwest::Method;
    let store = unique("t-registry");
    let r = Registry::start(&store).await;
    let s = "credit.t-value";

    let (st, v) = call(
        Method::POST,
        format!("{}/subjects/{s}/versions", r.url),
        Some(json!({"schema": V1})),
    )
    .await;
    assert_eq!(st, 200);
    let id1 = v["id"].as_u64().unwrap();
    // Registering the same schema again is idempotent.
    let (_, v) = call(
        Method::POST,
        format!("{}/subjects/{s}/versions", r.url),
        Some(json!({"schema": V1})),
    )
    .await;
    assert_eq!(v["id"].as_u64(), Some(id1));
    let (st, v) = call(Method::GET, format!("{}/schemas/ids/{id1}", r.url), None).await;
    assert_eq!(st, 200);
    assert_eq!(
        apache_avro::Schema::parse_str(v["schema"].as_str().unwrap()).unwrap(),
        apache_avro::Schema::parse_str(V1).unwrap()
    );

    // Compatible evolution: a new optional field.
    let (_, v) = call(
        Method::POST,
        format!("{}/compatibility/subjects/{s}/versions/latest", r.url),
        Some(json!({"schema": V2})),
    )
    .await;
    assert_eq!(v["is_compatible"], true);
    let (st, v) = call(
        Method::POST,
        format!("{}/subjects/{s}/versions", r.url),
        Some(json!({"schema": V2})),
    )
    .await;
    assert_eq!(st, 200);
    let id2 = v["id"].as_u64().unwrap();
    assert_ne!(id1, id2);

    // Incompatible under the default BACKWARD: a new required field.
    let (_, v) = call(
        Method::POST,
        format!("{}/compatibility/subjects/{s}/versions/latest", r.url),
        Some(json!({"schema": BREAKING})),
    )
    .await;
    assert_eq!(v["is_compatible"], false);
    let (st, v) = call(
        Method::POST,
        format!("{}/subjects/{s}/versions", r.url),
        Some(json!({"schema": BREAKING})),
    )
    .await;
    assert_eq!((st, v["error_code"].as_u64()), (409, Some(409)));
    let (_, v) = call(Method::GET, format!("{}/config", r.url), None).await;
    assert_eq!(v["compatibilityLevel"], "BACKWARD");
    let (st, v) = call(
        Method::PUT,
        format!("{}/config/{s}", r.url),
        Some(json!({"compatibility": "NONE"})),
    )
    .await;
    assert_eq!((st, v["compatibility"].as_str()), (200, Some("NONE")));
    let (st, _) = call(
        Method::POST,
        format!("{}/subjects/{s}/versions", r.url),
        Some(json!({"schema": BREAKING})),
    )
    .await;
    assert_eq!(st, 200, "NONE accepts anything");
    let (st, v) = call(Method::GET, format!("{}/schemas/ids/9999", r.url), None).await;
    assert_eq!((st, v["error_code"].as_u64()), (404, Some(40403)));
    let (st, v) = call(
        Method::POST,
        format!("{}/subjects/{s}/versions", r.url),
        Some(json!({"schema": "{\"type\":\"nope\"}"})),
    )
    .await;
    assert_eq!((st, v["error_code"].as_u64()), (422, Some(42201)));

    // Restart on the same topic: everything is still there and ids keep counting.
    r.stop().await;
    let r = Registry::start(&store).await;
    let (_, v) = call(Method::GET, format!("{}/subjects", r.url), None).await;
    assert_eq!(v, json!([s]));
    let (_, v) = call(
        Method::GET,
        format!("{}/subjects/{s}/versions", r.url),
        None,
    )
    .await;
    assert_eq!(v, json!([1, 2, 3]));
    let (_, v) = call(
        Method::GET,
        format!("{}/subjects/{s}/versions/latest", r.url),
        None,
    )
    .await;
    assert_eq!(v["version"], 3);
    let (_, v) = call(Method::GET, format!("{}/schemas/ids/{id2}", r.url), None).await;
    assert!(v["schema"].as_str().unwrap().contains("grade"));
    let (_, v) = call(Method::GET, format!("{}/config/{s}", r.url), None).await;
    assert_eq!(v["compatibilityLevel"], "NONE");
    let (_, v) = call(
        Method::POST,
        format!("{}/subjects/{s}", r.url),
        Some(json!({"schema": V2})),
    )
    .await;
    assert_eq!(
        (v["version"].as_u64(), v["id"].as_u64()),
        (Some(2), Some(id2))
    );
    let other = r#"{"type":"record","name":"Other","fields":[{"name":"x","type":"long"}]}"#;
    let (_, v) = call(
        Method::POST,
        format!("{}/subjects/other-value/versions", r.url),
        Some(json!({"schema": other})),
    )
    .await;
    assert!(
        v["id"].as_u64().unwrap() > id2,
        "ids are never reused after a restart"
    );
    r.stop().await;
}
