//! `me`: the signed-in principal and the platform accounts linked to it.

use async_graphql::{Context, Enum, ID, Object, SimpleObject};
use chrono::{DateTime, Utc};
use finmesh_core::Principal;
use finmesh_identity::Connections;
use finmesh_store::ConnectionInfo;

use crate::env::{or_null, service};
use crate::error::graphql_error;

/// The signed-in principal.
pub(crate) struct Me(pub Principal);

/// The signed-in user, as the frontend's token names them.
#[Object]
impl Me {
    /// The principal id (`sub` of the frontend token).
    async fn id(&self) -> ID {
        ID(self.0.id().to_string())
    }

    /// The platform accounts linked through `startConnection`, without
    /// secrets; null with an error when the gateway cannot tell.
    async fn connections(&self, ctx: &Context<'_>) -> Option<Vec<ProviderConnection>> {
        let list = async {
            let connections = service::<Connections>(ctx, "connecting platform accounts")?;
            let list = connections.list(&self.0).await.map_err(graphql_error)?;
            Ok(Some(
                list.into_iter().map(ProviderConnection::from).collect(),
            ))
        };
        or_null(ctx, list.await)
    }
}

/// Whether a linked account can be used.
#[derive(Enum, Clone, Copy, PartialEq, Eq)]
#[graphql(remote = "finmesh_store::ConnectionStatus")]
pub(crate) enum ConnectionStatus {
    Active,
    /// The platform no longer accepts the gateway's tokens: run
    /// `startConnection` again.
    ReauthorizationRequired,
}

/// A platform account linked to the signed-in user.
#[derive(SimpleObject)]
pub(crate) struct ProviderConnection {
    /// The provider instance id, e.g. `zonky`.
    provider: String,
    status: ConnectionStatus,
    /// What the user allowed the gateway to do at the platform.
    scopes: Vec<String>,
    /// When the current access token expires (the gateway refreshes it);
    /// null when it does not expire.
    expires_at: Option<DateTime<Utc>>,
    /// When the account was first linked.
    connected_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl From<ConnectionInfo> for ProviderConnection {
    fn from(info: ConnectionInfo) -> Self {
        ProviderConnection {
            provider: info.provider,
            status: info.status.into(),
            scopes: info.scopes,
            expires_at: info.expires_at,
            connected_at: info.created_at,
            updated_at: info.updated_at,
        }
    }
}

/// Where to send the user to approve access at the platform.
#[derive(SimpleObject)]
pub(crate) struct StartConnectionPayload {
    /// Open this in the user's browser; the platform sends the user back to
    /// the gateway's callback, which stores the tokens.
    pub(crate) authorize_url: String,
    pub(crate) provider: String,
}
