//! The secondary-market checks: the same behaviour the loan checks ask of
//! marketplaces, for [`Offer`]s.

use std::sync::Arc;

use finmesh_core::aggregate::Offers;
use finmesh_core::model::Offer;
use finmesh_core::query::{Bounds, OfferFilter, OfferFilterField, OfferOrderField, OrderKey};
use finmesh_core::{CallContext, Provider};
use rust_decimal::Decimal;

use crate::{Caller, Simulator, lists};

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
    let ctx = || caller.ctx();
    let all = paging_visits_every_offer_once(&provider, &ctx, simulator).await;
    assert!(!all.is_empty(), "the simulator's secondary market is empty");
    lists::filters_match_brute_force::<Offers>(
        &provider,
        &ctx,
        &all,
        sample_filters(&all),
        combined_filter(&all),
        vec![OrderKey::desc(OfferOrderField::PrincipalRemaining)],
    )
    .await;
    orders_match_brute_force(&provider, &ctx, &all).await;
    lists::pushed_down_filters_are_evaluated_upstream::<Offers>(
        &provider,
        &ctx,
        &all,
        sample_filters(&all),
    )
    .await;
    assert_eq!(
        simulator.throttled(),
        0,
        "the adapter made requests the platform refused with 429"
    );
}

async fn paging_visits_every_offer_once(
    provider: &Arc<dyn Provider>,
    ctx: &impl Fn() -> CallContext,
    simulator: &dyn Simulator,
) -> Vec<Offer> {
    let all = lists::paging_visits_every_record_once::<Offers>(
        provider,
        ctx,
        simulator.offer_ids(),
        97,
        333,
        vec![OrderKey::desc(OfferOrderField::ListedAt)],
    )
    .await;
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

/// Several sample filters at once (used in small pages).
fn combined_filter(all: &[Offer]) -> OfferFilter {
    sample_filters(all)
        .into_iter()
        .fold(OfferFilter::default(), |mut acc, (_, f)| {
            acc.interest_rate = acc.interest_rate.or(f.interest_rate);
            acc.ratings = acc.ratings.or(f.ratings);
            acc.listed_at = acc.listed_at.or(f.listed_at);
            acc.currency = acc.currency.or(f.currency);
            acc
        })
}

async fn orders_match_brute_force(
    provider: &Arc<dyn Provider>,
    ctx: &impl Fn() -> CallContext,
    all: &[Offer],
) {
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
    let mixed = vec![
        OrderKey::desc(OfferOrderField::Discount),
        OrderKey::asc(OfferOrderField::Price),
    ];
    lists::orders_match_brute_force::<Offers>(provider, ctx, all, filter, &fields, mixed).await;
}
