//! Security hardening over real HTTP: every GraphQL limit crossed answers its
//! code, persisted queries (automatic and allow-list) as Apollo clients send
//! them, body size and slow-client timeouts, CORS, security headers and
//! `no-store`, and what `serve` and `demo` show by default.

use std::io::Write;
use std::time::{Duration, Instant};

use finmesh_e2e::{Stack, error_extensions, graphql_at};
use finmesh_graphql::persisted::sha256;
use finmesh_sandbox::ZonkyConfig;
use finmesh_server::commands::Demo;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn small() -> ZonkyConfig {
    ZonkyConfig {
        loans: 60,
        ..ZonkyConfig::default()
    }
}

/// `p0: providers { id } p1: …`: `n` root fields.
fn root_fields(n: usize) -> String {
    let fields: Vec<String> = (0..n)
        .map(|i| format!("p{i}: providers {{ id }}"))
        .collect();
    format!("{{ {} }}", fields.join(" "))
}

/// Introspection types nest without end: `levels` + 4 fields deep.
fn nested(levels: usize) -> String {
    format!(
        "{{ __type(name: \"Query\") {{ fields {{ type {{ {} name {} }} }} }} }}",
        "ofType {".repeat(levels),
        "}".repeat(levels)
    )
}

async fn post(stack: &Stack, body: Value) -> (StatusCode, Value) {
    let response = stack
        .client()
        .post(format!("{}/graphql", stack.url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    (
        response.status(),
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn every_graphql_limit_crossed_answers_its_code_and_the_gateway_keeps_serving() {
    let stack = Stack::zonky(small(), "").await;
    let upstream = || -> u64 { stack.sandbox("zonky").stats().by_endpoint.values().sum() };
    let before = upstream();
    let aliases: Vec<String> = (0..21).map(|i| format!("a{i}: id")).collect();
    let page =
        "secondaryMarket(first: 100) { edges { node { id loan { id name story rating } } } }";
    let pages: Vec<String> = (0..5).map(|i| format!("m{i}: {page}")).collect();
    let cases = [
        (nested(13), "QUERY_TOO_DEEP", Some(16)),
        (
            format!("{{ {} }}", pages.join(" ")),
            "QUERY_TOO_COMPLEX",
            Some(5000),
        ),
        (
            format!("{{ providers {{ {} }} }}", aliases.join(" ")),
            "TOO_MANY_ALIASES",
            Some(20),
        ),
        (root_fields(11), "TOO_MANY_ROOT_FIELDS", Some(10)),
        (
            "{ __schema { types { name } } }".to_string(),
            "INTROSPECTION_DISABLED",
            None,
        ),
    ];
    for (query, code, limit) in &cases {
        let response = stack.graphql(query, Value::Null).await;
        let errors = error_extensions(&response);
        assert_eq!(errors.len(), 1, "{code}: {response}");
        assert_eq!(errors[0]["code"], *code, "{response}");
        if let Some(limit) = limit {
            assert_eq!(errors[0]["limit"], *limit, "{response}");
        }
        assert!(response["data"].is_null(), "{response}");
    }
    // Nothing reached the platform for the refused queries.
    assert_eq!(upstream(), before);

    // A batch larger than `max_batch_size` (10) is refused whole.
    let batch: Vec<Value> = (0..11)
        .map(|_| json!({"query": "{ __typename }"}))
        .collect();
    let (status, body) = post(&stack, Value::Array(batch)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errors"][0]["extensions"]["code"], "BATCH_TOO_LARGE");
    // Up to the limit, each request of the batch runs.
    let batch: Vec<Value> = (0..10)
        .map(|n| json!({"query": "query($n: Int) { loans(first: $n) { edges { node { id } } } }", "variables": {"n": n + 1}}))
        .collect();
    let (status, body) = post(&stack, Value::Array(batch)).await;
    assert_eq!(status, StatusCode::OK);
    let sizes: Vec<usize> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["data"]["loans"]["edges"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, (1..=10).collect::<Vec<_>>());

    let ok = stack.graphql(&root_fields(10), Value::Null).await;
    assert!(ok["errors"].is_null(), "{ok}");
    stack.shutdown().await;
}

#[tokio::test]
async fn the_limits_follow_the_configuration() {
    let stack = Stack::zonky(
        small(),
        "[graphql]\nmax_depth = 3\nmax_complexity = 50\nmax_aliases = 1\nmax_root_fields = 2\nmax_batch_size = 2\nintrospection = true\n",
    )
    .await;
    let cases = [
        (
            "{ providers { capabilities { loans { filters } } } }",
            "QUERY_TOO_DEEP",
        ),
        ("{ loans(first: 50) { totalCount } }", "QUERY_TOO_COMPLEX"),
        ("{ providers { a: id b: id } }", "TOO_MANY_ALIASES"),
        (
            "{ a: __typename providers { id } loans(first: 1) { totalCount } }",
            "TOO_MANY_ROOT_FIELDS",
        ),
    ];
    for (query, code) in cases {
        let response = stack.graphql(query, Value::Null).await;
        assert_eq!(
            error_extensions(&response)[0]["code"],
            code,
            "{query}: {response}"
        );
    }
    let introspection = stack
        .graphql("{ __schema { queryType { name } } }", Value::Null)
        .await;
    assert_eq!(
        introspection["data"]["__schema"]["queryType"]["name"],
        "Query"
    );
    let (status, body) = post(
        &stack,
        json!([{"query": "{ __typename }"}, {"query": "{ __typename }"}, {"query": "{ __typename }"}]),
    )
    .await;
    assert_eq!(
        (status, &body["errors"][0]["extensions"]["code"]),
        (StatusCode::BAD_REQUEST, &json!("BATCH_TOO_LARGE"))
    );
    stack.shutdown().await;
}

const LOANS: &str = "query Loans { loans(first: 2) { edges { node { id } } } }";

fn persisted(query: &str) -> Value {
    json!({"persistedQuery": {"version": 1, "sha256Hash": sha256(query)}})
}

/// GET /graphql as Apollo clients send hashed queries.
async fn get_by_hash(stack: &Stack, query: &str) -> Value {
    stack
        .client()
        .get(format!("{}/graphql", stack.url()))
        .query(&[
            ("operationName", "Loans"),
            ("extensions", &persisted(query).to_string()),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test]
async fn automatic_persisted_queries_work_as_apollo_clients_expect() {
    let stack = Stack::zonky(small(), "").await;
    let miss = get_by_hash(&stack, LOANS).await;
    assert_eq!(
        error_extensions(&miss)[0]["code"],
        "PERSISTED_QUERY_NOT_FOUND"
    );
    assert_eq!(miss["errors"][0]["message"], "PersistedQueryNotFound");
    // The client sends the query with its hash once...
    let (status, registered) = post(
        &stack,
        json!({"query": LOANS, "extensions": persisted(LOANS)}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        registered["data"]["loans"]["edges"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // ...and the hash alone from then on, by GET or POST.
    let hit = get_by_hash(&stack, LOANS).await;
    assert_eq!(hit["data"], registered["data"]);
    let (_, hit) = post(&stack, json!({"extensions": persisted(LOANS)})).await;
    assert_eq!(hit["data"], registered["data"]);
    // A hash that is not the query's is refused.
    let (_, wrong) = post(
        &stack,
        json!({"query": "{ __typename }", "extensions": persisted(LOANS)}),
    )
    .await;
    assert_eq!(error_extensions(&wrong)[0]["code"], "INVALID_INPUT");
    stack.shutdown().await;
}

#[tokio::test]
async fn in_allow_list_mode_an_unregistered_operation_is_refused_and_a_registered_one_runs() {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    write!(file, "{}", json!({ sha256(LOANS): LOANS })).unwrap();
    let stack = Stack::zonky(
        small(),
        &format!(
            "[graphql]\nallowlist_file = {:?}\n",
            file.path().display().to_string()
        ),
    )
    .await;
    // Registered: by its text, by its hash over POST, and over GET.
    let by_text = stack.graphql(LOANS, Value::Null).await;
    assert_eq!(
        by_text["data"]["loans"]["edges"].as_array().unwrap().len(),
        2,
        "{by_text}"
    );
    let (_, by_hash) = post(&stack, json!({"extensions": persisted(LOANS)})).await;
    assert_eq!(by_hash["data"], by_text["data"]);
    assert_eq!(get_by_hash(&stack, LOANS).await["data"], by_text["data"]);
    // Anything else: refused, and a client cannot register it.
    let other = "{ loans(first: 50) { edges { node { id name story } } } }";
    for body in [
        json!({"query": other}),
        json!({"query": other, "extensions": persisted(other)}),
        json!({"extensions": persisted(other)}),
    ] {
        let (status, refused) = post(&stack, body.clone()).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            error_extensions(&refused)[0]["code"],
            "PERSISTED_QUERY_NOT_ALLOWED",
            "{body}: {refused}"
        );
        assert!(refused["data"].is_null());
    }
    stack.shutdown().await;
}

/// Sends `head` and then `body` slowly over a raw connection; the answer.
async fn raw_exchange(addr: &str, head: &str, body_chunks: &[&str], pause: Duration) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    for chunk in body_chunks {
        tokio::time::sleep(pause).await;
        if stream.write_all(chunk.as_bytes()).await.is_err() {
            break;
        }
    }
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn large_bodies_and_slow_clients_are_refused_with_json_errors() {
    let stack = Stack::zonky(
        small(),
        "[server]\nmax_body_bytes = 4096\nrequest_timeout_ms = 500\nhttp_timeout_ms = 1500\nheader_read_timeout_ms = 500\n",
    )
    .await;
    let addr = stack.url().trim_start_matches("http://").to_string();

    let huge = json!({"query": format!("{{ __typename }} # {}", "x".repeat(10_000))});
    let (status, body) = post(&stack, huge).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["errors"][0]["extensions"]["code"], "PAYLOAD_TOO_LARGE");

    // A body that trickles in slower than the HTTP timeout allows.
    let started = Instant::now();
    let head = format!(
        "POST /graphql HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: 40\r\nConnection: close\r\n\r\n"
    );
    let answer = raw_exchange(
        &addr,
        &head,
        &["{\"query\":", " \"{ __typename", " }\"}"],
        Duration::from_millis(900),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("REQUEST_TIMEOUT"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5));

    // Headers that never end: the connection is dropped.
    let started = Instant::now();
    let answer = raw_exchange(
        &addr,
        "GET /healthz HTTP/1.1\r\nHost: x\r\n",
        &[],
        Duration::ZERO,
    )
    .await;
    assert!(!answer.contains("200 OK"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    let ok = stack.graphql("{ __typename }", Value::Null).await;
    assert_eq!(ok["data"]["__typename"], "Query");
    stack.shutdown().await;
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

#[tokio::test]
async fn browsers_meet_cors_from_the_configuration_and_guarded_pages() {
    let stack = Stack::zonky(
        small(),
        "[server.cors]\nallowed_origins = [\"https://app.example.com\"]\nallow_credentials = true\n",
    )
    .await;
    let preflight = |origin: &'static str| {
        stack
            .client()
            .request(reqwest::Method::OPTIONS, format!("{}/graphql", stack.url()))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            )
            .send()
    };
    let allowed = preflight("https://app.example.com").await.unwrap();
    assert_eq!(
        header(&allowed, "access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );
    assert_eq!(
        header(&allowed, "access-control-allow-credentials").as_deref(),
        Some("true")
    );
    let foreign = preflight("https://evil.example").await.unwrap();
    assert_eq!(header(&foreign, "access-control-allow-origin"), None);

    // `serve` shows no GraphiQL unless configured.
    let root = stack
        .client()
        .get(format!("{}/", stack.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(root.status(), StatusCode::NOT_FOUND);
    stack.shutdown().await;

    // `demo` does, with a policy that keeps it to its own assets.
    let demo = Demo::start(TcpListener::bind("127.0.0.1:0").await.unwrap())
        .await
        .unwrap();
    let url = demo.gateway.url();
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = client.get(format!("{url}/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let policy = header(&page, "content-security-policy").unwrap();
    for directive in [
        "frame-ancestors 'none'",
        "script-src 'self'",
        "connect-src 'self'",
    ] {
        assert!(policy.contains(directive), "{policy}");
    }
    assert_eq!(
        header(&page, "x-content-type-options").as_deref(),
        Some("nosniff")
    );
    assert_eq!(
        header(&page, "referrer-policy").as_deref(),
        Some("no-referrer")
    );
    // Every script and stylesheet the page names is the gateway's own.
    let html = page.text().await.unwrap();
    for attribute in ["src=\"", "href=\""] {
        for (at, _) in html.match_indices(attribute) {
            let target = &html[at + attribute.len()..];
            assert!(
                target.starts_with('/'),
                "{}",
                &target[..target.len().min(60)]
            );
        }
    }
    assert!(
        !html.contains("<script>"),
        "no inline script under script-src 'self'"
    );
    // In the demo, introspection is on.
    let schema = graphql_at(
        &url,
        None,
        "{ __schema { queryType { name } } }",
        Value::Null,
    )
    .await;
    assert_eq!(schema["data"]["__schema"]["queryType"]["name"], "Query");

    // Private answers are never stored by caches.
    let token = demo.token("alice").unwrap();
    let private = client
        .post(format!("{url}/graphql"))
        .bearer_auth(&token)
        .json(&json!({"query": "{ me { id } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&private, "cache-control").as_deref(),
        Some("no-store")
    );
    let connect = client
        .get(format!("{url}/connect/zonky"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(connect.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        header(&connect, "cache-control").as_deref(),
        Some("no-store")
    );
    let callback = client
        .get(format!("{url}/connect/zonky/callback?state=x"))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(
        header(&callback, "cache-control").as_deref(),
        Some("no-store")
    );
    assert!(
        header(&callback, "content-security-policy")
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    demo.shutdown().await.unwrap();
}
