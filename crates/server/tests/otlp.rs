//! Trace export: with `[otlp] enabled`, a GraphQL request's spans (the HTTP
//! request with its id, the GraphQL operation, the provider of the fan-out
//! and the upstream call) reach an OTLP/HTTP collector as protobuf. Its own
//! test binary: it installs the process's global subscriber.

#![cfg(feature = "otlp")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::http::HeaderMap;
use axum::routing::post;
use figment::Figment;
use figment::providers::{Format, Toml};
use finmesh_sandbox::{ZonkyConfig, ZonkySandbox};
use finmesh_server::config::Config;

type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A collector that keeps every export request's content type and body.
async fn collector() -> (String, Received) {
    let received: Received = Arc::default();
    let keep = received.clone();
    let app = Router::new().route(
        "/v1/traces",
        post(move |headers: HeaderMap, body: Bytes| {
            let keep = keep.clone();
            async move {
                let content_type = headers
                    .get("content-type")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                keep.lock().unwrap().push((content_type, body.to_vec()));
                ""
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .unwrap();
    let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_of_a_graphql_request_reach_the_collector() {
    let (endpoint, received) = collector().await;
    let sandbox = ZonkySandbox::new(ZonkyConfig {
        loans: 20,
        ..ZonkyConfig::default()
    })
    .spawn(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
    .await
    .unwrap();
    let figment = Figment::from(Toml::string(&format!(
        r#"
        [server]
        listen = "127.0.0.1:0"
        [otlp]
        enabled = true
        endpoint = "{endpoint}"
        [providers.zonky]
        kind = "zonky"
        base_url = "{}"
        "#,
        sandbox.base_url()
    )));
    let config = Config::from_figment(&figment, &finmesh_server::factories()).unwrap();
    let guard = finmesh_server::telemetry::init(&config.log, &config.otlp).unwrap();
    let gateway = finmesh_server::start(config).await.unwrap();

    let response = reqwest::Client::new()
        .post(format!("{}/graphql", gateway.url()))
        .header("x-request-id", "otlp-test-request")
        .json(&serde_json::json!({"query": "query Traced { loans(first: 2) { edges { node { id } } } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    gateway.shutdown().await.unwrap();
    // Dropping the guard flushes the batch (on a thread of its own).
    tokio::task::spawn_blocking(move || drop(guard))
        .await
        .unwrap();

    let received = received.lock().unwrap().clone();
    assert!(!received.is_empty(), "nothing was exported");
    assert!(
        received
            .iter()
            .all(|(content_type, _)| content_type == "application/x-protobuf"),
        "OTLP/HTTP with protobuf bodies"
    );
    let all: Vec<u8> = received.iter().flat_map(|(_, body)| body.clone()).collect();
    for expected in [
        "finmesh",
        "http_request",
        "otlp-test-request",
        "graphql",
        "Traced",
        "provider_call",
        "upstream_request",
        "/loans/marketplace",
    ] {
        assert!(
            contains(&all, expected),
            "`{expected}` not in the exported spans"
        );
    }
    sandbox.shutdown().await.unwrap();
}
