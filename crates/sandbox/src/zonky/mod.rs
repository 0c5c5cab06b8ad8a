//! A Zonky simulator following the Zonky API document (`zonky-api.apib`):
//! the public marketplace and secondary marketplace, OAuth 2.0, and each
//! user's investments, with the document's paging, ordering, filtering,
//! partial responses and leaky-bucket throttling.
//!
//! Endpoints:
//!
//! | endpoint | scope | answer |
//! |---|---|---|
//! | `GET /loans/marketplace` | none | `[Loan]`, paged |
//! | `GET /loans/{id}` | none | `Loan` |
//! | `GET /loans/last-published` | none | `{"id": 123}` (own budget) |
//! | `GET /smp/investments` | none | `[SMPInvestment]`, paged (see `secondary.rs`) |
//! | `GET /oauth/authorize` | | 302 to the client with a code (see [`crate::oauth`]) |
//! | `POST /oauth/token` | | tokens; client credentials by HTTP Basic, form or JSON body |
//! | `GET /me/investments` | `SCOPE_INVESTMENT_READ` | `[Investmentv2]`, paged |
//! | `GET /me/investments/summary` | `SCOPE_INVESTMENT_READ` | `InvestmentSummary` of the filtered investments |
//! | `GET /me/investments/{id}` | `SCOPE_INVESTMENT_READ` | `InvestmentDetail`; 404 unless the user's |
//! | `GET /users/me/basic` | `SCOPE_APP_BASIC_INFO` | `{"id", "username", "email", "firstName", "surname", "nickName"}` |
//!
//! plus the shared `/__sandbox/` control endpoints and `GET /__sandbox/oauth`
//! (token counters), `POST /__sandbox/oauth/advance` and
//! `POST /__sandbox/oauth/revoke` ([`OAuthServer::control_router`]). Every
//! simulated endpoint is throttled (per `Authorization` header, else per IP),
//! faulted and logged. Answers are gzip-compressed for clients that accept it.
//!
//! Where the document is silent, the simulator decides so:
//! - `/loans/last-published` answers `{"id": 123}` (`LastLoanId` is not shown);
//! - without `X-Page`/`X-Size`, page 0 of 20; `X-Size: 0`, a negative or a
//!   non-numeric value answers 400 `invalid_request`;
//! - ties in any order are broken by ascending `id`; without `X-Order` the
//!   newest come first (`datePublished` for loans and offers, `timeCreated`
//!   for investments); nulls (`topped`) come first when ascending; enums
//!   (`rating`, `purpose`, ...) order by their wire spelling;
//! - a filter whose operation does not fit the field's type (`covered__gt`)
//!   answers `invalid_filter`, like a field that cannot be filtered (or only
//!   ordered, as `loan.name` of `/me/investments`); a value that does not
//!   parse (`termInMonths__gt=abc`, an unknown enum member) answers 400
//!   `invalid_request` naming `property` and `operation`;
//! - `incomes` is the collection holding the loan's `mainIncomeType`;
//! - `noteq` keeps null values; `gteornull`/`lteornull` keep them too (no
//!   number or date field of `Loan` is nullable, so they act as `gte`/`lte`);
//! - a `+` in a date's offset sent unencoded (read as a space) is taken back;
//! - `/me/investments`: the table's aliases read `ext.unpaidInstalmentCount`
//!   as `loan.payments.unpaid`, `ext.revenueRate` as `loan.revenueRate`,
//!   `unpaidPrincipal` as `principal.unpaid`, `borrowerPrimaryIncomeType` and
//!   `borrowerRegion` as `loan.borrower.*`; each investment also carries the
//!   table's `loanHealth`, `investmentStatus`, `insuranceStatus` and
//!   `covidLabel`. An investment's `loanHealth` is one of `NEVER_IN_DUE`,
//!   `HISTORICALLY_IN_DUE`, the five `*_DPD` ranges, `PAID_OFF` (repaid
//!   early) and `PAID`; as a filter operand `HEALTHY_AND_ACTIVE` stands for
//!   the first two and `CURRENTLY_IN_DUE` for the five ranges. A sold
//!   investment is `SOLD` and `PAID`, with nothing unpaid;
//! - `/me/investments/summary` takes the list's filters (and checks
//!   `X-Order`) but not its paging;
//! - `/me/investments/{id}` answers 404 for an id that is not the user's,
//!   whether another user's, unknown or not a number;
//! - `/smp/investments`: without `delinquent=true` offers of loans past due
//!   now (`loanHealthInfo` `CURRENTLY_IN_DUE`) are left out; `delinquent`
//!   takes `true` or `false`, anything else answers 400 `invalid_request`;
//! - a missing token answers 401 `unauthorized`; an invalid or expired one
//!   answers `invalid_token_status` (401, or 400 as Zonky sometimes does)
//!   with `{"error": "invalid_token"}`; a token without the scope answers
//!   403 `insufficient_scope`.

mod api;
mod columns;
mod data;
mod error;
mod fields;
mod filter;
mod listing;
mod me;
mod portfolio;
mod secondary;
mod throttle;

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    net::SocketAddr,
    sync::Arc,
};

use axum::{Router, http::StatusCode, middleware::from_fn_with_state, routing::get};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};
use tower_http::compression::CompressionLayer;

pub use crate::bucket::BucketConfig;
use crate::{
    control::{self, Simulator},
    faults::{FaultInjector, Faults, inject_faults},
    oauth::{ClientAuth, OAuthConfig, OAuthServer},
    server::{RunningSandbox, serve},
    stats::{RequestLog, RequestRecord, Stats, record},
};
use api::Marketplace;
use listing::ListSettings;
use me::Private;
use portfolio::{Investment, InvestmentSummary};
use throttle::Throttle;

/// The document's five scopes of the shared client.
pub const SCOPES: [&str; 5] = [
    "SCOPE_APP_BASIC_INFO",
    "SCOPE_INVESTMENT_READ",
    "SCOPE_INVESTMENT_WRITE",
    "SCOPE_NOTIFICATIONS_READ",
    "SCOPE_NOTIFICATIONS_WRITE",
];

/// The request headers kept in the request log.
const RECORDED_HEADERS: &[&str] = &["x-page", "x-size", "x-order", "user-agent"];

/// How the simulator behaves. Every field has a default, also when read with
/// serde (e.g. from the gateway's TOML).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ZonkyConfig {
    /// Seed of the generated marketplace and of the random faults.
    pub seed: u64,
    /// How many loans the marketplace holds.
    pub loans: usize,
    /// The throttle of every endpoint but `/loans/last-published`.
    pub bucket: BucketConfig,
    /// The separate throttle of `/loans/last-published`.
    pub last_published_bucket: BucketConfig,
    /// Send `Retry-After` (seconds until the next token) with the throttle's
    /// 429. The document promises no such header, so the default is off.
    pub retry_after_on_429: bool,
    /// Larger `X-Size` values are lowered to this.
    pub max_page_size: usize,
    /// Faults to inject from the start.
    pub faults: Faults,
    /// Properties refused for filtering and ordering on top of the document's
    /// tables, as when Zonky withdraws one: lets tests see `invalid_filter`.
    pub refused_fields: Vec<String>,
    /// The authorization server. Fields left out of a TOML/JSON `oauth`
    /// table keep the Zonky defaults below, not [`OAuthConfig::default`]'s.
    #[serde(deserialize_with = "zonky_oauth")]
    pub oauth: OAuthConfig,
    /// The status answering an invalid or expired access token: 401, or 400
    /// as Zonky sometimes answers (both with `{"error": "invalid_token"}`).
    pub invalid_token_status: u16,
    /// How many investments each user holds (one per marketplace loan, so at
    /// most `loans`); users not listed hold none.
    pub investments_per_user: BTreeMap<String, usize>,
    /// How many offers the secondary marketplace holds.
    pub smp_offers: usize,
}

impl ZonkyConfig {
    /// The document's shared client: `mujrobot`/`mujrobot`, its five scopes,
    /// access tokens valid one day, codes five minutes; users `alice` and
    /// `bob`; any redirect URI.
    pub fn default_oauth() -> OAuthConfig {
        OAuthConfig {
            client_id: "mujrobot".to_owned(),
            client_secret: "mujrobot".to_owned(),
            redirect_uris: Vec::new(),
            users: vec!["alice".to_owned(), "bob".to_owned()],
            // The document: "accessToken validity: 1 day".
            access_token_ttl_secs: 24 * 60 * 60,
            refresh_token_ttl_secs: 0,
            // The document: "Authorization code can be used only once and expires after 5 min."
            code_ttl_secs: 5 * 60,
            rotate_refresh_tokens: true,
            refresh_returns_refresh_token: true,
            scopes: SCOPES.iter().map(|scope| (*scope).to_owned()).collect(),
        }
    }
}

fn zonky_oauth<'de, D: Deserializer<'de>>(deserializer: D) -> Result<OAuthConfig, D::Error> {
    OAuthConfig::deserialize_over(ZonkyConfig::default_oauth(), deserializer)
}

impl Default for ZonkyConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            loans: 5_000,
            // The document: "refreshes one token every second with a capacity of 500 tokens".
            bucket: BucketConfig {
                capacity: 500,
                refill_per_second: Decimal::ONE,
            },
            // The document: "maximum frequency 1 request per second".
            last_published_bucket: BucketConfig {
                capacity: 1,
                refill_per_second: Decimal::ONE,
            },
            retry_after_on_429: false,
            max_page_size: 5_000,
            faults: Faults::default(),
            refused_fields: Vec::new(),
            oauth: Self::default_oauth(),
            invalid_token_status: StatusCode::UNAUTHORIZED.as_u16(),
            investments_per_user: BTreeMap::from([
                ("alice".to_owned(), 300),
                ("bob".to_owned(), 120),
            ]),
            smp_offers: 1_000,
        }
    }
}

/// A Zonky simulator. Cheap to clone: clones share the same marketplace,
/// investments, tokens, throttles, faults and log.
#[derive(Clone)]
pub struct ZonkySandbox {
    inner: Arc<Inner>,
}

struct Inner {
    marketplace: Arc<Marketplace>,
    private: Arc<Private>,
    bucket: Arc<Throttle>,
    last_published_bucket: Arc<Throttle>,
    faults: Arc<FaultInjector>,
    log: Arc<RequestLog>,
}

impl ZonkySandbox {
    /// Generates the marketplace, with publication times in the few days before
    /// now and deadlines days ahead, so that every loan is on the marketplace;
    /// the secondary marketplace; and each user's investments.
    pub fn new(config: ZonkyConfig) -> Self {
        let now = chrono::Utc::now();
        let loans = data::generate(config.seed, config.loans, now);
        let offers = secondary::generate(config.seed, config.smp_offers, &loans, now);
        let portfolios = portfolios(&config, &loans, now);
        let settings = ListSettings {
            max_page_size: config.max_page_size,
            refused_fields: config.refused_fields,
        };
        let oauth = OAuthServer::new(config.oauth, ClientAuth::BasicHeader);
        Self {
            inner: Arc::new(Inner {
                marketplace: Arc::new(Marketplace::new(loans, offers, settings.clone())),
                private: Arc::new(Private {
                    oauth,
                    invalid_token_status: StatusCode::from_u16(config.invalid_token_status)
                        .unwrap_or(StatusCode::UNAUTHORIZED),
                    portfolios,
                    settings,
                }),
                bucket: Arc::new(Throttle::new(config.bucket, config.retry_after_on_429)),
                last_published_bucket: Arc::new(Throttle::new(
                    config.last_published_bucket,
                    config.retry_after_on_429,
                )),
                faults: Arc::new(FaultInjector::new(config.faults, config.seed)),
                log: Arc::new(RequestLog::new(RECORDED_HEADERS)),
            }),
        }
    }

    /// The simulator as a router, to embed or to serve.
    pub fn router(&self) -> Router {
        let inner = &self.inner;
        let public = Router::new()
            .route("/loans/marketplace", get(api::marketplace))
            .route("/loans/{id}", get(api::loan_detail))
            .route("/smp/investments", get(api::secondary_marketplace))
            .with_state(inner.marketplace.clone());
        let private = Router::new()
            .route("/me/investments", get(me::investments))
            .route("/me/investments/summary", get(me::summary))
            .route("/me/investments/{id}", get(me::investment_detail))
            .route("/users/me/basic", get(me::basic_info))
            .with_state(inner.private.clone());
        let throttled = public
            .merge(private)
            .merge(self.oauth().router("/oauth/authorize", "/oauth/token"))
            .route_layer(from_fn_with_state(inner.bucket.clone(), throttle::throttle));
        let polling = Router::new()
            .route("/loans/last-published", get(api::last_published))
            .route_layer(from_fn_with_state(
                inner.last_published_bucket.clone(),
                throttle::throttle,
            ))
            .with_state(inner.marketplace.clone());
        // Outermost first: record, then faults, then the throttle, then the handler.
        let simulated = throttled
            .merge(polling)
            .layer(from_fn_with_state(inner.faults.clone(), inject_faults))
            .layer(from_fn_with_state(inner.log.clone(), record));
        simulated
            .merge(control::router(inner.clone()))
            .merge(self.oauth().control_router())
            .layer(CompressionLayer::new())
    }

    /// Serves the simulator on `addr` (port 0 picks a free port) until the
    /// returned handle is shut down or dropped.
    pub async fn spawn(self, addr: SocketAddr) -> std::io::Result<RunningSandbox> {
        serve(self.router(), addr).await
    }

    /// Every loan (ascending id), exactly as the API serializes it, for checking
    /// answers against a brute-force computation.
    pub fn loans(&self) -> Vec<serde_json::Value> {
        self.inner
            .marketplace
            .loans()
            .iter()
            .filter_map(|loan| serde_json::to_value(loan).ok())
            .collect()
    }

    /// The authorization server: token counters, revocation, its clock, and
    /// tokens for tests that skip the authorize step.
    pub fn oauth(&self) -> &OAuthServer {
        &self.inner.private.oauth
    }

    /// The user's investments (ascending id), exactly as `/me/investments`
    /// serializes them; none for a user who holds none.
    pub fn investments(&self, user: &str) -> Vec<serde_json::Value> {
        self.inner
            .private
            .portfolio(user)
            .iter()
            .filter_map(|investment| serde_json::to_value(investment).ok())
            .collect()
    }

    /// One of the user's investments as `/me/investments/{id}` answers it.
    pub fn investment_detail(&self, user: &str, id: u64) -> Option<serde_json::Value> {
        let portfolio = self.inner.private.portfolio(user);
        let investment: &Investment = portfolio.iter().find(|investment| investment.id == id)?;
        serde_json::to_value(investment.detail()).ok()
    }

    /// `/me/investments/summary` without filters: the sums over every
    /// investment of the user.
    pub fn investment_summary(&self, user: &str) -> serde_json::Value {
        serde_json::to_value(InvestmentSummary::of(self.inner.private.portfolio(user)))
            .unwrap_or_default()
    }

    /// Every offer of the secondary marketplace (ascending id, delinquent ones
    /// included), exactly as `/smp/investments` serializes them.
    pub fn smp_offers(&self) -> Vec<serde_json::Value> {
        self.inner
            .marketplace
            .offers()
            .iter()
            .filter_map(|offer| serde_json::to_value(offer).ok())
            .collect()
    }

    pub fn stats(&self) -> Stats {
        self.inner.log.stats()
    }

    /// The last requests, oldest first (at most [`crate::stats::LOG_CAPACITY`]).
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.inner.log.requests()
    }

    /// Clears counters (token counters included) and log and refills every
    /// bucket. Faults, codes and tokens stay.
    pub fn reset(&self) {
        Simulator::reset(&*self.inner);
    }

    /// The faults as they stand (used bursts and queued faults are gone).
    pub fn faults(&self) -> Faults {
        self.inner.faults.faults()
    }

    /// Replaces the faults from the next request on. Use
    /// [`Faults::validate`] first to refuse nonsense; unchecked, a rate outside
    /// 0 to 1 acts as the nearest bound and a non-error status as 500.
    pub fn set_faults(&self, faults: Faults) {
        self.inner.faults.set(faults);
    }
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
        self.bucket.reset();
        self.last_published_bucket.reset();
        self.private.oauth.reset_stats();
    }
}

/// Each user's investments: the OAuth users', then those only named in
/// `investments_per_user`, each with ids in a block of its own.
fn portfolios(
    config: &ZonkyConfig,
    loans: &[data::Loan],
    now: chrono::DateTime<chrono::Utc>,
) -> HashMap<String, Vec<Investment>> {
    let mut users: Vec<&String> = Vec::new();
    for user in config
        .oauth
        .users
        .iter()
        .chain(config.investments_per_user.keys())
    {
        if !users.contains(&user) {
            users.push(user);
        }
    }
    let mut bases = HashSet::new();
    users
        .into_iter()
        .map(|user| {
            // Two names in the same block: the later one takes the next free block.
            let base = (0..)
                .map(|offset| portfolio::id_base(user, offset))
                .find(|base| bases.insert(*base))
                .unwrap_or_default();
            let count = config.investments_per_user.get(user).copied().unwrap_or(0);
            let investments = portfolio::generate(config.seed, user, count, base, loans, now);
            (user.clone(), investments)
        })
        .collect()
}
