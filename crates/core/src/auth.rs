//! Whose credentials an adapter uses: the principal asking, and the access
//! tokens the gateway holds for them at each platform.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use secrecy::SecretString;

use crate::error::{Error, ErrorKind, Result};
use crate::id::ProviderId;
use crate::oauth::OAuthClient;
use crate::provider::CallContext;

/// An authenticated end user of the gateway (`sub` of the frontend JWT).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Principal {
    id: Arc<str>,
    /// The tenant the frontend JWT vouches for (a claim), if any. Adapters
    /// with per-tenant platform credentials (Bongloy) may use it when their
    /// configuration maps no tenant to the principal.
    tenant: Option<Arc<str>>,
}

impl Principal {
    pub fn new(id: impl Into<Arc<str>>) -> Self {
        Principal {
            id: id.into(),
            tenant: None,
        }
    }

    /// The same principal, vouched for as a member of `tenant`.
    pub fn with_tenant(mut self, tenant: impl Into<Arc<str>>) -> Self {
        self.tenant = Some(tenant.into());
        self
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn tenant(&self) -> Option<&str> {
        self.tenant.as_deref()
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.tenant {
            None => write!(f, "Principal({:?})", &*self.id),
            Some(tenant) => write!(f, "Principal({:?}, tenant {:?})", &*self.id, &**tenant),
        }
    }
}

/// A platform access token for one principal's connection.
#[derive(Clone, Debug)]
pub struct AccessToken {
    /// Stable id of the connection: keys throttle buckets and caches, never the secret.
    pub connection_id: String,
    pub secret: SecretString,
}

/// Where adapters get access tokens; the gateway implements it over its store,
/// refreshing through the provider's [`OAuthClient`].
#[async_trait]
pub trait TokenSource: Send + Sync + 'static {
    /// A valid token for `principal` at `provider`, refreshed first if it is
    /// about to expire. `NotConnected` when the principal never linked an
    /// account; `ReauthorizationRequired` when the link is broken.
    async fn access_token(&self, oauth: &OAuthClient, principal: &Principal)
    -> Result<AccessToken>;

    /// The platform refused `rejected`: refresh it (once, however many callers
    /// ask at the same moment) and return the new token.
    async fn refresh(
        &self,
        oauth: &OAuthClient,
        principal: &Principal,
        rejected: &AccessToken,
    ) -> Result<AccessToken>;
}

/// Runs `call` with the principal's token; if the platform refuses the token,
/// refreshes it once and tries again.
pub async fn with_access_token<T, F, Fut>(
    tokens: &dyn TokenSource,
    oauth: &OAuthClient,
    ctx: &CallContext,
    call: F,
) -> Result<T>
where
    F: Fn(AccessToken) -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let provider = oauth.provider();
    let principal = ctx.principal.as_ref().ok_or_else(|| {
        Error::new(
            ErrorKind::Unauthenticated,
            "sign in to see your own data at this provider",
        )
        .with_provider(provider)
    })?;
    let token = tokens.access_token(oauth, principal).await?;
    match call(token.clone()).await {
        Err(error) if error.kind == ErrorKind::Unauthenticated => {
            let fresh = tokens.refresh(oauth, principal, &token).await?;
            call(fresh).await.map_err(|error| {
                if error.kind == ErrorKind::Unauthenticated {
                    // A brand-new token refused too: the grant itself is gone.
                    Error::new(
                        ErrorKind::ReauthorizationRequired,
                        "the provider refused a freshly refreshed token; connect the account again",
                    )
                    .with_provider(provider)
                } else {
                    error
                }
            })
        }
        other => other,
    }
}

/// For providers that need no per-user credentials, or gateways without a store.
pub struct NoTokens;

#[async_trait]
impl TokenSource for NoTokens {
    async fn access_token(&self, oauth: &OAuthClient, _: &Principal) -> Result<AccessToken> {
        Err(not_connected(oauth.provider()))
    }

    async fn refresh(
        &self,
        oauth: &OAuthClient,
        _: &Principal,
        _: &AccessToken,
    ) -> Result<AccessToken> {
        Err(not_connected(oauth.provider()))
    }
}

pub fn not_connected(provider: &ProviderId) -> Error {
    Error::new(
        ErrorKind::NotConnected,
        format!("no {provider} account is connected; run startConnection(provider: \"{provider}\") first"),
    )
    .with_provider(provider)
}
