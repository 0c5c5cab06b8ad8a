//! Ordering (`X-Order`) and filtering (`${field}__${op}=${value}`) of the
//! marketplace, as the document's tables allow them.

use std::{borrow::Cow, cmp::Ordering, str::FromStr};

use chrono::{
    DateTime, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeDelta, TimeZone, Utc,
};
use chrono_tz::Europe::Prague;
use rust_decimal::Decimal;

use super::{
    data::{IncomeType, Loan, Purpose, WireEnum},
    error::ApiError,
};

/// A field of the marketplace's sorting and filtering table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Field {
    DatePublished,
    InterestRate,
    Covered,
    TermInMonths,
    Purpose,
    Rating,
    /// Filters on the loan's `mainIncomeType`; cannot order.
    Incomes,
    Topped,
    RemainingInvestment,
    /// `remainingInvestment - reservedAmount`, what anyone may still invest.
    NonReservedRemainingInvestment,
    InsuranceActive,
}

/// The type of a field, which decides the operations it takes.
#[derive(Clone, Copy, Debug)]
enum Kind {
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

impl Field {
    const ALL: [Self; 11] = [
        Self::DatePublished,
        Self::InterestRate,
        Self::Covered,
        Self::TermInMonths,
        Self::Purpose,
        Self::Rating,
        Self::Incomes,
        Self::Topped,
        Self::RemainingInvestment,
        Self::NonReservedRemainingInvestment,
        Self::InsuranceActive,
    ];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::DatePublished => "datePublished",
            Self::InterestRate => "interestRate",
            Self::Covered => "covered",
            Self::TermInMonths => "termInMonths",
            Self::Purpose => "purpose",
            Self::Rating => "rating",
            Self::Incomes => "incomes",
            Self::Topped => "topped",
            Self::RemainingInvestment => "remainingInvestment",
            Self::NonReservedRemainingInvestment => "nonReservedRemainingInvestment",
            Self::InsuranceActive => "insuranceActive",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|field| field.name() == name)
    }

    fn sortable(self) -> bool {
        self != Self::Incomes
    }

    fn kind(self) -> Kind {
        match self {
            Self::DatePublished => Kind::Instant,
            Self::InterestRate
            | Self::TermInMonths
            | Self::RemainingInvestment
            | Self::NonReservedRemainingInvestment => Kind::Number,
            Self::Covered | Self::Topped | Self::InsuranceActive => Kind::Boolean,
            Self::Purpose => Kind::Enum(Purpose::NAMES),
            Self::Rating => Kind::Text,
            Self::Incomes => Kind::EnumSet(IncomeType::NAMES),
        }
    }

    /// The loan's value of the field; `None` is null.
    fn value(self, loan: &Loan) -> Option<Scalar> {
        Some(match self {
            Self::DatePublished => Scalar::Instant(loan.date_published.to_utc()),
            Self::InterestRate => Scalar::Number(loan.interest_rate),
            Self::Covered => Scalar::Boolean(loan.covered),
            Self::TermInMonths => Scalar::Number(loan.term_in_months.into()),
            Self::Purpose => Scalar::Text(loan.purpose.as_str().into()),
            Self::Rating => Scalar::Text(loan.rating.as_str().into()),
            Self::Incomes => Scalar::Text(loan.main_income_type.as_str().into()),
            Self::Topped => Scalar::Boolean(loan.topped?),
            Self::RemainingInvestment => Scalar::Number(loan.remaining_investment),
            Self::NonReservedRemainingInvestment => {
                Scalar::Number(loan.remaining_investment - loan.reserved_amount)
            }
            Self::InsuranceActive => Scalar::Boolean(loan.insurance_active),
        })
    }
}

/// A field's value or a filter's operand. Values of one field are always the
/// same variant, so the derived order compares them naturally: instants in
/// time, numbers exactly, `false` before `true`, strings (enum members
/// included) by their wire spelling.
#[derive(Clone, Debug, PartialEq, PartialOrd)]
enum Scalar {
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
pub(crate) struct Filter {
    field: Field,
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
    /// in and containsany: the value (each member, for a collection) is one of these.
    AnyOf(Vec<String>),
    /// containsall: the collection holds every one of these.
    AllOf(Vec<String>),
}

#[derive(Clone, Copy, Debug)]
enum TextPosition {
    Anywhere,
    Start,
    End,
}

impl Filter {
    /// Parses the filter `{property}__{suffix}={raw}`.
    pub(crate) fn parse(property: &str, suffix: &str, raw: &str) -> Result<Self, ApiError> {
        let not_allowed = || ApiError::invalid_filter(property, suffix);
        let field = Field::from_name(property).ok_or_else(not_allowed)?;
        let kind = field.kind();
        let operation = Operation::from_suffix(suffix)
            .filter(|operation| operation.applies_to(kind))
            .ok_or_else(not_allowed)?;
        let invalid = |description| ApiError::invalid_value(property, suffix, description);

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
        Ok(Self { field, test })
    }

    pub(crate) fn matches(&self, loan: &Loan) -> bool {
        let value = self.field.value(loan);
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
            (Test::AllOf(members), Some(Scalar::Text(value))) => {
                members.iter().all(|member| *member == value)
            }
            // Text operations on anything else (never built: see `applies_to`).
            (Test::Text { .. } | Test::AnyOf(_) | Test::AllOf(_), _) => false,
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
pub(crate) struct SortKey {
    pub(crate) field: Field,
    descending: bool,
}

impl SortKey {
    /// The marketplace's order without `X-Order`: the newest loans first.
    pub(crate) const DEFAULT: Self = Self {
        field: Field::DatePublished,
        descending: true,
    };

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
                let field = Field::from_name(name)
                    .filter(|field| field.sortable())
                    .ok_or_else(|| ApiError::invalid_filter(name, "X-Order"))?;
                Ok(Self { field, descending })
            })
            .collect()
    }
}

/// Orders loans by the keys, nulls first when ascending, then by id ascending so
/// that the order is always the same.
pub(crate) fn compare(keys: &[SortKey], a: &Loan, b: &Loan) -> Ordering {
    keys.iter()
        .map(|key| {
            let order = key
                .field
                .value(a)
                .partial_cmp(&key.field.value(b))
                .unwrap_or(Ordering::Equal);
            if key.descending {
                order.reverse()
            } else {
                order
            }
        })
        .find(|order| order.is_ne())
        .unwrap_or(Ordering::Equal)
        .then(a.id.cmp(&b.id))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let kind = Field::Rating.kind();
        assert_eq!(
            parse_members(kind, r#"["AAA","AA"]"#).unwrap(),
            ["AAA", "AA"]
        );
        assert_eq!(parse_members(kind, "AAA, AA").unwrap(), ["AAA", "AA"]);
        assert!(parse_members(kind, "[AAA").is_err());
        assert!(parse_members(Field::Purpose.kind(), "TRAVEL,SPACE").is_err());
    }

    #[test]
    fn operations_follow_the_types() {
        assert!(Filter::parse("termInMonths", "gt", "24").is_ok());
        assert!(Filter::parse("termInMonths", "contains", "2").is_err());
        assert!(Filter::parse("covered", "gt", "true").is_err());
        assert!(Filter::parse("purpose", "startswith", "AUTO").is_err());
        assert!(Filter::parse("rating", "startswith", "AA").is_ok());
        assert!(Filter::parse("incomes", "containsall", "EMPLOYMENT").is_ok());
        assert!(Filter::parse("amount", "gt", "1").is_err());
        assert!(Filter::parse("covered", "eq", "maybe").is_err());
    }
}
