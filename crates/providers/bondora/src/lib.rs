//! The Bondora adapter: the primary market (`GET /api/v1/auctions`,
//! `GET /api/v1/auction/{id}`), a user's loan parts
//! (`GET /api/v1/account/investments`, `GET /api/v1/loanpart/{id}`) and the
//! secondary market (`GET /api/v1/secondarymarket`) behind the finmesh
//! [`Provider`] trait, following Bondora's API document and public reference.
//!
//! - Every answer is Bondora's envelope, decoded in `envelope.rs` alone.
//! - Bondora wants a user's OAuth token for everything, auctions included:
//!   every call runs as `ctx.principal` through
//!   [`with_access_token`] (a refused token is refreshed once); an anonymous
//!   caller gets `UNAUTHENTICATED`, a user without a linked account
//!   `NOT_CONNECTED`.
//! - Bondora limits each endpoint separately per user ("the limit is different
//!   for all endpoints", e.g. one request a second): the default throttle gives
//!   every endpoint template its own bucket per connection
//!   ([`bondora_throttle`]); `429` and `Retry-After` are handled by the
//!   upstream client, which also asks for `gzip, deflate`.
//! - Lists page with `request.pageSize` and `request.pageNr` (from 1) and say
//!   `TotalCount`; filters are pushed down as `query.rs` describes; Bondora
//!   sorts nothing on request, so every order is made in core.
//! - Investments are the loan parts the user holds, as Bondora lists them by
//!   default ("NULL: all active"); sold parts are read too (a second list,
//!   `SalesStatus=1`) when a filter asks for the `SOLD` status.
//! - `GET /api/v1/bids` is not read: bids have no unified model (a pending bid
//!   is not yet a loan part), and the primary market's `UserBids` and
//!   `UserBidAmount` stay in each loan's raw JSON.
//! - There is no portfolio summary in scope: core sums the investments.
//!
//! Configuration (`[providers.<id>]` with `kind = "bondora"`):
//!
//! | key | default |
//! |---|---|
//! | `base_url` | `https://api.bondora.com` (paths add `/api/v1/…`) |
//! | `name` | `Bondora` |
//! | `page_size` | 1000 (1 to 20000, the smallest maximum of the lists) |
//! | `throttle` | one bucket per endpoint and connection: capacity 1, 0.9 a second (the documented 1/s with a margin for jitter) |
//! | `oauth` | required: `client_id`, `client_secret`, `redirect_uri`; `authorize_url` (`https://app.bondora.com/oauth/authorize`; older documents say `www.bondora.com`), `token_url` (`https://api.bondora.com/oauth/access_token`), `scopes` (`Investments BidsRead SmBuy`) |
//! | `webhooks` | none (webhooks refused): `keys = { "<keyId>" = "<secret>" }`, `max_skew_secs` (300); see `webhooks.rs` |

mod envelope;
mod query;
mod webhooks;
mod wire;

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use finmesh_core::auth::with_access_token;
use finmesh_core::model::{Investment, Loan, Offer};
use finmesh_core::oauth::{ClientAuth, OAuthClient, OAuthEndpoints, OAuthSettings};
use finmesh_core::provider::{InvestmentRequest, LoanRequest, OfferRequest};
use finmesh_core::query::{InvestmentFilterField, LoanFilterField, OfferFilterField, OrderKey};
use finmesh_core::registry::{FactoryContext, ProviderFactory};
use finmesh_core::upstream::{BucketRule, EndpointMatch, ThrottlePolicy, Upstream, UpstreamConfig};
use finmesh_core::webhook::{HttpSignatures, SignatureSettings, WebhookReceiver};
use finmesh_core::{
    AccessToken, CallContext, Capabilities, Error, ErrorKind, ListCapabilities, Provider,
    ProviderId, Result, Slice, TokenSource,
};
use futures::future::try_join_all;
use http::Method;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::Value;

use crate::envelope::Envelope;
use crate::query::Params;

pub use crate::query::MAX_TERM_MONTHS;

/// The smallest of the lists' largest `PageSize` (auctions and bids: 20000;
/// investments 50000; secondary market 100000).
const MAX_PAGE_SIZE: u32 = 20_000;

const AUCTIONS: &str = "/api/v1/auctions";
const AUCTION: &str = "/api/v1/auction/{id}";
const INVESTMENTS: &str = "/api/v1/account/investments";
const LOAN_PART: &str = "/api/v1/loanpart/{id}";
const SECONDARY_MARKET: &str = "/api/v1/secondarymarket";

/// Bondora's OAuth as its document and the providers README describe it.
const OAUTH: OAuthEndpoints = OAuthEndpoints {
    authorize_url: "https://app.bondora.com/oauth/authorize",
    token_url: "https://api.bondora.com/oauth/access_token",
    scopes: &["Investments", "BidsRead", "SmBuy"],
    client_auth: ClientAuth::BodyFields,
};

/// The pace of the default throttle: Bondora's documented one request a
/// second per endpoint, less 10 %. With a burst of one there are no tokens to
/// hold back as headroom, so the margin is in time: Bondora counts arrivals,
/// and scheduling and network jitter can bring two requests sent a second
/// apart to it less than a second apart (at exactly 1/s a loaded test
/// machine sees one 429 in about 25 requests; each costs a whole second).
pub const DEFAULT_REFILL_PER_SECOND: f64 = 0.9;

/// Bondora's documented limit: each endpoint on its own per user, one
/// request a second (paced at [`DEFAULT_REFILL_PER_SECOND`]). Override per
/// path with rules of `Prefixes` placed before an `each_endpoint` rule.
pub fn bondora_throttle() -> ThrottlePolicy {
    ThrottlePolicy {
        rules: vec![BucketRule {
            name: "per-endpoint".to_string(),
            endpoints: EndpointMatch::EachEndpoint,
            capacity: 1,
            refill_per_second: DEFAULT_REFILL_PER_SECOND,
            headroom: 1,
        }],
    }
}

/// `[providers.<id>]` with `kind = "bondora"`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BondoraConfig {
    /// Always `bondora` here; the registry chose this factory by it.
    #[serde(default, rename = "kind")]
    _kind: Option<String>,
    #[serde(default = "default_base_url")]
    base_url: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default = "default_page_size")]
    page_size: u32,
    #[serde(default = "bondora_throttle")]
    throttle: ThrottlePolicy,
    /// Required: Bondora answers nothing without a user's token.
    #[serde(default)]
    oauth: Option<OAuthSettings>,
    /// The secrets Bondora signs webhook calls with; without them the
    /// gateway refuses Bondora's webhooks.
    #[serde(default)]
    webhooks: Option<SignatureSettings>,
}

fn default_base_url() -> String {
    "https://api.bondora.com".to_string()
}

fn default_page_size() -> u32 {
    1000
}

/// A configuration error naming `providers.<id>.<key>`.
fn config_error(id: &ProviderId, error: serde_path_to_error::Error<serde_json::Error>) -> Error {
    let path = error.path().to_string();
    let inner = error.into_inner().to_string();
    let key = if path != "." && !path.is_empty() {
        Some(path)
    } else {
        // `unknown field `x`, expected …`: the key is the unknown field.
        inner
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next())
            .map(str::to_string)
    };
    let field = match key {
        Some(key) => format!("providers.{id}.{key}"),
        None => format!("providers.{id}"),
    };
    Error::invalid_input(field.clone(), format!("{field}: {inner}"))
}

/// Registers the `bondora` kind with the gateway.
pub struct BondoraFactory;

impl ProviderFactory for BondoraFactory {
    fn kind(&self) -> &'static str {
        "bondora"
    }

    fn build(
        &self,
        id: ProviderId,
        config: &serde_json::Value,
        context: &FactoryContext,
    ) -> Result<Arc<dyn Provider>> {
        let config: BondoraConfig =
            serde_path_to_error::deserialize(config.clone()).map_err(|e| config_error(&id, e))?;
        let key = |name: &str| format!("providers.{id}.{name}");
        let base_url = url::Url::parse(&config.base_url).map_err(|e| {
            Error::invalid_input(key("base_url"), format!("{}: {e}", key("base_url")))
        })?;
        if config.page_size == 0 || config.page_size > MAX_PAGE_SIZE {
            return Err(Error::invalid_input(
                key("page_size"),
                format!("{} must be between 1 and {MAX_PAGE_SIZE}", key("page_size")),
            ));
        }
        let settings = config.oauth.ok_or_else(|| {
            Error::invalid_input(
                key("oauth"),
                format!(
                    "{}: Bondora answers nothing without a user's token; configure the OAuth client (client_id, client_secret, redirect_uri)",
                    key("oauth")
                ),
            )
        })?;
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
        )
        .map_err(|e| prefix_field(&id, e))?;
        let webhooks = config
            .webhooks
            .as_ref()
            .map(HttpSignatures::new)
            .transpose()
            .map_err(|mut e| {
                let field = key(&format!(
                    "webhooks.{}",
                    e.field.as_deref().unwrap_or_default()
                ));
                e.message = format!("{field}: {}", e.message);
                e.field = Some(field);
                e
            })?
            .map(webhooks::BondoraWebhooks::new);
        let oauth = OAuthClient::new(
            id.clone(),
            &OAUTH,
            settings,
            &context.user_agent,
            context.request_timeout,
            context.throttle.clone(),
        )?;
        Ok(Arc::new(Bondora {
            name: config.name.unwrap_or_else(|| "Bondora".to_string()),
            capabilities: capabilities(config.page_size),
            id,
            upstream,
            page_size: config.page_size,
            oauth,
            tokens: context.tokens.clone(),
            webhooks,
        }))
    }
}

/// `base_url`, `throttle.rules[0]…` → `providers.<id>.…`.
fn prefix_field(id: &ProviderId, mut error: Error) -> Error {
    if error.kind == ErrorKind::InvalidInput
        && let Some(field) = &error.field
        && !field.starts_with("providers.")
    {
        error.field = Some(format!("providers.{id}.{field}"));
    }
    error
}

/// What Bondora's request objects can filter on (see [`query`]); it sorts
/// nothing and documents no default order. Currency (always EUR) and
/// insurance (never) are answered by the adapter itself.
fn capabilities(page_size: u32) -> Capabilities {
    Capabilities {
        loans: Some(ListCapabilities {
            filters: vec![
                LoanFilterField::InterestRate,
                LoanFilterField::TermMonths,
                LoanFilterField::Amount,
                LoanFilterField::Rating,
                LoanFilterField::Currency,
                LoanFilterField::Country,
                LoanFilterField::Insured,
                LoanFilterField::PublishedAt,
            ],
            orders: Vec::new(),
            default_order: Vec::new(),
            max_page_size: page_size,
        }),
        investments: Some(ListCapabilities {
            filters: vec![
                InvestmentFilterField::Status,
                InvestmentFilterField::Currency,
                InvestmentFilterField::PurchasedAt,
                InvestmentFilterField::PrincipalUnpaid,
                InvestmentFilterField::InterestRate,
            ],
            orders: Vec::new(),
            default_order: Vec::new(),
            max_page_size: page_size,
        }),
        offers: Some(ListCapabilities {
            filters: vec![
                OfferFilterField::InterestRate,
                OfferFilterField::Price,
                OfferFilterField::Rating,
                OfferFilterField::Currency,
                OfferFilterField::ListedAt,
            ],
            orders: Vec::new(),
            default_order: Vec::new(),
            max_page_size: page_size,
        }),
        transfers: None,
        requires_principal: true,
    }
}

/// One configured Bondora instance.
pub struct Bondora {
    id: ProviderId,
    name: String,
    upstream: Upstream,
    page_size: u32,
    capabilities: Capabilities,
    oauth: OAuthClient,
    tokens: Arc<dyn TokenSource>,
    webhooks: Option<webhooks::BondoraWebhooks>,
}

type MapFn<T> = fn(&ProviderId, Value) -> Result<T>;

/// Bondora's ids are UUIDs; only a well-formed one reaches a URL path.
fn checked_uuid(native_id: &str, what: &str) -> Result<String> {
    uuid::Uuid::parse_str(native_id)
        .map(|id| id.hyphenated().to_string())
        .map_err(|_| {
            Error::invalid_input("id", format!("{native_id:?} is not a Bondora {what} id"))
        })
}

/// Bondora sorts nothing; core never asks it to (the capabilities say so).
fn no_order<O: std::fmt::Debug>(order: &[OrderKey<O>]) -> Result<()> {
    if order.is_empty() {
        Ok(())
    } else {
        Err(Error::invalid_input(
            "orderBy",
            format!("Bondora lists in its own order and cannot sort by {order:?}"),
        ))
    }
}

fn nothing<T>() -> Slice<T> {
    Slice {
        items: Vec::new(),
        total: Some(0),
    }
}

impl Bondora {
    /// One GET with the user's token, decoded through the envelope.
    async fn get(
        &self,
        ctx: &CallContext,
        token: &AccessToken,
        endpoint: &'static str,
        path: &str,
        query: &Params,
    ) -> Result<Envelope> {
        let response = self
            .upstream
            .request(Method::GET, endpoint, path)
            .deadline(ctx.deadline)
            .header(http::header::ACCEPT, "application/json")
            .bearer(token.secret.expose_secret())
            .credential(&token.connection_id)
            .query(query)
            .send()
            .await?;
        envelope::open(&self.id, endpoint, response)
    }

    /// One item endpoint (`/auction/{id}`, `/loanpart/{id}`).
    async fn item<T>(
        &self,
        ctx: &CallContext,
        endpoint: &'static str,
        path: String,
        map: MapFn<T>,
    ) -> Result<T> {
        let envelope = self
            .as_user(ctx, |token| {
                let path = &path;
                async move { self.get(ctx, &token, endpoint, path, &Params::new()).await }
            })
            .await?;
        map(&self.id, envelope.payload).map_err(|e| self.decoding(endpoint, None, e))
    }

    fn decoding(&self, endpoint: &str, index: Option<usize>, mut error: Error) -> Error {
        error.message = match index {
            Some(index) => format!("{endpoint} Payload[{index}]: {}", error.message),
            None => format!("{endpoint} Payload: {}", error.message),
        };
        error.with_provider(&self.id)
    }

    /// Page `page` (from 0) of a list, `request.pageNr` counting from 1.
    async fn page<T>(
        &self,
        ctx: &CallContext,
        token: &AccessToken,
        endpoint: &'static str,
        params: &Params,
        page: u64,
        map: MapFn<T>,
    ) -> Result<Slice<T>> {
        let number = page.saturating_add(1);
        if number > i32::MAX as u64 {
            // Past any list Bondora can page to.
            return Ok(Slice {
                items: Vec::new(),
                total: None,
            });
        }
        let mut query = params.clone();
        query.push(("request.pageSize".to_string(), self.page_size.to_string()));
        query.push(("request.pageNr".to_string(), number.to_string()));
        let envelope = self.get(ctx, token, endpoint, endpoint, &query).await?;
        let Value::Array(items) = envelope.payload else {
            return Err(Error::upstream_protocol(format!(
                "Bondora answered {endpoint} with a Payload that is not a list"
            ))
            .with_provider(&self.id));
        };
        let asked = u64::from(self.page_size);
        let full_smaller_page = envelope
            .page_size
            .is_some_and(|size| size > 0 && size < asked && items.len() as u64 == size);
        if items.len() as u64 > asked || full_smaller_page {
            // Pages of another size would not tile the list.
            return Err(Error::upstream_protocol(format!(
                "Bondora paged {endpoint} by {} items, not the configured page_size {asked}; lower page_size",
                envelope.page_size.unwrap_or(items.len() as u64)
            ))
            .with_provider(&self.id));
        }
        let items = items
            .into_iter()
            .enumerate()
            .map(|(index, item)| {
                map(&self.id, item).map_err(|e| self.decoding(endpoint, Some(index), e))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Slice {
            items,
            total: envelope.total_count,
        })
    }

    /// The window `[offset, offset + limit)` of one list. The window's first
    /// page comes first and tells the list's size; then only pages that exist
    /// are asked for, together (the throttle paces them). Asking for every
    /// page the window spans at once, as core's `fetch_window` does, would
    /// cost a request (a second, at Bondora's pace) per page past the end.
    #[allow(clippy::too_many_arguments)]
    async fn list_window<T>(
        &self,
        ctx: &CallContext,
        token: &AccessToken,
        endpoint: &'static str,
        params: &Params,
        offset: u64,
        limit: u32,
        map: MapFn<T>,
    ) -> Result<Slice<T>> {
        let size = u64::from(self.page_size);
        let first_page = offset / size;
        let first = self
            .page(ctx, token, endpoint, params, first_page, map)
            .await?;
        if limit == 0 {
            return Ok(Slice {
                items: Vec::new(),
                total: first.total,
            });
        }
        let mut last_page = offset.saturating_add(u64::from(limit) - 1) / size;
        if (first.items.len() as u64) < size {
            last_page = first_page;
        }
        if let Some(total) = first.total {
            last_page = last_page.min(total.div_ceil(size).saturating_sub(1).max(first_page));
        }
        let rest = try_join_all(
            (first_page + 1..=last_page)
                .map(|page| self.page(ctx, token, endpoint, params, page, map)),
        )
        .await?;
        let total = first.total.or_else(|| rest.iter().find_map(|p| p.total));
        let skip = usize::try_from(offset - first_page * size).unwrap_or(usize::MAX);
        let items = first
            .items
            .into_iter()
            .chain(rest.into_iter().flat_map(|p| p.items))
            .skip(skip)
            .take(limit as usize)
            .collect();
        Ok(Slice { items, total })
    }

    /// The window `[offset, offset + limit)` of the lists `lists` read one
    /// after the other (one list but for sold investments), as the user.
    async fn window<T>(
        &self,
        ctx: &CallContext,
        endpoint: &'static str,
        lists: &[Params],
        (offset, limit): (u64, u32),
        map: MapFn<T>,
    ) -> Result<Slice<T>> {
        self.as_user(ctx, |token| async move {
            let token = &token;
            if let [params] = lists {
                return self
                    .list_window(ctx, token, endpoint, params, offset, limit, map)
                    .await;
            }
            let mut items = Vec::new();
            let mut total = 0u64;
            let mut offset = offset;
            for params in lists {
                let wanted = limit.saturating_sub(u32::try_from(items.len()).unwrap_or(u32::MAX));
                let slice = self
                    .list_window(ctx, token, endpoint, params, offset, wanted, map)
                    .await?;
                let Some(size) = slice.total else {
                    return Err(Error::upstream_protocol(format!(
                        "Bondora answered {endpoint} without a TotalCount"
                    ))
                    .with_provider(&self.id));
                };
                items.extend(slice.items);
                total += size;
                offset = offset.saturating_sub(size);
            }
            Ok(Slice {
                items,
                total: Some(total),
            })
        })
        .await
    }

    /// Runs a call with the principal's token, refreshing it once if refused.
    async fn as_user<T, F, Fut>(&self, ctx: &CallContext, call: F) -> Result<T>
    where
        F: Fn(AccessToken) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        with_access_token(self.tokens.as_ref(), &self.oauth, ctx, call)
            .await
            .map_err(|e| e.with_provider(&self.id))
    }
}

#[async_trait]
impl Provider for Bondora {
    fn id(&self) -> &ProviderId {
        &self.id
    }

    fn kind(&self) -> &'static str {
        "bondora"
    }

    fn name(&self) -> &str {
        &self.name
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    fn oauth(&self) -> Option<&OAuthClient> {
        Some(&self.oauth)
    }

    fn webhooks(&self) -> Option<&dyn WebhookReceiver> {
        self.webhooks
            .as_ref()
            .map(|receiver| receiver as &dyn WebhookReceiver)
    }

    async fn loans(&self, ctx: &CallContext, request: &LoanRequest) -> Result<Slice<Loan>> {
        no_order(&request.order)?;
        let Some(params) = query::auction_params(&request.filter) else {
            return Ok(nothing());
        };
        let window = (request.offset, request.limit);
        self.window(ctx, AUCTIONS, &[params], window, wire::loan_from_json)
            .await
    }

    async fn loan(&self, ctx: &CallContext, native_id: &str) -> Result<Loan> {
        let id = checked_uuid(native_id, "auction")?;
        self.item(
            ctx,
            AUCTION,
            format!("/api/v1/auction/{id}"),
            wire::loan_from_json,
        )
        .await
    }

    async fn investments(
        &self,
        ctx: &CallContext,
        request: &InvestmentRequest,
    ) -> Result<Slice<Investment>> {
        no_order(&request.order)?;
        let Some(lists) = query::investment_params(&request.filter) else {
            return Ok(nothing());
        };
        let window = (request.offset, request.limit);
        self.window(ctx, INVESTMENTS, &lists, window, wire::investment_from_json)
            .await
    }

    async fn investment(&self, ctx: &CallContext, native_id: &str) -> Result<Investment> {
        let id = checked_uuid(native_id, "loan part")?;
        self.item(
            ctx,
            LOAN_PART,
            format!("/api/v1/loanpart/{id}"),
            wire::investment_from_json,
        )
        .await
    }

    async fn offers(&self, ctx: &CallContext, request: &OfferRequest) -> Result<Slice<Offer>> {
        no_order(&request.order)?;
        let Some(params) = query::offer_params(&request.filter) else {
            return Ok(nothing());
        };
        let window = (request.offset, request.limit);
        self.window(
            ctx,
            SECONDARY_MARKET,
            &[params],
            window,
            wire::offer_from_json,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use finmesh_core::auth::NoTokens;
    use finmesh_core::upstream::LocalThrottle;
    use std::time::Duration;

    fn context() -> FactoryContext {
        FactoryContext {
            user_agent: "finmesh-test/0.0 (https://example.test)".into(),
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
            throttle: Arc::new(LocalThrottle::new()),
            resilience: Default::default(),
            tokens: Arc::new(NoTokens),
        }
    }

    fn build(config: serde_json::Value) -> Result<Arc<dyn Provider>> {
        BondoraFactory.build(ProviderId::new("bondora").unwrap(), &config, &context())
    }

    fn oauth() -> serde_json::Value {
        serde_json::json!({"client_id": "id", "client_secret": "s3cr3t-value",
            "redirect_uri": "https://gateway.example/connect/bondora/callback"})
    }

    #[test]
    fn configuration_errors_name_the_key() {
        let cases = [
            (
                serde_json::json!({"oauth": oauth(), "colour": "red"}),
                "providers.bondora.colour",
            ),
            (
                serde_json::json!({"oauth": oauth(), "page_size": 0}),
                "providers.bondora.page_size",
            ),
            (
                serde_json::json!({"oauth": oauth(), "page_size": "big"}),
                "providers.bondora.page_size",
            ),
            (
                serde_json::json!({"oauth": oauth(), "base_url": "not a url"}),
                "providers.bondora.base_url",
            ),
            (serde_json::json!({}), "providers.bondora.oauth"),
            (
                serde_json::json!({"oauth": {"client_id": "x"}}),
                "providers.bondora.oauth",
            ),
            (
                serde_json::json!({"oauth": oauth(), "throttle": {"rules": [{"name": "x", "capacity": 0, "refill_per_second": 1}]}}),
                "providers.bondora.throttle",
            ),
            (
                serde_json::json!({"oauth": oauth(), "webhooks": {"keys": {}}}),
                "providers.bondora.webhooks.keys",
            ),
            (
                serde_json::json!({"oauth": oauth(), "webhooks": {"keys": {"k": "s3cr3t-value"}, "max_skew_secs": 0}}),
                "providers.bondora.webhooks.max_skew_secs",
            ),
            (
                serde_json::json!({"oauth": oauth(), "webhooks": {"keys": {"k": "s3cr3t-value"}, "skew": 5}}),
                "providers.bondora.webhooks",
            ),
        ];
        for (config, key) in cases {
            let err = build(config.clone())
                .err()
                .unwrap_or_else(|| panic!("{config} was accepted"));
            assert_eq!(err.code(), "INVALID_INPUT", "{config}");
            assert!(
                err.field.as_deref().is_some_and(|f| f.starts_with(key)),
                "{config}: {:?} {}",
                err.field,
                err.message
            );
            assert!(!err.message.contains("s3cr3t-value"), "{}", err.message);
        }
    }

    #[test]
    fn defaults_follow_the_document() {
        let provider = build(serde_json::json!({"kind": "bondora", "oauth": oauth()})).unwrap();
        assert_eq!(provider.kind(), "bondora");
        assert_eq!(provider.name(), "Bondora");
        assert!(provider.webhooks().is_none(), "webhooks need keys");
        let oauth = provider.oauth().unwrap();
        assert_eq!(oauth.scopes(), ["Investments", "BidsRead", "SmBuy"]);
        let url = oauth.authorize_url("xyz");
        assert_eq!(url.host_str(), Some("app.bondora.com"));
        assert_eq!(url.path(), "/oauth/authorize");
        let caps = provider.capabilities();
        assert!(caps.loans.as_ref().unwrap().orders.is_empty());
        assert_eq!(caps.offers.as_ref().unwrap().max_page_size, 1000);
        let policy = bondora_throttle();
        assert_eq!(policy.rules[0].endpoints, EndpointMatch::EachEndpoint);
        assert_eq!(policy.rules[0].capacity, 1);

        // The older authorize page stays configurable.
        let mut old = oauth_with("authorize_url", "https://www.bondora.com/oauth/authorize");
        old["scopes"] = serde_json::json!(["Investments"]);
        let provider = build(serde_json::json!({"oauth": old})).unwrap();
        let oauth = provider.oauth().unwrap();
        assert_eq!(oauth.authorize_url("s").host_str(), Some("www.bondora.com"));
        assert_eq!(oauth.scopes(), ["Investments"]);
    }

    fn oauth_with(key: &str, value: &str) -> serde_json::Value {
        let mut settings = oauth();
        settings[key] = value.into();
        settings
    }

    #[test]
    fn ids_are_checked_before_they_reach_a_path() {
        assert_eq!(
            checked_uuid("6832DEE692A34D9BAF035C53FED0C41D", "auction").unwrap(),
            "6832dee6-92a3-4d9b-af03-5c53fed0c41d"
        );
        for bad in [
            "",
            "123",
            "../../etc",
            "6832dee6-92a3-4d9b-af03-5c53fed0c41",
        ] {
            let err = checked_uuid(bad, "auction").unwrap_err();
            assert_eq!(err.code(), "INVALID_INPUT");
            assert_eq!(err.field.as_deref(), Some("id"));
        }
    }
}
