//! What every data endpoint checks before answering, in this order:
//!
//! 1. a valid bearer token (401 envelope when missing, unknown or expired);
//! 2. the scope the reference requires of the endpoint (403 envelope);
//! 3. the endpoint's quota for that user: a leaky bucket ([`crate::bucket`])
//!    per endpoint and per user, one request a second unless configured
//!    otherwise (429 with `Retry-After` and the document's envelope). Refused
//!    requests (401, 403, 429) take nothing from the quota.

use std::{collections::HashMap, sync::Arc};

use axum::{
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};
use rust_decimal::Decimal;
use tokio::time::Instant;

use super::envelope::ApiError;
use crate::{
    bucket::{BucketConfig, Buckets},
    oauth::OAuthServer,
};

/// The scope an endpoint requires.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Scope {
    /// Any valid token (auctions: "Requires authorization!" and no scope).
    None,
    /// Any one of these.
    AnyOf(&'static [&'static str]),
}

struct Endpoint {
    scope: Scope,
    buckets: Buckets,
}

pub(crate) struct Gate {
    oauth: OAuthServer,
    endpoints: HashMap<&'static str, Endpoint>,
}

impl Gate {
    /// `routes`: each route and its scope; `limits`: per-route quotas,
    /// `default_limit` for the others.
    pub(crate) fn new(
        oauth: OAuthServer,
        routes: &[(&'static str, Scope)],
        limits: &std::collections::BTreeMap<String, BucketConfig>,
        default_limit: BucketConfig,
    ) -> Self {
        for path in limits.keys() {
            if !routes.iter().any(|(route, _)| route == path) {
                tracing::warn!(path, "a Bondora limit names no route; it is ignored");
            }
        }
        let endpoints = routes
            .iter()
            .map(|&(route, scope)| {
                let config = limits.get(route).copied().unwrap_or(default_limit);
                (
                    route,
                    Endpoint {
                        scope,
                        buckets: Buckets::new(config),
                    },
                )
            })
            .collect();
        Self { oauth, endpoints }
    }

    /// Refills every quota.
    pub(crate) fn reset(&self) {
        for endpoint in self.endpoints.values() {
            endpoint.buckets.reset();
        }
    }
}

/// Middleware in front of every data endpoint; the handler finds the caller
/// as an [`crate::oauth::Access`] extension.
pub(crate) async fn guard(
    State(gate): State<Arc<Gate>>,
    mut request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|matched| matched.as_str().to_owned())
        .unwrap_or_default();
    let access = match gate.oauth.access(request.headers()) {
        Ok(access) => access,
        Err(problem) => return ApiError::Unauthorized(problem).into_response(),
    };
    let Some(endpoint) = gate.endpoints.get(route.as_str()) else {
        request.extensions_mut().insert(access);
        return next.run(request).await;
    };
    if let Scope::AnyOf(scopes) = endpoint.scope
        && !scopes.iter().any(|scope| access.has_scope(scope))
    {
        return ApiError::Forbidden {
            scope: scopes.join(" or "),
        }
        .into_response();
    }
    if let Err(denied) = endpoint.buckets.try_take(&access.user, Instant::now()) {
        tracing::debug!(route, user = access.user, "throttled: quota spent");
        return ApiError::TooManyRequests {
            quota: quota(endpoint.buckets.config()),
            retry_after_secs: denied.retry_after_secs.unwrap_or(1).max(1),
        }
        .into_response();
    }
    request.extensions_mut().insert(access);
    next.run(request).await
}

/// The quota as the document words it: "1 per Second" (or "2.5 per Second");
/// below one a second, per the first of minute, hour or day in which the
/// refill is a whole number of requests ("5 per Hour").
pub(crate) fn quota(config: BucketConfig) -> String {
    let rate = config.refill_per_second;
    if rate >= Decimal::ONE {
        return format!("{} per Second", rate.normalize());
    }
    for (seconds, unit) in [(60, "Minute"), (3600, "Hour"), (86_400, "Day")] {
        let per_unit = (rate * Decimal::from(seconds)).round_dp(6).normalize();
        if per_unit >= Decimal::ONE && per_unit.fract().is_zero() {
            return format!("{per_unit} per {unit}");
        }
    }
    format!("{} per Second", rate.normalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(refill: Decimal) -> BucketConfig {
        BucketConfig {
            capacity: 1,
            refill_per_second: refill,
        }
    }

    #[test]
    fn quotas_read_as_the_document() {
        assert_eq!(quota(config(Decimal::ONE)), "1 per Second");
        assert_eq!(quota(config(Decimal::from(5))), "5 per Second");
        assert_eq!(
            quota(config(Decimal::from(5) / Decimal::from(3600))),
            "5 per Hour"
        );
        assert_eq!(
            quota(config(Decimal::from(12) / Decimal::from(60))),
            "12 per Minute"
        );
        assert_eq!(quota(config(Decimal::new(25, 1))), "2.5 per Second");
    }
}
