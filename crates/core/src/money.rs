//! Exact money: a decimal amount and an ISO 4217 currency. Never a float.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// An ISO 4217 alphabetic currency code, e.g. `CZK`, `EUR`, `USD`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Currency([u8; 3]);

impl Currency {
    pub const CZK: Currency = Currency(*b"CZK");
    pub const EUR: Currency = Currency(*b"EUR");
    pub const USD: Currency = Currency(*b"USD");

    pub fn as_str(&self) -> &str {
        // Constructed only from three ASCII uppercase letters.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }

    /// Digits after the decimal point in the currency's minor unit (ISO 4217).
    pub fn exponent(&self) -> u32 {
        match &self.0 {
            // Currencies without a minor unit.
            b"BIF" | b"CLP" | b"DJF" | b"GNF" | b"ISK" | b"JPY" | b"KMF" | b"KRW" | b"PYG"
            | b"RWF" | b"UGX" | b"UYI" | b"VND" | b"VUV" | b"XAF" | b"XOF" | b"XPF" => 0,
            // Currencies with a thousandth as minor unit.
            b"BHD" | b"IQD" | b"JOD" | b"KWD" | b"LYD" | b"OMR" | b"TND" => 3,
            _ => 2,
        }
    }
}

impl FromStr for Currency {
    type Err = Error;

    fn from_str(code: &str) -> Result<Self, Error> {
        match <[u8; 3]>::try_from(code.as_bytes()) {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_uppercase) => Ok(Currency(bytes)),
            _ => Err(Error::invalid_input(
                "currency",
                format!("invalid currency {code:?}: expected an ISO 4217 code such as EUR"),
            )),
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Currency {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        raw.parse().map_err(serde::de::Error::custom)
    }
}

/// An exact amount in a currency, in major units (`12.50 EUR`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Money {
    pub amount: Decimal,
    pub currency: Currency,
}

impl Money {
    pub fn new(amount: Decimal, currency: Currency) -> Self {
        Money { amount, currency }
    }

    /// From an integer count of minor units (cents), as payment APIs send them.
    pub fn from_minor(minor: i64, currency: Currency) -> Self {
        Money {
            amount: Decimal::new(minor, currency.exponent()),
            currency,
        }
    }

    /// To an integer count of minor units; refuses amounts finer than the minor unit.
    pub fn to_minor(&self) -> Result<i64, Error> {
        let scaled = self
            .amount
            .checked_mul(Decimal::from(10i64.pow(self.currency.exponent())))
            .ok_or_else(|| Error::invalid_input("amount", "amount is too large"))?;
        if !scaled.fract().is_zero() {
            return Err(Error::invalid_input(
                "amount",
                format!(
                    "{} has more than {} decimal places for {}",
                    self.amount,
                    self.currency.exponent(),
                    self.currency
                ),
            ));
        }
        i64::try_from(scaled).map_err(|_| Error::invalid_input("amount", "amount is too large"))
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.amount, self.currency)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rust_decimal_macros_free::dec;

    /// `Decimal` literals without pulling in a macro crate.
    mod rust_decimal_macros_free {
        pub fn dec(s: &str) -> rust_decimal::Decimal {
            s.parse().unwrap()
        }
    }

    #[test]
    fn minor_units_follow_the_currency_exponent() {
        assert_eq!(
            Money::from_minor(10_000, Currency::USD).amount,
            dec("100.00")
        );
        let jpy: Currency = "JPY".parse().unwrap();
        assert_eq!(Money::from_minor(500, jpy).amount, dec("500"));
        let kwd: Currency = "KWD".parse().unwrap();
        assert_eq!(Money::from_minor(1_234, kwd).amount, dec("1.234"));
        assert_eq!(
            Money::new(dec("12.5"), Currency::EUR).to_minor().unwrap(),
            1250
        );
    }

    #[test]
    fn sub_minor_amounts_are_refused() {
        let err = Money::new(dec("1.005"), Currency::USD)
            .to_minor()
            .unwrap_err();
        assert_eq!(err.field.as_deref(), Some("amount"));
    }

    #[test]
    fn currency_codes_are_validated() {
        assert!("usd".parse::<Currency>().is_err());
        assert!("EURO".parse::<Currency>().is_err());
        assert_eq!("CZK".parse::<Currency>().unwrap(), Currency::CZK);
    }

    #[test]
    fn json_numbers_stay_exact() {
        // More digits than an f64 holds: only an exact path keeps them.
        let amount: Decimal = serde_json::from_str("12345678901234567.89").unwrap();
        assert_eq!(amount.to_string(), "12345678901234567.89");
        let money: Money =
            serde_json::from_str(r#"{"amount": 152600.10, "currency": "CZK"}"#).unwrap();
        assert_eq!(money.amount, dec("152600.10"));
    }
}
