//! Graceful shutdown: a request in flight is answered, new ones are not accepted.

use std::time::Duration;

use finmesh_e2e::Stack;
use finmesh_sandbox::{Faults, ZonkyConfig};
use serde_json::{Value, json};

#[tokio::test]
async fn shutdown_finishes_requests_in_flight() {
    let sandbox = ZonkyConfig {
        loans: 20,
        faults: Faults {
            latency_ms: 600,
            ..Faults::default()
        },
        ..ZonkyConfig::default()
    };
    let stack = Stack::zonky(sandbox, "").await;
    let url = stack.url();
    let request = stack
        .client()
        .post(format!("{url}/graphql"))
        .json(&json!({"query": "{ loans(first: 1) { edges { node { id } } } }"}));
    let in_flight = tokio::spawn(async move { request.send().await?.json::<Value>().await });
    tokio::time::sleep(Duration::from_millis(200)).await;

    stack.shutdown().await;
    let response = in_flight.await.unwrap().unwrap();
    assert!(response.get("errors").is_none(), "{response:#}");
    assert_eq!(
        response["data"]["loans"]["edges"].as_array().unwrap().len(),
        1
    );
    assert!(reqwest::get(format!("{url}/healthz")).await.is_err());
}
