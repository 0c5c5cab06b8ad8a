//! The records the store reads and writes.

use std::fmt;

use chrono::{DateTime, Utc};
use secrecy::SecretString;

/// Which database a [`Store`](crate::Store) talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a provider connection can be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionStatus {
    Active,
    /// A refresh failed: the user must run the connect flow again.
    ReauthorizationRequired,
}

impl ConnectionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionStatus::Active => "active",
            ConnectionStatus::ReauthorizationRequired => "reauthorization_required",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(ConnectionStatus::Active),
            "reauthorization_required" => Some(ConnectionStatus::ReauthorizationRequired),
            _ => None,
        }
    }
}

impl fmt::Display for ConnectionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A state value issued at the start of an OAuth connect flow.
///
/// Only a SHA-256 hash of `state` is stored.
#[derive(Debug, Clone)]
pub struct NewOAuthState {
    pub state: SecretString,
    pub principal: String,
    pub provider: String,
    /// Where the callback sends the browser afterwards, if the flow asked for it.
    pub redirect_to: Option<String>,
    pub expires_at: DateTime<Utc>,
}

/// A state taken back at the callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthStateRecord {
    pub principal: String,
    pub provider: String,
    pub redirect_to: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Why a state could not be taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StateProblem {
    /// Never issued here (or already purged).
    Unknown,
    /// Issued, but its lifetime is over.
    Expired,
    /// Already taken once: a replay.
    Used,
}

impl fmt::Display for StateProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StateProblem::Unknown => "unknown OAuth state",
            StateProblem::Expired => "expired OAuth state",
            StateProblem::Used => "OAuth state already used",
        })
    }
}

impl std::error::Error for StateProblem {}

/// Tokens from a code exchange, to store for a principal at a provider.
#[derive(Debug, Clone)]
pub struct NewConnection {
    pub principal: String,
    pub provider: String,
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    /// `None`: the token never expires.
    pub expires_at: Option<DateTime<Utc>>,
    pub scopes: Vec<String>,
}

/// A principal's link to a provider, tokens decrypted. `Debug` redacts the tokens.
#[derive(Debug, Clone)]
pub struct Connection {
    pub id: String,
    pub principal: String,
    pub provider: String,
    pub status: ConnectionStatus,
    pub scopes: Vec<String>,
    pub access_token: SecretString,
    pub refresh_token: Option<SecretString>,
    /// `None`: the token never expires.
    pub expires_at: Option<DateTime<Utc>>,
    /// Bumped by every write; pass it to [`Store::replace_tokens`](crate::Store::replace_tokens).
    pub version: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What may be shown about a connection: no secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    pub provider: String,
    pub status: ConnectionStatus,
    pub scopes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One write a principal made. `detail` must not hold secrets; keys that name one
/// (`token`, `secret`, `password`, ...) are redacted anyway.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub principal: String,
    pub action: String,
    pub provider: Option<String>,
    pub target: Option<String>,
    pub detail: serde_json::Value,
}

/// An audit log entry as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    pub id: String,
    pub at: DateTime<Utc>,
    pub principal: String,
    pub action: String,
    pub provider: Option<String>,
    pub target: Option<String>,
    pub detail: serde_json::Value,
}
