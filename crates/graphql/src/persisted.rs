//! Persisted queries, as Apollo clients speak them: a request may name its
//! query by the SHA-256 of its text in `extensions.persistedQuery`
//! (`{"version": 1, "sha256Hash": "<64 hex digits>"}`) instead of sending it.
//!
//! - Automatic (the default): a hash the gateway has not seen answers
//!   `PERSISTED_QUERY_NOT_FOUND` (message `PersistedQueryNotFound`), and the
//!   client sends the hash again with the query, which the gateway checks and
//!   remembers (in memory, bounded by size).
//! - Allow-list: only the operations of a file run, named by hash or sent in
//!   full (the same text, byte for byte); anything else answers
//!   `PERSISTED_QUERY_NOT_ALLOWED`, and nothing is learnt from requests.
//! - Off: a request naming a hash answers `PERSISTED_QUERY_NOT_SUPPORTED`, so
//!   Apollo clients fall back to sending queries.
//!
//! async-graphql's own `ApolloPersistedQueries` extension has no error codes
//! and no allow-list, and caches parsed documents by count rather than size.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest,
};
use async_graphql::{Request, ServerError, ServerResult, Value};
use finmesh_core::Error;
use sha2::{Digest, Sha256};

use crate::error::{server_error, with_code};

/// The hash is not known (automatic mode): send it again with the query.
pub const PERSISTED_QUERY_NOT_FOUND: &str = "PERSISTED_QUERY_NOT_FOUND";
/// The operation is not on the gateway's allow-list.
pub const PERSISTED_QUERY_NOT_ALLOWED: &str = "PERSISTED_QUERY_NOT_ALLOWED";
/// The gateway does not take persisted queries: send the query itself.
pub const PERSISTED_QUERY_NOT_SUPPORTED: &str = "PERSISTED_QUERY_NOT_SUPPORTED";

/// Queries the automatic mode remembers, in bytes of query text.
const AUTOMATIC_CACHE_BYTES: u64 = 16 * 1024 * 1024;

/// How the gateway treats `extensions.persistedQuery`.
#[derive(Clone)]
pub enum PersistedQueries {
    /// Hashes are refused with `PERSISTED_QUERY_NOT_SUPPORTED`; any query runs.
    Off,
    /// Apollo's automatic persisted queries; any query runs.
    Automatic(moka::future::Cache<String, Arc<str>>),
    /// Only the operations on the list run.
    AllowList(Arc<AllowList>),
}

impl PersistedQueries {
    /// Automatic persisted queries with an empty cache.
    pub fn automatic() -> Self {
        PersistedQueries::Automatic(
            moka::future::Cache::builder()
                .weigher(|hash: &String, query: &Arc<str>| {
                    u32::try_from(hash.len() + query.len()).unwrap_or(u32::MAX)
                })
                .max_capacity(AUTOMATIC_CACHE_BYTES)
                .build(),
        )
    }
}

impl Default for PersistedQueries {
    fn default() -> Self {
        PersistedQueries::automatic()
    }
}

impl fmt::Debug for PersistedQueries {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PersistedQueries::Off => f.write_str("Off"),
            PersistedQueries::Automatic(cache) => {
                write!(f, "Automatic({} queries)", cache.entry_count())
            }
            PersistedQueries::AllowList(list) => {
                write!(f, "AllowList({} operations)", list.operations.len())
            }
        }
    }
}

/// The operations a production frontend may run, by the SHA-256 of their
/// text (lowercase hex).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowList {
    operations: HashMap<String, Arc<str>>,
}

impl AllowList {
    /// Reads a JSON object mapping each query's SHA-256 (64 hex digits) to
    /// the query text, as persisted-query tools write it:
    /// `{"5d0c…": "query Loans { loans { totalCount } }"}`. Every hash must
    /// be its query's and every query must parse.
    pub fn from_json(text: &str) -> Result<AllowList, String> {
        let entries: HashMap<String, String> = serde_json::from_str(text).map_err(|error| {
            format!("expected a JSON object of \"<sha256>\": \"<query>\": {error}")
        })?;
        if entries.is_empty() {
            return Err("the allow-list has no operations, so nothing could run".to_string());
        }
        let mut operations = HashMap::with_capacity(entries.len());
        let mut sorted: Vec<_> = entries.into_iter().collect();
        sorted.sort();
        for (hash, query) in sorted {
            let actual = sha256(&query);
            if hash.to_ascii_lowercase() != actual {
                return Err(format!(
                    "`{hash}` is not the SHA-256 of its query (that is `{actual}`)"
                ));
            }
            if let Err(error) = async_graphql::parser::parse_query(&query) {
                return Err(format!("the query of `{hash}` is not GraphQL: {error}"));
            }
            operations.insert(actual, Arc::from(query));
        }
        Ok(AllowList { operations })
    }

    /// How many operations are allowed.
    pub fn len(&self) -> usize {
        self.operations.len()
    }

    /// Never true: an empty list is refused when read.
    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }
}

/// The SHA-256 of `query`, as persisted queries name it.
pub fn sha256(query: &str) -> String {
    format!("{:x}", Sha256::digest(query.as_bytes()))
}

/// Extensions of a request (`extensions` of the HTTP body), numbers exact.
pub fn request_extensions(json: &serde_json::Value) -> async_graphql::Extensions {
    let mut extensions = async_graphql::Extensions::default();
    if let serde_json::Value::Object(fields) = json {
        for (key, value) in fields {
            extensions.insert(key.clone(), crate::json::to_value(value));
        }
    }
    extensions
}

/// The schema extension resolving persisted queries before anything else.
pub(crate) struct Persisted(pub PersistedQueries);

impl ExtensionFactory for Persisted {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Persisted(self.0.clone()))
    }
}

#[async_trait::async_trait]
impl Extension for Persisted {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        mut request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        let named = request
            .extensions
            .remove("persistedQuery")
            .map(|value| requested_hash(&value))
            .transpose()?;
        match (&self.0, named) {
            (PersistedQueries::Off, Some(_)) => {
                return Err(coded(
                    "PersistedQueryNotSupported: send the query itself",
                    PERSISTED_QUERY_NOT_SUPPORTED,
                ));
            }
            (PersistedQueries::Automatic(cache), Some(hash)) => {
                if request.query.is_empty() {
                    match cache.get(&hash).await {
                        Some(query) => request.query = query.to_string(),
                        None => {
                            return Err(coded("PersistedQueryNotFound", PERSISTED_QUERY_NOT_FOUND));
                        }
                    }
                } else {
                    check_hash(&hash, &request.query)?;
                    cache.insert(hash, Arc::from(request.query.as_str())).await;
                }
            }
            (PersistedQueries::AllowList(list), named) => {
                let hash = match named {
                    Some(hash) if request.query.is_empty() => hash,
                    Some(hash) => {
                        check_hash(&hash, &request.query)?;
                        hash
                    }
                    None => sha256(&request.query),
                };
                match list.operations.get(&hash) {
                    Some(query) => request.query = query.to_string(),
                    None => {
                        return Err(coded(
                            &format!(
                                "operation {hash} is not on this gateway's allow-list of persisted queries"
                            ),
                            PERSISTED_QUERY_NOT_ALLOWED,
                        ));
                    }
                }
            }
            (PersistedQueries::Off | PersistedQueries::Automatic(_), None) => {}
        }
        next.run(ctx, request).await
    }
}

fn coded(message: &str, code: &str) -> ServerError {
    with_code(ServerError::new(message, None), code)
}

const FIELD: &str = "extensions.persistedQuery";

/// The hash `extensions.persistedQuery` names, lowercase.
fn requested_hash(value: &Value) -> ServerResult<String> {
    let invalid = |message: &str| server_error(&Error::invalid_input(FIELD, message));
    let Value::Object(fields) = value else {
        return Err(invalid("must be an object {version: 1, sha256Hash}"));
    };
    match fields.get("version") {
        Some(Value::Number(n)) if n.as_u64() == Some(1) => {}
        _ => return Err(invalid("only `version: 1` is supported")),
    }
    match fields.get("sha256Hash") {
        Some(Value::String(hash))
            if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) =>
        {
            Ok(hash.to_ascii_lowercase())
        }
        _ => Err(invalid("`sha256Hash` must be 64 hexadecimal digits")),
    }
}

/// Refuses a query sent with a hash that is not its own.
fn check_hash(hash: &str, query: &str) -> ServerResult<()> {
    if sha256(query) == hash {
        Ok(())
    } else {
        Err(server_error(&Error::invalid_input(
            format!("{FIELD}.sha256Hash"),
            "provided sha does not match query",
        )))
    }
}

#[cfg(test)]
mod tests;
