//! Query arguments, checked and turned into the core's query types. Every
//! refusal is an `INVALID_INPUT` error whose `field` is the argument's path,
//! e.g. `filter.termMonths.lte`.

use std::collections::HashSet;
use std::fmt::Display;
use std::hash::Hash;

use async_graphql::{Enum, InputObject, InputType};
use chrono::{DateTime, Utc};
use finmesh_core::Error;
use finmesh_core::query::{self, Bounds, OrderKey};

use crate::decimal::Decimal;
use crate::loan::LoanPurpose;
use crate::money::parse_currency;
use crate::status::{InvestmentStatus, LoanHealth, SellStatus, TransferStatus};

/// A point in time (the derive's `params` takes no generic arguments).
type Timestamp = DateTime<Utc>;

/// A range; every bound given must hold.
#[derive(InputObject)]
#[graphql(
    concrete(name = "IntRange", params(i32)),
    concrete(name = "DecimalRange", params(Decimal)),
    concrete(name = "DateTimeRange", params(Timestamp))
)]
pub(crate) struct Range<T: InputType> {
    gt: Option<T>,
    gte: Option<T>,
    lt: Option<T>,
    lte: Option<T>,
}

impl<T: InputType> Range<T> {
    /// Checks and converts each bound; `field` names the range in errors.
    fn into_bounds<U>(
        self,
        field: &str,
        convert: impl Fn(T) -> Result<U, &'static str>,
    ) -> Result<Bounds<U>, Error> {
        let bound = |name: &str, value: Option<T>| {
            value
                .map(|value| {
                    convert(value)
                        .map_err(|why| Error::invalid_input(format!("{field}.{name}"), why))
                })
                .transpose()
        };
        Ok(Bounds {
            gt: bound("gt", self.gt)?,
            gte: bound("gte", self.gte)?,
            lt: bound("lt", self.lt)?,
            lte: bound("lte", self.lte)?,
        })
    }
}

/// Which loans to return; all conditions given must hold.
#[derive(InputObject)]
pub(crate) struct LoanFilter {
    /// Yearly interest rate as a fraction (`"0.05"` is 5%).
    interest_rate: Option<Range<Decimal>>,
    term_months: Option<Range<i32>>,
    /// The loan's whole amount, in its own currency.
    amount: Option<Range<Decimal>>,
    /// The platform's ratings to accept, e.g. `["AAA", "AA"]`.
    ratings: Option<Vec<String>>,
    purposes: Option<Vec<LoanPurpose>>,
    /// ISO 4217 code, e.g. `CZK`.
    currency: Option<String>,
    /// ISO 3166-1 alpha-2 code, e.g. `CZ`.
    country: Option<String>,
    insured: Option<bool>,
    published_at: Option<Range<Timestamp>>,
}

impl LoanFilter {
    pub(crate) fn into_query(self) -> Result<query::LoanFilter, Error> {
        let filter = query::LoanFilter {
            interest_rate: self
                .interest_rate
                .map(|r| r.into_bounds("filter.interestRate", non_negative))
                .transpose()?,
            term_months: self
                .term_months
                .map(|r| {
                    r.into_bounds("filter.termMonths", |months| {
                        u32::try_from(months).map_err(|_| "a term cannot be negative")
                    })
                })
                .transpose()?,
            amount: self
                .amount
                .map(|r| r.into_bounds("filter.amount", non_negative))
                .transpose()?,
            ratings: self.ratings,
            purposes: self
                .purposes
                .map(|purposes| purposes.into_iter().map(Into::into).collect()),
            currency: self
                .currency
                .map(|code| parse_currency(&code, "filter.currency"))
                .transpose()?,
            country: self.country.map(country).transpose()?,
            insured: self.insured,
            published_at: self
                .published_at
                .map(|r| r.into_bounds("filter.publishedAt", Ok))
                .transpose()?,
        };
        filter.validate()?;
        Ok(filter)
    }
}

fn non_negative(value: Decimal) -> Result<rust_decimal::Decimal, &'static str> {
    if value.0.is_sign_negative() {
        Err("must not be negative")
    } else {
        Ok(value.0)
    }
}

fn any_decimal(value: Decimal) -> Result<rust_decimal::Decimal, &'static str> {
    Ok(value.0)
}

fn country(code: String) -> Result<String, Error> {
    if code.len() == 2 && code.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(code)
    } else {
        Err(Error::invalid_input(
            "filter.country",
            format!("invalid country {code:?}: expected an ISO 3166-1 alpha-2 code such as CZ"),
        ))
    }
}

/// Which investments to return; all conditions given must hold.
#[derive(InputObject)]
pub(crate) struct InvestmentFilter {
    /// Any of these statuses (`OTHER` cannot be listed).
    statuses: Option<Vec<InvestmentStatus>>,
    /// Any of these loan health values (`OTHER` cannot be listed).
    loan_health: Option<Vec<LoanHealth>>,
    /// Any of these sell statuses (`OTHER` cannot be listed).
    sell_statuses: Option<Vec<SellStatus>>,
    /// ISO 4217 code, e.g. `CZK`.
    currency: Option<String>,
    purchased_at: Option<Range<Timestamp>>,
    /// Principal the borrower still owes, in the investment's currency.
    principal_unpaid: Option<Range<Decimal>>,
    /// Yearly interest rate as a fraction (`"0.05"` is 5%).
    interest_rate: Option<Range<Decimal>>,
}

impl InvestmentFilter {
    pub(crate) fn into_query(self) -> Result<query::InvestmentFilter, Error> {
        Ok(query::InvestmentFilter {
            statuses: self
                .statuses
                .map(|v| InvestmentStatus::to_core_all(v, "filter.statuses"))
                .transpose()?,
            loan_health: self
                .loan_health
                .map(|v| LoanHealth::to_core_all(v, "filter.loanHealth"))
                .transpose()?,
            sell_statuses: self
                .sell_statuses
                .map(|v| SellStatus::to_core_all(v, "filter.sellStatuses"))
                .transpose()?,
            currency: self
                .currency
                .map(|code| parse_currency(&code, "filter.currency"))
                .transpose()?,
            purchased_at: self
                .purchased_at
                .map(|r| r.into_bounds("filter.purchasedAt", Ok))
                .transpose()?,
            principal_unpaid: self
                .principal_unpaid
                .map(|r| r.into_bounds("filter.principalUnpaid", non_negative))
                .transpose()?,
            interest_rate: self
                .interest_rate
                .map(|r| r.into_bounds("filter.interestRate", non_negative))
                .transpose()?,
        })
    }
}

/// Which secondary-market offers to return; all conditions given must hold.
#[derive(InputObject)]
pub(crate) struct OfferFilter {
    /// Yearly interest rate of the loan as a fraction (`"0.05"` is 5%).
    interest_rate: Option<Range<Decimal>>,
    /// What the buyer pays, in the offer's currency.
    price: Option<Range<Decimal>>,
    /// `1 - price / principal`: positive is a discount, negative a premium.
    discount: Option<Range<Decimal>>,
    /// The platform's ratings to accept, e.g. `["AAA", "AA"]`.
    ratings: Option<Vec<String>>,
    /// ISO 4217 code, e.g. `EUR`.
    currency: Option<String>,
    listed_at: Option<Range<Timestamp>>,
}

impl OfferFilter {
    pub(crate) fn into_query(self) -> Result<query::OfferFilter, Error> {
        if self.ratings.as_ref().is_some_and(|r| r.len() > MAX_LISTED) {
            return Err(Error::invalid_input(
                "filter.ratings",
                format!("at most {MAX_LISTED} ratings may be listed"),
            ));
        }
        Ok(query::OfferFilter {
            interest_rate: self
                .interest_rate
                .map(|r| r.into_bounds("filter.interestRate", non_negative))
                .transpose()?,
            price: self
                .price
                .map(|r| r.into_bounds("filter.price", non_negative))
                .transpose()?,
            discount: self
                .discount
                .map(|r| r.into_bounds("filter.discount", any_decimal))
                .transpose()?,
            ratings: self.ratings,
            currency: self
                .currency
                .map(|code| parse_currency(&code, "filter.currency"))
                .transpose()?,
            listed_at: self
                .listed_at
                .map(|r| r.into_bounds("filter.listedAt", Ok))
                .transpose()?,
        })
    }
}

/// The most values a filter may list.
const MAX_LISTED: usize = 100;

/// Which transfers to return; all conditions given must hold.
#[derive(InputObject)]
pub(crate) struct TransferFilter {
    /// Any of these statuses (`OTHER` cannot be listed).
    status: Option<Vec<TransferStatus>>,
    /// Created at or after this time.
    from: Option<Timestamp>,
    /// Created at or before this time.
    to: Option<Timestamp>,
}

impl TransferFilter {
    pub(crate) fn into_query(self) -> Result<query::TransferFilter, Error> {
        if let (Some(from), Some(to)) = (self.from, self.to)
            && to < from
        {
            return Err(Error::invalid_input(
                "filter.to",
                "`to` must not be before `from`",
            ));
        }
        let created_at = (self.from.is_some() || self.to.is_some()).then(|| Bounds {
            gte: self.from,
            lte: self.to,
            ..Bounds::default()
        });
        Ok(query::TransferFilter {
            statuses: self
                .status
                .map(|v| TransferStatus::to_core_all(v, "filter.status"))
                .transpose()?,
            created_at,
        })
    }
}

/// What loans can be ordered by.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Hash)]
#[graphql(remote = "finmesh_core::query::LoanOrderField", display)]
pub(crate) enum LoanOrderField {
    InterestRate,
    TermMonths,
    PublishedAt,
    RemainingAmount,
    Deadline,
}

/// What investments can be ordered by.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Hash)]
#[graphql(remote = "finmesh_core::query::InvestmentOrderField", display)]
pub(crate) enum InvestmentOrderField {
    PurchasedAt,
    PrincipalUnpaid,
    InterestRate,
    NextPaymentDate,
}

/// What secondary-market offers can be ordered by.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Hash)]
#[graphql(remote = "finmesh_core::query::OfferOrderField", display)]
pub(crate) enum OfferOrderField {
    ListedAt,
    Price,
    Discount,
    InterestRate,
    PrincipalRemaining,
}

/// What transfers can be ordered by.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Hash)]
#[graphql(remote = "finmesh_core::query::TransferOrderField", display)]
pub(crate) enum TransferOrderField {
    CreatedAt,
    Amount,
}

/// Sort direction.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Default)]
#[graphql(remote = "finmesh_core::query::Direction")]
pub(crate) enum Direction {
    #[default]
    Asc,
    Desc,
}

/// One key of an order; records missing the value come last in both directions.
#[derive(InputObject)]
#[graphql(
    concrete(name = "LoanOrder", params(LoanOrderField)),
    concrete(name = "InvestmentOrder", params(InvestmentOrderField)),
    concrete(name = "OfferOrder", params(OfferOrderField)),
    concrete(name = "TransferOrder", params(TransferOrderField))
)]
pub(crate) struct Order<F: InputType> {
    field: F,
    #[graphql(default)]
    direction: Direction,
}

/// The keys in priority order; a field may appear only once.
pub(crate) fn order_keys<F, C>(order_by: Option<Vec<Order<F>>>) -> Result<Vec<OrderKey<C>>, Error>
where
    F: InputType + Copy + Eq + Hash + Display + Into<C>,
{
    let mut seen = HashSet::new();
    order_by
        .unwrap_or_default()
        .into_iter()
        .map(|key| {
            if !seen.insert(key.field) {
                return Err(Error::invalid_input(
                    "orderBy",
                    format!("{} is listed twice", key.field),
                ));
            }
            Ok(OrderKey {
                field: key.field.into(),
                direction: key.direction.into(),
            })
        })
        .collect()
}
