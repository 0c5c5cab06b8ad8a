use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering as AtomicOrdering};
use std::time::Duration;

use chrono::{TimeZone, Utc};
use rust_decimal::Decimal;

use super::*;
use crate::model::{LoanPurpose, LoanStatus};
use crate::money::{Currency, Money};
use crate::provider::{Capabilities, LoanRequest};
use crate::query::{Bounds, LoanFilterField, compare_loans};

/// A provider over a fixed list that pushes down what it is told it can.
struct Memory {
    id: ProviderId,
    loans: Vec<Loan>,
    caps: Capabilities,
    calls: AtomicUsize,
    fail: Mutex<Option<Error>>,
}

impl Memory {
    fn new(
        id: &str,
        count: u32,
        filters: Vec<LoanFilterField>,
        orders: Vec<LoanOrderField>,
    ) -> Self {
        let id = ProviderId::new(id).unwrap();
        let loans = (0..count).map(|n| loan(&id, n)).collect();
        Memory {
            id,
            loans,
            caps: Capabilities {
                loans: Some(ListCapabilities {
                    filters,
                    orders,
                    default_order: Vec::new(),
                    max_page_size: 10,
                }),
                ..Default::default()
            },
            calls: AtomicUsize::new(0),
            fail: Mutex::new(None),
        }
    }
}

fn loan(provider: &ProviderId, n: u32) -> Loan {
    let rate = Decimal::new(i64::from(3 + (n * 7) % 11), 2);
    Loan {
        id: GlobalId::new(provider.clone(), crate::id::EntityKind::Loan, n.to_string()),
        name: format!("loan {n}"),
        story: None,
        purpose: LoanPurpose::ALL[(n % 12) as usize],
        purpose_raw: None,
        rating: Some(["A", "B", "C"][(n % 3) as usize].to_string()),
        interest_rate: rate,
        revenue_rate: None,
        term_months: 6 + (n * 5) % 80,
        amount: Money::new(Decimal::from(1000 * (1 + n % 17)), Currency::CZK),
        remaining_amount: (!n.is_multiple_of(4))
            .then(|| Money::new(Decimal::from(100 * (n % 9)), Currency::CZK)),
        country: Some("CZ".into()),
        published_at: Some(
            Utc.timestamp_opt(1_700_000_000 + i64::from(n % 13) * 3600, 0)
                .unwrap(),
        ),
        deadline: None,
        status: LoanStatus::Open,
        url: None,
        borrower_region: None,
        borrower_income_type: None,
        insured: Some(n.is_multiple_of(2)),
        investments_count: None,
        raw: Default::default(),
    }
}

#[async_trait]
impl Provider for Memory {
    fn id(&self) -> &ProviderId {
        &self.id
    }
    fn kind(&self) -> &'static str {
        "memory"
    }
    fn name(&self) -> &str {
        "Memory"
    }
    fn capabilities(&self) -> &Capabilities {
        &self.caps
    }
    async fn loans(&self, _ctx: &CallContext, request: &LoanRequest) -> Result<Slice<Loan>> {
        self.calls.fetch_add(1, AtomicOrdering::SeqCst);
        if let Some(error) = self.fail.lock().unwrap().clone() {
            return Err(error);
        }
        let caps = self.caps.loans.as_ref().unwrap();
        // A real platform would refuse what it does not support.
        assert!(
            request
                .filter
                .fields()
                .iter()
                .all(|f| caps.filters.contains(f))
        );
        assert!(caps.can_order_by(&request.order));
        let mut matching: Vec<Loan> = self
            .loans
            .iter()
            .filter(|l| request.filter.matches(l))
            .cloned()
            .collect();
        matching.sort_by(|a, b| {
            compare_loans(a, b, &request.order).then_with(|| a.id.native().cmp(b.id.native()))
        });
        let total = matching.len() as u64;
        let items = matching
            .into_iter()
            .skip(request.offset as usize)
            .take(request.limit as usize)
            .collect();
        Ok(Slice {
            items,
            total: Some(total),
        })
    }
}

fn aggregator(providers: Vec<Arc<Memory>>) -> Aggregator {
    let providers = providers
        .into_iter()
        .map(|p| p as Arc<dyn Provider>)
        .collect();
    Aggregator::new(
        Arc::new(Registry::new(providers).unwrap()),
        AggregatorSettings::default(),
    )
}

fn ctx() -> CallContext {
    CallContext::anonymous(Duration::from_secs(5))
}

fn args(
    filter: LoanFilter,
    order: Vec<OrderKey<LoanOrderField>>,
    first: i64,
) -> ListArgs<LoanFilter, LoanOrderField> {
    ListArgs {
        filter,
        order,
        first: Some(first),
        after: None,
        providers: None,
    }
}

/// Follows cursors to the end and returns every loan in the order served.
async fn walk(
    agg: &Aggregator,
    mut args: ListArgs<LoanFilter, LoanOrderField>,
) -> (Vec<Loan>, Option<u64>) {
    let mut all = Vec::new();
    let mut total = None;
    loop {
        let page = agg.loans(&ctx(), args.clone()).await.unwrap();
        assert!(page.errors.is_empty(), "{:?}", page.errors);
        total = total.or(page.total_count);
        all.extend(page.edges.iter().map(|e| e.node.clone()));
        if !page.has_next_page {
            break;
        }
        args.after = page.end_cursor().map(str::to_string);
    }
    (all, total)
}

fn check_against_brute_force(
    served: &[Loan],
    providers: &[Arc<Memory>],
    filter: &LoanFilter,
    order: &[OrderKey<LoanOrderField>],
) {
    let expected: HashSet<String> = providers
        .iter()
        .flat_map(|p| p.loans.iter())
        .filter(|l| filter.matches(l))
        .map(|l| l.id.to_string())
        .collect();
    let got: Vec<String> = served.iter().map(|l| l.id.to_string()).collect();
    let unique: HashSet<String> = got.iter().cloned().collect();
    assert_eq!(unique.len(), got.len(), "a loan was served twice");
    assert_eq!(unique, expected);
    for pair in served.windows(2) {
        assert_ne!(
            compare_loans(&pair[0], &pair[1], order),
            std::cmp::Ordering::Greater
        );
    }
}

#[tokio::test]
async fn pushed_down_streams_merge_into_one_order_without_loss() {
    let all_fields = vec![LoanFilterField::InterestRate, LoanFilterField::TermMonths];
    let orders = vec![LoanOrderField::InterestRate, LoanOrderField::TermMonths];
    let providers = vec![
        Arc::new(Memory::new("a", 57, all_fields.clone(), orders.clone())),
        Arc::new(Memory::new("b", 31, all_fields, orders)),
    ];
    let agg = aggregator(providers.clone());
    let filter = LoanFilter {
        term_months: Some(Bounds {
            lte: Some(48),
            ..Default::default()
        }),
        ..Default::default()
    };
    let order = vec![
        OrderKey::desc(LoanOrderField::InterestRate),
        OrderKey::asc(LoanOrderField::TermMonths),
    ];
    let (served, total) = walk(&agg, args(filter.clone(), order.clone(), 7)).await;
    check_against_brute_force(&served, &providers, &filter, &order);
    assert_eq!(total, Some(served.len() as u64));
}

#[tokio::test]
async fn residual_filters_and_local_sorting_give_the_same_answer() {
    // Pushes nothing down and cannot order by deadline-like keys.
    let providers = vec![
        Arc::new(Memory::new(
            "a",
            45,
            vec![],
            vec![LoanOrderField::InterestRate],
        )),
        Arc::new(Memory::new("b", 38, vec![LoanFilterField::Rating], vec![])),
    ];
    let agg = aggregator(providers.clone());
    let filter = LoanFilter {
        ratings: Some(vec!["A".into(), "C".into()]),
        insured: Some(true),
        ..Default::default()
    };
    let order = vec![OrderKey::desc(LoanOrderField::InterestRate)];
    let (served, _) = walk(&agg, args(filter.clone(), order.clone(), 4)).await;
    check_against_brute_force(&served, &providers, &filter, &order);

    let order = vec![
        OrderKey::asc(LoanOrderField::RemainingAmount),
        OrderKey::desc(LoanOrderField::PublishedAt),
    ];
    let (served, total) = walk(&agg, args(filter.clone(), order.clone(), 9)).await;
    check_against_brute_force(&served, &providers, &filter, &order);
    // Sorted locally, every provider's matching count is known.
    assert_eq!(total, Some(served.len() as u64));

    // Filtered locally while streaming, provider `a` cannot know its total.
    let order = vec![OrderKey::desc(LoanOrderField::InterestRate)];
    let (_, total) = walk(&agg, args(filter, order, 9)).await;
    assert_eq!(total, None);
}

#[tokio::test]
async fn one_failing_provider_leaves_the_others_intact() {
    let providers = vec![
        Arc::new(Memory::new(
            "a",
            10,
            vec![],
            vec![LoanOrderField::PublishedAt],
        )),
        Arc::new(Memory::new(
            "b",
            10,
            vec![],
            vec![LoanOrderField::PublishedAt],
        )),
    ];
    *providers[1].fail.lock().unwrap() = Some(Error::upstream_unavailable("boom"));
    let agg = aggregator(providers.clone());
    let page = agg
        .loans(&ctx(), args(LoanFilter::default(), vec![], 20))
        .await
        .unwrap();
    assert_eq!(page.edges.len(), 10);
    assert!(page.edges.iter().all(|e| e.node.provider().as_str() == "a"));
    assert_eq!(page.errors.len(), 1);
    assert_eq!(page.errors[0].code(), "UPSTREAM_UNAVAILABLE");
    assert_eq!(
        page.errors[0].provider.as_ref().map(|p| p.as_str()),
        Some("b")
    );
    assert_eq!(page.total_count, None);
}

#[tokio::test]
async fn bad_arguments_are_invalid_input() {
    let providers = vec![Arc::new(Memory::new("a", 10, vec![], vec![]))];
    let agg = aggregator(providers);
    for first in [-1, 101] {
        let err = agg
            .loans(&ctx(), args(LoanFilter::default(), vec![], first))
            .await
            .unwrap_err();
        assert_eq!(
            (err.code(), err.field.as_deref()),
            ("INVALID_INPUT", Some("first"))
        );
    }
    let mut bad = args(LoanFilter::default(), vec![], 5);
    bad.after = Some("not-a-cursor".into());
    assert_eq!(
        agg.loans(&ctx(), bad).await.unwrap_err().field.as_deref(),
        Some("after")
    );

    let page = agg
        .loans(&ctx(), args(LoanFilter::default(), vec![], 5))
        .await
        .unwrap();
    let mut other_query = args(
        LoanFilter {
            insured: Some(true),
            ..Default::default()
        },
        vec![],
        5,
    );
    other_query.after = page.end_cursor().map(str::to_string);
    assert!(
        agg.loans(&ctx(), other_query)
            .await
            .unwrap_err()
            .message
            .contains("different query")
    );

    let mut unknown = args(LoanFilter::default(), vec![], 5);
    unknown.providers = Some(vec!["nope".into()]);
    assert_eq!(
        agg.loans(&ctx(), unknown)
            .await
            .unwrap_err()
            .field
            .as_deref(),
        Some("providers")
    );
}

#[tokio::test]
async fn a_fully_pushed_first_page_is_one_upstream_call() {
    let providers = vec![Arc::new(Memory::new(
        "a",
        50,
        vec![LoanFilterField::Insured],
        vec![LoanOrderField::PublishedAt],
    ))];
    let agg = aggregator(providers.clone());
    let filter = LoanFilter {
        insured: Some(false),
        ..Default::default()
    };
    let page = agg.loans(&ctx(), args(filter, vec![], 20)).await.unwrap();
    assert_eq!(page.edges.len(), 20);
    assert!(page.has_next_page);
    assert_eq!(page.total_count, Some(25));
    assert_eq!(providers[0].calls.load(AtomicOrdering::SeqCst), 1);
}

fn cached(providers: Vec<Arc<Memory>>, policy: crate::cache::CachePolicy) -> Aggregator {
    aggregator(providers).with_cache(crate::cache::ResponseCache::new(
        crate::cache::CacheSettings {
            policy,
            ..Default::default()
        },
    ))
}

#[tokio::test]
async fn repeated_pages_come_from_the_cache_and_say_so() {
    let a = Arc::new(Memory::new(
        "a",
        50,
        vec![],
        vec![LoanOrderField::PublishedAt],
    ));
    let b = Arc::new(Memory::new("b", 50, vec![], vec![]));
    let agg = cached(vec![a.clone(), b.clone()], Default::default());
    let order = vec![OrderKey::desc(LoanOrderField::InterestRate)];
    let first = agg
        .loans(&ctx(), args(LoanFilter::default(), order.clone(), 10))
        .await
        .unwrap();
    let calls = |p: &Memory| p.calls.load(AtomicOrdering::SeqCst);
    let (a_calls, b_calls) = (calls(&a), calls(&b));
    assert!(first.cache.iter().all(|(_, status)| !status.hit));
    assert_eq!(first.cache.iter().count(), 2);

    let second = agg
        .loans(&ctx(), args(LoanFilter::default(), order, 10))
        .await
        .unwrap();
    assert_eq!(
        (calls(&a), calls(&b)),
        (a_calls, b_calls),
        "no upstream call"
    );
    assert!(second.cache.iter().all(|(_, status)| status.hit));
    let ids = |page: &Page<Loan>| {
        page.edges
            .iter()
            .map(|e| e.node.id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(ids(&first), ids(&second));

    let loan = agg.loan(&ctx(), &first.edges[0].node.id).await;
    assert_eq!(
        loan.unwrap_err().kind,
        ErrorKind::NotSupported,
        "errors pass through"
    );
}

#[tokio::test]
async fn a_stale_page_stands_in_while_health_shows_the_failure() {
    let a = Arc::new(Memory::new("a", 30, vec![], vec![]));
    let policy = crate::cache::CachePolicy {
        ttl_public: Duration::ZERO,
        ttl_private: Duration::ZERO,
        stale_if_error: Duration::from_secs(60),
    };
    let agg = cached(vec![a.clone()], policy);
    let query = || args(LoanFilter::default(), vec![], 5);
    let good = agg.loans(&ctx(), query()).await.unwrap();
    assert_eq!(agg.health().get(&a.id).status, HealthStatus::Up);

    *a.fail.lock().unwrap() = Some(Error::upstream_unavailable("down"));
    let stale = agg.loans(&ctx(), query()).await.unwrap();
    assert!(stale.errors.is_empty());
    assert_eq!(stale.edges.len(), good.edges.len());
    let status = stale.cache.get(&a.id).unwrap();
    assert!(status.hit && status.stale);
    assert_eq!(agg.health().get(&a.id).status, HealthStatus::Down);
}
