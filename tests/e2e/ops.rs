//! Operations over HTTP: request ids, `/readyz` (store, shutdown), `/metrics`
//! after a run through the demo, and `/status(.json)`.

use std::collections::BTreeMap;
use std::time::Duration;

use finmesh_e2e::Stack;
use finmesh_sandbox::bongloy::defaults::ACTIVE_DESTINATION;
use finmesh_sandbox::{FaultKind, Faults, ZonkyConfig};
use finmesh_server::commands::Demo;
use finmesh_store::testing::test_databases;
use finmesh_throttle_redis::testing::{redis_url, unique_prefix};
use serde_json::{Value, json};
use tokio::net::TcpListener;

fn small() -> ZonkyConfig {
    ZonkyConfig {
        loans: 30,
        ..ZonkyConfig::default()
    }
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let stack = Stack::zonky(small(), "").await;
    let client = stack.client();
    let given = client
        .get(format!("{}/healthz", stack.url()))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(given.headers()["x-request-id"], "trace-me-42");

    let made = client
        .post(format!("{}/graphql", stack.url()))
        .json(&json!({"query": "{ loans(first: 1) { edges { node { id } } } }"}))
        .send()
        .await
        .unwrap();
    let id = made.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let other = client
        .get(format!("{}/healthz", stack.url()))
        .send()
        .await
        .unwrap();
    assert_ne!(other.headers()["x-request-id"].to_str().unwrap(), id);
    stack.shutdown().await;
}

#[tokio::test]
async fn readiness_checks_the_store_and_lists_the_providers() {
    for database in test_databases().await {
        let stack = Stack::with_identity(small(), &database.url, "").await;
        let response = reqwest::get(format!("{}/readyz", stack.url()))
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{}", database.label);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["status"], "ready", "{} {body}", database.label);
        assert_eq!(
            body["checks"],
            json!([{"name": "store", "ok": true, "critical": true}])
        );
        assert_eq!(body["providers"][0]["id"], "zonky");
        assert_eq!(body["providers"][0]["health"], "unknown");
        assert_eq!(body["providers"][0]["circuit"], "closed");
        stack.shutdown().await;
    }
}

async fn readyz(stack: &Stack) -> (u16, Value) {
    let response = reqwest::get(format!("{}/readyz", stack.url()))
        .await
        .unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

#[tokio::test]
async fn readiness_reports_the_shared_throttles_redis_without_failing_on_it() {
    let Some(redis) = redis_url().await else {
        return;
    };
    let shared = |url: &str| {
        format!(
            "[throttle]\nbackend = \"redis\"\nredis_url = \"{url}\"\nredis_key_prefix = \"{}\"\n",
            unique_prefix()
        )
    };
    let stack = Stack::zonky(small(), &shared(&redis)).await;
    stack
        .graphql("{ loans(first: 1) { edges { node { id } } } }", Value::Null)
        .await;
    let (status, body) = readyz(&stack).await;
    assert_eq!((status, &body["status"]), (200, &json!("ready")), "{body}");
    assert_eq!(
        body["checks"],
        json!([{"name": "redis", "ok": true, "critical": false}])
    );
    stack.shutdown().await;

    // Nothing listens on port 1: the throttle falls back to a local share
    // (after a short blackout, answering RATE_LIMITED meanwhile) and the
    // gateway keeps answering, so it stays in rotation, degraded.
    let stack = Stack::zonky(small(), &shared("redis://127.0.0.1:1")).await;
    let answer = stack
        .graphql("{ loans(first: 1) { edges { node { id } } } }", Value::Null)
        .await;
    assert!(answer["data"]["loans"].is_object(), "{answer}");
    let (status, body) = readyz(&stack).await;
    assert_eq!(
        (status, &body["status"]),
        (200, &json!("degraded")),
        "{body}"
    );
    assert_eq!(body["checks"][0]["name"], "redis");
    assert_eq!(body["checks"][0]["ok"], false);
    assert!(
        !body.to_string().contains("127.0.0.1:1"),
        "no connection string in the body: {body}"
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn on_shutdown_readiness_fails_first_while_requests_are_still_served() {
    let stack = Stack::zonky(small(), "[server]\nshutdown_delay_ms = 1500\n").await;
    let url = stack.url();
    let ready = reqwest::get(format!("{url}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);

    let stopping = tokio::spawn(stack.shutdown());
    let mut not_ready = None;
    for _ in 0..50 {
        let response = reqwest::get(format!("{url}/readyz")).await.unwrap();
        if response.status() == 503 {
            not_ready = Some(response.json::<Value>().await.unwrap());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let not_ready = not_ready.expect("/readyz never failed during the shutdown delay");
    assert_eq!(not_ready["status"], "shutting down");
    // Still serving during the delay: load balancers are moving traffic away.
    let answer: Value = reqwest::Client::new()
        .post(format!("{url}/graphql"))
        .json(&json!({"query": "{ loans(first: 1) { edges { node { id } } } }"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(answer.get("errors").is_none(), "{answer}");
    let status: Value = reqwest::get(format!("{url}/status.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["shuttingDown"], true);

    stopping.await.unwrap();
    assert!(reqwest::get(format!("{url}/healthz")).await.is_err());
}

/// One sample value per series of a Prometheus text page.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// The largest value among the series of `family` whose labels contain every
/// one of `labels` (`key="value"`).
fn largest(samples: &BTreeMap<String, f64>, family: &str, labels: &[&str]) -> f64 {
    samples
        .iter()
        .filter(|(series, _)| {
            series.starts_with(family)
                && series[family.len()..].starts_with(['{', ' '])
                && labels.iter().all(|label| series.contains(label))
        })
        .map(|(_, value)| *value)
        .fold(0.0, f64::max)
}

#[tokio::test]
async fn after_a_run_metrics_hold_every_family_the_run_exercised() {
    let demo = Demo::start(TcpListener::bind("127.0.0.1:0").await.unwrap())
        .await
        .unwrap();
    let url = demo.gateway.url();
    let client = reqwest::Client::new();
    let graphql = |query: &str, variables: Value, token: Option<String>| {
        let mut request = client
            .post(format!("{url}/graphql"))
            .json(&json!({"query": query, "variables": variables}));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };

    // Marketplace reads: GraphQL, upstream requests, throttle waits; the
    // same query again is answered from the cache.
    for _ in 0..2 {
        let loans = graphql(
            "query MetricsLoans { loans(first: 5) { edges { node { id } } } }",
            Value::Null,
            None,
        )
        .await;
        assert!(loans.get("errors").is_none(), "{loans}");
    }
    // One 429 from Zonky, retried after its Retry-After.
    demo.sandboxes.zonky.set_faults(Faults {
        next: vec![FaultKind::RateLimited {
            retry_after_secs: 0,
        }],
        ..Faults::default()
    });
    let retried = graphql(
        "query MetricsRetried { loans(first: 5, providers: [\"zonky\"]) { edges { node { id } } } }",
        Value::Null,
        None,
    )
    .await;
    assert!(retried.get("errors").is_none(), "{retried}");
    // A query answered in part (the loan is null, with its error), and
    // one that fails validation, named by the request's `operationName`.
    let missing = graphql(
        "query MetricsMissing { loan(id: \"zonky:loan:999999999\") { id } }",
        Value::Null,
        None,
    )
    .await;
    assert!(missing.get("errors").is_some(), "{missing}");
    let invalid: Value = client
        .post(format!("{url}/graphql"))
        .json(&json!({"query": "query MetricsInvalid { nope }", "operationName": "MetricsInvalid"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(invalid["data"].is_null(), "{invalid}");
    // A transfer.
    let created = graphql(
        "mutation MetricsTransfer($input: CreateTransferInput!) { createTransfer(input: $input, idempotencyKey: \"metrics-1\") { id status } }",
        json!({"input": {"provider": "bongloy", "amount": {"amount": "12.00", "currency": "USD"},
                          "destinationAccount": ACTIVE_DESTINATION}}),
        Some(demo.token("metrics-user").unwrap()),
    )
    .await;
    assert_eq!(
        created["data"]["createTransfer"]["status"], "PENDING",
        "{created}"
    );

    let response = client.get(format!("{url}/metrics")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    let text = response.text().await.unwrap();
    let samples = samples(&text);
    let expect = [
        (
            "finmesh_graphql_requests_total",
            vec![r#"operation="MetricsLoans""#, r#"outcome="ok""#],
        ),
        (
            "finmesh_graphql_requests_total",
            vec![r#"operation="MetricsMissing""#, r#"outcome="partial""#],
        ),
        (
            "finmesh_graphql_requests_total",
            vec![r#"operation="MetricsInvalid""#, r#"outcome="error""#],
        ),
        (
            "finmesh_graphql_request_duration_seconds_count",
            vec![r#"operation="MetricsLoans""#],
        ),
        (
            "finmesh_upstream_requests_total",
            vec![r#"provider="zonky""#, r#"status="200""#],
        ),
        (
            "finmesh_upstream_requests_total",
            vec![r#"provider="zonky""#, r#"status="429""#],
        ),
        (
            "finmesh_upstream_request_duration_seconds_bucket",
            vec![r#"provider="zonky""#, r#"le="+Inf""#],
        ),
        (
            "finmesh_upstream_rate_limited_total",
            vec![r#"provider="zonky""#],
        ),
        (
            "finmesh_throttle_wait_seconds_count",
            vec![r#"provider="zonky""#],
        ),
        ("finmesh_throttle_budget_burst", vec![r#"provider="zonky""#]),
        // Zonky's bucket was emptied by the 429; Bongloy's has tokens left.
        (
            "finmesh_throttle_budget_remaining",
            vec![r#"provider="bongloy""#],
        ),
        ("finmesh_cache_hits_total", vec![]),
        ("finmesh_cache_misses_total", vec![]),
        (
            "finmesh_transfers_total",
            vec![
                r#"provider="bongloy""#,
                r#"operation="create""#,
                r#"outcome="ok""#,
            ],
        ),
    ];
    for (family, labels) in expect {
        assert!(
            largest(&samples, family, &labels) > 0.0,
            "no non-zero {family} with {labels:?} in:\n{text}"
        );
    }
    for (family, kind) in [
        ("finmesh_graphql_requests_total", "counter"),
        ("finmesh_upstream_request_duration_seconds", "histogram"),
        ("finmesh_throttle_budget_remaining", "gauge"),
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} {kind}")),
            "{family} is not a {kind}"
        );
    }
    assert!(!text.contains("metrics-user"), "no principal in any label");
    demo.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_status_json_lists_every_provider_with_its_budget_and_traffic() {
    let stack = Stack::start(vec![("alpha", small()), ("beta", small())], "").await;
    let answer = stack
        .graphql("{ loans(first: 3) { edges { node { id } } } }", Value::Null)
        .await;
    assert!(answer.get("errors").is_none(), "{answer}");
    let status: Value = reqwest::get(format!("{}/status.json", stack.url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let providers = status["providers"].as_array().unwrap();
    let ids: Vec<&str> = providers
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["alpha", "beta"]);
    for provider in providers {
        assert_eq!(provider["health"], "up", "{provider}");
        assert!(provider["recent"]["requests"].as_u64().unwrap() >= 1);
        let budget = &provider["budgets"][0];
        assert!(budget["burst"].as_u64().unwrap() >= budget["remaining"].as_u64().unwrap());
        let history = provider["history"].as_array().unwrap();
        assert!(!history.is_empty());
    }
    let page = reqwest::get(format!("{}/status", stack.url()))
        .await
        .unwrap();
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"data-provider="alpha""#) && html.contains(r#"data-provider="beta""#));
    assert!(html.contains(r#"http-equiv="refresh""#));
    stack.shutdown().await;
}
