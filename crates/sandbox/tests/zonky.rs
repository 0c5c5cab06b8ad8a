//! The Zonky simulator seen by an HTTP client, checked against brute force over
//! `ZonkySandbox::loans()`, `investments()` and `smp_offers()`.

// Helpers outside `#[test]` functions are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

mod common;

use std::{
    str::FromStr,
    time::{Duration, Instant},
};

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone};
use chrono_tz::Europe::Prague;
use common::{USER_AGENT, fetch_json};
use finmesh_sandbox::{
    BucketConfig, FaultKind, Faults, OAuthConfig, Outcome, RateLimitBurst, Stats, TokenStats,
    ZonkyConfig, ZonkySandbox,
};
use reqwest::{Client, RequestBuilder, Response, StatusCode, Url, header, redirect};
use rust_decimal::Decimal;
use serde_json::{Value, json};

const LOANS: usize = 400;

type Sim = common::Sim<ZonkySandbox>;

impl Sim {
    async fn start(config: ZonkyConfig) -> Self {
        Self::launch(ZonkySandbox::new(config)).await
    }

    async fn small() -> Self {
        Self::start(small_config()).await
    }

    fn get(&self, path: &str) -> RequestBuilder {
        self.client.get(self.url(path))
    }

    async fn status(&self, path: &str) -> StatusCode {
        self.get(path).send().await.unwrap().status()
    }

    /// Every matching loan in one page, and `X-Total`.
    async fn all(&self, order: Option<&str>, query: &[(&str, &str)]) -> (Vec<Value>, usize) {
        let request = self
            .get("/loans/marketplace")
            .header("X-Size", LOANS.to_string());
        whole_list(request, order, query).await
    }

    /// The brute-force answer: every loan matching `keep`, in `order`.
    fn expected(&self, order: &str, keep: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut loans: Vec<Value> = self
            .sandbox
            .loans()
            .into_iter()
            .filter(|loan| keep(loan))
            .collect();
        sort(&mut loans, order);
        loans
    }
}

fn small_config() -> ZonkyConfig {
    ZonkyConfig {
        loans: LOANS,
        ..ZonkyConfig::default()
    }
}

/// The answer to a list `request` asked for a page that holds every match,
/// filtered by `query` and ordered by `order`; and its `X-Total`.
async fn whole_list(
    request: RequestBuilder,
    order: Option<&str>,
    query: &[(&str, &str)],
) -> (Vec<Value>, usize) {
    let mut request = request.query(query);
    if let Some(order) = order {
        request = request.header("X-Order", order);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{query:?} {order:?}");
    let total = x_total(&response);
    (response.json().await.unwrap(), total)
}

/// The ids of a list read page by page, `size` at a time, every page
/// saying `total` in `X-Total`.
async fn paged_ids(list: impl Fn() -> RequestBuilder, size: usize, total: usize) -> Vec<u64> {
    let mut collected = Vec::new();
    for page in 0.. {
        let response = list()
            .header("X-Page", page.to_string())
            .header("X-Size", size.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(x_total(&response), total);
        let records: Vec<Value> = response.json().await.unwrap();
        assert!(records.len() <= size);
        if records.is_empty() {
            break;
        }
        collected.extend(ids(&records));
    }
    collected
}

fn x_total(response: &Response) -> usize {
    response.headers()["x-total"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn ids(loans: &[Value]) -> Vec<u64> {
    loans
        .iter()
        .map(|loan| loan["id"].as_u64().unwrap())
        .collect()
}

fn decimal(value: &Value) -> Decimal {
    Decimal::from_str(value.as_number().unwrap().as_str()).unwrap()
}

fn instant(value: &Value) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(value.as_str().unwrap()).unwrap()
}

/// A field's value for ordering; `None` is null.
#[derive(PartialEq, PartialOrd)]
enum Key {
    Number(Decimal),
    Instant(DateTime<FixedOffset>),
    Boolean(bool),
    Text(String),
}

fn key(loan: &Value, field: &str) -> Option<Key> {
    if field == "nonReservedRemainingInvestment" {
        return Some(Key::Number(
            decimal(&loan["remainingInvestment"]) - decimal(&loan["reservedAmount"]),
        ));
    }
    match &loan[field] {
        Value::Null => None,
        Value::Bool(flag) => Some(Key::Boolean(*flag)),
        Value::Number(_) => Some(Key::Number(decimal(&loan[field]))),
        Value::String(_) if field == "datePublished" => Some(Key::Instant(instant(&loan[field]))),
        Value::String(text) => Some(Key::Text(text.clone())),
        other => panic!("cannot order by {field}: {other}"),
    }
}

/// Orders as `X-Order` says, nulls first when ascending, then by id.
fn sort(loans: &mut [Value], order: &str) {
    sort_with(loans, order, key);
}

/// Orders as `X-Order` says, reading each field with `key`, nulls first when
/// ascending, then by id.
fn sort_with(records: &mut [Value], order: &str, key: impl Fn(&Value, &str) -> Option<Key>) {
    records.sort_by(|a, b| {
        for item in order.split(',') {
            let (descending, field) = item
                .strip_prefix('-')
                .map_or((false, item), |field| (true, field));
            let ordering = key(a, field).partial_cmp(&key(b, field)).unwrap();
            let ordering = if descending {
                ordering.reverse()
            } else {
                ordering
            };
            if ordering.is_ne() {
                return ordering;
            }
        }
        a["id"].as_u64().cmp(&b["id"].as_u64())
    });
}

const DEFAULT_ORDER: &str = "-datePublished";

#[tokio::test]
async fn pages_cover_the_marketplace_in_order() {
    let sim = Sim::small().await;
    let expected = ids(&sim.expected(DEFAULT_ORDER, |_| true));

    let first = sim.get("/loans/marketplace").send().await.unwrap();
    assert_eq!(x_total(&first), LOANS);
    let first: Vec<Value> = first.json().await.unwrap();
    assert_eq!(
        ids(&first),
        expected[..20],
        "default page 0 of 20, newest first"
    );

    let collected = paged_ids(|| sim.get("/loans/marketplace"), 7, LOANS).await;
    assert_eq!(collected, expected);

    let capped = Sim::start(ZonkyConfig {
        max_page_size: 50,
        ..small_config()
    })
    .await;
    let response = capped
        .get("/loans/marketplace")
        .header("X-Size", "1000")
        .send()
        .await
        .unwrap();
    assert_eq!(x_total(&response), LOANS);
    assert_eq!(response.json::<Vec<Value>>().await.unwrap().len(), 50);
}

#[tokio::test]
async fn invalid_paging_headers_are_refused() {
    let sim = Sim::small().await;
    for (name, value) in [
        ("X-Page", "-1"),
        ("X-Size", "abc"),
        ("X-Size", "0"),
        ("X-Page", "1.5"),
    ] {
        let response = sim
            .get("/loans/marketplace")
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.status(),
            StatusCode::BAD_REQUEST,
            "{name}: {value}"
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request");
        assert!(body["error_description"].as_str().unwrap().contains(name));
    }
}

#[tokio::test]
async fn ordering_matches_brute_force() {
    let sim = Sim::small().await;
    for order in [
        "-interestRate,termInMonths",
        "rating,-remainingInvestment",
        "-topped,purpose,-covered,insuranceActive,-nonReservedRemainingInvestment",
        "termInMonths",
        "datePublished",
        "-insuranceActive,topped",
    ] {
        let (loans, total) = sim.all(Some(order), &[]).await;
        assert_eq!(total, LOANS);
        assert_eq!(
            ids(&loans),
            ids(&sim.expected(order, |_| true)),
            "X-Order: {order}"
        );
    }
}

#[tokio::test]
async fn every_filter_operation_matches_brute_force() {
    let sim = Sim::small().await;
    let loans = sim.expected(DEFAULT_ORDER, |_| true);
    let middle = &loans[LOANS / 2];
    let published = middle["datePublished"].as_str().unwrap().to_owned();
    let published = published.as_str();
    let middle_instant = instant(&middle["datePublished"]);
    // A bare date is the start of that day in Prague.
    let day = NaiveDate::parse_from_str(&published[..10], "%Y-%m-%d").unwrap();
    let day_start = Prague
        .from_local_datetime(&day.and_hms_opt(0, 0, 0).unwrap())
        .single()
        .unwrap()
        .fixed_offset();
    // The same instant without its offset: Prague wall-clock time.
    let local = &published[..23];

    let text = |loan: &Value, field: &str| loan[field].as_str().unwrap().to_owned();
    let term = |loan: &Value| loan["termInMonths"].as_u64().unwrap();
    let rate = |loan: &Value| decimal(&loan["interestRate"]);
    let income = |loan: &Value| text(loan, "mainIncomeType");
    type Check<'a> = (Vec<(&'a str, &'a str)>, Box<dyn Fn(&Value) -> bool + 'a>);
    let checks: Vec<Check> = vec![
        (
            vec![("rating__contains", "AA")],
            Box::new(move |l| text(l, "rating").contains("AA")),
        ),
        (
            vec![("rating__icontains", "ae")],
            Box::new(move |l| text(l, "rating").to_lowercase().contains("ae")),
        ),
        (
            vec![("rating__startswith", "AA")],
            Box::new(move |l| text(l, "rating").starts_with("AA")),
        ),
        (
            vec![("rating__istartswith", "aa")],
            Box::new(move |l| text(l, "rating").starts_with("AA")),
        ),
        (
            vec![("rating__endswith", "E")],
            Box::new(move |l| text(l, "rating").ends_with('E')),
        ),
        (
            vec![("rating__iendswith", "e")],
            Box::new(move |l| text(l, "rating").ends_with('E')),
        ),
        (
            vec![("rating__in", r#"["AAA","AA"]"#)],
            Box::new(move |l| ["AAA", "AA"].contains(&text(l, "rating").as_str())),
        ),
        (
            vec![("purpose__in", "REFINANCING,HOUSEHOLD")],
            Box::new(move |l| ["REFINANCING", "HOUSEHOLD"].contains(&text(l, "purpose").as_str())),
        ),
        (
            vec![("rating__eq", "A")],
            Box::new(move |l| text(l, "rating") == "A"),
        ),
        (
            vec![("purpose__eq", "HOUSEHOLD")],
            Box::new(move |l| text(l, "purpose") == "HOUSEHOLD"),
        ),
        (
            vec![("purpose__noteq", "REFINANCING")],
            Box::new(move |l| text(l, "purpose") != "REFINANCING"),
        ),
        (
            vec![("termInMonths__gt", "24")],
            Box::new(move |l| term(l) > 24),
        ),
        (
            vec![("termInMonths__gte", "24")],
            Box::new(move |l| term(l) >= 24),
        ),
        (
            vec![("termInMonths__gteornull", "24")],
            Box::new(move |l| term(l) >= 24),
        ),
        (
            vec![("termInMonths__lt", "24")],
            Box::new(move |l| term(l) < 24),
        ),
        (
            vec![("termInMonths__lte", "24")],
            Box::new(move |l| term(l) <= 24),
        ),
        (
            vec![("termInMonths__lteornull", "24")],
            Box::new(move |l| term(l) <= 24),
        ),
        (
            vec![("termInMonths__eq", "36")],
            Box::new(move |l| term(l) == 36),
        ),
        (
            vec![("interestRate__eq", "0.0599")],
            Box::new(move |l| rate(l) == Decimal::new(599, 4)),
        ),
        (
            vec![("interestRate__noteq", "0.05990")],
            Box::new(move |l| rate(l) != Decimal::new(599, 4)),
        ),
        (
            vec![("interestRate__gte", "0.1")],
            Box::new(move |l| rate(l) >= Decimal::new(1, 1)),
        ),
        (
            vec![("remainingInvestment__lte", "50000")],
            Box::new(|l| decimal(&l["remainingInvestment"]) <= Decimal::from(50_000)),
        ),
        (
            vec![("nonReservedRemainingInvestment__gt", "100000")],
            Box::new(|l| {
                decimal(&l["remainingInvestment"]) - decimal(&l["reservedAmount"])
                    > Decimal::from(100_000)
            }),
        ),
        (
            vec![("datePublished__gt", published)],
            Box::new(move |l| instant(&l["datePublished"]) > middle_instant),
        ),
        (
            vec![("datePublished__eq", published)],
            Box::new(move |l| instant(&l["datePublished"]) == middle_instant),
        ),
        (
            vec![("datePublished__gte", local)],
            Box::new(move |l| instant(&l["datePublished"]) >= middle_instant),
        ),
        (
            vec![("datePublished__lt", &published[..10])],
            Box::new(move |l| instant(&l["datePublished"]) < day_start),
        ),
        (
            vec![("covered__eq", "true")],
            Box::new(|l| l["covered"] == true),
        ),
        (
            vec![("insuranceActive__eq", "false")],
            Box::new(|l| l["insuranceActive"] == false),
        ),
        (
            vec![("topped__eq", "false")],
            Box::new(|l| l["topped"] == false),
        ),
        (
            vec![("topped__noteq", "true")],
            Box::new(|l| l["topped"] != true),
        ),
        (
            vec![("incomes__containsany", r#"["STUDENT","PENSION"]"#)],
            Box::new(move |l| ["STUDENT", "PENSION"].contains(&income(l).as_str())),
        ),
        (
            vec![("incomes__containsall", r#"["EMPLOYMENT"]"#)],
            Box::new(move |l| income(l) == "EMPLOYMENT"),
        ),
        (
            vec![("incomes__in", "EMPLOYMENT,ENTREPRENEUR")],
            Box::new(move |l| ["EMPLOYMENT", "ENTREPRENEUR"].contains(&income(l).as_str())),
        ),
        (
            vec![("incomes__eq", "PENSION")],
            Box::new(move |l| income(l) == "PENSION"),
        ),
        (
            vec![
                ("termInMonths__gte", "12"),
                ("termInMonths__lte", "48"),
                ("rating__in", r#"["A","B"]"#),
            ],
            Box::new(move |l| {
                (12..=48).contains(&term(l)) && ["A", "B"].contains(&text(l, "rating").as_str())
            }),
        ),
    ];
    for (query, keep) in checks {
        let expected = sim.expected(DEFAULT_ORDER, keep);
        assert!(!expected.is_empty(), "{query:?} should match some loans");
        assert!(
            expected.len() < LOANS || query[0].0.contains("noteq"),
            "{query:?} should not match all"
        );
        let (loans, total) = sim.all(None, &query).await;
        assert_eq!(total, expected.len(), "{query:?}");
        assert_eq!(ids(&loans), ids(&expected), "{query:?}");
    }

    // A collection of one income cannot hold two different ones.
    let (loans, total) = sim
        .all(None, &[("incomes__containsall", "EMPLOYMENT,STUDENT")])
        .await;
    assert_eq!((loans.len(), total), (0, 0));
}

#[tokio::test]
async fn filters_and_orders_not_allowed_answer_invalid_filter() {
    let sim = Sim::small().await;
    let cases = [
        (sim.get("/loans/marketplace?amount__gt=1"), "amount", "gt"),
        (
            sim.get("/loans/marketplace?termInMonths__contains=2"),
            "termInMonths",
            "contains",
        ),
        (
            sim.get("/loans/marketplace?rating__between=A"),
            "rating",
            "between",
        ),
        (
            sim.get("/loans/marketplace").header("X-Order", "amount"),
            "amount",
            "X-Order",
        ),
        (
            sim.get("/loans/marketplace")
                .header("X-Order", "rating,-incomes"),
            "incomes",
            "X-Order",
        ),
    ];
    for (request, property, operation) in cases {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body: Value = response.json().await.unwrap();
        let uuid = body["uuid"].as_str().unwrap().to_owned();
        assert!(uuid::Uuid::parse_str(&uuid).is_ok(), "{uuid}");
        assert_eq!(
            body,
            json!({
                "error": "invalid_filter",
                "error_description": format!("Filter or ordering property not allowed: {property}"),
                "uuid": uuid,
                "property": property,
                "operation": operation,
            })
        );
    }

    for query in [
        "termInMonths__gt=abc",
        "purpose__eq=SPACE",
        "datePublished__lt=yesterday",
        "covered__eq=1",
    ] {
        let response = sim
            .get(&format!("/loans/marketplace?{query}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request", "{query}");
        assert!(!body["error_description"].as_str().unwrap().is_empty());
    }

    // Other parameters are not filters.
    let response = sim
        .get("/loans/marketplace?page=3&sort")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn partial_responses_keep_the_requested_fields() {
    let sim = Sim::small().await;
    let (loans, _) = sim.all(None, &[("fields", "id,url")]).await;
    assert_eq!(loans.len(), LOANS);
    for loan in &loans {
        let id = loan["id"].as_u64().unwrap();
        assert_eq!(
            loan,
            &json!({"id": id, "url": format!("https://app.zonky.cz/loan/{id}")})
        );
    }
    let (loans, _) = sim.all(None, &[("fields", "id,photos.url")]).await;
    let photo = loans[0]["photos"][0].as_object().unwrap();
    assert_eq!(photo.keys().collect::<Vec<_>>(), ["url"]);

    let full = &sim.sandbox.loans()[3];
    let id = full["id"].as_u64().unwrap();
    let detail: Value =
        fetch_json(sim.get(&format!("/loans/{id}?fields=id,insuranceHistory.*,photos"))).await;
    assert_eq!(
        detail,
        json!({"id": id, "insuranceHistory": full["insuranceHistory"], "photos": full["photos"]})
    );
}

#[tokio::test]
async fn loan_detail_and_unknown_loans() {
    let sim = Sim::small().await;
    let loans = sim.sandbox.loans();
    for loan in [&loans[0], &loans[LOANS - 1]] {
        let response = sim
            .get(&format!("/loans/{}", loan["id"]))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(&response.json::<Value>().await.unwrap(), loan);
    }
    let missing = sim.get("/loans/1").send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    assert_eq!(missing.json::<Value>().await.unwrap()["error"], "not_found");
    let not_a_number = sim.get("/loans/abc").send().await.unwrap();
    assert_eq!(not_a_number.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn same_seed_same_marketplace() {
    let strip_times = |loans: Vec<Value>| {
        loans
            .into_iter()
            .map(|mut loan| {
                let object = loan.as_object_mut().unwrap();
                for field in ["datePublished", "deadline", "insuranceHistory"] {
                    object.remove(field);
                }
                loan
            })
            .collect::<Vec<_>>()
    };
    let a = ZonkySandbox::new(small_config()).loans();
    let b = ZonkySandbox::new(small_config()).loans();
    let shift = instant(&a[0]["datePublished"]) - instant(&b[0]["datePublished"]);
    for (a, b) in a.iter().zip(&b) {
        assert_eq!(
            instant(&a["datePublished"]) - instant(&b["datePublished"]),
            shift
        );
        assert_eq!(instant(&a["deadline"]) - instant(&b["deadline"]), shift);
    }
    assert_eq!(strip_times(a.clone()), strip_times(b));
    let other = ZonkySandbox::new(ZonkyConfig {
        seed: 7,
        ..small_config()
    });
    assert_ne!(strip_times(a), strip_times(other.loans()));
}

#[tokio::test]
async fn leaky_bucket_refills_continuously() {
    let sim = Sim::start(ZonkyConfig {
        bucket: BucketConfig {
            capacity: 5,
            refill_per_second: Decimal::from(2),
        },
        ..small_config()
    })
    .await;
    let request = || sim.get("/loans/marketplace").header("X-Size", "1");
    for _ in 0..5 {
        assert_eq!(request().send().await.unwrap().status(), StatusCode::OK);
    }
    let refused = request().send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(refused.headers().get(header::RETRY_AFTER).is_none());
    assert_eq!(
        refused.json::<Value>().await.unwrap(),
        json!({"error": "too_many_requests"})
    );
    // Another client (another token) has its own bucket.
    let other = request().bearer_auth("someone-else").send().await.unwrap();
    assert_eq!(other.status(), StatusCode::OK);

    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(request().send().await.unwrap().status(), StatusCode::OK);
    assert_eq!(
        request().send().await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

#[tokio::test]
async fn retry_after_is_sent_only_when_configured() {
    let sim = Sim::start(ZonkyConfig {
        bucket: BucketConfig {
            capacity: 1,
            refill_per_second: Decimal::new(5, 1),
        },
        retry_after_on_429: true,
        ..small_config()
    })
    .await;
    assert_eq!(sim.status("/loans/1").await, StatusCode::NOT_FOUND);
    let refused = sim.get("/loans/1").send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()[header::RETRY_AFTER], "2");
}

#[tokio::test]
async fn last_published_has_its_own_budget() {
    let sim = Sim::start(ZonkyConfig {
        bucket: BucketConfig {
            capacity: 2,
            refill_per_second: Decimal::new(1, 2),
        },
        ..ZonkyConfig::default()
    })
    .await;
    let newest = sim
        .sandbox
        .loans()
        .into_iter()
        .max_by_key(|loan| (instant(&loan["datePublished"]), loan["id"].as_u64()))
        .unwrap();

    let first = sim.get("/loans/last-published").send().await.unwrap();
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(
        first.json::<Value>().await.unwrap(),
        json!({"id": newest["id"]})
    );
    let second = sim.get("/loans/last-published").send().await.unwrap();
    assert_eq!(second.status(), StatusCode::TOO_MANY_REQUESTS);

    // The marketplace's budget is untouched by polling, and polling by it.
    for _ in 0..2 {
        let response = sim.get("/loans/marketplace").send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(x_total(&response), 5_000);
    }
    assert_eq!(
        sim.status("/loans/marketplace").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(sim.status("/loans/last-published").await, StatusCode::OK);
}

#[tokio::test]
async fn queued_faults_reach_the_client_in_order() {
    let sim = Sim::small().await;
    sim.sandbox.set_faults(Faults {
        next: vec![
            FaultKind::ServerError { status: 502 },
            FaultKind::RateLimited {
                retry_after_secs: 7,
            },
            FaultKind::Malformed,
            FaultKind::Truncated,
            FaultKind::Drop,
            FaultKind::Latency { ms: 150 },
        ],
        ..Faults::default()
    });
    let request = || sim.get("/loans/marketplace");

    assert_eq!(
        request().send().await.unwrap().status(),
        StatusCode::BAD_GATEWAY
    );
    let limited = request().send().await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.headers()[header::RETRY_AFTER], "7");
    let malformed = request().send().await.unwrap();
    assert_eq!(malformed.status(), StatusCode::OK);
    assert!(serde_json::from_str::<Value>(&malformed.text().await.unwrap()).is_err());
    let truncated = request().send().await.unwrap();
    assert_eq!(truncated.status(), StatusCode::OK);
    let truncated = truncated.text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&truncated).is_err());
    assert!(
        request().send().await.is_err(),
        "a dropped connection is no answer"
    );
    let started = Instant::now();
    assert_eq!(request().send().await.unwrap().status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(150));

    let whole = request().send().await.unwrap().text().await.unwrap();
    assert!(serde_json::from_str::<Value>(&whole).is_ok());
    assert_eq!(truncated, whole[..whole.len() / 2]);
    assert!(sim.sandbox.faults().next.is_empty());

    let stats = sim.sandbox.stats();
    assert_eq!((stats.served, stats.faulted, stats.throttled), (2, 5, 0));
    let outcomes: Vec<Outcome> = sim
        .sandbox
        .requests()
        .iter()
        .map(|record| record.outcome)
        .collect();
    assert_eq!(outcomes[4], Outcome::Dropped);
    assert_eq!(sim.sandbox.requests()[4].status, None);
}

#[tokio::test]
async fn fault_rates_bursts_and_latency() {
    let sim = Sim::small().await;
    let marketplace = || sim.get("/loans/marketplace").send();

    sim.sandbox.set_faults(Faults {
        error_rate: 1.0,
        ..Faults::default()
    });
    assert_eq!(
        marketplace().await.unwrap().status(),
        StatusCode::SERVICE_UNAVAILABLE
    );

    sim.sandbox.set_faults(Faults {
        drop_rate: 1.0,
        ..Faults::default()
    });
    assert!(marketplace().await.is_err());
    // Control endpoints are never faulted.
    assert_eq!(sim.status("/__sandbox/stats").await, StatusCode::OK);

    sim.sandbox.set_faults(Faults {
        rate_limit_burst: Some(RateLimitBurst {
            count: 2,
            retry_after_secs: 3,
        }),
        ..Faults::default()
    });
    for _ in 0..2 {
        let response = marketplace().await.unwrap();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "3");
    }
    assert_eq!(marketplace().await.unwrap().status(), StatusCode::OK);

    sim.sandbox.set_faults(Faults {
        latency_ms: 100,
        ..Faults::default()
    });
    let started = Instant::now();
    assert_eq!(marketplace().await.unwrap().status(), StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(100));

    // Random faults strike the same requests for the same seed.
    let pattern = |sim: &Sim| {
        let sim_client = sim.client.clone();
        let url = sim.url("/loans/marketplace");
        async move {
            let mut statuses = Vec::new();
            for _ in 0..20 {
                let response = sim_client
                    .get(&url)
                    .header("X-Size", "1")
                    .send()
                    .await
                    .unwrap();
                statuses.push(response.status().as_u16());
            }
            statuses
        }
    };
    let half = Faults {
        error_rate: 0.5,
        error_status: 500,
        ..Faults::default()
    };
    sim.sandbox.set_faults(half.clone());
    let first = pattern(&sim).await;
    sim.sandbox.set_faults(half);
    assert_eq!(pattern(&sim).await, first);
    assert!(first.contains(&500) && first.contains(&200), "{first:?}");
}

#[tokio::test]
async fn faults_change_over_http() {
    let sim = Sim::small().await;
    let set = json!({"error_status": 504, "error_rate": 1.0, "next": [{"kind": "drop"}]});
    let response = sim.put_faults(&set).await;
    assert_eq!(response.status(), StatusCode::OK);
    let current: Faults = sim.control("/__sandbox/faults").await;
    assert_eq!(current.next, [FaultKind::Drop]);
    assert_eq!(current, sim.sandbox.faults());

    assert!(sim.get("/loans/marketplace").send().await.is_err());
    assert_eq!(
        sim.status("/loans/marketplace").await,
        StatusCode::GATEWAY_TIMEOUT
    );

    let invalid = sim.put_faults(&json!({"drop_rate": 2.0})).await;
    assert_eq!(invalid.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        invalid.json::<Value>().await.unwrap()["error"],
        "invalid_faults"
    );
    assert_eq!(
        sim.sandbox.faults().error_status,
        504,
        "a refused change changes nothing"
    );
}

#[tokio::test]
async fn stats_and_request_log() {
    let sim = Sim::small().await;
    let id = sim.sandbox.loans()[0]["id"].as_u64().unwrap();
    for _ in 0..3 {
        let response = sim
            .get("/loans/marketplace?rating__eq=A")
            .header("X-Page", "1")
            .header("X-Size", "5")
            .header("X-Order", "-interestRate")
            .bearer_auth("secret-token")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
    sim.get(&format!("/loans/{id}")).send().await.unwrap();
    sim.get("/loans/last-published").send().await.unwrap();
    sim.get("/loans/last-published").send().await.unwrap();
    sim.sandbox.set_faults(Faults {
        next: vec![FaultKind::ServerError { status: 500 }],
        ..Faults::default()
    });
    sim.get("/loans/marketplace").send().await.unwrap();

    let stats: Stats = sim.control("/__sandbox/stats").await;
    assert_eq!(stats, sim.sandbox.stats());
    assert_eq!(
        serde_json::to_value(&stats).unwrap(),
        json!({
            "served": 5,
            "throttled": 1,
            "faulted": 1,
            "by_endpoint": {"/loans/marketplace": 4, "/loans/{id}": 1, "/loans/last-published": 2},
        })
    );

    let log: Vec<Value> = sim.control("/__sandbox/requests").await;
    assert_eq!(log.len(), 7);
    let first = &log[0];
    assert_eq!(first["method"], "GET");
    assert_eq!(first["path"], "/loans/marketplace");
    assert_eq!(first["query"], "rating__eq=A");
    assert_eq!(
        first["headers"],
        json!({"x-page": "1", "x-size": "5", "x-order": "-interestRate", "user-agent": USER_AGENT})
    );
    assert_eq!(first["authorization"], true);
    assert_eq!(first["status"], 200);
    assert_eq!(first["outcome"], "served");
    assert!(first["timestamp_ms"].as_i64().unwrap() > 1_600_000_000_000);
    assert!(
        !log.iter()
            .any(|record| record.to_string().contains("secret-token"))
    );
    assert_eq!(log[5]["outcome"], "throttled");
    assert_eq!(log[5]["status"], 429);
    assert_eq!(log[6]["outcome"], "faulted");
    assert_eq!(log[3]["path"], format!("/loans/{id}"));

    let reset = sim
        .client
        .post(sim.url("/__sandbox/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    assert_eq!(sim.sandbox.stats(), Stats::default());
    assert!(sim.sandbox.requests().is_empty());
    // Buckets are full again.
    assert_eq!(sim.status("/loans/last-published").await, StatusCode::OK);
}

#[tokio::test]
async fn answers_are_gzipped_for_clients_that_accept_it() {
    let sim = Sim::small().await;
    let url = sim.url("/loans/marketplace");
    let raw_client = Client::builder().no_gzip().build().unwrap();

    let compressed = raw_client
        .get(&url)
        .header(header::ACCEPT_ENCODING, "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(compressed.headers()[header::CONTENT_ENCODING], "gzip");
    let bytes = compressed.bytes().await.unwrap();
    assert_eq!(bytes[..2], [0x1f, 0x8b], "a gzip stream");

    let plain = raw_client.get(&url).send().await.unwrap();
    assert!(plain.headers().get(header::CONTENT_ENCODING).is_none());
    let plain: Value = plain.json().await.unwrap();
    // reqwest with gzip asks for it and inflates it.
    let inflated: Value = fetch_json(sim.client.get(&url)).await;
    assert_eq!(inflated, plain);
    assert!(bytes.len() < plain.to_string().len() / 2);
}

#[test]
fn config_reads_with_defaults() {
    let config: ZonkyConfig = serde_json::from_value(json!({
        "loans": 10,
        "bucket": {"capacity": 5, "refill_per_second": 2.5},
        "faults": {"latency_ms": 20},
    }))
    .unwrap();
    assert_eq!(config.bucket.refill_per_second, Decimal::new(25, 1));
    assert_eq!(config.seed, 42);
    assert_eq!(
        config.last_published_bucket,
        ZonkyConfig::default().last_published_bucket
    );
    assert_eq!(config.faults.error_status, 503);
    assert!(serde_json::from_value::<ZonkyConfig>(json!({"lons": 1})).is_err());
}

// ------------------------------------------------------ OAuth and private data

/// A redirect URI with its own parameter, which the redirect must keep.
const CALLBACK: &str = "http://127.0.0.1:9/callback?app=finmesh";
const READ_SCOPES: &str = "SCOPE_APP_BASIC_INFO SCOPE_INVESTMENT_READ";

impl Sim {
    /// The authorize step, without following its redirect.
    async fn authorize(&self, params: &[(&str, &str)]) -> Response {
        Client::builder()
            .redirect(redirect::Policy::none())
            .build()
            .unwrap()
            .get(self.url("/oauth/authorize"))
            .query(params)
            .send()
            .await
            .unwrap()
    }

    /// A fresh authorization code of `user` for `scope`, sent to [`CALLBACK`].
    async fn code(&self, user: &str, scope: &str) -> String {
        let response = self
            .authorize(&[
                ("response_type", "code"),
                ("client_id", "mujrobot"),
                ("redirect_uri", CALLBACK),
                ("scope", scope),
                ("state", "s"),
                ("sandbox_user", user),
            ])
            .await;
        assert_eq!(response.status(), StatusCode::FOUND);
        redirect_params(&response)["code"].clone()
    }

    /// A token request with HTTP Basic client credentials and a form body.
    async fn token(&self, form: &[(&str, &str)], client_secret: &str) -> Response {
        self.client
            .post(self.url("/oauth/token"))
            .basic_auth("mujrobot", Some(client_secret))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// A token request with a form body and no HTTP Basic credentials.
    async fn token_without_basic(&self, form: &[(&str, &str)]) -> Response {
        self.client
            .post(self.url("/oauth/token"))
            .form(form)
            .send()
            .await
            .unwrap()
    }

    /// Exchanges `code`, sent to [`CALLBACK`], for tokens.
    async fn exchange(&self, code: &str) -> Response {
        self.token(
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", CALLBACK),
            ],
            "mujrobot",
        )
        .await
    }

    async fn refresh(&self, refresh_token: &Value) -> Response {
        self.refresh_to(refresh_token, None).await
    }

    /// A refresh that asks for `scope`, if given.
    async fn refresh_to(&self, refresh_token: &Value, scope: Option<&str>) -> Response {
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.as_str().unwrap()),
        ];
        form.extend(scope.map(|scope| ("scope", scope)));
        self.token(&form, "mujrobot").await
    }

    /// The whole code flow for `user`: the token answer.
    async fn login(&self, user: &str) -> Value {
        let code = self.code(user, READ_SCOPES).await;
        let response = self.exchange(&code).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json().await.unwrap()
    }

    /// The token endpoint's counters, as the sandbox and its control endpoint tell them.
    async fn assert_token_stats(&self, expected: TokenStats) {
        assert_eq!(self.sandbox.oauth().token_stats(), expected);
        let over_http: TokenStats = self.control("/__sandbox/oauth").await;
        assert_eq!(over_http, expected);
    }

    fn get_as(&self, path: &str, tokens: &Value) -> RequestBuilder {
        self.get(path)
            .bearer_auth(tokens["access_token"].as_str().unwrap())
    }

    /// Every matching investment in one page, and `X-Total`.
    async fn my_investments(
        &self,
        tokens: &Value,
        order: Option<&str>,
        query: &[(&str, &str)],
    ) -> (Vec<Value>, usize) {
        let request = self
            .get_as("/me/investments", tokens)
            .header("X-Size", "1000");
        whole_list(request, order, query).await
    }
}

fn redirect_target(response: &Response) -> Url {
    Url::parse(response.headers()[header::LOCATION].to_str().unwrap()).unwrap()
}

fn redirect_params(response: &Response) -> std::collections::BTreeMap<String, String> {
    redirect_target(response)
        .query_pairs()
        .into_owned()
        .collect()
}

/// The status and the `error` of an error answer.
async fn error_of(response: Response) -> (StatusCode, String) {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    (status, body["error"].as_str().unwrap().to_owned())
}

fn json_key(value: &Value, instant_field: bool) -> Option<Key> {
    match value {
        Value::Null => None,
        Value::Bool(flag) => Some(Key::Boolean(*flag)),
        Value::Number(_) => Some(Key::Number(decimal(value))),
        Value::String(_) if instant_field => Some(Key::Instant(instant(value))),
        Value::String(text) => Some(Key::Text(text.clone())),
        other => panic!("cannot order by {other}"),
    }
}

/// An investment's value of a property of the `/me/investments` table.
fn investment_value<'a>(investment: &'a Value, property: &str) -> &'a Value {
    match property {
        "ext.unpaidInstalmentCount" => &investment["loan"]["payments"]["unpaid"],
        "ext.revenueRate" => &investment["loan"]["revenueRate"],
        "unpaidPrincipal" => &investment["principal"]["unpaid"],
        "borrowerPrimaryIncomeType" => &investment["loan"]["borrower"]["primaryIncomeType"],
        "borrowerRegion" => &investment["loan"]["borrower"]["region"],
        path => path.split('.').fold(investment, |value, name| &value[name]),
    }
}

fn investment_key(investment: &Value, property: &str) -> Option<Key> {
    json_key(
        investment_value(investment, property),
        property.starts_with("time"),
    )
}

fn offer_key(offer: &Value, property: &str) -> Option<Key> {
    json_key(
        &offer[property],
        matches!(property, "datePublished" | "deadline"),
    )
}

fn text_of<'a>(investment: &'a Value, property: &str) -> &'a str {
    investment_value(investment, property)
        .as_str()
        .unwrap_or("")
}

#[tokio::test]
async fn authorization_code_flow_over_http() {
    let sim = Sim::small().await;
    let state = "opaque state/with spaces&symbols=é+";
    let response = sim
        .authorize(&[
            ("response_type", "code"),
            ("client_id", "mujrobot"),
            ("redirect_uri", CALLBACK),
            ("scope", READ_SCOPES),
            ("state", state),
        ])
        .await;
    assert_eq!(response.status(), StatusCode::FOUND);
    let target = redirect_target(&response);
    assert_eq!(
        (target.host_str(), target.path()),
        (Some("127.0.0.1"), "/callback")
    );
    let params = redirect_params(&response);
    assert_eq!(params["state"], state, "state comes back verbatim");
    assert_eq!(params["app"], "finmesh", "the redirect URI keeps its query");
    let code = params["code"].clone();
    assert!(code.len() >= 20, "{code}");

    let exchange = [
        ("scope", READ_SCOPES),
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", CALLBACK),
    ];
    let response = sim.token(&exchange, "mujrobot").await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    let tokens: Value = response.json().await.unwrap();
    assert_eq!(tokens["token_type"], "bearer");
    assert_eq!(
        tokens["expires_in"], 86_400,
        "one day, as the document says"
    );
    assert_eq!(tokens["scope"], READ_SCOPES);
    assert!(tokens["refresh_token"].as_str().unwrap().len() >= 20);
    assert_ne!(tokens["access_token"], tokens["refresh_token"]);

    // The first configured user, alice, approved it.
    let response = sim.get_as("/me/investments", &tokens).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(x_total(&response), 300);
    let page: Vec<Value> = response.json().await.unwrap();
    assert_eq!(page.len(), 20);
    let basic: Value = fetch_json(sim.get_as("/users/me/basic", &tokens)).await;
    assert_eq!(basic["nickName"], "alice");
    assert_eq!(basic["email"], "alice@sandbox.zonky.cz");

    // A code is good once.
    let again = sim.token(&exchange, "mujrobot").await;
    assert_eq!(
        error_of(again).await,
        (StatusCode::BAD_REQUEST, "invalid_grant".to_owned())
    );

    sim.assert_token_stats(TokenStats {
        authorization_code: 1,
        refresh_token: 0,
        refused: 1,
    })
    .await;

    // Logged, throttled and counted like any endpoint; no secret in the log.
    let stats = sim.sandbox.stats();
    assert_eq!(stats.by_endpoint["/oauth/token"], 2);
    assert_eq!(stats.by_endpoint["/me/investments"], 1);
    let log = serde_json::to_string(&sim.sandbox.requests()).unwrap();
    for secret in [&tokens["access_token"], &tokens["refresh_token"]] {
        assert!(!log.contains(secret.as_str().unwrap()));
    }
    assert!(!log.contains(&code));
}

#[tokio::test]
async fn token_endpoint_refuses_bad_clients_codes_and_grants() {
    let sim = Sim::small().await;
    let refused = |status: StatusCode, error: &str| (status, error.to_owned());
    let code = sim.code("alice", READ_SCOPES).await;
    let exchange = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", CALLBACK),
    ];

    let response = sim.token(&exchange, "not-the-secret").await;
    assert!(
        response.headers()[header::WWW_AUTHENTICATE]
            .to_str()
            .unwrap()
            .starts_with("Basic")
    );
    assert_eq!(
        error_of(response).await,
        refused(StatusCode::UNAUTHORIZED, "invalid_client")
    );
    let anonymous = sim.token_without_basic(&exchange).await;
    assert_eq!(
        error_of(anonymous).await,
        refused(StatusCode::UNAUTHORIZED, "invalid_client")
    );
    // Zonky wants the credentials in the Basic header, not in the body.
    let mut in_body = exchange.to_vec();
    in_body.extend([("client_id", "mujrobot"), ("client_secret", "mujrobot")]);
    let response = sim.token_without_basic(&in_body).await;
    assert_eq!(
        error_of(response).await,
        refused(StatusCode::UNAUTHORIZED, "invalid_client")
    );

    // A wrong redirect URI uses the code up.
    let response = sim
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", code.as_str()),
                ("redirect_uri", "http://127.0.0.1:9/elsewhere"),
            ],
            "mujrobot",
        )
        .await;
    assert_eq!(
        error_of(response).await,
        refused(StatusCode::BAD_REQUEST, "invalid_grant")
    );
    let response = sim.token(&exchange, "mujrobot").await;
    assert_eq!(
        error_of(response).await,
        refused(StatusCode::BAD_REQUEST, "invalid_grant")
    );

    // Codes expire after five minutes.
    let code = sim.code("alice", READ_SCOPES).await;
    sim.sandbox.oauth().advance_time(Duration::from_secs(301));
    let response = sim.exchange(&code).await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("expired")
    );

    // The redirect URI sent to authorize must be sent again.
    let code = sim.code("alice", READ_SCOPES).await;
    let response = sim
        .token(
            &[("grant_type", "authorization_code"), ("code", &code)],
            "mujrobot",
        )
        .await;
    assert_eq!(
        error_of(response).await,
        refused(StatusCode::BAD_REQUEST, "invalid_grant")
    );

    // No wider scope than granted.
    let code = sim.code("alice", "SCOPE_INVESTMENT_READ").await;
    let response = sim
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", CALLBACK),
                ("scope", "SCOPE_INVESTMENT_WRITE"),
            ],
            "mujrobot",
        )
        .await;
    assert_eq!(
        error_of(response).await,
        refused(StatusCode::BAD_REQUEST, "invalid_scope")
    );

    let response = sim
        .token(
            &[
                ("grant_type", "password"),
                ("username", "alice"),
                ("password", "x"),
            ],
            "mujrobot",
        )
        .await;
    assert_eq!(
        error_of(response).await,
        refused(StatusCode::BAD_REQUEST, "unsupported_grant_type")
    );
    let response = sim.token(&[("code", "x")], "mujrobot").await;
    assert_eq!(
        error_of(response).await,
        refused(StatusCode::BAD_REQUEST, "invalid_request")
    );

    // A JSON body does as well as a form.
    let code = sim.code("bob", READ_SCOPES).await;
    let response = sim
        .client
        .post(sim.url("/oauth/token"))
        .basic_auth("mujrobot", Some("mujrobot"))
        .json(&json!({"grant_type": "authorization_code", "code": code, "redirect_uri": CALLBACK}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let tokens: Value = response.json().await.unwrap();
    let basic: Value = fetch_json(sim.get_as("/users/me/basic", &tokens)).await;
    assert_eq!(basic["nickName"], "bob");

    assert_eq!(
        sim.sandbox.oauth().token_stats(),
        TokenStats {
            authorization_code: 1,
            refresh_token: 0,
            refused: 10,
        }
    );
}

#[tokio::test]
async fn authorize_redirects_errors_to_a_known_client_only() {
    let sim = Sim::small().await;
    let base = [
        ("response_type", "code"),
        ("client_id", "mujrobot"),
        ("redirect_uri", CALLBACK),
        ("state", "xyz"),
    ];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut params: Vec<(&str, &str)> = base
            .iter()
            .filter(|(name, _)| extra.iter().all(|(other, _)| other != name))
            .copied()
            .collect();
        params.extend(extra.iter().filter(|(_, value)| !value.is_empty()));
        params
    };

    let denied = sim.authorize(&with(&[("sandbox_decision", "deny")])).await;
    assert_eq!(denied.status(), StatusCode::FOUND);
    let params = redirect_params(&denied);
    assert_eq!(params["error"], "access_denied");
    assert_eq!(params["state"], "xyz");
    assert!(!params.contains_key("code"));

    for (extra, error) in [
        (("response_type", "token"), "unsupported_response_type"),
        (("response_type", ""), "invalid_request"),
        (("scope", "SCOPE_EVERYTHING"), "invalid_scope"),
    ] {
        let response = sim.authorize(&with(&[extra])).await;
        assert_eq!(response.status(), StatusCode::FOUND, "{extra:?}");
        let params = redirect_params(&response);
        assert_eq!(params["error"], error);
        assert_eq!(params["state"], "xyz");
    }

    // No redirect to a client or URI that cannot be trusted.
    for extra in [
        ("client_id", "someone-else"),
        ("client_id", ""),
        ("redirect_uri", ""),
        ("redirect_uri", "not a uri"),
        ("sandbox_user", "mallory"),
    ] {
        let response = sim.authorize(&with(&[extra])).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{extra:?}");
        assert!(response.headers().get(header::LOCATION).is_none());
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].is_string());
    }

    // Without a scope, every scope of the client.
    let response = sim.authorize(&with(&[("sandbox_user", "bob")])).await;
    let code = redirect_params(&response)["code"].clone();
    let response = sim.exchange(&code).await;
    let tokens: Value = response.json().await.unwrap();
    assert_eq!(
        tokens["scope"],
        finmesh_sandbox::zonky::SCOPES.join(" ").as_str()
    );

    // A registered redirect URI is checked, query parameters aside, and used
    // when none is sent.
    let registered = Sim::start(ZonkyConfig {
        oauth: OAuthConfig {
            redirect_uris: vec!["https://robot.example/cb".to_owned()],
            ..ZonkyConfig::default_oauth()
        },
        ..small_config()
    })
    .await;
    let response = registered
        .authorize(&with(&[("redirect_uri", "https://robot.example/other")]))
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let response = registered
        .authorize(&with(&[("redirect_uri", "https://robot.example/cb?x=1")]))
        .await;
    assert_eq!(response.status(), StatusCode::FOUND);
    assert_eq!(redirect_params(&response)["x"], "1");
    let response = registered
        .authorize(
            &base
                .iter()
                .filter(|(name, _)| *name != "redirect_uri")
                .copied()
                .collect::<Vec<_>>(),
        )
        .await;
    assert_eq!(
        redirect_target(&response).as_str().split('?').next(),
        Some("https://robot.example/cb")
    );
}

#[tokio::test]
async fn refresh_rotates_refresh_tokens() {
    let sim = Sim::small().await;
    let first = sim.login("alice").await;

    let response = sim.refresh(&first["refresh_token"]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let second: Value = response.json().await.unwrap();
    assert_ne!(second["access_token"], first["access_token"]);
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    assert_eq!(second["scope"], READ_SCOPES);
    assert_eq!(second["expires_in"], 86_400);

    // The old refresh token is dead; the new one works, once.
    let reused = sim.refresh(&first["refresh_token"]).await;
    assert_eq!(
        error_of(reused).await,
        (StatusCode::BAD_REQUEST, "invalid_grant".to_owned())
    );
    let response = sim.refresh(&second["refresh_token"]).await;
    assert_eq!(response.status(), StatusCode::OK);
    let third: Value = response.json().await.unwrap();
    let response = sim.get_as("/me/investments", &third).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let unknown = sim.refresh(&json!("no-such-token")).await;
    assert_eq!(
        error_of(unknown).await,
        (StatusCode::BAD_REQUEST, "invalid_grant".to_owned())
    );

    // A refresh may narrow the scopes, never widen them.
    let response = sim
        .refresh_to(&third["refresh_token"], Some("SCOPE_INVESTMENT_READ"))
        .await;
    let narrow: Value = response.json().await.unwrap();
    assert_eq!(narrow["scope"], "SCOPE_INVESTMENT_READ");
    let response = sim.get_as("/users/me/basic", &narrow).send().await.unwrap();
    assert_eq!(
        error_of(response).await,
        (StatusCode::FORBIDDEN, "insufficient_scope".to_owned())
    );
    let response = sim
        .refresh_to(&narrow["refresh_token"], Some("SCOPE_INVESTMENT_WRITE"))
        .await;
    assert_eq!(
        error_of(response).await,
        (StatusCode::BAD_REQUEST, "invalid_scope".to_owned())
    );

    sim.assert_token_stats(TokenStats {
        authorization_code: 1,
        refresh_token: 3,
        refused: 3,
    })
    .await;
    sim.client
        .post(sim.url("/__sandbox/reset"))
        .send()
        .await
        .unwrap();
    assert_eq!(sim.sandbox.oauth().token_stats(), TokenStats::default());

    // Without rotation the same refresh token comes back and keeps working;
    // without a refresh token in the answer, the old one keeps working.
    for (rotate, returns) in [(false, true), (true, false)] {
        let sim = Sim::start(ZonkyConfig {
            oauth: OAuthConfig {
                rotate_refresh_tokens: rotate,
                refresh_returns_refresh_token: returns,
                ..ZonkyConfig::default_oauth()
            },
            ..small_config()
        })
        .await;
        let tokens = sim.login("alice").await;
        for _ in 0..2 {
            let response = sim.refresh(&tokens["refresh_token"]).await;
            assert_eq!(response.status(), StatusCode::OK);
            let refreshed: Value = response.json().await.unwrap();
            if returns {
                assert_eq!(refreshed["refresh_token"], tokens["refresh_token"]);
            } else {
                assert!(refreshed.get("refresh_token").is_none(), "{refreshed}");
            }
        }
        assert_eq!(sim.sandbox.oauth().token_stats().refresh_token, 2);
    }
}

#[tokio::test]
async fn expired_invalid_and_unscoped_tokens_are_refused() {
    let short = |invalid_token_status| ZonkyConfig {
        oauth: OAuthConfig {
            access_token_ttl_secs: 60,
            ..ZonkyConfig::default_oauth()
        },
        invalid_token_status,
        ..small_config()
    };
    let sim = Sim::start(short(401)).await;
    let tokens = sim.login("alice").await;
    assert_eq!(tokens["expires_in"], 60);
    let get = |tokens: &Value| sim.get_as("/me/investments", tokens).send();
    assert_eq!(get(&tokens).await.unwrap().status(), StatusCode::OK);

    sim.sandbox.oauth().advance_time(Duration::from_secs(61));
    let response = get(&tokens).await.unwrap();
    let challenge = response.headers()[header::WWW_AUTHENTICATE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        challenge.starts_with("Bearer") && challenge.contains("invalid_token"),
        "{challenge}"
    );
    assert_eq!(
        error_of(response).await,
        (StatusCode::UNAUTHORIZED, "invalid_token".to_owned())
    );
    // The refresh token outlives it.
    let refreshed: Value = sim
        .refresh(&tokens["refresh_token"])
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(get(&refreshed).await.unwrap().status(), StatusCode::OK);

    let missing = sim.get("/me/investments").send().await.unwrap();
    assert_eq!(
        error_of(missing).await,
        (StatusCode::UNAUTHORIZED, "unauthorized".to_owned())
    );
    let forged = sim
        .get("/me/investments/summary")
        .bearer_auth("forged")
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(forged).await,
        (StatusCode::UNAUTHORIZED, "invalid_token".to_owned())
    );

    // Scopes, as the document requires them.
    let basic_only = serde_json::to_value(
        sim.sandbox
            .oauth()
            .issue_tokens("alice", &["SCOPE_APP_BASIC_INFO"]),
    )
    .unwrap();
    let response = get(&basic_only).await.unwrap();
    assert_eq!(
        error_of(response).await,
        (StatusCode::FORBIDDEN, "insufficient_scope".to_owned())
    );
    let response = sim
        .get_as("/users/me/basic", &basic_only)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // Revoking the approval kills every token of the user at once.
    sim.sandbox.oauth().revoke_user("alice");
    assert_eq!(
        get(&refreshed).await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let response = sim.refresh(&refreshed["refresh_token"]).await;
    assert_eq!(
        error_of(response).await,
        (StatusCode::BAD_REQUEST, "invalid_grant".to_owned())
    );

    // Zonky may answer an expired token 400 invalid_token instead.
    let sim = Sim::start(short(400)).await;
    let tokens = sim.login("alice").await;
    sim.sandbox.oauth().advance_time(Duration::from_secs(61));
    let response = sim.get_as("/me/investments", &tokens).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token");
    assert!(body["error_description"].is_string());
    let missing = sim.get("/me/investments").send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn users_never_see_each_others_investments() {
    let sim = Sim::small().await;
    let alice = sim.login("alice").await;
    let bob = sim.login("bob").await;
    let (alices, total) = sim.my_investments(&alice, None, &[]).await;
    assert_eq!((alices.len(), total), (300, 300));
    let (bobs, total) = sim.my_investments(&bob, None, &[]).await;
    assert_eq!((bobs.len(), total), (120, 120));
    let alice_ids = ids(&alices);
    assert!(ids(&bobs).iter().all(|id| !alice_ids.contains(id)));

    let bobs_id = bobs[0]["id"].as_u64().unwrap();
    let response = sim
        .get_as(&format!("/me/investments/{bobs_id}"), &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(response).await,
        (StatusCode::NOT_FOUND, "not_found".to_owned())
    );
    for id in ["0", "abc", "-1"] {
        let response = sim
            .get_as(&format!("/me/investments/{id}"), &alice)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{id}");
    }

    let own = &alices[17];
    let id = own["id"].as_u64().unwrap();
    let detail: Value = fetch_json(sim.get_as(&format!("/me/investments/{id}"), &alice)).await;
    assert_eq!(
        Some(&detail),
        sim.sandbox.investment_detail("alice", id).as_ref()
    );
    assert_eq!(sim.sandbox.investment_detail("bob", id), None);
    for field in [
        "id",
        "timeCreated",
        "timeModified",
        "principal",
        "interest",
        "sellStatus",
        "isBlockedByAB4",
        "smpSellInfo",
    ] {
        assert_eq!(detail[field], own[field], "{field}");
    }
    assert_eq!(detail["loan"]["title"], own["loan"]["name"]);
    for field in [
        "activeLoanOrdinal",
        "publicIdentifier",
        "contractNo",
        "userNo",
        "story",
        "detailLabels",
        "healthStats",
    ] {
        assert!(!detail["loan"][field].is_null(), "{field}");
    }
    assert!(detail["loan"]["borrower"]["borrowerNo"].is_string());
    let partial: Value =
        fetch_json(sim.get_as(&format!("/me/investments/{id}?fields=id,loan.id"), &alice)).await;
    assert_eq!(
        partial,
        json!({"id": id, "loan": {"id": own["loan"]["id"]}})
    );

    // Same seed and name, same investments; the loans are the marketplace's.
    assert_eq!(alices.len(), sim.sandbox.investments("alice").len());
    // (Times are relative to the start, so compare the rest.)
    let again = ZonkySandbox::new(small_config());
    let timeless = |investments: Vec<Value>| {
        investments
            .into_iter()
            .map(|i| {
                json!([
                    i["id"],
                    i["loan"]["id"],
                    i["principal"],
                    i["interest"],
                    i["sellStatus"],
                    i["loanHealth"]
                ])
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        timeless(again.investments("alice")),
        timeless(sim.sandbox.investments("alice"))
    );
    let loans = sim.sandbox.loans();
    let loan = loans
        .iter()
        .find(|loan| loan["id"] == own["loan"]["id"])
        .unwrap();
    for field in [
        "name",
        "purpose",
        "rating",
        "interestRate",
        "revenueRate",
        "amount",
    ] {
        assert_eq!(own["loan"][field], loan[field], "{field}");
    }
    assert!(sim.sandbox.investments("carol").is_empty());
}

#[tokio::test]
async fn my_investments_page_filter_and_order_like_brute_force() {
    let sim = Sim::small().await;
    let alice = sim.login("alice").await;
    let all = sim.sandbox.investments("alice");
    assert_eq!(all.len(), 300);
    for investment in &all {
        for part in ["principal", "interest"] {
            let total = decimal(&investment[part]["total"]);
            let unpaid = decimal(&investment[part]["unpaid"]);
            assert!(Decimal::ZERO <= unpaid && unpaid <= total, "{investment}");
            assert_eq!(total.scale(), 2);
            assert_eq!(unpaid.scale(), 2);
        }
        assert_eq!(investment["loan"]["currency"], "CZK");
    }

    // Pages of the default order (newest first) cover everything once.
    let mut expected = all.clone();
    sort_with(&mut expected, "-timeCreated", investment_key);
    let collected = paged_ids(|| sim.get_as("/me/investments", &alice), 7, 300).await;
    assert_eq!(collected, ids(&expected));

    let median = &expected[150];
    let time_created = median["timeCreated"].as_str().unwrap().to_owned();
    let created = instant(&median["timeCreated"]);
    let some_id = median["id"].as_u64().unwrap();
    let some_id_text = some_id.to_string();
    type Keep = Box<dyn Fn(&Value) -> bool>;
    type Params<'a> = Vec<(&'a str, &'a str)>;
    let cases: Vec<(Params, &str, Keep)> = vec![
        (
            vec![("loanHealth__eq", "CURRENTLY_IN_DUE")],
            "-unpaidPrincipal,loan.name",
            Box::new(|i| text_of(i, "loanHealth").ends_with("_DPD")),
        ),
        (
            vec![("loanHealth__in", r#"["HEALTHY_AND_ACTIVE","PAID"]"#)],
            "loan.interestRate",
            Box::new(|i| {
                matches!(
                    text_of(i, "loanHealth"),
                    "NEVER_IN_DUE" | "HISTORICALLY_IN_DUE" | "PAID"
                )
            }),
        ),
        (
            vec![("loanHealth__noteq", "CURRENTLY_IN_DUE")],
            "-ext.unpaidInstalmentCount",
            Box::new(|i| !text_of(i, "loanHealth").ends_with("_DPD")),
        ),
        (
            vec![
                ("investmentStatus__eq", "ACTIVE"),
                ("sellStatus__noteq", "OFFERED"),
            ],
            "-loan.interestRate,unpaidPrincipal",
            Box::new(|i| {
                text_of(i, "investmentStatus") == "ACTIVE" && text_of(i, "sellStatus") != "OFFERED"
            }),
        ),
        (
            vec![
                ("loan.amount__gte", "300000"),
                ("ext.revenueRate__lt", "0.08"),
            ],
            "ext.unpaidInstalmentCount",
            Box::new(|i| {
                decimal(&i["loan"]["amount"]) >= Decimal::from(300_000)
                    && decimal(&i["loan"]["revenueRate"]) < Decimal::new(8, 2)
            }),
        ),
        (
            vec![
                ("ext.unpaidInstalmentCount__gt", "10"),
                ("loan.purpose__in", "REFINANCING,HOUSEHOLD"),
            ],
            "-timeModified",
            Box::new(|i| {
                i["loan"]["payments"]["unpaid"].as_u64().unwrap() > 10
                    && matches!(text_of(i, "loan.purpose"), "REFINANCING" | "HOUSEHOLD")
            }),
        ),
        (
            vec![
                ("timeCreated__gte", time_created.as_str()),
                ("id__lte", some_id_text.as_str()),
            ],
            "id",
            Box::new(move |i| {
                instant(&i["timeCreated"]) >= created && i["id"].as_u64().unwrap() <= some_id
            }),
        ),
        (
            vec![
                ("borrowerRegion__noteq", "HLAVNI_MESTO_PRAHA"),
                ("insuranceStatus__eq", "NOT_INSURED"),
                ("borrowerPrimaryIncomeType__eq", "EMPLOYMENT"),
            ],
            "-id",
            Box::new(|i| {
                text_of(i, "borrowerRegion") != "HLAVNI_MESTO_PRAHA"
                    && text_of(i, "insuranceStatus") == "NOT_INSURED"
                    && text_of(i, "borrowerPrimaryIncomeType") == "EMPLOYMENT"
            }),
        ),
        (
            vec![("covidLabel__noteq", "COVID_19_POSTPONEMENT_PROCESSED")],
            "timeCreated",
            Box::new(|i| i["covidLabel"] != "COVID_19_POSTPONEMENT_PROCESSED"),
        ),
        (
            vec![(
                "covidLabel__in",
                r#"["COVID_19_POSTPONEMENT_PROCESSED","COVID_19_REQUEST_WAITING"]"#,
            )],
            "-timeModified",
            Box::new(|i| i["covidLabel"].is_string()),
        ),
    ];
    for (query, order, keep) in cases {
        let mut expected: Vec<Value> = all.iter().filter(|i| keep(i)).cloned().collect();
        sort_with(&mut expected, order, investment_key);
        assert!(
            !expected.is_empty() && expected.len() < all.len(),
            "{query:?} keeps {}",
            expected.len()
        );
        let (answer, total) = sim.my_investments(&alice, Some(order), &query).await;
        assert_eq!(total, expected.len(), "{query:?}");
        assert_eq!(ids(&answer), ids(&expected), "{query:?} {order}");
    }

    // Only what the table allows, each way.
    let refusals: [(&str, Option<&str>, &str, &str); 6] = [
        ("loan.name__eq=x", None, "loan.name", "eq"),
        ("unpaidPrincipal__gt=1", None, "unpaidPrincipal", "gt"),
        ("amount__gt=1", None, "amount", "gt"),
        ("", Some("loan.purpose"), "loan.purpose", "X-Order"),
        ("", Some("-loanHealth"), "loanHealth", "X-Order"),
        ("", Some("id,ext.revenueRate"), "ext.revenueRate", "X-Order"),
    ];
    for (query, order, property, operation) in refusals {
        for path in ["/me/investments", "/me/investments/summary"] {
            let mut request = sim.get_as(&format!("{path}?{query}"), &alice);
            if let Some(order) = order {
                request = request.header("X-Order", order);
            }
            let response = request.send().await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::BAD_REQUEST,
                "{query} {order:?}"
            );
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"], "invalid_filter");
            assert_eq!(body["property"], property);
            assert_eq!(body["operation"], operation);
        }
    }
    let response = sim
        .get_as("/me/investments?loanHealth__eq=SICK", &alice)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(response).await,
        (StatusCode::BAD_REQUEST, "invalid_request".to_owned())
    );
}

#[tokio::test]
async fn investment_summaries_add_up() {
    let sim = Sim::small().await;
    let sum = |investments: &[&Value], part: &str, field: &str| -> Decimal {
        investments
            .iter()
            .map(|i| match field {
                "unpaid" => decimal(&i[part]["unpaid"]),
                _ => decimal(&i[part]["total"]) - decimal(&i[part]["unpaid"]),
            })
            .sum()
    };
    for (user, count) in [("alice", 300), ("bob", 120)] {
        let tokens = sim.login(user).await;
        let all = sim.sandbox.investments(user);
        for (query, keep) in [
            ("", None),
            ("?investmentStatus__eq=ACTIVE", Some("ACTIVE")),
            ("?investmentStatus__eq=PAID", Some("PAID")),
        ] {
            let response = sim
                .get_as(&format!("/me/investments/summary{query}"), &tokens)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            let summary: Value = response.json().await.unwrap();
            let kept: Vec<&Value> = all
                .iter()
                .filter(|i| keep.is_none_or(|status| i["investmentStatus"] == status))
                .collect();
            assert_eq!(summary["investmentsCount"], kept.len(), "{user} {query}");
            assert_eq!(
                decimal(&summary["principalRemaining"]),
                sum(&kept, "principal", "unpaid")
            );
            assert_eq!(
                decimal(&summary["principalPaid"]),
                sum(&kept, "principal", "paid")
            );
            assert_eq!(
                decimal(&summary["interestRemaining"]),
                sum(&kept, "interest", "unpaid")
            );
            assert_eq!(
                decimal(&summary["interestPaid"]),
                sum(&kept, "interest", "paid")
            );
            for field in [
                "principalRemaining",
                "principalPaid",
                "interestRemaining",
                "interestPaid",
            ] {
                let text = summary[field].as_number().unwrap().as_str().to_owned();
                assert_eq!(
                    text.split('.').nth(1).map(str::len),
                    Some(2),
                    "{field}: {text}"
                );
            }
            if query.is_empty() {
                assert_eq!(summary["investmentsCount"], count);
                assert_eq!(summary, sim.sandbox.investment_summary(user));
            }
        }
    }
    let response = sim.get("/me/investments/summary").send().await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn secondary_marketplace_pages_filters_and_hides_delinquent_loans() {
    let sim = Sim::small().await;
    let offers = sim.sandbox.smp_offers();
    assert_eq!(offers.len(), 1000);
    let delinquent = |offer: &Value| offer["loanHealthInfo"] == "CURRENTLY_IN_DUE";
    let mut healthy: Vec<Value> = offers.iter().filter(|o| !delinquent(o)).cloned().collect();
    sort_with(&mut healthy, "-datePublished", offer_key);
    assert!(healthy.len() > 500 && healthy.len() < 1000);

    // Public, and without `delinquent` only loans not past due.
    let collected = paged_ids(|| sim.get("/smp/investments"), 100, healthy.len()).await;
    assert_eq!(collected, ids(&healthy));

    let all_offers = |query: &'static [(&'static str, &'static str)], order: &'static str| {
        sim.get("/smp/investments")
            .header("X-Size", "2000")
            .header("X-Order", order)
            .query(query)
            .send()
    };
    let response = all_offers(&[("delinquent", "true")], "-datePublished")
        .await
        .unwrap();
    assert_eq!(x_total(&response), 1000);

    type Keep = fn(&Value) -> bool;
    type Params = &'static [(&'static str, &'static str)];
    let cases: [(Params, &str, Keep); 4] = [
        (
            &[
                ("rating__in", r#"["AA","A"]"#),
                ("remainingPrincipal__gte", "500"),
            ],
            "remainingInstalmentCount,-remainingPrincipal",
            |o| {
                o["loanHealthInfo"] != "CURRENTLY_IN_DUE"
                    && matches!(o["rating"].as_str(), Some("AA" | "A"))
                    && decimal(&o["remainingPrincipal"]) >= Decimal::from(500)
            },
        ),
        (
            &[
                ("delinquent", "true"),
                ("incomeType__eq", "EMPLOYMENT"),
                ("purpose__noteq", "REFINANCING"),
            ],
            "deadline,rating",
            |o| o["incomeType"] == "EMPLOYMENT" && o["purpose"] != "REFINANCING",
        ),
        (
            &[
                ("delinquent", "true"),
                ("loanHealthInfo__eq", "CURRENTLY_IN_DUE"),
            ],
            "-incomeType,purpose",
            |o| o["loanHealthInfo"] == "CURRENTLY_IN_DUE",
        ),
        (
            &[
                ("delinquent", "false"),
                ("remainingInstalmentCount__lte", "12"),
            ],
            "-rating",
            |o| {
                o["loanHealthInfo"] != "CURRENTLY_IN_DUE"
                    && o["remainingInstalmentCount"].as_u64().unwrap() <= 12
            },
        ),
    ];
    for (query, order, keep) in cases {
        let mut expected: Vec<Value> = offers.iter().filter(|o| keep(o)).cloned().collect();
        sort_with(&mut expected, order, offer_key);
        assert!(!expected.is_empty(), "{query:?}");
        let response = all_offers(query, order).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{query:?}");
        assert_eq!(x_total(&response), expected.len(), "{query:?}");
        let answer: Vec<Value> = response.json().await.unwrap();
        assert_eq!(ids(&answer), ids(&expected), "{query:?} {order}");
    }
    // Past-due loans stay hidden unless asked for, even when filtered for.
    let response = all_offers(&[("loanHealthInfo__eq", "CURRENTLY_IN_DUE")], "rating")
        .await
        .unwrap();
    assert_eq!(x_total(&response), 0);

    let response = all_offers(&[], "loanHealthInfo").await.unwrap();
    assert_eq!(
        error_of(response).await,
        (StatusCode::BAD_REQUEST, "invalid_filter".to_owned())
    );
    let response = all_offers(&[("delinquent__eq", "true")], "rating")
        .await
        .unwrap();
    assert_eq!(
        error_of(response).await,
        (StatusCode::BAD_REQUEST, "invalid_filter".to_owned())
    );
    let response = all_offers(&[("delinquent", "maybe")], "rating")
        .await
        .unwrap();
    assert_eq!(
        error_of(response).await,
        (StatusCode::BAD_REQUEST, "invalid_request".to_owned())
    );

    // Shape, and partial responses.
    let offer = &healthy[0];
    for field in [
        "id",
        "loanId",
        "remainingPrincipal",
        "price",
        "discount",
        "datePublished",
        "deadline",
        "remainingInstalmentCount",
        "rating",
        "purpose",
        "incomeType",
        "loanHealthInfo",
        "currency",
    ] {
        assert!(!offer[field].is_null(), "{field}");
    }
    assert_eq!(offer["loan"]["id"], offer["loanId"]);
    let partial: Vec<Value> = fetch_json(
        sim.get("/smp/investments?fields=id,loan.id")
            .header("X-Size", "2"),
    )
    .await;
    assert_eq!(
        partial[0],
        json!({"id": offer["id"], "loan": {"id": offer["loanId"]}})
    );
}

#[test]
fn oauth_config_reads_over_the_zonky_defaults() {
    let config: ZonkyConfig = serde_json::from_value(json!({
        "oauth": {"access_token_ttl_secs": 5, "users": ["carol"]},
        "invalid_token_status": 400,
        "investments_per_user": {"carol": 7},
    }))
    .unwrap();
    assert_eq!(config.oauth.client_id, "mujrobot");
    assert_eq!(config.oauth.access_token_ttl_secs, 5);
    assert_eq!(config.oauth.users, ["carol"]);
    assert_eq!(config.oauth.scopes.len(), 5);
    assert_eq!(config.invalid_token_status, 400);
    assert_eq!(config.smp_offers, 1000);
    assert!(serde_json::from_value::<ZonkyConfig>(json!({"oauth": {"client": "x"}})).is_err());
    let defaults = ZonkyConfig::default();
    assert_eq!(defaults.oauth.access_token_ttl_secs, 86_400);
    assert_eq!(defaults.oauth.code_ttl_secs, 300);
    assert_eq!(defaults.oauth.users, ["alice", "bob"]);
    assert_eq!(defaults.invalid_token_status, 401);
    assert_eq!(defaults.investments_per_user["alice"], 300);
}
