//! The `Loan` type and the enums and values it is made of.

use async_graphql::{Context, Enum, ID, Object};
use chrono::{DateTime, Utc};
use finmesh_core::GlobalId;
use finmesh_core::model;

use crate::cache::load_loan;
use crate::decimal::Decimal;
use crate::env::or_null;
use crate::json::Json;
use crate::money::Money;

/// Why the borrower wants the money, unified across platforms; `purposeRaw`
/// keeps the platform's own value.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "finmesh_core::model::LoanPurpose")]
pub(crate) enum LoanPurpose {
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

/// Where a loan is in its life on the marketplace.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LoanStatus {
    /// Listed and open for investment.
    Open,
    /// Fully funded, no longer open.
    Funded,
    /// Withdrawn, expired or otherwise closed.
    Closed,
    /// A state finmesh does not model; `statusRaw` has the platform's value.
    Other,
}

/// The domain loan, as GraphQL shows it.
pub(crate) struct Loan(pub model::Loan);

impl From<model::Loan> for Loan {
    fn from(loan: model::Loan) -> Self {
        Loan(loan)
    }
}

/// The loan a record points at, looked up when a query selects it. A failure
/// is an error on that field alone (which is null); null without an error
/// when the record names no loan.
pub(crate) async fn loan_of(ctx: &Context<'_>, id: Option<&GlobalId>) -> Option<Loan> {
    let lookup = async {
        let Some(id) = id else {
            return Ok(None);
        };
        Ok(Some(Loan(load_loan(ctx, id).await?)))
    };
    or_null(ctx, lookup.await)
}

/// A loan listed on a platform's marketplace. Fields a platform does not
/// publish are null.
#[Object]
impl Loan {
    /// Global id, `provider:loan:native-id`.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// The id of the provider instance that lists the loan.
    async fn provider(&self) -> &str {
        self.0.provider().as_str()
    }

    /// The platform's own id of the loan.
    async fn native_id(&self) -> &str {
        self.0.id.native()
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    /// The borrower's story, as published.
    async fn story(&self) -> Option<&str> {
        self.0.story.as_deref()
    }

    async fn purpose(&self) -> LoanPurpose {
        self.0.purpose.into()
    }

    /// The platform's own purpose value, e.g. `AUTO_MOTO`.
    async fn purpose_raw(&self) -> Option<&str> {
        self.0.purpose_raw.as_deref()
    }

    /// The platform's risk rating, e.g. `AAA` or `B`.
    async fn rating(&self) -> Option<&str> {
        self.0.rating.as_deref()
    }

    /// Yearly interest rate the borrower pays, as a fraction (`"0.0599"` is 5.99%).
    async fn interest_rate(&self) -> Decimal {
        Decimal(self.0.interest_rate)
    }

    /// Yearly rate an investor earns after platform fees, as a fraction.
    async fn revenue_rate(&self) -> Option<Decimal> {
        self.0.revenue_rate.map(Decimal)
    }

    async fn term_months(&self) -> u32 {
        self.0.term_months
    }

    /// The whole loan amount.
    async fn amount(&self) -> Money {
        self.0.amount.into()
    }

    /// What is still open for investment.
    async fn remaining_amount(&self) -> Option<Money> {
        self.0.remaining_amount.map(Money::from)
    }

    /// ISO 4217 code of the loan's currency.
    async fn currency(&self) -> String {
        self.0.currency().to_string()
    }

    /// ISO 3166-1 alpha-2 code of the borrower's country.
    async fn country(&self) -> Option<&str> {
        self.0.country.as_deref()
    }

    async fn published_at(&self) -> Option<DateTime<Utc>> {
        self.0.published_at
    }

    /// When the listing closes.
    async fn deadline(&self) -> Option<DateTime<Utc>> {
        self.0.deadline
    }

    async fn status(&self) -> LoanStatus {
        match self.0.status {
            model::LoanStatus::Open => LoanStatus::Open,
            model::LoanStatus::Funded => LoanStatus::Funded,
            model::LoanStatus::Closed => LoanStatus::Closed,
            model::LoanStatus::Other(_) => LoanStatus::Other,
        }
    }

    /// The platform's own status when `status` is `OTHER`.
    async fn status_raw(&self) -> Option<&str> {
        match &self.0.status {
            model::LoanStatus::Other(raw) => Some(raw),
            _ => None,
        }
    }

    /// The loan's page on the platform.
    async fn url(&self) -> Option<&str> {
        self.0.url.as_deref()
    }

    async fn borrower_region(&self) -> Option<&str> {
        self.0.borrower_region.as_deref()
    }

    async fn borrower_income_type(&self) -> Option<&str> {
        self.0.borrower_income_type.as_deref()
    }

    /// Whether the loan is insured against the borrower's default.
    async fn insured(&self) -> Option<bool> {
        self.0.insured
    }

    /// How many investments the loan has received.
    async fn investments_count(&self) -> Option<u32> {
        self.0.investments_count
    }

    /// The platform's record as it sent it, for fields finmesh does not model.
    async fn raw(&self) -> Json {
        Json(self.0.raw.clone())
    }
}
