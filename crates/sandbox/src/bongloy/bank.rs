//! The simulated ledger: organizations, accounts with balances, and transfers
//! with their life cycle.
//!
//! A transfer is created `pending` with `expires_at` = creation + the pending
//! TTL. Confirming it moves the money at once (source debited, destination
//! credited, by exactly the amount) and makes it `confirmed`; from the settle
//! delay on it reads `successful`, or `failed` for a destination configured to
//! fail settlement, whose money then goes back to the source. A pending
//! transfer past `expires_at` reads `expired`. Statuses change lazily: every
//! request and accessor first brings the ledger up to its clock.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use super::jsonapi::{ApiError, ErrorCode, ErrorSource};

/// A transfer's status, as the API spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferStatus {
    Pending,
    Confirmed,
    Successful,
    Failed,
    Expired,
}

impl TransferStatus {
    pub(crate) const ALL: [Self; 5] = [
        Self::Pending,
        Self::Confirmed,
        Self::Successful,
        Self::Failed,
        Self::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Confirmed => "confirmed",
            Self::Successful => "successful",
            Self::Failed => "failed",
            Self::Expired => "expired",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }
}

/// Whether an account can receive transfers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    #[default]
    Active,
    Inactive,
}

/// An account as it stands, for assertions and `GET /__sandbox/bongloy/accounts`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub account_number: String,
    pub name: String,
    pub status: AccountStatus,
    /// USD cents.
    pub balance: i64,
    /// The most that confirmed transfers may bring in per UTC day, in cents.
    pub daily_transfer_limit: i64,
    /// The organization whose source account this is, if any.
    pub organization: Option<String>,
    /// Confirmed transfers to this account end `failed` (money returned).
    pub fails_settlement: bool,
}

/// An organization of the network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Organization {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) country: String,
    pub(crate) currency: String,
    pub(crate) account_number: String,
}

/// What `POST /v1/transfers` asks for, validated.
pub(crate) struct NewTransfer {
    pub(crate) amount: i64,
    pub(crate) currency: String,
    pub(crate) destination_account_number: String,
    pub(crate) metadata: BTreeMap<String, String>,
}

#[derive(Clone, Debug)]
pub(crate) struct Transfer {
    pub(crate) id: Uuid,
    organization: String,
    source_account_number: String,
    amount: i64,
    currency: String,
    destination_account_number: String,
    metadata: BTreeMap<String, String>,
    pub(crate) status: TransferStatus,
    pub(crate) created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    confirmed_at: Option<DateTime<Utc>>,
    expires_at: DateTime<Utc>,
    /// When a confirmed transfer turns successful or failed.
    settles_at: Option<DateTime<Utc>>,
}

/// ISO 8601 in UTC with milliseconds, e.g. `2020-01-01T00:00:00.000Z`.
pub(crate) fn timestamp(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl Transfer {
    /// The JSON:API resource object.
    pub(crate) fn resource(&self) -> Value {
        json!({
            "type": "transfer",
            "id": self.id.to_string(),
            "attributes": {
                "amount": self.amount,
                "currency": self.currency,
                "destination_account_number": self.destination_account_number,
                "metadata": self.metadata,
                "status": self.status.as_str(),
                "created_at": timestamp(self.created_at),
                "updated_at": timestamp(self.updated_at),
                "confirmed_at": self.confirmed_at.map(timestamp),
                "expires_at": timestamp(self.expires_at),
            },
        })
    }
}

/// Timing of the transfer life cycle.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timing {
    pub(crate) pending_ttl: Duration,
    pub(crate) settle_delay: Duration,
}

/// The whole state; cloned to restore the start on reset.
#[derive(Clone, Debug)]
pub(crate) struct Bank {
    pub(crate) organizations: Vec<Organization>,
    pub(crate) accounts: BTreeMap<String, Account>,
    /// Oldest first.
    transfers: Vec<Transfer>,
}

impl Bank {
    pub(crate) fn new(
        organizations: Vec<Organization>,
        accounts: BTreeMap<String, Account>,
    ) -> Self {
        Self {
            organizations,
            accounts,
            transfers: Vec::new(),
        }
    }

    pub(crate) fn organization(&self, id: &str) -> Option<&Organization> {
        self.organizations.iter().find(|org| org.id == id)
    }

    /// Every transfer, oldest first.
    pub(crate) fn transfers(&self) -> &[Transfer] {
        &self.transfers
    }

    /// Expires pending transfers past `expires_at` and settles confirmed ones
    /// past their settle time.
    pub(crate) fn catch_up(&mut self, now: DateTime<Utc>) {
        for transfer in &mut self.transfers {
            match transfer.status {
                TransferStatus::Pending if now >= transfer.expires_at => {
                    transfer.status = TransferStatus::Expired;
                    transfer.updated_at = transfer.expires_at;
                }
                TransferStatus::Confirmed => {
                    let Some(settles_at) = transfer.settles_at else {
                        continue;
                    };
                    if now < settles_at {
                        continue;
                    }
                    let fails = self
                        .accounts
                        .get(&transfer.destination_account_number)
                        .is_some_and(|account| account.fails_settlement);
                    if fails {
                        transfer.status = TransferStatus::Failed;
                        if let Some(destination) =
                            self.accounts.get_mut(&transfer.destination_account_number)
                        {
                            destination.balance =
                                destination.balance.saturating_sub(transfer.amount);
                        }
                        if let Some(source) = self.accounts.get_mut(&transfer.source_account_number)
                        {
                            source.balance = source.balance.saturating_add(transfer.amount);
                        }
                    } else {
                        transfer.status = TransferStatus::Successful;
                    }
                    transfer.updated_at = settles_at;
                }
                _ => {}
            }
        }
    }

    /// `POST /v1/transfers`, after the document was validated: the destination
    /// must exist, be active and not be the caller's own account.
    pub(crate) fn create(
        &mut self,
        organization: &str,
        new: NewTransfer,
        now: DateTime<Utc>,
        timing: Timing,
    ) -> Result<&Transfer, ApiError> {
        let source = self
            .organization(organization)
            .map(|org| org.account_number.clone())
            .ok_or_else(|| ApiError::not_found(format!("organization {organization} not found")))?;
        check_destination(&self.accounts, &new.destination_account_number)?;
        if new.destination_account_number == source {
            return Err(ApiError::invalid(
                "/data/attributes/destination_account_number",
                "the destination is the organization's own source account".to_owned(),
            ));
        }
        self.transfers.push(Transfer {
            id: Uuid::new_v4(),
            organization: organization.to_owned(),
            source_account_number: source,
            amount: new.amount,
            currency: new.currency,
            destination_account_number: new.destination_account_number,
            metadata: new.metadata,
            status: TransferStatus::Pending,
            created_at: now,
            updated_at: now,
            confirmed_at: None,
            expires_at: now + timing.pending_ttl,
            settles_at: None,
        });
        self.transfers
            .last()
            .ok_or_else(|| ApiError::not_found("the new transfer vanished".to_owned()))
    }

    /// The caller's transfer, or 404 (unknown id and another organization's
    /// transfer alike).
    pub(crate) fn get(&self, organization: &str, id: &str) -> Result<&Transfer, ApiError> {
        let index = self.index(organization, id)?;
        self.transfers
            .get(index)
            .ok_or_else(|| transfer_not_found(id))
    }

    fn index(&self, organization: &str, id: &str) -> Result<usize, ApiError> {
        let uuid = Uuid::parse_str(id).map_err(|_| transfer_not_found(id))?;
        self.transfers
            .iter()
            .position(|transfer| transfer.id == uuid && transfer.organization == organization)
            .ok_or_else(|| transfer_not_found(id))
    }

    /// `PATCH /v1/transfers/{id}/confirm`: checks in this order expiry, status,
    /// destination, balance, the destination's daily limit; then moves the money.
    pub(crate) fn confirm(
        &mut self,
        organization: &str,
        id: &str,
        now: DateTime<Utc>,
        timing: Timing,
    ) -> Result<&Transfer, ApiError> {
        let index = self.index(organization, id)?;
        let transfer = self
            .transfers
            .get(index)
            .ok_or_else(|| transfer_not_found(id))?;
        match transfer.status {
            TransferStatus::Pending => {}
            TransferStatus::Expired => {
                return Err(ApiError::code(
                    ErrorCode::ExpiredTransfer,
                    None,
                    format!(
                        "the transfer expired at {} without being confirmed",
                        timestamp(transfer.expires_at)
                    ),
                ));
            }
            status => {
                return Err(ApiError::code(
                    ErrorCode::InvalidTransfer,
                    None,
                    format!(
                        "only a pending transfer can be confirmed; this one is {}",
                        status.as_str()
                    ),
                ));
            }
        }
        let amount = transfer.amount;
        let destination_number = transfer.destination_account_number.clone();
        let source_number = transfer.source_account_number.clone();
        check_destination(&self.accounts, &destination_number)?;

        let balance = self.accounts.get(&source_number).map_or(0, |a| a.balance);
        if balance < amount {
            return Err(ApiError::code(
                ErrorCode::InsufficientBalance,
                Some(ErrorSource::Pointer("/data/attributes/amount".to_owned())),
                format!("the source account holds {balance} cents, the transfer needs {amount}"),
            ));
        }
        let limit = self
            .accounts
            .get(&destination_number)
            .map_or(0, |account| account.daily_transfer_limit);
        let today = now.date_naive();
        let received_today: i128 = self
            .transfers
            .iter()
            .filter(|other| {
                other.destination_account_number == destination_number
                    && matches!(
                        other.status,
                        TransferStatus::Confirmed | TransferStatus::Successful
                    )
                    && other
                        .confirmed_at
                        .is_some_and(|confirmed| confirmed.date_naive() == today)
            })
            .map(|other| i128::from(other.amount))
            .sum();
        if received_today + i128::from(amount) > i128::from(limit) {
            return Err(ApiError::code(
                ErrorCode::DestinationAccountDailyTransferLimitExceeded,
                Some(ErrorSource::Pointer("/data/attributes/amount".to_owned())),
                format!(
                    "the destination account has received {received_today} of its {limit} cents today (UTC)"
                ),
            ));
        }

        if let Some(source) = self.accounts.get_mut(&source_number) {
            source.balance -= amount;
        }
        if let Some(destination) = self.accounts.get_mut(&destination_number) {
            destination.balance = destination.balance.saturating_add(amount);
        }
        let transfer = self
            .transfers
            .get_mut(index)
            .ok_or_else(|| transfer_not_found(id))?;
        transfer.status = TransferStatus::Confirmed;
        transfer.confirmed_at = Some(now);
        transfer.updated_at = now;
        transfer.settles_at = Some(now + timing.settle_delay);
        Ok(transfer)
    }

    /// `PATCH /v1/transfers/{id}`: the metadata is replaced, whatever the
    /// transfer's status.
    pub(crate) fn replace_metadata(
        &mut self,
        organization: &str,
        id: &str,
        metadata: BTreeMap<String, String>,
        now: DateTime<Utc>,
    ) -> Result<&Transfer, ApiError> {
        let index = self.index(organization, id)?;
        let transfer = self
            .transfers
            .get_mut(index)
            .ok_or_else(|| transfer_not_found(id))?;
        transfer.metadata = metadata;
        transfer.updated_at = now;
        Ok(transfer)
    }

    /// The caller's transfers matching `keep`, newest first.
    pub(crate) fn list(
        &self,
        organization: &str,
        keep: impl Fn(&Transfer) -> bool,
    ) -> Vec<&Transfer> {
        self.transfers
            .iter()
            .rev()
            .filter(|transfer| transfer.organization == organization && keep(transfer))
            .collect()
    }
}

fn check_destination(accounts: &BTreeMap<String, Account>, number: &str) -> Result<(), ApiError> {
    let pointer = || {
        Some(ErrorSource::Pointer(
            "/data/attributes/destination_account_number".to_owned(),
        ))
    };
    match accounts.get(number) {
        None => Err(ApiError::code(
            ErrorCode::DestinationAccountNotFound,
            pointer(),
            format!("no account {number:?}"),
        )),
        Some(account) if account.status != AccountStatus::Active => Err(ApiError::code(
            ErrorCode::DestinationAccountIsNotActive,
            pointer(),
            format!("account {number:?} is not active"),
        )),
        Some(_) => Ok(()),
    }
}

fn transfer_not_found(id: &str) -> ApiError {
    ApiError::not_found(format!("transfer {id:?} not found"))
}
