//! A Zonky simulator following the Zonky API document (`zonky-api.apib`):
//! the public marketplace with its paging, ordering, filtering, partial
//! responses and leaky-bucket throttling.
//!
//! Endpoints: `GET /loans/marketplace`, `GET /loans/{id}`,
//! `GET /loans/last-published`, plus the shared `/__sandbox/` control
//! endpoints. Answers are gzip-compressed for clients that accept it.
//!
//! Where the document is silent, the simulator decides so:
//! - `/loans/last-published` answers `{"id": 123}` (`LastLoanId` is not shown);
//! - without `X-Page`/`X-Size`, page 0 of 20; `X-Size: 0`, a negative or a
//!   non-numeric value answers 400 `invalid_request`;
//! - ties in any order are broken by ascending `id`; without `X-Order` the
//!   newest loans come first; nulls (`topped`) come first when ascending;
//!   `rating` and `purpose` order by their wire spelling;
//! - a filter whose operation does not fit the field's type (`covered__gt`)
//!   answers `invalid_filter`, like a field that cannot be filtered; a value
//!   that does not parse (`termInMonths__gt=abc`, an unknown enum member)
//!   answers 400 `invalid_request` naming `property` and `operation`;
//! - `incomes` is the collection holding the loan's `mainIncomeType`;
//! - `noteq` keeps null values; `gteornull`/`lteornull` keep them too (no
//!   number or date field of `Loan` is nullable, so they act as `gte`/`lte`);
//! - a `+` in a date's offset sent unencoded (read as a space) is taken back.

mod api;
mod data;
mod error;
mod fields;
mod filter;
mod throttle;

use std::{net::SocketAddr, sync::Arc};

use axum::{Router, middleware::from_fn_with_state, routing::get};
use rust_decimal::Decimal;
use serde::Deserialize;
use tower_http::compression::CompressionLayer;

use crate::{
    control::{self, Simulator},
    faults::{FaultInjector, Faults, inject_faults},
    server::{RunningSandbox, serve},
    stats::{RequestLog, RequestRecord, Stats, record},
};
use api::Marketplace;
use throttle::Throttle;

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
    /// table, as when Zonky withdraws one: lets tests see `invalid_filter`.
    pub refused_fields: Vec<String>,
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
        }
    }
}

/// A leaky bucket per client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BucketConfig {
    /// Tokens in a full bucket, and so the largest burst.
    pub capacity: u32,
    /// Tokens coming back per second, continuously; may be fractional (`2.5`).
    #[serde(with = "rust_decimal::serde::arbitrary_precision")]
    pub refill_per_second: Decimal,
}

/// A Zonky simulator. Cheap to clone: clones share the same marketplace,
/// throttles, faults and log.
#[derive(Clone)]
pub struct ZonkySandbox {
    inner: Arc<Inner>,
}

struct Inner {
    marketplace: Arc<Marketplace>,
    bucket: Arc<Throttle>,
    last_published_bucket: Arc<Throttle>,
    faults: Arc<FaultInjector>,
    log: Arc<RequestLog>,
}

impl ZonkySandbox {
    /// Generates the marketplace, with publication times in the few days before
    /// now and deadlines days ahead, so that every loan is on the marketplace.
    pub fn new(config: ZonkyConfig) -> Self {
        let loans = data::generate(config.seed, config.loans, chrono::Utc::now());
        Self {
            inner: Arc::new(Inner {
                marketplace: Arc::new(Marketplace::new(
                    loans,
                    config.max_page_size,
                    config.refused_fields,
                )),
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
        let throttled = Router::new()
            .route("/loans/marketplace", get(api::marketplace))
            .route("/loans/{id}", get(api::loan_detail))
            .route_layer(from_fn_with_state(inner.bucket.clone(), throttle::throttle));
        let polling = Router::new()
            .route("/loans/last-published", get(api::last_published))
            .route_layer(from_fn_with_state(
                inner.last_published_bucket.clone(),
                throttle::throttle,
            ));
        // Outermost first: record, then faults, then the throttle, then the handler.
        let simulated = throttled
            .merge(polling)
            .with_state(inner.marketplace.clone())
            .layer(from_fn_with_state(inner.faults.clone(), inject_faults))
            .layer(from_fn_with_state(inner.log.clone(), record));
        simulated
            .merge(control::router(inner.clone()))
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

    pub fn stats(&self) -> Stats {
        self.inner.log.stats()
    }

    /// The last requests, oldest first (at most [`crate::stats::LOG_CAPACITY`]).
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.inner.log.requests()
    }

    /// Clears counters and log and refills every bucket. Faults stay.
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
    }
}
