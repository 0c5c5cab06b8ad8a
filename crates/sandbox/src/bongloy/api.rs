//! The simulated endpoints: organizations and transfers, authenticated by the
//! RS256 JWT of every request.

use std::{collections::BTreeMap, sync::Arc};

use axum::{
    Extension, Json,
    body::Bytes,
    extract::{OriginalUri, Path, RawQuery, Request, State},
    http::{HeaderMap, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::{Map, Value, json};

use super::{
    Inner,
    bank::{NewTransfer, Transfer, TransferStatus},
    jsonapi::{ApiError, ErrorCode, ErrorSource, read_document},
    jwt::{self, JwtProblem},
};

/// The authenticated caller, put in the request's extensions.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    pub(crate) organization: String,
}

/// The smallest transfer: $1.00.
pub(crate) const MIN_AMOUNT: i64 = 100;

/// Middleware: 401 unless the request carries a valid JWT of a configured
/// partner; otherwise the partner's organization becomes the [`Caller`].
pub(crate) async fn authenticate(
    State(inner): State<Arc<Inner>>,
    mut request: Request,
    next: Next,
) -> Response {
    match caller(&inner, request.headers()) {
        Ok(caller) => {
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(problem) => {
            tracing::debug!(%problem, "refusing a Bongloy request");
            ApiError::unauthorized(problem.to_string()).into_response()
        }
    }
}

fn caller(inner: &Inner, headers: &HeaderMap) -> Result<Caller, JwtProblem> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(JwtProblem::Missing)?;
    let value = value.to_str().map_err(|_| JwtProblem::Missing)?;
    let (scheme, token) = value.trim().split_once(' ').ok_or(JwtProblem::Missing)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(JwtProblem::Missing);
    }
    let token = token.trim();
    // Which partner's keys to try is read from the token itself; only a
    // signature one of that partner's keys verifies makes it true.
    let partner = jwt::unverified_api_token(token)
        .and_then(|api_token| inner.partners.iter().find(|p| p.api_token == api_token));
    let keys = partner.map_or(&[][..], |partner| partner.keys.as_slice());
    let claims = match jwt::verify_jwt_with(token, keys, Utc::now().timestamp(), inner.jwt_rules) {
        Err(JwtProblem::Signature) if partner.is_none() => Err(JwtProblem::UnknownApiToken),
        other => other,
    }?;
    let partner = inner
        .partners
        .iter()
        .find(|partner| partner.api_token == claims.api_token)
        .ok_or(JwtProblem::UnknownApiToken)?;
    Ok(Caller {
        organization: partner.organization.clone(),
    })
}

/// `GET /v1/organizations`: every organization of the network; the caller's own
/// also shows its `account_number` and `balance` (cents).
pub(crate) async fn organizations(
    State(inner): State<Arc<Inner>>,
    Extension(caller): Extension<Caller>,
    OriginalUri(uri): OriginalUri,
) -> Json<Value> {
    let (bank, _) = inner.ledger();
    let data: Vec<Value> = bank
        .organizations
        .iter()
        .map(|org| {
            let mut attributes = json!({
                "name": org.name,
                "country": org.country,
                "currency": org.currency,
            });
            if org.id == caller.organization
                && let Some(attributes) = attributes.as_object_mut()
            {
                attributes.insert("account_number".into(), json!(org.account_number));
                let balance = bank.accounts.get(&org.account_number).map(|a| a.balance);
                attributes.insert("balance".into(), json!(balance));
            }
            json!({"type": "organization", "id": org.id, "attributes": attributes})
        })
        .collect();
    Json(json!({
        "data": data,
        "links": {"self": uri.path()},
        "meta": {"total": bank.organizations.len()},
    }))
}

/// `POST /v1/transfers` → 201 with the pending transfer.
pub(crate) async fn create_transfer(
    State(inner): State<Arc<Inner>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let document = read_document(&headers, &body)?;
    let new = parse_new_transfer(&document)?;
    let (mut bank, now) = inner.ledger();
    let transfer = bank.create(&caller.organization, new, now, inner.timing)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"data": transfer.resource()})),
    )
        .into_response())
}

/// `PATCH /v1/transfers/{id}/confirm` with `{"data": {"type": "transfer", "id": ...}}`.
pub(crate) async fn confirm_transfer(
    State(inner): State<Arc<Inner>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let (mut bank, now) = inner.ledger();
    // An unknown transfer is 404 whatever the body says.
    bank.get(&caller.organization, &id)?;
    let document = read_document(&headers, &body)?;
    let data = resource_object(&document, Some(&id))?;
    if let Some(attributes) = data.get("attributes")
        && attributes.as_object().is_none_or(|a| !a.is_empty())
    {
        return Err(ApiError::invalid(
            "/data/attributes",
            "confirming takes no attributes".to_owned(),
        ));
    }
    let transfer = bank.confirm(&caller.organization, &id, now, inner.timing)?;
    Ok(Json(json!({"data": transfer.resource()})))
}

/// `GET /v1/transfers/{id}`.
pub(crate) async fn get_transfer(
    State(inner): State<Arc<Inner>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (bank, _) = inner.ledger();
    let transfer = bank.get(&caller.organization, &id)?;
    Ok(Json(json!({"data": transfer.resource()})))
}

/// `PATCH /v1/transfers/{id}`: only `metadata` may be sent, and it replaces
/// the transfer's metadata whole (the document calls it a "Set of key-value
/// pairs" and says nothing of merging); `null` or `{}` clears it.
pub(crate) async fn update_transfer(
    State(inner): State<Arc<Inner>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let (mut bank, now) = inner.ledger();
    bank.get(&caller.organization, &id)?;
    let document = read_document(&headers, &body)?;
    let data = resource_object(&document, Some(&id))?;
    let attributes = attributes(data)?;
    if let Some(other) = attributes.keys().find(|name| *name != "metadata") {
        return Err(ApiError::invalid(
            &format!("/data/attributes/{}", escape_pointer(other)),
            format!("{other} cannot be updated; only metadata can"),
        ));
    }
    let metadata = match attributes.get("metadata") {
        None => {
            return Err(ApiError::invalid(
                "/data/attributes/metadata",
                "metadata is required".to_owned(),
            ));
        }
        Some(value) => parse_metadata(value)?,
    };
    let transfer = bank.replace_metadata(&caller.organization, &id, metadata, now)?;
    Ok(Json(json!({"data": transfer.resource()})))
}

/// `GET /v1/transfers`: the caller's transfers, newest first.
///
/// - `filter[status]`: one status (`pending`, `confirmed`, `successful`,
///   `failed`, `expired`);
/// - `filter[from_date]`, `filter[to_date]`: ISO 8601, compared with
///   `created_at`, both inclusive ("on or after", "on or before"). RFC 3339
///   with or without an offset (none means UTC; a `+` sent unencoded, read as
///   a space, is taken back) or a bare date: from its first millisecond, or to
///   its last;
/// - `page[number]` (from 1) and `page[size]` (JSON:API's convention; the
///   document is silent): with neither, every match in one answer; with one
///   of them, the other defaults to 1 or the configured page size; sizes over
///   the configured maximum are lowered to it.
///
/// Answer: `{"data": [...], "links": {"self", "first", "prev", "next", "last"},
/// "meta": {"total": n, "page": {"number", "size", "total_pages"}}}`; `prev`
/// and `next` are null where there is none; without paging, `links` has only
/// `self` and `meta` only `total`. A parameter that does not parse, or an
/// unknown `filter[...]`, is a 422 `validation_error` naming the parameter.
pub(crate) async fn list_transfers(
    State(inner): State<Arc<Inner>>,
    Extension(caller): Extension<Caller>,
    headers: HeaderMap,
    OriginalUri(uri): OriginalUri,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let query = ListQuery::parse(raw.as_deref(), inner.default_page_size, inner.max_page_size)?;
    let (bank, _) = inner.ledger();
    let matching = bank.list(&caller.organization, |transfer| query.keeps(transfer));
    let total = matching.len();

    let base = match headers.get(header::HOST).and_then(|h| h.to_str().ok()) {
        Some(host) => format!("http://{host}{}", uri.path()),
        None => uri.path().to_owned(),
    };
    let link = |page: Option<(usize, usize)>| {
        let mut serializer = form_urlencoded::Serializer::new(String::new());
        for (name, value) in &query.filters {
            serializer.append_pair(name, value);
        }
        if let Some((number, size)) = page {
            serializer.append_pair("page[number]", &number.to_string());
            serializer.append_pair("page[size]", &size.to_string());
        }
        let query = serializer.finish();
        if query.is_empty() {
            base.clone()
        } else {
            format!("{base}?{query}")
        }
    };

    let Some((number, size)) = query.page else {
        let data: Vec<Value> = matching.iter().map(|t| t.resource()).collect();
        return Ok(Json(json!({
            "data": data,
            "links": {"self": link(None)},
            "meta": {"total": total},
        })));
    };
    let total_pages = total.div_ceil(size).max(1);
    let data: Vec<Value> = matching
        .iter()
        .skip((number - 1).saturating_mul(size))
        .take(size)
        .map(|t| t.resource())
        .collect();
    let page = |n: usize| Some((n, size));
    Ok(Json(json!({
        "data": data,
        "links": {
            "self": link(page(number)),
            "first": link(page(1)),
            "prev": (number > 1).then(|| link(page((number - 1).min(total_pages)))),
            "next": (number < total_pages).then(|| link(page(number + 1))),
            "last": link(page(total_pages)),
        },
        "meta": {
            "total": total,
            "page": {"number": number, "size": size, "total_pages": total_pages},
        },
    })))
}

/// Any other path: a JSON:API 404.
pub(crate) async fn no_route(OriginalUri(uri): OriginalUri) -> ApiError {
    ApiError::not_found(format!("no endpoint at {}", uri.path()))
}

/// The list's query, parsed.
struct ListQuery {
    /// The `filter[...]` parameters as sent, for the links.
    filters: Vec<(String, String)>,
    status: Option<TransferStatus>,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    /// Page number (from 1) and size.
    page: Option<(usize, usize)>,
}

impl ListQuery {
    fn parse(raw: Option<&str>, default_size: usize, max_size: usize) -> Result<Self, ApiError> {
        let mut query = Self {
            filters: Vec::new(),
            status: None,
            from: None,
            to: None,
            page: None,
        };
        let (mut number, mut size) = (None, None);
        for (name, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
            let (name, value) = (name.as_ref(), value.as_ref());
            match name {
                "filter[status]" => {
                    query.status = Some(TransferStatus::parse(value).ok_or_else(|| {
                        let known: Vec<&str> =
                            TransferStatus::ALL.iter().map(|s| s.as_str()).collect();
                        ApiError::invalid_parameter(
                            name,
                            format!("{value:?} is not one of {}", known.join(", ")),
                        )
                    })?);
                }
                "filter[from_date]" => query.from = Some(parse_date(name, value, false)?),
                "filter[to_date]" => query.to = Some(parse_date(name, value, true)?),
                "page[number]" => number = Some(parse_page(name, value)?),
                "page[size]" => size = Some(parse_page(name, value)?),
                _ if name.starts_with("filter[") => {
                    return Err(ApiError::invalid_parameter(
                        name,
                        "transfers can be filtered by status, from_date and to_date only"
                            .to_owned(),
                    ));
                }
                _ => continue,
            }
            if name.starts_with("filter[") {
                query.filters.retain(|(sent, _)| sent != name);
                query.filters.push((name.to_owned(), value.to_owned()));
            }
        }
        if number.is_some() || size.is_some() {
            let size = size.unwrap_or(default_size).min(max_size.max(1));
            query.page = Some((number.unwrap_or(1), size));
        }
        Ok(query)
    }

    fn keeps(&self, transfer: &Transfer) -> bool {
        self.status.is_none_or(|status| transfer.status == status)
            && self.from.is_none_or(|from| transfer.created_at >= from)
            && self.to.is_none_or(|to| transfer.created_at <= to)
    }
}

fn parse_page(name: &str, value: &str) -> Result<usize, ApiError> {
    match value.trim().parse::<usize>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(ApiError::invalid_parameter(
            name,
            format!("must be a whole number from 1, got {value:?}"),
        )),
    }
}

/// ISO 8601: RFC 3339, a date-time without offset (UTC), or a date (its
/// first millisecond, or its last when `end_of_day`).
fn parse_date(name: &str, value: &str, end_of_day: bool) -> Result<DateTime<Utc>, ApiError> {
    let text = value.trim();
    // `2020-01-01T00:00:00+07:00` sent unencoded arrives with a space for `+`.
    let text = match text.rsplit_once(' ') {
        Some((time, offset)) if text.contains('T') => format!("{time}+{offset}"),
        _ => text.to_owned(),
    };
    if let Ok(time) = DateTime::parse_from_rfc3339(&text) {
        return Ok(time.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if let Ok(time) = NaiveDateTime::parse_from_str(&text, format) {
            return Ok(time.and_utc());
        }
    }
    if let Ok(date) = NaiveDate::parse_from_str(&text, "%Y-%m-%d") {
        let start = date.and_time(chrono::NaiveTime::MIN).and_utc();
        return Ok(if end_of_day {
            start + chrono::Duration::days(1) - chrono::Duration::milliseconds(1)
        } else {
            start
        });
    }
    Err(ApiError::invalid_parameter(
        name,
        format!("{value:?} is not an ISO 8601 date or date-time"),
    ))
}

/// `data`, of type `transfer`; with `id` given, `data.id` must be it.
fn resource_object<'a>(
    document: &'a Map<String, Value>,
    id: Option<&str>,
) -> Result<&'a Map<String, Value>, ApiError> {
    let data = document
        .get("data")
        .and_then(Value::as_object)
        .ok_or_else(|| ApiError::invalid("/data", "data must be a resource object".to_owned()))?;
    match data.get("type") {
        Some(Value::String(kind)) if kind == "transfer" => {}
        _ => {
            return Err(ApiError::invalid(
                "/data/type",
                "type must be \"transfer\"".to_owned(),
            ));
        }
    }
    match (id, data.get("id")) {
        (None, None) => {}
        (None, Some(_)) => {
            return Err(ApiError::invalid(
                "/data/id",
                "client-generated ids are not supported".to_owned(),
            ));
        }
        (Some(expected), Some(Value::String(sent))) if sent.eq_ignore_ascii_case(expected) => {}
        (Some(expected), _) => {
            return Err(ApiError::invalid(
                "/data/id",
                format!("id must be the transfer's id, {expected:?}"),
            ));
        }
    }
    Ok(data)
}

fn attributes(data: &Map<String, Value>) -> Result<&Map<String, Value>, ApiError> {
    data.get("attributes")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            ApiError::invalid(
                "/data/attributes",
                "attributes must be an object".to_owned(),
            )
        })
}

/// The attributes of a new transfer. Every problem of the document is
/// answered at once (one error object each); unknown attributes are refused,
/// so a misspelt optional one (`meta_data`) does not pass unnoticed.
fn parse_new_transfer(document: &Map<String, Value>) -> Result<NewTransfer, ApiError> {
    let attributes = attributes(resource_object(document, None)?)?;
    let mut errors = Vec::new();
    let pointer = |name: &str| format!("/data/attributes/{}", escape_pointer(name));

    let amount = match attributes.get("amount") {
        None | Some(Value::Null) => {
            errors.push(ApiError::invalid(
                &pointer("amount"),
                "amount is required".to_owned(),
            ));
            None
        }
        Some(Value::Number(number)) => match number.as_i64() {
            Some(amount) if amount <= 0 => {
                errors.push(ApiError::code(
                    ErrorCode::InvalidAmount,
                    Some(ErrorSource::Pointer(pointer("amount"))),
                    format!("amount must be positive, got {amount}"),
                ));
                None
            }
            Some(amount) if amount < MIN_AMOUNT => {
                errors.push(ApiError::code(
                    ErrorCode::InvalidAmount,
                    Some(ErrorSource::Pointer(pointer("amount"))),
                    format!("the minimum amount is {MIN_AMOUNT} cents ($1.00), got {amount}"),
                ));
                None
            }
            Some(amount) => Some(amount),
            // An integer past i64 either way.
            None if number
                .to_string()
                .trim_start_matches('-')
                .bytes()
                .all(|b| b.is_ascii_digit()) =>
            {
                errors.push(ApiError::code(
                    ErrorCode::InvalidAmount,
                    Some(ErrorSource::Pointer(pointer("amount"))),
                    format!("amount {number} is out of range"),
                ));
                None
            }
            None => {
                errors.push(ApiError::invalid(
                    &pointer("amount"),
                    format!("amount must be an integer number of cents, got {number}"),
                ));
                None
            }
        },
        Some(other) => {
            errors.push(ApiError::invalid(
                &pointer("amount"),
                format!("amount must be an integer number of cents, got {other}"),
            ));
            None
        }
    };

    let currency = match attributes.get("currency") {
        Some(Value::String(currency)) if currency == "USD" => Some(currency.clone()),
        Some(Value::String(currency)) => {
            errors.push(ApiError::invalid(
                &pointer("currency"),
                format!("only USD is supported, got {currency:?}"),
            ));
            None
        }
        None | Some(Value::Null) => {
            errors.push(ApiError::invalid(
                &pointer("currency"),
                "currency is required".to_owned(),
            ));
            None
        }
        Some(other) => {
            errors.push(ApiError::invalid(
                &pointer("currency"),
                format!("currency must be a string, got {other}"),
            ));
            None
        }
    };

    let destination = match attributes.get("destination_account_number") {
        Some(Value::String(number)) if !number.trim().is_empty() => Some(number.clone()),
        None | Some(Value::Null) => {
            errors.push(ApiError::invalid(
                &pointer("destination_account_number"),
                "destination_account_number is required".to_owned(),
            ));
            None
        }
        Some(other) => {
            errors.push(ApiError::invalid(
                &pointer("destination_account_number"),
                format!("destination_account_number must be a non-empty string, got {other}"),
            ));
            None
        }
    };

    let metadata = match attributes.get("metadata") {
        None => Some(BTreeMap::new()),
        Some(value) => match parse_metadata(value) {
            Ok(metadata) => Some(metadata),
            Err(error) => {
                errors.push(error);
                None
            }
        },
    };

    for name in attributes.keys() {
        if ![
            "amount",
            "currency",
            "destination_account_number",
            "metadata",
        ]
        .contains(&name.as_str())
        {
            errors.push(ApiError::invalid(
                &pointer(name),
                format!("unknown attribute {name:?}"),
            ));
        }
    }

    match (amount, currency, destination, metadata) {
        (Some(amount), Some(currency), Some(destination_account_number), Some(metadata))
            if errors.is_empty() =>
        {
            Ok(NewTransfer {
                amount,
                currency,
                destination_account_number,
                metadata,
            })
        }
        _ => Err(ApiError::combine(errors).unwrap_or_else(|| {
            ApiError::invalid("/data/attributes", "invalid attributes".to_owned())
        })),
    }
}

/// Metadata: a flat object of string values, or `null` for none.
fn parse_metadata(value: &Value) -> Result<BTreeMap<String, String>, ApiError> {
    match value {
        Value::Null => Ok(BTreeMap::new()),
        Value::Object(pairs) => pairs
            .iter()
            .map(|(key, value)| match value {
                Value::String(text) => Ok((key.clone(), text.clone())),
                other => Err(ApiError::invalid(
                    &format!("/data/attributes/metadata/{}", escape_pointer(key)),
                    format!("metadata values must be strings, got {other}"),
                )),
            })
            .collect(),
        other => Err(ApiError::invalid(
            "/data/attributes/metadata",
            format!("metadata must be an object of string values, got {other}"),
        )),
    }
}

/// A JSON pointer reference token (RFC 6901).
fn escape_pointer(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}
