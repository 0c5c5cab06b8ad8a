//! An investor's position in a loan, in terms no single platform owns.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;

use crate::id::{GlobalId, ProviderId};
use crate::money::{Currency, Money};

/// Where an investment is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum InvestmentStatus {
    /// Bid or reservation placed, loan not yet funded.
    Pending,
    /// Repaying.
    Active,
    /// Repaid in full.
    PaidOff,
    /// Sold on the secondary market.
    Sold,
    /// Written off or in default.
    Defaulted,
    /// A platform state we do not model, kept verbatim.
    Other(String),
}

/// Whether the investment can be sold on the secondary market.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SellStatus {
    Sellable,
    /// Sellable, but the platform charges a fee.
    SellableWithFee,
    NotSellable,
    /// Listed for sale now.
    Offered,
    Sold,
    Other(String),
}

/// How the borrower is paying.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum LoanHealth {
    /// Never late.
    Healthy,
    /// Late in the past, on time now.
    HistoricallyLate,
    /// Late now.
    Late,
    Other(String),
}

/// A position in one loan.
#[derive(Debug, Clone, PartialEq)]
pub struct Investment {
    pub id: GlobalId,
    pub loan_id: Option<GlobalId>,
    pub loan_name: Option<String>,
    /// Principal invested (or bought).
    pub principal_total: Money,
    /// Principal still owed by the borrower.
    pub principal_unpaid: Money,
    /// Interest expected over the life of the investment, when the platform says.
    pub interest_total: Option<Money>,
    /// Interest expected but not yet paid, when the platform says.
    pub interest_unpaid: Option<Money>,
    /// Interest received so far.
    pub interest_paid: Option<Money>,
    /// Yearly interest rate of the loan, as a fraction.
    pub interest_rate: Option<Decimal>,
    pub status: InvestmentStatus,
    pub sell_status: Option<SellStatus>,
    pub loan_health: Option<LoanHealth>,
    pub next_payment_date: Option<NaiveDate>,
    /// What the investor paid, for parts bought on the secondary market.
    pub purchase_price: Option<Money>,
    pub purchased_at: Option<DateTime<Utc>>,
    /// The platform's JSON for this investment.
    pub raw: Arc<serde_json::Value>,
}

impl Investment {
    pub fn provider(&self) -> &ProviderId {
        self.id.provider()
    }

    pub fn currency(&self) -> Currency {
        self.principal_total.currency
    }

    /// Principal the borrower has paid back.
    pub fn principal_repaid(&self) -> Money {
        Money::new(
            self.principal_total.amount - self.principal_unpaid.amount,
            self.currency(),
        )
    }
}

/// One provider's portfolio in one currency.
#[derive(Debug, Clone, PartialEq)]
pub struct PortfolioSummary {
    pub provider: ProviderId,
    pub currency: Currency,
    pub investments: u64,
    pub principal_outstanding: Decimal,
    pub principal_repaid: Decimal,
    pub interest_repaid: Decimal,
    /// `None` when the platform does not say how much interest is still to come.
    pub interest_outstanding: Option<Decimal>,
}

impl PortfolioSummary {
    /// Sums investments per currency; the fallback for platforms without a summary endpoint.
    pub fn from_investments<'a>(
        provider: &ProviderId,
        investments: impl IntoIterator<Item = &'a Investment>,
    ) -> Vec<PortfolioSummary> {
        let mut by_currency: Vec<PortfolioSummary> = Vec::new();
        for investment in investments {
            let currency = investment.currency();
            let index = match by_currency.iter().position(|s| s.currency == currency) {
                Some(index) => index,
                None => {
                    by_currency.push(PortfolioSummary {
                        provider: provider.clone(),
                        currency,
                        investments: 0,
                        principal_outstanding: Decimal::ZERO,
                        principal_repaid: Decimal::ZERO,
                        interest_repaid: Decimal::ZERO,
                        interest_outstanding: Some(Decimal::ZERO),
                    });
                    by_currency.len() - 1
                }
            };
            let summary = &mut by_currency[index];
            summary.investments += 1;
            summary.principal_outstanding += investment.principal_unpaid.amount;
            summary.principal_repaid += investment.principal_repaid().amount;
            let paid = investment.interest_paid.map(|m| m.amount).or_else(|| {
                Some(investment.interest_total?.amount - investment.interest_unpaid?.amount)
            });
            summary.interest_repaid += paid.unwrap_or_default();
            summary.interest_outstanding = summary
                .interest_outstanding
                .zip(investment.interest_unpaid)
                .map(|(sum, unpaid)| sum + unpaid.amount);
        }
        by_currency
    }
}
