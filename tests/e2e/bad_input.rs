//! Bad input over HTTP: coded errors, no panic, and the gateway keeps serving.

use finmesh_e2e::{Stack, error_extensions};
use finmesh_sandbox::ZonkyConfig;
use serde_json::{Value, json};

fn small() -> ZonkyConfig {
    ZonkyConfig {
        loans: 120,
        ..ZonkyConfig::default()
    }
}

#[tokio::test]
async fn bad_arguments_answer_coded_errors_and_the_gateway_keeps_serving() {
    let stack = Stack::zonky(small(), "").await;
    let first_page = stack
        .graphql(
            "{ loans(first: 5) { pageInfo { endCursor } } }",
            Value::Null,
        )
        .await;
    let cursor = first_page["data"]["loans"]["pageInfo"]["endCursor"]
        .as_str()
        .unwrap()
        .to_string();

    let cases: Vec<(String, &str, Option<&str>)> = vec![
        (
            r#"{ loans(after: "bm90LWEtY3Vyc29y") { totalCount } }"#.into(),
            "INVALID_INPUT",
            Some("after"),
        ),
        (
            r#"{ loans(after: "%%%") { totalCount } }"#.into(),
            "INVALID_INPUT",
            Some("after"),
        ),
        // A cursor of another query (different filter).
        (
            format!(
                r#"{{ loans(first: 5, after: "{cursor}", filter: {{insured: true}}) {{ totalCount }} }}"#
            ),
            "INVALID_INPUT",
            Some("after"),
        ),
        (
            r#"{ loan(id: "zonky:loan:") { id } }"#.into(),
            "INVALID_INPUT",
            Some("id"),
        ),
        (
            r#"{ loan(id: "not an id") { id } }"#.into(),
            "INVALID_INPUT",
            Some("id"),
        ),
        (
            "{ loans(first: -1) { totalCount } }".into(),
            "INVALID_INPUT",
            Some("first"),
        ),
        (
            "{ loans(first: 101) { totalCount } }".into(),
            "INVALID_INPUT",
            Some("first"),
        ),
        (
            r#"{ loans(providers: ["bondora"]) { totalCount } }"#.into(),
            "INVALID_INPUT",
            Some("providers"),
        ),
        (
            "{ loans(filter: {termMonths: {gte: -12}}) { totalCount } }".into(),
            "INVALID_INPUT",
            Some("filter.termMonths.gte"),
        ),
        (
            r#"{ loans(filter: {currency: "Kč"}) { totalCount } }"#.into(),
            "INVALID_INPUT",
            Some("filter.currency"),
        ),
        // Not a GraphQL Int: refused while reading the argument.
        (
            "{ loans(first: 99999999999) { totalCount } }".into(),
            "INVALID_INPUT",
            None,
        ),
        (
            "{ loans { edges { node { nope } } } }".into(),
            "GRAPHQL_VALIDATION_FAILED",
            None,
        ),
        ("{ loans(first: ".into(), "GRAPHQL_PARSE_FAILED", None),
    ];
    for (query, code, field) in &cases {
        let response = stack.graphql(query, Value::Null).await;
        let errors = error_extensions(&response);
        assert_eq!(errors.len(), 1, "{query}: {response:#}");
        assert_eq!(errors[0]["code"], *code, "{query}: {response:#}");
        if let Some(field) = field {
            assert_eq!(errors[0]["field"], *field, "{query}: {response:#}");
        }
    }

    // An id of a loan that does not exist: null, NOT_FOUND from the provider.
    let response = stack
        .graphql(r#"{ loan(id: "zonky:loan:1") { id } }"#, Value::Null)
        .await;
    assert_eq!(response["data"]["loan"], Value::Null);
    assert_eq!(
        error_extensions(&response),
        [json!({"code": "NOT_FOUND", "provider": "zonky"})]
    );

    // Not GraphQL at all.
    let response = stack
        .client()
        .post(format!("{}/graphql", stack.url()))
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_extensions(&body), [json!({"code": "BAD_REQUEST"})]);

    // Still serving.
    let health = stack
        .client()
        .get(format!("{}/healthz", stack.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let page = stack
        .graphql("{ loans(first: 3) { edges { node { id } } } }", Value::Null)
        .await;
    assert_eq!(page["data"]["loans"]["edges"].as_array().unwrap().len(), 3);
    stack.shutdown().await;
}
