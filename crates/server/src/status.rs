//! The status page's data: each provider's health, throttle budget, request
//! rate, error rate and latency over the last minutes, and the caches' hit
//! ratios. A sampler keeps one [`Sample`] of the process's running totals
//! every [`SAMPLE_EVERY`] in a ring of [`KEPT_SAMPLES`]; each view adds the
//! window since the last sample, so a fresh gateway shows data at once.
//! `/status.json` serves the [`StatusView`]; `/status` renders it as HTML.

mod page;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use chrono::{DateTime, Utc};
use finmesh_core::aggregate::HealthStatus;
use finmesh_core::telemetry::{self, Totals, UpstreamTotals};
use serde::Serialize;

use crate::ops::Ops;

/// How often the sampler takes a sample.
pub(crate) const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// Samples kept: ten minutes.
pub(crate) const KEPT_SAMPLES: usize = 60;

/// The running totals at one moment.
#[derive(Clone)]
struct Sample {
    at: DateTime<Utc>,
    totals: Totals,
}

/// The ring of samples; cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct History {
    samples: Arc<Mutex<VecDeque<Sample>>>,
}

impl History {
    /// A history with its first sample taken now, sampled every
    /// [`SAMPLE_EVERY`] by a task that ends when the history is dropped
    /// (outside a Tokio runtime, only the first sample is kept).
    pub(crate) fn start() -> History {
        let history = History::default();
        history.sample();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return history;
        };
        let weak: Weak<Mutex<VecDeque<Sample>>> = Arc::downgrade(&history.samples);
        runtime.spawn(async move {
            let mut ticks = tokio::time::interval(SAMPLE_EVERY);
            ticks.tick().await;
            loop {
                ticks.tick().await;
                let Some(samples) = weak.upgrade() else {
                    break;
                };
                History { samples }.sample();
            }
        });
        history
    }

    fn sample(&self) {
        let mut samples = self.samples.lock().unwrap_or_else(PoisonError::into_inner);
        if samples.len() == KEPT_SAMPLES + 1 {
            samples.pop_front();
        }
        samples.push_back(Sample {
            at: Utc::now(),
            totals: telemetry::totals(),
        });
    }

    /// The samples, oldest first, then the totals of now.
    fn with_now(&self) -> (Vec<Sample>, Sample) {
        let samples = self
            .samples
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect();
        let now = Sample {
            at: Utc::now(),
            totals: telemetry::totals(),
        };
        (samples, now)
    }
}

/// What `/status.json` answers.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StatusView {
    pub generated_at: DateTime<Utc>,
    pub version: &'static str,
    /// Set once a shutdown began.
    pub shutting_down: bool,
    pub sample_seconds: u64,
    pub graphql: Window,
    pub providers: Vec<ProviderView>,
    pub caches: Vec<CacheView>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ProviderView {
    pub id: String,
    pub name: String,
    pub kind: &'static str,
    /// `unknown`, `up`, `throttled` or `down`, from the provider's last answers.
    pub health: &'static str,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_failure_at: Option<DateTime<Utc>>,
    /// The code of the last failure.
    pub last_error: Option<&'static str>,
    /// The circuit breaker's state: `closed`, `open` or `half_open`.
    pub circuit: &'static str,
    pub budgets: Vec<BudgetView>,
    /// Upstream requests over the whole history.
    pub recent: Window,
    /// One window per sample interval, oldest first; the last one is still open.
    pub history: Vec<Window>,
}

/// Upstream (or GraphQL) requests in one stretch of time.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Window {
    pub until: Option<DateTime<Utc>>,
    pub requests: u64,
    pub errors: u64,
    pub rate_limited: u64,
    /// Errors per request; `None` without requests.
    pub error_rate: Option<f64>,
    pub avg_latency_ms: Option<f64>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BudgetView {
    pub rule: String,
    /// Tokens left in the emptiest bucket of the rule.
    pub remaining: u32,
    pub burst: u32,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct CacheView {
    pub name: &'static str,
    pub hits: u64,
    pub misses: u64,
    pub stale: u64,
    /// Over the history's time span.
    pub hit_ratio: Option<f64>,
}

impl Window {
    fn between(until: DateTime<Utc>, earlier: &UpstreamTotals, later: &UpstreamTotals) -> Window {
        let requests = later.requests.saturating_sub(earlier.requests);
        let latency = later.latency.saturating_sub(earlier.latency);
        Window::new(
            until,
            requests,
            later.errors.saturating_sub(earlier.errors),
            later.rate_limited.saturating_sub(earlier.rate_limited),
            latency,
        )
    }

    fn new(
        until: DateTime<Utc>,
        requests: u64,
        errors: u64,
        rate_limited: u64,
        latency: Duration,
    ) -> Window {
        let per_request = |value: f64| (requests > 0).then(|| value / requests as f64);
        Window {
            until: Some(until),
            requests,
            errors,
            rate_limited,
            error_rate: per_request(errors as f64),
            avg_latency_ms: per_request(latency.as_secs_f64() * 1000.0),
        }
    }
}

impl Ops {
    /// The status as of now.
    pub(crate) fn status(&self) -> StatusView {
        let (mut samples, now) = self.history.with_now();
        samples.push(now.clone());
        let (first, now) = (&samples[0], &now);
        let budgets = telemetry::budgets(&self.throttle.snapshot());
        let providers = self
            .aggregator
            .registry()
            .all()
            .iter()
            .map(|provider| {
                let id = provider.id().to_string();
                let upstream = |sample: &Sample| {
                    sample
                        .totals
                        .providers
                        .get(&id)
                        .copied()
                        .unwrap_or_default()
                };
                let history = samples
                    .windows(2)
                    .map(|pair| {
                        Window::between(pair[1].at, &upstream(&pair[0]), &upstream(&pair[1]))
                    })
                    .collect();
                let health = self.aggregator.health().get(provider.id());
                ProviderView {
                    name: provider.name().to_string(),
                    kind: provider.kind(),
                    health: health_label(health.status),
                    last_success_at: health.last_success,
                    last_failure_at: health.last_failure,
                    last_error: health.last_error.map(|(kind, _)| kind.code()),
                    circuit: self.resilience.circuit(provider.id()).label(),
                    budgets: budgets
                        .iter()
                        .filter(|((provider, _), _)| *provider == id)
                        .map(|((_, rule), (remaining, burst))| BudgetView {
                            rule: rule.clone(),
                            remaining: *remaining,
                            burst: *burst,
                        })
                        .collect(),
                    recent: Window::between(now.at, &upstream(first), &upstream(now)),
                    history,
                    id,
                }
            })
            .collect();
        let caches = now
            .totals
            .caches
            .iter()
            .map(|(name, latest)| {
                let earlier = first.totals.caches.get(name).copied().unwrap_or_default();
                let recent = telemetry::CacheTotals {
                    hits: latest.hits.saturating_sub(earlier.hits),
                    misses: latest.misses.saturating_sub(earlier.misses),
                    stale: latest.stale.saturating_sub(earlier.stale),
                };
                CacheView {
                    name,
                    hits: latest.hits,
                    misses: latest.misses,
                    stale: latest.stale,
                    hit_ratio: recent.hit_ratio().or(latest.hit_ratio()),
                }
            })
            .collect();
        let (earlier, later) = (&first.totals.graphql, &now.totals.graphql);
        let graphql = Window::new(
            now.at,
            later.requests.saturating_sub(earlier.requests),
            later.errors.saturating_sub(earlier.errors),
            0,
            later.latency.saturating_sub(earlier.latency),
        );
        StatusView {
            generated_at: now.at,
            version: env!("CARGO_PKG_VERSION"),
            shutting_down: self.is_shutting_down(),
            sample_seconds: SAMPLE_EVERY.as_secs(),
            graphql,
            providers,
            caches,
        }
    }
}

pub(crate) fn health_label(status: HealthStatus) -> &'static str {
    match status {
        HealthStatus::Unknown => "unknown",
        HealthStatus::Up => "up",
        HealthStatus::Throttled => "throttled",
        HealthStatus::Down => "down",
    }
}

/// `GET /status.json`.
pub(crate) async fn json(State(ops): State<Ops>) -> impl IntoResponse {
    ([(header::CACHE_CONTROL, "no-store")], Json(ops.status()))
}

/// `GET /status`: the HTML page, which reloads itself.
pub(crate) async fn html(State(ops): State<Ops>) -> impl IntoResponse {
    (
        [(header::CACHE_CONTROL, "no-store")],
        Html(page::render(&ops.status())),
    )
}

/// `GET /status.css`: a file, so a strict Content-Security-Policy needs no `'unsafe-inline'`.
pub(crate) async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        page::CSS,
    )
}
