//! How an answer was served, per provider: from the cache or upstream, how
//! old, and whether stale (served because the provider failed).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::id::ProviderId;

/// How one provider's part of an answer was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStatus {
    /// From the cache, without an upstream call.
    pub hit: bool,
    /// How long ago the provider gave this data.
    pub age: Duration,
    /// Older than its time to live, served because the provider failed.
    pub stale: bool,
}

impl CacheStatus {
    /// Fresh from the provider just now.
    pub const UPSTREAM: CacheStatus = CacheStatus {
        hit: false,
        age: Duration::ZERO,
        stale: false,
    };

    /// Two reads from one provider as one: a hit only if both were, as old
    /// as the older, stale if either was.
    pub fn merge(self, other: CacheStatus) -> CacheStatus {
        CacheStatus {
            hit: self.hit && other.hit,
            age: self.age.max(other.age),
            stale: self.stale || other.stale,
        }
    }
}

/// The cache status of each provider that contributed to an answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheReport(BTreeMap<ProviderId, CacheStatus>);

impl CacheReport {
    pub fn single(provider: &ProviderId, status: CacheStatus) -> Self {
        let mut report = CacheReport::default();
        report.record(provider, status);
        report
    }

    pub fn record(&mut self, provider: &ProviderId, status: CacheStatus) {
        self.0
            .entry(provider.clone())
            .and_modify(|known| *known = known.merge(status))
            .or_insert(status);
    }

    pub fn merge(&mut self, other: &CacheReport) {
        for (provider, status) in other.iter() {
            self.record(provider, *status);
        }
    }

    pub fn get(&self, provider: &ProviderId) -> Option<&CacheStatus> {
        self.0.get(provider)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&ProviderId, &CacheStatus)> {
        self.0.iter()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// An answer with how each provider's part of it was served.
#[derive(Debug, Clone, PartialEq)]
pub struct Cached<T> {
    pub value: T,
    pub cache: CacheReport,
}
