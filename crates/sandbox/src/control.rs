//! The `/__sandbox/` control endpoints every simulator shares: stats, request
//! log, reset and faults. They are never throttled or faulted.

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::json;

use crate::{
    faults::{FaultInjector, Faults},
    stats::{RequestLog, RequestRecord, Stats},
};

/// What the control endpoints need from a simulator.
pub(crate) trait Simulator: Send + Sync + 'static {
    fn log(&self) -> &RequestLog;
    fn faults(&self) -> &FaultInjector;
    /// Clears counters and log and refills every throttling bucket.
    fn reset(&self);
}

pub(crate) fn router<S: Simulator>(simulator: Arc<S>) -> Router {
    Router::new()
        .route("/__sandbox/stats", get(stats::<S>))
        .route("/__sandbox/requests", get(requests::<S>))
        .route("/__sandbox/reset", post(reset::<S>))
        .route("/__sandbox/faults", get(faults::<S>).put(set_faults::<S>))
        .with_state(simulator)
}

async fn stats<S: Simulator>(State(simulator): State<Arc<S>>) -> Json<Stats> {
    Json(simulator.log().stats())
}

async fn requests<S: Simulator>(State(simulator): State<Arc<S>>) -> Json<Vec<RequestRecord>> {
    Json(simulator.log().requests())
}

async fn reset<S: Simulator>(State(simulator): State<Arc<S>>) -> StatusCode {
    simulator.reset();
    StatusCode::NO_CONTENT
}

async fn faults<S: Simulator>(State(simulator): State<Arc<S>>) -> Json<Faults> {
    Json(simulator.faults().faults())
}

async fn set_faults<S: Simulator>(
    State(simulator): State<Arc<S>>,
    Json(faults): Json<Faults>,
) -> Response {
    if let Err(invalid) = faults.validate() {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_faults", "error_description": invalid.to_string()})),
        )
            .into_response();
    }
    simulator.faults().set(faults.clone());
    Json(faults).into_response()
}
