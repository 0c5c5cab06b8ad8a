//! Unified filters and orders in Zonky's terms: `field__op=value` query
//! parameters and the `X-Order` header.

use chrono::{DateTime, SecondsFormat, Utc};
use finmesh_core::query::{
    Bounds, Direction, InvestmentFilter, InvestmentOrderField, LoanFilter, LoanOrderField, OrderKey,
};

use crate::wire::{INVESTMENT_STATUSES, SELL_STATUSES, platform_value, zonky_purpose};

/// What one list request carries besides paging.
#[derive(Debug, Clone, PartialEq)]
pub struct ListParams {
    pub filters: Vec<(String, String)>,
    pub order: Option<String>,
}

/// Zonky's names for the unified fields it can filter or sort on.
const FIELDS: [(&str, &str); 6] = [
    ("interestRate", "filter.interestRate"),
    ("termInMonths", "filter.termMonths"),
    ("rating", "filter.ratings"),
    ("purpose", "filter.purposes"),
    ("insuranceActive", "filter.insured"),
    ("datePublished", "filter.publishedAt"),
];

/// The caller-facing field for a property Zonky refused.
pub fn unified_field_name(property: &str, operation: Option<&str>) -> String {
    if operation == Some("X-Order") {
        return "orderBy".to_string();
    }
    FIELDS
        .iter()
        .find(|(zonky, _)| *zonky == property)
        .map_or_else(|| "filter".to_string(), |(_, unified)| unified.to_string())
}

/// Builds the request parameters for the pushed-down part of a query. `None`
/// when the filter can match nothing on Zonky (only purposes Zonky lacks).
pub fn marketplace_params(
    filter: &LoanFilter,
    order: &[OrderKey<LoanOrderField>],
) -> Option<ListParams> {
    let mut filters = Vec::new();
    if let Some(bounds) = &filter.interest_rate {
        push_bounds(&mut filters, "interestRate", bounds, |v| {
            v.normalize().to_string()
        });
    }
    if let Some(bounds) = &filter.term_months {
        push_bounds(&mut filters, "termInMonths", bounds, u32::to_string);
    }
    if let Some(ratings) = &filter.ratings {
        filters.push((
            "rating__in".into(),
            json_list(ratings.iter().map(String::as_str)),
        ));
    }
    if let Some(purposes) = &filter.purposes {
        let zonky: Vec<&str> = purposes.iter().filter_map(|p| zonky_purpose(*p)).collect();
        if zonky.is_empty() {
            return None;
        }
        filters.push(("purpose__in".into(), json_list(zonky.into_iter())));
    }
    if let Some(insured) = filter.insured {
        filters.push(("insuranceActive__eq".into(), insured.to_string()));
    }
    if let Some(bounds) = &filter.published_at {
        push_bounds(&mut filters, "datePublished", bounds, timestamp);
    }
    let order = x_order(order.iter().map(|key| {
        let field = match key.field {
            LoanOrderField::InterestRate => "interestRate",
            LoanOrderField::TermMonths => "termInMonths",
            LoanOrderField::PublishedAt => "datePublished",
            LoanOrderField::RemainingAmount => "remainingInvestment",
            // Not sortable on Zonky; capabilities keep it from being pushed.
            LoanOrderField::Deadline => "deadline",
        };
        (field, key.direction)
    }));
    Some(ListParams { filters, order })
}

/// Builds the request parameters for the pushed-down part of an investments
/// query (`/me/investments` table). `None` when nothing on Zonky can match.
pub fn investment_params(
    filter: &InvestmentFilter,
    order: &[OrderKey<InvestmentOrderField>],
) -> Option<ListParams> {
    let mut filters = Vec::new();
    if let Some(statuses) = &filter.statuses {
        let zonky: Vec<&str> = statuses
            .iter()
            .filter_map(|s| platform_value(&INVESTMENT_STATUSES, s))
            .collect();
        if zonky.is_empty() {
            return None;
        }
        // Statuses Zonky cannot filter on are left to the local check.
        if zonky.len() == statuses.len() {
            filters.push(("investmentStatus__in".into(), json_list(zonky.into_iter())));
        }
    }
    if let Some(statuses) = &filter.sell_statuses {
        let zonky: Vec<&str> = statuses
            .iter()
            .filter_map(|s| platform_value(&SELL_STATUSES, s))
            .collect();
        if zonky.is_empty() {
            return None;
        }
        if zonky.len() == statuses.len() {
            filters.push(("sellStatus__in".into(), json_list(zonky.into_iter())));
        }
    }
    if let Some(bounds) = &filter.purchased_at {
        push_bounds(&mut filters, "timeCreated", bounds, timestamp);
    }
    let order = x_order(order.iter().map(|key| {
        let field = match key.field {
            InvestmentOrderField::PurchasedAt => "timeCreated",
            InvestmentOrderField::PrincipalUnpaid => "unpaidPrincipal",
            InvestmentOrderField::InterestRate => "loan.interestRate",
            // Not sortable on Zonky; capabilities keep it from being pushed.
            InvestmentOrderField::NextPaymentDate => "nextPaymentDate",
        };
        (field, key.direction)
    }));
    Some(ListParams { filters, order })
}

/// `X-Order`: comma-separated fields, `-` for descending; `None` for no order.
fn x_order<'a>(keys: impl Iterator<Item = (&'a str, Direction)>) -> Option<String> {
    let keys: Vec<String> = keys
        .map(|(field, direction)| match direction {
            Direction::Asc => field.to_string(),
            Direction::Desc => format!("-{field}"),
        })
        .collect();
    (!keys.is_empty()).then(|| keys.join(","))
}

fn push_bounds<T>(
    filters: &mut Vec<(String, String)>,
    field: &str,
    bounds: &Bounds<T>,
    format: impl Fn(&T) -> String,
) {
    for (op, value) in [
        ("gt", &bounds.gt),
        ("gte", &bounds.gte),
        ("lt", &bounds.lt),
        ("lte", &bounds.lte),
    ] {
        if let Some(value) = value {
            filters.push((format!("{field}__{op}"), format(value)));
        }
    }
}

/// The document's list form: `["AAA","AA"]`.
fn json_list<'a>(values: impl Iterator<Item = &'a str>) -> String {
    serde_json::to_string(&values.collect::<Vec<_>>()).unwrap_or_default()
}

/// ISO-8601 with an explicit offset, as the document's filter examples.
fn timestamp(at: &DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use finmesh_core::model::LoanPurpose;
    use rust_decimal::Decimal;

    #[test]
    fn filters_become_field_op_parameters() {
        let filter = LoanFilter {
            interest_rate: Some(Bounds {
                gte: Some(Decimal::new(599, 4)),
                ..Default::default()
            }),
            term_months: Some(Bounds {
                lte: Some(48),
                ..Default::default()
            }),
            ratings: Some(vec!["AAA".into(), "AA".into()]),
            purposes: Some(vec![LoanPurpose::Vehicle, LoanPurpose::RealEstate]),
            insured: Some(true),
            published_at: Some(Bounds {
                gt: Some(Utc.with_ymd_and_hms(2016, 8, 20, 21, 59, 59).unwrap()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let order = [
            OrderKey::desc(LoanOrderField::InterestRate),
            OrderKey::asc(LoanOrderField::TermMonths),
        ];
        let params = marketplace_params(&filter, &order).unwrap();
        let pairs: Vec<(&str, &str)> = params
            .filters
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("interestRate__gte", "0.0599"),
                ("termInMonths__lte", "48"),
                ("rating__in", r#"["AAA","AA"]"#),
                ("purpose__in", r#"["AUTO_MOTO"]"#),
                ("insuranceActive__eq", "true"),
                ("datePublished__gt", "2016-08-20T21:59:59.000+00:00"),
            ]
        );
        assert_eq!(params.order.as_deref(), Some("-interestRate,termInMonths"));
    }

    #[test]
    fn purposes_zonky_lacks_match_nothing() {
        let filter = LoanFilter {
            purposes: Some(vec![LoanPurpose::RealEstate]),
            ..Default::default()
        };
        assert_eq!(marketplace_params(&filter, &[]), None);
    }

    #[test]
    fn refused_properties_name_the_unified_field() {
        assert_eq!(
            unified_field_name("termInMonths", Some("gt")),
            "filter.termMonths"
        );
        assert_eq!(unified_field_name("amount", Some("X-Order")), "orderBy");
    }
}
