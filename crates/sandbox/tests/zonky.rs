//! The Zonky simulator seen by an HTTP client, checked against brute force over
//! `ZonkySandbox::loans()`.

// Helpers outside `#[test]` functions are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use std::{
    str::FromStr,
    time::{Duration, Instant},
};

use chrono::{DateTime, FixedOffset, NaiveDate, TimeZone};
use chrono_tz::Europe::Prague;
use finmesh_sandbox::{
    BucketConfig, FaultKind, Faults, Outcome, RateLimitBurst, RunningSandbox, Stats, ZonkyConfig,
    ZonkySandbox,
};
use reqwest::{Client, RequestBuilder, Response, StatusCode, header};
use rust_decimal::Decimal;
use serde_json::{Value, json};

const LOANS: usize = 400;
const USER_AGENT: &str = "finmesh-sandbox-tests/0.1 (https://github.com/finmesh/finmesh)";

struct Sim {
    sandbox: ZonkySandbox,
    running: RunningSandbox,
    client: Client,
}

impl Sim {
    async fn start(config: ZonkyConfig) -> Self {
        let sandbox = ZonkySandbox::new(config);
        let running = sandbox
            .clone()
            .spawn(([127, 0, 0, 1], 0).into())
            .await
            .unwrap();
        let client = Client::builder().user_agent(USER_AGENT).build().unwrap();
        Self {
            sandbox,
            running,
            client,
        }
    }

    async fn small() -> Self {
        Self::start(small_config()).await
    }

    fn get(&self, path: &str) -> RequestBuilder {
        self.client
            .get(format!("{}{path}", self.running.base_url()))
    }

    /// Every matching loan in one page, and `X-Total`.
    async fn all(&self, order: Option<&str>, query: &[(&str, &str)]) -> (Vec<Value>, usize) {
        let mut request = self
            .get("/loans/marketplace")
            .header("X-Size", LOANS.to_string())
            .query(query);
        if let Some(order) = order {
            request = request.header("X-Order", order);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{query:?} {order:?}");
        let total = x_total(&response);
        (response.json().await.unwrap(), total)
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
    loans.sort_by(|a, b| {
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

    let mut collected = Vec::new();
    for page in 0.. {
        let response = sim
            .get("/loans/marketplace")
            .header("X-Page", page.to_string())
            .header("X-Size", "7")
            .send()
            .await
            .unwrap();
        assert_eq!(x_total(&response), LOANS);
        let loans: Vec<Value> = response.json().await.unwrap();
        assert!(loans.len() <= 7);
        if loans.is_empty() {
            break;
        }
        collected.extend(ids(&loans));
    }
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
    let detail: Value = sim
        .get(&format!("/loans/{id}?fields=id,insuranceHistory.*,photos"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
    assert_eq!(
        sim.get("/loans/1").send().await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
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
        sim.get("/loans/marketplace").send().await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        sim.get("/loans/last-published")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
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
    assert_eq!(
        sim.get("/__sandbox/stats").send().await.unwrap().status(),
        StatusCode::OK
    );

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
        let url = format!("{}/loans/marketplace", sim.running.base_url());
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
    let faults_url = format!("{}/__sandbox/faults", sim.running.base_url());
    let set = json!({"error_status": 504, "error_rate": 1.0, "next": [{"kind": "drop"}]});
    let response = sim.client.put(&faults_url).json(&set).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let current: Faults = sim
        .client
        .get(&faults_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(current.next, [FaultKind::Drop]);
    assert_eq!(current, sim.sandbox.faults());

    assert!(sim.get("/loans/marketplace").send().await.is_err());
    assert_eq!(
        sim.get("/loans/marketplace").send().await.unwrap().status(),
        StatusCode::GATEWAY_TIMEOUT
    );

    let invalid = sim
        .client
        .put(&faults_url)
        .json(&json!({"drop_rate": 2.0}))
        .send()
        .await
        .unwrap();
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

    let stats: Stats = sim
        .get("/__sandbox/stats")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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

    let log: Vec<Value> = sim
        .get("/__sandbox/requests")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
        .post(format!("{}/__sandbox/reset", sim.running.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    assert_eq!(sim.sandbox.stats(), Stats::default());
    assert!(sim.sandbox.requests().is_empty());
    // Buckets are full again.
    assert_eq!(
        sim.get("/loans/last-published")
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn answers_are_gzipped_for_clients_that_accept_it() {
    let sim = Sim::small().await;
    let url = format!("{}/loans/marketplace", sim.running.base_url());
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
    let inflated: Value = sim
        .client
        .get(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
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
