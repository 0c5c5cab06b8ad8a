//! A loan as a marketplace lists it, in terms no single platform owns.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::id::{GlobalId, ProviderId};
use crate::money::{Currency, Money};

/// Why the borrower wants the money, unified across platforms. The platform's
/// own value is kept beside it in [`Loan::purpose_raw`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LoanPurpose {
    Vehicle,
    Education,
    Travel,
    Electronics,
    Health,
    Refinancing,
    Household,
    HomeImprovement,
    RealEstate,
    Business,
    OwnProject,
    Other,
}

impl LoanPurpose {
    pub const ALL: [LoanPurpose; 12] = [
        LoanPurpose::Vehicle,
        LoanPurpose::Education,
        LoanPurpose::Travel,
        LoanPurpose::Electronics,
        LoanPurpose::Health,
        LoanPurpose::Refinancing,
        LoanPurpose::Household,
        LoanPurpose::HomeImprovement,
        LoanPurpose::RealEstate,
        LoanPurpose::Business,
        LoanPurpose::OwnProject,
        LoanPurpose::Other,
    ];
}

/// Where a loan is in its life on the marketplace.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LoanStatus {
    /// Listed and open for investment.
    Open,
    /// Fully funded, no longer open.
    Funded,
    /// Withdrawn, expired or otherwise closed.
    Closed,
    /// A platform state we do not model, kept verbatim.
    Other(String),
}

/// A loan listing. Optional fields are ones some platform does not publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Loan {
    pub id: GlobalId,
    pub name: String,
    pub story: Option<String>,
    pub purpose: LoanPurpose,
    /// The platform's own purpose value, e.g. `AUTO_MOTO` or `6`.
    pub purpose_raw: Option<String>,
    pub rating: Option<String>,
    /// Yearly interest rate the borrower pays, as a fraction (0.0599 is 5.99%).
    pub interest_rate: Decimal,
    /// Yearly rate the investor earns after platform fees, as a fraction.
    pub revenue_rate: Option<Decimal>,
    pub term_months: u32,
    pub amount: Money,
    /// What is still open for investment, in the loan's currency.
    pub remaining_amount: Option<Money>,
    /// ISO 3166-1 alpha-2 country code.
    pub country: Option<String>,
    pub published_at: Option<DateTime<Utc>>,
    pub deadline: Option<DateTime<Utc>>,
    pub status: LoanStatus,
    pub url: Option<String>,
    pub borrower_region: Option<String>,
    pub borrower_income_type: Option<String>,
    pub insured: Option<bool>,
    pub investments_count: Option<u32>,
    /// The platform's JSON for this loan, for fields we do not model.
    pub raw: Arc<serde_json::Value>,
}

impl Loan {
    pub fn provider(&self) -> &ProviderId {
        self.id.provider()
    }

    pub fn currency(&self) -> Currency {
        self.amount.currency
    }
}
