//! The Bongloy adapter against the Bongloy simulator: the testkit's transfers
//! suite, the life of a transfer with the money it moves, every documented
//! error code, the signed tokens (checked by an RS256 verifier independent of
//! the `jsonwebtoken` crate that made them), tenant isolation and ambiguous
//! outcomes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use finmesh_bongloy::{Bongloy, BongloyFactory, MEDIA_TYPE, REFUSED_TOKEN, RequestSigner};
use finmesh_core::model::{NewTransfer, Transfer, TransferStatus};
use finmesh_core::query::TransferFilter;
use finmesh_core::registry::{FactoryContext, ProviderFactory};
use finmesh_core::resilience::{Resilience, ResilienceSettings};
use finmesh_core::upstream::LocalThrottle;
use finmesh_core::{
    CallContext, Currency, Error, ListRequest, Money, Principal, Provider, ProviderId,
};
use finmesh_sandbox::bongloy::{JwtProblem, PublicKey, defaults, test_keys, verify_jwt};
use finmesh_sandbox::{BongloyConfig, BongloySandbox, FaultKind, Faults, RunningSandbox};
use finmesh_testkit::{Fault, TransferSimulator};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TIMEOUT: Duration = Duration::from_secs(20);
/// Principals mapped to tenants in every adapter built here.
const ALICE: &str = "alice"; // tenant `partner`: the first sandbox partner
const BOB: &str = "bob"; // tenant `other`: the second partner, another organization
const EVE: &str = "eve"; // tenant `forged`: the first partner's token, signed with another key

fn now() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

fn ctx(principal: &str) -> CallContext {
    CallContext::for_principal(Principal::new(principal), TIMEOUT)
}

fn context() -> FactoryContext {
    // The suite injects runs of faults and expects recovery the moment they
    // stop; an open circuit (tested in core) would hold calls back meanwhile.
    let mut resilience = ResilienceSettings::default();
    resilience.breaker.failure_threshold = u32::MAX;
    FactoryContext {
        user_agent: "finmesh-test/0.0 (https://example.test)".into(),
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(10),
        throttle: Arc::new(LocalThrottle::new()),
        resilience: Resilience::new(resilience),
        tokens: Arc::new(finmesh_core::auth::NoTokens),
    }
}

/// The private keys as files, as an operator configures them.
struct Keys {
    _dir: tempfile::TempDir,
    partner: std::path::PathBuf,
    other: std::path::PathBuf,
}

fn keys() -> Keys {
    let dir = tempfile::tempdir().unwrap();
    let partner = dir.path().join("partner.pem");
    let other = dir.path().join("other.pem");
    std::fs::write(&partner, test_keys::PARTNER_PRIVATE_KEY_PEM).unwrap();
    std::fs::write(&other, test_keys::OTHER_PRIVATE_KEY_PEM).unwrap();
    Keys {
        _dir: dir,
        partner,
        other,
    }
}

fn table(base_url: &str, keys: &Keys) -> serde_json::Value {
    json!({
        "kind": "bongloy",
        "base_url": base_url,
        // Small pages, so that lists span several.
        "page_size": 5,
        // The simulator has no rate limit; the suite makes a few hundred requests.
        "throttle": {"rules": [{"name": "test", "capacity": 1000, "refill_per_second": 1000}]},
        "credentials": {
            "partner": {"api_token": test_keys::PARTNER_API_TOKEN, "private_key_file": keys.partner},
            "other": {"api_token": test_keys::OTHER_API_TOKEN, "private_key_file": keys.other},
            "forged": {"api_token": test_keys::PARTNER_API_TOKEN, "private_key_file": keys.other},
        },
        "principals": {ALICE: "partner", BOB: "other", EVE: "forged"},
    })
}

struct Harness {
    sandbox: BongloySandbox,
    running: RunningSandbox,
    bongloy: Arc<Bongloy>,
    provider: Arc<dyn Provider>,
    keys: Keys,
}

async fn start(config: BongloyConfig) -> Harness {
    start_with(config, |_| {}).await
}

async fn start_with(config: BongloyConfig, edit: impl FnOnce(&mut serde_json::Value)) -> Harness {
    let sandbox = BongloySandbox::new(config);
    let running = sandbox
        .clone()
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let keys = keys();
    let mut table = table(&running.base_url(), &keys);
    edit(&mut table);
    // Through the factory, as the gateway builds it.
    let provider = BongloyFactory
        .build(ProviderId::new("bongloy").unwrap(), &table, &context())
        .unwrap();
    let bongloy = Arc::new(
        BongloyFactory
            .build_bongloy(ProviderId::new("bongloy").unwrap(), &table, &context())
            .unwrap(),
    );
    Harness {
        sandbox,
        running,
        bongloy,
        provider,
        keys,
    }
}

fn new_transfer(cents: i64, destination: &str, key: &str) -> NewTransfer {
    NewTransfer {
        amount: Money::from_minor(cents, Currency::USD),
        destination_account: destination.to_string(),
        metadata: BTreeMap::from([("finmesh_idempotency_key".to_string(), key.to_string())]),
    }
}

fn assert_error(error: &Error, code: &str, provider_code: Option<&str>, field: Option<&str>) {
    assert_eq!(error.code(), code, "{error:?}");
    assert_eq!(error.provider_code.as_deref(), provider_code, "{error:?}");
    assert_eq!(error.field.as_deref(), field, "{error:?}");
    assert_eq!(
        error.provider.as_ref().map(|p| p.as_str()),
        Some("bongloy"),
        "{error:?}"
    );
}

/// The simulator seen by the testkit: a sandbox where only the first
/// partner (tenant `partner`) makes transfers.
struct Simulator {
    sandbox: BongloySandbox,
}

impl TransferSimulator for Simulator {
    fn transfer_ids(&self) -> HashSet<String> {
        self.sandbox
            .transfers()
            .iter()
            .map(|t| t["id"].as_str().unwrap().to_string())
            .collect()
    }

    fn destinations(&self) -> Vec<String> {
        vec![
            defaults::ACTIVE_DESTINATION.to_string(),
            defaults::SECOND_DESTINATION.to_string(),
            // Confirmed transfers there end `failed`.
            defaults::FAILING_DESTINATION.to_string(),
        ]
    }

    fn missing_transfer_id(&self) -> String {
        "00000000-0000-4000-8000-000000000000".to_string()
    }

    fn inject(&self, faults: Vec<Fault>) {
        self.sandbox
            .set_faults(finmesh_testkit::sandbox_faults(faults));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bongloy_passes_the_transfers_conformance_suite() {
    let harness = start(BongloyConfig::default()).await;
    let simulator = Simulator {
        sandbox: harness.sandbox.clone(),
    };
    finmesh_testkit::check_transfers(harness.provider.clone(), &simulator, || ctx(ALICE)).await;

    eprintln!("suite used {:?}", harness.sandbox.stats());
    // Every request was JSON:API, signed, and paged the JSON:API way.
    let requests = harness.sandbox.requests();
    assert!(requests.len() > 50, "{}", requests.len());
    for request in &requests {
        assert!(
            request.authorization,
            "{} {} unsigned",
            request.method, request.path
        );
        assert_eq!(
            request.headers.get("accept").map(String::as_str),
            Some(MEDIA_TYPE)
        );
        if request.method != "GET" {
            assert_eq!(
                request.headers.get("content-type").map(String::as_str),
                Some(MEDIA_TYPE),
                "{} {}",
                request.method,
                request.path
            );
        }
    }
    let listed: Vec<&String> = requests
        .iter()
        .filter(|r| r.method == "GET" && r.path == "/v1/transfers")
        .filter_map(|r| r.query.as_ref())
        .collect();
    assert!(
        listed
            .iter()
            .any(|q| q.contains("page%5Bnumber%5D=2") || q.contains("page[number]=2"))
    );
    assert!(
        listed
            .iter()
            .any(|q| q.contains("filter%5Bstatus%5D") || q.contains("filter[status]"))
    );
    assert!(
        listed
            .iter()
            .any(|q| q.contains("filter%5Bfrom_date%5D") || q.contains("filter[from_date]"))
    );
    assert_eq!(harness.sandbox.stats().throttled, 0);
}

#[tokio::test]
async fn create_confirm_read_update_list_moves_exactly_the_amount() {
    let harness = start(BongloyConfig::default()).await;
    let (provider, sandbox) = (&harness.provider, &harness.sandbox);
    let source = sandbox.balance(defaults::PARTNER_ACCOUNT);
    let destination = sandbox.balance(defaults::ACTIVE_DESTINATION);

    let new = new_transfer(12_345, defaults::ACTIVE_DESTINATION, "life-1");
    provider.validate_transfer(&new).unwrap();
    let created = provider.create_transfer(&ctx(ALICE), &new).await.unwrap();
    assert_eq!(created.status, TransferStatus::Pending);
    assert_eq!(
        created.amount,
        Money::new("123.45".parse().unwrap(), Currency::USD)
    );
    assert_eq!(created.metadata, new.metadata);
    assert_eq!(created.destination_account, defaults::ACTIVE_DESTINATION);
    assert!(created.id.to_string().starts_with("bongloy:transfer:"));
    assert!(created.expires_at.is_some() && created.confirmed_at.is_none());
    assert_eq!(created.raw["attributes"]["amount"], json!(12_345));
    // Creating moves nothing.
    assert_eq!(sandbox.balance(defaults::PARTNER_ACCOUNT), source);

    let confirmed = provider
        .confirm_transfer(&ctx(ALICE), created.id.native())
        .await
        .unwrap();
    assert_eq!(confirmed.id, created.id);
    assert_eq!(confirmed.status, TransferStatus::Confirmed);
    assert!(confirmed.confirmed_at.is_some());
    assert_eq!(sandbox.balance(defaults::PARTNER_ACCOUNT), source - 12_345);
    assert_eq!(
        sandbox.balance(defaults::ACTIVE_DESTINATION),
        destination + 12_345
    );

    let read = provider
        .transfer(&ctx(ALICE), created.id.native())
        .await
        .unwrap();
    // The simulator settles at once by default.
    assert_eq!(read.status, TransferStatus::Successful);
    assert_eq!(read.amount, created.amount);
    assert_eq!(read.created_at, created.created_at);

    let metadata = BTreeMap::from([
        ("finmesh_idempotency_key".to_string(), "life-1".to_string()),
        ("reference_number".to_string(), "cde456".to_string()),
    ]);
    let updated = provider
        .update_transfer_metadata(&ctx(ALICE), created.id.native(), &metadata)
        .await
        .unwrap();
    assert_eq!(updated.metadata, metadata);
    assert!(updated.updated_at >= read.updated_at);

    let listed = provider
        .transfers(
            &ctx(ALICE),
            &ListRequest {
                filter: TransferFilter {
                    statuses: Some(vec![TransferStatus::Successful]),
                    created_at: None,
                },
                order: vec![],
                offset: 0,
                limit: 10,
            },
        )
        .await
        .unwrap();
    assert_eq!(listed.total, Some(1));
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].id, created.id);
    assert_eq!(listed.items[0].metadata, metadata);
    // Nothing moved but the amount, once.
    assert_eq!(sandbox.balance(defaults::PARTNER_ACCOUNT), source - 12_345);
    assert_eq!(
        sandbox.balance(defaults::ACTIVE_DESTINATION),
        destination + 12_345
    );

    // GET /v1/organizations, through the adapter's own method.
    let organizations = harness.bongloy.organizations(&ctx(ALICE)).await.unwrap();
    assert_eq!(organizations.len(), 2);
    let own = organizations
        .iter()
        .find(|o| o.id == defaults::PARTNER_ORGANIZATION)
        .unwrap();
    assert_eq!(
        own.account_number.as_deref(),
        Some(defaults::PARTNER_ACCOUNT)
    );
    assert_eq!(
        own.balance,
        Some(Money::from_minor(source - 12_345, Currency::USD))
    );
}

#[tokio::test]
async fn every_documented_error_code_surfaces_with_its_code() {
    let harness = start(BongloyConfig::default()).await;
    let (provider, sandbox) = (&harness.provider, &harness.sandbox);
    let create = |cents: i64, destination: &str| {
        let new = new_transfer(cents, destination, "errors");
        async move { provider.create_transfer(&ctx(ALICE), &new).await }
    };

    // validation_error: the organization's own account as destination, and a
    // currency Bongloy does not move (sent as is: validate_transfer is the
    // gateway's check, Bongloy's is this one).
    let err = create(500, defaults::PARTNER_ACCOUNT).await.unwrap_err();
    assert_error(
        &err,
        "INVALID_INPUT",
        Some("validation_error"),
        Some("input.destinationAccount"),
    );
    let euros = NewTransfer {
        amount: Money::from_minor(500, Currency::EUR),
        ..new_transfer(0, defaults::ACTIVE_DESTINATION, "errors")
    };
    let err = provider
        .create_transfer(&ctx(ALICE), &euros)
        .await
        .unwrap_err();
    assert_error(
        &err,
        "INVALID_INPUT",
        Some("validation_error"),
        Some("input.currency"),
    );

    let err = create(99, defaults::ACTIVE_DESTINATION).await.unwrap_err();
    assert_error(
        &err,
        "INVALID_INPUT",
        Some("invalid_amount"),
        Some("input.amount"),
    );

    let err = create(500, "009999999").await.unwrap_err();
    assert_error(
        &err,
        "INVALID_INPUT",
        Some("destination_account_not_found"),
        Some("input.destinationAccount"),
    );
    let err = create(500, defaults::INACTIVE_DESTINATION)
        .await
        .unwrap_err();
    assert_error(
        &err,
        "INVALID_INPUT",
        Some("destination_account_is_not_active"),
        Some("input.destinationAccount"),
    );

    // insufficient_balance: a source holding less than the amount.
    let balance = sandbox.balance(defaults::PARTNER_ACCOUNT);
    let poor = create(5_000, defaults::ACTIVE_DESTINATION).await.unwrap();
    sandbox.set_balance(defaults::PARTNER_ACCOUNT, 4_999);
    let err = provider
        .confirm_transfer(&ctx(ALICE), poor.id.native())
        .await
        .unwrap_err();
    assert_error(&err, "CONFLICT", Some("insufficient_balance"), None);
    assert!(!err.message.contains("4999"), "{}", err.message);
    sandbox.set_balance(defaults::PARTNER_ACCOUNT, balance);

    // invalid_transfer: confirming twice.
    provider
        .confirm_transfer(&ctx(ALICE), poor.id.native())
        .await
        .unwrap();
    let err = provider
        .confirm_transfer(&ctx(ALICE), poor.id.native())
        .await
        .unwrap_err();
    assert_error(&err, "CONFLICT", Some("invalid_transfer"), None);
    assert_eq!(
        sandbox.balance(defaults::PARTNER_ACCOUNT),
        balance - 5_000,
        "moved once"
    );

    // destination_account_daily_transfer_limit_exceeded: past $10,000.00 a day.
    let big = create(
        defaults::DAILY_TRANSFER_LIMIT + 1,
        defaults::SECOND_DESTINATION,
    )
    .await
    .unwrap();
    let err = provider
        .confirm_transfer(&ctx(ALICE), big.id.native())
        .await
        .unwrap_err();
    assert_error(
        &err,
        "CONFLICT",
        Some("destination_account_daily_transfer_limit_exceeded"),
        None,
    );

    // A destination closed between creation and confirmation.
    let closing = create(500, defaults::SECOND_DESTINATION).await.unwrap();
    sandbox.set_account_status(
        defaults::SECOND_DESTINATION,
        finmesh_sandbox::bongloy::AccountStatus::Inactive,
    );
    let err = provider
        .confirm_transfer(&ctx(ALICE), closing.id.native())
        .await
        .unwrap_err();
    assert_error(
        &err,
        "INVALID_INPUT",
        Some("destination_account_is_not_active"),
        Some("input.destinationAccount"),
    );

    // 404: no such transfer.
    let err = provider
        .transfer(&ctx(ALICE), "00000000-0000-4000-8000-000000000000")
        .await
        .unwrap_err();
    assert_error(&err, "NOT_FOUND", None, None);

    // expired_transfer: a simulator whose transfers expire after a second.
    let expiring = start(BongloyConfig {
        pending_ttl_secs: 1,
        ..BongloyConfig::default()
    })
    .await;
    let stale = expiring
        .provider
        .create_transfer(
            &ctx(ALICE),
            &new_transfer(500, defaults::ACTIVE_DESTINATION, "expiry"),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let read = expiring
        .provider
        .transfer(&ctx(ALICE), stale.id.native())
        .await
        .unwrap();
    assert_eq!(read.status, TransferStatus::Expired);
    let err = expiring
        .provider
        .confirm_transfer(&ctx(ALICE), stale.id.native())
        .await
        .unwrap_err();
    assert_error(&err, "CONFLICT", Some("expired_transfer"), None);
}

/// A one-shot HTTP server that records each request's head and body and
/// answers a fixed JSON:API document: what the adapter really sends.
struct Capture {
    base_url: String,
    seen: Log,
}

/// Each request's line, headers (lower-case names) and body.
type Seen = (String, BTreeMap<String, String>, String);
type Log = Arc<Mutex<Vec<Seen>>>;

async fn capture() -> Capture {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base_url = format!("http://{}", listener.local_addr().unwrap());
    let seen: Log = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let log = log.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    let n = socket.read(&mut chunk).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                    if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                        break at + 4;
                    }
                };
                let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
                let mut lines = head.split("\r\n");
                let request_line = lines.next().unwrap().to_string();
                let headers: BTreeMap<String, String> = lines
                    .filter_map(|l| l.split_once(':'))
                    .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
                    .collect();
                let length: usize = headers
                    .get("content-length")
                    .map_or(0, |l| l.parse().unwrap());
                while buffer.len() < head_end + length {
                    let n = socket.read(&mut chunk).await.unwrap();
                    buffer.extend_from_slice(&chunk[..n]);
                }
                let body =
                    String::from_utf8_lossy(&buffer[head_end..head_end + length]).to_string();
                let answer = if request_line.starts_with("POST") {
                    json!({"data": {"type": "transfer", "id": "3b668cc8-9fea-4673-ac6a-d7f548ec064b",
                        "attributes": {"amount": 10000, "currency": "USD", "destination_account_number": "002002965",
                        "metadata": {"foobar": "foobar"}, "status": "pending", "created_at": "2020-01-01T00:00:00Z"}}})
                } else {
                    json!({"data": [], "meta": {"total": 0}})
                };
                log.lock().unwrap().push((request_line, headers, body));
                let answer = answer.to_string();
                let status = if answer.contains("pending") {
                    "201 Created"
                } else {
                    "200 OK"
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: {MEDIA_TYPE}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                socket.write_all(response.as_bytes()).await.unwrap();
            });
        }
    });
    Capture { base_url, seen }
}

#[tokio::test]
async fn the_adapters_tokens_verify_with_an_independent_rs256_implementation() {
    let server = capture().await;
    let keys = keys();
    let table = table(&server.base_url, &keys);
    // A clock one second later at every reading: each request gets its own token.
    let ticks = Arc::new(AtomicI64::new(0));
    let clock = {
        let ticks = ticks.clone();
        Arc::new(move || {
            SystemTime::now() + Duration::from_secs(ticks.fetch_add(1, Ordering::SeqCst) as u64)
        })
    };
    let bongloy = BongloyFactory
        .build_bongloy(ProviderId::new("bongloy").unwrap(), &table, &context())
        .unwrap()
        .with_clock(clock);
    let list = ListRequest {
        filter: TransferFilter::default(),
        order: vec![],
        offset: 0,
        limit: 5,
    };
    bongloy.transfers(&ctx(ALICE), &list).await.unwrap();
    bongloy.transfers(&ctx(ALICE), &list).await.unwrap();
    let new = NewTransfer {
        amount: Money::from_minor(10_000, Currency::USD),
        destination_account: "002002965".into(),
        metadata: BTreeMap::from([("foobar".to_string(), "foobar".to_string())]),
    };
    let created = bongloy.create_transfer(&ctx(ALICE), &new).await.unwrap();
    assert_eq!(created.amount, new.amount);

    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    let partner = [PublicKey::from_pem(test_keys::PARTNER_PUBLIC_KEY_PEM).unwrap()];
    let mut tokens = Vec::new();
    for (line, headers, _) in &seen {
        let authorization = headers.get("authorization").expect("signed");
        let token = authorization
            .strip_prefix("Bearer ")
            .expect("a bearer token");
        // The sandbox's own verifier: split, base64url, RSASSA-PKCS1-v1_5 over SHA-256 by the `rsa` crate.
        let claims =
            verify_jwt(token, &partner, now() + 1).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(claims.api_token, test_keys::PARTNER_API_TOKEN);
        // Header exactly {"alg":"RS256"}; payload exactly the two members, the timestamp a string.
        use base64::Engine;
        let decode = |part: &str| -> serde_json::Value {
            serde_json::from_slice(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(part)
                    .unwrap(),
            )
            .unwrap()
        };
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts[0], "eyJhbGciOiJSUzI1NiJ9", "header bytes");
        assert_eq!(decode(parts[0]), json!({"alg": "RS256"}));
        let payload = decode(parts[1]);
        assert_eq!(payload.as_object().unwrap().len(), 2, "{payload}");
        assert_eq!(payload["api_token"], json!(test_keys::PARTNER_API_TOKEN));
        assert_eq!(payload["timestamp"], json!(claims.timestamp.to_string()));
        assert_eq!(headers.get("accept").map(String::as_str), Some(MEDIA_TYPE));
        tokens.push(token.to_string());
    }
    assert_eq!(
        tokens.iter().collect::<HashSet<_>>().len(),
        3,
        "a token was reused"
    );

    // The listing asked JSON:API paging; the creation sent the document's body.
    assert!(seen[0].0.starts_with("GET /v1/transfers?"), "{}", seen[0].0);
    assert!(
        seen[0].0.contains("page%5Bnumber%5D=1&page%5Bsize%5D=5"),
        "{}",
        seen[0].0
    );
    let (line, headers, body) = &seen[2];
    assert!(line.starts_with("POST /v1/transfers "), "{line}");
    assert_eq!(
        headers.get("content-type").map(String::as_str),
        Some(MEDIA_TYPE)
    );
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(body).unwrap(),
        json!({"data": {"type": "transfer", "attributes": {"amount": 10000, "currency": "USD",
               "destination_account_number": "002002965", "metadata": {"foobar": "foobar"}}}})
    );

    // Tokens the sandbox must refuse, checked by the same independent verifier.
    let signer = RequestSigner::new(
        test_keys::PARTNER_API_TOKEN.to_string().into(),
        &test_keys::OTHER_PRIVATE_KEY_PEM.to_string().into(),
    )
    .unwrap();
    assert_eq!(
        verify_jwt(&signer.sign_at(now()).unwrap(), &partner, now()),
        Err(JwtProblem::Signature)
    );
    let signer = RequestSigner::new(
        test_keys::PARTNER_API_TOKEN.to_string().into(),
        &test_keys::PARTNER_PRIVATE_KEY_PEM.to_string().into(),
    )
    .unwrap();
    assert!(matches!(
        verify_jwt(&signer.sign_at(now() - 600).unwrap(), &partner, now()),
        Err(JwtProblem::Stale { age_secs }) if age_secs >= 600
    ));
}

#[tokio::test]
async fn refused_tokens_are_the_operators_problem() {
    let harness = start(BongloyConfig::default()).await;
    let list = ListRequest {
        filter: TransferFilter::default(),
        order: vec![],
        offset: 0,
        limit: 5,
    };
    // Signed by another key than the one Bongloy holds for the token.
    let err = harness
        .provider
        .transfers(&ctx(EVE), &list)
        .await
        .unwrap_err();
    assert_error(&err, "INTERNAL", None, None);
    assert_eq!(err.message, REFUSED_TOKEN);
    let err = harness
        .provider
        .create_transfer(
            &ctx(EVE),
            &new_transfer(500, defaults::ACTIVE_DESTINATION, "forged"),
        )
        .await
        .unwrap_err();
    assert_error(&err, "INTERNAL", None, None);
    assert!(harness.sandbox.transfers().is_empty());

    // Ten minutes old.
    let late: finmesh_bongloy::Clock = Arc::new(|| SystemTime::now() - Duration::from_secs(600));
    let stale = BongloyFactory
        .build_bongloy(
            ProviderId::new("bongloy").unwrap(),
            &table(&harness.running.base_url(), &harness.keys),
            &context(),
        )
        .unwrap()
        .with_clock(late);
    let err = stale.transfers(&ctx(ALICE), &list).await.unwrap_err();
    assert_error(&err, "INTERNAL", None, None);
    assert!(!err.message.contains(test_keys::PARTNER_API_TOKEN));

    let statuses: Vec<Option<u16>> = harness
        .sandbox
        .requests()
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(
        statuses,
        vec![Some(401); 3],
        "the sandbox refused each, once"
    );
    // The right clock and key work.
    harness
        .provider
        .transfers(&ctx(ALICE), &list)
        .await
        .unwrap();
}

#[tokio::test]
async fn tenants_never_see_each_others_transfers() {
    let harness = start_with(BongloyConfig::default(), |table| {
        table["principals"]["dora"] = json!("partner");
    })
    .await;
    let provider = &harness.provider;
    let mine = provider
        .create_transfer(
            &ctx(ALICE),
            &new_transfer(700, defaults::ACTIVE_DESTINATION, "iso"),
        )
        .await
        .unwrap();
    let id = mine.id.native();
    let balance = harness.sandbox.balance(defaults::PARTNER_ACCOUNT);

    let err = provider.transfer(&ctx(BOB), id).await.unwrap_err();
    assert_error(&err, "NOT_FOUND", None, None);
    let err = provider.confirm_transfer(&ctx(BOB), id).await.unwrap_err();
    assert_error(&err, "NOT_FOUND", None, None);
    let err = provider
        .update_transfer_metadata(&ctx(BOB), id, &BTreeMap::new())
        .await
        .unwrap_err();
    assert_error(&err, "NOT_FOUND", None, None);
    assert_eq!(harness.sandbox.balance(defaults::PARTNER_ACCOUNT), balance);
    let list = ListRequest {
        filter: TransferFilter::default(),
        order: vec![],
        offset: 0,
        limit: 50,
    };
    let theirs = provider.transfers(&ctx(BOB), &list).await.unwrap();
    assert!(theirs.items.is_empty());
    assert_eq!(theirs.total, Some(0));

    // Another principal of the same tenant shares its transfers.
    let shared = provider.transfer(&ctx("dora"), id).await.unwrap();
    assert_eq!(shared.id, mine.id);
    // A principal with no tenant, or none at all.
    let err = provider
        .transfers(&ctx("mallory"), &list)
        .await
        .unwrap_err();
    assert_error(&err, "FORBIDDEN", None, None);
    assert_eq!(err.message, "not allowed to use a Bongloy credential");
    let anonymous = CallContext::anonymous(TIMEOUT);
    let err = provider.transfer(&anonymous, id).await.unwrap_err();
    assert_error(&err, "UNAUTHENTICATED", None, None);
    let err = provider
        .create_transfer(
            &anonymous,
            &new_transfer(700, defaults::ACTIVE_DESTINATION, "anon"),
        )
        .await
        .unwrap_err();
    assert_error(&err, "UNAUTHENTICATED", None, None);

    // A demo setup: every signed-in principal uses the default tenant.
    let demo = start_with(BongloyConfig::default(), |table| {
        table["default_tenant"] = json!("partner");
    })
    .await;
    demo.provider
        .transfers(&ctx("anyone"), &list)
        .await
        .unwrap();
}

#[tokio::test]
async fn ambiguous_outcomes_are_unavailable_and_the_transfer_is_findable() {
    let harness = start(BongloyConfig::default()).await;
    let (provider, sandbox) = (&harness.provider, &harness.sandbox);

    // The transfer is created, then the connection drops.
    sandbox.set_faults(Faults {
        next: vec![FaultKind::CommitThenDrop],
        ..Faults::default()
    });
    let new = new_transfer(2_500, defaults::ACTIVE_DESTINATION, "key-ambiguous");
    let err = provider
        .create_transfer(&ctx(ALICE), &new)
        .await
        .unwrap_err();
    assert_error(&err, "UPSTREAM_UNAVAILABLE", None, None);
    let upstream = sandbox.transfers();
    assert_eq!(
        upstream.len(),
        1,
        "exactly one transfer: the POST was not repeated"
    );
    assert_eq!(
        upstream[0]["attributes"]["metadata"]["finmesh_idempotency_key"],
        json!("key-ambiguous")
    );
    let posts = sandbox
        .requests()
        .iter()
        .filter(|r| r.method == "POST")
        .count();
    assert_eq!(posts, 1);

    // The gateway's reconciliation: list, find the key in the metadata.
    let list = ListRequest {
        filter: TransferFilter::default(),
        order: vec![],
        offset: 0,
        limit: 25,
    };
    let listed = provider.transfers(&ctx(ALICE), &list).await.unwrap();
    let found: Vec<&Transfer> = listed
        .items
        .iter()
        .filter(|t| {
            t.metadata
                .get("finmesh_idempotency_key")
                .map(String::as_str)
                == Some("key-ambiguous")
        })
        .collect();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id.native(), upstream[0]["id"].as_str().unwrap());

    // The confirmation is committed, then answered 500: unavailable, the money moved once.
    let balance = sandbox.balance(defaults::PARTNER_ACCOUNT);
    sandbox.set_faults(Faults {
        next: vec![FaultKind::CommitThenError { status: 500 }],
        ..Faults::default()
    });
    let err = provider
        .confirm_transfer(&ctx(ALICE), found[0].id.native())
        .await
        .unwrap_err();
    assert_error(&err, "UPSTREAM_UNAVAILABLE", None, None);
    assert_eq!(sandbox.balance(defaults::PARTNER_ACCOUNT), balance - 2_500);
    let read = provider
        .transfer(&ctx(ALICE), found[0].id.native())
        .await
        .unwrap();
    assert_eq!(read.status, TransferStatus::Successful);
    let patches = sandbox
        .requests()
        .iter()
        .filter(|r| r.method == "PATCH")
        .count();
    assert_eq!(patches, 1, "the PATCH was not repeated");
}
