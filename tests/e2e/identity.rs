//! Identity and persistence, on SQLite and PostgreSQL: principals link their
//! Zonky accounts through the OAuth flow over HTTP, then read their own
//! investments and portfolio; isolation, refresh, and secrets at rest.

use std::collections::HashSet;

use finmesh_e2e::operations::{INVESTMENTS, PORTFOLIO};
use finmesh_e2e::{Stack, error_extensions, token};
use finmesh_sandbox::ZonkyConfig;
use finmesh_store::testing::test_databases;
use finmesh_store::{SecretCipher, Store};
use rust_decimal::Decimal;
use serde_json::{Value, json};

fn decimal(value: &Value) -> Decimal {
    match value {
        Value::String(text) => text.parse().unwrap(),
        number => number.to_string().parse().unwrap(),
    }
}

/// Every investment the principal sees, following cursors.
async fn all_investments(stack: &Stack, token: &str) -> Vec<Value> {
    let mut after = Value::Null;
    let mut all = Vec::new();
    loop {
        let page = stack
            .graphql_as(Some(token), INVESTMENTS, json!({ "after": after }))
            .await;
        assert!(page["errors"].is_null(), "{page}");
        let connection = &page["data"]["investments"];
        all.extend(
            connection["edges"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["node"].clone()),
        );
        if connection["pageInfo"]["hasNextPage"] != true {
            return all;
        }
        after = connection["pageInfo"]["endCursor"].clone();
    }
}

fn config() -> ZonkyConfig {
    ZonkyConfig {
        loans: 400,
        ..ZonkyConfig::default()
    }
}

#[tokio::test]
async fn connected_principals_see_their_own_investments_and_portfolio() {
    for database in test_databases().await {
        let stack = Stack::with_identity(config(), &database.url, "").await;
        let sandbox = stack.sandbox("zonky");
        let (alice, bob, carol) = (token("alice"), token("bob"), token("carol"));

        let callback = stack.connect(&alice, "zonky", "alice").await;
        let status = callback.status();
        let body = callback.json::<Value>().await.unwrap();
        assert_eq!(status, 200, "{} {body}", database.label);
        assert_eq!(body["connected"], "zonky");
        assert_eq!(stack.connect(&bob, "zonky", "bob").await.status(), 200);

        let me = stack
            .graphql_as(
                Some(&alice),
                "{ me { id connections { provider status scopes } } }",
                json!({}),
            )
            .await;
        assert_eq!(me["data"]["me"]["id"], "alice", "{me}");
        assert_eq!(me["data"]["me"]["connections"][0]["status"], "ACTIVE");

        // Alice's investments are exactly the simulator's, amounts to the cent.
        let served = all_investments(&stack, &alice).await;
        let expected = sandbox.investments("alice");
        let ids = |items: &[Value], field: &str| -> HashSet<String> {
            items
                .iter()
                .map(|i| {
                    i[field]
                        .as_str()
                        .map_or_else(|| i[field].to_string(), str::to_string)
                })
                .collect()
        };
        let expected_ids: HashSet<String> = expected
            .iter()
            .map(|i| format!("zonky:investment:{}", i["id"]))
            .collect();
        assert_eq!(ids(&served, "id"), expected_ids, "{}", database.label);
        let served_unpaid: Decimal = served
            .iter()
            .map(|i| decimal(&i["principalUnpaid"]["amount"]))
            .sum();
        let expected_unpaid: Decimal = expected
            .iter()
            .map(|i| decimal(&i["principal"]["unpaid"]))
            .sum();
        assert_eq!(served_unpaid, expected_unpaid);

        // The portfolio matches the simulator's summary.
        let portfolio = stack.graphql_as(Some(&alice), PORTFOLIO, json!({})).await;
        assert!(portfolio["errors"].is_null(), "{portfolio}");
        let entry = &portfolio["data"]["portfolio"][0];
        let summary = sandbox.investment_summary("alice");
        assert_eq!(entry["provider"], "zonky");
        assert_eq!(entry["currency"], "CZK");
        assert_eq!(entry["investments"], summary["investmentsCount"]);
        assert_eq!(
            decimal(&entry["principalOutstanding"]),
            decimal(&summary["principalRemaining"])
        );
        assert_eq!(
            decimal(&entry["principalRepaid"]),
            decimal(&summary["principalPaid"])
        );
        assert_eq!(
            decimal(&entry["interestRepaid"]),
            decimal(&summary["interestPaid"])
        );

        // Bob sees his own, never Alice's, also after Alice's answers were served.
        let bobs = all_investments(&stack, &bob).await;
        let bob_expected: HashSet<String> = sandbox
            .investments("bob")
            .iter()
            .map(|i| format!("zonky:investment:{}", i["id"]))
            .collect();
        assert_eq!(ids(&bobs, "id"), bob_expected);
        let alices_id = served[0]["id"].as_str().unwrap();
        let peek = stack
            .graphql_as(
                Some(&bob),
                "query($id: ID!) { investment(id: $id) { id } }",
                json!({"id": alices_id}),
            )
            .await;
        assert!(peek["data"]["investment"].is_null(), "{peek}");
        assert_eq!(error_extensions(&peek)[0]["code"], "NOT_FOUND");

        // Carol never connected; anonymous callers are not anyone.
        let carols = stack.graphql_as(Some(&carol), INVESTMENTS, json!({})).await;
        assert_eq!(
            error_extensions(&carols)[0]["code"],
            "NOT_CONNECTED",
            "{carols}"
        );
        assert_eq!(error_extensions(&carols)[0]["provider"], "zonky");
        let anonymous = stack.graphql(PORTFOLIO, json!({})).await;
        assert!(
            error_extensions(&anonymous)
                .iter()
                .any(|e| e["code"] == "UNAUTHENTICATED"),
            "{anonymous}"
        );

        // No token, client secret or key is in the database in clear.
        let store = Store::connect(&database.url, SecretCipher::generate_for_demo())
            .await
            .unwrap();
        let mut raw = Vec::new();
        for table in ["connections", "oauth_states", "audit_log", "principals"] {
            raw.extend(
                finmesh_store::testing::raw_rows(&store, table)
                    .await
                    .unwrap(),
            );
        }
        let raw = raw.join("\n");
        assert!(
            raw.contains("v1.test."),
            "tokens are stored encrypted under the configured key"
        );
        for secret in sandbox.oauth().issued_tokens() {
            assert!(
                !raw.contains(&secret),
                "a token is stored in clear ({})",
                database.label
            );
        }
        for secret in [
            "mujrobot",
            finmesh_e2e::ENCRYPTION_KEY,
            finmesh_e2e::SIGNING_SECRET,
        ] {
            assert!(!raw.contains(secret), "{secret} is stored in clear");
        }
        store.close().await;
        stack.shutdown().await;
    }
}

#[tokio::test]
async fn fifty_concurrent_queries_after_expiry_refresh_once() {
    let database = test_databases().await.remove(0);
    let mut config = config();
    config.oauth.access_token_ttl_secs = 60;
    let stack = Stack::with_identity(config, &database.url, "").await;
    let alice = token("alice");
    assert_eq!(stack.connect(&alice, "zonky", "alice").await.status(), 200);
    let oauth = stack.sandbox("zonky").oauth();
    assert_eq!(oauth.token_stats().refresh_token, 0);

    // The platform's clock passes the token's expiry.
    oauth.advance_time(std::time::Duration::from_secs(120));
    let queries = (0..50).map(|_| stack.graphql_as(Some(&alice), PORTFOLIO, json!({})));
    let answers = futures::future::join_all(queries).await;
    for answer in &answers {
        assert!(answer["errors"].is_null(), "{answer}");
    }
    assert_eq!(
        oauth.token_stats().refresh_token,
        1,
        "one refresh for fifty callers"
    );
    stack.shutdown().await;
}

#[tokio::test]
async fn bad_tokens_and_bad_callbacks_are_refused_and_store_nothing() {
    let database = test_databases().await.remove(0);
    let stack = Stack::with_identity(config(), &database.url, "").await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();

    // Forged, expired and wrong-algorithm frontend tokens.
    // Another signature: flip a character in its middle (the last one may be padding bits).
    let forged = {
        let t = token("alice");
        let at = t.rfind('.').unwrap() + 10;
        let flipped = if &t[at..=at] == "A" { "B" } else { "A" };
        format!("{}{flipped}{}", &t[..at], &t[at + 1..])
    };
    let expired = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": "alice", "exp": chrono::Utc::now().timestamp() - 600}),
        &jsonwebtoken::EncodingKey::from_secret(finmesh_e2e::SIGNING_SECRET.as_bytes()),
    )
    .unwrap();
    let wrong_alg = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS384),
        &json!({"sub": "alice", "exp": chrono::Utc::now().timestamp() + 600}),
        &jsonwebtoken::EncodingKey::from_secret(finmesh_e2e::SIGNING_SECRET.as_bytes()),
    )
    .unwrap();
    for (bad, reason) in [
        (forged, "signature"),
        (expired, "expired"),
        (wrong_alg, "algorithm"),
    ] {
        let response = client
            .post(format!("{}/graphql", stack.url()))
            .bearer_auth(&bad)
            .json(&json!({"query": "{ me { id } }"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["errors"][0]["extensions"]["code"], "UNAUTHENTICATED");
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains(reason),
            "{body}"
        );
    }

    // A callback without code, with an unknown state, or replayed.
    let callback = |query: &str| {
        client
            .get(format!("{}/connect/zonky/callback?{query}", stack.url()))
            .send()
    };
    let missing = callback("state=abc").await.unwrap();
    assert_eq!(missing.status(), 400);
    assert_eq!(
        missing.json::<Value>().await.unwrap()["error"]["field"],
        "code"
    );
    let foreign = callback("code=x&state=not-issued-here").await.unwrap();
    assert_eq!(foreign.status(), 400);
    assert_eq!(
        foreign.json::<Value>().await.unwrap()["error"]["field"],
        "state"
    );
    let denied = callback("error=access_denied&state=abc").await.unwrap();
    assert_eq!(denied.status(), 403);

    let alice = token("alice");
    let started = stack
        .graphql_as(
            Some(&alice),
            "mutation { startConnection(provider: \"zonky\") { authorizeUrl } }",
            json!({}),
        )
        .await;
    let authorize = started["data"]["startConnection"]["authorizeUrl"]
        .as_str()
        .unwrap()
        .to_string();
    let approved = client
        .get(format!("{authorize}&sandbox_user=alice"))
        .send()
        .await
        .unwrap();
    let back = approved.headers()["location"].to_str().unwrap().to_string();
    assert_eq!(client.get(&back).send().await.unwrap().status(), 200);
    let replay = client.get(&back).send().await.unwrap();
    assert_eq!(replay.status(), 400, "a replayed state is refused");

    // Nothing was stored for the failures: only Alice's one connection exists.
    let store = Store::connect(&database.url, SecretCipher::generate_for_demo())
        .await
        .unwrap();
    let connections = finmesh_store::testing::raw_rows(&store, "connections")
        .await
        .unwrap();
    assert_eq!(connections.len(), 1);
    store.close().await;
    stack.shutdown().await;
}
