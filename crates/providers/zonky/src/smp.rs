//! The secondary marketplace: `GET /smp/investments` (public, no token) as
//! unified [`Offer`]s.
//!
//! The document's table lets the listing sort and filter by `rating`,
//! `datePublished`, `deadline`, `remainingInstalmentCount`,
//! `remainingPrincipal`, `purpose` and `incomeType` (and filter by
//! `loanHealthInfo`); of the unified fields that pushes down the rating and the
//! listing time, and orders by listing time and remaining principal. Offers of
//! loans past due are left out unless `delinquent=true`: the adapter always
//! sends it, so the unified market is the whole market (a caller narrows it
//! with filters, not by a platform default).
//!
//! The document names `SMPInvestment` without defining it. It is read
//! leniently: only `id`, `remainingPrincipal` and `price` are required; the
//! rest (`loanId`, `discount`, `datePublished`, `rating`, `interestRate`,
//! `currency`, and a `loan` object with `id`, `name`, `rating`,
//! `interestRate`, `currency`) is used when present. `discount` is a fraction
//! as in `smpSellInfo`; without it, `1 - price / remainingPrincipal`.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use chrono_tz::Europe::Prague;
use finmesh_core::model::Offer;
use finmesh_core::query::{Bounds, Direction, OfferFilter, OfferOrderField, OrderKey};
use finmesh_core::time::parse_timestamp;
use finmesh_core::{Currency, EntityKind, Error, GlobalId, Money, ProviderId};
use rust_decimal::Decimal;
use serde::Deserialize;

use crate::query::ListParams;

/// The secondary marketplace's listing.
pub const ENDPOINT: &str = "/smp/investments";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireOfferLoan {
    id: Option<serde_json::Value>,
    #[serde(alias = "title")]
    name: Option<String>,
    rating: Option<String>,
    interest_rate: Option<Decimal>,
    currency: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireOffer {
    id: serde_json::Value,
    loan_id: Option<serde_json::Value>,
    remaining_principal: Decimal,
    price: Decimal,
    discount: Option<Decimal>,
    date_published: Option<String>,
    rating: Option<String>,
    interest_rate: Option<Decimal>,
    currency: Option<String>,
    loan: Option<WireOfferLoan>,
}

/// A whole-number id, sent as a number or as digits.
fn numeric_id(value: &serde_json::Value) -> Option<String> {
    let text = match value {
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::String(s) => s.trim().to_string(),
        _ => return None,
    };
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())).then_some(text)
}

/// Maps one `SMPInvestment`.
pub fn offer_from_json(provider: &ProviderId, raw: serde_json::Value) -> Result<Offer, Error> {
    let wire: WireOffer = serde_json::from_value(raw.clone())
        .map_err(|e| Error::upstream_protocol(format!("unexpected SMP investment JSON: {e}")))?;
    let id = numeric_id(&wire.id)
        .ok_or_else(|| Error::upstream_protocol("an SMP investment's id is not a number"))?;
    let loan = wire.loan.as_ref();
    let currency = match wire
        .currency
        .as_deref()
        .or_else(|| loan.and_then(|l| l.currency.as_deref()))
    {
        Some(code) => code
            .parse::<Currency>()
            .map_err(|_| Error::upstream_protocol(format!("unknown currency {code:?}")))?,
        // Zonky trades in CZK only (its document's currency enum).
        None => Currency::CZK,
    };
    let loan_id = wire
        .loan_id
        .as_ref()
        .or_else(|| loan.and_then(|l| l.id.as_ref()))
        .and_then(numeric_id)
        .map(|native| GlobalId::new(provider.clone(), EntityKind::Loan, native));
    let discount = match wire.discount {
        Some(discount) => discount,
        None if wire.remaining_principal.is_zero() => Decimal::ZERO,
        None => Decimal::ONE - wire.price / wire.remaining_principal,
    };
    Ok(Offer {
        id: GlobalId::new(provider.clone(), EntityKind::Offer, id),
        loan_id,
        loan_name: loan.and_then(|l| l.name.clone()),
        principal_remaining: Money::new(wire.remaining_principal, currency),
        price: Money::new(wire.price, currency),
        discount,
        interest_rate: wire
            .interest_rate
            .or_else(|| loan.and_then(|l| l.interest_rate)),
        rating: wire.rating.or_else(|| loan.and_then(|l| l.rating.clone())),
        listed_at: wire
            .date_published
            .map(|t| parse_timestamp(&t, Prague))
            .transpose()?,
        raw: Arc::new(raw),
    })
}

/// A refused filter names the offer's field (`invalid_filter` on
/// `datePublished` is the listing time here, not a loan's publication).
pub fn offer_field(mut error: Error) -> Error {
    if error.field.as_deref() == Some("filter.publishedAt") {
        error.field = Some("filter.listedAt".to_string());
    }
    error
}

/// The listing's parameters for the pushed-down part of a query.
pub fn params(filter: &OfferFilter, order: &[OrderKey<OfferOrderField>]) -> ListParams {
    let mut filters = vec![("delinquent".to_string(), "true".to_string())];
    if let Some(ratings) = &filter.ratings {
        filters.push((
            "rating__in".to_string(),
            serde_json::to_string(ratings).unwrap_or_default(),
        ));
    }
    if let Some(bounds) = &filter.listed_at {
        push_instants(&mut filters, "datePublished", bounds);
    }
    let keys: Vec<String> = order
        .iter()
        .map(|key| {
            let field = match key.field {
                OfferOrderField::ListedAt => "datePublished",
                OfferOrderField::PrincipalRemaining => "remainingPrincipal",
                // Not sortable on Zonky; the capabilities keep these from being pushed.
                OfferOrderField::Price => "price",
                OfferOrderField::Discount => "discount",
                OfferOrderField::InterestRate => "interestRate",
            };
            match key.direction {
                Direction::Asc => field.to_string(),
                Direction::Desc => format!("-{field}"),
            }
        })
        .collect();
    ListParams {
        filters,
        order: (!keys.is_empty()).then(|| keys.join(",")),
    }
}

/// Zonky's times have milliseconds: a bound finer than that becomes the
/// nearest inclusive millisecond, so the pushed filter is exact.
fn push_instants(filters: &mut Vec<(String, String)>, field: &str, bounds: &Bounds<DateTime<Utc>>) {
    let ms = TimeDelta::milliseconds(1);
    let floor =
        |at: DateTime<Utc>| DateTime::from_timestamp_millis(at.timestamp_millis()).unwrap_or(at);
    let ceil = |at: DateTime<Utc>| {
        let down = floor(at);
        if down == at { at } else { down + ms }
    };
    let lo = [bounds.gte.map(ceil), bounds.gt.map(|v| floor(v) + ms)]
        .into_iter()
        .flatten()
        .max();
    let hi = [bounds.lte.map(floor), bounds.lt.map(|v| ceil(v) - ms)]
        .into_iter()
        .flatten()
        .min();
    let format = |at: DateTime<Utc>| at.to_rfc3339_opts(SecondsFormat::Millis, false);
    if let Some(lo) = lo {
        filters.push((format!("{field}__gte"), format(lo)));
    }
    if let Some(hi) = hi {
        filters.push((format!("{field}__lte"), format(hi)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn maps_an_offer_leniently() {
        let raw: serde_json::Value = serde_json::from_str(
            r#"{"id": 8000123, "loanId": 123456, "remainingPrincipal": 812.34,
                "discount": 0.05, "price": 771.72,
                "datePublished": "2024-03-28T09:12:03.456+01:00", "rating": "AA",
                "interestRate": 0.0799, "currency": "CZK",
                "loan": {"id": 123456, "name": "Auto", "rating": "AA"}}"#,
        )
        .unwrap();
        let provider = ProviderId::new("zonky").unwrap();
        let offer = offer_from_json(&provider, raw).unwrap();
        assert_eq!(offer.id.to_string(), "zonky:offer:8000123");
        assert_eq!(offer.loan_id.unwrap().to_string(), "zonky:loan:123456");
        assert_eq!(offer.price.amount.to_string(), "771.72");
        assert_eq!(offer.discount.to_string(), "0.05");
        assert_eq!(offer.loan_name.as_deref(), Some("Auto"));
        assert_eq!(
            offer.listed_at.unwrap().to_rfc3339(),
            "2024-03-28T08:12:03.456+00:00"
        );

        let bare = serde_json::json!({"id": "42", "remainingPrincipal": 200, "price": 150});
        let offer = offer_from_json(&provider, bare).unwrap();
        assert_eq!(offer.discount.to_string(), "0.25");
        assert_eq!(offer.currency(), Currency::CZK);
        assert_eq!(offer.listed_at, None);

        for bad in [
            serde_json::json!({"remainingPrincipal": 200, "price": 150}),
            serde_json::json!({"id": 1, "price": 150}),
            serde_json::json!({"id": "x", "remainingPrincipal": 200, "price": 150}),
        ] {
            let err = offer_from_json(&provider, bad).unwrap_err();
            assert_eq!(err.code(), "UPSTREAM_PROTOCOL_ERROR");
        }
    }

    #[test]
    fn filters_and_orders_become_parameters() {
        let at = Utc.timestamp_opt(1_711_613_523, 456_500_000).unwrap();
        let filter = OfferFilter {
            ratings: Some(vec!["AA".into(), "B".into()]),
            listed_at: Some(Bounds {
                gt: Some(at),
                lt: Some(at + TimeDelta::seconds(1)),
                ..Default::default()
            }),
            ..Default::default()
        };
        let params = params(
            &filter,
            &[
                OrderKey::desc(OfferOrderField::ListedAt),
                OrderKey::asc(OfferOrderField::PrincipalRemaining),
            ],
        );
        let pairs: Vec<(&str, &str)> = params
            .filters
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("delinquent", "true"),
                ("rating__in", r#"["AA","B"]"#),
                ("datePublished__gte", "2024-03-28T08:12:03.457+00:00"),
                ("datePublished__lte", "2024-03-28T08:12:04.456+00:00"),
            ]
        );
        assert_eq!(
            params.order.as_deref(),
            Some("-datePublished,remainingPrincipal")
        );
    }
}
