//! Resolver tests over in-memory providers, and the schema drift check.

use std::sync::Arc;
use std::time::Duration;

use async_graphql::Request;
use async_trait::async_trait;
use chrono::{TimeZone, Utc};
use finmesh_core::aggregate::{Aggregator, AggregatorSettings};
use finmesh_core::model::{Loan, LoanPurpose, LoanStatus};
use finmesh_core::provider::LoanRequest;
use finmesh_core::query::{LoanFilterField, LoanOrderField, compare_loans};
use finmesh_core::registry::Registry;
use finmesh_core::{
    CallContext, Capabilities, Currency, EntityKind, Error, GlobalId, ListCapabilities, Money,
    Provider, ProviderId, Slice,
};
use rust_decimal::Decimal;
use serde_json::{Value, json};

use super::*;

mod account;
mod private_data;
mod transfers;

/// A provider over a fixed list that evaluates every filter and order itself,
/// or fails every call with `fail`.
struct Memory {
    id: ProviderId,
    loans: Vec<Loan>,
    caps: Capabilities,
    fail: Option<Error>,
}

impl Memory {
    fn new(id: &str, count: u32) -> Self {
        let id = ProviderId::new(id).unwrap();
        Memory {
            loans: (0..count).map(|n| loan(&id, n)).collect(),
            id,
            caps: Capabilities {
                loans: Some(ListCapabilities {
                    filters: vec![LoanFilterField::TermMonths, LoanFilterField::Currency],
                    orders: vec![LoanOrderField::InterestRate, LoanOrderField::PublishedAt],
                    default_order: Vec::new(),
                    max_page_size: 50,
                }),
                ..Capabilities::default()
            },
            fail: None,
        }
    }

    fn failing(id: &str, error: Error) -> Self {
        Memory {
            fail: Some(error),
            ..Memory::new(id, 0)
        }
    }
}

fn loan(provider: &ProviderId, n: u32) -> Loan {
    Loan {
        id: GlobalId::new(provider.clone(), EntityKind::Loan, n.to_string()),
        name: format!("loan {n}"),
        story: Some("a story".into()),
        purpose: LoanPurpose::ALL[(n % 12) as usize],
        purpose_raw: Some("AUTO_MOTO".into()),
        rating: Some(["AAA", "B"][(n % 2) as usize].into()),
        interest_rate: Decimal::new(i64::from(300 + (n * 37) % 900), 4),
        revenue_rate: None,
        term_months: 6 + (n * 7) % 80,
        amount: Money::new(Decimal::new(i64::from(100_000 + n), 1), Currency::CZK),
        remaining_amount: None,
        country: Some("CZ".into()),
        published_at: Some(
            Utc.timestamp_opt(1_700_000_000 + i64::from(n) * 60, 0)
                .unwrap(),
        ),
        deadline: None,
        status: if n == 0 {
            LoanStatus::Other("COVERED".into())
        } else {
            LoanStatus::Open
        },
        url: None,
        borrower_region: None,
        borrower_income_type: None,
        insured: Some(true),
        investments_count: Some(n),
        raw: Arc::new(serde_json::from_str(r#"{"id": 1, "rate": 0.059900}"#).unwrap()),
    }
}

#[async_trait]
impl Provider for Memory {
    fn id(&self) -> &ProviderId {
        &self.id
    }
    fn kind(&self) -> &'static str {
        "memory"
    }
    fn name(&self) -> &str {
        "Memory"
    }
    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }
    async fn loans(
        &self,
        _ctx: &CallContext,
        request: &LoanRequest,
    ) -> finmesh_core::Result<Slice<Loan>> {
        if let Some(error) = &self.fail {
            return Err(error.clone());
        }
        let mut matching: Vec<Loan> = self
            .loans
            .iter()
            .filter(|l| request.filter.matches(l))
            .cloned()
            .collect();
        matching.sort_by(|a, b| compare_loans(a, b, &request.order));
        let total = matching.len() as u64;
        let items = matching
            .into_iter()
            .skip(request.offset as usize)
            .take(request.limit as usize)
            .collect();
        Ok(Slice {
            items,
            total: Some(total),
        })
    }
    async fn loan(&self, _ctx: &CallContext, native_id: &str) -> finmesh_core::Result<Loan> {
        if let Some(error) = &self.fail {
            return Err(error.clone());
        }
        self.loans
            .iter()
            .find(|l| l.id.native() == native_id)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("loan {native_id}")))
    }
}

fn schema(providers: Vec<Memory>) -> FinmeshSchema {
    let providers = providers
        .into_iter()
        .map(|p| Arc::new(p) as Arc<dyn Provider>)
        .collect();
    let aggregator = Aggregator::new(
        Arc::new(Registry::new(providers).unwrap()),
        AggregatorSettings::default(),
    );
    build_schema(
        Services::without_store(aggregator),
        SchemaOptions::default(),
    )
}

async fn run(schema: &FinmeshSchema, query: &str, vars: Value) -> Value {
    let request = Request::new(query)
        .variables(variables(&vars))
        .data(CallContext::anonymous(Duration::from_secs(5)));
    serde_json::to_value(schema.execute(request).await).unwrap()
}

/// The `extensions` of the only error, after checking there is exactly one.
fn only_error(response: &Value) -> &Value {
    let errors = response["errors"].as_array().expect("errors");
    assert_eq!(errors.len(), 1, "{response:#}");
    &errors[0]["extensions"]
}

const ACCEPTANCE: &str = "{ loans(first: 20, orderBy: [{field: INTEREST_RATE, direction: DESC}], filter: {termMonths: {lte: 48}}) { totalCount edges { node { id name interestRate termMonths amount { amount currency } } } pageInfo { hasNextPage endCursor } } }";

#[test]
fn schema_graphql_is_up_to_date() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schema.graphql");
    if std::env::var_os("FINMESH_UPDATE_SCHEMA").is_some() {
        std::fs::write(path, sdl()).unwrap();
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == sdl(),
        "schema.graphql differs from the schema the code builds; run `cargo run -- schema > schema.graphql` at the repository root, or this test with FINMESH_UPDATE_SCHEMA=1"
    );
}

#[tokio::test]
async fn the_acceptance_query_answers_in_order_with_exact_decimals() {
    let schema = schema(vec![Memory::new("a", 30), Memory::new("b", 30)]);
    let response = run(&schema, ACCEPTANCE, Value::Null).await;
    assert!(response.get("errors").is_none(), "{response:#}");
    let loans = &response["data"]["loans"];
    let edges = loans["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 20);
    let rates: Vec<Decimal> = edges
        .iter()
        .map(|e| e["node"]["interestRate"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(rates.windows(2).all(|w| w[0] >= w[1]), "{rates:?}");
    assert!(
        edges
            .iter()
            .all(|e| e["node"]["termMonths"].as_u64().unwrap() <= 48)
    );
    let first = &edges[0]["node"];
    assert_eq!(first["amount"]["currency"], "CZK");
    assert!(first["amount"]["amount"].as_str().unwrap().contains('.'));
    assert!(loans["totalCount"].as_u64().unwrap() > 20);
    assert_eq!(loans["pageInfo"]["hasNextPage"], true);
}

#[tokio::test]
async fn variables_keep_numbers_and_cursors_continue() {
    let schema = schema(vec![Memory::new("a", 12)]);
    let query = "query($n: Int, $after: String) { loans(first: $n, after: $after) { edges { node { id } } pageInfo { hasNextPage endCursor } } }";
    let page = run(&schema, query, json!({"n": 7})).await;
    assert_eq!(page["data"]["loans"]["edges"].as_array().unwrap().len(), 7);
    let after = page["data"]["loans"]["pageInfo"]["endCursor"].clone();
    let rest = run(&schema, query, json!({"n": 7, "after": after})).await;
    assert_eq!(rest["data"]["loans"]["edges"].as_array().unwrap().len(), 5);
    assert_eq!(rest["data"]["loans"]["pageInfo"]["hasNextPage"], false);
}

#[tokio::test]
async fn a_failing_provider_is_listed_beside_the_others_data() {
    let failing = Error::rate_limited(Duration::from_millis(1500), "bucket empty")
        .with_provider_code("too_many_requests");
    let schema = schema(vec![Memory::new("a", 5), Memory::failing("b", failing)]);
    let response = run(
        &schema,
        "{ loans { totalCount edges { node { provider } } } }",
        Value::Null,
    )
    .await;
    let edges = response["data"]["loans"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 5);
    assert!(edges.iter().all(|e| e["node"]["provider"] == "a"));
    assert_eq!(response["data"]["loans"]["totalCount"], Value::Null);
    assert_eq!(response["errors"][0]["path"], json!(["loans"]));
    assert_eq!(
        only_error(&response),
        &json!({"code": "RATE_LIMITED", "provider": "b", "retryAfter": 2, "providerCode": "too_many_requests"})
    );
}

#[tokio::test]
async fn bad_arguments_are_invalid_input_naming_the_field() {
    let schema = schema(vec![Memory::new("a", 5)]);
    let cases = [
        ("{ loans(first: -1) { totalCount } }", "first"),
        ("{ loans(first: 101) { totalCount } }", "first"),
        (r#"{ loans(after: "garbage") { totalCount } }"#, "after"),
        (
            r#"{ loans(providers: ["nope"]) { totalCount } }"#,
            "providers",
        ),
        (
            "{ loans(filter: {termMonths: {lte: -3}}) { totalCount } }",
            "filter.termMonths.lte",
        ),
        (
            r#"{ loans(filter: {interestRate: {gt: "-0.1"}}) { totalCount } }"#,
            "filter.interestRate.gt",
        ),
        (
            r#"{ loans(filter: {amount: {gte: "-5"}}) { totalCount } }"#,
            "filter.amount.gte",
        ),
        (
            r#"{ loans(filter: {currency: "czk"}) { totalCount } }"#,
            "filter.currency",
        ),
        (
            r#"{ loans(filter: {country: "CZE"}) { totalCount } }"#,
            "filter.country",
        ),
        (
            "{ loans(orderBy: [{field: TERM_MONTHS}, {field: TERM_MONTHS, direction: DESC}]) { totalCount } }",
            "orderBy",
        ),
        (r#"{ loan(id: "zonky:loan:1 OR 1=1") { id } }"#, "id"),
        (r#"{ loan(id: "a:transfer:1") { id } }"#, "id"),
    ];
    for (query, field) in cases {
        let response = run(&schema, query, Value::Null).await;
        let extensions = only_error(&response);
        assert_eq!(extensions["code"], "INVALID_INPUT", "{query}: {response:#}");
        assert_eq!(extensions["field"], field, "{query}: {response:#}");
    }
}

#[tokio::test]
async fn graphql_level_errors_have_codes_too() {
    let schema = schema(vec![Memory::new("a", 5)]);
    let cases = [
        ("{ loans(first: 20", "GRAPHQL_PARSE_FAILED"),
        ("{ loans { nope } }", "GRAPHQL_VALIDATION_FAILED"),
        (
            "{ loans(first: \"ten\") { totalCount } }",
            "GRAPHQL_VALIDATION_FAILED",
        ),
        (
            "query A { providers { id } } query B { providers { id } }",
            "GRAPHQL_VALIDATION_FAILED",
        ),
    ];
    for (query, code) in cases {
        let response = run(&schema, query, Value::Null).await;
        assert_eq!(only_error(&response)["code"], code, "{query}: {response:#}");
    }
    // A variable of the wrong type is refused before any resolver runs.
    let response = run(
        &schema,
        "query($n: Int) { loans(first: $n) { totalCount } }",
        json!({"n": 3_000_000_000u64}),
    )
    .await;
    assert!(only_error(&response)["code"].is_string(), "{response:#}");
}

#[tokio::test]
async fn a_loan_by_id_or_null_with_not_found() {
    let schema = schema(vec![Memory::new("a", 5)]);
    let query = r#"query($id: ID!) { loan(id: $id) { id nativeId provider purpose purposeRaw status statusRaw investmentsCount raw remainingAmount { amount } } }"#;
    let response = run(&schema, query, json!({"id": "a:loan:0"})).await;
    assert!(response.get("errors").is_none(), "{response:#}");
    assert_eq!(
        response["data"]["loan"],
        json!({
            "id": "a:loan:0", "nativeId": "0", "provider": "a", "purpose": "VEHICLE",
            "purposeRaw": "AUTO_MOTO", "status": "OTHER", "statusRaw": "COVERED",
            "investmentsCount": 0, "raw": response["data"]["loan"]["raw"], "remainingAmount": null
        })
    );
    // The raw JSON keeps the platform's digits exactly.
    let text = serde_json::to_string(&response).unwrap();
    assert!(text.contains(r#""raw":{"id":1,"rate":0.059900}"#), "{text}");

    for id in ["a:loan:99", "elsewhere:loan:1"] {
        let response = run(&schema, query, json!({"id": id})).await;
        assert_eq!(response["data"]["loan"], Value::Null);
        assert_eq!(only_error(&response)["code"], "NOT_FOUND", "{id}");
    }
}

#[tokio::test]
async fn providers_tell_capabilities_and_health() {
    let schema = schema(vec![
        Memory::new("a", 3),
        Memory::failing("b", Error::upstream_unavailable("503 from upstream")),
    ]);
    let query = "{ providers { id kind name capabilities { loans { filters orders maxPageSize } } health { status lastSuccessAt lastFailureAt lastError { code message } } } }";
    let before = run(&schema, query, Value::Null).await;
    assert_eq!(
        before["data"]["providers"][0]["health"]["status"],
        "UNKNOWN"
    );
    assert_eq!(
        before["data"]["providers"][0]["capabilities"],
        json!({"loans": {"filters": ["TERM_MONTHS", "CURRENCY"], "orders": ["INTEREST_RATE", "PUBLISHED_AT"], "maxPageSize": 50}})
    );

    run(&schema, "{ loans { totalCount } }", Value::Null).await;
    let after = run(&schema, query, Value::Null).await;
    let providers = after["data"]["providers"].as_array().unwrap();
    assert_eq!(
        (providers[0]["id"].clone(), providers[0]["kind"].clone()),
        (json!("a"), json!("memory"))
    );
    assert_eq!(providers[0]["health"]["status"], "UP");
    assert!(providers[0]["health"]["lastSuccessAt"].is_string());
    assert_eq!(providers[1]["health"]["status"], "DOWN");
    assert_eq!(
        providers[1]["health"]["lastError"],
        json!({"code": "UPSTREAM_UNAVAILABLE", "message": "503 from upstream"})
    );
}
