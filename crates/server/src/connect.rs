//! The OAuth connect flow over HTTP, for server-rendered frontends:
//! `GET /connect/{provider}` redirects a signed-in user to the platform, and
//! `GET /connect/{provider}/callback` is where the platform sends them back.
//! Single-page frontends use the `startConnection` mutation instead; both
//! end at the same callback.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use finmesh_core::{Error, ErrorKind};
use serde::Deserialize;
use serde_json::json;

use crate::http::AppState;

#[derive(Deserialize)]
pub(crate) struct StartParams {
    redirect_to: Option<String>,
}

/// `GET /connect/{provider}`: needs `Authorization: Bearer <frontend JWT>`.
pub(crate) async fn start(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    Query(params): Query<StartParams>,
    headers: HeaderMap,
) -> Response {
    let principal = match state.principal(&headers) {
        Ok(Some(principal)) => principal,
        Ok(None) => {
            return failure(
                &headers,
                &Error::new(
                    ErrorKind::Unauthenticated,
                    "sign in first: send Authorization: Bearer <token>",
                ),
            );
        }
        Err(error) => return failure(&headers, &error),
    };
    let Some(connections) = &state.connections else {
        return failure(&headers, &no_store());
    };
    match connections
        .start(&principal, &provider, params.redirect_to.as_deref())
        .await
    {
        Ok(url) => Redirect::to(url.as_str()).into_response(),
        Err(error) => failure(&headers, &error),
    }
}

/// What the platform appends to the callback URL.
#[derive(Deserialize)]
pub(crate) struct CallbackParams {
    code: Option<String>,
    state: Option<String>,
    error: Option<String>,
}

/// `GET /connect/{provider}/callback?code&state`.
pub(crate) async fn callback(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    Query(params): Query<CallbackParams>,
    headers: HeaderMap,
) -> Response {
    let Some(connections) = &state.connections else {
        return failure(&headers, &no_store());
    };
    if let Some(error) = params.error {
        // Denied consent: nothing to store. The code is the platform's (e.g. access_denied).
        let reason = if error.len() <= 64
            && error
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        {
            error
        } else {
            "error".to_string()
        };
        return failure(
            &headers,
            &Error::new(
                ErrorKind::Forbidden,
                "the connection was not approved at the platform",
            )
            .with_provider_code(reason),
        );
    }
    let (Some(code), Some(oauth_state)) = (params.code, params.state) else {
        return failure(
            &headers,
            &Error::invalid_input("code", "the callback needs `code` and `state`"),
        );
    };
    match connections.complete(&provider, &code, &oauth_state).await {
        Ok(connected) => match connected.redirect_to {
            Some(target) => {
                let separator = if target.contains('?') { '&' } else { '?' };
                Redirect::to(&format!(
                    "{target}{separator}connected={}",
                    connected.provider
                ))
                .into_response()
            }
            None if wants_html(&headers) => Html(format!(
                "<!doctype html><meta charset=utf-8><title>Connected</title>\
                 <p>Your {} account is connected. You can close this page.</p>",
                connected.provider
            ))
            .into_response(),
            None => Json(json!({"connected": connected.provider.as_str()})).into_response(),
        },
        Err(error) => failure(&headers, &error),
    }
}

fn no_store() -> Error {
    Error::new(
        ErrorKind::NotSupported,
        "this gateway has no [store] configured, so accounts cannot be connected",
    )
}

/// The error as a small HTML page for browsers, JSON for everyone else.
fn failure(headers: &HeaderMap, error: &Error) -> Response {
    let status = match error.kind {
        ErrorKind::Unauthenticated => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::InvalidInput | ErrorKind::NotSupported => StatusCode::BAD_REQUEST,
        ErrorKind::UpstreamUnavailable | ErrorKind::RateLimited => StatusCode::BAD_GATEWAY,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    if wants_html(headers) {
        let page = format!(
            "<!doctype html><meta charset=utf-8><title>Connection failed</title>\
             <p>The account could not be connected: {}</p>",
            escape(&error.message)
        );
        return (status, Html(page)).into_response();
    }
    let body = json!({
        "error": {
            "code": error.code(),
            "message": error.message,
            "field": error.field,
            "provider": error.provider.as_ref().map(|p| p.as_str()),
            "providerCode": error.provider_code,
        }
    });
    (status, Json(body)).into_response()
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
