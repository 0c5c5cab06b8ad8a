//! Money sent from the partner's account to a destination account.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::{GlobalId, ProviderId};
use crate::money::Money;

/// Where a transfer is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TransferStatus {
    /// Created, waiting for confirmation; no money moved.
    Pending,
    /// Confirmed; money is moving.
    Confirmed,
    /// The money arrived.
    Successful,
    Failed,
    /// Not confirmed in time.
    Expired,
    /// A platform state we do not model, kept verbatim.
    Other(String),
}

/// A transfer as the platform reports it. Serializable, so the gateway can
/// record the answer to an idempotent request and replay it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transfer {
    pub id: GlobalId,
    pub amount: Money,
    pub destination_account: String,
    pub status: TransferStatus,
    pub metadata: BTreeMap<String, String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: Option<DateTime<Utc>>,
    pub confirmed_at: Option<DateTime<Utc>>,
    /// When a pending transfer stops being confirmable.
    pub expires_at: Option<DateTime<Utc>>,
    pub raw: Arc<serde_json::Value>,
}

impl Transfer {
    pub fn provider(&self) -> &ProviderId {
        self.id.provider()
    }
}

/// What a caller asks to send.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NewTransfer {
    pub amount: Money,
    pub destination_account: String,
    pub metadata: BTreeMap<String, String>,
}
