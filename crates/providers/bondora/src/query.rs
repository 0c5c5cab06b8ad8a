//! Unified filters in Bondora's terms: the query parameters of the reference's
//! request objects (`AuctionRequest`, `MyInvestmentsRequest`,
//! `SecondMarketRequest`), named as its swagger and the clients generated
//! from it send them (`request.interestMin`, collections repeated:
//! `request.ratings=A&request.ratings=B`). Bondora sorts nothing on request.
//!
//! Bondora's ranges are inclusive (`…Min`, `…Max`, `…From`, `…To`); a strict
//! unified bound becomes the nearest inclusive one on the grid the values live
//! on, so that a pushed filter is exact:
//!
//! | values | grid |
//! |---|---|
//! | timestamps | 100 ns (.NET ticks: the document's seven fractional digits) |
//! | months (`LoanDuration`) | 1 |
//! | auction amounts (`SumMin`/`SumMax` are integers in the reference) | 1 EUR: Bondora's applied amounts are whole euros |
//! | percentages and other amounts (parameters typed `double`) | 10⁻⁶ |
//!
//! Every function answers `None` when no record of Bondora's can match (the
//! adapter then answers an empty list without asking).

use chrono::{DateTime, TimeDelta, Utc};
use finmesh_core::model::InvestmentStatus;
use finmesh_core::query::{Bounds, InvestmentFilter, LoanFilter, OfferFilter};
use rust_decimal::Decimal;

use crate::wire::{CURRENCY, RATINGS, status_codes};

pub(crate) type Params = Vec<(String, String)>;

/// The longest loan Bondora lends, in months (the reference's `Terms`:
/// "Loan length: 3, 9, 12, 18, 24, 36, 48, 60 months"). A term range is sent
/// as the list of its months, so it needs an upper end.
pub const MAX_TERM_MONTHS: u32 = 60;

/// Bondora's parameter names and the unified fields they carry, to name the
/// field of a 400 answer.
const FIELDS: &[(&str, &str)] = &[
    ("interestMin", "filter.interestRate"),
    ("interestMax", "filter.interestRate"),
    ("terms", "filter.termMonths"),
    ("sumMin", "filter.amount"),
    ("sumMax", "filter.amount"),
    ("ratings", "filter.ratings"),
    ("countries", "filter.country"),
    ("listedOnUTCFrom", "filter.publishedAt"),
    ("listedOnUTCTo", "filter.publishedAt"),
    ("purchaseDateFrom", "filter.purchasedAt"),
    ("purchaseDateTo", "filter.purchasedAt"),
    ("principalMin", "filter.principalUnpaid"),
    ("principalMax", "filter.principalUnpaid"),
    ("loanStatusCode", "filter.statuses"),
    ("salesStatus", "filter.statuses"),
    ("priceMin", "filter.price"),
    ("priceMax", "filter.price"),
    ("listedOnDateFrom", "filter.listedAt"),
    ("listedOnDateTo", "filter.listedAt"),
];

/// The unified field behind a parameter Bondora's message names
/// (`request.interestMin: The value 'x' is not valid`).
pub(crate) fn unified_field_for_message(message: &str) -> Option<String> {
    let lower = message.to_ascii_lowercase();
    FIELDS
        .iter()
        // Longest names first, so `listedOnUTCFrom` is not read as another.
        .filter(|(param, _)| {
            let param = param.to_ascii_lowercase();
            lower.contains(&format!("request.{param}")) || lower.starts_with(&param)
        })
        .max_by_key(|(param, _)| param.len())
        .map(|(_, field)| (*field).to_string())
}

fn push(params: &mut Params, name: &str, value: impl Into<String>) {
    params.push((format!("request.{name}"), value.into()));
}

/// `GET /api/v1/auctions`.
pub(crate) fn auction_params(filter: &LoanFilter) -> Option<Params> {
    let mut params = Params::new();
    if filter.currency.is_some_and(|c| c != CURRENCY) || filter.insured.is_some() {
        // Everything is in euros and nothing is insured.
        return None;
    }
    if let Some(bounds) = &filter.interest_rate {
        percent_range(&mut params, "interestMin", "interestMax", bounds)?;
    }
    if let Some(bounds) = &filter.term_months {
        let lo = [Some(1), bounds.gte, bounds.gt.map(|v| v.saturating_add(1))]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(1);
        let hi = [
            Some(MAX_TERM_MONTHS),
            bounds.lte,
            bounds
                .lt
                .map(|v| v.checked_sub(1))
                .unwrap_or(Some(MAX_TERM_MONTHS)),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(MAX_TERM_MONTHS);
        if bounds.lt == Some(0) || lo > hi {
            return None;
        }
        // Every term Bondora lends: no condition worth sending.
        if (lo, hi) != (1, MAX_TERM_MONTHS) {
            for months in lo..=hi {
                push(&mut params, "terms", months.to_string());
            }
        }
    }
    if let Some(bounds) = &filter.amount {
        let (lo, hi) = grid_range(bounds, 0)?;
        let int = |d: Decimal| i32::try_from(d).ok();
        if let Some(lo) = lo {
            if lo > Decimal::from(i32::MAX) {
                return None;
            }
            if let Some(lo) = int(lo) {
                push(&mut params, "sumMin", lo.to_string());
            }
        }
        if let Some(hi) = hi {
            if hi < Decimal::from(i32::MIN) {
                return None;
            }
            if let Some(hi) = int(hi) {
                push(&mut params, "sumMax", hi.to_string());
            }
        }
    }
    if let Some(ratings) = &filter.ratings {
        ratings_param(&mut params, ratings)?;
    }
    if let Some(country) = &filter.country {
        // Bondora answers ISO codes in upper case; the unified filter compares exactly.
        let iso = country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase());
        if !iso {
            return None;
        }
        push(&mut params, "countries", country.clone());
    }
    if let Some(bounds) = &filter.published_at {
        time_range(&mut params, "listedOnUTCFrom", "listedOnUTCTo", bounds)?;
    }
    Some(params)
}

/// `GET /api/v1/account/investments`: one parameter set per list to read, in
/// order. Bondora lists the loan parts still held unless `SalesStatus` asks
/// for others ("NULL: all active"), so sold parts are a second list, read when
/// the filter asks for the `SOLD` status.
pub(crate) fn investment_params(filter: &InvestmentFilter) -> Option<Vec<Params>> {
    if filter.currency.is_some_and(|c| c != CURRENCY) {
        return None;
    }
    let mut base = Params::new();
    if let Some(bounds) = &filter.purchased_at {
        time_range(&mut base, "purchaseDateFrom", "purchaseDateTo", bounds)?;
    }
    if let Some(bounds) = &filter.principal_unpaid {
        decimal_range(&mut base, "principalMin", "principalMax", bounds)?;
    }
    if let Some(bounds) = &filter.interest_rate {
        percent_range(&mut base, "interestMin", "interestMax", bounds)?;
    }
    let Some(statuses) = &filter.statuses else {
        return Some(vec![base]);
    };
    let mut codes: Vec<i64> = statuses.iter().flat_map(status_codes).collect();
    codes.sort_unstable();
    codes.dedup();
    let mut lists = Vec::new();
    if !codes.is_empty() {
        let mut held = base.clone();
        for code in codes {
            push(&mut held, "loanStatusCode", code.to_string());
        }
        lists.push(held);
    }
    if statuses.contains(&InvestmentStatus::Sold) {
        let mut sold = base;
        push(&mut sold, "salesStatus", "1");
        lists.push(sold);
    }
    (!lists.is_empty()).then_some(lists)
}

/// `GET /api/v1/secondarymarket`.
pub(crate) fn offer_params(filter: &OfferFilter) -> Option<Params> {
    if filter.currency.is_some_and(|c| c != CURRENCY) {
        return None;
    }
    let mut params = Params::new();
    if let Some(bounds) = &filter.interest_rate {
        percent_range(&mut params, "interestMin", "interestMax", bounds)?;
    }
    if let Some(bounds) = &filter.price {
        decimal_range(&mut params, "priceMin", "priceMax", bounds)?;
    }
    if let Some(ratings) = &filter.ratings {
        ratings_param(&mut params, ratings)?;
    }
    if let Some(bounds) = &filter.listed_at {
        time_range(&mut params, "listedOnDateFrom", "listedOnDateTo", bounds)?;
    }
    Some(params)
}

/// Only Bondora's own ratings are sent (it refuses others); a rating it does
/// not have matches nothing.
fn ratings_param(params: &mut Params, ratings: &[String]) -> Option<()> {
    let known: Vec<&str> = RATINGS
        .iter()
        .copied()
        .filter(|r| ratings.iter().any(|wanted| wanted == r))
        .collect();
    if known.is_empty() {
        return None;
    }
    for rating in known {
        push(params, "ratings", rating);
    }
    Some(())
}

/// Fractions as Bondora's percentages (0.185 → 18.5) on a 10⁻⁶ grid.
fn percent_range(
    params: &mut Params,
    min: &str,
    max: &str,
    bounds: &Bounds<Decimal>,
) -> Option<()> {
    let scaled = |v: &Option<Decimal>| match v {
        Some(v) => v.checked_mul(Decimal::ONE_HUNDRED).map(Some),
        None => Some(None),
    };
    let percent = Bounds {
        gt: scaled(&bounds.gt)?,
        gte: scaled(&bounds.gte)?,
        lt: scaled(&bounds.lt)?,
        lte: scaled(&bounds.lte)?,
    };
    decimal_range(params, min, max, &percent)
}

/// A decimal range for `double` parameters, on a 10⁻⁶ grid.
fn decimal_range(
    params: &mut Params,
    min: &str,
    max: &str,
    bounds: &Bounds<Decimal>,
) -> Option<()> {
    let (lo, hi) = grid_range(bounds, 6)?;
    if let Some(lo) = lo {
        push(params, min, lo.normalize().to_string());
    }
    if let Some(hi) = hi {
        push(params, max, hi.normalize().to_string());
    }
    Some(())
}

/// The inclusive range on the grid of `10^-digits` holding exactly the grid
/// values the bounds admit; `None` when it is empty. A bound too large to
/// scale is dropped when it excludes nothing representable and makes the
/// range empty otherwise.
fn grid_range(bounds: &Bounds<Decimal>, digits: u32) -> Option<(Option<Decimal>, Option<Decimal>)> {
    let step = Decimal::new(1, digits);
    let floor = |v: Decimal| {
        Some(v.round_dp_with_strategy(digits, rust_decimal::RoundingStrategy::ToNegativeInfinity))
    };
    let ceil = |v: Decimal| {
        Some(v.round_dp_with_strategy(digits, rust_decimal::RoundingStrategy::ToPositiveInfinity))
    };
    let mut lows = Vec::new();
    if let Some(v) = bounds.gte {
        lows.push(ceil(v)?);
    }
    if let Some(v) = bounds.gt {
        lows.push(floor(v)?.checked_add(step)?);
    }
    let mut highs = Vec::new();
    if let Some(v) = bounds.lte {
        highs.push(floor(v)?);
    }
    if let Some(v) = bounds.lt {
        highs.push(ceil(v)?.checked_sub(step)?);
    }
    let lo = lows.into_iter().max();
    let hi = highs.into_iter().min();
    if let (Some(lo), Some(hi)) = (lo, hi)
        && lo > hi
    {
        return None;
    }
    Some((lo, hi))
}

/// 100 ns, a .NET tick.
const TICK_NANOS: i64 = 100;

fn floor_tick(at: DateTime<Utc>) -> DateTime<Utc> {
    let rem = i64::from(at.timestamp_subsec_nanos()) % TICK_NANOS;
    at - TimeDelta::nanoseconds(rem)
}

fn ceil_tick(at: DateTime<Utc>) -> DateTime<Utc> {
    let rem = i64::from(at.timestamp_subsec_nanos()) % TICK_NANOS;
    if rem == 0 {
        at
    } else {
        at + TimeDelta::nanoseconds(TICK_NANOS - rem)
    }
}

/// The document's UTC form: `2024-12-09T17:41:11.8993295Z`.
pub(crate) fn timestamp(at: DateTime<Utc>) -> String {
    format!(
        "{}.{:07}Z",
        at.format("%Y-%m-%dT%H:%M:%S"),
        at.timestamp_subsec_nanos() / 100
    )
}

fn time_range(
    params: &mut Params,
    from: &str,
    to: &str,
    bounds: &Bounds<DateTime<Utc>>,
) -> Option<()> {
    let tick = TimeDelta::nanoseconds(TICK_NANOS);
    let lo = [
        bounds.gte.map(ceil_tick),
        bounds.gt.map(|v| floor_tick(v) + tick),
    ]
    .into_iter()
    .flatten()
    .max();
    let hi = [
        bounds.lte.map(floor_tick),
        bounds.lt.map(|v| ceil_tick(v) - tick),
    ]
    .into_iter()
    .flatten()
    .min();
    if let (Some(lo), Some(hi)) = (lo, hi)
        && lo > hi
    {
        return None;
    }
    if let Some(lo) = lo {
        push(params, from, timestamp(lo));
    }
    if let Some(hi) = hi {
        push(params, to, timestamp(hi));
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn pairs(params: &Params) -> Vec<(&str, &str)> {
        params
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn auction_filters_become_inclusive_parameters() {
        let filter = LoanFilter {
            interest_rate: Some(Bounds {
                gte: Some(Decimal::new(185, 3)),
                lt: Some(Decimal::new(3, 1)),
                ..Default::default()
            }),
            term_months: Some(Bounds {
                gt: Some(12),
                lte: Some(18),
                ..Default::default()
            }),
            amount: Some(Bounds {
                gt: Some(Decimal::new(5005, 1)),
                lt: Some(Decimal::from(2000)),
                ..Default::default()
            }),
            ratings: Some(vec!["AA".into(), "AAA".into(), "HR".into()]),
            country: Some("EE".into()),
            published_at: Some(Bounds {
                gt: Some(Utc.with_ymd_and_hms(2024, 12, 9, 17, 41, 11).unwrap()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let params = auction_params(&filter).unwrap();
        assert_eq!(
            pairs(&params),
            [
                ("request.interestMin", "18.5"),
                ("request.interestMax", "29.999999"),
                ("request.terms", "13"),
                ("request.terms", "14"),
                ("request.terms", "15"),
                ("request.terms", "16"),
                ("request.terms", "17"),
                ("request.terms", "18"),
                ("request.sumMin", "501"),
                ("request.sumMax", "1999"),
                ("request.ratings", "AA"),
                ("request.ratings", "HR"),
                ("request.countries", "EE"),
                ("request.listedOnUTCFrom", "2024-12-09T17:41:11.0000001Z"),
            ]
        );
    }

    #[test]
    fn filters_nothing_can_match_answer_none() {
        let none = |filter: LoanFilter| auction_params(&filter);
        assert!(
            none(LoanFilter {
                currency: Some(finmesh_core::Currency::CZK),
                ..Default::default()
            })
            .is_none()
        );
        assert!(
            none(LoanFilter {
                insured: Some(false),
                ..Default::default()
            })
            .is_none()
        );
        assert!(
            none(LoanFilter {
                ratings: Some(vec!["AAA".into()]),
                ..Default::default()
            })
            .is_none()
        );
        assert!(
            none(LoanFilter {
                country: Some("ee".into()),
                ..Default::default()
            })
            .is_none()
        );
        assert!(
            none(LoanFilter {
                term_months: Some(Bounds {
                    gt: Some(60),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .is_none()
        );
        assert!(
            none(LoanFilter {
                interest_rate: Some(Bounds {
                    gt: Some(Decimal::new(2, 1)),
                    lte: Some(Decimal::new(2, 1)),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .is_none()
        );
        // A term range covering every term sends nothing.
        let all = none(LoanFilter {
            term_months: Some(Bounds {
                gte: Some(0),
                lte: Some(600),
                ..Default::default()
            }),
            ..Default::default()
        })
        .unwrap();
        assert!(all.is_empty());
    }

    #[test]
    fn ticks_round_towards_the_range() {
        let at = Utc.timestamp_opt(1_733_766_071, 899_329_550).unwrap();
        assert_eq!(timestamp(floor_tick(at)), "2024-12-09T17:41:11.8993295Z");
        assert_eq!(timestamp(ceil_tick(at)), "2024-12-09T17:41:11.8993296Z");
        let mut params = Params::new();
        time_range(
            &mut params,
            "from",
            "to",
            &Bounds {
                gte: Some(at),
                lt: Some(at + TimeDelta::seconds(1)),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            pairs(&params),
            [
                ("request.from", "2024-12-09T17:41:11.8993296Z"),
                ("request.to", "2024-12-09T17:41:12.8993295Z"),
            ]
        );
    }

    #[test]
    fn investment_statuses_choose_the_lists() {
        let lists = |statuses: Vec<InvestmentStatus>| {
            investment_params(&InvestmentFilter {
                statuses: Some(statuses),
                ..Default::default()
            })
        };
        assert_eq!(
            lists(vec![InvestmentStatus::Active, InvestmentStatus::Defaulted]).unwrap(),
            vec![vec![
                ("request.loanStatusCode".to_string(), "2".to_string()),
                ("request.loanStatusCode".to_string(), "5".to_string()),
                ("request.loanStatusCode".to_string(), "100".to_string()),
            ]]
        );
        assert_eq!(
            lists(vec![InvestmentStatus::Sold]).unwrap(),
            vec![vec![("request.salesStatus".to_string(), "1".to_string())]]
        );
        assert_eq!(
            lists(vec![InvestmentStatus::PaidOff, InvestmentStatus::Sold])
                .unwrap()
                .len(),
            2
        );
        assert!(lists(vec![InvestmentStatus::Other("Nonsense".into())]).is_none());
        assert_eq!(
            investment_params(&InvestmentFilter::default()).unwrap(),
            vec![Params::new()]
        );
    }

    #[test]
    fn refused_parameters_name_the_unified_field() {
        assert_eq!(
            unified_field_for_message("request.interestMin: The value 'x' is not valid").as_deref(),
            Some("filter.interestRate")
        );
        assert_eq!(
            unified_field_for_message("request.listedOnUTCTo: not a date").as_deref(),
            Some("filter.publishedAt")
        );
        assert_eq!(unified_field_for_message("Something else"), None);
    }
}
