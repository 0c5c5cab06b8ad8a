//! The private endpoints: the signed-in user's investments and basic info.
//! Each needs a valid bearer token (else 401, or the configured status for
//! an invalid or expired one) with the document's required scope (else 403
//! `insufficient_scope`).

use std::{collections::HashMap, sync::Arc};

use axum::{
    Json,
    extract::{Path, RawQuery, State},
    http::{HeaderMap, StatusCode},
    response::Response,
};
use serde::Serialize;

use super::{
    columns::InvestmentColumn,
    error::ApiError,
    filter::SortKey,
    listing::{ListSettings, Query, answer, selected_fields},
    portfolio::{Investment, InvestmentSummary, fnv1a},
};
use crate::oauth::{OAuthServer, TokenProblem};

pub(crate) const SCOPE_APP_BASIC_INFO: &str = "SCOPE_APP_BASIC_INFO";
pub(crate) const SCOPE_INVESTMENT_READ: &str = "SCOPE_INVESTMENT_READ";

/// `/me/investments` without `X-Order`: the newest investments first.
const NEWEST_INVESTMENTS_FIRST: [SortKey<InvestmentColumn>; 1] =
    [SortKey::new(InvestmentColumn::TimeCreated, true)];

/// The users, their tokens and their investments.
pub(crate) struct Private {
    pub(crate) oauth: OAuthServer,
    /// The status answering an invalid or expired token.
    pub(crate) invalid_token_status: StatusCode,
    /// Each user's investments, sorted by id.
    pub(crate) portfolios: HashMap<String, Vec<Investment>>,
    pub(crate) settings: ListSettings,
}

impl Private {
    /// The user behind the request's token, if it grants `scope`.
    fn user(&self, headers: &HeaderMap, scope: &'static str) -> Result<String, ApiError> {
        let access = self
            .oauth
            .access(headers)
            .map_err(|problem| ApiError::Unauthenticated {
                status: match problem {
                    TokenProblem::Missing => StatusCode::UNAUTHORIZED,
                    TokenProblem::Invalid | TokenProblem::Expired => self.invalid_token_status,
                },
                problem,
            })?;
        if !access.has_scope(scope) {
            return Err(ApiError::InsufficientScope { scope });
        }
        Ok(access.user)
    }

    pub(crate) fn portfolio(&self, user: &str) -> &[Investment] {
        self.portfolios.get(user).map_or(&[], Vec::as_slice)
    }
}

/// `GET /me/investments`.
pub(crate) async fn investments(
    State(private): State<Arc<Private>>,
    headers: HeaderMap,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    let user = private.user(&headers, SCOPE_INVESTMENT_READ)?;
    let query = Query::<InvestmentColumn>::parse(
        &headers,
        raw_query.as_deref(),
        &NEWEST_INVESTMENTS_FIRST,
        &private.settings,
    )?;
    Ok(query.page(query.select(private.portfolio(&user))))
}

/// `GET /me/investments/summary`: the same filters (and checks of
/// `X-Order`) as the list, summed over every matching investment.
pub(crate) async fn summary(
    State(private): State<Arc<Private>>,
    headers: HeaderMap,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    let user = private.user(&headers, SCOPE_INVESTMENT_READ)?;
    let query = Query::<InvestmentColumn>::parse(
        &headers,
        raw_query.as_deref(),
        &NEWEST_INVESTMENTS_FIRST,
        &private.settings,
    )?;
    let summary = InvestmentSummary::of(query.select(private.portfolio(&user)));
    Ok(query.answer(summary))
}

/// `GET /me/investments/{id}`: 404 for any investment not the user's.
pub(crate) async fn investment_detail(
    State(private): State<Arc<Private>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    RawQuery(raw_query): RawQuery,
) -> Result<Response, ApiError> {
    let user = private.user(&headers, SCOPE_INVESTMENT_READ)?;
    let not_found = || ApiError::NotFound {
        description: format!("Investment {id} not found"),
    };
    let Ok(number) = id.parse::<u64>() else {
        return Err(not_found());
    };
    let portfolio = private.portfolio(&user);
    let investment = portfolio
        .binary_search_by_key(&number, |investment| investment.id)
        .ok()
        .and_then(|index| portfolio.get(index))
        .ok_or_else(not_found)?;
    Ok(answer(
        selected_fields(raw_query.as_deref()).as_ref(),
        investment.detail(),
    ))
}

/// The document's answer of `/users/me/basic`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BasicInfo {
    id: u64,
    username: String,
    email: String,
    first_name: String,
    surname: &'static str,
    nick_name: String,
}

/// `GET /users/me/basic`, which the document guards with `SCOPE_APP_BASIC_INFO`.
pub(crate) async fn basic_info(
    State(private): State<Arc<Private>>,
    headers: HeaderMap,
) -> Result<Json<BasicInfo>, ApiError> {
    let user = private.user(&headers, SCOPE_APP_BASIC_INFO)?;
    Ok(Json(basic_info_of(&user)))
}

/// A user's basic info, made up from the name: the same every time.
pub(crate) fn basic_info_of(user: &str) -> BasicInfo {
    const SURNAMES: [&str; 8] = [
        "Novák",
        "Svobodová",
        "Novotný",
        "Dvořáková",
        "Černý",
        "Procházková",
        "Kučera",
        "Veselá",
    ];
    let hash = fnv1a(user.as_bytes());
    let mut first_name: String = user.chars().take(1).flat_map(char::to_uppercase).collect();
    first_name.extend(user.chars().skip(1));
    BasicInfo {
        id: 10_000 + hash % 990_000,
        username: format!("{user}@sandbox.zonky.cz"),
        email: format!("{user}@sandbox.zonky.cz"),
        first_name,
        surname: SURNAMES[usize::try_from(hash % 8).unwrap_or(0)],
        nick_name: user.to_owned(),
    }
}
