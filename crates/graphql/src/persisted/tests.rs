//! Automatic persisted queries as Apollo clients use them, the allow-list
//! mode, and persisted queries turned off.

use std::sync::Arc;
use std::time::Duration;

use async_graphql::Request;
use finmesh_core::CallContext;
use finmesh_core::aggregate::{Aggregator, AggregatorSettings};
use finmesh_core::registry::Registry;
use serde_json::{Value, json};

use super::*;
use crate::{FinmeshSchema, SchemaOptions, Services, build_schema};

const PROVIDERS: &str = "query Providers { providers { id } }";
const TYPENAME: &str = "{ __typename }";

fn schema(persisted: PersistedQueries) -> FinmeshSchema {
    let aggregator = Aggregator::new(Arc::new(Registry::default()), AggregatorSettings::default());
    build_schema(
        Services::without_store(aggregator),
        SchemaOptions {
            persisted,
            ..SchemaOptions::default()
        },
    )
}

/// Runs `query` (may be empty) with `extensions` as an HTTP body carries them.
async fn run(schema: &FinmeshSchema, query: &str, extensions: Value) -> Value {
    let mut request = Request::new(query).data(CallContext::anonymous(Duration::from_secs(5)));
    request.extensions = request_extensions(&extensions);
    serde_json::to_value(schema.execute(request).await).unwrap()
}

fn hash_of(query: &str) -> Value {
    json!({"persistedQuery": {"version": 1, "sha256Hash": sha256(query)}})
}

fn code(response: &Value) -> &str {
    response["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_default()
}

#[tokio::test]
async fn automatic_persisted_queries_follow_apollos_protocol() {
    let schema = schema(PersistedQueries::automatic());
    // An unknown hash: the client is asked for the query.
    let miss = run(&schema, "", hash_of(PROVIDERS)).await;
    assert_eq!(code(&miss), PERSISTED_QUERY_NOT_FOUND, "{miss}");
    assert_eq!(miss["errors"][0]["message"], "PersistedQueryNotFound");
    // The hash with its query runs it and registers it.
    let registered = run(&schema, PROVIDERS, hash_of(PROVIDERS)).await;
    assert_eq!(registered, json!({"data": {"providers": []}}));
    // From now on the hash alone is enough.
    let hit = run(&schema, "", hash_of(PROVIDERS)).await;
    assert_eq!(hit, json!({"data": {"providers": []}}));
    // Plain queries still run.
    assert_eq!(
        run(&schema, TYPENAME, Value::Null).await,
        json!({"data": {"__typename": "Query"}})
    );
}

#[tokio::test]
async fn a_hash_that_is_not_its_querys_or_a_bad_extension_is_invalid_input() {
    let schema = schema(PersistedQueries::automatic());
    let mismatch = run(&schema, TYPENAME, hash_of(PROVIDERS)).await;
    assert_eq!(code(&mismatch), "INVALID_INPUT");
    assert_eq!(
        mismatch["errors"][0]["extensions"]["field"],
        "extensions.persistedQuery.sha256Hash"
    );
    // Nothing was registered under the hash.
    let miss = run(&schema, "", hash_of(PROVIDERS)).await;
    assert_eq!(code(&miss), PERSISTED_QUERY_NOT_FOUND);

    for bad in [
        json!({"persistedQuery": {"version": 2, "sha256Hash": sha256(TYPENAME)}}),
        json!({"persistedQuery": {"version": 1, "sha256Hash": "abc"}}),
        json!({"persistedQuery": {"version": 1}}),
        json!({"persistedQuery": "yes"}),
    ] {
        let response = run(&schema, "", bad.clone()).await;
        assert_eq!(code(&response), "INVALID_INPUT", "{bad}: {response}");
        assert_eq!(
            response["errors"][0]["extensions"]["field"]
                .as_str()
                .unwrap_or_default()
                .split(".sha256Hash")
                .next(),
            Some("extensions.persistedQuery")
        );
    }
}

#[tokio::test]
async fn in_allow_list_mode_only_registered_operations_run() {
    let file = json!({ sha256(PROVIDERS): PROVIDERS }).to_string();
    let list = AllowList::from_json(&file).unwrap();
    assert_eq!(list.len(), 1);
    let schema = schema(PersistedQueries::AllowList(Arc::new(list)));
    let ran = json!({"data": {"providers": []}});
    // By hash, by text, and by both.
    assert_eq!(run(&schema, "", hash_of(PROVIDERS)).await, ran);
    assert_eq!(run(&schema, PROVIDERS, Value::Null).await, ran);
    assert_eq!(run(&schema, PROVIDERS, hash_of(PROVIDERS)).await, ran);
    // Anything else is refused, and cannot register itself.
    for (query, extensions) in [
        (TYPENAME, Value::Null),
        ("", hash_of(TYPENAME)),
        (TYPENAME, hash_of(TYPENAME)),
        ("query Providers { providers { id  } }", Value::Null),
    ] {
        let response = run(&schema, query, extensions).await;
        assert_eq!(
            code(&response),
            PERSISTED_QUERY_NOT_ALLOWED,
            "{query}: {response}"
        );
        assert!(response["data"].is_null());
    }
    assert_eq!(
        code(&run(&schema, "", hash_of(TYPENAME)).await),
        PERSISTED_QUERY_NOT_ALLOWED
    );
}

#[tokio::test]
async fn with_persisted_queries_off_a_hash_is_not_supported() {
    let schema = schema(PersistedQueries::Off);
    let response = run(&schema, "", hash_of(TYPENAME)).await;
    assert_eq!(code(&response), PERSISTED_QUERY_NOT_SUPPORTED);
    assert_eq!(
        run(&schema, TYPENAME, Value::Null).await,
        json!({"data": {"__typename": "Query"}})
    );
}

#[test]
fn an_allow_list_file_is_checked_when_read() {
    let wrong_hash = json!({ sha256(TYPENAME): PROVIDERS }).to_string();
    let error = AllowList::from_json(&wrong_hash).unwrap_err();
    assert!(error.contains("is not the SHA-256 of its query"), "{error}");
    let not_graphql = json!({ sha256("{ oops"): "{ oops" }).to_string();
    assert!(
        AllowList::from_json(&not_graphql)
            .unwrap_err()
            .contains("not GraphQL")
    );
    assert!(
        AllowList::from_json("{}")
            .unwrap_err()
            .contains("no operations")
    );
    assert!(
        AllowList::from_json("[1]")
            .unwrap_err()
            .contains("JSON object")
    );
    // Uppercase hex is the same hash.
    let upper = json!({ sha256(TYPENAME).to_uppercase(): TYPENAME }).to_string();
    assert_eq!(AllowList::from_json(&upper).unwrap().len(), 1);
}
