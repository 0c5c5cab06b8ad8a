//! Unified queries: filters and orders over the domain model.
//!
//! Adapters push down what their platform supports (see
//! [`Capabilities`](crate::provider::Capabilities)); the aggregator always
//! evaluates the whole filter locally as well, so a platform that filters more
//! loosely than we do never leaks a non-matching record.

use std::cmp::Ordering;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::error::Error;
use crate::model::{
    Investment, InvestmentStatus, Loan, LoanHealth, LoanPurpose, Offer, SellStatus, Transfer,
    TransferStatus,
};
use crate::money::Currency;

/// A range on an ordered value; every bound is optional and they combine with AND.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Bounds<T> {
    pub gt: Option<T>,
    pub gte: Option<T>,
    pub lt: Option<T>,
    pub lte: Option<T>,
}

impl<T> Default for Bounds<T> {
    fn default() -> Self {
        Bounds {
            gt: None,
            gte: None,
            lt: None,
            lte: None,
        }
    }
}

impl<T: PartialOrd> Bounds<T> {
    pub fn contains(&self, value: &T) -> bool {
        self.gt.as_ref().is_none_or(|b| value > b)
            && self.gte.as_ref().is_none_or(|b| value >= b)
            && self.lt.as_ref().is_none_or(|b| value < b)
            && self.lte.as_ref().is_none_or(|b| value <= b)
    }

    /// A missing value never satisfies a bound.
    pub fn contains_opt(&self, value: Option<&T>) -> bool {
        value.is_some_and(|v| self.contains(v))
    }

    pub fn is_empty(&self) -> bool {
        self.gt.is_none() && self.gte.is_none() && self.lt.is_none() && self.lte.is_none()
    }
}

/// The filterable properties of a loan; capabilities list which a provider pushes down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoanFilterField {
    InterestRate,
    TermMonths,
    Amount,
    Rating,
    Purpose,
    Currency,
    Country,
    Insured,
    PublishedAt,
}

/// Which loans to return. `None` means "no condition".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LoanFilter {
    pub interest_rate: Option<Bounds<Decimal>>,
    pub term_months: Option<Bounds<u32>>,
    /// On the loan's total amount, in its own currency.
    pub amount: Option<Bounds<Decimal>>,
    pub ratings: Option<Vec<String>>,
    pub purposes: Option<Vec<LoanPurpose>>,
    pub currency: Option<Currency>,
    pub country: Option<String>,
    pub insured: Option<bool>,
    pub published_at: Option<Bounds<DateTime<Utc>>>,
}

impl LoanFilter {
    pub fn matches(&self, loan: &Loan) -> bool {
        self.interest_rate
            .as_ref()
            .is_none_or(|b| b.contains(&loan.interest_rate))
            && self
                .term_months
                .as_ref()
                .is_none_or(|b| b.contains(&loan.term_months))
            && self
                .amount
                .as_ref()
                .is_none_or(|b| b.contains(&loan.amount.amount))
            && self.ratings.as_ref().is_none_or(|ratings| {
                loan.rating
                    .as_ref()
                    .is_some_and(|r| ratings.iter().any(|x| x == r))
            })
            && self
                .purposes
                .as_ref()
                .is_none_or(|purposes| purposes.contains(&loan.purpose))
            && self.currency.is_none_or(|c| loan.amount.currency == c)
            && self
                .country
                .as_ref()
                .is_none_or(|c| loan.country.as_deref() == Some(c.as_str()))
            && self.insured.is_none_or(|i| loan.insured == Some(i))
            && self
                .published_at
                .as_ref()
                .is_none_or(|b| b.contains_opt(loan.published_at.as_ref()))
    }

    /// The fields this filter constrains.
    pub fn fields(&self) -> Vec<LoanFilterField> {
        let mut fields = Vec::new();
        let mut add = |present: bool, field| {
            if present {
                fields.push(field)
            }
        };
        add(self.interest_rate.is_some(), LoanFilterField::InterestRate);
        add(self.term_months.is_some(), LoanFilterField::TermMonths);
        add(self.amount.is_some(), LoanFilterField::Amount);
        add(self.ratings.is_some(), LoanFilterField::Rating);
        add(self.purposes.is_some(), LoanFilterField::Purpose);
        add(self.currency.is_some(), LoanFilterField::Currency);
        add(self.country.is_some(), LoanFilterField::Country);
        add(self.insured.is_some(), LoanFilterField::Insured);
        add(self.published_at.is_some(), LoanFilterField::PublishedAt);
        fields
    }

    /// Keeps only the conditions on `fields`, the part a provider can push down.
    pub fn restricted_to(&self, fields: &[LoanFilterField]) -> LoanFilter {
        let keep = |field| fields.contains(&field);
        LoanFilter {
            interest_rate: self
                .interest_rate
                .clone()
                .filter(|_| keep(LoanFilterField::InterestRate)),
            term_months: self
                .term_months
                .clone()
                .filter(|_| keep(LoanFilterField::TermMonths)),
            amount: self
                .amount
                .clone()
                .filter(|_| keep(LoanFilterField::Amount)),
            ratings: self
                .ratings
                .clone()
                .filter(|_| keep(LoanFilterField::Rating)),
            purposes: self
                .purposes
                .clone()
                .filter(|_| keep(LoanFilterField::Purpose)),
            currency: self.currency.filter(|_| keep(LoanFilterField::Currency)),
            country: self
                .country
                .clone()
                .filter(|_| keep(LoanFilterField::Country)),
            insured: self.insured.filter(|_| keep(LoanFilterField::Insured)),
            published_at: self
                .published_at
                .clone()
                .filter(|_| keep(LoanFilterField::PublishedAt)),
        }
    }

    /// Rejects filters no loan could ever match because they are malformed.
    pub fn validate(&self) -> Result<(), Error> {
        if let Some(b) = &self.interest_rate {
            for v in [&b.gt, &b.gte, &b.lt, &b.lte].into_iter().flatten() {
                if v.is_sign_negative() {
                    return Err(Error::invalid_input(
                        "filter.interestRate",
                        "interest rates are non-negative fractions (0.0599 is 5.99%)",
                    ));
                }
            }
        }
        if self.ratings.as_ref().is_some_and(|r| r.len() > 100) {
            return Err(Error::invalid_input(
                "filter.ratings",
                "at most 100 ratings may be listed",
            ));
        }
        Ok(())
    }
}

/// The properties loans can be ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LoanOrderField {
    InterestRate,
    TermMonths,
    PublishedAt,
    RemainingAmount,
    Deadline,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Direction {
    #[default]
    Asc,
    Desc,
}

/// One key of a (possibly multi-key) order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OrderKey<F> {
    pub field: F,
    pub direction: Direction,
}

impl<F> OrderKey<F> {
    pub fn asc(field: F) -> Self {
        OrderKey {
            field,
            direction: Direction::Asc,
        }
    }

    pub fn desc(field: F) -> Self {
        OrderKey {
            field,
            direction: Direction::Desc,
        }
    }
}

/// Orders `a` and `b` by `keys`; missing values sort last whatever the direction.
pub fn compare_loans(a: &Loan, b: &Loan, keys: &[OrderKey<LoanOrderField>]) -> Ordering {
    keys.iter()
        .map(|key| {
            let ordering = match key.field {
                LoanOrderField::InterestRate => Some(a.interest_rate.cmp(&b.interest_rate)),
                LoanOrderField::TermMonths => Some(a.term_months.cmp(&b.term_months)),
                LoanOrderField::PublishedAt => option_cmp(&a.published_at, &b.published_at),
                LoanOrderField::RemainingAmount => option_cmp(
                    &a.remaining_amount.map(|m| m.amount),
                    &b.remaining_amount.map(|m| m.amount),
                ),
                LoanOrderField::Deadline => option_cmp(&a.deadline, &b.deadline),
            };
            directed(ordering, key.direction, || a_missing_last(a, b, key.field))
        })
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

/// `Some` ordering when both values are present or both missing, `None` otherwise.
fn option_cmp<T: Ord>(a: &Option<T>, b: &Option<T>) -> Option<Ordering> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.cmp(b)),
        (None, None) => Some(Ordering::Equal),
        _ => None,
    }
}

fn a_missing_last(a: &Loan, b: &Loan, field: LoanOrderField) -> Ordering {
    let present = |loan: &Loan| match field {
        LoanOrderField::PublishedAt => loan.published_at.is_some(),
        LoanOrderField::RemainingAmount => loan.remaining_amount.is_some(),
        LoanOrderField::Deadline => loan.deadline.is_some(),
        LoanOrderField::InterestRate | LoanOrderField::TermMonths => true,
    };
    present(b).cmp(&present(a))
}

/// The filterable properties of an investment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvestmentFilterField {
    Status,
    LoanHealth,
    SellStatus,
    Currency,
    PurchasedAt,
    PrincipalUnpaid,
    InterestRate,
}

/// Which investments to return. `None` means "no condition".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InvestmentFilter {
    pub statuses: Option<Vec<InvestmentStatus>>,
    pub loan_health: Option<Vec<LoanHealth>>,
    pub sell_statuses: Option<Vec<SellStatus>>,
    pub currency: Option<Currency>,
    pub purchased_at: Option<Bounds<DateTime<Utc>>>,
    pub principal_unpaid: Option<Bounds<Decimal>>,
    pub interest_rate: Option<Bounds<Decimal>>,
}

impl InvestmentFilter {
    pub fn matches(&self, investment: &Investment) -> bool {
        one_of(&self.statuses, Some(&investment.status))
            && one_of(&self.loan_health, investment.loan_health.as_ref())
            && one_of(&self.sell_statuses, investment.sell_status.as_ref())
            && self.currency.is_none_or(|c| investment.currency() == c)
            && self
                .purchased_at
                .as_ref()
                .is_none_or(|b| b.contains_opt(investment.purchased_at.as_ref()))
            && self
                .principal_unpaid
                .as_ref()
                .is_none_or(|b| b.contains(&investment.principal_unpaid.amount))
            && self
                .interest_rate
                .as_ref()
                .is_none_or(|b| b.contains_opt(investment.interest_rate.as_ref()))
    }

    pub fn fields(&self) -> Vec<InvestmentFilterField> {
        [
            (self.statuses.is_some(), InvestmentFilterField::Status),
            (
                self.loan_health.is_some(),
                InvestmentFilterField::LoanHealth,
            ),
            (
                self.sell_statuses.is_some(),
                InvestmentFilterField::SellStatus,
            ),
            (self.currency.is_some(), InvestmentFilterField::Currency),
            (
                self.purchased_at.is_some(),
                InvestmentFilterField::PurchasedAt,
            ),
            (
                self.principal_unpaid.is_some(),
                InvestmentFilterField::PrincipalUnpaid,
            ),
            (
                self.interest_rate.is_some(),
                InvestmentFilterField::InterestRate,
            ),
        ]
        .into_iter()
        .filter_map(|(present, field)| present.then_some(field))
        .collect()
    }

    pub fn restricted_to(&self, fields: &[InvestmentFilterField]) -> InvestmentFilter {
        let keep = |field| fields.contains(&field);
        InvestmentFilter {
            statuses: self
                .statuses
                .clone()
                .filter(|_| keep(InvestmentFilterField::Status)),
            loan_health: self
                .loan_health
                .clone()
                .filter(|_| keep(InvestmentFilterField::LoanHealth)),
            sell_statuses: self
                .sell_statuses
                .clone()
                .filter(|_| keep(InvestmentFilterField::SellStatus)),
            currency: self
                .currency
                .filter(|_| keep(InvestmentFilterField::Currency)),
            purchased_at: self
                .purchased_at
                .clone()
                .filter(|_| keep(InvestmentFilterField::PurchasedAt)),
            principal_unpaid: self
                .principal_unpaid
                .clone()
                .filter(|_| keep(InvestmentFilterField::PrincipalUnpaid)),
            interest_rate: self
                .interest_rate
                .clone()
                .filter(|_| keep(InvestmentFilterField::InterestRate)),
        }
    }
}

/// No condition, or `value` is one of the wanted ones.
fn one_of<T: PartialEq>(wanted: &Option<Vec<T>>, value: Option<&T>) -> bool {
    wanted
        .as_ref()
        .is_none_or(|w| value.is_some_and(|v| w.contains(v)))
}

/// The properties investments can be ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvestmentOrderField {
    PurchasedAt,
    PrincipalUnpaid,
    InterestRate,
    NextPaymentDate,
}

/// Orders investments by `keys`; missing values sort last whatever the direction.
pub fn compare_investments(
    a: &Investment,
    b: &Investment,
    keys: &[OrderKey<InvestmentOrderField>],
) -> Ordering {
    keys.iter()
        .map(|key| {
            let ordering = match key.field {
                InvestmentOrderField::PurchasedAt => option_cmp(&a.purchased_at, &b.purchased_at),
                InvestmentOrderField::PrincipalUnpaid => {
                    Some(a.principal_unpaid.amount.cmp(&b.principal_unpaid.amount))
                }
                InvestmentOrderField::InterestRate => {
                    option_cmp(&a.interest_rate, &b.interest_rate)
                }
                InvestmentOrderField::NextPaymentDate => {
                    option_cmp(&a.next_payment_date, &b.next_payment_date)
                }
            };
            directed(ordering, key.direction, || {
                let present = |i: &Investment| match key.field {
                    InvestmentOrderField::PurchasedAt => i.purchased_at.is_some(),
                    InvestmentOrderField::PrincipalUnpaid => true,
                    InvestmentOrderField::InterestRate => i.interest_rate.is_some(),
                    InvestmentOrderField::NextPaymentDate => i.next_payment_date.is_some(),
                };
                present(b).cmp(&present(a))
            })
        })
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

/// Applies the direction to a comparison of present values; when one side is
/// missing, `missing_last` decides, whatever the direction.
fn directed(
    ordering: Option<Ordering>,
    direction: Direction,
    missing_last: impl FnOnce() -> Ordering,
) -> Ordering {
    match (ordering, direction) {
        (Some(o), Direction::Asc) => o,
        (Some(o), Direction::Desc) => o.reverse(),
        (None, _) => missing_last(),
    }
}

/// The filterable properties of a transfer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransferFilterField {
    Status,
    CreatedAt,
}

/// Which transfers to return.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TransferFilter {
    pub statuses: Option<Vec<TransferStatus>>,
    pub created_at: Option<Bounds<DateTime<Utc>>>,
}

impl TransferFilter {
    pub fn matches(&self, transfer: &Transfer) -> bool {
        one_of(&self.statuses, Some(&transfer.status))
            && self
                .created_at
                .as_ref()
                .is_none_or(|b| b.contains(&transfer.created_at))
    }

    pub fn fields(&self) -> Vec<TransferFilterField> {
        [
            (self.statuses.is_some(), TransferFilterField::Status),
            (self.created_at.is_some(), TransferFilterField::CreatedAt),
        ]
        .into_iter()
        .filter_map(|(present, field)| present.then_some(field))
        .collect()
    }

    pub fn restricted_to(&self, fields: &[TransferFilterField]) -> TransferFilter {
        TransferFilter {
            statuses: self
                .statuses
                .clone()
                .filter(|_| fields.contains(&TransferFilterField::Status)),
            created_at: self
                .created_at
                .clone()
                .filter(|_| fields.contains(&TransferFilterField::CreatedAt)),
        }
    }
}

/// The properties transfers can be ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransferOrderField {
    CreatedAt,
    Amount,
}

pub fn compare_transfers(
    a: &Transfer,
    b: &Transfer,
    keys: &[OrderKey<TransferOrderField>],
) -> Ordering {
    keys.iter()
        .map(|key| {
            let ordering = match key.field {
                TransferOrderField::CreatedAt => a.created_at.cmp(&b.created_at),
                TransferOrderField::Amount => a.amount.amount.cmp(&b.amount.amount),
            };
            directed(Some(ordering), key.direction, || Ordering::Equal)
        })
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}

/// The filterable properties of a secondary-market offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OfferFilterField {
    InterestRate,
    Price,
    Discount,
    Rating,
    Currency,
    ListedAt,
}

/// Which offers to return.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OfferFilter {
    pub interest_rate: Option<Bounds<Decimal>>,
    pub price: Option<Bounds<Decimal>>,
    pub discount: Option<Bounds<Decimal>>,
    pub ratings: Option<Vec<String>>,
    pub currency: Option<Currency>,
    pub listed_at: Option<Bounds<DateTime<Utc>>>,
}

impl OfferFilter {
    pub fn matches(&self, offer: &Offer) -> bool {
        self.interest_rate
            .as_ref()
            .is_none_or(|b| b.contains_opt(offer.interest_rate.as_ref()))
            && self
                .price
                .as_ref()
                .is_none_or(|b| b.contains(&offer.price.amount))
            && self
                .discount
                .as_ref()
                .is_none_or(|b| b.contains(&offer.discount))
            && one_of(&self.ratings, offer.rating.as_ref())
            && self.currency.is_none_or(|c| offer.currency() == c)
            && self
                .listed_at
                .as_ref()
                .is_none_or(|b| b.contains_opt(offer.listed_at.as_ref()))
    }

    pub fn fields(&self) -> Vec<OfferFilterField> {
        [
            (self.interest_rate.is_some(), OfferFilterField::InterestRate),
            (self.price.is_some(), OfferFilterField::Price),
            (self.discount.is_some(), OfferFilterField::Discount),
            (self.ratings.is_some(), OfferFilterField::Rating),
            (self.currency.is_some(), OfferFilterField::Currency),
            (self.listed_at.is_some(), OfferFilterField::ListedAt),
        ]
        .into_iter()
        .filter_map(|(present, field)| present.then_some(field))
        .collect()
    }

    pub fn restricted_to(&self, fields: &[OfferFilterField]) -> OfferFilter {
        let keep = |field| fields.contains(&field);
        OfferFilter {
            interest_rate: self
                .interest_rate
                .clone()
                .filter(|_| keep(OfferFilterField::InterestRate)),
            price: self.price.clone().filter(|_| keep(OfferFilterField::Price)),
            discount: self
                .discount
                .clone()
                .filter(|_| keep(OfferFilterField::Discount)),
            ratings: self
                .ratings
                .clone()
                .filter(|_| keep(OfferFilterField::Rating)),
            currency: self.currency.filter(|_| keep(OfferFilterField::Currency)),
            listed_at: self
                .listed_at
                .clone()
                .filter(|_| keep(OfferFilterField::ListedAt)),
        }
    }
}

/// The properties offers can be ordered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OfferOrderField {
    ListedAt,
    Price,
    Discount,
    InterestRate,
    PrincipalRemaining,
}

/// Orders offers by `keys`; missing values sort last whatever the direction.
pub fn compare_offers(a: &Offer, b: &Offer, keys: &[OrderKey<OfferOrderField>]) -> Ordering {
    keys.iter()
        .map(|key| {
            let ordering = match key.field {
                OfferOrderField::ListedAt => option_cmp(&a.listed_at, &b.listed_at),
                OfferOrderField::Price => Some(a.price.amount.cmp(&b.price.amount)),
                OfferOrderField::Discount => Some(a.discount.cmp(&b.discount)),
                OfferOrderField::InterestRate => option_cmp(&a.interest_rate, &b.interest_rate),
                OfferOrderField::PrincipalRemaining => Some(
                    a.principal_remaining
                        .amount
                        .cmp(&b.principal_remaining.amount),
                ),
            };
            directed(ordering, key.direction, || {
                let present = |o: &Offer| match key.field {
                    OfferOrderField::ListedAt => o.listed_at.is_some(),
                    OfferOrderField::InterestRate => o.interest_rate.is_some(),
                    _ => true,
                };
                present(b).cmp(&present(a))
            })
        })
        .find(|o| o.is_ne())
        .unwrap_or(Ordering::Equal)
}
