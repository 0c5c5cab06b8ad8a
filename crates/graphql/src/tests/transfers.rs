//! Transfers through the schema: exactly-once writes over a SQLite store,
//! listing, and the checks made before anything goes upstream.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use super::account::{ALICE, Account, run_as, schema_with_store};
use super::only_error;

const CREATE: &str = "mutation($input: CreateTransferInput!, $key: String!) {
  createTransfer(input: $input, idempotencyKey: $key) {
    id provider nativeId amount { amount currency } destinationAccount status statusRaw metadata
    createdAt updatedAt confirmedAt expiresAt raw
  }
}";

fn input() -> Value {
    json!({
        "provider": "p",
        "amount": {"amount": "25.50", "currency": "USD"},
        "destinationAccount": "acc-1",
        "metadata": {"orderId": "A-1001"}
    })
}

#[tokio::test]
async fn create_confirm_update_read_and_list_exactly_once() {
    let provider = Arc::new(Account::new("p"));
    let (schema, _store) = schema_with_store(vec![provider.clone()]).await;

    let vars = json!({"input": input(), "key": "order-A-1001"});
    let created = run_as(&schema, Some(ALICE), CREATE, vars.clone()).await;
    assert!(created.get("errors").is_none(), "{created:#}");
    let transfer = &created["data"]["createTransfer"];
    assert_eq!(transfer["id"], "p:transfer:t1");
    assert_eq!(
        transfer["amount"],
        json!({"amount": "25.50", "currency": "USD"})
    );
    assert_eq!(transfer["status"], "PENDING");
    assert_eq!(transfer["statusRaw"], Value::Null);
    // The gateway's own marker is not the caller's metadata.
    assert_eq!(transfer["metadata"], json!({"orderId": "A-1001"}));

    // The same key and input: the recorded answer, no second transfer.
    let again = run_as(&schema, Some(ALICE), CREATE, vars).await;
    assert_eq!(again["data"]["createTransfer"]["id"], "p:transfer:t1");
    assert_eq!(provider.created.load(Ordering::SeqCst), 1);
    // The same key with other input is a conflict.
    let mut other = input();
    other["amount"]["amount"] = json!("30.00");
    let conflict = run_as(
        &schema,
        Some(ALICE),
        CREATE,
        json!({"input": other, "key": "order-A-1001"}),
    )
    .await;
    assert_eq!(
        only_error(&conflict),
        &json!({"code": "CONFLICT", "field": "idempotencyKey"})
    );

    let confirm = r#"mutation { confirmTransfer(id: "p:transfer:t1", idempotencyKey: "confirm-1") { id status confirmedAt } }"#;
    let confirmed = run_as(&schema, Some(ALICE), confirm, Value::Null).await;
    assert!(confirmed.get("errors").is_none(), "{confirmed:#}");
    assert_eq!(confirmed["data"]["confirmTransfer"]["status"], "CONFIRMED");
    assert!(confirmed["data"]["confirmTransfer"]["confirmedAt"].is_string());

    let update = r#"mutation($metadata: JSON!) { updateTransferMetadata(id: "p:transfer:t1", metadata: $metadata) { metadata raw } }"#;
    let updated = run_as(
        &schema,
        Some(ALICE),
        update,
        json!({"metadata": {"orderId": "A-1001", "note": "paid"}}),
    )
    .await;
    assert!(updated.get("errors").is_none(), "{updated:#}");
    assert_eq!(
        updated["data"]["updateTransferMetadata"]["metadata"],
        json!({"orderId": "A-1001", "note": "paid"})
    );

    let read = run_as(
        &schema,
        Some(ALICE),
        r#"{ transfer(id: "p:transfer:t1") { id status metadata } }"#,
        Value::Null,
    )
    .await;
    assert_eq!(
        read["data"]["transfer"],
        json!({"id": "p:transfer:t1", "status": "CONFIRMED", "metadata": {"orderId": "A-1001", "note": "paid"}})
    );

    // A second transfer, then lists by status and by time (both bounds inclusive).
    let second = run_as(
        &schema,
        Some(ALICE),
        CREATE,
        json!({"input": input(), "key": "order-A-1002"}),
    )
    .await;
    let second = &second["data"]["createTransfer"];
    assert_eq!(second["id"], "p:transfer:t2");
    let list = "query($filter: TransferFilter) { transfers(filter: $filter) { totalCount edges { node { id status } } } }";
    let all = run_as(&schema, Some(ALICE), list, Value::Null).await;
    assert!(all.get("errors").is_none(), "{all:#}");
    assert_eq!(
        all["data"]["transfers"]["edges"],
        json!([
            {"node": {"id": "p:transfer:t2", "status": "PENDING"}},
            {"node": {"id": "p:transfer:t1", "status": "CONFIRMED"}}
        ])
    );
    let pending = run_as(
        &schema,
        Some(ALICE),
        list,
        json!({"filter": {"status": ["PENDING"]}}),
    )
    .await;
    assert_eq!(pending["data"]["transfers"]["totalCount"], 1);
    let created_at = second["createdAt"].clone();
    let exact = run_as(
        &schema,
        Some(ALICE),
        list,
        json!({"filter": {"from": created_at, "to": created_at}}),
    )
    .await;
    assert_eq!(
        exact["data"]["transfers"]["edges"],
        json!([{"node": {"id": "p:transfer:t2", "status": "PENDING"}}]),
        "{exact:#}"
    );
}

#[tokio::test]
async fn bad_transfer_input_is_invalid_input_naming_the_field() {
    let provider = Arc::new(Account::new("p"));
    let (schema, _store) = schema_with_store(vec![provider.clone()]).await;
    let with = |change: &dyn Fn(&mut Value)| {
        let mut input = input();
        change(&mut input);
        json!({"input": input, "key": "k-1"})
    };
    let cases = [
        (
            with(&|i| i["metadata"] = json!({"orderId": 1001})),
            "input.metadata",
        ),
        (
            with(&|i| i["metadata"] = json!({"nested": {"a": "b"}})),
            "input.metadata",
        ),
        (
            with(&|i| i["metadata"] = json!(["orderId"])),
            "input.metadata",
        ),
        (
            with(&|i| i["metadata"] = json!("orderId=1")),
            "input.metadata",
        ),
        (
            with(&|i| i["metadata"] = json!({"finmesh_idempotency_key": "x"})),
            "input.metadata",
        ),
        (
            with(&|i| i["provider"] = json!("Not A Provider")),
            "input.provider",
        ),
        (
            with(&|i| i["provider"] = json!("elsewhere")),
            "input.provider",
        ),
        (
            with(&|i| i["destinationAccount"] = json!("  ")),
            "input.destinationAccount",
        ),
        (
            with(&|i| i["amount"]["currency"] = json!("usd")),
            "input.amount.currency",
        ),
        (
            with(&|i| i["amount"]["amount"] = json!("-5")),
            "input.amount",
        ),
        (
            with(&|i| i["amount"]["amount"] = json!("0.50")),
            "input.amount",
        ),
        (json!({"input": input(), "key": ""}), "idempotencyKey"),
        (json!({"input": input(), "key": "   "}), "idempotencyKey"),
        (json!({"input": input(), "key": "a\nb"}), "idempotencyKey"),
        (
            json!({"input": input(), "key": "k".repeat(256)}),
            "idempotencyKey",
        ),
    ];
    for (vars, field) in cases {
        let response = run_as(&schema, Some(ALICE), CREATE, vars.clone()).await;
        let extensions = only_error(&response);
        assert_eq!(extensions["code"], "INVALID_INPUT", "{vars}: {response:#}");
        assert_eq!(extensions["field"], field, "{vars}: {response:#}");
    }
    assert_eq!(provider.created.load(Ordering::SeqCst), 0);

    let cases = [
        (
            r#"mutation { confirmTransfer(id: "p:loan:1", idempotencyKey: "k") { id } }"#,
            "id",
        ),
        (
            r#"mutation { confirmTransfer(id: "garbage", idempotencyKey: "k") { id } }"#,
            "id",
        ),
        (
            r#"mutation { confirmTransfer(id: "p:transfer:t1", idempotencyKey: "") { id } }"#,
            "idempotencyKey",
        ),
        (
            r#"mutation { updateTransferMetadata(id: "p:investment:1", metadata: {}) { id } }"#,
            "id",
        ),
        (
            r#"mutation { updateTransferMetadata(id: "p:transfer:t1", metadata: {a: 1}) { id } }"#,
            "metadata",
        ),
        (
            r#"mutation { updateTransferMetadata(id: "p:transfer:t1", metadata: [1]) { id } }"#,
            "metadata",
        ),
        (r#"{ transfer(id: "p:offer:1") { id } }"#, "id"),
        (r#"{ investment(id: "p:transfer:1") { id } }"#, "id"),
        (
            "{ transfers(filter: {status: [OTHER]}) { totalCount } }",
            "filter.status",
        ),
        (
            r#"{ transfers(filter: {from: "2025-01-02T00:00:00Z", to: "2025-01-01T00:00:00Z"}) { totalCount } }"#,
            "filter.to",
        ),
        (
            "{ investments(filter: {statuses: [OTHER]}) { totalCount } }",
            "filter.statuses",
        ),
        (
            r#"{ investments(filter: {principalUnpaid: {gt: "-1"}}) { totalCount } }"#,
            "filter.principalUnpaid.gt",
        ),
        (
            "{ investments(orderBy: [{field: INTEREST_RATE}, {field: INTEREST_RATE}]) { totalCount } }",
            "orderBy",
        ),
        (
            r#"{ secondaryMarket(filter: {currency: "eur"}) { totalCount } }"#,
            "filter.currency",
        ),
    ];
    for (query, field) in cases {
        let response = run_as(&schema, Some(ALICE), query, Value::Null).await;
        let extensions = only_error(&response);
        assert_eq!(extensions["code"], "INVALID_INPUT", "{query}: {response:#}");
        assert_eq!(extensions["field"], field, "{query}: {response:#}");
    }
}

#[tokio::test]
async fn an_unknown_transfer_is_not_found() {
    let (schema, _store) = schema_with_store(vec![Arc::new(Account::new("p"))]).await;
    let response = run_as(
        &schema,
        Some(ALICE),
        r#"{ transfer(id: "p:transfer:t9") { id } }"#,
        Value::Null,
    )
    .await;
    assert_eq!(response["data"]["transfer"], Value::Null);
    assert_eq!(
        only_error(&response),
        &json!({"code": "NOT_FOUND", "provider": "p"})
    );
}

#[tokio::test]
async fn amounts_sent_as_json_numbers_keep_every_digit() {
    let (schema, _store) = schema_with_store(vec![Arc::new(Account::new("p"))]).await;
    let mut input = input();
    input["amount"]["amount"] = serde_json::from_str("12345678901234.57").unwrap();
    let response = run_as(
        &schema,
        Some(ALICE),
        CREATE,
        json!({"input": input, "key": "big"}),
    )
    .await;
    assert_eq!(
        response["data"]["createTransfer"]["amount"]["amount"], "12345678901234.57",
        "{response:#}"
    );
    // More digits than an exact decimal holds: refused, not rounded.
    let mut input = self::input();
    input["amount"]["amount"] = json!("1.00000000000000000000000000001");
    let response = run_as(
        &schema,
        Some(ALICE),
        CREATE,
        json!({"input": input, "key": "long"}),
    )
    .await;
    assert!(only_error(&response)["code"].is_string(), "{response:#}");
    assert_eq!(response["data"], Value::Null);
}
