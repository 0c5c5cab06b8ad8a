//! The throttle as a reqwest-middleware layer: acquire a token before every
//! attempt, and turn a 429 into a bucket pause plus (for idempotent requests) a
//! retry after `Retry-After`.
//!
//! Keeping this a layer rather than code in `send` means further cross-cutting
//! concerns (metrics, a circuit breaker) stack the same way.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use http::header::{AUTHORIZATION, HeaderValue, RETRY_AFTER};
use http::{Extensions, HeaderMap, Method, StatusCode};
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};
use tokio::time::Instant;

use super::policy::BucketKey;
use super::throttle::{MAX_PAUSE, Throttle};
use crate::error::{Error, Result};
use crate::id::ProviderId;
use crate::telemetry;

/// At most this many attempts per request, the first included.
pub(crate) const MAX_ATTEMPTS: u32 = 3;

/// Without a `Retry-After` and without a bucket, wait this long after a 429.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(1);

/// What the throttle layer needs to know about one request; put in the
/// request's extensions by `UpstreamRequest::send`.
#[derive(Debug, Clone)]
pub(crate) struct RequestContext {
    pub(crate) provider: ProviderId,
    pub(crate) endpoint: &'static str,
    pub(crate) bucket: Option<BucketKey>,
    pub(crate) deadline: Instant,
    /// Makes the bearer token of each attempt, right before it is sent.
    pub(crate) signer: Option<BearerSigner>,
}

/// A function making a fresh bearer token (see `UpstreamRequest::bearer_per_attempt`).
#[derive(Clone)]
pub(crate) struct BearerSigner(pub(crate) Arc<dyn Fn() -> Result<String> + Send + Sync>);

impl std::fmt::Debug for BearerSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BearerSigner")
    }
}

impl BearerSigner {
    /// Puts a freshly made `Authorization: Bearer` header on `req`.
    fn sign(&self, req: &mut Request) -> Result<()> {
        let token = (self.0)()?;
        // The message must not echo the token.
        let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            Error::internal("the bearer token contains characters not allowed in a header")
        })?;
        value.set_sensitive(true);
        req.headers_mut().insert(AUTHORIZATION, value);
        Ok(())
    }
}

pub(crate) struct ThrottleMiddleware {
    pub(crate) throttle: Arc<dyn Throttle>,
    /// A token that comes later than this before the deadline is refused:
    /// the request would only time out.
    pub(crate) min_request_time: Duration,
}

#[async_trait]
impl Middleware for ThrottleMiddleware {
    async fn handle(
        &self,
        req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let Some(ctx) = extensions.get::<RequestContext>().cloned() else {
            return next.run(req, extensions).await;
        };
        // Only requests that are safe to repeat are retried: a POST that got a
        // 429 may be repeated by the caller, never behind its back.
        let idempotent = matches!(*req.method(), Method::GET | Method::HEAD);
        let token_deadline = ctx
            .deadline
            .checked_sub(self.min_request_time)
            .unwrap_or(ctx.deadline);
        let mut req = req;
        let mut attempt = 1;
        loop {
            if let Some(bucket) = &ctx.bucket {
                let asked = Instant::now();
                let acquired = self.throttle.acquire(bucket, token_deadline).await;
                let (provider, rule) = (bucket.provider.as_str(), &*bucket.rule);
                match &acquired {
                    Ok(()) => telemetry::record_throttle_wait(provider, rule, asked.elapsed()),
                    Err(_) => telemetry::record_throttle_refused(provider, rule),
                }
                acquired.map_err(reqwest_middleware::Error::middleware)?;
            }
            if let Some(signer) = &ctx.signer {
                signer.sign(&mut req).map_err(|e| {
                    reqwest_middleware::Error::middleware(e.with_provider(&ctx.provider))
                })?;
            }
            tracing::Span::current().record("attempt", attempt);
            let retry = if idempotent && attempt < MAX_ATTEMPTS {
                req.try_clone()
            } else {
                None
            };
            let method = req.method().clone();
            let response = next.clone().run(req, extensions).await?;
            if response.status() != StatusCode::TOO_MANY_REQUESTS {
                return Ok(response);
            }

            let wait = retry_after(response.headers(), SystemTime::now())
                .or_else(|| ctx.bucket.as_ref().map(|b| b.limit.replenish_interval))
                .unwrap_or(DEFAULT_RETRY_AFTER)
                .min(MAX_PAUSE);
            drop(response);
            if let Some(bucket) = &ctx.bucket {
                self.throttle.pause(bucket, wait);
            }
            let fits = Instant::now()
                .checked_add(wait)
                .is_some_and(|at| at <= token_deadline);
            match retry {
                Some(next_req) if fits => {
                    tracing::debug!(
                        attempt,
                        retry_after_ms = wait.as_millis() as u64,
                        "upstream answered 429; retrying after the pause"
                    );
                    tokio::time::sleep(wait).await;
                    req = next_req;
                    attempt += 1;
                }
                _ => {
                    let why = if !idempotent {
                        "; not retried because the request is not idempotent"
                    } else if !fits {
                        "; the wait ends after the caller's deadline"
                    } else {
                        ""
                    };
                    return Err(reqwest_middleware::Error::middleware(
                        Error::rate_limited(
                            wait,
                            format!(
                                "{} answered 429 Too Many Requests to {method} {} (attempt {attempt}); retry after {} ms{why}",
                                ctx.provider,
                                ctx.endpoint,
                                wait.as_millis()
                            ),
                        )
                        .with_provider(&ctx.provider),
                    ));
                }
            }
        }
    }
}

/// Reads `Retry-After`: delta-seconds or an HTTP-date (RFC 9110 §10.2.3).
///
/// A date in the past means "now" (zero). Unparseable values are ignored.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if value.bytes().all(|b| b.is_ascii_digit()) && !value.is_empty() {
        let secs: u64 = value.parse().unwrap_or(u64::MAX);
        return Some(Duration::from_secs(secs.min(MAX_PAUSE.as_secs())));
    }
    // Not the spec, but seen in the wild: fractional seconds.
    if let Ok(secs) = value.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0)
            .then(|| Duration::from_secs_f64(secs.min(MAX_PAUSE.as_secs_f64())));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let at = SystemTime::from(date);
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn retry_after_accepts_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480); // Wed, 21 Oct 2015 07:28:00 GMT
        assert_eq!(
            retry_after(&headers("1"), now),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            retry_after(&headers(" 120 "), now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            retry_after(&headers("0.5"), now),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            retry_after(&headers("Wed, 21 Oct 2015 07:28:30 GMT"), now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            retry_after(&headers("Wed, 21 Oct 2015 07:27:00 GMT"), now),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        assert_eq!(
            retry_after(&headers("99999999999999999999999"), now),
            Some(MAX_PAUSE)
        );
        assert_eq!(retry_after(&headers("soon"), now), None);
        assert_eq!(retry_after(&headers("-1"), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }
}
