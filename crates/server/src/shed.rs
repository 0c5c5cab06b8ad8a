//! Inbound load shedding on `/graphql`: each caller (a signed-in principal,
//! else the peer address) may send `server.rate_limit_per_second` requests a
//! second with bursts of `server.rate_limit_burst`; beyond that it gets HTTP
//! 429 with `Retry-After` and the GraphQL error shape, `extensions.code`
//! `RATE_LIMITED` and `extensions.retryAfter`, before any work is done.
//!
//! A token that does not verify counts as anonymous (per address), so made-up
//! tokens cannot open fresh budgets; the handler then refuses it with 401.
//! IPv6 callers are keyed by their /64, which one client usually holds whole.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use serde_json::json;

use crate::config::RateLimit;
use crate::http::AppState;

/// The per-caller limiter; [`Shedder::default`] lets everything through.
#[derive(Clone, Default)]
pub(crate) struct Shedder {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    limit: RateLimit,
    limiter: DefaultKeyedRateLimiter<Caller>,
    checks: AtomicU64,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Caller {
    Principal(Arc<str>),
    Address(IpAddr),
}

/// Callers idle long enough to have a full budget again are forgotten every
/// this many requests, so the table stays as small as the set of active callers.
const SWEEP_EVERY: u64 = 4096;

impl Shedder {
    pub(crate) fn new(limit: Option<RateLimit>) -> Self {
        Shedder {
            inner: limit.map(|limit| {
                let quota = Quota::per_second(limit.per_second).allow_burst(limit.burst);
                Arc::new(Inner {
                    limit,
                    limiter: RateLimiter::keyed(quota),
                    checks: AtomicU64::new(0),
                })
            }),
        }
    }

    /// `Err(wait)` when `caller` is over its budget.
    fn check(&self, caller: &Caller) -> Result<(), Duration> {
        let Some(inner) = &self.inner else {
            return Ok(());
        };
        if inner.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            inner.limiter.retain_recent();
            inner.limiter.shrink_to_fit();
        }
        inner
            .limiter
            .check_key(caller)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// The middleware in front of `/graphql`.
pub(crate) async fn limit(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(inner) = &state.shed.inner else {
        return next.run(request).await;
    };
    let caller = match state.principal(request.headers()) {
        Ok(Some(principal)) => Caller::Principal(Arc::from(principal.id())),
        _ => Caller::Address(address(&request)),
    };
    match state.shed.check(&caller) {
        Ok(()) => next.run(request).await,
        Err(wait) => too_many(inner.limit, wait),
    }
}

fn address(request: &Request) -> IpAddr {
    let ip = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |ConnectInfo(peer)| peer.ip());
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                IpAddr::V6(Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
            }
        },
        v4 => v4,
    }
}

fn too_many(limit: RateLimit, wait: Duration) -> Response {
    // Whole seconds, rounded up, as `Retry-After` and `retryAfter` elsewhere.
    let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    let seconds = seconds.max(1);
    let body = json!({"errors": [{
        "message": format!(
            "too many requests: at most {} a second (bursts of {}) per caller; retry in {seconds} s",
            limit.per_second, limit.burst
        ),
        "extensions": {"code": "RATE_LIMITED", "retryAfter": seconds},
    }]});
    let mut response = (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(seconds));
    response
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use super::*;

    fn limit(per_second: u32, burst: u32) -> Option<RateLimit> {
        Some(RateLimit {
            per_second: NonZeroU32::new(per_second).unwrap(),
            burst: NonZeroU32::new(burst).unwrap(),
        })
    }

    #[test]
    fn each_caller_has_its_own_burst() {
        let shedder = Shedder::new(limit(1, 2));
        let alice = Caller::Principal(Arc::from("alice"));
        let bob = Caller::Principal(Arc::from("bob"));
        assert!(shedder.check(&alice).is_ok());
        assert!(shedder.check(&alice).is_ok());
        let wait = shedder.check(&alice).unwrap_err();
        assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1));
        assert!(shedder.check(&bob).is_ok());

        let off = Shedder::default();
        for _ in 0..100 {
            assert!(off.check(&alice).is_ok());
        }
    }

    #[test]
    fn ipv6_callers_share_their_slash_64() {
        let request = |ip: &str| {
            let mut request = Request::new(axum::body::Body::empty());
            let peer = SocketAddr::new(ip.parse().unwrap(), 4000);
            request.extensions_mut().insert(ConnectInfo(peer));
            address(&request)
        };
        assert_eq!(request("2001:db8:1:2::1"), request("2001:db8:1:2:ffff::9"));
        assert_ne!(request("2001:db8:1:2::1"), request("2001:db8:1:3::1"));
        assert_eq!(request("::ffff:192.0.2.7"), request("192.0.2.7"));
    }

    #[test]
    fn the_answer_is_429_with_retry_after_and_the_graphql_error_shape() {
        let response = too_many(limit(5, 10).unwrap(), Duration::from_millis(1200));
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[RETRY_AFTER], "2");
    }
}
