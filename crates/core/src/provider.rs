//! The one trait every platform adapter implements.

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::auth::Principal;
use crate::error::{Error, Result};
use crate::id::ProviderId;
use crate::model::{Investment, Loan, NewTransfer, Offer, PortfolioSummary, Transfer};
use crate::money::{Currency, Money};
use crate::oauth::OAuthClient;
use crate::query::{
    InvestmentFilter, InvestmentFilterField, InvestmentOrderField, LoanFilter, LoanFilterField,
    LoanOrderField, OfferFilter, OfferFilterField, OfferOrderField, OrderKey, TransferFilter,
    TransferFilterField, TransferOrderField,
};

/// Per-call context: who is asking and how long they are willing to wait.
#[derive(Debug, Clone)]
pub struct CallContext {
    /// The authenticated principal, if any (`sub` of the frontend JWT).
    pub principal: Option<Principal>,
    /// The instant by which an answer is useless to the caller.
    pub deadline: Instant,
}

impl CallContext {
    pub fn anonymous(timeout: Duration) -> Self {
        CallContext {
            principal: None,
            deadline: Instant::now() + timeout,
        }
    }

    pub fn for_principal(principal: Principal, timeout: Duration) -> Self {
        CallContext {
            principal: Some(principal),
            deadline: Instant::now() + timeout,
        }
    }

    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// What a provider offers and what it can evaluate upstream.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Capabilities {
    /// `None` when the provider has no loan marketplace.
    pub loans: Option<ListCapabilities<LoanFilterField, LoanOrderField>>,
    /// `None` when the provider cannot list a user's investments.
    pub investments: Option<ListCapabilities<InvestmentFilterField, InvestmentOrderField>>,
    /// `None` when the provider has no secondary market.
    pub offers: Option<ListCapabilities<OfferFilterField, OfferOrderField>>,
    /// `None` when the provider cannot move money.
    pub transfers: Option<TransferCapabilities>,
    /// Every call needs a signed-in principal, public listings included
    /// (Bondora answers nothing without a user's token). Anonymous callers
    /// then skip this provider unless they name it.
    pub requires_principal: bool,
}

/// What a payment provider accepts.
#[derive(Debug, Clone, PartialEq)]
pub struct TransferCapabilities {
    pub list: ListCapabilities<TransferFilterField, TransferOrderField>,
    /// The only currencies a transfer may be in.
    pub currencies: Vec<Currency>,
    /// The smallest amount the platform moves.
    pub min_amount: Option<Money>,
}

/// For one list operation: which filters and orders the platform evaluates itself.
#[derive(Debug, Clone, PartialEq)]
pub struct ListCapabilities<Filter, Order> {
    pub filters: Vec<Filter>,
    /// Fields the platform sorts by on request, in either direction.
    pub orders: Vec<Order>,
    /// The order the platform lists in when asked for none (often unknown: empty).
    pub default_order: Vec<OrderKey<Order>>,
    /// The largest `limit` worth asking for in one call (the adapter splits larger ones).
    pub max_page_size: u32,
}

impl<Filter, Order: PartialEq> ListCapabilities<Filter, Order> {
    /// Whether the platform can produce this whole order itself.
    pub fn can_order_by(&self, keys: &[OrderKey<Order>]) -> bool {
        keys.iter().all(|k| self.orders.contains(&k.field)) || self.default_order == keys
    }
}

/// A window `[offset, offset + limit)` of a provider's list, already filtered by
/// the pushed-down `filter` and sorted by the pushed-down `order`.
///
/// `order` is empty when the platform's default order is fine (the aggregator
/// then sorts locally if the caller asked for one). An adapter must return the
/// same items for the same request as long as upstream data does not change.
#[derive(Debug, Clone, PartialEq)]
pub struct ListRequest<Filter, Order> {
    pub filter: Filter,
    pub order: Vec<OrderKey<Order>>,
    pub offset: u64,
    pub limit: u32,
}

/// One window of a list, and the size of the whole list when the platform says.
#[derive(Debug, Clone, PartialEq)]
pub struct Slice<T> {
    pub items: Vec<T>,
    pub total: Option<u64>,
}

pub type LoanRequest = ListRequest<LoanFilter, LoanOrderField>;
pub type InvestmentRequest = ListRequest<InvestmentFilter, InvestmentOrderField>;
pub type TransferRequest = ListRequest<TransferFilter, TransferOrderField>;
pub type OfferRequest = ListRequest<OfferFilter, OfferOrderField>;

/// A platform adapter. Every operation has a default that answers "not supported",
/// so an adapter implements exactly what its platform offers.
#[async_trait]
pub trait Provider: Send + Sync + 'static {
    /// The configured instance id, e.g. `zonky`.
    fn id(&self) -> &ProviderId;

    /// The adapter kind, e.g. `zonky`; several instances may share one kind.
    fn kind(&self) -> &'static str;

    /// A display name for people.
    fn name(&self) -> &str;

    fn capabilities(&self) -> &Capabilities;

    /// How users link their account, for platforms that use OAuth.
    fn oauth(&self) -> Option<&OAuthClient> {
        None
    }

    /// How the platform's webhook calls are authenticated and read, for
    /// providers configured to receive them (`POST /webhooks/{id}`).
    fn webhooks(&self) -> Option<&dyn crate::webhook::WebhookReceiver> {
        None
    }

    /// Marketplace loans.
    async fn loans(&self, _ctx: &CallContext, _request: &LoanRequest) -> Result<Slice<Loan>> {
        Err(Error::not_supported("loans"))
    }

    /// One loan by its native id.
    async fn loan(&self, _ctx: &CallContext, _native_id: &str) -> Result<Loan> {
        Err(Error::not_supported("loan"))
    }

    /// The id of the most recently published loan: a cheap way to notice that
    /// the marketplace changed without listing it.
    async fn latest_loan_id(&self, _ctx: &CallContext) -> Result<crate::id::GlobalId> {
        Err(Error::not_supported("latestLoanId"))
    }

    /// The principal's investments (`ctx.principal`).
    async fn investments(
        &self,
        _ctx: &CallContext,
        _request: &InvestmentRequest,
    ) -> Result<Slice<Investment>> {
        Err(Error::not_supported("investments"))
    }

    /// One of the principal's investments by its native id.
    async fn investment(&self, _ctx: &CallContext, _native_id: &str) -> Result<Investment> {
        Err(Error::not_supported("investment"))
    }

    /// The principal's portfolio per currency, for platforms with a summary
    /// endpoint; the aggregator sums the investments of the others.
    async fn portfolio(&self, _ctx: &CallContext) -> Result<Vec<PortfolioSummary>> {
        Err(Error::not_supported("portfolio"))
    }

    /// Loan parts for sale on the secondary market.
    async fn offers(&self, _ctx: &CallContext, _request: &OfferRequest) -> Result<Slice<Offer>> {
        Err(Error::not_supported("secondaryMarket"))
    }

    /// The principal's transfers.
    async fn transfers(
        &self,
        _ctx: &CallContext,
        _request: &TransferRequest,
    ) -> Result<Slice<Transfer>> {
        Err(Error::not_supported("transfers"))
    }

    async fn transfer(&self, _ctx: &CallContext, _native_id: &str) -> Result<Transfer> {
        Err(Error::not_supported("transfer"))
    }

    /// Checks a transfer before anything is stored or sent. The default checks
    /// the capabilities; adapters add what their platform requires.
    fn validate_transfer(&self, transfer: &NewTransfer) -> Result<()> {
        let caps = self
            .capabilities()
            .transfers
            .as_ref()
            .ok_or_else(|| Error::not_supported("createTransfer"))?;
        validate_against(caps, transfer)
    }

    /// Creates a transfer. Never retried blindly: the gateway reconciles an
    /// ambiguous outcome by listing before it creates again.
    async fn create_transfer(
        &self,
        _ctx: &CallContext,
        _transfer: &NewTransfer,
    ) -> Result<Transfer> {
        Err(Error::not_supported("createTransfer"))
    }

    async fn confirm_transfer(&self, _ctx: &CallContext, _native_id: &str) -> Result<Transfer> {
        Err(Error::not_supported("confirmTransfer"))
    }

    async fn update_transfer_metadata(
        &self,
        _ctx: &CallContext,
        _native_id: &str,
        _metadata: &BTreeMap<String, String>,
    ) -> Result<Transfer> {
        Err(Error::not_supported("updateTransferMetadata"))
    }
}

/// Largest metadata map a transfer may carry.
pub const MAX_METADATA_ENTRIES: usize = 50;
/// Longest metadata key or value, in bytes.
pub const MAX_METADATA_LENGTH: usize = 500;

/// The generic checks: positive amount, supported currency, platform minimum,
/// bounded flat metadata.
pub fn validate_against(caps: &TransferCapabilities, transfer: &NewTransfer) -> Result<()> {
    let amount = transfer.amount;
    if amount.amount <= rust_decimal::Decimal::ZERO {
        return Err(Error::invalid_input(
            "input.amount",
            "the amount must be positive",
        ));
    }
    if !caps.currencies.contains(&amount.currency) {
        return Err(Error::invalid_input(
            "input.currency",
            format!(
                "{} is not supported; supported: {}",
                amount.currency,
                caps.currencies
                    .iter()
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    amount
        .to_minor()
        .map_err(|e| e.with_field("input.amount"))?;
    if let Some(min) = caps.min_amount
        && min.currency == amount.currency
        && amount.amount < min.amount
    {
        return Err(Error::invalid_input(
            "input.amount",
            format!("the minimum amount is {min}"),
        ));
    }
    if transfer.metadata.len() > MAX_METADATA_ENTRIES {
        return Err(Error::invalid_input(
            "input.metadata",
            format!("at most {MAX_METADATA_ENTRIES} metadata entries"),
        ));
    }
    if let Some((key, _)) = transfer.metadata.iter().find(|(k, v)| {
        k.is_empty() || k.len() > MAX_METADATA_LENGTH || v.len() > MAX_METADATA_LENGTH
    }) {
        return Err(Error::invalid_input(
            "input.metadata",
            format!(
                "metadata key {key:?}: keys must be 1-{MAX_METADATA_LENGTH} bytes and values at most {MAX_METADATA_LENGTH}"
            ),
        ));
    }
    Ok(())
}
