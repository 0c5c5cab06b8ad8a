//! A Bongloy Agent Network simulator following its API document
//! (`bongloy-agent-network-api.txt`): RS256-signed requests, JSON:API
//! documents, organizations, and transfers that move money between accounts.
//!
//! # Endpoints
//!
//! | endpoint | answer |
//! |---|---|
//! | `GET /v1/organizations` | 200, every organization; the caller's own with `account_number` and `balance` |
//! | `POST /v1/transfers` | 201, the new `pending` transfer |
//! | `PATCH /v1/transfers/{id}/confirm` | 200, the transfer, now `confirmed` |
//! | `GET /v1/transfers/{id}` | 200, the transfer |
//! | `PATCH /v1/transfers/{id}` | 200, the transfer with its metadata replaced |
//! | `GET /v1/transfers` | 200, the caller's transfers, newest first, filtered and paged (see *Listing*) |
//! | `GET /__sandbox/bongloy/accounts` | every [`Account`] with its balance (no authentication) |
//! | `GET /__sandbox/bongloy/transfers` | every transfer of every organization, oldest first (no authentication) |
//!
//! plus the shared `/__sandbox/` control endpoints (stats, requests, reset,
//! faults). Reset also restores the configured accounts and forgets every
//! transfer.
//!
//! # Authentication
//!
//! Every `/v1` request carries `Authorization: Bearer <JWT>`, verified by
//! [`jwt::verify_jwt_with`] (an implementation independent of the
//! `jsonwebtoken` crate) against the keys of the partner whose `api_token` the
//! payload names. Any failure is 401 with `WWW-Authenticate: Bearer` and a
//! JSON:API error whose `detail` says why (never echoing the token).
//!
//! # Answers
//!
//! A transfer: `{"data": {"type": "transfer", "id": "<uuid>", "attributes":
//! {"amount": 10000, "currency": "USD", "destination_account_number":
//! "002002965", "metadata": {"k": "v"}, "status": "pending", "created_at":
//! "2020-01-01T00:00:00.000Z", "updated_at": ..., "confirmed_at": null,
//! "expires_at": ...}}}`. Answers are `application/vnd.api+json` (or
//! `application/json` for a client that accepts only that); request bodies may
//! be either.
//!
//! Errors (`{"errors": [{"status", "code", "title", "detail", "source"}]}`):
//!
//! | status | code | when |
//! |---|---|---|
//! | 401 | none | no, malformed, wrongly signed, unknown-token or stale JWT |
//! | 404 | none | unknown route; unknown transfer, or another organization's |
//! | 415 | none | a body labelled other than JSON:API or JSON |
//! | 422 | `validation_error` | body not a JSON:API document, `type` not `transfer`, `id` not the path's, a required attribute missing or of the wrong type, currency not `USD`, an unknown attribute, metadata not a flat map of strings, the caller's own account as destination, a bad query parameter |
//! | 422 | `invalid_amount` | amount ≤ 0 or under 100 cents |
//! | 422 | `destination_account_not_found` | create (or confirm) to an unknown account |
//! | 422 | `destination_account_is_not_active` | create or confirm to an inactive account |
//! | 422 | `insufficient_balance` | confirm with the source balance short |
//! | 422 | `destination_account_daily_transfer_limit_exceeded` | confirm past the destination's confirmed total for the UTC day |
//! | 422 | `expired_transfer` | confirm a pending transfer past `expires_at` |
//! | 422 | `invalid_transfer` | confirm a transfer already confirmed, successful, failed |
//!
//! A refused confirmation leaves the transfer pending (except expiry).
//!
//! # Listing
//!
//! `GET /v1/transfers` answers the caller's transfers, newest first:
//!
//! - `filter[status]`: one status (`pending`, `confirmed`, `successful`,
//!   `failed`, `expired`);
//! - `filter[from_date]`, `filter[to_date]`: ISO 8601, compared with
//!   `created_at`, both inclusive (the document's "on or after", "on or
//!   before"): RFC 3339 with or without an offset (none means UTC), or a bare
//!   date, from its first millisecond or to its last;
//! - `page[number]` (from 1) and `page[size]`, JSON:API's convention (the
//!   document is silent on paging): with neither, every match in one answer;
//!   with one, the other defaults to 1 or `default_page_size`; sizes over
//!   `max_page_size` are lowered to it.
//!
//! `{"data": [...], "links": {"self", "first", "prev", "next", "last"},
//! "meta": {"total": 12, "page": {"number": 1, "size": 5, "total_pages": 3}}}`:
//! links are absolute URLs keeping the filters; `prev` and `next` are null
//! where there is none; without paging, `links` has only `self` and `meta`
//! only `total`. A parameter that does not parse, or an unknown `filter[...]`,
//! is a 422 `validation_error` with `source.parameter`; other parameters are
//! ignored.
//!
//! # Where the document is silent
//!
//! - no throttling is documented: none is simulated (use the faults'
//!   `rate_limit_burst` to see 429s);
//! - the confirm answer says `confirmed`; reads from `settle_delay_ms` on
//!   say `successful` (or `failed`, money returned, for a destination
//!   configured with `fails_settlement`);
//! - validation errors of one create come all in one answer; business checks
//!   come one at a time, in the order of the table above.

mod api;
mod bank;
mod jsonapi;
pub mod jwt;
pub mod test_keys;

use std::{
    collections::{BTreeMap, btree_map::Entry},
    fmt,
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard},
};

use axum::{
    Json, Router,
    extract::State,
    middleware::{from_fn, from_fn_with_state},
    routing::{get, patch},
};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::{
    control::{self, Simulator},
    faults::{FaultInjector, Faults, inject_faults},
    lock,
    server::{RunningSandbox, serve},
    stats::{RequestLog, RequestRecord, Stats, record},
};
pub use bank::{Account, AccountStatus, TransferStatus};
use bank::{Bank, Organization, Timing};
pub use jsonapi::MEDIA_TYPE;
pub use jwt::{Claims, JwtProblem, JwtRules, KeyError, PublicKey, verify_jwt, verify_jwt_with};

/// The request headers kept in the request log (never `Authorization`).
const RECORDED_HEADERS: &[&str] = &["content-type", "accept", "user-agent"];

/// How the simulator behaves. Every field has a default, also when read with
/// serde (e.g. from the gateway's TOML). The default has two partners, each
/// with its organization, keyed by [`test_keys`]: see [`BongloyConfig::default`].
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BongloyConfig {
    /// Who may call, with which key, for which organization.
    pub partners: Vec<PartnerConfig>,
    pub organizations: Vec<OrganizationConfig>,
    /// Accounts that are not an organization's: the destinations.
    pub accounts: Vec<AccountConfig>,
    /// The daily limit of an account that sets none, in cents.
    pub default_daily_transfer_limit: i64,
    /// How far a JWT's timestamp may be from the simulator's clock, either way.
    pub max_skew_secs: u64,
    /// Refuse JWT header members beside `alg` (`typ`, `kid`): the document
    /// shows the header as exactly `{"alg":"RS256"}`.
    pub exact_jwt_header: bool,
    /// How long a transfer stays pending before it expires.
    pub pending_ttl_secs: u64,
    /// How long after confirmation a transfer turns successful (or failed).
    pub settle_delay_ms: u64,
    /// `page[size]` when only `page[number]` is sent.
    pub default_page_size: usize,
    /// Larger `page[size]` values are lowered to this.
    pub max_page_size: usize,
    /// Faults to inject from the start.
    pub faults: Faults,
    /// Seed of the random faults.
    pub seed: u64,
}

/// A partner: its API token, the public half of its signing key, and the
/// organization it acts for. Several entries with one token add keys (for a
/// rotation); they must name the same organization.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerConfig {
    pub api_token: String,
    /// SPKI (`PUBLIC KEY`) or PKCS#1 (`RSA PUBLIC KEY`) PEM.
    pub public_key_pem: String,
    /// An [`OrganizationConfig::id`].
    pub organization: String,
}

/// An organization and its source account.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrganizationConfig {
    pub id: String,
    pub name: String,
    /// ISO 3166 alpha-2.
    pub country: String,
    pub currency: String,
    pub account_number: String,
    /// USD cents.
    pub balance: i64,
    /// As a destination; `None` takes the default.
    #[serde(default)]
    pub daily_transfer_limit: Option<i64>,
}

/// A destination account.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    pub account_number: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub status: AccountStatus,
    /// USD cents.
    #[serde(default)]
    pub balance: i64,
    /// `None` takes [`BongloyConfig::default_daily_transfer_limit`].
    #[serde(default)]
    pub daily_transfer_limit: Option<i64>,
    /// Confirmed transfers here end `failed` and the money goes back.
    #[serde(default)]
    pub fails_settlement: bool,
}

/// The default configuration's organizations and accounts.
pub mod defaults {
    /// The organization of [`super::test_keys::PARTNER_API_TOKEN`].
    pub const PARTNER_ORGANIZATION: &str = "8a3f5c1e-2b4d-4e6f-9a1b-3c5d7e9f0a12";
    /// Its source account, holding [`PARTNER_BALANCE`].
    pub const PARTNER_ACCOUNT: &str = "001000001";
    /// $100,000.00.
    pub const PARTNER_BALANCE: i64 = 10_000_000;
    /// The organization of [`super::test_keys::OTHER_API_TOKEN`].
    pub const OTHER_ORGANIZATION: &str = "1f2e3d4c-5b6a-4789-8a7b-6c5d4e3f2a10";
    pub const OTHER_ACCOUNT: &str = "001000002";
    /// $1,000.00.
    pub const OTHER_BALANCE: i64 = 100_000;
    /// An active destination (the document's example).
    pub const ACTIVE_DESTINATION: &str = "002002965";
    /// A second active destination.
    pub const SECOND_DESTINATION: &str = "002002966";
    /// An inactive destination.
    pub const INACTIVE_DESTINATION: &str = "002002999";
    /// A destination whose confirmed transfers end `failed`.
    pub const FAILING_DESTINATION: &str = "002002977";
    /// $10,000.00 a day per destination.
    pub const DAILY_TRANSFER_LIMIT: i64 = 1_000_000;
}

impl Default for BongloyConfig {
    fn default() -> Self {
        use defaults::*;
        let destination = |number: &str, name: &str| AccountConfig {
            account_number: number.to_owned(),
            name: name.to_owned(),
            status: AccountStatus::Active,
            balance: 0,
            daily_transfer_limit: None,
            fails_settlement: false,
        };
        Self {
            partners: vec![
                PartnerConfig {
                    api_token: test_keys::PARTNER_API_TOKEN.to_owned(),
                    public_key_pem: test_keys::PARTNER_PUBLIC_KEY_PEM.to_owned(),
                    organization: PARTNER_ORGANIZATION.to_owned(),
                },
                PartnerConfig {
                    api_token: test_keys::OTHER_API_TOKEN.to_owned(),
                    public_key_pem: test_keys::OTHER_PUBLIC_KEY_PEM.to_owned(),
                    organization: OTHER_ORGANIZATION.to_owned(),
                },
            ],
            organizations: vec![
                OrganizationConfig {
                    id: PARTNER_ORGANIZATION.to_owned(),
                    name: "Finmesh Demo Agent".to_owned(),
                    country: "KH".to_owned(),
                    currency: "USD".to_owned(),
                    account_number: PARTNER_ACCOUNT.to_owned(),
                    balance: PARTNER_BALANCE,
                    daily_transfer_limit: None,
                },
                OrganizationConfig {
                    id: OTHER_ORGANIZATION.to_owned(),
                    name: "Mekong Remit".to_owned(),
                    country: "KH".to_owned(),
                    currency: "USD".to_owned(),
                    account_number: OTHER_ACCOUNT.to_owned(),
                    balance: OTHER_BALANCE,
                    daily_transfer_limit: None,
                },
            ],
            accounts: vec![
                destination(ACTIVE_DESTINATION, "Sokha Chan"),
                destination(SECOND_DESTINATION, "Dara Kim"),
                AccountConfig {
                    status: AccountStatus::Inactive,
                    ..destination(INACTIVE_DESTINATION, "Closed account")
                },
                AccountConfig {
                    fails_settlement: true,
                    ..destination(FAILING_DESTINATION, "Frozen account")
                },
            ],
            default_daily_transfer_limit: DAILY_TRANSFER_LIMIT,
            max_skew_secs: jwt::DEFAULT_MAX_SKEW_SECS,
            exact_jwt_header: true,
            pending_ttl_secs: 900,
            settle_delay_ms: 0,
            default_page_size: 25,
            max_page_size: 100,
            faults: Faults::default(),
            seed: 42,
        }
    }
}

/// Why a [`BongloyConfig`] cannot run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// A partner, its keys read.
struct Partner {
    api_token: String,
    keys: Vec<PublicKey>,
    organization: String,
}

/// A Bongloy simulator. Cheap to clone: clones share the same ledger, faults
/// and log.
#[derive(Clone)]
pub struct BongloySandbox {
    inner: Arc<Inner>,
}

struct Inner {
    partners: Vec<Partner>,
    jwt_rules: JwtRules,
    timing: Timing,
    default_page_size: usize,
    max_page_size: usize,
    /// The configured start, restored on reset.
    start: Bank,
    bank: Mutex<Bank>,
    faults: Arc<FaultInjector>,
    log: Arc<RequestLog>,
}

impl Inner {
    /// The ledger, brought up to now, and that now (milliseconds, as answered,
    /// so that a filter with an answered time finds it).
    fn ledger(&self) -> (MutexGuard<'_, Bank>, DateTime<Utc>) {
        let mut bank = lock(&self.bank);
        let now = Utc::now();
        let now = DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now);
        bank.catch_up(now);
        (bank, now)
    }
}

impl BongloySandbox {
    /// A simulator for a configuration known to be valid (the default, a
    /// test's).
    ///
    /// # Panics
    ///
    /// When [`BongloySandbox::try_new`] refuses the configuration.
    pub fn new(config: BongloyConfig) -> Self {
        match Self::try_new(config) {
            Ok(sandbox) => sandbox,
            Err(error) => panic!("invalid Bongloy simulator configuration: {error}"),
        }
    }

    /// A simulator, or why the configuration cannot run: a key that does not
    /// read, a partner of an unknown organization, an account number used
    /// twice, a negative balance or limit.
    pub fn try_new(config: BongloyConfig) -> Result<Self, ConfigError> {
        let mut accounts = BTreeMap::new();
        let mut organizations = Vec::new();
        let limit = |limit: Option<i64>, what: &str| {
            let limit = limit.unwrap_or(config.default_daily_transfer_limit);
            if limit < 0 {
                return Err(ConfigError(format!(
                    "{what}: negative daily_transfer_limit"
                )));
            }
            Ok(limit)
        };
        let mut add = |account: Account| match accounts.entry(account.account_number.clone()) {
            Entry::Occupied(_) => Err(ConfigError(format!(
                "account number {} is used twice",
                account.account_number
            ))),
            Entry::Vacant(slot) if account.balance < 0 => Err(ConfigError(format!(
                "account {}: negative balance",
                slot.key()
            ))),
            Entry::Vacant(slot) => {
                slot.insert(account);
                Ok(())
            }
        };
        for org in &config.organizations {
            if organizations
                .iter()
                .any(|known: &Organization| known.id == org.id)
            {
                return Err(ConfigError(format!(
                    "organization {} is listed twice",
                    org.id
                )));
            }
            add(Account {
                account_number: org.account_number.clone(),
                name: org.name.clone(),
                status: AccountStatus::Active,
                balance: org.balance,
                daily_transfer_limit: limit(org.daily_transfer_limit, &org.id)?,
                organization: Some(org.id.clone()),
                fails_settlement: false,
            })?;
            organizations.push(Organization {
                id: org.id.clone(),
                name: org.name.clone(),
                country: org.country.clone(),
                currency: org.currency.clone(),
                account_number: org.account_number.clone(),
            });
        }
        for account in &config.accounts {
            add(Account {
                account_number: account.account_number.clone(),
                name: account.name.clone(),
                status: account.status,
                balance: account.balance,
                daily_transfer_limit: limit(account.daily_transfer_limit, &account.account_number)?,
                organization: None,
                fails_settlement: account.fails_settlement,
            })?;
        }

        let mut partners: Vec<Partner> = Vec::new();
        for (index, partner) in config.partners.iter().enumerate() {
            let key = PublicKey::from_pem(&partner.public_key_pem).map_err(|error| {
                ConfigError(format!("partners[{index}].public_key_pem: {error}"))
            })?;
            if !organizations
                .iter()
                .any(|org| org.id == partner.organization)
            {
                return Err(ConfigError(format!(
                    "partners[{index}].organization: no organization {:?}",
                    partner.organization
                )));
            }
            match partners
                .iter_mut()
                .find(|p| p.api_token == partner.api_token)
            {
                Some(known) if known.organization != partner.organization => {
                    return Err(ConfigError(format!(
                        "partners[{index}]: its api_token already belongs to organization {}",
                        known.organization
                    )));
                }
                Some(known) => known.keys.push(key),
                None => partners.push(Partner {
                    api_token: partner.api_token.clone(),
                    keys: vec![key],
                    organization: partner.organization.clone(),
                }),
            }
        }

        let start = Bank::new(organizations, accounts);
        Ok(Self {
            inner: Arc::new(Inner {
                partners,
                jwt_rules: JwtRules {
                    max_skew_secs: config.max_skew_secs,
                    exact_header: config.exact_jwt_header,
                },
                timing: Timing {
                    pending_ttl: millis(config.pending_ttl_secs.saturating_mul(1_000)),
                    settle_delay: millis(config.settle_delay_ms),
                },
                default_page_size: config.default_page_size.max(1),
                max_page_size: config.max_page_size.max(1),
                bank: Mutex::new(start.clone()),
                start,
                faults: Arc::new(FaultInjector::new(config.faults, config.seed)),
                log: Arc::new(RequestLog::new(RECORDED_HEADERS)),
            }),
        })
    }

    /// The simulator as a router, to embed or to serve.
    pub fn router(&self) -> Router {
        let inner = &self.inner;
        // Outermost first: record, then faults, then the media type, then
        // authentication, then the handler.
        let simulated = Router::new()
            .route("/v1/organizations", get(api::organizations))
            .route(
                "/v1/transfers",
                get(api::list_transfers).post(api::create_transfer),
            )
            .route(
                "/v1/transfers/{id}",
                get(api::get_transfer).patch(api::update_transfer),
            )
            .route("/v1/transfers/{id}/confirm", patch(api::confirm_transfer))
            .route_layer(from_fn_with_state(inner.clone(), api::authenticate))
            .with_state(inner.clone())
            .layer(from_fn(jsonapi::negotiate))
            .layer(from_fn_with_state(inner.faults.clone(), inject_faults))
            .layer(from_fn_with_state(inner.log.clone(), record));
        let inspection = Router::new()
            .route("/__sandbox/bongloy/accounts", get(accounts))
            .route("/__sandbox/bongloy/transfers", get(transfers))
            .with_state(self.clone());
        simulated
            .merge(control::router(inner.clone()))
            .merge(inspection)
            .fallback(api::no_route)
    }

    /// Serves the simulator on `addr` (port 0 picks a free port) until the
    /// returned handle is shut down or dropped.
    pub async fn spawn(self, addr: SocketAddr) -> std::io::Result<RunningSandbox> {
        serve(self.router(), addr).await
    }

    /// Every transfer of every organization as its JSON:API resource object,
    /// oldest first.
    pub fn transfers(&self) -> Vec<serde_json::Value> {
        let (bank, _) = self.inner.ledger();
        bank.transfers().iter().map(|t| t.resource()).collect()
    }

    /// The balance of an account, in cents.
    ///
    /// # Panics
    ///
    /// When there is no such account: a test asking for one is wrong. See
    /// [`BongloySandbox::account`].
    pub fn balance(&self, account_number: &str) -> i64 {
        match self.account(account_number) {
            Some(account) => account.balance,
            None => panic!("the Bongloy simulator has no account {account_number:?}"),
        }
    }

    pub fn account(&self, account_number: &str) -> Option<Account> {
        let (bank, _) = self.inner.ledger();
        bank.accounts.get(account_number).cloned()
    }

    /// Every account (organizations' and destinations'), by account number.
    pub fn accounts(&self) -> Vec<Account> {
        let (bank, _) = self.inner.ledger();
        bank.accounts.values().cloned().collect()
    }

    /// Sets an account's balance (cents); false when there is no such account.
    pub fn set_balance(&self, account_number: &str, balance: i64) -> bool {
        let (mut bank, _) = self.inner.ledger();
        bank.accounts
            .get_mut(account_number)
            .map(|account| account.balance = balance)
            .is_some()
    }

    /// Activates or deactivates an account; false when there is no such account.
    pub fn set_account_status(&self, account_number: &str, status: AccountStatus) -> bool {
        let (mut bank, _) = self.inner.ledger();
        bank.accounts
            .get_mut(account_number)
            .map(|account| account.status = status)
            .is_some()
    }

    pub fn stats(&self) -> Stats {
        self.inner.log.stats()
    }

    /// The last requests, oldest first (at most [`crate::stats::LOG_CAPACITY`]).
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.inner.log.requests()
    }

    /// Clears counters and log, restores the configured accounts and forgets
    /// every transfer. Faults stay.
    pub fn reset(&self) {
        Simulator::reset(&*self.inner);
    }

    /// The faults as they stand (used bursts and queued faults are gone).
    pub fn faults(&self) -> Faults {
        self.inner.faults.faults()
    }

    /// Replaces the faults from the next request on. Use
    /// [`Faults::validate`] first to refuse nonsense.
    pub fn set_faults(&self, faults: Faults) {
        self.inner.faults.set(faults);
    }
}

/// Longer times are capped at a century, so that adding them to now cannot overflow.
const MAX_MILLIS: u64 = 100 * 366 * 24 * 3_600 * 1_000;

fn millis(ms: u64) -> chrono::Duration {
    chrono::Duration::milliseconds(i64::try_from(ms.min(MAX_MILLIS)).unwrap_or(0))
}

async fn accounts(State(sandbox): State<BongloySandbox>) -> Json<Vec<Account>> {
    Json(sandbox.accounts())
}

async fn transfers(State(sandbox): State<BongloySandbox>) -> Json<Vec<serde_json::Value>> {
    Json(sandbox.transfers())
}

impl Simulator for Inner {
    fn log(&self) -> &RequestLog {
        &self.log
    }

    fn faults(&self) -> &FaultInjector {
        &self.faults
    }

    fn reset(&self) {
        self.log.clear();
        *lock(&self.bank) = self.start.clone();
    }
}
