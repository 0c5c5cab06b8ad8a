//! Operations endpoints (`/healthz`, the process is alive, is in `http.rs`):
//! `/readyz` (it can serve: store reachable with every migration applied, no
//! shutdown under way; Redis and the providers' circuits are reported),
//! `/metrics` (Prometheus text), and the status page (`/status`, `/status.json`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use finmesh_core::aggregate::Aggregator;
use finmesh_core::resilience::Resilience;
use finmesh_core::telemetry;
use finmesh_core::upstream::{Throttle, ThrottleBackend};
use finmesh_store::Store;
use serde::Serialize;
use serde_json::json;

use crate::status::{self, History};

/// How long one readiness check may take before it counts as failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A dependency `/readyz` checks, e.g. Redis when configured.
#[async_trait]
pub trait ReadinessProbe: Send + Sync {
    /// The check's name in the `/readyz` body.
    fn name(&self) -> &'static str;
    /// `Err` with a reason safe to show (no secrets, no connection strings).
    async fn check(&self) -> Result<(), String>;
    /// Whether a failure makes the gateway unready; otherwise it is only
    /// reported (`"status": "degraded"`, still 200).
    fn critical(&self) -> bool {
        true
    }
}

/// What the operations endpoints look at; cheap to clone.
#[derive(Clone)]
pub(crate) struct Ops {
    pub aggregator: Aggregator,
    pub throttle: Arc<dyn Throttle>,
    pub resilience: Resilience,
    pub probes: Vec<Arc<dyn ReadinessProbe>>,
    pub history: History,
    shutting_down: Arc<AtomicBool>,
}

impl Ops {
    /// Starts the status sampler; `probes` are checked by `/readyz`, and
    /// so is the throttle's Redis when it keeps its budgets there.
    pub(crate) fn new(
        aggregator: Aggregator,
        throttle: Arc<dyn Throttle>,
        resilience: Resilience,
        mut probes: Vec<Arc<dyn ReadinessProbe>>,
    ) -> Ops {
        if throttle.backend() != ThrottleBackend::Local {
            probes.push(Arc::new(RedisProbe(throttle.clone())));
        }
        Ops {
            aggregator,
            throttle,
            resilience,
            probes,
            history: History::start(),
            shutting_down: Arc::default(),
        }
    }

    /// The flag a shutdown sets first, so `/readyz` fails before the
    /// listener closes.
    pub(crate) fn shutdown_flag(&self) -> Arc<AtomicBool> {
        self.shutting_down.clone()
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }
}

pub(crate) fn routes(ops: Ops) -> Router {
    Router::new()
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/status", get(status::html))
        .route("/status.json", get(status::json))
        .route("/status.css", get(status::css))
        .with_state(ops)
}

/// One check's result in the `/readyz` body.
#[derive(Serialize)]
struct Check {
    name: &'static str,
    ok: bool,
    /// A failing critical check makes the gateway unready.
    critical: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

async fn readyz(State(ops): State<Ops>) -> impl IntoResponse {
    let checks = futures::future::join_all(ops.probes.iter().map(|probe| async move {
        let outcome = match tokio::time::timeout(PROBE_TIMEOUT, probe.check()).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no answer within {} ms", PROBE_TIMEOUT.as_millis())),
        };
        Check {
            name: probe.name(),
            ok: outcome.is_ok(),
            critical: probe.critical(),
            error: outcome.err(),
        }
    }))
    .await;
    // Providers are reported, not required: one platform down or its circuit
    // open still leaves a gateway that answers (with that provider's error).
    let providers: Vec<_> = ops
        .aggregator
        .registry()
        .all()
        .iter()
        .map(|provider| {
            let id = provider.id().to_string();
            let health = ops.aggregator.health().get(provider.id());
            json!({
                "id": id,
                "health": status::health_label(health.status),
                "circuit": ops.resilience.circuit(provider.id()).label(),
            })
        })
        .collect();
    let shutting_down = ops.is_shutting_down();
    let (code, label) = if shutting_down {
        (StatusCode::SERVICE_UNAVAILABLE, "shutting down")
    } else if checks.iter().any(|c| c.critical && !c.ok) {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready")
    } else if checks.iter().any(|c| !c.ok) {
        (StatusCode::OK, "degraded")
    } else {
        (StatusCode::OK, "ready")
    };
    (
        code,
        [(header::CACHE_CONTROL, "no-store")],
        Json(json!({"status": label, "checks": checks, "providers": providers})),
    )
}

async fn metrics(State(ops): State<Ops>) -> impl IntoResponse {
    // Gauges read from their owners right before each scrape.
    telemetry::record_throttle_snapshot(&ops.throttle.snapshot());
    for provider in ops.aggregator.registry().all() {
        let state = ops.resilience.circuit(provider.id());
        telemetry::record_circuit_state(provider.id().as_str(), state.label());
    }
    let handle = crate::telemetry::prometheus();
    handle.run_upkeep();
    (
        [
            (
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        handle.render(),
    )
}

/// The store answers and its schema is current.
pub(crate) struct StoreProbe(pub Store);

#[async_trait]
impl ReadinessProbe for StoreProbe {
    fn name(&self) -> &'static str {
        "store"
    }

    async fn check(&self) -> Result<(), String> {
        self.0.ping().await.map_err(|e| e.message)?;
        match self.0.migrations_applied().await {
            Ok(true) => Ok(()),
            Ok(false) => Err("migrations are not all applied; run `finmesh migrate`".into()),
            Err(error) => Err(error.message),
        }
    }
}

/// Redis behind the shared throttle. Not critical: while Redis is away each
/// replica keeps serving on a safe local share of every budget, so taking
/// all replicas out of rotation would only turn a degradation into an outage.
struct RedisProbe(Arc<dyn Throttle>);

#[async_trait]
impl ReadinessProbe for RedisProbe {
    fn name(&self) -> &'static str {
        "redis"
    }

    async fn check(&self) -> Result<(), String> {
        match self.0.backend() {
            ThrottleBackend::LocalFallback => Err(
                "Redis unreachable: throttling on this replica's local share of each budget".into(),
            ),
            ThrottleBackend::Local | ThrottleBackend::Redis => Ok(()),
        }
    }

    fn critical(&self) -> bool {
        false
    }
}
