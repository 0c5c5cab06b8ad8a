//! Webhooks: events a platform pushes to the gateway. An adapter that
//! receives them implements [`WebhookReceiver`] (authenticate the request,
//! parse the event, say what it changed) and returns it from
//! [`Provider::webhooks`](crate::Provider::webhooks); the gateway stores,
//! deduplicates and processes events without knowing any platform.
//! [`HttpSignatures`] is the generic check of draft-cavage HTTP Signatures
//! with HMAC-SHA256, as Bondora signs.

mod signatures;

use std::fmt;

use chrono::{DateTime, Utc};
use http::{HeaderMap, Method};
use serde_json::Value;

use crate::changes::ChangeScope;

pub use signatures::{DEFAULT_MAX_SKEW_SECS, HttpSignatures, REQUIRED_HEADERS, SignatureSettings};

/// A webhook call as received, before anything is trusted.
#[derive(Debug, Clone, Copy)]
pub struct WebhookRequest<'a> {
    pub method: &'a Method,
    /// The path and query as sent (`/webhooks/bondora?x=1`): what the
    /// platform signed as `(request-target)`.
    pub path_and_query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: &'a [u8],
}

/// An authenticated, parsed event.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookEvent {
    /// The platform's event id; the same event delivered twice has the same id.
    pub id: String,
    /// e.g. `auction.published`.
    pub event_type: String,
    pub payload: Value,
}

/// Why a call is refused: `401` when it is not authentic (unsigned, badly
/// signed, stale, digest mismatch), `400` when it is but the body is not an
/// event. `reason` is safe to send back: it never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRejection {
    pub status: u16,
    pub reason: String,
}

impl WebhookRejection {
    pub fn unauthorized(reason: impl Into<String>) -> Self {
        WebhookRejection {
            status: 401,
            reason: reason.into(),
        }
    }

    pub fn bad_request(reason: impl Into<String>) -> Self {
        WebhookRejection {
            status: 400,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for WebhookRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.reason)
    }
}

impl std::error::Error for WebhookRejection {}

/// What a provider that receives webhooks implements.
pub trait WebhookReceiver: Send + Sync {
    /// Authenticates the call and parses its event. Must not touch anything:
    /// the gateway stores the event only when this succeeds.
    fn verify(
        &self,
        request: &WebhookRequest<'_>,
        now: DateTime<Utc>,
    ) -> Result<WebhookEvent, WebhookRejection>;

    /// What an (earlier verified, possibly stored and reloaded) event says
    /// changed upstream; empty for events the gateway has no use for.
    fn changes(&self, event: &WebhookEvent) -> Vec<ChangeScope>;
}
