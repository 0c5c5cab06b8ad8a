//! The mutation root: linking platform accounts and moving money. Every
//! mutation needs a signed-in principal (`UNAUTHENTICATED` otherwise) and a
//! gateway with a store (`NOT_SUPPORTED` otherwise).

use async_graphql::{Context, ID, Object, Result};
use finmesh_core::cache::Scope;
use finmesh_core::{Error, ProviderId};
use finmesh_identity::Connections;
use finmesh_payments::Payments;

use crate::env::{request_env, run_to_completion, service, signed_in};
use crate::error::graphql_error;
use crate::json::Json;
use crate::me::StartConnectionPayload;
use crate::transfer::{
    CreateTransferInput, Transfer, check_idempotency_key, flat_metadata, transfer_id,
};

const CONNECTING: &str = "connecting platform accounts";
const MOVING_MONEY: &str = "moving money";

#[derive(Default)]
pub struct MutationRoot;

#[Object(name = "Mutation")]
impl MutationRoot {
    /// Starts linking the signed-in user's account at `provider` through
    /// OAuth: open `authorizeUrl` in the user's browser. The link is stored
    /// when the platform sends the user back to the gateway.
    async fn start_connection(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The provider instance id, e.g. `zonky`.")] provider: String,
        #[graphql(
            desc = "Where the gateway sends the browser when done; must be one of the gateway's allowed frontend URLs."
        )]
        redirect_to: Option<String>,
    ) -> Result<StartConnectionPayload> {
        let (_, call) = request_env(ctx)?;
        let principal = signed_in(&call, "connect a platform account")?;
        let connections = service::<Connections>(ctx, CONNECTING)?;
        let url = connections
            .start(principal, &provider, redirect_to.as_deref())
            .await
            .map_err(graphql_error)?;
        Ok(StartConnectionPayload {
            authorize_url: url.to_string(),
            provider,
        })
    }

    /// Forgets the signed-in user's tokens at `provider`; false when none
    /// were stored.
    async fn disconnect_provider(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The provider instance id, e.g. `zonky`.")] provider: String,
    ) -> Result<bool> {
        let (aggregator, call) = request_env(ctx)?;
        let principal = signed_in(&call, "disconnect a platform account")?;
        let connections = service::<Connections>(ctx, CONNECTING)?;
        let disconnected = connections
            .disconnect(principal, &provider)
            .await
            .map_err(graphql_error)?;
        // Nothing read through the account outlives its link in the cache.
        if let Ok(id) = ProviderId::new(&provider) {
            aggregator.invalidate_principal(&id, principal, Scope::All);
        }
        Ok(disconnected)
    }

    /// Creates a pending transfer; no money moves until `confirmTransfer`.
    /// Exactly once per idempotency key: repeating the request with the same
    /// key and input answers the same transfer, with other input `CONFLICT`.
    async fn create_transfer(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "What to send, and to whom.")] input: CreateTransferInput,
        #[graphql(
            desc = "Chosen by the caller, one per intended transfer, reused on every retry of it."
        )]
        idempotency_key: String,
    ) -> Result<Transfer> {
        let (aggregator, call) = request_env(ctx)?;
        signed_in(&call, "move money")?;
        let payments = service::<Payments>(ctx, MOVING_MONEY)?.clone();
        let (provider, transfer) = input.into_parts().map_err(graphql_error)?;
        let key = check_idempotency_key(&idempotency_key)
            .map_err(graphql_error)?
            .to_string();
        if aggregator.registry().get(&provider).is_err() {
            return Err(graphql_error(Error::invalid_input(
                "input.provider",
                format!("unknown provider `{provider}`"),
            )));
        }
        let call_for_task = call.clone();
        let created = run_to_completion(&call, REPEAT_WITH_KEY, async move {
            payments
                .create_transfer(&call_for_task, &provider, &transfer, &key)
                .await
        })
        .await
        .map_err(|mut error| {
            // The currency is part of `input.amount` in this schema.
            if error.field.as_deref() == Some("input.currency") {
                error.field = Some("input.amount.currency".to_string());
            }
            graphql_error(error)
        })?;
        Ok(Transfer(created))
    }

    /// Confirms a pending transfer: the money moves. Exactly once per
    /// idempotency key.
    async fn confirm_transfer(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The transfer's global id.")] id: ID,
        #[graphql(
            desc = "Chosen by the caller, one per intended confirmation, reused on every retry of it."
        )]
        idempotency_key: String,
    ) -> Result<Transfer> {
        let (_, call) = request_env(ctx)?;
        signed_in(&call, "move money")?;
        let payments = service::<Payments>(ctx, MOVING_MONEY)?.clone();
        let id = transfer_id(&id).map_err(graphql_error)?;
        let key = check_idempotency_key(&idempotency_key)
            .map_err(graphql_error)?
            .to_string();
        let call_for_task = call.clone();
        let confirmed = run_to_completion(&call, REPEAT_WITH_KEY, async move {
            payments.confirm_transfer(&call_for_task, &id, &key).await
        })
        .await
        .map_err(graphql_error)?;
        Ok(Transfer(confirmed))
    }

    /// Replaces a transfer's metadata with `metadata`, a flat JSON object of
    /// strings.
    async fn update_transfer_metadata(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The transfer's global id.")] id: ID,
        #[graphql(desc = "A flat JSON object of strings, e.g. `{\"orderId\": \"A-1001\"}`.")]
        metadata: Json,
    ) -> Result<Transfer> {
        let (_, call) = request_env(ctx)?;
        signed_in(&call, "move money")?;
        let payments = service::<Payments>(ctx, MOVING_MONEY)?.clone();
        let id = transfer_id(&id).map_err(graphql_error)?;
        let metadata = flat_metadata(&metadata.0, "metadata").map_err(graphql_error)?;
        let call_for_task = call.clone();
        let updated = run_to_completion(&call, "read the transfer to see it", async move {
            payments
                .update_transfer_metadata(&call_for_task, &id, &metadata)
                .await
        })
        .await
        .map_err(graphql_error)?;
        Ok(Transfer(updated))
    }
}

const REPEAT_WITH_KEY: &str = "repeat it with the same idempotency key to get its outcome";
