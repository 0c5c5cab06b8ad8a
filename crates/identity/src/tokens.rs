//! Users' platform tokens: read from the store, refreshed through the
//! provider's OAuth client before they expire or when a platform refuses one.
//!
//! A refresh happens once however many requests need it at that moment: one
//! lock per connection inside this process, and a compare-and-swap on the
//! connection's version across replicas (the loser reads the winner's token).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use finmesh_core::auth::not_connected;
use finmesh_core::oauth::OAuthClient;
use finmesh_core::{AccessToken, Error, ErrorKind, Principal, Result, TokenSource};
use finmesh_store::{Connection, ConnectionStatus, Store};
use secrecy::ExposeSecret;
use tokio::time::Instant;

/// Refresh this long before the platform's expiry, so a token never dies in flight.
const REFRESH_MARGIN: Duration = Duration::from_secs(30);
/// How long a refresh call to the platform may take.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(10);

/// One lock per (provider, principal) connection.
type Flights = HashMap<(String, String), Arc<tokio::sync::Mutex<()>>>;

pub struct StoreTokens {
    store: Store,
    /// Concurrent refreshes of one connection wait for the first.
    flights: Mutex<Flights>,
}

impl StoreTokens {
    pub fn new(store: Store) -> Self {
        StoreTokens {
            store,
            flights: Mutex::new(HashMap::new()),
        }
    }

    fn flight(&self, provider: &str, principal: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut flights = self
            .flights
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        flights
            .entry((provider.to_string(), principal.to_string()))
            .or_default()
            .clone()
    }

    async fn load(&self, oauth: &OAuthClient, principal: &Principal) -> Result<Connection> {
        let provider = oauth.provider();
        let connection = self
            .store
            .connection(principal.id(), provider.as_str())
            .await?
            .ok_or_else(|| not_connected(provider))?;
        if connection.status == ConnectionStatus::ReauthorizationRequired {
            return Err(reauthorize(oauth));
        }
        Ok(connection)
    }

    /// Refreshes unless someone else already replaced `stale`.
    async fn refresh_once(
        &self,
        oauth: &OAuthClient,
        principal: &Principal,
        stale: Option<&AccessToken>,
    ) -> Result<AccessToken> {
        let provider = oauth.provider();
        let flight = self.flight(provider.as_str(), principal.id());
        let _guard = flight.lock().await;

        let connection = self.load(oauth, principal).await?;
        let replaced = stale
            .is_some_and(|s| s.secret.expose_secret() != connection.access_token.expose_secret());
        if replaced && !expiring(&connection) {
            return Ok(token(&connection));
        }
        let Some(refresh_token) = &connection.refresh_token else {
            self.store
                .mark_reauthorization_required(&connection.id)
                .await?;
            return Err(reauthorize(oauth));
        };
        let grant = match oauth
            .refresh(refresh_token, Instant::now() + REFRESH_TIMEOUT)
            .await
        {
            Ok(grant) => grant,
            Err(error) if error.kind == ErrorKind::ReauthorizationRequired => {
                // Another replica may have rotated the refresh token a moment ago.
                let current = self.load(oauth, principal).await?;
                if current.version != connection.version {
                    return Ok(token(&current));
                }
                self.store
                    .mark_reauthorization_required(&connection.id)
                    .await?;
                return Err(error);
            }
            Err(error) => return Err(error),
        };
        let expires_at = grant
            .expires_in
            .and_then(|d| chrono::Duration::from_std(d).ok())
            .map(|d| Utc::now() + d);
        let won = self
            .store
            .replace_tokens(
                &connection.id,
                connection.version,
                &grant.access_token,
                grant.refresh_token.as_ref(),
                expires_at,
            )
            .await?;
        if won {
            Ok(AccessToken {
                connection_id: connection.id,
                secret: grant.access_token,
            })
        } else {
            // Another replica refreshed at the same moment; its token stands.
            Ok(token(&self.load(oauth, principal).await?))
        }
    }
}

#[async_trait]
impl TokenSource for StoreTokens {
    async fn access_token(
        &self,
        oauth: &OAuthClient,
        principal: &Principal,
    ) -> Result<AccessToken> {
        let connection = self.load(oauth, principal).await?;
        if expiring(&connection) {
            let current = token(&connection);
            return self.refresh_once(oauth, principal, Some(&current)).await;
        }
        Ok(token(&connection))
    }

    async fn refresh(
        &self,
        oauth: &OAuthClient,
        principal: &Principal,
        rejected: &AccessToken,
    ) -> Result<AccessToken> {
        self.refresh_once(oauth, principal, Some(rejected)).await
    }
}

fn token(connection: &Connection) -> AccessToken {
    AccessToken {
        connection_id: connection.id.clone(),
        secret: connection.access_token.clone(),
    }
}

fn expiring(connection: &Connection) -> bool {
    connection.expires_at.is_some_and(|at| {
        at - chrono::Duration::from_std(REFRESH_MARGIN).unwrap_or_default() <= Utc::now()
    })
}

fn reauthorize(oauth: &OAuthClient) -> Error {
    Error::new(
        ErrorKind::ReauthorizationRequired,
        format!(
            "the {} connection needs to be authorized again: run startConnection",
            oauth.provider()
        ),
    )
    .with_provider(oauth.provider())
}
