//! Query arguments, checked and turned into the core's query types. Every
//! refusal is an `INVALID_INPUT` error whose `field` is the argument's path,
//! e.g. `filter.termMonths.lte`.

use std::collections::HashSet;

use async_graphql::{Enum, InputObject, InputType};
use chrono::{DateTime, Utc};
use finmesh_core::query::{self, Bounds, OrderKey};
use finmesh_core::{Currency, Error};
use rust_decimal::Decimal;

use crate::loan::LoanPurpose;

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
                .map(|code| {
                    code.parse::<Currency>()
                        .map_err(|e| e.with_field("filter.currency"))
                })
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

fn non_negative(value: Decimal) -> Result<Decimal, &'static str> {
    if value.is_sign_negative() {
        Err("must not be negative")
    } else {
        Ok(value)
    }
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

/// Sort direction.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Default)]
#[graphql(remote = "finmesh_core::query::Direction")]
pub(crate) enum Direction {
    #[default]
    Asc,
    Desc,
}

/// One key of an order; loans missing the value come last in both directions.
#[derive(InputObject)]
pub(crate) struct LoanOrder {
    field: LoanOrderField,
    #[graphql(default)]
    direction: Direction,
}

/// The keys in priority order; a field may appear only once.
pub(crate) fn order_keys(
    order_by: Vec<LoanOrder>,
) -> Result<Vec<OrderKey<query::LoanOrderField>>, Error> {
    let mut seen = HashSet::new();
    order_by
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
