//! Configuration, tenants and validation, without a server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use finmesh_core::model::NewTransfer;
use finmesh_core::registry::FactoryContext;
use finmesh_core::upstream::LocalThrottle;
use finmesh_core::{CallContext, Money, Principal, Provider, ProviderId};
use finmesh_sandbox::bongloy::test_keys;
use serde_json::json;

use super::*;

fn context() -> FactoryContext {
    FactoryContext {
        user_agent: "finmesh-test/0.0 (https://example.test)".into(),
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(2),
        throttle: Arc::new(LocalThrottle::new()),
        resilience: Default::default(),
        tokens: Arc::new(finmesh_core::auth::NoTokens),
    }
}

fn env(name: &str) -> Option<String> {
    match name {
        "BONGLOY_TOKEN" => Some("env-token-s3cr3t".to_string()),
        "BONGLOY_KEY" => Some(test_keys::PARTNER_PRIVATE_KEY_PEM.to_string()),
        "EMPTY" => Some(" ".to_string()),
        _ => None,
    }
}

fn build(table: serde_json::Value) -> Result<Bongloy> {
    Bongloy::from_config(
        ProviderId::new("bongloy").unwrap(),
        &table,
        &context(),
        &env,
    )
}

fn valid() -> serde_json::Value {
    json!({
        "kind": "bongloy",
        "credentials": {
            "main": {"api_token_env": "BONGLOY_TOKEN", "private_key_env": "BONGLOY_KEY"},
            "other": {"api_token": "inline-s3cr3t", "private_key": test_keys::OTHER_PRIVATE_KEY_PEM},
        },
        "principals": {"alice": "main", "bob": "other"},
    })
}

fn field_of(table: serde_json::Value) -> (String, String) {
    let err = build(table).unwrap_err();
    assert_eq!(err.code(), "INVALID_INPUT", "{err:?}");
    (err.field.clone().unwrap_or_default(), err.message)
}

#[test]
fn a_valid_table_builds_with_documented_defaults() {
    let bongloy = build(valid()).unwrap();
    assert_eq!(
        bongloy.upstream.base_url().as_str(),
        "https://agent-network.bongloy.com/"
    );
    assert_eq!(bongloy.page_size, DEFAULT_PAGE_SIZE);
    assert_eq!(bongloy.name(), "Bongloy");
    let caps = bongloy.capabilities().transfers.clone().unwrap();
    assert_eq!(caps.currencies, vec![Currency::USD]);
    assert_eq!(caps.min_amount, Some(Money::from_minor(100, Currency::USD)));
    assert!(caps.list.orders.is_empty());
    assert_eq!(
        caps.list.default_order,
        vec![OrderKey::desc(TransferOrderField::CreatedAt)]
    );
    assert_eq!(bongloy.tenants().collect::<Vec<_>>(), vec!["main", "other"]);
    // No secret in Debug output.
    let debug = format!("{bongloy:?}");
    assert!(
        !debug.contains("s3cr3t") && !debug.contains("PRIVATE"),
        "{debug}"
    );
    // The default throttle: ours, conservative, per tenant.
    let rule = &default_throttle().rules[0];
    assert_eq!((rule.capacity, rule.refill_per_second), (10, 10.0));
    assert!(bongloy.upstream.bucket_for(TRANSFERS, "main").is_some());
}

#[test]
fn configuration_errors_name_the_key() {
    let with = |path: &[&str], value: serde_json::Value| {
        let mut table = valid();
        let mut at = &mut table;
        for key in &path[..path.len() - 1] {
            at = &mut at[*key];
        }
        if value.is_null() {
            at.as_object_mut().unwrap().remove(path[path.len() - 1]);
        } else {
            at[path[path.len() - 1]] = value;
        }
        table
    };
    let cases: Vec<(serde_json::Value, &str, &str)> = vec![
        (
            with(&["colour"], json!("blue")),
            "providers.bongloy",
            "unknown field `colour`",
        ),
        (
            with(&["page_size"], json!(0)),
            "providers.bongloy.page_size",
            "between 1 and 500",
        ),
        (
            with(&["page_size"], json!("ten")),
            "providers.bongloy.page_size",
            "expected u32",
        ),
        (
            with(&["base_url"], json!("not a url")),
            "providers.bongloy.base_url",
            "relative URL",
        ),
        (
            with(&["base_url"], json!("ftp://x/")),
            "providers.bongloy.base_url",
            "http or https",
        ),
        (
            with(
                &["throttle"],
                json!({"rules": [{"name": "x", "capacity": 0, "refill_per_second": 1}]}),
            ),
            "providers.bongloy.throttle",
            "capacity must be at least 1",
        ),
        (
            with(&["credentials"], json!({})),
            "providers.bongloy.credentials",
            "at least one tenant",
        ),
        (
            with(&["credentials", "main", "colour"], json!(1)),
            "providers.bongloy.credentials.main",
            "unknown field `colour`",
        ),
        (
            with(&["credentials", "main", "api_token_env"], json!("MISSING")),
            "providers.bongloy.credentials.main.api_token_env",
            "MISSING is not set",
        ),
        (
            with(&["credentials", "main", "api_token_env"], json!("EMPTY")),
            "providers.bongloy.credentials.main.api_token_env",
            "EMPTY is empty",
        ),
        (
            with(&["credentials", "main", "api_token_env"], json!(null)),
            "providers.bongloy.credentials.main.api_token",
            "set api_token or api_token_env",
        ),
        (
            with(&["credentials", "main", "api_token"], json!("both")),
            "providers.bongloy.credentials.main.api_token_env",
            "not both",
        ),
        (
            with(&["credentials", "main", "private_key_env"], json!(null)),
            "providers.bongloy.credentials.main.private_key_file",
            "set private_key_file or private_key_env",
        ),
        (
            with(
                &["credentials", "main"],
                json!({"api_token": "t", "private_key_file": "/nonexistent/key.pem"}),
            ),
            "providers.bongloy.credentials.main.private_key_file",
            "cannot read /nonexistent/key.pem",
        ),
        (
            with(
                &["credentials", "main", "private_key_file"],
                json!("/nonexistent/key.pem"),
            ),
            "providers.bongloy.credentials.main",
            "set only one of",
        ),
        (
            with(
                &["credentials", "other", "private_key"],
                json!("-----BEGIN PRIVATE KEY-----\nMIIBs3cr3t\n-----END PRIVATE KEY-----"),
            ),
            "providers.bongloy.credentials.other.private_key",
            "not an RSA private key",
        ),
        (
            with(&["credentials", "other", "api_token"], json!(12345)),
            "providers.bongloy.credentials.other.api_token",
            "expected a string",
        ),
        (
            with(&["principals", "carol"], json!("nobody")),
            "providers.bongloy.principals.carol",
            "no tenant \"nobody\"",
        ),
        (
            with(&["default_tenant"], json!("nobody")),
            "providers.bongloy.default_tenant",
            "no tenant \"nobody\"",
        ),
    ];
    for (table, key, says) in cases {
        let (field, message) = field_of(table);
        assert!(
            field.starts_with(key),
            "{field} does not start with {key}: {message}"
        );
        assert!(message.contains("providers.bongloy"), "{message}");
        assert!(message.contains(says), "{message} should say {says:?}");
        for secret in ["s3cr3t", "12345", "MIIB"] {
            assert!(!message.contains(secret), "{message}");
        }
    }
}

#[test]
fn keys_are_read_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key.pem");
    std::fs::write(&path, test_keys::PARTNER_PRIVATE_KEY_PEM).unwrap();
    let mut table = valid();
    table["credentials"]["main"] = json!({"api_token": "t", "private_key_file": path});
    build(table).unwrap();
}

#[test]
fn principals_find_their_tenant() {
    let bongloy = build(valid()).unwrap();
    let ctx = |p: Option<Principal>| CallContext {
        principal: p,
        deadline: tokio::time::Instant::now() + Duration::from_secs(1),
    };
    assert_eq!(
        bongloy
            .tenant_for(&ctx(Some(Principal::new("alice"))))
            .unwrap(),
        "main"
    );
    assert_eq!(
        bongloy
            .tenant_for(&ctx(Some(Principal::new("bob"))))
            .unwrap(),
        "other"
    );
    // A tenant vouched for by the principal's token, when configuration maps none.
    let carol = Principal::new("carol").with_tenant("other");
    assert_eq!(bongloy.tenant_for(&ctx(Some(carol))).unwrap(), "other");
    // Configuration wins over the token.
    let alice = Principal::new("alice").with_tenant("other");
    assert_eq!(bongloy.tenant_for(&ctx(Some(alice))).unwrap(), "main");
    let err = bongloy
        .tenant_for(&ctx(Some(Principal::new("mallory"))))
        .unwrap_err();
    assert_eq!(err.code(), "FORBIDDEN");
    assert_eq!(err.message, "not allowed to use a Bongloy credential");
    let err = bongloy
        .tenant_for(&ctx(Some(Principal::new("mallory").with_tenant("nobody"))))
        .unwrap_err();
    assert_eq!(err.code(), "FORBIDDEN");
    assert_eq!(
        bongloy.tenant_for(&ctx(None)).unwrap_err().code(),
        "UNAUTHENTICATED"
    );

    let mut demo = valid();
    demo["default_tenant"] = json!("main");
    let demo = build(demo).unwrap();
    assert_eq!(
        demo.tenant_for(&ctx(Some(Principal::new("mallory"))))
            .unwrap(),
        "main"
    );
    assert_eq!(
        demo.tenant_for(&ctx(None)).unwrap_err().code(),
        "UNAUTHENTICATED"
    );
}

#[test]
fn validation_adds_the_destination_form() {
    let bongloy = build(valid()).unwrap();
    let transfer = |cents: i64, destination: &str| NewTransfer {
        amount: Money::from_minor(cents, Currency::USD),
        destination_account: destination.to_string(),
        metadata: BTreeMap::new(),
    };
    bongloy
        .validate_transfer(&transfer(100, "002002965"))
        .unwrap();
    bongloy.validate_transfer(&transfer(100, "123456")).unwrap();
    bongloy
        .validate_transfer(&transfer(100, "12345678901234567890"))
        .unwrap();
    for bad in [
        "",
        "12345",
        "123456789012345678901",
        "00200296A",
        " 002002965",
        "002-002-965",
    ] {
        let err = bongloy.validate_transfer(&transfer(100, bad)).unwrap_err();
        assert_eq!(
            err.field.as_deref(),
            Some("input.destinationAccount"),
            "{bad:?}"
        );
        assert_eq!(err.provider.as_ref().map(|p| p.as_str()), Some("bongloy"));
    }
    let err = bongloy
        .validate_transfer(&transfer(99, "002002965"))
        .unwrap_err();
    assert_eq!(err.field.as_deref(), Some("input.amount"));
    let euros = NewTransfer {
        amount: Money::from_minor(1000, Currency::EUR),
        ..transfer(0, "002002965")
    };
    assert_eq!(
        bongloy
            .validate_transfer(&euros)
            .unwrap_err()
            .field
            .as_deref(),
        Some("input.currency")
    );
}

#[test]
fn links_are_followed_only_on_the_transfers_endpoint() {
    let mut table = valid();
    table["base_url"] = json!("https://api.example.com/bongloy");
    let bongloy = build(table).unwrap();
    assert_eq!(
        bongloy.same_endpoint("https://api.example.com/bongloy/v1/transfers?page%5Bnumber%5D=2&filter%5Bstatus%5D=pending"),
        Some(vec![
            ("page[number]".to_string(), "2".to_string()),
            ("filter[status]".to_string(), "pending".to_string())
        ])
    );
    assert!(
        bongloy
            .same_endpoint("/bongloy/v1/transfers?page[number]=2")
            .is_some()
    );
    for elsewhere in [
        "https://evil.example.com/bongloy/v1/transfers?page[number]=2",
        "http://api.example.com/bongloy/v1/transfers",
        "https://api.example.com:8443/bongloy/v1/transfers",
        "https://api.example.com/bongloy/v1/organizations",
        "https://api.example.com/v1/transfers",
    ] {
        assert_eq!(bongloy.same_endpoint(elsewhere), None, "{elsewhere}");
    }
}

#[tokio::test]
async fn ids_are_checked_before_any_request() {
    let bongloy = build(valid()).unwrap();
    let ctx = CallContext::for_principal(Principal::new("alice"), Duration::from_secs(1));
    for bad in [
        "123",
        "../../organizations",
        "3b668cc8-9fea-4673-ac6a-d7f548ec064",
    ] {
        assert_eq!(
            bongloy.transfer(&ctx, bad).await.unwrap_err().code(),
            "INVALID_INPUT"
        );
        assert_eq!(
            bongloy
                .confirm_transfer(&ctx, bad)
                .await
                .unwrap_err()
                .code(),
            "INVALID_INPUT"
        );
        let err = bongloy
            .update_transfer_metadata(&ctx, bad, &BTreeMap::new())
            .await
            .unwrap_err();
        assert_eq!(err.field.as_deref(), Some("id"));
    }
}
