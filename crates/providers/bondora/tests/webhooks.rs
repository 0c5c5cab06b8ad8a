//! The Bondora adapter's webhook receiver against calls signed by the Bondora
//! simulator's sender, as Bondora signs them: every deliberate flaw of the
//! sender is refused with a 401 and its reason, a good call gives its event.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use finmesh_bondora::BondoraFactory;
use finmesh_core::auth::NoTokens;
use finmesh_core::changes::ChangeScope;
use finmesh_core::registry::{FactoryContext, ProviderFactory};
use finmesh_core::upstream::LocalThrottle;
use finmesh_core::webhook::WebhookRequest;
use finmesh_core::{Provider, ProviderId};
use finmesh_sandbox::bondora::{Signing, WebhookSender};
use finmesh_sandbox::{BondoraConfig, BondoraSandbox};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde_json::json;

const URL: &str = "http://gateway.example:8080/webhooks/bondora?tenant=a";

/// The simulator's sender; `secret` is its Base64 webhook secret.
fn sender(secret: Option<&str>) -> WebhookSender {
    let defaults = BondoraConfig::default();
    BondoraSandbox::new(BondoraConfig {
        auctions: 5,
        investments_per_user: 1,
        bids_per_user: 1,
        secondary_market: 1,
        webhook_secret: secret.map_or(defaults.webhook_secret.clone(), str::to_string),
        ..defaults
    })
    .webhooks()
    .with_url(URL)
}

/// A Bondora provider with the simulator's webhook key, as `secret` spells it.
fn provider(key_id: &str, secret: &str) -> Arc<dyn Provider> {
    let context = FactoryContext {
        user_agent: "finmesh-test/0.0 (https://example.test)".into(),
        connect_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(1),
        throttle: Arc::new(LocalThrottle::new()),
        resilience: Default::default(),
        tokens: Arc::new(NoTokens),
    };
    let config = json!({
        "oauth": {"client_id": "id", "client_secret": "secret",
                  "redirect_uri": "https://gateway.example/connect/bondora/callback"},
        "webhooks": {"keys": {key_id: secret}},
    });
    BondoraFactory
        .build(ProviderId::new("bondora").unwrap(), &config, &context)
        .unwrap()
}

/// The headers the sender would post `body` with (plus the `Content-Length`
/// its HTTP client adds).
fn headers(sender: &WebhookSender, body: &[u8], signing: Signing) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in sender.signed_headers(body, signing, Utc::now()).unwrap() {
        map.append(
            HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).unwrap(),
            HeaderValue::from_str(&value).unwrap(),
        );
    }
    map.insert("content-length", HeaderValue::from(body.len()));
    map
}

fn verify(
    provider: &dyn Provider,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<finmesh_core::webhook::WebhookEvent, finmesh_core::webhook::WebhookRejection> {
    provider.webhooks().unwrap().verify(
        &WebhookRequest {
            method: &Method::POST,
            path_and_query: "/webhooks/bondora?tenant=a",
            headers,
            body,
        },
        Utc::now(),
    )
}

#[test]
fn the_simulators_calls_verify_with_either_reading_of_the_secret() {
    // The simulator HMACs with the Base64-decoded secret, as Bondora's sample
    // receivers do. A receiver given that Base64 text verifies it (decoded
    // reading); one given a plain key verifies a sender whose key is those
    // very bytes (raw reading).
    let (plain, plain_base64) = ("finmesh-plain-key!", "ZmlubWVzaC1wbGFpbi1rZXkh");
    let shown = BondoraConfig::default().webhook_secret;
    for (sender, configured) in [
        (sender(None), shown.as_str()),
        (sender(Some(plain_base64)), plain),
    ] {
        let settings = sender.settings().clone();
        let provider = provider(&settings.key_id, configured);
        let event = sender.next_event();
        let body = serde_json::to_vec(&event).unwrap();
        let verified = verify(
            provider.as_ref(),
            &headers(&sender, &body, Signing::Valid),
            &body,
        )
        .unwrap_or_else(|e| panic!("{configured}: {e}"));
        assert_eq!(verified.id, event.event_id);
        assert_eq!(verified.event_type, "auction.published");
        assert_eq!(verified.payload, event.payload);
        assert_eq!(
            provider.webhooks().unwrap().changes(&verified),
            vec![ChangeScope::Marketplace]
        );
    }
}

#[test]
fn every_flaw_of_the_simulator_is_refused_with_its_reason() {
    let sender = sender(None);
    let settings = sender.settings().clone();
    let provider = provider(&settings.key_id, &settings.secret);
    let body = serde_json::to_vec(&sender.next_event()).unwrap();
    for (signing, reason) in [
        (Signing::Unsigned, "not signed"),
        (Signing::WrongSecret, "does not match"),
        (Signing::StaleDate, "stale"),
        (Signing::FutureDate, "future"),
        (Signing::BadDigest, "Digest does not match"),
        (Signing::UnknownKeyId, "unknown keyId"),
    ] {
        let rejection = verify(provider.as_ref(), &headers(&sender, &body, signing), &body)
            .expect_err(&format!("{signing:?} was accepted"));
        assert_eq!(rejection.status, 401, "{signing:?}");
        assert!(
            rejection.reason.contains(reason),
            "{signing:?}: {}",
            rejection.reason
        );
        assert!(!rejection.reason.contains(&settings.secret));
    }
    // Authentic, but not an event: 400 with what is wrong.
    let garbage = br#"{"EventId": "not-a-uuid", "EventType": "auction.published", "Payload": {}}"#;
    let rejection = verify(
        provider.as_ref(),
        &headers(&sender, garbage, Signing::Valid),
        garbage,
    )
    .unwrap_err();
    assert_eq!(rejection.status, 400);
    assert!(rejection.reason.contains("EventId"), "{}", rejection.reason);
}
