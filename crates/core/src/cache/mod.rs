//! The response cache: one place, in front of every provider, for every read
//! the aggregator makes.
//!
//! - Keys are the normalised operation and its arguments ([`CacheKey`]);
//!   public operations are keyed without the principal, private ones by
//!   principal and tenant (and never cached without a principal).
//! - Each operation class has a time to live, configurable per provider.
//! - Concurrent identical misses make one upstream call (single flight, by
//!   moka's `or_try_insert_with`), whichever GraphQL query needs the answer.
//! - The size is bounded by estimated bytes ([`Weigh`]), not entry count.
//! - Writes and events invalidate what they change ([`ResponseCache::invalidate_marketplace`],
//!   [`ResponseCache::invalidate_principal`]).
//! - Stale-if-error: when the provider fails with a transient error, the last
//!   good answer younger than its time to live plus the stale window is
//!   served, marked stale.
//! - Errors are never cached; an error is shared only with callers waiting on
//!   the same upstream call.

mod key;
mod report;
mod weight;

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use moka::Expiry;
use moka::future::Cache;
use tokio::time::Instant;

pub use key::{CacheKey, Operation, OperationClass, Scope};
pub use report::{CacheReport, CacheStatus, Cached};
pub use weight::{Weigh, json_weight};

use crate::auth::Principal;
use crate::changes::{Change, ChangeListener, ChangeScope, Changes};
use crate::error::{Error, Result};
use crate::id::ProviderId;
use crate::telemetry;

/// How long answers of one provider stay fresh, and how long past that they
/// may stand in for a failing provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    pub ttl_public: Duration,
    pub ttl_private: Duration,
    /// How long past its time to live an answer may still be served, marked
    /// stale, when the provider fails; zero turns stale-if-error off.
    pub stale_if_error: Duration,
}

impl CachePolicy {
    pub const DEFAULT: CachePolicy = CachePolicy {
        ttl_public: Duration::from_secs(5),
        ttl_private: Duration::from_secs(2),
        stale_if_error: Duration::from_secs(300),
    };

    pub fn ttl(&self, class: OperationClass) -> Duration {
        match class {
            OperationClass::Public => self.ttl_public,
            OperationClass::Private => self.ttl_private,
        }
    }
}

impl Default for CachePolicy {
    fn default() -> Self {
        CachePolicy::DEFAULT
    }
}

/// The cache's bound and policies.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheSettings {
    /// The most bytes (estimated) the cached answers may occupy.
    pub max_bytes: u64,
    /// For providers without their own policy.
    pub policy: CachePolicy,
    pub providers: HashMap<ProviderId, CachePolicy>,
}

impl CacheSettings {
    pub const DEFAULT_MAX_BYTES: u64 = 64 * 1024 * 1024;

    pub fn policy(&self, provider: &ProviderId) -> &CachePolicy {
        self.providers.get(provider).unwrap_or(&self.policy)
    }
}

impl Default for CacheSettings {
    fn default() -> Self {
        CacheSettings {
            max_bytes: CacheSettings::DEFAULT_MAX_BYTES,
            policy: CachePolicy::DEFAULT,
            providers: HashMap::new(),
        }
    }
}

/// The cache's name in metrics.
const METRICS_NAME: &str = "responses";

/// Bytes moka and this module keep per entry beyond key and value (entry
/// structs, hash table slot, deques, `Arc`s): a generous estimate.
const ENTRY_OVERHEAD: usize = 256;

/// Most upstream calls in flight at once that other callers can join.
const MAX_FLIGHTS: u64 = 100_000;

/// A finished call's answer stays joinable this long at most; the caller that
/// made it removes it at once, this bounds what a cancelled caller leaves.
const FLIGHT_LINGER: Duration = Duration::from_secs(1);

/// One good answer.
struct Entry {
    value: Arc<dyn Any + Send + Sync>,
    stored_at: Instant,
    fresh_for: Duration,
    /// Fresh time plus the stale-if-error window: when moka drops it.
    keep_for: Duration,
    weight: u32,
}

impl Entry {
    fn age(&self) -> Duration {
        self.stored_at.elapsed()
    }

    fn status(&self, hit: bool) -> CacheStatus {
        let age = self.age();
        CacheStatus {
            hit,
            age,
            stale: age >= self.fresh_for,
        }
    }

    fn value<T: Clone + 'static>(&self) -> Result<T> {
        self.value
            .downcast_ref::<T>()
            .cloned()
            .ok_or_else(|| Error::internal("a cached answer has an unexpected type"))
    }
}

/// Each entry lives as long as it may be served, fresh or stale.
struct KeepFor;

impl Expiry<CacheKey, Arc<Entry>> for KeepFor {
    fn expire_after_create(
        &self,
        _: &CacheKey,
        entry: &Arc<Entry>,
        _: std::time::Instant,
    ) -> Option<Duration> {
        Some(entry.keep_for)
    }

    fn expire_after_update(
        &self,
        _: &CacheKey,
        entry: &Arc<Entry>,
        _: std::time::Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(entry.keep_for)
    }
}

struct Inner {
    settings: CacheSettings,
    /// The last good answer per key.
    store: Cache<CacheKey, Arc<Entry>>,
    /// Upstream calls in flight, by key and the invalidation epoch they began in.
    flights: Cache<(CacheKey, u64), Arc<Entry>>,
    /// Bumped by every invalidation, so that a call begun before it neither
    /// stores its answer nor is joined by callers who came after it.
    epoch: AtomicU64,
}

/// The gateway's response cache; cheap to clone, clones share the entries.
/// [`ResponseCache::disabled`] passes every call through.
#[derive(Clone)]
pub struct ResponseCache {
    inner: Option<Arc<Inner>>,
}

impl fmt::Debug for ResponseCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            None => f.write_str("ResponseCache(disabled)"),
            Some(inner) => f
                .debug_struct("ResponseCache")
                .field("settings", &inner.settings)
                .field("weighted_size", &inner.store.weighted_size())
                .finish(),
        }
    }
}

impl ResponseCache {
    pub fn new(settings: CacheSettings) -> Self {
        let store = Cache::builder()
            .max_capacity(settings.max_bytes)
            .weigher(|key: &CacheKey, entry: &Arc<Entry>| {
                entry
                    .weight
                    .saturating_add(u32::try_from(key.weight()).unwrap_or(u32::MAX))
            })
            .expire_after(KeepFor)
            .support_invalidation_closures()
            .eviction_listener(|_, _, cause| {
                if cause.was_evicted() {
                    telemetry::record_cache_evictions(METRICS_NAME, 1);
                }
            })
            .build();
        let flights = Cache::builder()
            .max_capacity(MAX_FLIGHTS)
            .time_to_live(FLIGHT_LINGER)
            .build();
        ResponseCache {
            inner: Some(Arc::new(Inner {
                settings,
                store,
                flights,
                epoch: AtomicU64::new(0),
            })),
        }
    }

    /// Drops what the notices on `changes` make stale (a disabled cache
    /// has nothing to drop).
    pub fn listen_to(&self, changes: &Changes) {
        if self.inner.is_some() {
            changes.subscribe(Arc::new(self.clone()));
        }
    }

    /// No caching and no coalescing: every call goes upstream.
    pub fn disabled() -> Self {
        ResponseCache { inner: None }
    }

    /// The answer to `operation` with `args` at `provider`, from the cache
    /// when fresh, else from `fetch` (one call for all identical concurrent
    /// misses); when `fetch` fails transiently, a stale answer if one is kept.
    pub async fn get_or_fetch<T, F, Fut>(
        &self,
        provider: &ProviderId,
        operation: Operation,
        principal: Option<&Principal>,
        args: &impl fmt::Debug,
        fetch: F,
    ) -> Result<(T, CacheStatus)>
    where
        T: Clone + Weigh + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let (Some(inner), Some(key)) = (
            &self.inner,
            CacheKey::new(provider, operation, principal, args),
        ) else {
            return fetch().await.map(|value| (value, CacheStatus::UPSTREAM));
        };
        let kept = inner.store.get(&key).await;
        if let Some(entry) = &kept
            && entry.age() < entry.fresh_for
        {
            telemetry::record_cache_hit(METRICS_NAME);
            return Ok((entry.value()?, entry.status(true)));
        }
        telemetry::record_cache_miss(METRICS_NAME);
        match inner.fetch_once(key, fetch).await {
            Ok(entry) => Ok((entry.value()?, entry.status(false))),
            Err(error) => match kept {
                Some(entry)
                    if error.kind.is_transient()
                        && entry.age() < entry.keep_for
                        && entry.keep_for > entry.fresh_for =>
                {
                    tracing::debug!(%provider, ?operation, error = %error, "serving a stale answer");
                    telemetry::record_cache_stale(METRICS_NAME);
                    Ok((entry.value()?, entry.status(true)))
                }
                _ => Err(error),
            },
        }
    }

    /// Forgets `provider`'s marketplace listings, e.g. when a loan was
    /// published there. Loan details are kept: publishing changes none.
    pub fn invalidate_marketplace(&self, provider: &ProviderId) {
        let provider = provider.clone();
        self.invalidate(move |key| key.in_marketplace_of(&provider));
    }

    /// Forgets what is cached of `principal`'s data at `provider` in `scope`,
    /// e.g. after a transfer was created (`Scope::Transfers`).
    pub fn invalidate_principal(&self, provider: &ProviderId, principal: &Principal, scope: Scope) {
        let (provider, principal) = (provider.clone(), principal.clone());
        self.invalidate(move |key| key.in_scope_of(&provider, &principal, scope));
    }

    fn invalidate(&self, predicate: impl Fn(&CacheKey) -> bool + Send + Sync + 'static) {
        let Some(inner) = &self.inner else { return };
        inner.epoch.fetch_add(1, Ordering::SeqCst);
        if let Err(error) = inner
            .store
            .invalidate_entries_if(move |key, _| predicate(key))
        {
            // Cannot happen: the store is built with invalidation closures.
            tracing::error!(%error, "cache invalidation failed; dropping every entry");
            inner.store.invalidate_all();
        }
    }

    /// The keys of the answers kept now, for tests and diagnostics.
    pub fn keys(&self) -> Vec<CacheKey> {
        self.inner.as_ref().map_or_else(Vec::new, |inner| {
            inner.store.iter().map(|(key, _)| (*key).clone()).collect()
        })
    }

    /// The estimated bytes held, after [`ResponseCache::run_pending_tasks`].
    pub fn weighted_size(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, |inner| inner.store.weighted_size())
    }

    /// Applies pending evictions and invalidations now (moka does it lazily).
    pub async fn run_pending_tasks(&self) {
        if let Some(inner) = &self.inner {
            inner.store.run_pending_tasks().await;
        }
    }
}

/// Platforms' own notices (webhooks) drop the pages they make stale.
#[async_trait]
impl ChangeListener for ResponseCache {
    async fn changed(&self, change: &Change) {
        match change.scope {
            ChangeScope::Marketplace => self.invalidate_marketplace(&change.provider),
        }
    }
}

impl Inner {
    /// Calls `fetch` unless an identical call is in flight, else joins that
    /// one (and shares its answer or error); stores a good answer.
    async fn fetch_once<T, F, Fut>(&self, key: CacheKey, fetch: F) -> Result<Arc<Entry>>
    where
        T: Clone + Weigh + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let epoch = self.epoch.load(Ordering::SeqCst);
        let flight = (key.clone(), epoch);
        let policy = self.settings.policy(key.provider());
        let fresh_for = policy.ttl(key.operation().class());
        let keep_for = fresh_for + policy.stale_if_error;
        let call = async {
            let value = fetch().await?;
            let weight = value.weight() + ENTRY_OVERHEAD;
            let entry = Arc::new(Entry {
                value: Arc::new(value),
                stored_at: Instant::now(),
                fresh_for,
                keep_for,
                weight: u32::try_from(weight).unwrap_or(u32::MAX),
            });
            if !keep_for.is_zero() && self.epoch.load(Ordering::SeqCst) == epoch {
                self.store.insert(key.clone(), entry.clone()).await;
                telemetry::record_cache_weight(METRICS_NAME, self.store.weighted_size());
                // An invalidation that came while storing must win.
                if self.epoch.load(Ordering::SeqCst) != epoch {
                    self.store.invalidate(&key).await;
                }
            }
            Ok::<_, Error>(entry)
        };
        let joined = self
            .flights
            .entry(flight.clone())
            .or_try_insert_with(call)
            .await
            .map_err(|error| (*error).clone())?;
        if joined.is_fresh() {
            // This caller made the call: later callers read the store.
            self.flights.invalidate(&flight).await;
        }
        Ok(joined.into_value())
    }
}

#[cfg(test)]
mod tests;
