//! Per request: how each provider's part of the answer was served, written
//! into the response as `extensions.cache`
//! (`{"zonky": {"hit": true, "ageMs": 1234, "stale": false}}`), and the loan
//! DataLoader that batches and dedupes every loan lookup of the request.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, OnceLock};

use async_graphql::dataloader::{DataLoader, HashMapCache, Loader};
use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextPrepareRequest, NextRequest,
};
use async_graphql::futures_util::future::join_all;
use async_graphql::{Context, Name, Request, Response, ServerResult, Value};
use finmesh_core::aggregate::Aggregator;
use finmesh_core::cache::{CacheReport, Cached};
use finmesh_core::model::Loan;
use finmesh_core::{CallContext, Error, GlobalId};

use crate::env::{before_deadline, request_env};

/// What one request collects while it runs.
#[derive(Default)]
pub(crate) struct RequestCache {
    report: Mutex<CacheReport>,
    /// Made by the first loan lookup, with that request's caller.
    loans: OnceLock<DataLoader<LoanLoader, HashMapCache>>,
}

/// Notes how the providers' parts of a field's answer were served.
pub(crate) fn record(ctx: &Context<'_>, report: &CacheReport) {
    if let Some(state) = ctx.data_opt::<Arc<RequestCache>>() {
        state
            .report
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .merge(report);
    }
}

/// A loan by id through the request's DataLoader: lookups of the same
/// request are batched and each id is read once (then the response cache
/// serves it across requests).
pub(crate) async fn load_loan(ctx: &Context<'_>, id: &GlobalId) -> async_graphql::Result<Loan> {
    let (aggregator, call) = request_env(ctx)?;
    let answer = match ctx.data_opt::<Arc<RequestCache>>() {
        Some(state) => {
            let loader = state.loans.get_or_init(|| {
                DataLoader::with_cache(
                    LoanLoader {
                        aggregator: aggregator.clone(),
                        call,
                    },
                    tokio::spawn,
                    HashMapCache::default(),
                )
            });
            match loader.load_one(id.clone()).await {
                Ok(Some(answer)) => answer,
                Ok(None) | Err(_) => Err(Error::internal("the loan lookup lost its answer")),
            }
        }
        // Outside a request of this schema (no extension): look it up alone.
        None => before_deadline(&call, aggregator.loan(&call, id)).await,
    };
    let Cached { value, cache } = answer.map_err(crate::error::graphql_error)?;
    record(ctx, &cache);
    Ok(value)
}

/// Looks up a batch of loans, each through the aggregator (and its cache).
pub(crate) struct LoanLoader {
    aggregator: Aggregator,
    call: CallContext,
}

impl Loader<GlobalId> for LoanLoader {
    /// Each id's own answer or error (one missing loan fails only its field).
    type Value = Result<Cached<Loan>, Error>;
    type Error = Infallible;

    async fn load(&self, ids: &[GlobalId]) -> Result<HashMap<GlobalId, Self::Value>, Self::Error> {
        let lookups = ids.iter().map(|id| async move {
            let loan = before_deadline(&self.call, self.aggregator.loan(&self.call, id)).await;
            (id.clone(), loan)
        });
        Ok(join_all(lookups).await.into_iter().collect())
    }
}

/// Gives each request its [`RequestCache`] and writes `extensions.cache`.
pub(crate) struct CacheExtensions;

impl ExtensionFactory for CacheExtensions {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(PerRequest(Arc::default()))
    }
}

struct PerRequest(Arc<RequestCache>);

#[async_trait::async_trait]
impl Extension for PerRequest {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        next.run(ctx, request.data(self.0.clone())).await
    }

    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        let report = self
            .0
            .report
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        if !report.is_empty() {
            response
                .extensions
                .insert("cache".to_string(), report_value(&report));
        }
        response
    }
}

fn report_value(report: &CacheReport) -> Value {
    Value::Object(
        report
            .iter()
            .map(|(provider, status)| {
                let age_ms = u64::try_from(status.age.as_millis()).unwrap_or(u64::MAX);
                let fields = [
                    (Name::new("hit"), Value::Boolean(status.hit)),
                    (Name::new("ageMs"), Value::Number(age_ms.into())),
                    (Name::new("stale"), Value::Boolean(status.stale)),
                ];
                (
                    Name::new(provider.as_str()),
                    Value::Object(fields.into_iter().collect()),
                )
            })
            .collect(),
    )
}
