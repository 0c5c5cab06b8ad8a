//! Configuration: one TOML file plus `FINMESH_` environment overrides
//! (`FINMESH_SERVER__LISTEN=0.0.0.0:8080`: `__` separates the levels), checked
//! at start. Every problem is reported, each with the key it concerns.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use figment::value::Value;
use finmesh_core::ProviderId;
use finmesh_core::cache::CacheSettings;
use finmesh_core::changes::Changes;
use finmesh_core::registry::{FactoryContext, ProviderFactory, Registry};
use finmesh_core::resilience::Resilience;
use finmesh_core::upstream::Throttle;
use finmesh_store::SecretCipher;
use secrecy::{ExposeSecret, SecretString};

use crate::auth::{AuthConfig, FrontendAuth};
use crate::tokens::DeferredTokens;
pub use hardening::{CorsConfig, GraphqlConfig, HttpConfig};
pub use resilience::RateLimit;
use serde::de::DeserializeOwned;
pub use telemetry::{LogConfig, LogFormat, OtlpConfig};
use url::Url;

/// `[server]`: the HTTP side.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Serve the GraphiQL IDE at `/`.
    pub graphiql: bool,
    /// How long one GraphQL request may take, upstream calls included.
    pub request_timeout: Duration,
    /// How long requests in flight may take to finish after a shutdown signal.
    pub shutdown_grace: Duration,
    /// After a shutdown signal, how long to keep serving with `/readyz`
    /// answering 503, so load balancers stop routing here before we close.
    pub shutdown_delay: Duration,
    /// Requests a second each caller may send to `/graphql`; `None`: no limit.
    pub rate_limit: Option<RateLimit>,
}

/// `[gateway]`: paging limits and how the gateway calls the platforms.
#[derive(Debug, Clone, PartialEq)]
pub struct GatewayConfig {
    pub default_page_size: u32,
    pub max_page_size: u32,
    pub max_local_sort: u64,
    /// Sent upstream in `User-Agent: finmesh/<version> (<project_url>)`.
    pub project_url: String,
    pub connect_timeout: Duration,
    /// The timeout of one upstream HTTP request.
    pub upstream_timeout: Duration,
}

/// `[store]` and `[secrets]`: where principals, connections and idempotency
/// records live, and the keys that encrypt tokens at rest.
#[derive(Clone)]
pub struct StoreConfig {
    /// `sqlite://path/to/finmesh.db` or `postgres://…`.
    pub url: String,
    pub cipher: SecretCipher,
}

/// A checked configuration, with the providers built from their tables.
#[derive(Clone)]
pub struct Config {
    pub server: ServerConfig,
    pub gateway: GatewayConfig,
    pub providers: Registry,
    /// `None`: no store, so no user connections, private data or transfers.
    pub store: Option<StoreConfig>,
    /// Verifies the frontend's `Authorization: Bearer` tokens.
    pub auth: Arc<FrontendAuth>,
    /// Frontend URLs the connect flow may send browsers back to (prefixes).
    pub allowed_redirects: Vec<String>,
    /// Where adapters get users' tokens; backed by the store once it is open.
    pub tokens: Arc<DeferredTokens>,
    /// The throttle every provider spends from (for `/status` and `/metrics`).
    pub throttle: Arc<dyn Throttle>,
    /// `[resilience]`: retries and the providers' circuit breakers (health shows them).
    pub resilience: Resilience,
    /// `[log]`: log format and level.
    pub log: LogConfig,
    /// `[otlp]`: OpenTelemetry trace export.
    pub otlp: OtlpConfig,
    /// `[graphql]`: limits per request, persisted queries, introspection.
    pub graphql: GraphqlConfig,
    /// Body size, timeouts and CORS of `[server]`.
    pub http: HttpConfig,
    /// `[cache]` and `[providers.<id>.cache]`: the response cache.
    pub cache: CacheSettings,
    /// Where processed webhook events announce what changed upstream. Not
    /// read from the file: the response cache listens here, and embedders
    /// (tests) may subscribe before the gateway starts.
    pub changes: Changes,
}

/// The defaults, as documented in `finmesh.example.toml` and the README.
mod defaults {
    use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

    pub const LISTEN: SocketAddr = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080));
    /// On in `demo` only: `serve` shows no IDE unless asked.
    pub const GRAPHIQL: bool = false;
    pub const REQUEST_TIMEOUT_MS: u64 = 10_000;
    pub const SHUTDOWN_GRACE_MS: u64 = 10_000;
    pub const SHUTDOWN_DELAY_MS: u64 = 0;
    pub const DEFAULT_PAGE_SIZE: u32 = 20;
    pub const MAX_PAGE_SIZE: u32 = 100;
    pub const MAX_LOCAL_SORT: u64 = 50_000;
    pub const PROJECT_URL: &str = "https://github.com/finmesh/finmesh";
    pub const CONNECT_TIMEOUT_MS: u64 = 5_000;
    pub const UPSTREAM_TIMEOUT_MS: u64 = 8_000;
}

const SERVER_KEYS: &[&str] = &[
    "max_body_bytes",
    "http_timeout_ms",
    "header_read_timeout_ms",
    "cors",
    "listen",
    "graphiql",
    "request_timeout_ms",
    "shutdown_grace_ms",
    "shutdown_delay_ms",
    "rate_limit_per_second",
    "rate_limit_burst",
];
const GATEWAY_KEYS: &[&str] = &[
    "default_page_size",
    "max_page_size",
    "max_local_sort",
    "project_url",
    "connect_timeout_ms",
    "upstream_timeout_ms",
];
const SECTIONS: &[&str] = &[
    "graphql",
    "server",
    "gateway",
    "providers",
    "store",
    "secrets",
    "auth",
    "connect",
    "log",
    "otlp",
    "cache",
    "throttle",
    "resilience",
];
const STORE_KEYS: &[&str] = &["url"];
const SECRETS_KEYS: &[&str] = &["keys", "active_key"];
const CONNECT_KEYS: &[&str] = &["allowed_redirects"];

/// The configuration's problems, each naming its key.
#[derive(Debug)]
pub struct ConfigError {
    pub problems: Vec<Problem>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// The dotted key, e.g. `providers.zonky.base_url`.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid configuration:")?;
        for problem in &self.problems {
            write!(f, "\n  {}: {}", problem.key, problem.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// The file at `path` (which must exist), overridden by `FINMESH_` variables.
pub fn figment(path: &Path) -> Result<Figment, ConfigError> {
    if !path.is_file() {
        return Err(ConfigError {
            problems: vec![Problem {
                key: path.display().to_string(),
                message: "no such configuration file".into(),
            }],
        });
    }
    Ok(Figment::from(Toml::file_exact(path)).merge(environment()))
}

/// `FINMESH_A__B=v` sets `a.b`. Variables without `__` are not configuration
/// (e.g. `FINMESH_TEST_POSTGRES_URL` for the test suite), so they are left out.
pub fn environment() -> Env {
    Env::prefixed("FINMESH_")
        .filter(|key| key.as_str().contains("__"))
        .split("__")
}

impl Config {
    /// Reads and checks everything, building each provider with the factory
    /// of its `kind`.
    pub fn from_figment(
        figment: &Figment,
        factories: &[Arc<dyn ProviderFactory>],
    ) -> Result<Config, ConfigError> {
        let mut reader = Reader {
            figment,
            problems: Vec::new(),
        };
        if let Err(error) = figment.extract::<figment::value::Dict>() {
            // The sources themselves are unreadable (e.g. TOML syntax).
            reader.problem("configuration", error.to_string());
            return Err(reader.into_error());
        }
        reader.unknown_keys("", SECTIONS);
        reader.unknown_keys("server", SERVER_KEYS);
        reader.unknown_keys("gateway", GATEWAY_KEYS);
        reader.unknown_keys("store", STORE_KEYS);
        reader.unknown_keys("secrets", SECRETS_KEYS);
        reader.unknown_keys("connect", CONNECT_KEYS);
        reader.unknown_keys("log", telemetry::LOG_KEYS);
        reader.unknown_keys("otlp", telemetry::OTLP_KEYS);
        reader.unknown_keys("cache", cache::CACHE_KEYS);
        reader.unknown_keys("graphql", hardening::GRAPHQL_KEYS);
        reader.unknown_keys("server.cors", hardening::CORS_KEYS);
        reader.unknown_keys("throttle", resilience::THROTTLE_KEYS);
        reader.unknown_keys("resilience", resilience::RESILIENCE_KEYS);
        let server = reader.server();
        let gateway = reader.gateway();
        let tokens = Arc::new(DeferredTokens::default());
        // One throttle for all: budgets are kept per provider and credential inside it.
        let throttle = reader.throttle(server.request_timeout);
        let resilience = reader.resilience();
        let providers = reader.providers(
            &gateway,
            factories,
            tokens.clone(),
            throttle.clone(),
            resilience.clone(),
        );
        let cache = reader.cache(&providers);
        let store = reader.store();
        let auth = reader.auth();
        let allowed_redirects = reader.read("connect.allowed_redirects", Vec::new());
        let log = reader.log();
        let otlp = reader.otlp();
        let graphql = reader.graphql();
        let http = reader.http(server.request_timeout);
        match (reader.problems.is_empty(), auth) {
            (true, Some(auth)) => Ok(Config {
                server,
                gateway,
                providers,
                store,
                auth: Arc::new(auth),
                allowed_redirects,
                tokens,
                throttle,
                resilience,
                log,
                otlp,
                graphql,
                http,
                cache,
                changes: Changes::default(),
            }),
            _ => Err(reader.into_error()),
        }
    }
}

impl Reader<'_> {
    /// `[store]` with the keyring of `[secrets]` (or `FINMESH_SECRET_KEY`).
    fn store(&mut self) -> Option<StoreConfig> {
        let url: Option<String> = self.read("store.url", None);
        let cipher = self.secrets();
        let url = url?;
        if !(url.starts_with("sqlite:")
            || url.starts_with("postgres://")
            || url.starts_with("postgresql://"))
        {
            self.problem(
                "store.url",
                "expected sqlite://<path> or postgres://<host>/<db>",
            );
            return None;
        }
        match cipher {
            Some(cipher) => Some(StoreConfig { url, cipher }),
            None => {
                self.problem(
                    "secrets.keys",
                    "the store keeps tokens encrypted and needs a key: set FINMESH_SECRET_KEY or [secrets.keys] (32 random bytes, base64)",
                );
                None
            }
        }
    }

    fn secrets(&mut self) -> Option<SecretCipher> {
        let mut keys: BTreeMap<String, SecretString> = self.read("secrets.keys", BTreeMap::new());
        let mut active: Option<String> = self.read("secrets.active_key", None);
        // The one variable without `__`: a single key, as container platforms hand secrets.
        if let Ok(key) = std::env::var("FINMESH_SECRET_KEY") {
            keys.insert("env".to_string(), SecretString::from(key));
            active.get_or_insert_with(|| "env".to_string());
        }
        if keys.is_empty() {
            return None;
        }
        let active = match active {
            Some(active) => active,
            None if keys.len() == 1 => keys.keys().next().cloned().unwrap_or_default(),
            None => {
                self.problem(
                    "secrets.active_key",
                    "several keys are configured: name the active one",
                );
                return None;
            }
        };
        let pairs: Vec<(String, String)> = keys
            .iter()
            .map(|(id, key)| (id.clone(), key.expose_secret().to_string()))
            .collect();
        match SecretCipher::from_config(&pairs, &active) {
            Ok(cipher) => Some(cipher),
            Err(error) => {
                let key = match error.field.as_deref() {
                    Some(field) if field.starts_with("secret_keys.") => {
                        format!("secrets.keys.{}", &field["secret_keys.".len()..])
                    }
                    _ => "secrets".to_string(),
                };
                self.problem(key, error.message);
                None
            }
        }
    }

    /// `[auth]`: the frontend token verifier.
    fn auth(&mut self) -> Option<FrontendAuth> {
        let config: AuthConfig = self.read("auth", AuthConfig::default());
        match FrontendAuth::from_config(&config) {
            Ok(auth) => Some(auth),
            Err(problems) => {
                for (key, message) in problems {
                    self.problem(key, message);
                }
                None
            }
        }
    }
}

/// Reads keys one by one, noting each problem and going on with the default,
/// so that one run reports them all.
struct Reader<'a> {
    figment: &'a Figment,
    problems: Vec<Problem>,
}

impl Reader<'_> {
    fn problem(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            key: key.into(),
            message: message.into(),
        });
    }

    fn into_error(self) -> ConfigError {
        ConfigError {
            problems: self.problems,
        }
    }

    /// The value at `key`, or `default` when it is absent or wrong.
    fn read<T: DeserializeOwned>(&mut self, key: &str, default: T) -> T {
        match self.figment.extract_inner::<T>(key) {
            Ok(value) => value,
            Err(error) if error.missing() && error.path.is_empty() => default,
            Err(error) => {
                let source = self
                    .figment
                    .find_metadata(key)
                    .map(|metadata| match &metadata.source {
                        Some(source) => format!(" (from {} {source})", metadata.name),
                        None => format!(" (from {})", metadata.name),
                    })
                    .unwrap_or_default();
                self.problem(key, format!("{}{source}", error.kind));
                default
            }
        }
    }

    /// Like [`Reader::read`], then checks the value with `valid`.
    fn read_checked<T: DeserializeOwned + Clone>(
        &mut self,
        key: &str,
        default: T,
        valid: impl Fn(&T) -> Result<(), String>,
    ) -> T {
        let value = self.read(key, default.clone());
        match valid(&value) {
            Ok(()) => value,
            Err(message) => {
                self.problem(key, message);
                default
            }
        }
    }

    fn millis(&mut self, key: &str, default: u64, range: (u64, u64)) -> Duration {
        Duration::from_millis(self.read_checked(key, default, |ms| in_range(*ms, range)))
    }

    fn unknown_keys(&mut self, section: &str, known: &[&str]) {
        let table = if section.is_empty() {
            self.figment.extract::<figment::value::Dict>().ok()
        } else {
            match self.figment.find_value(section) {
                Ok(Value::Dict(_, table)) => Some(table),
                Ok(_) => {
                    self.problem(section, "must be a table");
                    None
                }
                Err(_) => None,
            }
        };
        for key in table.into_iter().flat_map(|t| t.into_keys()) {
            if !known.contains(&key.as_str()) {
                let path = if section.is_empty() {
                    key
                } else {
                    format!("{section}.{key}")
                };
                self.problem(path, format!("unknown key; expected one of {known:?}"));
            }
        }
    }

    fn server(&mut self) -> ServerConfig {
        ServerConfig {
            listen: self.read("server.listen", defaults::LISTEN),
            graphiql: self.read("server.graphiql", defaults::GRAPHIQL),
            request_timeout: self.millis(
                "server.request_timeout_ms",
                defaults::REQUEST_TIMEOUT_MS,
                (1, 300_000),
            ),
            shutdown_grace: self.millis(
                "server.shutdown_grace_ms",
                defaults::SHUTDOWN_GRACE_MS,
                (0, 600_000),
            ),
            shutdown_delay: self.millis(
                "server.shutdown_delay_ms",
                defaults::SHUTDOWN_DELAY_MS,
                (0, 600_000),
            ),
            rate_limit: self.rate_limit(),
        }
    }

    fn gateway(&mut self) -> GatewayConfig {
        let max_page_size =
            self.read_checked("gateway.max_page_size", defaults::MAX_PAGE_SIZE, |n| {
                in_range(*n, (1, 10_000))
            });
        let default_page_size = self.read_checked(
            "gateway.default_page_size",
            defaults::DEFAULT_PAGE_SIZE.min(max_page_size),
            |n| in_range(*n, (1, max_page_size)),
        );
        let project_url = self.read_checked(
            "gateway.project_url",
            defaults::PROJECT_URL.to_string(),
            |s| match Url::parse(s) {
                Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(()),
                Ok(_) => Err("must be an http or https URL".into()),
                Err(error) => Err(error.to_string()),
            },
        );
        GatewayConfig {
            default_page_size,
            max_page_size,
            max_local_sort: self.read_checked(
                "gateway.max_local_sort",
                defaults::MAX_LOCAL_SORT,
                |n| in_range(*n, (1, 10_000_000)),
            ),
            project_url,
            connect_timeout: self.millis(
                "gateway.connect_timeout_ms",
                defaults::CONNECT_TIMEOUT_MS,
                (1, 300_000),
            ),
            upstream_timeout: self.millis(
                "gateway.upstream_timeout_ms",
                defaults::UPSTREAM_TIMEOUT_MS,
                (1, 300_000),
            ),
        }
    }

    /// Builds every `[providers.<id>]` table with the factory of its `kind`.
    /// The factory gets the table without `kind`.
    fn providers(
        &mut self,
        gateway: &GatewayConfig,
        factories: &[Arc<dyn ProviderFactory>],
        tokens: Arc<DeferredTokens>,
        throttle: Arc<dyn Throttle>,
        resilience: Resilience,
    ) -> Registry {
        let tables: BTreeMap<String, serde_json::Value> = self.read("providers", BTreeMap::new());
        let context = FactoryContext {
            user_agent: user_agent(&gateway.project_url),
            connect_timeout: gateway.connect_timeout,
            request_timeout: gateway.upstream_timeout,
            throttle,
            resilience,
            tokens,
        };
        let mut providers = Vec::new();
        for (id, table) in tables {
            let key = format!("providers.{id}");
            let Ok(provider_id) = ProviderId::new(&id) else {
                self.problem(
                    key,
                    "provider ids use 1-64 lowercase letters, digits, `-` or `_`",
                );
                continue;
            };
            let serde_json::Value::Object(mut table) = table else {
                self.problem(key, "must be a table");
                continue;
            };
            let kind = match table.remove("kind") {
                Some(serde_json::Value::String(kind)) => kind,
                Some(_) => {
                    self.problem(format!("{key}.kind"), "must be a string");
                    continue;
                }
                None => {
                    let kinds: Vec<_> = factories.iter().map(|f| f.kind()).collect();
                    self.problem(
                        format!("{key}.kind"),
                        format!("missing; known kinds: {kinds:?}"),
                    );
                    continue;
                }
            };
            // The gateway's own setting for this provider, not the adapter's.
            table.remove("cache");
            let entry = (provider_id, kind, serde_json::Value::Object(table));
            // Built one by one so that every provider's problem is reported.
            match Registry::build(factories, std::slice::from_ref(&entry), &context) {
                Ok(registry) => providers.extend(registry.all().iter().cloned()),
                Err(error) => {
                    let field = match error.field.as_deref() {
                        Some(field) if field.starts_with("providers.") => field.to_string(),
                        Some(field) => format!("{key}.{field}"),
                        None => key,
                    };
                    // Adapters' messages may repeat the key they are listed under.
                    let message = error
                        .message
                        .strip_prefix(field.as_str())
                        .map(|rest| rest.trim_start_matches([':', ' ']))
                        .unwrap_or(&error.message)
                        .to_string();
                    self.problem(field, message);
                }
            }
        }
        // Ids are the table keys, so they cannot repeat.
        Registry::new(providers).unwrap_or_default()
    }
}

/// `finmesh/<version> (<project url>)`, as platforms such as Zonky ask.
pub fn user_agent(project_url: &str) -> String {
    format!("finmesh/{} ({project_url})", env!("CARGO_PKG_VERSION"))
}

fn in_range<T: PartialOrd + fmt::Display>(value: T, (min, max): (T, T)) -> Result<(), String> {
    if value < min || value > max {
        Err(format!("{value} is out of range; expected {min} to {max}"))
    } else {
        Ok(())
    }
}

mod cache;
mod hardening;
mod resilience;
mod telemetry;
#[cfg(test)]
mod tests;
