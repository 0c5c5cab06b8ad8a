//! Bondora's unified answer, decoded in this one place.
//!
//! Every body is `{"Payload": …, "Success": true, "Errors": null}` (lists add
//! `PageSize`, `PageNr`, `TotalCount` and `Count`); an error is `{"Success":
//! false, "Errors": [{"Code": n, "Message": "…", "Details": "…"}]}` (the
//! document's samples). What comes out:
//!
//! | answer | error |
//! |---|---|
//! | 401, any body | `UNAUTHENTICATED` (so the token is refreshed once) |
//! | 403 / 404 / 409 | `FORBIDDEN` / `NOT_FOUND` / `CONFLICT` |
//! | 400 with an envelope | `INVALID_INPUT`, naming the filter when Bondora names its parameter |
//! | 429 | `RATE_LIMITED` with the wait (`Retry-After`, else the envelope's "Retry after N") |
//! | 408, 5xx | `UPSTREAM_UNAVAILABLE` |
//! | 2xx with `Success: false` | by the first error's `Code` when it is an HTTP status as above, else `UPSTREAM_PROTOCOL_ERROR` |
//! | 2xx whose body is not JSON (an HTML error page), not an envelope, or a success without `Payload` | `UPSTREAM_PROTOCOL_ERROR` |
//! | any other status | `UPSTREAM_PROTOCOL_ERROR` |
//!
//! Bondora's `Code` becomes the error's `provider_code` and its `Message` and
//! `Details` the message. Bodies that are not envelopes are never quoted (an
//! HTML page may echo a request, and requests carry tokens).
//!
//! Where the document is silent the reading is lenient: key names in any
//! letter case, `Success` missing read as "no errors", `Code` as a number or
//! a numeric string.

use std::time::Duration;

use finmesh_core::upstream::UpstreamResponse;
use finmesh_core::{Error, ErrorKind, ProviderId, Result};
use http::StatusCode;
use http::header::RETRY_AFTER;
use serde_json::{Map, Value};

use crate::query;
use crate::wire::{decimal_of, field};

/// A successful answer's payload, and the list fields beside it.
#[derive(Debug)]
pub(crate) struct Envelope {
    pub(crate) payload: Value,
    pub(crate) page_size: Option<u64>,
    pub(crate) total_count: Option<u64>,
}

/// One entry of `Errors` (the reference's `ApiError`).
#[derive(Debug, Default)]
struct ApiError {
    code: Option<i64>,
    message: Option<String>,
    details: Option<String>,
}

/// Decodes an answer of `endpoint` (a path template, for messages).
pub(crate) fn open(
    provider: &ProviderId,
    endpoint: &str,
    response: UpstreamResponse,
) -> Result<Envelope> {
    let status = response.status;
    let body: Option<Value> = serde_json::from_slice(&response.body).ok();
    let object = match &body {
        Some(Value::Object(object)) if is_envelope(object) => Some(object),
        _ => None,
    };
    let errors = object.map(errors_of).unwrap_or_default();

    if !status.is_success() {
        let retry_after = retry_after(&response, &errors);
        return Err(failure(
            provider,
            endpoint,
            Some(status),
            &errors,
            object.is_some(),
            retry_after,
        ));
    }
    let Some(object) = object else {
        let what = match &body {
            None if looks_like_html(&response.body) => "an HTML page",
            None => "not JSON",
            Some(_) => "JSON without Bondora's envelope",
        };
        return Err(Error::upstream_protocol(format!(
            "Bondora answered {endpoint} with {} {what}",
            status.as_u16()
        ))
        .with_provider(provider));
    };
    let success = match field(object, "Success") {
        Some(Value::Bool(success)) => *success,
        None | Some(Value::Null) => errors.is_empty(),
        Some(_) => {
            return Err(Error::upstream_protocol(format!(
                "Bondora answered {endpoint} with a `Success` that is not true or false"
            ))
            .with_provider(provider));
        }
    };
    if !success {
        let retry_after = retry_after(&response, &errors);
        return Err(failure(
            provider,
            endpoint,
            None,
            &errors,
            true,
            retry_after,
        ));
    }
    let payload = match field(object, "Payload") {
        Some(Value::Null) | None => {
            return Err(Error::upstream_protocol(format!(
                "Bondora answered {endpoint} with success but no Payload"
            ))
            .with_provider(provider));
        }
        Some(payload) => payload.clone(),
    };
    let number = |name: &str| {
        field(object, name)
            .and_then(decimal_of)
            .and_then(|d| u64::try_from(d).ok())
    };
    Ok(Envelope {
        payload,
        page_size: number("PageSize"),
        total_count: number("TotalCount"),
    })
}

/// An object with at least one of the envelope's own keys.
fn is_envelope(object: &Map<String, Value>) -> bool {
    ["Success", "Payload", "Errors"]
        .iter()
        .any(|key| field(object, key).is_some())
}

fn looks_like_html(body: &[u8]) -> bool {
    String::from_utf8_lossy(&body[..body.len().min(256)])
        .trim_start()
        .starts_with('<')
}

fn errors_of(object: &Map<String, Value>) -> Vec<ApiError> {
    let Some(Value::Array(entries)) = field(object, "Errors") else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|entry| match entry {
            Value::Object(entry) => Some(ApiError {
                code: field(entry, "Code")
                    .and_then(decimal_of)
                    .and_then(|d| i64::try_from(d.trunc()).ok()),
                message: text(field(entry, "Message")),
                details: text(field(entry, "Details")),
            }),
            Value::String(message) => Some(ApiError {
                message: Some(clean(message)),
                ..ApiError::default()
            }),
            _ => None,
        })
        .collect()
}

fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(text) if !text.trim().is_empty() => Some(clean(text)),
        _ => None,
    }
}

/// One line, at most 300 characters.
fn clean(text: &str) -> String {
    let line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let line = line.trim();
    match line.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_string(),
    }
}

/// `Retry-After` (seconds or a date), else "Retry after N" in an error's
/// details (the document's 429 sample), else one second.
fn retry_after(response: &UpstreamResponse, errors: &[ApiError]) -> Duration {
    let header = response
        .headers
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    Duration::from_secs(
        header
            .or_else(|| retry_after_in_details(errors))
            .unwrap_or(1),
    )
}

/// The seconds of "Retry after N" in an error's details.
fn retry_after_in_details(errors: &[ApiError]) -> Option<u64> {
    errors.iter().find_map(|error| {
        let details = error.details.as_deref()?.to_ascii_lowercase();
        let rest = details.split("retry after").nth(1)?;
        rest.trim()
            .split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse::<u64>()
            .ok()
    })
}

fn kind_of(status: u16, with_envelope: bool) -> ErrorKind {
    match status {
        401 => ErrorKind::Unauthenticated,
        403 => ErrorKind::Forbidden,
        404 => ErrorKind::NotFound,
        429 => ErrorKind::RateLimited,
        408 | 500..=599 => ErrorKind::UpstreamUnavailable,
        // Bondora explains these in an envelope; from anything else (a
        // proxy's page) they are not the caller's doing.
        400 if with_envelope => ErrorKind::InvalidInput,
        409 if with_envelope => ErrorKind::Conflict,
        _ => ErrorKind::UpstreamProtocol,
    }
}

/// The taxonomy error for a refusal: `status` is the HTTP status when it was
/// not a success, else the refusal came in a 2xx envelope and its `Code` decides.
fn failure(
    provider: &ProviderId,
    endpoint: &str,
    status: Option<StatusCode>,
    errors: &[ApiError],
    with_envelope: bool,
    retry_after: Duration,
) -> Error {
    let code = errors.iter().find_map(|error| error.code);
    let deciding = match status {
        Some(status) => Some(status.as_u16()),
        None => code.and_then(|code| u16::try_from(code).ok()),
    };
    let kind = deciding.map_or(ErrorKind::UpstreamProtocol, |status| {
        kind_of(status, with_envelope)
    });
    let said: Vec<String> = errors
        .iter()
        .filter_map(|error| match (&error.message, &error.details) {
            (Some(message), Some(details)) => Some(format!("{message} ({details})")),
            (Some(text), None) | (None, Some(text)) => Some(text.clone()),
            (None, None) => None,
        })
        // Bondora's words, minus anything that looks like a credential.
        .map(|said| finmesh_core::redact::scrub(&said))
        .collect();
    let message = match (status, said.is_empty()) {
        (Some(status), true) => format!("Bondora answered {} to {endpoint}", status.as_u16()),
        (Some(status), false) => format!(
            "Bondora answered {} to {endpoint}: {}",
            status.as_u16(),
            said.join("; ")
        ),
        (None, true) => format!("Bondora refused {endpoint} without saying why"),
        (None, false) => format!("Bondora refused {endpoint}: {}", said.join("; ")),
    };
    let mut error = Error::new(kind, message).with_provider(provider);
    if let Some(code) = code {
        error = error.with_provider_code(code.to_string());
    }
    if kind == ErrorKind::RateLimited {
        error = error.with_retry_after(retry_after);
    }
    if kind == ErrorKind::InvalidInput
        && let Some(field) = errors
            .iter()
            .filter_map(|e| e.details.as_deref())
            .chain(errors.iter().filter_map(|e| e.message.as_deref()))
            .find_map(query::unified_field_for_message)
    {
        error = error.with_field(field);
    }
    error
}

#[cfg(test)]
mod tests {
    use super::*;

    // `open` needs an `UpstreamResponse`, which only the upstream client
    // makes: `tests/conformance.rs` drives it through a local stub.

    #[test]
    fn the_wait_comes_from_the_envelope_details() {
        let errors = [ApiError {
            code: Some(429),
            message: Some("API calls quota exceeded! maximum admitted 1 per Second.".into()),
            details: Some("Retry after 3".into()),
        }];
        assert_eq!(retry_after_in_details(&errors), Some(3));
        assert_eq!(retry_after_in_details(&[ApiError::default()]), None);
        assert_eq!(kind_of(429, true), ErrorKind::RateLimited);
        assert_eq!(kind_of(401, false), ErrorKind::Unauthenticated);
        assert_eq!(kind_of(400, false), ErrorKind::UpstreamProtocol);
        assert_eq!(kind_of(400, true), ErrorKind::InvalidInput);
        assert_eq!(kind_of(502, false), ErrorKind::UpstreamUnavailable);
        assert_eq!(kind_of(0, true), ErrorKind::UpstreamProtocol);
    }

    #[test]
    fn messages_are_one_bounded_line() {
        let long = "x".repeat(1000);
        assert_eq!(clean(&long).chars().count(), 301);
        assert_eq!(clean("a\nb\r\tc"), "a b  c");
        assert!(looks_like_html(b"  <!DOCTYPE html><html>"));
        assert!(!looks_like_html(b"garbage"));
    }

    #[test]
    fn refusals_keep_bondoras_code_and_words() {
        let provider = ProviderId::new("bondora").unwrap();
        let errors = vec![ApiError {
            code: Some(404),
            message: Some("Auction not found".into()),
            details: Some("Auction with id 'x' was not found".into()),
        }];
        let error = failure(
            &provider,
            "/api/v1/auction/{id}",
            None,
            &errors,
            true,
            Duration::from_secs(1),
        );
        assert_eq!(error.kind, ErrorKind::NotFound);
        assert_eq!(error.provider_code.as_deref(), Some("404"));
        assert!(
            error.message.contains("Auction not found"),
            "{}",
            error.message
        );
        let unknown = vec![ApiError {
            code: Some(0),
            message: Some("Error message".into()),
            details: None,
        }];
        let error = failure(&provider, "/x", None, &unknown, true, Duration::ZERO);
        assert_eq!(error.kind, ErrorKind::UpstreamProtocol);
        assert_eq!(error.provider_code.as_deref(), Some("0"));
    }

    #[test]
    fn credentials_bondora_echoes_are_scrubbed() {
        let provider = ProviderId::new("bondora").unwrap();
        let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
        let errors = vec![ApiError {
            code: Some(401),
            message: Some(format!("Invalid token {jwt}")),
            details: Some("Authorization: Bearer 0123456789abcdef0123456789abcdef".into()),
        }];
        let error = failure(&provider, "/x", None, &errors, true, Duration::ZERO);
        assert!(!error.message.contains(jwt), "{}", error.message);
        assert!(
            !error.message.contains("0123456789abcdef"),
            "{}",
            error.message
        );
        assert!(
            error.message.contains("Invalid token [redacted]"),
            "{}",
            error.message
        );
    }
}
