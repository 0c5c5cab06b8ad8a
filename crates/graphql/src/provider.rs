//! `providers`: what each configured platform offers and how it is doing.

use async_graphql::{Enum, OutputType, SimpleObject};
use chrono::{DateTime, Utc};
use finmesh_core::Provider;
use finmesh_core::aggregate::ProviderHealth;

use crate::input::{InvestmentOrderField, LoanOrderField, OfferOrderField, TransferOrderField};
use crate::money::Money;

/// A configured platform instance.
#[derive(SimpleObject)]
pub(crate) struct ProviderInfo {
    /// The instance id from configuration; the first part of its records' ids.
    id: String,
    /// The adapter, e.g. `zonky`.
    kind: String,
    name: String,
    capabilities: Capabilities,
    health: Health,
}

impl ProviderInfo {
    pub(crate) fn new(provider: &dyn Provider, health: ProviderHealth) -> Self {
        let caps = provider.capabilities();
        ProviderInfo {
            id: provider.id().to_string(),
            kind: provider.kind().to_string(),
            name: provider.name().to_string(),
            capabilities: Capabilities {
                loans: caps.loans.as_ref().map(ListCapabilities::new),
                investments: caps.investments.as_ref().map(ListCapabilities::new),
                offers: caps.offers.as_ref().map(ListCapabilities::new),
                transfers: caps.transfers.as_ref().map(TransferCapabilities::new),
            },
            health: health.into(),
        }
    }
}

/// What a provider offers; null means the operation is not offered.
#[derive(SimpleObject)]
struct Capabilities {
    /// The loan marketplace (`loans`, `loan`).
    loans: Option<ListCapabilities<LoanFilterField, LoanOrderField>>,
    /// Users' investments (`investments`, `investment`, `portfolio`).
    investments: Option<ListCapabilities<InvestmentFilterField, InvestmentOrderField>>,
    /// The secondary market (`secondaryMarket`).
    offers: Option<ListCapabilities<OfferFilterField, OfferOrderField>>,
    /// Moving money (`transfers`, `createTransfer`, ...).
    transfers: Option<TransferCapabilities>,
}

/// What the platform evaluates itself; finmesh does the rest, so every filter
/// and order works with every provider, only slower.
#[derive(SimpleObject)]
#[graphql(
    concrete(name = "LoanCapabilities", params(LoanFilterField, LoanOrderField)),
    concrete(
        name = "InvestmentCapabilities",
        params(InvestmentFilterField, InvestmentOrderField)
    ),
    concrete(name = "OfferCapabilities", params(OfferFilterField, OfferOrderField))
)]
struct ListCapabilities<F: OutputType, O: OutputType> {
    filters: Vec<F>,
    orders: Vec<O>,
    /// The most records the platform returns in one call.
    max_page_size: u32,
}

impl<F: OutputType, O: OutputType> ListCapabilities<F, O> {
    fn new<CF: Copy + Into<F>, CO: Copy + Into<O>>(
        caps: &finmesh_core::ListCapabilities<CF, CO>,
    ) -> Self {
        ListCapabilities {
            filters: caps.filters.iter().copied().map(Into::into).collect(),
            orders: caps.orders.iter().copied().map(Into::into).collect(),
            max_page_size: caps.max_page_size,
        }
    }
}

/// What a payment platform accepts, and what it evaluates itself when listing.
#[derive(SimpleObject)]
struct TransferCapabilities {
    /// ISO 4217 codes of the only currencies a transfer may be in.
    currencies: Vec<String>,
    /// The smallest amount the platform moves, if it has a minimum.
    min_amount: Option<Money>,
    filters: Vec<TransferFilterField>,
    orders: Vec<TransferOrderField>,
    /// The most transfers the platform returns in one call.
    max_page_size: u32,
}

impl TransferCapabilities {
    fn new(caps: &finmesh_core::provider::TransferCapabilities) -> Self {
        let list = ListCapabilities::<TransferFilterField, TransferOrderField>::new(&caps.list);
        TransferCapabilities {
            currencies: caps.currencies.iter().map(ToString::to_string).collect(),
            min_amount: caps.min_amount.map(Money::from),
            filters: list.filters,
            orders: list.orders,
            max_page_size: list.max_page_size,
        }
    }
}

/// The conditions of `LoanFilter`.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "finmesh_core::query::LoanFilterField")]
enum LoanFilterField {
    InterestRate,
    TermMonths,
    Amount,
    Rating,
    Purpose,
    Currency,
    Country,
    Insured,
    PublishedAt,
}

/// The conditions of `InvestmentFilter`.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "finmesh_core::query::InvestmentFilterField")]
enum InvestmentFilterField {
    Status,
    LoanHealth,
    SellStatus,
    Currency,
    PurchasedAt,
    PrincipalUnpaid,
    InterestRate,
}

/// The conditions of `OfferFilter`.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "finmesh_core::query::OfferFilterField")]
enum OfferFilterField {
    InterestRate,
    Price,
    Discount,
    Rating,
    Currency,
    ListedAt,
}

/// The conditions of `TransferFilter` (`CREATED_AT` is `from` and `to`).
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "finmesh_core::query::TransferFilterField")]
enum TransferFilterField {
    Status,
    CreatedAt,
}

/// A provider's state as seen from its recent answers.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "finmesh_core::aggregate::HealthStatus")]
enum HealthStatus {
    /// Not called yet.
    Unknown,
    Up,
    /// Answering, but the last call ran into its rate limit.
    Throttled,
    /// The last call failed: unreachable, 5xx or an answer finmesh cannot read.
    Down,
}

/// The provider's circuit breaker.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "finmesh_core::resilience::CircuitState")]
enum CircuitState {
    /// Calls go through.
    Closed,
    /// After repeated failures, calls are refused at once (`UPSTREAM_UNAVAILABLE`)
    /// without reaching the platform.
    Open,
    /// The next call probes the platform; its outcome closes or reopens the circuit.
    HalfOpen,
}

/// Where the gateway keeps the platform's rate-limit budget.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "finmesh_core::upstream::ThrottleBackend")]
enum ThrottleBackend {
    /// In this gateway process.
    Local,
    /// In Redis, shared by every gateway replica.
    Redis,
    /// Redis is unreachable: this replica uses a conservative share of the
    /// budget until it is back.
    LocalFallback,
}

/// What the gateway saw of the provider's recent calls.
#[derive(SimpleObject)]
#[graphql(name = "ProviderHealth")]
struct Health {
    status: HealthStatus,
    last_success_at: Option<DateTime<Utc>>,
    last_failure_at: Option<DateTime<Utc>>,
    last_error: Option<ProviderError>,
    circuit: CircuitState,
    throttle: ThrottleBackend,
}

/// An error as a provider call returned it.
#[derive(SimpleObject)]
struct ProviderError {
    /// The same code as `extensions.code` of GraphQL errors.
    code: String,
    message: String,
}

impl From<ProviderHealth> for Health {
    fn from(health: ProviderHealth) -> Self {
        Health {
            status: health.status.into(),
            last_success_at: health.last_success,
            last_failure_at: health.last_failure,
            last_error: health.last_error.map(|(kind, message)| ProviderError {
                code: kind.code().to_string(),
                message,
            }),
            circuit: health.circuit.into(),
            throttle: health.throttle.into(),
        }
    }
}
