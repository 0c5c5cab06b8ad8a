//! Metrics: every family's name, its labels, and the function that records it.
//! The one place that names them, so every crate (upstream client, cache,
//! circuit breaker, webhooks, payments, GraphQL) emits the same families and
//! the `/metrics` page and the status page read them the same way.
//!
//! Values go through the `metrics` facade (the server installs a Prometheus
//! recorder; without one they cost next to nothing). The status page also
//! needs a few running totals in this process, which [`totals`] returns.
//!
//! Label conventions: `provider` is the configured provider id; `endpoint` the
//! upstream path template (`/loans/{id}`, never a concrete path or query);
//! `status` an HTTP status code, or `error` when no response came; `outcome`
//! is `ok` or a lowercase error code (`rate_limited`, `upstream_unavailable`);
//! `cache` the cache's name. No label ever carries a secret, a principal or
//! a credential id.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::error::Error;
use crate::upstream::BucketSnapshot;

/// GraphQL requests, by `operation` and `outcome` (`ok`, `partial`, `error`).
pub const GRAPHQL_REQUESTS: &str = "finmesh_graphql_requests_total";
/// Their latency, by `operation` and `outcome`.
pub const GRAPHQL_DURATION: &str = "finmesh_graphql_request_duration_seconds";
/// Upstream HTTP requests (each attempt), by `provider`, `endpoint`, `status`.
pub const UPSTREAM_REQUESTS: &str = "finmesh_upstream_requests_total";
/// Their latency until the response head, by `provider`, `endpoint`.
pub const UPSTREAM_DURATION: &str = "finmesh_upstream_request_duration_seconds";
/// 429 answers received, by `provider`, `endpoint`.
pub const UPSTREAM_RATE_LIMITED: &str = "finmesh_upstream_rate_limited_total";
/// Time spent waiting for a throttle token, by `provider`, `rule`.
pub const THROTTLE_WAIT: &str = "finmesh_throttle_wait_seconds";
/// Requests the throttle refused because the token would come after the
/// caller's deadline, by `provider`, `rule`.
pub const THROTTLE_REFUSED: &str = "finmesh_throttle_refused_total";
/// Tokens left in the emptiest bucket of a rule, by `provider`, `rule`.
pub const THROTTLE_REMAINING: &str = "finmesh_throttle_budget_remaining";
/// The burst a rule allows, by `provider`, `rule`.
pub const THROTTLE_BURST: &str = "finmesh_throttle_budget_burst";
/// Cache lookups answered from the cache, by `cache`.
pub const CACHE_HITS: &str = "finmesh_cache_hits_total";
/// Cache lookups that had to ask upstream, by `cache`.
pub const CACHE_MISSES: &str = "finmesh_cache_misses_total";
/// Expired entries served while upstream could not answer, by `cache`.
pub const CACHE_STALE: &str = "finmesh_cache_stale_served_total";
/// Entries evicted for size or age, by `cache`.
pub const CACHE_EVICTIONS: &str = "finmesh_cache_evictions_total";
/// The cache's current weight in bytes, by `cache`.
pub const CACHE_WEIGHT: &str = "finmesh_cache_weight_bytes";
/// 1 for a provider's current circuit state, 0 for the others, by
/// `provider` and `state` (`closed`, `open`, `half_open`).
pub const CIRCUIT_STATE: &str = "finmesh_circuit_state";
/// Webhook events received, by `provider` and `outcome` (`accepted`,
/// `duplicate`, `rejected`).
pub const WEBHOOK_EVENTS: &str = "finmesh_webhook_events_total";
/// From an event's creation at the platform until it was processed, by `provider`.
pub const WEBHOOK_LAG: &str = "finmesh_webhook_processing_lag_seconds";
/// Money-moving operations, by `provider`, `operation` and `outcome`.
pub const TRANSFERS: &str = "finmesh_transfers_total";

/// The states a circuit breaker reports in [`CIRCUIT_STATE`].
pub const CIRCUIT_STATES: [&str; 3] = ["closed", "open", "half_open"];

/// Histogram buckets (seconds) for every `_seconds` family: 5 ms to 60 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Every family with its help text, for the exporter's `# HELP` lines.
pub const FAMILIES: &[(&str, &str)] = &[
    (
        GRAPHQL_REQUESTS,
        "GraphQL requests by operation name and outcome",
    ),
    (
        GRAPHQL_DURATION,
        "GraphQL request latency by operation name and outcome",
    ),
    (
        UPSTREAM_REQUESTS,
        "Upstream HTTP requests (each attempt) by provider, endpoint and status",
    ),
    (
        UPSTREAM_DURATION,
        "Upstream HTTP latency until the response head, by provider and endpoint",
    ),
    (
        UPSTREAM_RATE_LIMITED,
        "429 Too Many Requests answers received from the platforms",
    ),
    (THROTTLE_WAIT, "Time requests waited for a throttle token"),
    (
        THROTTLE_REFUSED,
        "Requests refused by the throttle because a token would come too late",
    ),
    (
        THROTTLE_REMAINING,
        "Tokens left in the emptiest bucket of each throttle rule",
    ),
    (THROTTLE_BURST, "The burst each throttle rule allows"),
    (CACHE_HITS, "Cache lookups answered from the cache"),
    (CACHE_MISSES, "Cache lookups that went upstream"),
    (
        CACHE_STALE,
        "Expired cache entries served because upstream failed",
    ),
    (CACHE_EVICTIONS, "Cache entries evicted"),
    (CACHE_WEIGHT, "Current cache weight in bytes"),
    (
        CIRCUIT_STATE,
        "Circuit breaker state per provider (1 = current state)",
    ),
    (WEBHOOK_EVENTS, "Webhook events received by outcome"),
    (
        WEBHOOK_LAG,
        "Delay from a webhook event's creation to its processing",
    ),
    (TRANSFERS, "Money-moving operations by outcome"),
];

/// `ok`, or the error's code in lowercase (`rate_limited`).
pub fn outcome<T>(result: &Result<T, Error>) -> String {
    match result {
        Ok(_) => "ok".to_string(),
        Err(error) => error.code().to_ascii_lowercase(),
    }
}

/// One upstream HTTP attempt: `status` is `None` when no response came.
pub fn record_upstream(
    provider: &str,
    endpoint: &'static str,
    status: Option<u16>,
    elapsed: Duration,
) {
    let status_label = status.map_or_else(|| "error".to_string(), |s| s.to_string());
    metrics::counter!(UPSTREAM_REQUESTS, "provider" => provider.to_string(), "endpoint" => endpoint, "status" => status_label).increment(1);
    metrics::histogram!(UPSTREAM_DURATION, "provider" => provider.to_string(), "endpoint" => endpoint).record(elapsed);
    let rate_limited = status == Some(429);
    if rate_limited {
        metrics::counter!(UPSTREAM_RATE_LIMITED, "provider" => provider.to_string(), "endpoint" => endpoint).increment(1);
    }
    let mut totals = lock();
    let entry = totals.providers.entry(provider.to_string()).or_default();
    entry.requests += 1;
    entry.latency += elapsed;
    if rate_limited {
        entry.rate_limited += 1;
    } else if status.is_none_or(|s| s >= 500) {
        entry.errors += 1;
    }
}

/// A throttle acquisition that waited `waited` (zero when a token was there).
pub fn record_throttle_wait(provider: &str, rule: &str, waited: Duration) {
    metrics::histogram!(THROTTLE_WAIT, "provider" => provider.to_string(), "rule" => rule.to_string()).record(waited);
}

/// A request the throttle refused (the token would come after its deadline).
pub fn record_throttle_refused(provider: &str, rule: &str) {
    metrics::counter!(THROTTLE_REFUSED, "provider" => provider.to_string(), "rule" => rule.to_string()).increment(1);
}

/// Publishes the throttle's budgets: per provider and rule, the emptiest
/// bucket (credentials are not labels). Called right before each scrape.
pub fn record_throttle_snapshot(buckets: &[BucketSnapshot]) {
    for ((provider, rule), (remaining, burst)) in budgets(buckets) {
        metrics::gauge!(THROTTLE_REMAINING, "provider" => provider.clone(), "rule" => rule.clone())
            .set(f64::from(remaining));
        metrics::gauge!(THROTTLE_BURST, "provider" => provider, "rule" => rule)
            .set(f64::from(burst));
    }
}

/// Per (provider, rule): the fewest tokens left in any of its buckets, and the burst.
pub fn budgets(buckets: &[BucketSnapshot]) -> BTreeMap<(String, String), (u32, u32)> {
    let mut budgets = BTreeMap::new();
    for bucket in buckets {
        let key = (bucket.key.provider.to_string(), bucket.key.rule.to_string());
        let entry = budgets
            .entry(key)
            .or_insert((bucket.remaining, bucket.burst));
        entry.0 = entry.0.min(bucket.remaining);
        entry.1 = entry.1.max(bucket.burst);
    }
    budgets
}

/// A cache lookup answered from the cache.
pub fn record_cache_hit(cache: &'static str) {
    metrics::counter!(CACHE_HITS, "cache" => cache).increment(1);
    lock().caches.entry(cache).or_default().hits += 1;
}

/// A cache lookup that had to go upstream.
pub fn record_cache_miss(cache: &'static str) {
    metrics::counter!(CACHE_MISSES, "cache" => cache).increment(1);
    lock().caches.entry(cache).or_default().misses += 1;
}

/// An expired entry served because upstream failed.
pub fn record_cache_stale(cache: &'static str) {
    metrics::counter!(CACHE_STALE, "cache" => cache).increment(1);
    lock().caches.entry(cache).or_default().stale += 1;
}

/// `count` entries evicted.
pub fn record_cache_evictions(cache: &'static str, count: u64) {
    metrics::counter!(CACHE_EVICTIONS, "cache" => cache).increment(count);
}

/// The cache's weight now.
pub fn record_cache_weight(cache: &'static str, bytes: u64) {
    metrics::gauge!(CACHE_WEIGHT, "cache" => cache).set(bytes as f64);
}

/// A provider's circuit is now in `state` (one of [`CIRCUIT_STATES`]).
pub fn record_circuit_state(provider: &str, state: &'static str) {
    for candidate in CIRCUIT_STATES {
        let value = if candidate == state { 1.0 } else { 0.0 };
        metrics::gauge!(CIRCUIT_STATE, "provider" => provider.to_string(), "state" => candidate)
            .set(value);
    }
}

/// A webhook event received: `outcome` is `accepted`, `duplicate` or `rejected`.
pub fn record_webhook_event(provider: &str, outcome: &'static str) {
    metrics::counter!(WEBHOOK_EVENTS, "provider" => provider.to_string(), "outcome" => outcome)
        .increment(1);
}

/// A webhook event processed `lag` after the platform created it.
pub fn record_webhook_lag(provider: &str, lag: Duration) {
    metrics::histogram!(WEBHOOK_LAG, "provider" => provider.to_string()).record(lag);
}

/// A money-moving operation (`create`, `confirm`) finished with `result`.
pub fn record_transfer<T>(provider: &str, operation: &'static str, result: &Result<T, Error>) {
    metrics::counter!(TRANSFERS, "provider" => provider.to_string(), "operation" => operation, "outcome" => outcome(result))
        .increment(1);
}

/// A GraphQL request finished; `operation` is its name (empty without one).
/// Returns the label it was counted under (see [`operation_label`]).
pub fn record_graphql(operation: &str, outcome: &'static str, elapsed: Duration) -> String {
    let operation = operation_label(operation);
    metrics::counter!(GRAPHQL_REQUESTS, "operation" => operation.clone(), "outcome" => outcome)
        .increment(1);
    metrics::histogram!(GRAPHQL_DURATION, "operation" => operation.clone(), "outcome" => outcome)
        .record(elapsed);
    let mut totals = lock();
    totals.graphql.requests += 1;
    if outcome != "ok" {
        totals.graphql.errors += 1;
    }
    totals.graphql.latency += elapsed;
    operation
}

/// At most this many distinct operation names become labels; later ones are
/// counted as `other`, so clients cannot grow the series without bound.
const MAX_OPERATIONS: usize = 200;
const MAX_OPERATION_LENGTH: usize = 64;

/// The label for a client-chosen operation name: `anonymous` without one,
/// `other` past [`MAX_OPERATIONS`] names or for a name that is not GraphQL's.
pub fn operation_label(name: &str) -> String {
    if name.is_empty() {
        return "anonymous".to_string();
    }
    let valid = name.len() <= MAX_OPERATION_LENGTH
        && name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return "other".to_string();
    }
    let mut operations = OPERATIONS.lock().unwrap_or_else(PoisonError::into_inner);
    if operations.contains(name) {
        return name.to_string();
    }
    if operations.len() >= MAX_OPERATIONS {
        return "other".to_string();
    }
    operations.insert(name.to_string());
    name.to_string()
}

/// Running totals of this process, for the status page's rates and ratios.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    /// Upstream requests per provider id.
    pub providers: BTreeMap<String, UpstreamTotals>,
    /// Lookups per cache name.
    pub caches: BTreeMap<&'static str, CacheTotals>,
    pub graphql: GraphqlTotals,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct UpstreamTotals {
    pub requests: u64,
    /// Transport failures and 5xx answers.
    pub errors: u64,
    /// 429 answers.
    pub rate_limited: u64,
    /// Summed latency of all requests.
    pub latency: Duration,
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct CacheTotals {
    pub hits: u64,
    pub misses: u64,
    pub stale: u64,
}

impl CacheTotals {
    /// Hits per lookup (hits + misses); `None` before any lookup.
    pub fn hit_ratio(&self) -> Option<f64> {
        let lookups = self.hits + self.misses;
        (lookups > 0).then(|| self.hits as f64 / lookups as f64)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GraphqlTotals {
    pub requests: u64,
    /// Requests answered with at least one error.
    pub errors: u64,
    pub latency: Duration,
}

static TOTALS: Mutex<Totals> = Mutex::new(Totals {
    providers: BTreeMap::new(),
    caches: BTreeMap::new(),
    graphql: GraphqlTotals {
        requests: 0,
        errors: 0,
        latency: Duration::ZERO,
    },
});

/// The operation names seen so far (see [`operation_label`]).
static OPERATIONS: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());

fn lock() -> MutexGuard<'static, Totals> {
    TOTALS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A copy of the running totals.
pub fn totals() -> Totals {
    lock().clone()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::id::ProviderId;
    use crate::upstream::{BucketKey, BucketLimit};

    #[test]
    fn upstream_totals_split_errors_from_rate_limits() {
        let provider = "telemetry-test-upstream";
        record_upstream(provider, "/loans", Some(200), Duration::from_millis(10));
        record_upstream(provider, "/loans", Some(429), Duration::from_millis(5));
        record_upstream(provider, "/loans", Some(503), Duration::from_millis(5));
        record_upstream(provider, "/loans", None, Duration::from_millis(20));
        let totals = totals().providers[provider];
        assert_eq!(totals.requests, 4);
        assert_eq!(totals.rate_limited, 1);
        assert_eq!(totals.errors, 2);
        assert_eq!(totals.latency, Duration::from_millis(40));
    }

    #[test]
    fn operation_labels_are_bounded() {
        assert_eq!(operation_label(""), "anonymous");
        assert_eq!(operation_label("Loans_2"), "Loans_2");
        assert_eq!(operation_label("not a name"), "other");
        assert_eq!(operation_label(&"x".repeat(65)), "other");
        for n in 0..MAX_OPERATIONS + 10 {
            operation_label(&format!("op{n}"));
        }
        assert_eq!(operation_label("brand_new_name"), "other");
        assert_eq!(operation_label("Loans_2"), "Loans_2", "known names stay");
    }

    #[test]
    fn budgets_take_the_emptiest_bucket_per_rule() {
        let limit = BucketLimit {
            capacity: 10,
            headroom: 1,
            replenish_interval: Duration::from_secs(1),
        };
        let bucket = |credential: &str, remaining| BucketSnapshot {
            key: BucketKey {
                provider: ProviderId::new("zonky").unwrap(),
                rule: Arc::from("default"),
                endpoint: None,
                credential: Arc::from(credential),
                limit,
            },
            capacity: 10,
            burst: 9,
            remaining,
            paused_until: None,
            waiting: 0,
        };
        let budgets = budgets(&[bucket("a", 7), bucket("b", 3)]);
        assert_eq!(
            budgets.get(&("zonky".to_string(), "default".to_string())),
            Some(&(3, 9))
        );
    }

    #[test]
    fn cache_ratio_counts_hits_per_lookup() {
        record_cache_hit("telemetry-test");
        record_cache_hit("telemetry-test");
        record_cache_stale("telemetry-test");
        record_cache_miss("telemetry-test");
        let cache = totals().caches["telemetry-test"];
        assert_eq!(cache.hit_ratio(), Some(2.0 / 3.0));
        assert_eq!(CacheTotals::default().hit_ratio(), None);
    }

    #[test]
    fn outcomes_are_lowercase_codes() {
        assert_eq!(outcome(&Ok::<(), Error>(())), "ok");
        assert_eq!(
            outcome(&Err::<(), _>(Error::rate_limited(
                Duration::from_secs(1),
                "x"
            ))),
            "rate_limited"
        );
    }
}
