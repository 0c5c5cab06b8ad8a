//! The metrics layer: counts every upstream HTTP attempt by provider, endpoint
//! and status, and times it until the response head. It sits inside the
//! throttle layer, so a throttle wait is not latency and each 429 retry is
//! its own attempt.

use async_trait::async_trait;
use http::Extensions;
use reqwest::{Request, Response};
use reqwest_middleware::{Middleware, Next};
use tokio::time::Instant;

use super::middleware::RequestContext;
use crate::telemetry;

pub(crate) struct MetricsMiddleware;

#[async_trait]
impl Middleware for MetricsMiddleware {
    async fn handle(
        &self,
        req: Request,
        extensions: &mut Extensions,
        next: Next<'_>,
    ) -> reqwest_middleware::Result<Response> {
        let Some(ctx) = extensions.get::<RequestContext>().cloned() else {
            return next.run(req, extensions).await;
        };
        let started = Instant::now();
        let response = next.run(req, extensions).await;
        let status = response.as_ref().ok().map(|r| r.status().as_u16());
        telemetry::record_upstream(
            ctx.provider.as_str(),
            ctx.endpoint,
            status,
            started.elapsed(),
        );
        response
    }
}
