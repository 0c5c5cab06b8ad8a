//! Bondora's webhook calls: HTTP Signatures with HMAC-SHA256 (checked by
//! core's [`HttpSignatures`]) around a JSON event
//! `{"EventId": "<uuid>", "EventType": "auction.published", "Payload": {…}}`.
//! Bondora may deliver an event more than once; the gateway deduplicates by
//! `EventId`, which is normalized here (lowercase, hyphenated) so that two
//! spellings of one UUID are one event.

use chrono::{DateTime, Utc};
use finmesh_core::changes::ChangeScope;
use finmesh_core::webhook::{
    HttpSignatures, WebhookEvent, WebhookReceiver, WebhookRejection, WebhookRequest,
};
use serde::Deserialize;
use serde_json::Value;

/// A new auction is open for bids: the primary market changed.
const AUCTION_PUBLISHED: &str = "auction.published";
/// Longest `EventType` accepted (Bondora's are short dotted names).
const MAX_EVENT_TYPE_LEN: usize = 100;

pub(crate) struct BondoraWebhooks {
    signatures: HttpSignatures,
}

/// The event as Bondora posts it.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Wire {
    event_id: String,
    event_type: String,
    #[serde(default)]
    payload: Value,
}

impl BondoraWebhooks {
    pub(crate) fn new(signatures: HttpSignatures) -> Self {
        BondoraWebhooks { signatures }
    }
}

impl WebhookReceiver for BondoraWebhooks {
    fn verify(
        &self,
        request: &WebhookRequest<'_>,
        now: DateTime<Utc>,
    ) -> Result<WebhookEvent, WebhookRejection> {
        self.signatures.verify(request, now)?;
        parse(request.body)
    }

    fn changes(&self, event: &WebhookEvent) -> Vec<ChangeScope> {
        match event.event_type.as_str() {
            AUCTION_PUBLISHED => vec![ChangeScope::Marketplace],
            _ => Vec::new(),
        }
    }
}

/// The event, or a 400 that says what is wrong with the body.
fn parse(body: &[u8]) -> Result<WebhookEvent, WebhookRejection> {
    let bad = |reason: String| WebhookRejection::bad_request(reason);
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let wire: Wire = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            bad(format!("the body is not JSON: {inner}"))
        } else if path == "." {
            bad(format!("the body is not a Bondora event: {inner}"))
        } else {
            bad(format!("{path}: {inner}"))
        }
    })?;
    deserializer
        .end()
        .map_err(|error| bad(format!("the body is not JSON: {error}")))?;
    let id = uuid::Uuid::parse_str(wire.event_id.trim()).map_err(|_| {
        bad(format!(
            "EventId: {:?} is not a UUID",
            shorten(&wire.event_id)
        ))
    })?;
    let event_type = wire.event_type.trim();
    if event_type.is_empty()
        || event_type.len() > MAX_EVENT_TYPE_LEN
        || event_type.chars().any(char::is_control)
    {
        return Err(bad(format!(
            "EventType: must be 1 to {MAX_EVENT_TYPE_LEN} characters without control characters"
        )));
    }
    Ok(WebhookEvent {
        id: id.hyphenated().to_string(),
        event_type: event_type.to_string(),
        payload: wire.payload,
    })
}

fn shorten(value: &str) -> String {
    value.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reason(body: &str) -> String {
        let rejection = parse(body.as_bytes()).unwrap_err();
        assert_eq!(rejection.status, 400, "{body}");
        rejection.reason
    }

    #[test]
    fn events_parse_and_say_what_changed() {
        // As posted (not `json!`, whose float literal would drop the zero).
        let body = br#"{"EventId": "15848B4E-FF56-4DE3-9B5F-A92E01171453",
            "EventType": "auction.published",
            "Payload": {"AuctionId": "3035068d-ac57-4e7c-a734-a92f00e0f5b2", "Amount": 1234.50}}"#;
        let event = parse(body).unwrap();
        assert_eq!(event.id, "15848b4e-ff56-4de3-9b5f-a92e01171453");
        assert_eq!(event.event_type, "auction.published");
        // Exact numbers stay exact.
        assert_eq!(event.payload["Amount"].to_string(), "1234.50");
        let signatures =
            HttpSignatures::new(&serde_json::from_value(json!({"keys": {"k": "s"}})).unwrap())
                .unwrap();
        let receiver = BondoraWebhooks::new(signatures);
        assert_eq!(receiver.changes(&event), vec![ChangeScope::Marketplace]);
        let other = WebhookEvent {
            event_type: "bid.accepted".into(),
            ..event
        };
        assert!(receiver.changes(&other).is_empty());
    }

    #[test]
    fn malformed_bodies_say_what_is_wrong() {
        assert!(reason("{\"EventId\": ").contains("not JSON"));
        assert!(reason("[]").contains("not a Bondora event"));
        assert!(reason("{\"EventType\": \"auction.published\"}").contains("`EventId`"));
        assert!(
            reason("{\"EventId\": \"nope\", \"EventType\": \"auction.published\"}")
                .contains("EventId: \"nope\" is not a UUID")
        );
        assert!(
            reason("{\"EventId\": 5, \"EventType\": \"x\"}").starts_with("EventId: invalid type")
        );
        assert!(
            reason("{\"EventId\": \"15848b4e-ff56-4de3-9b5f-a92e01171453\", \"EventType\": \"\"}")
                .starts_with("EventType:")
        );
        assert!(
            reason(
                "{\"EventId\": \"15848b4e-ff56-4de3-9b5f-a92e01171453\", \"EventType\": \"x\"} {}"
            )
            .contains("not JSON")
        );
    }
}
