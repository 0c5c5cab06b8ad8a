//! The token source adapters are built with. Providers are built while the
//! configuration is read, before the store is open; the store-backed source
//! is put in place when the gateway starts.

use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use finmesh_core::auth::not_connected;
use finmesh_core::oauth::OAuthClient;
use finmesh_core::{AccessToken, Principal, Result, TokenSource};

#[derive(Default)]
pub struct DeferredTokens {
    source: OnceLock<Arc<dyn TokenSource>>,
}

impl DeferredTokens {
    /// Puts the real source in place; later calls keep the first.
    pub fn set(&self, source: Arc<dyn TokenSource>) {
        let _ = self.source.set(source);
    }
}

#[async_trait]
impl TokenSource for DeferredTokens {
    async fn access_token(
        &self,
        oauth: &OAuthClient,
        principal: &Principal,
    ) -> Result<AccessToken> {
        match self.source.get() {
            Some(source) => source.access_token(oauth, principal).await,
            // A gateway without a store holds no user tokens.
            None => Err(not_connected(oauth.provider())),
        }
    }

    async fn refresh(
        &self,
        oauth: &OAuthClient,
        principal: &Principal,
        rejected: &AccessToken,
    ) -> Result<AccessToken> {
        match self.source.get() {
            Some(source) => source.refresh(oauth, principal, rejected).await,
            None => Err(not_connected(oauth.provider())),
        }
    }
}
