//! The HTTP app: GraphQL at `/graphql` (POST with a JSON body, or GET with URL
//! parameters), GraphiQL at `/`, and `/healthz`.

use std::time::Duration;

use async_graphql::http::GraphiQLSource;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use finmesh_core::CallContext;
use finmesh_graphql::FinmeshSchema;
use serde::Deserialize;
use serde_json::json;
use tower_http::trace::TraceLayer;

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct AppState {
    pub schema: FinmeshSchema,
    /// Each request's deadline is this long after it arrives.
    pub request_timeout: Duration,
}

pub(crate) fn router(state: AppState, graphiql: bool) -> Router {
    let mut router = Router::new()
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/healthz", get(healthz));
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
    body: Result<Json<GraphQLBody>, JsonRejection>,
) -> Result<Json<async_graphql::Response>, RequestError> {
    let Json(body) = body?;
    execute(&state, body).await
}

async fn graphql_get(
    State(state): State<AppState>,
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
    execute(&state, body).await
}

async fn execute(
    state: &AppState,
    body: GraphQLBody,
) -> Result<Json<async_graphql::Response>, RequestError> {
    if !(body.variables.is_object() || body.variables.is_null()) {
        return Err(RequestError::bad_request(
            "`variables` must be a JSON object",
        ));
    }
    let mut request = async_graphql::Request::new(body.query)
        .variables(finmesh_graphql::variables(&body.variables))
        .data(CallContext::anonymous(state.request_timeout));
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
    message: String,
}

impl RequestError {
    fn bad_request(message: impl Into<String>) -> Self {
        RequestError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
        }
    }
}

impl IntoResponse for RequestError {
    fn into_response(self) -> Response {
        let body = json!({
            "errors": [{"message": self.message, "extensions": {"code": "BAD_REQUEST"}}]
        });
        (self.status, Json(body)).into_response()
    }
}

impl From<JsonRejection> for RequestError {
    fn from(rejection: JsonRejection) -> Self {
        RequestError {
            status: rejection.status(),
            message: rejection.body_text(),
        }
    }
}

impl From<QueryRejection> for RequestError {
    fn from(rejection: QueryRejection) -> Self {
        RequestError {
            status: rejection.status(),
            message: rejection.body_text(),
        }
    }
}

#[cfg(test)]
mod tests;
