//! The aggregator: fans a list query out to every provider that can answer, in
//! parallel, reads each provider's ordered stream from its cursor position, and
//! merges the streams into one order.
//!
//! Each provider's stream is the platform's list, filtered and ordered as far as
//! the platform can (pushed down), with the rest done here: the whole filter is
//! always re-checked locally, and an order the platform cannot produce is made
//! by reading the whole (pushed-filtered) list and sorting it.

mod cached;
mod cursor;
mod health;
mod kinds;

use std::cmp::Ordering;
use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use futures::future::join_all;
use tracing::Instrument;

pub use cursor::{Cursor, fingerprint};
pub use health::{HealthBook, HealthStatus, ProviderHealth};
pub use kinds::{Investments, Loans, Offers, Transfers};

use crate::cache::{CacheReport, Cached, Operation, ResponseCache, Weigh};
use crate::changes::{Change, ChangeScope, Changes};
use crate::error::{Error, ErrorKind, Result};
use crate::id::{GlobalId, ProviderId};
use crate::model::{Investment, Loan, Offer, PortfolioSummary, Transfer};
use crate::provider::{CallContext, Capabilities, ListCapabilities, ListRequest, Provider, Slice};
use crate::query::{
    InvestmentFilter, InvestmentOrderField, LoanFilter, LoanOrderField, OfferFilter,
    OfferOrderField, OrderKey, TransferFilter, TransferOrderField,
};
use crate::registry::Registry;

/// How a kind of record is listed, filtered and ordered; one implementation per
/// list operation of the [`Provider`] trait.
#[async_trait]
pub trait ListKind: Send + Sync + 'static {
    type Item: Clone + Weigh + Send + Sync + 'static;
    type Filter: Clone + fmt::Debug + Send + Sync + 'static;
    type Field: Copy + PartialEq + Send + Sync + 'static;
    type Order: Copy + PartialEq + fmt::Debug + Send + Sync + 'static;

    /// The operation's name in errors, e.g. `loans`.
    const OPERATION: &'static str;
    /// The operation as the cache knows it, with its class.
    const CACHED_AS: Operation;

    fn capabilities(caps: &Capabilities) -> Option<&ListCapabilities<Self::Field, Self::Order>>;
    fn filter_fields(filter: &Self::Filter) -> Vec<Self::Field>;
    fn restrict(filter: &Self::Filter, fields: &[Self::Field]) -> Self::Filter;
    fn matches(filter: &Self::Filter, item: &Self::Item) -> bool;
    fn compare(a: &Self::Item, b: &Self::Item, keys: &[OrderKey<Self::Order>]) -> Ordering;
    fn id(item: &Self::Item) -> &GlobalId;

    async fn fetch(
        provider: &dyn Provider,
        ctx: &CallContext,
        request: &ListRequest<Self::Filter, Self::Order>,
    ) -> Result<Slice<Self::Item>>;
}

/// Limits that protect the gateway and the platforms.
#[derive(Debug, Clone)]
pub struct AggregatorSettings {
    pub default_page_size: u32,
    pub max_page_size: u32,
    /// The most records read from one provider to sort them locally when the
    /// platform cannot produce the requested order itself.
    pub max_local_sort: u64,
}

impl Default for AggregatorSettings {
    fn default() -> Self {
        AggregatorSettings {
            default_page_size: 20,
            max_page_size: 100,
            max_local_sort: 50_000,
        }
    }
}

/// A caller's list query.
#[derive(Debug, Clone)]
pub struct ListArgs<F, O> {
    pub filter: F,
    /// Empty means the kind's default order.
    pub order: Vec<OrderKey<O>>,
    pub first: Option<i64>,
    pub after: Option<String>,
    /// Restrict to these provider ids; `None` asks every provider that can answer.
    pub providers: Option<Vec<String>>,
}

/// One page of a merged list, Relay style, plus what failed.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub edges: Vec<Edge<T>>,
    pub has_next_page: bool,
    pub has_previous_page: bool,
    /// The number of matching records across providers, when every provider knows it.
    pub total_count: Option<u64>,
    /// Failures of single providers; the page holds what the others answered.
    pub errors: Vec<Error>,
    /// How each answering provider's part was served (cache, age, staleness).
    pub cache: CacheReport,
}

impl<T> Page<T> {
    pub fn end_cursor(&self) -> Option<&str> {
        self.edges.last().map(|e| e.cursor.as_str())
    }

    pub fn start_cursor(&self) -> Option<&str> {
        self.edges.first().map(|e| e.cursor.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct Edge<T> {
    pub node: T,
    pub cursor: String,
}

/// Fans queries out over the registry's providers.
#[derive(Clone)]
pub struct Aggregator {
    registry: Arc<Registry>,
    settings: AggregatorSettings,
    health: HealthBook,
    changes: Changes,
    cache: ResponseCache,
}

/// What one provider contributed to a page: matching records in its stream
/// order, each with the stream position just after it.
struct Run<T> {
    provider: ProviderId,
    items: Vec<(T, u64)>,
    total: Option<u64>,
    cache: CacheReport,
}

impl Aggregator {
    pub fn new(registry: Arc<Registry>, settings: AggregatorSettings) -> Self {
        Aggregator {
            registry,
            settings,
            health: HealthBook::default(),
            changes: Changes::default(),
            cache: ResponseCache::disabled(),
        }
    }

    /// The same aggregator announcing upstream changes on `changes` (shared
    /// with whoever else listens there). Call it before `with_cache`, which
    /// subscribes the cache to the aggregator's changes.
    pub fn with_changes(mut self, changes: Changes) -> Self {
        self.changes = changes;
        self.cache.listen_to(&self.changes);
        self
    }

    /// Where upstream changes are announced; caches subscribe here.
    pub fn changes(&self) -> &Changes {
        &self.changes
    }

    /// Tells every subscriber that `scope` of `provider`'s data changed
    /// upstream (`source` says who told us, for logs).
    pub async fn invalidate(&self, provider: &ProviderId, scope: ChangeScope, source: String) {
        self.changes
            .notify(Change {
                provider: provider.clone(),
                scope,
                source,
            })
            .await;
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn settings(&self) -> &AggregatorSettings {
        &self.settings
    }

    /// The same aggregator recording into `health` (e.g. one watching the
    /// circuit breakers and the throttle, [`HealthBook::watching`]).
    pub fn with_health(mut self, health: HealthBook) -> Self {
        self.health = health;
        self
    }

    /// What recent calls showed of each provider.
    pub fn health(&self) -> &HealthBook {
        &self.health
    }

    /// Lists records of kind `K` across providers, merged into one order.
    pub async fn list<K: ListKind>(
        &self,
        ctx: &CallContext,
        args: ListArgs<K::Filter, K::Order>,
        default_order: &[OrderKey<K::Order>],
    ) -> Result<Page<K::Item>> {
        let first = self.page_size(args.first)?;
        let order: Vec<OrderKey<K::Order>> = if args.order.is_empty() {
            default_order.to_vec()
        } else {
            args.order
        };
        let selected = self.registry.select(args.providers.as_deref())?;
        let explicit = args.providers.is_some();

        let mut errors = Vec::new();
        let mut providers = Vec::new();
        for provider in selected {
            let caps = provider.capabilities();
            let out_of_reach = caps.requires_principal && ctx.principal.is_none();
            if K::capabilities(caps).is_some() && (explicit || !out_of_reach) {
                providers.push(provider);
            } else if explicit {
                errors.push(Error::not_supported(K::OPERATION).with_provider(provider.id()));
            }
        }
        let provider_ids: Vec<&ProviderId> = providers.iter().map(|p| p.id()).collect();
        let query = fingerprint(&(K::OPERATION, &args.filter, &order, &provider_ids));
        let start = match &args.after {
            Some(raw) => Cursor::decode(raw, &query)?,
            None => Cursor::start(query),
        };

        // Read one record more than the page needs, to know whether more follow.
        let need = first as usize + 1;
        let reads = providers.iter().map(|provider| {
            let position = start.position(provider.id());
            let (filter, order) = (&args.filter, &order);
            // One span per provider of the fan-out, parent of its upstream calls.
            let span = tracing::info_span!("provider_call", provider = %provider.id(), operation = K::OPERATION);
            async move {
                self.read_run::<K>(provider.as_ref(), ctx, filter, order, position, need)
                    .await
                    .map_err(|e| e.with_provider(provider.id()))
            }
            .instrument(span)
        });
        let mut runs = Vec::new();
        for result in join_all(reads).await {
            match result {
                Ok(run) => runs.push(run),
                Err(error) => errors.push(error),
            }
        }

        let total_count = if errors.is_empty() {
            runs.iter().map(|r| r.total).sum::<Option<u64>>()
        } else {
            None
        };
        let mut cache = CacheReport::default();
        for run in &runs {
            cache.merge(&run.cache);
        }
        let (edges, has_next_page) = merge::<K>(runs, first as usize, &order, start.clone());
        Ok(Page {
            edges,
            has_next_page,
            has_previous_page: args.after.is_some(),
            total_count,
            errors,
            cache,
        })
    }

    fn page_size(&self, first: Option<i64>) -> Result<u32> {
        let max = self.settings.max_page_size;
        match first {
            None => Ok(self.settings.default_page_size.min(max)),
            Some(n) if n < 0 => Err(Error::invalid_input(
                "first",
                "`first` must not be negative",
            )),
            Some(n) if n > i64::from(max) => Err(Error::invalid_input(
                "first",
                format!("`first` may be at most {max}"),
            )),
            Some(n) => Ok(n as u32),
        }
    }

    /// Reads up to `need` matching records of one provider's stream from `position`.
    async fn read_run<K: ListKind>(
        &self,
        provider: &dyn Provider,
        ctx: &CallContext,
        filter: &K::Filter,
        order: &[OrderKey<K::Order>],
        position: u64,
        need: usize,
    ) -> Result<Run<K::Item>> {
        let caps = K::capabilities(provider.capabilities())
            .ok_or_else(|| Error::not_supported(K::OPERATION))?;
        let pushed_filter = K::restrict(filter, &caps.filters);
        let fully_pushed = K::filter_fields(filter)
            .iter()
            .all(|f| caps.filters.contains(f));
        let provider_id = provider.id().clone();

        if !caps.can_order_by(order) {
            return self
                .read_sorted_locally::<K>(
                    provider,
                    ctx,
                    filter,
                    pushed_filter,
                    order,
                    position,
                    need,
                )
                .await;
        }

        let mut items = Vec::new();
        let mut total = None;
        let mut cache = CacheReport::default();
        let mut offset = position;
        // With everything pushed down, every upstream record matches; otherwise
        // read in the platform's largest pages to skip non-matching ones quickly.
        let limit = if fully_pushed {
            need as u32
        } else {
            (need as u32).max(caps.max_page_size)
        };
        loop {
            let request = ListRequest {
                filter: pushed_filter.clone(),
                order: order.to_vec(),
                offset,
                limit,
            };
            let (slice, status) = self.fetch::<K>(provider, ctx, &request).await?;
            cache.record(&provider_id, status);
            if fully_pushed && total.is_none() {
                total = slice.total;
            }
            let fetched = slice.items.len() as u64;
            for (index, item) in (offset..).zip(slice.items) {
                if items.len() == need {
                    break;
                }
                if K::matches(filter, &item) {
                    items.push((item, index + 1));
                }
            }
            let exhausted =
                fetched < u64::from(limit) || slice.total.is_some_and(|t| offset + fetched >= t);
            if items.len() == need || exhausted {
                break;
            }
            offset += fetched;
        }
        Ok(Run {
            provider: provider_id,
            items,
            total,
            cache,
        })
    }

    /// For orders the platform cannot produce: read the whole pushed-filtered
    /// list, filter and sort it here; positions index the sorted list.
    #[allow(clippy::too_many_arguments)]
    async fn read_sorted_locally<K: ListKind>(
        &self,
        provider: &dyn Provider,
        ctx: &CallContext,
        filter: &K::Filter,
        pushed_filter: K::Filter,
        order: &[OrderKey<K::Order>],
        position: u64,
        need: usize,
    ) -> Result<Run<K::Item>> {
        let caps = K::capabilities(provider.capabilities())
            .ok_or_else(|| Error::not_supported(K::OPERATION))?;
        let chunk = caps.max_page_size.max(1);
        let request = |offset| ListRequest {
            filter: pushed_filter.clone(),
            order: Vec::new(),
            offset,
            limit: chunk,
        };
        let mut cache = CacheReport::default();
        let (first, status) = self.fetch::<K>(provider, ctx, &request(0)).await?;
        cache.record(provider.id(), status);
        let mut all = first.items;
        if all.len() as u64 == u64::from(chunk) {
            match first.total {
                // The size is known: ask for the remaining windows together.
                Some(total) => {
                    if total > self.settings.max_local_sort {
                        return Err(too_many_to_sort::<K>(self.settings.max_local_sort));
                    }
                    let requests: Vec<_> = (1..total.div_ceil(u64::from(chunk)))
                        .map(|n| request(n * u64::from(chunk)))
                        .collect();
                    let rest = requests.iter().map(|r| self.fetch::<K>(provider, ctx, r));
                    for (slice, status) in futures::future::try_join_all(rest).await? {
                        cache.record(provider.id(), status);
                        all.extend(slice.items);
                    }
                }
                None => loop {
                    if all.len() as u64 > self.settings.max_local_sort {
                        return Err(too_many_to_sort::<K>(self.settings.max_local_sort));
                    }
                    let (slice, status) = self
                        .fetch::<K>(provider, ctx, &request(all.len() as u64))
                        .await?;
                    cache.record(provider.id(), status);
                    let done = slice.items.len() < chunk as usize;
                    all.extend(slice.items);
                    if done {
                        break;
                    }
                },
            }
        }
        all.retain(|item| K::matches(filter, item));
        // The id breaks ties so the sorted list, and thus every position, is stable.
        all.sort_by(|a, b| {
            K::compare(a, b, order).then_with(|| K::id(a).native().cmp(K::id(b).native()))
        });
        let total = Some(all.len() as u64);
        let items = (position..)
            .zip(
                all.into_iter()
                    .skip(usize::try_from(position).unwrap_or(usize::MAX)),
            )
            .take(need)
            .map(|(index, item)| (item, index + 1))
            .collect();
        Ok(Run {
            provider: provider.id().clone(),
            items,
            total,
            cache,
        })
    }

    /// Marketplace loans across providers; newest first unless ordered otherwise.
    pub async fn loans(
        &self,
        ctx: &CallContext,
        args: ListArgs<LoanFilter, LoanOrderField>,
    ) -> Result<Page<Loan>> {
        self.list::<Loans>(ctx, args, &[OrderKey::desc(LoanOrderField::PublishedAt)])
            .await
    }

    /// One loan by global id, from the provider the id names.
    pub async fn loan(&self, ctx: &CallContext, id: &GlobalId) -> Result<Cached<Loan>> {
        let provider = self.provider_for(id)?;
        self.read_one(provider.as_ref(), Operation::Loan, ctx, id.native(), || {
            provider.loan(ctx, id.native())
        })
        .await
    }

    /// The principal's investments across providers; newest first unless ordered otherwise.
    pub async fn investments(
        &self,
        ctx: &CallContext,
        args: ListArgs<InvestmentFilter, InvestmentOrderField>,
    ) -> Result<Page<Investment>> {
        let newest_first = [OrderKey::desc(InvestmentOrderField::PurchasedAt)];
        self.list::<Investments>(ctx, args, &newest_first).await
    }

    /// One of the principal's investments by global id.
    pub async fn investment(&self, ctx: &CallContext, id: &GlobalId) -> Result<Cached<Investment>> {
        let provider = self.provider_for(id)?;
        self.read_one(
            provider.as_ref(),
            Operation::Investment,
            ctx,
            id.native(),
            || provider.investment(ctx, id.native()),
        )
        .await
    }

    /// The principal's portfolio per provider and currency, plus what failed.
    pub async fn portfolio(
        &self,
        ctx: &CallContext,
        providers: Option<&[String]>,
    ) -> Result<Cached<(Vec<PortfolioSummary>, Vec<Error>)>> {
        let selected: Vec<_> = self
            .registry
            .select(providers)?
            .into_iter()
            .filter(|p| p.capabilities().investments.is_some())
            .collect();
        let answers = join_all(selected.iter().map(|provider| async move {
            let summary = self
                .read(provider.as_ref(), Operation::Portfolio, ctx, &(), || {
                    provider.portfolio(ctx)
                })
                .await;
            match summary {
                Ok((found, status)) => Ok((found, CacheReport::single(provider.id(), status))),
                Err(e) if e.kind == ErrorKind::NotSupported => {
                    self.sum_investments(provider.as_ref(), ctx).await
                }
                Err(e) => Err(e),
            }
        }))
        .await;
        let mut summaries = Vec::new();
        let mut errors = Vec::new();
        let mut cache = CacheReport::default();
        for answer in answers {
            match answer {
                Ok((found, report)) => {
                    summaries.extend(found);
                    cache.merge(&report);
                }
                Err(error) => errors.push(error),
            }
        }
        Ok(Cached {
            value: (summaries, errors),
            cache,
        })
    }

    /// Reads every investment of a provider without a summary endpoint.
    async fn sum_investments(
        &self,
        provider: &dyn Provider,
        ctx: &CallContext,
    ) -> Result<(Vec<PortfolioSummary>, CacheReport)> {
        let run = self
            .read_run::<Investments>(
                provider,
                ctx,
                &InvestmentFilter::default(),
                &[],
                0,
                usize::try_from(self.settings.max_local_sort).unwrap_or(usize::MAX),
            )
            .await
            .map_err(|e| e.with_provider(provider.id()))?;
        let summaries = PortfolioSummary::from_investments(
            provider.id(),
            run.items.iter().map(|(investment, _)| investment),
        );
        Ok((summaries, run.cache))
    }

    /// Secondary-market offers across providers; newest first unless ordered otherwise.
    pub async fn offers(
        &self,
        ctx: &CallContext,
        args: ListArgs<OfferFilter, OfferOrderField>,
    ) -> Result<Page<Offer>> {
        let newest_first = [OrderKey::desc(OfferOrderField::ListedAt)];
        self.list::<Offers>(ctx, args, &newest_first).await
    }

    /// The principal's transfers across providers; newest first unless ordered otherwise.
    pub async fn transfers(
        &self,
        ctx: &CallContext,
        args: ListArgs<TransferFilter, TransferOrderField>,
    ) -> Result<Page<Transfer>> {
        let newest_first = [OrderKey::desc(TransferOrderField::CreatedAt)];
        self.list::<Transfers>(ctx, args, &newest_first).await
    }

    /// One transfer by global id.
    pub async fn transfer(&self, ctx: &CallContext, id: &GlobalId) -> Result<Cached<Transfer>> {
        let provider = self.provider_for(id)?;
        self.read_one(
            provider.as_ref(),
            Operation::Transfer,
            ctx,
            id.native(),
            || provider.transfer(ctx, id.native()),
        )
        .await
    }

    /// The provider a global id belongs to.
    pub fn provider_for(&self, id: &GlobalId) -> Result<&Arc<dyn Provider>> {
        self.registry.get(id.provider()).map_err(|_| {
            Error::new(
                ErrorKind::NotFound,
                format!("no provider `{}` is configured for id {id}", id.provider()),
            )
        })
    }
}

fn too_many_to_sort<K: ListKind>(limit: u64) -> Error {
    Error::invalid_input(
        "orderBy",
        format!(
            "this provider cannot order `{}` that way itself, and more than {limit} records match: narrow the filter or choose another order",
            K::OPERATION
        ),
    )
}

/// Merges the providers' runs into one order and takes `first` records. Ties
/// go to the provider listed first, so the merge is deterministic.
fn merge<K: ListKind>(
    runs: Vec<Run<K::Item>>,
    first: usize,
    order: &[OrderKey<K::Order>],
    mut cursor: Cursor,
) -> (Vec<Edge<K::Item>>, bool) {
    type Queue<T> = VecDeque<(T, u64)>;
    let mut runs: Vec<(ProviderId, Queue<K::Item>)> = runs
        .into_iter()
        .map(|run| (run.provider, run.items.into()))
        .collect();
    let mut edges = Vec::with_capacity(first);
    while edges.len() < first {
        let mut best: Option<(usize, &K::Item)> = None;
        for (index, (_, items)) in runs.iter().enumerate() {
            if let Some((item, _)) = items.front()
                && best.is_none_or(|(_, b)| K::compare(item, b, order) == Ordering::Less)
            {
                best = Some((index, item));
            }
        }
        let Some((index, _)) = best else { break };
        let (provider, items) = &mut runs[index];
        let Some((node, position)) = items.pop_front() else {
            break;
        };
        cursor.set_position(provider, position);
        edges.push(Edge {
            node,
            cursor: cursor.encode(),
        });
    }
    let has_next_page = runs.iter().any(|(_, items)| !items.is_empty());
    (edges, has_next_page)
}

#[cfg(test)]
mod tests;
