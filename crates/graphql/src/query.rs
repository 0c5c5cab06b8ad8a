//! The query root.

use std::future::Future;
use std::time::Duration;

use async_graphql::{Context, ID, Object, Result};
use finmesh_core::aggregate::{Aggregator, ListArgs};
use finmesh_core::{CallContext, EntityKind, Error, GlobalId};

use crate::SchemaOptions;
use crate::error::{graphql_error, server_error};
use crate::input::{LoanFilter, LoanOrder, order_keys};
use crate::loan::{Loan, LoanConnection};
use crate::provider::ProviderInfo;

pub struct QueryRoot;

#[Object(name = "Query")]
impl QueryRoot {
    /// Marketplace loans across providers, newest first unless `orderBy` says
    /// otherwise. When some providers fail, the others' loans are returned and
    /// each failure is listed in `errors` with `extensions.provider`.
    async fn loans(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Only loans meeting every condition.")] filter: Option<LoanFilter>,
        #[graphql(desc = "Sort keys, most significant first.")] order_by: Option<Vec<LoanOrder>>,
        #[graphql(desc = "Page size; the gateway caps it (100 by default).")] first: Option<i32>,
        #[graphql(desc = "The `endCursor` of the same query.")] after: Option<String>,
        #[graphql(desc = "Only these provider ids.")] providers: Option<Vec<String>>,
    ) -> Result<LoanConnection> {
        let (aggregator, call) = request_env(ctx)?;
        let args = ListArgs {
            filter: filter
                .map(LoanFilter::into_query)
                .transpose()
                .map_err(graphql_error)?
                .unwrap_or_default(),
            order: order_keys(order_by.unwrap_or_default()).map_err(graphql_error)?,
            first: first.map(i64::from),
            after,
            providers,
        };
        let page = before_deadline(&call, aggregator.loans(&call, args))
            .await
            .map_err(graphql_error)?;
        for error in &page.errors {
            ctx.add_error(ctx.set_error_path(server_error(error)));
        }
        Ok(page.into())
    }

    /// One loan by its global id; null with a `NOT_FOUND` error when there is none.
    async fn loan(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Loan>> {
        let (aggregator, call) = request_env(ctx)?;
        let id = GlobalId::parse_as(&id, EntityKind::Loan).map_err(graphql_error)?;
        let loan = before_deadline(&call, aggregator.loan(&call, &id))
            .await
            .map_err(graphql_error)?;
        Ok(Some(Loan(loan)))
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

/// The aggregator, and the caller's context from the request data (or a
/// fresh anonymous one with the schema's timeout).
fn request_env<'a>(ctx: &Context<'a>) -> Result<(&'a Aggregator, CallContext)> {
    let aggregator = ctx
        .data_opt::<Aggregator>()
        .ok_or_else(|| graphql_error(Error::internal("the schema was built without providers")))?;
    let call = match ctx.data_opt::<CallContext>() {
        Some(call) => call.clone(),
        None => {
            let timeout = ctx
                .data_opt::<SchemaOptions>()
                .map(|options| options.request_timeout)
                .unwrap_or_else(|| SchemaOptions::default().request_timeout);
            CallContext::anonymous(timeout)
        }
    };
    Ok((aggregator, call))
}

/// How long after the deadline the providers' own deadline handling, which
/// keeps the other providers' answers, gets before the whole request gives up.
const DEADLINE_GRACE: Duration = Duration::from_millis(500);

/// A backstop so that no request outlives its deadline, whatever a provider does.
async fn before_deadline<T>(
    call: &CallContext,
    work: impl Future<Output = Result<T, Error>>,
) -> Result<T, Error> {
    tokio::time::timeout_at(call.deadline + DEADLINE_GRACE, work)
        .await
        .unwrap_or_else(|_| {
            Err(Error::upstream_unavailable(
                "the providers did not answer before the request deadline",
            ))
        })
}
