//! A Bondora simulator following Bondora's API document
//! (`shared/providers/bondora-api.txt`): the envelope on every answer, OAuth
//! 2.0, auctions, bids, investments, the secondary market and loan parts with
//! deterministic data, a per-endpoint and per-user quota, gzip, and a webhook
//! sender that signs its calls.
//!
//! # Where the names come from
//!
//! Field names, query parameters, enumerations, page size limits and scopes
//! follow Bondora's public API reference (api.bondora.com/doc: the pages of
//! `GET api/v1/auctions`, `GET api/v1/account/investments`, the index of
//! endpoints with their scopes, and the change log for the default page size of
//! 10,000 and the maximum page sizes) and the clients generated from its
//! swagger: `JensWalter/bondora-rs` (`src/models/*.rs`: `Auction`,
//! `AuctionExtended`, `MyInvestmentItem`, `SecondMarketItem`, `BidSummary`,
//! `LoanPartDetails`, `ScheduledPayment`, `LoanTransfer`,
//! `DebtManagementEvent`, `Liability`, `Debt`, `BorrowerHistory`, `ApiError`,
//! the request models and `src/apis/*.rs` for the `request.`-prefixed query
//! names), `cedricziel/bondora-openapi-php` (`docs/Model`, `docs/Api`) and
//! `petslane/php-bondora-api` (`src/Definition`, `src/Enum`: the `UseOfLoan`,
//! `LanguageCode`, `BidType` and debt event enumerations, `PageSize` and
//! `PageNr` from 1). The webhook signature follows Bondora's sample receivers
//! (`Bondora/webhooksample-python`, `Bondora/webhooksample-aspnetcore`). Where
//! these are silent, the shared document and `shared/providers/README.md`
//! decide.
//!
//! # Endpoints
//!
//! | endpoint | scope | answer |
//! |---|---|---|
//! | `GET /oauth/authorize`, `POST /oauth/access_token` | | [`crate::oauth`]; client credentials in the body (form or JSON) |
//! | `GET /api/v1/auctions` | any token | active `Auction`s, paged |
//! | `GET /api/v1/auction/{id}` | any token | one `AuctionExtended`, closed ones too |
//! | `GET /api/v1/bids` | `BidsRead` | the caller's `BidSummary`s, paged |
//! | `GET /api/v1/account/investments` | `Investments` | the caller's `MyInvestmentItem`s, paged |
//! | `GET /api/v1/secondarymarket` | `SmBuy` or `SmSell` | every `SecondMarketItem`, paged |
//! | `GET /api/v1/loanpart/{id}` | `Investments` | `LoanPartDetails` of one of the caller's loan parts |
//! | `POST /__sandbox/webhooks/send` | | `{"count": 20, "duplicate_ratio": 0.2, "url": "…"?}` → a [`WebhookReport`] |
//!
//! plus the shared `/__sandbox/` control endpoints and the OAuth server's
//! (`/__sandbox/oauth`, `/__sandbox/oauth/advance`, `/__sandbox/oauth/revoke`).
//!
//! # Decisions where the references are silent
//!
//! - The secondary market takes `SmBuy` or `SmSell`: listing offers is how a
//!   buyer shops and how a seller prices. `loanpart/{id}` takes `Investments`:
//!   it only answers the caller's own loan parts (another user's is 404).
//! - Error envelopes carry the HTTP status as `Code` and no `Payload`, like
//!   the document's 429 sample; 400 for a parameter that does not parse, is out
//!   of range or names an unknown enum member; 404 (envelope) for unknown
//!   paths and ids; 405 (envelope) for a wrong method; a malformed id is 400.
//! - Injected faults answering an error status (503, 429, ...) carry the
//!   envelope too; malformed, truncated and dropped answers do not. OAuth
//!   endpoints are recorded but never faulted or throttled.
//! - The quota is a leaky bucket per endpoint and per user (not per token):
//!   capacity 1, one request back a second, unless `limits` says otherwise
//!   for the route (keyed by route template, e.g. `/api/v1/auction/{id}`).
//! - Paging and filter names: see [`query`](self) (prefix `request.` optional,
//!   any letter case, lists repeated, comma separated or indexed).
//! - Timestamps: UTC with seven fractional digits and `Z`; the borrower's
//!   `LoanApplicationStartedDate` and `ScoringDate` in Tallinn local time
//!   with an offset (the document's "Local Date" form); date-only values at
//!   midnight UTC.

mod api;
mod data;
mod envelope;
mod gate;
mod query;
mod webhook;

use std::{collections::BTreeMap, net::SocketAddr, sync::Arc};

use axum::{
    Json, Router,
    extract::State,
    http::StatusCode,
    middleware::{from_fn, from_fn_with_state},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use rust_decimal::Decimal;
use serde::{Deserialize, Deserializer};
use serde_json::{Value, json};
use tower_http::compression::CompressionLayer;

pub use crate::bucket::BucketConfig;
use crate::{
    control::{self, Simulator},
    faults::{FaultInjector, Faults, inject_faults},
    oauth::{ClientAuth, OAuthConfig, OAuthServer},
    server::{RunningSandbox, serve},
    stats::{RequestLog, RequestRecord, Stats, record},
};
use api::Market;
use gate::{Gate, Scope};
pub use webhook::{
    Attempt, SIGNED_HEADERS, Signing, WebhookError, WebhookEvent, WebhookReport, WebhookSender,
    WebhookSettings,
};

/// The request headers kept in the request log.
const RECORDED_HEADERS: &[&str] = &["accept", "accept-encoding", "content-type", "user-agent"];

/// Every scope the document lists.
pub const SCOPES: &[&str] = &[
    "Investments",
    "BidsRead",
    "BidsEdit",
    "SmBuy",
    "SmSell",
    "ReportCreate",
    "ReportRead",
];

/// How the simulator behaves. Every field has a default, also when read with
/// serde (e.g. from the gateway's TOML).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BondoraConfig {
    /// Seed of the generated data and of the random faults.
    pub seed: u64,
    /// Active auctions generated (with one closed auction for every twenty on
    /// top, which only `GET /api/v1/auction/{id}` shows).
    pub auctions: usize,
    /// Investments of each OAuth user (sold ones included).
    pub investments_per_user: usize,
    /// Bids of each OAuth user.
    pub bids_per_user: usize,
    /// Secondary market offers of other investors (the users' own offers come
    /// on top).
    pub secondary_market: usize,
    /// The authorization server; missing fields take Bondora's defaults
    /// ([`BondoraConfig::default_oauth`]), not [`OAuthConfig::default`]'s.
    #[serde(deserialize_with = "bondora_oauth")]
    pub oauth: OAuthConfig,
    /// The quota of every endpoint without its own in `limits`.
    pub default_limit: BucketConfig,
    /// Quotas by route template (`/api/v1/auctions`, `/api/v1/auction/{id}`,
    /// `/api/v1/bids`, `/api/v1/account/investments`,
    /// `/api/v1/secondarymarket`, `/api/v1/loanpart/{id}`).
    pub limits: BTreeMap<String, BucketConfig>,
    /// Faults to inject from the start.
    pub faults: Faults,
    /// Where webhook events go.
    pub webhook_url: Option<String>,
    /// The `keyId` of the signatures.
    pub webhook_key_id: String,
    /// The signing secret, Base64 (the HMAC key is its decoded bytes).
    pub webhook_secret: String,
    /// Attempts per delivery (the first included).
    pub webhook_max_attempts: u32,
    /// Wait before the second attempt; doubles after each (at most 5 s).
    pub webhook_retry_backoff_ms: u64,
    /// How long a delivery waits for an answer ("the webhook caller has a
    /// time-out of 30 seconds").
    pub webhook_timeout_ms: u64,
}

impl Default for BondoraConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            auctions: 2_000,
            investments_per_user: 300,
            bids_per_user: 60,
            secondary_market: 1_500,
            oauth: Self::default_oauth(),
            // "API calls quota exceeded! maximum admitted 1 per Second."
            default_limit: BucketConfig {
                capacity: 1,
                refill_per_second: Decimal::ONE,
            },
            limits: BTreeMap::new(),
            faults: Faults::default(),
            webhook_url: None,
            webhook_key_id: "finmesh-sandbox".to_owned(),
            // Base64 of "finmesh-bondora-sandbox-webhook-secret".
            webhook_secret: "ZmlubWVzaC1ib25kb3JhLXNhbmRib3gtd2ViaG9vay1zZWNyZXQ=".to_owned(),
            webhook_max_attempts: 5,
            webhook_retry_backoff_ms: 200,
            webhook_timeout_ms: 30_000,
        }
    }
}

impl BondoraConfig {
    /// Bondora's OAuth as the document shows it: tokens for an hour, every
    /// scope, and a refresh answer without a new refresh token (the old one
    /// stays valid), for the users `alice` and `bob`.
    pub fn default_oauth() -> OAuthConfig {
        OAuthConfig {
            client_id: "finmesh-bondora-sandbox".to_owned(),
            client_secret: "finmesh-bondora-sandbox-secret".to_owned(),
            users: vec!["alice".to_owned(), "bob".to_owned()],
            access_token_ttl_secs: 3600,
            code_ttl_secs: 300,
            rotate_refresh_tokens: false,
            refresh_returns_refresh_token: false,
            scopes: SCOPES.iter().map(|scope| (*scope).to_owned()).collect(),
            ..OAuthConfig::default()
        }
    }
}

fn bondora_oauth<'de, D: Deserializer<'de>>(deserializer: D) -> Result<OAuthConfig, D::Error> {
    OAuthConfig::deserialize_over(BondoraConfig::default_oauth(), deserializer)
}

/// The data routes and the scope each requires.
const ROUTES: &[(&str, Scope)] = &[
    ("/api/v1/auctions", Scope::None),
    ("/api/v1/auction/{id}", Scope::None),
    ("/api/v1/bids", Scope::AnyOf(&["BidsRead"])),
    (
        "/api/v1/account/investments",
        Scope::AnyOf(&["Investments"]),
    ),
    (
        "/api/v1/secondarymarket",
        Scope::AnyOf(&["SmBuy", "SmSell"]),
    ),
    ("/api/v1/loanpart/{id}", Scope::AnyOf(&["Investments"])),
];

/// A Bondora simulator. Cheap to clone: clones share data, tokens, quotas,
/// faults and log.
#[derive(Clone)]
pub struct BondoraSandbox {
    inner: Arc<Inner>,
}

struct Inner {
    market: Arc<Market>,
    oauth: OAuthServer,
    gate: Arc<Gate>,
    faults: Arc<FaultInjector>,
    log: Arc<RequestLog>,
    webhooks: WebhookSender,
}

impl BondoraSandbox {
    /// Generates the data: auctions published in the three days before now
    /// and closing hours to days ahead, investments issued up to 30 months ago.
    pub fn new(config: BondoraConfig) -> Self {
        let sizes = data::Sizes {
            auctions: config.auctions,
            investments_per_user: config.investments_per_user,
            bids_per_user: config.bids_per_user,
            secondary_market: config.secondary_market,
        };
        let world = data::generate(config.seed, &sizes, &config.oauth.users, chrono::Utc::now());
        let market = Arc::new(Market::new(world, data::Publisher::new(config.seed)));
        let oauth = OAuthServer::new(config.oauth, ClientAuth::BodyFields);
        let gate = Arc::new(Gate::new(
            oauth.clone(),
            ROUTES,
            &config.limits,
            config.default_limit,
        ));
        let webhooks = WebhookSender::new(
            market.clone(),
            WebhookSettings {
                url: config.webhook_url,
                key_id: config.webhook_key_id,
                secret: config.webhook_secret,
                max_attempts: config.webhook_max_attempts,
                retry_backoff_ms: config.webhook_retry_backoff_ms,
                timeout_ms: config.webhook_timeout_ms,
            },
        );
        Self {
            inner: Arc::new(Inner {
                market,
                oauth,
                gate,
                faults: Arc::new(FaultInjector::new(config.faults, config.seed)),
                log: Arc::new(RequestLog::new(RECORDED_HEADERS)),
                webhooks,
            }),
        }
    }

    /// The simulator as a router, to embed or to serve.
    pub fn router(&self) -> Router {
        let inner = &self.inner;
        let api = Router::new()
            .route("/api/v1/auctions", get(api::auctions))
            .route("/api/v1/auction/{id}", get(api::auction))
            .route("/api/v1/bids", get(api::bids))
            .route("/api/v1/account/investments", get(api::investments))
            .route("/api/v1/secondarymarket", get(api::secondary_market))
            .route("/api/v1/loanpart/{id}", get(api::loan_part))
            .route_layer(from_fn_with_state(inner.gate.clone(), gate::guard))
            .with_state(inner.market.clone())
            // Outermost first: record, envelope for injected errors, faults,
            // then the gate (token, scope, quota) and the handler.
            .layer(from_fn_with_state(inner.faults.clone(), inject_faults))
            .layer(from_fn(envelope::envelope_injected_errors));
        let simulated = api
            .merge(
                inner
                    .oauth
                    .router("/oauth/authorize", "/oauth/access_token"),
            )
            .method_not_allowed_fallback(envelope::method_not_allowed)
            .fallback(envelope::not_found)
            .layer(from_fn_with_state(inner.log.clone(), record));
        let webhook_control = Router::new()
            .route("/__sandbox/webhooks/send", post(send_webhooks))
            .with_state(inner.webhooks.clone());
        simulated
            .merge(control::router(inner.clone()))
            .merge(inner.oauth.control_router())
            .merge(webhook_control)
            .layer(CompressionLayer::new())
    }

    /// Serves the simulator on `addr` (port 0 picks a free port) until the
    /// returned handle is shut down or dropped.
    pub async fn spawn(self, addr: SocketAddr) -> std::io::Result<RunningSandbox> {
        serve(self.router(), addr).await
    }

    /// The authorization server, e.g. to issue a token without the code flow
    /// ([`OAuthServer::issue_tokens`]) or to move its clock.
    pub fn oauth(&self) -> &OAuthServer {
        &self.inner.oauth
    }

    /// The webhook sender, posting to the configured `webhook_url` (see
    /// [`WebhookSender::with_url`]).
    pub fn webhooks(&self) -> WebhookSender {
        self.inner.webhooks.clone()
    }

    /// Every auction, closed ones (`ActualCloseDate` set) and those published
    /// by webhook events included, exactly as the API serializes them to a
    /// user without bids (`UserBids` 0), in no particular order.
    pub fn auctions(&self) -> Vec<Value> {
        self.inner.market.auctions(None)
    }

    /// Every auction as `user` sees it (`UserBids`, `UserBidAmount` count the
    /// user's pending and open bids).
    pub fn auctions_for(&self, user: &str) -> Vec<Value> {
        self.inner.market.auctions(Some(user))
    }

    /// Every investment of `user`, sold ones included (the API hides them
    /// unless `SalesStatus` is sent).
    pub fn investments(&self, user: &str) -> Vec<Value> {
        self.inner.market.investments(user)
    }

    /// The `LoanPartDetails` of one of `user`'s loan parts.
    pub fn loan_part(&self, user: &str, loan_part_id: &str) -> Option<Value> {
        self.inner.market.loan_part(user, loan_part_id)
    }

    /// Every secondary market offer, the users' own included.
    pub fn secondary_market(&self) -> Vec<Value> {
        self.inner.market.offers()
    }

    /// Every bid of `user`.
    pub fn bids(&self, user: &str) -> Vec<Value> {
        self.inner.market.bids(user)
    }

    pub fn stats(&self) -> Stats {
        self.inner.log.stats()
    }

    /// The last requests, oldest first (at most [`crate::stats::LOG_CAPACITY`]).
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.inner.log.requests()
    }

    /// Clears counters and log and refills every quota. Faults, tokens and
    /// data stay.
    pub fn reset(&self) {
        Simulator::reset(&*self.inner);
    }

    /// The faults as they stand (used bursts and queued faults are gone).
    pub fn faults(&self) -> Faults {
        self.inner.faults.faults()
    }

    /// Replaces the faults from the next request on (see [`Faults::validate`]).
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
        self.gate.reset();
    }
}

/// `POST /__sandbox/webhooks/send`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SendRequest {
    count: usize,
    #[serde(default)]
    duplicate_ratio: f64,
    /// Another URL than the configured one.
    #[serde(default)]
    url: Option<String>,
}

async fn send_webhooks(
    State(sender): State<WebhookSender>,
    Json(request): Json<SendRequest>,
) -> Response {
    let sender = match request.url {
        Some(url) => sender.with_url(url),
        None => sender,
    };
    match sender
        .send_events(request.count, request.duplicate_ratio)
        .await
    {
        Ok(report) => Json(report).into_response(),
        Err(error) => (
            StatusCode::BAD_REQUEST,
            Json(
                json!({"error": "invalid_webhook_request", "error_description": error.to_string()}),
            ),
        )
            .into_response(),
    }
}
