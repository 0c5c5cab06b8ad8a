//! Resilience through GraphQL and HTTP: the circuit breaker keeps a dead
//! platform from slowing the others down and closes when it is back, reads
//! are retried on a 503 while a money-moving POST is never sent twice, and
//! callers over the inbound rate limit get 429 without hurting anyone else.

use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use finmesh_e2e::{SIGNING_SECRET, Stack, error_extensions, token};
use finmesh_sandbox::bongloy::defaults::ACTIVE_DESTINATION;
use finmesh_sandbox::{FaultKind, Faults, Outcome, ZonkyConfig};
use finmesh_server::commands::Demo;
use serde_json::{Value, json};

/// Loans with a term of at most `lte` months; every test query uses its own
/// bound, so no answer comes from the response cache.
const LOANS: &str = "query($lte: Int!, $providers: [String!]) {
    loans(first: 5, filter: {termMonths: {lte: $lte}}, providers: $providers) {
        edges { node { id provider } } } }";
const HEALTH: &str = "{ providers { id health { status circuit lastError { code } } } }";

fn small(seed: u64) -> ZonkyConfig {
    ZonkyConfig {
        seed,
        loans: 60,
        ..ZonkyConfig::default()
    }
}

async fn timed(stack: &Stack, lte: u32, providers: Option<&[&str]>) -> (Value, Duration) {
    let started = Instant::now();
    let response = stack
        .graphql(LOANS, json!({"lte": lte, "providers": providers}))
        .await;
    (response, started.elapsed())
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn circuit(health: &Value, provider: &str) -> String {
    health["data"]["providers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == provider)
        .map(|p| p["health"]["circuit"].as_str().unwrap().to_string())
        .unwrap()
}

/// Two Zonky accounts stand in for "Zonky and Bondora" (the Bondora simulator
/// needs OAuth tokens, which would add nothing here): `down` points at a
/// closed port, `healthy` answers after 300 ms.
#[tokio::test]
async fn with_a_platform_down_the_others_answer_at_their_own_speed_once_its_circuit_is_open() {
    let closed = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let healthy = ZonkyConfig {
        faults: Faults {
            latency_ms: 300,
            ..Faults::default()
        },
        ..small(2)
    };
    let stack = Stack::start(
        vec![("down", small(1)), ("healthy", healthy)],
        &format!(
            r#"
            [providers.down]
            base_url = "http://{closed}"

            [resilience]
            breaker_failure_threshold = 3
            breaker_open_ms = 60000
            "#
        ),
    )
    .await;

    let mut alone = Vec::new();
    for lte in 10..13 {
        let (response, took) = timed(&stack, lte, Some(&["healthy"])).await;
        assert!(response.get("errors").is_none(), "{response:#}");
        alone.push(took);
    }
    // The first query finds `down` refusing connections (three attempts): its circuit opens.
    let (response, _) = timed(&stack, 20, None).await;
    assert_eq!(
        error_extensions(&response)[0]["provider"],
        "down",
        "{response:#}"
    );
    assert_eq!(
        circuit(&stack.graphql(HEALTH, Value::Null).await, "down"),
        "OPEN"
    );

    let mut both = Vec::new();
    for lte in 30..33 {
        let (response, took) = timed(&stack, lte, None).await;
        let edges = response["data"]["loans"]["edges"].as_array().unwrap();
        assert_eq!(edges.len(), 5, "{response:#}");
        assert!(edges.iter().all(|e| e["node"]["provider"] == "healthy"));
        let errors = error_extensions(&response);
        assert_eq!(errors.len(), 1, "{response:#}");
        assert_eq!(errors[0]["provider"], "down");
        assert_eq!(errors[0]["code"], "UPSTREAM_UNAVAILABLE");
        let message = response["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains("circuit open"), "{message}");
        assert!(errors[0]["retryAfter"].as_u64().unwrap() > 50);
        both.push(took);
    }
    let (alone, both) = (median(alone), median(both));
    eprintln!("healthy alone: {alone:?}; with the open circuit of down: {both:?}");
    assert!(
        both <= alone + Duration::from_millis(100),
        "{both:?} with the dead platform, {alone:?} without"
    );

    let health = stack.graphql(HEALTH, Value::Null).await;
    assert_eq!(circuit(&health, "down"), "OPEN");
    assert_eq!(circuit(&health, "healthy"), "CLOSED");
    assert_eq!(health["data"]["providers"][0]["health"]["status"], "DOWN");
    stack.shutdown().await;
}

#[tokio::test]
async fn an_open_circuit_probes_and_closes_when_the_platform_is_back() {
    let stack = Stack::zonky(
        small(3),
        "[resilience]\nbreaker_failure_threshold = 2\nbreaker_open_ms = 500\nretry_max_attempts = 1\n",
    )
    .await;
    let zonky = stack.sandbox("zonky");
    zonky.set_faults(Faults {
        error_rate: 1.0,
        error_status: 503,
        ..Faults::default()
    });
    for lte in [10, 11] {
        let response = stack.graphql(LOANS, json!({"lte": lte})).await;
        assert_eq!(
            error_extensions(&response)[0]["code"],
            "UPSTREAM_UNAVAILABLE"
        );
    }
    assert_eq!(
        circuit(&stack.graphql(HEALTH, Value::Null).await, "zonky"),
        "OPEN"
    );
    let sent = zonky.stats().faulted;
    let response = stack.graphql(LOANS, json!({"lte": 12})).await;
    assert!(
        response["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("circuit open")
    );
    assert_eq!(zonky.stats().faulted, sent, "nothing sent while open");

    zonky.set_faults(Faults::default());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        circuit(&stack.graphql(HEALTH, Value::Null).await, "zonky"),
        "HALF_OPEN"
    );
    let response = stack.graphql(LOANS, json!({"lte": 13})).await;
    assert!(
        response.get("errors").is_none(),
        "the probe goes through: {response:#}"
    );
    let health = stack.graphql(HEALTH, Value::Null).await;
    assert_eq!(circuit(&health, "zonky"), "CLOSED");
    assert_eq!(health["data"]["providers"][0]["health"]["status"], "UP");
    stack.shutdown().await;
}

#[tokio::test]
async fn a_read_answered_503_is_retried_and_answered() {
    let stack = Stack::zonky(small(4), "").await;
    let zonky = stack.sandbox("zonky");
    zonky.set_faults(Faults {
        next: vec![FaultKind::ServerError { status: 503 }],
        ..Faults::default()
    });
    let response = stack.graphql(LOANS, json!({"lte": 40})).await;
    assert!(response.get("errors").is_none(), "{response:#}");
    assert_eq!(
        response["data"]["loans"]["edges"].as_array().unwrap().len(),
        5
    );
    let attempts: Vec<(Option<u16>, Outcome)> = zonky
        .requests()
        .iter()
        .filter(|r| r.path == "/loans/marketplace")
        .map(|r| (r.status, r.outcome))
        .collect();
    assert_eq!(
        attempts,
        [(Some(503), Outcome::Faulted), (Some(200), Outcome::Served)]
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn a_transfer_whose_create_answered_503_is_never_sent_again() {
    let demo = Demo::start(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap())
        .await
        .unwrap();
    let bongloy = &demo.sandboxes.bongloy;
    // The platform creates the transfer, then answers 503: resending the POST
    // would create a second one.
    bongloy.set_faults(Faults {
        next: vec![FaultKind::CommitThenError { status: 503 }],
        ..Faults::default()
    });
    let response: Value = reqwest::Client::new()
        .post(format!("{}/graphql", demo.gateway.url()))
        .bearer_auth(demo.token("alice").unwrap())
        .json(&json!({
            "query": "mutation($input: CreateTransferInput!) { createTransfer(input: $input, idempotencyKey: \"retry-503\") { id status } }",
            "variables": {"input": {"provider": "bongloy", "amount": {"amount": "12.00", "currency": "USD"},
                                    "destinationAccount": ACTIVE_DESTINATION, "metadata": {"order": "R-503"}}},
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // The ambiguous outcome was reconciled (a read), not retried.
    assert_eq!(
        response["data"]["createTransfer"]["status"], "PENDING",
        "{response:#}"
    );
    let posts = bongloy
        .requests()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/transfers"))
        .count();
    assert_eq!(posts, 1);
    let created = bongloy
        .transfers()
        .into_iter()
        .filter(|t| t["attributes"]["metadata"]["order"] == "R-503")
        .count();
    assert_eq!(created, 1);
    demo.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_caller_over_the_rate_limit_gets_429_while_others_are_served() {
    let stack = Stack::zonky(
        small(5),
        &format!(
            "[server]\nrate_limit_per_second = 1\nrate_limit_burst = 3\n[auth]\nhs256_secret = \"{SIGNING_SECRET}\"\n"
        ),
    )
    .await;
    let url = format!("{}/graphql", stack.url());
    let ask = |client: &reqwest::Client, token: Option<&str>| {
        let mut request = client
            .post(&url)
            .json(&json!({"query": "{ providers { id } }"}));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send()
    };
    let anonymous = stack.client();
    for _ in 0..3 {
        assert_eq!(ask(anonymous, None).await.unwrap().status(), 200);
    }
    let refused = ask(anonymous, None).await.unwrap();
    assert_eq!(refused.status(), 429);
    assert_eq!(refused.headers()["retry-after"], "1");
    let body: Value = refused.json().await.unwrap();
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "RATE_LIMITED",
        "{body:#}"
    );
    assert_eq!(body["errors"][0]["extensions"]["retryAfter"], 1);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("at most 1 a second")
    );

    // A signed-in principal has a budget of its own, even from the same address.
    let alice = token("alice");
    for _ in 0..3 {
        assert_eq!(ask(anonymous, Some(&alice)).await.unwrap().status(), 200);
    }
    assert_eq!(ask(anonymous, Some(&alice)).await.unwrap().status(), 429);
    // So has an anonymous caller from another address.
    let elsewhere = reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))
        .build()
        .unwrap();
    assert_eq!(ask(&elsewhere, None).await.unwrap().status(), 200);
    // A made-up token is no way around the limit: it counts as its address.
    assert_eq!(
        ask(anonymous, Some("not-a-token")).await.unwrap().status(),
        429
    );

    // The budget refills: one more a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(ask(anonymous, None).await.unwrap().status(), 200);
    stack.shutdown().await;
}
