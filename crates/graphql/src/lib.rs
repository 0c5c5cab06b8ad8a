//! finmesh's public GraphQL API: the schema and its resolvers over the
//! [`Aggregator`] (marketplace, investments, secondary market, transfers),
//! the principal's platform connections and exactly-once payments. It knows
//! no transport; the server crate serves it over HTTP.
//!
//! Money amounts and rates use the `Decimal` scalar, which travels as a JSON
//! string (`"0.0599"`), so no client turns them into a float by accident (and
//! JSON numbers sent as arguments are read digit for digit).
//! Every error carries `extensions.code`; see [`error`] for the full list.
//! List fields answer with what the providers that succeeded returned and list
//! each provider's failure in `errors` with `extensions.provider`; a nullable
//! field that fails is null with its error.

mod cache;
mod connection;
mod date;
mod decimal;
mod env;
pub mod error;
mod input;
mod investment;
mod json;
pub mod limits;
mod loan;
mod me;
mod money;
mod mutation;
mod offer;
pub mod persisted;
mod provider;
mod query;
mod status;
mod telemetry;
mod transfer;

use std::time::Duration;

use async_graphql::{EmptySubscription, Schema, SchemaBuilder, Variables};
use finmesh_core::aggregate::Aggregator;
use finmesh_identity::Connections;
use finmesh_payments::Payments;

use crate::error::ErrorCodes;
pub use crate::limits::QueryLimits;
use crate::mutation::MutationRoot;
pub use crate::persisted::{AllowList, PersistedQueries, request_extensions};
use crate::query::QueryRoot;

/// The executable schema.
pub type FinmeshSchema = Schema<QueryRoot, MutationRoot, EmptySubscription>;

/// What the resolvers answer from.
#[derive(Clone)]
pub struct Services {
    /// Every query over the providers.
    pub aggregator: Aggregator,
    /// Linking users' platform accounts (`me.connections`, `startConnection`,
    /// `disconnectProvider`); `None` in a gateway without a store, where those
    /// fields answer `NOT_SUPPORTED`.
    pub connections: Option<Connections>,
    /// Exactly-once transfers (`createTransfer`, `confirmTransfer`,
    /// `updateTransferMetadata`); `None` in a gateway without a store, where
    /// those mutations answer `NOT_SUPPORTED`.
    pub payments: Option<Payments>,
}

impl Services {
    /// A gateway without a store: public and provider-authenticated queries only.
    pub fn without_store(aggregator: Aggregator) -> Self {
        Services {
            aggregator,
            connections: None,
            payments: None,
        }
    }
}

/// How the schema behaves apart from what the aggregator knows.
#[derive(Debug, Clone)]
pub struct SchemaOptions {
    /// How long a request may take when the caller did not put a
    /// [`CallContext`](finmesh_core::CallContext) into the request data.
    pub request_timeout: Duration,
    /// Depth, complexity, aliases, root fields and introspection per request.
    pub limits: QueryLimits,
    /// Apollo persisted queries: automatic, an allow-list, or off.
    pub persisted: PersistedQueries,
}

impl Default for SchemaOptions {
    fn default() -> Self {
        SchemaOptions {
            request_timeout: Duration::from_secs(10),
            limits: QueryLimits::default(),
            persisted: PersistedQueries::default(),
        }
    }
}

/// The schema answering from `services`.
///
/// Per request, put a [`CallContext`](finmesh_core::CallContext) into the
/// request data (`Request::data`) to say who asks and until when; its
/// `principal` is who `me`, the user's own data and the mutations are about.
pub fn build_schema(services: Services, options: SchemaOptions) -> FinmeshSchema {
    let Services {
        aggregator,
        connections,
        payments,
    } = services;
    let limits = std::sync::Arc::new(options.limits.clone());
    // Persisted queries first: they give the query the limits then measure.
    let mut builder = builder()
        .extension(persisted::Persisted(options.persisted.clone()))
        .extension(limits::Limits(limits.clone()))
        .limit_recursive_depth(limits.max_nesting())
        .data(aggregator)
        .data(options);
    if !limits.introspection {
        builder = builder.disable_introspection();
    }
    if let Some(connections) = connections {
        builder = builder.data(connections);
    }
    if let Some(payments) = payments {
        builder = builder.data(payments);
    }
    builder.finish()
}

/// The schema's SDL, as committed in `schema.graphql`.
pub fn sdl() -> String {
    builder().finish().sdl()
}

/// Request variables from JSON, numbers kept exact.
///
/// Use this rather than async-graphql's `Variables::from_json`: the workspace
/// reads JSON numbers exactly (`serde_json/arbitrary_precision`), which
/// async-graphql's serde path would turn into objects.
pub fn variables(json: &serde_json::Value) -> Variables {
    Variables::from_value(json::to_value(json))
}

fn builder() -> SchemaBuilder<QueryRoot, MutationRoot, EmptySubscription> {
    Schema::build(QueryRoot, MutationRoot, EmptySubscription)
        .extension(ErrorCodes)
        .extension(cache::CacheExtensions)
        .extension(telemetry::Telemetry)
}

#[cfg(test)]
mod tests;
