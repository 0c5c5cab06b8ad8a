//! Bondora's JSON models (`Auction`, `AuctionExtended`, `MyInvestmentItem`,
//! `LoanPartDetails`, `SecondMarketItem`) and their mapping to the unified
//! model.
//!
//! Field names are the reference's (PascalCase, as the API serializes them);
//! they are looked up exactly first, then ignoring letter case, so a camelCase
//! serializer would read the same. Every field is optional in the reference's
//! swagger; the mapping requires only what the unified model cannot do
//! without (ids, amounts, rates, terms) and reads the rest leniently. Numbers
//! are read exactly (also from numeric strings), never through `f64`.
//!
//! Units: money is EUR in major units; `Interest` and `DesiredDiscountRate`
//! are percentages (18.5 is 18.5 %) and become fractions; timestamps are ISO
//! 8601 with up to seven fractional digits, read as UTC when they carry no
//! offset (Bondora's `…UTC` fields and its document's "UTC Date").

use std::str::FromStr;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use finmesh_core::model::{
    Investment, InvestmentStatus, Loan, LoanHealth, LoanPurpose, LoanStatus, Offer, SellStatus,
};
use finmesh_core::time::parse_timestamp;
use finmesh_core::{Currency, EntityKind, Error, GlobalId, Money, ProviderId, Result};
use rust_decimal::Decimal;
use serde_json::{Map, Value};

/// Bondora lends, lists and pays in euros only.
pub(crate) const CURRENCY: Currency = Currency::EUR;

/// Bondora's ratings, safest first (the reference: "AA, A, B, C, D, E, F, HR").
pub(crate) const RATINGS: [&str; 8] = ["AA", "A", "B", "C", "D", "E", "F", "HR"];

/// A field of an object, exactly by name or else ignoring letter case.
pub(crate) fn field<'a>(object: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    object.get(name).or_else(|| {
        object
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value)
    })
}

/// A decimal from a JSON number (exact, thanks to `arbitrary_precision`) or a
/// numeric string.
pub(crate) fn decimal_of(value: &Value) -> Option<Decimal> {
    let text = match value {
        Value::Number(number) => number.as_str(),
        Value::String(text) => text.trim(),
        _ => return None,
    };
    Decimal::from_str(text)
        .or_else(|_| Decimal::from_scientific(text))
        .ok()
}

/// Typed, lenient access to one JSON object of Bondora's, with errors that
/// name the model and field but never quote a value (it may be personal data).
pub(crate) struct Fields<'a> {
    object: &'a Map<String, Value>,
    model: &'static str,
}

impl<'a> Fields<'a> {
    pub(crate) fn new(value: &'a Value, model: &'static str) -> Result<Self> {
        match value {
            Value::Object(object) => Ok(Fields { object, model }),
            _ => Err(Error::upstream_protocol(format!(
                "expected a Bondora {model} object"
            ))),
        }
    }

    /// The field's value; JSON `null` counts as absent.
    fn get(&self, name: &str) -> Option<&'a Value> {
        field(self.object, name).filter(|value| !value.is_null())
    }

    fn bad(&self, name: &str, expected: &str) -> Error {
        Error::upstream_protocol(format!("Bondora {}.{name} is not {expected}", self.model))
    }

    fn missing(&self, name: &str) -> Error {
        Error::upstream_protocol(format!("Bondora {}.{name} is missing", self.model))
    }

    /// A string, or a number's digits.
    pub(crate) fn string(&self, name: &str) -> Option<String> {
        match self.get(name)? {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            Value::Bool(flag) => Some(flag.to_string()),
            _ => None,
        }
    }

    pub(crate) fn required_string(&self, name: &str) -> Result<String> {
        self.string(name)
            .filter(|text| !text.trim().is_empty())
            .ok_or_else(|| self.missing(name))
    }

    pub(crate) fn decimal(&self, name: &str) -> Result<Option<Decimal>> {
        self.get(name)
            .map(|value| decimal_of(value).ok_or_else(|| self.bad(name, "a number")))
            .transpose()
    }

    pub(crate) fn required_decimal(&self, name: &str) -> Result<Decimal> {
        self.decimal(name)?.ok_or_else(|| self.missing(name))
    }

    /// A whole number (`12`, `12.0` or `"12"`).
    pub(crate) fn integer(&self, name: &str) -> Result<Option<i64>> {
        self.get(name)
            .map(|value| {
                decimal_of(value)
                    .filter(|d| d.fract().is_zero())
                    .and_then(|d| i64::try_from(d).ok())
                    .ok_or_else(|| self.bad(name, "a whole number"))
            })
            .transpose()
    }

    /// A code of one of Bondora's enumerations: a number as sent, or the text
    /// of whatever else came (kept raw, never a failure).
    pub(crate) fn code(&self, name: &str) -> Option<Code> {
        let value = self.get(name)?;
        Some(
            match decimal_of(value)
                .filter(|d| d.fract().is_zero())
                .and_then(|d| i64::try_from(d).ok())
            {
                Some(number) => Code::Number(number),
                None => Code::Text(match value {
                    Value::String(text) => text.clone(),
                    other => other.to_string(),
                }),
            },
        )
    }

    pub(crate) fn time(&self, name: &str) -> Result<Option<DateTime<Utc>>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(text)) if text.trim().is_empty() => Ok(None),
            Some(Value::String(text)) => parse_timestamp(text.trim(), chrono_tz::UTC)
                .map(Some)
                .map_err(|_| self.bad(name, "an ISO 8601 timestamp")),
            Some(_) => Err(self.bad(name, "an ISO 8601 timestamp")),
        }
    }

    /// The calendar date a timestamp names, as written (its own offset, not
    /// converted to UTC: `2025-01-15T00:00:00+02:00` is the 15th).
    pub(crate) fn date(&self, name: &str) -> Result<Option<NaiveDate>> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(text)) if text.trim().is_empty() => Ok(None),
            Some(Value::String(text)) => text
                .trim()
                .get(..10)
                .and_then(|day| NaiveDate::parse_from_str(day, "%Y-%m-%d").ok())
                .map(Some)
                .ok_or_else(|| self.bad(name, "a date")),
            Some(_) => Err(self.bad(name, "a date")),
        }
    }

    /// A percentage as a fraction (18.5 → 0.185), exactly.
    pub(crate) fn percent(&self, name: &str) -> Result<Option<Decimal>> {
        self.decimal(name)?
            .map(|percent| {
                percent
                    .checked_div(Decimal::ONE_HUNDRED)
                    .ok_or_else(|| self.bad(name, "a percentage"))
            })
            .transpose()
    }

    pub(crate) fn required_percent(&self, name: &str) -> Result<Decimal> {
        self.percent(name)?.ok_or_else(|| self.missing(name))
    }

    pub(crate) fn money(&self, name: &str) -> Result<Option<Money>> {
        Ok(self.decimal(name)?.map(eur))
    }

    pub(crate) fn required_money(&self, name: &str) -> Result<Money> {
        Ok(eur(self.required_decimal(name)?))
    }
}

fn eur(amount: Decimal) -> Money {
    Money::new(amount, CURRENCY)
}

/// A value of one of Bondora's integer enumerations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Code {
    Number(i64),
    /// Not a number: kept as sent.
    Text(String),
}

impl Code {
    fn raw(&self) -> String {
        match self {
            Code::Number(number) => number.to_string(),
            Code::Text(text) => text.clone(),
        }
    }
}

/// `UseOfLoan` → the unified purpose. The reference's enumeration
/// (petslane/php-bondora-api `AuctionPurpose`): 0 loan consolidation, 1 real
/// estate, 2 home improvement, 3 business, 4 education, 5 travel, 6 vehicle,
/// 7 other, 8 health; 101-110 are the purposes of business loans; -1 is
/// "NotUsed" (the only value of auctions since June 2017). Anything else is
/// `Other`, the raw value kept beside it.
pub(crate) fn purpose(code: &Code) -> LoanPurpose {
    match code {
        Code::Number(0) => LoanPurpose::Refinancing,
        Code::Number(1) => LoanPurpose::RealEstate,
        Code::Number(2) => LoanPurpose::HomeImprovement,
        Code::Number(3 | 101..=110) => LoanPurpose::Business,
        Code::Number(4) => LoanPurpose::Education,
        Code::Number(5) => LoanPurpose::Travel,
        Code::Number(6) => LoanPurpose::Vehicle,
        Code::Number(8) => LoanPurpose::Health,
        _ => LoanPurpose::Other,
    }
}

/// `LoanStatusCode` (the reference: 0 Reserved, 2 Current, 3 Cancelled,
/// 4 Repaid, 5 60+ days overdue, 8 Released, 100 Overdue) → the unified
/// status. Bondora counts a loan 60+ days overdue as defaulted. Known states
/// the unified model lacks keep their reference name; unknown ones their raw
/// value.
pub(crate) fn investment_status(code: Option<&Code>) -> InvestmentStatus {
    match code {
        Some(Code::Number(0)) => InvestmentStatus::Pending,
        Some(Code::Number(2 | 100)) => InvestmentStatus::Active,
        Some(Code::Number(4)) => InvestmentStatus::PaidOff,
        Some(Code::Number(5)) => InvestmentStatus::Defaulted,
        Some(Code::Number(3)) => InvestmentStatus::Other(CANCELLED.to_string()),
        Some(Code::Number(8)) => InvestmentStatus::Other(RELEASED.to_string()),
        Some(other) => InvestmentStatus::Other(other.raw()),
        None => InvestmentStatus::Other("UNKNOWN".to_string()),
    }
}

pub(crate) const CANCELLED: &str = "Cancelled";
pub(crate) const RELEASED: &str = "Released";

/// The `LoanStatusCode`s a unified status stands for; empty when Bondora has
/// none (the status cannot occur). `Sold` is not a loan status: see
/// `SalesStatus`.
pub(crate) fn status_codes(status: &InvestmentStatus) -> Vec<i64> {
    match status {
        InvestmentStatus::Pending => vec![0],
        InvestmentStatus::Active => vec![2, 100],
        InvestmentStatus::PaidOff => vec![4],
        InvestmentStatus::Defaulted => vec![5],
        InvestmentStatus::Sold => vec![],
        InvestmentStatus::Other(raw) if raw == CANCELLED => vec![3],
        InvestmentStatus::Other(raw) if raw == RELEASED => vec![8],
        InvestmentStatus::Other(raw) => raw.trim().parse().map(|n| vec![n]).unwrap_or_default(),
    }
}

fn global(provider: &ProviderId, kind: EntityKind, native: &str) -> Result<GlobalId> {
    let id = GlobalId::new(provider.clone(), kind, native.trim());
    // Ids must survive the round trip through their text form.
    id.to_string().parse::<GlobalId>().map_err(|_| {
        Error::upstream_protocol(format!("Bondora sent an unusable {} id", kind.as_str()))
    })
}

/// One `Auction` (list) or `AuctionExtended` (detail). The unified loan id is
/// the `AuctionId`, which `GET /api/v1/auction/{id}` takes.
pub(crate) fn loan_from_json(provider: &ProviderId, raw: Value) -> Result<Loan> {
    let f = Fields::new(&raw, "Auction")?;
    let id = global(provider, EntityKind::Loan, &f.required_string("AuctionId")?)?;
    let amount = f.required_money("AppliedAmount")?;
    let term = f
        .integer("LoanDuration")?
        .ok_or_else(|| f.missing("LoanDuration"))?;
    let term_months = u32::try_from(term).map_err(|_| f.bad("LoanDuration", "a term in months"))?;
    let remaining = f.money("RemainingAmount")?;
    let deadline = f.time("PlannedCloseDate")?;
    let closed_at = f.time("ActualCloseDate")?;
    let winning = f.decimal("WinningBidsAmount")?;
    let status = match closed_at {
        Some(_) if winning.is_some_and(|w| w >= amount.amount) => LoanStatus::Funded,
        Some(_) => LoanStatus::Closed,
        None if remaining.is_some_and(|r| r.amount <= Decimal::ZERO) => LoanStatus::Funded,
        None if deadline.is_some_and(|d| d <= Utc::now()) => LoanStatus::Closed,
        None => LoanStatus::Open,
    };
    let use_of_loan = f.code("UseOfLoan");
    let name = f
        .string("AuctionName")
        .or_else(|| f.string("LoanNumber").map(|n| format!("Loan {n}")))
        .unwrap_or_else(|| id.native().to_string());
    Ok(Loan {
        name,
        story: None,
        purpose: use_of_loan.as_ref().map_or(LoanPurpose::Other, purpose),
        purpose_raw: use_of_loan.as_ref().map(Code::raw),
        rating: f.string("Rating"),
        interest_rate: f.required_percent("Interest")?,
        revenue_rate: None,
        term_months,
        amount,
        remaining_amount: remaining,
        country: f.string("Country"),
        published_at: f.time("ListedOnUTC")?,
        deadline,
        status,
        url: None,
        borrower_region: f.string("County"),
        borrower_income_type: None,
        insured: None,
        investments_count: None,
        id,
        raw: Arc::new(raw),
    })
}

/// One `MyInvestmentItem` (list) or `LoanPartDetails` (detail). The unified
/// investment id is the `LoanPartId`, which `GET /api/v1/loanpart/{id}` takes.
pub(crate) fn investment_from_json(provider: &ProviderId, raw: Value) -> Result<Investment> {
    let f = Fields::new(&raw, "MyInvestmentItem")?;
    let id = global(
        provider,
        EntityKind::Investment,
        &f.required_string("LoanPartId")?,
    )?;
    let loan_id = f
        .string("AuctionId")
        .map(|auction| global(provider, EntityKind::Loan, &auction))
        .transpose()?;
    let principal_unpaid = match f.money("PrincipalRemaining")? {
        Some(remaining) => remaining,
        None => {
            eur(f.required_decimal("Amount")? - f.decimal("PrincipalRepaid")?.unwrap_or_default())
        }
    };
    // What the current owner got back: the list's `NoteLoanTransfers…`
    // fields, the detail's `…CurrentOwner` ones (the investors' feedback:
    // `PrincipalRepaid` counts what earlier owners received too).
    let principal_received = match f.decimal("NoteLoanTransfersMainAmount")? {
        Some(received) => Some(received),
        None => f.decimal("RepaidPrincipalCurrentOwner")?,
    };
    // Principal invested or bought: for a part bought on the secondary market
    // `Amount` is the part's original size, so the owner's stake is what is
    // left plus what they received. Written-off principal is not counted.
    let principal_total = match principal_received {
        Some(received) => eur(principal_unpaid.amount + received),
        None => f.required_money("Amount")?,
    };
    let interest_paid = match f.money("NoteLoanTransfersInterestAmount")? {
        Some(paid) => Some(paid),
        None => match f.money("RepaidInterestsCurrentOwner")? {
            Some(paid) => Some(paid),
            None => f.money("InterestRepaid")?,
        },
    };
    let status_code = f.code("LoanStatusCode");
    let sold = f.time("SoldDate")?;
    let listed_for_sale = f.time("ListedInSecondMarketOn")?;
    let status = if sold.is_some() {
        InvestmentStatus::Sold
    } else {
        investment_status(status_code.as_ref())
    };
    let sell_status = if sold.is_some() {
        Some(SellStatus::Sold)
    } else if listed_for_sale.is_some() {
        Some(SellStatus::Offered)
    } else {
        // "Not on sale" says nothing about whether it could be sold.
        None
    };
    let ever_late = f.time("DebtOccuredOn")?.is_some()
        || f.time("DebtOccuredOnForSecondary")?.is_some()
        || f.time("LatestDebtManagementDate")?.is_some();
    let loan_health = match &status_code {
        Some(Code::Number(100 | 5)) => Some(LoanHealth::Late),
        Some(Code::Number(2)) if ever_late => Some(LoanHealth::HistoricallyLate),
        Some(Code::Number(2)) => Some(LoanHealth::Healthy),
        _ => None,
    };
    Ok(Investment {
        id,
        loan_id,
        loan_name: f.string("AuctionName"),
        principal_total,
        principal_unpaid,
        interest_total: None,
        interest_unpaid: None,
        interest_paid,
        interest_rate: f.percent("Interest")?,
        status,
        sell_status,
        loan_health,
        next_payment_date: f.date("NextPaymentDate")?,
        purchase_price: f.money("PurchasePrice")?,
        purchased_at: f.time("PurchaseDate")?,
        raw: Arc::new(raw),
    })
}

/// One `SecondMarketItem`.
///
/// `Price` is "outstanding principal balance +/- discount or mark-up"; the
/// buyer's `Fee` and `TotalCost` stay in the raw JSON. `DesiredDiscountRate`
/// is a percentage whose sign the reference does not state: Bondora (and the
/// simulator) write a discount as a negative rate, but the unified discount's
/// sign is taken from the price itself (below the principal: a discount), so
/// either convention reads right. Without a rate, the discount is
/// `1 - price / principal`.
pub(crate) fn offer_from_json(provider: &ProviderId, raw: Value) -> Result<Offer> {
    let f = Fields::new(&raw, "SecondMarketItem")?;
    let id = global(provider, EntityKind::Offer, &f.required_string("Id")?)?;
    let principal = f.required_money("PrincipalRemaining")?;
    let price = f.required_money("Price")?;
    let discount = match f.percent("DesiredDiscountRate")? {
        Some(rate) => {
            let magnitude = rate.abs();
            match price.amount.cmp(&principal.amount) {
                std::cmp::Ordering::Less => magnitude,
                std::cmp::Ordering::Greater => -magnitude,
                // The price (rounded to cents) cannot tell: Bondora's own
                // convention, a negative rate is a discount.
                std::cmp::Ordering::Equal if rate.is_zero() => Decimal::ZERO,
                std::cmp::Ordering::Equal => -rate,
            }
        }
        None if principal.amount.is_zero() => Decimal::ZERO,
        None => Decimal::ONE - price.amount / principal.amount,
    };
    let loan_id = f
        .string("AuctionId")
        .map(|auction| global(provider, EntityKind::Loan, &auction))
        .transpose()?;
    Ok(Offer {
        id,
        loan_id,
        loan_name: f.string("AuctionName"),
        principal_remaining: principal,
        price,
        discount,
        interest_rate: f.percent("Interest")?,
        rating: f.string("Rating"),
        listed_at: f.time("ListedOnDate")?,
        raw: Arc::new(raw),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider() -> ProviderId {
        ProviderId::new("bondora").unwrap()
    }

    fn parse(text: &str) -> Value {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn maps_an_auction_with_percent_rates_and_ticks() {
        let raw = parse(
            r#"{"LoanId": "9cefa176-e917-4f1a-9629-a92f011265b3",
                "AuctionId": "6832dee6-92a3-4d9b-af03-5c53fed0c41d", "LoanNumber": 865878,
                "Country": "EE", "County": "Harju", "AppliedAmount": 2125.00, "Interest": 18.55,
                "LoanDuration": 60, "Rating": "B", "UseOfLoan": 6, "RemainingAmount": 1325.00,
                "WinningBidsAmount": 800.00, "ListedOnUTC": "2024-12-09T17:41:11.8993295Z",
                "PlannedCloseDate": "2099-12-16T17:41:11.8993295Z", "ActualCloseDate": null}"#,
        );
        let loan = loan_from_json(&provider(), raw).unwrap();
        assert_eq!(
            loan.id.to_string(),
            "bondora:loan:6832dee6-92a3-4d9b-af03-5c53fed0c41d"
        );
        assert_eq!(loan.interest_rate.to_string(), "0.1855");
        assert_eq!(
            loan.amount,
            Money::new(Decimal::new(212_500, 2), Currency::EUR)
        );
        assert_eq!(loan.remaining_amount.unwrap().amount.to_string(), "1325.00");
        assert_eq!(loan.term_months, 60);
        assert_eq!(loan.purpose, LoanPurpose::Vehicle);
        assert_eq!(loan.purpose_raw.as_deref(), Some("6"));
        assert_eq!(loan.status, LoanStatus::Open);
        assert_eq!(loan.name, "Loan 865878");
        assert_eq!(
            loan.published_at.unwrap().to_rfc3339(),
            "2024-12-09T17:41:11.899329500+00:00"
        );
        assert_eq!(loan.raw["LoanNumber"], 865_878);
    }

    #[test]
    fn unknown_enum_values_are_other_with_the_raw_value() {
        let raw = parse(
            r#"{"auctionId": "6832dee6-92a3-4d9b-af03-5c53fed0c41d", "appliedAmount": 500,
                "interest": 20, "loanDuration": 12, "UseOfLoan": 999}"#,
        );
        let loan = loan_from_json(&provider(), raw).unwrap();
        assert_eq!(loan.purpose, LoanPurpose::Other);
        assert_eq!(loan.purpose_raw.as_deref(), Some("999"));
        let raw = parse(
            r#"{"AuctionId": "6832dee6-92a3-4d9b-af03-5c53fed0c41d", "AppliedAmount": 500,
                "Interest": 20, "LoanDuration": 12, "UseOfLoan": "Spaceship"}"#,
        );
        assert_eq!(
            loan_from_json(&provider(), raw)
                .unwrap()
                .purpose_raw
                .as_deref(),
            Some("Spaceship")
        );

        let part = parse(
            r#"{"LoanPartId": "7a1b0c52-8f0e-4d9a-9a53-0d8a3e6f5b21", "Amount": 10,
                "PrincipalRemaining": 5, "LoanStatusCode": 42}"#,
        );
        let investment = investment_from_json(&provider(), part).unwrap();
        assert_eq!(investment.status, InvestmentStatus::Other("42".into()));
        assert_eq!(investment.loan_health, None);
    }

    #[test]
    fn missing_required_fields_are_protocol_errors() {
        for raw in [
            r#"{"AppliedAmount": 500, "Interest": 20, "LoanDuration": 12}"#,
            r#"{"AuctionId": "6832dee6-92a3-4d9b-af03-5c53fed0c41d", "Interest": 20, "LoanDuration": 12}"#,
            r#"{"AuctionId": "6832dee6-92a3-4d9b-af03-5c53fed0c41d", "AppliedAmount": "lots", "Interest": 20, "LoanDuration": 12}"#,
            r#"[1, 2]"#,
        ] {
            let err = loan_from_json(&provider(), parse(raw)).unwrap_err();
            assert_eq!(err.code(), "UPSTREAM_PROTOCOL_ERROR", "{raw}");
            assert!(!err.message.contains("lots"), "{}", err.message);
        }
    }

    #[test]
    fn maps_an_investment_bought_on_the_secondary_market() {
        let raw = parse(
            r#"{"LoanPartId": "7a1b0c52-8f0e-4d9a-9a53-0d8a3e6f5b21", "Amount": 100.00,
                "AuctionId": "6832dee6-92a3-4d9b-af03-5c53fed0c41d", "AuctionName": "Loan 865878",
                "Interest": 25.5, "LoanStatusCode": 100, "PrincipalRepaid": 40.00,
                "PrincipalRemaining": 60.00, "InterestRepaid": 12.00,
                "NoteLoanTransfersMainAmount": 15.00, "NoteLoanTransfersInterestAmount": 4.10,
                "PurchaseDate": "2024-03-01T10:00:00.0000000Z", "PurchasePrice": 72.50,
                "NextPaymentDate": "2025-01-15T00:00:00+02:00", "SoldDate": null,
                "BoughtFromId": "0f3b2a4e-1111-4e0e-9a53-0d8a3e6f5b21"}"#,
        );
        let investment = investment_from_json(&provider(), raw).unwrap();
        assert_eq!(investment.principal_total.amount.to_string(), "75.00");
        assert_eq!(investment.principal_unpaid.amount.to_string(), "60.00");
        assert_eq!(investment.principal_repaid().amount.to_string(), "15.00");
        assert_eq!(investment.interest_paid.unwrap().amount.to_string(), "4.10");
        assert_eq!(investment.interest_rate.unwrap().to_string(), "0.255");
        assert_eq!(investment.status, InvestmentStatus::Active);
        assert_eq!(investment.loan_health, Some(LoanHealth::Late));
        assert_eq!(
            investment.next_payment_date,
            NaiveDate::from_ymd_opt(2025, 1, 15)
        );
        assert_eq!(
            investment.purchase_price.unwrap().amount.to_string(),
            "72.50"
        );
        assert_eq!(
            investment.loan_id.unwrap().to_string(),
            "bondora:loan:6832dee6-92a3-4d9b-af03-5c53fed0c41d"
        );
    }

    #[test]
    fn sold_and_listed_investments() {
        let base = r#""LoanPartId": "7a1b0c52-8f0e-4d9a-9a53-0d8a3e6f5b21", "Amount": 10, "PrincipalRemaining": 5, "LoanStatusCode": 2"#;
        let sold = parse(&format!(
            r#"{{{base}, "SoldDate": "2024-05-01T00:00:00Z"}}"#
        ));
        let sold = investment_from_json(&provider(), sold).unwrap();
        assert_eq!(sold.status, InvestmentStatus::Sold);
        assert_eq!(sold.sell_status, Some(SellStatus::Sold));
        let listed = parse(&format!(
            r#"{{{base}, "ListedInSecondMarketOn": "2024-05-01T00:00:00Z"}}"#
        ));
        let listed = investment_from_json(&provider(), listed).unwrap();
        assert_eq!(listed.status, InvestmentStatus::Active);
        assert_eq!(listed.sell_status, Some(SellStatus::Offered));
        assert_eq!(listed.loan_health, Some(LoanHealth::Healthy));
        for (code, status) in [
            (0, InvestmentStatus::Pending),
            (4, InvestmentStatus::PaidOff),
            (5, InvestmentStatus::Defaulted),
            (3, InvestmentStatus::Other("Cancelled".into())),
            (8, InvestmentStatus::Other("Released".into())),
        ] {
            let raw = parse(&format!(
                r#"{{"LoanPartId": "7a1b0c52-8f0e-4d9a-9a53-0d8a3e6f5b21", "Amount": 10, "PrincipalRemaining": 5, "LoanStatusCode": {code}}}"#
            ));
            let investment = investment_from_json(&provider(), raw).unwrap();
            assert_eq!(investment.status, status);
            assert_eq!(status_codes(&status), vec![code]);
        }
    }

    #[test]
    fn offer_discounts_read_either_sign() {
        let offer = |rate: &str, price: &str| {
            let raw = parse(&format!(
                r#"{{"Id": "2b5c6c1e-5a3a-4e8e-9a53-0d8a3e6f5b21", "PrincipalRemaining": 100.00,
                    "Price": {price}, "DesiredDiscountRate": {rate}, "Interest": 30,
                    "ListedOnDate": "2024-12-09T17:41:11.8993295Z", "Rating": "C"}}"#
            ));
            offer_from_json(&provider(), raw).unwrap()
        };
        assert_eq!(offer("-10", "90.00").discount.to_string(), "0.10");
        assert_eq!(offer("10", "90.00").discount.to_string(), "0.10");
        assert_eq!(offer("5", "105.00").discount.to_string(), "-0.05");
        assert_eq!(offer("0", "100.00").discount.to_string(), "0");
        assert_eq!(offer("-1", "100.00").discount.to_string(), "0.01");
        let o = offer("-10", "90.00");
        assert_eq!(o.interest_rate.unwrap().to_string(), "0.30");
        assert_eq!(o.price.amount.to_string(), "90.00");
        let raw = parse(
            r#"{"Id": "2b5c6c1e-5a3a-4e8e-9a53-0d8a3e6f5b21", "PrincipalRemaining": 80, "Price": 60}"#,
        );
        assert_eq!(
            offer_from_json(&provider(), raw)
                .unwrap()
                .discount
                .to_string(),
            "0.25"
        );
    }
}
