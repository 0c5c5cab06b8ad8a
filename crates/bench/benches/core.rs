//! Micro-benchmarks of finmesh-core's hot paths, through its public API:
//! cursors, the query fingerprint, the k-way merge of the aggregator (with
//! in-memory providers), filter evaluation and the local sort.
//!
//! `cargo bench -p finmesh-bench --bench core` (add `-- <name>` to pick one).
//!
//! Not here, and why: the Bondora envelope and Bongloy JSON:API decoding are
//! private to their adapter crates (`envelope::open`, `wire::transfer` are
//! `pub(crate)`), and the response cache's key building has no public API yet.

// Benchmark set-up that fails should fail loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{TimeZone, Utc};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use finmesh_core::aggregate::{Aggregator, AggregatorSettings, Cursor, ListArgs, fingerprint};
use finmesh_core::model::{Loan, LoanPurpose, LoanStatus};
use finmesh_core::provider::LoanRequest;
use finmesh_core::query::{
    Bounds, LoanFilter, LoanFilterField, LoanOrderField, OrderKey, compare_loans,
};
use finmesh_core::registry::Registry;
use finmesh_core::{
    CallContext, Capabilities, Currency, EntityKind, GlobalId, ListCapabilities, Money, Provider,
    ProviderId, Result, Slice,
};
use rust_decimal::Decimal;

/// A made-up loan, varied enough for filters and orders to matter.
fn loan(provider: &ProviderId, n: u32) -> Loan {
    Loan {
        id: GlobalId::new(provider.clone(), EntityKind::Loan, n.to_string()),
        name: format!("Loan number {n}"),
        story: None,
        purpose: LoanPurpose::ALL[(n % 12) as usize],
        purpose_raw: None,
        rating: Some(["AAAAA", "AAA", "AA", "A", "B", "C", "D"][(n % 7) as usize].to_string()),
        interest_rate: Decimal::new(i64::from(399 + (n * 37) % 1500), 4),
        revenue_rate: None,
        term_months: 6 + (n * 7) % 79,
        amount: Money::new(Decimal::from(10_000 + 1_000 * (n % 190)), Currency::CZK),
        remaining_amount: Some(Money::new(Decimal::from(100 * (n % 97)), Currency::CZK)),
        country: Some(if n.is_multiple_of(5) { "SK" } else { "CZ" }.to_string()),
        published_at: Utc
            .timestamp_opt(1_760_000_000 + i64::from((n * 7_919) % 500_000), 0)
            .single(),
        deadline: None,
        status: LoanStatus::Open,
        url: None,
        borrower_region: None,
        borrower_income_type: None,
        insured: Some(n.is_multiple_of(3)),
        investments_count: None,
        raw: Arc::new(serde_json::Value::Null),
    }
}

fn loans(provider: &ProviderId, count: u32) -> Vec<Loan> {
    (0..count).map(|n| loan(provider, n)).collect()
}

/// A platform over a fixed list that filters and orders what it declares,
/// as a platform would, keeping its list sorted by the default order
/// (newest first) so the common request costs a slice, not a sort.
struct Memory {
    id: ProviderId,
    newest_first: Vec<Loan>,
    caps: Capabilities,
}

impl Memory {
    fn new(id: &str, count: u32, filters: Vec<LoanFilterField>) -> Arc<Memory> {
        let id = ProviderId::new(id).unwrap();
        let mut newest_first = loans(&id, count);
        let newest = [OrderKey::desc(LoanOrderField::PublishedAt)];
        newest_first.sort_by(|a, b| {
            compare_loans(a, b, &newest).then_with(|| a.id.native().cmp(b.id.native()))
        });
        Arc::new(Memory {
            id,
            newest_first,
            caps: Capabilities {
                loans: Some(ListCapabilities {
                    filters,
                    orders: vec![LoanOrderField::PublishedAt, LoanOrderField::InterestRate],
                    default_order: Vec::new(),
                    max_page_size: 500,
                }),
                ..Capabilities::default()
            },
        })
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
        let newest = [OrderKey::desc(LoanOrderField::PublishedAt)];
        let mut matching: Vec<&Loan> = self
            .newest_first
            .iter()
            .filter(|l| request.filter.matches(l))
            .collect();
        if !request.order.is_empty() && request.order[..] != newest[..] {
            matching.sort_by(|a, b| {
                compare_loans(a, b, &request.order).then_with(|| a.id.native().cmp(b.id.native()))
            });
        }
        let total = matching.len() as u64;
        let items = matching
            .into_iter()
            .skip(request.offset as usize)
            .take(request.limit as usize)
            .cloned()
            .collect();
        Ok(Slice {
            items,
            total: Some(total),
        })
    }
}

fn aggregator(providers: &[Arc<Memory>]) -> Aggregator {
    let providers = providers
        .iter()
        .map(|p| p.clone() as Arc<dyn Provider>)
        .collect();
    Aggregator::new(
        Arc::new(Registry::new(providers).unwrap()),
        AggregatorSettings::default(),
    )
}

fn args(
    filter: LoanFilter,
    first: i64,
    after: Option<String>,
) -> ListArgs<LoanFilter, LoanOrderField> {
    ListArgs {
        filter,
        order: Vec::new(),
        first: Some(first),
        after,
        providers: None,
    }
}

fn cursors(c: &mut Criterion) {
    let query = fingerprint(&("loans", LoanFilter::default(), ["zonky", "bondora"]));
    let mut cursor = Cursor::start(query.clone());
    for (provider, position) in [("bondora", 1_234), ("mintos", 88), ("zonky", 56_789)] {
        cursor.set_position(&ProviderId::new(provider).unwrap(), position);
    }
    let encoded = cursor.encode();
    c.bench_function("cursor/encode (3 providers)", |b| {
        b.iter(|| black_box(&cursor).encode())
    });
    c.bench_function("cursor/decode (3 providers)", |b| {
        b.iter(|| Cursor::decode(black_box(&encoded), black_box(&query)).unwrap())
    });
    let filter = LoanFilter {
        interest_rate: Some(Bounds {
            gte: Some(Decimal::new(8, 2)),
            ..Bounds::default()
        }),
        ratings: Some(vec!["A".into(), "B".into()]),
        ..LoanFilter::default()
    };
    let order = [OrderKey::desc(LoanOrderField::InterestRate)];
    c.bench_function("fingerprint/query (filter, order, 2 providers)", |b| {
        b.iter(|| fingerprint(black_box(&("loans", &filter, &order, ["bondora", "zonky"]))))
    });
}

fn merge(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ctx = CallContext::anonymous(Duration::from_secs(3_600));
    let all_pushed = vec![
        LoanFilterField::InterestRate,
        LoanFilterField::TermMonths,
        LoanFilterField::Rating,
    ];
    let providers: Vec<Arc<Memory>> = ["alpha", "beta", "gamma"]
        .into_iter()
        .map(|id| Memory::new(id, 5_000, all_pushed.clone()))
        .collect();
    let agg = aggregator(&providers);
    c.bench_function("merge/3 providers, first page of 100", |b| {
        b.iter(|| {
            let page = runtime
                .block_on(agg.loans(&ctx, args(LoanFilter::default(), 100, None)))
                .unwrap();
            assert_eq!(page.edges.len(), 100);
            page
        })
    });
    let first = runtime
        .block_on(agg.loans(&ctx, args(LoanFilter::default(), 100, None)))
        .unwrap();
    let after = first.end_cursor().map(str::to_string);
    c.bench_function("merge/3 providers, next page of 100 (cursor)", |b| {
        b.iter(|| {
            runtime
                .block_on(agg.loans(&ctx, args(LoanFilter::default(), 100, after.clone())))
                .unwrap()
        })
    });
    // Country is not pushed down: the aggregator reads larger windows and filters locally.
    let residual = LoanFilter {
        country: Some("SK".into()),
        ..LoanFilter::default()
    };
    c.bench_function("merge/3 providers, page of 20 with a local filter", |b| {
        b.iter(|| {
            runtime
                .block_on(agg.loans(&ctx, args(residual.clone(), 20, None)))
                .unwrap()
        })
    });
}

fn filters(c: &mut Criterion) {
    let provider = ProviderId::new("zonky").unwrap();
    let all = loans(&provider, 10_000);
    let filter = LoanFilter {
        interest_rate: Some(Bounds {
            gte: Some(Decimal::new(6, 2)),
            lt: Some(Decimal::new(15, 2)),
            ..Bounds::default()
        }),
        term_months: Some(Bounds {
            lte: Some(60),
            ..Bounds::default()
        }),
        ratings: Some(vec!["AA".into(), "A".into(), "B".into()]),
        purposes: Some(vec![
            LoanPurpose::Vehicle,
            LoanPurpose::HomeImprovement,
            LoanPurpose::Travel,
        ]),
        currency: Some(Currency::CZK),
        insured: Some(true),
        ..LoanFilter::default()
    };
    c.bench_function(
        "filter/LoanFilter::matches over 10k loans (6 conditions)",
        |b| b.iter(|| all.iter().filter(|l| black_box(&filter).matches(l)).count()),
    );
    let order = [
        OrderKey::desc(LoanOrderField::InterestRate),
        OrderKey::asc(LoanOrderField::TermMonths),
    ];
    c.bench_function("sort/10k loans by interest rate desc, term asc", |b| {
        b.iter_batched(
            || all.clone(),
            |mut loans| {
                loans.sort_by(|a, b| {
                    compare_loans(a, b, &order).then_with(|| a.id.native().cmp(b.id.native()))
                });
                loans
            },
            BatchSize::LargeInput,
        )
    });
}

criterion_group!(benches, cursors, merge, filters);
criterion_main!(benches);
