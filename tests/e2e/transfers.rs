//! Transfers through GraphQL in `demo`: the whole life of a transfer with the
//! simulator's balances moving by exactly the amount, exactly-once creation
//! across a dropped connection and a gateway restart, and every documented
//! Bongloy error code surfacing with its code.

use std::collections::HashSet;

use finmesh_e2e::operations::{
    CONFIRM_TRANSFER as CONFIRM, CREATE_TRANSFER as CREATE, transfer_input as input,
};
use finmesh_sandbox::FaultKind;
use finmesh_sandbox::Faults;
use finmesh_sandbox::bongloy::defaults::{
    ACTIVE_DESTINATION, INACTIVE_DESTINATION, PARTNER_ACCOUNT,
};
use finmesh_server::commands::Demo;
use serde_json::{Value, json};
use tokio::net::TcpListener;

async fn demo() -> Demo {
    Demo::start(TcpListener::bind("127.0.0.1:0").await.unwrap())
        .await
        .unwrap()
}

async fn graphql(demo: &Demo, token: &str, query: &str, variables: Value) -> Value {
    finmesh_e2e::graphql_at(&demo.gateway.url(), Some(token), query, variables).await
}

fn code(response: &Value) -> (String, String) {
    let extensions = &response["errors"][0]["extensions"];
    (
        extensions["code"].as_str().unwrap_or_default().to_string(),
        extensions["providerCode"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

#[tokio::test]
async fn a_transfer_lives_its_whole_life_through_graphql() {
    let demo = demo().await;
    let token = demo.token("alice").unwrap();
    let bongloy = &demo.sandboxes.bongloy;
    let (source, destination) = (
        bongloy.balance(PARTNER_ACCOUNT),
        bongloy.balance(ACTIVE_DESTINATION),
    );

    let created = graphql(
        &demo,
        &token,
        CREATE,
        json!({"input": input("25.10", ACTIVE_DESTINATION), "key": "life-1"}),
    )
    .await;
    let transfer = &created["data"]["createTransfer"];
    assert_eq!(transfer["status"], "PENDING", "{created}");
    assert_eq!(
        transfer["amount"],
        json!({"amount": "25.10", "currency": "USD"})
    );
    assert_eq!(transfer["metadata"], json!({"order": "A-17"}));
    let id = transfer["id"].as_str().unwrap().to_string();
    assert!(id.starts_with("bongloy:transfer:"));
    // Nothing moves before confirmation.
    assert_eq!(bongloy.balance(PARTNER_ACCOUNT), source);

    let confirmed = graphql(
        &demo,
        &token,
        CONFIRM,
        json!({"id": id, "key": "life-1-confirm"}),
    )
    .await;
    assert_eq!(
        confirmed["data"]["confirmTransfer"]["status"], "CONFIRMED",
        "{confirmed}"
    );
    assert_eq!(bongloy.balance(PARTNER_ACCOUNT), source - 2510);
    assert_eq!(bongloy.balance(ACTIVE_DESTINATION), destination + 2510);

    let read = graphql(
        &demo,
        &token,
        "query($id: ID!) { transfer(id: $id) { id status destinationAccount } }",
        json!({"id": id}),
    )
    .await;
    assert_eq!(
        read["data"]["transfer"]["destinationAccount"], ACTIVE_DESTINATION,
        "{read}"
    );

    let updated = graphql(
        &demo,
        &token,
        "mutation($id: ID!) { updateTransferMetadata(id: $id, metadata: {order: \"A-18\", note: \"fixed\"}) { metadata } }",
        json!({"id": id}),
    )
    .await;
    assert_eq!(
        updated["data"]["updateTransferMetadata"]["metadata"],
        json!({"note": "fixed", "order": "A-18"}),
        "{updated}"
    );

    let listed = graphql(
        &demo,
        &token,
        "{ transfers(filter: {status: [CONFIRMED, SUCCESSFUL]}, first: 10) { totalCount edges { node { id } } } }",
        json!({}),
    )
    .await;
    let ids: Vec<&str> = listed["data"]["transfers"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id.as_str()], "{listed}");

    // Confirming again under the same key replays; under a new key the platform refuses.
    let replay = graphql(
        &demo,
        &token,
        CONFIRM,
        json!({"id": id, "key": "life-1-confirm"}),
    )
    .await;
    assert_eq!(replay["data"]["confirmTransfer"]["id"], id.as_str());
    let again = graphql(
        &demo,
        &token,
        CONFIRM,
        json!({"id": id, "key": "life-1-confirm-again"}),
    )
    .await;
    assert_eq!(
        code(&again),
        ("CONFLICT".into(), "invalid_transfer".into()),
        "{again}"
    );
    assert_eq!(
        bongloy.balance(PARTNER_ACCOUNT),
        source - 2510,
        "money moved once"
    );
    demo.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_dropped_connection_and_a_restart_still_create_exactly_one_transfer() {
    let mut demo = demo().await;
    let token = demo.token("alice").unwrap();
    // The platform commits the next create, then drops the connection.
    demo.sandboxes.bongloy.set_faults(Faults {
        next: vec![FaultKind::CommitThenDrop],
        ..Faults::default()
    });
    let variables = json!({"input": input("10.00", ACTIVE_DESTINATION), "key": "once-1"});
    let calls = (0..5).map(|_| graphql(&demo, &token, CREATE, variables.clone()));
    let mut answers = futures::future::join_all(calls).await;

    demo = demo.restart_gateway().await.unwrap();
    let calls = (0..5).map(|_| graphql(&demo, &token, CREATE, variables.clone()));
    answers.extend(futures::future::join_all(calls).await);

    let ids: HashSet<String> = answers
        .iter()
        .map(|a| {
            a["data"]["createTransfer"]["id"]
                .as_str()
                .unwrap_or_else(|| panic!("{a}"))
                .to_string()
        })
        .collect();
    assert_eq!(
        ids.len(),
        1,
        "every call answers the same transfer: {ids:?}"
    );
    let upstream = demo
        .sandboxes
        .bongloy
        .transfers()
        .into_iter()
        .filter(|t| t["attributes"]["metadata"]["order"] == "A-17")
        .count();
    assert_eq!(upstream, 1, "exactly one transfer exists upstream");

    // The same key with another request is a conflict, not a second transfer.
    let other = json!({"input": input("11.00", ACTIVE_DESTINATION), "key": "once-1"});
    let conflict = graphql(&demo, &token, CREATE, other).await;
    assert_eq!(code(&conflict).0, "CONFLICT", "{conflict}");
    demo.shutdown().await.unwrap();
}

#[tokio::test]
async fn every_documented_error_code_surfaces_with_its_code() {
    let demo = demo().await;
    let token = demo.token("alice").unwrap();
    let bongloy = &demo.sandboxes.bongloy;
    let mut key = 0;
    let mut create = |amount: &str, destination: &str| {
        key += 1;
        json!({"input": input(amount, destination), "key": format!("err-{key}")})
    };

    // Caught by the gateway before any upstream call: the platform's minimum.
    let small = graphql(&demo, &token, CREATE, create("0.50", ACTIVE_DESTINATION)).await;
    assert_eq!(code(&small).0, "INVALID_INPUT", "{small}");
    assert_eq!(small["errors"][0]["extensions"]["field"], "input.amount");

    // Codes only the platform knows, each with Bongloy's own code kept.
    let not_found = graphql(&demo, &token, CREATE, create("5.00", "009999999")).await;
    assert_eq!(
        code(&not_found),
        (
            "INVALID_INPUT".into(),
            "destination_account_not_found".into()
        ),
        "{not_found}"
    );
    let inactive = graphql(&demo, &token, CREATE, create("5.00", INACTIVE_DESTINATION)).await;
    assert_eq!(
        code(&inactive),
        (
            "INVALID_INPUT".into(),
            "destination_account_is_not_active".into()
        )
    );

    bongloy.set_balance(PARTNER_ACCOUNT, 300);
    let poor = graphql(&demo, &token, CREATE, create("5.00", ACTIVE_DESTINATION)).await;
    let id = poor["data"]["createTransfer"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let refused = graphql(
        &demo,
        &token,
        CONFIRM,
        json!({"id": id, "key": "err-confirm-1"}),
    )
    .await;
    assert_eq!(
        code(&refused),
        ("CONFLICT".into(), "insufficient_balance".into()),
        "{refused}"
    );

    bongloy.set_balance(PARTNER_ACCOUNT, 100_000_000);
    let big = graphql(
        &demo,
        &token,
        CREATE,
        create("10000.01", ACTIVE_DESTINATION),
    )
    .await;
    let id = big["data"]["createTransfer"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let limited = graphql(
        &demo,
        &token,
        CONFIRM,
        json!({"id": id, "key": "err-confirm-2"}),
    )
    .await;
    assert_eq!(
        code(&limited),
        (
            "CONFLICT".into(),
            "destination_account_daily_transfer_limit_exceeded".into()
        ),
        "{limited}"
    );
    demo.shutdown().await.unwrap();
}
