//! The conformance suite every finmesh adapter must pass, in the spirit of
//! OpenDAL's behaviour tests: one set of checks, run against each adapter
//! talking to its platform's simulator.
//!
//! An adapter's own test builds the adapter against a running simulator,
//! implements [`Simulator`] over that simulator's control surface, and calls
//! [`check_loans`] (and [`check_offers`] for a secondary market). Failures
//! panic with a message that says what broke.
//!
//! The suite calls the provider as [`Simulator::principal`] (anonymously by
//! default); adapters whose platform wants a user's token for everything get
//! one from a [`FixedTokens`] in their `FactoryContext`. Simulators of
//! `finmesh-sandbox` inject the suite's [`Fault`]s through [`sandbox_faults`].
// A test-support crate: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod lists;
mod offers;
mod sandbox;
mod tokens;
pub mod transfers;

pub use offers::check_offers;
pub use sandbox::sandbox_faults;
pub use tokens::FixedTokens;
pub use transfers::{TransferSimulator, check_transfers};

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use finmesh_core::aggregate::{Aggregator, AggregatorSettings, Loans};
use finmesh_core::model::Loan;
use finmesh_core::query::{Bounds, LoanFilter, LoanFilterField, LoanOrderField, OrderKey};
use finmesh_core::registry::Registry;
use finmesh_core::{CallContext, ErrorKind, ListRequest, Principal, Provider};
use tokio::time::Instant;

/// A fault the simulator injects into its next answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// A 5xx answer.
    ServerError,
    /// A 200 whose body is not JSON.
    Malformed,
    /// A 200 whose JSON is cut short.
    Truncated,
    /// The connection closes without an answer.
    Drop,
    /// A 429 with `Retry-After`.
    RateLimited { retry_after: Duration },
}

/// The control surface of a platform simulator, as the suite needs it.
#[async_trait]
pub trait Simulator: Send + Sync {
    /// Native ids of every loan the simulator lists on its marketplace.
    fn marketplace_ids(&self) -> HashSet<String>;
    /// A native id no loan has.
    fn missing_loan_id(&self) -> String;
    /// Makes the next requests fail, one fault each, in order.
    fn inject(&self, faults: Vec<Fault>);
    /// How many requests the simulator refused with its own rate limit.
    fn throttled(&self) -> u64;
    /// Who the suite calls the provider as; `None` calls anonymously.
    fn principal(&self) -> Option<Principal> {
        None
    }
    /// Native ids of every offer on the simulator's secondary market (for
    /// [`check_offers`]).
    fn offer_ids(&self) -> HashSet<String> {
        panic!("implement Simulator::offer_ids to run check_offers")
    }
}

const TIMEOUT: Duration = Duration::from_secs(20);

/// The faults every suite injects, and the error kind each must become.
pub(crate) const FAULT_KINDS: [(Fault, ErrorKind); 4] = [
    (Fault::ServerError, ErrorKind::UpstreamUnavailable),
    (Fault::Drop, ErrorKind::UpstreamUnavailable),
    (Fault::Malformed, ErrorKind::UpstreamProtocol),
    (Fault::Truncated, ErrorKind::UpstreamProtocol),
];

/// Whom the suite's calls are made for: the simulator's principal, if any.
#[derive(Debug, Clone)]
pub(crate) struct Caller(Option<Principal>);

impl Caller {
    pub(crate) fn of(simulator: &dyn Simulator) -> Self {
        Caller(simulator.principal())
    }

    /// A fresh context with the suite's usual timeout.
    pub(crate) fn ctx(&self) -> CallContext {
        self.ctx_with(TIMEOUT)
    }

    pub(crate) fn ctx_with(&self, timeout: Duration) -> CallContext {
        match &self.0 {
            Some(principal) => CallContext::for_principal(principal.clone(), timeout),
            None => CallContext::anonymous(timeout),
        }
    }
}

/// Runs every loan check against `provider`, which talks to `simulator`.
///
/// The rate-limit check runs last: it pauses the provider's throttle buckets.
pub async fn check_loans(provider: Arc<dyn Provider>, simulator: &dyn Simulator) {
    let caller = Caller::of(simulator);
    let ctx = || caller.ctx();
    let all = lists::paging_visits_every_record_once::<Loans>(
        &provider,
        &ctx,
        simulator.marketplace_ids(),
        97,
        333,
        vec![OrderKey::asc(LoanOrderField::PublishedAt)],
    )
    .await;
    lists::filters_match_brute_force::<Loans>(
        &provider,
        &ctx,
        &all,
        sample_filters(&all),
        combined_filter(&all),
        vec![OrderKey::desc(LoanOrderField::InterestRate)],
    )
    .await;
    orders_match_brute_force(&provider, &ctx, &all).await;
    lists::pushed_down_filters_are_evaluated_upstream::<Loans>(
        &provider,
        &ctx,
        &all,
        sample_filters(&all),
    )
    .await;
    loan_by_id(&provider, &caller, &all, simulator).await;
    faults_map_to_the_taxonomy(&provider, &caller, simulator).await;
    rate_limits_are_obeyed(&provider, &caller, simulator).await;
    assert_eq!(
        simulator.throttled(),
        0,
        "the adapter made requests the platform refused with 429"
    );
}

pub(crate) fn aggregator(provider: &Arc<dyn Provider>) -> Aggregator {
    let registry = Registry::new(vec![provider.clone()]).expect("one provider");
    Aggregator::new(
        Arc::new(registry),
        AggregatorSettings {
            max_page_size: 100,
            ..Default::default()
        },
    )
}

/// One filter per field, built from values the data really has.
fn sample_filters(all: &[Loan]) -> Vec<(LoanFilterField, LoanFilter)> {
    fn median<T: Ord + Copy>(mut values: Vec<T>) -> T {
        values.sort();
        values[values.len() / 2]
    }
    let rate = median(all.iter().map(|l| l.interest_rate).collect());
    let amount = median(all.iter().map(|l| l.amount.amount).collect());
    let published = median(all.iter().filter_map(|l| l.published_at).collect());
    let mut ratings: Vec<String> = all.iter().filter_map(|l| l.rating.clone()).collect();
    ratings.sort();
    ratings.dedup();
    let mut purposes: Vec<_> = all.iter().map(|l| l.purpose).collect();
    purposes.sort();
    purposes.dedup();
    let first = &all[0];
    vec![
        (
            LoanFilterField::InterestRate,
            LoanFilter {
                interest_rate: Some(Bounds {
                    gte: Some(rate),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ),
        (
            LoanFilterField::TermMonths,
            LoanFilter {
                term_months: Some(Bounds {
                    gt: Some(12),
                    lte: Some(48),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ),
        (
            LoanFilterField::Amount,
            LoanFilter {
                amount: Some(Bounds {
                    lt: Some(amount),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ),
        (
            LoanFilterField::Rating,
            LoanFilter {
                ratings: Some(ratings.iter().step_by(2).cloned().collect()),
                ..Default::default()
            },
        ),
        (
            LoanFilterField::Purpose,
            LoanFilter {
                purposes: Some(purposes.iter().step_by(2).copied().collect()),
                ..Default::default()
            },
        ),
        (
            LoanFilterField::Currency,
            LoanFilter {
                currency: Some(first.currency()),
                ..Default::default()
            },
        ),
        (
            LoanFilterField::Country,
            LoanFilter {
                country: first.country.clone(),
                ..Default::default()
            },
        ),
        (
            LoanFilterField::Insured,
            LoanFilter {
                insured: Some(true),
                ..Default::default()
            },
        ),
        (
            LoanFilterField::PublishedAt,
            LoanFilter {
                published_at: Some(Bounds {
                    gte: Some(published),
                    ..Default::default()
                }),
                ..Default::default()
            },
        ),
    ]
}

/// All the sample filters at once.
fn combined_filter(all: &[Loan]) -> LoanFilter {
    sample_filters(all)
        .into_iter()
        .fold(LoanFilter::default(), |mut acc, (_, f)| {
            acc.interest_rate = acc.interest_rate.or(f.interest_rate);
            acc.term_months = acc.term_months.or(f.term_months);
            acc.ratings = acc.ratings.or(f.ratings);
            acc.insured = acc.insured.or(f.insured);
            acc
        })
}

async fn orders_match_brute_force(
    provider: &Arc<dyn Provider>,
    ctx: &impl Fn() -> CallContext,
    all: &[Loan],
) {
    let filter = LoanFilter {
        term_months: Some(Bounds {
            lte: Some(60),
            ..Default::default()
        }),
        ..Default::default()
    };
    let fields = [
        LoanOrderField::InterestRate,
        LoanOrderField::TermMonths,
        LoanOrderField::PublishedAt,
        LoanOrderField::RemainingAmount,
        LoanOrderField::Deadline,
    ];
    let mixed = vec![
        OrderKey::desc(LoanOrderField::InterestRate),
        OrderKey::asc(LoanOrderField::TermMonths),
    ];
    lists::orders_match_brute_force::<Loans>(provider, ctx, all, filter, &fields, mixed).await;
}

async fn loan_by_id(
    provider: &Arc<dyn Provider>,
    caller: &Caller,
    all: &[Loan],
    simulator: &dyn Simulator,
) {
    let listed = &all[all.len() / 2];
    let loan = provider
        .loan(&caller.ctx(), listed.id.native())
        .await
        .unwrap();
    assert_eq!(loan.id, listed.id);
    assert_eq!(loan.amount, listed.amount);
    assert_eq!(loan.interest_rate, listed.interest_rate);

    let missing = provider
        .loan(&caller.ctx(), &simulator.missing_loan_id())
        .await
        .unwrap_err();
    assert_eq!(missing.kind, ErrorKind::NotFound, "{missing:?}");
    assert_eq!(missing.provider.as_ref(), Some(provider.id()));
}

async fn first_page(
    provider: &Arc<dyn Provider>,
    ctx: &CallContext,
) -> finmesh_core::Result<usize> {
    let request = ListRequest {
        filter: LoanFilter::default(),
        order: vec![],
        offset: 0,
        limit: 10,
    };
    provider.loans(ctx, &request).await.map(|s| s.items.len())
}

async fn faults_map_to_the_taxonomy(
    provider: &Arc<dyn Provider>,
    caller: &Caller,
    simulator: &dyn Simulator,
) {
    for (fault, expected) in FAULT_KINDS {
        // Enough copies that a retrying adapter still sees the fault at the end.
        simulator.inject(vec![fault.clone(); 5]);
        let error = first_page(provider, &caller.ctx()).await.unwrap_err();
        assert_eq!(error.kind, expected, "{fault:?} gave {error:?}");
        assert_eq!(
            error.provider.as_ref(),
            Some(provider.id()),
            "{fault:?} lost its provider"
        );
        simulator.inject(vec![]);
        assert!(
            first_page(provider, &caller.ctx()).await.is_ok(),
            "no recovery after {fault:?}"
        );
    }
}

async fn rate_limits_are_obeyed(
    provider: &Arc<dyn Provider>,
    caller: &Caller,
    simulator: &dyn Simulator,
) {
    // A short Retry-After fits the deadline: the adapter waits and succeeds.
    simulator.inject(vec![Fault::RateLimited {
        retry_after: Duration::from_secs(1),
    }]);
    let started = Instant::now();
    assert_eq!(first_page(provider, &caller.ctx()).await.unwrap(), 10);
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "Retry-After ignored: answered after {:?}",
        started.elapsed()
    );

    // A long one does not: the caller learns when to come back, at once.
    simulator.inject(vec![Fault::RateLimited {
        retry_after: Duration::from_secs(30),
    }]);
    let short = caller.ctx_with(Duration::from_secs(3));
    let started = Instant::now();
    let error = first_page(provider, &short).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::RateLimited, "{error:?}");
    assert!(
        error
            .retry_after
            .is_some_and(|r| r >= Duration::from_secs(20)),
        "{error:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "waited past the deadline"
    );
}
