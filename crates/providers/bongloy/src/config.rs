//! `[providers.<id>]` with `kind = "bongloy"`: read, checked, and the
//! credentials loaded, with errors that name the key (`providers.<id>.<key>`)
//! and never a secret.
//!
//! ```toml
//! [providers.bongloy]
//! kind = "bongloy"
//! base_url = "https://agent-network.bongloy.com"   # the default (production)
//! page_size = 25
//! default_tenant = "demo"                           # optional
//!
//! [providers.bongloy.credentials.demo]
//! api_token_env = "BONGLOY_API_TOKEN"               # or api_token = "..."
//! private_key_file = "/etc/finmesh/bongloy.pem"     # or private_key_env = "..."
//!
//! [providers.bongloy.principals]
//! "user-42" = "demo"
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use finmesh_core::upstream::{BucketRule, EndpointMatch, ThrottlePolicy};
use finmesh_core::{Error, ProviderId, Result};
use secrecy::SecretString;
use serde::Deserialize;

use crate::signer::RequestSigner;

/// The document's production endpoint.
pub const PRODUCTION_URL: &str = "https://agent-network.bongloy.com";
/// The document's sandbox endpoint.
pub const SANDBOX_URL: &str = "https://agent-network-sandbox.bongloy.com";

/// The default `page[size]`.
pub const DEFAULT_PAGE_SIZE: u32 = 25;
/// The largest `page_size` accepted in configuration.
pub const MAX_PAGE_SIZE: u32 = 500;

/// The throttle used when the configuration sets none.
///
/// The document defines no rate limit, so there is no platform policy to
/// follow; this one is ours, conservative: per credential (tenant), 10
/// requests a second with bursts of 10. `throttle = { rules = [...] }`
/// replaces it.
pub fn default_throttle() -> ThrottlePolicy {
    ThrottlePolicy {
        rules: vec![BucketRule {
            name: "default".to_string(),
            endpoints: EndpointMatch::All,
            capacity: 10,
            refill_per_second: 10.0,
            headroom: 0,
        }],
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// Always `bongloy` here; the registry chose this factory by it.
    #[serde(default, rename = "kind")]
    _kind: Option<String>,
    #[serde(default = "default_base_url")]
    base_url: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default = "default_page_size")]
    page_size: u32,
    #[serde(default = "default_throttle")]
    throttle: ThrottlePolicy,
    /// Tenant name → the partner credential it signs with.
    #[serde(default)]
    credentials: BTreeMap<String, RawCredential>,
    /// Principal id → tenant name.
    #[serde(default)]
    principals: BTreeMap<String, String>,
    #[serde(default)]
    default_tenant: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCredential {
    #[serde(default)]
    api_token: Option<SecretString>,
    #[serde(default)]
    api_token_env: Option<String>,
    #[serde(default)]
    private_key_file: Option<PathBuf>,
    #[serde(default)]
    private_key_env: Option<String>,
    /// The PEM itself, inline (like `api_token`; `private_key_file` is better).
    #[serde(default)]
    private_key: Option<SecretString>,
}

fn default_base_url() -> String {
    PRODUCTION_URL.to_string()
}

fn default_page_size() -> u32 {
    DEFAULT_PAGE_SIZE
}

/// A checked configuration, credentials loaded.
pub(crate) struct Settings {
    pub base_url: url::Url,
    pub name: String,
    pub page_size: u32,
    pub throttle: ThrottlePolicy,
    pub tenants: BTreeMap<String, Arc<RequestSigner>>,
    pub principals: HashMap<String, String>,
    pub default_tenant: Option<String>,
}

/// Where the process reads environment variables: the real environment, or
/// a map in tests (edition 2024 makes `set_var` unsafe, and it races).
pub(crate) type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

pub(crate) fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

impl Settings {
    pub(crate) fn read(id: &ProviderId, table: &serde_json::Value, env: Env<'_>) -> Result<Self> {
        let key = |k: &str| format!("providers.{id}.{k}");
        let raw: RawConfig = serde_path_to_error::deserialize(table).map_err(|e| {
            let path = e.path().to_string();
            let field = if path == "." || path.is_empty() {
                format!("providers.{id}")
            } else {
                key(&path)
            };
            let message = redact(&e.inner().to_string());
            Error::invalid_input(field.clone(), format!("{field}: {message}"))
        })?;

        let base_url = url::Url::parse(&raw.base_url).map_err(|e| {
            Error::invalid_input(key("base_url"), format!("{}: {e}", key("base_url")))
        })?;
        if !matches!(base_url.scheme(), "http" | "https") {
            return Err(Error::invalid_input(
                key("base_url"),
                format!("{}: must be an http or https URL", key("base_url")),
            ));
        }
        if raw.page_size == 0 || raw.page_size > MAX_PAGE_SIZE {
            return Err(Error::invalid_input(
                key("page_size"),
                format!("{} must be between 1 and {MAX_PAGE_SIZE}", key("page_size")),
            ));
        }
        if let Err(e) = raw.throttle.validate() {
            let field = e.field.clone().unwrap_or_else(|| "throttle".to_string());
            return Err(Error::invalid_input(
                key(&field),
                format!("{}: {}", key(&field), e.message),
            ));
        }

        if raw.credentials.is_empty() {
            return Err(Error::invalid_input(
                key("credentials"),
                format!(
                    "{}: at least one tenant is needed, e.g. [providers.{id}.credentials.main] with api_token_env and private_key_file",
                    key("credentials")
                ),
            ));
        }
        let mut tenants = BTreeMap::new();
        for (tenant, credential) in raw.credentials {
            let at = key(&format!("credentials.{tenant}"));
            if tenant.trim().is_empty() || tenant.len() > 64 || tenant.chars().any(char::is_control)
            {
                return Err(Error::invalid_input(
                    at.clone(),
                    format!("{at}: tenant names are 1-64 printable characters"),
                ));
            }
            let signer = load_credential(&at, credential, env)?;
            tenants.insert(tenant, Arc::new(signer));
        }

        let mut principals = HashMap::new();
        for (principal, tenant) in raw.principals {
            let at = key(&format!("principals.{principal}"));
            if !tenants.contains_key(&tenant) {
                return Err(unknown_tenant(&at, &tenant, &tenants));
            }
            principals.insert(principal, tenant);
        }
        if let Some(tenant) = &raw.default_tenant
            && !tenants.contains_key(tenant)
        {
            return Err(unknown_tenant(&key("default_tenant"), tenant, &tenants));
        }

        Ok(Settings {
            base_url,
            name: raw.name.unwrap_or_else(|| "Bongloy".to_string()),
            page_size: raw.page_size,
            throttle: raw.throttle,
            tenants,
            principals,
            default_tenant: raw.default_tenant,
        })
    }
}

fn unknown_tenant(at: &str, tenant: &str, tenants: &BTreeMap<String, Arc<RequestSigner>>) -> Error {
    let known: Vec<&str> = tenants.keys().map(String::as_str).collect();
    Error::invalid_input(
        at.to_string(),
        format!("{at}: no tenant {tenant:?} under credentials; configured: {known:?}"),
    )
}

/// Reads one `credentials.<tenant>` table: exactly one source of the API
/// token and exactly one of the private key.
fn load_credential(at: &str, raw: RawCredential, env: Env<'_>) -> Result<RequestSigner> {
    let from_env = |field: &str, name: &str| -> Result<SecretString> {
        match env(name) {
            Some(value) if !value.trim().is_empty() => Ok(SecretString::from(value)),
            Some(_) => Err(Error::invalid_input(
                format!("{at}.{field}"),
                format!("{at}.{field}: the environment variable {name} is empty"),
            )),
            None => Err(Error::invalid_input(
                format!("{at}.{field}"),
                format!("{at}.{field}: the environment variable {name} is not set"),
            )),
        }
    };
    let api_token = match (raw.api_token, raw.api_token_env) {
        (Some(token), None) => token,
        (None, Some(name)) => from_env("api_token_env", &name)?,
        (None, None) => {
            return Err(Error::invalid_input(
                format!("{at}.api_token"),
                format!("{at}: set api_token or api_token_env"),
            ));
        }
        (Some(_), Some(_)) => {
            return Err(Error::invalid_input(
                format!("{at}.api_token_env"),
                format!("{at}: set api_token or api_token_env, not both"),
            ));
        }
    };
    let (field, pem) = match (raw.private_key_file, raw.private_key_env, raw.private_key) {
        (Some(path), None, None) => {
            let pem = std::fs::read_to_string(&path).map_err(|e| {
                Error::invalid_input(
                    format!("{at}.private_key_file"),
                    format!("{at}.private_key_file: cannot read {}: {e}", path.display()),
                )
            })?;
            ("private_key_file", SecretString::from(pem))
        }
        (None, Some(name), None) => ("private_key_env", from_env("private_key_env", &name)?),
        (None, None, Some(pem)) => ("private_key", pem),
        (None, None, None) => {
            return Err(Error::invalid_input(
                format!("{at}.private_key_file"),
                format!(
                    "{at}: set private_key_file or private_key_env (the partner's RSA private key in PEM)"
                ),
            ));
        }
        _ => {
            return Err(Error::invalid_input(
                format!("{at}.private_key_file"),
                format!("{at}: set only one of private_key_file, private_key_env, private_key"),
            ));
        }
    };
    RequestSigner::new(api_token, &pem).map_err(|e| {
        // Which of the two is wrong: an empty token is said so, anything else is the key.
        let field = if e.to_string().contains("api token") {
            "api_token"
        } else {
            field
        };
        Error::invalid_input(format!("{at}.{field}"), format!("{at}.{field}: {e}"))
    })
}

/// Blanks out values serde quotes from the input (`invalid type: string
/// "…"`), which could be a misplaced secret; field names stay.
fn redact(message: &str) -> String {
    if !(message.starts_with("invalid type") || message.starts_with("invalid value")) {
        return message.to_string();
    }
    let mut out = String::with_capacity(message.len());
    let mut inside: Option<char> = None;
    for c in message.chars() {
        match inside {
            Some(close) if c == close => {
                out.push('…');
                out.push(c);
                inside = None;
            }
            Some(_) => {}
            None => {
                out.push(c);
                if c == '"' || c == '`' {
                    inside = Some(c);
                }
            }
        }
    }
    out
}
