//! The error taxonomy every layer speaks: a small set of kinds, each with a stable
//! code that GraphQL exposes as `extensions.code`, and the provider it came from.

use std::fmt;
use std::time::Duration;

use crate::id::ProviderId;

/// What went wrong, from the caller's point of view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The caller did not prove who they are (missing, expired or invalid token).
    Unauthenticated,
    /// The principal has not linked an account at this provider.
    NotConnected,
    /// The link to the provider needs the user to authorize again.
    ReauthorizationRequired,
    /// The caller is known but may not do this.
    Forbidden,
    NotFound,
    /// The request itself is wrong; `field` names what.
    InvalidInput,
    /// The provider does not offer this operation at all.
    NotSupported,
    /// A budget is exhausted; `retry_after` says when to come back.
    RateLimited,
    /// The provider could not be reached or answered 5xx / timed out.
    UpstreamUnavailable,
    /// The provider answered something we cannot understand.
    UpstreamProtocol,
    /// The request conflicts with the current state (e.g. idempotency key reuse).
    Conflict,
    Internal,
}

impl ErrorKind {
    /// The stable machine-readable code (`extensions.code`).
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::Unauthenticated => "UNAUTHENTICATED",
            ErrorKind::NotConnected => "NOT_CONNECTED",
            ErrorKind::ReauthorizationRequired => "REAUTHORIZATION_REQUIRED",
            ErrorKind::Forbidden => "FORBIDDEN",
            ErrorKind::NotFound => "NOT_FOUND",
            ErrorKind::InvalidInput => "INVALID_INPUT",
            ErrorKind::NotSupported => "NOT_SUPPORTED",
            ErrorKind::RateLimited => "RATE_LIMITED",
            ErrorKind::UpstreamUnavailable => "UPSTREAM_UNAVAILABLE",
            ErrorKind::UpstreamProtocol => "UPSTREAM_PROTOCOL_ERROR",
            ErrorKind::Conflict => "CONFLICT",
            ErrorKind::Internal => "INTERNAL",
        }
    }

    /// The kind behind a stable code, e.g. from a recorded answer.
    pub fn from_code(code: &str) -> Option<ErrorKind> {
        ALL_KINDS.into_iter().find(|kind| kind.code() == code)
    }

    /// Whether retrying the same idempotent request later may succeed.
    pub fn is_transient(self) -> bool {
        matches!(
            self,
            ErrorKind::RateLimited | ErrorKind::UpstreamUnavailable
        )
    }
}

const ALL_KINDS: [ErrorKind; 12] = [
    ErrorKind::Unauthenticated,
    ErrorKind::NotConnected,
    ErrorKind::ReauthorizationRequired,
    ErrorKind::Forbidden,
    ErrorKind::NotFound,
    ErrorKind::InvalidInput,
    ErrorKind::NotSupported,
    ErrorKind::RateLimited,
    ErrorKind::UpstreamUnavailable,
    ErrorKind::UpstreamProtocol,
    ErrorKind::Conflict,
    ErrorKind::Internal,
];

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// An error with its kind, a human message, and the context a caller needs to act on it.
///
/// Messages must never contain secrets: adapters build them from status codes and
/// platform error codes, not from request headers.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    /// The provider the failure belongs to, if any.
    pub provider: Option<ProviderId>,
    /// The platform's own error code (e.g. Bongloy's `insufficient_balance`).
    pub provider_code: Option<String>,
    /// The input field that was wrong, for `InvalidInput`.
    pub field: Option<String>,
    /// When a rate-limited caller may try again.
    pub retry_after: Option<Duration>,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            provider: None,
            provider_code: None,
            field: None,
            retry_after: None,
        }
    }

    pub fn invalid_input(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidInput, message).with_field(field)
    }

    pub fn not_supported(operation: &str) -> Self {
        Error::new(
            ErrorKind::NotSupported,
            format!("operation `{operation}` is not supported by this provider"),
        )
    }

    pub fn not_found(what: impl fmt::Display) -> Self {
        Error::new(ErrorKind::NotFound, format!("{what} not found"))
    }

    pub fn rate_limited(retry_after: Duration, message: impl Into<String>) -> Self {
        Error::new(ErrorKind::RateLimited, message).with_retry_after(retry_after)
    }

    pub fn upstream_unavailable(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::UpstreamUnavailable, message)
    }

    pub fn upstream_protocol(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::UpstreamProtocol, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Internal, message)
    }

    /// Attributes the error to a provider, unless it already names one.
    pub fn with_provider(mut self, provider: &ProviderId) -> Self {
        if self.provider.is_none() {
            self.provider = Some(provider.clone());
        }
        self
    }

    pub fn with_provider_code(mut self, code: impl Into<String>) -> Self {
        self.provider_code = Some(code.into());
        self
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn with_retry_after(mut self, retry_after: Duration) -> Self {
        self.retry_after = Some(retry_after);
        self
    }

    pub fn code(&self) -> &'static str {
        self.kind.code()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_is_kept_once_set() {
        let zonky = ProviderId::new("zonky").unwrap();
        let bondora = ProviderId::new("bondora").unwrap();
        let err = Error::not_found("loan")
            .with_provider(&zonky)
            .with_provider(&bondora);
        assert_eq!(err.provider, Some(zonky));
        assert_eq!(err.code(), "NOT_FOUND");
        assert_eq!(err.to_string(), "loan not found");
    }
}
