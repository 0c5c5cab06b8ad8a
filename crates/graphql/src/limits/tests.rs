//! Each limit crossed, with its code; what stays under the limits still runs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_graphql::Request;
use finmesh_core::CallContext;
use finmesh_core::aggregate::{Aggregator, AggregatorSettings};
use finmesh_core::registry::Registry;
use serde_json::Value;

use super::*;
use crate::{FinmeshSchema, SchemaOptions, Services, build_schema};

fn schema(limits: QueryLimits) -> FinmeshSchema {
    let aggregator = Aggregator::new(Arc::new(Registry::default()), AggregatorSettings::default());
    build_schema(
        Services::without_store(aggregator),
        SchemaOptions {
            limits,
            ..SchemaOptions::default()
        },
    )
}

async fn run(schema: &FinmeshSchema, query: &str) -> Value {
    let request = Request::new(query).data(CallContext::anonymous(Duration::from_secs(5)));
    serde_json::to_value(schema.execute(request).await).unwrap()
}

/// The code of the only error, or `None` when the request ran cleanly.
async fn refusal_code(schema: &FinmeshSchema, query: &str) -> Option<String> {
    let response = run(schema, query).await;
    let errors = response["errors"].as_array().cloned().unwrap_or_default();
    assert!(errors.len() <= 1, "{response:#}");
    errors
        .first()
        .map(|e| e["extensions"]["code"].as_str().unwrap().to_string())
}

fn nested(levels: usize) -> String {
    // `__type { fields { type { ofType { ofType ... } } } }`: introspection
    // types nest without end.
    let mut query = String::from("{ __type(name: \"Query\") { fields { type {");
    for _ in 0..levels {
        query.push_str(" ofType {");
    }
    query.push_str(" name");
    for _ in 0..levels + 3 {
        query.push_str(" }");
    }
    query.push_str(" }");
    query
}

#[tokio::test]
async fn too_deep_queries_are_refused_with_the_limit() {
    let schema = schema(QueryLimits {
        introspection: true,
        ..QueryLimits::default()
    });
    // __type, fields, type, 12 ofType, name: 16 levels.
    assert_eq!(refusal_code(&schema, &nested(12)).await, None);
    let response = run(&schema, &nested(13)).await;
    assert_eq!(response["errors"][0]["extensions"]["code"], QUERY_TOO_DEEP);
    assert_eq!(response["errors"][0]["extensions"]["limit"], 16);
    assert!(response["data"].is_null(), "{response}");
}

#[tokio::test]
async fn deeply_bracketed_text_is_refused_before_parsing() {
    let schema = schema(QueryLimits::default());
    for (open, close) in [("{", "}"), ("[", "]")] {
        let query = format!(
            "{{ loans(providers: {}\"x\"{}) {{ totalCount }} }}",
            open.repeat(200_000),
            close.repeat(200_000)
        );
        assert_eq!(
            refusal_code(&schema, &query).await.as_deref(),
            Some(QUERY_TOO_DEEP)
        );
    }
    // Brackets in strings and comments do not count.
    let quoted = format!(
        "{{ loans(after: \"{}\") {{ totalCount }} }} # {}",
        "{".repeat(1000),
        "[".repeat(1000)
    );
    assert_ne!(
        refusal_code(&schema, &quoted).await.as_deref(),
        Some(QUERY_TOO_DEEP)
    );
}

#[tokio::test]
async fn fragment_bombs_and_cycles_are_refused_at_once() {
    let schema = schema(QueryLimits::default());
    // Each fragment spreads the previous one ten times: 10^10 fields expanded.
    let mut bomb = String::from("{ ...F10 } fragment F0 on Query { __typename }");
    for n in 1..=10 {
        let spreads = format!(" ...F{}", n - 1).repeat(10);
        bomb.push_str(&format!(" fragment F{n} on Query {{{spreads} }}"));
    }
    let started = Instant::now();
    assert_eq!(
        refusal_code(&schema, &bomb).await.as_deref(),
        Some(QUERY_TOO_COMPLEX)
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    let cycle = "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A ...A }";
    assert_eq!(
        refusal_code(&schema, cycle).await.as_deref(),
        Some("GRAPHQL_VALIDATION_FAILED")
    );
    // A long chain of fragments is too deep, however short its text.
    let mut chain = String::from("{ ...F0 }");
    for n in 0..5_000 {
        chain.push_str(&format!(" fragment F{n} on Query {{ ...F{} }}", n + 1));
    }
    chain.push_str(" fragment F5000 on Query { __typename }");
    assert_eq!(
        refusal_code(&schema, &chain).await.as_deref(),
        Some(QUERY_TOO_DEEP)
    );
}

#[tokio::test]
async fn page_sizes_count_in_the_complexity() {
    let schema = schema(QueryLimits {
        max_complexity: 200,
        ..QueryLimits::default()
    });
    let page = |first: i32| {
        format!("{{ loans(first: {first}) {{ edges {{ node {{ id name interestRate }} }} }} }}")
    };
    assert_eq!(refusal_code(&schema, &page(10)).await, None);
    let response = run(&schema, &page(100)).await;
    assert_eq!(
        response["errors"][0]["extensions"]["code"], QUERY_TOO_COMPLEX,
        "{response}"
    );
    assert_eq!(response["errors"][0]["extensions"]["limit"], 200);
    // Without `first`, the default page of 20 is assumed: 20 × (edges, node, 3 fields) + 1.
    let omitted = "{ loans { edges { node { id name interestRate } } } }";
    assert_eq!(refusal_code(&schema, omitted).await, None);
    assert_eq!(items_cost(None, 5), 101);
    assert_eq!(items_cost(Some(-5), 5), 1);
    assert_eq!(items_cost(Some(i32::MAX), usize::MAX), usize::MAX);
}

#[tokio::test]
async fn the_default_complexity_refuses_many_full_pages_of_lookups() {
    let schema = schema(QueryLimits::default());
    // A page of 100 offers, each looking its loan up: 100 × (5 + …) = 1,201.
    let page = |alias: usize| {
        format!(
            "p{alias}: secondaryMarket(first: 100) {{ edges {{ node {{ id loan {{ id name story rating }} }} }} }}"
        )
    };
    let pages = |n: usize| format!("{{ {} }}", (0..n).map(page).collect::<Vec<_>>().join(" "));
    assert_eq!(refusal_code(&schema, &pages(4)).await, None);
    assert_eq!(
        refusal_code(&schema, &pages(5)).await.as_deref(),
        Some(QUERY_TOO_COMPLEX)
    );
}

#[tokio::test]
async fn aliases_are_counted_fragments_expanded() {
    let schema = schema(QueryLimits::default());
    let aliases = |n: usize| {
        let fields: Vec<String> = (0..n).map(|i| format!("a{i}: id")).collect();
        format!("{{ providers {{ {} }} }}", fields.join(" "))
    };
    assert_eq!(refusal_code(&schema, &aliases(20)).await, None);
    let response = run(&schema, &aliases(21)).await;
    assert_eq!(
        response["errors"][0]["extensions"]["code"],
        TOO_MANY_ALIASES
    );
    assert_eq!(response["errors"][0]["extensions"]["limit"], 20);
    // Eleven aliases in a fragment spread twice are 22.
    let fields: Vec<String> = (0..11).map(|i| format!("a{i}: id")).collect();
    let spread = format!(
        "{{ providers {{ ...P }} again: providers {{ ...P }} }} fragment P on ProviderInfo {{ {} }}",
        fields.join(" ")
    );
    assert_eq!(
        refusal_code(&schema, &spread).await.as_deref(),
        Some(TOO_MANY_ALIASES)
    );
}

#[tokio::test]
async fn root_fields_are_counted_in_the_operation_that_runs() {
    let schema = schema(QueryLimits::default());
    let roots = |n: usize| {
        let fields: Vec<String> = (0..n)
            .map(|i| format!("p{i}: providers {{ id }}"))
            .collect();
        fields.join(" ")
    };
    assert_eq!(
        refusal_code(&schema, &format!("{{ {} }}", roots(10))).await,
        None
    );
    let response = run(&schema, &format!("{{ {} }}", roots(11))).await;
    assert_eq!(
        response["errors"][0]["extensions"]["code"],
        TOO_MANY_ROOT_FIELDS
    );
    assert_eq!(response["errors"][0]["extensions"]["limit"], 10);
    // Through a fragment on the root, too.
    let through = format!("{{ ...R }} fragment R on Query {{ {} }}", roots(11));
    assert_eq!(
        refusal_code(&schema, &through).await.as_deref(),
        Some(TOO_MANY_ROOT_FIELDS)
    );
    // Two operations of ten root fields each: only the one that runs counts.
    let two = format!("query A {{ {} }} query B {{ {} }}", roots(10), roots(10));
    let request = Request::new(two)
        .operation_name("B")
        .data(CallContext::anonymous(Duration::from_secs(5)));
    let response = serde_json::to_value(schema.execute(request).await).unwrap();
    assert!(response.get("errors").is_none(), "{response:#}");
}

#[tokio::test]
async fn introspection_is_refused_unless_enabled() {
    let off = schema(QueryLimits::default());
    for query in [
        "{ __schema { queryType { name } } }",
        "{ __type(name: \"Loan\") { name } }",
        "{ ...I } fragment I on Query { __schema { types { name } } }",
    ] {
        let response = run(&off, query).await;
        assert_eq!(
            response["errors"][0]["extensions"]["code"], INTROSPECTION_DISABLED,
            "{query}: {response}"
        );
    }
    assert_eq!(refusal_code(&off, "{ __typename }").await, None);

    let on = schema(QueryLimits {
        introspection: true,
        ..QueryLimits::default()
    });
    let response = run(&on, INTROSPECTION_QUERY).await;
    assert!(response.get("errors").is_none(), "{response:#}");
    assert_eq!(response["data"]["__schema"]["queryType"]["name"], "Query");
}

#[tokio::test]
async fn a_query_that_is_not_graphql_is_still_a_parse_error() {
    let schema = schema(QueryLimits::default());
    assert_eq!(
        refusal_code(&schema, "{ loans(first: ").await.as_deref(),
        Some(PARSE_FAILED)
    );
}

/// GraphiQL's introspection query (graphql-js `getIntrospectionQuery` with
/// deprecated input values, nine levels of `ofType`).
const INTROSPECTION_QUERY: &str = r#"
query IntrospectionQuery {
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types { ...FullType }
    directives { name description locations args(includeDeprecated: true) { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description specifiedByURL
  fields(includeDeprecated: true) {
    name description args(includeDeprecated: true) { ...InputValue } type { ...TypeRef }
    isDeprecated deprecationReason
  }
  inputFields(includeDeprecated: true) { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue {
  name description type { ...TypeRef } defaultValue isDeprecated deprecationReason
}
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType {
    kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name }
  } } } } } } } }
}
"#;

#[tokio::test]
async fn the_largest_configurable_depth_is_still_safe_to_parse() {
    // `graphql.max_depth` may be 256: the parser then sees up to 546 nested
    // brackets, which must not exhaust a 2 MiB thread stack.
    let limits = QueryLimits {
        max_depth: 256,
        ..QueryLimits::default()
    };
    let deepest = limits.max_text_nesting();
    let schema = schema(limits);
    // The operation's braces and the argument list's parentheses are two.
    for (open, close) in [("[", "]"), ("{a: ", "}")] {
        let query = format!(
            "{{ loans(providers: {}\"x\"{}) {{ totalCount }} }}",
            open.repeat(deepest - 2),
            close.repeat(deepest - 2)
        );
        assert_eq!(text_nesting(&query), deepest);
        let schema = schema.clone();
        let code = std::thread::Builder::new()
            .stack_size(2 * 1024 * 1024)
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                runtime.block_on(refusal_code(&schema, &query))
            })
            .unwrap()
            .join()
            .unwrap();
        assert!(code.is_some(), "{open}: refused, not crashed");
    }
}
