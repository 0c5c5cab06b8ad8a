//! The Bongloy Agent Network adapter: transfers (create, confirm, read,
//! update metadata, list) and organizations behind the finmesh [`Provider`]
//! trait, following `bongloy-agent-network-api.txt`.
//!
//! - Every request carries `Authorization: Bearer <JWT>`, signed RS256 with
//!   the partner's private key, header exactly `{"alg":"RS256"}`, payload
//!   `{"api_token": "...", "timestamp": "<unix seconds>"}`, made fresh for
//!   every attempt right before it is sent ([`signer`]).
//! - Credentials belong to tenants (`credentials.<tenant>`); principals are
//!   mapped to tenants by configuration (`principals`), by the tenant their
//!   frontend JWT vouches for ([`Principal::tenant`]), or fall back to
//!   `default_tenant`. A tenant's transfers are its partner organization's:
//!   one tenant never sees another's.
//! - Documents are JSON:API (`application/vnd.api+json`); see [`wire`] for
//!   how answers the document does not show are read, [`errors`] for the
//!   error mapping. Lists push `filter[status]` (one status) and
//!   `filter[from_date]`/`filter[to_date]` (inclusive) down, page with
//!   JSON:API's `page[number]`/`page[size]`, and cope with a server that
//!   ignores paging or pages its own way through `links.next`.
//! - Nothing that moves money is retried: the upstream client retries only
//!   GETs, and only after a 429. An ambiguous create (timeout, dropped
//!   connection, 5xx) answers `UPSTREAM_UNAVAILABLE`; the caller's metadata
//!   goes upstream unchanged so the gateway can find the transfer by listing.

mod config;
pub mod errors;
mod listing;
pub mod signer;
pub mod wire;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use finmesh_core::model::{NewTransfer, Transfer};
use finmesh_core::provider::{TransferCapabilities, TransferRequest, validate_against};
use finmesh_core::query::{OrderKey, TransferFilterField, TransferOrderField};
use finmesh_core::registry::{FactoryContext, ProviderFactory};
use finmesh_core::upstream::{Upstream, UpstreamConfig, UpstreamRequest, UpstreamResponse};
use finmesh_core::{
    CallContext, Capabilities, Currency, Error, ErrorKind, ListCapabilities, Money, Principal,
    Provider, ProviderId, Result, Slice,
};
use http::{Method, StatusCode, header};
use serde::Serialize;

pub use config::{DEFAULT_PAGE_SIZE, PRODUCTION_URL, SANDBOX_URL, default_throttle};
pub use errors::REFUSED_TOKEN;
pub use signer::{Clock, RequestSigner};
pub use wire::{MEDIA_TYPE, Organization};

use errors::{Operation, map_error};
use listing::{PageAnswer, PageRequest};
use wire::{Document, MetadataAttributes, NewTransferAttributes, Resource, TRANSFER_TYPE};

const ORGANIZATIONS: &str = "/v1/organizations";
const TRANSFERS: &str = "/v1/transfers";
const TRANSFER: &str = "/v1/transfers/{id}";
const CONFIRM: &str = "/v1/transfers/{id}/confirm";

/// Registers the `bongloy` kind with the gateway.
pub struct BongloyFactory;

impl BongloyFactory {
    /// Builds the adapter as its own type, for callers that need more than the
    /// [`Provider`] trait ([`Bongloy::organizations`], [`Bongloy::with_clock`]).
    pub fn build_bongloy(
        &self,
        id: ProviderId,
        config: &serde_json::Value,
        context: &FactoryContext,
    ) -> Result<Bongloy> {
        Bongloy::from_config(id, config, context, &config::process_env)
    }
}

impl ProviderFactory for BongloyFactory {
    fn kind(&self) -> &'static str {
        "bongloy"
    }

    fn build(
        &self,
        id: ProviderId,
        config: &serde_json::Value,
        context: &FactoryContext,
    ) -> Result<Arc<dyn Provider>> {
        Ok(Arc::new(self.build_bongloy(id, config, context)?))
    }
}

/// The smallest transfer the document allows: $1.00.
pub fn min_amount() -> Money {
    Money::from_minor(100, Currency::USD)
}

/// What Bongloy offers: transfers in USD from $1.00, listed newest first,
/// filtered by status and creation time.
fn capabilities(page_size: u32) -> Capabilities {
    Capabilities {
        transfers: Some(TransferCapabilities {
            list: ListCapabilities {
                filters: vec![TransferFilterField::Status, TransferFilterField::CreatedAt],
                orders: Vec::new(),
                // The document does not say in which order the list comes;
                // the simulator (and JSON:API servers generally) answer
                // newest first, so that is what we declare.
                default_order: vec![OrderKey::desc(TransferOrderField::CreatedAt)],
                max_page_size: page_size,
            },
            currencies: vec![Currency::USD],
            min_amount: Some(min_amount()),
        }),
        // No loans, investments or offers: a payment platform.
        ..Capabilities::default()
    }
}

/// The shortest and longest destination account numbers accepted.
///
/// The document's one example, `002002965`, is nine digits, and says no
/// more. Digits only, 6 to 20 of them, catches what is surely not an
/// account number (letters, spaces, an IBAN) without refusing a Bongloy
/// account of another length; Bongloy itself answers
/// `destination_account_not_found` for a well-formed number it does not have.
pub const DESTINATION_DIGITS: std::ops::RangeInclusive<usize> = 6..=20;

/// One configured Bongloy instance.
pub struct Bongloy {
    id: ProviderId,
    name: String,
    upstream: Upstream,
    page_size: u32,
    capabilities: Capabilities,
    tenants: BTreeMap<String, Arc<RequestSigner>>,
    principals: HashMap<String, String>,
    default_tenant: Option<String>,
    clock: Clock,
}

impl std::fmt::Debug for Bongloy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bongloy")
            .field("id", &self.id)
            .field("upstream", &self.upstream)
            .field("tenants", &self.tenants.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Bongloy {
    fn from_config(
        id: ProviderId,
        table: &serde_json::Value,
        context: &FactoryContext,
        env: config::Env<'_>,
    ) -> Result<Self> {
        let settings = config::Settings::read(&id, table, env)?;
        let upstream = Upstream::from_context(
            id.clone(),
            UpstreamConfig {
                base_url: settings.base_url,
                user_agent: context.user_agent.clone(),
                connect_timeout: context.connect_timeout,
                request_timeout: context.request_timeout,
                throttle: settings.throttle,
            },
            context,
        )
        .map_err(|e| {
            let field = format!(
                "providers.{id}.{}",
                e.field.as_deref().unwrap_or("base_url")
            );
            Error::invalid_input(field.clone(), format!("{field}: {}", e.message))
        })?;
        Ok(Bongloy {
            name: settings.name,
            capabilities: capabilities(settings.page_size),
            page_size: settings.page_size,
            upstream,
            tenants: settings.tenants,
            principals: settings.principals,
            default_tenant: settings.default_tenant,
            clock: signer::system_clock(),
            id,
        })
    }

    /// Replaces the clock the tokens' timestamps come from (tests; a host
    /// whose clock is known to be off and cannot be fixed).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The configured tenants' names.
    pub fn tenants(&self) -> impl Iterator<Item = &str> {
        self.tenants.keys().map(String::as_str)
    }

    /// The tenant whose credential `ctx`'s principal uses: the configured
    /// mapping first, then the tenant the principal's token vouches for,
    /// then `default_tenant`.
    pub fn tenant_for(&self, ctx: &CallContext) -> Result<&str> {
        let principal: &Principal = ctx.principal.as_ref().ok_or_else(|| {
            Error::new(
                ErrorKind::Unauthenticated,
                "sign in to use Bongloy transfers",
            )
            .with_provider(&self.id)
        })?;
        let tenant = self
            .principals
            .get(principal.id())
            .map(String::as_str)
            .or(principal.tenant())
            .or(self.default_tenant.as_deref());
        match tenant.and_then(|t| self.tenants.get_key_value(t)) {
            Some((tenant, _)) => Ok(tenant),
            None => Err(Error::new(
                ErrorKind::Forbidden,
                "not allowed to use a Bongloy credential",
            )
            .with_provider(&self.id)),
        }
    }

    fn signer(&self, tenant: &str) -> Result<Arc<RequestSigner>> {
        self.tenants
            .get(tenant)
            .cloned()
            .ok_or_else(|| Error::internal("no such Bongloy tenant").with_provider(&self.id))
    }

    /// A request as `tenant`: its throttle budget, the caller's deadline,
    /// JSON:API `Accept`, and a token signed for each attempt as it goes out.
    fn request(
        &self,
        ctx: &CallContext,
        tenant: &str,
        method: Method,
        endpoint: &'static str,
        path: &str,
    ) -> Result<UpstreamRequest> {
        let signer = self.signer(tenant)?;
        let clock = self.clock.clone();
        Ok(self
            .upstream
            .request(method, endpoint, path)
            .deadline(ctx.deadline)
            // The throttle's credential key is the tenant's name, never the token.
            .credential(tenant)
            .header(header::ACCEPT, MEDIA_TYPE)
            .bearer_per_attempt(move || signer.sign_now(&clock)))
    }

    /// Sends a JSON:API document as `tenant`. Not retried, whatever happens.
    async fn send_document<T: Serialize>(
        &self,
        ctx: &CallContext,
        tenant: &str,
        method: Method,
        (endpoint, path): (&'static str, &str),
        body: &T,
    ) -> Result<UpstreamResponse> {
        self.request(ctx, tenant, method, endpoint, path)?
            // Set before `json`, which then keeps it.
            .header(header::CONTENT_TYPE, MEDIA_TYPE)
            .json(body)
            .send()
            .await
    }

    /// The transfer in a success answer; an empty answer (a 204 for a
    /// confirmation or update, which the document does not rule out) is
    /// followed by a read.
    async fn transfer_answer(
        &self,
        ctx: &CallContext,
        operation: Operation,
        native_id: Option<&str>,
        response: UpstreamResponse,
    ) -> Result<Transfer> {
        if !response.is_success() {
            return Err(map_error(&self.id, operation, native_id, response));
        }
        if let Some(id) = native_id
            && (response.status == StatusCode::NO_CONTENT
                || response.body.iter().all(u8::is_ascii_whitespace))
        {
            return self.transfer(ctx, id).await;
        }
        let document: wire::SingleDocument = response.json()?;
        wire::transfer(&self.id, document.data)
    }

    /// Checks a native id before it goes into a path.
    fn native_id<'a>(&self, native_id: &'a str) -> Result<&'a str> {
        if wire::is_uuid(native_id) {
            Ok(native_id)
        } else {
            Err(Error::invalid_input(
                "id",
                format!("{native_id:?} is not a Bongloy transfer id (a UUID)"),
            )
            .with_provider(&self.id))
        }
    }

    /// `GET /v1/organizations`: the organizations of the network, as the
    /// principal's tenant sees them. The [`Provider`] trait has no place for
    /// them; this is for operators and tools.
    pub async fn organizations(&self, ctx: &CallContext) -> Result<Vec<Organization>> {
        let tenant = self.tenant_for(ctx)?;
        let response = self
            .request(ctx, tenant, Method::GET, ORGANIZATIONS, ORGANIZATIONS)?
            .send()
            .await?;
        if !response.is_success() {
            return Err(map_error(
                &self.id,
                Operation::Organizations,
                None,
                response,
            ));
        }
        let document: wire::ListDocument = response.json()?;
        document
            .data
            .into_iter()
            .map(|resource| wire::organization(&self.id, resource))
            .collect()
    }

    /// One page of `GET /v1/transfers`.
    async fn transfers_page(
        &self,
        ctx: &CallContext,
        tenant: &str,
        filters: &[(&'static str, String)],
        page: PageRequest,
    ) -> Result<PageAnswer<Transfer>> {
        let request = self.request(ctx, tenant, Method::GET, TRANSFERS, TRANSFERS)?;
        let request = match &page {
            PageRequest::Numbered { number, size } => request.query(filters).query(&[
                ("page[number]", number.to_string()),
                ("page[size]", size.to_string()),
            ]),
            PageRequest::Link(query) => request.query(query),
        };
        let response = request.send().await?;
        if !response.is_success() {
            return Err(map_error(&self.id, Operation::List, None, response));
        }
        let document: wire::ListDocument = response.json()?;
        let next = document
            .next_link()
            .and_then(|link| self.same_endpoint(link));
        let (total, page) = (document.total(), document.page());
        let items = document
            .data
            .into_iter()
            .map(|resource| wire::transfer(&self.id, resource))
            .collect::<Result<Vec<_>>>()?;
        Ok(PageAnswer {
            items,
            next,
            total,
            page,
        })
    }

    /// The query of a `links.next`, if it points at the transfers list of
    /// this very base URL. Any other link is not followed: the signed token
    /// must not go anywhere else.
    fn same_endpoint(&self, link: &str) -> Option<Vec<(String, String)>> {
        let base = self.upstream.base_url();
        let url = base.join(link).ok()?;
        let expected = format!("{}{}", base.path(), TRANSFERS.trim_start_matches('/'));
        let same = url.scheme() == base.scheme()
            && url.host_str() == base.host_str()
            && url.port_or_known_default() == base.port_or_known_default()
            && url.path() == expected;
        if !same {
            tracing::debug!(provider = %self.id, "ignoring a links.next that leaves the transfers endpoint");
            return None;
        }
        Some(
            url.query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }
}

#[async_trait]
impl Provider for Bongloy {
    fn id(&self) -> &ProviderId {
        &self.id
    }

    fn kind(&self) -> &'static str {
        "bongloy"
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn transfers(
        &self,
        ctx: &CallContext,
        request: &TransferRequest,
    ) -> Result<Slice<Transfer>> {
        let tenant = self.tenant_for(ctx)?;
        let pushed = listing::pushdown(&request.filter);
        if pushed.empty {
            return Ok(Slice {
                items: Vec::new(),
                total: Some(0),
            });
        }
        let (items, total) =
            listing::read_window(request.offset, request.limit, self.page_size, |page| {
                self.transfers_page(ctx, tenant, &pushed.params, page)
            })
            .await?;
        Ok(Slice {
            items,
            // A total counts only what the server filtered: trusted for an
            // exactly pushed filter only.
            total: total.filter(|_| pushed.exact),
        })
    }

    async fn transfer(&self, ctx: &CallContext, native_id: &str) -> Result<Transfer> {
        let id = self.native_id(native_id)?;
        let tenant = self.tenant_for(ctx)?;
        let path = format!("/v1/transfers/{id}");
        let response = self
            .request(ctx, tenant, Method::GET, TRANSFER, &path)?
            .send()
            .await?;
        if !response.is_success() {
            return Err(map_error(&self.id, Operation::Read, Some(id), response));
        }
        let document: wire::SingleDocument = response.json()?;
        wire::transfer(&self.id, document.data)
    }

    /// The core checks (positive amount, USD, at least $1.00, bounded flat
    /// metadata) and the destination's form: 6 to 20 digits (see
    /// [`DESTINATION_DIGITS`]).
    fn validate_transfer(&self, transfer: &NewTransfer) -> Result<()> {
        let caps = self
            .capabilities
            .transfers
            .as_ref()
            .ok_or_else(|| Error::not_supported("createTransfer"))?;
        validate_against(caps, transfer).map_err(|e| e.with_provider(&self.id))?;
        let account = &transfer.destination_account;
        if !DESTINATION_DIGITS.contains(&account.len())
            || !account.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(Error::invalid_input(
                "input.destinationAccount",
                format!(
                    "a Bongloy account number is {} to {} digits, e.g. 002002965",
                    DESTINATION_DIGITS.start(),
                    DESTINATION_DIGITS.end()
                ),
            )
            .with_provider(&self.id));
        }
        Ok(())
    }

    /// `POST /v1/transfers`. Sends what it is given: the gateway calls
    /// [`validate_transfer`](Provider::validate_transfer) first, and Bongloy
    /// checks again (a test can so reach every error code Bongloy has). The
    /// metadata goes up unchanged. Never retried.
    async fn create_transfer(&self, ctx: &CallContext, transfer: &NewTransfer) -> Result<Transfer> {
        let tenant = self.tenant_for(ctx)?;
        let amount = transfer
            .amount
            .to_minor()
            .map_err(|e| e.with_field("input.amount").with_provider(&self.id))?;
        let body = Document {
            data: Resource {
                kind: TRANSFER_TYPE,
                id: None,
                attributes: Some(NewTransferAttributes {
                    amount,
                    currency: transfer.amount.currency.as_str(),
                    destination_account_number: &transfer.destination_account,
                    metadata: &transfer.metadata,
                }),
            },
        };
        let response = self
            .send_document(ctx, tenant, Method::POST, (TRANSFERS, TRANSFERS), &body)
            .await?;
        if !response.is_success() {
            return Err(map_error(&self.id, Operation::Create, None, response));
        }
        let document: wire::SingleDocument = response.json()?;
        wire::transfer(&self.id, document.data)
    }

    /// `PATCH /v1/transfers/{id}/confirm` with `{"data": {"type": "transfer",
    /// "id": ...}}`. Never retried.
    async fn confirm_transfer(&self, ctx: &CallContext, native_id: &str) -> Result<Transfer> {
        let id = self.native_id(native_id)?;
        let tenant = self.tenant_for(ctx)?;
        let path = format!("/v1/transfers/{id}/confirm");
        let body = Document {
            data: Resource::<()> {
                kind: TRANSFER_TYPE,
                id: Some(id),
                attributes: None,
            },
        };
        let response = self
            .send_document(ctx, tenant, Method::PATCH, (CONFIRM, &path), &body)
            .await?;
        self.transfer_answer(ctx, Operation::Confirm, Some(id), response)
            .await
    }

    /// `PATCH /v1/transfers/{id}` with the new metadata. The document does not
    /// say whether it replaces or merges; we send the whole map the caller
    /// wants and report what Bongloy answers.
    async fn update_transfer_metadata(
        &self,
        ctx: &CallContext,
        native_id: &str,
        metadata: &BTreeMap<String, String>,
    ) -> Result<Transfer> {
        let id = self.native_id(native_id)?;
        let tenant = self.tenant_for(ctx)?;
        let path = format!("/v1/transfers/{id}");
        let body = Document {
            data: Resource {
                kind: TRANSFER_TYPE,
                id: Some(id),
                attributes: Some(MetadataAttributes { metadata }),
            },
        };
        let response = self
            .send_document(ctx, tenant, Method::PATCH, (TRANSFER, &path), &body)
            .await?;
        self.transfer_answer(ctx, Operation::UpdateMetadata, Some(id), response)
            .await
    }
}

#[cfg(test)]
mod tests;
