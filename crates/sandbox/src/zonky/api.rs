//! The public endpoints: marketplace, loan detail, last published loan and
//! the secondary marketplace.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, RawQuery, State},
    http::HeaderMap,
    response::Response,
};
use serde::Serialize;

use super::{
    columns::{LoanColumn, OfferColumn},
    data::Loan,
    error::ApiError,
    filter::SortKey,
    listing::{ListSettings, Query},
    secondary::Offer,
};

/// The marketplace's order without `X-Order`: the newest loans first.
const NEWEST_LOANS_FIRST: [SortKey<LoanColumn>; 1] =
    [SortKey::new(LoanColumn::DatePublished, true)];
/// The secondary marketplace's order without `X-Order`: the newest offers first.
const NEWEST_OFFERS_FIRST: [SortKey<OfferColumn>; 1] =
    [SortKey::new(OfferColumn::DatePublished, true)];

/// The loans and offers, and what the endpoints need to answer about them.
pub(crate) struct Marketplace {
    /// Sorted by id (they are generated so).
    loans: Vec<Loan>,
    /// The secondary marketplace, sorted by id.
    offers: Vec<Offer>,
    last_published: Option<u64>,
    settings: ListSettings,
}

impl Marketplace {
    pub(crate) fn new(loans: Vec<Loan>, offers: Vec<Offer>, settings: ListSettings) -> Self {
        let last_published = loans
            .iter()
            .max_by_key(|loan| (loan.date_published, loan.id))
            .map(|loan| loan.id);
        Self {
            loans,
            offers,
            last_published,
            settings,
        }
    }

    pub(crate) fn loans(&self) -> &[Loan] {
        &self.loans
    }

    pub(crate) fn offers(&self) -> &[Offer] {
        &self.offers
    }

    fn loan(&self, id: u64) -> Option<&Loan> {
        let index = self.loans.binary_search_by_key(&id, |loan| loan.id).ok()?;
        self.loans.get(index)
    }
}

/// `GET /loans/marketplace`.
pub(crate) async fn marketplace(
    State(market): State<Arc<Marketplace>>,
    headers: HeaderMap,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    let query = Query::<LoanColumn>::parse(
        &headers,
        raw_query.as_deref(),
        &NEWEST_LOANS_FIRST,
        &market.settings,
    )?;
    // Only loans whose deadline is still ahead are on the marketplace.
    let now = chrono::Utc::now();
    let loans = query.select(market.loans.iter().filter(|loan| loan.deadline > now));
    Ok(query.page(loans))
}

/// `GET /loans/{id}`.
pub(crate) async fn loan_detail(
    State(market): State<Arc<Marketplace>>,
    Path(id): Path<String>,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    let id: u64 = id.parse().map_err(|_| {
        ApiError::invalid_request(format!("the loan id must be a number, got {id:?}"))
    })?;
    // Filters are checked as on the marketplace; paging and order do not apply.
    let query = Query::<LoanColumn>::parse(
        &HeaderMap::new(),
        raw_query.as_deref(),
        &NEWEST_LOANS_FIRST,
        &market.settings,
    )?;
    let loan = market.loan(id).ok_or_else(|| ApiError::NotFound {
        description: format!("Loan {id} not found"),
    })?;
    Ok(query.answer(loan))
}

/// The document's `LastLoanId` (its shape is not shown there).
#[derive(Serialize)]
pub(crate) struct LastLoanId {
    id: u64,
}

/// `GET /loans/last-published`.
pub(crate) async fn last_published(
    State(market): State<Arc<Marketplace>>,
) -> Result<Json<LastLoanId>, ApiError> {
    market
        .last_published
        .map(|id| Json(LastLoanId { id }))
        .ok_or_else(|| ApiError::NotFound {
            description: "No loan has been published".to_owned(),
        })
}

/// `GET /smp/investments`: offers whose deadline is ahead; those of loans
/// past due only with `delinquent=true`.
pub(crate) async fn secondary_marketplace(
    State(market): State<Arc<Marketplace>>,
    headers: HeaderMap,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    let query = Query::<OfferColumn>::parse(
        &headers,
        raw_query.as_deref(),
        &NEWEST_OFFERS_FIRST,
        &market.settings,
    )?;
    let delinquent = delinquent_param(raw_query.as_deref())?;
    let now = chrono::Utc::now();
    let offers = query.select(
        market
            .offers
            .iter()
            .filter(|offer| offer.deadline > now && (delinquent || !offer.delinquent())),
    );
    Ok(query.page(offers))
}

/// The `delinquent` parameter: `true` or `false` (the last one sent wins),
/// false when absent.
fn delinquent_param(raw_query: Option<&str>) -> Result<bool, ApiError> {
    let mut delinquent = false;
    for (name, value) in form_urlencoded::parse(raw_query.unwrap_or_default().as_bytes()) {
        if name == "delinquent" {
            delinquent = match value.trim().to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                _ => {
                    return Err(ApiError::invalid_request(format!(
                        "delinquent must be true or false, got {value:?}"
                    )));
                }
            };
        }
    }
    Ok(delinquent)
}
