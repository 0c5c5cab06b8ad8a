//! Bondora webhooks end to end: the Bondora simulator's sender posts signed
//! events to `POST /webhooks/bondora` of a gateway with a store. Every
//! distinct event is stored once and processed exactly once, across a
//! gateway restart in the middle of the deliveries; forged, stale and
//! malformed calls are refused and leave nothing behind; the handler answers
//! at once however slow processing is.
//!
//! Processing is observed through a [`ChangeListener`] subscribed before the
//! gateway starts (what the response cache does), with an injectable delay,
//! and counted from the store.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use figment::Figment;
use figment::providers::{Format, Toml};
use finmesh_core::changes::{Change, ChangeListener, ChangeScope};
use finmesh_e2e::ENCRYPTION_KEY;
use finmesh_sandbox::bondora::{Signing, WebhookSender};
use finmesh_sandbox::{BondoraConfig, BondoraSandbox, RunningSandbox};
use finmesh_server::RunningGateway;
use finmesh_server::config::Config;
use finmesh_store::testing::test_databases;
use finmesh_store::{SecretCipher, Store, StoredWebhookEvent};
use serde_json::Value;
use tokio::net::TcpListener;

/// Records every change notice after `delay` (slow processing, on demand).
#[derive(Default)]
struct Recorder {
    delay: Duration,
    sources: Mutex<Vec<String>>,
}

#[async_trait]
impl ChangeListener for Recorder {
    async fn changed(&self, change: &Change) {
        assert_eq!(
            (change.provider.as_str(), change.scope),
            ("bondora", ChangeScope::Marketplace)
        );
        tokio::time::sleep(self.delay).await;
        self.sources.lock().unwrap().push(change.source.clone());
    }
}

impl Recorder {
    fn slow(delay: Duration) -> Arc<Recorder> {
        Arc::new(Recorder {
            delay,
            ..Recorder::default()
        })
    }

    fn count(&self) -> usize {
        self.sources.lock().unwrap().len()
    }
}

/// A Bondora simulator whose sender retries patiently (a restart takes a
/// moment), and the gateway's configuration for it.
struct Setup {
    sandbox: BondoraSandbox,
    running: RunningSandbox,
    figment: Figment,
    addr: SocketAddr,
    listener: Option<TcpListener>,
}

impl Setup {
    async fn new(database_url: Option<&str>) -> Setup {
        let sandbox = BondoraSandbox::new(BondoraConfig {
            auctions: 20,
            investments_per_user: 1,
            bids_per_user: 1,
            secondary_market: 1,
            webhook_max_attempts: 30,
            webhook_retry_backoff_ms: 50,
            webhook_timeout_ms: 5_000,
            ..BondoraConfig::default()
        });
        let running = sandbox
            .clone()
            .spawn(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
            .await
            .unwrap();
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let bondora = running.base_url();
        let oauth = BondoraConfig::default_oauth();
        let webhooks = sandbox.webhooks();
        let settings = webhooks.settings();
        let store = database_url
            .map(|url| {
                format!("[store]\nurl = \"{url}\"\n[secrets.keys]\ntest = \"{ENCRYPTION_KEY}\"\n")
            })
            .unwrap_or_default();
        let figment = Figment::from(Toml::string(&format!(
            r#"
            [server]
            listen = "{addr}"
            {store}
            [providers.bondora]
            kind = "bondora"
            base_url = "{bondora}"
            [providers.bondora.oauth]
            client_id = "{client_id}"
            client_secret = "{client_secret}"
            redirect_uri = "http://{addr}/connect/bondora/callback"
            authorize_url = "{bondora}/oauth/authorize"
            token_url = "{bondora}/oauth/access_token"
            [providers.bondora.webhooks.keys]
            "{key_id}" = "{secret}"
            "#,
            client_id = oauth.client_id,
            client_secret = oauth.client_secret,
            key_id = settings.key_id,
            secret = settings.secret,
        )));
        Setup {
            sandbox,
            running,
            figment,
            addr,
            listener: Some(listener),
        }
    }

    /// The simulator's sender, posting to the gateway.
    fn sender(&self) -> WebhookSender {
        self.sandbox.webhooks().with_url(self.url())
    }

    fn url(&self) -> String {
        format!("http://{}/webhooks/bondora", self.addr)
    }

    /// Starts a gateway on the setup's address, `recorder` listening to the
    /// changes from the first event it processes.
    async fn start(&mut self, recorder: Arc<Recorder>) -> RunningGateway {
        let listener = match self.listener.take() {
            Some(listener) => listener,
            None => TcpListener::bind(self.addr).await.unwrap(),
        };
        let config = Config::from_figment(&self.figment, &finmesh_server::factories())
            .unwrap_or_else(|e| panic!("{e}"));
        config.changes.subscribe(recorder);
        finmesh_server::start_on(listener, config).await.unwrap()
    }
}

/// The store the gateway writes, opened beside it to count.
async fn open(url: &str) -> Store {
    Store::connect(url, SecretCipher::generate_for_demo())
        .await
        .unwrap()
}

async fn events(store: &Store) -> Vec<StoredWebhookEvent> {
    store.webhook_events("bondora").await.unwrap()
}

/// Polls `done` every 50 ms for at most `limit`.
async fn wait_for<F: AsyncFn() -> bool>(limit: Duration, what: &str, done: F) {
    let start = Instant::now();
    while !done().await {
        assert!(start.elapsed() < limit, "waited {limit:?} for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One POST of `body` signed as `signing`: the status, the JSON answer and
/// how long the gateway took.
async fn post(setup: &Setup, body: &[u8], signing: Signing) -> (u16, Value, Duration) {
    let sender = setup.sender();
    let mut request = reqwest::Client::new().post(setup.url()).body(body.to_vec());
    for (name, value) in sender
        .signed_headers(body, signing, chrono::Utc::now())
        .unwrap()
    {
        request = request.header(name, value);
    }
    let started = Instant::now();
    let response = request.send().await.unwrap();
    let elapsed = started.elapsed();
    let status = response.status().as_u16();
    (
        status,
        response.json().await.unwrap_or(Value::Null),
        elapsed,
    )
}

#[tokio::test]
async fn every_event_is_stored_and_processed_exactly_once_across_a_restart() {
    for database in test_databases().await {
        let label = &database.label;
        let mut setup = Setup::new(Some(&database.url)).await;
        // Slow enough that a backlog is left when the gateway stops.
        let recorder = Recorder::slow(Duration::from_millis(20));
        let gateway = setup.start(recorder.clone()).await;
        let store = open(&database.url).await;

        let sender = setup.sender();
        let sending = tokio::spawn(async move { sender.send_events(200, 0.2).await });
        wait_for(Duration::from_secs(60), "80 stored events", async || {
            events(&store).await.len() >= 80
        })
        .await;

        // The restart: deliveries meanwhile hit a closed port and are retried.
        gateway.shutdown().await.unwrap();
        let left = events(&store)
            .await
            .iter()
            .filter(|e| e.processed_at.is_none())
            .count();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let gateway = setup.start(recorder.clone()).await;

        let report = sending.await.unwrap().unwrap();
        assert_eq!(
            (report.events, report.duplicates_sent, report.failed),
            (200, 40, 0),
            "{label}: {report:?}"
        );
        assert_eq!(report.delivered, 240, "{label}: {report:?}");
        assert!(report.retried >= 1, "{label}: the restart was not noticed");
        assert!(
            left > 0,
            "{label}: nothing was left for the restarted gateway"
        );

        wait_for(
            Duration::from_secs(60),
            "every event processed",
            async || {
                let stored = events(&store).await;
                stored.len() == 200 && stored.iter().all(|e| e.processed_at.is_some())
            },
        )
        .await;
        let stored = events(&store).await;
        let mut ids: Vec<&str> = stored.iter().map(|e| e.event.id.as_str()).collect();
        ids.sort_unstable();
        let mut sent: Vec<&str> = report.event_ids.iter().map(String::as_str).collect();
        sent.sort_unstable();
        assert_eq!(ids, sent, "{label}: every distinct event is stored once");
        assert!(
            stored
                .iter()
                .all(|e| e.attempts == 1 && e.last_error.is_none()),
            "{label}: an event was claimed twice"
        );
        assert!(
            stored
                .iter()
                .all(|e| e.event.event_type == "auction.published")
        );
        // Processed exactly once: one change notice per event, none repeated.
        let mut notices: HashMap<String, usize> = HashMap::new();
        for source in recorder.sources.lock().unwrap().iter() {
            *notices.entry(source.clone()).or_default() += 1;
        }
        assert_eq!(notices.len(), 200, "{label}");
        assert!(
            report
                .event_ids
                .iter()
                .all(|id| notices.get(&format!("webhook:{id}")) == Some(&1)),
            "{label}: {notices:?}"
        );

        store.close().await;
        gateway.shutdown().await.unwrap();
        setup.running.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn forged_stale_and_malformed_calls_are_refused_and_leave_nothing() {
    let database = test_databases().await.remove(0);
    let mut setup = Setup::new(Some(&database.url)).await;
    let recorder = Recorder::slow(Duration::ZERO);
    let gateway = setup.start(recorder.clone()).await;
    let store = open(&database.url).await;
    let event = serde_json::to_vec(&setup.sender().next_event()).unwrap();

    for (signing, reason) in [
        (Signing::Unsigned, "not signed"),
        (Signing::WrongSecret, "signature does not match"),
        (Signing::StaleDate, "stale"),
        (Signing::FutureDate, "in the future"),
        (Signing::BadDigest, "Digest does not match the body"),
        (Signing::UnknownKeyId, "unknown keyId"),
    ] {
        let (status, body, _) = post(&setup, &event, signing).await;
        assert_eq!(status, 401, "{signing:?}: {body}");
        assert_eq!(body["error"]["code"], "UNAUTHENTICATED", "{signing:?}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(reason), "{signing:?}: {message}");
    }
    for (malformed, reason) in [
        (&b"{\"EventId\": "[..], "the body is not JSON"),
        (
            br#"{"EventId": "42", "EventType": "auction.published", "Payload": {}}"#,
            "EventId: \"42\" is not a UUID",
        ),
        (
            br#"{"EventType": "auction.published", "Payload": {}}"#,
            "missing field `EventId`",
        ),
    ] {
        // Authentic (signed as Bondora signs), but not an event.
        let (status, body, _) = post(&setup, malformed, Signing::Valid).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["code"], "INVALID_INPUT");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(reason), "{message}");
    }
    // Nobody else receives webhooks here.
    let response = reqwest::Client::new()
        .post(format!("http://{}/webhooks/zonky", setup.addr))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert!(events(&store).await.is_empty(), "a refused call was stored");

    // The good call is stored and processed; its repeat answers 200 as a
    // duplicate and is not processed again.
    let (status, first, _) = post(&setup, &event, Signing::Valid).await;
    assert_eq!((status, &first["duplicate"]), (200, &Value::Bool(false)));
    let (status, again, _) = post(&setup, &event, Signing::Valid).await;
    assert_eq!((status, &again["duplicate"]), (200, &Value::Bool(true)));
    wait_for(Duration::from_secs(10), "the event processed", async || {
        events(&store).await[0].processed_at.is_some()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(events(&store).await.len(), 1);
    assert_eq!(recorder.count(), 1);

    store.close().await;
    gateway.shutdown().await.unwrap();
    setup.running.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_handler_answers_at_once_while_processing_is_slow() {
    let database = test_databases().await.remove(0);
    let mut setup = Setup::new(Some(&database.url)).await;
    // Each event takes a second to process.
    let recorder = Recorder::slow(Duration::from_secs(1));
    let gateway = setup.start(recorder.clone()).await;
    let store = open(&database.url).await;
    let sender = setup.sender();

    for _ in 0..4 {
        let event = serde_json::to_vec(&sender.next_event()).unwrap();
        let (status, body, elapsed) = post(&setup, &event, Signing::Valid).await;
        assert_eq!(status, 200, "{body}");
        assert!(
            elapsed < Duration::from_millis(200),
            "the answer took {elapsed:?}"
        );
    }
    // Stored before the answers; processing is still under way.
    assert_eq!(events(&store).await.len(), 4);
    assert!(recorder.count() < 4, "processing ran in the requests");
    wait_for(Duration::from_secs(30), "4 events processed", async || {
        recorder.count() == 4
    })
    .await;

    store.close().await;
    gateway.shutdown().await.unwrap();
    setup.running.shutdown().await.unwrap();
}

#[tokio::test]
async fn without_a_store_events_are_refused_with_503() {
    let mut setup = Setup::new(None).await;
    let gateway = setup.start(Recorder::slow(Duration::ZERO)).await;
    let event = serde_json::to_vec(&setup.sender().next_event()).unwrap();
    let (status, body, _) = post(&setup, &event, Signing::Valid).await;
    assert_eq!(status, 503, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("[store]"), "{message}");
    // Unsigned calls are still told they are not authentic.
    let (status, _, _) = post(&setup, &event, Signing::Unsigned).await;
    assert_eq!(status, 401);
    gateway.shutdown().await.unwrap();
    setup.running.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_demos_bondora_simulator_posts_to_the_demo_gateway() {
    let demo = finmesh_server::commands::Demo::start(
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap(),
    )
    .await
    .unwrap();
    // What `POST /__sandbox/webhooks/send` does, to the URL the demo configured.
    let sender = demo.sandboxes.bondora.webhooks();
    assert_eq!(
        sender.settings().url.as_deref(),
        Some(format!("{}/webhooks/bondora", demo.gateway.url()).as_str())
    );
    let report = sender.send_events(3, 0.0).await.unwrap();
    assert_eq!(
        (report.delivered, report.retried, report.failed),
        (3, 0, 0),
        "{report:?}"
    );
    demo.shutdown().await.unwrap();
}
