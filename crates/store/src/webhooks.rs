//! Webhook events: recorded once per (provider, event id) before the platform
//! is answered, then processed exactly once. A worker claims an event with an
//! atomic `UPDATE … WHERE processed_at IS NULL AND claimed_until <= now`, so of
//! several workers (or replicas) racing for it one wins; the claim is a lease,
//! so an event whose worker died is claimed again once the lease ends.

use chrono::{DateTime, Utc};
use finmesh_core::webhook::WebhookEvent;
use finmesh_core::{Error, Result};
use sqlx::any::AnyRow;

use crate::error::db_error;
use crate::{Store, check_id, from_ms, get, new_id};

/// Longest event id or event type stored.
const MAX_LEN: usize = 255;
/// Longest processing error kept.
const MAX_ERROR_LEN: usize = 1000;

/// An event as stored, with how its processing went.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredWebhookEvent {
    /// The row's own id (the platform's is `event.id`).
    pub id: String,
    pub provider: String,
    pub event: WebhookEvent,
    pub received_at: DateTime<Utc>,
    pub processed_at: Option<DateTime<Utc>>,
    /// How many times a worker claimed it.
    pub attempts: i64,
    pub last_error: Option<String>,
}

/// A worker's hold on one event, until it marks it processed or failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookClaim {
    pub id: String,
    token: String,
}

macro_rules! select_event {
    ($clause:literal) => {
        concat!(
            "SELECT id, provider_id, event_id, event_type, payload, received_at, processed_at, \
             attempts, last_error FROM webhook_events ",
            $clause
        )
    };
}

impl Store {
    /// Records an event received at `received_at`; `false` when the provider
    /// sent this event id before (a duplicate delivery: nothing changes).
    pub async fn record_webhook(
        &self,
        provider: &str,
        event: &WebhookEvent,
        received_at: DateTime<Utc>,
    ) -> Result<bool> {
        check_id("provider", provider)?;
        for (field, value) in [("EventId", &event.id), ("EventType", &event.event_type)] {
            if value.is_empty() || value.len() > MAX_LEN {
                return Err(Error::invalid_input(
                    field,
                    format!("{field} must be 1 to {MAX_LEN} bytes"),
                ));
            }
        }
        let payload = serde_json::to_string(&event.payload)
            .map_err(|e| Error::internal(format!("a webhook payload is not serializable: {e}")))?;
        let inserted = sqlx::query(
            "INSERT INTO webhook_events \
             (id, provider_id, event_id, event_type, payload, received_at, processed_at, \
              attempts, claimed_by, claimed_until, last_error) \
             VALUES ($1, $2, $3, $4, $5, $6, NULL, 0, NULL, 0, NULL) \
             ON CONFLICT (provider_id, event_id) DO NOTHING",
        )
        .bind(new_id())
        .bind(provider)
        .bind(&event.id)
        .bind(&event.event_type)
        .bind(payload)
        .bind(received_at.timestamp_millis())
        .execute(self.pool())
        .await
        .map_err(db_error("record_webhook"))?
        .rows_affected();
        Ok(inserted == 1)
    }

    /// Unprocessed events nobody holds and not waiting for a retry at `now`,
    /// oldest first, at most `limit`.
    pub async fn unprocessed_webhooks(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<StoredWebhookEvent>> {
        let rows = sqlx::query(select_event!(
            "WHERE processed_at IS NULL AND claimed_until <= $1 ORDER BY received_at, id LIMIT $2"
        ))
        .bind(now.timestamp_millis())
        .bind(i64::from(limit))
        .fetch_all(self.pool())
        .await
        .map_err(db_error("unprocessed_webhooks"))?;
        rows.iter().map(stored).collect()
    }

    /// Every event of `provider`, processed or not, oldest first.
    pub async fn webhook_events(&self, provider: &str) -> Result<Vec<StoredWebhookEvent>> {
        let rows = sqlx::query(select_event!(
            "WHERE provider_id = $1 ORDER BY received_at, id"
        ))
        .bind(provider)
        .fetch_all(self.pool())
        .await
        .map_err(db_error("webhook_events"))?;
        rows.iter().map(stored).collect()
    }

    /// Claims the event `id` until `lease_until`; `None` when it is processed
    /// or someone else holds it (or it waits for a retry).
    pub async fn claim_webhook(
        &self,
        id: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<WebhookClaim>> {
        let token = new_id();
        let claimed = sqlx::query(
            "UPDATE webhook_events SET claimed_by = $1, claimed_until = $2, attempts = attempts + 1 \
             WHERE id = $3 AND processed_at IS NULL AND claimed_until <= $4",
        )
        .bind(&token)
        .bind(lease_until.timestamp_millis())
        .bind(id)
        .bind(now.timestamp_millis())
        .execute(self.pool())
        .await
        .map_err(db_error("claim_webhook"))?
        .rows_affected();
        Ok((claimed == 1).then(|| WebhookClaim {
            id: id.to_string(),
            token,
        }))
    }

    /// Marks a claimed event processed; `false` when the claim was lost (its
    /// lease ended and another worker took the event).
    pub async fn mark_webhook_processed(
        &self,
        claim: &WebhookClaim,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE webhook_events SET processed_at = $1, claimed_by = NULL, last_error = NULL \
             WHERE id = $2 AND claimed_by = $3 AND processed_at IS NULL",
        )
        .bind(now.timestamp_millis())
        .bind(&claim.id)
        .bind(&claim.token)
        .execute(self.pool())
        .await
        .map_err(db_error("mark_webhook_processed"))?
        .rows_affected();
        Ok(done == 1)
    }

    /// Records why processing failed and releases the event for another
    /// attempt from `retry_at`; `false` when the claim was lost.
    pub async fn mark_webhook_failed(
        &self,
        claim: &WebhookClaim,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<bool> {
        let error: String = error.chars().take(MAX_ERROR_LEN).collect();
        let done = sqlx::query(
            "UPDATE webhook_events SET claimed_by = NULL, claimed_until = $1, last_error = $2 \
             WHERE id = $3 AND claimed_by = $4 AND processed_at IS NULL",
        )
        .bind(retry_at.timestamp_millis())
        .bind(error)
        .bind(&claim.id)
        .bind(&claim.token)
        .execute(self.pool())
        .await
        .map_err(db_error("mark_webhook_failed"))?
        .rows_affected();
        Ok(done == 1)
    }
}

fn stored(row: &AnyRow) -> Result<StoredWebhookEvent> {
    let payload: String = get(row, "payload")?;
    Ok(StoredWebhookEvent {
        id: get(row, "id")?,
        provider: get(row, "provider_id")?,
        event: WebhookEvent {
            id: get(row, "event_id")?,
            event_type: get(row, "event_type")?,
            payload: serde_json::from_str(&payload).map_err(|e| {
                Error::internal(format!("a stored webhook payload is not JSON: {e}"))
            })?,
        },
        received_at: from_ms(get(row, "received_at")?)?,
        processed_at: get::<Option<i64>>(row, "processed_at")?
            .map(from_ms)
            .transpose()?,
        attempts: get(row, "attempts")?,
        last_error: get(row, "last_error")?,
    })
}
