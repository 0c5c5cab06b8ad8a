//! `POST /webhooks/{provider}`: events the platforms push (Bondora's
//! `auction.published`, ...), and the worker that processes them.
//!
//! The handler authenticates the call with the provider's
//! [`WebhookReceiver`] (401 and nothing stored when it is not authentic, 400
//! when the body is not an event), stores the event (deduplicated by the
//! platform's event id) and answers 200 at once: platforms give up on slow
//! endpoints (Bondora waits 30 s and blocks an endpoint after 25 errors a
//! day), so processing never runs in the request. A duplicate is answered
//! 200 too, and not processed again.
//!
//! The worker processes stored events in the background: woken by each new
//! event, and every few seconds for events whose retry is due or whose
//! worker died (another replica's, or this process before a restart). Each
//! event is claimed in the store first, so of several workers exactly one
//! processes it. Processing tells the aggregator what the event changed
//! ([`Aggregator::invalidate`]), which the response cache listens to.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{OriginalUri, Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use finmesh_core::aggregate::Aggregator;
use finmesh_core::telemetry;
use finmesh_core::webhook::WebhookRequest;
use finmesh_core::{ErrorKind, Provider, ProviderId};
use finmesh_store::{Store, StoredWebhookEvent};
use serde_json::json;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::http::AppState;

/// How long a claim holds an event; well past [`PROCESS_TIMEOUT`], so that a
/// live worker never loses its event to another.
const LEASE: Duration = Duration::from_secs(120);
/// The longest one event's processing may take before it counts as failed.
const PROCESS_TIMEOUT: Duration = Duration::from_secs(30);
/// How often the worker looks for due retries and events left by dead workers.
const POLL_INTERVAL: Duration = Duration::from_secs(5);
/// Events read from the store at a time.
const BATCH: u32 = 50;
/// A failed event is retried after 1, 2, 4, ... seconds, at most this long.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(3600);

/// What the handler and the worker share. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Webhooks {
    aggregator: Aggregator,
    /// `None`: events cannot be stored, so they are refused with 503.
    store: Option<Store>,
    wake: Arc<Notify>,
}

impl Webhooks {
    pub(crate) fn new(aggregator: Aggregator, store: Option<Store>) -> Self {
        Webhooks {
            aggregator,
            store,
            wake: Arc::new(Notify::new()),
        }
    }

    /// Starts the worker, which first processes what an earlier run left
    /// unprocessed; `None` without a store.
    pub(crate) fn spawn_worker(&self) -> Option<WebhookWorker> {
        let store = self.store.clone()?;
        let (stop, stopped) = watch::channel(false);
        let worker = Worker {
            aggregator: self.aggregator.clone(),
            store,
            wake: self.wake.clone(),
            stopped,
        };
        Some(WebhookWorker {
            stop,
            task: tokio::spawn(worker.run()),
        })
    }
}

/// The running worker; [`WebhookWorker::stop`] lets it finish its event.
pub(crate) struct WebhookWorker {
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl WebhookWorker {
    pub(crate) async fn stop(self) {
        let _ = self.stop.send(true);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "the webhook worker failed");
        }
    }
}

/// `POST /webhooks/{provider}`.
pub(crate) async fn receive(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    method: Method,
    OriginalUri(uri): OriginalUri,
    mut headers: HeaderMap,
    body: Bytes,
) -> Response {
    let webhooks = &state.webhooks;
    let found = ProviderId::new(&provider)
        .ok()
        .and_then(|id| webhooks.aggregator.registry().get(&id).ok().cloned());
    let Some((provider, receiver)) = found
        .as_ref()
        .and_then(|p| p.webhooks().map(|receiver| (p, receiver)))
    else {
        return failure(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "no provider with this id receives webhooks here".to_string(),
        );
    };
    // HTTP/2 carries the host in the URI, not in a header; signatures cover it.
    if !headers.contains_key(header::HOST)
        && let Some(authority) = uri.authority()
        && let Ok(host) = HeaderValue::from_str(authority.as_str())
    {
        headers.insert(header::HOST, host);
    }
    let request = WebhookRequest {
        method: &method,
        path_and_query: uri.path_and_query().map_or(uri.path(), |p| p.as_str()),
        headers: &headers,
        body: &body,
    };
    let event = match receiver.verify(&request, Utc::now()) {
        Ok(event) => event,
        Err(rejection) => {
            telemetry::record_webhook_event(provider.id().as_str(), "rejected");
            tracing::info!(provider = %provider.id(), status = rejection.status, reason = rejection.reason, "webhook call refused");
            let (status, code) = match rejection.status {
                401 => (StatusCode::UNAUTHORIZED, "UNAUTHENTICATED"),
                _ => (StatusCode::BAD_REQUEST, "INVALID_INPUT"),
            };
            return failure(status, code, rejection.reason);
        }
    };
    let Some(store) = &webhooks.store else {
        return failure(
            StatusCode::SERVICE_UNAVAILABLE,
            "NOT_SUPPORTED",
            "this gateway has no [store] configured, so webhook events cannot be kept; configure [store]"
                .to_string(),
        );
    };
    match store
        .record_webhook(provider.id().as_str(), &event, Utc::now())
        .await
    {
        Ok(new) => {
            if new {
                webhooks.wake.notify_one();
            }
            let outcome = if new { "accepted" } else { "duplicate" };
            telemetry::record_webhook_event(provider.id().as_str(), outcome);
            tracing::info!(provider = %provider.id(), event = event.id, event_type = event.event_type, duplicate = !new, "webhook event received");
            Json(json!({"received": true, "eventId": event.id, "duplicate": !new})).into_response()
        }
        Err(error) if error.kind == ErrorKind::InvalidInput => {
            failure(StatusCode::BAD_REQUEST, "INVALID_INPUT", error.message)
        }
        Err(error) => {
            tracing::error!(provider = %provider.id(), event = event.id, %error, "cannot store a webhook event");
            // The platform delivers it again later.
            failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                "INTERNAL",
                "the event could not be stored; deliver it again".to_string(),
            )
        }
    }
}

fn failure(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

struct Worker {
    aggregator: Aggregator,
    store: Store,
    wake: Arc<Notify>,
    stopped: watch::Receiver<bool>,
}

impl Worker {
    async fn run(mut self) {
        loop {
            self.drain().await;
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(POLL_INTERVAL) => {}
                // A dropped sender means stop, too.
                _ = self.stopped.changed() => {}
            }
            if self.stopping() {
                return;
            }
        }
    }

    fn stopping(&self) -> bool {
        *self.stopped.borrow() || self.stopped.has_changed().is_err()
    }

    /// Processes every due event, batch by batch. Bounded: a processed or
    /// failed event is not due again, and one claimed elsewhere is not listed.
    async fn drain(&self) {
        loop {
            let due = match self.store.unprocessed_webhooks(Utc::now(), BATCH).await {
                Ok(due) => due,
                Err(error) => {
                    tracing::warn!(%error, "cannot read unprocessed webhook events");
                    return;
                }
            };
            let full = due.len() == BATCH as usize;
            for event in due {
                if self.stopping() {
                    return;
                }
                self.process_one(event).await;
            }
            if !full {
                return;
            }
        }
    }

    async fn process_one(&self, stored: StoredWebhookEvent) {
        let now = Utc::now();
        let claim = match self.store.claim_webhook(&stored.id, now, now + LEASE).await {
            Ok(Some(claim)) => claim,
            // Another worker has it.
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(%error, "cannot claim a webhook event");
                return;
            }
        };
        let outcome = tokio::time::timeout(PROCESS_TIMEOUT, self.process(&stored))
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "processing took longer than {} s",
                    PROCESS_TIMEOUT.as_secs()
                ))
            });
        let (provider, event) = (&stored.provider, &stored.event.id);
        let recorded = match outcome {
            Ok(()) => {
                tracing::debug!(provider, event, "webhook event processed");
                // Received, not created: the platform does not say when it created it.
                let lag = (Utc::now() - stored.received_at)
                    .to_std()
                    .unwrap_or_default();
                telemetry::record_webhook_lag(provider, lag);
                self.store.mark_webhook_processed(&claim, Utc::now()).await
            }
            Err(reason) => {
                let attempt = u32::try_from(stored.attempts).unwrap_or(u32::MAX);
                let delay = Duration::from_secs(1u64 << attempt.saturating_sub(1).min(12))
                    .min(MAX_RETRY_DELAY);
                tracing::warn!(provider, event, reason, retry_in = ?delay, "webhook event processing failed");
                let retry_at = Utc::now() + delay;
                self.store
                    .mark_webhook_failed(&claim, &reason, retry_at)
                    .await
            }
        };
        match recorded {
            Ok(true) => {}
            Ok(false) => tracing::warn!(
                provider,
                event,
                "the claim on a webhook event ended before its outcome was recorded"
            ),
            Err(error) => {
                tracing::warn!(provider, event, %error, "cannot record a webhook event's outcome")
            }
        }
    }

    /// Tells the aggregator what the event changed upstream.
    async fn process(&self, stored: &StoredWebhookEvent) -> Result<(), String> {
        let provider: &Arc<dyn Provider> = ProviderId::new(&stored.provider)
            .ok()
            .and_then(|id| self.aggregator.registry().get(&id).ok())
            .ok_or_else(|| format!("provider `{}` is not configured", stored.provider))?;
        let receiver = provider
            .webhooks()
            .ok_or_else(|| format!("provider `{}` no longer receives webhooks", stored.provider))?;
        for scope in receiver.changes(&stored.event) {
            self.aggregator
                .invalidate(provider.id(), scope, format!("webhook:{}", stored.event.id))
                .await;
        }
        Ok(())
    }
}
