//! The HTTP app: GraphQL at `/graphql` (POST with a JSON body, or GET with URL
//! parameters), GraphiQL at `/`, `/healthz`, and the OAuth connect flow under
//! `/connect/`. Every request's principal comes from its `Authorization` header.

use std::sync::Arc;
use std::time::Duration;

use async_graphql::http::GraphiQLSource;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use finmesh_core::{CallContext, Error, ErrorKind, Principal};
use finmesh_graphql::FinmeshSchema;
use finmesh_identity::Connections;
use serde::Deserialize;
use serde_json::json;
use tower_http::trace::TraceLayer;

use crate::auth::FrontendAuth;
use crate::connect;

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct AppState {
    pub schema: FinmeshSchema,
    /// Each request's deadline is this long after it arrives.
    pub request_timeout: Duration,
    pub auth: Arc<FrontendAuth>,
    /// `None` without a store.
    pub connections: Option<Connections>,
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

pub(crate) fn router(state: AppState, graphiql: bool) -> Router {
    let mut router = Router::new()
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/healthz", get(healthz))
        .route("/connect/{provider}", get(connect::start))
        .route("/connect/{provider}/callback", get(connect::callback));
    if graphiql {
        router = router.route("/", get(graphiql_page));
    }
    router.with_state(state).layer(TraceLayer::new_for_http())
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

async fn graphiql_page() -> Html<String> {
    Html(GraphiQLSource::build().endpoint("/graphql").finish())
}

/// A GraphQL request as a POST body.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphQLBody {
    query: String,
    operation_name: Option<String>,
    #[serde(default)]
    variables: serde_json::Value,
}

/// A GraphQL request as GET parameters; `variables` is JSON text.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphQLParams {
    query: String,
    operation_name: Option<String>,
    variables: Option<String>,
}

async fn graphql_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<GraphQLBody>, JsonRejection>,
) -> Result<Json<async_graphql::Response>, RequestError> {
    let Json(body) = body?;
    execute(&state, &headers, body).await
}

async fn graphql_get(
    State(state): State<AppState>,
    headers: HeaderMap,
    params: Result<Query<GraphQLParams>, QueryRejection>,
) -> Result<Json<async_graphql::Response>, RequestError> {
    let Query(params) = params?;
    let variables = match params.variables {
        Some(text) => serde_json::from_str(&text)
            .map_err(|e| RequestError::bad_request(format!("`variables` is not JSON: {e}")))?,
        None => serde_json::Value::Null,
    };
    let body = GraphQLBody {
        query: params.query,
        operation_name: params.operation_name,
        variables,
    };
    execute(&state, &headers, body).await
}

async fn execute(
    state: &AppState,
    headers: &HeaderMap,
    body: GraphQLBody,
) -> Result<Json<async_graphql::Response>, RequestError> {
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
    if let Some(name) = body.operation_name {
        request = request.operation_name(name);
    }
    Ok(Json(state.schema.execute(request).await))
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
