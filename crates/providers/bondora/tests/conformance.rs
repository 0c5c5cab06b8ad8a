//! The Bondora adapter against the Bondora simulator (and, for answers the
//! simulator never gives, a tiny local stub): the testkit's conformance
//! suite, per-endpoint throttling, OAuth, user isolation and bad input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use finmesh_bondora::BondoraFactory;
use finmesh_core::aggregate::{Aggregator, AggregatorSettings, ListArgs};
use finmesh_core::model::{InvestmentStatus, LoanPurpose};
use finmesh_core::provider::{InvestmentRequest, LoanRequest};
use finmesh_core::query::{InvestmentFilter, LoanFilter, OfferFilter};
use finmesh_core::registry::{FactoryContext, ProviderFactory, Registry};
use finmesh_core::resilience::{Resilience, ResilienceSettings};
use finmesh_core::upstream::LocalThrottle;
use finmesh_core::{CallContext, ErrorKind, ListRequest, Principal, Provider, ProviderId};
use finmesh_sandbox::{
    BondoraConfig, BondoraSandbox, BucketConfig, RunningSandbox, ZonkyConfig, ZonkySandbox,
};
use finmesh_testkit::{Fault, FixedTokens, Simulator};
use finmesh_zonky::ZonkyFactory;
use rust_decimal::Decimal;
use serde_json::{Value, json};

const USER_AGENT: &str = "finmesh-test/0.0 (https://example.test)";

struct BondoraSimulator {
    sandbox: BondoraSandbox,
    user: &'static str,
}

impl Simulator for BondoraSimulator {
    fn marketplace_ids(&self) -> HashSet<String> {
        let now = chrono::Utc::now();
        self.sandbox
            .auctions()
            .iter()
            .filter(|a| {
                a["ActualCloseDate"].is_null()
                    && chrono::DateTime::parse_from_rfc3339(a["PlannedCloseDate"].as_str().unwrap())
                        .unwrap()
                        > now
            })
            .map(|a| a["AuctionId"].as_str().unwrap().to_string())
            .collect()
    }

    fn missing_loan_id(&self) -> String {
        "00000000-0000-4000-8000-000000000000".to_string()
    }

    fn inject(&self, faults: Vec<Fault>) {
        self.sandbox
            .set_faults(finmesh_testkit::sandbox_faults(faults));
    }

    fn throttled(&self) -> u64 {
        self.sandbox.stats().throttled
    }

    fn principal(&self) -> Option<Principal> {
        Some(Principal::new(self.user))
    }

    fn offer_ids(&self) -> HashSet<String> {
        self.sandbox
            .secondary_market()
            .iter()
            .map(|o| o["Id"].as_str().unwrap().to_string())
            .collect()
    }
}

/// Small data; a quota high enough for the suite unless a test says otherwise.
fn small_config() -> BondoraConfig {
    BondoraConfig {
        auctions: 300,
        investments_per_user: 60,
        bids_per_user: 5,
        secondary_market: 300,
        default_limit: BucketConfig {
            capacity: 1_000,
            refill_per_second: Decimal::from(1_000),
        },
        ..BondoraConfig::default()
    }
}

fn fast_throttle() -> Value {
    json!({"rules": [{"name": "test", "endpoints": "each_endpoint",
        "capacity": 1000, "refill_per_second": 1000.0}]})
}

fn context(tokens: Arc<FixedTokens>) -> FactoryContext {
    FactoryContext {
        user_agent: USER_AGENT.into(),
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(10),
        throttle: Arc::new(LocalThrottle::new()),
        resilience: Default::default(),
        tokens,
    }
}

fn table(base_url: &str, extra: Value) -> Value {
    let defaults = BondoraConfig::default_oauth();
    let mut table = json!({
        "kind": "bondora",
        "base_url": base_url,
        "oauth": {
            "client_id": defaults.client_id,
            "client_secret": defaults.client_secret,
            "redirect_uri": "https://gateway.example/connect/bondora/callback",
            "authorize_url": format!("{base_url}/oauth/authorize"),
            "token_url": format!("{base_url}/oauth/access_token"),
        },
    });
    for (key, value) in extra.as_object().unwrap() {
        table[key] = value.clone();
    }
    table
}

/// Tokens of `alice` and `bob` from the simulator, refreshed by it too.
fn sandbox_tokens(sandbox: &BondoraSandbox) -> Arc<FixedTokens> {
    let oauth = sandbox.oauth().clone();
    Arc::new(
        FixedTokens::new()
            .with(
                "bondora",
                "alice",
                sandbox.oauth().issue_tokens("alice", &[]).access_token,
            )
            .with(
                "bondora",
                "bob",
                sandbox.oauth().issue_tokens("bob", &[]).access_token,
            )
            .on_refresh(move |_, user| Some(oauth.issue_tokens(user, &[]).access_token)),
    )
}

struct Running {
    provider: Arc<dyn Provider>,
    sandbox: BondoraSandbox,
    tokens: Arc<FixedTokens>,
    _running: RunningSandbox,
}

async fn start(config: BondoraConfig, extra: Value) -> Running {
    let sandbox = BondoraSandbox::new(config);
    let running = sandbox
        .clone()
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let tokens = sandbox_tokens(&sandbox);
    let provider = BondoraFactory
        .build(
            ProviderId::new("bondora").unwrap(),
            &table(&running.base_url(), extra),
            &context(tokens.clone()),
        )
        .unwrap();
    Running {
        provider,
        sandbox,
        tokens,
        _running: running,
    }
}

fn as_user(user: &str) -> CallContext {
    CallContext::for_principal(Principal::new(user), Duration::from_secs(20))
}

fn all_loans() -> LoanRequest {
    ListRequest {
        filter: LoanFilter::default(),
        order: vec![],
        offset: 0,
        limit: 10_000,
    }
}

fn all_investments(filter: InvestmentFilter) -> InvestmentRequest {
    ListRequest {
        filter,
        order: vec![],
        offset: 0,
        limit: 10_000,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bondora_passes_the_conformance_suite() {
    let bondora = start(
        small_config(),
        json!({"throttle": fast_throttle(), "page_size": 500}),
    )
    .await;
    let simulator = BondoraSimulator {
        sandbox: bondora.sandbox.clone(),
        user: "alice",
    };
    // Offers first: the loan checks end by pausing the auctions' bucket.
    finmesh_testkit::check_offers(bondora.provider.clone(), &simulator).await;
    finmesh_testkit::check_loans(bondora.provider.clone(), &simulator).await;

    eprintln!("conformance used {:?}", bondora.sandbox.stats());
    let requests = bondora.sandbox.requests();
    assert!(requests.len() > 50);
    for request in &requests {
        assert!(
            request.authorization,
            "{} sent without a token",
            request.path
        );
        assert_eq!(
            request.headers.get("user-agent").map(String::as_str),
            Some(USER_AGENT)
        );
        let encodings = request.headers.get("accept-encoding").unwrap();
        assert!(
            encodings.contains("gzip") && encodings.contains("deflate"),
            "Accept-Encoding: {encodings}"
        );
        if request.path.ends_with("/auctions") || request.path.ends_with("/secondarymarket") {
            let query = request.query.as_deref().unwrap_or_default();
            assert!(
                query.contains("request.pageSize=500") && query.contains("request.pageNr="),
                "{query}"
            );
        }
    }
    // Page numbers start at 1.
    assert!(
        requests
            .iter()
            .all(|r| !r.query.as_deref().unwrap_or_default().contains("pageNr=0"))
    );
    assert_eq!(bondora.tokens.refreshes(), 0);
}

/// The document's limit: one request a second per endpoint and user. Fifty
/// loan queries at once through the aggregator are paced by the adapter's
/// default throttle (a little under 1/s), so the platform refuses none.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_loan_queries_at_one_per_second_causes_no_429() {
    let config = BondoraConfig {
        auctions: 200,
        investments_per_user: 10,
        bids_per_user: 2,
        secondary_market: 10,
        ..BondoraConfig::default()
    };
    assert_eq!(config.default_limit.capacity, 1);
    assert_eq!(config.default_limit.refill_per_second, Decimal::ONE);
    let bondora = start(config, json!({})).await;
    let aggregator = Aggregator::new(
        Arc::new(Registry::new(vec![bondora.provider.clone()]).unwrap()),
        AggregatorSettings::default(),
    );
    let started = std::time::Instant::now();
    let queries = (0..50).map(|_| {
        let aggregator = aggregator.clone();
        async move {
            let ctx = CallContext::for_principal(Principal::new("alice"), Duration::from_secs(120));
            let args = ListArgs {
                filter: LoanFilter::default(),
                order: vec![],
                first: Some(20),
                after: None,
                providers: None,
            };
            aggregator.loans(&ctx, args).await.unwrap()
        }
    });
    let pages = futures::future::join_all(queries).await;
    for page in &pages {
        assert!(page.errors.is_empty(), "{:?}", page.errors);
        assert_eq!(page.edges.len(), 20);
    }
    let stats = bondora.sandbox.stats();
    eprintln!("burst took {:?}: {stats:?}", started.elapsed());
    assert_eq!(stats.throttled, 0, "the platform refused requests with 429");
    assert_eq!(stats.by_endpoint.get("/api/v1/auctions"), Some(&50));
    assert!(started.elapsed() >= Duration::from_secs(45), "not paced");
}

/// A caller whose wait would pass their deadline learns when to come back at
/// once, and the platform still sees no excess request.
#[tokio::test]
async fn a_caller_who_cannot_wait_is_told_when_to_come_back() {
    let bondora = start(
        BondoraConfig {
            auctions: 20,
            investments_per_user: 5,
            bids_per_user: 1,
            secondary_market: 5,
            ..BondoraConfig::default()
        },
        json!({}),
    )
    .await;
    let request = ListRequest {
        limit: 5,
        ..all_loans()
    };
    let ctx = || CallContext::for_principal(Principal::new("alice"), Duration::from_millis(300));
    bondora.provider.loans(&ctx(), &request).await.unwrap();
    let started = std::time::Instant::now();
    let error = bondora.provider.loans(&ctx(), &request).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::RateLimited, "{error:?}");
    assert!(
        error
            .retry_after
            .is_some_and(|r| r > Duration::from_millis(300) && r <= Duration::from_millis(1200)),
        "{error:?}"
    );
    assert!(started.elapsed() < Duration::from_millis(300));
    // Another endpoint has its own budget.
    let offers = ListRequest {
        filter: OfferFilter::default(),
        order: vec![],
        offset: 0,
        limit: 5,
    };
    bondora.provider.offers(&ctx(), &offers).await.unwrap();
    assert_eq!(bondora.sandbox.stats().throttled, 0);
}

#[tokio::test]
async fn investments_are_each_users_own() {
    let bondora = start(small_config(), json!({"throttle": fast_throttle()})).await;
    let provider = &bondora.provider;
    let held = |user: &str| -> HashSet<String> {
        bondora
            .sandbox
            .investments(user)
            .iter()
            .filter(|i| i["SoldDate"].is_null())
            .map(|i| i["LoanPartId"].as_str().unwrap().to_string())
            .collect()
    };
    let sold = |user: &str| -> HashSet<String> {
        bondora
            .sandbox
            .investments(user)
            .iter()
            .filter(|i| !i["SoldDate"].is_null())
            .map(|i| i["LoanPartId"].as_str().unwrap().to_string())
            .collect()
    };
    let listed = |slice: &finmesh_core::Slice<finmesh_core::model::Investment>| -> HashSet<String> {
        slice
            .items
            .iter()
            .map(|i| i.id.native().to_string())
            .collect()
    };

    let alice = provider
        .investments(
            &as_user("alice"),
            &all_investments(InvestmentFilter::default()),
        )
        .await
        .unwrap();
    let bob = provider
        .investments(
            &as_user("bob"),
            &all_investments(InvestmentFilter::default()),
        )
        .await
        .unwrap();
    assert_eq!(listed(&alice), held("alice"));
    assert_eq!(listed(&bob), held("bob"));
    assert!(listed(&alice).is_disjoint(&listed(&bob)));
    assert_eq!(alice.total, Some(held("alice").len() as u64));

    // Sold parts are Bondora's second list, read when the filter asks for them.
    let filter = |statuses| InvestmentFilter {
        statuses: Some(statuses),
        ..Default::default()
    };
    let alice_sold = provider
        .investments(
            &as_user("alice"),
            &all_investments(filter(vec![InvestmentStatus::Sold])),
        )
        .await
        .unwrap();
    assert!(!sold("alice").is_empty());
    assert_eq!(listed(&alice_sold), sold("alice"));
    assert!(
        alice_sold
            .items
            .iter()
            .all(|i| i.status == InvestmentStatus::Sold)
    );
    let both = filter(vec![InvestmentStatus::Active, InvestmentStatus::Sold]);
    let everything = provider
        .investments(&as_user("alice"), &all_investments(both.clone()))
        .await
        .unwrap();
    let expected: HashSet<String> = everything
        .items
        .iter()
        .filter(|i| both.matches(i))
        .map(|i| i.id.native().to_string())
        .collect();
    assert_eq!(
        listed(&everything),
        expected,
        "a pushed status filter leaked"
    );
    assert_eq!(everything.total, Some(everything.items.len() as u64));
    // A window across the two lists.
    let window = provider
        .investments(
            &as_user("alice"),
            &ListRequest {
                offset: everything.items.len() as u64 - 3,
                limit: 2,
                ..all_investments(both.clone())
            },
        )
        .await
        .unwrap();
    let ids: Vec<_> = window.items.iter().map(|i| i.id.clone()).collect();
    let tail: Vec<_> = everything.items[everything.items.len() - 3..everything.items.len() - 1]
        .iter()
        .map(|i| i.id.clone())
        .collect();
    assert_eq!(ids, tail);

    // The mapping, checked against the raw JSON.
    let raw = bondora.sandbox.investments("alice");
    let first = alice.items.first().unwrap();
    let source = raw
        .iter()
        .find(|i| i["LoanPartId"].as_str() == Some(first.id.native()))
        .unwrap();
    assert_eq!(
        first.principal_unpaid.amount,
        source["PrincipalRemaining"]
            .to_string()
            .parse::<Decimal>()
            .unwrap()
    );
    assert_eq!(
        first.interest_rate.unwrap() * Decimal::ONE_HUNDRED,
        source["Interest"].to_string().parse::<Decimal>().unwrap()
    );
    assert_eq!(first.currency(), finmesh_core::Currency::EUR);

    // One loan part by id: the owner's only.
    let detail = provider
        .investment(&as_user("alice"), first.id.native())
        .await
        .unwrap();
    assert_eq!(detail.id, first.id);
    assert_eq!(detail.principal_unpaid, first.principal_unpaid);
    assert_eq!(detail.principal_total, first.principal_total);
    let err = provider
        .investment(&as_user("bob"), first.id.native())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotFound, "{err:?}");
    assert_eq!(err.provider.as_ref().map(|p| p.as_str()), Some("bondora"));

    // The portfolio is summed in core from the investments.
    let aggregator = Aggregator::new(
        Arc::new(Registry::new(vec![provider.clone()]).unwrap()),
        AggregatorSettings::default(),
    );
    let (summaries, errors) = aggregator
        .portfolio(&as_user("alice"), None)
        .await
        .unwrap()
        .value;
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(summaries.len(), 1);
    assert_eq!(summaries[0].investments, held("alice").len() as u64);
    assert_eq!(
        summaries[0].principal_outstanding,
        alice
            .items
            .iter()
            .map(|i| i.principal_unpaid.amount)
            .sum::<Decimal>()
    );
}

#[tokio::test]
async fn a_refused_token_is_refreshed_exactly_once() {
    let sandbox = BondoraSandbox::new(small_config());
    let running = sandbox
        .clone()
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let oauth = sandbox.oauth().clone();
    let tokens = Arc::new(
        FixedTokens::new()
            .with("bondora", "alice", "an-expired-token")
            .with("bondora", "bob", "another-expired-token")
            .on_refresh(move |_, user| {
                (user == "alice").then(|| oauth.issue_tokens(user, &[]).access_token)
            }),
    );
    let provider = BondoraFactory
        .build(
            ProviderId::new("bondora").unwrap(),
            &table(&running.base_url(), json!({"throttle": fast_throttle()})),
            &context(tokens.clone()),
        )
        .unwrap();
    let slice = provider
        .loans(&as_user("alice"), &all_loans())
        .await
        .unwrap();
    assert_eq!(slice.items.len(), 300);
    assert_eq!(tokens.refreshes(), 1);
    // The fresh token is kept: no more refreshes.
    provider
        .loans(&as_user("alice"), &all_loans())
        .await
        .unwrap();
    assert_eq!(tokens.refreshes(), 1);
    // Bondora's 401 envelope, before the refresh, was one request.
    let unauthorized = sandbox
        .requests()
        .iter()
        .filter(|r| r.status == Some(401))
        .count();
    assert_eq!(unauthorized, 1);

    // A refresh that cannot be made: the user must connect again.
    let err = provider
        .loans(&as_user("bob"), &all_loans())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::ReauthorizationRequired, "{err:?}");
    assert!(!err.message.contains("another-expired-token"));
}

#[tokio::test]
async fn bondora_needs_a_user_even_for_auctions_while_zonky_answers_anyone() {
    let bondora = start(small_config(), json!({"throttle": fast_throttle()})).await;
    let anonymous = CallContext::anonymous(Duration::from_secs(5));
    let err = bondora
        .provider
        .loans(&anonymous, &all_loans())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Unauthenticated);
    assert_eq!(err.provider.as_ref().map(|p| p.as_str()), Some("bondora"));
    let err = bondora
        .provider
        .loans(&as_user("carol"), &all_loans())
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::NotConnected);
    assert!(
        bondora.sandbox.requests().is_empty(),
        "asked without a token"
    );

    // Through the aggregator, Zonky still answers the anonymous caller.
    let zonky_sandbox = ZonkySandbox::new(ZonkyConfig {
        loans: 30,
        ..ZonkyConfig::default()
    });
    let zonky_running = zonky_sandbox
        .clone()
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let zonky = ZonkyFactory
        .build(
            ProviderId::new("zonky").unwrap(),
            &json!({"base_url": zonky_running.base_url()}),
            &context(Arc::new(FixedTokens::new())),
        )
        .unwrap();
    let aggregator = Aggregator::new(
        Arc::new(Registry::new(vec![zonky, bondora.provider.clone()]).unwrap()),
        AggregatorSettings::default(),
    );
    let args = ListArgs {
        filter: LoanFilter::default(),
        order: vec![],
        first: Some(50),
        after: None,
        providers: None,
    };
    let page = aggregator.loans(&anonymous, args.clone()).await.unwrap();
    assert_eq!(page.edges.len(), 30);
    assert!(
        page.edges
            .iter()
            .all(|e| e.node.provider().as_str() == "zonky")
    );
    // Anonymous callers are not Bondora's: it is left out, not failed...
    assert!(page.errors.is_empty(), "{:?}", page.errors);
    // ...unless they ask for it by name.
    let named = ListArgs {
        providers: Some(vec!["bondora".into()]),
        ..args.clone()
    };
    let page = aggregator.loans(&anonymous, named).await.unwrap();
    assert!(page.edges.is_empty());
    assert_eq!(page.errors.len(), 1);
    assert_eq!(page.errors[0].code(), "UNAUTHENTICATED");
    // Signed in, both answer in one order.
    let page = aggregator.loans(&as_user("alice"), args).await.unwrap();
    assert!(page.errors.is_empty(), "{:?}", page.errors);
    let providers: HashSet<&str> = page
        .edges
        .iter()
        .map(|e| e.node.provider().as_str())
        .collect();
    assert_eq!(providers.len(), 2, "{providers:?}");
    for pair in page.edges.windows(2) {
        assert!(pair[0].node.published_at >= pair[1].node.published_at);
    }
}

#[tokio::test]
async fn the_document_models_map_exactly() {
    let bondora = start(small_config(), json!({"throttle": fast_throttle()})).await;
    let provider = &bondora.provider;
    let alice = as_user("alice");
    let loans = provider.loans(&alice, &all_loans()).await.unwrap();
    let raw = bondora.sandbox.auctions();
    for loan in &loans.items {
        let source = raw
            .iter()
            .find(|a| a["AuctionId"].as_str() == Some(loan.id.native()))
            .unwrap();
        let decimal = |name: &str| source[name].to_string().parse::<Decimal>().unwrap();
        assert_eq!(
            loan.interest_rate * Decimal::ONE_HUNDRED,
            decimal("Interest")
        );
        assert_eq!(loan.amount.amount, decimal("AppliedAmount"));
        assert_eq!(
            loan.remaining_amount.unwrap().amount,
            decimal("RemainingAmount")
        );
        assert_eq!(
            u64::from(loan.term_months),
            source["LoanDuration"].as_u64().unwrap()
        );
        assert_eq!(loan.country.as_deref(), source["Country"].as_str());
        assert_eq!(loan.rating.as_deref(), source["Rating"].as_str());
        assert_eq!(
            loan.purpose_raw.as_deref(),
            Some(source["UseOfLoan"].to_string().as_str())
        );
        if source["UseOfLoan"] == -1 {
            assert_eq!(loan.purpose, LoanPurpose::Other);
        }
        let listed = source["ListedOnUTC"].as_str().unwrap();
        assert_eq!(listed.len(), 28, "seven fractional digits");
        assert_eq!(
            finmesh_testkit_ticks(loan.published_at.unwrap()),
            listed,
            "timestamps keep their 100 ns ticks"
        );
    }
    // The detail answers the same loan.
    let first = &loans.items[0];
    let detail = provider.loan(&alice, first.id.native()).await.unwrap();
    assert_eq!(detail.id, first.id);
    assert!(detail.raw.get("BorrowerHistory").is_some());

    let offers = provider
        .offers(
            &alice,
            &ListRequest {
                filter: OfferFilter::default(),
                order: vec![],
                offset: 0,
                limit: 10_000,
            },
        )
        .await
        .unwrap();
    let raw = bondora.sandbox.secondary_market();
    assert_eq!(offers.items.len(), raw.len());
    for offer in &offers.items {
        let source = raw
            .iter()
            .find(|o| o["Id"].as_str() == Some(offer.id.native()))
            .unwrap();
        let decimal = |name: &str| source[name].to_string().parse::<Decimal>().unwrap();
        assert_eq!(offer.price.amount, decimal("Price"));
        assert_eq!(
            offer.principal_remaining.amount,
            decimal("PrincipalRemaining")
        );
        // The simulator writes a discount as a negative rate.
        assert_eq!(
            offer.discount * Decimal::ONE_HUNDRED,
            -decimal("DesiredDiscountRate")
        );
        if offer.discount > Decimal::ZERO {
            assert!(offer.price.amount < offer.principal_remaining.amount);
        }
        assert_eq!(
            offer.loan_id.as_ref().unwrap().native(),
            source["AuctionId"].as_str().unwrap()
        );
    }

    // A token without the secondary market's scopes is refused, Bondora's code kept.
    bondora.tokens.set(
        "bondora",
        "alice",
        bondora
            .sandbox
            .oauth()
            .issue_tokens("alice", &["Investments"])
            .access_token,
    );
    let err = provider
        .offers(
            &alice,
            &ListRequest {
                filter: OfferFilter::default(),
                order: vec![],
                offset: 0,
                limit: 10,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Forbidden, "{err:?}");
    assert_eq!(err.provider_code.as_deref(), Some("403"));
    assert!(err.message.contains("SmBuy"), "{}", err.message);

    // Malformed ids never reach a path.
    let before = bondora.sandbox.requests().len();
    for bad in ["42", "../auctions", "6832dee6-92a3-4d9b-af03"] {
        let err = provider.loan(&alice, bad).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidInput);
        let err = provider.investment(&alice, bad).await.unwrap_err();
        assert_eq!(err.kind, ErrorKind::InvalidInput);
    }
    assert_eq!(bondora.sandbox.requests().len(), before);
}

/// The document's UTC form of an instant.
fn finmesh_testkit_ticks(at: chrono::DateTime<chrono::Utc>) -> String {
    format!(
        "{}.{:07}Z",
        at.format("%Y-%m-%dT%H:%M:%S"),
        at.timestamp_subsec_nanos() / 100
    )
}

/// A canned answer of the stub.
type Canned = (StatusCode, Vec<(&'static str, &'static str)>, String);

/// A server answering `/api/v1/auctions` (and the detail) with whatever the
/// test queued, for shapes the simulator never sends.
struct Stub {
    queue: Arc<Mutex<VecDeque<Canned>>>,
    provider: Arc<dyn Provider>,
    _server: tokio::task::JoinHandle<()>,
}

impl Stub {
    async fn start() -> Stub {
        let queue: Arc<Mutex<VecDeque<Canned>>> = Arc::default();
        let answer = {
            let queue = queue.clone();
            move |headers: HeaderMap| {
                let queue = queue.clone();
                async move {
                    assert_eq!(
                        headers.get(header::AUTHORIZATION).unwrap(),
                        "Bearer stub-token-s3cr3t"
                    );
                    let (status, extra, body) = queue
                        .lock()
                        .unwrap()
                        .pop_front()
                        .expect("the test queued an answer");
                    let mut response: Response = (status, body).into_response();
                    for (name, value) in extra {
                        response.headers_mut().insert(name, value.parse().unwrap());
                    }
                    response
                }
            }
        };
        let app = Router::new()
            .route("/api/v1/auctions", get(answer.clone()))
            .route("/api/v1/auction/{id}", get(answer));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        let tokens = Arc::new(FixedTokens::new().with("bondora", "alice", "stub-token-s3cr3t"));
        // One queued answer per request: a 5xx must not be retried here.
        let mut settings = ResilienceSettings::default();
        settings.retry.max_attempts = 1;
        let context = FactoryContext {
            resilience: Resilience::new(settings),
            ..context(tokens)
        };
        let provider = BondoraFactory
            .build(
                ProviderId::new("bondora").unwrap(),
                &table(&base, json!({"throttle": fast_throttle()})),
                &context,
            )
            .unwrap();
        Stub {
            queue,
            provider,
            _server: server,
        }
    }

    async fn answer(
        &self,
        status: u16,
        headers: Vec<(&'static str, &'static str)>,
        body: &str,
    ) -> finmesh_core::Result<finmesh_core::Slice<finmesh_core::model::Loan>> {
        self.queue.lock().unwrap().push_back((
            StatusCode::from_u16(status).unwrap(),
            headers,
            body.to_string(),
        ));
        let ctx = CallContext::for_principal(Principal::new("alice"), Duration::from_secs(3));
        let request = ListRequest {
            limit: 10,
            ..all_loans()
        };
        self.provider.loans(&ctx, &request).await
    }
}

const JSON: (&str, &str) = ("content-type", "application/json");
const HTML: (&str, &str) = ("content-type", "text/html");

fn auction(use_of_loan: &str) -> String {
    format!(
        r#"{{"AuctionId": "6832dee6-92a3-4d9b-af03-5c53fed0c41d", "LoanNumber": 1,
            "AppliedAmount": 2125.00, "Interest": 18.55, "LoanDuration": 60, "Rating": "B",
            "Country": "EE", "UseOfLoan": {use_of_loan},
            "ListedOnUTC": "2024-12-09T17:41:11.8993295Z"}}"#
    )
}

#[tokio::test]
async fn bad_answers_become_typed_errors() {
    let stub = Stub::start().await;
    let expect = |result: finmesh_core::Result<_>, kind: ErrorKind, what: &str| {
        let err = result.err().unwrap_or_else(|| panic!("{what}: no error"));
        assert_eq!(err.kind, kind, "{what}: {err:?}");
        assert_eq!(
            err.provider.as_ref().map(|p| p.as_str()),
            Some("bondora"),
            "{what}"
        );
        assert!(!err.message.contains("s3cr3t"), "{what}: {}", err.message);
        err
    };

    let err = expect(
        stub.answer(
            200,
            vec![JSON],
            r#"{"Success": false, "Errors": [{"Code": 400, "Message": "The request is invalid.",
                "Details": "request.interestMin: The value 'x' is not valid"}]}"#,
        )
        .await,
        ErrorKind::InvalidInput,
        "Success: false",
    );
    assert_eq!(err.provider_code.as_deref(), Some("400"));
    assert_eq!(err.field.as_deref(), Some("filter.interestRate"));
    assert!(
        err.message.contains("The request is invalid."),
        "{}",
        err.message
    );

    let err = expect(
        stub.answer(
            200,
            vec![JSON],
            r#"{"Success": false, "Errors": [{"Code": 0, "Message": "Error message", "Details": "Error description"}]}"#,
        )
        .await,
        ErrorKind::UpstreamProtocol,
        "Success: false with code 0",
    );
    assert_eq!(err.provider_code.as_deref(), Some("0"));
    assert!(err.message.contains("Error description"));

    let err = expect(
        stub.answer(
            200,
            vec![HTML],
            "<!DOCTYPE html><html><body>Runtime Error: Bearer stub-token-s3cr3t</body></html>",
        )
        .await,
        ErrorKind::UpstreamProtocol,
        "an HTML error page",
    );
    assert!(err.message.contains("HTML"), "{}", err.message);
    expect(
        stub.answer(200, vec![JSON], "this is not JSON").await,
        ErrorKind::UpstreamProtocol,
        "a body that is not JSON",
    );
    expect(
        stub.answer(200, vec![JSON], r#"{"Success": true, "Errors": null}"#)
            .await,
        ErrorKind::UpstreamProtocol,
        "a missing Payload",
    );
    expect(
        stub.answer(200, vec![JSON], r#"{"Payload": {"x": 1}, "Success": true}"#)
            .await,
        ErrorKind::UpstreamProtocol,
        "a Payload that is not a list",
    );
    expect(
        stub.answer(200, vec![JSON], r#"[{"AuctionId": "x"}]"#)
            .await,
        ErrorKind::UpstreamProtocol,
        "JSON without the envelope",
    );
    let err = expect(
        stub.answer(
            200,
            vec![JSON],
            r#"{"PageSize": 1000, "PageNr": 1, "TotalCount": 1, "Count": 1,
                "Payload": [{"AuctionId": "6832dee6-92a3-4d9b-af03-5c53fed0c41d", "Interest": 10}],
                "Success": true, "Errors": null}"#,
        )
        .await,
        ErrorKind::UpstreamProtocol,
        "an auction without its amount",
    );
    assert!(err.message.contains("Payload[0]"), "{}", err.message);
    assert!(err.message.contains("AppliedAmount"), "{}", err.message);

    // Statuses decide first; the envelope's words are kept.
    expect(
        stub.answer(502, vec![HTML], "<html><body>Bad Gateway</body></html>")
            .await,
        ErrorKind::UpstreamUnavailable,
        "a proxy's 502 page",
    );
    let err = expect(
        stub.answer(
            403,
            vec![JSON],
            r#"{"Success": false, "Errors": [{"Code": 403, "Message": "User is not allowed to access the resource"}]}"#,
        )
        .await,
        ErrorKind::Forbidden,
        "403",
    );
    assert!(err.message.contains("not allowed"));
    expect(
        stub.answer(400, vec![HTML], "<html>Bad Request</html>")
            .await,
        ErrorKind::UpstreamProtocol,
        "a 400 page that is no envelope",
    );
    expect(
        stub.answer(
            409,
            vec![JSON],
            r#"{"Success": false, "Errors": [{"Code": 409, "Message": "Conflict"}]}"#,
        )
        .await,
        ErrorKind::Conflict,
        "409",
    );
    // A refusal at 200 carrying Bondora's 429: how long to wait comes from its details.
    let err = expect(
        stub.answer(
            200,
            vec![JSON],
            r#"{"Success": false, "Errors": [{"Code": 429, "Message": "API calls quota exceeded! maximum admitted 1 per Second.", "Details": "Retry after 7"}]}"#,
        )
        .await,
        ErrorKind::RateLimited,
        "a quota refusal in the envelope",
    );
    assert_eq!(err.retry_after, Some(Duration::from_secs(7)));
    // Unknown enum values never fail the page: kept raw beside `Other`.
    let body = format!(
        r#"{{"PageSize": 1000, "PageNr": 1, "TotalCount": 2, "Count": 2,
            "Payload": [{}, {}], "Success": true, "Errors": null}}"#,
        auction("4242").replace(
            "6832dee6-92a3-4d9b-af03-5c53fed0c41d",
            "0a4b8e52-92a3-4d9b-af03-5c53fed0c41d"
        ),
        auction(r#""SomethingNew""#)
    );
    let slice = stub.answer(200, vec![JSON], &body).await.unwrap();
    assert_eq!(slice.total, Some(2));
    assert_eq!(slice.items.len(), 2);
    assert_eq!(slice.items[0].purpose, LoanPurpose::Other);
    assert_eq!(slice.items[0].purpose_raw.as_deref(), Some("4242"));
    assert_eq!(slice.items[1].purpose_raw.as_deref(), Some("SomethingNew"));
    assert_eq!(slice.items[0].interest_rate.to_string(), "0.1855");

    // Lenient reading: camelCase keys, `Success` left out.
    let body = format!(r#"{{"payload": [{}], "totalCount": 1}}"#, auction("6"));
    let slice = stub.answer(200, vec![JSON], &body).await.unwrap();
    assert_eq!(slice.items[0].purpose, LoanPurpose::Vehicle);
    assert_eq!(slice.total, Some(1));

    // Pages smaller than asked would not tile: refused rather than misread.
    let body = format!(
        r#"{{"PageSize": 1, "PageNr": 1, "TotalCount": 2, "Count": 1, "Payload": [{}], "Success": true}}"#,
        auction("6")
    );
    expect(
        stub.answer(200, vec![JSON], &body).await,
        ErrorKind::UpstreamProtocol,
        "pages of another size",
    );

    // Last: the refusal pauses the endpoint's bucket for its Retry-After.
    // A real 429 is the upstream client's: it waits if it can, else says when.
    let err = expect(
        stub.answer(
            429,
            vec![JSON, ("retry-after", "30")],
            r#"{"Success": false, "Errors": [{"Code": 429, "Message": "API calls quota exceeded! maximum admitted 1 per Second.", "Details": "Retry after 30"}]}"#,
        )
        .await,
        ErrorKind::RateLimited,
        "429",
    );
    assert_eq!(err.retry_after, Some(Duration::from_secs(30)));
}
