//! Every provider read of the aggregator goes through here: through the
//! response cache, with the provider's health recorded from the upstream
//! calls actually made (a cache hit is no news of the platform).

use std::fmt;
use std::future::Future;

use super::{Aggregator, ListKind};
use crate::auth::Principal;
use crate::cache::{CacheReport, CacheStatus, Cached, Operation, ResponseCache, Scope, Weigh};
use crate::error::Result;
use crate::id::ProviderId;
use crate::provider::{CallContext, ListRequest, Provider, Slice};

impl Aggregator {
    /// The same aggregator answering through `cache`. The cache also drops
    /// what the changes announced on [`Aggregator::changes`] make stale.
    pub fn with_cache(mut self, cache: ResponseCache) -> Self {
        cache.listen_to(&self.changes);
        self.cache = cache;
        self
    }

    pub fn cache(&self) -> &ResponseCache {
        &self.cache
    }

    /// Forgets what is cached of `principal`'s data at `provider` in `scope`:
    /// every write calls this for what it changed.
    pub fn invalidate_principal(&self, provider: &ProviderId, principal: &Principal, scope: Scope) {
        self.cache.invalidate_principal(provider, principal, scope);
    }

    /// One window of `provider`'s list of `K`, and how it was served.
    pub(super) async fn fetch<K: ListKind>(
        &self,
        provider: &dyn Provider,
        ctx: &CallContext,
        request: &ListRequest<K::Filter, K::Order>,
    ) -> Result<(Slice<K::Item>, CacheStatus)> {
        self.read(provider, K::CACHED_AS, ctx, request, || {
            K::fetch(provider, ctx, request)
        })
        .await
    }

    /// A read of `operation` with `args` at `provider`, through the cache.
    pub(super) async fn read<T, F, Fut>(
        &self,
        provider: &dyn Provider,
        operation: Operation,
        ctx: &CallContext,
        args: &impl fmt::Debug,
        call: F,
    ) -> Result<(T, CacheStatus)>
    where
        T: Clone + Weigh + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let id = provider.id();
        let upstream = || async {
            let outcome = call().await;
            self.health.record(id, &outcome);
            outcome
        };
        let answer = if ctx.principal.is_none() && provider.capabilities().requires_principal {
            // What such a platform shows only to its users is never handed
            // to anonymous callers from the cache.
            upstream().await.map(|value| (value, CacheStatus::UPSTREAM))
        } else {
            let principal = ctx.principal.as_ref();
            (self.cache)
                .get_or_fetch(id, operation, principal, args, upstream)
                .await
        };
        answer.map_err(|e| e.with_provider(id))
    }

    /// A single record by its native id, with its cache report.
    pub(super) async fn read_one<T, F, Fut>(
        &self,
        provider: &dyn Provider,
        operation: Operation,
        ctx: &CallContext,
        native_id: &str,
        call: F,
    ) -> Result<Cached<T>>
    where
        T: Clone + Weigh + Send + Sync + 'static,
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let (value, status) = self
            .read(provider, operation, ctx, &native_id, call)
            .await?;
        Ok(Cached {
            value,
            cache: CacheReport::single(provider.id(), status),
        })
    }
}
