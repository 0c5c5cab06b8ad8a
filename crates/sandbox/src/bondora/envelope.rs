//! Bondora's unified answer: every body, errors included, is an envelope.
//!
//! Success: `{"Payload": …, "Success": true, "Errors": null}`; a list also carries
//! `PageSize`, `PageNr`, `TotalCount` and `Count` before `Payload` (the order of
//! the reference's `ApiResultAuctions`). Error: `{"Success": false, "Errors":
//! [{"Code": n, "Message": "…", "Details": "…"}]}`, without `Payload`, exactly
//! as the document's samples show. `Code` is the HTTP status (the document's
//! only sample with a real code, the 429, does so).

use axum::{
    Json,
    body::Body,
    extract::Request,
    http::{HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde::Serialize;
use serde_json::Value;

use crate::{oauth::TokenProblem, stats::Outcome};

/// `{"Payload": …, "Success": true, "Errors": null}`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Item<'a> {
    payload: &'a Value,
    success: bool,
    errors: Option<()>,
}

/// A list answer (`ApiResultAuctions`, `ApiResultMyInvestments`, ...).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Page {
    pub(crate) page_size: u64,
    pub(crate) page_nr: u64,
    pub(crate) total_count: u64,
    pub(crate) count: u64,
    pub(crate) payload: Vec<Value>,
    pub(crate) success: bool,
    pub(crate) errors: Option<()>,
}

/// One entry of `Errors` (the reference's `ApiError`).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorEntry {
    code: u16,
    message: String,
    details: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ErrorBody {
    success: bool,
    errors: Vec<ErrorEntry>,
}

pub(crate) fn item(payload: &Value) -> Response {
    Json(Item {
        payload,
        success: true,
        errors: None,
    })
    .into_response()
}

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        Json(self).into_response()
    }
}

/// Every error the simulated API answers.
#[derive(Debug)]
pub(crate) enum ApiError {
    /// A parameter that does not parse, is out of range or names an unknown
    /// enum member.
    BadRequest {
        message: String,
        details: String,
    },
    Unauthorized(TokenProblem),
    /// The token lacks the scope the endpoint requires.
    Forbidden {
        scope: String,
    },
    NotFound {
        message: String,
        details: String,
    },
    MethodNotAllowed {
        method: Method,
    },
    /// The endpoint's per-user quota is spent.
    TooManyRequests {
        quota: String,
        retry_after_secs: u64,
    },
}

impl ApiError {
    /// A parameter whose value is wrong, worded as ASP.NET model binding does.
    pub(crate) fn invalid_parameter(name: &str, value: &str, why: &str) -> Self {
        Self::BadRequest {
            message: "The request is invalid.".to_owned(),
            details: format!("request.{name}: The value '{value}' is not valid: {why}"),
        }
    }

    pub(crate) fn not_found(what: &str, id: &str) -> Self {
        Self::NotFound {
            message: format!("{what} not found"),
            details: format!("{what} with id '{id}' was not found"),
        }
    }

    fn parts(self) -> (StatusCode, String, Option<String>) {
        match self {
            Self::BadRequest { message, details } => {
                (StatusCode::BAD_REQUEST, message, Some(details))
            }
            Self::Unauthorized(problem) => (
                StatusCode::UNAUTHORIZED,
                "Authorization has been denied for this request.".to_owned(),
                Some(
                    match problem {
                        TokenProblem::Missing => "No access token was sent",
                        TokenProblem::Invalid => "The access token is not valid",
                        TokenProblem::Expired => "The access token has expired",
                    }
                    .to_owned(),
                ),
            ),
            Self::Forbidden { scope } => (
                StatusCode::FORBIDDEN,
                "User is not allowed to access the resource".to_owned(),
                Some(format!("The access token lacks the scope {scope}")),
            ),
            Self::NotFound { message, details } => (StatusCode::NOT_FOUND, message, Some(details)),
            Self::MethodNotAllowed { method } => (
                StatusCode::METHOD_NOT_ALLOWED,
                format!("The requested resource does not support http method '{method}'."),
                None,
            ),
            Self::TooManyRequests {
                quota,
                retry_after_secs,
            } => (
                StatusCode::TOO_MANY_REQUESTS,
                format!("API calls quota exceeded! maximum admitted {quota}."),
                Some(format!("Retry after {retry_after_secs}")),
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let retry_after = match &self {
            Self::TooManyRequests {
                retry_after_secs, ..
            } => Some(*retry_after_secs),
            _ => None,
        };
        let (status, message, details) = self.parts();
        let mut response = error_response(status, message, details);
        if let Some(seconds) = retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            response.extensions_mut().insert(Outcome::Throttled);
        }
        response
    }
}

fn error_response(status: StatusCode, message: String, details: Option<String>) -> Response {
    let body = ErrorBody {
        success: false,
        errors: vec![ErrorEntry {
            code: status.as_u16(),
            message,
            details,
        }],
    };
    (status, Json(body)).into_response()
}

/// Fallback for paths that are no resource.
pub(crate) async fn not_found(request: Request) -> ApiError {
    ApiError::NotFound {
        message: "No HTTP resource was found that matches the request URI.".to_owned(),
        details: request.uri().path().to_owned(),
    }
}

/// Fallback for a resource asked with a method it does not take.
pub(crate) async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed { method }
}

/// Middleware (outside the fault injector) giving injected error answers the
/// envelope, as Bondora's own errors have: the generic injector answers
/// `{"error": …}`, which no Bondora endpoint sends. Broken bodies (malformed,
/// truncated) and dropped connections stay as they are: they are the point.
pub(crate) async fn envelope_injected_errors(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let injected = response.extensions().get::<Outcome>() == Some(&Outcome::Faulted);
    let status = response.status();
    if !injected || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let generic = serde_json::from_slice::<Value>(&bytes)
        .ok()
        .is_some_and(|value| value.get("error").is_some());
    if !generic {
        // A truncated real answer: keep it cut.
        return Response::from_parts(parts, Body::from(bytes));
    }
    let mut rewritten = if status == StatusCode::TOO_MANY_REQUESTS {
        let seconds = parts
            .headers
            .get(header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("1")
            .to_owned();
        error_response(
            status,
            "API calls quota exceeded! maximum admitted 1 per Second.".to_owned(),
            Some(format!("Retry after {seconds}")),
        )
    } else {
        error_response(
            status,
            status
                .canonical_reason()
                .unwrap_or("Internal Server Error")
                .to_owned(),
            Some("Injected fault".to_owned()),
        )
    };
    let mut rewritten_parts = parts;
    rewritten_parts.headers.remove(header::CONTENT_LENGTH);
    rewritten_parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let body = std::mem::replace(rewritten.body_mut(), Body::empty());
    Response::from_parts(rewritten_parts, body)
}
