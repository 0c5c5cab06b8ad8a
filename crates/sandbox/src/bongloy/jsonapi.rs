//! JSON:API on the wire: error documents, reading request documents, and the
//! media type of the answers.
//!
//! Every error answer is `{"errors": [{"status": "422", "code": "...", "title":
//! "...", "detail": "...", "source": {"pointer": "/data/attributes/amount"}}]}`.
//! `code` is present only for the document's error codes ([`ErrorCode`]);
//! `source` has a `pointer` into the request document or names a query
//! `parameter`.

use axum::{
    Json,
    body::Bytes,
    extract::Request,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde::Serialize;
use serde_json::{Map, Value};

/// The JSON:API media type: what every answer is labelled with, unless the
/// client accepts only `application/json`.
pub const MEDIA_TYPE: &str = "application/vnd.api+json";

/// The document's error codes. Every one is answered 422 Unprocessable Entity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ErrorCode {
    /// A member missing or of the wrong type, a currency other than USD, an
    /// unknown attribute, a query parameter that does not parse.
    ValidationError,
    /// An amount that is not positive or under the minimum (100 cents).
    InvalidAmount,
    /// Confirming more than the source account holds.
    InsufficientBalance,
    /// Confirming a transfer that is no longer pending.
    InvalidTransfer,
    /// Confirming a pending transfer past its `expires_at`.
    ExpiredTransfer,
    /// Confirming would take the destination's confirmed total of the day
    /// (UTC) past its limit.
    DestinationAccountDailyTransferLimitExceeded,
    DestinationAccountNotFound,
    DestinationAccountIsNotActive,
}

impl ErrorCode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::ValidationError => "validation_error",
            Self::InvalidAmount => "invalid_amount",
            Self::InsufficientBalance => "insufficient_balance",
            Self::InvalidTransfer => "invalid_transfer",
            Self::ExpiredTransfer => "expired_transfer",
            Self::DestinationAccountDailyTransferLimitExceeded => {
                "destination_account_daily_transfer_limit_exceeded"
            }
            Self::DestinationAccountNotFound => "destination_account_not_found",
            Self::DestinationAccountIsNotActive => "destination_account_is_not_active",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Self::ValidationError => "Validation error",
            Self::InvalidAmount => "Invalid amount",
            Self::InsufficientBalance => "Insufficient balance",
            Self::InvalidTransfer => "Invalid transfer",
            Self::ExpiredTransfer => "Expired transfer",
            Self::DestinationAccountDailyTransferLimitExceeded => {
                "Destination account daily transfer limit exceeded"
            }
            Self::DestinationAccountNotFound => "Destination account not found",
            Self::DestinationAccountIsNotActive => "Destination account is not active",
        }
    }
}

/// Where an error comes from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ErrorSource {
    /// A JSON pointer into the request document (`""` is the whole document).
    Pointer(String),
    /// A query parameter, e.g. `filter[status]`.
    Parameter(String),
}

/// One member of `errors`.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct ErrorObject {
    status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'static str>,
    title: &'static str,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<ErrorSource>,
}

/// An error answer: an HTTP status and one or more error objects.
///
/// Statuses: 401 (authentication), 404 (unknown route, unknown transfer or
/// another organization's), 415 (a body labelled neither JSON:API nor JSON),
/// 422 (every document error code, validation and business rules alike).
#[derive(Clone, Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    errors: Vec<ErrorObject>,
}

impl ApiError {
    /// A 422 with one of the document's codes.
    pub(crate) fn code(code: ErrorCode, source: Option<ErrorSource>, detail: String) -> Self {
        let status = StatusCode::UNPROCESSABLE_ENTITY;
        Self {
            status,
            errors: vec![ErrorObject {
                status: status.as_u16().to_string(),
                code: Some(code.as_str()),
                title: code.title(),
                detail,
                source,
            }],
        }
    }

    /// A 422 `validation_error` about the member at `pointer`.
    pub(crate) fn invalid(pointer: &str, detail: String) -> Self {
        Self::code(
            ErrorCode::ValidationError,
            Some(ErrorSource::Pointer(pointer.to_owned())),
            detail,
        )
    }

    /// A 422 `validation_error` about a query parameter.
    pub(crate) fn invalid_parameter(parameter: &str, detail: String) -> Self {
        Self::code(
            ErrorCode::ValidationError,
            Some(ErrorSource::Parameter(parameter.to_owned())),
            detail,
        )
    }

    pub(crate) fn not_found(detail: String) -> Self {
        Self::without_code(StatusCode::NOT_FOUND, "Not found", detail)
    }

    pub(crate) fn unauthorized(detail: String) -> Self {
        Self::without_code(StatusCode::UNAUTHORIZED, "Unauthorized", detail)
    }

    fn without_code(status: StatusCode, title: &'static str, detail: String) -> Self {
        Self {
            status,
            errors: vec![ErrorObject {
                status: status.as_u16().to_string(),
                code: None,
                title,
                detail,
                source: None,
            }],
        }
    }

    /// Several errors of one request in one answer (all 422 here).
    pub(crate) fn combine(errors: Vec<ApiError>) -> Option<Self> {
        let mut errors = errors.into_iter();
        let mut first = errors.next()?;
        for more in errors {
            first.errors.extend(more.errors);
        }
        Some(first)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let unauthorized = self.status == StatusCode::UNAUTHORIZED;
        let mut response = (
            self.status,
            Json(serde_json::json!({ "errors": self.errors })),
        )
            .into_response();
        if unauthorized {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
        }
        response
    }
}

/// The media type of a `Content-Type` or `Accept` entry, without parameters,
/// lower-case.
fn essence(value: &str) -> String {
    value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Reads a request body as a JSON object. The body may be labelled
/// `application/vnd.api+json` or `application/json`, or not labelled at all;
/// anything else is 415. A body that is not a JSON object is a 422
/// `validation_error` pointing at the whole document.
pub(crate) fn read_document(
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Map<String, Value>, ApiError> {
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        let media = essence(&String::from_utf8_lossy(content_type.as_bytes()));
        if media != MEDIA_TYPE && media != "application/json" {
            return Err(ApiError::without_code(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "Unsupported media type",
                format!("send {MEDIA_TYPE} (or application/json), not {media}"),
            ));
        }
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(document)) => Ok(document),
        Ok(_) => Err(ApiError::invalid(
            "",
            "the body must be a JSON:API document (a JSON object)".to_owned(),
        )),
        Err(error) => Err(ApiError::invalid(
            "",
            format!("the body is not JSON: {error}"),
        )),
    }
}

/// Middleware labelling JSON answers `application/vnd.api+json`, or
/// `application/json` for a client whose `Accept` names only that.
pub(crate) async fn negotiate(request: Request, next: Next) -> Response {
    let plain_json = request
        .headers()
        .get_all(header::ACCEPT)
        .iter()
        .flat_map(|value| {
            String::from_utf8_lossy(value.as_bytes())
                .split(',')
                .map(essence)
                .collect::<Vec<_>>()
        })
        .fold(None, |plain, media| match media.as_str() {
            "application/json" => Some(plain.unwrap_or(true)),
            MEDIA_TYPE | "*/*" | "application/*" => Some(false),
            _ => plain,
        })
        .unwrap_or(false);
    let mut response = next.run(request).await;
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.as_bytes().starts_with(b"application/json"));
    if is_json && !plain_json {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(MEDIA_TYPE));
    }
    response
}
