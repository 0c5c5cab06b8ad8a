//! A [`TokenSource`] for tests: a fixed access token per provider and
//! principal, and refreshes made by a closure (typically asking the
//! simulator's OAuth server for a new token).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use finmesh_core::auth::not_connected;
use finmesh_core::oauth::OAuthClient;
use finmesh_core::{AccessToken, Error, ErrorKind, Principal, Result, TokenSource};
use secrecy::{ExposeSecret, SecretString};

type Refresher = Box<dyn Fn(&str, &str) -> Option<String> + Send + Sync>;

/// Tokens keyed by (provider id, principal id).
///
/// ```
/// # use finmesh_testkit::FixedTokens;
/// let tokens = FixedTokens::new()
///     .with("bondora", "alice", "token-of-alice")
///     .on_refresh(|_provider, _principal| Some("a-fresh-token".to_string()));
/// assert_eq!(tokens.refreshes(), 0);
/// ```
///
/// A principal without a token is not connected (`NOT_CONNECTED`). A refresh
/// of a token that was already replaced answers the replacement without
/// calling the closure, so concurrent callers refused with the same token
/// cause one refresh, as the gateway's store does. A closure answering `None`
/// makes the refresh fail with `REAUTHORIZATION_REQUIRED`; without a closure
/// every refresh fails so.
pub struct FixedTokens {
    tokens: Mutex<HashMap<(String, String), String>>,
    refresher: Option<Refresher>,
    refreshes: AtomicUsize,
    handed_out: AtomicUsize,
}

impl Default for FixedTokens {
    fn default() -> Self {
        FixedTokens {
            tokens: Mutex::new(HashMap::new()),
            refresher: None,
            refreshes: AtomicUsize::new(0),
            handed_out: AtomicUsize::new(0),
        }
    }
}

impl FixedTokens {
    pub fn new() -> Self {
        FixedTokens::default()
    }

    /// Gives `principal` the access token `token` at `provider`.
    pub fn with(self, provider: &str, principal: &str, token: impl Into<String>) -> Self {
        self.set(provider, principal, token);
        self
    }

    /// How refreshes get a new token: `refresh(provider, principal)`.
    pub fn on_refresh(
        mut self,
        refresh: impl Fn(&str, &str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        self.refresher = Some(Box::new(refresh));
        self
    }

    /// Replaces (or adds) a token while the test runs.
    pub fn set(&self, provider: &str, principal: &str, token: impl Into<String>) {
        self.lock()
            .insert((provider.to_string(), principal.to_string()), token.into());
    }

    /// Forgets a principal's token: they are no longer connected.
    pub fn remove(&self, provider: &str, principal: &str) {
        self.lock()
            .remove(&(provider.to_string(), principal.to_string()));
    }

    /// How many times the refresh closure made a new token.
    pub fn refreshes(&self) -> usize {
        self.refreshes.load(Ordering::SeqCst)
    }

    /// How many tokens `access_token` handed out.
    pub fn handed_out(&self) -> usize {
        self.handed_out.load(Ordering::SeqCst)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, String), String>> {
        self.tokens
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn access_token(provider: &str, principal: &str, secret: &str) -> AccessToken {
    AccessToken {
        connection_id: format!("{provider}/{principal}"),
        secret: SecretString::from(secret.to_string()),
    }
}

#[async_trait]
impl TokenSource for FixedTokens {
    async fn access_token(
        &self,
        oauth: &OAuthClient,
        principal: &Principal,
    ) -> Result<AccessToken> {
        let provider = oauth.provider().as_str();
        let tokens = self.lock();
        let token = tokens
            .get(&(provider.to_string(), principal.id().to_string()))
            .ok_or_else(|| not_connected(oauth.provider()))?;
        self.handed_out.fetch_add(1, Ordering::SeqCst);
        Ok(access_token(provider, principal.id(), token))
    }

    async fn refresh(
        &self,
        oauth: &OAuthClient,
        principal: &Principal,
        rejected: &AccessToken,
    ) -> Result<AccessToken> {
        let provider = oauth.provider().as_str();
        let key = (provider.to_string(), principal.id().to_string());
        let mut tokens = self.lock();
        let current = tokens
            .get(&key)
            .cloned()
            .ok_or_else(|| not_connected(oauth.provider()))?;
        if current != rejected.secret.expose_secret() {
            // Someone refreshed it meanwhile.
            return Ok(access_token(provider, principal.id(), &current));
        }
        let fresh = self
            .refresher
            .as_ref()
            .and_then(|refresh| refresh(provider, principal.id()))
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::ReauthorizationRequired,
                    "the test token source could not refresh the token",
                )
                .with_provider(oauth.provider())
            })?;
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        tokens.insert(key, fresh.clone());
        Ok(access_token(provider, principal.id(), &fresh))
    }
}
