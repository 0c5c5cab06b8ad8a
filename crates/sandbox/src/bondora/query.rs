//! Query parameters of the list endpoints: paging and filters, named as the
//! reference names them.
//!
//! Bondora's API is ASP.NET Web API binding a `request` object from the query
//! string, so a parameter is accepted with or without the `request.` prefix
//! and in any letter case: `request.pageSize`, `PageSize` and `pagesize` are
//! the same parameter (the generated clients send `request.pageSize`, the
//! reference's tables and our README say `PageSize`). A collection parameter
//! (`Countries`, `Ratings`, `Terms`, `LoanStatusCode`) may be repeated, sent
//! comma separated, or indexed (`Ratings[0]=A&Ratings[1]=B`); an item matches
//! when any of the values does. Parameters the endpoint does not know are
//! ignored, as ASP.NET does. A value that does not parse, or an unknown member
//! of an enumeration (a rating, a status code, ...), answers 400.
//!
//! Ranges are inclusive. A date is `2024-12-09`, `2024-12-09T17:41:11` (UTC)
//! or RFC 3339 with an offset; a date alone is its midnight UTC. An item whose
//! filtered field is null never matches a range.

use std::{collections::HashSet, str::FromStr};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use rust_decimal::Decimal;
use serde_json::Value;

use super::{
    data::{
        BID_STATUSES, BID_TYPES, EE_MINI_SCORES, GENDERS, LOAN_STATUS_CODES, RATINGS, USE_OF_LOAN,
        VERIFICATION,
    },
    envelope::ApiError,
};

/// The query string's parameters, names normalized.
pub(crate) struct Params {
    /// (normalized name, name as sent, value)
    pairs: Vec<(String, String, String)>,
}

/// Lower case, without a `request.` prefix and an index suffix (`[0]`, `[]`).
fn normalize(name: &str) -> String {
    let lower = name.trim().to_ascii_lowercase();
    let bare = lower.strip_prefix("request.").unwrap_or(&lower);
    let bare = match bare.find('[') {
        Some(at) if bare.ends_with(']') => &bare[..at],
        _ => bare,
    };
    bare.to_owned()
}

impl Params {
    pub(crate) fn parse(raw: Option<&str>) -> Self {
        let pairs = form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
            .map(|(name, value)| (normalize(&name), name.into_owned(), value.into_owned()))
            .collect();
        Self { pairs }
    }

    /// The last value sent for any of `names` (normalized), with the name as sent.
    fn single(&self, names: &[&str]) -> Option<(&str, &str)> {
        self.pairs
            .iter()
            .rev()
            .find(|(name, ..)| names.iter().any(|wanted| wanted.eq_ignore_ascii_case(name)))
            .map(|(_, sent, value)| (sent.as_str(), value.as_str()))
    }

    /// Every value sent for any of `names`, commas split, blanks dropped.
    fn list(&self, names: &[&str]) -> Option<(&str, Vec<&str>)> {
        let mut sent_name = None;
        let mut values = Vec::new();
        for (name, sent, value) in &self.pairs {
            if names.iter().any(|wanted| wanted.eq_ignore_ascii_case(name)) {
                sent_name.get_or_insert(sent.as_str());
                values.extend(value.split(',').map(str::trim).filter(|v| !v.is_empty()));
            }
        }
        sent_name.map(|name| (name, values))
    }
}

/// `PageSize` and `PageNr` of a list endpoint.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Paging {
    pub(crate) size: u64,
    pub(crate) number: u64,
}

/// "The default page size on all endpoints that have paging is 10,000 items"
/// (the reference's change log).
pub(crate) const DEFAULT_PAGE_SIZE: u64 = 10_000;

impl Paging {
    /// Reads the paging; `max_size` is the endpoint's documented maximum
    /// (the reference: "Range: inclusive between 1 and 20000").
    pub(crate) fn parse(params: &Params, max_size: u64) -> Result<Self, ApiError> {
        let size = match params.single(&["pagesize"]) {
            None => DEFAULT_PAGE_SIZE.min(max_size),
            Some((name, value)) => {
                let size = integer(name, value)?;
                u64::try_from(size)
                    .ok()
                    .filter(|size| (1..=max_size).contains(size))
                    .ok_or_else(|| {
                        ApiError::invalid_parameter(
                            name,
                            value,
                            &format!("must be between 1 and {max_size}"),
                        )
                    })?
            }
        };
        let number = match params.single(&["pagenr"]) {
            None => 1,
            Some((name, value)) => {
                let number = integer(name, value)?;
                u64::try_from(number)
                    .ok()
                    .filter(|number| (1..=i32::MAX as u64).contains(number))
                    .ok_or_else(|| {
                        ApiError::invalid_parameter(name, value, "must be between 1 and 2147483647")
                    })?
            }
        };
        Ok(Self { size, number })
    }

    /// The page's items out of all matching ones.
    pub(crate) fn apply<T: Clone>(&self, items: &[T]) -> Vec<T> {
        let skip =
            usize::try_from((self.number - 1).saturating_mul(self.size)).unwrap_or(usize::MAX);
        let take = usize::try_from(self.size).unwrap_or(usize::MAX);
        items.iter().skip(skip).take(take).cloned().collect()
    }
}

fn integer(name: &str, value: &str) -> Result<i64, ApiError> {
    value
        .trim()
        .parse()
        .map_err(|_| ApiError::invalid_parameter(name, value, "not an integer"))
}

fn number(name: &str, value: &str) -> Result<Decimal, ApiError> {
    Decimal::from_str(value.trim())
        .or_else(|_| Decimal::from_scientific(value.trim()))
        .map_err(|_| ApiError::invalid_parameter(name, value, "not a decimal number"))
}

fn boolean(name: &str, value: &str) -> Result<bool, ApiError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(ApiError::invalid_parameter(
            name,
            value,
            "not true or false",
        )),
    }
}

fn date(name: &str, value: &str) -> Result<DateTime<Utc>, ApiError> {
    let text = value.trim();
    // A `+` of an offset sent unencoded reads as a space.
    let repaired = text.replacen(' ', "+", 1);
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_rfc3339(&repaired))
        .map(|at| at.to_utc())
        .or_else(|_| NaiveDateTime::from_str(text).map(|at| at.and_utc()))
        .or_else(|_| {
            NaiveDate::from_str(text)
                .map(|day| day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc())
        })
        .map_err(|_| ApiError::invalid_parameter(name, value, "not a date"))
}

/// A JSON number (exact, from `arbitrary_precision`) as a decimal.
pub(crate) fn decimal_of(value: &Value) -> Option<Decimal> {
    let number = value.as_number()?;
    Decimal::from_str(number.as_str())
        .or_else(|_| Decimal::from_scientific(number.as_str()))
        .ok()
}

fn instant_of(value: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value.as_str()?)
        .ok()
        .map(|at| at.to_utc())
}

/// What a filter parameter does.
#[derive(Clone, Copy)]
pub(crate) enum Spec {
    /// The decimal field is at least the value.
    Min(&'static str),
    /// The decimal field is at most the value.
    Max(&'static str),
    /// The date field is at or after the value.
    From(&'static str),
    /// The date field is at or before the value.
    To(&'static str),
    /// The string field equals one of the values (case-insensitive); with
    /// `Some(members)`, each value must be a member.
    StrIn(&'static str, Option<&'static [&'static str]>),
    /// The integer field equals one of the values; with `Some(members)`, each
    /// value must be a member.
    IntIn(&'static str, Option<&'static [i64]>),
    /// A two-letter country code among the values.
    Countries(&'static str),
    /// Whether the field is non-null (and, for a number, above zero) is the value.
    Present(&'static str),
    /// `ShowMyItems`: true only the user's own offers, false only others'.
    Mine,
    /// `SalesStatus` of my investments: 0 bought on the secondary market,
    /// 1 sold, 2 on sale, 3 not on sale.
    SalesStatus,
    /// `IsInRepayment`: status 2, 5 or 100.
    InRepayment,
    /// Documented, but about something the items do not carry: accepted and
    /// checked, then ignored.
    Ignored(Kind),
}

/// The kind of an ignored parameter's value, to check it all the same.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    Date,
}

/// A documented filter parameter: its names (normalized) and what it does.
pub(crate) struct FilterDef {
    pub(crate) names: &'static [&'static str],
    pub(crate) spec: Spec,
}

const fn f(names: &'static [&'static str], spec: Spec) -> FilterDef {
    FilterDef { names, spec }
}

/// `GET /api/v1/auctions` (the reference's `AuctionRequest`).
pub(crate) const AUCTION_FILTERS: &[FilterDef] = &[
    f(&["countries"], Spec::Countries("Country")),
    f(&["ratings"], Spec::StrIn("Rating", Some(RATINGS))),
    f(&["gender"], Spec::IntIn("Gender", Some(GENDERS))),
    f(&["summin"], Spec::Min("AppliedAmount")),
    f(&["summax"], Spec::Max("AppliedAmount")),
    f(&["terms"], Spec::IntIn("LoanDuration", None)),
    f(&["agemin"], Spec::Min("Age")),
    f(&["agemax"], Spec::Max("Age")),
    f(&["loannumber"], Spec::IntIn("LoanNumber", None)),
    f(&["username"], Spec::StrIn("UserName", None)),
    f(
        &["applicationdatefrom"],
        Spec::From("LoanApplicationStartedDate"),
    ),
    f(
        &["applicationdateto"],
        Spec::To("LoanApplicationStartedDate"),
    ),
    f(&["creditscoremin"], Spec::Min("CreditScore")),
    f(&["creditscoremax"], Spec::Max("CreditScore")),
    f(
        &["creditscoreseemini"],
        Spec::StrIn("CreditScoreEeMini", Some(EE_MINI_SCORES)),
    ),
    f(&["interestmin"], Spec::Min("Interest")),
    f(&["interestmax"], Spec::Max("Interest")),
    f(&["incometotalmin"], Spec::Min("IncomeTotal")),
    f(&["incometotalmax"], Spec::Max("IncomeTotal")),
    f(&["modelversion"], Spec::IntIn("ModelVersion", None)),
    f(&["expectedlossmin"], Spec::Min("ExpectedLoss")),
    f(&["expectedlossmax"], Spec::Max("ExpectedLoss")),
    f(&["listedonutcfrom"], Spec::From("ListedOnUTC")),
    f(&["listedonutcto"], Spec::To("ListedOnUTC")),
];

/// Filters on the loan-part fields my investments and offers share.
macro_rules! loan_part_filters {
    ($($extra:expr),* $(,)?) => {
        &[
            f(&["loanissueddatefrom"], Spec::From("SignedDate")),
            f(&["loanissueddateto"], Spec::To("SignedDate")),
            f(&["principalmin"], Spec::Min("PrincipalRemaining")),
            f(&["principalmax"], Spec::Max("PrincipalRemaining")),
            f(&["interestmin"], Spec::Min("Interest")),
            f(&["interestmax"], Spec::Max("Interest")),
            f(&["lengthmin"], Spec::Min("LoanDuration")),
            f(&["lengthmax"], Spec::Max("LoanDuration")),
            f(&["lateprincipalamountmin"], Spec::Min("PrincipalLateAmount")),
            f(&["lateprincipalamountmax"], Spec::Max("PrincipalLateAmount")),
            f(&["debtoccuredonfrom"], Spec::From("DebtOccuredOn")),
            f(&["debtoccuredonto"], Spec::To("DebtOccuredOn")),
            f(&["debtoccuredonforsecondaryfrom"], Spec::From("DebtOccuredOnForSecondary")),
            f(&["debtoccuredonforsecondaryto"], Spec::To("DebtOccuredOnForSecondary")),
            f(&["defaulteddatefrom"], Spec::Ignored(Kind::Date)),
            f(&["defaulteddateto"], Spec::Ignored(Kind::Date)),
            f(&["rescheduledfrom"], Spec::From("ReScheduledOn")),
            f(&["rescheduledto"], Spec::To("ReScheduledOn")),
            f(&["nextpaymentdatefrom"], Spec::From("NextPaymentDate")),
            f(&["nextpaymentdateto"], Spec::To("NextPaymentDate")),
            f(&["lastpaymentdatefrom"], Spec::From("LastPaymentDate")),
            f(&["lastpaymentdateto"], Spec::To("LastPaymentDate")),
            f(&["countries"], Spec::Countries("Country")),
            f(&["ratings"], Spec::StrIn("Rating", Some(RATINGS))),
            f(&["creditscoremin"], Spec::Min("CreditScore")),
            f(&["creditscoremax"], Spec::Max("CreditScore")),
            f(&["username"], Spec::StrIn("UserName", None)),
            f(&["loanstatuscode"], Spec::IntIn("LoanStatusCode", Some(LOAN_STATUS_CODES))),
            f(&["incomeverificationstatus"], Spec::IntIn("IncomeVerificationStatus", Some(VERIFICATION))),
            f(&["loandebtmanagementstagetype"], Spec::IntIn("LatestDebtManagementStageType", None)),
            f(&["loandebtmanagementdateactivefrom"], Spec::From("LatestDebtManagementDate")),
            f(&["loandebtmanagementdateactiveto"], Spec::To("LatestDebtManagementDate")),
            $($extra),*
        ]
    };
}

/// `GET /api/v1/account/investments` (the reference's `MyInvestmentsRequest`).
pub(crate) const INVESTMENT_FILTERS: &[FilterDef] = loan_part_filters![
    f(&["solddatefrom"], Spec::From("SoldDate")),
    f(&["solddateto"], Spec::To("SoldDate")),
    f(&["purchasedatefrom"], Spec::From("PurchaseDate")),
    f(&["purchasedateto"], Spec::To("PurchaseDate")),
    f(
        &["loandebtmanagementstage"],
        Spec::IntIn("LatestDebtManagementStage", None)
    ),
    f(
        &["auctionbidtype"],
        Spec::IntIn("AuctionBidType", Some(BID_TYPES))
    ),
    f(&["salesstatus"], Spec::SalesStatus),
    f(&["isinrepayment"], Spec::InRepayment),
];

/// `GET /api/v1/secondarymarket` (the reference's `SecondMarketRequest`).
pub(crate) const OFFER_FILTERS: &[FilterDef] = loan_part_filters![
    f(&["hasdebt"], Spec::Present("DebtOccuredOnForSecondary")),
    f(&["pricemin"], Spec::Min("Price")),
    f(&["pricemax"], Spec::Max("Price")),
    f(&["useofloan"], Spec::IntIn("UseOfLoan", Some(USE_OF_LOAN))),
    f(&["hasnewschedule"], Spec::Present("ReScheduledOn")),
    f(&["gender"], Spec::IntIn("Gender", Some(GENDERS))),
    f(&["showmyitems"], Spec::Mine),
    f(&["auctionid"], Spec::StrIn("AuctionId", None)),
    f(&["listedondatefrom"], Spec::From("ListedOnDate")),
    f(&["listedondateto"], Spec::To("ListedOnDate")),
    f(
        &["desireddiscountratemin"],
        Spec::Min("DesiredDiscountRate")
    ),
    f(
        &["desireddiscountratemax"],
        Spec::Max("DesiredDiscountRate")
    ),
    f(&["xirrmin"], Spec::Min("Xirr")),
    f(&["xirrmax"], Spec::Max("Xirr")),
];

/// `GET /api/v1/bids` (the reference's `ApiBidSummariesRequest`; `bidStatus`
/// is the spelling of the document's example URI).
pub(crate) const BID_FILTERS: &[FilterDef] = &[
    f(
        &["bidstatuscode", "bidstatus"],
        Spec::IntIn("StatusCode", Some(BID_STATUSES)),
    ),
    f(&["startdate"], Spec::From("BidRequestedDate")),
    f(&["enddate"], Spec::To("BidRequestedDate")),
];

/// What some filters need to know about the caller.
pub(crate) struct Context<'a> {
    /// The caller's loan part ids.
    pub(crate) own_loan_parts: &'a HashSet<String>,
}

type Predicate<'a> = Box<dyn Fn(&Value) -> bool + Send + Sync + 'a>;

/// The filters a request asks for, parsed and checked.
pub(crate) struct Filters<'a> {
    predicates: Vec<Predicate<'a>>,
    /// Whether `SalesStatus` was sent: without it, sold investments are hidden.
    pub(crate) sales_status_sent: bool,
}

impl<'a> Filters<'a> {
    pub(crate) fn parse(
        params: &Params,
        defs: &'static [FilterDef],
        context: Context<'a>,
    ) -> Result<Self, ApiError> {
        let mut predicates: Vec<Predicate<'a>> = Vec::new();
        let mut sales_status_sent = false;
        for def in defs {
            let Some((name, values)) = params.list(def.names) else {
                continue;
            };
            let Some(&last) = values.last() else {
                // Sent empty: no filter, as ASP.NET binds nothing.
                continue;
            };
            let name = name.to_owned();
            match def.spec {
                Spec::Min(field) => {
                    let bound = number(&name, last)?;
                    predicates.push(Box::new(move |item| {
                        decimal_of(&item[field]).is_some_and(|value| value >= bound)
                    }));
                }
                Spec::Max(field) => {
                    let bound = number(&name, last)?;
                    predicates.push(Box::new(move |item| {
                        decimal_of(&item[field]).is_some_and(|value| value <= bound)
                    }));
                }
                Spec::From(field) => {
                    let bound = date(&name, last)?;
                    predicates.push(Box::new(move |item| {
                        instant_of(&item[field]).is_some_and(|value| value >= bound)
                    }));
                }
                Spec::To(field) => {
                    let bound = date(&name, last)?;
                    predicates.push(Box::new(move |item| {
                        instant_of(&item[field]).is_some_and(|value| value <= bound)
                    }));
                }
                Spec::StrIn(field, members) => {
                    let mut wanted = Vec::new();
                    for value in &values {
                        if let Some(members) = members
                            && !members.iter().any(|m| m.eq_ignore_ascii_case(value))
                        {
                            return Err(ApiError::invalid_parameter(
                                &name,
                                value,
                                &format!("not one of {}", members.join(", ")),
                            ));
                        }
                        wanted.push(value.to_ascii_lowercase());
                    }
                    predicates.push(Box::new(move |item| {
                        item[field].as_str().is_some_and(|value| {
                            wanted.iter().any(|w| w.eq_ignore_ascii_case(value))
                        })
                    }));
                }
                Spec::Countries(field) => {
                    let mut wanted = Vec::new();
                    for value in &values {
                        if value.len() != 2 || !value.bytes().all(|b| b.is_ascii_alphabetic()) {
                            return Err(ApiError::invalid_parameter(
                                &name,
                                value,
                                "not a two-letter ISO country code",
                            ));
                        }
                        wanted.push(value.to_ascii_uppercase());
                    }
                    predicates.push(Box::new(move |item| {
                        item[field]
                            .as_str()
                            .is_some_and(|value| wanted.iter().any(|w| w == value))
                    }));
                }
                Spec::IntIn(field, members) => {
                    let mut wanted = Vec::new();
                    for value in &values {
                        let parsed = integer(&name, value)?;
                        if let Some(members) = members
                            && !members.contains(&parsed)
                        {
                            let listed: Vec<String> =
                                members.iter().map(ToString::to_string).collect();
                            return Err(ApiError::invalid_parameter(
                                &name,
                                value,
                                &format!("not one of {}", listed.join(", ")),
                            ));
                        }
                        wanted.push(parsed);
                    }
                    predicates.push(Box::new(move |item| {
                        item[field]
                            .as_i64()
                            .is_some_and(|value| wanted.contains(&value))
                    }));
                }
                Spec::Present(field) => {
                    let wanted = boolean(&name, last)?;
                    predicates.push(Box::new(move |item| {
                        let present = match &item[field] {
                            Value::Null => false,
                            number @ Value::Number(_) => {
                                decimal_of(number).is_some_and(|n| n > Decimal::ZERO)
                            }
                            _ => true,
                        };
                        present == wanted
                    }));
                }
                Spec::Mine => {
                    let wanted = boolean(&name, last)?;
                    let own = context.own_loan_parts;
                    predicates.push(Box::new(move |item| {
                        let mine = item["LoanPartId"]
                            .as_str()
                            .is_some_and(|id| own.contains(id));
                        mine == wanted
                    }));
                }
                Spec::SalesStatus => {
                    sales_status_sent = true;
                    let status = integer(&name, last)?;
                    let test: fn(&Value) -> bool = match status {
                        0 => |item| !item["BoughtFromId"].is_null(),
                        1 => |item| !item["SoldDate"].is_null(),
                        2 => |item| {
                            item["SoldDate"].is_null() && !item["ListedInSecondMarketOn"].is_null()
                        },
                        3 => |item| {
                            item["SoldDate"].is_null() && item["ListedInSecondMarketOn"].is_null()
                        },
                        _ => {
                            return Err(ApiError::invalid_parameter(
                                &name,
                                last,
                                "not one of 0, 1, 2, 3",
                            ));
                        }
                    };
                    predicates.push(Box::new(test));
                }
                Spec::InRepayment => {
                    let wanted = boolean(&name, last)?;
                    predicates.push(Box::new(move |item| {
                        let repaying = matches!(item["LoanStatusCode"].as_i64(), Some(2 | 5 | 100));
                        repaying == wanted
                    }));
                }
                Spec::Ignored(Kind::Date) => {
                    date(&name, last)?;
                }
            }
        }
        Ok(Self {
            predicates,
            sales_status_sent,
        })
    }

    pub(crate) fn matches(&self, item: &Value) -> bool {
        self.predicates.iter().all(|predicate| predicate(item))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn filters(query: &str, defs: &'static [FilterDef]) -> Result<Vec<bool>, String> {
        let own = HashSet::new();
        let params = Params::parse(Some(query));
        let filters = Filters::parse(
            &params,
            defs,
            Context {
                own_loan_parts: &own,
            },
        )
        .map_err(|error| format!("{error:?}"))?;
        let items = [
            json!({"Rating": "A", "Country": "EE", "Interest": 12.5, "LoanDuration": 12}),
            json!({"Rating": "HR", "Country": "FI", "Interest": 45, "LoanDuration": 60}),
        ];
        Ok(items.iter().map(|item| filters.matches(item)).collect())
    }

    #[test]
    fn names_are_case_insensitive_with_or_without_prefix() {
        for query in [
            "request.ratings=A",
            "Ratings=a",
            "RATINGS=A",
            "request.Ratings[0]=A",
        ] {
            assert_eq!(
                filters(query, AUCTION_FILTERS).unwrap(),
                [true, false],
                "{query}"
            );
        }
    }

    #[test]
    fn lists_repeat_or_split_on_commas() {
        assert_eq!(
            filters("Ratings=A&Ratings=HR", AUCTION_FILTERS).unwrap(),
            [true, true]
        );
        assert_eq!(
            filters("Ratings=A,HR", AUCTION_FILTERS).unwrap(),
            [true, true]
        );
        assert_eq!(
            filters("Countries=fi&InterestMin=13", AUCTION_FILTERS).unwrap(),
            [false, true]
        );
        assert_eq!(
            filters("InterestMax=12.5&Terms=12,24", AUCTION_FILTERS).unwrap(),
            [true, false]
        );
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(filters("Ratings=AAA", AUCTION_FILTERS).is_err());
        assert!(filters("InterestMin=lots", AUCTION_FILTERS).is_err());
        assert!(filters("Countries=Estonia", AUCTION_FILTERS).is_err());
        assert!(filters("LoanStatusCode=7", OFFER_FILTERS).is_err());
        assert!(filters("ListedOnUTCFrom=yesterday", AUCTION_FILTERS).is_err());
        // Unknown parameters are ignored.
        assert_eq!(
            filters("Colour=red", AUCTION_FILTERS).unwrap(),
            [true, true]
        );
    }

    #[test]
    fn paging_reads_and_checks() {
        let paging = |query: &str| Paging::parse(&Params::parse(Some(query)), 20_000);
        let default = paging("").unwrap();
        assert_eq!((default.size, default.number), (10_000, 1));
        let asked = paging("request.pageSize=50&request.pageNr=3").unwrap();
        assert_eq!((asked.size, asked.number), (50, 3));
        let pascal = paging("PageSize=7&PageNr=2").unwrap();
        assert_eq!((pascal.size, pascal.number), (7, 2));
        assert!(paging("PageSize=0").is_err());
        assert!(paging("PageSize=20001").is_err());
        assert!(paging("PageNr=0").is_err());
        assert!(paging("PageNr=x").is_err());
        assert_eq!(
            Paging { size: 2, number: 2 }.apply(&[1, 2, 3, 4, 5]),
            vec![3, 4]
        );
    }

    #[test]
    fn dates_read_in_several_forms() {
        for text in [
            "2024-12-09",
            "2024-12-09T00:00:00",
            "2024-12-09T02:00:00+02:00",
            "2024-12-09T02:00:00 02:00",
            "2024-12-09T00:00:00.0000000Z",
        ] {
            assert_eq!(
                date("d", text).unwrap(),
                DateTime::parse_from_rfc3339("2024-12-09T00:00:00Z").unwrap(),
                "{text}"
            );
        }
    }
}
