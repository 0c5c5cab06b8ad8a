//! The secondary-market checks: the same behaviour the loan checks ask of
//! marketplaces, for [`Offer`]s.

use std::collections::HashSet;
use std::sync::Arc;

use finmesh_core::aggregate::{Aggregator, ListArgs};
use finmesh_core::model::Offer;
use finmesh_core::query::{
    Bounds, OfferFilter, OfferFilterField, OfferOrderField, OrderKey, compare_offers,
};
use finmesh_core::{ListRequest, Provider};
use rust_decimal::Decimal;

use crate::{Caller, Simulator, aggregator};

/// Runs every offer check against `provider`, which talks to `simulator`
/// (whose [`Simulator::offer_ids`] lists the market).
///
/// Nothing here pauses throttle buckets, so it may run before [`crate::check_loans`].
pub async fn check_offers(provider: Arc<dyn Provider>, simulator: &dyn Simulator) {
    assert!(
        provider.capabilities().offers.is_some(),
        "{} declares no secondary market",
        provider.id()
    );
    let caller = Caller::of(simulator);
    let all = paging_visits_every_offer_once(&provider, &caller, simulator).await;
    assert!(!all.is_empty(), "the simulator's secondary market is empty");
    filters_match_brute_force(&provider, &caller, &all).await;
    orders_match_brute_force(&provider, &caller, &all).await;
    pushed_down_filters_are_evaluated_upstream(&provider, &caller, &all).await;
    assert_eq!(
        simulator.throttled(),
        0,
        "the adapter made requests the platform refused with 429"
    );
}

/// Follows cursors to the end, asserting no offer comes twice.
async fn walk(
    aggregator: &Aggregator,
    caller: &Caller,
    filter: OfferFilter,
    order: Vec<OrderKey<OfferOrderField>>,
    page_size: i64,
) -> Vec<Offer> {
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
        let page = aggregator
            .offers(&caller.ctx(), args.clone())
            .await
            .unwrap();
        assert!(page.errors.is_empty(), "provider failed: {:?}", page.errors);
        for edge in &page.edges {
            assert!(
                seen.insert(edge.node.id.clone()),
                "{} served twice",
                edge.node.id
            );
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

fn ids(offers: &[Offer]) -> HashSet<String> {
    offers.iter().map(|o| o.id.native().to_string()).collect()
}

fn offer_orders(provider: &Arc<dyn Provider>) -> Vec<OfferOrderField> {
    provider
        .capabilities()
        .offers
        .as_ref()
        .map(|c| c.orders.clone())
        .unwrap_or_default()
}

async fn paging_visits_every_offer_once(
    provider: &Arc<dyn Provider>,
    caller: &Caller,
    simulator: &dyn Simulator,
) -> Vec<Offer> {
    let all = walk(
        &aggregator(provider),
        caller,
        OfferFilter::default(),
        vec![],
        97,
    )
    .await;
    assert_eq!(
        ids(&all),
        simulator.offer_ids(),
        "paging lost or invented offers"
    );
    for offer in &all {
        assert_eq!(
            offer.provider(),
            provider.id(),
            "{} has a foreign id",
            offer.id
        );
        assert_eq!(
            offer.principal_remaining.currency, offer.price.currency,
            "{}: price and principal in different currencies",
            offer.id
        );
    }

    // Windows of the raw provider list tile the whole list exactly.
    let mut tiled = Vec::new();
    let mut offset = 0;
    loop {
        let request = ListRequest {
            filter: OfferFilter::default(),
            order: vec![OrderKey::desc(OfferOrderField::ListedAt)]
                .into_iter()
                .filter(|k| offer_orders(provider).contains(&k.field))
                .collect(),
            offset,
            limit: 333,
        };
        let slice = provider.offers(&caller.ctx(), &request).await.unwrap();
        if let Some(total) = slice.total {
            assert_eq!(
                total as usize,
                all.len(),
                "the platform's total disagrees with paging"
            );
        }
        let fetched = slice.items.len();
        tiled.extend(slice.items);
        if fetched < 333 {
            break;
        }
        offset += 333;
    }
    assert_eq!(
        tiled.len(),
        all.len(),
        "offset windows overlap or leave gaps"
    );
    assert_eq!(ids(&tiled), ids(&all));
    all
}

fn median<T: Ord + Copy>(mut values: Vec<T>) -> Option<T> {
    values.sort();
    values.get(values.len() / 2).copied()
}

/// One filter per field, built from values the data really has.
fn sample_filters(all: &[Offer]) -> Vec<(OfferFilterField, OfferFilter)> {
    let rate = median(all.iter().filter_map(|o| o.interest_rate).collect());
    let price = median(all.iter().map(|o| o.price.amount).collect());
    let listed = median(all.iter().filter_map(|o| o.listed_at).collect());
    let mut ratings: Vec<String> = all.iter().filter_map(|o| o.rating.clone()).collect();
    ratings.sort();
    ratings.dedup();
    let mut filters = vec![
        (
            OfferFilterField::Price,
            OfferFilter {
                price: Some(Bounds {
                    lt: price,
                    ..Default::default()
                }),
                ..Default::default()
            },
        ),
        (
            OfferFilterField::Discount,
            OfferFilter {
                // Discounted offers, and not absurdly so.
                discount: Some(Bounds {
                    gt: Some(Decimal::ZERO),
                    lte: Some(Decimal::new(5, 1)),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ),
        (
            OfferFilterField::Rating,
            OfferFilter {
                ratings: Some(ratings.iter().step_by(2).cloned().collect()),
                ..Default::default()
            },
        ),
        (
            OfferFilterField::Currency,
            OfferFilter {
                currency: Some(all[0].currency()),
                ..Default::default()
            },
        ),
    ];
    if let Some(rate) = rate {
        filters.push((
            OfferFilterField::InterestRate,
            OfferFilter {
                interest_rate: Some(Bounds {
                    gte: Some(rate),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ));
    }
    if let Some(listed) = listed {
        filters.push((
            OfferFilterField::ListedAt,
            OfferFilter {
                listed_at: Some(Bounds {
                    gte: Some(listed),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ));
    }
    filters
}

fn assert_same_as_brute_force(
    what: &str,
    served: &[Offer],
    all: &[Offer],
    filter: &OfferFilter,
    order: &[OrderKey<OfferOrderField>],
) {
    let expected: HashSet<String> = all
        .iter()
        .filter(|o| filter.matches(o))
        .map(|o| o.id.native().to_string())
        .collect();
    assert_eq!(ids(served), expected, "{what}: wrong set of offers");
    for pair in served.windows(2) {
        assert_ne!(
            compare_offers(&pair[0], &pair[1], order),
            std::cmp::Ordering::Greater,
            "{what}: {} comes before {} against the order",
            pair[0].id,
            pair[1].id
        );
    }
}

async fn filters_match_brute_force(provider: &Arc<dyn Provider>, caller: &Caller, all: &[Offer]) {
    let aggregator = aggregator(provider);
    let order = vec![OrderKey::desc(OfferOrderField::PrincipalRemaining)];
    for (field, filter) in sample_filters(all) {
        let served = walk(&aggregator, caller, filter.clone(), order.clone(), 100).await;
        assert_same_as_brute_force(
            &format!("filter on {field:?}"),
            &served,
            all,
            &filter,
            &order,
        );
    }
    // Several at once, in small pages.
    let combined =
        sample_filters(all)
            .into_iter()
            .fold(OfferFilter::default(), |mut acc, (_, f)| {
                acc.interest_rate = acc.interest_rate.or(f.interest_rate);
                acc.ratings = acc.ratings.or(f.ratings);
                acc.listed_at = acc.listed_at.or(f.listed_at);
                acc.currency = acc.currency.or(f.currency);
                acc
            });
    let served = walk(&aggregator, caller, combined.clone(), order.clone(), 7).await;
    assert_same_as_brute_force("combined filter", &served, all, &combined, &order);
}

async fn orders_match_brute_force(provider: &Arc<dyn Provider>, caller: &Caller, all: &[Offer]) {
    let aggregator = aggregator(provider);
    let filter = OfferFilter {
        discount: Some(Bounds {
            gte: Some(Decimal::new(-1, 0)),
            ..Default::default()
        }),
        ..Default::default()
    };
    let fields = [
        OfferOrderField::ListedAt,
        OfferOrderField::Price,
        OfferOrderField::Discount,
        OfferOrderField::InterestRate,
        OfferOrderField::PrincipalRemaining,
    ];
    let mut orders: Vec<Vec<OrderKey<OfferOrderField>>> = fields
        .iter()
        .flat_map(|f| [vec![OrderKey::asc(*f)], vec![OrderKey::desc(*f)]])
        .collect();
    orders.push(vec![
        OrderKey::desc(OfferOrderField::Discount),
        OrderKey::asc(OfferOrderField::Price),
    ]);
    for order in orders {
        let served = walk(&aggregator, caller, filter.clone(), order.clone(), 100).await;
        assert_same_as_brute_force(&format!("order {order:?}"), &served, all, &filter, &order);
    }
}

/// A pushed-down filter must be evaluated by the platform: the adapter's raw
/// answer holds only matching offers, and the platform's total counts only them.
async fn pushed_down_filters_are_evaluated_upstream(
    provider: &Arc<dyn Provider>,
    caller: &Caller,
    all: &[Offer],
) {
    let caps = provider
        .capabilities()
        .offers
        .clone()
        .expect("offers are supported");
    for (field, filter) in sample_filters(all) {
        if !caps.filters.contains(&field) {
            continue;
        }
        let expected = all.iter().filter(|o| filter.matches(o)).count();
        let request = ListRequest {
            filter: filter.clone(),
            order: vec![],
            offset: 0,
            limit: u32::try_from(all.len()).unwrap(),
        };
        let slice = provider.offers(&caller.ctx(), &request).await.unwrap();
        assert!(
            slice.items.iter().all(|o| filter.matches(o)),
            "filter on {field:?} is declared pushed down but the platform answered non-matching offers"
        );
        assert_eq!(
            slice.items.len(),
            expected,
            "filter on {field:?}: wrong number of offers"
        );
        if let Some(total) = slice.total {
            assert_eq!(total as usize, expected, "filter on {field:?}: wrong total");
        }
    }
}
