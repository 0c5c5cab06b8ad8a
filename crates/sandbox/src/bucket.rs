//! A leaky bucket per key, for every simulator's throttle. Each request takes a
//! token from its key's bucket; a token comes back continuously at
//! `refill_per_second` up to `capacity`; an empty bucket refuses and takes
//! nothing. What a key is (a client, a user, an endpoint and a user) and what a
//! refusal looks like on the wire is up to each simulator.

use std::{collections::HashMap, sync::Mutex};

use rust_decimal::{Decimal, prelude::ToPrimitive};
use serde::Deserialize;
use tokio::time::Instant;

use crate::lock;

/// Past this many keys, buckets that have refilled completely are forgotten:
/// a full bucket is what a new key gets anyway.
const MAX_TRACKED_KEYS: usize = 10_000;

/// A leaky bucket per client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketConfig {
    /// Tokens in a full bucket, and so the largest burst.
    pub capacity: u32,
    /// Tokens coming back per second, continuously; may be fractional (`2.5`).
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub refill_per_second: Decimal,
}

/// The buckets of every key under one [`BucketConfig`].
pub(crate) struct Buckets {
    config: BucketConfig,
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: Decimal,
    updated: Instant,
}

/// The bucket was empty; the next token comes after this many seconds
/// (rounded up), unless the bucket never refills.
#[derive(Debug)]
pub(crate) struct Denied {
    pub(crate) retry_after_secs: Option<u64>,
}

impl Buckets {
    pub(crate) fn new(config: BucketConfig) -> Self {
        Self {
            config,
            buckets: Mutex::default(),
        }
    }

    pub(crate) fn config(&self) -> BucketConfig {
        self.config
    }

    /// Forgets every key: all buckets are full again.
    pub(crate) fn reset(&self) {
        lock(&self.buckets).clear();
    }

    /// Takes one token from `key`'s bucket, or says when the next one comes.
    pub(crate) fn try_take(&self, key: &str, now: Instant) -> Result<(), Denied> {
        let mut buckets = lock(&self.buckets);
        if buckets.len() >= MAX_TRACKED_KEYS && !buckets.contains_key(key) {
            buckets.retain(|_, bucket| self.level(bucket, now) < self.capacity());
        }
        let bucket = buckets.entry(key.to_owned()).or_insert_with(|| Bucket {
            tokens: self.capacity(),
            updated: now,
        });
        bucket.tokens = self.level(bucket, now);
        bucket.updated = now;
        if bucket.tokens >= Decimal::ONE {
            bucket.tokens -= Decimal::ONE;
            return Ok(());
        }
        let rate = self.config.refill_per_second;
        let retry_after_secs = (rate > Decimal::ZERO)
            .then(|| ((Decimal::ONE - bucket.tokens) / rate).ceil().to_u64())
            .flatten();
        Err(Denied { retry_after_secs })
    }

    fn capacity(&self) -> Decimal {
        Decimal::from(self.config.capacity)
    }

    /// The bucket's tokens at `now`: exact decimal arithmetic on the elapsed
    /// nanoseconds, so fractional rates such as 2.5 per second refill exactly.
    fn level(&self, bucket: &Bucket, now: Instant) -> Decimal {
        let elapsed = now.saturating_duration_since(bucket.updated);
        let rate = self.config.refill_per_second.max(Decimal::ZERO);
        let refilled = i128::try_from(elapsed.as_nanos())
            .ok()
            .and_then(|nanos| Decimal::try_from_i128_with_scale(nanos, 9).ok())
            .and_then(|seconds| seconds.checked_mul(rate))
            .and_then(|gained| gained.checked_add(bucket.tokens));
        // Too long to even count means full.
        refilled.map_or(self.capacity(), |tokens| tokens.min(self.capacity()))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn buckets(capacity: u32, refill: Decimal) -> Buckets {
        Buckets::new(BucketConfig {
            capacity,
            refill_per_second: refill,
        })
    }

    #[test]
    fn fractional_rates_refill_exactly() {
        let buckets = buckets(1, Decimal::new(25, 1));
        let start = Instant::now();
        assert!(buckets.try_take("a", start).is_ok());
        let denied = buckets.try_take("a", start).unwrap_err();
        assert_eq!(denied.retry_after_secs, Some(1));
        // 2.5 tokens a second: exactly one after 400 ms, not a nanosecond sooner.
        let almost = start + Duration::from_millis(400) - Duration::from_nanos(1);
        assert!(buckets.try_take("a", almost).is_err());
        assert!(
            buckets
                .try_take("a", start + Duration::from_millis(400))
                .is_ok()
        );
    }

    #[test]
    fn refused_requests_take_nothing_and_keys_are_separate() {
        let buckets = buckets(2, Decimal::ONE);
        let start = Instant::now();
        assert!(buckets.try_take("a", start).is_ok());
        assert!(buckets.try_take("a", start).is_ok());
        for _ in 0..5 {
            assert!(buckets.try_take("a", start).is_err());
        }
        assert!(buckets.try_take("b", start).is_ok());
        assert!(
            buckets
                .try_take("a", start + Duration::from_secs(1))
                .is_ok()
        );
        assert!(
            buckets
                .try_take("a", start + Duration::from_secs(1))
                .is_err()
        );
        // Never more than the capacity, however long the wait.
        let later = start + Duration::from_secs(3600);
        assert!(buckets.try_take("a", later).is_ok());
        assert!(buckets.try_take("a", later).is_ok());
        assert!(buckets.try_take("a", later).is_err());
    }

    #[test]
    fn slow_rates_tell_the_wait_rounded_up() {
        let buckets = buckets(1, Decimal::new(3, 1));
        let start = Instant::now();
        assert!(buckets.try_take("a", start).is_ok());
        let denied = buckets
            .try_take("a", start + Duration::from_millis(100))
            .unwrap_err();
        // 0.97 tokens missing at 0.3 a second: 3.23 s, so 4.
        assert_eq!(denied.retry_after_secs, Some(4));
        let never = Buckets::new(BucketConfig {
            capacity: 0,
            refill_per_second: Decimal::ZERO,
        });
        assert_eq!(
            never.try_take("a", start).unwrap_err().retry_after_secs,
            None
        );
    }

    #[test]
    fn reset_refills() {
        let buckets = buckets(1, Decimal::ONE);
        let start = Instant::now();
        assert!(buckets.try_take("a", start).is_ok());
        assert!(buckets.try_take("a", start).is_err());
        buckets.reset();
        assert!(buckets.try_take("a", start).is_ok());
    }
}
