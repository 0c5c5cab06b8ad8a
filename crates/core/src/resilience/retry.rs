//! Retries of idempotent requests (GET, HEAD, OPTIONS) that failed in a way a
//! second try may fix: no connection, a timeout, a dropped connection, or a
//! 408/500/502/503/504 answer. Exponential backoff with jitter, a bounded
//! number of attempts, and never past the caller's deadline. Writes are never
//! retried here: whether a POST took effect is for its caller to find out
//! (transfers reconcile with the platform first).

use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use http::{Extensions, Method};
use rand::Rng;
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};
use tokio::time::Instant;

use super::RetrySettings;
use crate::upstream::middleware::{RequestContext, retry_after};

pub(crate) struct RetryMiddleware {
    pub(crate) settings: RetrySettings,
    /// A retry is only worth it if this much time is left after its backoff.
    pub(crate) min_request_time: Duration,
}

#[async_trait]
impl Middleware for RetryMiddleware {
    async fn handle(
        &self,
        req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let Some(deadline) = extensions.get::<RequestContext>().map(|ctx| ctx.deadline) else {
            return next.run(req, extensions).await;
        };
        let idempotent = matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
        let mut req = req;
        let mut attempt = 1;
        loop {
            let again = if idempotent && attempt < self.settings.max_attempts {
                req.try_clone()
            } else {
                None
            };
            let result = next.clone().run(req, extensions).await;
            let Some(again) = again else {
                return result;
            };
            let asked_wait = match &result {
                Ok(response) if RETRIED_STATUSES.contains(&response.status().as_u16()) => {
                    retry_after(response.headers(), SystemTime::now())
                }
                Err(reqwest_middleware::Error::Reqwest(error)) if !error.is_builder() => None,
                // Answered, or refused by a layer below (throttle, open circuit).
                _ => return result,
            };
            let delay = self
                .settings
                .backoff(attempt)
                .max(asked_wait.unwrap_or_default());
            let fits = Instant::now()
                .checked_add(delay + self.min_request_time)
                .is_some_and(|at| at <= deadline);
            if !fits {
                return result;
            }
            tracing::debug!(
                attempt,
                delay_ms = delay.as_millis() as u64,
                status = result.as_ref().ok().map(|r| r.status().as_u16()),
                "upstream attempt failed; retrying"
            );
            drop(result);
            tokio::time::sleep(delay).await;
            req = again;
            attempt += 1;
        }
    }
}

/// Answers that say "not now" rather than "no": 408 and the transient 5xx.
const RETRIED_STATUSES: [u16; 5] = [408, 500, 502, 503, 504];

impl RetrySettings {
    /// The wait before attempt `attempt + 1`: exponential from `base_delay`,
    /// capped at `max_delay`, with "equal jitter" (half fixed, half random),
    /// so replicas that failed together do not retry in lockstep and a
    /// struggling platform still gets a breather.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exponential = self.base_delay.saturating_mul(
            1u32.checked_shl(attempt.saturating_sub(1))
                .unwrap_or(u32::MAX),
        );
        let cap = exponential.min(self.max_delay);
        let half = cap / 2;
        half + half.mul_f64(rand::rng().random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let settings = RetrySettings {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(300),
        };
        for _ in 0..100 {
            let first = settings.backoff(1);
            assert!(
                first >= Duration::from_millis(50) && first <= Duration::from_millis(100),
                "{first:?}"
            );
            let second = settings.backoff(2);
            assert!(
                second >= Duration::from_millis(100) && second <= Duration::from_millis(200),
                "{second:?}"
            );
            let capped = settings.backoff(40);
            assert!(
                capped >= Duration::from_millis(150) && capped <= Duration::from_millis(300),
                "{capped:?}"
            );
        }
    }
}
