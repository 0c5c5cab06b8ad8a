//! HTTP protections every route gets, whatever it serves:
//!
//! - request bodies larger than `server.max_body_bytes` are refused (413);
//! - a request that takes longer than `server.http_timeout_ms`, a slow body
//!   included, is answered 408; a client that does not finish its request
//!   headers within `server.header_read_timeout_ms` is disconnected;
//! - browsers may call from the origins of `[server.cors]` only;
//! - every answer says `X-Content-Type-Options: nosniff` and
//!   `Referrer-Policy: no-referrer`, and carries a Content-Security-Policy
//!   that forbids framing (HTML pages may load their own scripts, styles and
//!   data only: GraphiQL's assets are served by the gateway itself);
//! - answers to a request with `Authorization`, and everything under
//!   `/connect/`, are `Cache-Control: no-store`.
//!
//! 408 and 413 come with the JSON error shape of `/graphql`
//! (`extensions.code` `REQUEST_TIMEOUT` or `PAYLOAD_TOO_LARGE`).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request};
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::json;
use tokio::net::TcpListener;
use tower::ServiceExt;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::config::{CorsConfig, HttpConfig};

/// HTML pages: their own scripts, styles and images only (inline styles
/// allowed: GraphiQL's components set some), requests to the gateway only,
/// never in a frame.
const HTML_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";
/// Everything else is data, never to be rendered or framed.
const DATA_POLICY: &str = "default-src 'none'; frame-ancestors 'none'";

/// Wraps `router` in the protections of `config`.
pub(crate) fn protect(router: Router, config: &HttpConfig) -> Router {
    // Applied inside out: the last layer sees the request first.
    let router = router
        // The limit below replaces axum's own 2 MB default for extractors.
        .layer(DefaultBodyLimit::disable())
        .layer(RequestBodyLimitLayer::new(config.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.http_timeout,
        ));
    let router = match cors(&config.cors) {
        Some(cors) => router.layer(cors),
        None => router,
    };
    router.layer(middleware::from_fn(headers))
}

/// The CORS layer of `[server.cors]`; `None` when no origin is allowed.
fn cors(config: &CorsConfig) -> Option<CorsLayer> {
    if config.allowed_origins.is_empty() {
        return None;
    }
    let origins = if config.allowed_origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        // Checked when the configuration was read.
        AllowOrigin::list(
            config
                .allowed_origins
                .iter()
                .filter_map(|origin| HeaderValue::from_str(origin).ok()),
        )
    };
    Some(
        CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                HeaderName::from_static("x-request-id"),
            ])
            .expose_headers([HeaderName::from_static("x-request-id")])
            .allow_credentials(config.allow_credentials)
            .max_age(Duration::from_secs(600)),
    )
}

/// Security headers, `no-store` on private answers, and JSON bodies for the
/// 408 and 413 the layers answer with.
async fn headers(request: Request, next: Next) -> Response {
    let private = request.headers().contains_key(header::AUTHORIZATION)
        || request.uri().path().starts_with("/connect/");
    let mut response = next.run(request).await;
    match response.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            response = json_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                "PAYLOAD_TOO_LARGE",
                "the request body is larger than this gateway accepts",
            )
        }
        StatusCode::REQUEST_TIMEOUT => {
            response = json_error(
                StatusCode::REQUEST_TIMEOUT,
                "REQUEST_TIMEOUT",
                "the request took longer than this gateway allows",
            )
        }
        _ => {}
    }
    let headers = response.headers_mut();
    let html = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let policy = if html { HTML_POLICY } else { DATA_POLICY };
    set_default(headers, header::CONTENT_SECURITY_POLICY, policy);
    set_default(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set_default(headers, header::REFERRER_POLICY, "no-referrer");
    if html {
        // For browsers that predate `frame-ancestors`.
        set_default(headers, header::X_FRAME_OPTIONS, "DENY");
    }
    if private {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

fn set_default(headers: &mut HeaderMap, name: HeaderName, value: &'static str) {
    headers
        .entry(name)
        .or_insert(HeaderValue::from_static(value));
}

fn json_error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = json!({"errors": [{"message": message, "extensions": {"code": code}}]});
    (status, axum::Json(body)).into_response()
}

/// Serves `app` on `listener` until `shutdown` completes, then lets the
/// requests in flight finish. Like `axum::serve` (handlers may extract
/// `ConnectInfo<SocketAddr>`), but a client that takes longer than
/// `header_read_timeout` to send its request headers, or stays idle that long
/// between requests, is disconnected, so slow clients cannot hold
/// connections open.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: wait, do not spin.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
            let mut request = request.map(Body::new);
            request
                .extensions_mut()
                .insert(ConnectInfo::<SocketAddr>(peer));
            app.clone().oneshot(request)
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::trace!(%error, %peer, "connection ended with an error");
            }
        });
    }
    // Free the port at once; then wait for the connections to finish.
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests;
