//! The shared-throttle acceptance: two gateways that share nothing but Redis
//! (each its own process state, throttle and Redis connection; in this test
//! process, on their own ports) and one Zonky credential allowed 2 requests a
//! second, driven through GraphQL at ten times that for 30 s: the platform
//! never refuses a request and the two together use at least 90% of what it
//! allows. Then one gateway loses Redis (its link is cut): it throttles on
//! its fallback share, health says so, the platform still refuses nothing;
//! and when Redis is back it shares again.
//!
//! Needs Redis at `FINMESH_TEST_REDIS_URL` (required under `CI=true`).

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use figment::Figment;
use figment::providers::{Format, Toml};
use finmesh_sandbox::{BucketConfig, RequestRecord, TcpLink, ZonkyConfig, ZonkySandbox};
use finmesh_server::RunningGateway;
use finmesh_server::config::Config;
use finmesh_throttle_redis::testing::{redis_url, socket_addr, unique_prefix};
use futures::future::join_all;
use rust_decimal::Decimal;
use serde_json::{Value, json};

/// The platform's budget: a bucket of 2, refilled 2 a second.
const CAPACITY: u32 = 2;
const RATE: u32 = 2;
/// Ten times the budget, split over the two gateways.
const OFFERED_PER_SECOND: u32 = 10 * RATE;
const SHARED_PHASE: Duration = Duration::from_secs(30);
const OUTAGE_PHASE: Duration = Duration::from_secs(12);

async fn gateway(sandbox: &str, redis: &str, prefix: &str, name: &str) -> RunningGateway {
    let toml = format!(
        r#"
        [server]
        listen = "127.0.0.1:0"
        request_timeout_ms = 2000

        [gateway]
        # Tells the two gateways apart in the platform's request log (User-Agent).
        project_url = "https://{name}.example"

        [throttle]
        backend = "redis"
        redis_url = "{redis}"
        replicas = 2
        redis_key_prefix = "{prefix}"

        [providers.zonky]
        kind = "zonky"
        base_url = "{sandbox}"

        [[providers.zonky.throttle.rules]]
        name = "default"
        capacity = {CAPACITY}
        refill_per_second = {RATE}.0
        "#
    );
    let config = Config::from_figment(
        &Figment::from(Toml::string(&toml)),
        &finmesh_server::factories(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    finmesh_server::start(config).await.unwrap()
}

/// Drives both gateways for `during`, alternating between them at
/// `OFFERED_PER_SECOND` in all, every query cold (its own `termMonths`
/// range, so nothing can be answered from a cache). `first` numbers the queries.
///
/// Arrivals are jittered by up to two spacings: on a grid, the token grid
/// (500 ms, a multiple of the 100 ms it takes to come round to the same
/// gateway) would lock in phase with it and hand nearly every token to the
/// gateway whose turn happens to come first after each one.
async fn drive(gateways: [&str; 2], first: u32, during: Duration) -> Vec<Value> {
    let client = reqwest::Client::new();
    let count = OFFERED_PER_SECOND * during.as_secs() as u32;
    let spacing = Duration::from_secs(1) / OFFERED_PER_SECOND;
    let started = tokio::time::Instant::now();
    let calls = (0..count).map(|n| {
        let client = client.clone();
        let url = format!("{}/graphql", gateways[(n % 2) as usize]);
        let i = first + n;
        let query = format!(
            "{{ loans(first: 5, filter: {{termMonths: {{gte: {}, lte: {}}}}}) {{ edges {{ node {{ id }} }} }} }}",
            1 + i % 40,
            60 + i / 40
        );
        // Up to two spacings late, spread by a fixed permutation of the slots.
        let jitter = spacing * 2 * ((n * 7919) % 97) / 97;
        async move {
            tokio::time::sleep_until(started + spacing * n + jitter).await;
            let response = client
                .post(url)
                .json(&json!({ "query": query }))
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success(), "HTTP {}", response.status());
            response.json::<Value>().await.unwrap()
        }
    });
    join_all(calls).await
}

/// Every error is the throttle telling the caller to come back later.
fn only_rate_limited(responses: &[Value]) {
    for response in responses.iter().filter(|r| r.get("errors").is_some()) {
        let extensions = &response["errors"][0]["extensions"];
        assert_eq!(extensions["code"], "RATE_LIMITED", "{response:#}");
        assert_eq!(extensions["provider"], "zonky", "{response:#}");
    }
}

fn served_by(requests: &[RequestRecord], name: &str) -> usize {
    requests
        .iter()
        .filter(|r| r.status == Some(200))
        .filter(|r| {
            r.headers
                .get("user-agent")
                .is_some_and(|ua| ua.contains(name))
        })
        .count()
}

async fn throttle_backend(gateway: &str) -> String {
    let response: Value = reqwest::Client::new()
        .post(format!("{gateway}/graphql"))
        .json(&json!({"query": "{ providers { health { throttle } } }"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    response["data"]["providers"][0]["health"]["throttle"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_gateways_share_one_budget_through_redis_and_survive_losing_it() {
    let Some(redis) = redis_url().await else {
        return;
    };
    let sandbox = ZonkySandbox::new(ZonkyConfig {
        loans: 300,
        bucket: BucketConfig {
            capacity: CAPACITY,
            refill_per_second: Decimal::from(RATE),
        },
        ..ZonkyConfig::default()
    });
    let platform = sandbox
        .clone()
        .spawn(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .unwrap();
    // Gateway b reaches Redis through a link the test can cut.
    let link = TcpLink::start(socket_addr(&redis).await).await.unwrap();
    let prefix = unique_prefix();
    let a = gateway(&platform.base_url(), &redis, &prefix, "gateway-a").await;
    let b = gateway(
        &platform.base_url(),
        &format!("redis://{}", link.addr()),
        &prefix,
        "gateway-b",
    )
    .await;
    let (a_url, b_url) = (a.url(), b.url());

    // Shared: 30 s at ten times the budget.
    let started = Instant::now();
    let responses = drive([&a_url, &b_url], 0, SHARED_PHASE).await;
    let elapsed = started.elapsed();
    let stats = sandbox.stats();
    let requests = sandbox.requests();
    let (from_a, from_b) = (
        served_by(&requests, "gateway-a"),
        served_by(&requests, "gateway-b"),
    );
    let allowed = f64::from(CAPACITY) + f64::from(RATE) * elapsed.as_secs_f64();
    let used = stats.served as f64 / allowed;

    eprintln!(
        "shared throttle: {} GraphQL requests in {elapsed:?}; upstream served {} (a {from_a}, b {from_b}) of {allowed:.1} allowed ({:.0}%), {} refused",
        responses.len(),
        stats.served,
        used * 100.0,
        stats.throttled
    );
    assert_eq!(
        stats.throttled, 0,
        "the platform had to refuse requests: {stats:?}"
    );
    assert!(used >= 0.9, "used {:.0}% of the allowed rate", used * 100.0);
    assert!(stats.served as f64 <= allowed + 1.0);
    assert!(
        from_a >= 10 && from_b >= 10,
        "both gateways spend from the budget"
    );
    only_rate_limited(&responses);
    assert_eq!(throttle_backend(&a_url).await, "REDIS");
    assert_eq!(throttle_backend(&b_url).await, "REDIS");

    // Gateway b loses Redis: it falls back to its share (1/2), after a
    // blackout while what was reserved in Redis goes out; a carries on with
    // the other half once it stops seeing b.
    link.cut();
    let before = sandbox.stats();
    let before_b = served_by(&sandbox.requests(), "gateway-b");
    let outage_started = Instant::now();
    let (responses, backends) =
        tokio::join!(drive([&a_url, &b_url], 10_000, OUTAGE_PHASE), async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            (
                throttle_backend(&a_url).await,
                throttle_backend(&b_url).await,
            )
        });
    let outage = outage_started.elapsed();
    let stats = sandbox.stats();
    let served = stats.served - before.served;
    let from_b = served_by(&sandbox.requests(), "gateway-b") - before_b;
    eprintln!(
        "shared throttle, b without Redis: upstream served {served} (b {from_b}) in {outage:?}, {} refused",
        stats.throttled
    );
    assert_eq!(
        backends,
        ("REDIS".to_string(), "LOCAL_FALLBACK".to_string())
    );
    assert_eq!(
        stats.throttled, 0,
        "the platform had to refuse requests: {stats:?}"
    );
    only_rate_limited(&responses);
    // b still answers from its share, and never more than its share.
    let share = f64::from(RATE) / 2.0;
    assert!(from_b >= 4, "b served {from_b} on its fallback share");
    assert!(from_b as f64 <= 1.0 + share * outage.as_secs_f64());
    let allowed = f64::from(CAPACITY) + f64::from(RATE) * outage.as_secs_f64();
    assert!(
        served as f64 <= allowed,
        "{served} served, {allowed:.1} allowed"
    );

    // Redis is back for b: it rejoins once its local queue has drained.
    link.heal();
    let before = sandbox.stats();
    let rejoined = Instant::now();
    let (responses, ()) = tokio::join!(
        drive([&a_url, &b_url], 20_000, Duration::from_secs(6)),
        async {
            while throttle_backend(&b_url).await != "REDIS" {
                assert!(
                    rejoined.elapsed() < Duration::from_secs(6),
                    "b did not rejoin"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    );
    let stats = sandbox.stats();
    eprintln!(
        "shared throttle, b back on Redis: upstream served {} in 6 s",
        stats.served - before.served
    );
    assert_eq!(
        stats.throttled, 0,
        "the platform had to refuse requests: {stats:?}"
    );
    only_rate_limited(&responses);

    a.shutdown().await.unwrap();
    b.shutdown().await.unwrap();
    platform.shutdown().await.unwrap();
}
