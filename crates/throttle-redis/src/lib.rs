//! The shared throttle: every gateway replica draws from the same per-provider,
//! per-credential budgets, kept in Redis and spent by one atomic Lua script
//! (GCRA with reservations, on the Redis server's clock; see `gcra.lua`).
//!
//! A crate of its own so that only the server links the Redis client; core,
//! the adapters and their tests stay free of it.
//!
//! # When Redis is unreachable
//!
//! Each replica then throttles on its own with a conservative share of every
//! budget: `1 / replicas` of the rate and of the burst ([`RedisThrottle::backend`]
//! says [`ThrottleBackend::LocalFallback`]), never unlimited. So that the
//! replicas' local shares and what was already reserved in Redis never add up
//! past the platform's budget:
//!
//! - every replica announces itself in Redis (a heartbeat, and with every
//!   call); the live ones share only `live / replicas` of the budget, leaving
//!   the share of any replica not seen lately to its local fallback;
//! - a replica that loses Redis grants nothing locally until the others have
//!   stopped counting it (the liveness window) and every slot they reserved
//!   meanwhile has passed (at most `max_wait` later);
//! - when Redis answers again, new requests go through Redis at once but the
//!   replica only counts itself as live (taking its share back) once its
//!   local queue has drained.
//!
//! `replicas` must therefore be the number of gateway processes sharing the
//! budgets: fewer live replicas than configured means less budget for each.

pub mod testing;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use async_trait::async_trait;
use finmesh_core::upstream::{
    BucketKey, BucketLimit, BucketSnapshot, LocalThrottle, Throttle, ThrottleBackend,
};
use finmesh_core::{Error, Result};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sha2::{Digest, Sha256};
use tokio::sync::OnceCell;
use tokio::time::Instant;

/// How a [`RedisThrottle`] shares and falls back.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisThrottleSettings {
    /// Gateway processes sharing the budgets; each one's fallback share is `1 / replicas`.
    pub replicas: u32,
    /// How long one Redis call may take before Redis counts as unreachable.
    pub timeout: Duration,
    /// The longest a request waits for its token (the gateway's request
    /// timeout): bounds how far ahead slots are reserved.
    pub max_wait: Duration,
    /// Starts every key, so that deployments can share one Redis.
    pub key_prefix: String,
}

/// How often a replica tells Redis it is alive (and, on its fallback, checks
/// whether Redis is back).
const HEARTBEAT: Duration = Duration::from_millis(500);
/// A replica not seen for this long no longer counts as live: a few missed
/// heartbeats, so one slow beat does not halve everyone's budget.
const LIVENESS: Duration = Duration::from_secs(2);
/// Buckets whose state this replica remembers for snapshots, before idle ones
/// are dropped.
const MAX_TRACKED: usize = 1024;
/// A request gives up a reserved slot when a pause came meanwhile; it retries
/// at most this often before it is refused.
const MAX_ROUNDS: u32 = 8;

static SCRIPT: &str = include_str!("gcra.lua");

/// A [`Throttle`] whose budgets live in Redis, shared by every replica.
/// Cheap to clone; clones share the connection and state.
#[derive(Clone)]
pub struct RedisThrottle {
    inner: Arc<Inner>,
}

struct Inner {
    client: redis::Client,
    connection: OnceCell<ConnectionManager>,
    script: redis::Script,
    /// This process's id in the live set.
    replica: String,
    settings: RedisThrottleSettings,
    fallback: LocalThrottle,
    state: Mutex<State>,
    heartbeat: AtomicBool,
}

struct State {
    mode: Mode,
    /// When Redis last counted this replica as live.
    last_counted: Option<Instant>,
    buckets: HashMap<BucketKey, Tracked>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Shared,
    /// Redis unreachable: local shares, granting nothing before `blackout_until`.
    Fallback {
        blackout_until: Instant,
    },
    /// Redis is back: new requests go through it, without counting this
    /// replica as live until its local queue has drained.
    Rejoining,
}

/// What this replica last learned of a bucket, for snapshots.
struct Tracked {
    remaining: u32,
    burst: u32,
    paused_until: Option<Instant>,
    waiting: Arc<AtomicU32>,
    used: Instant,
}

enum Op {
    Take { max_wait: Duration },
    Pause(Duration),
    Check,
    Beat,
}

struct Reply {
    granted: bool,
    wait: Duration,
    remaining: u32,
    paused: Duration,
    live: u32,
}

fn lock(mutex: &Mutex<State>) -> MutexGuard<'_, State> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl RedisThrottle {
    /// Checks the URL (`redis://[:password@]host[:port][/db]`) without
    /// connecting: the connection is made by the first heartbeat or request
    /// and remade whenever lost, and until it works the fallback throttles.
    pub fn new(url: &str, settings: RedisThrottleSettings) -> Result<Self> {
        // The URL may carry a password: never echo it.
        let client = redis::Client::open(url).map_err(|_| {
            Error::invalid_input(
                "redis_url",
                "not a Redis URL; expected redis://[:password@]host[:port][/db]",
            )
        })?;
        if settings.replicas == 0 {
            return Err(Error::invalid_input(
                "replicas",
                "at least one gateway replica shares the budgets",
            ));
        }
        let replica = format!("{:016x}", rand::random::<u64>());
        let throttle = RedisThrottle {
            inner: Arc::new(Inner {
                client,
                connection: OnceCell::new(),
                script: redis::Script::new(SCRIPT),
                replica,
                settings,
                fallback: LocalThrottle::new(),
                state: Mutex::new(State {
                    mode: Mode::Shared,
                    last_counted: None,
                    buckets: HashMap::new(),
                }),
                heartbeat: AtomicBool::new(false),
            }),
        };
        // Counted as live from the start, so the others do not keep this
        // replica's share aside until its first request; outside a runtime,
        // from its first request.
        if tokio::runtime::Handle::try_current().is_ok() {
            throttle.start_heartbeat();
        }
        Ok(throttle)
    }

    /// Starts the heartbeat once, from inside the runtime; it ends with the throttle.
    fn start_heartbeat(&self) {
        if self.inner.heartbeat.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(HEARTBEAT);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(inner) = weak.upgrade() else {
                    return;
                };
                inner.beat().await;
            }
        });
    }
}

impl Inner {
    fn mode(&self) -> Mode {
        lock(&self.state).mode
    }

    async fn connection(&self) -> redis::RedisResult<ConnectionManager> {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.settings.timeout))
            .set_response_timeout(Some(self.settings.timeout))
            // Reconnecting is retried on the next call; the fallback covers meanwhile.
            .set_number_of_retries(1);
        self.connection
            .get_or_try_init(|| async {
                ConnectionManager::new_lazy_with_config(self.client.clone(), config)
            })
            .await
            .cloned()
    }

    /// Runs the script for `key` (`None` only with `Beat`, which touches no
    /// bucket). Counts this replica as live only in `Shared` mode.
    async fn call(&self, op: Op, key: Option<&BucketKey>) -> std::result::Result<Reply, String> {
        let counted = self.mode() == Mode::Shared;
        let (name, arg) = match op {
            Op::Take { max_wait } => ("take", max_wait),
            Op::Pause(duration) => ("pause", duration),
            Op::Check => ("check", Duration::ZERO),
            Op::Beat => ("beat", Duration::ZERO),
        };
        let limit = key.map(|k| k.limit);
        let mut invocation = self.script.prepare_invoke();
        invocation
            .key(key.map_or_else(|| self.replicas_key(), |k| self.bucket_key(k)))
            .key(self.replicas_key())
            .arg(name)
            .arg(if counted { self.replica.as_str() } else { "" })
            .arg(self.settings.replicas)
            .arg(micros(LIVENESS))
            .arg(limit.map_or(1, |l| micros(l.replenish_interval).max(1)))
            .arg(limit.map_or(1, |l| l.burst()))
            .arg(micros(arg));
        let call = async {
            let mut connection = self.connection().await?;
            invocation.invoke_async::<Vec<i64>>(&mut connection).await
        };
        let values = match tokio::time::timeout(self.settings.timeout, call).await {
            Ok(Ok(values)) => values,
            Ok(Err(error)) => return Err(error.to_string()),
            Err(_) => {
                return Err(format!(
                    "no answer within {} ms",
                    self.settings.timeout.as_millis()
                ));
            }
        };
        let [granted, wait, remaining, paused, live] = values[..] else {
            return Err(format!("unexpected script reply {values:?}"));
        };
        if counted {
            lock(&self.state).last_counted = Some(Instant::now());
        }
        Ok(Reply {
            granted: granted == 1,
            wait: Duration::from_micros(u64::try_from(wait).unwrap_or(0)),
            remaining: u32::try_from(remaining).unwrap_or(0),
            paused: Duration::from_micros(u64::try_from(paused).unwrap_or(0)),
            live: u32::try_from(live).unwrap_or(0),
        })
    }

    fn replicas_key(&self) -> String {
        format!("{{{}}}:throttle:replicas", self.settings.key_prefix)
    }

    /// `{prefix}:throttle:<provider>:<rule>:<endpoint>:<credential hash>`: the
    /// credential id is hashed, so keys say nothing about whose budget it is.
    fn bucket_key(&self, key: &BucketKey) -> String {
        let digest = Sha256::digest(key.credential.as_bytes());
        let credential: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!(
            "{{{}}}:throttle:{}:{}:{}:{credential}",
            self.settings.key_prefix,
            key.provider,
            key.rule,
            key.endpoint.unwrap_or("*")
        )
    }

    /// Redis failed: from now on, local shares (once the blackout is over).
    fn lost(&self, reason: &str) {
        let mut state = lock(&self.state);
        if matches!(state.mode, Mode::Fallback { .. }) {
            return;
        }
        // Others stop counting this replica `LIVENESS` after they last saw it,
        // and what they reserved until then goes out within `max_wait`.
        let last_counted = state.last_counted.unwrap_or_else(Instant::now);
        let blackout_until = last_counted + LIVENESS + self.settings.max_wait;
        state.mode = Mode::Fallback { blackout_until };
        tracing::warn!(
            reason,
            replicas = self.settings.replicas,
            blackout_ms = blackout_until
                .saturating_duration_since(Instant::now())
                .as_millis() as u64,
            "Redis unreachable: throttling on a local share of each budget (1/replicas) until it is back"
        );
    }

    /// One heartbeat: count this replica as live, or see whether Redis is back.
    async fn beat(&self) {
        match self.mode() {
            Mode::Shared => {
                if let Err(reason) = self.call(Op::Beat, None).await {
                    self.lost(&reason);
                }
            }
            Mode::Fallback { .. } => {
                // Probe without being counted (not `Shared`): the local share is still in use.
                if self.call(Op::Beat, None).await.is_ok() {
                    lock(&self.state).mode = Mode::Rejoining;
                    tracing::info!(
                        "Redis reachable again: new requests use the shared budgets; this replica takes its share back once its local queue drains"
                    );
                }
            }
            Mode::Rejoining => {
                let drained = self.fallback.snapshot().iter().all(|b| b.waiting == 0);
                if drained {
                    lock(&self.state).mode = Mode::Shared;
                    match self.call(Op::Beat, None).await {
                        Ok(_) => tracing::info!("back on the shared throttle budgets in Redis"),
                        Err(reason) => self.lost(&reason),
                    }
                }
            }
        }
    }

    /// The bucket's local fallback: `1 / replicas` of its rate and burst.
    fn share(&self, key: &BucketKey) -> BucketKey {
        let replicas = self.settings.replicas;
        let burst = (key.limit.burst() / replicas).max(1);
        BucketKey {
            limit: BucketLimit {
                capacity: burst + key.limit.headroom,
                headroom: key.limit.headroom,
                replenish_interval: key.limit.replenish_interval.saturating_mul(replicas),
            },
            ..key.clone()
        }
    }

    async fn acquire_locally(
        &self,
        key: &BucketKey,
        deadline: Instant,
        blackout_until: Instant,
    ) -> Result<()> {
        let share = self.share(key);
        let now = Instant::now();
        if blackout_until > now {
            self.fallback.pause(&share, blackout_until - now);
        }
        self.fallback.acquire(&share, deadline).await
    }

    /// Notes a bucket's state from a reply; returns its waiting counter.
    fn track(&self, key: &BucketKey, reply: Option<&Reply>) -> Arc<AtomicU32> {
        let now = Instant::now();
        let mut state = lock(&self.state);
        if state.buckets.len() >= MAX_TRACKED && !state.buckets.contains_key(key) {
            state.buckets.retain(|_, b| {
                b.waiting.load(Ordering::Acquire) > 0 || now - b.used < Duration::from_secs(600)
            });
        }
        let tracked = state.buckets.entry(key.clone()).or_insert_with(|| Tracked {
            remaining: key.limit.burst(),
            burst: key.limit.burst(),
            paused_until: None,
            waiting: Arc::default(),
            used: now,
        });
        tracked.used = now;
        if let Some(reply) = reply {
            let replicas = self.settings.replicas.max(1);
            tracked.burst = (key.limit.burst() * reply.live.min(replicas) / replicas).max(1);
            tracked.remaining = reply.remaining;
            tracked.paused_until = (!reply.paused.is_zero()).then(|| now + reply.paused);
        }
        tracked.waiting.clone()
    }
}

/// Counts a request as waiting for its bucket until dropped.
struct Waiting(Arc<AtomicU32>);

impl Waiting {
    fn new(counter: Arc<AtomicU32>) -> Self {
        counter.fetch_add(1, Ordering::AcqRel);
        Waiting(counter)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[async_trait]
impl Throttle for RedisThrottle {
    async fn acquire(&self, key: &BucketKey, deadline: Instant) -> Result<()> {
        self.start_heartbeat();
        let inner = &self.inner;
        let _waiting = Waiting::new(inner.track(key, None));
        for _ in 0..MAX_ROUNDS {
            if let Mode::Fallback { blackout_until } = inner.mode() {
                return inner.acquire_locally(key, deadline, blackout_until).await;
            }
            let max_wait = deadline
                .saturating_duration_since(Instant::now())
                .min(inner.settings.max_wait);
            let reply = match inner.call(Op::Take { max_wait }, Some(key)).await {
                Ok(reply) => reply,
                Err(reason) => {
                    inner.lost(&reason);
                    continue;
                }
            };
            inner.track(key, Some(&reply));
            if !reply.granted {
                return Err(rate_limited(key, reply.wait));
            }
            if reply.wait.is_zero() {
                return Ok(());
            }
            tokio::time::sleep(reply.wait).await;
            // A 429 seen meanwhile, by any replica, pauses the bucket: give the
            // slot up and queue again. Without Redis the slot stands: it was
            // reserved in the shared schedule before the outage.
            if matches!(inner.mode(), Mode::Fallback { .. }) {
                return Ok(());
            }
            match inner.call(Op::Check, Some(key)).await {
                Ok(check) if !check.paused.is_zero() => {
                    inner.track(key, Some(&check));
                }
                Ok(_) => return Ok(()),
                Err(reason) => {
                    inner.lost(&reason);
                    return Ok(());
                }
            }
        }
        Err(rate_limited(key, key.limit.replenish_interval))
    }

    fn pause(&self, key: &BucketKey, duration: Duration) {
        let inner = &self.inner;
        // The local share honours it too, should Redis go away before it ends.
        inner.fallback.pause(&inner.share(key), duration);
        if matches!(inner.mode(), Mode::Fallback { .. }) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (inner, key) = (inner.clone(), key.clone());
        runtime.spawn(async move {
            match inner.call(Op::Pause(duration), Some(&key)).await {
                Ok(reply) => {
                    inner.track(&key, Some(&reply));
                }
                Err(reason) => inner.lost(&reason),
            }
        });
    }

    fn snapshot(&self) -> Vec<BucketSnapshot> {
        if matches!(self.inner.mode(), Mode::Fallback { .. }) {
            return self.inner.fallback.snapshot();
        }
        let now = Instant::now();
        let state = lock(&self.inner.state);
        let mut snapshots: Vec<BucketSnapshot> = state
            .buckets
            .iter()
            .map(|(key, tracked)| BucketSnapshot {
                key: key.clone(),
                capacity: key.limit.capacity,
                burst: tracked.burst,
                remaining: tracked.remaining,
                paused_until: tracked.paused_until.filter(|until| *until > now),
                waiting: tracked.waiting.load(Ordering::Acquire),
            })
            .collect();
        snapshots.sort_by(|a, b| a.key.cmp(&b.key));
        snapshots
    }

    fn backend(&self) -> ThrottleBackend {
        match self.inner.mode() {
            Mode::Shared => ThrottleBackend::Redis,
            Mode::Fallback { .. } | Mode::Rejoining => ThrottleBackend::LocalFallback,
        }
    }
}

impl fmt::Debug for RedisThrottle {
    /// Never the URL: it may carry a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisThrottle")
            .field("replica", &self.inner.replica)
            .field("mode", &self.inner.mode())
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

fn rate_limited(key: &BucketKey, wait: Duration) -> Error {
    Error::rate_limited(
        wait,
        format!(
            "{} rate limit `{}` exhausted for this credential (shared by every gateway replica); next request possible in {} ms",
            key.provider,
            key.rule,
            wait.as_millis().max(1)
        ),
    )
    .with_provider(&key.provider)
}
