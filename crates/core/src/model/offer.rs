//! A loan part offered for sale on a secondary market.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

use crate::id::{GlobalId, ProviderId};
use crate::money::{Currency, Money};

#[derive(Debug, Clone, PartialEq)]
pub struct Offer {
    pub id: GlobalId,
    /// The loan the offered part belongs to.
    pub loan_id: Option<GlobalId>,
    pub loan_name: Option<String>,
    /// Principal the buyer would own.
    pub principal_remaining: Money,
    /// What the buyer pays.
    pub price: Money,
    /// `1 - price / principal`: positive is a discount, negative a premium (0.05 is 5% off).
    pub discount: Decimal,
    /// Yearly interest rate of the loan, as a fraction.
    pub interest_rate: Option<Decimal>,
    pub rating: Option<String>,
    pub listed_at: Option<DateTime<Utc>>,
    pub raw: Arc<serde_json::Value>,
}

impl Offer {
    pub fn provider(&self) -> &ProviderId {
        self.id.provider()
    }

    pub fn currency(&self) -> Currency {
        self.price.currency
    }
}
