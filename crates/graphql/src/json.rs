//! The `JSON` scalar for the platforms' raw records.

use std::sync::Arc;

use async_graphql::{InputValueResult, Name, Scalar, ScalarType, Value};

/// A platform's record exactly as it sent it, for fields finmesh does not model.
///
/// Converted by hand rather than through serde: the workspace keeps JSON numbers
/// exact (`serde_json/arbitrary_precision`), and a serde round trip through
/// async-graphql's value type would turn such numbers into objects.
pub(crate) struct Json(pub Arc<serde_json::Value>);

/// Any JSON value, passed through as the platform sent it.
#[Scalar(name = "JSON")]
impl ScalarType for Json {
    fn parse(value: Value) -> InputValueResult<Self> {
        Ok(Json(Arc::new(value.into_json()?)))
    }

    fn to_value(&self) -> Value {
        to_value(&self.0)
    }
}

pub(crate) fn to_value(json: &serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Boolean(*b),
        serde_json::Value::Number(n) => Value::Number(n.clone()),
        serde_json::Value::String(s) => Value::String(s.clone()),
        serde_json::Value::Array(items) => Value::List(items.iter().map(to_value).collect()),
        serde_json::Value::Object(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, value)| (Name::new(key), to_value(value)))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_every_digit() {
        let raw: serde_json::Value =
            serde_json::from_str(r#"{"amount": 152600.10, "rate": 0.059900, "tags": [1, null]}"#)
                .unwrap();
        let value = Json(Arc::new(raw)).to_value();
        assert_eq!(
            serde_json::to_string(&value).unwrap(),
            r#"{"amount":152600.10,"rate":0.059900,"tags":[1,null]}"#
        );
    }
}
