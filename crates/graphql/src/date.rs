//! The `Date` scalar: a calendar date without a time or zone.

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};
use chrono::NaiveDate;

/// A calendar date in ISO 8601 form, e.g. `2025-03-15`.
pub(crate) struct Date(pub NaiveDate);

/// A calendar date in ISO 8601 form (`2025-03-15`), without a time or zone.
#[Scalar(name = "Date")]
impl ScalarType for Date {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map(Date)
                .map_err(|_| InputValueError::custom("expected a date such as 2025-03-15")),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.format("%Y-%m-%d").to_string())
    }
}
