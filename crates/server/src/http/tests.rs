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
    let state = AppState {
        schema: build_schema(
            Services::without_store(aggregator),
            SchemaOptions::default(),
        ),
        request_timeout: Duration::from_secs(5),
        auth: Arc::new(crate::auth::FrontendAuth::from_config(&Default::default()).unwrap()),
        connections: None,
    };
    router(state, true)
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
