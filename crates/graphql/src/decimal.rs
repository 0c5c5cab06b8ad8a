//! The `Decimal` scalar: exact decimal numbers, in and out.

use async_graphql::{InputValueError, InputValueResult, Scalar, ScalarType, Value};

/// An exact decimal number.
///
/// Our own scalar rather than async-graphql's for `rust_decimal::Decimal`,
/// which reads a JSON number through `f64` and so silently changes amounts
/// with more than about 15 significant digits. Here a number keeps the digits
/// it was sent with (the workspace reads JSON numbers exactly), and a value
/// that does not fit exactly is refused rather than rounded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Decimal(pub rust_decimal::Decimal);

/// An exact decimal number. Results are strings (`"1500.50"`, `"0.0599"`) so no
/// client reads them as a float by accident; arguments may be strings or JSON
/// numbers, which are read digit for digit (a number written in the query
/// text itself may pass through a float first: prefer strings or variables).
#[Scalar(name = "Decimal")]
impl ScalarType for Decimal {
    fn parse(value: Value) -> InputValueResult<Self> {
        let text = match &value {
            Value::String(text) => text.clone(),
            Value::Number(number) => number.to_string(),
            _ => return Err(InputValueError::expected_type(value)),
        };
        parse_exact(text.trim()).map(Decimal).ok_or_else(|| {
            InputValueError::custom(format!(
                "{text:?} is not an exact decimal number such as \"12.50\" (at most 28 digits)"
            ))
        })
    }

    fn is_valid(value: &Value) -> bool {
        matches!(value, Value::String(_) | Value::Number(_))
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_string())
    }
}

/// Plain (`12.50`) or scientific (`1.25e1`) notation, without rounding.
fn parse_exact(text: &str) -> Option<rust_decimal::Decimal> {
    if let Ok(exact) = rust_decimal::Decimal::from_str_exact(text) {
        return Some(exact);
    }
    if !text.contains(['e', 'E']) {
        return None;
    }
    let scientific = rust_decimal::Decimal::from_scientific(text).ok()?;
    // `from_scientific` may round; keep it only if it loses no digit.
    let mantissa = text.split(['e', 'E']).next()?;
    let digits = |s: &str| {
        s.trim_start_matches(['-', '+'])
            .replace('.', "")
            .trim_start_matches('0')
            .trim_end_matches('0')
            .len()
    };
    let kept = scientific.normalize().to_string();
    (digits(mantissa) == digits(&kept)).then_some(scientific)
}

impl From<rust_decimal::Decimal> for Decimal {
    fn from(value: rust_decimal::Decimal) -> Self {
        Decimal(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(value: Value) -> Option<String> {
        <Decimal as ScalarType>::parse(value)
            .ok()
            .map(|d| d.0.to_string())
    }

    #[test]
    fn numbers_and_strings_keep_every_digit() {
        let number = |text: &str| Value::Number(serde_json::from_str(text).unwrap());
        assert_eq!(
            parse(number("12345678901234567.89")).as_deref(),
            Some("12345678901234567.89")
        );
        assert_eq!(parse(number("0.10")).as_deref(), Some("0.10"));
        assert_eq!(parse(number("1.25e1")).as_deref(), Some("12.5"));
        assert_eq!(parse(number("-3")).as_deref(), Some("-3"));
        assert_eq!(
            parse(Value::String("1500.50".into())).as_deref(),
            Some("1500.50")
        );
    }

    #[test]
    fn what_does_not_fit_exactly_is_refused() {
        for text in ["1.00000000000000000000000000001", "abc", "", "1e-40", "NaN"] {
            assert_eq!(parse(Value::String(text.into())), None, "{text}");
        }
        assert_eq!(parse(Value::Boolean(true)), None);
    }
}
