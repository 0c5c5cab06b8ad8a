//! Resilience of upstream calls, as reqwest-middleware layers every
//! [`Upstream`](crate::upstream::Upstream) stacks in this order:
//!
//! 1. retry ([`RetrySettings`]): idempotent requests that failed transiently
//!    are tried again with exponential backoff and jitter, inside the caller's
//!    deadline;
//! 2. circuit breaker ([`BreakerSettings`]), per provider: after repeated
//!    failures, calls are refused at once (`UPSTREAM_UNAVAILABLE`, "circuit
//!    open") until a probe succeeds; an open circuit is not retried and spends
//!    no throttle token;
//! 3. throttle: a request is only sent if at least `min_request_time` of the
//!    caller's deadline is left when its token comes, else the caller gets
//!    `RATE_LIMITED` at once instead of a timeout later.
//!
//! One [`Resilience`] is shared by the whole gateway: it holds the settings
//! and each provider's breaker, so `providers { health }` can show them.

mod breaker;
mod retry;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

pub(crate) use breaker::BreakerMiddleware;
pub use breaker::{CircuitBreaker, CircuitState, Permit};
pub(crate) use retry::RetryMiddleware;

use crate::id::ProviderId;

/// How upstream calls are retried, broken and bounded.
#[derive(Debug, Clone, PartialEq)]
pub struct ResilienceSettings {
    pub retry: RetrySettings,
    pub breaker: BreakerSettings,
    /// A throttled request waits for its token only if at least this much of
    /// the caller's deadline remains afterwards: an answer needs time too.
    pub min_request_time: Duration,
}

/// Retries of idempotent requests.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySettings {
    /// Attempts per request, the first included; 1 turns retries off.
    pub max_attempts: u32,
    /// The backoff before the first retry (doubling after each).
    pub base_delay: Duration,
    /// The longest backoff.
    pub max_delay: Duration,
}

/// When a provider's circuit opens and for how long.
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerSettings {
    /// Failed attempts within `window`, with no success between, that open it.
    pub failure_threshold: u32,
    pub window: Duration,
    /// How long it stays open before a probe may go through.
    pub open_for: Duration,
}

impl Default for ResilienceSettings {
    fn default() -> Self {
        ResilienceSettings {
            retry: RetrySettings {
                max_attempts: 3,
                base_delay: Duration::from_millis(100),
                max_delay: Duration::from_secs(2),
            },
            breaker: BreakerSettings {
                failure_threshold: 5,
                window: Duration::from_secs(30),
                open_for: Duration::from_secs(5),
            },
            min_request_time: Duration::from_millis(250),
        }
    }
}

/// The gateway's settings and per-provider circuit breakers. Cheap to clone;
/// clones share the breakers.
#[derive(Clone, Default)]
pub struct Resilience {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    settings: ResilienceSettings,
    breakers: Mutex<HashMap<ProviderId, Arc<CircuitBreaker>>>,
}

impl Resilience {
    pub fn new(settings: ResilienceSettings) -> Self {
        Resilience {
            inner: Arc::new(Inner {
                settings,
                breakers: Mutex::default(),
            }),
        }
    }

    pub fn settings(&self) -> &ResilienceSettings {
        &self.inner.settings
    }

    /// The provider's breaker, made on first use.
    pub fn breaker(&self, provider: &ProviderId) -> Arc<CircuitBreaker> {
        self.inner
            .breakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(provider.clone())
            .or_insert_with(|| {
                Arc::new(CircuitBreaker::new(
                    provider.clone(),
                    self.inner.settings.breaker.clone(),
                ))
            })
            .clone()
    }

    /// The provider's circuit now; closed for a provider never called.
    pub fn circuit(&self, provider: &ProviderId) -> CircuitState {
        self.inner
            .breakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(provider)
            .map_or(CircuitState::Closed, |breaker| breaker.state())
    }
}

impl fmt::Debug for Resilience {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resilience")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}
