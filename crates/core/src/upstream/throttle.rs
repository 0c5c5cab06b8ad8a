//! The throttle: makes sure we never send a request the platform would refuse.
//!
//! [`Throttle`] is the seam; [`LocalThrottle`] keeps buckets in this process.
//! A Redis-backed implementation (shared across gateway replicas) plugs in behind
//! the same trait, which is why every call carries the full [`BucketKey`]
//! (including its [`BucketLimit`](super::BucketLimit)) and nothing assumes local state.

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use governor::clock::Clock;
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use tokio::time::Instant;

use super::policy::{BucketKey, BucketLimit};
use crate::error::{Error, Result};

/// A rate-limit budget shared by every request that maps to the same bucket.
#[async_trait]
pub trait Throttle: Send + Sync + 'static {
    /// Waits until the bucket grants a token.
    ///
    /// If the token would only come after `deadline`, returns at once
    /// `RATE_LIMITED` with `retry_after` set to how long until a token, so a
    /// caller is told when to come back instead of hanging.
    async fn acquire(&self, bucket: &BucketKey, deadline: Instant) -> Result<()>;

    /// Grants nothing from this bucket for `duration`, for everyone using it
    /// (the platform said `Retry-After`, or answered 429). Longer pauses win.
    fn pause(&self, bucket: &BucketKey, duration: Duration);

    /// The buckets this throttle knows about, for health and status pages.
    fn snapshot(&self) -> Vec<BucketSnapshot>;

    /// Where the budgets are kept right now, for health.
    fn backend(&self) -> ThrottleBackend {
        ThrottleBackend::Local
    }
}

/// Where a throttle keeps its budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleBackend {
    /// In this process: each gateway replica has the whole budget.
    Local,
    /// In Redis, shared by every replica.
    Redis,
    /// Redis is configured but unreachable: this replica keeps a conservative
    /// local share of each budget until it is back.
    LocalFallback,
}

/// The state of one bucket at a moment, approximately.
#[derive(Debug, Clone, PartialEq)]
pub struct BucketSnapshot {
    pub key: BucketKey,
    /// The platform's capacity (the rule's `capacity`).
    pub capacity: u32,
    /// The burst we allow ourselves (`capacity - headroom`, at least 1).
    pub burst: u32,
    /// Tokens available now, approximately.
    pub remaining: u32,
    /// Set while the bucket is paused by a `Retry-After` or a 429.
    pub paused_until: Option<Instant>,
    /// Requests queued for a token right now.
    pub waiting: u32,
}

/// Reads governor's time from tokio's clock, so the throttle, the deadlines and
/// `tokio::time::pause` in tests all agree on what "now" is.
#[derive(Debug, Clone, Copy, Default)]
struct TokioClock;

impl Clock for TokioClock {
    type Instant = std::time::Instant;

    fn now(&self) -> std::time::Instant {
        Instant::now().into_std()
    }
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, TokioClock, StateInformationMiddleware>;

/// Token buckets kept in this process: one governor GCRA limiter per [`BucketKey`]
/// (GCRA is a token bucket: burst = capacity - headroom, one token back every
/// replenish interval).
///
/// Waiters on one bucket queue in FIFO order, so a steady stream of new requests
/// cannot starve an older one; a request whose turn would come after its deadline
/// is refused at once with the estimated wait.
#[derive(Default)]
pub struct LocalThrottle {
    buckets: Mutex<Buckets>,
}

#[derive(Default)]
struct Buckets {
    map: HashMap<BucketKey, Arc<Bucket>>,
    /// Sweep idle buckets when the map grows past this size.
    sweep_at: usize,
}

struct Bucket {
    limit: BucketLimit,
    limiter: Limiter,
    state: Mutex<BucketState>,
    /// Held by the request whose turn it is; tokio's mutex is fair (FIFO).
    turn: tokio::sync::Mutex<()>,
    /// Requests between arrival and grant (queued or holding the turn).
    waiting: AtomicU32,
}

struct BucketState {
    paused_until: Option<Instant>,
    /// Tokens left after the last grant (or drain), and when that was; enough to
    /// estimate waits and snapshots without spending a token.
    remaining: u32,
    updated: Instant,
}

/// Buckets untouched for longer than a full refill are indistinguishable from new
/// ones, so dropping them is invisible; sweeping keeps per-credential buckets bounded.
const MIN_SWEEP_SIZE: usize = 1024;

/// The longest pause we honour; protects against absurd `Retry-After` values.
pub(crate) const MAX_PAUSE: Duration = Duration::from_secs(3600);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl LocalThrottle {
    pub fn new() -> Self {
        LocalThrottle::default()
    }

    fn bucket(&self, key: &BucketKey) -> Arc<Bucket> {
        let mut buckets = lock(&self.buckets);
        if let Some(bucket) = buckets.map.get(key) {
            return bucket.clone();
        }
        if buckets.map.len() >= buckets.sweep_at.max(MIN_SWEEP_SIZE) {
            let now = Instant::now();
            buckets
                .map
                .retain(|_, b| Arc::strong_count(b) > 1 || !b.is_idle(now));
            buckets.sweep_at = buckets.map.len() * 2;
        }
        let bucket = Arc::new(Bucket::new(key.limit));
        buckets.map.insert(key.clone(), bucket.clone());
        bucket
    }
}

impl fmt::Debug for LocalThrottle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalThrottle")
            .field("buckets", &lock(&self.buckets).map.len())
            .finish()
    }
}

impl Bucket {
    fn new(limit: BucketLimit) -> Self {
        let burst = NonZeroU32::new(limit.burst()).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::with_period(limit.replenish_interval)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        Bucket {
            limit,
            limiter: RateLimiter::direct_with_clock(quota, TokioClock)
                .with_middleware::<StateInformationMiddleware>(),
            state: Mutex::new(BucketState {
                paused_until: None,
                remaining: burst.get(),
                updated: Instant::now(),
            }),
            turn: tokio::sync::Mutex::new(()),
            waiting: AtomicU32::new(0),
        }
    }

    /// Takes a token now, or says how long until one could be had.
    fn try_take(&self, now: Instant) -> std::result::Result<(), Duration> {
        if let Some(until) = lock(&self.state).paused_until
            && until > now
        {
            return Err(until - now);
        }
        match self.limiter.check() {
            Ok(snapshot) => {
                let mut state = lock(&self.state);
                state.remaining = snapshot.remaining_burst_capacity();
                state.updated = now;
                Ok(())
            }
            Err(not_until) => Err(not_until.wait_time_from(TokioClock.now())),
        }
    }

    /// Estimated wait for a request with `ahead` requests queued before it:
    /// the time until the bucket holds `ahead + 1` tokens, and not before a pause ends.
    fn eta(&self, now: Instant, ahead: u32) -> Duration {
        let state = lock(&self.state);
        let needed = ahead.saturating_add(1).saturating_sub(state.remaining);
        let ready = state
            .updated
            .checked_add(self.limit.replenish_interval.saturating_mul(needed))
            .unwrap_or(now + MAX_PAUSE);
        let ready = match state.paused_until {
            Some(until) => ready.max(until),
            None => ready,
        };
        ready.saturating_duration_since(now)
    }

    /// Tokens available at `now`, extrapolated from the last grant.
    fn remaining(&self, now: Instant) -> u32 {
        let state = lock(&self.state);
        if state.paused_until.is_some_and(|until| until > now) {
            return 0;
        }
        let elapsed = now.saturating_duration_since(state.updated);
        let refilled = elapsed.as_nanos() / self.limit.replenish_interval.as_nanos().max(1);
        let refilled = u32::try_from(refilled).unwrap_or(u32::MAX);
        state
            .remaining
            .saturating_add(refilled)
            .min(self.limit.burst())
    }

    fn is_idle(&self, now: Instant) -> bool {
        self.waiting.load(Ordering::Acquire) == 0 && self.remaining(now) >= self.limit.burst()
    }
}

/// Counts a request as waiting on a bucket until it is granted, refused or dropped.
struct Waiting<'a>(&'a AtomicU32);

impl<'a> Waiting<'a> {
    /// Joins the queue; returns the guard and how many were already waiting.
    fn join(counter: &'a AtomicU32) -> (Self, u32) {
        let ahead = counter.fetch_add(1, Ordering::AcqRel);
        (Waiting(counter), ahead)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[async_trait]
impl Throttle for LocalThrottle {
    async fn acquire(&self, key: &BucketKey, deadline: Instant) -> Result<()> {
        let bucket = self.bucket(key);
        let now = Instant::now();
        // Fast path: nobody queued ahead of us.
        if bucket.waiting.load(Ordering::Acquire) == 0 {
            match bucket.try_take(now) {
                Ok(()) => return Ok(()),
                Err(wait) if wait > deadline.saturating_duration_since(now) => {
                    return Err(rate_limited(key, wait));
                }
                Err(_) => {}
            }
        }

        let (_waiting, ahead) = Waiting::join(&bucket.waiting);
        let eta = bucket.eta(now, ahead);
        if eta > deadline.saturating_duration_since(now) {
            return Err(rate_limited(key, eta));
        }
        let Ok(_turn) = tokio::time::timeout_at(deadline, bucket.turn.lock()).await else {
            let now = Instant::now();
            let ahead = bucket.waiting.load(Ordering::Acquire).saturating_sub(1);
            return Err(rate_limited(key, bucket.eta(now, ahead)));
        };
        loop {
            let now = Instant::now();
            match bucket.try_take(now) {
                Ok(()) => return Ok(()),
                Err(wait) if wait > deadline.saturating_duration_since(now) => {
                    return Err(rate_limited(key, wait));
                }
                Err(wait) => tokio::time::sleep_until(now + wait).await,
            }
        }
    }

    fn pause(&self, key: &BucketKey, duration: Duration) {
        let bucket = self.bucket(key);
        let now = Instant::now();
        let until = now + duration.min(MAX_PAUSE);
        {
            let mut state = lock(&bucket.state);
            state.paused_until = Some(state.paused_until.map_or(until, |p| p.max(until)));
        }
        // The platform says its bucket is empty: empty ours too, so that when the
        // pause ends we refill from zero like the platform does instead of
        // bursting straight into another 429.
        for _ in 0..bucket.limit.burst() {
            if bucket.limiter.check().is_err() {
                break;
            }
        }
        let mut state = lock(&bucket.state);
        state.remaining = 0;
        state.updated = now;
    }

    fn snapshot(&self) -> Vec<BucketSnapshot> {
        let now = Instant::now();
        let buckets: Vec<(BucketKey, Arc<Bucket>)> = lock(&self.buckets)
            .map
            .iter()
            .map(|(k, b)| (k.clone(), b.clone()))
            .collect();
        let mut snapshots: Vec<BucketSnapshot> = buckets
            .into_iter()
            .map(|(key, bucket)| BucketSnapshot {
                capacity: key.limit.capacity,
                burst: key.limit.burst(),
                remaining: bucket.remaining(now),
                paused_until: lock(&bucket.state).paused_until.filter(|p| *p > now),
                waiting: bucket.waiting.load(Ordering::Acquire),
                key,
            })
            .collect();
        snapshots.sort_by(|a, b| a.key.cmp(&b.key));
        snapshots
    }
}

fn rate_limited(key: &BucketKey, wait: Duration) -> Error {
    Error::rate_limited(
        wait,
        format!(
            "{} rate limit `{}` exhausted for this credential; next request possible in {} ms",
            key.provider,
            key.rule,
            wait.as_millis().max(1)
        ),
    )
    .with_provider(&key.provider)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::ProviderId;

    fn key(credential: &str, burst: u32, interval_ms: u64) -> BucketKey {
        BucketKey {
            provider: ProviderId::new("zonky").unwrap(),
            rule: Arc::from("default"),
            endpoint: None,
            credential: Arc::from(credential),
            limit: BucketLimit {
                capacity: burst + 1,
                headroom: 1,
                replenish_interval: Duration::from_millis(interval_ms),
            },
        }
    }

    #[tokio::test(start_paused = true)]
    async fn grants_the_burst_then_one_token_per_interval() {
        let throttle = LocalThrottle::new();
        let key = key("a", 2, 100);
        let start = Instant::now();
        let far = start + Duration::from_secs(10);
        throttle.acquire(&key, far).await.unwrap();
        throttle.acquire(&key, far).await.unwrap();
        assert_eq!(start.elapsed(), Duration::ZERO);
        throttle.acquire(&key, far).await.unwrap();
        assert_eq!(start.elapsed(), Duration::from_millis(100));

        let err = throttle
            .acquire(&key, Instant::now() + Duration::from_millis(50))
            .await
            .unwrap_err();
        assert_eq!(err.code(), "RATE_LIMITED");
        assert_eq!(err.retry_after, Some(Duration::from_millis(100)));
        assert_eq!(err.provider.as_ref().map(|p| p.as_str()), Some("zonky"));
        assert_eq!(
            start.elapsed(),
            Duration::from_millis(100),
            "refused at once"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_are_served_in_order_and_hopeless_ones_refused_at_once() {
        let throttle = Arc::new(LocalThrottle::new());
        let key = key("a", 1, 100);
        let start = Instant::now();
        throttle.acquire(&key, start).await.unwrap();

        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..4u32 {
            let (throttle, key, order) = (throttle.clone(), key.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                throttle
                    .acquire(&key, start + Duration::from_secs(1))
                    .await
                    .unwrap();
                lock(&order).push((i, start.elapsed()));
            }));
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
        // Four ahead: this one's token comes at ~500 ms, past its 250 ms deadline.
        let err = throttle
            .acquire(&key, Instant::now() + Duration::from_millis(250))
            .await
            .unwrap_err();
        let retry_after = err.retry_after.unwrap();
        assert!(retry_after >= Duration::from_millis(400), "{retry_after:?}");
        for task in tasks {
            task.await.unwrap();
        }
        let order = lock(&order).clone();
        let expected: Vec<(u32, Duration)> = (0..4)
            .map(|i| (i, Duration::from_millis(100 * u64::from(i + 1))))
            .collect();
        assert_eq!(order, expected);
    }

    /// Ten times the budget for a minute, as the bench's throttle scenario
    /// offers it, with a third of the callers giving up half-way through their
    /// wait: the bucket is never overdrawn, and callers that leave give their
    /// place back, so the budget keeps being used to the end.
    #[tokio::test(start_paused = true)]
    async fn sustained_overload_uses_the_whole_budget_and_never_more() {
        let throttle = Arc::new(LocalThrottle::new());
        let key = key("a", 19, 200); // capacity 20, 5 per second, headroom 1
        let start = Instant::now();
        let window = Duration::from_secs(60);
        let budget = 19 + 5 * 60;
        let offered = 10 * budget;
        let spacing = window / offered;
        let granted = Arc::new(Mutex::new(Vec::new()));
        let mut callers = Vec::new();
        for i in 0..offered {
            tokio::time::sleep_until(start + spacing * i).await;
            let (throttle, key, granted) = (throttle.clone(), key.clone(), granted.clone());
            callers.push(tokio::spawn(async move {
                let deadline = Instant::now() + Duration::from_secs(10);
                let acquire = throttle.acquire(&key, deadline);
                let outcome = if i % 3 == 0 {
                    tokio::time::timeout(Duration::from_secs(5), acquire).await
                } else {
                    Ok(acquire.await)
                };
                if let Ok(Ok(())) = outcome {
                    lock(&granted).push(start.elapsed());
                }
            }));
        }
        for caller in callers {
            caller.await.unwrap();
        }
        let granted = lock(&granted).clone();
        let in_window = granted.iter().filter(|at| **at <= window).count() as u32;
        assert!(
            in_window * 100 >= budget * 95,
            "only {in_window} of {budget} tokens granted in the window"
        );
        // Never more than the burst plus what refilled, over any stretch.
        for (i, first) in granted.iter().enumerate() {
            for (j, last) in granted.iter().enumerate().skip(i) {
                let refilled = (*last - *first).as_millis() / 200;
                assert!(
                    (j - i + 1) as u128 <= 19 + refilled,
                    "{} tokens between {first:?} and {last:?}",
                    j - i + 1
                );
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn pause_holds_everyone_and_empties_the_bucket() {
        let throttle = LocalThrottle::new();
        let key = key("a", 5, 100);
        let start = Instant::now();
        throttle.pause(&key, Duration::from_secs(1));
        throttle.pause(&key, Duration::from_millis(10)); // a shorter pause does not shorten it

        let err = throttle
            .acquire(&key, start + Duration::from_millis(500))
            .await
            .unwrap_err();
        assert_eq!(err.retry_after, Some(Duration::from_secs(1)));
        let snapshot = throttle.snapshot();
        assert_eq!(snapshot.len(), 1);
        assert_eq!(snapshot[0].remaining, 0);
        assert_eq!(
            snapshot[0].paused_until,
            Some(start + Duration::from_secs(1))
        );

        throttle
            .acquire(&key, start + Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        // Refilled from empty during the pause (10 intervals, capped at the burst of 5):
        // the first five go at once, the sixth waits.
        for _ in 0..4 {
            throttle.acquire(&key, Instant::now()).await.unwrap();
        }
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        let snapshot = throttle.snapshot();
        assert_eq!(snapshot[0].paused_until, None);
        assert_eq!(snapshot[0].remaining, 0);
        assert!(throttle.acquire(&key, Instant::now()).await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn credentials_do_not_share_and_idle_buckets_are_swept() {
        let throttle = LocalThrottle::new();
        let far = Instant::now() + Duration::from_secs(1);
        throttle.acquire(&key("a", 1, 100), far).await.unwrap();
        throttle.acquire(&key("b", 1, 100), far).await.unwrap();
        let snapshot = throttle.snapshot();
        assert_eq!(snapshot.len(), 2);
        assert_eq!(snapshot[0].capacity, 2);
        assert_eq!(snapshot[0].burst, 1);
        assert!(snapshot.iter().all(|s| s.remaining == 0));

        for i in 0..MIN_SWEEP_SIZE - 2 {
            throttle.pause(&key(&format!("c{i}"), 1, 100), Duration::ZERO);
        }
        tokio::time::advance(Duration::from_secs(1)).await;
        throttle.pause(&key("last", 1, 100), Duration::ZERO);
        assert_eq!(
            lock(&throttle.buckets).map.len(),
            1,
            "full, idle buckets are dropped"
        );
        assert!(format!("{throttle:?}").contains("buckets: 1"));
    }
}
