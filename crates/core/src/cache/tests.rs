use std::sync::atomic::AtomicUsize;

use futures::future::join_all;
use serde_json::json;

use super::*;
use crate::error::ErrorKind;

/// A value of a chosen size.
#[derive(Debug, Clone, PartialEq)]
struct Blob(Vec<u8>);

impl Weigh for Blob {
    fn weight(&self) -> usize {
        self.0.capacity()
    }
}

fn blob(tag: u8) -> Blob {
    Blob(vec![tag; 16])
}

fn zonky() -> ProviderId {
    ProviderId::new("zonky").unwrap()
}

fn bondora() -> ProviderId {
    ProviderId::new("bondora").unwrap()
}

fn cache(policy: CachePolicy) -> ResponseCache {
    ResponseCache::new(CacheSettings {
        policy,
        ..CacheSettings::default()
    })
}

const POLICY: CachePolicy = CachePolicy {
    ttl_public: Duration::from_secs(5),
    ttl_private: Duration::from_secs(2),
    stale_if_error: Duration::from_secs(60),
};

/// Counts upstream calls and answers `answer` after `delay`.
struct Upstream {
    calls: AtomicUsize,
}

impl Upstream {
    fn new() -> Self {
        Upstream {
            calls: AtomicUsize::new(0),
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    async fn answer(&self, answer: Result<Blob>, delay: Duration) -> Result<Blob> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(delay).await;
        answer
    }
}

async fn read(
    cache: &ResponseCache,
    upstream: &Upstream,
    operation: Operation,
    principal: Option<&Principal>,
    args: &str,
    answer: Result<Blob>,
) -> Result<(Blob, CacheStatus)> {
    cache
        .get_or_fetch(&zonky(), operation, principal, &args, || {
            upstream.answer(answer, Duration::ZERO)
        })
        .await
}

#[tokio::test(start_paused = true)]
async fn a_fresh_answer_is_served_from_the_cache_with_its_age() {
    let cache = cache(POLICY);
    let upstream = Upstream::new();
    let (first, status) = read(&cache, &upstream, Operation::Loans, None, "p1", Ok(blob(1)))
        .await
        .unwrap();
    assert_eq!((first, status), (blob(1), CacheStatus::UPSTREAM));

    tokio::time::advance(Duration::from_millis(1500)).await;
    let (second, status) = read(&cache, &upstream, Operation::Loans, None, "p1", Ok(blob(2)))
        .await
        .unwrap();
    assert_eq!(second, blob(1), "served from the cache");
    assert!(status.hit && !status.stale);
    assert_eq!(status.age, Duration::from_millis(1500));
    assert_eq!(upstream.calls(), 1);

    // Other arguments are another answer.
    read(&cache, &upstream, Operation::Loans, None, "p2", Ok(blob(3)))
        .await
        .unwrap();
    assert_eq!(upstream.calls(), 2);
}

#[tokio::test(start_paused = true)]
async fn each_class_lives_its_own_time_and_providers_may_override_it() {
    let mut settings = CacheSettings {
        policy: POLICY,
        ..CacheSettings::default()
    };
    settings.providers.insert(
        bondora(),
        CachePolicy {
            ttl_public: Duration::from_secs(30),
            ..POLICY
        },
    );
    let cache = ResponseCache::new(settings);
    let alice = Principal::new("alice");
    let upstream = Upstream::new();
    let get = |provider: ProviderId, operation, principal| {
        let (cache, upstream) = (&cache, &upstream);
        async move {
            cache
                .get_or_fetch(&provider, operation, principal, &"a", || {
                    upstream.answer(Ok(blob(1)), Duration::ZERO)
                })
                .await
                .unwrap()
                .1
        }
    };
    get(zonky(), Operation::Loans, None).await;
    get(zonky(), Operation::Investments, Some(&alice)).await;
    get(bondora(), Operation::Loans, None).await;
    assert_eq!(upstream.calls(), 3);

    tokio::time::advance(Duration::from_secs(3)).await;
    assert!(get(zonky(), Operation::Loans, None).await.hit);
    assert!(
        !get(zonky(), Operation::Investments, Some(&alice)).await.hit,
        "private answers live 2 s"
    );
    tokio::time::advance(Duration::from_secs(3)).await;
    assert!(
        !get(zonky(), Operation::Loans, None).await.hit,
        "public: 5 s"
    );
    assert!(
        get(bondora(), Operation::Loans, None).await.hit,
        "bondora's own public time to live: 30 s"
    );
    assert_eq!(upstream.calls(), 5);
}

#[tokio::test]
async fn concurrent_identical_misses_make_one_call_and_share_its_answer_or_error() {
    let cache = cache(POLICY);
    let upstream = Upstream::new();
    let zonky = zonky();
    let calls = (0..200).map(|_| {
        cache.get_or_fetch(&zonky, Operation::Loans, None, &"page", || {
            upstream.answer(Ok(blob(7)), Duration::from_millis(50))
        })
    });
    let answers = join_all(calls).await;
    assert_eq!(upstream.calls(), 1);
    assert!(answers.iter().all(|a| a.as_ref().unwrap().0 == blob(7)));

    let failing = (0..200).map(|_| {
        cache.get_or_fetch(&zonky, Operation::Loans, None, &"other page", || {
            upstream.answer(
                Err(Error::upstream_unavailable("down")),
                Duration::from_millis(50),
            )
        })
    });
    let answers = join_all(failing).await;
    assert_eq!(upstream.calls(), 2, "one call for 200 waiting callers");
    assert!(answers.iter().all(|a| {
        a.as_ref()
            .is_err_and(|e| e.kind == ErrorKind::UpstreamUnavailable && e.message == "down")
    }));
}

#[tokio::test]
async fn errors_are_never_cached() {
    let cache = cache(POLICY);
    let upstream = Upstream::new();
    let missing = Error::not_found("loan 1");
    let answer = read(&cache, &upstream, Operation::Loan, None, "1", Err(missing)).await;
    assert_eq!(answer.unwrap_err().kind, ErrorKind::NotFound);
    let (found, status) = read(&cache, &upstream, Operation::Loan, None, "1", Ok(blob(1)))
        .await
        .unwrap();
    assert_eq!((found, status.hit), (blob(1), false));
    assert_eq!(upstream.calls(), 2);
}

#[tokio::test]
async fn private_answers_are_keyed_by_principal_and_tenant_public_ones_are_shared() {
    let cache = cache(POLICY);
    let upstream = Upstream::new();
    let alice = Principal::new("alice");
    let bob = Principal::new("bob");
    let alice_at_acme = Principal::new("alice").with_tenant("acme");
    for (principal, tag) in [(&alice, 1), (&bob, 2), (&alice_at_acme, 3)] {
        read(
            &cache,
            &upstream,
            Operation::Investments,
            Some(principal),
            "all",
            Ok(blob(tag)),
        )
        .await
        .unwrap();
    }
    assert_eq!(upstream.calls(), 3, "no principal gets another's answer");
    for (principal, tag) in [(&alice, 1), (&bob, 2), (&alice_at_acme, 3)] {
        let (mine, status) = read(
            &cache,
            &upstream,
            Operation::Investments,
            Some(principal),
            "all",
            Ok(blob(99)),
        )
        .await
        .unwrap();
        assert_eq!((mine, status.hit), (blob(tag), true), "{principal:?}");
    }

    // Without a principal a private answer is never cached (nor shared).
    for _ in 0..2 {
        read(
            &cache,
            &upstream,
            Operation::Transfers,
            None,
            "all",
            Ok(blob(5)),
        )
        .await
        .unwrap();
    }
    assert_eq!(upstream.calls(), 5);

    // Public answers are the same for everyone.
    read(
        &cache,
        &upstream,
        Operation::Loans,
        Some(&alice),
        "p",
        Ok(blob(6)),
    )
    .await
    .unwrap();
    let (shared, status) = read(
        &cache,
        &upstream,
        Operation::Loans,
        Some(&bob),
        "p",
        Ok(blob(0)),
    )
    .await
    .unwrap();
    assert_eq!((shared, status.hit), (blob(6), true));

    cache.run_pending_tasks().await;
    let mut keys = cache.keys();
    keys.sort_by_key(|k| format!("{k:?}"));
    for key in &keys {
        match key.operation().class() {
            OperationClass::Public => assert_eq!(key.principal(), None, "{key:?}"),
            OperationClass::Private => assert!(key.principal().is_some(), "{key:?}"),
        }
    }
    let owners: Vec<_> = keys.iter().filter_map(|k| k.principal()).collect();
    assert_eq!(owners.len(), 3);
    assert!(owners.contains(&&alice) && owners.contains(&&bob) && owners.contains(&&alice_at_acme));
}

#[tokio::test(start_paused = true)]
async fn a_failing_provider_is_answered_with_the_last_good_answer_marked_stale() {
    let cache = cache(POLICY);
    let upstream = Upstream::new();
    read(&cache, &upstream, Operation::Loans, None, "p", Ok(blob(1)))
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(10)).await;

    for transient in [
        Error::upstream_unavailable("down"),
        Error::rate_limited(Duration::from_secs(1), "slow down"),
    ] {
        let (stale, status) = read(
            &cache,
            &upstream,
            Operation::Loans,
            None,
            "p",
            Err(transient),
        )
        .await
        .unwrap();
        assert_eq!(stale, blob(1));
        assert!(status.hit && status.stale);
        assert_eq!(status.age, Duration::from_secs(10));
    }
    // Only failures of the platform; a refusal is the answer.
    let refused = read(
        &cache,
        &upstream,
        Operation::Loans,
        None,
        "p",
        Err(Error::invalid_input("filter", "no")),
    )
    .await;
    assert_eq!(refused.unwrap_err().kind, ErrorKind::InvalidInput);

    // Past its time to live plus the window, an answer is gone.
    tokio::time::advance(Duration::from_secs(60)).await;
    let gone = read(
        &cache,
        &upstream,
        Operation::Loans,
        None,
        "p",
        Err(Error::upstream_unavailable("down")),
    )
    .await;
    assert_eq!(gone.unwrap_err().kind, ErrorKind::UpstreamUnavailable);

    // A good answer replaces the stale one.
    read(&cache, &upstream, Operation::Loans, None, "p", Ok(blob(2)))
        .await
        .unwrap();
    let (fresh, status) = read(&cache, &upstream, Operation::Loans, None, "p", Ok(blob(3)))
        .await
        .unwrap();
    assert_eq!((fresh, status.hit, status.stale), (blob(2), true, false));
}

#[tokio::test(start_paused = true)]
async fn without_a_stale_window_a_failure_is_an_error() {
    let cache = cache(CachePolicy {
        stale_if_error: Duration::ZERO,
        ..POLICY
    });
    let upstream = Upstream::new();
    read(&cache, &upstream, Operation::Loans, None, "p", Ok(blob(1)))
        .await
        .unwrap();
    tokio::time::advance(Duration::from_secs(6)).await;
    let failed = read(
        &cache,
        &upstream,
        Operation::Loans,
        None,
        "p",
        Err(Error::upstream_unavailable("down")),
    )
    .await;
    assert!(failed.is_err());
}

#[tokio::test]
async fn invalidation_drops_exactly_what_changed() {
    let cache = cache(POLICY);
    let upstream = Upstream::new();
    let (alice, bob) = (Principal::new("alice"), Principal::new("bob"));
    let fill = async |cache: &ResponseCache| {
        for provider in [zonky(), bondora()] {
            for (operation, principal) in [
                (Operation::Loans, None),
                (Operation::Loan, None),
                (Operation::Offers, None),
                (Operation::Transfers, Some(&alice)),
                (Operation::Transfer, Some(&alice)),
                (Operation::Investments, Some(&alice)),
                (Operation::Transfers, Some(&bob)),
            ] {
                cache
                    .get_or_fetch(&provider, operation, principal, &"x", || {
                        upstream.answer(Ok(blob(1)), Duration::ZERO)
                    })
                    .await
                    .unwrap();
            }
        }
    };
    fill(&cache).await;
    assert_eq!(upstream.calls(), 14);

    cache.invalidate_principal(&zonky(), &alice, Scope::Transfers);
    fill(&cache).await;
    assert_eq!(
        upstream.calls(),
        16,
        "alice's zonky transfer list and transfer"
    );

    cache.invalidate_marketplace(&bondora());
    fill(&cache).await;
    assert_eq!(upstream.calls(), 17, "bondora's loan listing only");

    cache.invalidate_principal(&bondora(), &bob, Scope::All);
    fill(&cache).await;
    assert_eq!(upstream.calls(), 18, "everything of bob's at bondora");
}

#[tokio::test]
async fn an_answer_fetched_across_an_invalidation_is_not_kept() {
    let cache = cache(POLICY);
    let upstream = Upstream::new();
    let alice = Principal::new("alice");
    let zonky = zonky();
    let slow = cache.get_or_fetch(&zonky, Operation::Transfers, Some(&alice), &"x", || {
        upstream.answer(Ok(blob(1)), Duration::from_millis(100))
    });
    let write = async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        cache.invalidate_principal(&zonky, &alice, Scope::Transfers);
        // A caller after the write does not join the call begun before it.
        cache
            .get_or_fetch(&zonky, Operation::Transfers, Some(&alice), &"x", || {
                upstream.answer(Ok(blob(2)), Duration::from_millis(100))
            })
            .await
    };
    let (before, after) = tokio::join!(slow, write);
    assert_eq!(before.unwrap().0, blob(1));
    assert_eq!(after.unwrap().0, blob(2));
    assert_eq!(upstream.calls(), 2);
    let (again, status) = read(
        &cache,
        &upstream,
        Operation::Transfers,
        Some(&alice),
        "x",
        Ok(blob(3)),
    )
    .await
    .unwrap();
    assert_eq!((again, status.hit), (blob(2), true));
}

#[tokio::test]
async fn the_size_is_bounded_by_weight() {
    const MAX: u64 = 1024 * 1024;
    let cache = ResponseCache::new(CacheSettings {
        max_bytes: MAX,
        ..CacheSettings::default()
    });
    let upstream = Upstream::new();
    // 10 MiB of 10 KiB answers into a 1 MiB cache.
    for n in 0..1024 {
        cache
            .get_or_fetch(&zonky(), Operation::Loan, None, &n, || {
                upstream.answer(Ok(Blob(vec![0; 10 * 1024])), Duration::ZERO)
            })
            .await
            .unwrap();
    }
    cache.run_pending_tasks().await;
    let size = cache.weighted_size();
    assert!(size <= MAX, "{size} > {MAX}");
    assert!(size > MAX / 2, "the cache is used: {size}");
    let kept = cache.keys().len();
    assert!((50..=100).contains(&kept), "{kept} entries of ~10 KiB");
}

#[tokio::test]
async fn a_disabled_cache_passes_every_call_through() {
    let cache = ResponseCache::disabled();
    let upstream = Upstream::new();
    for _ in 0..3 {
        let (_, status) = read(&cache, &upstream, Operation::Loans, None, "p", Ok(blob(1)))
            .await
            .unwrap();
        assert_eq!(status, CacheStatus::UPSTREAM);
    }
    assert_eq!(upstream.calls(), 3);
    assert_eq!(cache.weighted_size(), 0);
}

#[test]
fn json_weight_grows_with_content_and_counts_numbers_as_text() {
    let small = json_weight(&json!({"id": 1}));
    let large = json_weight(&json!({"id": 1, "story": "x".repeat(10_000)}));
    assert!(large >= small + 10_000, "{small} {large}");
    let number = |text: &str| json_weight(&serde_json::from_str(text).unwrap());
    assert_eq!(number("123456789.123456789") - number("1.5"), 16);
}

#[test]
fn reports_merge_per_provider() {
    let mut report = CacheReport::default();
    let hit = CacheStatus {
        hit: true,
        age: Duration::from_secs(3),
        stale: false,
    };
    report.record(&zonky(), hit);
    report.record(&zonky(), CacheStatus::UPSTREAM);
    report.record(&bondora(), CacheStatus { stale: true, ..hit });
    assert_eq!(
        report.get(&zonky()),
        Some(&CacheStatus {
            hit: false,
            age: Duration::from_secs(3),
            stale: false
        })
    );
    assert!(report.get(&bondora()).unwrap().stale);
}
