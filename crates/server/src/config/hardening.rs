//! What protects the gateway from hostile or careless clients: `[graphql]`
//! (limits per request, persisted queries, introspection) and the HTTP side
//! of `[server]` (body size, timeouts, `[server.cors]`).

use std::time::Duration;

use finmesh_graphql::{AllowList, PersistedQueries, QueryLimits};
use url::Url;

use super::{Reader, in_range};

pub(super) const GRAPHQL_KEYS: &[&str] = &[
    "max_depth",
    "max_complexity",
    "max_aliases",
    "max_root_fields",
    "max_batch_size",
    "introspection",
    "persisted_queries",
    "allowlist_file",
];
pub(super) const CORS_KEYS: &[&str] = &["allowed_origins", "allow_credentials"];

/// `[graphql]`.
#[derive(Debug, Clone)]
pub struct GraphqlConfig {
    pub limits: QueryLimits,
    /// The most requests in one batch (a JSON array body).
    pub max_batch_size: usize,
    pub persisted: PersistedQueries,
}

/// The HTTP protections of `[server]`.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpConfig {
    /// Larger request bodies are refused with 413.
    pub max_body_bytes: usize,
    /// The longest an HTTP request may take, from its headers read to its
    /// answer (a slow body included); then 408.
    pub http_timeout: Duration,
    /// How long a client may take to send its request headers.
    pub header_read_timeout: Duration,
    pub cors: CorsConfig,
}

/// `[server.cors]`: which browser origins may call the gateway.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorsConfig {
    /// Exact origins (`https://app.example.com`), or `["*"]` for any; empty:
    /// no cross-origin access.
    pub allowed_origins: Vec<String>,
    /// Whether browsers may send cookies and `Authorization` cross-origin.
    pub allow_credentials: bool,
}

mod defaults {
    pub const MAX_BATCH_SIZE: usize = 10;
    pub const PERSISTED_QUERIES: bool = true;
    pub const MAX_BODY_BYTES: usize = 1024 * 1024;
    /// Beyond `server.request_timeout_ms`, so the GraphQL deadline answers first.
    pub const HTTP_TIMEOUT_EXTRA_MS: u64 = 5_000;
    pub const HEADER_READ_TIMEOUT_MS: u64 = 10_000;
}

impl Reader<'_> {
    pub(super) fn graphql(&mut self) -> GraphqlConfig {
        let default = QueryLimits::default();
        let limits = QueryLimits {
            max_depth: self.count("graphql.max_depth", default.max_depth, 256),
            max_complexity: self.count(
                "graphql.max_complexity",
                default.max_complexity,
                10_000_000,
            ),
            max_aliases: self.count("graphql.max_aliases", default.max_aliases, 10_000),
            max_root_fields: self.count("graphql.max_root_fields", default.max_root_fields, 1_000),
            introspection: self.read("graphql.introspection", default.introspection),
        };
        let max_batch_size = self.count("graphql.max_batch_size", defaults::MAX_BATCH_SIZE, 1_000);
        let automatic = self.read("graphql.persisted_queries", defaults::PERSISTED_QUERIES);
        let allowlist: Option<std::path::PathBuf> = self.read("graphql.allowlist_file", None);
        let persisted = match allowlist {
            Some(path) => match std::fs::read_to_string(&path)
                .map_err(|error| format!("cannot read {}: {error}", path.display()))
                .and_then(|text| AllowList::from_json(&text))
            {
                Ok(list) => PersistedQueries::AllowList(list.into()),
                Err(message) => {
                    self.problem("graphql.allowlist_file", message);
                    PersistedQueries::Off
                }
            },
            None if automatic => PersistedQueries::automatic(),
            None => PersistedQueries::Off,
        };
        GraphqlConfig {
            limits,
            max_batch_size,
            persisted,
        }
    }

    /// A count from 1 to `max`.
    fn count(&mut self, key: &str, default: usize, max: usize) -> usize {
        self.read_checked(key, default, |n| in_range(*n, (1, max)))
    }

    /// `request_timeout` is `server.request_timeout_ms`, read before.
    pub(super) fn http(&mut self, request_timeout: Duration) -> HttpConfig {
        let max_body_bytes =
            self.read_checked("server.max_body_bytes", defaults::MAX_BODY_BYTES, |n| {
                in_range(*n, (1_024, 64 * 1024 * 1024))
            });
        let request_ms = u64::try_from(request_timeout.as_millis()).unwrap_or(u64::MAX);
        let shortest = request_ms.saturating_add(1_000);
        let http_timeout = self.millis(
            "server.http_timeout_ms",
            request_ms.saturating_add(defaults::HTTP_TIMEOUT_EXTRA_MS),
            (shortest, 900_000),
        );
        let header_read_timeout = self.millis(
            "server.header_read_timeout_ms",
            defaults::HEADER_READ_TIMEOUT_MS,
            (100, 300_000),
        );
        HttpConfig {
            max_body_bytes,
            http_timeout,
            header_read_timeout,
            cors: self.cors(),
        }
    }

    fn cors(&mut self) -> CorsConfig {
        let allowed_origins: Vec<String> = self.read("server.cors.allowed_origins", Vec::new());
        let allow_credentials = self.read("server.cors.allow_credentials", false);
        let mut valid = Vec::with_capacity(allowed_origins.len());
        for (index, origin) in allowed_origins.iter().enumerate() {
            let key = format!("server.cors.allowed_origins[{index}]");
            if origin == "*" {
                if allow_credentials {
                    // Browsers refuse `*` with credentials, and any origin
                    // with credentials would hand every site the user's session.
                    self.problem(
                        key,
                        "`*` cannot be combined with allow_credentials = true; list the origins",
                    );
                } else if allowed_origins.len() > 1 {
                    self.problem(key, "`*` allows every origin: list nothing else beside it");
                }
            } else if let Err(message) = check_origin(origin) {
                self.problem(key, message);
            }
            valid.push(origin.clone());
        }
        CorsConfig {
            allowed_origins: valid,
            allow_credentials,
        }
    }
}

/// An origin is `scheme://host[:port]`, nothing more, as browsers send it.
fn check_origin(origin: &str) -> Result<(), String> {
    let url = Url::parse(origin).map_err(|error| format!("`{origin}`: {error}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("`{origin}` must be an http or https origin"));
    }
    if url.origin().ascii_serialization() != origin {
        return Err(format!(
            "`{origin}` is not an origin; expected `{}` (no path, no trailing slash)",
            url.origin().ascii_serialization()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
