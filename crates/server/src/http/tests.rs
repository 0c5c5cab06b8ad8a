use axum::body::{Body, to_bytes};
use axum::http::{Request, header};
use finmesh_core::aggregate::{Aggregator, AggregatorSettings};
use finmesh_core::registry::Registry;
use finmesh_graphql::{SchemaOptions, Services, build_schema};
use serde_json::Value;
use tower::ServiceExt;

use super::*;

fn app() -> Router {
    let aggregator = Aggregator::new(Default::default(), AggregatorSettings::default());
    let _: &Registry = aggregator.registry();
    let ops = crate::ops::Ops::new(
        aggregator.clone(),
        Arc::new(finmesh_core::upstream::LocalThrottle::new()),
        Default::default(),
        Vec::new(),
    );
    let webhooks = crate::webhooks::Webhooks::new(aggregator.clone(), None);
    let state = AppState {
        schema: build_schema(
            Services::without_store(aggregator),
            SchemaOptions::default(),
        ),
        request_timeout: Duration::from_secs(5),
        auth: Arc::new(crate::auth::FrontendAuth::from_config(&Default::default()).unwrap()),
        connections: None,
        max_batch_size: 3,
        shed: Default::default(),
        ops,
        webhooks,
    };
    let http = crate::config::HttpConfig {
        max_body_bytes: 1 << 20,
        http_timeout: Duration::from_secs(15),
        header_read_timeout: Duration::from_secs(10),
        cors: Default::default(),
    };
    router(state, true, &http)
}

async fn send(request: Request<Body>) -> (StatusCode, Value) {
    let response = app().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn post(body: &str) -> Request<Body> {
    Request::post("/graphql")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

#[tokio::test]
async fn healthz_says_ok() {
    let (status, body) = send(Request::get("/healthz").body(Body::empty()).unwrap()).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
}

#[tokio::test]
async fn graphiql_is_served_at_the_root() {
    let response = app()
        .oneshot(Request::get("/").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let page = to_bytes(response.into_body(), 1 << 20).await.unwrap();
    assert!(String::from_utf8_lossy(&page).contains("/graphql"));
}

#[tokio::test]
async fn post_and_get_run_queries_with_variables() {
    let (status, body) = send(post(
        r#"{"query": "query($n: Int) { loans(first: $n) { totalCount edges { cursor } } }", "variables": {"n": 5}}"#,
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["loans"]["edges"], json!([]), "{body}");

    let uri = "/graphql?query=query(%24n%3A%20Int)%20%7B%20loans(first%3A%20%24n)%20%7B%20totalCount%20%7D%20%7D&variables=%7B%22n%22%3A%20101%7D";
    let (status, body) = send(Request::get(uri).body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "INVALID_INPUT",
        "{body}"
    );
    assert_eq!(body["errors"][0]["extensions"]["field"], "first");
}

#[tokio::test]
async fn requests_that_are_not_graphql_get_a_coded_error() {
    let cases = [
        post("{not json"),
        post(r#"{"variables": {}}"#),
        post(r#"{"query": "{ providers { id } }", "variables": [1]}"#),
        Request::post("/graphql").body(Body::from("{}")).unwrap(),
        Request::get("/graphql").body(Body::empty()).unwrap(),
        Request::get("/graphql?query=%7B%7D&variables=%7Bnope")
            .body(Body::empty())
            .unwrap(),
    ];
    for request in cases {
        let description = format!("{} {}", request.method(), request.uri());
        let (status, body) = send(request).await;
        assert!(status.is_client_error(), "{description}: {status}");
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "BAD_REQUEST",
            "{description}: {body}"
        );
    }
}

#[tokio::test]
async fn a_batch_runs_each_request_and_is_limited_in_size() {
    let (status, body) = send(post(
        r#"[{"query": "{ __typename }"}, {"query": "query($n: Int) { loans(first: $n) { totalCount } }", "variables": {"n": 1}}]"#,
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body[0], json!({"data": {"__typename": "Query"}}), "{body}");
    assert_eq!(body[1]["data"]["loans"]["totalCount"], 0, "{body}");

    let four = format!("[{}]", [r#"{"query": "{ __typename }"}"#; 4].join(","));
    let (status, body) = send(post(&four)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body["errors"][0]["extensions"]["code"], "BATCH_TOO_LARGE",
        "{body}"
    );

    for bad in ["[]", r#"[{"query": "{ __typename }"}, 7]"#] {
        let (status, body) = send(post(bad)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "BAD_REQUEST",
            "{bad}: {body}"
        );
    }
    let (_, body) = send(post(r#"[{"query": "{ __typename }"}, 7]"#)).await;
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .starts_with("batch item 1:"),
        "{body}"
    );
}
