//! The shared throttle against the real Redis at `FINMESH_TEST_REDIS_URL`
//! (required under `CI=true`): replicas share one budget, pauses reach every
//! replica, and an unreachable Redis means a local share, never unlimited.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use finmesh_core::ProviderId;
use finmesh_core::upstream::{BucketKey, BucketLimit, Throttle, ThrottleBackend};
use finmesh_sandbox::TcpLink;
use finmesh_throttle_redis::testing::{redis_url, socket_addr, unique_prefix};
use finmesh_throttle_redis::{RedisThrottle, RedisThrottleSettings};
use tokio::time::Instant;

fn key(credential: &str, capacity: u32, per_second: u32) -> BucketKey {
    BucketKey {
        provider: ProviderId::new("zonky").unwrap(),
        rule: Arc::from("default"),
        endpoint: None,
        credential: Arc::from(credential),
        limit: BucketLimit {
            capacity,
            headroom: 1,
            replenish_interval: Duration::from_secs(1) / per_second,
        },
    }
}

fn throttle(url: &str, prefix: &str, replicas: u32) -> RedisThrottle {
    throttle_waiting(url, prefix, replicas, Duration::from_millis(500))
}

fn throttle_waiting(url: &str, prefix: &str, replicas: u32, max_wait: Duration) -> RedisThrottle {
    RedisThrottle::new(
        url,
        RedisThrottleSettings {
            replicas,
            timeout: Duration::from_millis(200),
            max_wait,
            key_prefix: prefix.to_string(),
        },
    )
    .unwrap()
}

/// Drives `throttle` with `tasks` callers for `during`, each asking with a
/// 400 ms deadline; returns when each token was granted.
async fn drive(
    throttle: &RedisThrottle,
    key: &BucketKey,
    tasks: usize,
    during: Duration,
) -> Vec<Instant> {
    let grants = Arc::new(Mutex::new(Vec::new()));
    let end = Instant::now() + during;
    let callers = (0..tasks).map(|_| {
        let (throttle, key, grants) = (throttle.clone(), key.clone(), grants.clone());
        tokio::spawn(async move {
            while Instant::now() < end {
                let deadline = (Instant::now() + Duration::from_millis(400)).min(end);
                match throttle.acquire(&key, deadline).await {
                    Ok(()) => grants.lock().unwrap().push(Instant::now()),
                    Err(error) => {
                        assert_eq!(error.code(), "RATE_LIMITED", "{error}");
                        let wait = error.retry_after.unwrap().min(Duration::from_millis(50));
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        })
    });
    for caller in callers.collect::<Vec<_>>() {
        caller.await.unwrap();
    }
    let mut grants = grants.lock().unwrap().clone();
    grants.sort();
    grants
}

/// Until both have been seen, each counts the other as away and leaves it
/// half the budget: let them meet before measuring.
async fn warm_up(a: &RedisThrottle, b: &RedisThrottle, key: &BucketKey) {
    let during = Duration::from_millis(300);
    tokio::join!(drive(a, key, 1, during), drive(b, key, 1, during));
}

/// The most grants in any window of `window`.
fn densest(grants: &[Instant], window: Duration) -> usize {
    grants
        .iter()
        .enumerate()
        .map(|(i, start)| {
            grants[i..]
                .iter()
                .take_while(|t| **t < *start + window)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_share_one_budget_and_use_it() {
    let Some(url) = redis_url().await else {
        return;
    };
    let prefix = unique_prefix();
    let (a, b) = (throttle(&url, &prefix, 2), throttle(&url, &prefix, 2));
    // 20 tokens a second, a burst of 2.
    let key = key("anonymous", 3, 20);
    warm_up(&a, &b, &key).await;
    let during = Duration::from_secs(2);
    let started = Instant::now();
    let (from_a, from_b) = tokio::join!(drive(&a, &key, 4, during), drive(&b, &key, 4, during));
    let elapsed = started.elapsed();
    let mut all = [from_a.clone(), from_b.clone()].concat();
    all.sort();

    let allowed = 2.0 + 20.0 * elapsed.as_secs_f64();
    eprintln!(
        "shared: {} + {} grants in {elapsed:?} ({allowed:.1} allowed)",
        from_a.len(),
        from_b.len()
    );
    assert!(all.len() as f64 <= allowed + 1.0, "{} grants", all.len());
    assert!(all.len() as f64 >= 0.9 * allowed, "{} grants", all.len());
    assert!(
        from_a.len() >= 10 && from_b.len() >= 10,
        "both replicas get tokens"
    );
    // Never more than the burst plus the rate in any second, whoever asked.
    assert!(densest(&all, Duration::from_secs(1)) <= 2 + 20 + 1);
    assert_eq!(a.backend(), ThrottleBackend::Redis);
}

#[tokio::test]
async fn a_pause_seen_by_one_replica_holds_the_other() {
    let Some(url) = redis_url().await else {
        return;
    };
    let prefix = unique_prefix();
    let max_wait = Duration::from_secs(2);
    let a = throttle_waiting(&url, &prefix, 2, max_wait);
    let b = throttle_waiting(&url, &prefix, 2, max_wait);
    let key = key("conn-1", 10, 10);
    a.acquire(&key, Instant::now()).await.unwrap();
    a.pause(&key, Duration::from_secs(1));
    // The pause is written in the background.
    tokio::time::sleep(Duration::from_millis(100)).await;

    let started = Instant::now();
    let err = b
        .acquire(&key, started + Duration::from_millis(300))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "RATE_LIMITED");
    let retry_after = err.retry_after.unwrap();
    assert!(
        retry_after > Duration::from_millis(700) && retry_after <= Duration::from_secs(1),
        "{retry_after:?}"
    );
    assert!(
        started.elapsed() < Duration::from_millis(100),
        "refused at once"
    );

    b.acquire(&key, Instant::now() + Duration::from_secs(2))
        .await
        .unwrap();
    let waited = started.elapsed();
    assert!(
        waited > Duration::from_millis(700) && waited < Duration::from_millis(1200),
        "{waited:?}"
    );
    let snapshot = b.snapshot();
    assert_eq!(snapshot.len(), 1);
    assert_eq!(snapshot[0].key, key);
}

#[tokio::test]
async fn credentials_have_their_own_budgets_and_are_hashed_in_keys() {
    let Some(url) = redis_url().await else {
        return;
    };
    let prefix = unique_prefix();
    let throttle = throttle(&url, &prefix, 1);
    let (alice, bob) = (key("conn-alice-42", 2, 1), key("conn-bob-7", 2, 1));
    let now = Instant::now();
    throttle.acquire(&alice, now).await.unwrap();
    throttle.acquire(&bob, now).await.unwrap();
    // Alice's single-token burst is spent; her next token is a second away.
    let err = throttle.acquire(&alice, now).await.unwrap_err();
    assert!(err.retry_after.unwrap() > Duration::from_millis(900));

    let client = redis::Client::open(url.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{{{prefix}}}:*"))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(keys.len(), 3, "two buckets and the live set: {keys:?}");
    for key in &keys {
        assert!(!key.contains("alice") && !key.contains("bob"), "{key}");
    }
    assert!(
        keys.iter()
            .any(|k| k.contains(":throttle:zonky:default:*:")),
        "{keys:?}"
    );
}

#[tokio::test]
async fn unreachable_redis_gives_a_local_share_after_a_blackout_never_unlimited() {
    let closed = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap()
    };
    let throttle = throttle(&format!("redis://{closed}"), &unique_prefix(), 2);
    // 20 a second shared by two replicas: 10 a second here while Redis is away.
    let key = key("anonymous", 3, 20);

    let started = Instant::now();
    let err = throttle
        .acquire(&key, started + Duration::from_millis(400))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "RATE_LIMITED", "{err}");
    assert_eq!(throttle.backend(), ThrottleBackend::LocalFallback);
    // Nothing locally until the others have stopped counting this replica
    // (2 s) and their reservations (up to max_wait, 0.5 s) have gone out.
    let retry_after = err.retry_after.unwrap();
    assert!(
        retry_after > Duration::from_secs(2) && retry_after <= Duration::from_millis(2500),
        "{retry_after:?}"
    );

    tokio::time::sleep(retry_after).await;
    let grants = drive(&throttle, &key, 4, Duration::from_secs(2)).await;
    eprintln!("fallback: {} grants in 2 s", grants.len());
    assert!(grants.len() >= 18 && grants.len() <= 22, "{}", grants.len());
    assert!(densest(&grants, Duration::from_secs(1)) <= 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_off_replica_falls_back_the_other_leaves_it_its_share_and_it_rejoins() {
    let Some(url) = redis_url().await else {
        return;
    };
    let link = TcpLink::start(socket_addr(&url).await).await.unwrap();
    let prefix = unique_prefix();
    let a = throttle(&url, &prefix, 2);
    let b = throttle(&format!("redis://{}", link.addr()), &prefix, 2);
    let key = key("anonymous", 3, 20);
    let during = Duration::from_secs(1);
    warm_up(&a, &b, &key).await;
    let (shared_a, shared_b) = tokio::join!(drive(&a, &key, 4, during), drive(&b, &key, 4, during));
    eprintln!(
        "linked: A {} grants, B {} grants in {during:?}",
        shared_a.len(),
        shared_b.len()
    );
    assert!(shared_a.len() + shared_b.len() >= 18);
    assert_eq!(b.backend(), ThrottleBackend::Redis);

    link.cut();
    // B notices at its next call; A stops counting B after 2 s.
    let _ = b
        .acquire(&key, Instant::now() + Duration::from_millis(300))
        .await;
    assert_eq!(b.backend(), ThrottleBackend::LocalFallback);
    assert_eq!(a.backend(), ThrottleBackend::Redis);
    tokio::time::sleep(Duration::from_millis(2600)).await;
    let (alone_a, fallback_b) =
        tokio::join!(drive(&a, &key, 4, during), drive(&b, &key, 4, during));
    eprintln!(
        "partition: A {} grants, B {} grants in {during:?}",
        alone_a.len(),
        fallback_b.len()
    );
    // Each gets half of the 20 a second (A's burst shrinks to 1).
    assert!(
        alone_a.len() >= 8 && alone_a.len() <= 12,
        "{}",
        alone_a.len()
    );
    assert!(
        fallback_b.len() >= 8 && fallback_b.len() <= 12,
        "{}",
        fallback_b.len()
    );

    link.heal();
    let deadline = Instant::now() + Duration::from_secs(5);
    while b.backend() != ThrottleBackend::Redis {
        assert!(Instant::now() < deadline, "B did not rejoin");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (again_a, again_b) = tokio::join!(drive(&a, &key, 4, during), drive(&b, &key, 4, during));
    let total = again_a.len() + again_b.len();
    assert!((18..=23).contains(&total), "{total}");
    assert!(again_b.len() >= 5, "B spends from Redis again");
}
