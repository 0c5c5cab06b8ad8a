//! Zonky's throttle: a leaky bucket ([`crate::bucket`]) per client. An empty
//! bucket answers 429 and takes nothing.

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Json,
    extract::{ConnectInfo, Request, State},
    http::{HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde_json::json;
use tokio::time::Instant;

use crate::{
    bucket::{BucketConfig, Buckets},
    stats::Outcome,
};

pub(crate) struct Throttle {
    buckets: Buckets,
    /// Whether a 429 tells when the next token comes (the document promises no
    /// `Retry-After`, so by default it does not).
    retry_after: bool,
}

impl Throttle {
    pub(crate) fn new(config: BucketConfig, retry_after: bool) -> Self {
        Self {
            buckets: Buckets::new(config),
            retry_after,
        }
    }

    /// Forgets every client: all buckets are full again.
    pub(crate) fn reset(&self) {
        self.buckets.reset();
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
    match throttle.buckets.try_take(&client, Instant::now()) {
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
