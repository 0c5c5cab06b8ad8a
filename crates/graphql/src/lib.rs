//! finmesh's public GraphQL API: the schema and its resolvers over the
//! [`Aggregator`]. It knows no transport; the server crate serves it over HTTP.
//!
//! Money amounts and rates use the `Decimal` scalar, which travels as a JSON
//! string (`"0.0599"`), so no client turns them into a float by accident.
//! Every error carries `extensions.code`; see [`error`] for the full list.

pub mod error;
mod input;
mod json;
mod loan;
mod provider;
mod query;

use std::time::Duration;

use async_graphql::{EmptyMutation, EmptySubscription, Schema, SchemaBuilder, Variables};
use finmesh_core::aggregate::Aggregator;

use crate::error::ErrorCodes;
use crate::query::QueryRoot;

/// The executable schema.
pub type FinmeshSchema = Schema<QueryRoot, EmptyMutation, EmptySubscription>;

/// How the schema behaves apart from what the aggregator knows.
#[derive(Debug, Clone)]
pub struct SchemaOptions {
    /// How long a request may take when the caller did not put a
    /// [`CallContext`](finmesh_core::CallContext) into the request data.
    pub request_timeout: Duration,
}

impl Default for SchemaOptions {
    fn default() -> Self {
        SchemaOptions {
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// Nested selections deeper than this are refused. Our own types nest only a few
/// levels; the limit leaves room for GraphiQL's introspection query and stops
/// pathological ones.
const MAX_DEPTH: usize = 24;

/// The schema answering from `aggregator`.
///
/// Per request, put a [`CallContext`](finmesh_core::CallContext) into the
/// request data (`Request::data`) to say who asks and until when.
pub fn build_schema(aggregator: Aggregator, options: SchemaOptions) -> FinmeshSchema {
    builder().data(aggregator).data(options).finish()
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

fn builder() -> SchemaBuilder<QueryRoot, EmptyMutation, EmptySubscription> {
    Schema::build(QueryRoot, EmptyMutation, EmptySubscription)
        .extension(ErrorCodes)
        .limit_depth(MAX_DEPTH)
}

#[cfg(test)]
mod tests;
