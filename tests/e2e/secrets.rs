//! No secret in the logs, even at `trace`: the demo (Zonky and Bondora over
//! OAuth, Bongloy with its signing key, an encrypted store) runs the
//! identity and transfer flows of the other end-to-end tests (linking
//! accounts through the browser flow, private data, a token refresh,
//! transfers from creation to metadata, forged tokens, unlinking) with every
//! `tracing` event and `log` record of every crate captured, and the capture
//! is searched for every secret the test knows of and for anything shaped
//! like a JWT. So are the answers of the unauthenticated operational
//! endpoints (`/metrics`, `/status`, ...).
//!
//! The capture is this test's thread only (the runtime is single-threaded,
//! so the gateway and the simulators run there too), so other tests running
//! at the same time neither slow down nor mix in. SQLite's own worker thread
//! is not captured; it logs statements, whose values are bound apart.

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use finmesh_e2e::operations::{
    CONFIRM_TRANSFER, CREATE_TRANSFER, INVESTMENTS, PORTFOLIO, transfer_input,
};
use finmesh_e2e::{connect, graphql_at};
use finmesh_sandbox::bongloy::defaults::ACTIVE_DESTINATION;
use finmesh_server::commands::Demo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;

/// Where the captured lines go.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl io::Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Where `text` holds `eyJ….eyJ…` (a JSON header, a dot, a JSON payload,
/// base64url): a JWT. (A lone `eyJ…` is base64 JSON, such as a page cursor.)
fn jwt_shaped(text: &str) -> Option<usize> {
    text.match_indices("eyJ").map(|(at, _)| at).find(|&at| {
        let rest = &text[at..];
        let header = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(rest.len());
        rest[header..].starts_with(".eyJ")
    })
}

/// A secret of the demo's configuration.
fn configured(demo: &Demo, key: &str) -> String {
    demo.figment()
        .extract_inner::<String>(key)
        .unwrap_or_else(|e| panic!("{key}: {e}"))
}

#[tokio::test(flavor = "current_thread")]
async fn no_token_key_or_secret_appears_in_trace_logs() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::new("trace"))
        .with_span_events(FmtSpan::NEW | FmtSpan::CLOSE)
        .with_ansi(false)
        .with_writer({
            let capture = capture.clone();
            move || capture.clone()
        })
        .finish();
    let logs = tracing::subscriber::set_default(subscriber);
    // While only one subscriber exists, tracing decides whether a callsite
    // is enabled by asking the subscriber of the thread that first reaches
    // it: another test's thread, with none, would switch it off for good. A
    // second, inert subscriber makes tracing ask every subscriber instead.
    let _second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    // `log` records (reqwest's, among others) too; another test may have set it up.
    let _ = tracing_log::LogTracer::init();

    let demo = Demo::start(TcpListener::bind("127.0.0.1:0").await.unwrap())
        .await
        .unwrap();
    let url = demo.gateway.url();
    let (alice, bob) = (demo.token("alice").unwrap(), demo.token("bob").unwrap());

    // Identity: linking accounts, private data, a refresh after expiry.
    for provider in ["zonky", "bondora"] {
        assert_eq!(connect(&url, &alice, provider, "alice").await.status(), 200);
    }
    assert_eq!(connect(&url, &bob, "zonky", "bob").await.status(), 200);
    for (token, query) in [
        (
            &alice,
            "{ me { id connections { provider status scopes } } }",
        ),
        (&alice, INVESTMENTS),
        (&alice, PORTFOLIO),
        (&bob, INVESTMENTS),
        (&bob, "{ loans(first: 3) { edges { node { id } } } }"),
    ] {
        let answer = graphql_at(&url, Some(token), query, json!({})).await;
        assert!(answer["data"].is_object(), "{answer}");
    }
    demo.sandboxes
        .zonky
        .oauth()
        .advance_time(Duration::from_secs(2 * 86_400));
    // A query not asked before, so that Zonky answers it rather than a cache.
    let refreshed = graphql_at(
        &url,
        Some(&alice),
        "{ investments(first: 7, providers: [\"zonky\"]) { totalCount } }",
        json!({}),
    )
    .await;
    assert!(refreshed["errors"].is_null(), "{refreshed}");
    assert!(demo.sandboxes.zonky.oauth().token_stats().refresh_token >= 1);

    // Transfers: the whole life of one, signed with the partner's key.
    let created = graphql_at(
        &url,
        Some(&alice),
        CREATE_TRANSFER,
        json!({"input": transfer_input("12.34", ACTIVE_DESTINATION), "key": "secrets-1"}),
    )
    .await;
    let id = created["data"]["createTransfer"]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("{created}"))
        .to_string();
    let confirmed = graphql_at(
        &url,
        Some(&alice),
        CONFIRM_TRANSFER,
        json!({"id": id, "key": "secrets-1-confirm"}),
    )
    .await;
    assert_eq!(
        confirmed["data"]["confirmTransfer"]["status"], "CONFIRMED",
        "{confirmed}"
    );
    for query in [
        "query($id: ID!) { transfer(id: $id) { status metadata } }",
        "mutation($id: ID!) { updateTransferMetadata(id: $id, metadata: {order: \"A-18\"}) { metadata } }",
        "{ transfers(first: 5) { edges { node { id status } } } }",
    ] {
        let answer = graphql_at(&url, Some(&alice), query, json!({"id": id})).await;
        assert!(answer["errors"].is_null(), "{query}: {answer}");
    }

    // A forged token is refused without being repeated.
    let forged = format!("{}x", alice);
    let refused = reqwest::Client::new()
        .post(format!("{url}/graphql"))
        .bearer_auth(&forged)
        .json(&json!({"query": "{ me { id } }"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert!(!refused.text().await.unwrap().contains(&forged));

    let unlinked = graphql_at(
        &url,
        Some(&alice),
        "mutation { disconnectProvider(provider: \"zonky\") }",
        Value::Null,
    )
    .await;
    assert_eq!(unlinked["data"]["disconnectProvider"], true, "{unlinked}");

    // Every secret the test knows of.
    let mut secrets: Vec<String> = Vec::new();
    for sandbox in [demo.sandboxes.zonky.oauth(), demo.sandboxes.bondora.oauth()] {
        secrets.extend(sandbox.issued_tokens());
    }
    assert!(secrets.len() >= 4, "tokens were issued: {secrets:?}");
    for provider in ["zonky", "bondora"] {
        let secret = configured(&demo, &format!("providers.{provider}.oauth.client_secret"));
        // Zonky's documented test client uses its id as its secret, and ids are not secret.
        if secret != configured(&demo, &format!("providers.{provider}.oauth.client_id")) {
            secrets.push(secret);
        }
    }
    secrets.push(configured(&demo, "secrets.keys.demo"));
    secrets.push(configured(&demo, "auth.hs256_secret"));
    secrets.push(configured(
        &demo,
        "providers.bongloy.credentials.demo.api_token",
    ));
    let private_key = configured(&demo, "providers.bongloy.credentials.demo.private_key");
    secrets.extend(
        private_key
            .lines()
            .filter(|line| !line.starts_with("-----") && line.len() >= 16)
            .map(str::to_string),
    );
    secrets.extend([alice.clone(), bob.clone(), forged]);
    // What the operational endpoints tell anyone who asks is searched too.
    let mut published = String::new();
    for path in ["/metrics", "/status", "/status.json", "/readyz", "/healthz"] {
        let answer = reqwest::get(format!("{url}{path}")).await.unwrap();
        assert!(answer.status().is_success(), "{path}: {}", answer.status());
        published.push_str(&answer.text().await.unwrap());
    }
    demo.shutdown().await.unwrap();
    drop(logs);
    for secret in &secrets {
        assert!(
            !published.contains(secret.as_str()),
            "an operational endpoint shows a secret"
        );
    }

    let text = capture.text();
    // Kept for whoever needs to see what a failure found.
    let kept = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("secrets-trace.log");
    std::fs::write(&kept, &text).unwrap();
    // The capture really is at trace, across the gateway, its clients and the platforms.
    for sign in [
        "TRACE",
        "http_request",
        "provider=zonky",
        "provider=bondora",
        "provider=bongloy",
        "oauth/token",
        "/v1/transfers/{id}/confirm",
    ] {
        assert!(
            text.contains(sign),
            "the capture lacks {sign:?}; is it capturing?"
        );
    }
    for secret in &secrets {
        assert!(secret.len() >= 8, "too short to search for: {secret:?}");
        if let Some(at) = text.find(secret.as_str()) {
            let line_start = text[..at].rfind('\n').map_or(0, |n| n + 1);
            let line_end = text[at..].find('\n').map_or(text.len(), |n| at + n);
            panic!(
                "a secret is in the logs ({} bytes captured):\n{}",
                text.len(),
                &text[line_start..line_end]
            );
        }
    }
    // The detector itself finds what it is for, and not page cursors.
    assert_eq!(jwt_shaped("token=eyJhbGci.eyJzdWIi.c2ln"), Some(6));
    assert_eq!(jwt_shaped("after: eyJ2IjoxfQ."), None);
    if let Some(at) = jwt_shaped(&text) {
        panic!(
            "something shaped like a JWT is in the logs: {}",
            &text[at.saturating_sub(200)..(at + 100).min(text.len())]
        );
    }
}
