//! The signed-in user's own data: `me`, connections, investments, portfolio;
//! and the secondary market and capabilities beside them.

use std::sync::Arc;

use finmesh_core::{Error, ErrorKind};
use finmesh_store::NewConnection;
use serde_json::{Value, json};

use super::account::{ALICE, Account, BOB, run_as, schema_with_store, schema_without_store};
use super::only_error;

const INVESTMENTS: &str = "query($filter: InvestmentFilter, $orderBy: [InvestmentOrder!], $first: Int, $after: String) {
  investments(filter: $filter, orderBy: $orderBy, first: $first, after: $after) {
    totalCount
    edges { node {
      id provider nativeId loanId loanName
      principalTotal { amount currency } principalUnpaid { amount currency } principalRepaid { amount currency }
      interestTotal { amount } interestUnpaid { amount } interestPaid { amount } interestRate
      status statusRaw sellStatus sellStatusRaw loanHealth loanHealthRaw
      nextPaymentDate purchasePrice { amount currency } purchasedAt currency raw
    } }
    pageInfo { hasNextPage endCursor }
  }
}";

#[tokio::test]
async fn investments_are_the_principals_own_newest_first() {
    let schema = schema_without_store(vec![Arc::new(Account::new("p"))]);
    let response = run_as(&schema, Some(ALICE), INVESTMENTS, Value::Null).await;
    assert!(response.get("errors").is_none(), "{response:#}");
    let investments = &response["data"]["investments"];
    assert_eq!(investments["totalCount"], 3);
    let nodes: Vec<&Value> = investments["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["node"])
        .collect();
    let ids: Vec<&str> = nodes.iter().map(|n| n["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        ["p:investment:i2", "p:investment:i1", "p:investment:i3"]
    );

    assert_eq!(
        *nodes[1],
        json!({
            "id": "p:investment:i1", "provider": "p", "nativeId": "i1",
            "loanId": "p:loan:1", "loanName": "New car",
            "principalTotal": {"amount": "1000.00", "currency": "CZK"},
            "principalUnpaid": {"amount": "600.00", "currency": "CZK"},
            "principalRepaid": {"amount": "400.00", "currency": "CZK"},
            "interestTotal": {"amount": "120.00"}, "interestUnpaid": {"amount": "50.00"},
            "interestPaid": {"amount": "70.00"}, "interestRate": "0.0899",
            "status": "ACTIVE", "statusRaw": null, "sellStatus": "SELLABLE", "sellStatusRaw": null,
            "loanHealth": "HEALTHY", "loanHealthRaw": null, "nextPaymentDate": "2025-03-15",
            "purchasePrice": null, "purchasedAt": "2024-01-01T12:00:00+00:00", "currency": "CZK",
            "raw": nodes[1]["raw"]
        })
    );
    // Values finmesh does not model are OTHER, with the platform's value beside.
    assert_eq!(
        (&nodes[0]["status"], &nodes[0]["statusRaw"]),
        (&json!("OTHER"), &json!("IN_COLLECTION"))
    );
    assert_eq!(
        (&nodes[0]["loanHealth"], &nodes[0]["loanHealthRaw"]),
        (&json!("OTHER"), &json!("LATE_60"))
    );
    assert_eq!(nodes[0]["sellStatus"], Value::Null);
    // The raw record keeps the platform's digits.
    let text = serde_json::to_string(&response).unwrap();
    assert!(
        text.contains(r#""raw":{"amount":1000.00,"id":"i1"}"#),
        "{text}"
    );
}

#[tokio::test]
async fn investments_filter_order_and_page() {
    let schema = schema_without_store(vec![Arc::new(Account::new("p"))]);
    let vars = json!({
        "filter": {"statuses": ["ACTIVE", "PAID_OFF"], "principalUnpaid": {"lte": "1000"}},
        "orderBy": [{"field": "PRINCIPAL_UNPAID", "direction": "DESC"}],
        "first": 1
    });
    let page = run_as(&schema, Some(ALICE), INVESTMENTS, vars.clone()).await;
    assert!(page.get("errors").is_none(), "{page:#}");
    let investments = &page["data"]["investments"];
    assert_eq!(investments["edges"][0]["node"]["id"], "p:investment:i1");
    assert_eq!(investments["pageInfo"]["hasNextPage"], true);

    let mut vars = vars;
    vars["after"] = investments["pageInfo"]["endCursor"].clone();
    let rest = run_as(&schema, Some(ALICE), INVESTMENTS, vars).await;
    let edges = rest["data"]["investments"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 1, "{rest:#}");
    assert_eq!(edges[0]["node"]["id"], "p:investment:i3");
    assert_eq!(
        rest["data"]["investments"]["pageInfo"]["hasNextPage"],
        false
    );
}

#[tokio::test]
async fn the_loan_of_an_investment_is_looked_up_and_its_failure_stays_on_the_field() {
    let schema = schema_without_store(vec![Arc::new(Account::new("p"))]);
    let response = run_as(
        &schema,
        Some(ALICE),
        "{ investments { edges { node { id loan { id name termMonths } } } } }",
        Value::Null,
    )
    .await;
    let edges = response["data"]["investments"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 3, "{response:#}");
    assert_eq!(
        edges[1]["node"]["loan"],
        json!({"id": "p:loan:1", "name": "loan 1", "termMonths": 36})
    );
    // i2's loan is gone at the platform: only that field is null.
    assert_eq!(edges[0]["node"]["id"], "p:investment:i2");
    assert_eq!(
        edges[0]["node"],
        json!({"id": "p:investment:i2", "loan": null})
    );
    // i3 names no loan: null without an error.
    assert_eq!(
        edges[2]["node"],
        json!({"id": "p:investment:i3", "loan": null})
    );
    assert_eq!(
        response["errors"][0]["path"],
        json!(["investments", "edges", 0, "node", "loan"])
    );
    assert_eq!(
        only_error(&response),
        &json!({"code": "NOT_FOUND", "provider": "p"})
    );
}

#[tokio::test]
async fn an_investment_by_id() {
    let schema = schema_without_store(vec![Arc::new(Account::new("p"))]);
    let query = "query($id: ID!) { investment(id: $id) { id principalRepaid { amount } } }";
    let response = run_as(
        &schema,
        Some(ALICE),
        query,
        json!({"id": "p:investment:i1"}),
    )
    .await;
    assert_eq!(
        response["data"]["investment"],
        json!({"id": "p:investment:i1", "principalRepaid": {"amount": "400.00"}})
    );
    let missing = run_as(
        &schema,
        Some(ALICE),
        query,
        json!({"id": "p:investment:i9"}),
    )
    .await;
    assert_eq!(missing["data"], json!({"investment": null}));
    assert_eq!(only_error(&missing)["code"], "NOT_FOUND");
}

#[tokio::test]
async fn a_principal_without_a_connection_gets_not_connected_beside_the_others() {
    let schema = schema_without_store(vec![Arc::new(Account::new("p"))]);
    let response = run_as(
        &schema,
        Some(BOB),
        "{ investments { totalCount edges { node { id } } } }",
        Value::Null,
    )
    .await;
    assert_eq!(response["data"]["investments"]["edges"], json!([]));
    assert_eq!(response["errors"][0]["path"], json!(["investments"]));
    assert_eq!(
        only_error(&response),
        &json!({"code": "NOT_CONNECTED", "provider": "p"})
    );
}

#[tokio::test]
async fn portfolio_per_provider_and_currency_with_failures_beside() {
    let broken = Error::new(
        ErrorKind::ReauthorizationRequired,
        "the platform refused the refresh token",
    );
    let schema = schema_without_store(vec![
        Arc::new(Account::new("p")),
        Arc::new(Account::failing("q", broken)),
    ]);
    let query = "{ portfolio { provider currency investments principalOutstanding principalRepaid interestRepaid interestOutstanding } }";
    let response = run_as(&schema, Some(ALICE), query, Value::Null).await;
    assert_eq!(
        response["data"]["portfolio"],
        json!([
            {"provider": "p", "currency": "CZK", "investments": 2,
             "principalOutstanding": "1100.00", "principalRepaid": "400.00",
             "interestRepaid": "70.00", "interestOutstanding": null},
            {"provider": "p", "currency": "EUR", "investments": 1,
             "principalOutstanding": "0.00", "principalRepaid": "200.00",
             "interestRepaid": "10.00", "interestOutstanding": "0.00"}
        ]),
        "{response:#}"
    );
    assert_eq!(response["errors"][0]["path"], json!(["portfolio"]));
    assert_eq!(
        only_error(&response),
        &json!({"code": "REAUTHORIZATION_REQUIRED", "provider": "q"})
    );

    let only_p = run_as(
        &schema,
        Some(ALICE),
        r#"{ portfolio(providers: ["p"]) { currency } }"#,
        Value::Null,
    )
    .await;
    assert!(only_p.get("errors").is_none(), "{only_p:#}");
    assert_eq!(only_p["data"]["portfolio"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn secondary_market_offers_in_any_order() {
    let schema = schema_without_store(vec![Arc::new(Account::new("p"))]);
    let query = r#"{ secondaryMarket(filter: {discount: {gte: "-0.01"}}, orderBy: [{field: DISCOUNT}], first: 2) {
        totalCount
        edges { node { id provider nativeId loanId loanName principalRemaining { amount currency } price { amount } discount interestRate rating listedAt currency loan { id } } }
        pageInfo { hasNextPage }
    } }"#;
    let response = run_as(&schema, None, query, Value::Null).await;
    assert!(response.get("errors").is_none(), "{response:#}");
    let market = &response["data"]["secondaryMarket"];
    assert_eq!(market["totalCount"], 3);
    assert_eq!(market["pageInfo"]["hasNextPage"], true);
    assert_eq!(
        market["edges"][0]["node"],
        json!({
            "id": "p:offer:o3", "provider": "p", "nativeId": "o3", "loanId": "p:loan:3",
            "loanName": "loan 3", "principalRemaining": {"amount": "100.00", "currency": "EUR"},
            "price": {"amount": "105.00"}, "discount": "0.00", "interestRate": "0.12",
            "rating": "B", "listedAt": "2024-03-03T12:00:00+00:00", "currency": "EUR",
            "loan": {"id": "p:loan:3"}
        })
    );
    assert_eq!(market["edges"][1]["node"]["discount"], "0.05");
}

#[tokio::test]
async fn providers_show_every_capability() {
    let schema = schema_without_store(vec![Arc::new(Account::new("p"))]);
    let response = run_as(
        &schema,
        None,
        "{ providers { capabilities {
            loans { maxPageSize }
            investments { filters orders maxPageSize }
            offers { filters orders maxPageSize }
            transfers { currencies minAmount { amount currency } filters orders maxPageSize }
        } } }",
        Value::Null,
    )
    .await;
    assert_eq!(
        response["data"]["providers"][0]["capabilities"],
        json!({
            "loans": null,
            "investments": {"filters": ["STATUS", "CURRENCY"], "orders": ["PURCHASED_AT"], "maxPageSize": 20},
            "offers": {"filters": ["CURRENCY"], "orders": ["LISTED_AT"], "maxPageSize": 10},
            "transfers": {
                "currencies": ["USD"], "minAmount": {"amount": "1.00", "currency": "USD"},
                "filters": ["STATUS", "CREATED_AT"], "orders": ["CREATED_AT"], "maxPageSize": 50
            }
        }),
        "{response:#}"
    );
}

#[tokio::test]
async fn private_data_needs_a_principal() {
    let (schema, _store) = schema_with_store(vec![Arc::new(Account::new("p").with_oauth())]).await;
    let cases = [
        ("{ me { id } }", "me"),
        ("{ me { connections { provider } } }", "me"),
        (
            r#"mutation { startConnection(provider: "p") { authorizeUrl } }"#,
            "startConnection",
        ),
        (
            r#"mutation { disconnectProvider(provider: "p") }"#,
            "disconnectProvider",
        ),
        ("{ investments { totalCount } }", "investments"),
        (
            r#"{ investment(id: "p:investment:i1") { id } }"#,
            "investment",
        ),
        ("{ portfolio { currency } }", "portfolio"),
        ("{ transfers { totalCount } }", "transfers"),
        (r#"{ transfer(id: "p:transfer:t1") { id } }"#, "transfer"),
        (
            r#"mutation { createTransfer(input: {provider: "p", amount: {amount: "5", currency: "USD"}, destinationAccount: "acc"}, idempotencyKey: "k") { id } }"#,
            "createTransfer",
        ),
        (
            r#"mutation { confirmTransfer(id: "p:transfer:t1", idempotencyKey: "k") { id } }"#,
            "confirmTransfer",
        ),
        (
            r#"mutation { updateTransferMetadata(id: "p:transfer:t1", metadata: {}) { id } }"#,
            "updateTransferMetadata",
        ),
    ];
    for (query, field) in cases {
        let response = run_as(&schema, None, query, Value::Null).await;
        let error = only_error(&response);
        assert_eq!(error["code"], "UNAUTHENTICATED", "{query}: {response:#}");
        assert_eq!(
            response["errors"][0]["path"],
            json!([field]),
            "{query}: {response:#}"
        );
        assert!(
            response["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("sign in"),
            "{response:#}"
        );
    }
}

#[tokio::test]
async fn me_connect_and_disconnect() {
    let (schema, store) = schema_with_store(vec![Arc::new(Account::new("p").with_oauth())]).await;
    let me = "{ me { id connections { provider status scopes expiresAt connectedAt updatedAt } } }";
    let response = run_as(&schema, Some(ALICE), me, Value::Null).await;
    assert_eq!(
        response["data"]["me"],
        json!({"id": ALICE, "connections": []}),
        "{response:#}"
    );

    let start = r#"mutation($to: String) { startConnection(provider: "p", redirectTo: $to) { authorizeUrl provider } }"#;
    let started = run_as(
        &schema,
        Some(ALICE),
        start,
        json!({"to": "https://app.example/done"}),
    )
    .await;
    assert!(started.get("errors").is_none(), "{started:#}");
    let url = started["data"]["startConnection"]["authorizeUrl"]
        .as_str()
        .unwrap();
    assert!(
        url.starts_with("https://platform.example/oauth/authorize?"),
        "{url}"
    );
    assert!(
        url.contains("client_id=finmesh-test") && url.contains("state="),
        "{url}"
    );
    assert_eq!(started["data"]["startConnection"]["provider"], "p");

    // A redirect the gateway does not allow, and a provider without OAuth.
    let foreign = run_as(
        &schema,
        Some(ALICE),
        start,
        json!({"to": "https://evil.example/"}),
    )
    .await;
    assert_eq!(
        only_error(&foreign),
        &json!({"code": "INVALID_INPUT", "field": "redirectTo"})
    );
    let unknown = run_as(
        &schema,
        Some(ALICE),
        r#"mutation { startConnection(provider: "nope") { authorizeUrl } }"#,
        Value::Null,
    )
    .await;
    assert_eq!(only_error(&unknown)["code"], "INVALID_INPUT", "{unknown:#}");

    // The callback stores the tokens; here the store does it directly.
    store
        .upsert_connection(&NewConnection {
            principal: ALICE.into(),
            provider: "p".into(),
            access_token: "access".into(),
            refresh_token: Some("refresh".into()),
            expires_at: None,
            scopes: vec!["investments".into()],
        })
        .await
        .unwrap();
    let response = run_as(&schema, Some(ALICE), me, Value::Null).await;
    let connection = &response["data"]["me"]["connections"][0];
    assert_eq!(connection["provider"], "p", "{response:#}");
    assert_eq!(connection["status"], "ACTIVE");
    assert_eq!(connection["scopes"], json!(["investments"]));
    assert_eq!(connection["expiresAt"], Value::Null);
    assert!(connection["updatedAt"].is_string());
    // Another principal sees none of it.
    let bob = run_as(&schema, Some(BOB), me, Value::Null).await;
    assert_eq!(bob["data"]["me"]["connections"], json!([]));

    let disconnect = r#"mutation { disconnectProvider(provider: "p") }"#;
    let first = run_as(&schema, Some(ALICE), disconnect, Value::Null).await;
    assert_eq!(
        first["data"],
        json!({"disconnectProvider": true}),
        "{first:#}"
    );
    let again = run_as(&schema, Some(ALICE), disconnect, Value::Null).await;
    assert_eq!(again["data"], json!({"disconnectProvider": false}));
    let response = run_as(&schema, Some(ALICE), me, Value::Null).await;
    assert_eq!(response["data"]["me"]["connections"], json!([]));
}

#[tokio::test]
async fn without_a_store_connections_and_payments_are_not_supported() {
    let schema = schema_without_store(vec![Arc::new(Account::new("p").with_oauth())]);
    let response = run_as(
        &schema,
        Some(ALICE),
        "{ me { id connections { provider } } }",
        Value::Null,
    )
    .await;
    // `me.id` still answers; only the field needing the store fails.
    assert_eq!(
        response["data"]["me"],
        json!({"id": ALICE, "connections": null})
    );
    assert_eq!(only_error(&response)["code"], "NOT_SUPPORTED");
    assert_eq!(response["errors"][0]["path"], json!(["me", "connections"]));

    for query in [
        r#"mutation { startConnection(provider: "p") { authorizeUrl } }"#,
        r#"mutation { createTransfer(input: {provider: "p", amount: {amount: "5", currency: "USD"}, destinationAccount: "acc"}, idempotencyKey: "k") { id } }"#,
    ] {
        let response = run_as(&schema, Some(ALICE), query, Value::Null).await;
        let error = only_error(&response);
        assert_eq!(error["code"], "NOT_SUPPORTED", "{query}: {response:#}");
        assert!(
            response["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("without a store"),
            "{response:#}"
        );
    }
}
