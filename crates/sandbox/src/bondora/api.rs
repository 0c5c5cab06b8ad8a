//! The simulated endpoints and the data behind them.
//!
//! Default orders (the reference documents none):
//! - `GET /api/v1/auctions`: newest first (`ListedOnUTC` descending), then
//!   `LoanNumber` descending;
//! - `GET /api/v1/account/investments`: `PurchaseDate` descending, then
//!   `LoanPartId`;
//! - `GET /api/v1/secondarymarket`: `ListedOnDate` descending, then `Id`;
//! - `GET /api/v1/bids`: `BidRequestedDate` descending, then `Id`.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, Mutex, RwLock},
};

use axum::{
    Extension,
    extract::{Path, RawQuery, State},
    response::{IntoResponse, Response},
};
use chrono::Utc;
use rust_decimal::Decimal;
use serde_json::Value;

use super::{
    data::{self, AuctionRecord, InvestmentRecord, OfferRecord, Publisher, World},
    envelope::{self, ApiError, Page},
    query::{
        AUCTION_FILTERS, BID_FILTERS, Context, FilterDef, Filters, INVESTMENT_FILTERS,
        OFFER_FILTERS, Paging, Params,
    },
};
use crate::{lock, oauth::Access};

/// The largest `PageSize` of each list, from the reference.
const MAX_AUCTIONS_PAGE: u64 = 20_000;
const MAX_INVESTMENTS_PAGE: u64 = 50_000;
const MAX_OFFERS_PAGE: u64 = 100_000;
const MAX_BIDS_PAGE: u64 = 20_000;

/// One user's data, indexed.
struct UserMarket {
    investments: Vec<InvestmentRecord>,
    bids: Vec<Value>,
    /// Pending and open bids per auction: `UserBids`, `UserBidAmount`.
    open_bids: HashMap<String, (u64, Decimal)>,
    own_loan_parts: HashSet<String>,
}

/// Everything the endpoints answer from.
pub(crate) struct Market {
    /// Generated first, then those published by webhook events.
    auctions: RwLock<Vec<AuctionRecord>>,
    users: BTreeMap<String, UserMarket>,
    offers: Vec<OfferRecord>,
    publisher: Mutex<Publisher>,
}

static NO_USER: std::sync::LazyLock<UserMarket> = std::sync::LazyLock::new(|| UserMarket {
    investments: Vec::new(),
    bids: Vec::new(),
    open_bids: HashMap::new(),
    own_loan_parts: HashSet::new(),
});

impl Market {
    pub(crate) fn new(world: World, publisher: Publisher) -> Self {
        let users = world
            .users
            .into_iter()
            .map(|(name, data)| {
                let open_bids = data::bids_by_auction(&data.bids);
                let own_loan_parts = data
                    .investments
                    .iter()
                    .filter_map(|record| record.item["LoanPartId"].as_str().map(str::to_owned))
                    .collect();
                (
                    name,
                    UserMarket {
                        investments: data.investments,
                        bids: data.bids,
                        open_bids,
                        own_loan_parts,
                    },
                )
            })
            .collect();
        Self {
            auctions: RwLock::new(world.auctions),
            users,
            offers: world.offers,
            publisher: Mutex::new(publisher),
        }
    }

    fn user(&self, name: &str) -> &UserMarket {
        self.users.get(name).unwrap_or(&NO_USER)
    }

    fn read_auctions(&self) -> std::sync::RwLockReadGuard<'_, Vec<AuctionRecord>> {
        self.auctions
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Every auction (closed ones too) as `user` sees it (`UserBids`,
    /// `UserBidAmount`); `None`: as nobody's.
    pub(crate) fn auctions(&self, user: Option<&str>) -> Vec<Value> {
        let user = user.map(|name| self.user(name));
        self.read_auctions()
            .iter()
            .map(|record| view(&record.value, user))
            .collect()
    }

    pub(crate) fn investments(&self, user: &str) -> Vec<Value> {
        self.user(user)
            .investments
            .iter()
            .map(|record| record.item.clone())
            .collect()
    }

    pub(crate) fn loan_part(&self, user: &str, id: &str) -> Option<Value> {
        self.user(user)
            .investments
            .iter()
            .find(|record| {
                record.item["LoanPartId"]
                    .as_str()
                    .is_some_and(|own| own.eq_ignore_ascii_case(id))
            })
            .map(|record| record.details.clone())
    }

    pub(crate) fn offers(&self) -> Vec<Value> {
        self.offers.iter().map(|offer| offer.item.clone()).collect()
    }

    pub(crate) fn bids(&self, user: &str) -> Vec<Value> {
        self.user(user).bids.clone()
    }

    /// Publishes a new auction (listed now) and answers its extended form,
    /// the payload of an `auction.published` event, with a fresh event id.
    pub(crate) fn publish(&self) -> (String, Value) {
        let mut publisher = lock(&self.publisher);
        let record = publisher.publish(Utc::now());
        let event_id = publisher.event_id();
        let payload = extended(&record, None);
        self.auctions
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(record);
        (event_id, payload)
    }

    /// Runs `f` with the generator of webhook decisions (which events repeat).
    pub(crate) fn with_rng<T>(&self, f: impl FnOnce(&mut rand_chacha::ChaCha8Rng) -> T) -> T {
        f(lock(&self.publisher).rng())
    }
}

/// An auction as `user` sees it.
fn view(auction: &Value, user: Option<&UserMarket>) -> Value {
    let mut value = auction.clone();
    let bids = user.and_then(|user| {
        auction["AuctionId"]
            .as_str()
            .and_then(|id| user.open_bids.get(id))
    });
    if let (Some((count, amount)), Value::Object(fields)) = (bids, &mut value) {
        fields.insert("UserBids".to_owned(), Value::from(*count));
        if let Ok(amount) = serde_json::to_value(data::Num(*amount)) {
            fields.insert("UserBidAmount".to_owned(), amount);
        }
    }
    value
}

/// `AuctionExtended`: the auction and its liabilities, debts and history.
fn extended(record: &AuctionRecord, user: Option<&UserMarket>) -> Value {
    let mut value = view(&record.value, user);
    if let (Value::Object(fields), Value::Object(extras)) = (&mut value, &record.extras) {
        fields.extend(extras.clone());
    }
    value
}

fn is_active(auction: &Value, now: &str) -> bool {
    auction["ActualCloseDate"].is_null()
        && auction["PlannedCloseDate"]
            .as_str()
            .is_some_and(|close| close > now)
}

/// Filters, orders and pages `items`.
fn list<'a>(
    items: impl Iterator<Item = &'a Value>,
    filters: &Filters<'_>,
    paging: Paging,
    order: impl Fn(&Value, &Value) -> std::cmp::Ordering,
    present: impl Fn(&Value) -> Value,
) -> Page {
    let mut matching: Vec<&Value> = items.filter(|item| filters.matches(item)).collect();
    matching.sort_by(|a, b| order(a, b));
    let page: Vec<Value> = paging.apply(&matching).into_iter().map(present).collect();
    Page {
        page_size: paging.size,
        page_nr: paging.number,
        total_count: matching.len() as u64,
        count: page.len() as u64,
        payload: page,
        success: true,
        errors: None,
    }
}

fn text<'a>(item: &'a Value, field: &str) -> &'a str {
    item[field].as_str().unwrap_or_default()
}

fn parse<'a>(
    raw: Option<&str>,
    defs: &'static [FilterDef],
    max_page: u64,
    user: &'a UserMarket,
) -> Result<(Filters<'a>, Paging), ApiError> {
    let params = Params::parse(raw);
    let paging = Paging::parse(&params, max_page)?;
    let filters = Filters::parse(
        &params,
        defs,
        Context {
            own_loan_parts: &user.own_loan_parts,
        },
    )?;
    Ok((filters, paging))
}

fn checked_uuid(id: &str, what: &str) -> Result<(), ApiError> {
    uuid::Uuid::parse_str(id)
        .map(|_| ())
        .map_err(|_| ApiError::BadRequest {
            message: "The request is invalid.".to_owned(),
            details: format!("id: The value '{id}' is not a valid {what} identifier"),
        })
}

/// `GET /api/v1/auctions`: the active auctions only.
pub(crate) async fn auctions(
    State(market): State<Arc<Market>>,
    Extension(access): Extension<Access>,
    RawQuery(raw): RawQuery,
) -> Result<Page, ApiError> {
    let user = market.user(&access.user);
    let (filters, paging) = parse(raw.as_deref(), AUCTION_FILTERS, MAX_AUCTIONS_PAGE, user)?;
    let now = data::utc(Utc::now());
    let auctions = market.read_auctions();
    Ok(list(
        auctions
            .iter()
            .map(|record| &record.value)
            .filter(|auction| is_active(auction, &now)),
        &filters,
        paging,
        |a, b| {
            text(b, "ListedOnUTC")
                .cmp(text(a, "ListedOnUTC"))
                .then_with(|| b["LoanNumber"].as_i64().cmp(&a["LoanNumber"].as_i64()))
        },
        |auction| view(auction, Some(user)),
    ))
}

/// `GET /api/v1/auction/{id}`: any auction, closed ones too (the document's
/// feedback: "api/v1/auction/{id} will return detailed information").
pub(crate) async fn auction(
    State(market): State<Arc<Market>>,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    checked_uuid(&id, "auction")?;
    let auctions = market.read_auctions();
    let record = auctions
        .iter()
        .find(|record| {
            record.value["AuctionId"]
                .as_str()
                .is_some_and(|own| own.eq_ignore_ascii_case(&id))
        })
        .ok_or_else(|| ApiError::not_found("Auction", &id))?;
    Ok(envelope::item(&extended(
        record,
        Some(market.user(&access.user)),
    )))
}

/// `GET /api/v1/bids`: the caller's bids.
pub(crate) async fn bids(
    State(market): State<Arc<Market>>,
    Extension(access): Extension<Access>,
    RawQuery(raw): RawQuery,
) -> Result<Page, ApiError> {
    let user = market.user(&access.user);
    let (filters, paging) = parse(raw.as_deref(), BID_FILTERS, MAX_BIDS_PAGE, user)?;
    Ok(list(
        user.bids.iter(),
        &filters,
        paging,
        |a, b| {
            text(b, "BidRequestedDate")
                .cmp(text(a, "BidRequestedDate"))
                .then_with(|| text(a, "Id").cmp(text(b, "Id")))
        },
        Value::clone,
    ))
}

/// `GET /api/v1/account/investments`: the caller's investments; sold ones
/// only when `SalesStatus` asks ("NULL: all active").
pub(crate) async fn investments(
    State(market): State<Arc<Market>>,
    Extension(access): Extension<Access>,
    RawQuery(raw): RawQuery,
) -> Result<Page, ApiError> {
    let user = market.user(&access.user);
    let (filters, paging) = parse(
        raw.as_deref(),
        INVESTMENT_FILTERS,
        MAX_INVESTMENTS_PAGE,
        user,
    )?;
    let show_sold = filters.sales_status_sent;
    Ok(list(
        user.investments
            .iter()
            .map(|record| &record.item)
            .filter(|item| show_sold || item["SoldDate"].is_null()),
        &filters,
        paging,
        |a, b| {
            text(b, "PurchaseDate")
                .cmp(text(a, "PurchaseDate"))
                .then_with(|| text(a, "LoanPartId").cmp(text(b, "LoanPartId")))
        },
        Value::clone,
    ))
}

/// `GET /api/v1/secondarymarket`: every offer, the caller's own included
/// unless `ShowMyItems=false`.
pub(crate) async fn secondary_market(
    State(market): State<Arc<Market>>,
    Extension(access): Extension<Access>,
    RawQuery(raw): RawQuery,
) -> Result<Page, ApiError> {
    let user = market.user(&access.user);
    let (filters, paging) = parse(raw.as_deref(), OFFER_FILTERS, MAX_OFFERS_PAGE, user)?;
    Ok(list(
        market.offers.iter().map(|offer| &offer.item),
        &filters,
        paging,
        |a, b| {
            text(b, "ListedOnDate")
                .cmp(text(a, "ListedOnDate"))
                .then_with(|| text(a, "Id").cmp(text(b, "Id")))
        },
        Value::clone,
    ))
}

/// `GET /api/v1/loanpart/{id}`: a loan part of the caller's; another user's
/// is not found.
pub(crate) async fn loan_part(
    State(market): State<Arc<Market>>,
    Extension(access): Extension<Access>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    checked_uuid(&id, "loan part")?;
    let details = market
        .loan_part(&access.user, &id)
        .ok_or_else(|| ApiError::not_found("LoanPart", &id))?;
    Ok(envelope::item(&details).into_response())
}
