//! What every resolver needs from the request: the services, who asks and
//! until when, and how to report failures beside data.

use std::any::Any;
use std::future::Future;
use std::time::Duration;

use async_graphql::{Context, Result};
use finmesh_core::aggregate::Aggregator;
use finmesh_core::{CallContext, Error, ErrorKind, Principal};

use crate::SchemaOptions;
use crate::error::{graphql_error, server_error};

/// The aggregator, and the caller's context from the request data (or a
/// fresh anonymous one with the schema's timeout).
pub(crate) fn request_env<'a>(ctx: &Context<'a>) -> Result<(&'a Aggregator, CallContext)> {
    let aggregator = ctx
        .data_opt::<Aggregator>()
        .ok_or_else(|| graphql_error(Error::internal("the schema was built without providers")))?;
    let call = match ctx.data_opt::<CallContext>() {
        Some(call) => call.clone(),
        None => {
            let timeout = ctx
                .data_opt::<SchemaOptions>()
                .map(|options| options.request_timeout)
                .unwrap_or_else(|| SchemaOptions::default().request_timeout);
            CallContext::anonymous(timeout)
        }
    };
    Ok((aggregator, call))
}

/// The signed-in principal, or `UNAUTHENTICATED` saying what signing in is for.
pub(crate) fn signed_in<'c>(call: &'c CallContext, purpose: &str) -> Result<&'c Principal> {
    call.principal.as_ref().ok_or_else(|| {
        graphql_error(Error::new(
            ErrorKind::Unauthenticated,
            format!("sign in to {purpose}: send `Authorization: Bearer <token>`"),
        ))
    })
}

/// A service the gateway runs only with a store (connections, payments), or
/// `NOT_SUPPORTED` naming what is missing.
pub(crate) fn service<'a, T: Any + Send + Sync>(ctx: &Context<'a>, what: &str) -> Result<&'a T> {
    ctx.data_opt::<T>().ok_or_else(|| {
        graphql_error(Error::new(
            ErrorKind::NotSupported,
            format!("{what} is not available: this gateway runs without a store"),
        ))
    })
}

/// Lists the failures of single providers as errors beside the data, at the
/// current field's path.
pub(crate) fn report(ctx: &Context<'_>, errors: &[Error]) {
    for error in errors {
        ctx.add_error(ctx.set_error_path(server_error(error)));
    }
}

/// A nullable field's answer: its value, or null with its error listed at
/// the field's path. (async-graphql would leave a failed field out of the
/// data instead of setting it to null.)
pub(crate) fn or_null<T>(ctx: &Context<'_>, answer: Result<Option<T>>) -> Option<T> {
    answer.unwrap_or_else(|error| {
        ctx.add_error(ctx.set_error_path(error.into_server_error(ctx.item.pos)));
        None
    })
}

/// How long after the deadline the providers' own deadline handling, which
/// keeps the other providers' answers, gets before the whole request gives up.
const DEADLINE_GRACE: Duration = Duration::from_millis(500);

/// A backstop so that no request outlives its deadline, whatever a provider does.
pub(crate) async fn before_deadline<T>(
    call: &CallContext,
    work: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::time::timeout_at(call.deadline + DEADLINE_GRACE, work)
        .await
        .unwrap_or_else(|_| {
            Err(Error::upstream_unavailable(
                "the providers did not answer before the request deadline",
            ))
        })
}

/// Runs a write on its own task, so that it finishes and records its outcome
/// (idempotency record, audit log) even when the caller goes away or the
/// deadline passes first; `repeat` tells the caller how to learn the outcome
/// then.
pub(crate) async fn run_to_completion<T: Send + 'static>(
    call: &CallContext,
    repeat: &str,
    work: impl Future<Output = Result<T, Error>> + Send + 'static,
) -> Result<T, Error> {
    let task = tokio::spawn(work);
    match tokio::time::timeout_at(call.deadline + DEADLINE_GRACE, task).await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(_)) => Err(Error::internal("the request failed unexpectedly")),
        Err(_) => Err(Error::upstream_unavailable(format!(
            "the provider did not answer before the request deadline; the request goes on: {repeat}"
        ))),
    }
}
