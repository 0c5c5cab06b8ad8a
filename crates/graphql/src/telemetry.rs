//! One span and one metrics sample per GraphQL operation: its name (as
//! resolved from the document, or `anonymous`), its outcome (`ok`, `partial`
//! when data came with errors, `error`) and its latency.

use std::sync::{Arc, Mutex, PoisonError};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextPrepareRequest, NextRequest,
};
use async_graphql::{Request, Response, ServerResult, Value};
use finmesh_core::telemetry;
use tokio::time::Instant;
use tracing::Instrument;
use tracing::field::Empty;

pub(crate) struct Telemetry;

impl ExtensionFactory for Telemetry {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(OperationTelemetry::default())
    }
}

/// Created per request; learns the operation's name from the request's
/// `operationName`, then from the document once it is parsed.
#[derive(Default)]
struct OperationTelemetry {
    operation: Mutex<Option<String>>,
}

#[async_trait::async_trait]
impl Extension for OperationTelemetry {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let span = tracing::info_span!(
            "graphql",
            otel.name = "graphql",
            operation = Empty,
            outcome = Empty
        );
        let started = Instant::now();
        let response = next.run(ctx).instrument(span.clone()).await;
        let outcome = match (response.errors.is_empty(), &response.data) {
            (true, _) => "ok",
            (false, Value::Null) => "error",
            (false, _) => "partial",
        };
        let operation = self
            .operation
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .unwrap_or_default();
        let label = telemetry::record_graphql(&operation, outcome, started.elapsed());
        span.record("operation", label.as_str());
        span.record("outcome", outcome);
        response
    }

    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        if let Some(name) = &request.operation_name {
            *self
                .operation
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(name.clone());
        }
        next.run(ctx, request).await
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        if let Some(name) = operation_name {
            *self
                .operation
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(name.to_string());
        }
        next.run(ctx, operation_name).await
    }
}
