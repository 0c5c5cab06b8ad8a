//! The HTTP app: GraphQL at `/graphql` (POST with a JSON body, or GET with URL
//! parameters), GraphiQL at `/`, `/healthz`, and the OAuth connect flow under
//! `/connect/`. Every request's principal comes from its `Authorization` header.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use finmesh_core::{CallContext, Error, ErrorKind, Principal};
use finmesh_graphql::FinmeshSchema;
use finmesh_identity::Connections;
use serde::Deserialize;
use serde_json::json;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::auth::FrontendAuth;
use crate::config::HttpConfig;
use crate::hardening;
use crate::ops::{self, Ops};
use crate::{connect, graphiql};

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct AppState {
    pub schema: FinmeshSchema,
    /// Each request's deadline is this long after it arrives.
    pub request_timeout: Duration,
    pub auth: Arc<FrontendAuth>,
    /// `None` without a store.
    pub connections: Option<Connections>,
    /// Readiness, metrics and the status page.
    pub ops: Ops,
    /// `POST /webhooks/{provider}`: the providers' receivers and the store.
    pub webhooks: crate::webhooks::Webhooks,
    /// The most requests in one POSTed batch.
    pub max_batch_size: usize,
    /// The per-caller rate limit on `/graphql`.
    pub shed: crate::shed::Shedder,
}

impl AppState {
    /// The principal behind the request's `Authorization` header, if any.
    pub(crate) fn principal(&self, headers: &HeaderMap) -> Result<Option<Principal>, Error> {
        let header = match headers.get(AUTHORIZATION).map(|v| v.to_str()) {
            None => None,
            Some(Ok(value)) => Some(value),
            Some(Err(_)) => {
                return Err(Error::new(
                    ErrorKind::Unauthenticated,
                    "the Authorization header is not readable text",
                ));
            }
        };
        self.auth
            .principal(header)
            .map_err(|reason| Error::new(ErrorKind::Unauthenticated, reason.to_string()))
    }
}

pub(crate) fn router(state: AppState, graphiql: bool, http: &HttpConfig) -> Router {
    let shed = axum::middleware::from_fn_with_state(state.clone(), crate::shed::limit);
    let mut router = Router::new()
        .route("/graphql", get(graphql_get).post(graphql_post).layer(shed))
        .route("/healthz", get(healthz))
        .route("/connect/{provider}", get(connect::start))
        .route("/connect/{provider}/callback", get(connect::callback))
        .route(
            "/webhooks/{provider}",
            axum::routing::post(crate::webhooks::receive),
        );
    if graphiql {
        router = router.merge(graphiql::routes());
    }
    let ops = ops::routes(state.ops.clone());
    hardening::protect(router.with_state(state).merge(ops), http)
        // Outermost first: give the request an id, trace it under that id, return it.
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// The span every request's logs and traces hang under: its id (the
/// caller's `X-Request-Id`, or a new UUID), method and path (never the query
/// string, which may carry an OAuth code).
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    // A caller's id is kept as given, but bounded in logs.
    let id = id.get(..id.len().min(128)).unwrap_or_default();
    tracing::info_span!(
        "http_request",
        request_id = id,
        method = %request.method(),
        path = request.uri().path(),
    )
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// A GraphQL request as a POST body, or one of a batch.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphQLBody {
    /// Empty when `extensions.persistedQuery` names the query.
    #[serde(default)]
    query: String,
    operation_name: Option<String>,
    #[serde(default)]
    variables: serde_json::Value,
    #[serde(default)]
    extensions: serde_json::Value,
}

/// A GraphQL request as GET parameters; `variables` and `extensions` are JSON text.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphQLParams {
    #[serde(default)]
    query: String,
    operation_name: Option<String>,
    variables: Option<String>,
    extensions: Option<String>,
}

/// One request (a JSON object), or a batch of them (a JSON array, at most
/// `max_batch_size`, run one after the other, answered with an array).
async fn graphql_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Json<async_graphql::BatchResponse>, RequestError> {
    let Json(body) = body?;
    let serde_json::Value::Array(items) = body else {
        let body = graphql_body(body).map_err(RequestError::bad_request)?;
        let response = execute(&state, &headers, body).await?;
        return Ok(Json(async_graphql::BatchResponse::Single(response)));
    };
    if items.is_empty() {
        return Err(RequestError::bad_request("the batch is empty"));
    }
    if items.len() > state.max_batch_size {
        return Err(RequestError {
            status: StatusCode::BAD_REQUEST,
            code: "BATCH_TOO_LARGE",
            message: format!(
                "a batch holds at most {} requests; this one holds {}",
                state.max_batch_size,
                items.len()
            ),
        });
    }
    let bodies = items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            graphql_body(item).map_err(|message| {
                RequestError::bad_request(format!("batch item {index}: {message}"))
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut responses = Vec::with_capacity(bodies.len());
    for body in bodies {
        responses.push(execute(&state, &headers, body).await?);
    }
    Ok(Json(async_graphql::BatchResponse::Batch(responses)))
}

fn graphql_body(json: serde_json::Value) -> Result<GraphQLBody, String> {
    if !json.is_object() {
        return Err("a GraphQL request is a JSON object (or an array of them)".to_string());
    }
    let body: GraphQLBody = serde_json::from_value(json).map_err(|e| e.to_string())?;
    let persisted = body.extensions.get("persistedQuery").is_some();
    if body.query.is_empty() && !persisted {
        return Err("`query` is missing".to_string());
    }
    Ok(body)
}

async fn graphql_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Result<Query<GraphQLParams>, QueryRejection>,
) -> Result<Json<async_graphql::Response>, RequestError> {
    let Query(params) = params?;
    let json = |name: &str, text: Option<String>| match text {
        Some(text) => serde_json::from_str(&text)
            .map_err(|e| RequestError::bad_request(format!("`{name}` is not JSON: {e}"))),
        None => Ok(serde_json::Value::Null),
    };
    let body = json!({
        "query": params.query,
        "operationName": params.operation_name,
        "variables": json("variables", params.variables)?,
        "extensions": json("extensions", params.extensions)?,
    });
    let body = graphql_body(body).map_err(RequestError::bad_request)?;
    execute(&state, &headers, body).await.map(Json)
}

async fn execute(
    state: &AppState,
    headers: &HeaderMap,
    body: GraphQLBody,
) -> Result<async_graphql::Response, RequestError> {
    let principal = state.principal(headers).map_err(|error| RequestError {
        status: StatusCode::UNAUTHORIZED,
        code: "UNAUTHENTICATED",
        message: error.message,
    })?;
    let context = CallContext {
        principal,
        deadline: tokio::time::Instant::now() + state.request_timeout,
    };
    if !(body.variables.is_object() || body.variables.is_null()) {
        return Err(RequestError::bad_request(
            "`variables` must be a JSON object",
        ));
    }
    let mut request = async_graphql::Request::new(body.query)
        .variables(finmesh_graphql::variables(&body.variables))
        .data(context);
    request.extensions = finmesh_graphql::request_extensions(&body.extensions);
    if let Some(name) = body.operation_name {
        request = request.operation_name(name);
    }
    Ok(state.schema.execute(request).await)
}

/// An HTTP request that is not a GraphQL request at all. Answered with its
/// HTTP status and GraphQL's error shape, `extensions.code` = `BAD_REQUEST`.
#[derive(Debug)]
pub(crate) struct RequestError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl RequestError {
    fn bad_request(message: impl Into<String>) -> Self {
        RequestError {
            status: StatusCode::BAD_REQUEST,
            code: "BAD_REQUEST",
            message: message.into(),
        }
    }
}

impl IntoResponse for RequestError {
    fn into_response(self) -> Response {
        let body = json!({
            "errors": [{"message": self.message, "extensions": {"code": self.code}}]
        });
        (self.status, Json(body)).into_response()
    }
}

impl From<JsonRejection> for RequestError {
    fn from(rejection: JsonRejection) -> Self {
        RequestError {
            status: rejection.status(),
            code: "BAD_REQUEST",
            message: rejection.body_text(),
        }
    }
}

impl From<QueryRejection> for RequestError {
    fn from(rejection: QueryRejection) -> Self {
        RequestError {
            status: rejection.status(),
            code: "BAD_REQUEST",
            message: rejection.body_text(),
        }
    }
}

#[cfg(test)]
mod tests;
