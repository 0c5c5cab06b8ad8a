//! Webhook events on every backend: deduplication by (provider, event id),
//! exactly-once claims under concurrent workers, leases that end, failures
//! that wait for their retry.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use finmesh_core::ErrorKind;
use finmesh_core::webhook::WebhookEvent;
use finmesh_store::testing::test_stores;

fn event(n: u32) -> WebhookEvent {
    WebhookEvent {
        id: format!("00000000-0000-4000-8000-{n:012}"),
        event_type: "auction.published".into(),
        // Parsed, not `json!`: a float literal would lose the trailing zero.
        payload: serde_json::from_str(&format!(r#"{{"AuctionId": {n}, "Amount": 1234.50}}"#))
            .unwrap(),
    }
}

fn ms(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap()
}

#[tokio::test]
async fn an_event_is_recorded_once_per_provider() {
    for s in test_stores().await {
        let now = ms(Utc::now());
        assert!(s.record_webhook("bondora", &event(1), now).await.unwrap());
        assert!(!s.record_webhook("bondora", &event(1), now).await.unwrap());
        // The same id from another provider is another event.
        assert!(s.record_webhook("bondora-2", &event(1), now).await.unwrap());

        let stored = s.webhook_events("bondora").await.unwrap();
        assert_eq!(stored.len(), 1, "{}", s.label);
        let stored = &stored[0];
        assert_eq!(stored.provider, "bondora");
        assert_eq!(stored.event, event(1));
        // Exact numbers stay exact.
        assert_eq!(stored.event.payload["Amount"].to_string(), "1234.50");
        assert_eq!(
            (stored.received_at, stored.processed_at, stored.attempts),
            (now, None, 0)
        );

        let empty = WebhookEvent {
            id: String::new(),
            ..event(2)
        };
        let error = s.record_webhook("bondora", &empty, now).await.unwrap_err();
        assert_eq!(error.kind, ErrorKind::InvalidInput);
        assert_eq!(error.field.as_deref(), Some("EventId"));
    }
}

#[tokio::test]
async fn of_concurrent_claims_exactly_one_wins() {
    for s in test_stores().await {
        let now = ms(Utc::now());
        s.record_webhook("bondora", &event(1), now).await.unwrap();
        let id = s.unprocessed_webhooks(now, 10).await.unwrap()[0].id.clone();
        let claims = futures::future::join_all((0..8).map(|_| {
            let (store, id) = (s.store.clone(), id.clone());
            async move {
                store
                    .claim_webhook(&id, now, now + Duration::seconds(60))
                    .await
                    .unwrap()
            }
        }))
        .await;
        let won: Vec<_> = claims.into_iter().flatten().collect();
        assert_eq!(won.len(), 1, "{}", s.label);
        // Held: not listed, not claimable.
        assert!(s.unprocessed_webhooks(now, 10).await.unwrap().is_empty());

        assert!(s.mark_webhook_processed(&won[0], now).await.unwrap());
        let stored = &s.webhook_events("bondora").await.unwrap()[0];
        assert_eq!((stored.processed_at, stored.attempts), (Some(now), 1));
        // Processed: never claimed again, even long after.
        let later = now + Duration::days(1);
        assert!(s.unprocessed_webhooks(later, 10).await.unwrap().is_empty());
        assert!(
            s.claim_webhook(&id, later, later + Duration::seconds(60))
                .await
                .unwrap()
                .is_none()
        );
        assert!(!s.mark_webhook_processed(&won[0], later).await.unwrap());
    }
}

#[tokio::test]
async fn a_claim_whose_lease_ended_goes_to_the_next_worker() {
    for s in test_stores().await {
        let now = ms(Utc::now());
        s.record_webhook("bondora", &event(1), now).await.unwrap();
        let id = s.unprocessed_webhooks(now, 10).await.unwrap()[0].id.clone();
        let lease = now + Duration::seconds(30);
        let dead = s.claim_webhook(&id, now, lease).await.unwrap().unwrap();
        // The worker died; once the lease ends another one takes over.
        assert!(s.claim_webhook(&id, now, lease).await.unwrap().is_none());
        let after = lease + Duration::milliseconds(1);
        assert_eq!(s.unprocessed_webhooks(after, 10).await.unwrap().len(), 1);
        let next = s
            .claim_webhook(&id, after, after + Duration::seconds(30))
            .await
            .unwrap()
            .unwrap();
        // The old claim can no longer finish the event; the new one does.
        assert!(!s.mark_webhook_processed(&dead, after).await.unwrap());
        assert!(!s.mark_webhook_failed(&dead, "late", after).await.unwrap());
        assert!(s.mark_webhook_processed(&next, after).await.unwrap());
        assert_eq!(s.webhook_events("bondora").await.unwrap()[0].attempts, 2);
    }
}

#[tokio::test]
async fn a_failed_event_waits_for_its_retry() {
    for s in test_stores().await {
        let now = ms(Utc::now());
        s.record_webhook("bondora", &event(1), now).await.unwrap();
        let id = s.unprocessed_webhooks(now, 10).await.unwrap()[0].id.clone();
        let claim = s
            .claim_webhook(&id, now, now + Duration::seconds(30))
            .await
            .unwrap()
            .unwrap();
        let retry_at = now + Duration::seconds(10);
        let long = "x".repeat(5000);
        assert!(
            s.mark_webhook_failed(&claim, &long, retry_at)
                .await
                .unwrap()
        );
        let stored = &s.webhook_events("bondora").await.unwrap()[0];
        assert_eq!(stored.processed_at, None);
        assert_eq!(stored.last_error.as_deref().map(str::len), Some(1000));
        assert!(s.unprocessed_webhooks(now, 10).await.unwrap().is_empty());
        assert!(
            s.claim_webhook(&id, now, now + Duration::seconds(30))
                .await
                .unwrap()
                .is_none()
        );
        let due = s.unprocessed_webhooks(retry_at, 10).await.unwrap();
        assert_eq!(due.len(), 1, "{}", s.label);
        let retry = s
            .claim_webhook(&id, retry_at, retry_at + Duration::seconds(30))
            .await
            .unwrap()
            .unwrap();
        assert!(s.mark_webhook_processed(&retry, retry_at).await.unwrap());
        let stored = &s.webhook_events("bondora").await.unwrap()[0];
        assert_eq!((stored.attempts, stored.last_error.clone()), (2, None));
    }
}

#[tokio::test]
async fn racing_workers_process_every_event_exactly_once() {
    for s in test_stores().await {
        let now = ms(Utc::now());
        for n in 0..40 {
            s.record_webhook("bondora", &event(n), now).await.unwrap();
        }
        let processed: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
        let workers = (0..6).map(|_| {
            let (store, processed) = (s.store.clone(), processed.clone());
            async move {
                // Bounded: each round processes at least one event or ends.
                for _ in 0..100 {
                    let due = store.unprocessed_webhooks(Utc::now(), 5).await.unwrap();
                    if due.is_empty() {
                        break;
                    }
                    for event in due {
                        let now = Utc::now();
                        let lease = now + Duration::seconds(60);
                        let Some(claim) = store.claim_webhook(&event.id, now, lease).await.unwrap()
                        else {
                            continue;
                        };
                        *processed
                            .lock()
                            .unwrap()
                            .entry(event.event.id.clone())
                            .or_default() += 1;
                        assert!(store.mark_webhook_processed(&claim, now).await.unwrap());
                    }
                }
            }
        });
        futures::future::join_all(workers).await;
        let processed = processed.lock().unwrap().clone();
        assert_eq!(processed.len(), 40, "{}", s.label);
        assert!(processed.values().all(|&n| n == 1), "{processed:?}");
        let stored = s.webhook_events("bondora").await.unwrap();
        assert!(
            stored
                .iter()
                .all(|e| e.attempts == 1 && e.processed_at.is_some())
        );
    }
}
