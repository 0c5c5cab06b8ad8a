//! Transfers: money sent from the partner's account to a destination account,
//! and the inputs that create and change them.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_graphql::{ID, InputObject, Object};
use chrono::{DateTime, Utc};
use finmesh_core::model::{self, NewTransfer};
use finmesh_core::{EntityKind, Error, GlobalId, ProviderId};
use finmesh_payments::IDEMPOTENCY_METADATA_KEY;

use crate::json::Json;
use crate::money::{Money, MoneyInput};
use crate::status::TransferStatus;

/// The domain transfer, as GraphQL shows it.
pub(crate) struct Transfer(pub model::Transfer);

impl From<model::Transfer> for Transfer {
    fn from(transfer: model::Transfer) -> Self {
        Transfer(transfer)
    }
}

/// Money sent to a destination account, as the platform reports it.
#[Object]
impl Transfer {
    /// Global id, `provider:transfer:native-id`.
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }

    /// The id of the provider instance that moves the money.
    async fn provider(&self) -> &str {
        self.0.provider().as_str()
    }

    /// The platform's own id of the transfer.
    async fn native_id(&self) -> &str {
        self.0.id.native()
    }

    async fn amount(&self) -> Money {
        self.0.amount.into()
    }

    async fn destination_account(&self) -> &str {
        &self.0.destination_account
    }

    async fn status(&self) -> TransferStatus {
        TransferStatus::of(&self.0.status).0
    }

    /// The platform's own status when `status` is `OTHER`.
    async fn status_raw(&self) -> Option<&str> {
        TransferStatus::of(&self.0.status).1
    }

    /// The caller's metadata: a flat object of strings. The gateway's own
    /// `finmesh_idempotency_key` marker is left out (it stays in `raw`).
    async fn metadata(&self) -> Json {
        let fields = self
            .0
            .metadata
            .iter()
            .filter(|(key, _)| key.as_str() != IDEMPOTENCY_METADATA_KEY)
            .map(|(key, value)| (key.clone(), serde_json::Value::String(value.clone())))
            .collect();
        Json(Arc::new(serde_json::Value::Object(fields)))
    }

    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }

    async fn updated_at(&self) -> Option<DateTime<Utc>> {
        self.0.updated_at
    }

    async fn confirmed_at(&self) -> Option<DateTime<Utc>> {
        self.0.confirmed_at
    }

    /// When a pending transfer stops being confirmable.
    async fn expires_at(&self) -> Option<DateTime<Utc>> {
        self.0.expires_at
    }

    /// The platform's record as it sent it, for fields finmesh does not model.
    async fn raw(&self) -> Json {
        Json(self.0.raw.clone())
    }
}

/// A transfer to create. Nothing moves until `confirmTransfer`.
#[derive(InputObject)]
pub(crate) struct CreateTransferInput {
    /// The provider instance that moves the money, e.g. `bongloy`.
    provider: String,
    amount: MoneyInput,
    /// The account that receives the money, in the platform's form.
    destination_account: String,
    /// A flat JSON object of strings kept with the transfer, e.g.
    /// `{"orderId": "A-1001"}`.
    metadata: Option<Json>,
}

impl CreateTransferInput {
    /// Checks the input's form; the provider checks the rest (currency,
    /// minimum amount, account form) before anything is stored or sent.
    pub(crate) fn into_parts(self) -> Result<(ProviderId, NewTransfer), Error> {
        let provider = ProviderId::new(&self.provider).map_err(|_| {
            Error::invalid_input(
                "input.provider",
                format!("unknown provider `{}`", self.provider),
            )
        })?;
        let destination_account = self.destination_account.trim();
        if destination_account.is_empty() {
            return Err(Error::invalid_input(
                "input.destinationAccount",
                "the destination account is missing",
            ));
        }
        let transfer = NewTransfer {
            amount: self.amount.into_money("input.amount")?,
            destination_account: destination_account.to_string(),
            metadata: match self.metadata {
                Some(json) => flat_metadata(&json.0, "input.metadata")?,
                None => BTreeMap::new(),
            },
        };
        Ok((provider, transfer))
    }
}

/// Metadata as the platforms keep it: a flat JSON object of strings. `field`
/// names the argument in errors.
pub(crate) fn flat_metadata(
    json: &serde_json::Value,
    field: &str,
) -> Result<BTreeMap<String, String>, Error> {
    let serde_json::Value::Object(fields) = json else {
        return Err(Error::invalid_input(
            field,
            format!(
                "metadata must be a JSON object of strings, not {}",
                kind_of(json)
            ),
        ));
    };
    fields
        .iter()
        .map(|(key, value)| match value {
            serde_json::Value::String(text) => Ok((key.clone(), text.clone())),
            other => Err(Error::invalid_input(
                field,
                format!(
                    "metadata values must be strings; {key:?} is {}",
                    kind_of(other)
                ),
            )),
        })
        .collect()
}

fn kind_of(json: &serde_json::Value) -> &'static str {
    match json {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// The longest idempotency key accepted.
const MAX_IDEMPOTENCY_KEY: usize = 255;

/// Checks a caller's idempotency key: 1-255 characters, no control characters.
pub(crate) fn check_idempotency_key(key: &str) -> Result<&str, Error> {
    let field = "idempotencyKey";
    if key.trim().is_empty() {
        return Err(Error::invalid_input(
            field,
            "an idempotency key is required: choose one per intended transfer and reuse it on retries",
        ));
    }
    if key.chars().count() > MAX_IDEMPOTENCY_KEY || key.chars().any(char::is_control) {
        return Err(Error::invalid_input(
            field,
            format!(
                "an idempotency key has at most {MAX_IDEMPOTENCY_KEY} characters and no control characters"
            ),
        ));
    }
    Ok(key)
}

/// A transfer's global id, or `INVALID_INPUT` naming `id`.
pub(crate) fn transfer_id(id: &ID) -> Result<GlobalId, Error> {
    GlobalId::parse_as(id, EntityKind::Transfer).map_err(|e| e.with_field("id"))
}
