//! Linking a principal's platform account through OAuth: the authorize URL
//! with a single-use state bound to the principal, the callback that checks
//! the state and exchanges the code, and unlinking.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use finmesh_core::registry::Registry;
use finmesh_core::{Error, ErrorKind, Principal, ProviderId, Result};
use finmesh_store::{
    AuditEntry, ConnectionInfo, NewConnection, NewOAuthState, StateProblem, Store,
};
use secrecy::ExposeSecret;
use tokio::time::Instant;
use url::Url;

/// How long a user has to approve access at the platform.
const STATE_LIFETIME: Duration = Duration::from_secs(600);
/// How long the code exchange may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(15);

/// The connect flow over the store and the providers' OAuth clients.
#[derive(Clone)]
pub struct Connections {
    store: Store,
    registry: Arc<Registry>,
    /// Frontend URLs the flow may send the browser back to (prefix match).
    allowed_redirects: Vec<String>,
}

/// A finished connect flow.
#[derive(Debug, Clone)]
pub struct Connected {
    pub principal: String,
    pub provider: ProviderId,
    /// Where the browser goes next, if the flow asked for it.
    pub redirect_to: Option<String>,
}

impl Connections {
    pub fn new(store: Store, registry: Arc<Registry>, allowed_redirects: Vec<String>) -> Self {
        Connections {
            store,
            registry,
            allowed_redirects,
        }
    }

    /// Starts linking `provider` for `principal`: returns the platform's
    /// authorize URL, carrying a fresh single-use state bound to the principal.
    pub async fn start(
        &self,
        principal: &Principal,
        provider: &str,
        redirect_to: Option<&str>,
    ) -> Result<Url> {
        let provider = self.connectable(provider)?;
        if let Some(target) = redirect_to
            && !self.redirect_allowed(target)
        {
            return Err(Error::invalid_input(
                "redirectTo",
                "this address is not among the gateway's allowed frontend URLs",
            ));
        }
        let oauth = provider
            .oauth()
            .ok_or_else(|| not_connectable(provider.id()))?;
        self.store.ensure_principal(principal.id()).await?;
        let state = NewOAuthState::generate_state();
        self.store
            .create_oauth_state(&NewOAuthState {
                state: state.clone(),
                principal: principal.id().to_string(),
                provider: provider.id().to_string(),
                redirect_to: redirect_to.map(str::to_string),
                expires_at: Utc::now()
                    + chrono::Duration::from_std(STATE_LIFETIME).unwrap_or_default(),
            })
            .await?;
        Ok(oauth.authorize_url(state.expose_secret()))
    }

    /// The platform sent the browser back: checks the state, exchanges the
    /// code and stores the tokens. Nothing is stored unless all of it succeeds.
    pub async fn complete(&self, provider: &str, code: &str, state: &str) -> Result<Connected> {
        let provider = self.connectable(provider)?;
        let taken = self.store.take_oauth_state(state, Utc::now()).await?;
        let record = taken.map_err(|problem| {
            let why = match problem {
                StateProblem::Unknown => "was not issued by this gateway",
                StateProblem::Expired => "has expired; start the connection again",
                StateProblem::Used => "was already used",
            };
            Error::invalid_input("state", format!("the state {why}"))
        })?;
        if record.provider != provider.id().as_str() {
            return Err(Error::invalid_input(
                "state",
                "the state was issued for another provider",
            ));
        }
        if code.is_empty() || code.len() > 2048 {
            return Err(Error::invalid_input(
                "code",
                "the authorization code is missing",
            ));
        }
        let oauth = provider
            .oauth()
            .ok_or_else(|| not_connectable(provider.id()))?;
        let grant = oauth
            .exchange_code(code, Instant::now() + EXCHANGE_TIMEOUT)
            .await?;
        let expires_at = grant
            .expires_in
            .and_then(|d| chrono::Duration::from_std(d).ok())
            .map(|d| Utc::now() + d);
        self.store
            .upsert_connection(&NewConnection {
                principal: record.principal.clone(),
                provider: provider.id().to_string(),
                access_token: grant.access_token,
                refresh_token: grant.refresh_token,
                expires_at,
                scopes: grant.scopes,
            })
            .await?;
        self.audit(&record.principal, "connectProvider", provider.id())
            .await?;
        Ok(Connected {
            principal: record.principal,
            provider: provider.id().clone(),
            redirect_to: record.redirect_to,
        })
    }

    /// The principal's connections, without secrets.
    pub async fn list(&self, principal: &Principal) -> Result<Vec<ConnectionInfo>> {
        self.store.connections(principal.id()).await
    }

    /// Forgets the principal's tokens at `provider`; `false` if none were stored.
    pub async fn disconnect(&self, principal: &Principal, provider: &str) -> Result<bool> {
        let provider = self.connectable(provider)?;
        let removed = self
            .store
            .delete_connection(principal.id(), provider.id().as_str())
            .await?;
        if removed {
            self.audit(principal.id(), "disconnectProvider", provider.id())
                .await?;
        }
        Ok(removed)
    }

    fn connectable(&self, provider: &str) -> Result<&Arc<dyn finmesh_core::Provider>> {
        let id = ProviderId::new(provider).map_err(|_| {
            Error::invalid_input("provider", format!("unknown provider `{provider}`"))
        })?;
        let provider = self.registry.get(&id)?;
        if provider.oauth().is_none() {
            return Err(not_connectable(&id));
        }
        Ok(provider)
    }

    fn redirect_allowed(&self, target: &str) -> bool {
        Url::parse(target).is_ok()
            && self
                .allowed_redirects
                .iter()
                .any(|allowed| target.starts_with(allowed.as_str()))
    }

    async fn audit(&self, principal: &str, action: &str, provider: &ProviderId) -> Result<()> {
        self.store
            .audit(&AuditEntry {
                principal: principal.to_string(),
                action: action.to_string(),
                provider: Some(provider.to_string()),
                target: None,
                detail: serde_json::Value::Null,
            })
            .await
    }
}

fn not_connectable(provider: &ProviderId) -> Error {
    Error::new(
        ErrorKind::NotSupported,
        format!("{provider} has no OAuth configured: accounts cannot be connected"),
    )
    .with_provider(provider)
}
