//! Zonky's throttle: a leaky bucket per client. Each request takes a token; a
//! token comes back continuously at `refill_per_second` up to `capacity`; an
//! empty bucket answers 429 and takes nothing.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use axum::{
    Json,
    extract::{ConnectInfo, Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use rust_decimal::{Decimal, prelude::ToPrimitive};
use serde_json::json;
use tokio::time::Instant;

use super::BucketConfig;
use crate::{lock, stats::Outcome};

/// Past this many clients, buckets that have refilled completely are forgotten:
/// a full bucket is what a new client gets anyway.
const MAX_TRACKED_CLIENTS: usize = 10_000;

pub(crate) struct Throttle {
    config: BucketConfig,
    /// Whether a 429 tells when the next token comes (the document promises no
    /// `Retry-After`, so by default it does not).
    retry_after: bool,
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: Decimal,
    updated: Instant,
}

/// The bucket was empty; the next token comes after this many seconds
/// (rounded up), unless the bucket never refills.
struct Denied {
    retry_after_secs: Option<u64>,
}

impl Throttle {
    pub(crate) fn new(config: BucketConfig, retry_after: bool) -> Self {
        Self {
            config,
            retry_after,
            buckets: Mutex::default(),
        }
    }

    /// Forgets every client: all buckets are full again.
    pub(crate) fn reset(&self) {
        lock(&self.buckets).clear();
    }

    fn try_take(&self, client: &str, now: Instant) -> Result<(), Denied> {
        let mut buckets = lock(&self.buckets);
        if buckets.len() >= MAX_TRACKED_CLIENTS && !buckets.contains_key(client) {
            buckets.retain(|_, bucket| self.level(bucket, now) < self.capacity());
        }
        let bucket = buckets.entry(client.to_owned()).or_insert_with(|| Bucket {
            tokens: self.capacity(),
            updated: now,
        });
        bucket.tokens = self.level(bucket, now);
        bucket.updated = now;
        if bucket.tokens >= Decimal::ONE {
            bucket.tokens -= Decimal::ONE;
            return Ok(());
        }
        let rate = self.config.refill_per_second;
        let retry_after_secs = (rate > Decimal::ZERO)
            .then(|| ((Decimal::ONE - bucket.tokens) / rate).ceil().to_u64())
            .flatten();
        Err(Denied { retry_after_secs })
    }

    fn capacity(&self) -> Decimal {
        Decimal::from(self.config.capacity)
    }

    /// The bucket's tokens at `now`: exact decimal arithmetic on the elapsed
    /// nanoseconds, so fractional rates such as 2.5 per second refill exactly.
    fn level(&self, bucket: &Bucket, now: Instant) -> Decimal {
        let elapsed = now.saturating_duration_since(bucket.updated);
        let rate = self.config.refill_per_second.max(Decimal::ZERO);
        let refilled = i128::try_from(elapsed.as_nanos())
            .ok()
            .and_then(|nanos| Decimal::try_from_i128_with_scale(nanos, 9).ok())
            .and_then(|seconds| seconds.checked_mul(rate))
            .and_then(|gained| gained.checked_add(bucket.tokens));
        // Too long to even count means full.
        refilled.map_or(self.capacity(), |tokens| tokens.min(self.capacity()))
    }
}

/// Middleware taking one token from the client's bucket per request. The client
/// is its `Authorization` header (a user's token) when present, else its IP.
pub(crate) async fn throttle(
    State(throttle): State<Arc<Throttle>>,
    request: Request,
    next: Next,
) -> Response {
    let client = client_key(&request);
    match throttle.try_take(&client, Instant::now()) {
        Ok(()) => next.run(request).await,
        Err(denied) => {
            tracing::debug!(
                path = request.uri().path(),
                "throttled: the bucket is empty"
            );
            let mut response = (
                StatusCode::TOO_MANY_REQUESTS,
                Json(json!({"error": "too_many_requests"})),
            )
                .into_response();
            if let Some(seconds) = denied.retry_after_secs.filter(|_| throttle.retry_after) {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            }
            response.extensions_mut().insert(Outcome::Throttled);
            response
        }
    }
}

fn client_key(request: &Request) -> String {
    if let Some(authorization) = request.headers().get(header::AUTHORIZATION) {
        return format!(
            "authorization:{}",
            String::from_utf8_lossy(authorization.as_bytes())
        );
    }
    match request.extensions().get::<ConnectInfo<SocketAddr>>() {
        Some(ConnectInfo(peer)) => format!("ip:{}", peer.ip()),
        // Embedded without connection info (e.g. driven by `tower::ServiceExt::oneshot`).
        None => "anonymous".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn throttle(capacity: u32, refill: Decimal) -> Throttle {
        Throttle::new(
            BucketConfig {
                capacity,
                refill_per_second: refill,
            },
            true,
        )
    }

    #[test]
    fn fractional_rates_refill_exactly() {
        let throttle = throttle(1, Decimal::new(25, 1));
        let start = Instant::now();
        assert!(throttle.try_take("a", start).is_ok());
        let denied = throttle.try_take("a", start).unwrap_err();
        assert_eq!(denied.retry_after_secs, Some(1));
        // 2.5 tokens a second: exactly one after 400 ms, not a nanosecond sooner.
        let almost = start + Duration::from_millis(400) - Duration::from_nanos(1);
        assert!(throttle.try_take("a", almost).is_err());
        assert!(
            throttle
                .try_take("a", start + Duration::from_millis(400))
                .is_ok()
        );
    }

    #[test]
    fn refused_requests_take_nothing_and_clients_are_separate() {
        let throttle = throttle(2, Decimal::ONE);
        let start = Instant::now();
        assert!(throttle.try_take("a", start).is_ok());
        assert!(throttle.try_take("a", start).is_ok());
        for _ in 0..5 {
            assert!(throttle.try_take("a", start).is_err());
        }
        assert!(throttle.try_take("b", start).is_ok());
        assert!(
            throttle
                .try_take("a", start + Duration::from_secs(1))
                .is_ok()
        );
        assert!(
            throttle
                .try_take("a", start + Duration::from_secs(1))
                .is_err()
        );
        // Never more than the capacity, however long the wait.
        let later = start + Duration::from_secs(3600);
        assert!(throttle.try_take("a", later).is_ok());
        assert!(throttle.try_take("a", later).is_ok());
        assert!(throttle.try_take("a", later).is_err());
    }

    #[test]
    fn slow_rates_tell_the_wait_rounded_up() {
        let throttle = throttle(1, Decimal::new(3, 1));
        let start = Instant::now();
        assert!(throttle.try_take("a", start).is_ok());
        let denied = throttle
            .try_take("a", start + Duration::from_millis(100))
            .unwrap_err();
        // 0.97 tokens missing at 0.3 a second: 3.23 s, so 4.
        assert_eq!(denied.retry_after_secs, Some(4));
        let never = Throttle::new(
            BucketConfig {
                capacity: 0,
                refill_per_second: Decimal::ZERO,
            },
            true,
        );
        assert_eq!(
            never.try_take("a", start).unwrap_err().retry_after_secs,
            None
        );
    }

    #[test]
    fn reset_refills() {
        let throttle = throttle(1, Decimal::ONE);
        let start = Instant::now();
        assert!(throttle.try_take("a", start).is_ok());
        assert!(throttle.try_take("a", start).is_err());
        throttle.reset();
        assert!(throttle.try_take("a", start).is_ok());
    }
}
