//! What every listing shares: paging (`X-Page`, `X-Size`, `X-Total`),
//! ordering (`X-Order`), filters (`field__op=value`) and partial responses
//! (`fields`), over any table of [`Column`]s.

use axum::{
    Json,
    http::{HeaderMap, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
};
use serde::Serialize;

use super::{
    error::ApiError,
    fields::FieldSelection,
    filter::{self, Column, Filter, SortKey},
};

/// Page size when the client sends no `X-Size`.
const DEFAULT_PAGE_SIZE: usize = 20;

/// Settings every listing obeys.
#[derive(Clone, Debug)]
pub(crate) struct ListSettings {
    /// Larger `X-Size` values are lowered to this.
    pub(crate) max_page_size: usize,
    /// Properties refused for filtering and ordering on top of the tables.
    pub(crate) refused_fields: Vec<String>,
}

/// What a request asks of a listing: filters, order and a partial response.
pub(crate) struct Query<C> {
    /// `X-Page` and `X-Size`.
    paging: (usize, usize),
    filters: Vec<Filter<C>>,
    order: Vec<SortKey<C>>,
    fields: Option<FieldSelection>,
}

impl<C: Column> Query<C> {
    /// Reads the paging headers, the filters (the query parameters named `field__op`; any other
    /// parameter is not a filter and is left alone, except `fields`) and
    /// `X-Order` (else `default_order`), refusing properties the settings
    /// refuse.
    pub(crate) fn parse(
        headers: &HeaderMap,
        raw_query: Option<&str>,
        default_order: &[SortKey<C>],
        settings: &ListSettings,
    ) -> Result<Self, ApiError> {
        let paging = paging(headers, settings.max_page_size)?;
        let order = match headers.get("x-order") {
            Some(value) => SortKey::<C>::parse_header(value.to_str().map_err(|_| {
                ApiError::invalid_request("X-Order must be visible ASCII".to_owned())
            })?)?,
            None => Vec::new(),
        };
        let refused = |property: &str| settings.refused_fields.iter().any(|f| f == property);
        let mut filters = Vec::new();
        let mut fields = Vec::new();
        for (name, value) in form_urlencoded::parse(raw_query.unwrap_or_default().as_bytes()) {
            if name == "fields" {
                fields.push(value.into_owned());
            } else if let Some((property, suffix)) = name.split_once("__") {
                let filter = Filter::parse(property, suffix, &value)?;
                if refused(property) {
                    return Err(ApiError::invalid_filter(property, suffix));
                }
                filters.push(filter);
            }
        }
        if let Some(key) = order.iter().find(|key| refused(key.column.name())) {
            return Err(ApiError::invalid_filter(key.column.name(), "X-Order"));
        }
        Ok(Self {
            paging,
            filters,
            order: if order.is_empty() {
                default_order.to_vec()
            } else {
                order
            },
            fields: FieldSelection::parse(&fields.join(",")),
        })
    }

    /// The records the filters keep, in order.
    pub(crate) fn select<'a>(
        &self,
        records: impl IntoIterator<Item = &'a C::Record>,
    ) -> Vec<&'a C::Record>
    where
        C::Record: 'a,
    {
        let mut kept: Vec<&C::Record> = records
            .into_iter()
            .filter(|record| self.filters.iter().all(|filter| filter.matches(record)))
            .collect();
        kept.sort_unstable_by(|a, b| filter::compare(&self.order, a, b));
        kept
    }

    /// The page of `records` the paging headers ask for, with `X-Total`.
    pub(crate) fn page<T: Serialize>(&self, records: Vec<T>) -> Response {
        let (page, size) = self.paging;
        let total = records.len();
        let page: Vec<T> = records
            .into_iter()
            .skip(page.saturating_mul(size))
            .take(size)
            .collect();
        let mut response = answer(self.fields.as_ref(), page);
        response
            .headers_mut()
            .insert("x-total", HeaderValue::from(total));
        response
    }

    /// The JSON answer, with only the requested fields when asked.
    pub(crate) fn answer<T: Serialize>(&self, body: T) -> Response {
        answer(self.fields.as_ref(), body)
    }
}

/// The `fields` of a query string, for answers that are not listings.
pub(crate) fn selected_fields(raw_query: Option<&str>) -> Option<FieldSelection> {
    let fields: Vec<String> = form_urlencoded::parse(raw_query.unwrap_or_default().as_bytes())
        .filter(|(name, _)| name == "fields")
        .map(|(_, value)| value.into_owned())
        .collect();
    FieldSelection::parse(&fields.join(","))
}

/// The JSON answer, with only the selected fields when some are.
pub(crate) fn answer<T: Serialize>(fields: Option<&FieldSelection>, body: T) -> Response {
    match fields {
        None => Json(body).into_response(),
        Some(fields) => match serde_json::to_value(body) {
            Ok(value) => Json(fields.apply(value)).into_response(),
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        },
    }
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
