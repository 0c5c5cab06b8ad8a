//! Error answers of the simulated Zonky API.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use crate::oauth::TokenProblem;

#[derive(Debug)]
pub(crate) enum ApiError {
    /// The document's answer to a filter or an ordering on a property that does
    /// not allow it; `operation` is the filter's suffix, or `X-Order`.
    InvalidFilter {
        property: String,
        operation: String,
    },
    /// A paging header, an id or a filter value that does not parse.
    InvalidRequest {
        description: String,
        property: Option<String>,
        operation: Option<String>,
    },
    NotFound {
        description: String,
    },
    /// No usable access token: 401, or what the simulator is configured to
    /// answer an invalid or expired one with (Zonky may answer 400).
    Unauthenticated {
        status: StatusCode,
        problem: TokenProblem,
    },
    /// The token lacks the scope the endpoint requires.
    InsufficientScope {
        scope: &'static str,
    },
}

impl ApiError {
    pub(crate) fn invalid_filter(property: &str, operation: &str) -> Self {
        Self::InvalidFilter {
            property: property.to_owned(),
            operation: operation.to_owned(),
        }
    }

    pub(crate) fn invalid_value(property: &str, operation: &str, description: String) -> Self {
        Self::InvalidRequest {
            description,
            property: Some(property.to_owned()),
            operation: Some(operation.to_owned()),
        }
    }

    pub(crate) fn invalid_request(description: String) -> Self {
        Self::InvalidRequest {
            description,
            property: None,
            operation: None,
        }
    }
}

/// Fields in the document's order: error, error_description, uuid, property,
/// operation.
#[derive(Serialize)]
struct ErrorBody {
    error: &'static str,
    error_description: String,
    /// Zonky tags each error with an id for its support to look up (not the
    /// OAuth errors, which come from the authorization layer).
    #[serde(skip_serializing_if = "Option::is_none")]
    uuid: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    property: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    operation: Option<String>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let uuid = Some(uuid::Uuid::new_v4().to_string());
        let (status, body) = match self {
            Self::InvalidFilter {
                property,
                operation,
            } => (
                StatusCode::BAD_REQUEST,
                ErrorBody {
                    error: "invalid_filter",
                    error_description: format!(
                        "Filter or ordering property not allowed: {property}"
                    ),
                    uuid,
                    property: Some(property),
                    operation: Some(operation),
                },
            ),
            Self::InvalidRequest {
                description,
                property,
                operation,
            } => (
                StatusCode::BAD_REQUEST,
                ErrorBody {
                    error: "invalid_request",
                    error_description: description,
                    uuid,
                    property,
                    operation,
                },
            ),
            Self::NotFound { description } => (
                StatusCode::NOT_FOUND,
                ErrorBody {
                    error: "not_found",
                    error_description: description,
                    uuid,
                    property: None,
                    operation: None,
                },
            ),
            Self::Unauthenticated { status, problem } => {
                let error = match problem {
                    TokenProblem::Missing => "unauthorized",
                    TokenProblem::Invalid | TokenProblem::Expired => "invalid_token",
                };
                let description = problem.to_string();
                let mut response = (
                    status,
                    Json(ErrorBody {
                        error,
                        error_description: description.clone(),
                        uuid: None,
                        property: None,
                        operation: None,
                    }),
                )
                    .into_response();
                if status == StatusCode::UNAUTHORIZED {
                    let challenge = if problem == TokenProblem::Missing {
                        "Bearer realm=\"oauth\"".to_owned()
                    } else {
                        format!(
                            "Bearer realm=\"oauth\", error=\"invalid_token\", error_description=\"{description}\""
                        )
                    };
                    if let Ok(value) = HeaderValue::from_str(&challenge) {
                        response
                            .headers_mut()
                            .insert(header::WWW_AUTHENTICATE, value);
                    }
                }
                return response;
            }
            Self::InsufficientScope { scope } => (
                StatusCode::FORBIDDEN,
                ErrorBody {
                    error: "insufficient_scope",
                    error_description: format!("Insufficient scope for this resource: {scope}"),
                    uuid: None,
                    property: None,
                    operation: None,
                },
            ),
        };
        (status, Json(body)).into_response()
    }
}
