//! Bongloy's error answers mapped to the finmesh taxonomy.
//!
//! | answer | finmesh code | field |
//! |---|---|---|
//! | `validation_error` | `INVALID_INPUT` | from `source.pointer` / `source.parameter` |
//! | `invalid_amount` | `INVALID_INPUT` | `input.amount` |
//! | `destination_account_not_found`, `destination_account_is_not_active` | `INVALID_INPUT` | `input.destinationAccount` |
//! | `insufficient_balance`, `invalid_transfer`, `expired_transfer`, `destination_account_daily_transfer_limit_exceeded` | `CONFLICT` | none |
//! | 401 (any body) | `INTERNAL`: the operator's key, token or clock is wrong, not the user's request | none |
//! | 404 | `NOT_FOUND` | none |
//! | 429 | `RATE_LIMITED` (from the upstream client) | none |
//! | 408, 5xx, timeouts, dropped connections | `UPSTREAM_UNAVAILABLE` | none |
//! | another 4xx with an unknown code | `INVALID_INPUT` when its pointer names an input, else the status's generic mapping | as the pointer says |
//!
//! The Bongloy code is kept in `Error::provider_code`. Messages are ours;
//! Bongloy's `detail` is added only for the two input codes, whose detail
//! explains the input.

use finmesh_core::upstream::UpstreamResponse;
use finmesh_core::{Error, ErrorKind, ProviderId};
use http::StatusCode;

use crate::wire::{ApiError, api_errors};

/// What the failed request was, for field names and messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    Create,
    Confirm,
    Read,
    UpdateMetadata,
    List,
    Organizations,
}

/// The message of a refused token: the operator has to act, not the user.
pub const REFUSED_TOKEN: &str =
    "Bongloy refused the gateway's signed token: check the partner key, api token and clock";

/// Maps an answer that is not a success.
pub(crate) fn map_error(
    provider: &ProviderId,
    operation: Operation,
    native_id: Option<&str>,
    response: UpstreamResponse,
) -> Error {
    let status = response.status;
    if status == StatusCode::UNAUTHORIZED {
        // Bongloy's detail may say which check failed (a stale timestamp, an
        // unknown token): useful to the operator, in the logs only.
        let detail = api_errors(&response.body)
            .into_iter()
            .find_map(|e| e.detail)
            .unwrap_or_default();
        let detail = finmesh_core::redact::scrub(&detail);
        tracing::warn!(provider = %provider, detail = %truncate(&detail, 200), "{REFUSED_TOKEN}");
        return Error::internal(REFUSED_TOKEN).with_provider(provider);
    }
    if status == StatusCode::NOT_FOUND {
        let what = match (operation, native_id) {
            (_, Some(id)) => format!("{provider} transfer {id}"),
            (Operation::Organizations, None) => format!("{provider} organizations endpoint"),
            _ => format!("{provider} transfers endpoint"),
        };
        return Error::not_found(what).with_provider(provider);
    }
    if status.is_client_error() && status != StatusCode::TOO_MANY_REQUESTS {
        let errors = api_errors(&response.body);
        // The first error with one of the document's codes decides; else the first.
        let chosen = errors
            .iter()
            .find(|e| e.code.as_deref().is_some_and(is_documented))
            .or_else(|| errors.first());
        if let Some(error) = chosen
            && let Some(mapped) = map_api_error(operation, error)
        {
            return mapped.with_provider(provider);
        }
    }
    response.into_default_error()
}

const DOCUMENTED: [&str; 8] = [
    "validation_error",
    "invalid_amount",
    "insufficient_balance",
    "invalid_transfer",
    "expired_transfer",
    "destination_account_daily_transfer_limit_exceeded",
    "destination_account_not_found",
    "destination_account_is_not_active",
];

fn is_documented(code: &str) -> bool {
    DOCUMENTED.contains(&code)
}

/// One JSON:API error object, if it says enough to be mapped.
fn map_api_error(operation: Operation, error: &ApiError) -> Option<Error> {
    let code = error.code.as_deref();
    let field = error
        .pointer
        .as_deref()
        .and_then(|p| field_of_pointer(operation, p))
        .or_else(|| error.parameter.as_deref().map(field_of_parameter));
    let with_detail = |ours: &str| match &error.detail {
        // Bongloy's words, minus anything that looks like a credential.
        Some(detail) if !detail.is_empty() => {
            format!(
                "{ours}: {}",
                truncate(&finmesh_core::redact::scrub(detail), 300)
            )
        }
        _ => ours.to_string(),
    };
    let mapped = match code {
        Some("validation_error") => Error::invalid_input(
            field.unwrap_or_else(|| input(operation, "")),
            with_detail("Bongloy refused the request as invalid"),
        ),
        Some("invalid_amount") => Error::invalid_input(
            input(operation, "amount"),
            with_detail("Bongloy refused the amount (it must be at least 1.00 USD)"),
        ),
        Some("destination_account_not_found") => Error::invalid_input(
            "input.destinationAccount",
            "no Bongloy account has this destination account number",
        ),
        Some("destination_account_is_not_active") => Error::invalid_input(
            "input.destinationAccount",
            "the destination Bongloy account is not active",
        ),
        Some("insufficient_balance") => Error::new(
            ErrorKind::Conflict,
            "the partner's Bongloy balance is too low for this transfer",
        ),
        Some("invalid_transfer") => Error::new(
            ErrorKind::Conflict,
            "the transfer cannot be confirmed in its current state (only a pending transfer can)",
        ),
        Some("expired_transfer") => Error::new(
            ErrorKind::Conflict,
            "the transfer expired before it was confirmed; create a new one",
        ),
        Some("destination_account_daily_transfer_limit_exceeded") => Error::new(
            ErrorKind::Conflict,
            "the destination account's daily transfer limit would be exceeded",
        ),
        // An undocumented code, or none: an input problem only if it points at an input.
        _ => match field {
            Some(field) => Error::invalid_input(field, with_detail("Bongloy refused the request")),
            None => return None,
        },
    };
    Some(match code {
        Some(code) => mapped.with_provider_code(code),
        None => mapped,
    })
}

/// `input.<name>` for a create; the argument's own name for the other
/// operations (`updateTransferMetadata(id, metadata)` names `metadata`).
fn input(operation: Operation, name: &str) -> String {
    match (operation, name) {
        (Operation::Create, "") => "input".to_string(),
        (Operation::Create, name) => format!("input.{name}"),
        (_, "") => "input".to_string(),
        (_, name) => name.to_string(),
    }
}

/// The unified field a JSON pointer into our request document names.
fn field_of_pointer(operation: Operation, pointer: &str) -> Option<String> {
    let attribute = pointer.strip_prefix("/data/attributes/")?;
    let name = attribute.split('/').next().unwrap_or_default();
    let unified = match name {
        "amount" => "amount",
        "currency" => "currency",
        "destination_account_number" => {
            // The destination is an input of the creation whatever the operation.
            return Some("input.destinationAccount".to_string());
        }
        "metadata" => "metadata",
        _ => return None,
    };
    Some(input(operation, unified))
}

/// The unified field a query parameter names (`filter[status]` → `filter.status`).
fn field_of_parameter(parameter: &str) -> String {
    match parameter {
        "filter[status]" => "filter.status".to_string(),
        "filter[from_date]" | "filter[to_date]" => "filter.createdAt".to_string(),
        other => other.replace('[', ".").replace(']', ""),
    }
}

fn truncate(text: &str, max: usize) -> &str {
    match text.char_indices().nth(max) {
        Some((at, _)) => &text[..at],
        None => text,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn mapped(operation: Operation, error: serde_json::Value) -> Error {
        let body = serde_json::to_vec(&json!({"errors": [error]})).unwrap();
        let errors = api_errors(&body);
        map_api_error(operation, &errors[0]).unwrap()
    }

    #[test]
    fn pointers_name_the_unified_fields() {
        let e = mapped(
            Operation::Create,
            json!({"code": "validation_error", "detail": "amount is required", "source": {"pointer": "/data/attributes/amount"}}),
        );
        assert_eq!(
            (e.code(), e.field.as_deref()),
            ("INVALID_INPUT", Some("input.amount"))
        );
        assert_eq!(e.provider_code.as_deref(), Some("validation_error"));
        assert!(e.message.contains("amount is required"));

        let e = mapped(
            Operation::Create,
            json!({"code": "validation_error", "source": {"pointer": "/data/attributes/destination_account_number"}}),
        );
        assert_eq!(e.field.as_deref(), Some("input.destinationAccount"));
        let e = mapped(
            Operation::Create,
            json!({"code": "validation_error", "source": {"pointer": "/data/attributes/metadata/k"}}),
        );
        assert_eq!(e.field.as_deref(), Some("input.metadata"));
        let e = mapped(
            Operation::UpdateMetadata,
            json!({"code": "validation_error", "source": {"pointer": "/data/attributes/metadata"}}),
        );
        assert_eq!(e.field.as_deref(), Some("metadata"));
        let e = mapped(
            Operation::List,
            json!({"code": "validation_error", "source": {"parameter": "filter[from_date]"}}),
        );
        assert_eq!(e.field.as_deref(), Some("filter.createdAt"));
        let e = mapped(
            Operation::Create,
            json!({"code": "validation_error", "source": {"pointer": "/data/type"}}),
        );
        assert_eq!(e.field.as_deref(), Some("input"));
    }

    #[test]
    fn credentials_in_details_are_scrubbed() {
        let e = mapped(
            Operation::Create,
            json!({"code": "validation_error", "detail": "api_token: sandbox-partner-api-token is invalid"}),
        );
        assert!(
            !e.message.contains("sandbox-partner-api-token"),
            "{}",
            e.message
        );
        assert!(e.message.contains("api_token: [redacted]"), "{}", e.message);
    }

    #[test]
    fn business_codes_are_conflicts() {
        for code in [
            "insufficient_balance",
            "invalid_transfer",
            "expired_transfer",
            "destination_account_daily_transfer_limit_exceeded",
        ] {
            let e = mapped(
                Operation::Confirm,
                json!({"code": code, "detail": "balance 12 cents"}),
            );
            assert_eq!(e.code(), "CONFLICT", "{code}");
            assert_eq!(e.provider_code.as_deref(), Some(code));
            assert!(!e.message.contains("12 cents"), "{}", e.message);
        }
        for code in [
            "destination_account_not_found",
            "destination_account_is_not_active",
        ] {
            let e = mapped(Operation::Confirm, json!({"code": code}));
            assert_eq!(
                (e.code(), e.field.as_deref()),
                ("INVALID_INPUT", Some("input.destinationAccount"))
            );
        }
        let e = mapped(Operation::Create, json!({"code": "invalid_amount"}));
        assert_eq!(
            (e.code(), e.field.as_deref()),
            ("INVALID_INPUT", Some("input.amount"))
        );
    }

    #[test]
    fn unknown_codes_map_only_with_a_field() {
        let body = serde_json::to_vec(&json!({"errors": [{"code": "something_new"}]})).unwrap();
        assert!(map_api_error(Operation::Create, &api_errors(&body)[0]).is_none());
        let e = mapped(
            Operation::Create,
            json!({"code": "something_new", "source": {"pointer": "/data/attributes/currency"}}),
        );
        assert_eq!(
            (e.code(), e.field.as_deref()),
            ("INVALID_INPUT", Some("input.currency"))
        );
        assert_eq!(e.provider_code.as_deref(), Some("something_new"));
    }
}
