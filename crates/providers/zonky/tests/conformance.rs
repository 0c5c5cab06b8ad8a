//! The Zonky adapter against the Zonky simulator: the testkit's conformance
//! suite, plus Zonky-specific behaviour.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use finmesh_core::registry::{FactoryContext, ProviderFactory};
use finmesh_core::upstream::LocalThrottle;
use finmesh_core::{CallContext, Provider, ProviderId};
use finmesh_sandbox::{RunningSandbox, ZonkyConfig, ZonkySandbox};
use finmesh_testkit::{Fault, Simulator};
use finmesh_zonky::ZonkyFactory;

struct ZonkySimulator {
    sandbox: ZonkySandbox,
}

impl Simulator for ZonkySimulator {
    fn marketplace_ids(&self) -> HashSet<String> {
        self.sandbox
            .loans()
            .iter()
            .map(|loan| loan["id"].to_string())
            .collect()
    }

    fn missing_loan_id(&self) -> String {
        "999999999".to_string()
    }

    fn inject(&self, faults: Vec<Fault>) {
        self.sandbox
            .set_faults(finmesh_testkit::sandbox_faults(faults));
    }

    fn throttled(&self) -> u64 {
        self.sandbox.stats().throttled
    }

    fn offer_ids(&self) -> HashSet<String> {
        let now = chrono::Utc::now();
        self.sandbox
            .smp_offers()
            .iter()
            .filter(|offer| {
                chrono::DateTime::parse_from_rfc3339(offer["deadline"].as_str().unwrap()).unwrap()
                    > now
            })
            .map(|offer| offer["id"].to_string())
            .collect()
    }
}

async fn start(
    config: ZonkyConfig,
    provider: serde_json::Value,
) -> (Arc<dyn Provider>, ZonkySandbox, RunningSandbox) {
    let sandbox = ZonkySandbox::new(config);
    let running = sandbox
        .clone()
        .spawn("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut table = provider;
    table["base_url"] = running.base_url().into();
    let context = FactoryContext {
        user_agent: "finmesh-test/0.0 (https://example.test)".into(),
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        throttle: Arc::new(LocalThrottle::new()),
        resilience: Default::default(),
        tokens: Arc::new(finmesh_core::auth::NoTokens),
    };
    let provider = ZonkyFactory
        .build(ProviderId::new("zonky").unwrap(), &table, &context)
        .unwrap();
    (provider, sandbox, running)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zonky_passes_the_conformance_suite() {
    let config = ZonkyConfig {
        loans: 1_500,
        ..ZonkyConfig::default()
    };
    // Large pages keep the suite within the default budget of 500 requests.
    let (provider, sandbox, _running) = start(
        config,
        serde_json::json!({"kind": "zonky", "page_size": 500}),
    )
    .await;
    let simulator = ZonkySimulator {
        sandbox: sandbox.clone(),
    };
    finmesh_testkit::check_loans(provider, &simulator).await;

    // Every request identified finmesh as the document asks.
    eprintln!("conformance used {:?}", sandbox.stats());
    let requests = sandbox.requests();
    assert!(!requests.is_empty());
    assert!(requests.iter().all(|r| {
        r.headers.get("user-agent").map(String::as_str)
            == Some("finmesh-test/0.0 (https://example.test)")
    }));
}

#[tokio::test]
async fn last_published_and_loan_ids() {
    let (provider, sandbox, _running) = start(
        ZonkyConfig {
            loans: 50,
            ..Default::default()
        },
        serde_json::json!({}),
    )
    .await;
    let ctx = CallContext::anonymous(Duration::from_secs(5));
    let latest = provider.latest_loan_id(&ctx).await.unwrap();
    let newest = sandbox
        .loans()
        .into_iter()
        .max_by_key(|l| l["datePublished"].as_str().unwrap().to_string())
        .unwrap();
    assert_eq!(latest.native(), newest["id"].to_string());
    let err = provider.loan(&ctx, "abc").await.unwrap_err();
    assert_eq!(err.code(), "INVALID_INPUT");
}

#[tokio::test]
async fn a_filter_zonky_refuses_names_the_field() {
    let config = ZonkyConfig {
        loans: 50,
        refused_fields: vec!["termInMonths".into()],
        ..Default::default()
    };
    let (provider, _sandbox, _running) = start(config, serde_json::json!({})).await;
    let request = finmesh_core::ListRequest {
        filter: finmesh_core::query::LoanFilter {
            term_months: Some(finmesh_core::query::Bounds {
                lte: Some(48),
                ..Default::default()
            }),
            ..Default::default()
        },
        order: vec![],
        offset: 0,
        limit: 20,
    };
    let ctx = CallContext::anonymous(Duration::from_secs(5));
    let err = provider.loans(&ctx, &request).await.unwrap_err();
    assert_eq!(err.code(), "INVALID_INPUT");
    assert_eq!(err.field.as_deref(), Some("filter.termMonths"));
    assert_eq!(err.provider_code.as_deref(), Some("invalid_filter"));
    assert_eq!(err.provider.as_ref().map(|p| p.as_str()), Some("zonky"));
    assert!(err.message.contains("termInMonths"), "{}", err.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zonky_secondary_market_passes_the_conformance_suite() {
    let config = ZonkyConfig {
        loans: 300,
        smp_offers: 400,
        ..ZonkyConfig::default()
    };
    let (provider, sandbox, _running) = start(
        config,
        serde_json::json!({"kind": "zonky", "page_size": 500}),
    )
    .await;
    let simulator = ZonkySimulator {
        sandbox: sandbox.clone(),
    };
    // Offers of loans past due are part of the market.
    assert!(
        sandbox
            .smp_offers()
            .iter()
            .any(|offer| offer["loanHealthInfo"] == "CURRENTLY_IN_DUE")
    );
    finmesh_testkit::check_offers(provider.clone(), &simulator).await;

    // Public: no token was sent, and every listing asked for the whole market.
    let requests = sandbox.requests();
    let listings: Vec<_> = requests
        .iter()
        .filter(|r| r.path == "/smp/investments")
        .collect();
    assert!(!listings.is_empty());
    assert!(listings.iter().all(|r| !r.authorization));
    assert!(listings.iter().all(|r| {
        r.query
            .as_deref()
            .is_some_and(|q| q.contains("delinquent=true"))
    }));
    // Pushed orders went out as `X-Order`.
    assert!(
        listings
            .iter()
            .any(|r| r.headers.get("x-order").map(String::as_str) == Some("-datePublished"))
    );

    // The mapping, against the simulator's JSON.
    let ctx = CallContext::anonymous(Duration::from_secs(5));
    let request = finmesh_core::ListRequest {
        filter: finmesh_core::query::OfferFilter::default(),
        order: vec![],
        offset: 0,
        limit: 5,
    };
    let slice = provider.offers(&ctx, &request).await.unwrap();
    assert_eq!(slice.total, Some(400));
    let raw = sandbox.smp_offers();
    for offer in &slice.items {
        let source = raw
            .iter()
            .find(|o| {
                o["id"].as_u64().map(|id| id.to_string()).as_deref() == Some(offer.id.native())
            })
            .unwrap();
        let decimal = |name: &str| {
            source[name]
                .to_string()
                .parse::<rust_decimal::Decimal>()
                .unwrap()
        };
        assert_eq!(offer.price.amount, decimal("price"));
        assert_eq!(
            offer.principal_remaining.amount,
            decimal("remainingPrincipal")
        );
        assert_eq!(offer.discount, decimal("discount"));
        assert_eq!(offer.interest_rate, Some(decimal("interestRate")));
        assert_eq!(offer.rating.as_deref(), source["rating"].as_str());
        assert_eq!(
            offer.loan_id.as_ref().unwrap().native(),
            source["loanId"].to_string()
        );
        assert_eq!(offer.currency(), finmesh_core::Currency::CZK);
    }
}
