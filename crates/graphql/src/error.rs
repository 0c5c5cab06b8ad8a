//! Errors as GraphQL clients see them: every error carries `extensions.code`.
//!
//! Errors from the gateway keep the code of their [`ErrorKind`](finmesh_core::ErrorKind)
//! (`INVALID_INPUT`, `NOT_FOUND`, `RATE_LIMITED`, `UPSTREAM_UNAVAILABLE`, ...) and,
//! when known, `extensions.provider`, `extensions.field`, `extensions.retryAfter`
//! (whole seconds, rounded up) and `extensions.providerCode`. Errors that
//! async-graphql raises before any resolver runs get [`PARSE_FAILED`] or
//! [`VALIDATION_FAILED`].

use std::sync::Arc;
use std::time::Duration;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextRequest, NextValidation,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{
    ErrorExtensionValues, Response, ServerError, ServerResult, ValidationResult, Variables,
};
use finmesh_core::Error;

/// The query text is not GraphQL.
pub const PARSE_FAILED: &str = "GRAPHQL_PARSE_FAILED";
/// The query does not fit the schema (unknown field, wrong argument type, too deep, ...).
pub const VALIDATION_FAILED: &str = "GRAPHQL_VALIDATION_FAILED";
/// An argument value could not be read as its declared type.
const INVALID_INPUT: &str = "INVALID_INPUT";

/// A resolver's error, with the extensions of `error`.
pub(crate) fn graphql_error(error: Error) -> async_graphql::Error {
    async_graphql::Error {
        extensions: Some(extensions(&error)),
        message: error.message,
        source: None,
    }
}

/// An error reported beside data (e.g. one provider of several failed); the
/// caller sets its path.
pub(crate) fn server_error(error: &Error) -> ServerError {
    let mut server_error = ServerError::new(error.message.clone(), None);
    server_error.extensions = Some(extensions(error));
    server_error
}

fn extensions(error: &Error) -> ErrorExtensionValues {
    let mut values = ErrorExtensionValues::default();
    values.set("code", error.code());
    if let Some(provider) = &error.provider {
        values.set("provider", provider.as_str());
    }
    if let Some(field) = &error.field {
        values.set("field", field.as_str());
    }
    if let Some(retry_after) = error.retry_after {
        values.set("retryAfter", whole_seconds(retry_after));
    }
    if let Some(code) = &error.provider_code {
        values.set("providerCode", code.as_str());
    }
    values
}

/// Rounded up, so a client that waits this long is not refused again.
fn whole_seconds(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

fn has_code(error: &ServerError) -> bool {
    error
        .extensions
        .as_ref()
        .is_some_and(|values| values.get("code").is_some())
}

pub(crate) fn with_code(mut error: ServerError, code: &str) -> ServerError {
    if !has_code(&error) {
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("code", code);
    }
    error
}

/// Gives the errors async-graphql raises itself a `code` like ours.
pub(crate) struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodes)
    }
}

#[async_trait::async_trait]
impl Extension for ErrorCodes {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        // Every resolver error carries a code, so what is left comes from
        // async-graphql: a value that failed to coerce into an argument (it has
        // a path) or a request that names no runnable operation (it has none).
        response.errors = std::mem::take(&mut response.errors)
            .into_iter()
            .map(|error| {
                let code = if error.path.is_empty() {
                    VALIDATION_FAILED
                } else {
                    INVALID_INPUT
                };
                with_code(error, code)
            })
            .collect();
        response
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        next.run(ctx, query, variables)
            .await
            .map_err(|error| with_code(error, PARSE_FAILED))
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await.map_err(|errors| {
            errors
                .into_iter()
                .map(|error| with_code(error, VALIDATION_FAILED))
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(whole_seconds(Duration::from_millis(200)), 1);
        assert_eq!(whole_seconds(Duration::from_secs(2)), 2);
        assert_eq!(whole_seconds(Duration::from_millis(2001)), 3);
    }
}
