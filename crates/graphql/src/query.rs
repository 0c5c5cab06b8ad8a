//! The query root.

use async_graphql::{Context, ID, Object, Result};
use finmesh_core::aggregate::{ListArgs, Page};
use finmesh_core::query::OrderKey;
use finmesh_core::{EntityKind, Error, GlobalId, ProviderId};

use crate::cache::{load_loan, record};
use crate::connection::{
    InvestmentConnection, LoanConnection, OfferConnection, TransferConnection,
};
use crate::env::{before_deadline, or_null, report, request_env, signed_in};
use crate::error::graphql_error;
use crate::input::{
    InvestmentFilter, InvestmentOrderField, LoanFilter, LoanOrderField, OfferFilter,
    OfferOrderField, Order, TransferFilter, TransferOrderField, order_keys,
};
use crate::investment::{Investment, PortfolioEntry};
use crate::loan::Loan;
use crate::me::Me;
use crate::provider::ProviderInfo;
use crate::transfer::{Transfer, transfer_id};

#[derive(Default)]
pub struct QueryRoot;

#[Object(name = "Query")]
impl QueryRoot {
    /// The signed-in user; null with an `UNAUTHENTICATED` error without a token.
    async fn me(&self, ctx: &Context<'_>) -> Option<Me> {
        let me = || {
            let (_, call) = request_env(ctx)?;
            let principal = signed_in(&call, "see your account")?;
            Ok(Some(Me(principal.clone())))
        };
        or_null(ctx, me())
    }

    /// Marketplace loans across providers, newest first unless `orderBy` says
    /// otherwise. When some providers fail, the others' loans are returned and
    /// each failure is listed in `errors` with `extensions.provider`.
    #[graphql(
        complexity = "crate::limits::page_cost(__ctx, __variables_definition, __field, child_complexity)"
    )]
    async fn loans(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only loans meeting every condition.")] filter: Option<LoanFilter>,
        #[graphql(desc = "Sort keys, most significant first.")] order_by: Option<
            Vec<Order<LoanOrderField>>,
        >,
        #[graphql(desc = "Page size; the gateway caps it (100 by default).")] first: Option<i32>,
        #[graphql(desc = "The `endCursor` of the same query.")] after: Option<String>,
        #[graphql(desc = "Only these provider ids.")] providers: Option<Vec<String>>,
    ) -> Result<LoanConnection> {
        let (aggregator, call) = request_env(ctx)?;
        let args = list_args(
            filter.map(LoanFilter::into_query),
            order_keys(order_by),
            first,
            after,
            providers,
        )?;
        let page = before_deadline(&call, aggregator.loans(&call, args))
            .await
            .map_err(graphql_error)?;
        Ok(connection(ctx, page))
    }

    /// One loan by its global id; null with a `NOT_FOUND` error when there is none.
    async fn loan(&self, ctx: &Context<'_>, id: ID) -> Option<Loan> {
        let loan = async {
            let id = GlobalId::parse_as(&id, EntityKind::Loan).map_err(graphql_error)?;
            Ok(Some(Loan(load_loan(ctx, &id).await?)))
        };
        or_null(ctx, loan.await)
    }

    /// The signed-in user's investments across the providers they connected,
    /// newest purchase first unless `orderBy` says otherwise. A provider that
    /// fails, or that the user has not connected (`NOT_CONNECTED`), is listed
    /// in `errors` beside the others' investments.
    #[graphql(
        complexity = "crate::limits::page_cost(__ctx, __variables_definition, __field, child_complexity)"
    )]
    async fn investments(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only investments meeting every condition.")] filter: Option<
            InvestmentFilter,
        >,
        #[graphql(desc = "Sort keys, most significant first.")] order_by: Option<
            Vec<Order<InvestmentOrderField>>,
        >,
        #[graphql(desc = "Page size; the gateway caps it (100 by default).")] first: Option<i32>,
        #[graphql(desc = "The `endCursor` of the same query.")] after: Option<String>,
        #[graphql(desc = "Only these provider ids.")] providers: Option<Vec<String>>,
    ) -> Result<InvestmentConnection> {
        let (aggregator, call) = request_env(ctx)?;
        signed_in(&call, "see your investments")?;
        let args = list_args(
            filter.map(InvestmentFilter::into_query),
            order_keys(order_by),
            first,
            after,
            providers,
        )?;
        let page = before_deadline(&call, aggregator.investments(&call, args))
            .await
            .map_err(graphql_error)?;
        Ok(connection(ctx, page))
    }

    /// One of the signed-in user's investments by its global id; null with a
    /// `NOT_FOUND` error when there is none.
    async fn investment(&self, ctx: &Context<'_>, id: ID) -> Option<Investment> {
        let investment = async {
            let (aggregator, call) = request_env(ctx)?;
            signed_in(&call, "see your investments")?;
            let id = GlobalId::parse_as(&id, EntityKind::Investment).map_err(graphql_error)?;
            let investment = before_deadline(&call, aggregator.investment(&call, &id))
                .await
                .map_err(graphql_error)?;
            record(ctx, &investment.cache);
            Ok(Some(Investment(investment.value)))
        };
        or_null(ctx, investment.await)
    }

    /// The signed-in user's portfolio, one entry per provider and currency.
    /// A provider that fails is listed in `errors` beside the others' entries.
    async fn portfolio(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only these provider ids.")] providers: Option<Vec<String>>,
    ) -> Result<Vec<PortfolioEntry>> {
        let (aggregator, call) = request_env(ctx)?;
        signed_in(&call, "see your portfolio")?;
        let portfolio = before_deadline(&call, aggregator.portfolio(&call, providers.as_deref()))
            .await
            .map_err(graphql_error)?;
        record(ctx, &portfolio.cache);
        let (summaries, mut errors) = portfolio.value;
        // Providers asked for by name that keep no investments, as `investments` says.
        for name in providers.iter().flatten() {
            if let Ok(id) = ProviderId::new(name)
                && let Ok(provider) = aggregator.registry().get(&id)
                && provider.capabilities().investments.is_none()
            {
                errors.push(Error::not_supported("portfolio").with_provider(&id));
            }
        }
        report(ctx, &errors);
        Ok(summaries.into_iter().map(PortfolioEntry::from).collect())
    }

    /// Loan parts for sale on the providers' secondary markets, newest listing
    /// first unless `orderBy` says otherwise. When some providers fail, the
    /// others' offers are returned and each failure is listed in `errors`.
    #[graphql(
        complexity = "crate::limits::page_cost(__ctx, __variables_definition, __field, child_complexity)"
    )]
    async fn secondary_market(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only offers meeting every condition.")] filter: Option<OfferFilter>,
        #[graphql(desc = "Sort keys, most significant first.")] order_by: Option<
            Vec<Order<OfferOrderField>>,
        >,
        #[graphql(desc = "Page size; the gateway caps it (100 by default).")] first: Option<i32>,
        #[graphql(desc = "The `endCursor` of the same query.")] after: Option<String>,
        #[graphql(desc = "Only these provider ids.")] providers: Option<Vec<String>>,
    ) -> Result<OfferConnection> {
        let (aggregator, call) = request_env(ctx)?;
        let args = list_args(
            filter.map(OfferFilter::into_query),
            order_keys(order_by),
            first,
            after,
            providers,
        )?;
        let page = before_deadline(&call, aggregator.offers(&call, args))
            .await
            .map_err(graphql_error)?;
        Ok(connection(ctx, page))
    }

    /// The signed-in user's transfers across payment providers, newest first
    /// unless `orderBy` says otherwise. When some providers fail, the others'
    /// transfers are returned and each failure is listed in `errors`.
    #[graphql(
        complexity = "crate::limits::page_cost(__ctx, __variables_definition, __field, child_complexity)"
    )]
    async fn transfers(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only transfers meeting every condition.")] filter: Option<TransferFilter>,
        #[graphql(desc = "Sort keys, most significant first.")] order_by: Option<
            Vec<Order<TransferOrderField>>,
        >,
        #[graphql(desc = "Page size; the gateway caps it (100 by default).")] first: Option<i32>,
        #[graphql(desc = "The `endCursor` of the same query.")] after: Option<String>,
        #[graphql(desc = "Only these provider ids.")] providers: Option<Vec<String>>,
    ) -> Result<TransferConnection> {
        let (aggregator, call) = request_env(ctx)?;
        signed_in(&call, "see your transfers")?;
        let args = list_args(
            filter.map(TransferFilter::into_query),
            order_keys(order_by),
            first,
            after,
            providers,
        )?;
        let page = before_deadline(&call, aggregator.transfers(&call, args))
            .await
            .map_err(graphql_error)?;
        Ok(connection(ctx, page))
    }

    /// One transfer by its global id; null with a `NOT_FOUND` error when there
    /// is none.
    async fn transfer(&self, ctx: &Context<'_>, id: ID) -> Option<Transfer> {
        let transfer = async {
            let (aggregator, call) = request_env(ctx)?;
            signed_in(&call, "see your transfers")?;
            let id = transfer_id(&id).map_err(graphql_error)?;
            let transfer = before_deadline(&call, aggregator.transfer(&call, &id))
                .await
                .map_err(graphql_error)?;
            record(ctx, &transfer.cache);
            Ok(Some(Transfer(transfer.value)))
        };
        or_null(ctx, transfer.await)
    }

    /// The configured providers, what they offer and how they are doing.
    async fn providers(&self, ctx: &Context<'_>) -> Result<Vec<ProviderInfo>> {
        let (aggregator, _) = request_env(ctx)?;
        Ok(aggregator
            .registry()
            .all()
            .iter()
            .map(|provider| {
                ProviderInfo::new(provider.as_ref(), aggregator.health().get(provider.id()))
            })
            .collect())
    }
}

/// A list query's arguments, checked; the first refusal is the error.
fn list_args<F: Default, O>(
    filter: Option<Result<F, Error>>,
    order: Result<Vec<OrderKey<O>>, Error>,
    first: Option<i32>,
    after: Option<String>,
    providers: Option<Vec<String>>,
) -> Result<ListArgs<F, O>> {
    Ok(ListArgs {
        filter: filter
            .transpose()
            .map_err(graphql_error)?
            .unwrap_or_default(),
        order: order.map_err(graphql_error)?,
        first: first.map(i64::from),
        after,
        providers,
    })
}

/// The page as a connection, its per-provider failures listed beside it.
fn connection<T, C: From<Page<T>>>(ctx: &Context<'_>, page: Page<T>) -> C {
    report(ctx, &page.errors);
    record(ctx, &page.cache);
    C::from(page)
}
