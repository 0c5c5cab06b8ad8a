//! The simulated endpoints: marketplace, loan detail and last published loan.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use super::{
    data::Loan,
    error::ApiError,
    fields::FieldSelection,
    filter::{self, Filter, SortKey},
};

/// Page size when the client sends no `X-Size`.
const DEFAULT_PAGE_SIZE: usize = 20;

/// The loans and what the endpoints need to answer about them.
pub(crate) struct Marketplace {
    /// Sorted by id (they are generated so).
    loans: Vec<Loan>,
    last_published: Option<u64>,
    max_page_size: usize,
    refused_fields: Vec<String>,
}

impl Marketplace {
    pub(crate) fn new(loans: Vec<Loan>, max_page_size: usize, refused_fields: Vec<String>) -> Self {
        let last_published = loans
            .iter()
            .max_by_key(|loan| (loan.date_published, loan.id))
            .map(|loan| loan.id);
        Self {
            loans,
            last_published,
            max_page_size,
            refused_fields,
        }
    }

    pub(crate) fn loans(&self) -> &[Loan] {
        &self.loans
    }

    fn loan(&self, id: u64) -> Option<&Loan> {
        let index = self.loans.binary_search_by_key(&id, |loan| loan.id).ok()?;
        self.loans.get(index)
    }
}

/// What a request asks for in its query string: filters and a partial response.
struct Query {
    filters: Vec<Filter>,
    /// Each filter's property and operation, as sent.
    properties: Vec<(String, String)>,
    fields: Option<FieldSelection>,
}

impl Query {
    /// Filters are the parameters named `field__op`; any other parameter is not a
    /// filter and is left alone, except `fields`.
    fn parse(raw: Option<&str>) -> Result<Self, ApiError> {
        let mut query = Self {
            filters: Vec::new(),
            properties: Vec::new(),
            fields: None,
        };
        let mut fields = Vec::new();
        for (name, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            if name == "fields" {
                fields.push(value.into_owned());
            } else if let Some((property, suffix)) = name.split_once("__") {
                query.filters.push(Filter::parse(property, suffix, &value)?);
                query
                    .properties
                    .push((property.to_owned(), suffix.to_owned()));
            }
        }
        query.fields = FieldSelection::parse(&fields.join(","));
        Ok(query)
    }

    /// The JSON answer, with only the requested fields when asked.
    fn answer<T: Serialize>(&self, body: T) -> Response {
        match &self.fields {
            None => Json(body).into_response(),
            Some(fields) => match serde_json::to_value(body) {
                Ok(value) => Json(fields.apply(value)).into_response(),
                Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            },
        }
    }
}

/// `GET /loans/marketplace`.
pub(crate) async fn marketplace(
    State(market): State<Arc<Marketplace>>,
    headers: HeaderMap,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    let (page, size) = paging(&headers, market.max_page_size)?;
    let order =
        match headers.get("x-order") {
            Some(value) => SortKey::parse_header(value.to_str().map_err(|_| {
                ApiError::invalid_request("X-Order must be visible ASCII".to_owned())
            })?)?,
            None => Vec::new(),
        };
    let order = if order.is_empty() {
        vec![SortKey::DEFAULT]
    } else {
        order
    };
    let query = Query::parse(raw_query.as_deref())?;
    for (property, operation) in query
        .properties
        .iter()
        .map(|(p, op)| (p.as_str(), op.as_str()))
        .chain(order.iter().map(|key| (key.field.name(), "X-Order")))
    {
        if market.refused_fields.iter().any(|f| f == property) {
            return Err(ApiError::invalid_filter(property, operation));
        }
    }

    // Only loans whose deadline is still ahead are on the marketplace.
    let now = chrono::Utc::now();
    let mut loans: Vec<&Loan> = market
        .loans
        .iter()
        .filter(|loan| loan.deadline > now)
        .filter(|loan| query.filters.iter().all(|filter| filter.matches(loan)))
        .collect();
    loans.sort_unstable_by(|a, b| filter::compare(&order, a, b));

    let total = loans.len();
    let page: Vec<&Loan> = loans
        .into_iter()
        .skip(page.saturating_mul(size))
        .take(size)
        .collect();
    let mut response = query.answer(page);
    response
        .headers_mut()
        .insert("x-total", HeaderValue::from(total));
    Ok(response)
}

/// Reads `X-Page` (from 0) and `X-Size`, capping the size.
fn paging(headers: &HeaderMap, max_page_size: usize) -> Result<(usize, usize), ApiError> {
    let page = header_number(headers, "x-page", "X-Page")?.unwrap_or(0);
    let size = match header_number(headers, "x-size", "X-Size")? {
        None => DEFAULT_PAGE_SIZE,
        Some(0) => {
            return Err(ApiError::invalid_request(
                "X-Size must be at least 1".to_owned(),
            ));
        }
        Some(size) => size,
    };
    Ok((page, size.min(max_page_size.max(1))))
}

fn header_number(headers: &HeaderMap, name: &str, label: &str) -> Result<Option<usize>, ApiError> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    let text = String::from_utf8_lossy(value.as_bytes());
    text.trim().parse().map(Some).map_err(|_| {
        ApiError::invalid_request(format!(
            "{label} must be a whole number from 0, got {text:?}"
        ))
    })
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
    let query = Query::parse(raw_query.as_deref())?;
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
