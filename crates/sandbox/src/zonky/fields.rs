//! Partial responses: `?fields=id,url,photos.url,borrowerRelatedInfo.*` keeps
//! only the listed members of each object, with `.` for nested objects (or
//! the objects in a nested array) and `.*` for all of a nested object.

use std::collections::BTreeMap;

use serde_json::Value;

/// The members to keep, by name.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct FieldSelection(BTreeMap<String, Selection>);

#[derive(Debug, PartialEq)]
enum Selection {
    Everything,
    Members(FieldSelection),
}

impl FieldSelection {
    /// Parses a `fields` parameter; an empty one selects nothing in particular,
    /// so the whole response is kept (`None`).
    pub(crate) fn parse(raw: &str) -> Option<Self> {
        let mut selection = Self::default();
        for path in raw
            .split(',')
            .map(str::trim)
            .filter(|path| !path.is_empty())
        {
            selection.insert(&path.split('.').collect::<Vec<_>>());
        }
        (!selection.0.is_empty()).then_some(selection)
    }

    fn insert(&mut self, path: &[&str]) {
        let Some((name, rest)) = path.split_first() else {
            return;
        };
        let entry = self.0.entry((*name).to_owned());
        if matches!(rest, [] | ["*", ..]) {
            *entry.or_insert(Selection::Everything) = Selection::Everything;
        } else if let Selection::Members(members) =
            entry.or_insert_with(|| Selection::Members(Self::default()))
        {
            members.insert(rest);
        }
    }

    /// Keeps the selected members of an object, of each object in an array.
    pub(crate) fn apply(&self, value: Value) -> Value {
        match value {
            Value::Object(object) => Value::Object(
                object
                    .into_iter()
                    .filter_map(|(name, value)| {
                        let kept = match self.0.get(&name)? {
                            Selection::Everything => value,
                            Selection::Members(members) => members.apply(value),
                        };
                        Some((name, kept))
                    })
                    .collect(),
            ),
            Value::Array(items) => {
                Value::Array(items.into_iter().map(|item| self.apply(item)).collect())
            }
            scalar => scalar,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn loan() -> Value {
        json!({
            "id": 1,
            "url": "https://app.zonky.cz/loan/1",
            "photos": [{"name": "6", "url": "/loans/1/photos/2"}],
            "insuranceHistory": [],
        })
    }

    #[test]
    fn keeps_top_level_and_nested_members() {
        let pick = |fields| FieldSelection::parse(fields).unwrap().apply(loan());
        assert_eq!(
            pick("id,url"),
            json!({"id": 1, "url": "https://app.zonky.cz/loan/1"})
        );
        assert_eq!(
            pick("id,photos.url"),
            json!({"id": 1, "photos": [{"url": "/loans/1/photos/2"}]})
        );
        assert_eq!(
            pick("photos.*"),
            json!({"photos": [{"name": "6", "url": "/loans/1/photos/2"}]})
        );
        assert_eq!(
            pick("photos.url,photos"),
            json!({"photos": [{"name": "6", "url": "/loans/1/photos/2"}]})
        );
        assert_eq!(pick("nothing,id"), json!({"id": 1}));
        assert_eq!(
            FieldSelection::parse("id")
                .unwrap()
                .apply(json!([loan(), loan()])),
            json!([{"id": 1}, {"id": 1}])
        );
    }

    #[test]
    fn empty_selects_everything() {
        assert_eq!(FieldSelection::parse(""), None);
        assert_eq!(FieldSelection::parse(" , "), None);
    }
}
