//! Zonky's JSON, as its API document describes it, and its mapping to the
//! unified model.

use std::sync::Arc;

use chrono::NaiveDate;
use chrono_tz::Europe::Prague;
use finmesh_core::model::{
    Investment, InvestmentStatus, Loan, LoanHealth, LoanPurpose, LoanStatus, SellStatus,
};
use finmesh_core::time::parse_timestamp;
use finmesh_core::{Currency, EntityKind, Error, GlobalId, Money, ProviderId};
use rust_decimal::Decimal;
use serde::Deserialize;

/// The document's `Loan` data structure; only what we map is typed, the rest
/// stays in the raw JSON. Required fields per the document are required here.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireLoan {
    id: u64,
    url: Option<String>,
    name: String,
    story: Option<String>,
    purpose: Option<String>,
    term_in_months: u32,
    interest_rate: Decimal,
    revenue_rate: Option<Decimal>,
    rating: Option<String>,
    amount: Decimal,
    currency: Option<String>,
    country_of_origin: Option<String>,
    remaining_investment: Option<Decimal>,
    covered: Option<bool>,
    published: Option<bool>,
    date_published: Option<String>,
    deadline: Option<String>,
    investments_count: Option<u32>,
    /// A string code in the document; some answers carry a number.
    region: Option<serde_json::Value>,
    main_income_type: Option<String>,
    insurance_active: Option<bool>,
}

/// Zonky's purposes and the unified ones, both ways.
const PURPOSES: [(&str, LoanPurpose); 9] = [
    ("AUTO_MOTO", LoanPurpose::Vehicle),
    ("EDUCATION", LoanPurpose::Education),
    ("TRAVEL", LoanPurpose::Travel),
    ("ELECTRONICS", LoanPurpose::Electronics),
    ("HEALTH", LoanPurpose::Health),
    ("REFINANCING", LoanPurpose::Refinancing),
    ("HOUSEHOLD", LoanPurpose::Household),
    ("OWN_PROJECT", LoanPurpose::OwnProject),
    ("OTHER", LoanPurpose::Other),
];

/// The Zonky value for a unified purpose, if Zonky has one.
pub fn zonky_purpose(purpose: LoanPurpose) -> Option<&'static str> {
    PURPOSES
        .iter()
        .find(|(_, p)| *p == purpose)
        .map(|(raw, _)| *raw)
}

fn unified_purpose(raw: &str) -> LoanPurpose {
    PURPOSES
        .iter()
        .find(|(r, _)| *r == raw)
        .map_or(LoanPurpose::Other, |(_, p)| *p)
}

/// Maps one loan of Zonky's JSON; a loan missing a required field is a protocol error.
pub fn loan_from_json(provider: &ProviderId, raw: serde_json::Value) -> Result<Loan, Error> {
    let wire: WireLoan = serde_json::from_value(raw.clone())
        .map_err(|e| Error::upstream_protocol(format!("unexpected loan JSON: {e}")))?;
    let currency = match wire.currency.as_deref() {
        Some(code) => code
            .parse::<Currency>()
            .map_err(|_| Error::upstream_protocol(format!("unknown currency {code:?}")))?,
        // The document says every loan is in CZK when it says anything.
        None => Currency::CZK,
    };
    let timestamp = |raw: Option<String>| raw.map(|t| parse_timestamp(&t, Prague)).transpose();
    let deadline = timestamp(wire.deadline)?;
    let status = if wire.covered == Some(true) {
        LoanStatus::Funded
    } else if wire.published == Some(false) {
        LoanStatus::Other("UNPUBLISHED".into())
    } else if deadline.is_some_and(|d| d <= chrono::Utc::now()) {
        LoanStatus::Closed
    } else {
        LoanStatus::Open
    };
    Ok(Loan {
        id: GlobalId::new(provider.clone(), EntityKind::Loan, wire.id.to_string()),
        name: wire.name,
        story: wire.story,
        purpose: wire
            .purpose
            .as_deref()
            .map_or(LoanPurpose::Other, unified_purpose),
        purpose_raw: wire.purpose,
        rating: wire.rating,
        interest_rate: wire.interest_rate,
        revenue_rate: wire.revenue_rate,
        term_months: wire.term_in_months,
        amount: Money::new(wire.amount, currency),
        remaining_amount: wire.remaining_investment.map(|r| Money::new(r, currency)),
        country: wire.country_of_origin,
        published_at: timestamp(wire.date_published)?,
        deadline,
        status,
        url: wire.url,
        borrower_region: wire.region.map(|r| match r {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        }),
        borrower_income_type: wire.main_income_type,
        insured: wire.insurance_active,
        investments_count: wire.investments_count,
        raw: Arc::new(raw),
    })
}

/// Zonky's 400 body for a filter or order it does not allow.
#[derive(Debug, Deserialize)]
pub struct ErrorBody {
    pub error: Option<String>,
    pub error_description: Option<String>,
    pub property: Option<String>,
    pub operation: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> ProviderId {
        ProviderId::new("zonky").unwrap()
    }

    #[test]
    fn maps_the_documented_example() {
        // Parsed from text, as the wire delivers it, so numbers keep their digits.
        let raw: serde_json::Value = serde_json::from_str(
            r#"{
            "id": 1, "url": "https://app.zonky.cz/loan/1", "name": "Loan refinancing",
            "story": "Dear investors, ...", "purpose": "REFINANCING", "photos": [],
            "nickName": "zonky0", "termInMonths": 42, "interestRate": 0.059900,
            "revenueRate": 0.049900, "annuityWithInsurance": 2543.00, "rating": "AAA",
            "topped": null, "amount": 200000.00, "countryOfOrigin": "CZ", "currency": "CZK",
            "remainingInvestment": 152600.00, "reservedAmount": 0.00, "investmentRate": 0.237,
            "covered": false, "datePublished": "2016-04-19T18:25:41.208+02:00", "published": true,
            "deadline": "2016-04-26T18:23:53.101+02:00", "investmentsCount": 72, "region": "6",
            "mainIncomeType": "EMPLOYMENT", "insuranceActive": true, "insuranceHistory": []
        }"#,
        )
        .unwrap();
        let loan = loan_from_json(&provider(), raw).unwrap();
        assert_eq!(loan.id.to_string(), "zonky:loan:1");
        assert_eq!(loan.interest_rate.to_string(), "0.059900");
        assert_eq!(
            loan.amount,
            Money::new(Decimal::new(20_000_000, 2), Currency::CZK)
        );
        assert_eq!(loan.purpose, LoanPurpose::Refinancing);
        assert_eq!(loan.borrower_region.as_deref(), Some("6"));
        assert_eq!(loan.status, LoanStatus::Closed);
        assert_eq!(loan.raw["nickName"], "zonky0");
    }

    #[test]
    fn unknown_purposes_are_other_with_the_raw_value_kept() {
        let raw = serde_json::json!({"id": 2, "name": "x", "purpose": "SPACESHIP",
            "termInMonths": 12, "interestRate": 0.1, "amount": 1000});
        let loan = loan_from_json(&provider(), raw).unwrap();
        assert_eq!(loan.purpose, LoanPurpose::Other);
        assert_eq!(loan.purpose_raw.as_deref(), Some("SPACESHIP"));
    }

    #[test]
    fn missing_required_fields_are_protocol_errors() {
        let err = loan_from_json(&provider(), serde_json::json!({"id": 3})).unwrap_err();
        assert_eq!(err.code(), "UPSTREAM_PROTOCOL_ERROR");
    }
}

#[derive(Debug, Deserialize)]
struct WireAmounts {
    total: Decimal,
    unpaid: Decimal,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireHealthStats {
    loan_health_info: Option<String>,
}

/// The `loan` object inside an investment; the document shows only part of
/// it, so everything but the id is optional.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireInvestmentLoan {
    id: u64,
    #[serde(alias = "title")]
    name: Option<String>,
    interest_rate: Option<Decimal>,
    currency: Option<String>,
    next_payment_date: Option<String>,
    health_stats: Option<WireHealthStats>,
    loan_health_info: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireSmpSellInfo {
    bought_for: Option<Decimal>,
}

/// The document's `Investmentv2` / `InvestmentDetail`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireInvestment {
    id: u64,
    time_created: Option<String>,
    principal: WireAmounts,
    interest: Option<WireAmounts>,
    sell_status: Option<String>,
    /// The `/me/investments` table filters on `investmentStatus`; answers may
    /// carry it under either name.
    #[serde(alias = "investmentStatus")]
    status: Option<String>,
    loan_health_info: Option<String>,
    loan: WireInvestmentLoan,
    smp_sell_info: Option<WireSmpSellInfo>,
}

pub const INVESTMENT_STATUSES: [(&str, InvestmentStatus); 4] = [
    ("ACTIVE", InvestmentStatus::Active),
    ("PAID", InvestmentStatus::PaidOff),
    ("AWAITING_INVESTMENT", InvestmentStatus::Pending),
    ("SOLD", InvestmentStatus::Sold),
];

pub const SELL_STATUSES: [(&str, SellStatus); 5] = [
    ("SELLABLE_WITHOUT_FEE", SellStatus::Sellable),
    ("SELLABLE_WITH_FEE", SellStatus::SellableWithFee),
    ("NOT_SELLABLE", SellStatus::NotSellable),
    ("OFFERED", SellStatus::Offered),
    ("SOLD", SellStatus::Sold),
];

const LOAN_HEALTH: [(&str, LoanHealth); 3] = [
    ("HEALTHY", LoanHealth::Healthy),
    ("HISTORICALLY_IN_DUE", LoanHealth::HistoricallyLate),
    ("CURRENTLY_IN_DUE", LoanHealth::Late),
];

/// The unified value for a platform value, or `other(raw)` for one we do not know.
fn lookup<T: Clone>(table: &[(&str, T)], raw: &str, other: fn(String) -> T) -> T {
    table
        .iter()
        .find(|(r, _)| *r == raw)
        .map_or_else(|| other(raw.to_string()), |(_, v)| v.clone())
}

/// The platform value for a unified one, if the platform has it.
pub fn platform_value<T: PartialEq>(
    table: &[(&'static str, T)],
    value: &T,
) -> Option<&'static str> {
    table.iter().find(|(_, v)| v == value).map(|(raw, _)| *raw)
}

/// Maps one investment of Zonky's JSON.
pub fn investment_from_json(
    provider: &ProviderId,
    raw: serde_json::Value,
) -> Result<Investment, Error> {
    let wire: WireInvestment = serde_json::from_value(raw.clone())
        .map_err(|e| Error::upstream_protocol(format!("unexpected investment JSON: {e}")))?;
    let currency = match wire.loan.currency.as_deref() {
        Some(code) => code
            .parse::<Currency>()
            .map_err(|_| Error::upstream_protocol(format!("unknown currency {code:?}")))?,
        None => Currency::CZK,
    };
    let money = |amount| Money::new(amount, currency);
    let status = match wire.status.as_deref() {
        Some(raw) => lookup(&INVESTMENT_STATUSES, raw, InvestmentStatus::Other),
        None if wire.principal.unpaid.is_zero() => InvestmentStatus::PaidOff,
        None => InvestmentStatus::Active,
    };
    let health = wire
        .loan
        .health_stats
        .and_then(|h| h.loan_health_info)
        .or(wire.loan.loan_health_info)
        .or(wire.loan_health_info);
    let next_payment_date = wire
        .loan
        .next_payment_date
        .map(|d| {
            NaiveDate::parse_from_str(&d, "%Y-%m-%d")
                .map_err(|_| Error::upstream_protocol(format!("unreadable date {d:?}")))
        })
        .transpose()?;
    Ok(Investment {
        id: GlobalId::new(
            provider.clone(),
            EntityKind::Investment,
            wire.id.to_string(),
        ),
        loan_id: Some(GlobalId::new(
            provider.clone(),
            EntityKind::Loan,
            wire.loan.id.to_string(),
        )),
        loan_name: wire.loan.name,
        principal_total: money(wire.principal.total),
        principal_unpaid: money(wire.principal.unpaid),
        interest_total: wire.interest.as_ref().map(|i| money(i.total)),
        interest_unpaid: wire.interest.as_ref().map(|i| money(i.unpaid)),
        interest_paid: wire.interest.as_ref().map(|i| money(i.total - i.unpaid)),
        interest_rate: wire.loan.interest_rate,
        status,
        sell_status: wire
            .sell_status
            .as_deref()
            .map(|raw| lookup(&SELL_STATUSES, raw, SellStatus::Other)),
        loan_health: health
            .as_deref()
            .map(|raw| lookup(&LOAN_HEALTH, raw, LoanHealth::Other)),
        next_payment_date,
        purchase_price: wire.smp_sell_info.and_then(|s| s.bought_for).map(money),
        purchased_at: wire
            .time_created
            .map(|t| parse_timestamp(&t, Prague))
            .transpose()?,
        raw: Arc::new(raw),
    })
}

/// The document's `InvestmentSummary`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvestmentSummary {
    pub investments_count: u64,
    pub principal_remaining: Decimal,
    pub principal_paid: Decimal,
    pub interest_remaining: Decimal,
    pub interest_paid: Decimal,
}

#[cfg(test)]
mod investment_tests {
    use super::*;

    #[test]
    fn maps_an_investment_as_the_document_shows_it() {
        let raw: serde_json::Value = serde_json::from_str(
            r#"{"id": 628265, "timeModified": "2020-05-25T12:13:00+01:00",
            "timeCreated": "2020-05-20T12:13:00+01:00",
            "principal": {"total": 200.00, "unpaid": 159.87},
            "interest": {"total": 4.98, "unpaid": 4.17},
            "sellStatus": "SELLABLE_WITHOUT_FEE", "isBlockedByAB4": true,
            "loan": {"id": 56321, "title": "Restrukturalizace", "interestRate": 0.0749,
                     "currency": "CZK", "nextPaymentDate": "2020-05-25",
                     "healthStats": {"loanHealthInfo": "HISTORICALLY_IN_DUE"}},
            "smpSellInfo": {"boughtFor": 198.45}}"#,
        )
        .unwrap();
        let provider = ProviderId::new("zonky").unwrap();
        let investment = investment_from_json(&provider, raw).unwrap();
        assert_eq!(investment.id.to_string(), "zonky:investment:628265");
        assert_eq!(
            investment.loan_id.as_ref().unwrap().to_string(),
            "zonky:loan:56321"
        );
        assert_eq!(investment.principal_repaid().amount.to_string(), "40.13");
        assert_eq!(investment.interest_paid.unwrap().amount.to_string(), "0.81");
        assert_eq!(investment.status, InvestmentStatus::Active);
        assert_eq!(investment.sell_status, Some(SellStatus::Sellable));
        assert_eq!(investment.loan_health, Some(LoanHealth::HistoricallyLate));
        assert_eq!(
            investment.purchase_price.unwrap().amount.to_string(),
            "198.45"
        );
        assert_eq!(investment.loan_name.as_deref(), Some("Restrukturalizace"));
    }
}
