//! `providers`: what each configured platform offers and how it is doing.

use async_graphql::{Enum, SimpleObject};
use chrono::{DateTime, Utc};
use finmesh_core::Provider;
use finmesh_core::aggregate::ProviderHealth;

use crate::input::LoanOrderField;

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
        let loans = provider
            .capabilities()
            .loans
            .as_ref()
            .map(|loans| LoanCapabilities {
                filters: loans.filters.iter().copied().map(Into::into).collect(),
                orders: loans.orders.iter().copied().map(Into::into).collect(),
                max_page_size: loans.max_page_size,
            });
        ProviderInfo {
            id: provider.id().to_string(),
            kind: provider.kind().to_string(),
            name: provider.name().to_string(),
            capabilities: Capabilities { loans },
            health: health.into(),
        }
    }
}

/// What a provider offers; null means the operation is not offered.
#[derive(SimpleObject)]
struct Capabilities {
    loans: Option<LoanCapabilities>,
}

/// What the platform evaluates itself; finmesh does the rest, so every filter
/// and order works with every provider, only slower.
#[derive(SimpleObject)]
struct LoanCapabilities {
    filters: Vec<LoanFilterField>,
    orders: Vec<LoanOrderField>,
    /// The most loans the platform returns in one call.
    max_page_size: u32,
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

/// What the gateway saw of the provider's recent calls.
#[derive(SimpleObject)]
#[graphql(name = "ProviderHealth")]
struct Health {
    status: HealthStatus,
    last_success_at: Option<DateTime<Utc>>,
    last_failure_at: Option<DateTime<Utc>>,
    last_error: Option<ProviderError>,
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
        }
    }
}
