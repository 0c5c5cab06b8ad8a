//! The signed-in user's investments and portfolio.

use async_graphql::{Context, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};
use finmesh_core::model;

use crate::date::Date;
use crate::decimal::Decimal;
use crate::json::Json;
use crate::loan::{Loan, loan_of};
use crate::money::Money;
use crate::status::{InvestmentStatus, LoanHealth, SellStatus};

/// The domain investment, as GraphQL shows it.
pub(crate) struct Investment(pub model::Investment);

impl From<model::Investment> for Investment {
    fn from(investment: model::Investment) -> Self {
        Investment(investment)
    }
}

/// A position the signed-in user holds in one loan. Fields a platform does
/// not report are null.
#[Object]
impl Investment {
    /// Global id, `provider:investment:native-id`.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// The id of the provider instance that holds the investment.
    async fn provider(&self) -> &str {
        self.0.provider().as_str()
    }

    /// The platform's own id of the investment.
    async fn native_id(&self) -> &str {
        self.0.id.native()
    }

    /// Global id of the loan, for `loan(id:)`.
    async fn loan_id(&self) -> Option<ID> {
        self.0.loan_id.as_ref().map(|id| ID(id.to_string()))
    }

    /// The loan, looked up at the platform when selected. A failed lookup is
    /// an error on this field only.
    #[graphql(complexity = "crate::limits::LOOKUP_COST + child_complexity")]
    async fn loan(&self, ctx: &Context<'_>) -> Option<Loan> {
        loan_of(ctx, self.0.loan_id.as_ref()).await
    }

    async fn loan_name(&self) -> Option<&str> {
        self.0.loan_name.as_deref()
    }

    /// Principal invested (or bought).
    async fn principal_total(&self) -> Money {
        self.0.principal_total.into()
    }

    /// Principal the borrower still owes.
    async fn principal_unpaid(&self) -> Money {
        self.0.principal_unpaid.into()
    }

    /// Principal the borrower has paid back.
    async fn principal_repaid(&self) -> Money {
        self.0.principal_repaid().into()
    }

    /// Interest expected over the life of the investment.
    async fn interest_total(&self) -> Option<Money> {
        self.0.interest_total.map(Money::from)
    }

    /// Interest expected but not yet paid.
    async fn interest_unpaid(&self) -> Option<Money> {
        self.0.interest_unpaid.map(Money::from)
    }

    /// Interest received so far.
    async fn interest_paid(&self) -> Option<Money> {
        self.0.interest_paid.map(Money::from)
    }

    /// Yearly interest rate of the loan, as a fraction (`"0.0599"` is 5.99%).
    async fn interest_rate(&self) -> Option<Decimal> {
        self.0.interest_rate.map(Decimal)
    }

    async fn status(&self) -> InvestmentStatus {
        InvestmentStatus::of(&self.0.status).0
    }

    /// The platform's own status when `status` is `OTHER`.
    async fn status_raw(&self) -> Option<&str> {
        InvestmentStatus::of(&self.0.status).1
    }

    async fn sell_status(&self) -> Option<SellStatus> {
        self.0.sell_status.as_ref().map(|s| SellStatus::of(s).0)
    }

    /// The platform's own sell status when `sellStatus` is `OTHER`.
    async fn sell_status_raw(&self) -> Option<&str> {
        self.0
            .sell_status
            .as_ref()
            .and_then(|s| SellStatus::of(s).1)
    }

    async fn loan_health(&self) -> Option<LoanHealth> {
        self.0.loan_health.as_ref().map(|h| LoanHealth::of(h).0)
    }

    /// The platform's own loan health when `loanHealth` is `OTHER`.
    async fn loan_health_raw(&self) -> Option<&str> {
        self.0
            .loan_health
            .as_ref()
            .and_then(|h| LoanHealth::of(h).1)
    }

    async fn next_payment_date(&self) -> Option<Date> {
        self.0.next_payment_date.map(Date)
    }

    /// What the investor paid, for parts bought on the secondary market.
    async fn purchase_price(&self) -> Option<Money> {
        self.0.purchase_price.map(Money::from)
    }

    async fn purchased_at(&self) -> Option<DateTime<Utc>> {
        self.0.purchased_at
    }

    /// ISO 4217 code of the investment's currency.
    async fn currency(&self) -> String {
        self.0.currency().to_string()
    }

    /// The platform's record as it sent it, for fields finmesh does not model.
    async fn raw(&self) -> Json {
        Json(self.0.raw.clone())
    }
}

/// One provider's part of the signed-in user's portfolio in one currency.
/// Amounts are in `currency`.
#[derive(SimpleObject)]
pub(crate) struct PortfolioEntry {
    provider: String,
    /// ISO 4217 code.
    currency: String,
    /// How many investments.
    investments: u64,
    /// Principal the borrowers still owe.
    principal_outstanding: Decimal,
    /// Principal paid back so far.
    principal_repaid: Decimal,
    /// Interest received so far.
    interest_repaid: Decimal,
    /// Interest still to come; null when the platform does not say.
    interest_outstanding: Option<Decimal>,
}

impl From<model::PortfolioSummary> for PortfolioEntry {
    fn from(summary: model::PortfolioSummary) -> Self {
        PortfolioEntry {
            provider: summary.provider.to_string(),
            currency: summary.currency.to_string(),
            investments: summary.investments,
            principal_outstanding: Decimal(summary.principal_outstanding),
            principal_repaid: Decimal(summary.principal_repaid),
            interest_repaid: Decimal(summary.interest_repaid),
            interest_outstanding: summary.interest_outstanding.map(Decimal),
        }
    }
}
