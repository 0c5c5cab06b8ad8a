//! finmesh core: the provider-neutral domain model, the [`Provider`] trait every
//! adapter implements, the error taxonomy, unified queries, the aggregator that
//! fans out and merges, and the upstream HTTP client with its throttle.

pub mod aggregate;
pub mod auth;
pub mod cache;
pub mod changes;
pub mod error;
pub mod id;
pub mod model;
pub mod money;
pub mod oauth;
pub mod paging;
pub mod provider;
pub mod query;
pub mod redact;
pub mod registry;
pub mod resilience;
pub mod telemetry;
pub mod time;
pub mod upstream;
pub mod webhook;

pub use auth::{AccessToken, Principal, TokenSource};
pub use error::{Error, ErrorKind, Result};
pub use id::{EntityKind, GlobalId, ProviderId};
pub use money::{Currency, Money};
pub use provider::{CallContext, Capabilities, ListCapabilities, ListRequest, Provider, Slice};
