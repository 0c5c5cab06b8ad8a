//! The Zonky adapter: the public marketplace (`/loans/marketplace`,
//! `/loans/{id}`, `/loans/last-published`) behind the finmesh [`Provider`] trait.
//!
//! Zonky pages with `X-Page`/`X-Size` headers and reports `X-Total`, orders with
//! `X-Order`, and filters with `field__op=value` query parameters on the fields
//! its document lists; everything else is filtered and ordered in core.

mod query;
mod wire;

use std::sync::Arc;

use async_trait::async_trait;
use finmesh_core::model::Loan;
use finmesh_core::paging::fetch_window;
use finmesh_core::provider::LoanRequest;
use finmesh_core::query::{LoanFilterField, LoanOrderField};
use finmesh_core::registry::{FactoryContext, ProviderFactory};
use finmesh_core::upstream::{
    BucketRule, EndpointMatch, ThrottlePolicy, Upstream, UpstreamConfig, UpstreamResponse,
};
use finmesh_core::{
    CallContext, Capabilities, EntityKind, Error, ErrorKind, GlobalId, ListCapabilities, Provider,
    ProviderId, Result, Slice,
};
use http::Method;
use serde::Deserialize;

/// Zonky caps pages itself and very large pages time out upstream (see the
/// providers README); 500 is what public clients use.
const MAX_PAGE_SIZE: u32 = 500;

/// `[providers.<id>]` with `kind = "zonky"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ZonkyConfig {
    /// Always `zonky` here; the registry chose this factory by it.
    #[serde(default, rename = "kind")]
    _kind: Option<String>,
    #[serde(default = "default_base_url")]
    base_url: String,
    #[serde(default)]
    name: Option<String>,
    /// Records asked for per upstream request (`X-Size`).
    #[serde(default = "default_page_size")]
    page_size: u32,
    #[serde(default = "zonky_throttle")]
    throttle: ThrottlePolicy,
}

fn default_base_url() -> String {
    "https://api.zonky.cz".to_string()
}

fn default_page_size() -> u32 {
    100
}

/// Zonky's documented limits: a leaky bucket of 500 refilled one a second, and
/// a separate 1/s budget for `/loans/last-published`.
pub fn zonky_throttle() -> ThrottlePolicy {
    let rule = |name: &str, endpoints, capacity| BucketRule {
        name: name.to_string(),
        endpoints,
        capacity,
        refill_per_second: 1.0,
        headroom: 1,
    };
    ThrottlePolicy {
        rules: vec![
            rule(
                "last-published",
                EndpointMatch::Prefixes(vec![LAST_PUBLISHED.to_string()]),
                1,
            ),
            rule("default", EndpointMatch::All, 500),
        ],
    }
}

const MARKETPLACE: &str = "/loans/marketplace";
const LOAN: &str = "/loans/{id}";
const LAST_PUBLISHED: &str = "/loans/last-published";

/// Registers the `zonky` kind with the gateway.
pub struct ZonkyFactory;

impl ProviderFactory for ZonkyFactory {
    fn kind(&self) -> &'static str {
        "zonky"
    }

    fn build(
        &self,
        id: ProviderId,
        config: &serde_json::Value,
        context: &FactoryContext,
    ) -> Result<Arc<dyn Provider>> {
        let config: ZonkyConfig = serde_json::from_value(config.clone()).map_err(|e| {
            Error::invalid_input(format!("providers.{id}"), format!("providers.{id}: {e}"))
        })?;
        let base_url = url::Url::parse(&config.base_url).map_err(|e| {
            Error::invalid_input(
                format!("providers.{id}.base_url"),
                format!("providers.{id}.base_url: {e}"),
            )
        })?;
        if config.page_size == 0 || config.page_size > MAX_PAGE_SIZE {
            return Err(Error::invalid_input(
                format!("providers.{id}.page_size"),
                format!("providers.{id}.page_size must be between 1 and {MAX_PAGE_SIZE}"),
            ));
        }
        let upstream = Upstream::new(
            id.clone(),
            UpstreamConfig {
                base_url,
                user_agent: context.user_agent.clone(),
                connect_timeout: context.connect_timeout,
                request_timeout: context.request_timeout,
                throttle: config.throttle,
            },
            context.throttle.clone(),
        )?;
        Ok(Arc::new(Zonky {
            name: config.name.unwrap_or_else(|| "Zonky".to_string()),
            id,
            upstream,
            page_size: config.page_size,
            capabilities: capabilities(config.page_size),
        }))
    }
}

/// What the marketplace table of the document allows for filtering and sorting.
fn capabilities(page_size: u32) -> Capabilities {
    Capabilities {
        loans: Some(ListCapabilities {
            filters: vec![
                LoanFilterField::InterestRate,
                LoanFilterField::TermMonths,
                LoanFilterField::Rating,
                LoanFilterField::Purpose,
                LoanFilterField::Insured,
                LoanFilterField::PublishedAt,
            ],
            orders: vec![
                LoanOrderField::InterestRate,
                LoanOrderField::TermMonths,
                LoanOrderField::PublishedAt,
                LoanOrderField::RemainingAmount,
            ],
            max_page_size: page_size,
        }),
    }
}

/// One configured Zonky instance.
pub struct Zonky {
    id: ProviderId,
    name: String,
    upstream: Upstream,
    page_size: u32,
    capabilities: Capabilities,
}

impl Zonky {
    /// Maps Zonky's error answers; anything else gets the generic mapping.
    fn error(&self, response: UpstreamResponse) -> Error {
        let body = (response.status == http::StatusCode::BAD_REQUEST)
            .then(|| response.json::<wire::ErrorBody>().ok())
            .flatten();
        let Some(body) = body else {
            return response.into_default_error();
        };
        match body.error.as_deref() {
            Some("invalid_filter") => {
                let property = body.property.unwrap_or_default();
                let field = query::unified_field_name(&property, body.operation.as_deref());
                Error::invalid_input(
                    field,
                    format!(
                        "Zonky does not allow this filter or order: {}",
                        body.error_description.unwrap_or(property)
                    ),
                )
                .with_provider_code("invalid_filter")
                .with_provider(&self.id)
            }
            // Zonky may answer an expired token with 400 (providers README).
            Some("invalid_token") => {
                Error::new(ErrorKind::Unauthenticated, "Zonky refused the access token")
                    .with_provider_code("invalid_token")
                    .with_provider(&self.id)
            }
            _ => response.into_default_error(),
        }
    }

    async fn marketplace_page(
        &self,
        ctx: &CallContext,
        params: &query::MarketplaceParams,
        page: u64,
    ) -> Result<Slice<Loan>> {
        let mut request = self
            .upstream
            .request(Method::GET, MARKETPLACE, MARKETPLACE)
            .deadline(ctx.deadline)
            .header("X-Page", &page.to_string())
            .header("X-Size", &self.page_size.to_string())
            .query(&params.filters);
        if let Some(order) = &params.order {
            request = request.header("X-Order", order);
        }
        let response = request.send().await?;
        if !response.is_success() {
            return Err(self.error(response));
        }
        let total = match response.header_str("X-Total") {
            Some(raw) => Some(raw.trim().parse::<u64>().map_err(|_| {
                Error::upstream_protocol(format!("X-Total is not a number: {raw:?}"))
                    .with_provider(&self.id)
            })?),
            None => None,
        };
        let raw: Vec<serde_json::Value> = response.json()?;
        let items = raw
            .into_iter()
            .map(|loan| wire::loan_from_json(&self.id, loan))
            .collect::<Result<Vec<_>>>()
            .map_err(|e| e.with_provider(&self.id))?;
        Ok(Slice { items, total })
    }
}

#[async_trait]
impl Provider for Zonky {
    fn id(&self) -> &ProviderId {
        &self.id
    }

    fn kind(&self) -> &'static str {
        "zonky"
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    async fn loans(&self, ctx: &CallContext, request: &LoanRequest) -> Result<Slice<Loan>> {
        let Some(params) = query::marketplace_params(&request.filter, &request.order) else {
            // The filter names only purposes Zonky does not have: nothing can match.
            return Ok(Slice {
                items: Vec::new(),
                total: Some(0),
            });
        };
        fetch_window(request.offset, request.limit, self.page_size, |page| {
            self.marketplace_page(ctx, &params, page)
        })
        .await
    }

    async fn loan(&self, ctx: &CallContext, native_id: &str) -> Result<Loan> {
        // Only numeric ids reach the URL path.
        let id: u64 = native_id.parse().map_err(|_| {
            Error::invalid_input("id", format!("{native_id:?} is not a Zonky loan id"))
        })?;
        let response = self
            .upstream
            .request(Method::GET, LOAN, &format!("/loans/{id}"))
            .deadline(ctx.deadline)
            .send()
            .await?;
        if response.status == http::StatusCode::NOT_FOUND {
            return Err(Error::not_found(format!("loan {id}")).with_provider(&self.id));
        }
        if !response.is_success() {
            return Err(self.error(response));
        }
        wire::loan_from_json(&self.id, response.json()?).map_err(|e| e.with_provider(&self.id))
    }

    async fn latest_loan_id(&self, ctx: &CallContext) -> Result<GlobalId> {
        #[derive(Deserialize)]
        struct LastLoanId {
            id: u64,
        }
        let response = self
            .upstream
            .request(Method::GET, LAST_PUBLISHED, LAST_PUBLISHED)
            .deadline(ctx.deadline)
            .send()
            .await?;
        if !response.is_success() {
            return Err(self.error(response));
        }
        // The document names the type `LastLoanId` without showing it; we read
        // `{"id": n}` and also accept a bare number.
        let id = match response.json::<serde_json::Value>()? {
            serde_json::Value::Number(n) => n.to_string(),
            other => serde_json::from_value::<LastLoanId>(other)
                .map_err(|e| {
                    Error::upstream_protocol(format!("unexpected last-published JSON: {e}"))
                        .with_provider(&self.id)
                })?
                .id
                .to_string(),
        };
        Ok(GlobalId::new(self.id.clone(), EntityKind::Loan, id))
    }
}
