//! Exactly-once money movement, from the caller's view.
//!
//! Every money-moving write carries an idempotency key chosen by the caller.
//! Before anything goes upstream, a record of (principal, key, request
//! fingerprint) is stored; the same key with the same request replays the
//! recorded answer without a second upstream call, the same key with another
//! request is a conflict, and concurrent requests with one key wait for the
//! first. When the platform's answer is lost (timeout, dropped connection, 5xx
//! after the body was sent), the outcome is reconciled against the platform
//! before anything else: transfers are created with a marker in their metadata
//! and looked up by it, and only a transfer proven absent is created again.
//! Records left open by a crash are reconciled at start.

mod fingerprint;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use finmesh_core::aggregate::Aggregator;
use finmesh_core::cache::Scope;
use finmesh_core::model::{NewTransfer, Transfer, TransferStatus};
use finmesh_core::provider::TransferRequest;
use finmesh_core::query::{Bounds, TransferFilter};
use finmesh_core::telemetry;
use finmesh_core::{
    CallContext, EntityKind, Error, ErrorKind, GlobalId, Principal, Provider, ProviderId, Result,
};
use finmesh_store::{AuditEntry, IdempotencyRecord, IdempotencyState, NewIdempotencyRecord, Store};
use serde::{Deserialize, Serialize};

pub use fingerprint::fingerprint;

/// The metadata key every transfer created through the gateway carries: the
/// id of its idempotency record, so an ambiguous outcome can be looked up.
pub const IDEMPOTENCY_METADATA_KEY: &str = "finmesh_idempotency_key";

/// Tuning of the exactly-once machinery.
#[derive(Debug, Clone)]
pub struct PaymentSettings {
    /// How long one request may work on a record before others may take over.
    pub lease: Duration,
    /// How often a waiting request looks at a record held by another.
    pub poll_interval: Duration,
    /// How far before a record's creation its transfer may be stamped by the
    /// platform (clock skew), when looking it up.
    pub clock_skew: Duration,
    /// Most list pages read while looking for a transfer.
    pub max_reconcile_pages: u32,
}

impl Default for PaymentSettings {
    fn default() -> Self {
        PaymentSettings {
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_millis(25),
            clock_skew: Duration::from_secs(600),
            max_reconcile_pages: 100,
        }
    }
}

/// Creates, confirms and updates transfers exactly once.
#[derive(Clone)]
pub struct Payments {
    store: Store,
    /// The providers, and the cache every write invalidates.
    aggregator: Aggregator,
    settings: PaymentSettings,
}

/// A money-moving operation, as recorded.
enum Operation<'a> {
    Create {
        provider: &'a Arc<dyn Provider>,
        transfer: &'a NewTransfer,
    },
    Confirm {
        provider: &'a Arc<dyn Provider>,
        id: &'a GlobalId,
    },
}

impl Operation<'_> {
    fn name(&self) -> &'static str {
        match self {
            Operation::Create { .. } => "createTransfer",
            Operation::Confirm { .. } => "confirmTransfer",
        }
    }

    fn provider(&self) -> &Arc<dyn Provider> {
        match self {
            Operation::Create { provider, .. } | Operation::Confirm { provider, .. } => provider,
        }
    }

    /// The platform record the operation is about, when known up front.
    fn target(&self) -> Option<String> {
        match self {
            Operation::Create { .. } => None,
            Operation::Confirm { id, .. } => Some(id.to_string()),
        }
    }

    fn fingerprint(&self) -> String {
        match self {
            Operation::Create { provider, transfer } => fingerprint(
                self.name(),
                provider.id(),
                &fingerprint::transfer_fields(transfer),
            ),
            Operation::Confirm { provider, id } => {
                fingerprint(self.name(), provider.id(), &[("id", id.to_string())])
            }
        }
    }
}

/// What reconciliation learned about an ambiguous operation.
enum Reconciled {
    /// The platform acted: here is the result.
    Done(Transfer),
    /// The platform provably did not act: safe to do it again.
    NotDone,
}

/// A recorded answer, replayed for repeated requests.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Recorded {
    Transfer(Transfer),
    Error(RecordedError),
}

#[derive(Serialize, Deserialize)]
struct RecordedError {
    code: String,
    message: String,
    field: Option<String>,
    provider: Option<String>,
    provider_code: Option<String>,
}

impl From<&Error> for RecordedError {
    fn from(e: &Error) -> Self {
        RecordedError {
            code: e.code().to_string(),
            message: e.message.clone(),
            field: e.field.clone(),
            provider: e.provider.as_ref().map(|p| p.to_string()),
            provider_code: e.provider_code.clone(),
        }
    }
}

impl RecordedError {
    fn into_error(self) -> Error {
        let mut error = Error::new(
            ErrorKind::from_code(&self.code).unwrap_or(ErrorKind::Internal),
            self.message,
        );
        error.field = self.field;
        error.provider_code = self.provider_code;
        error.provider = self.provider.and_then(|p| ProviderId::new(&p).ok());
        error
    }
}

impl Payments {
    pub fn new(store: Store, aggregator: Aggregator, settings: PaymentSettings) -> Self {
        Payments {
            store,
            aggregator,
            settings,
        }
    }

    /// Drops the principal's cached transfers at `provider`, whatever a
    /// write's outcome (an ambiguous one may have changed them too).
    fn changed(&self, ctx: &CallContext, provider: &ProviderId) {
        if let Some(principal) = &ctx.principal {
            self.aggregator
                .invalidate_principal(provider, principal, Scope::Transfers);
        }
    }

    /// Creates a transfer at `provider`, once per (principal, key).
    pub async fn create_transfer(
        &self,
        ctx: &CallContext,
        provider: &ProviderId,
        transfer: &NewTransfer,
        key: &str,
    ) -> Result<Transfer> {
        let principal = principal(ctx)?;
        let provider = self.aggregator.registry().get(provider)?;
        if transfer.metadata.contains_key(IDEMPOTENCY_METADATA_KEY) {
            return Err(Error::invalid_input(
                "input.metadata",
                format!(
                    "the metadata key `{IDEMPOTENCY_METADATA_KEY}` is reserved for the gateway"
                ),
            ));
        }
        let outcome = match provider.validate_transfer(transfer) {
            Ok(()) => {
                self.once(
                    ctx,
                    principal,
                    key,
                    Operation::Create { provider, transfer },
                )
                .await
            }
            Err(error) => Err(error.with_provider(provider.id())),
        };
        telemetry::record_transfer(provider.id().as_str(), "create", &outcome);
        self.changed(ctx, provider.id());
        outcome
    }

    /// Confirms a pending transfer, once per (principal, key).
    pub async fn confirm_transfer(
        &self,
        ctx: &CallContext,
        id: &GlobalId,
        key: &str,
    ) -> Result<Transfer> {
        let principal = principal(ctx)?;
        let provider = self.provider_for(id)?;
        let outcome = self
            .once(ctx, principal, key, Operation::Confirm { provider, id })
            .await;
        telemetry::record_transfer(provider.id().as_str(), "confirm", &outcome);
        self.changed(ctx, provider.id());
        outcome
    }

    /// Replaces a transfer's metadata (idempotent by nature), keeping the
    /// gateway's marker so the transfer stays findable.
    pub async fn update_transfer_metadata(
        &self,
        ctx: &CallContext,
        id: &GlobalId,
        metadata: &BTreeMap<String, String>,
    ) -> Result<Transfer> {
        let principal = principal(ctx)?;
        let provider = self.provider_for(id)?;
        if metadata.contains_key(IDEMPOTENCY_METADATA_KEY) {
            return Err(Error::invalid_input(
                "metadata",
                format!(
                    "the metadata key `{IDEMPOTENCY_METADATA_KEY}` is reserved for the gateway"
                ),
            ));
        }
        let current = provider
            .transfer(ctx, id.native())
            .await
            .map_err(|e| e.with_provider(provider.id()))?;
        let mut metadata = metadata.clone();
        if let Some(marker) = current.metadata.get(IDEMPOTENCY_METADATA_KEY) {
            metadata.insert(IDEMPOTENCY_METADATA_KEY.to_string(), marker.clone());
        }
        let outcome = provider
            .update_transfer_metadata(ctx, id.native(), &metadata)
            .await
            .map_err(|e| e.with_provider(provider.id()));
        self.changed(ctx, provider.id());
        self.audit(
            principal,
            "updateTransferMetadata",
            provider.id(),
            Some(id),
            &outcome,
        )
        .await?;
        outcome
    }

    /// Finishes what a crash left open: every ambiguous record, and every
    /// in-flight one whose lease ended. Returns how many were settled.
    pub async fn reconcile_unfinished(&self) -> Result<usize> {
        let mut settled = 0;
        for record in self.store.unfinished_idempotent().await? {
            let Ok(provider_id) = ProviderId::new(&record.provider) else {
                continue;
            };
            let Ok(provider) = self.aggregator.registry().get(&provider_id) else {
                tracing::warn!(provider = %record.provider, "an open idempotency record names a provider no longer configured");
                continue;
            };
            let lease_until = Utc::now() + lease(&self.settings);
            if !self
                .store
                .claim_idempotent(&record.id, record.lease_until, lease_until)
                .await?
            {
                continue;
            }
            let ctx = CallContext::for_principal(
                Principal::new(record.principal.as_str()),
                self.settings.lease,
            );
            let outcome = match record.operation.as_str() {
                "createTransfer" => self.reconcile_create(&ctx, provider, &record).await,
                "confirmTransfer" => match confirm_target(&record) {
                    Some(id) => self.reconcile_confirm(&ctx, provider, &id).await,
                    None => Err(Error::internal("a confirm record without its transfer id")),
                },
                _ => continue,
            };
            match outcome {
                Ok(Reconciled::Done(transfer)) => {
                    self.finish(&record, &Ok(transfer)).await?;
                    settled += 1;
                }
                // Nothing happened upstream: the caller's retry will do it.
                Ok(Reconciled::NotDone) => {
                    self.store.release_idempotent(&record.id).await?;
                    settled += 1;
                }
                Err(error) => {
                    tracing::warn!(key = %record.key, error = %error, "could not reconcile an idempotency record yet");
                    self.store
                        .finish_idempotent(&record.id, IdempotencyState::Ambiguous, None)
                        .await?;
                }
            }
        }
        Ok(settled)
    }

    fn provider_for(&self, id: &GlobalId) -> Result<&Arc<dyn Provider>> {
        if id.kind() != EntityKind::Transfer {
            return Err(Error::invalid_input(
                "id",
                format!("{id} is not a transfer id"),
            ));
        }
        self.aggregator
            .registry()
            .get(id.provider())
            .map_err(|_| Error::not_found(format!("transfer {id}")))
    }

    /// The exactly-once engine shared by every money-moving operation.
    async fn once(
        &self,
        ctx: &CallContext,
        principal: &Principal,
        key: &str,
        operation: Operation<'_>,
    ) -> Result<Transfer> {
        let fingerprint = operation.fingerprint();
        let provider = operation.provider().clone();
        loop {
            let new = NewIdempotencyRecord {
                principal: principal.id().to_string(),
                key: key.to_string(),
                operation: operation.name().to_string(),
                provider: provider.id().to_string(),
                fingerprint: fingerprint.clone(),
                target: operation.target(),
                lease_until: Utc::now() + lease(&self.settings),
            };
            let (record, created) = self.store.begin_idempotent(&new).await?;
            if record.fingerprint != fingerprint || record.operation != operation.name() {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    "this idempotency key was already used for a different request",
                )
                .with_field("idempotencyKey"));
            }
            if created {
                match self.execute(ctx, &record, &operation).await? {
                    Some(transfer) => return Ok(transfer),
                    // Ambiguous: go round and reconcile (or wait for whoever does).
                    None => continue,
                }
            }
            match record.state {
                IdempotencyState::Succeeded | IdempotencyState::Failed => return replay(&record),
                IdempotencyState::InFlight if record.lease_until > Utc::now() => {
                    if ctx.remaining() <= self.settings.poll_interval {
                        return Err(Error::new(
                            ErrorKind::Conflict,
                            "a request with this idempotency key is still in progress; retry with the same key",
                        )
                        .with_field("idempotencyKey"));
                    }
                    tokio::time::sleep(self.settings.poll_interval).await;
                }
                // Its holder is gone, or the outcome is unknown: reconcile first.
                IdempotencyState::InFlight | IdempotencyState::Ambiguous => {
                    let lease_until = Utc::now() + lease(&self.settings);
                    if self
                        .store
                        .claim_idempotent(&record.id, record.lease_until, lease_until)
                        .await?
                    {
                        return self.resume(ctx, &record, &operation).await;
                    }
                }
            }
        }
    }

    /// Does the operation upstream and records the outcome. `None` when the
    /// outcome is ambiguous: the record is left for reconciliation.
    async fn execute(
        &self,
        ctx: &CallContext,
        record: &IdempotencyRecord,
        operation: &Operation<'_>,
    ) -> Result<Option<Transfer>> {
        let provider = operation.provider();
        let outcome = match operation {
            Operation::Create { transfer, .. } => {
                let mut marked = (*transfer).clone();
                marked
                    .metadata
                    .insert(IDEMPOTENCY_METADATA_KEY.to_string(), record.id.clone());
                provider.create_transfer(ctx, &marked).await
            }
            Operation::Confirm { id, .. } => provider.confirm_transfer(ctx, id.native()).await,
        }
        .map_err(|e| e.with_provider(provider.id()));
        match outcome {
            Err(error) if is_ambiguous(&error) => {
                tracing::warn!(key = %record.key, error = %error, "ambiguous outcome; reconciling before anything else");
                // Whoever claims it next (this request, or one waiting on the key)
                // reconciles; everyone else waits for that answer.
                self.store
                    .finish_idempotent(&record.id, IdempotencyState::Ambiguous, None)
                    .await?;
                Ok(None)
            }
            // The platform refused before doing anything: the key is free again.
            Err(error) if error.kind == ErrorKind::RateLimited => {
                self.store.release_idempotent(&record.id).await?;
                Err(error)
            }
            outcome => self.finish(record, &outcome).await.and(outcome.map(Some)),
        }
    }

    /// Reconciles a record whose outcome is unknown, then finishes it.
    async fn resume(
        &self,
        ctx: &CallContext,
        record: &IdempotencyRecord,
        operation: &Operation<'_>,
    ) -> Result<Transfer> {
        let provider = operation.provider();
        let reconciled = match operation {
            Operation::Create { .. } => self.reconcile_create(ctx, provider, record).await,
            Operation::Confirm { id, .. } => self.reconcile_confirm(ctx, provider, id).await,
        };
        match reconciled {
            Ok(Reconciled::Done(transfer)) => {
                let outcome = Ok(transfer);
                self.finish(record, &outcome).await?;
                outcome
            }
            Ok(Reconciled::NotDone) => {
                let outcome = match operation {
                    Operation::Create { transfer, .. } => {
                        let mut marked = (*transfer).clone();
                        marked
                            .metadata
                            .insert(IDEMPOTENCY_METADATA_KEY.to_string(), record.id.clone());
                        provider.create_transfer(ctx, &marked).await
                    }
                    Operation::Confirm { id, .. } => {
                        provider.confirm_transfer(ctx, id.native()).await
                    }
                }
                .map_err(|e| e.with_provider(provider.id()));
                if let Err(error) = &outcome
                    && is_ambiguous(error)
                {
                    self.store
                        .finish_idempotent(&record.id, IdempotencyState::Ambiguous, None)
                        .await?;
                    return Err(unknown_outcome(error.clone()));
                }
                self.finish(record, &outcome).await?;
                outcome
            }
            Err(error) => {
                self.store
                    .finish_idempotent(&record.id, IdempotencyState::Ambiguous, None)
                    .await?;
                Err(unknown_outcome(error))
            }
        }
    }

    /// Looks for the transfer carrying the record's marker.
    async fn reconcile_create(
        &self,
        ctx: &CallContext,
        provider: &Arc<dyn Provider>,
        record: &IdempotencyRecord,
    ) -> Result<Reconciled> {
        let since = record.created_at
            - chrono::Duration::from_std(self.settings.clock_skew).unwrap_or_default();
        let filter = TransferFilter {
            statuses: None,
            created_at: Some(Bounds {
                gte: Some(since),
                ..Default::default()
            }),
        };
        let page_size = provider
            .capabilities()
            .transfers
            .as_ref()
            .map_or(100, |t| t.list.max_page_size.max(1));
        let mut offset = 0;
        for _ in 0..self.settings.max_reconcile_pages {
            let request = TransferRequest {
                filter: filter.clone(),
                order: Vec::new(),
                offset,
                limit: page_size,
            };
            let slice = provider
                .transfers(ctx, &request)
                .await
                .map_err(|e| e.with_provider(provider.id()))?;
            if let Some(found) = slice
                .items
                .iter()
                .find(|t| t.metadata.get(IDEMPOTENCY_METADATA_KEY) == Some(&record.id))
            {
                return Ok(Reconciled::Done(found.clone()));
            }
            if slice.items.len() < page_size as usize {
                return Ok(Reconciled::NotDone);
            }
            offset += u64::from(page_size);
        }
        Err(Error::upstream_unavailable(
            "too many transfers to prove this one absent",
        ))
    }

    /// A confirm happened unless the transfer is still pending (or expired).
    async fn reconcile_confirm(
        &self,
        ctx: &CallContext,
        provider: &Arc<dyn Provider>,
        id: &GlobalId,
    ) -> Result<Reconciled> {
        let transfer = provider
            .transfer(ctx, id.native())
            .await
            .map_err(|e| e.with_provider(provider.id()))?;
        Ok(match transfer.status {
            TransferStatus::Pending | TransferStatus::Expired => Reconciled::NotDone,
            _ => Reconciled::Done(transfer),
        })
    }

    /// Records a definitive outcome and audits it.
    async fn finish(&self, record: &IdempotencyRecord, outcome: &Result<Transfer>) -> Result<()> {
        let (state, recorded) = match outcome {
            Ok(transfer) => (
                IdempotencyState::Succeeded,
                Recorded::Transfer(transfer.clone()),
            ),
            Err(error) => (IdempotencyState::Failed, Recorded::Error(error.into())),
        };
        let recorded = serde_json::to_value(&recorded)
            .map_err(|e| Error::internal(format!("recording an answer: {e}")))?;
        self.store
            .finish_idempotent(&record.id, state, Some(&recorded))
            .await?;
        let target = outcome.as_ref().ok().map(|t| &t.id);
        let provider = ProviderId::new(&record.provider)?;
        self.audit(
            &Principal::new(record.principal.as_str()),
            &record.operation,
            &provider,
            target,
            outcome,
        )
        .await
    }

    async fn audit(
        &self,
        principal: &Principal,
        action: &str,
        provider: &ProviderId,
        target: Option<&GlobalId>,
        outcome: &Result<Transfer>,
    ) -> Result<()> {
        let detail = match outcome {
            Ok(transfer) => serde_json::json!({
                "outcome": "ok",
                "amount": transfer.amount.amount.to_string(),
                "currency": transfer.amount.currency.as_str(),
                "destination_account": transfer.destination_account,
                "status": format!("{:?}", transfer.status),
            }),
            Err(error) => serde_json::json!({
                "outcome": error.code(),
                "provider_code": error.provider_code,
            }),
        };
        self.store
            .audit(&AuditEntry {
                principal: principal.id().to_string(),
                action: action.to_string(),
                provider: Some(provider.to_string()),
                target: target.map(|t| t.to_string()),
                detail,
            })
            .await
    }
}

fn principal(ctx: &CallContext) -> Result<&Principal> {
    ctx.principal
        .as_ref()
        .ok_or_else(|| Error::new(ErrorKind::Unauthenticated, "sign in to move money"))
}

fn lease(settings: &PaymentSettings) -> chrono::Duration {
    chrono::Duration::from_std(settings.lease).unwrap_or_else(|_| chrono::Duration::seconds(30))
}

/// Whether the platform may have acted although we got no clear answer.
fn is_ambiguous(error: &Error) -> bool {
    matches!(
        error.kind,
        ErrorKind::UpstreamUnavailable | ErrorKind::UpstreamProtocol | ErrorKind::Internal
    )
}

fn unknown_outcome(cause: Error) -> Error {
    let provider = cause.provider.clone();
    let mut error = Error::upstream_unavailable(format!(
        "the outcome is not known yet ({}); retry with the same idempotency key",
        cause.message
    ));
    error.provider = provider;
    error
}

fn replay(record: &IdempotencyRecord) -> Result<Transfer> {
    let recorded: Recorded = record
        .result
        .clone()
        .map(serde_json::from_value)
        .transpose()
        .map_err(|e| Error::internal(format!("a recorded answer is unreadable: {e}")))?
        .ok_or_else(|| Error::internal("a finished idempotency record without its answer"))?;
    match recorded {
        Recorded::Transfer(transfer) => Ok(transfer),
        Recorded::Error(error) => Err(error.into_error()),
    }
}

/// The transfer a recorded confirm is about.
fn confirm_target(record: &IdempotencyRecord) -> Option<GlobalId> {
    record.target.as_deref().and_then(|t| t.parse().ok())
}
