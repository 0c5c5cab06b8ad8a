//! Bondora's webhook calls: `auction.published` events posted to a configured
//! URL and signed with HTTP Signatures (draft-cavage), as the providers README
//! and Bondora's sample receivers (`Bondora/webhooksample-python`,
//! `Bondora/webhooksample-aspnetcore`) check them.
//!
//! A delivery is `POST <url>` with the JSON body
//! `{"EventId": "<uuid>", "EventType": "auction.published", "Payload": {…AuctionExtended…}}`
//! and the headers `Host`, `Date` (RFC 7231), `Content-Type: application/json`,
//! `Content-Length`, `Digest: SHA-256=<base64 of sha256(body)>` and
//! ```text
//! Signature: keyId="<key id>",algorithm="hmac-sha256",headers="(request-target) host date content-type content-length digest",signature="<base64>"
//! ```
//! where the signature is HMAC-SHA256 over the lines `(request-target): post
//! /path?query`, `host: …`, `date: …`, `content-type: …`, `content-length: …`,
//! `digest: …` joined by `\n`. The HMAC key is the secret **Base64-decoded**:
//! Bondora shows webhook secrets in Base64 and its sample receivers decode
//! them before use.
//!
//! Each published event also adds its auction to `GET /api/v1/auctions`.
//! Deliveries are sequential. One that fails (a non-2xx answer or no answer
//! within the timeout) is tried again, freshly dated and signed, after a
//! backoff that doubles from the configured one, up to the configured number
//! of attempts.

use std::{fmt, sync::Arc, time::Duration};

use base64::{Engine, engine::general_purpose::STANDARD};
use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, Mac};
use rand::Rng;
use reqwest::{Client, header::HeaderMap, header::HeaderName, header::HeaderValue};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use url::Url;

use super::api::Market;

/// The signed headers, in the order Bondora lists them.
pub const SIGNED_HEADERS: &str = "(request-target) host date content-type content-length digest";

/// Where and how the webhook sender posts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookSettings {
    pub url: Option<String>,
    pub key_id: String,
    /// Base64, as Bondora shows it.
    pub secret: String,
    pub max_attempts: u32,
    pub retry_backoff_ms: u64,
    pub timeout_ms: u64,
}

/// An event as posted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct WebhookEvent {
    pub event_id: String,
    pub event_type: String,
    pub payload: Value,
}

/// A deliberate flaw in one delivery, for testing receivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signing {
    /// Signed as Bondora signs.
    Valid,
    /// Signed with another secret.
    WrongSecret,
    /// Dated (and signed) an hour ago.
    StaleDate,
    /// Dated (and signed) an hour ahead.
    FutureDate,
    /// A `Digest` of another body (the signature covers that wrong digest).
    BadDigest,
    /// No `Signature` header at all.
    Unsigned,
    /// Signed with the right secret under a `keyId` the receiver does not know.
    UnknownKeyId,
}

/// What [`WebhookSender::send_events`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookReport {
    /// Distinct events generated (and published).
    pub events: usize,
    /// Deliveries that repeated an event already sent (same `EventId`).
    pub duplicates_sent: usize,
    /// Deliveries (first sends and duplicates) that ended with a 2xx answer.
    pub delivered: usize,
    /// Attempts beyond each delivery's first.
    pub retried: usize,
    /// Deliveries that never got a 2xx answer.
    pub failed: usize,
    /// Every POST made.
    pub attempts: usize,
    /// The distinct events' ids, in the order first sent.
    pub event_ids: Vec<String>,
}

/// Why the sender could not send.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WebhookError {
    /// No webhook URL is configured.
    NoUrl,
    InvalidUrl(String),
    /// The secret is not Base64.
    InvalidSecret,
    /// `duplicate_ratio` is not between 0 and 1.
    InvalidRatio,
    /// The request could not be built (a header value, the client).
    Request(String),
}

impl fmt::Display for WebhookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoUrl => f.write_str("no webhook URL is configured"),
            Self::InvalidUrl(url) => write!(f, "not an absolute http(s) URL: {url}"),
            Self::InvalidSecret => f.write_str("the webhook secret is not Base64"),
            Self::InvalidRatio => f.write_str("duplicate_ratio must be between 0 and 1"),
            Self::Request(why) => write!(f, "cannot build the webhook request: {why}"),
        }
    }
}

impl std::error::Error for WebhookError {}

/// The outcome of one POST.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attempt {
    /// The receiver answered this status.
    Answered(u16),
    /// No answer: connection refused or reset, or the timeout passed.
    NoAnswer(String),
}

impl Attempt {
    pub fn succeeded(&self) -> bool {
        matches!(self, Self::Answered(status) if (200..300).contains(status))
    }
}

/// Sends Bondora webhook events. Cheap to clone.
#[derive(Clone)]
pub struct WebhookSender {
    market: Arc<Market>,
    settings: WebhookSettings,
    client: Client,
}

impl fmt::Debug for WebhookSender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSender")
            .field("url", &self.settings.url)
            .field("key_id", &self.settings.key_id)
            .finish_non_exhaustive()
    }
}

/// A parsed target.
struct Target {
    url: Url,
    host: String,
    request_target: String,
}

impl WebhookSender {
    pub(crate) fn new(market: Arc<Market>, settings: WebhookSettings) -> Self {
        let client = Client::builder()
            .timeout(Duration::from_millis(settings.timeout_ms.max(1)))
            .build()
            .unwrap_or_default();
        Self {
            market,
            settings,
            client,
        }
    }

    /// The same sender posting to `url`.
    pub fn with_url(&self, url: impl Into<String>) -> Self {
        let mut sender = self.clone();
        sender.settings.url = Some(url.into());
        sender
    }

    pub fn settings(&self) -> &WebhookSettings {
        &self.settings
    }

    /// Publishes a new auction and answers its `auction.published` event.
    pub fn next_event(&self) -> WebhookEvent {
        let (event_id, payload) = self.market.publish();
        WebhookEvent {
            event_id,
            event_type: "auction.published".to_owned(),
            payload,
        }
    }

    /// Sends `count` new events and repeats about `duplicate_ratio` of them
    /// (rounded; each at a random later place in the sequence, same
    /// `EventId`, fresh `Date` and signature), retrying failed deliveries.
    pub async fn send_events(
        &self,
        count: usize,
        duplicate_ratio: f64,
    ) -> Result<WebhookReport, WebhookError> {
        if !(0.0..=1.0).contains(&duplicate_ratio) {
            return Err(WebhookError::InvalidRatio);
        }
        // Fail before publishing anything when the target is wrong.
        self.target()?;
        self.key(Signing::Valid)?;
        let events: Vec<WebhookEvent> = (0..count).map(|_| self.next_event()).collect();
        // Rounded share, at most one repeat per event.
        let duplicates = ((count as f64) * duplicate_ratio).round() as usize;
        let order = self.market.with_rng(|rng| {
            let mut order: Vec<usize> = (0..count).collect();
            let mut chosen: Vec<usize> = (0..count).collect();
            for index in 0..duplicates.min(count) {
                let pick = rng.random_range(index..count);
                chosen.swap(index, pick);
            }
            for &event in &chosen[..duplicates.min(count)] {
                let first = order.iter().position(|&e| e == event).unwrap_or(0);
                let at = rng.random_range(first + 1..=order.len());
                order.insert(at, event);
            }
            order
        });

        let mut report = WebhookReport {
            events: count,
            event_ids: events.iter().map(|event| event.event_id.clone()).collect(),
            ..WebhookReport::default()
        };
        let mut sent = vec![false; count];
        for index in order {
            let event = &events[index];
            if sent[index] {
                report.duplicates_sent += 1;
            }
            sent[index] = true;
            let attempts = self.deliver(event).await?;
            report.attempts += attempts.len();
            report.retried += attempts.len().saturating_sub(1);
            if attempts.last().is_some_and(Attempt::succeeded) {
                report.delivered += 1;
            } else {
                report.failed += 1;
            }
        }
        Ok(report)
    }

    /// Delivers one event, retrying until a 2xx answer or the last attempt.
    /// Answers every attempt's outcome.
    pub async fn deliver(&self, event: &WebhookEvent) -> Result<Vec<Attempt>, WebhookError> {
        let mut attempts = Vec::new();
        let max = self.settings.max_attempts.max(1);
        let mut backoff = Duration::from_millis(self.settings.retry_backoff_ms);
        for attempt in 1..=max {
            let outcome = self.send_signed(event, Signing::Valid).await?;
            let succeeded = outcome.succeeded();
            tracing::debug!(
                event = event.event_id,
                attempt,
                ?outcome,
                "webhook delivery"
            );
            attempts.push(outcome);
            if succeeded || attempt == max {
                break;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        Ok(attempts)
    }

    /// One POST of `event`, signed as `signing` says; no retry.
    pub async fn send_signed(
        &self,
        event: &WebhookEvent,
        signing: Signing,
    ) -> Result<Attempt, WebhookError> {
        let body = serde_json::to_vec(event).map_err(|e| WebhookError::Request(e.to_string()))?;
        let headers = self.signed_headers(&body, signing, Utc::now())?;
        self.send_raw(body, headers).await
    }

    /// One POST of `body` with exactly `headers` (plus the `Content-Length`
    /// the HTTP client adds); no retry. For deliberately broken deliveries.
    pub async fn send_raw(
        &self,
        body: Vec<u8>,
        headers: Vec<(String, String)>,
    ) -> Result<Attempt, WebhookError> {
        let target = self.target()?;
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| WebhookError::Request(e.to_string()))?;
            let value =
                HeaderValue::from_str(&value).map_err(|e| WebhookError::Request(e.to_string()))?;
            map.append(name, value);
        }
        let outcome = match self
            .client
            .post(target.url)
            .headers(map)
            .body(body)
            .send()
            .await
        {
            Ok(response) => Attempt::Answered(response.status().as_u16()),
            Err(error) => Attempt::NoAnswer(error.to_string()),
        };
        Ok(outcome)
    }

    /// The headers of a delivery of `body` dated `now`: `Host`, `Date`,
    /// `Content-Type`, `Digest` and (unless [`Signing::Unsigned`])
    /// `Signature`. `Content-Length` is signed as the body's length and sent
    /// by the HTTP client.
    pub fn signed_headers(
        &self,
        body: &[u8],
        signing: Signing,
        now: DateTime<Utc>,
    ) -> Result<Vec<(String, String)>, WebhookError> {
        let target = self.target()?;
        let key = self.key(signing)?;
        let date = match signing {
            Signing::StaleDate => now - TimeDelta::hours(1),
            Signing::FutureDate => now + TimeDelta::hours(1),
            _ => now,
        };
        let date = http_date(date);
        let digested: &[u8] = if signing == Signing::BadDigest {
            b"another body"
        } else {
            body
        };
        let digest = format!("SHA-256={}", STANDARD.encode(Sha256::digest(digested)));
        let content_type = "application/json";
        let signing_string = format!(
            "(request-target): {}\nhost: {}\ndate: {date}\ncontent-type: {content_type}\ncontent-length: {}\ndigest: {digest}",
            target.request_target,
            target.host,
            body.len()
        );
        let mut mac = Hmac::<Sha256>::new_from_slice(&key)
            .map_err(|e| WebhookError::Request(e.to_string()))?;
        mac.update(signing_string.as_bytes());
        let signature = STANDARD.encode(mac.finalize().into_bytes());
        let key_id = if signing == Signing::UnknownKeyId {
            format!("{}-unknown", self.settings.key_id)
        } else {
            self.settings.key_id.clone()
        };
        let mut headers = vec![
            ("Host".to_owned(), target.host),
            ("Date".to_owned(), date),
            ("Content-Type".to_owned(), content_type.to_owned()),
            ("Digest".to_owned(), digest),
        ];
        if signing != Signing::Unsigned {
            headers.push((
                "Signature".to_owned(),
                format!(
                    "keyId=\"{key_id}\",algorithm=\"hmac-sha256\",headers=\"{SIGNED_HEADERS}\",signature=\"{signature}\""
                ),
            ));
        }
        Ok(headers)
    }

    fn target(&self) -> Result<Target, WebhookError> {
        let raw = self.settings.url.as_deref().ok_or(WebhookError::NoUrl)?;
        let url = Url::parse(raw).map_err(|_| WebhookError::InvalidUrl(raw.to_owned()))?;
        let host = match (url.scheme(), url.host_str()) {
            ("http" | "https", Some(host)) => match url.port() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_owned(),
            },
            _ => return Err(WebhookError::InvalidUrl(raw.to_owned())),
        };
        let request_target = match url.query() {
            Some(query) => format!("post {}?{query}", url.path()),
            None => format!("post {}", url.path()),
        };
        Ok(Target {
            url,
            host,
            request_target,
        })
    }

    fn key(&self, signing: Signing) -> Result<Vec<u8>, WebhookError> {
        let key = STANDARD
            .decode(self.settings.secret.trim())
            .map_err(|_| WebhookError::InvalidSecret)?;
        Ok(if signing == Signing::WrongSecret {
            key.iter().map(|byte| byte ^ 0x5a).chain(*b"!").collect()
        } else {
            key
        })
    }
}

/// RFC 7231 IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub(crate) fn http_date(at: DateTime<Utc>) -> String {
    at.format("%a, %d %b %Y %H:%M:%S GMT").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_imf_fixdate() {
        let at = DateTime::parse_from_rfc3339("1994-11-06T08:49:37Z")
            .unwrap()
            .to_utc();
        assert_eq!(http_date(at), "Sun, 06 Nov 1994 08:49:37 GMT");
    }
}
