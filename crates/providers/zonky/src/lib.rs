//! The Zonky adapter: the public marketplace (`/loans/marketplace`,
//! `/loans/{id}`, `/loans/last-published`), the public secondary marketplace
//! (`/smp/investments`) and, through OAuth, a user's
//! investments (`/me/investments`, its summary and detail) behind the finmesh
//! [`Provider`] trait.
//!
//! Zonky pages with `X-Page`/`X-Size` headers and reports `X-Total`, orders with
//! `X-Order`, and filters with `field__op=value` query parameters on the fields
//! its document lists; everything else is filtered and ordered in core.

mod query;
mod smp;
mod wire;

use std::sync::Arc;

use async_trait::async_trait;
use std::future::Future;

use finmesh_core::auth::with_access_token;
use finmesh_core::model::{Investment, Loan, Offer, PortfolioSummary};
use finmesh_core::oauth::{ClientAuth, OAuthClient, OAuthEndpoints, OAuthSettings};
use finmesh_core::paging::fetch_window;
use finmesh_core::provider::{InvestmentRequest, LoanRequest, OfferRequest};
use finmesh_core::query::{
    InvestmentFilterField, InvestmentOrderField, LoanFilterField, LoanOrderField, OfferFilterField,
    OfferOrderField,
};
use finmesh_core::registry::{FactoryContext, ProviderFactory};
use finmesh_core::upstream::{
    BucketRule, EndpointMatch, ThrottlePolicy, Upstream, UpstreamConfig, UpstreamRequest,
    UpstreamResponse,
};
use finmesh_core::{
    AccessToken, CallContext, Capabilities, Currency, EntityKind, Error, ErrorKind, GlobalId,
    ListCapabilities, Provider, ProviderId, Result, Slice, TokenSource,
};
use http::Method;
use secrecy::ExposeSecret;
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
    /// Needed for `/me/...`; without it only the public marketplace works.
    #[serde(default)]
    oauth: Option<OAuthSettings>,
}

/// Zonky's OAuth as its document describes it: HTTP Basic client credentials
/// at the token endpoint, space-separated scopes.
const OAUTH: OAuthEndpoints = OAuthEndpoints {
    authorize_url: "https://app.zonky.cz/api/oauth/authorize",
    token_url: "https://api.zonky.cz/oauth/token",
    scopes: &["SCOPE_APP_BASIC_INFO", "SCOPE_INVESTMENT_READ"],
    client_auth: ClientAuth::BasicHeader,
};

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
const INVESTMENTS: &str = "/me/investments";
const INVESTMENT: &str = "/me/investments/{id}";
const SUMMARY: &str = "/me/investments/summary";

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
        let upstream = Upstream::from_context(
            id.clone(),
            UpstreamConfig {
                base_url,
                user_agent: context.user_agent.clone(),
                connect_timeout: context.connect_timeout,
                request_timeout: context.request_timeout,
                throttle: config.throttle,
            },
            context,
        )?;
        let oauth = config
            .oauth
            .map(|settings| {
                OAuthClient::new(
                    id.clone(),
                    &OAUTH,
                    settings,
                    &context.user_agent,
                    context.request_timeout,
                    context.throttle.clone(),
                )
            })
            .transpose()?;
        Ok(Arc::new(Zonky {
            name: config.name.unwrap_or_else(|| "Zonky".to_string()),
            capabilities: capabilities(config.page_size, oauth.is_some()),
            id,
            upstream,
            page_size: config.page_size,
            oauth,
            tokens: context.tokens.clone(),
        }))
    }
}

/// What the document's tables allow for filtering and sorting; investments
/// only when users can connect their accounts.
fn capabilities(page_size: u32, connectable: bool) -> Capabilities {
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
            default_order: Vec::new(),
            max_page_size: page_size,
        }),
        investments: connectable.then(|| ListCapabilities {
            filters: vec![
                InvestmentFilterField::Status,
                InvestmentFilterField::SellStatus,
                InvestmentFilterField::PurchasedAt,
            ],
            orders: vec![
                InvestmentOrderField::PurchasedAt,
                InvestmentOrderField::PrincipalUnpaid,
                InvestmentOrderField::InterestRate,
            ],
            default_order: Vec::new(),
            max_page_size: page_size,
        }),
        // `/smp/investments` (see `smp`): public, so without OAuth too.
        offers: Some(ListCapabilities {
            filters: vec![OfferFilterField::Rating, OfferFilterField::ListedAt],
            orders: vec![
                OfferOrderField::ListedAt,
                OfferOrderField::PrincipalRemaining,
            ],
            default_order: Vec::new(),
            max_page_size: page_size,
        }),
        transfers: None,
        requires_principal: false,
    }
}

/// One configured Zonky instance.
pub struct Zonky {
    id: ProviderId,
    name: String,
    upstream: Upstream,
    page_size: u32,
    capabilities: Capabilities,
    oauth: Option<OAuthClient>,
    tokens: Arc<dyn TokenSource>,
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
                        // Zonky's words, minus anything that looks like a credential.
                        finmesh_core::redact::scrub(&body.error_description.unwrap_or(property))
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

    /// Sends a GET, with the user's token for private endpoints, and maps errors.
    async fn get(
        &self,
        ctx: &CallContext,
        endpoint: &'static str,
        path: &str,
        token: Option<&AccessToken>,
        customize: impl FnOnce(UpstreamRequest) -> UpstreamRequest,
    ) -> Result<UpstreamResponse> {
        let mut request = self
            .upstream
            .request(Method::GET, endpoint, path)
            .deadline(ctx.deadline);
        if let Some(token) = token {
            request = request
                .bearer(token.secret.expose_secret())
                .credential(&token.connection_id);
        }
        let response = customize(request).send().await?;
        if response.status == http::StatusCode::NOT_FOUND {
            return Err(Error::not_found(path.trim_start_matches('/')).with_provider(&self.id));
        }
        if !response.is_success() {
            return Err(self.error(response));
        }
        Ok(response)
    }

    /// One page of a list endpoint: `X-Page`/`X-Size` in, `X-Total` out.
    async fn page<T>(
        &self,
        ctx: &CallContext,
        endpoint: &'static str,
        params: &query::ListParams,
        page: u64,
        token: Option<&AccessToken>,
        map: fn(&ProviderId, serde_json::Value) -> Result<T>,
    ) -> Result<Slice<T>> {
        let response = self
            .get(ctx, endpoint, endpoint, token, |request| {
                let request = request
                    .header("X-Page", page.to_string())
                    .header("X-Size", self.page_size.to_string())
                    .query(&params.filters);
                match &params.order {
                    Some(order) => request.header("X-Order", order.as_str()),
                    None => request,
                }
            })
            .await?;
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
            .map(|item| map(&self.id, item))
            .collect::<Result<Vec<_>>>()
            .map_err(|e| e.with_provider(&self.id))?;
        Ok(Slice { items, total })
    }

    /// A window of a list endpoint, fetching the pages it spans together.
    async fn window<T>(
        &self,
        ctx: &CallContext,
        endpoint: &'static str,
        params: &query::ListParams,
        (offset, limit): (u64, u32),
        token: Option<&AccessToken>,
        map: fn(&ProviderId, serde_json::Value) -> Result<T>,
    ) -> Result<Slice<T>> {
        fetch_window(offset, limit, self.page_size, |page| {
            self.page(ctx, endpoint, params, page, token, map)
        })
        .await
    }

    /// Runs a private call with the principal's token, refreshing it once if refused.
    async fn as_user<T, F, Fut>(&self, ctx: &CallContext, call: F) -> Result<T>
    where
        F: Fn(AccessToken) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let Some(oauth) = &self.oauth else {
            return Err(Error::not_supported("private data (no [oauth] configured)")
                .with_provider(&self.id));
        };
        with_access_token(self.tokens.as_ref(), oauth, ctx, call).await
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
        let window = (request.offset, request.limit);
        self.window(
            ctx,
            MARKETPLACE,
            &params,
            window,
            None,
            wire::loan_from_json,
        )
        .await
    }

    async fn loan(&self, ctx: &CallContext, native_id: &str) -> Result<Loan> {
        // Only numeric ids reach the URL path.
        let id: u64 = native_id.parse().map_err(|_| {
            Error::invalid_input("id", format!("{native_id:?} is not a Zonky loan id"))
        })?;
        let path = format!("/loans/{id}");
        let response = self.get(ctx, LOAN, &path, None, |r| r).await?;
        wire::loan_from_json(&self.id, response.json()?).map_err(|e| e.with_provider(&self.id))
    }

    async fn latest_loan_id(&self, ctx: &CallContext) -> Result<GlobalId> {
        #[derive(Deserialize)]
        struct LastLoanId {
            id: u64,
        }
        let response = self
            .get(ctx, LAST_PUBLISHED, LAST_PUBLISHED, None, |r| r)
            .await?;
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

    fn oauth(&self) -> Option<&OAuthClient> {
        self.oauth.as_ref()
    }

    async fn investments(
        &self,
        ctx: &CallContext,
        request: &InvestmentRequest,
    ) -> Result<Slice<Investment>> {
        let Some(params) = query::investment_params(&request.filter, &request.order) else {
            return Ok(Slice {
                items: Vec::new(),
                total: Some(0),
            });
        };
        let window = (request.offset, request.limit);
        self.as_user(ctx, |token| {
            let params = &params;
            async move {
                self.window(
                    ctx,
                    INVESTMENTS,
                    params,
                    window,
                    Some(&token),
                    wire::investment_from_json,
                )
                .await
            }
        })
        .await
    }

    async fn investment(&self, ctx: &CallContext, native_id: &str) -> Result<Investment> {
        let id: u64 = native_id.parse().map_err(|_| {
            Error::invalid_input("id", format!("{native_id:?} is not a Zonky investment id"))
        })?;
        let path = format!("/me/investments/{id}");
        let response = self
            .as_user(ctx, |token| {
                let path = &path;
                async move { self.get(ctx, INVESTMENT, path, Some(&token), |r| r).await }
            })
            .await?;
        wire::investment_from_json(&self.id, response.json()?)
            .map_err(|e| e.with_provider(&self.id))
    }

    async fn offers(&self, ctx: &CallContext, request: &OfferRequest) -> Result<Slice<Offer>> {
        let params = smp::params(&request.filter, &request.order);
        let window = (request.offset, request.limit);
        self.window(
            ctx,
            smp::ENDPOINT,
            &params,
            window,
            None,
            smp::offer_from_json,
        )
        .await
        .map_err(smp::offer_field)
    }

    async fn portfolio(&self, ctx: &CallContext) -> Result<Vec<PortfolioSummary>> {
        let response = self
            .as_user(ctx, |token| async move {
                self.get(ctx, SUMMARY, SUMMARY, Some(&token), |r| r).await
            })
            .await?;
        let summary: wire::InvestmentSummary = response.json()?;
        // Zonky invests in CZK only (its document's currency enum has one member).
        Ok(vec![PortfolioSummary {
            provider: self.id.clone(),
            currency: Currency::CZK,
            investments: summary.investments_count,
            principal_outstanding: summary.principal_remaining,
            principal_repaid: summary.principal_paid,
            interest_repaid: summary.interest_paid,
            interest_outstanding: Some(summary.interest_remaining),
        }])
    }
}
