//! Loan parts for sale on the platforms' secondary markets.

use async_graphql::{Context, ID, Object};
use chrono::{DateTime, Utc};
use finmesh_core::model;

use crate::decimal::Decimal;
use crate::json::Json;
use crate::loan::{Loan, loan_of};
use crate::money::Money;

/// The domain offer, as GraphQL shows it.
pub(crate) struct Offer(pub model::Offer);

impl From<model::Offer> for Offer {
    fn from(offer: model::Offer) -> Self {
        Offer(offer)
    }
}

/// A loan part offered for sale on a secondary market. Fields a platform does
/// not publish are null.
#[Object]
impl Offer {
    /// Global id, `provider:offer:native-id`.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// The id of the provider instance that lists the offer.
    async fn provider(&self) -> &str {
        self.0.provider().as_str()
    }

    /// The platform's own id of the offer.
    async fn native_id(&self) -> &str {
        self.0.id.native()
    }

    /// Global id of the loan the part belongs to, for `loan(id:)`.
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

    /// Principal the buyer would own.
    async fn principal_remaining(&self) -> Money {
        self.0.principal_remaining.into()
    }

    /// What the buyer pays.
    async fn price(&self) -> Money {
        self.0.price.into()
    }

    /// `1 - price / principalRemaining`, as a fraction: positive is a
    /// discount, negative a premium (`"0.05"` is 5% off).
    async fn discount(&self) -> Decimal {
        Decimal(self.0.discount)
    }

    /// Yearly interest rate of the loan, as a fraction (`"0.0599"` is 5.99%).
    async fn interest_rate(&self) -> Option<Decimal> {
        self.0.interest_rate.map(Decimal)
    }

    /// The platform's risk rating, e.g. `AAA` or `B`.
    async fn rating(&self) -> Option<&str> {
        self.0.rating.as_deref()
    }

    async fn listed_at(&self) -> Option<DateTime<Utc>> {
        self.0.listed_at
    }

    /// ISO 4217 code of the offer's currency.
    async fn currency(&self) -> String {
        self.0.currency().to_string()
    }

    /// The platform's record as it sent it, for fields finmesh does not model.
    async fn raw(&self) -> Json {
        Json(self.0.raw.clone())
    }
}
