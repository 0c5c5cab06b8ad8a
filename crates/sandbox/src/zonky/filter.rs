//! Ordering (`X-Order`) and filtering (`${field}__${op}=${value}`) of any
//! listing, as its table in the document allows them: each listing describes
//! its table as a [`Column`] (see `columns.rs`).

use std::{borrow::Cow, cmp::Ordering, fmt, str::FromStr};

use chrono::{
    DateTime, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, TimeZone, Utc,
};
use chrono_tz::Europe::Prague;
use rust_decimal::Decimal;

use super::error::ApiError;

/// A column of a listing's sorting and filtering table (the document gives
/// one per listing): its name on the wire, its type, what it allows and its
/// value in a record.
pub(crate) trait Column: Copy + fmt::Debug + PartialEq + 'static {
    type Record;
    /// Every column of the table.
    const ALL: &'static [Self];
    fn name(self) -> &'static str;
    fn kind(self) -> Kind;
    fn sortable(self) -> bool;
    fn filterable(self) -> bool;
    /// The record's value of the column; `None` is null.
    fn value(self, record: &Self::Record) -> Option<Scalar>;
    /// The record's id, which breaks ties in every order.
    fn id(record: &Self::Record) -> u64;
    /// The values an enum operand stands for: itself, unless the member is
    /// a group of others (as `loanHealth`'s `CURRENTLY_IN_DUE`).
    fn members_of(self, member: &'static str) -> Vec<&'static str> {
        vec![member]
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|column| column.name() == name)
    }
}

/// The type of a column, which decides the operations it takes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Kind {
    Instant,
    Number,
    Boolean,
    /// An enum with these members.
    Enum(&'static [&'static str]),
    /// A string. (`rating` is typed string by the document, and its `in`
    /// example shows it also used as an enum.)
    Text,
    /// A collection of enum members: `incomes`, whose only member is the
    /// loan's main income type.
    EnumSet(&'static [&'static str]),
}

/// A field's value or a filter's operand. Values of one field are always the
/// same variant, so the derived order compares them naturally: instants in
/// time, numbers exactly, `false` before `true`, strings (enum members
/// included) by their wire spelling.
#[derive(Clone, Debug, PartialEq, PartialOrd)]
pub(crate) enum Scalar {
    Instant(DateTime<Utc>),
    Number(Decimal),
    Boolean(bool),
    Text(Cow<'static, str>),
}

/// A filter's operation suffix, as in the document's table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operation {
    Contains,
    IContains,
    StartsWith,
    IStartsWith,
    EndsWith,
    IEndsWith,
    In,
    Eq,
    NotEq,
    Gt,
    Gte,
    GteOrNull,
    Lt,
    Lte,
    LteOrNull,
    ContainsAll,
    ContainsAny,
}

impl Operation {
    const ALL: [Self; 17] = [
        Self::Contains,
        Self::IContains,
        Self::StartsWith,
        Self::IStartsWith,
        Self::EndsWith,
        Self::IEndsWith,
        Self::In,
        Self::Eq,
        Self::NotEq,
        Self::Gt,
        Self::Gte,
        Self::GteOrNull,
        Self::Lt,
        Self::Lte,
        Self::LteOrNull,
        Self::ContainsAll,
        Self::ContainsAny,
    ];

    fn suffix(self) -> &'static str {
        match self {
            Self::Contains => "contains",
            Self::IContains => "icontains",
            Self::StartsWith => "startswith",
            Self::IStartsWith => "istartswith",
            Self::EndsWith => "endswith",
            Self::IEndsWith => "iendswith",
            Self::In => "in",
            Self::Eq => "eq",
            Self::NotEq => "noteq",
            Self::Gt => "gt",
            Self::Gte => "gte",
            Self::GteOrNull => "gteornull",
            Self::Lt => "lt",
            Self::Lte => "lte",
            Self::LteOrNull => "lteornull",
            Self::ContainsAll => "containsall",
            Self::ContainsAny => "containsany",
        }
    }

    fn from_suffix(suffix: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|operation| operation.suffix() == suffix)
    }

    /// The document's "possible data types" column.
    fn applies_to(self, kind: Kind) -> bool {
        use Operation::*;
        match kind {
            Kind::Instant | Kind::Number => {
                matches!(
                    self,
                    Eq | NotEq | Gt | Gte | GteOrNull | Lt | Lte | LteOrNull
                )
            }
            Kind::Boolean => matches!(self, Eq | NotEq),
            Kind::Enum(_) => matches!(self, In | Eq | NotEq),
            Kind::Text => matches!(
                self,
                Contains
                    | IContains
                    | StartsWith
                    | IStartsWith
                    | EndsWith
                    | IEndsWith
                    | In
                    | Eq
                    | NotEq
            ),
            Kind::EnumSet(_) => matches!(self, In | Eq | NotEq | ContainsAll | ContainsAny),
        }
    }
}

/// One `field__op=value` query parameter, parsed.
#[derive(Debug)]
pub(crate) struct Filter<C> {
    column: C,
    test: Test,
}

#[derive(Debug)]
enum Test {
    /// eq, noteq, gt, gte, lt, lte; the `ornull` forms also take a null value.
    Compare {
        accepts: fn(Ordering) -> bool,
        or_null: bool,
        operand: Scalar,
    },
    /// noteq: anything but the operand, null included.
    NotEqual(Scalar),
    /// contains, startswith, endswith; the case-insensitive forms compare
    /// lower-cased text (the operand is lower-cased once, here).
    Text {
        position: TextPosition,
        ignore_case: bool,
        operand: String,
    },
    /// in and containsany, and eq on an enum: the value (each member, for a
    /// collection) is one of these.
    AnyOf(Vec<String>),
    /// noteq on an enum: the value is none of these (null included).
    NoneOf(Vec<String>),
    /// containsall: the collection holds every one of these.
    AllOf(Vec<String>),
}

#[derive(Clone, Copy, Debug)]
enum TextPosition {
    Anywhere,
    Start,
    End,
}

impl<C: Column> Filter<C> {
    /// Parses the filter `{property}__{suffix}={raw}`.
    pub(crate) fn parse(property: &str, suffix: &str, raw: &str) -> Result<Self, ApiError> {
        let not_allowed = || ApiError::invalid_filter(property, suffix);
        let column = C::from_name(property)
            .filter(|column| column.filterable())
            .ok_or_else(not_allowed)?;
        let kind = column.kind();
        let operation = Operation::from_suffix(suffix)
            .filter(|operation| operation.applies_to(kind))
            .ok_or_else(not_allowed)?;
        let invalid = |description| ApiError::invalid_value(property, suffix, description);

        // An enum's members, with each group replaced by what it stands for.
        if let Kind::Enum(members) = kind
            && matches!(operation, Operation::Eq | Operation::NotEq | Operation::In)
        {
            let listed = if operation == Operation::In {
                parse_members(kind, raw).map_err(invalid)?
            } else {
                vec![raw.to_owned()]
            };
            let mut expanded = Vec::new();
            for item in &listed {
                let item = member(members, item).map_err(invalid)?;
                expanded.extend(column.members_of(item).into_iter().map(str::to_owned));
            }
            let test = if operation == Operation::NotEq {
                Test::NoneOf(expanded)
            } else {
                Test::AnyOf(expanded)
            };
            return Ok(Self { column, test });
        }

        let compare = |accepts: fn(Ordering) -> bool, or_null| {
            Ok(Test::Compare {
                accepts,
                or_null,
                operand: parse_operand(kind, raw).map_err(invalid)?,
            })
        };
        let text = |position, ignore_case| {
            let operand = if ignore_case {
                raw.to_lowercase()
            } else {
                raw.to_owned()
            };
            Ok(Test::Text {
                position,
                ignore_case,
                operand,
            })
        };
        let test = match operation {
            Operation::Eq => compare(Ordering::is_eq, false),
            Operation::NotEq => Ok(Test::NotEqual(parse_operand(kind, raw).map_err(invalid)?)),
            Operation::Gt => compare(Ordering::is_gt, false),
            Operation::Gte => compare(Ordering::is_ge, false),
            Operation::GteOrNull => compare(Ordering::is_ge, true),
            Operation::Lt => compare(Ordering::is_lt, false),
            Operation::Lte => compare(Ordering::is_le, false),
            Operation::LteOrNull => compare(Ordering::is_le, true),
            Operation::Contains => text(TextPosition::Anywhere, false),
            Operation::IContains => text(TextPosition::Anywhere, true),
            Operation::StartsWith => text(TextPosition::Start, false),
            Operation::IStartsWith => text(TextPosition::Start, true),
            Operation::EndsWith => text(TextPosition::End, false),
            Operation::IEndsWith => text(TextPosition::End, true),
            Operation::In | Operation::ContainsAny => {
                Ok(Test::AnyOf(parse_members(kind, raw).map_err(invalid)?))
            }
            Operation::ContainsAll => Ok(Test::AllOf(parse_members(kind, raw).map_err(invalid)?)),
        }?;
        Ok(Self { column, test })
    }

    pub(crate) fn matches(&self, record: &C::Record) -> bool {
        let value = self.column.value(record);
        match (&self.test, value) {
            (Test::Compare { or_null, .. }, None) => *or_null,
            (
                Test::Compare {
                    accepts, operand, ..
                },
                Some(value),
            ) => value.partial_cmp(operand).is_some_and(accepts),
            (Test::NotEqual(operand), value) => value.as_ref() != Some(operand),
            (
                Test::Text {
                    position,
                    ignore_case,
                    operand,
                },
                Some(Scalar::Text(value)),
            ) => {
                let value = if *ignore_case {
                    value.to_lowercase().into()
                } else {
                    value
                };
                match position {
                    TextPosition::Anywhere => value.contains(operand.as_str()),
                    TextPosition::Start => value.starts_with(operand.as_str()),
                    TextPosition::End => value.ends_with(operand.as_str()),
                }
            }
            (Test::AnyOf(members), Some(Scalar::Text(value))) => {
                members.iter().any(|member| *member == value)
            }
            (Test::NoneOf(members), Some(Scalar::Text(value))) => {
                !members.iter().any(|member| *member == value)
            }
            (Test::NoneOf(_), None) => true,
            (Test::AllOf(members), Some(Scalar::Text(value))) => {
                members.iter().all(|member| *member == value)
            }
            // Text operations on anything else (never built: see `applies_to`).
            (Test::Text { .. } | Test::AnyOf(_) | Test::NoneOf(_) | Test::AllOf(_), _) => false,
        }
    }
}

/// Parses a single operand for a field of this kind.
fn parse_operand(kind: Kind, raw: &str) -> Result<Scalar, String> {
    match kind {
        Kind::Instant => parse_instant(raw).map(Scalar::Instant).ok_or_else(|| {
            format!("expected an ISO-8601 date or date-time such as 2016-08-20T23:59:59.000+02:00 or 2016-08-20, got {raw:?}")
        }),
        Kind::Number => parse_number(raw)
            .map(Scalar::Number)
            .ok_or_else(|| format!("expected a number, got {raw:?}")),
        Kind::Boolean => match raw.trim().to_ascii_lowercase().as_str() {
            "true" => Ok(Scalar::Boolean(true)),
            "false" => Ok(Scalar::Boolean(false)),
            _ => Err(format!("expected true or false, got {raw:?}")),
        },
        Kind::Enum(members) | Kind::EnumSet(members) => {
            member(members, raw).map(|member| Scalar::Text(member.into()))
        }
        Kind::Text => Ok(Scalar::Text(raw.to_owned().into())),
    }
}

/// Parses a list operand. The document writes lists as JSON arrays
/// (`["AAA","AA"]`); a plain comma-separated list (`AAA,AA`) is accepted too,
/// as clients commonly send that form.
fn parse_members(kind: Kind, raw: &str) -> Result<Vec<String>, String> {
    let raw = raw.trim();
    let items: Vec<String> = if raw.starts_with('[') {
        let items: Vec<serde_json::Value> = serde_json::from_str(raw)
            .map_err(|_| format!("expected a JSON array such as [\"AAA\",\"AA\"], got {raw:?}"))?;
        items
            .into_iter()
            .map(|item| match item {
                serde_json::Value::String(text) => Ok(text),
                serde_json::Value::Number(number) => Ok(number.to_string()),
                other => Err(format!("expected strings in the list, got {other}")),
            })
            .collect::<Result<_, _>>()?
    } else {
        raw.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(str::to_owned)
            .collect()
    };
    match kind {
        Kind::Enum(members) | Kind::EnumSet(members) => {
            for item in &items {
                member(members, item)?;
            }
            Ok(items)
        }
        _ => Ok(items),
    }
}

fn member(members: &'static [&'static str], raw: &str) -> Result<&'static str, String> {
    members
        .iter()
        .copied()
        .find(|member| *member == raw)
        .ok_or_else(|| format!("expected one of {}, got {raw:?}", members.join(", ")))
}

fn parse_number(raw: &str) -> Option<Decimal> {
    let raw = raw.trim();
    Decimal::from_str(raw)
        .or_else(|_| Decimal::from_scientific(raw))
        .ok()
}

/// Reads an ISO-8601 date-time with an offset, or a date-time or bare date
/// (meaning its start) without one, which is in Europe/Prague as the document
/// says.
pub(crate) fn parse_instant(raw: &str) -> Option<DateTime<Utc>> {
    // An offset's `+` that was not percent-encoded arrives as a space.
    let raw = raw.trim().replace(' ', "+");
    if let Ok(instant) = DateTime::parse_from_rfc3339(&raw) {
        return Some(instant.to_utc());
    }
    if let Ok(instant) = DateTime::parse_from_str(&raw, "%Y-%m-%dT%H:%M%:z") {
        return Some(instant.to_utc());
    }
    let local = NaiveDateTime::parse_from_str(&raw, "%Y-%m-%dT%H:%M:%S%.f")
        .or_else(|_| NaiveDateTime::parse_from_str(&raw, "%Y-%m-%dT%H:%M"))
        .or_else(|_| {
            NaiveDate::parse_from_str(&raw, "%Y-%m-%d").map(|date| date.and_time(NaiveTime::MIN))
        })
        .ok()?;
    in_prague(local)
}

/// A Prague wall-clock time as an instant, resolved as Java does: the earlier
/// of two in the autumn overlap, shifted past the spring gap.
fn in_prague(local: NaiveDateTime) -> Option<DateTime<Utc>> {
    match Prague.from_local_datetime(&local) {
        LocalResult::Single(instant) | LocalResult::Ambiguous(instant, _) => Some(instant.to_utc()),
        LocalResult::None => Prague
            .from_local_datetime(&(local + TimeDelta::hours(1)))
            .earliest()
            .map(|instant| instant.to_utc()),
    }
}

/// One key of an `X-Order` header.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SortKey<C> {
    pub(crate) column: C,
    descending: bool,
}

impl<C: Column> SortKey<C> {
    pub(crate) const fn new(column: C, descending: bool) -> Self {
        Self { column, descending }
    }

    /// Parses an `X-Order` header: field names separated by commas, each
    /// descending when prefixed with `-`.
    pub(crate) fn parse_header(header: &str) -> Result<Vec<Self>, ApiError> {
        header
            .split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                let (descending, name) = match item.strip_prefix('-') {
                    Some(name) => (true, name),
                    None => (false, item),
                };
                let column = C::from_name(name)
                    .filter(|column| column.sortable())
                    .ok_or_else(|| ApiError::invalid_filter(name, "X-Order"))?;
                Ok(Self { column, descending })
            })
            .collect()
    }
}

/// Orders records by the keys, nulls first when ascending, then by id
/// ascending so that the order is always the same.
pub(crate) fn compare<C: Column>(keys: &[SortKey<C>], a: &C::Record, b: &C::Record) -> Ordering {
    keys.iter()
        .map(|key| {
            let order = key
                .column
                .value(a)
                .partial_cmp(&key.column.value(b))
                .unwrap_or(Ordering::Equal);
            if key.descending {
                order.reverse()
            } else {
                order
            }
        })
        .find(|order| order.is_ne())
        .unwrap_or(Ordering::Equal)
        .then(C::id(a).cmp(&C::id(b)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zonky::columns::LoanColumn;

    fn utc(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text).unwrap().to_utc()
    }

    #[test]
    fn instants_with_and_without_offset() {
        let summer = utc("2016-08-20T21:59:59Z");
        assert_eq!(parse_instant("2016-08-20T23:59:59.000+02:00"), Some(summer));
        assert_eq!(parse_instant("2016-08-20T23:59:59.000 02:00"), Some(summer));
        assert_eq!(parse_instant("2016-08-20T21:59:59Z"), Some(summer));
        assert_eq!(parse_instant("2016-08-20T23:59:59"), Some(summer));
        assert_eq!(parse_instant("2016-08-20T23:59:59.000"), Some(summer));
        assert_eq!(
            parse_instant("2016-08-20T23:59+02:00"),
            Some(utc("2016-08-20T21:59:00Z"))
        );
        assert_eq!(
            parse_instant("2016-08-20"),
            Some(utc("2016-08-19T22:00:00Z"))
        );
        assert_eq!(
            parse_instant("2016-12-20"),
            Some(utc("2016-12-19T23:00:00Z"))
        );
        assert_eq!(parse_instant("2016-13-20"), None);
        assert_eq!(parse_instant("yesterday"), None);
    }

    #[test]
    fn prague_gaps_and_overlaps_resolve_like_java() {
        // 2024-03-31 02:30 does not exist in Prague; 2024-10-27 02:30 happens twice.
        assert_eq!(
            parse_instant("2024-03-31T02:30:00"),
            Some(utc("2024-03-31T01:30:00Z"))
        );
        assert_eq!(
            parse_instant("2024-10-27T02:30:00"),
            Some(utc("2024-10-27T00:30:00Z"))
        );
    }

    #[test]
    fn lists_in_both_forms() {
        let kind = LoanColumn::Rating.kind();
        assert_eq!(
            parse_members(kind, r#"["AAA","AA"]"#).unwrap(),
            ["AAA", "AA"]
        );
        assert_eq!(parse_members(kind, "AAA, AA").unwrap(), ["AAA", "AA"]);
        assert!(parse_members(kind, "[AAA").is_err());
        assert!(parse_members(LoanColumn::Purpose.kind(), "TRAVEL,SPACE").is_err());
    }

    #[test]
    fn operations_follow_the_types() {
        assert!(Filter::<LoanColumn>::parse("termInMonths", "gt", "24").is_ok());
        assert!(Filter::<LoanColumn>::parse("termInMonths", "contains", "2").is_err());
        assert!(Filter::<LoanColumn>::parse("covered", "gt", "true").is_err());
        assert!(Filter::<LoanColumn>::parse("purpose", "startswith", "AUTO").is_err());
        assert!(Filter::<LoanColumn>::parse("rating", "startswith", "AA").is_ok());
        assert!(Filter::<LoanColumn>::parse("incomes", "containsall", "EMPLOYMENT").is_ok());
        assert!(Filter::<LoanColumn>::parse("amount", "gt", "1").is_err());
        assert!(Filter::<LoanColumn>::parse("covered", "eq", "maybe").is_err());
    }
}
