//! The list checks the loan, offer and transfer suites share, written once
//! over the aggregator's [`ListKind`] (how a kind of record is fetched,
//! filtered, ordered and identified).

use std::collections::HashSet;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use finmesh_core::aggregate::{Aggregator, ListArgs, ListKind, Loans, Offers, Page, Transfers};
use finmesh_core::query::OrderKey;
use finmesh_core::{CallContext, ListRequest, Provider, Result};

use crate::aggregator;

/// A kind of record the suites list.
#[async_trait]
pub(crate) trait Kind: ListKind<Filter: Default, Field: Debug> {
    /// What failure messages call the records.
    const NOUN: &'static str;

    /// The aggregator's own entry point for the kind: the suites check it as
    /// the gateway calls it, default order included.
    async fn page(
        aggregator: &Aggregator,
        ctx: &CallContext,
        args: ListArgs<Self::Filter, Self::Order>,
    ) -> Result<Page<Self::Item>>;
}

#[async_trait]
impl Kind for Loans {
    const NOUN: &'static str = "loans";

    async fn page(
        aggregator: &Aggregator,
        ctx: &CallContext,
        args: ListArgs<Self::Filter, Self::Order>,
    ) -> Result<Page<Self::Item>> {
        aggregator.loans(ctx, args).await
    }
}

#[async_trait]
impl Kind for Offers {
    const NOUN: &'static str = "offers";

    async fn page(
        aggregator: &Aggregator,
        ctx: &CallContext,
        args: ListArgs<Self::Filter, Self::Order>,
    ) -> Result<Page<Self::Item>> {
        aggregator.offers(ctx, args).await
    }
}

#[async_trait]
impl Kind for Transfers {
    const NOUN: &'static str = "transfers";

    async fn page(
        aggregator: &Aggregator,
        ctx: &CallContext,
        args: ListArgs<Self::Filter, Self::Order>,
    ) -> Result<Page<Self::Item>> {
        aggregator.transfers(ctx, args).await
    }
}

/// A sample filter on one field, built from values the data really has.
pub(crate) type Sample<K> = (<K as ListKind>::Field, <K as ListKind>::Filter);

/// Follows cursors to the end, asserting no record comes twice.
pub(crate) async fn walk<K: Kind>(
    aggregator: &Aggregator,
    ctx: &impl Fn() -> CallContext,
    filter: K::Filter,
    order: Vec<OrderKey<K::Order>>,
    page_size: i64,
) -> Vec<K::Item> {
    let mut args = ListArgs {
        filter,
        order,
        first: Some(page_size),
        after: None,
        providers: None,
    };
    let mut served = Vec::new();
    let mut seen = HashSet::new();
    loop {
        let page = K::page(aggregator, &ctx(), args.clone()).await.unwrap();
        assert!(page.errors.is_empty(), "provider failed: {:?}", page.errors);
        for edge in &page.edges {
            let id = K::id(&edge.node);
            assert!(seen.insert(id.clone()), "{id} served twice");
        }
        served.extend(page.edges.iter().map(|e| e.node.clone()));
        if !page.has_next_page {
            return served;
        }
        args.after = Some(
            page.end_cursor()
                .expect("a page with a next page has edges")
                .to_string(),
        );
    }
}

/// Native ids, as the simulators list them.
pub(crate) fn ids<K: Kind>(items: &[K::Item]) -> HashSet<String> {
    items
        .iter()
        .map(|item| K::id(item).native().to_string())
        .collect()
}

/// Native ids of the records of `all` that `filter` keeps: the brute-force answer.
pub(crate) fn matching_ids<K: Kind>(all: &[K::Item], filter: &K::Filter) -> HashSet<String> {
    all.iter()
        .filter(|item| K::matches(filter, item))
        .map(|item| K::id(item).native().to_string())
        .collect()
}

pub(crate) fn assert_in_order<K: Kind>(
    what: &str,
    served: &[K::Item],
    order: &[OrderKey<K::Order>],
) {
    for pair in served.windows(2) {
        assert_ne!(
            K::compare(&pair[0], &pair[1], order),
            std::cmp::Ordering::Greater,
            "{what}: {} comes before {} against the order",
            K::id(&pair[0]),
            K::id(&pair[1])
        );
    }
}

fn assert_same_as_brute_force<K: Kind>(
    what: &str,
    served: &[K::Item],
    all: &[K::Item],
    filter: &K::Filter,
    order: &[OrderKey<K::Order>],
) {
    assert_eq!(
        ids::<K>(served),
        matching_ids::<K>(all, filter),
        "{what}: wrong set of {}",
        K::NOUN
    );
    assert_in_order::<K>(what, served, order);
}

/// Walks the whole list through the aggregator in pages of `page_size`,
/// asserting it holds exactly the `expected` native ids; then reads the raw
/// provider list in windows of `window` (ordered by what of `window_order`
/// the platform sorts by) and asserts they tile it exactly. Returns the list.
pub(crate) async fn paging_visits_every_record_once<K: Kind>(
    provider: &Arc<dyn Provider>,
    ctx: &impl Fn() -> CallContext,
    expected: HashSet<String>,
    page_size: i64,
    window: u32,
    window_order: Vec<OrderKey<K::Order>>,
) -> Vec<K::Item> {
    let all = walk::<K>(
        &aggregator(provider),
        ctx,
        K::Filter::default(),
        vec![],
        page_size,
    )
    .await;
    assert_eq!(
        ids::<K>(&all),
        expected,
        "paging lost or invented {}",
        K::NOUN
    );

    let sortable = K::capabilities(provider.capabilities())
        .map(|c| c.orders.clone())
        .unwrap_or_default();
    let request = |offset| ListRequest {
        filter: K::Filter::default(),
        order: window_order
            .iter()
            .filter(|k| sortable.contains(&k.field))
            .copied()
            .collect(),
        offset,
        limit: window,
    };
    let mut tiled = Vec::new();
    let mut offset = 0;
    loop {
        let slice = K::fetch(provider.as_ref(), &ctx(), &request(offset))
            .await
            .unwrap();
        if let Some(total) = slice.total {
            assert_eq!(
                total as usize,
                all.len(),
                "the platform's total disagrees with paging"
            );
        }
        let fetched = slice.items.len();
        tiled.extend(slice.items);
        if fetched < window as usize {
            break;
        }
        offset += u64::from(window);
    }
    assert_eq!(
        tiled.len(),
        all.len(),
        "offset windows overlap or leave gaps"
    );
    assert_eq!(ids::<K>(&tiled), ids::<K>(&all));
    all
}

/// Each sample filter, then `combined` in small pages, served in `order`
/// exactly as brute force over `all` says.
pub(crate) async fn filters_match_brute_force<K: Kind>(
    provider: &Arc<dyn Provider>,
    ctx: &impl Fn() -> CallContext,
    all: &[K::Item],
    samples: Vec<Sample<K>>,
    combined: K::Filter,
    order: Vec<OrderKey<K::Order>>,
) {
    let aggregator = aggregator(provider);
    for (field, filter) in samples {
        let served = walk::<K>(&aggregator, ctx, filter.clone(), order.clone(), 100).await;
        assert_same_as_brute_force::<K>(
            &format!("filter on {field:?}"),
            &served,
            all,
            &filter,
            &order,
        );
    }
    let served = walk::<K>(&aggregator, ctx, combined.clone(), order.clone(), 7).await;
    assert_same_as_brute_force::<K>("combined filter", &served, all, &combined, &order);
}

/// Every field of `fields` each way, then `mixed`, served under `filter`
/// exactly as brute force over `all` says.
pub(crate) async fn orders_match_brute_force<K: Kind>(
    provider: &Arc<dyn Provider>,
    ctx: &impl Fn() -> CallContext,
    all: &[K::Item],
    filter: K::Filter,
    fields: &[K::Order],
    mixed: Vec<OrderKey<K::Order>>,
) {
    let aggregator = aggregator(provider);
    let mut orders: Vec<Vec<OrderKey<K::Order>>> = fields
        .iter()
        .flat_map(|f| [vec![OrderKey::asc(*f)], vec![OrderKey::desc(*f)]])
        .collect();
    orders.push(mixed);
    for order in orders {
        let served = walk::<K>(&aggregator, ctx, filter.clone(), order.clone(), 100).await;
        assert_same_as_brute_force::<K>(&format!("order {order:?}"), &served, all, &filter, &order);
    }
}

/// A pushed-down filter must be evaluated by the platform: the adapter's raw
/// answer holds only matching records, and the platform's total counts only them.
pub(crate) async fn pushed_down_filters_are_evaluated_upstream<K: Kind>(
    provider: &Arc<dyn Provider>,
    ctx: &impl Fn() -> CallContext,
    all: &[K::Item],
    samples: Vec<Sample<K>>,
) {
    let caps = K::capabilities(provider.capabilities())
        .unwrap_or_else(|| panic!("{} are supported", K::NOUN));
    for (field, filter) in samples {
        if !caps.filters.contains(&field) {
            continue;
        }
        let expected = all.iter().filter(|item| K::matches(&filter, item)).count();
        let request = ListRequest {
            filter: filter.clone(),
            order: vec![],
            offset: 0,
            limit: u32::try_from(all.len()).unwrap(),
        };
        let slice = K::fetch(provider.as_ref(), &ctx(), &request).await.unwrap();
        assert!(
            slice.items.iter().all(|item| K::matches(&filter, item)),
            "filter on {field:?} is declared pushed down but the platform answered non-matching {}",
            K::NOUN
        );
        assert_eq!(
            slice.items.len(),
            expected,
            "filter on {field:?}: wrong number of {}",
            K::NOUN
        );
        if let Some(total) = slice.total {
            assert_eq!(total as usize, expected, "filter on {field:?}: wrong total");
        }
    }
}
