//! The secondary marketplace: other investors' investments offered for sale,
//! as `GET /smp/investments` lists them. The document names the listing's
//! `SMPInvestment` without defining it; its shape here comes from the
//! listing's sorting and filtering table and from `smpSellInfo`:
//!
//! ```json
//! {
//!   "id": 8000123, "loanId": 123456,
//!   "originalInstalmentCount": 60, "remainingInstalmentCount": 42,
//!   "remainingPrincipal": 812.34, "discount": 0.05, "price": 771.72,
//!   "datePublished": "2024-03-28T09:12:03.456+01:00",
//!   "deadline": "2024-04-11T09:12:03.456+02:00",
//!   "nextPaymentDate": "2024-04-15",
//!   "rating": "AA", "interestRate": 0.0799, "revenueRate": 0.0649,
//!   "purpose": "REFINANCING", "incomeType": "EMPLOYMENT",
//!   "insuranceActive": false, "loanHealthInfo": "HEALTHY", "dpd": 0,
//!   "currency": "CZK",
//!   "loan": {"id": 123456, "url": "…", "name": "…", "rating": "AA", …}
//! }
//! ```
//!
//! Offers sell parts of marketplace loans (their rating, purpose, income
//! type, rates, term and insurance are the loan's); `price` is
//! `remainingPrincipal × (1 - discount)` in hellers.

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use chrono_tz::{Europe::Prague, Tz};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rust_decimal::Decimal;
use serde::Serialize;

use super::{
    data::{IncomeType, Loan, Purpose, Rating, one_of, pick, serialize_instant},
    portfolio::{LoanHealthInfo, money, rng_for},
};

/// How long an offer has been up at most, and how long it stays.
const MAX_AGE_MS: i64 = 10 * 24 * 60 * 60 * 1000;
const OFFER_DAYS: i64 = 14;

/// One offer of the secondary marketplace (`SMPInvestment`).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Offer {
    pub(crate) id: u64,
    loan_id: u64,
    original_instalment_count: u32,
    pub(crate) remaining_instalment_count: u32,
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub(crate) remaining_principal: Decimal,
    /// A fraction of 1, as in `smpSellInfo`.
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    discount: Decimal,
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    price: Decimal,
    #[serde(serialize_with = "serialize_instant")]
    pub(crate) date_published: DateTime<Tz>,
    #[serde(serialize_with = "serialize_instant")]
    pub(crate) deadline: DateTime<Tz>,
    next_payment_date: NaiveDate,
    pub(crate) rating: Rating,
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    interest_rate: Decimal,
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    revenue_rate: Decimal,
    pub(crate) purpose: Purpose,
    pub(crate) income_type: IncomeType,
    insurance_active: bool,
    pub(crate) loan_health_info: LoanHealthInfo,
    /// Days past due of the loan's oldest unpaid instalment.
    dpd: u32,
    currency: &'static str,
    loan: OfferLoan,
}

impl Offer {
    /// Whether the loan is past due now: such offers are listed only with
    /// `delinquent=true`.
    pub(crate) fn delinquent(&self) -> bool {
        self.loan_health_info == LoanHealthInfo::CurrentlyInDue
    }
}

/// The offered loan in short.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct OfferLoan {
    id: u64,
    url: String,
    name: String,
    rating: Rating,
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    interest_rate: Decimal,
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    revenue_rate: Decimal,
    purpose: Purpose,
    term_in_months: u32,
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    amount: Decimal,
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    annuity: Decimal,
    currency: &'static str,
    main_income_type: IncomeType,
    region: String,
    insurance_active: bool,
}

/// Generates `count` offers of parts of `loans`, published in the ten days
/// before `now` and open for fourteen days; ids grow with `datePublished`.
pub(crate) fn generate(seed: u64, count: usize, loans: &[Loan], now: DateTime<Utc>) -> Vec<Offer> {
    if loans.is_empty() {
        return Vec::new();
    }
    let now = DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now);
    let mut rng = rng_for(seed, "", b"zonky-secondary!");
    let mut offers: Vec<Offer> = (0..count)
        .filter_map(|_| {
            let loan = loans.get(rng.random_range(0..loans.len()))?;
            Some(offer(&mut rng, loan, now))
        })
        .collect();
    offers.sort_by_key(|offer| offer.date_published);
    let mut id = 8_000_000;
    for offer in &mut offers {
        id += rng.random_range(1..=5);
        offer.id = id;
    }
    offers
}

fn offer(rng: &mut ChaCha8Rng, loan: &Loan, now: DateTime<Utc>) -> Offer {
    let today = now.with_timezone(&Prague).date_naive();
    let term = loan.term_in_months.max(1);
    let health: LoanHealthInfo = pick(rng);
    let remaining_instalments = rng.random_range(1..=term);
    let invested = Decimal::from(*one_of(rng, &[200, 400, 600, 1000, 2000, 5000]));
    let share = Decimal::from(remaining_instalments) / Decimal::from(term)
        * Decimal::new(rng.random_range(85..=100), 2);
    let remaining_principal = money((invested * share).max(Decimal::ONE));
    let discount_percent = match health {
        LoanHealthInfo::Healthy => *one_of(rng, &[0, 0, 0, 0, 1, 2, 3, 5]),
        LoanHealthInfo::HistoricallyInDue => *one_of(rng, &[0, 2, 5, 10]),
        LoanHealthInfo::CurrentlyInDue => *one_of(rng, &[10, 20, 30, 40, 50, 70]),
    };
    let discount = Decimal::new(discount_percent, 2);
    let dpd = if health == LoanHealthInfo::CurrentlyInDue {
        rng.random_range(1..=200)
    } else {
        0
    };
    let next_payment_date = if dpd > 0 {
        today - TimeDelta::days(i64::from(dpd))
    } else {
        today + TimeDelta::days(rng.random_range(1..=30))
    };
    let date_published = (now - TimeDelta::milliseconds(rng.random_range(60_000..=MAX_AGE_MS)))
        .with_timezone(&Prague);
    Offer {
        id: 0,
        loan_id: loan.id,
        original_instalment_count: term,
        remaining_instalment_count: remaining_instalments,
        remaining_principal,
        discount,
        price: money(remaining_principal * (Decimal::ONE - discount)),
        date_published,
        deadline: date_published + TimeDelta::days(OFFER_DAYS),
        next_payment_date,
        rating: loan.rating,
        interest_rate: loan.interest_rate,
        revenue_rate: loan.revenue_rate,
        purpose: loan.purpose,
        income_type: loan.main_income_type,
        insurance_active: loan.insurance_active,
        loan_health_info: health,
        dpd,
        currency: loan.currency,
        loan: OfferLoan {
            id: loan.id,
            url: loan.url.clone(),
            name: loan.name.clone(),
            rating: loan.rating,
            interest_rate: loan.interest_rate,
            revenue_rate: loan.revenue_rate,
            purpose: loan.purpose,
            term_in_months: term,
            amount: loan.amount,
            annuity: loan.annuity_with_insurance,
            currency: loan.currency,
            main_income_type: loan.main_income_type,
            region: loan.region.clone(),
            insurance_active: loan.insurance_active,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zonky::data;

    #[test]
    fn offers_are_consistent_and_repeat() {
        let now = Utc::now();
        let loans = data::generate(3, 300, now);
        let offers = generate(3, 1000, &loans, now);
        assert_eq!(offers.len(), 1000);
        assert_eq!(
            serde_json::to_string(&offers).unwrap(),
            serde_json::to_string(&generate(3, 1000, &loans, now)).unwrap()
        );
        for pair in offers.windows(2) {
            assert!(pair[0].id < pair[1].id);
        }
        for offer in &offers {
            assert!(offer.price <= offer.remaining_principal);
            assert!(offer.remaining_principal >= Decimal::ONE);
            assert_eq!(offer.price.scale(), 2);
            assert!(offer.remaining_instalment_count <= offer.original_instalment_count);
            assert!(offer.deadline.to_utc() > now);
            assert_eq!(offer.delinquent(), offer.dpd > 0);
        }
        assert!(offers.iter().any(Offer::delinquent));
        assert!(offers.iter().any(|offer| !offer.delinquent()));
    }
}
