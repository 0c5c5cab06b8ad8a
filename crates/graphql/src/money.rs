//! Exact money, out and in.

use async_graphql::{InputObject, SimpleObject};
use finmesh_core::{Currency, Error};

use crate::decimal::Decimal;

/// An exact amount of money. `amount` is a decimal string in major units
/// (`"1500.50"`), `currency` an ISO 4217 code.
#[derive(SimpleObject)]
pub(crate) struct Money {
    amount: Decimal,
    currency: String,
}

impl From<finmesh_core::Money> for Money {
    fn from(money: finmesh_core::Money) -> Self {
        Money {
            amount: Decimal(money.amount),
            currency: money.currency.to_string(),
        }
    }
}

/// An exact amount of money to send; `amount` in major units (`"25.00"`).
#[derive(InputObject)]
pub(crate) struct MoneyInput {
    amount: Decimal,
    /// ISO 4217 code, e.g. `USD`.
    currency: String,
}

impl MoneyInput {
    /// Checks the currency code; `field` names this input in errors.
    pub(crate) fn into_money(self, field: &str) -> Result<finmesh_core::Money, Error> {
        let currency = parse_currency(&self.currency, &format!("{field}.currency"))?;
        Ok(finmesh_core::Money::new(self.amount.0, currency))
    }
}

/// An ISO 4217 code, or `INVALID_INPUT` naming `field`.
pub(crate) fn parse_currency(code: &str, field: &str) -> Result<Currency, Error> {
    code.parse::<Currency>().map_err(|e| e.with_field(field))
}
